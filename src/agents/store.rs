//! Storage of agents and their config versions. A config version is `draft`, `published` or
//! `archived`; at most one published version is current. Publishing archives the previous current
//! version and carries its call outcomes and infields into the new one; rollback makes an earlier
//! published version current again. Every change that touches two versions is one transaction.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value};

use crate::ids;
use crate::store::entities::{agent, agent_config, user};

/// Config statuses.
pub const DRAFT: &str = "draft";
pub const PUBLISHED: &str = "published";
pub const ARCHIVED: &str = "archived";

/// Why a config change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigChange {
    #[error("Config version not found")]
    NotFound,
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Returns a new agent id: `AGT_` + 8 upper-case letters and digits.
pub fn new_agent_id() -> String {
    format!("AGT_{}", ids::random_alphanumeric(8).to_ascii_uppercase())
}

/// Returns an agent by its public id.
pub async fn find(db: &impl ConnectionTrait, agent_id: &str) -> Result<Option<agent::Model>, DbErr> {
    agent::Entity::find_by_id(agent_id.to_string()).one(db).await
}

/// Returns true when the user already has an agent of that name (other than `except`).
pub async fn name_taken(
    db: &DatabaseConnection,
    user_id: &str,
    name: &str,
    except: Option<&str>,
) -> Result<bool, DbErr> {
    let mut query =
        agent::Entity::find().filter(agent::Column::UserId.eq(user_id)).filter(agent::Column::AgentName.eq(name));
    if let Some(agent_id) = except {
        query = query.filter(agent::Column::AgentId.ne(agent_id));
    }
    Ok(query.one(db).await?.is_some())
}

/// Returns a user's agents, oldest first.
pub async fn list(db: &DatabaseConnection, user_id: &str) -> Result<Vec<agent::Model>, DbErr> {
    agent::Entity::find()
        .filter(agent::Column::UserId.eq(user_id))
        .order_by_asc(agent::Column::CreatedAt)
        .order_by_asc(agent::Column::AgentId)
        .all(db)
        .await
}

/// Creates an agent with its first config, published and current, in one transaction.
pub async fn create(
    db: &DatabaseConnection,
    row: agent::Model,
    document: Map<String, Value>,
) -> Result<(agent::Model, agent_config::Model), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let created = row.clone().into_active_model().reset_all().insert(&txn).await?;
    let config = insert_config(&txn, &row.agent_id, 1, PUBLISHED, true, &document, &row.user_id).await?;
    txn.commit().await?;
    Ok((created, config))
}

/// Saves a changed agent.
pub async fn update(db: &DatabaseConnection, mut row: agent::Model) -> Result<agent::Model, DbErr> {
    row.updated_at = Utc::now();
    row.into_active_model().reset_all().update(db).await
}

/// Deletes an agent and every version of its config.
pub async fn delete(db: &DatabaseConnection, agent_id: &str) -> Result<(), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    agent_config::Entity::delete_many().filter(agent_config::Column::AgentId.eq(agent_id)).exec(&txn).await?;
    agent::Entity::delete_by_id(agent_id.to_string()).exec(&txn).await?;
    txn.commit().await
}

async fn insert_config(
    conn: &impl ConnectionTrait,
    agent_id: &str,
    version: i32,
    status: &str,
    is_current: bool,
    document: &Map<String, Value>,
    by: &str,
) -> Result<agent_config::Model, DbErr> {
    let now = Utc::now();
    agent_config::ActiveModel {
        id: Set(ids::random_lower_alphanumeric(24)),
        agent_id: Set(agent_id.to_string()),
        version: Set(version),
        status: Set(status.to_string()),
        is_current: Set(is_current),
        document: Set(Value::Object(document.clone()).to_string()),
        created_by: Set(by.to_string()),
        updated_by: Set(by.to_string()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
}

/// Returns the document of a config version.
pub fn document(config: &agent_config::Model) -> Map<String, Value> {
    match serde_json::from_str(&config.document) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Returns an agent's config version.
pub async fn version(
    db: &impl ConnectionTrait,
    agent_id: &str,
    version: i32,
) -> Result<Option<agent_config::Model>, DbErr> {
    agent_config::Entity::find()
        .filter(agent_config::Column::AgentId.eq(agent_id))
        .filter(agent_config::Column::Version.eq(version))
        .one(db)
        .await
}

/// Returns the agent's current (published) config.
pub async fn current(db: &impl ConnectionTrait, agent_id: &str) -> Result<Option<agent_config::Model>, DbErr> {
    agent_config::Entity::find()
        .filter(agent_config::Column::AgentId.eq(agent_id))
        .filter(agent_config::Column::IsCurrent.eq(true))
        .one(db)
        .await
}

/// Lists an agent's config versions, newest first.
pub async fn versions(
    db: &DatabaseConnection,
    agent_id: &str,
    status: Option<&str>,
    skip: u64,
    limit: u64,
) -> Result<Vec<agent_config::Model>, DbErr> {
    let mut query = agent_config::Entity::find().filter(agent_config::Column::AgentId.eq(agent_id));
    if let Some(status) = status {
        query = query.filter(agent_config::Column::Status.eq(status));
    }
    query.order_by_desc(agent_config::Column::Version).offset(skip).limit(limit).all(db).await
}

/// Adds a config version as a draft, or publishes it at once.
pub async fn add_version(
    db: &DatabaseConnection,
    agent_id: &str,
    document: &Map<String, Value>,
    publish_now: bool,
    by: &str,
) -> Result<agent_config::Model, ConfigChange> {
    let txn = crate::store::begin_write(db).await?;
    let latest = agent_config::Entity::find()
        .filter(agent_config::Column::AgentId.eq(agent_id))
        .order_by_desc(agent_config::Column::Version)
        .one(&txn)
        .await?
        .map_or(0, |c| c.version);
    let draft = insert_config(&txn, agent_id, latest + 1, DRAFT, false, document, by).await?;
    let result = if publish_now { make_current(&txn, draft, by, true).await? } else { draft };
    txn.commit().await?;
    Ok(result)
}

/// Makes `config` the current published version: the previous current one is archived and, when
/// `carry` is set, its call outcomes and infields are carried into `config` (those `config` lacks).
async fn make_current(
    conn: &impl ConnectionTrait,
    config: agent_config::Model,
    by: &str,
    carry: bool,
) -> Result<agent_config::Model, DbErr> {
    let now = Utc::now();
    let mut document = document(&config);
    if let Some(previous) = current(conn, &config.agent_id).await?
        && previous.id != config.id
    {
        if carry {
            let previous_document = self::document(&previous);
            for (key, name) in [("call_outcomes", "outcome_name"), ("call_infields", "field_name")] {
                let mut items = document.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
                for item in previous_document.get(key).and_then(Value::as_array).into_iter().flatten() {
                    if !items.iter().any(|known| known[name] == item[name]) {
                        items.push(item.clone());
                    }
                }
                document.insert(key.to_string(), Value::Array(items));
            }
        }
        agent_config::Entity::update_many()
            .filter(agent_config::Column::Id.eq(previous.id))
            .col_expr(agent_config::Column::Status, Expr::value(ARCHIVED))
            .col_expr(agent_config::Column::IsCurrent, Expr::value(false))
            .col_expr(agent_config::Column::UpdatedAt, Expr::value(now))
            .exec(conn)
            .await?;
    }
    let mut row = config;
    row.status = PUBLISHED.to_string();
    row.is_current = true;
    row.document = Value::Object(document).to_string();
    row.updated_by = by.to_string();
    row.updated_at = now;
    row.into_active_model().reset_all().update(conn).await
}

/// Publishes a draft version and makes it current.
pub async fn publish(
    db: &DatabaseConnection,
    agent_id: &str,
    number: i32,
    by: &str,
) -> Result<agent_config::Model, ConfigChange> {
    let txn = crate::store::begin_write(db).await?;
    let config = version(&txn, agent_id, number).await?.ok_or(ConfigChange::NotFound)?;
    if config.is_current {
        return Ok(config);
    }
    if config.status != DRAFT {
        return Err(ConfigChange::Refused(format!(
            "Only a draft can be published; version {number} is {}. Use rollback to restore it",
            config.status
        )));
    }
    let published = make_current(&txn, config, by, true).await?;
    txn.commit().await?;
    Ok(published)
}

/// Makes a previously published (now archived) version current again, as it was.
pub async fn rollback(
    db: &DatabaseConnection,
    agent_id: &str,
    number: i32,
    by: &str,
) -> Result<agent_config::Model, ConfigChange> {
    let txn = crate::store::begin_write(db).await?;
    let config = version(&txn, agent_id, number).await?.ok_or(ConfigChange::NotFound)?;
    if config.is_current {
        return Ok(config);
    }
    if config.status != ARCHIVED {
        return Err(ConfigChange::Refused(format!(
            "Only a previously published version can be restored; version {number} is a {}",
            config.status
        )));
    }
    let restored = make_current(&txn, config, by, false).await?;
    txn.commit().await?;
    Ok(restored)
}

/// Replaces the document of a draft.
pub async fn edit_draft(
    db: &DatabaseConnection,
    agent_id: &str,
    number: i32,
    edit: impl FnOnce(&mut Map<String, Value>),
    by: &str,
) -> Result<agent_config::Model, ConfigChange> {
    let config = version(db, agent_id, number).await?.ok_or(ConfigChange::NotFound)?;
    if config.status != DRAFT {
        return Err(ConfigChange::Refused(format!("Only drafts can be edited; version {number} is {}", config.status)));
    }
    let mut document = document(&config);
    edit(&mut document);
    Ok(save_document(db, config, document, by).await?)
}

/// Deletes a draft.
pub async fn delete_draft(db: &DatabaseConnection, agent_id: &str, number: i32) -> Result<(), ConfigChange> {
    let config = version(db, agent_id, number).await?.ok_or(ConfigChange::NotFound)?;
    if config.status != DRAFT {
        return Err(ConfigChange::Refused(format!(
            "Only drafts can be deleted; version {number} is {}",
            config.status
        )));
    }
    agent_config::Entity::delete_by_id(config.id).exec(db).await?;
    Ok(())
}

/// Saves a config version's document.
pub async fn save_document(
    db: &impl ConnectionTrait,
    mut config: agent_config::Model,
    document: Map<String, Value>,
    by: &str,
) -> Result<agent_config::Model, DbErr> {
    config.document = Value::Object(document).to_string();
    config.updated_by = by.to_string();
    config.updated_at = Utc::now();
    config.into_active_model().reset_all().update(db).await
}

/// Returns the SHA-256 (hex) of a legacy API key, as stored.
pub fn api_key_hash(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// Issues a new legacy API key for a user (replacing any earlier one) and returns it.
pub async fn issue_api_key(db: &DatabaseConnection, user_id: &str) -> Result<String, DbErr> {
    let key = format!("dpk_{}", ids::random_alphanumeric(40));
    user::Entity::update_many()
        .filter(user::Column::Id.eq(user_id))
        .col_expr(user::Column::ApiKeyHash, Expr::value(api_key_hash(&key)))
        .exec(db)
        .await?;
    Ok(key)
}

/// Returns the active user a legacy API key belongs to.
pub async fn user_by_api_key(db: &DatabaseConnection, key: &str) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::ApiKeyHash.eq(api_key_hash(key)))
        .filter(user::Column::IsActive.eq(true))
        .one(db)
        .await
}
