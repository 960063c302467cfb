//! The `/v1/contacts` and `/v1/dnc` surfaces (seed 003): contacts with E.164 numbers, a timezone
//! given or inferred, and `metadata`; create, get, list, `PATCH`, delete, bulk (JSON) and CSV
//! import (multipart, streamed in bounded memory, with a per-row report); and do-not-call lists per
//! workspace or per campaign.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use serde_json::{Map, Value, json};
use tracing::info;
use warp::http::StatusCode;
use warp::reply::Response;

use super::listing::{caller, no_content, page_of, pagination, query_params};
use super::validate;
use crate::App;
use crate::call_view::iso;
use crate::campaigns::store::{self as campaigns, CampaignContactIn};
use crate::contacts::csv_import::{CsvImporter, RowOutcome};
use crate::contacts::phone;
use crate::contacts::store::{self as contacts, ContactFilter, NewContact};
use crate::error::{ApiError, json_response};
use crate::store::entities::{campaign, contact, dnc_entry, user};

/// Most contacts one bulk request takes.
const MAX_BULK: usize = 10_000;
/// Rejected rows listed in an import report (all are counted).
const MAX_REPORTED_REJECTIONS: usize = 1_000;
/// Imported contacts written per transaction.
const IMPORT_BATCH: usize = 500;

fn view(row: &contact::Model) -> Value {
    json!({
        "id": row.id,
        "phone": row.phone,
        "name": row.name,
        "timezone": row.timezone,
        "metadata": serde_json::from_str::<Value>(&row.variables).unwrap_or_else(|_| json!({})),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    })
}

/// The country national numbers belong to: `?default_country=` or the configured default.
fn default_country(app: &App, params: &HashMap<String, String>) -> Result<String, ApiError> {
    let country = params.get("default_country").cloned().unwrap_or_else(|| app.config.default_country.clone());
    if !phone::is_known_country(&country) {
        return Err(ApiError::field("query", "default_country", format!("unknown country {country:?}"), "value_error"));
    }
    Ok(country.to_uppercase())
}

/// Reads a contact from a JSON object; with `base` (a `PATCH`), fields left out keep their values.
/// Returns the problems, each naming its field.
fn contact_input(
    object: &Map<String, Value>,
    country: &str,
    base: Option<&contact::Model>,
) -> Result<NewContact, Vec<String>> {
    let mut problems = Vec::new();
    let phone = match (object.get("phone"), base) {
        (None | Some(Value::Null), Some(row)) => row.phone.clone(),
        (None | Some(Value::Null), None) => {
            problems.push("phone: field required".to_string());
            String::new()
        }
        (Some(Value::String(raw)), _) => phone::normalise(raw, country).unwrap_or_else(|e| {
            problems.push(format!("phone: {e}"));
            String::new()
        }),
        (Some(_), _) => {
            problems.push("phone: must be a string".to_string());
            String::new()
        }
    };
    let name = match object.get("name") {
        None => base.and_then(|row| row.name.clone()),
        Some(Value::Null) => None,
        Some(Value::String(name)) if name.chars().count() <= 200 => {
            Some(name.trim().to_string()).filter(|n| !n.is_empty())
        }
        Some(_) => {
            problems.push("name: must be a string of at most 200 characters".to_string());
            None
        }
    };
    let timezone = match object.get("timezone") {
        None | Some(Value::Null) => base.and_then(|row| row.timezone.clone()),
        Some(Value::String(tz)) => match tz.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz.name().to_string()),
            Err(_) => {
                problems.push(format!("timezone: unknown timezone {tz:?}; use an IANA name such as Asia/Kolkata"));
                None
            }
        },
        Some(_) => {
            problems.push("timezone: must be a string".to_string());
            None
        }
    };
    let key = if object.contains_key("metadata") { "metadata" } else { "variables" };
    let variables = match object.get(key) {
        None | Some(Value::Null) => base.and_then(|row| serde_json::from_str(&row.variables).ok()).unwrap_or_default(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            problems.push(format!("{key}: must be an object"));
            Map::new()
        }
    };
    if problems.is_empty() { Ok(NewContact { phone, name, timezone, variables }) } else { Err(problems) }
}

fn bad_request(problems: Vec<String>) -> ApiError {
    ApiError::BadRequest(problems.join("; "))
}

/// `POST /v1/contacts`.
pub async fn create(
    app: Arc<App>,
    authorization: Option<String>,
    query: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let country = default_country(&app, &query_params(&query))?;
    let object = validate::json_object(&body)?;
    let new = contact_input(&object, &country, None).map_err(bad_request)?;
    match contacts::create(&app.db, &user.workspace_id, new).await? {
        Ok(row) => Ok(json_response(StatusCode::CREATED, &view(&row))),
        Err(existing) => Err(ApiError::Conflict(format!("A contact with this phone already exists: {}", existing.id))),
    }
}

/// `GET /v1/contacts?page=&page_size=&search=&timezone=`.
pub async fn list(app: Arc<App>, authorization: Option<String>, query: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let (page, page_size) = pagination(&query)?;
    let params = query_params(&query);
    let filter = ContactFilter {
        search: params.get("search").filter(|s| !s.is_empty()).cloned(),
        timezone: params.get("timezone").filter(|s| !s.is_empty()).cloned(),
    };
    let (rows, total) = contacts::list(&app.db, &user.workspace_id, &filter, page, page_size).await?;
    Ok(page_of(rows.iter().map(view).collect(), total, page, page_size))
}

async fn owned(app: &App, user: &user::Model, id: &str) -> Result<contact::Model, ApiError> {
    contacts::find(&app.db, &user.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Contact not found".to_string()))
}

/// `GET /v1/contacts/{id}`.
pub async fn get(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    Ok(json_response(StatusCode::OK, &view(&owned(&app, &user, &id).await?)))
}

/// `PATCH /v1/contacts/{id}`.
pub async fn update(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    query: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let country = default_country(&app, &query_params(&query))?;
    let mut row = owned(&app, &user, &id).await?;
    let object = validate::json_object(&body)?;
    let changed = contact_input(&object, &country, Some(&row)).map_err(bad_request)?;
    if changed.phone != row.phone
        && let Some(other) = contacts::find_by_phone(&app.db, &user.workspace_id, &changed.phone).await?
    {
        return Err(ApiError::Conflict(format!("A contact with this phone already exists: {}", other.id)));
    }
    row.phone = changed.phone;
    row.name = changed.name;
    row.timezone = changed.timezone;
    row.variables = Value::Object(changed.variables).to_string();
    let row = contacts::save(&app.db, row).await?;
    Ok(json_response(StatusCode::OK, &view(&row)))
}

/// `DELETE /v1/contacts/{id}`.
pub async fn delete(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = owned(&app, &user, &id).await?;
    contacts::delete(&app.db, &row.id).await?;
    Ok(no_content())
}

/// `POST /v1/contacts/bulk`: a JSON array of contacts (or `{"contacts": [...]}`); each valid one is
/// created or merged into the contact with its number, each invalid one reported by index.
pub async fn bulk(
    app: Arc<App>,
    authorization: Option<String>,
    query: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let country = default_country(&app, &query_params(&query))?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: not valid JSON: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("contacts") {
            Some(Value::Array(items)) => items,
            _ => return Err(ApiError::BadRequest("body: expected a list of contacts".to_string())),
        },
        _ => return Err(ApiError::BadRequest("body: expected a list of contacts".to_string())),
    };
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(ApiError::BadRequest(format!("body: expected 1 to {MAX_BULK} contacts, got {}", items.len())));
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let parsed = match item.as_object() {
            Some(object) => contact_input(object, &country, None),
            None => Err(vec!["must be an object".to_string()]),
        };
        match parsed {
            Ok(contact) => accepted.push(contact),
            Err(problems) => rejected.push(json!({ "index": index, "reason": problems.join("; ") })),
        }
    }
    let upserted = contacts::upsert_many(&app.db, &user.workspace_id, &accepted).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "total": items.len(),
            "accepted": accepted.len(),
            "created": upserted.created,
            "merged": upserted.merged,
            "rejected": rejected,
        }),
    ))
}

/// `POST /v1/contacts/import?default_country=`: a multipart upload whose `file` part is a CSV file,
/// read as it arrives. The report says, for the file's data rows, how many were accepted (created
/// or merged) and which were rejected, with row number and reason: accepted + rejected = rows.
pub async fn import(
    app: Arc<App>,
    authorization: Option<String>,
    query: String,
    form: warp::multipart::FormData,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    import_form(&app, &user, &query, form, None).await
}

/// Imports the `file` part of a multipart form into the contact book and, when given, a campaign.
pub async fn import_form(
    app: &App,
    user: &user::Model,
    query: &str,
    form: warp::multipart::FormData,
    campaign: Option<&campaign::Model>,
) -> Result<Response, ApiError> {
    let country = default_country(app, &query_params(query))?;
    let mut form = Box::pin(form);
    while let Some(part) = form.next().await {
        let part = part.map_err(|e| ApiError::BadRequest(format!("file: the upload could not be read: {e}")))?;
        if part.name() == "file" {
            let report = import_stream(app, user, &country, part.stream(), campaign).await?;
            info!(user.id = %user.id, rows = report["rows"].as_u64(), "contacts imported");
            return Ok(json_response(StatusCode::OK, &report));
        }
    }
    Err(ApiError::BadRequest("file: field required (a multipart part named \"file\")".to_string()))
}

async fn import_stream<B: Buf>(
    app: &App,
    user: &user::Model,
    country: &str,
    stream: impl Stream<Item = Result<B, warp::Error>>,
    campaign: Option<&campaign::Model>,
) -> Result<Value, ApiError> {
    let mut importer = CsvImporter::new(country);
    let mut stream = Box::pin(stream);
    let mut outcomes = Vec::new();
    let mut tally = Tally { campaign: campaign.cloned(), ..Tally::default() };
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::BadRequest(format!("file: the upload could not be read: {e}")))?;
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let len = piece.len();
            importer.feed(piece, &mut outcomes).map_err(|e| ApiError::BadRequest(format!("file: {e}")))?;
            chunk.advance(len);
        }
        if outcomes.len() >= IMPORT_BATCH {
            tally.store(app, &user.workspace_id, std::mem::take(&mut outcomes)).await?;
        }
    }
    let rows = importer.finish(&mut outcomes).map_err(|e| ApiError::BadRequest(format!("file: {e}")))?;
    tally.store(app, &user.workspace_id, outcomes).await?;
    Ok(json!({
        "rows": rows,
        "accepted": tally.created + tally.merged,
        "created": tally.created,
        "merged": tally.merged,
        "rejected_count": tally.rejected_count,
        "rejected": tally.rejected,
        "rejected_truncated": tally.rejected_count > tally.rejected.len(),
        "added_to_campaign": campaign.map(|_| tally.added_to_campaign),
    }))
}

/// Running totals of an import.
#[derive(Default)]
struct Tally {
    created: usize,
    merged: usize,
    rejected_count: usize,
    rejected: Vec<Value>,
    /// The campaign the imported contacts are also added to.
    campaign: Option<campaign::Model>,
    added_to_campaign: usize,
}

impl Tally {
    async fn store(&mut self, app: &App, workspace_id: &str, outcomes: Vec<RowOutcome>) -> Result<(), ApiError> {
        let mut batch = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                RowOutcome::Accepted(c) | RowOutcome::Merged(c) => batch.push(NewContact {
                    phone: c.phone,
                    name: c.name,
                    timezone: c.timezone,
                    variables: c.variables,
                }),
                RowOutcome::Rejected { row, reason } => {
                    self.rejected_count += 1;
                    if self.rejected.len() < MAX_REPORTED_REJECTIONS {
                        self.rejected.push(json!({ "row": row, "reason": reason }));
                    }
                }
            }
        }
        let upserted = contacts::upsert_many(&app.db, workspace_id, &batch).await?;
        self.created += upserted.created;
        self.merged += upserted.merged;
        if let Some(campaign) = &self.campaign {
            let adding: Vec<CampaignContactIn> = batch
                .into_iter()
                .map(|c| CampaignContactIn {
                    contact_id: None,
                    phone: c.phone,
                    name: c.name,
                    timezone: c.timezone,
                    variables: c.variables,
                })
                .collect();
            self.added_to_campaign += campaigns::add_contacts(&app.db, campaign, &adding).await?;
        }
        Ok(())
    }
}

fn dnc_view(row: &dnc_entry::Model) -> Value {
    json!({
        "phone": row.phone,
        "campaign_id": (!row.campaign_id.is_empty()).then_some(&row.campaign_id),
        "reason": row.reason,
        "created_at": iso(row.created_at),
    })
}

/// Reads `campaign_id` of a DNC request (absent: the workspace's list).
fn dnc_list(object: &Map<String, Value>, params: &HashMap<String, String>) -> Result<String, ApiError> {
    match object.get("campaign_id").or(None) {
        Some(Value::String(id)) => Ok(id.clone()),
        Some(Value::Null) | None => Ok(params.get("campaign_id").cloned().unwrap_or_default()),
        Some(_) => Err(ApiError::BadRequest("campaign_id: must be a string".to_string())),
    }
}

/// `POST /v1/dnc`: `{phone, campaign_id?, reason?}` → 201 when added, 200 when already listed.
pub async fn add_dnc(
    app: Arc<App>,
    authorization: Option<String>,
    query: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let params = query_params(&query);
    let country = default_country(&app, &params)?;
    let object = validate::json_object(&body)?;
    let phone = match object.get("phone") {
        Some(Value::String(raw)) => {
            phone::normalise(raw, &country).map_err(|e| ApiError::BadRequest(format!("phone: {e}")))?
        }
        _ => return Err(ApiError::BadRequest("phone: field required".to_string())),
    };
    let list = dnc_list(&object, &params)?;
    let reason = object.get("reason").and_then(Value::as_str);
    let added = contacts::add_dnc(&app.db, &user.workspace_id, &list, std::slice::from_ref(&phone), reason).await?;
    let status = if added > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json_response(
        status,
        &json!({ "phone": phone, "campaign_id": (!list.is_empty()).then_some(list), "added": added > 0 }),
    ))
}

/// `POST /v1/dnc/bulk`: `{phones: [...], campaign_id?, reason?}`.
pub async fn bulk_dnc(
    app: Arc<App>,
    authorization: Option<String>,
    query: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let params = query_params(&query);
    let country = default_country(&app, &params)?;
    let object = validate::json_object(&body)?;
    let Some(Value::Array(items)) = object.get("phones") else {
        return Err(ApiError::BadRequest("phones: field required, a list of phone numbers".to_string()));
    };
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(ApiError::BadRequest(format!("phones: expected 1 to {MAX_BULK} numbers, got {}", items.len())));
    }
    let list = dnc_list(&object, &params)?;
    let mut phones = Vec::new();
    let mut rejected = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match item.as_str().map(|raw| phone::normalise(raw, &country)) {
            Some(Ok(phone)) => phones.push(phone),
            Some(Err(e)) => rejected.push(json!({ "index": index, "reason": e.to_string() })),
            None => rejected.push(json!({ "index": index, "reason": "must be a string" })),
        }
    }
    let reason = object.get("reason").and_then(Value::as_str);
    let added = contacts::add_dnc(&app.db, &user.workspace_id, &list, &phones, reason).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "total": items.len(), "added": added, "already_listed": phones.len() - added, "rejected": rejected }),
    ))
}

/// `GET /v1/dnc?campaign_id=&page=&page_size=`.
pub async fn list_dnc(app: Arc<App>, authorization: Option<String>, query: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let (page, page_size) = pagination(&query)?;
    let list = query_params(&query).get("campaign_id").cloned().unwrap_or_default();
    let (rows, total) = contacts::list_dnc(&app.db, &user.workspace_id, &list, page, page_size).await?;
    Ok(page_of(rows.iter().map(dnc_view).collect(), total, page, page_size))
}

/// `DELETE /v1/dnc/{phone}?campaign_id=`.
pub async fn remove_dnc(
    app: Arc<App>,
    authorization: Option<String>,
    raw_phone: String,
    query: String,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let params = query_params(&query);
    let country = default_country(&app, &params)?;
    let decoded = percent_decode(&raw_phone);
    let phone = phone::normalise(&decoded, &country).map_err(|e| ApiError::BadRequest(format!("phone: {e}")))?;
    let list = params.get("campaign_id").cloned().unwrap_or_default();
    if !contacts::remove_dnc(&app.db, &user.workspace_id, &list, &phone).await? {
        return Err(ApiError::NotFound("Number is not on the do-not-call list".to_string()));
    }
    Ok(no_content())
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
