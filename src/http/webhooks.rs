//! The `/v1/webhooks` surface (seed 004): subscriptions' CRUD, a test event, the attempt log,
//! replay, secret rotation, and the workspace signing secret that signs per-call `callback_url`
//! deliveries. Resources are plain JSON, lists `{items, total, page, page_size, has_next,
//! has_prev}`, errors `{detail, code}` (seed 003).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tracing::info;
use warp::http::StatusCode;
use warp::reply::Response;

use super::listing::{caller, no_content, page_of, pagination};
use super::validate;
use crate::App;
use crate::call_view::iso;
use crate::error::{ApiError, json_response};
use crate::netguard::{self, UrlRefusal};
use crate::store::entities::{user, webhook_attempt, webhook_subscription};
use crate::store::users;
use crate::webhooks::events;
use crate::webhooks::store::{self as webhook_store, SubscriptionFields};

/// Longest a rotated-out secret may keep signing.
const MAX_ROTATION_OVERLAP_S: i64 = 7 * 24 * 3600;
/// Subscriptions a workspace may have.
const MAX_SUBSCRIPTIONS: u64 = 100;

async fn subscription(app: &App, user: &user::Model, id: &str) -> Result<webhook_subscription::Model, ApiError> {
    webhook_store::find(&app.db, &user.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Webhook not found".to_string()))
}

fn view(row: &webhook_subscription::Model) -> Value {
    json!({
        "id": row.id,
        "url": row.url,
        "description": row.description,
        "event_types": serde_json::from_str::<Value>(&row.event_types).unwrap_or_else(|_| json!([])),
        "enabled": row.enabled,
        "state": if row.enabled { "enabled" } else { "disabled" },
        "disabled_reason": row.disabled_reason,
        "disabled_at": row.disabled_at.map(iso),
        "failing_since": row.failing_since.map(iso),
        "previous_secret_expires_at": row.previous_secret_expires_at.filter(|at| *at > Utc::now()).map(iso),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    })
}

fn attempt_view(row: &webhook_attempt::Model) -> Value {
    json!({
        "id": row.id,
        "message_id": row.message_id,
        "event_type": row.event_type,
        "attempt": row.attempt,
        "attempted_at": iso(row.attempted_at),
        "status_code": row.status_code,
        "latency_ms": row.latency_ms,
        "result": row.result,
        "error": row.error,
        "response_excerpt": row.response_excerpt,
    })
}

/// Checks a subscription URL: http(s), and unless private targets are allowed, neither written as
/// nor resolving to a loopback, private, link-local, CGNAT or metadata address.
async fn check_url(app: &App, raw: &str) -> Result<String, String> {
    let url = netguard::check_callback_url(raw, app.config.allow_private_callbacks).map_err(|e| match e {
        UrlRefusal::NotHttp => "must be an http or https URL".to_string(),
        UrlRefusal::Private => "must not point at a private or loopback address".to_string(),
    })?;
    if app.config.allow_private_callbacks {
        return Ok(raw.to_string());
    }
    if let Some(url::Host::Domain(host)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        // A name that does not resolve now is accepted; it is checked again at every connection.
        if let Ok(addrs) = tokio::net::lookup_host((host, port)).await {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.iter().any(|a| !netguard::is_public_ip(a.ip())) {
                return Err(format!("{host} resolves to a private or loopback address"));
            }
        }
    }
    Ok(raw.to_string())
}

/// Reads the subscription fields of a create (`existing` is `None`) or update request.
async fn fields(
    app: &App,
    body: &[u8],
    existing: Option<&webhook_subscription::Model>,
) -> Result<SubscriptionFields, ApiError> {
    let object = validate::json_object(body)?;
    let mut fields = validate::BodyFields::new(object.clone());
    let url = match existing {
        None => fields.required_string("url"),
        Some(row) => Some(fields.optional_string("url").unwrap_or_else(|| row.url.clone())),
    };
    let description = fields.optional_string("description");
    if description.as_ref().is_some_and(|d| d.chars().count() > 500) {
        fields.error("description", "must be at most 500 characters", "string_too_long");
    }
    let enabled = fields.optional_bool("enabled", existing.is_none_or(|row| row.enabled));
    let event_types = event_types(&object, &mut fields, existing);
    let url = match url {
        Some(url) => match check_url(app, &url).await {
            Ok(url) => Some(url),
            Err(msg) => {
                fields.error("url", msg, "value_error");
                None
            }
        },
        None => None,
    };
    fields.finish()?;
    Ok(SubscriptionFields {
        url: url.unwrap_or_default(),
        description: description.or_else(|| existing.map(|row| row.description.clone())).unwrap_or_default(),
        event_types,
        enabled,
    })
}

/// Reads `event_types`: a non-empty list of known event names, `prefix.*` or `*` (default `*`).
fn event_types(
    object: &Map<String, Value>,
    fields: &mut validate::BodyFields,
    existing: Option<&webhook_subscription::Model>,
) -> Vec<String> {
    let patterns = match object.get("event_types") {
        None | Some(Value::Null) => {
            return existing
                .and_then(|row| serde_json::from_str(&row.event_types).ok())
                .unwrap_or_else(|| vec!["*".to_string()]);
        }
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= 50 => items,
        Some(_) => {
            fields.error("event_types", "must be a list of 1 to 50 event types", "list_type");
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(patterns.len());
    for pattern in patterns {
        match pattern.as_str().map(|p| (p, events::check_pattern(p))) {
            Some((p, Ok(()))) => {
                if !out.iter().any(|known| known == p) {
                    out.push(p.to_string());
                }
            }
            Some((_, Err(msg))) => fields.error("event_types", msg, "value_error"),
            None => fields.error("event_types", "every event type must be a string", "string_type"),
        }
    }
    out
}

/// Reloads a subscription into the directory and has its actor follow the change.
async fn changed(app: &App, id: &str) -> Result<(), ApiError> {
    app.webhooks.directory.refresh(&app.db, id).await?;
    app.webhooks.ensure(id);
    Ok(())
}

/// `POST /v1/webhooks`.
pub async fn create(app: Arc<App>, authorization: Option<String>, body: Bytes) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let fields = fields(&app, &body, None).await?;
    if webhook_store::count(&app.db, &user.workspace_id).await? >= MAX_SUBSCRIPTIONS {
        return Err(ApiError::Conflict(format!("A workspace may have at most {MAX_SUBSCRIPTIONS} webhooks")));
    }
    let row = webhook_store::create(&app.db, &user.workspace_id, fields).await?;
    changed(&app, &row.id).await?;
    info!(webhook.id = %row.id, user.id = %user.id, "webhook subscription created");
    let mut body = view(&row);
    body["secret"] = json!(row.secret);
    Ok(json_response(StatusCode::CREATED, &body))
}

/// `GET /v1/webhooks`.
pub async fn list(app: Arc<App>, authorization: Option<String>, query: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let (page, page_size) = pagination(&query)?;
    let (rows, total) = webhook_store::list(&app.db, &user.workspace_id, page, page_size).await?;
    Ok(page_of(rows.iter().map(view).collect(), total, page, page_size))
}

/// `GET /v1/webhooks/{id}`.
pub async fn get(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    Ok(json_response(StatusCode::OK, &view(&subscription(&app, &user, &id).await?)))
}

/// `PUT` and `PATCH /v1/webhooks/{id}`: fields left out keep their values. Enabling a disabled
/// endpoint clears its failure record; its pending messages are delivered again.
pub async fn update(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = subscription(&app, &user, &id).await?;
    let fields = fields(&app, &body, Some(&row)).await?;
    let row = webhook_store::update(&app.db, row, fields).await?;
    changed(&app, &row.id).await?;
    Ok(json_response(StatusCode::OK, &view(&row)))
}

/// `DELETE /v1/webhooks/{id}`: the subscription, its undelivered messages and its log.
pub async fn delete(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = subscription(&app, &user, &id).await?;
    webhook_store::delete(&app.db, &row.id).await?;
    changed(&app, &row.id).await?;
    info!(webhook.id = %row.id, user.id = %user.id, "webhook subscription deleted");
    Ok(no_content())
}

/// `POST /v1/webhooks/{id}/test`: queues a `webhook.test` event for this endpoint alone.
pub async fn test(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = subscription(&app, &user, &id).await?;
    if !row.enabled {
        return Err(ApiError::Conflict("Webhook is disabled; enable it to send a test event".to_string()));
    }
    let endpoint =
        app.webhooks.directory.get(&row.id).ok_or_else(|| ApiError::NotFound("Webhook not found".to_string()))?;
    let event_id = webhook_store::enqueue_test(&app.db, &endpoint).await?;
    app.webhooks.wake(row.id.clone());
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "event_id": event_id, "type": events::TEST_EVENT, "detail": "Test event queued; see the webhook's logs" }),
    ))
}

/// `GET /v1/webhooks/{id}/logs`: delivery attempts, newest first.
pub async fn logs(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    query: String,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = subscription(&app, &user, &id).await?;
    let (page, page_size) = pagination(&query)?;
    let (rows, total) = webhook_store::attempts(&app.db, &row.id, page, page_size).await?;
    Ok(page_of(rows.iter().map(attempt_view).collect(), total, page, page_size))
}

fn timestamp_field(fields: &mut validate::BodyFields, name: &str, value: Option<String>) -> Option<DateTime<Utc>> {
    let raw = value?;
    match DateTime::parse_from_rfc3339(&raw) {
        Ok(at) => Some(at.with_timezone(&Utc)),
        Err(_) => {
            fields.error(name, "must be an RFC 3339 timestamp such as 2026-11-25T09:00:00Z", "datetime_parsing");
            None
        }
    }
}

/// `POST /v1/webhooks/{id}/replay`: `{since, until?}` queues again every message created in that
/// span that is no longer pending; each keeps its `webhook-id`, so receivers can recognise it.
pub async fn replay(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = subscription(&app, &user, &id).await?;
    let mut fields = validate::BodyFields::new(validate::json_object(&body)?);
    let since = fields.required_string("since");
    let since = timestamp_field(&mut fields, "since", since);
    let until = fields.optional_string("until");
    let until = timestamp_field(&mut fields, "until", until);
    if let (Some(since), Some(until)) = (since, until)
        && until <= since
    {
        fields.error("until", "must be after since", "value_error");
    }
    fields.finish()?;
    let since = since.unwrap_or_default();
    let requeued = webhook_store::replay(&app.db, &row.id, since, until).await?;
    app.webhooks.wake(row.id.clone());
    info!(webhook.id = %row.id, requeued, "webhook messages replayed");
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "requeued": requeued, "since": iso(since), "until": until.map(iso) }),
    ))
}

/// `GET /v1/webhooks/{id}/secret`.
pub async fn secret(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = subscription(&app, &user, &id).await?;
    Ok(json_response(StatusCode::OK, &json!({ "secret": row.secret })))
}

/// `POST /v1/webhooks/{id}/secret/rotate`: `{overlap_seconds?}` (default a day, at most a week)
/// during which deliveries carry signatures by both the old and the new secret.
pub async fn rotate_secret(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = subscription(&app, &user, &id).await?;
    let object = if body.is_empty() { Map::new() } else { validate::json_object(&body)? };
    let overlap = match object.get("overlap_seconds") {
        None | Some(Value::Null) => 24 * 3600,
        Some(value) => value.as_i64().filter(|s| (0..=MAX_ROTATION_OVERLAP_S).contains(s)).ok_or_else(|| {
            ApiError::field(
                "body",
                "overlap_seconds",
                format!("must be a whole number of seconds between 0 and {MAX_ROTATION_OVERLAP_S}"),
                "value_error",
            )
        })?,
    };
    let row = webhook_store::rotate_secret(&app.db, row, chrono::Duration::seconds(overlap)).await?;
    changed(&app, &row.id).await?;
    info!(webhook.id = %row.id, user.id = %user.id, "webhook secret rotated");
    Ok(json_response(
        StatusCode::OK,
        &json!({ "secret": row.secret, "previous_secret_expires_at": row.previous_secret_expires_at.map(iso) }),
    ))
}

/// `GET /v1/workspace/signing-secret`: the secret that signs the workspace's per-call
/// `callback_url` deliveries, for its owners (superusers and admins) only.
pub async fn workspace_signing_secret(app: Arc<App>, authorization: Option<String>) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    if !matches!(user.role.as_str(), "superuser" | "admin" | "owner") {
        return Err(ApiError::Forbidden(
            "Insufficient permissions: only the workspace's owners see its signing secret".to_string(),
        ));
    }
    let workspace = users::find_workspace(&app.db, &user.workspace_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Workspace not found".to_string()))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "workspace_id": workspace.id, "signing_secret": workspace.signing_secret }),
    ))
}
