//! The `/v1/campaigns` surface (seeds 002–004): create, list, get, update, delete; launch, pause,
//! resume and stop (repeating one is a no-op answered 200 with no event); statistics and live
//! status; and adding contacts from the contact book or inline.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tracing::info;
use warp::http::StatusCode;
use warp::reply::Response;

use super::listing::{caller, no_content, page_of, pagination};
use super::validate;
use crate::App;
use crate::call_view::iso;
use crate::campaigns::settings::{self, Settings};
use crate::campaigns::store::{self as campaigns, CampaignContactIn, Transition};
use crate::contacts::phone;
use crate::contacts::store as contacts;
use crate::error::{ApiError, json_response};
use crate::store::entities::{campaign, user};

/// Most contacts one request adds.
const MAX_ADD: usize = 10_000;

async fn owned(app: &App, user: &user::Model, id: &str) -> Result<campaign::Model, ApiError> {
    campaigns::find(&app.db, &user.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Campaign not found".to_string()))
}

fn view(row: &campaign::Model) -> Value {
    let mut view = campaigns::settings_of(row).view();
    view["id"] = json!(row.id);
    view["name"] = json!(row.name);
    view["state"] = json!(row.state);
    view["created_at"] = json!(iso(row.created_at));
    view["updated_at"] = json!(iso(row.updated_at));
    view["launched_at"] = json!(row.launched_at.map(iso));
    view["finished_at"] = json!(row.finished_at.map(iso));
    view
}

fn name_of(object: &Map<String, Value>, base: Option<&str>) -> Result<String, String> {
    match (object.get("name"), base) {
        (None | Some(Value::Null), Some(name)) => Ok(name.to_string()),
        (Some(Value::String(name)), _) if !name.trim().is_empty() && name.chars().count() <= 200 => {
            Ok(name.trim().to_string())
        }
        (None | Some(Value::Null), None) => Err("name: field required".to_string()),
        _ => Err("name: must be a string of 1 to 200 characters".to_string()),
    }
}

/// `POST /v1/campaigns`.
pub async fn create(app: Arc<App>, authorization: Option<String>, body: Bytes) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let object = validate::json_object(&body)?;
    let name = name_of(&object, None);
    let parsed = settings::read(&object, &Settings::default(), app.config.allow_private_callbacks);
    let (name, settings) = match (name, parsed) {
        (Ok(name), Ok(settings)) => (name, settings),
        (name, parsed) => {
            let problems: Vec<String> = name.err().into_iter().chain(parsed.err().into_iter().flatten()).collect();
            return Err(ApiError::BadRequest(problems.join("; ")));
        }
    };
    let row = campaigns::create(&app.db, &user.workspace_id, &user.id, &name, &settings).await?;
    info!(campaign.id = %row.id, user.id = %user.id, "campaign created");
    Ok(json_response(StatusCode::CREATED, &view(&row)))
}

/// `GET /v1/campaigns`.
pub async fn list(app: Arc<App>, authorization: Option<String>, query: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let (page, page_size) = pagination(&query)?;
    let (rows, total) = campaigns::list(&app.db, &user.workspace_id, page, page_size).await?;
    Ok(page_of(rows.iter().map(view).collect(), total, page, page_size))
}

/// `GET /v1/campaigns/{id}`.
pub async fn get(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    Ok(json_response(StatusCode::OK, &view(&owned(&app, &user, &id).await?)))
}

/// `PATCH` / `PUT /v1/campaigns/{id}`: fields left out keep their values; a running campaign takes
/// new pacing at its next tick. A finished campaign cannot change.
pub async fn update(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = owned(&app, &user, &id).await?;
    if matches!(row.state.as_str(), "completed" | "stopped") {
        return Err(ApiError::Conflict(format!("Campaign is {}; it can no longer change", row.state)));
    }
    let object = validate::json_object(&body)?;
    let name = name_of(&object, Some(&row.name)).map_err(ApiError::BadRequest)?;
    let settings = settings::read(&object, &campaigns::settings_of(&row), app.config.allow_private_callbacks)
        .map_err(|problems| ApiError::BadRequest(problems.join("; ")))?;
    let row = campaigns::update(&app.db, &row, name, &settings)
        .await?
        .ok_or_else(|| ApiError::Conflict("Campaign finished meanwhile; it can no longer change".to_string()))?;
    Ok(json_response(StatusCode::OK, &view(&row)))
}

/// `DELETE /v1/campaigns/{id}`: not while it runs.
pub async fn delete(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = owned(&app, &user, &id).await?;
    if matches!(row.state.as_str(), "scheduled" | "running" | "paused") {
        return Err(ApiError::Conflict(format!("Campaign is {}; stop it before deleting it", row.state)));
    }
    campaigns::delete(&app.db, &row.id).await?;
    Ok(no_content())
}

/// `POST /v1/campaigns/{id}/launch`, `/pause`, `/resume`, `/stop`.
pub async fn act(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    action: &'static str,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let transition = campaigns::transition(&app.db, &app.campaign_events, &user.workspace_id, &id, action)
        .await?
        .ok_or_else(|| ApiError::NotFound("Campaign not found".to_string()))?;
    match transition {
        Transition::Moved(row) => {
            info!(campaign.id = %row.id, action, "campaign state changed");
            app.campaigns.ensure(&row.id);
            Ok(json_response(StatusCode::OK, &view(&row)))
        }
        Transition::Unchanged(row) => Ok(json_response(StatusCode::OK, &view(&row))),
        Transition::Refused(detail) => Err(ApiError::Conflict(detail)),
    }
}

/// `GET /v1/campaigns/{id}/stats`.
pub async fn stats(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = owned(&app, &user, &id).await?;
    Ok(json_response(StatusCode::OK, &campaigns::stats(&app.db, &row.id).await?))
}

/// `GET /v1/campaigns/{id}/status`.
pub async fn status(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = owned(&app, &user, &id).await?;
    Ok(json_response(StatusCode::OK, &campaigns::status(&app.db, &row).await?))
}

/// `POST /v1/campaigns/{id}/contacts`: `{contact_ids: [...]}` from the contact book and/or
/// `{contacts: [{phone, name?, timezone?, metadata?}]}` (also added to the book). A number already
/// in the campaign is skipped; invalid entries are reported.
pub async fn add_contacts(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = owned(&app, &user, &id).await?;
    if matches!(row.state.as_str(), "completed" | "stopped") {
        return Err(ApiError::Conflict(format!("Campaign is {}; it takes no more contacts", row.state)));
    }
    let object = validate::json_object(&body)?;
    let ids: Vec<Value> = object.get("contact_ids").and_then(Value::as_array).cloned().unwrap_or_default();
    let inline: Vec<Value> = object.get("contacts").and_then(Value::as_array).cloned().unwrap_or_default();
    if ids.is_empty() && inline.is_empty() {
        return Err(ApiError::BadRequest("contacts: give contact_ids or contacts (a non-empty list)".to_string()));
    }
    if ids.len() + inline.len() > MAX_ADD {
        return Err(ApiError::BadRequest(format!("contacts: at most {MAX_ADD} per request")));
    }
    let mut adding = Vec::new();
    let mut rejected = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        let found = match id.as_str() {
            Some(id) => contacts::find(&app.db, &user.workspace_id, id).await?,
            None => None,
        };
        match found {
            Some(c) => adding.push(CampaignContactIn {
                contact_id: Some(c.id.clone()),
                variables: serde_json::from_str(&c.variables).unwrap_or_default(),
                phone: c.phone,
                name: c.name,
                timezone: c.timezone,
            }),
            None => rejected.push(json!({ "field": "contact_ids", "index": index, "reason": "Contact not found" })),
        }
    }
    let mut book = Vec::new();
    for (index, item) in inline.iter().enumerate() {
        let Some(entry) = item.as_object() else {
            rejected.push(json!({ "field": "contacts", "index": index, "reason": "must be an object" }));
            continue;
        };
        let phone =
            entry.get("phone").and_then(Value::as_str).map(|p| phone::normalise(p, &app.config.default_country));
        let timezone = match entry.get("timezone").and_then(Value::as_str) {
            Some(tz) => {
                match tz.parse::<chrono_tz::Tz>() {
                    Ok(tz) => Some(tz.name().to_string()),
                    Err(_) => {
                        rejected.push(json!({ "field": "contacts", "index": index, "reason": format!("unknown timezone {tz:?}") }));
                        continue;
                    }
                }
            }
            None => None,
        };
        match phone {
            Some(Ok(phone)) => {
                let variables = entry.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
                let name = entry.get("name").and_then(Value::as_str).map(str::to_string);
                book.push(contacts::NewContact {
                    phone: phone.clone(),
                    name: name.clone(),
                    timezone: timezone.clone(),
                    variables: variables.clone(),
                });
                adding.push(CampaignContactIn { contact_id: None, phone, name, timezone, variables });
            }
            Some(Err(e)) => {
                rejected.push(json!({ "field": "contacts", "index": index, "reason": format!("phone: {e}") }))
            }
            None => rejected.push(json!({ "field": "contacts", "index": index, "reason": "phone: field required" })),
        }
    }
    if !book.is_empty() {
        contacts::upsert_many(&app.db, &user.workspace_id, &book).await?;
    }
    let added = campaigns::add_contacts(&app.db, &row, &adding).await?;
    Ok(json_response(StatusCode::OK, &json!({ "added": added, "skipped": adding.len() - added, "rejected": rejected })))
}

/// `POST /v1/campaigns/{id}/contacts/import`: a CSV upload (multipart `file`), added to the
/// contact book and to the campaign, with the same per-row report as `/v1/contacts/import`.
pub async fn import_contacts(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    query: String,
    form: warp::multipart::FormData,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = owned(&app, &user, &id).await?;
    if matches!(row.state.as_str(), "completed" | "stopped") {
        return Err(ApiError::Conflict(format!("Campaign is {}; it takes no more contacts", row.state)));
    }
    super::contacts::import_form(&app, &user, &query, form, Some(&row)).await
}
