//! Carrier-facing routes: the sandbox's status callbacks (`/providers/sandbox/status`), the sandbox
//! network's own carrier API (`/sandbox/v1/...`), and the signed recording downloads Dialplane
//! serves from its own store (`/recordings/{call_id}`).

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use dialplane_actors::fsm::Event;
use dialplane_actors::ports::CallStore;
use serde_json::json;
use tracing::{debug, warn};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::App;
use crate::carriers::sandbox::{self, CallbackError, PlaceCallRequest};
use crate::error::{ApiError, json_response};
use crate::store::calls;
use crate::store::entities::call_event;
use crate::store::writer::WriteOp;
use crate::telemetry;

/// `POST /providers/sandbox/status`: verifies, logs, then routes a status callback to its call.
pub async fn sandbox_status(app: Arc<App>, signature: Option<String>, body: Bytes) -> Result<Response, ApiError> {
    let (callback, update) =
        match sandbox::parse_status_callback(&app.sandbox_callback_key, &body, signature.as_deref()) {
            Ok(parsed) => parsed,
            Err(CallbackError::BadSignature) => {
                telemetry::carrier_callback("sandbox", "bad_signature");
                return Err(ApiError::Unauthenticated);
            }
            Err(CallbackError::Malformed(why)) => {
                telemetry::carrier_callback("sandbox", "malformed");
                return Err(ApiError::BadRequest(format!("malformed callback: {why}")));
            }
        };
    let Some(call) = calls::find(&app.db, &callback.reference).await? else {
        telemetry::carrier_callback("sandbox", "unknown_call");
        return Err(ApiError::NotFound("Call not found".to_string()));
    };
    // The event log comes first: a callback is on record before it changes anything.
    let event = call_event::Model {
        id: 0,
        call_id: call.id.clone(),
        workspace_id: call.workspace_id.clone(),
        source: "carrier:sandbox".to_string(),
        kind: format!("{}.{}", callback.leg, callback.status),
        payload: String::from_utf8_lossy(&body).into_owned(),
        created_at: Utc::now(),
    };
    app.writer.write(WriteOp::LogEvent { event }).await?;
    let result = if app.registry.deliver(&call.id, Event::Carrier(update)) { "routed" } else { "late" };
    debug!(call.id = %call.id, leg = %callback.leg, status = %callback.status, result, "carrier callback");
    telemetry::carrier_callback("sandbox", result);
    Ok(json_response(StatusCode::OK, &json!({ "received": true })))
}

/// `POST /sandbox/v1/calls`: the sandbox carrier accepting (or refusing) a call.
pub async fn sandbox_place_call(
    app: Arc<App>,
    authorization: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !app.sandbox.authorized(authorization.as_deref()) {
        return Err(ApiError::Unauthenticated);
    }
    let request: PlaceCallRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid call request: {e}")))?;
    match app.sandbox.place(request).await {
        Ok(placed) => Ok(json_response(StatusCode::CREATED, &serde_json::to_value(placed).unwrap_or_default())),
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
            Ok(json_response(status, &refusal.body))
        }
    }
}

/// `GET /sandbox/v1/recordings/{sid}.wav`: the sandbox carrier serving a recording.
pub async fn sandbox_recording(
    app: Arc<App>,
    authorization: Option<String>,
    file: String,
) -> Result<Response, ApiError> {
    if !app.sandbox.authorized(authorization.as_deref()) {
        return Err(ApiError::Unauthenticated);
    }
    let sid = file.strip_suffix(".wav").unwrap_or(&file);
    let bytes =
        app.sandbox.recording(sid).await?.ok_or_else(|| ApiError::NotFound("Recording not found".to_string()))?;
    Ok(audio(bytes, "audio/wav"))
}

/// `GET /sandbox/v1/calls/{sid or reference}`: the sandbox carrier's status of a call.
pub async fn sandbox_call_status(
    app: Arc<App>,
    authorization: Option<String>,
    lookup: String,
) -> Result<Response, ApiError> {
    if !app.sandbox.authorized(authorization.as_deref()) {
        return Err(ApiError::Unauthenticated);
    }
    let report = app.sandbox.status(&lookup).await?.ok_or_else(|| ApiError::NotFound("Call not found".to_string()))?;
    Ok(json_response(StatusCode::OK, &serde_json::to_value(report).unwrap_or_default()))
}

fn audio(bytes: Vec<u8>, content_type: &str) -> Response {
    let mut response = Response::new(bytes.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    response
}

/// `GET /recordings/{call_id}?expires=…&signature=…`: a stored recording behind a signed URL.
pub async fn recording(app: Arc<App>, call_id: String, query: String) -> Result<Response, ApiError> {
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let expires = params.get("expires").and_then(|e| e.parse::<i64>().ok());
    let signature = params.get("signature");
    let valid = match (expires, signature) {
        (Some(expires), Some(signature)) => app.signer.verify(&call_id, expires, signature, Utc::now()),
        _ => false,
    };
    if !valid {
        return Err(ApiError::Forbidden("Invalid or expired recording URL".to_string()));
    }
    match app.store.load_recording(&call_id).await {
        Ok(Some(recording)) => Ok(audio(recording.bytes, &recording.content_type)),
        Ok(None) => Err(ApiError::NotFound("Recording not available yet".to_string())),
        Err(e) => {
            warn!(call.id = %call_id, error = %e, "recording could not be read");
            Err(ApiError::Unavailable("Recording store unavailable".to_string()))
        }
    }
}
