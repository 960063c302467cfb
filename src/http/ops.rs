//! Operational endpoints: health, liveness, readiness (checks the database), version, and the
//! Prometheus scrape endpoint.

use std::sync::Arc;

use serde_json::json;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::App;
use crate::error::{ApiError, json_response};
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
    let mut response = Response::new(app.metrics.render().into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}
