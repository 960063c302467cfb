//! Users and their workspaces. A user gets a workspace of their own when created, so every
//! tenant-owned row has a workspace id from day one.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
};

use super::entities::{user, workspace};
use crate::ids;

/// Roles a user can hold.
pub const ROLES: &[&str] = &["superuser", "admin", "developer", "member"];

/// Returns the user with this id.
pub async fn find_by_id(db: &DatabaseConnection, id: &str) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(id.to_string()).one(db).await
}

/// Returns the user with this email (emails are stored lowercased).
pub async fn find_by_email(db: &DatabaseConnection, email: &str) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find().filter(user::Column::Email.eq(email.to_lowercase())).one(db).await
}

/// Returns the number of users.
pub async fn count(db: &DatabaseConnection) -> Result<u64, DbErr> {
    user::Entity::find().count(db).await
}

/// Returns a workspace.
pub async fn find_workspace(db: &DatabaseConnection, id: &str) -> Result<Option<workspace::Model>, DbErr> {
    workspace::Entity::find_by_id(id.to_string()).one(db).await
}

/// Creates an active, verified user with a new workspace of their own.
pub async fn create(
    db: &DatabaseConnection,
    email: &str,
    password_hash: &str,
    role: &str,
) -> Result<user::Model, DbErr> {
    let now = Utc::now();
    let email = email.to_lowercase();
    let txn = super::begin_write(db).await?;
    let workspace = workspace::ActiveModel {
        id: Set(ids::new_id("ws")),
        name: Set(format!("{email}'s workspace")),
        signing_secret: Set(ids::new_signing_secret()),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let user = user::ActiveModel {
        id: Set(ids::new_id("usr")),
        workspace_id: Set(workspace.id),
        email: Set(email),
        password_hash: Set(password_hash.to_string()),
        role: Set(role.to_string()),
        is_active: Set(true),
        is_verified: Set(true),
        api_key_hash: Set(None),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(user)
}
