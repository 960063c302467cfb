//! `/v1/carriers` (a workspace's carrier accounts; credentials are write-only) and
//! `/v1/phone-numbers` (DIDs attached to an account, optionally mapped to a voice agent). Every
//! change reloads the carrier directory, so the next call routes by it.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use serde_json::{Map, Value};
use tracing::info;
use warp::http::StatusCode;
use warp::reply::Response;

use super::listing::{caller, no_content, page_of, pagination, query_params};
use super::validate::json_object;
use crate::App;
use crate::carriers::accounts::{self, AccountSettings, Provider};
use crate::error::{ApiError, json_response};
use crate::ids;
use crate::store::entities::{carrier_account, phone_number, user};

/// Only a workspace's owners manage its carrier accounts and numbers.
fn require_owner(user: &user::Model) -> Result<(), ApiError> {
    if matches!(user.role.as_str(), "superuser" | "admin" | "owner") {
        Ok(())
    } else {
        Err(ApiError::Forbidden("Insufficient permissions: only the workspace's owners manage carriers".to_string()))
    }
}

async fn reload(app: &App) -> Result<(), ApiError> {
    app.carriers.reload(&app.db).await.map_err(ApiError::from)
}

fn optional_text(body: &Map<String, Value>, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => Ok(Some(s.trim().to_string())),
        Some(_) => {
            Err(ApiError::field("body", field, format!("must be a string of 1 to {max} characters"), "string_type"))
        }
    }
}

/// `POST /v1/carriers`.
pub async fn create_account(app: Arc<App>, authorization: Option<String>, body: Bytes) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    require_owner(&user)?;
    let body = json_object(&body)?;
    let name = optional_text(&body, "name", 100)?
        .ok_or_else(|| ApiError::field("body", "name", "Field required", "missing"))?;
    let provider = match body.get("provider") {
        Some(Value::String(p)) => Provider::parse(p)
            .ok_or_else(|| ApiError::field("body", "provider", "must be one of twilio, exotel, livekit", "enum"))?,
        _ => {
            return Err(ApiError::field("body", "provider", "Field required (twilio, exotel or livekit)", "missing"));
        }
    };
    let config = body.get("config").cloned().unwrap_or(Value::Object(Map::new()));
    let credentials = body.get("credentials").cloned().unwrap_or(Value::Object(Map::new()));
    let settings = AccountSettings::parse(provider, &config, &credentials)?;
    settings.check_reachable(app.config.allow_private_callbacks)?;
    let now = Utc::now();
    let row = carrier_account::Model {
        id: ids::new_id("car"),
        workspace_id: user.workspace_id.clone(),
        name,
        provider: provider.as_str().to_string(),
        config: settings.public_config().to_string(),
        credentials: settings.credentials().to_string(),
        calls_per_second: accounts::calls_per_second(body.get("calls_per_second"), provider)?,
        callback_token: ids::random_alphanumeric(32),
        created_at: now,
        updated_at: now,
    };
    accounts::insert_account(&app.db, row.clone()).await?;
    reload(&app).await?;
    info!(carrier.id = %row.id, provider = %row.provider, user.id = %user.id, "carrier account created");
    Ok(json_response(StatusCode::CREATED, &accounts::account_view(&row)))
}

/// `GET /v1/carriers`.
pub async fn list_accounts(app: Arc<App>, authorization: Option<String>, query: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let (page, page_size) = pagination(&query)?;
    let (rows, total) = accounts::list_accounts(&app.db, &user.workspace_id, page, page_size).await?;
    Ok(page_of(rows.iter().map(accounts::account_view).collect(), total, page, page_size))
}

async fn account_of(app: &App, user: &user::Model, id: &str) -> Result<carrier_account::Model, ApiError> {
    accounts::find_account(&app.db, &user.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Carrier account not found".to_string()))
}

/// `GET /v1/carriers/{id}`.
pub async fn get_account(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    Ok(json_response(StatusCode::OK, &accounts::account_view(&account_of(&app, &user, &id).await?)))
}

/// `PATCH /v1/carriers/{id}`: `name`, `config` and `credentials` (each replaced whole when
/// given) and `calls_per_second`.
pub async fn update_account(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    require_owner(&user)?;
    let mut row = account_of(&app, &user, &id).await?;
    let body = json_object(&body)?;
    let provider = Provider::parse(&row.provider).ok_or_else(|| ApiError::Internal("unknown provider".into()))?;
    if let Some(given) = body.get("provider")
        && given.as_str() != Some(provider.as_str())
    {
        return Err(ApiError::field(
            "body",
            "provider",
            "provider cannot change; create another account",
            "value_error",
        ));
    }
    if let Some(name) = optional_text(&body, "name", 100)? {
        row.name = name;
    }
    let config = match body.get("config") {
        Some(config) => config.clone(),
        None => serde_json::from_str(&row.config).map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    let credentials = match body.get("credentials") {
        Some(credentials) => credentials.clone(),
        None => serde_json::from_str(&row.credentials).map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    let settings = AccountSettings::parse(provider, &config, &credentials)?;
    settings.check_reachable(app.config.allow_private_callbacks)?;
    // Credentials are only ever sent to the API they were given for: moving the account to
    // another API needs them again, so a caller who never saw them cannot redirect them.
    let before = AccountSettings::of_row(&row)?;
    if before.api_base().0 != settings.api_base().0 && !body.contains_key("credentials") {
        let field = settings.api_base().1;
        return Err(ApiError::field(
            "body",
            "credentials",
            format!("must be given again when {field} changes"),
            "missing",
        ));
    }
    row.config = settings.public_config().to_string();
    row.credentials = settings.credentials().to_string();
    if body.contains_key("calls_per_second") {
        row.calls_per_second = accounts::calls_per_second(body.get("calls_per_second"), provider)?;
    }
    accounts::update_account(&app.db, &row).await?;
    reload(&app).await?;
    let row = account_of(&app, &user, &id).await?;
    info!(carrier.id = %row.id, user.id = %user.id, "carrier account updated");
    Ok(json_response(StatusCode::OK, &accounts::account_view(&row)))
}

/// `DELETE /v1/carriers/{id}`: refused while numbers are attached to the account.
pub async fn delete_account(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    require_owner(&user)?;
    let row = account_of(&app, &user, &id).await?;
    let attached = accounts::count_numbers_of(&app.db, &row.id).await?;
    if attached > 0 {
        return Err(ApiError::Conflict(format!(
            "{attached} phone number(s) still use this carrier account; move or delete them first"
        )));
    }
    let live = accounts::count_unfinished_calls_of(&app.db, &row.id).await?;
    if live > 0 {
        return Err(ApiError::Conflict(format!("{live} call(s) through this carrier account are not finished yet")));
    }
    accounts::delete_account(&app.db, &row.id).await?;
    reload(&app).await?;
    info!(carrier.id = %row.id, user.id = %user.id, "carrier account deleted");
    Ok(no_content())
}

/// Reads `phone_number` as E.164.
fn phone_field(body: &Map<String, Value>, field: &str, default_country: &str) -> Result<String, ApiError> {
    let raw = match body.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::field("body", field, "must be a string", "string_type")),
        None => return Err(ApiError::field("body", field, "Field required", "missing")),
    };
    crate::contacts::phone::normalise(&raw, default_country).map_err(|e| {
        ApiError::field("body", field, format!("must be a phone number in E.164 format: {e}"), "value_error")
    })
}

/// Reads `carrier_id`: an account of the workspace, or null for the sandbox.
async fn carrier_field(app: &App, user: &user::Model, body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("carrier_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => match accounts::find_account(&app.db, &user.workspace_id, id).await? {
            Some(account) => Ok(Some(account.id)),
            None => {
                Err(ApiError::field("body", "carrier_id", "is not a carrier account of this workspace", "value_error"))
            }
        },
        Some(_) => Err(ApiError::field("body", "carrier_id", "must be a string or null", "string_type")),
    }
}

/// Reads `agent_id`: a voice agent of the workspace, or null.
async fn agent_field(app: &App, user: &user::Model, body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("agent_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => match crate::agents::store::find(&app.db, id).await? {
            Some(agent) if agent.workspace_id == user.workspace_id => Ok(Some(agent.agent_id)),
            _ => Err(ApiError::field("body", "agent_id", "is not an agent of this workspace", "value_error")),
        },
        Some(_) => Err(ApiError::field("body", "agent_id", "must be a string or null", "string_type")),
    }
}

fn provider_name(app: &App, row: &phone_number::Model) -> &'static str {
    row.carrier_id.as_deref().map_or("sandbox", |id| app.carriers.provider_of(id))
}

fn number_view(app: &App, row: &phone_number::Model) -> Value {
    accounts::number_view(row, provider_name(app, row))
}

/// Stores a number, answering 409 when the workspace already has it.
async fn insert_number(app: &App, row: phone_number::Model) -> Result<(), ApiError> {
    match accounts::insert_number(&app.db, row).await {
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            Err(ApiError::Conflict("This phone number is already registered in the workspace".to_string()))
        }
        other => other.map_err(ApiError::from),
    }
}

/// `POST /v1/phone-numbers`.
pub async fn create_number(app: Arc<App>, authorization: Option<String>, body: Bytes) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    require_owner(&user)?;
    let body = json_object(&body)?;
    let number = phone_field(&body, "phone_number", &app.config.default_country)?;
    let now = Utc::now();
    let row = phone_number::Model {
        id: ids::new_id("pn"),
        workspace_id: user.workspace_id.clone(),
        phone_number: number,
        carrier_id: carrier_field(&app, &user, &body).await?,
        agent_id: agent_field(&app, &user, &body).await?,
        label: optional_text(&body, "label", 100)?,
        created_at: now,
        updated_at: now,
    };
    insert_number(&app, row.clone()).await?;
    reload(&app).await?;
    info!(phone_number.id = %row.id, user.id = %user.id, "phone number registered");
    Ok(json_response(StatusCode::CREATED, &number_view(&app, &row)))
}

/// `GET /v1/phone-numbers` (`?carrier_id=` filters).
pub async fn list_numbers(app: Arc<App>, authorization: Option<String>, query: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let (page, page_size) = pagination(&query)?;
    let params = query_params(&query);
    let (rows, total) = accounts::list_numbers(
        &app.db,
        &user.workspace_id,
        params.get("carrier_id").map(String::as_str),
        page,
        page_size,
    )
    .await?;
    Ok(page_of(rows.iter().map(|row| number_view(&app, row)).collect(), total, page, page_size))
}

async fn number_of(app: &App, user: &user::Model, id: &str) -> Result<phone_number::Model, ApiError> {
    accounts::find_number(&app.db, &user.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Phone number not found".to_string()))
}

/// `GET /v1/phone-numbers/{id}`.
pub async fn get_number(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = number_of(&app, &user, &id).await?;
    Ok(json_response(StatusCode::OK, &number_view(&app, &row)))
}

/// `PATCH /v1/phone-numbers/{id}`: `carrier_id`, `agent_id` and `label` (null clears them).
pub async fn update_number(
    app: Arc<App>,
    authorization: Option<String>,
    id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    require_owner(&user)?;
    let mut row = number_of(&app, &user, &id).await?;
    let body = json_object(&body)?;
    if body.contains_key("phone_number") {
        return Err(ApiError::field("body", "phone_number", "cannot change; register the new number", "value_error"));
    }
    if body.contains_key("carrier_id") {
        row.carrier_id = carrier_field(&app, &user, &body).await?;
    }
    if body.contains_key("agent_id") {
        row.agent_id = agent_field(&app, &user, &body).await?;
    }
    if body.contains_key("label") {
        row.label = optional_text(&body, "label", 100)?;
    }
    row.updated_at = Utc::now();
    accounts::save_number(&app.db, row.clone()).await?;
    reload(&app).await?;
    Ok(json_response(StatusCode::OK, &number_view(&app, &row)))
}

/// `PUT /v1/phone-numbers/map_agent` (seed 002): maps a number to a voice agent, or unmaps it.
pub async fn map_agent(app: Arc<App>, authorization: Option<String>, body: Bytes) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let body = json_object(&body)?;
    let number = phone_field(&body, "phone_number", &app.config.default_country)?;
    if !body.contains_key("agent_id") {
        return Err(ApiError::field("body", "agent_id", "Field required (null unmaps)", "missing"));
    }
    let mut row = accounts::find_number_by_value(&app.db, &user.workspace_id, &number)
        .await?
        .ok_or_else(|| ApiError::NotFound("Phone number not found".to_string()))?;
    row.agent_id = agent_field(&app, &user, &body).await?;
    row.updated_at = Utc::now();
    accounts::save_number(&app.db, row.clone()).await?;
    reload(&app).await?;
    Ok(json_response(StatusCode::OK, &number_view(&app, &row)))
}

/// `DELETE /v1/phone-numbers/{id}`.
pub async fn delete_number(app: Arc<App>, authorization: Option<String>, id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    require_owner(&user)?;
    let row = number_of(&app, &user, &id).await?;
    accounts::delete_number(&app.db, &row.id).await?;
    reload(&app).await?;
    Ok(no_content())
}
