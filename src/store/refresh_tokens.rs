//! Refresh tokens as issued: each one is exchanged once for a new pair, and the new refresh token
//! joins the same family. A token presented again after its exchange (a copy someone kept)
//! revokes its whole family, so whoever holds the newest token of that family must sign in again
//! too (DESIGN §11).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
};

use super::entities::refresh_token;

/// A refresh token as issued.
pub struct Issued<'a> {
    pub id: &'a str,
    pub family_id: &'a str,
    pub user_id: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// Records a refresh token just issued.
pub async fn record(db: &DatabaseConnection, token: Issued<'_>) -> Result<(), DbErr> {
    refresh_token::ActiveModel {
        id: Set(token.id.to_string()),
        family_id: Set(token.family_id.to_string()),
        user_id: Set(token.user_id.to_string()),
        expires_at: Set(token.expires_at),
        rotated_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Deletes the records of refresh tokens expired before `now` (their tokens no longer verify).
pub async fn forget_expired(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(forget_expired_query(now).exec(db).await?.rows_affected)
}

/// The statement of [`forget_expired`], which runs every 30 s.
pub(crate) fn forget_expired_query(now: DateTime<Utc>) -> sea_orm::DeleteMany<refresh_token::Entity> {
    refresh_token::Entity::delete_many().filter(refresh_token::Column::ExpiresAt.lt(now))
}

/// What presenting a refresh token for exchange did.
#[derive(Debug, PartialEq, Eq)]
pub enum Exchange {
    /// It was current: it is used up now, and a new one may be issued in its family.
    Rotated { family_id: String },
    /// It had been exchanged before: its family is revoked.
    Reused,
    /// Unknown, or its family was revoked already.
    Refused,
}

/// Uses up refresh token `id` of `user_id`. One conditional update, so of two exchanges of the
/// same token at once only one rotates it; the other finds it used and revokes the family.
pub async fn exchange(db: &DatabaseConnection, id: &str, user_id: &str) -> Result<Exchange, DbErr> {
    let now = Utc::now();
    let rotated = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RotatedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(id))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RotatedAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec_with_returning(db)
        .await?;
    if let Some(token) = rotated.into_iter().next() {
        return Ok(Exchange::Rotated { family_id: token.family_id });
    }
    let Some(token) = refresh_token::Entity::find_by_id(id.to_string()).one(db).await? else {
        return Ok(Exchange::Refused);
    };
    if token.user_id != user_id || token.revoked_at.is_some() {
        return Ok(Exchange::Refused);
    }
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::FamilyId.eq(token.family_id.as_str()))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(Exchange::Reused)
}
