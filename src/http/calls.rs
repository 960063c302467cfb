//! `/v1/calls/{id}`: a call as the native API shows it, its event log (every carrier callback
//! with what the carrier said), and call control through its carrier (hang up, transfer).

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use dialplane_actors::fsm::Event;
use dialplane_actors::ports::{Carrier, CarrierError};
use serde_json::{Value, json};
use tracing::{info, warn};
use warp::http::StatusCode;
use warp::reply::Response;

use super::listing::caller;
use super::validate::json_object;
use crate::App;
use crate::call_view::{iso, state_of};
use crate::carriers::router::SANDBOX;
use crate::error::{ApiError, json_response};
use crate::store::calls;
use crate::store::entities::{call, call_event, user};
use crate::store::writer::WriteOp;

async fn call_of(app: &App, user: &user::Model, id: &str) -> Result<call::Model, ApiError> {
    match calls::find(&app.db, id).await? {
        Some(call) if call.workspace_id == user.workspace_id => Ok(call),
        _ => Err(ApiError::NotFound("Call not found".to_string())),
    }
}

fn view(app: &App, call: &call::Model) -> Value {
    let state = state_of(call);
    json!({
        "id": call.id,
        "call_type": call.call_type,
        "status": call.status,
        "outcome": state.as_ref().and_then(|s| s.outcome).map(|o| o.as_str()),
        "failure_reason": call.reason,
        "carrier_id": (call.carrier != SANDBOX).then_some(&call.carrier),
        "provider": app.carriers.provider_of(&call.carrier),
        "provider_call_id": call.provider_call_id,
        "did": call.did,
        "agent_leg": state.as_ref().map(|s| s.agent_leg.status.as_str()),
        "customer_leg": state.as_ref().map(|s| s.customer_leg.status.as_str()),
        "recording_status": call.recording_status,
        "transcript_status": call.transcript_status,
        "duration": call.duration_s,
        "answer_duration": call.answer_duration_s,
        "created_at": iso(call.created_at),
        "ended_at": call.ended_at.map(iso),
    })
}

/// `GET /v1/calls/{id}`.
pub async fn get(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let call = call_of(&app, &user, &id).await?;
    Ok(json_response(StatusCode::OK, &view(&app, &call)))
}

/// `GET /v1/calls/{id}/events`: the call's event log, oldest first.
pub async fn events(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let call = call_of(&app, &user, &id).await?;
    let items: Vec<Value> = calls::events_of(&app.db, &call.id)
        .await?
        .into_iter()
        .map(|event| {
            json!({
                "id": event.id,
                "at": iso(event.created_at),
                "source": event.source,
                "kind": event.kind,
                "payload": serde_json::from_str::<Value>(&event.payload).unwrap_or(Value::String(event.payload)),
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "call_id": call.id, "items": items })))
}

/// The call's carrier id, once it is live at the carrier.
fn live_at_carrier(call: &call::Model) -> Result<String, ApiError> {
    if call.ended_at.is_some() {
        return Err(ApiError::Conflict("The call has already ended".to_string()));
    }
    call.provider_call_id
        .clone()
        .ok_or_else(|| ApiError::Conflict("The carrier has not accepted the call yet; retry shortly".to_string()))
}

/// A carrier that could not be reached is a 503 (retry later); one that refused is a 502.
fn carrier_failure(e: CarrierError) -> ApiError {
    if e.is_retryable() { ApiError::Unavailable(e.to_string()) } else { ApiError::BadGateway(e.to_string()) }
}

async fn log_action(app: &App, call: &call::Model, kind: &str, payload: Value) -> Result<(), ApiError> {
    let event = call_event::Model {
        id: 0,
        call_id: call.id.clone(),
        workspace_id: call.workspace_id.clone(),
        source: "api".to_string(),
        kind: kind.to_string(),
        payload: payload.to_string(),
        created_at: Utc::now(),
    };
    app.writer.write(WriteOp::LogEvent { event }).await.map(|_| ()).map_err(ApiError::from)
}

/// `POST /v1/calls/{id}/hangup`: asks the carrier to end the call (its callbacks then end it).
pub async fn hangup(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let call = call_of(&app, &user, &id).await?;
    let provider_call_id = live_at_carrier(&call)?;
    let (record, state) = calls::record_of(&call).map_err(ApiError::from)?;
    let answered = state.agent_leg.answered_at.is_some() || state.customer_leg.answered_at.is_some();
    app.carriers.hang_up(&record, &provider_call_id, answered).await.map_err(carrier_failure)?;
    log_action(&app, &call, "hangup_requested", json!({ "user_id": user.id })).await?;
    info!(call.id = %call.id, "hang-up requested");
    Ok(json_response(StatusCode::ACCEPTED, &json!({ "call_id": call.id, "action": "hangup" })))
}

/// `POST /v1/calls/{id}/transfer {"to": "+1…"}`: moves the customer to another number.
pub async fn transfer(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let body = json_object(&body)?;
    let to = match body.get("to") {
        Some(Value::String(raw)) => {
            crate::contacts::phone::normalise(raw, &app.config.default_country).map_err(|e| {
                ApiError::field("body", "to", format!("must be a phone number in E.164 format: {e}"), "value_error")
            })?
        }
        Some(_) => return Err(ApiError::field("body", "to", "must be a string", "string_type")),
        None => return Err(ApiError::field("body", "to", "Field required", "missing")),
    };
    let call = call_of(&app, &user, &id).await?;
    let provider_call_id = live_at_carrier(&call)?;
    let (record, state) = calls::record_of(&call).map_err(ApiError::from)?;
    if state.customer_leg.answered_at.is_none() {
        return Err(ApiError::Conflict("Only a call whose customer answered can be transferred".to_string()));
    }
    if let Err(e) = app.carriers.transfer(&record, &provider_call_id, &to).await {
        warn!(call.id = %call.id, error = %e, "transfer failed");
        return Err(carrier_failure(e));
    }
    log_action(&app, &call, "transfer_requested", json!({ "user_id": user.id })).await?;
    // The carrier took it: the call publishes `call.transferred`.
    let to = crate::ids::mask_number(&to);
    app.registry.deliver(&call.id, Event::Transferred { to, at: Utc::now() });
    info!(call.id = %call.id, "transfer requested");
    Ok(json_response(StatusCode::ACCEPTED, &json!({ "call_id": call.id, "action": "transfer" })))
}
