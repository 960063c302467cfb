//! Operational endpoints: health, liveness, readiness (checks the database), version, and the
//! Prometheus scrape endpoint.

use std::sync::Arc;

use serde_json::json;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::App;
use crate::error::{ApiError, json_response};
use crate::webhooks::store::{self as webhook_store, Depth};
use crate::{store, telemetry};

/// `GET /health`.
pub async fn health() -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &json!({ "status": "ok" })))
}

/// `GET /liveness`: the process answers.
pub async fn liveness() -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &json!({ "status": "alive" })))
}

/// `GET /readiness`: the database answers and the server is not shutting down.
pub async fn readiness(app: Arc<App>) -> Result<Response, ApiError> {
    if app.is_draining() {
        return Ok(json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "draining" })));
    }
    if store::ping(&app.db).await {
        Ok(json_response(StatusCode::OK, &json!({ "status": "ready", "database": "ok" })))
    } else {
        Ok(json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "not_ready", "database": "unavailable" })))
    }
}

/// `GET /version`.
pub async fn version() -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &json!({ "name": "dialplane", "version": env!("CARGO_PKG_VERSION") })))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(app: Arc<App>) -> Result<Response, ApiError> {
    if let Ok(live) = app.counters.live_calls("all").await {
        telemetry::set_live_calls(live);
    }
    if let Ok(depths) = webhook_store::outbox_depth(&app.db).await {
        outbox_gauges(&app, &depths);
    }
    let mut response = Response::new(app.metrics.render().into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}

/// Sets the outbox gauges: pending messages and the oldest one's age, by the state of the
/// subscription they are for (`callback_url` for per-call callbacks).
fn outbox_gauges(app: &App, depths: &[Depth]) {
    let now = chrono::Utc::now();
    let mut by_state: Vec<(&'static str, u64, f64)> =
        vec![("enabled", 0, 0.0), ("disabled", 0, 0.0), ("callback_url", 0, 0.0)];
    for depth in depths {
        let state = match &depth.subscription_id {
            None => "callback_url",
            Some(id) if app.webhooks.directory.get(id).is_some_and(|e| e.enabled) => "enabled",
            Some(_) => "disabled",
        };
        let age = depth.oldest.map_or(0.0, |oldest| (now - oldest).num_milliseconds().max(0) as f64 / 1000.0);
        if let Some(entry) = by_state.iter_mut().find(|(s, ..)| *s == state) {
            entry.1 += u64::try_from(depth.pending).unwrap_or(0);
            entry.2 = entry.2.max(age);
        }
    }
    for (state, pending, age) in by_state {
        telemetry::set_outbox_depth(state, pending, age);
    }
}
