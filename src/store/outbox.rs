//! Queries over the outbox rows of per-call `callback_url`s: which deliveries are due, and recording
//! each attempt's result. (Webhook subscriptions' rows are in [`crate::webhooks::store`].)

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::outbox;

/// Returns up to `limit` pending callback deliveries, oldest first (due or not: ordering per call needs to
/// see the ones waiting for a retry too).
pub async fn pending(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<outbox::Model>, DbErr> {
    pending_query(limit).all(db).await
}

/// The query of [`pending`], which the delivery worker runs at least every 250 ms.
pub(crate) fn pending_query(limit: u64) -> sea_orm::Select<outbox::Entity> {
    outbox::Entity::find()
        .filter(outbox::Column::Status.eq("pending"))
        .filter(outbox::Column::SubscriptionId.is_null())
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
}

/// The result of one delivery attempt.
pub enum AttemptResult {
    /// The receiver answered 2xx.
    Delivered { status_code: u16 },
    /// The attempt failed; try again at `next_attempt_at`.
    Retry { status_code: Option<u16>, error: String, next_attempt_at: DateTime<Utc> },
    /// The attempt failed and no more will be made.
    Failed { status_code: Option<u16>, error: String },
}

/// Records the result of attempt number `attempts` of delivery `id`, made at `now`.
pub async fn record_attempt(
    db: &impl ConnectionTrait,
    id: i32,
    attempts: i32,
    result: &AttemptResult,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let update = outbox::Entity::update_many()
        .filter(outbox::Column::Id.eq(id))
        .col_expr(outbox::Column::Attempts, Expr::value(attempts));
    let update = match result {
        AttemptResult::Delivered { status_code } => update
            .col_expr(outbox::Column::Status, Expr::value("delivered"))
            .col_expr(outbox::Column::LastStatusCode, Expr::value(i32::from(*status_code)))
            .col_expr(outbox::Column::LastError, Expr::value(Option::<String>::None))
            .col_expr(outbox::Column::DeliveredAt, Expr::value(now)),
        AttemptResult::Retry { status_code, error, next_attempt_at } => update
            .col_expr(outbox::Column::LastStatusCode, Expr::value(status_code.map(i32::from)))
            .col_expr(outbox::Column::LastError, Expr::value(error.clone()))
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(*next_attempt_at)),
        AttemptResult::Failed { status_code, error } => update
            .col_expr(outbox::Column::Status, Expr::value("failed"))
            .col_expr(outbox::Column::LastStatusCode, Expr::value(status_code.map(i32::from)))
            .col_expr(outbox::Column::LastError, Expr::value(error.clone())),
    };
    update.exec(db).await?;
    Ok(())
}
