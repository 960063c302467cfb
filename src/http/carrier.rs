//! Carrier-facing routes: status callbacks of the sandbox (`/providers/sandbox/status`), Twilio
//! (`/providers/twilio/{carrier}/status|recording`, `X-Twilio-Signature`), Exotel
//! (`/providers/exotel/{carrier}/{token}/status`) and LiveKit (`/webhook/livekit`, a signed JWT);
//! the sandbox network's own carrier API (`/sandbox/v1/...`); and the signed recording downloads
//! Dialplane serves from its own store (`/recordings/{call_id}`).
//!
//! Every callback is verified first (a bad one changes nothing and is not logged), then written
//! to the call's event log with its parameters (secrets removed), then applied.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use dialplane_actors::fsm::{CarrierUpdate, Event, Leg, LegStatus};
use dialplane_actors::ports::CallStore;
use serde_json::{Value, json};
use tracing::{debug, warn};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::listing::query_params;
use crate::App;
use crate::carriers::accounts::AccountSettings;
use crate::carriers::sandbox::{self, CallbackError, PlaceCallRequest};
use crate::carriers::{client, exotel, livekit, twilio};
use crate::error::{ApiError, json_response};
use crate::store::calls::{self, CallOwner};
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
    let Some(call) = owner_of(&app, &callback.reference).await? else {
        telemetry::carrier_callback("sandbox", "unknown_call");
        return Err(ApiError::NotFound("Call not found".to_string()));
    };
    // The body parsed as a callback, so it is JSON, and it carries no number or secret: it is
    // logged as it came, not parsed again.
    let payload = String::from_utf8_lossy(&body).into_owned();
    let kind = format!("{}.{}", callback.leg, callback.status);
    record_callback(&app, &call, "sandbox", kind, payload, vec![Event::Carrier(update)]).await?;
    Ok(received())
}

/// Returns whose a call is: from its live actor's registry entry when it has one (a callback of a
/// call in progress, the common case), else from the store.
async fn owner_of(app: &App, call_id: &str) -> Result<Option<CallOwner>, sea_orm::DbErr> {
    if let Some(live) = app.registry.owner(call_id) {
        return Ok(Some(CallOwner { id: call_id.to_string(), workspace_id: live.workspace_id, carrier: live.carrier }));
    }
    calls::find_owner(&app.db, call_id).await
}

fn received() -> Response {
    json_response(StatusCode::OK, &json!({ "received": true }))
}

/// Writes a verified callback to the call's event log, then applies what it says. The log comes
/// first: a callback is on record before it changes anything.
async fn record_callback(
    app: &App,
    call: &CallOwner,
    carrier: &'static str,
    kind: String,
    payload: String,
    events: Vec<Event>,
) -> Result<(), ApiError> {
    let event = call_event::Model {
        id: 0,
        call_id: call.id.clone(),
        workspace_id: call.workspace_id.clone(),
        source: format!("carrier:{carrier}"),
        kind: kind.clone(),
        payload,
        created_at: Utc::now(),
    };
    app.writer.write(WriteOp::LogEvent { event }).await?;
    let mut result = "logged";
    for event in events {
        result = if app.registry.deliver(&call.id, event) { "routed" } else { "late" };
    }
    debug!(call.id = %call.id, carrier, kind = %kind, result, "carrier callback");
    telemetry::carrier_callback(carrier, result);
    Ok(())
}

/// Finds the call a callback names, if it went through `carrier_id`.
async fn call_of_carrier(
    app: &App,
    provider: &'static str,
    call_id: &str,
    carrier_id: &str,
) -> Result<CallOwner, ApiError> {
    match owner_of(app, call_id).await? {
        Some(call) if call.carrier == carrier_id => Ok(call),
        _ => {
            telemetry::carrier_callback(provider, "unknown_call");
            Err(ApiError::NotFound("Call not found".to_string()))
        }
    }
}

/// `POST /providers/twilio/{carrier_id}/{status|recording}?call_id=…[&leg=…]`: a Twilio status or
/// recording callback, verified with `X-Twilio-Signature` against the URL Twilio was given.
pub async fn twilio_callback(
    app: Arc<App>,
    carrier_id: String,
    kind: String,
    query: Option<String>,
    signature: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = app.carriers.account_or_reload(&app.db, &carrier_id).await?;
    let Some(AccountSettings::Twilio(settings)) = account.as_ref().map(|a| &a.settings) else {
        return Err(ApiError::NotFound("Carrier account not found".to_string()));
    };
    let query = query.unwrap_or_default();
    let mut url = format!("{}/providers/twilio/{carrier_id}/{kind}", app.public_url);
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let pairs = client::form_pairs(&body);
    if !twilio::verify(&settings.auth_token, &url, &pairs, signature.as_deref()) {
        telemetry::carrier_callback("twilio", "bad_signature");
        warn!(carrier.id = %carrier_id, "Twilio callback with a bad signature refused");
        return Err(ApiError::Forbidden("Invalid X-Twilio-Signature".to_string()));
    }
    let params = query_params(&query);
    let call_id = params.get("call_id").ok_or_else(|| ApiError::BadRequest("call_id is missing".to_string()))?;
    let call = call_of_carrier(&app, "twilio", call_id, &carrier_id).await?;
    let malformed = |why: String| {
        telemetry::carrier_callback("twilio", "malformed");
        ApiError::BadRequest(format!("malformed callback: {why}"))
    };
    let (kind, events) = match kind.as_str() {
        "status" => {
            let leg = match params.get("leg").map(String::as_str) {
                Some("agent") => Leg::Agent,
                Some("customer") => Leg::Customer,
                _ => return Err(ApiError::BadRequest("leg must be agent or customer".to_string())),
            };
            let update = twilio::status_update(&pairs, leg).map_err(malformed)?;
            let status = client::param(&pairs, "CallStatus").unwrap_or_default();
            (format!("{}.{status}", params["leg"]), update.map(Event::Carrier).into_iter().collect())
        }
        _ => {
            let event = twilio::recording_event(&pairs).map_err(malformed)?;
            let status = client::param(&pairs, "RecordingStatus").unwrap_or_default();
            (format!("recording.{status}"), event.into_iter().collect())
        }
    };
    record_callback(&app, &call, "twilio", kind, client::loggable(&pairs).to_string(), events).await?;
    Ok(received())
}

/// `POST /providers/exotel/{carrier_id}/{token}/status`: an Exotel status callback (JSON or
/// form). Exotel does not sign callbacks; the account's unguessable token in the path does.
pub async fn exotel_callback(
    app: Arc<App>,
    carrier_id: String,
    token: String,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = app.carriers.account_or_reload(&app.db, &carrier_id).await?;
    let Some(account) = account.filter(|a| matches!(a.settings, AccountSettings::Exotel(_))) else {
        return Err(ApiError::NotFound("Carrier account not found".to_string()));
    };
    if !crate::signing::constant_time_eq(token.as_bytes(), account.callback_token.as_bytes()) {
        telemetry::carrier_callback("exotel", "bad_signature");
        warn!(carrier.id = %carrier_id, "Exotel callback with a wrong token refused");
        return Err(ApiError::Forbidden("Invalid callback token".to_string()));
    }
    let json = content_type.as_deref().is_some_and(|c| c.contains("json"));
    let malformed = |why: String| {
        telemetry::carrier_callback("exotel", "malformed");
        ApiError::BadRequest(format!("malformed callback: {why}"))
    };
    let callback = exotel::callback_body(&body, json).map_err(malformed)?;
    let call = match exotel::call_reference(&callback) {
        Some(call_id) => call_of_carrier(&app, "exotel", &call_id, &carrier_id).await?,
        None => {
            let sid = callback.get("CallSid").and_then(Value::as_str).unwrap_or_default();
            match calls::find_owner_by_provider_call_id(&app.db, &carrier_id, sid).await? {
                Some(call) if !sid.is_empty() => call,
                _ => return Err(ApiError::NotFound("Call not found".to_string())),
            }
        }
    };
    let updates = exotel::updates_of(&callback).map_err(malformed)?;
    let kind = format!(
        "{}.{}",
        callback.get("EventType").and_then(Value::as_str).unwrap_or("terminal"),
        callback.get("Status").and_then(Value::as_str).unwrap_or_default()
    );
    let events = updates.into_iter().map(Event::Carrier).collect();
    record_callback(&app, &call, "exotel", kind, client::loggable_json(callback).to_string(), events).await?;
    Ok(received())
}

/// `POST /webhook/livekit`: a LiveKit server webhook, verified (JWT under the API secret of the
/// key it names, carrying the body's SHA-256). Room starts and finishes keep
/// `livekit:active_calls`; events of a call's room move its customer leg.
pub async fn livekit_webhook(app: Arc<App>, authorization: Option<String>, body: Bytes) -> Result<Response, ApiError> {
    let refuse = |why: String| {
        telemetry::carrier_callback("livekit", "bad_signature");
        warn!(reason = %why, "LiveKit webhook refused");
        ApiError::Unauthenticated
    };
    let key = livekit::claimed_key(authorization.as_deref()).map_err(|e| refuse(e.to_string()))?;
    let now = Utc::now().timestamp();
    // Every account this webhook verifies for (workspaces may share a LiveKit deployment).
    let mut verified: Vec<_> = app
        .carriers
        .livekit_accounts(&key)
        .into_iter()
        .filter(|account| match &account.settings {
            AccountSettings::Livekit(s) => {
                livekit::verify_webhook(authorization.as_deref(), &body, &s.api_key, &s.api_secret, now).is_ok()
            }
            _ => false,
        })
        .collect();
    if verified.is_empty() {
        return Err(refuse("no LiveKit carrier verifies this webhook".to_string()));
    }
    verified.sort_by(|a, b| a.id.cmp(&b.id));
    let event: Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    let (_, created_at) = livekit::event_identity(&event);
    let sequence = created_at.unwrap_or_else(|| Utc::now().timestamp()).max(0) as u64;
    let signal = livekit::signal_of(&event);
    let room = match &signal {
        livekit::RoomSignal::RoomStarted { room }
        | livekit::RoomSignal::RoomFinished { room }
        | livekit::RoomSignal::Customer { room, .. } => Some(room.clone()),
        livekit::RoomSignal::Other => event.pointer("/room/name").and_then(Value::as_str).map(str::to_string),
    };
    // Rooms are named for their calls: the account that placed the call owns the room.
    let call = match &room {
        Some(room) => owner_of(&app, room).await?.filter(|c| verified.iter().any(|a| a.id == c.carrier)),
        None => None,
    };
    let owner = call.as_ref().map_or(verified[0].id.clone(), |c| c.carrier.clone());
    let counted = match &signal {
        livekit::RoomSignal::RoomStarted { room } => Some(app.livekit_rooms.started(&owner, room).await),
        livekit::RoomSignal::RoomFinished { room } => Some(app.livekit_rooms.finished(&owner, room).await),
        _ => None,
    };
    if let Some(count) = counted {
        telemetry::set_livekit_active_calls(count.map_err(|e| ApiError::Unavailable(e.to_string()))?);
    }
    let Some(call) = call else {
        telemetry::carrier_callback("livekit", "no_call");
        return Ok(received());
    };
    let update = |status| {
        Event::Carrier(CarrierUpdate {
            sequence,
            leg: Leg::Customer,
            status,
            at: Utc::now(),
            duration_s: None,
            answer_duration_s: None,
            recording_url: None,
        })
    };
    let events = match signal {
        livekit::RoomSignal::Customer { status, .. } => vec![update(status)],
        // A room that closes ends its call. Canceled, not completed: the state machine ends the
        // call completed if the customer answered, whichever of the webhooks came first.
        livekit::RoomSignal::RoomFinished { .. } => vec![update(LegStatus::Canceled)],
        _ => Vec::new(),
    };
    let kind = event.get("event").and_then(Value::as_str).unwrap_or("unknown").to_string();
    record_callback(&app, &call, "livekit", kind, client::loggable_json(event).to_string(), events).await?;
    Ok(received())
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
