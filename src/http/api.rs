//! The `/api` surface, drop-in compatible with seed 000: login, click2call, recent calls and the
//! transcript of a call; and the exchange of a refresh token for new tokens. Handlers are plain async functions returning `Result<Response, ApiError>`.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use dialplane_actors::fsm;
use dialplane_actors::{CallRecord, CallType};
use serde_json::{Value, json};
use tracing::{info, warn};
use warp::http::StatusCode;
use warp::reply::Response;

use super::validate::{self, BodyFields, PHONE_PATTERN};
use crate::App;
use crate::auth;
use crate::call_view;
use crate::error::{ApiError, FieldError, json_response};
use crate::ids;
use crate::netguard::{UrlRefusal, check_callback_url};
use crate::store::calls::{self, Creation, RecentFilter};
use crate::store::entities::user;
use crate::store::refresh_tokens::{self, Exchange};
use crate::store::users;
use crate::store::writer::{WriteOp, WriteOutcome};
use crate::telemetry;

/// Returns seed 000's success envelope.
fn envelope(message: &str, data: Value) -> Response {
    json_response(StatusCode::OK, &json!({ "status_code": 200, "message": message, "error": null, "data": data }))
}

/// `POST /api/login`.
pub async fn login(app: Arc<App>, body: Bytes) -> Result<Response, ApiError> {
    let mut fields = BodyFields::new(validate::json_object(&body)?);
    let email = fields.required_string("email");
    let password = fields.required_string("password");
    fields.finish()?;
    let (email, password) = (email.unwrap_or_default(), password.unwrap_or_default());
    let user = users::find_by_email(&app.db, &email).await?;
    // Hash even for an unknown email, so timing does not tell which emails exist.
    let hash = user.as_ref().map_or_else(|| app.dummy_password_hash.clone(), |u| u.password_hash.clone());
    let matches = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = match user {
        Some(user) if matches => user,
        _ => return Err(ApiError::BadRequest("Incorrect email or password".to_string())),
    };
    if !user.is_active {
        return Err(ApiError::BadRequest("Inactive user".to_string()));
    }
    if !user.is_verified {
        return Err(ApiError::BadRequest("User is not verified".to_string()));
    }
    let tokens = issue_tokens(&app, &user, None).await?;
    info!(user.id = %user.id, "user logged in");
    Ok(envelope("Login successful", tokens))
}

/// `POST /api/refresh-token`: exchanges a current refresh token for a new access and refresh
/// token. The one presented is used up; presented again, it revokes every refresh token of its
/// login, and whoever holds them must sign in again.
pub async fn refresh_token(app: Arc<App>, body: Bytes) -> Result<Response, ApiError> {
    let mut fields = BodyFields::new(validate::json_object(&body)?);
    let token = fields.required_string("refresh_token");
    fields.finish()?;
    let claims = app.auth.verify_refresh(&token.unwrap_or_default()).ok_or(ApiError::Unauthenticated)?;
    let family = match refresh_tokens::exchange(&app.db, &claims.jti, &claims.sub).await? {
        Exchange::Rotated { family_id } => family_id,
        Exchange::Reused => {
            warn!(user.id = %claims.sub, "a refresh token was presented again after its exchange; its login is revoked");
            return Err(ApiError::Unauthenticated);
        }
        Exchange::Refused => return Err(ApiError::Unauthenticated),
    };
    let user = users::find_by_id(&app.db, &claims.sub)
        .await?
        .filter(|user| user.workspace_id == claims.wid)
        .ok_or(ApiError::Unauthenticated)?;
    if !user.is_active {
        return Err(ApiError::BadRequest("Inactive user".to_string()));
    }
    let tokens = issue_tokens(&app, &user, Some(&family)).await?;
    Ok(envelope("Token refreshed", tokens))
}

/// Issues a token pair for `user` (its refresh token in `family`, or in a new one) and records
/// the refresh token; returns the pair as login answers it.
async fn issue_tokens(app: &App, user: &user::Model, family: Option<&str>) -> Result<Value, ApiError> {
    let tokens = app.auth.issue(user, family).map_err(|e| ApiError::Internal(e.to_string()))?;
    let issued = refresh_tokens::Issued {
        id: &tokens.refresh_id,
        family_id: &tokens.family_id,
        user_id: &user.id,
        expires_at: tokens.refresh_expires_at,
    };
    refresh_tokens::record(&app.db, issued).await?;
    Ok(json!({ "access_token": tokens.access_token, "refresh_token": tokens.refresh_token, "token_type": "bearer" }))
}

/// A validated click2call request.
struct Click2CallIn {
    customer_number: String,
    agent_number: String,
    did: Option<String>,
    callback_url: Option<String>,
    transcript: bool,
    transcript_language: Option<String>,
    agent_config: Value,
}

fn parse_click2call(body: &[u8], allow_private_callbacks: bool) -> Result<Click2CallIn, ApiError> {
    let mut fields = BodyFields::new(validate::json_object(body)?);
    let customer_number = fields.required_string("customer_number");
    if let Some(number) = &customer_number
        && !validate::is_phone_number(number)
    {
        fields.error(
            "customer_number",
            format!("String should match pattern '{PHONE_PATTERN}'"),
            "string_pattern_mismatch",
        );
    }
    let agent_number = fields.required_string("agent_number");
    let is_agent_call = agent_number.as_deref().is_some_and(|a| a.starts_with("AGT_"));
    if let Some(agent) = &agent_number {
        let valid = if is_agent_call { validate::is_agent_id(agent) } else { validate::is_phone_number(agent) };
        if !valid {
            fields.error(
                "agent_number",
                format!("String should match pattern '{PHONE_PATTERN}' or be an AGT_ voice-agent id"),
                "string_pattern_mismatch",
            );
        }
    }
    let did = fields.optional_string("did");
    match &did {
        Some(did) if !validate::is_phone_number(did) => {
            fields.error("did", format!("String should match pattern '{PHONE_PATTERN}'"), "string_pattern_mismatch")
        }
        None if agent_number.is_some() && !is_agent_call => {
            fields.error("did", "Field required: did is required for provider Click2Call", "missing")
        }
        _ => {}
    }
    let callback_url = fields.optional_string("callback_url");
    if let Some(url) = &callback_url {
        match check_callback_url(url, allow_private_callbacks) {
            Ok(_) => {}
            Err(UrlRefusal::NotHttp) => {
                fields.error("callback_url", "URL should be a valid http or https URL", "url_parsing")
            }
            Err(UrlRefusal::Private) => fields.error(
                "callback_url",
                "Value error, callback_url must not point at a private or loopback address",
                "value_error",
            ),
        }
    }
    let transcript = fields.optional_bool("transcript", false);
    let transcript_language = fields.optional_string("transcript_language");
    if let Some(language) = &transcript_language
        && !validate::is_language_tag(language)
    {
        fields.error(
            "transcript_language",
            "Value error, expected a language code such as hi, en or hi-en",
            "value_error",
        );
    }
    let agent_config = fields.optional_object("agent_config");
    fields.finish()?;
    Ok(Click2CallIn {
        customer_number: customer_number.unwrap_or_default(),
        agent_number: agent_number.unwrap_or_default(),
        did,
        callback_url,
        transcript,
        transcript_language,
        agent_config: if is_agent_call { agent_config } else { json!({}) },
    })
}

/// Returns the SHA-256 of a request body's canonical JSON (object keys sorted), so the same
/// request written differently still matches its Idempotency-Key.
fn request_hash(body: &[u8]) -> String {
    use sha2::Digest;
    let canonical = serde_json::from_slice::<Value>(body).map(|v| v.to_string()).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// Checks an `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::field(
            "header",
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            "value_error",
        ));
    }
    Ok(())
}

/// `POST /api/calls/click2call`: stores the call, starts its actor and returns before any carrier
/// work. With an `Idempotency-Key`, the same key and request replay the first response.
pub async fn click2call(
    app: Arc<App>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = app.auth.authenticate(&app.db, authorization.as_deref()).await?;
    if let Some(key) = &idempotency_key {
        check_idempotency_key(key)?;
    }
    let request = parse_click2call(&body, app.config.allow_private_callbacks)?;
    if app.is_draining() {
        return Err(ApiError::Unavailable("Server is shutting down, retry later".to_string()));
    }
    // Admission reads the live counters: with them unavailable no new call is taken.
    if let Err(e) = app.counters.live_calls("all").await {
        warn!(error = %e, "live counters unavailable; refusing new calls");
        return Err(ApiError::Unavailable("Live-call counters unavailable, retry later".to_string()));
    }
    let call_type =
        if request.agent_number.starts_with("AGT_") { CallType::AgentTelephony } else { CallType::ClickToCall };
    // An agent call carries the agent's current config, rendered with the call's variables.
    let agent_config = match call_type {
        CallType::AgentTelephony => {
            super::agents::call_config(&app.db, &user.id, &request.agent_number, &request.agent_config).await?
        }
        CallType::ClickToCall => request.agent_config,
    };
    // The DID's carrier account places the call (an agent call may take its agent's number).
    let route = app.carriers.route(&user.workspace_id, request.did.as_deref(), &request.agent_number);
    let record = CallRecord {
        id: ids::new_call_id(),
        workspace_id: user.workspace_id.clone(),
        user_id: user.id.clone(),
        call_type,
        customer_number: request.customer_number,
        agent_number: request.agent_number,
        did: route.did,
        carrier: route.carrier,
        transcript_enabled: request.transcript,
        transcript_language: request.transcript_language.clone(),
        agent_config,
    };
    let response_body = json!({
        "status_code": 200,
        "message": "Click2Call request created",
        "error": null,
        "data": {
            "call_id": record.id,
            "status": "queued",
            "did": request.did,
            "callback_url": request.callback_url,
            "transcript": request.transcript,
            "transcript_language": request.transcript_language,
        },
    });
    let idempotency = idempotency_key.map(|key| calls::IdempotentRequest {
        key,
        request_hash: request_hash(&body),
        response_status: 200,
        response_body: response_body.to_string(),
    });
    // The call is stored already dialing: its row and its first transition are one write, and
    // its actor starts by running that transition's effects (count it live, place it).
    let created = fsm::create(call_type, record.transcript_enabled, Utc::now(), &app.call_policy);
    let row = calls::new_row(&record, request.callback_url.clone(), &created.next);
    let key = idempotency.as_ref().map(|request| (request.key.clone(), request.request_hash.clone()));
    let creation = match app.writer.write(WriteOp::InsertCall { row, idempotency }).await {
        Ok(WriteOutcome::Created(creation)) => creation,
        Ok(WriteOutcome::Done) => Creation::Created,
        // Another node stored the same key first: answer as it did.
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) && key.is_some() => {
            let (key, hash) = key.unwrap_or_default();
            match calls::find_idempotency_key(&app.db, &user.workspace_id, &key).await? {
                Some(existing) => calls::replay_or_reuse(existing, &hash),
                None => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    match creation {
        Creation::Created => {}
        Creation::Replay { call_id, response_status, response_body } => {
            info!(call.id = %call_id, "idempotent replay");
            let body: Value = serde_json::from_str(&response_body).map_err(|e| ApiError::Internal(e.to_string()))?;
            let status = StatusCode::from_u16(u16::try_from(response_status).unwrap_or(200)).unwrap_or(StatusCode::OK);
            let mut response = json_response(status, &body);
            response.headers_mut().insert("idempotent-replayed", warp::http::HeaderValue::from_static("true"));
            return Ok(response);
        }
        Creation::KeyReused => {
            return Err(ApiError::field(
                "header",
                "Idempotency-Key",
                "Idempotency-Key was already used with a different request",
                "idempotency_key_reused",
            ));
        }
    }
    telemetry::call_created(call_type.as_api_str());
    info!(call.id = %record.id, call.type = call_type.as_api_str(), customer = %ids::mask_number(&record.customer_number), "call created");
    let call_id = record.id.clone();
    if !app.calls.start_call_with(record, created.next, created.effects) {
        // No call supervisor (stopping, or being restarted): at the next start the call is
        // resumed and checked with its carrier (README, Durability).
        warn!(call.id = %call_id, "no call supervisor to start the call; it was not placed");
    }
    Ok(json_response(StatusCode::OK, &response_body))
}

/// Parses `date_from` / `date_to`: RFC 3339 (with `Z`), a naive date-time taken as UTC, or a date.
fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(raw, format) {
            return Some(at.and_utc());
        }
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
}

fn parse_bounded(
    errors: &mut Vec<FieldError>,
    field: &str,
    raw: Option<&String>,
    default: u64,
    max: Option<u64>,
) -> u64 {
    let Some(raw) = raw else { return default };
    match raw.trim().parse::<i64>() {
        Err(_) => {
            errors.push(FieldError::new(
                "query",
                field,
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
            ));
            default
        }
        Ok(n) if n < 1 => {
            errors.push(FieldError::new(
                "query",
                field,
                "Input should be greater than or equal to 1",
                "greater_than_equal",
            ));
            default
        }
        Ok(n) if max.is_some_and(|max| n as u64 > max) => {
            errors.push(FieldError::new(
                "query",
                field,
                format!("Input should be less than or equal to {}", max.unwrap_or_default()),
                "less_than_equal",
            ));
            default
        }
        Ok(n) => n as u64,
    }
}

/// `GET /api/calls/recent`.
pub async fn recent(app: Arc<App>, authorization: Option<String>, query: String) -> Result<Response, ApiError> {
    let user = app.auth.authenticate(&app.db, authorization.as_deref()).await?;
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let text = |name: &str| params.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let mut errors = Vec::new();
    let limit = parse_bounded(&mut errors, "limit", params.get("limit"), 20, Some(200));
    let page = parse_bounded(&mut errors, "page", params.get("page"), 1, Some(1_000_000));
    let mut date = |field: &str| {
        let raw = text(field)?;
        let parsed = parse_datetime(&raw);
        if parsed.is_none() {
            errors.push(FieldError::new("query", field, "Input should be a valid datetime", "datetime_parsing"));
        }
        parsed
    };
    let date_from = date("date_from");
    let date_to = date("date_to");
    if let (Some(from), Some(to)) = (date_from, date_to)
        && from > to
    {
        errors.push(FieldError::new(
            "query",
            "date_to",
            "Value error, date_to must not be before date_from",
            "value_error",
        ));
    }
    let transcript_status = text("transcript_status");
    if let Some(status) = &transcript_status
        && dialplane_actors::fsm::TranscriptStatus::parse(status).is_none()
    {
        errors.push(FieldError::new(
            "query",
            "transcript_status",
            "Input should be 'pending', 'processing', 'ready', 'disabled' or 'failed'",
            "enum",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let filter = RecentFilter {
        status: text("status"),
        call_type: text("call_type"),
        transcript_status,
        customer_number: text("customer_number"),
        agent_number: text("agent_number"),
        did: text("did"),
        date_from,
        date_to,
    };
    let result = calls::recent(&app.db, &user.workspace_id, &user.id, &filter, limit, page).await?;
    let now = Utc::now();
    let items: Vec<Value> =
        result.calls.iter().map(|(call, t)| call_view::recent_item(call, t.as_ref(), &app.signer, now)).collect();
    Ok(envelope(
        "Recent call logs fetched",
        json!({
            "total": result.total,
            "page": page,
            "limit": limit,
            "has_more": page.saturating_mul(limit) < result.total,
            "filters": {
                "status": filter.status,
                "call_type": filter.call_type,
                "transcript_status": filter.transcript_status,
                "customer_number": filter.customer_number,
                "agent_number": filter.agent_number,
                "did": filter.did,
                "date_from": text("date_from"),
                "date_to": text("date_to"),
            },
            "calls": items,
        }),
    ))
}

/// `GET /api/calls/{call_id}/transcript`.
pub async fn transcript(app: Arc<App>, authorization: Option<String>, call_id: String) -> Result<Response, ApiError> {
    let user = app.auth.authenticate(&app.db, authorization.as_deref()).await?;
    let call = calls::find(&app.db, &call_id).await?.ok_or_else(|| ApiError::NotFound("Call not found".to_string()))?;
    if call.workspace_id != user.workspace_id || call.user_id != user.id {
        return Err(ApiError::Forbidden("Not authorized to access this call".to_string()));
    }
    let transcript =
        if call.transcript_status == "ready" { calls::find_transcript(&app.db, &call.id).await? } else { None };
    let data = call_view::compact(&call, transcript.as_ref(), &app.signer, Utc::now());
    Ok(envelope(call_view::transcript_message(&call.transcript_status), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(body: Value) -> Vec<(String, String)> {
        match parse_click2call(body.to_string().as_bytes(), false) {
            Ok(_) => vec![],
            Err(ApiError::Validation(errors)) => errors.into_iter().map(|e| (e.loc[1].clone(), e.kind)).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn click2call_reports_every_invalid_field() {
        let ok = json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"});
        assert!(errors_of(ok).is_empty());
        assert_eq!(
            errors_of(json!({"agent_number": "918888888888", "did": "919484956750"})),
            [("customer_number".into(), "missing".into())]
        );
        assert_eq!(
            errors_of(json!({"customer_number": "919999999999", "agent_number": "918888888888"})),
            [("did".into(), "missing".into())]
        );
        assert!(
            errors_of(json!({"customer_number": "919999999999", "agent_number": "AGT_bot"})).is_empty(),
            "AI-agent calls need no did"
        );
        let many = errors_of(json!({
            "customer_number": "12", "agent_number": 5, "did": "919484956750",
            "callback_url": "ftp://x", "transcript": "yes", "agent_config": []
        }));
        let fields: Vec<_> = many.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["customer_number", "agent_number", "callback_url", "transcript", "agent_config"]);
        let private = errors_of(json!({
            "customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750",
            "callback_url": "http://127.0.0.1:9/hook"
        }));
        assert_eq!(private, [("callback_url".into(), "value_error".into())]);
    }

    #[test]
    fn dates_accept_z_and_naive_forms() {
        assert!(parse_datetime("2026-04-14T06:50:00Z").is_some());
        assert!(parse_datetime("2026-04-14T06:50:00+05:30").is_some());
        assert!(parse_datetime("2026-04-14T06:50:00").is_some());
        assert!(parse_datetime("2026-04-14").is_some());
        assert!(parse_datetime("yesterday").is_none());
    }
}
