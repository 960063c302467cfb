//! The agent management API of seed 001, path by path: the legacy API-key listing, agent CRUD
//! (owner only), config versions (draft, publish, archive, rollback), render / validate / enhance,
//! call outcomes and infields on the current config, and one service config at a time. Agent and
//! config objects are answered raw, as the seed shows them; outcomes and infields in the envelope.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use serde_json::{Map, Value, json};
use tracing::info;
use warp::http::StatusCode;
use warp::reply::Response;

use super::listing::{caller, query_params};
use super::validate;
use crate::App;
use crate::agents::store::{self as agents, ConfigChange};
use crate::agents::{llm, prompt};
use crate::call_view::iso;
use crate::error::{ApiError, FieldError, json_response};
use crate::ids;
use crate::store::entities::{agent, agent_config, user};

/// Service sections of a config, each replaceable on its own.
const SERVICE_TYPES: [&str; 4] = ["tts_config", "stt_config", "vad_config", "llm_config"];
/// Longest prompt text accepted.
const MAX_TEXT: usize = 20_000;

fn envelope(status: StatusCode, message: &str, data: Value) -> Response {
    json_response(status, &json!({ "status_code": status.as_u16(), "message": message, "error": null, "data": data }))
}

fn raw(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

/// Returns the caller's agent: 404 when unknown, 403 when another user's.
async fn owned(app: &App, user: &user::Model, agent_id: &str) -> Result<agent::Model, ApiError> {
    let agent =
        agents::find(&app.db, agent_id).await?.ok_or_else(|| ApiError::NotFound("Agent not found".to_string()))?;
    if agent.user_id != user.id {
        return Err(ApiError::Forbidden("Not authorized to access this agent".to_string()));
    }
    Ok(agent)
}

fn agent_view(row: &agent::Model) -> Value {
    let team: Value = serde_json::from_str(&row.team).unwrap_or_else(|_| json!([]));
    json!({
        "id": row.id,
        "agent_id": row.agent_id,
        "agent_name": row.agent_name,
        "agent_description": row.agent_description,
        "user_id": row.user_id,
        "organization_id": row.workspace_id,
        "team_size": team.as_array().map_or(0, Vec::len),
        "team": team,
        "is_active": row.is_active,
        "agent_type": row.agent_type,
        "whatsapp_enabled": row.whatsapp_enabled,
        "is_auto": row.is_auto,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "agent_cost": row.agent_cost,
        "livekit_api_key": row.livekit_api_key,
        "livekit_host_url": row.livekit_host_url,
    })
}

fn config_view(config: &agent_config::Model) -> Value {
    let mut view = agents::document(config);
    view.insert("_id".into(), json!(config.id));
    view.insert("agent_id".into(), json!(config.agent_id));
    view.insert("version".into(), json!(config.version));
    view.insert("status".into(), json!(config.status));
    view.insert("is_current".into(), json!(config.is_current));
    view.insert("created_at".into(), json!(iso(config.created_at)));
    view.insert("updated_at".into(), json!(iso(config.updated_at)));
    view.insert("created_by".into(), json!(config.created_by));
    view.insert("updated_by".into(), json!(config.updated_by));
    Value::Object(view)
}

fn field_error<S: AsRef<str>>(loc: &[S], msg: impl Into<String>, kind: &str) -> FieldError {
    FieldError { loc: loc.iter().map(|s| s.as_ref().to_string()).collect(), msg: msg.into(), kind: kind.to_string() }
}

/// Returns the location of `key` inside `loc`.
fn inside(loc: &[&str], key: &str) -> Vec<String> {
    loc.iter().map(|s| s.to_string()).chain([key.to_string()]).collect()
}

/// Checks one service section; returns what is wrong with it.
fn service_problems(kind: &str, value: &Value) -> Vec<String> {
    let Some(object) = value.as_object() else { return vec!["must be an object".to_string()] };
    let mut problems = Vec::new();
    let text = |key: &str, problems: &mut Vec<String>| match object.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        _ => problems.push(format!("{key}: required, a non-empty string")),
    };
    let number =
        |key: &str, range: std::ops::RangeInclusive<f64>, required: bool, problems: &mut Vec<String>| match object
            .get(key)
        {
            None | Some(Value::Null) if !required => {}
            Some(v) if v.as_f64().is_some_and(|n| range.contains(&n)) => {}
            _ => problems.push(format!("{key}: must be a number from {} to {}", range.start(), range.end())),
        };
    let whole = |key: &str, problems: &mut Vec<String>| match object.get(key) {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some() => {}
        _ => problems.push(format!("{key}: must be a whole number, 0 or more")),
    };
    match kind {
        "tts_config" => {
            text("voice_id", &mut problems);
            number("speed", 0.25..=4.0, false, &mut problems);
        }
        "stt_config" => {
            text("provider", &mut problems);
            match object.get("language") {
                Some(Value::String(tag)) if validate::is_language_tag(tag) => {}
                _ => problems.push("language: required, a language tag such as hi or en-IN".to_string()),
            }
        }
        "vad_config" => {
            number("min_silence_duration", 0.0..=10.0, true, &mut problems);
            number("min_speech_duration", 0.0..=10.0, true, &mut problems);
            number("activation_threshold", 0.0..=1.0, true, &mut problems);
        }
        _ => {
            text("provider", &mut problems);
            text("model", &mut problems);
            number("temperature", 0.0..=2.0, false, &mut problems);
            whole("max_tokens", &mut problems);
            whole("context_turns", &mut problems);
        }
    }
    problems
}

/// Default service sections of a new config (seed 001's example values).
fn default_service(kind: &str) -> Value {
    match kind {
        "tts_config" => json!({ "voice_id": "Indus-hi-maya" }),
        "stt_config" => json!({ "provider": "deepgram", "language": "hi" }),
        "vad_config" => {
            json!({ "min_silence_duration": 0.3, "min_speech_duration": 0.4, "activation_threshold": 0.45 })
        }
        _ => {
            json!({ "provider": "groq", "model": "openai/gpt-oss-120b", "temperature": 0, "max_tokens": 0, "context_turns": 0 })
        }
    }
}

/// Reads the fields of a config body found at `loc`. With `base`, fields left out keep the base's
/// values (an edit); without, they take defaults (a new config).
fn config_document(
    body: &Value,
    loc: &[&str],
    base: Option<&Map<String, Value>>,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let Some(object) = body.as_object() else {
        errors.push(field_error(loc, "Input should be a valid dictionary", "dict_type"));
        return Map::new();
    };
    let mut document = base.cloned().unwrap_or_default();
    let at = |key: &str| inside(loc, key);
    for key in ["system_prompt", "starting_instructions", "notes", "agent_type"] {
        match object.get(key) {
            None | Some(Value::Null) => {
                if base.is_none() {
                    document.insert(key.into(), json!(if key == "agent_type" { "generic_alpha" } else { "" }));
                }
            }
            Some(Value::String(s)) if s.chars().count() <= MAX_TEXT => {
                document.insert(key.into(), json!(s));
            }
            Some(Value::String(_)) => {
                errors.push(field_error(&at(key), format!("must be at most {MAX_TEXT} characters"), "string_too_long"))
            }
            Some(_) => errors.push(field_error(&at(key), "Input should be a valid string", "string_type")),
        }
    }
    for key in ["guardrail_ids", "guidelines", "examples", "metadata_schema"] {
        match object.get(key) {
            None | Some(Value::Null) => {
                if base.is_none() {
                    document.insert(key.into(), json!([]));
                }
            }
            Some(Value::Array(items)) => {
                let strings = matches!(key, "guardrail_ids" | "guidelines");
                if strings && items.iter().any(|i| !i.is_string()) {
                    errors.push(field_error(&at(key), "Input should be a list of strings", "list_type"));
                } else if key == "examples" && items.iter().any(|i| !i.is_object()) {
                    errors.push(field_error(&at(key), "Input should be a list of objects", "list_type"));
                } else {
                    document.insert(key.into(), Value::Array(items.clone()));
                }
            }
            Some(_) => errors.push(field_error(&at(key), "Input should be a valid list", "list_type")),
        }
    }
    for problem in prompt::check_schema(object.get("metadata_schema")) {
        errors.push(field_error(&at("metadata_schema"), problem, "value_error"));
    }
    for kind in SERVICE_TYPES {
        match object.get(kind) {
            None | Some(Value::Null) => {
                if base.is_none() {
                    document.insert(kind.into(), default_service(kind));
                }
            }
            Some(value) => {
                let problems = service_problems(kind, value);
                if problems.is_empty() {
                    document.insert(kind.into(), value.clone());
                }
                for problem in problems {
                    errors.push(field_error(&at(kind), problem, "value_error"));
                }
            }
        }
    }
    for key in ["call_outcomes", "call_infields"] {
        document.entry(key).or_insert_with(|| json!([]));
    }
    document
}

/// The two kinds of typed field an agent config carries.
#[derive(Clone, Copy)]
enum FieldKind {
    Outcome,
    Infield,
}

impl FieldKind {
    fn key(self) -> &'static str {
        match self {
            FieldKind::Outcome => "call_outcomes",
            FieldKind::Infield => "call_infields",
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            FieldKind::Outcome => "outcome",
            FieldKind::Infield => "field",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            FieldKind::Outcome => "Call outcome",
            FieldKind::Infield => "Call infield",
        }
    }
}

/// Reads an outcome or infield definition; with `base`, fields left out keep the base's values.
fn field_definition(
    kind: FieldKind,
    body: &Value,
    loc: &[&str],
    base: Option<&Value>,
    errors: &mut Vec<FieldError>,
) -> Value {
    let p = kind.prefix();
    let (name, kind_key, enum_key) = (format!("{p}_name"), format!("{p}_type"), format!("{p}_enum"));
    let Some(object) = body.as_object() else {
        errors.push(field_error(loc, "Input should be a valid dictionary", "dict_type"));
        return Value::Null;
    };
    let mut out = base.and_then(Value::as_object).cloned().unwrap_or_default();
    for (key, value) in object {
        out.insert(key.clone(), value.clone());
    }
    let at = |key: &str| inside(loc, key);
    let required_text = |key: &str, errors: &mut Vec<FieldError>| match out.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 200 => {}
        None | Some(Value::Null) => errors.push(field_error(&at(key), "Field required", "missing")),
        _ => errors.push(field_error(
            &at(key),
            "Input should be a non-empty string of at most 200 characters",
            "string_type",
        )),
    };
    required_text(&name, errors);
    if let FieldKind::Outcome = kind {
        match out.get("outcome_description") {
            Some(Value::String(_)) => {}
            None | Some(Value::Null) => {
                errors.push(field_error(&at("outcome_description"), "Field required", "missing"))
            }
            _ => errors.push(field_error(&at("outcome_description"), "Input should be a valid string", "string_type")),
        }
    }
    let field_type = out.get(&kind_key).and_then(Value::as_str).map(str::to_uppercase);
    match &field_type {
        Some(t) if prompt::FIELD_TYPES.contains(&t.as_str()) => {
            out.insert(kind_key.clone(), json!(t));
        }
        Some(_) | None => errors.push(field_error(
            &at(&kind_key),
            format!("Input should be one of {}", prompt::FIELD_TYPES.join(", ")),
            "enum",
        )),
    }
    let choices = out.get(&enum_key).cloned().unwrap_or(Value::Null);
    let valid_choices = choices
        .as_array()
        .is_some_and(|c| !c.is_empty() && c.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty())));
    if field_type.as_deref() == Some("FIXED") && !valid_choices {
        errors.push(field_error(&at(&enum_key), "a FIXED type needs a non-empty list of choices", "value_error"));
    } else if !choices.is_null() && !valid_choices {
        errors.push(field_error(&at(&enum_key), "Input should be null or a non-empty list of strings", "list_type"));
    }
    out.entry(enum_key).or_insert(Value::Null);
    if !out.get("is_visible").is_some_and(Value::is_boolean) {
        errors.push(field_error(&at("is_visible"), "Field required: a boolean", "bool_type"));
    }
    Value::Object(out)
}

fn finish(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(errors)) }
}

fn body_json(body: &[u8]) -> Result<Value, ApiError> {
    validate::json_object(body).map(Value::Object)
}

/// `POST /api/agents` (legacy): the agents of the user whose API key is in the body.
pub async fn legacy_list(app: Arc<App>, body: Bytes) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = body["api_key"].as_str().map(str::trim).filter(|k| !k.is_empty());
    let Some(key) = key else { return Err(ApiError::BadRequest("api_key is required".to_string())) };
    let user = agents::user_by_api_key(&app.db, key)
        .await?
        .ok_or_else(|| ApiError::BadRequest("Invalid API key".to_string()))?;
    let rows = agents::list(&app.db, &user.id).await?;
    Ok(envelope(StatusCode::OK, "Agents fetched", json!({ "agents": rows.iter().map(agent_view).collect::<Vec<_>>() })))
}

/// `POST /api/developer/api-key`: issues the caller's legacy API key, shown once (stored hashed).
pub async fn issue_api_key(app: Arc<App>, authorization: Option<String>) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let key = agents::issue_api_key(&app.db, &user.id).await?;
    info!(user.id = %user.id, "legacy API key issued");
    Ok(envelope(StatusCode::OK, "API key created; it is shown only once", json!({ "api_key": key })))
}

/// `POST /api/agents/create`.
pub async fn create(app: Arc<App>, authorization: Option<String>, body: Bytes) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let body = body_json(&body)?;
    let mut errors = Vec::new();
    let agent_in = &body["agent_in"];
    if !agent_in.is_object() {
        errors.push(field_error(&["body", "agent_in"], "Field required", "missing"));
    }
    let name = agent_in["agent_name"].as_str().map(str::trim).unwrap_or_default().to_string();
    if agent_in.is_object() && (name.is_empty() || name.chars().count() > 100) {
        errors.push(field_error(&["body", "agent_in", "agent_name"], "Field required: 1 to 100 characters", "missing"));
    }
    let agent_type = agent_in["agent_type"].as_str().unwrap_or("OUTBOUND").to_uppercase();
    if !matches!(agent_type.as_str(), "INBOUND" | "OUTBOUND") {
        errors.push(field_error(
            &["body", "agent_in", "agent_type"],
            "Input should be 'INBOUND' or 'OUTBOUND'",
            "enum",
        ));
    }
    let team = match &agent_in["team"] {
        Value::Null => json!([]),
        Value::Array(items) => Value::Array(items.clone()),
        _ => {
            errors.push(field_error(&["body", "agent_in", "team"], "Input should be a valid list", "list_type"));
            json!([])
        }
    };
    let mut document = Map::new();
    match body.get("agent_config") {
        None | Some(Value::Null) => errors.push(field_error(&["body", "agent_config"], "Field required", "missing")),
        Some(config) => document = config_document(config, &["body", "agent_config"], None, &mut errors),
    }
    for (key, kind) in [("call_outcome", FieldKind::Outcome), ("call_infield", FieldKind::Infield)] {
        if let Some(definition) = body.get(key).filter(|v| !v.is_null()) {
            let item = field_definition(kind, definition, &["body", key], None, &mut errors);
            document.insert(kind.key().into(), json!([item]));
        }
    }
    finish(errors)?;
    if agents::name_taken(&app.db, &user.id, &name, None).await? {
        return Err(ApiError::BadRequest("Agent with this name already exists".to_string()));
    }
    let now = Utc::now();
    let row = agent::Model {
        agent_id: agents::new_agent_id(),
        id: ids::random_lower_alphanumeric(24),
        workspace_id: user.workspace_id.clone(),
        user_id: user.id.clone(),
        agent_name: name,
        agent_description: agent_in["agent_description"].as_str().unwrap_or_default().to_string(),
        team: team.to_string(),
        is_active: true,
        agent_type,
        whatsapp_enabled: agent_in["whatsapp_enabled"].as_bool().unwrap_or(false),
        is_auto: agent_in["is_auto"].as_bool().unwrap_or(true),
        agent_cost: 5.0,
        livekit_api_key: None,
        livekit_host_url: None,
        created_at: now,
        updated_at: now,
    };
    let (row, _) = agents::create(&app.db, row, document).await?;
    info!(agent.id = %row.agent_id, user.id = %user.id, "agent created");
    Ok(raw(agent_view(&row)))
}

/// `GET /api/agents/{agent_id}`.
pub async fn get(app: Arc<App>, authorization: Option<String>, agent_id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    Ok(raw(agent_view(&owned(&app, &user, &agent_id).await?)))
}

/// `PATCH /api/agents/{agent_id}`: any editable subset of the agent.
pub async fn update(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let mut row = owned(&app, &user, &agent_id).await?;
    let mut fields = validate::BodyFields::new(validate::json_object(&body)?);
    if let Some(name) = fields.optional_string("agent_name") {
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            fields.error("agent_name", "String should have 1 to 100 characters", "string_too_long");
        } else {
            row.agent_name = name;
        }
    }
    if let Some(description) = fields.optional_string("agent_description") {
        row.agent_description = description;
    }
    if let Some(agent_type) = fields.optional_string("agent_type") {
        match agent_type.to_uppercase().as_str() {
            t @ ("INBOUND" | "OUTBOUND") => row.agent_type = t.to_string(),
            _ => fields.error("agent_type", "Input should be 'INBOUND' or 'OUTBOUND'", "enum"),
        }
    }
    row.is_active = fields.optional_bool("is_active", row.is_active);
    row.is_auto = fields.optional_bool("is_auto", row.is_auto);
    row.whatsapp_enabled = fields.optional_bool("whatsapp_enabled", row.whatsapp_enabled);
    let object = validate::json_object(&body)?;
    match object.get("team") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => row.team = Value::Array(items.clone()).to_string(),
        Some(_) => fields.error("team", "Input should be a valid list", "list_type"),
    }
    fields.finish()?;
    if agents::name_taken(&app.db, &user.id, &row.agent_name, Some(&row.agent_id)).await? {
        return Err(ApiError::BadRequest("Agent with this name already exists".to_string()));
    }
    let row = agents::update(&app.db, row).await?;
    Ok(raw(agent_view(&row)))
}

/// `DELETE /api/agents/{agent_id}`.
pub async fn delete(app: Arc<App>, authorization: Option<String>, agent_id: String) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let row = owned(&app, &user, &agent_id).await?;
    agents::delete(&app.db, &row.agent_id).await?;
    info!(agent.id = %row.agent_id, user.id = %user.id, "agent deleted");
    Ok(raw(json!({ "message": "Agent deleted successfully" })))
}

fn query_bool(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
        Some(_) => Err(ApiError::field("query", name, "Input should be a valid boolean", "bool_parsing")),
    }
}

fn query_number(params: &HashMap<String, String>, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
            ApiError::field("query", name, format!("Input should be a whole number from 0 to {max}"), "int_parsing")
        }),
    }
}

fn version_number(raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::field(
            "path",
            "version",
            "Input should be a valid integer, unable to parse string as an integer",
            "int_parsing",
        )
    })
}

fn change_error(e: ConfigChange) -> ApiError {
    match e {
        ConfigChange::NotFound => ApiError::NotFound("Config version not found".to_string()),
        ConfigChange::Refused(message) => ApiError::BadRequest(message),
        ConfigChange::Db(e) => e.into(),
    }
}

/// `POST /api/agents/{agent_id}/configs?publish=`.
pub async fn create_config(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    query: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    let publish = query_bool(&query_params(&query), "publish")?;
    let body = body_json(&body)?;
    let mut errors = Vec::new();
    let document = config_document(&body, &["body"], None, &mut errors);
    finish(errors)?;
    let config =
        agents::add_version(&app.db, &agent.agent_id, &document, publish, &user.id).await.map_err(change_error)?;
    Ok(raw(config_view(&config)))
}

/// `GET /api/agents/{agent_id}/configs?status_filter=&skip=&limit=`.
pub async fn list_configs(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    query: String,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    let params = query_params(&query);
    let status = params.get("status_filter").map(String::as_str);
    if let Some(status) = status
        && ![agents::DRAFT, agents::PUBLISHED, agents::ARCHIVED].contains(&status)
    {
        return Err(ApiError::field(
            "query",
            "status_filter",
            "Input should be 'draft', 'published' or 'archived'",
            "enum",
        ));
    }
    let skip = query_number(&params, "skip", 0, u64::from(u32::MAX))?;
    let limit = query_number(&params, "limit", 100, 1000)?;
    let configs = agents::versions(&app.db, &agent.agent_id, status, skip, limit).await?;
    Ok(raw(Value::Array(configs.iter().map(config_view).collect())))
}

async fn current_of(app: &App, agent: &agent::Model) -> Result<agent_config::Model, ApiError> {
    agents::current(&app.db, &agent.agent_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("No current config found".to_string()))
}

/// `GET /api/agents/{agent_id}/configs/current`.
pub async fn current_config(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    Ok(raw(config_view(&current_of(&app, &agent).await?)))
}

/// `GET /api/agents/{agent_id}/configs/{version}`.
pub async fn get_config(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    version: String,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let number = version_number(&version)?;
    let agent = owned(&app, &user, &agent_id).await?;
    let config = agents::version(&app.db, &agent.agent_id, number)
        .await?
        .ok_or_else(|| ApiError::NotFound("Config version not found".to_string()))?;
    Ok(raw(config_view(&config)))
}

/// `PUT` / `PATCH /api/agents/{agent_id}/configs/{version}`: edits a draft.
pub async fn edit_config(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    version: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let number = version_number(&version)?;
    let agent = owned(&app, &user, &agent_id).await?;
    let body = body_json(&body)?;
    let existing = agents::version(&app.db, &agent.agent_id, number)
        .await?
        .ok_or_else(|| ApiError::NotFound("Config version not found".to_string()))?;
    let mut errors = Vec::new();
    let document = config_document(&body, &["body"], Some(&agents::document(&existing)), &mut errors);
    finish(errors)?;
    let config = agents::edit_draft(&app.db, &agent.agent_id, number, |d| *d = document, &user.id)
        .await
        .map_err(change_error)?;
    Ok(raw(config_view(&config)))
}

/// `DELETE /api/agents/{agent_id}/configs/{version}`: deletes a draft.
pub async fn delete_config(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    version: String,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let number = version_number(&version)?;
    let agent = owned(&app, &user, &agent_id).await?;
    agents::delete_draft(&app.db, &agent.agent_id, number).await.map_err(change_error)?;
    Ok(raw(json!({ "message": "Draft config deleted" })))
}

/// `POST /api/agents/{agent_id}/configs/{version}/publish` and `…/rollback`.
pub async fn publish_or_rollback(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    version: String,
    rollback: bool,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let number = version_number(&version)?;
    let agent = owned(&app, &user, &agent_id).await?;
    let config = if rollback {
        agents::rollback(&app.db, &agent.agent_id, number, &user.id).await
    } else {
        agents::publish(&app.db, &agent.agent_id, number, &user.id).await
    }
    .map_err(change_error)?;
    info!(agent.id = %agent.agent_id, version = number, rollback, "agent config made current");
    Ok(raw(config_view(&config)))
}

/// Returns the config a render or validation works on: `?version=` or the current one.
async fn chosen_config(app: &App, agent: &agent::Model, query: &str) -> Result<agent_config::Model, ApiError> {
    match query_params(query).get("version") {
        Some(v) => {
            let number = version_number(v)?;
            agents::version(&app.db, &agent.agent_id, number)
                .await?
                .ok_or_else(|| ApiError::NotFound("Config version not found".to_string()))
        }
        None => current_of(app, agent).await,
    }
}

/// `POST /api/agents/{agent_id}/configs/render?version=`.
pub async fn render(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    query: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    let values = validate::json_object(&body)?;
    let config = chosen_config(&app, &agent, &query).await?;
    let rendered = prompt::render(&Value::Object(agents::document(&config)), &values);
    Ok(raw(serde_json::to_value(rendered).unwrap_or_default()))
}

/// `POST /api/agents/{agent_id}/configs/validate?version=`.
pub async fn validate_metadata(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    query: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    let values = validate::json_object(&body)?;
    let config = chosen_config(&app, &agent, &query).await?;
    let errors = prompt::validate(agents::document(&config).get("metadata_schema"), &values);
    Ok(raw(json!({ "valid": errors.is_empty(), "errors": errors })))
}

/// `POST /api/agents/{agent_id}/configs/enhance`.
pub async fn enhance(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    owned(&app, &user, &agent_id).await?;
    let body = body_json(&body)?;
    let mut errors = Vec::new();
    let document = config_document(&body, &["body"], None, &mut errors);
    finish(errors)?;
    let result = llm::enhance(&app.llm_http, app.config.llm.as_ref(), &Value::Object(document)).await;
    let mut answer = serde_json::to_value(&result.enhanced).unwrap_or_default();
    answer["source"] = json!(result.source);
    answer["error"] = json!(result.error);
    Ok(raw(answer))
}

/// Changes the current config's document with `edit`, which may refuse.
async fn edit_current(
    app: &App,
    user: &user::Model,
    agent: &agent::Model,
    edit: impl FnOnce(&mut Map<String, Value>) -> Result<(), ApiError>,
) -> Result<agent_config::Model, ApiError> {
    let config = current_of(app, agent).await?;
    let mut document = agents::document(&config);
    edit(&mut document)?;
    Ok(agents::save_document(&app.db, config, document, &user.id).await?)
}

fn items(document: &Map<String, Value>, kind: FieldKind) -> Vec<Value> {
    document.get(kind.key()).and_then(Value::as_array).cloned().unwrap_or_default()
}

fn name_of(kind: FieldKind, item: &Value) -> Option<&str> {
    item[format!("{}_name", kind.prefix())].as_str()
}

/// `POST /api/agents/{agent_id}/call_outcomes` and `…/call_infields`.
pub async fn create_field(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    outcome: bool,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = if outcome { FieldKind::Outcome } else { FieldKind::Infield };
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    let body = body_json(&body)?;
    let mut errors = Vec::new();
    let item = field_definition(kind, &body, &["body"], None, &mut errors);
    finish(errors)?;
    let name = name_of(kind, &item).unwrap_or_default().to_string();
    edit_current(&app, &user, &agent, |document| {
        let mut list = items(document, kind);
        if list.iter().any(|known| name_of(kind, known) == Some(&name)) {
            return Err(ApiError::BadRequest(format!("{} {name:?} already exists", kind.noun())));
        }
        list.push(item.clone());
        document.insert(kind.key().into(), Value::Array(list));
        Ok(())
    })
    .await?;
    Ok(envelope(StatusCode::CREATED, &format!("{} created", kind.noun()), item))
}

/// `GET /api/agents/{agent_id}/call_outcomes` and `…/call_infields`.
pub async fn list_fields(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    outcome: bool,
) -> Result<Response, ApiError> {
    let kind = if outcome { FieldKind::Outcome } else { FieldKind::Infield };
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    let config = current_of(&app, &agent).await?;
    let list = items(&agents::document(&config), kind);
    Ok(envelope(StatusCode::OK, &format!("{}s fetched", kind.noun()), Value::Array(list)))
}

/// `PUT` / `PATCH /api/agents/{agent_id}/call_outcomes/{name}` and `…/call_infields/{name}`.
pub async fn update_field(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    name: String,
    outcome: bool,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = if outcome { FieldKind::Outcome } else { FieldKind::Infield };
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    let body = body_json(&body)?;
    let mut updated = Value::Null;
    edit_current(&app, &user, &agent, |document| {
        let mut list = items(document, kind);
        let position = list
            .iter()
            .position(|item| name_of(kind, item) == Some(&name))
            .ok_or_else(|| ApiError::NotFound(format!("{} {name:?} not found", kind.noun())))?;
        let mut errors = Vec::new();
        let item = field_definition(kind, &body, &["body"], Some(&list[position]), &mut errors);
        finish(errors)?;
        let new_name = name_of(kind, &item).unwrap_or_default().to_string();
        if new_name != name && list.iter().any(|known| name_of(kind, known) == Some(&new_name)) {
            return Err(ApiError::BadRequest(format!("{} {new_name:?} already exists", kind.noun())));
        }
        list[position] = item.clone();
        updated = item;
        document.insert(kind.key().into(), Value::Array(list));
        Ok(())
    })
    .await?;
    Ok(envelope(StatusCode::OK, &format!("{} updated", kind.noun()), updated))
}

/// `DELETE /api/agents/{agent_id}/call_outcomes/{name}` and `…/call_infields/{name}`.
pub async fn delete_field(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    name: String,
    outcome: bool,
) -> Result<Response, ApiError> {
    let kind = if outcome { FieldKind::Outcome } else { FieldKind::Infield };
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    edit_current(&app, &user, &agent, |document| {
        let mut list = items(document, kind);
        let before = list.len();
        list.retain(|item| name_of(kind, item) != Some(&name));
        if list.len() == before {
            return Err(ApiError::NotFound(format!("{} {name:?} not found", kind.noun())));
        }
        document.insert(kind.key().into(), Value::Array(list));
        Ok(())
    })
    .await?;
    Ok(envelope(StatusCode::OK, &format!("{} deleted", kind.noun()), json!({ "deleted": name })))
}

/// `PUT /api/agents/{agent_id}/config/{service_type}`: replaces one service section of the
/// current config; invalid payloads are a 400 naming the field.
pub async fn put_service(
    app: Arc<App>,
    authorization: Option<String>,
    agent_id: String,
    service_type: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = caller(&app, authorization).await?;
    let agent = owned(&app, &user, &agent_id).await?;
    if !SERVICE_TYPES.contains(&service_type.as_str()) {
        return Err(ApiError::BadRequest(format!("service_type must be one of {}", SERVICE_TYPES.join(", "))));
    }
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    // Either the section itself or `{"<service_type>": section}`.
    let section = body.get(&service_type).cloned().unwrap_or(body);
    let problems = service_problems(&service_type, &section);
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(format!("{service_type}: {}", problems.join("; "))));
    }
    let config = edit_current(&app, &user, &agent, |document| {
        document.insert(service_type.clone(), section);
        Ok(())
    })
    .await?;
    Ok(raw(config_view(&config)))
}

/// The current config of an agent call, rendered with the call's variables: what a click2call
/// whose `agent_number` is an `AGT_` id carries. 404 for an unknown agent or one without a
/// current config; 403 for another user's.
pub async fn call_config(
    db: &sea_orm::DatabaseConnection,
    user_id: &str,
    agent_id: &str,
    request: &Value,
) -> Result<Value, ApiError> {
    let agent = agents::find(db, agent_id).await?.ok_or_else(|| ApiError::NotFound("Agent not found".to_string()))?;
    if agent.user_id != user_id {
        return Err(ApiError::Forbidden("Not authorized to access this agent".to_string()));
    }
    if !agent.is_active {
        return Err(ApiError::BadRequest("Agent is not active".to_string()));
    }
    let config = agents::current(db, &agent.agent_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("No current config found".to_string()))?;
    let document = agents::document(&config);
    let values = match request.get("metadata") {
        Some(Value::Object(values)) => values.clone(),
        _ => request.as_object().cloned().unwrap_or_default(),
    };
    let rendered = prompt::render(&Value::Object(document.clone()), &values);
    let visible: Vec<Value> =
        items(&document, FieldKind::Outcome).into_iter().filter(|o| o["is_visible"] != json!(false)).collect();
    Ok(json!({
        "agent_id": agent.agent_id,
        "config_version": config.version,
        "system_prompt": rendered.rendered_system_prompt,
        "starting_instructions": rendered.rendered_starting_instructions,
        "render_errors": rendered.errors,
        "call_outcomes": visible,
        "call_infields": document.get("call_infields").cloned().unwrap_or_else(|| json!([])),
        "tts_config": document.get("tts_config"),
        "stt_config": document.get("stt_config"),
        "vad_config": document.get("vad_config"),
        "llm_config": document.get("llm_config"),
        "variables": values,
    }))
}
