//! Storage of webhook subscriptions: their rows, the fan-out of an event into one outbox row per
//! subscriber (inside the transaction of the change that caused it), the attempt log, replay, the
//! outbox depth for metrics, and [`SeaWebhookOutbox`], the subscription actors' port.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dialplane_actors::ports::{AttemptReport, OutboundMessage, StoreError, WebhookOutbox};
use dialplane_actors::webhook::fsm::{EndpointHealth, MessageFate};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::directory::Endpoint;
use super::{SubscriptionDirectory, events};
use crate::ids;
use crate::store::entities::{outbox, webhook_attempt, webhook_subscription};
use crate::store::writer::{WriteOp, Writer};
use crate::telemetry;

/// Tells the subscription actors which subscriptions got new messages.
pub type WakeSender = mpsc::UnboundedSender<Vec<String>>;

/// A subscription as the API creates or changes it.
pub struct SubscriptionFields {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
}

/// Creates a subscription with a fresh secret.
pub async fn create(
    db: &DatabaseConnection,
    workspace_id: &str,
    fields: SubscriptionFields,
) -> Result<webhook_subscription::Model, DbErr> {
    let now = Utc::now();
    webhook_subscription::ActiveModel {
        id: Set(ids::new_id("wh")),
        workspace_id: Set(workspace_id.to_string()),
        url: Set(fields.url),
        description: Set(fields.description),
        event_types: Set(serde_json::to_string(&fields.event_types).expect("strings serialize")),
        enabled: Set(fields.enabled),
        disabled_reason: Set(None),
        disabled_at: Set((!fields.enabled).then_some(now)),
        failing_since: Set(None),
        secret: Set(ids::new_signing_secret()),
        previous_secret: Set(None),
        previous_secret_expires_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
}

/// Returns a workspace's subscription.
pub async fn find(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    id: &str,
) -> Result<Option<webhook_subscription::Model>, DbErr> {
    Ok(webhook_subscription::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .filter(|row| row.workspace_id == workspace_id))
}

/// Returns one page of a workspace's subscriptions, oldest first, and how many there are.
pub async fn list(
    db: &DatabaseConnection,
    workspace_id: &str,
    page: u64,
    page_size: u64,
) -> Result<(Vec<webhook_subscription::Model>, u64), DbErr> {
    let query = webhook_subscription::Entity::find()
        .filter(webhook_subscription::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(webhook_subscription::Column::CreatedAt)
        .order_by_asc(webhook_subscription::Column::Id);
    let total = query.clone().count(db).await?;
    let rows = query.offset((page - 1) * page_size).limit(page_size).all(db).await?;
    Ok((rows, total))
}

/// Saves a changed subscription. Enabling clears the failure record; disabling by hand records when.
pub async fn update(
    db: &DatabaseConnection,
    mut row: webhook_subscription::Model,
    fields: SubscriptionFields,
) -> Result<webhook_subscription::Model, DbErr> {
    let now = Utc::now();
    if fields.enabled && !row.enabled {
        row.disabled_reason = None;
        row.disabled_at = None;
        row.failing_since = None;
    } else if !fields.enabled && row.enabled {
        row.disabled_at = Some(now);
    }
    row.url = fields.url;
    row.description = fields.description;
    row.event_types = serde_json::to_string(&fields.event_types).expect("strings serialize");
    row.enabled = fields.enabled;
    row.updated_at = now;
    row.into_active_model().reset_all().update(db).await
}

/// Replaces the secret; the old one keeps signing (beside the new) until `overlap` has passed.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    mut row: webhook_subscription::Model,
    overlap: chrono::Duration,
) -> Result<webhook_subscription::Model, DbErr> {
    let now = Utc::now();
    row.previous_secret = Some(std::mem::replace(&mut row.secret, ids::new_signing_secret()));
    row.previous_secret_expires_at = Some(now + overlap);
    row.updated_at = now;
    row.into_active_model().reset_all().update(db).await
}

/// Deletes a subscription with its undelivered messages and attempt log.
pub async fn delete(db: &DatabaseConnection, id: &str) -> Result<(), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    outbox::Entity::delete_many().filter(outbox::Column::SubscriptionId.eq(id)).exec(&txn).await?;
    webhook_attempt::Entity::delete_many().filter(webhook_attempt::Column::SubscriptionId.eq(id)).exec(&txn).await?;
    webhook_subscription::Entity::delete_by_id(id.to_string()).exec(&txn).await?;
    txn.commit().await
}

/// Returns one page of a subscription's delivery attempts, newest first, and how many there are.
pub async fn attempts(
    db: &DatabaseConnection,
    subscription_id: &str,
    page: u64,
    page_size: u64,
) -> Result<(Vec<webhook_attempt::Model>, u64), DbErr> {
    let query = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::SubscriptionId.eq(subscription_id))
        .order_by_desc(webhook_attempt::Column::Id);
    let total = query.clone().count(db).await?;
    let rows = query.offset((page - 1) * page_size).limit(page_size).all(db).await?;
    Ok((rows, total))
}

/// Queues again, as new, every message of the subscription created in `[since, until)` that is
/// no longer pending (delivered or given up). Returns how many.
pub async fn replay(
    db: &DatabaseConnection,
    subscription_id: &str,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> Result<u64, DbErr> {
    let mut update = outbox::Entity::update_many()
        .filter(outbox::Column::SubscriptionId.eq(subscription_id))
        .filter(outbox::Column::Status.ne("pending"))
        .filter(outbox::Column::CreatedAt.gte(since));
    if let Some(until) = until {
        update = update.filter(outbox::Column::CreatedAt.lt(until));
    }
    let result = update
        .col_expr(outbox::Column::Status, Expr::value("pending"))
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(Utc::now()))
        .col_expr(outbox::Column::LastError, Expr::value(Option::<String>::None))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Writes one outbox row: `event_type` (under the name the subscriber asked for) to `endpoint`.
async fn enqueue_one(
    conn: &impl ConnectionTrait,
    endpoint: &Endpoint,
    event_id: &str,
    event_type: &str,
    call_id: Option<&str>,
    data: &Value,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    outbox::ActiveModel {
        message_id: Set(ids::new_id("msg")),
        workspace_id: Set(endpoint.workspace_id.clone()),
        call_id: Set(call_id.map(str::to_string)),
        event_type: Set(event_type.to_string()),
        target_url: Set(endpoint.url.clone()),
        body: Set(events::envelope(event_id, event_type, now, data)),
        status: Set("pending".to_string()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_status_code: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
        subscription_id: Set(Some(endpoint.id.clone())),
        event_id: Set(Some(event_id.to_string())),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// An event to fan out to a workspace's subscribers.
pub struct Event<'a> {
    pub workspace_id: &'a str,
    pub event_type: &'a str,
    /// Messages of one call are delivered in order.
    pub call_id: Option<&'a str>,
    pub at: DateTime<Utc>,
    /// A subscription that must not receive it (the one a `webhook.disabled` is about).
    pub except: Option<&'a str>,
}

/// Writes one outbox row per enabled subscription that wants the event; `data` is only built when
/// someone does. Returns the subscriptions to wake once the transaction commits.
pub async fn fan_out(
    conn: &impl ConnectionTrait,
    directory: &SubscriptionDirectory,
    event: Event<'_>,
    data: impl FnOnce() -> Value,
) -> Result<Vec<String>, DbErr> {
    let subscribers: Vec<_> = directory
        .subscribers(event.workspace_id, event.event_type)
        .into_iter()
        .filter(|(endpoint, _)| Some(endpoint.id.as_str()) != event.except)
        .collect();
    if subscribers.is_empty() {
        return Ok(Vec::new());
    }
    let data = data();
    let event_id = ids::new_id("evt");
    let mut woken = Vec::with_capacity(subscribers.len());
    for (endpoint, name) in subscribers {
        enqueue_one(conn, &endpoint, &event_id, name, event.call_id, &data, event.at).await?;
        woken.push(endpoint.id.clone());
    }
    Ok(woken)
}

/// Queues a `webhook.test` event for one subscription, whatever its filter. Returns the event id.
pub async fn enqueue_test(db: &DatabaseConnection, endpoint: &Endpoint) -> Result<String, DbErr> {
    let now = Utc::now();
    let event_id = ids::new_id("evt");
    let data = json!({ "webhook_id": endpoint.id, "message": "This is a test event from Dialplane." });
    enqueue_one(db, endpoint, &event_id, events::TEST_EVENT, None, &data, now).await?;
    Ok(event_id)
}

/// Pending messages and the age of the oldest, for one subscription state.
#[derive(Debug, FromQueryResult)]
pub struct Depth {
    pub subscription_id: Option<String>,
    pub pending: i64,
    pub oldest: Option<DateTime<Utc>>,
}

/// Returns the pending messages per subscription (`None`: per-call callbacks).
pub async fn outbox_depth(db: &DatabaseConnection) -> Result<Vec<Depth>, DbErr> {
    outbox::Entity::find()
        .select_only()
        .column(outbox::Column::SubscriptionId)
        .column_as(outbox::Column::Id.count(), "pending")
        .column_as(outbox::Column::CreatedAt.min(), "oldest")
        .filter(outbox::Column::Status.eq("pending"))
        .group_by(outbox::Column::SubscriptionId)
        .into_model::<Depth>()
        .all(db)
        .await
}

/// A delivery attempt to record: its log row and what became of its message.
pub struct AttemptRecord {
    /// The attempt log row (its `id` is assigned by the database).
    pub log: webhook_attempt::Model,
    /// The outbox row.
    pub row_id: i32,
    pub fate: MessageFate,
    pub at: DateTime<Utc>,
}

/// Logs an attempt and moves its message on (delivered, due again later, or failed). Run by the
/// group-commit writer, so a busy endpoint's attempts share commits.
pub async fn record_attempt(conn: &impl ConnectionTrait, record: &AttemptRecord) -> Result<(), DbErr> {
    let mut log = record.log.clone().into_active_model().reset_all();
    log.id = sea_orm::ActiveValue::NotSet;
    log.insert(conn).await?;
    let update = outbox::Entity::update_many()
        .filter(outbox::Column::Id.eq(record.row_id))
        .filter(outbox::Column::Status.eq("pending"))
        .col_expr(outbox::Column::Attempts, Expr::value(record.log.attempt))
        .col_expr(outbox::Column::LastStatusCode, Expr::value(record.log.status_code))
        .col_expr(outbox::Column::LastError, Expr::value(record.log.error.clone()));
    let update = match &record.fate {
        MessageFate::Delivered => update
            .col_expr(outbox::Column::Status, Expr::value("delivered"))
            .col_expr(outbox::Column::DeliveredAt, Expr::value(record.at)),
        MessageFate::RetryAt(next) => update.col_expr(outbox::Column::NextAttemptAt, Expr::value(*next)),
        MessageFate::Exhausted | MessageFate::Abandoned => {
            update.col_expr(outbox::Column::Status, Expr::value("failed"))
        }
    };
    update.exec(conn).await?;
    Ok(())
}

/// The subscription actors' `WebhookOutbox` port on sea-orm.
pub struct SeaWebhookOutbox {
    pub db: DatabaseConnection,
    /// Records attempts, group-committed with every other hot write.
    pub writer: Writer,
    pub directory: Arc<SubscriptionDirectory>,
    pub wake: WakeSender,
}

fn store_error(e: DbErr) -> StoreError {
    StoreError(e.to_string())
}

fn outbound(row: outbox::Model) -> OutboundMessage {
    OutboundMessage {
        row_id: i64::from(row.id),
        line: row.call_id.unwrap_or_else(|| row.message_id.clone()),
        message_id: row.message_id,
        subscription_id: row.subscription_id.unwrap_or_default(),
        event_type: row.event_type,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        next_attempt_at: row.next_attempt_at,
        body: row.body,
    }
}

#[async_trait]
impl WebhookOutbox for SeaWebhookOutbox {
    async fn health(&self, subscription_id: &str) -> Result<Option<EndpointHealth>, StoreError> {
        let row = webhook_subscription::Entity::find_by_id(subscription_id.to_string())
            .one(&self.db)
            .await
            .map_err(store_error)?;
        Ok(row.map(|row| EndpointHealth { failing_since: row.failing_since, disabled: !row.enabled }))
    }

    async fn pending(&self, subscription_id: &str, limit: u64) -> Result<Vec<OutboundMessage>, StoreError> {
        let rows = outbox::Entity::find()
            .filter(outbox::Column::SubscriptionId.eq(subscription_id))
            .filter(outbox::Column::Status.eq("pending"))
            .order_by_asc(outbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(store_error)?;
        Ok(rows.into_iter().map(outbound).collect())
    }

    async fn record_attempt(
        &self,
        message: &OutboundMessage,
        report: &AttemptReport,
        fate: &MessageFate,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let workspace_id =
            self.directory.get(&message.subscription_id).map(|e| e.workspace_id.clone()).unwrap_or_default();
        let record = AttemptRecord {
            log: webhook_attempt::Model {
                id: 0,
                subscription_id: message.subscription_id.clone(),
                workspace_id,
                message_id: message.message_id.clone(),
                event_type: message.event_type.clone(),
                attempt: i32::try_from(message.attempts + 1).unwrap_or(i32::MAX),
                attempted_at: at - chrono::Duration::from_std(report.latency).unwrap_or_default(),
                status_code: report.status_code.map(i32::from),
                latency_ms: i32::try_from(report.latency.as_millis()).unwrap_or(i32::MAX),
                result: fate.label().to_string(),
                error: report.error.clone(),
                response_excerpt: report.response_excerpt.clone(),
            },
            row_id: i32::try_from(message.row_id).unwrap_or_default(),
            fate: fate.clone(),
            at,
        };
        self.writer.write(WriteOp::RecordAttempt(Box::new(record))).await.map_err(store_error)?;
        telemetry::webhook_attempt(fate.label(), report.latency.as_secs_f64());
        Ok(())
    }

    async fn save_health(
        &self,
        subscription_id: &str,
        health: &EndpointHealth,
        disabled_reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let txn = crate::store::begin_write(&self.db).await.map_err(store_error)?;
        let mut update = webhook_subscription::Entity::update_many()
            .filter(webhook_subscription::Column::Id.eq(subscription_id))
            .col_expr(webhook_subscription::Column::FailingSince, Expr::value(health.failing_since));
        let mut woken = Vec::new();
        if let Some(reason) = disabled_reason {
            update = update
                .filter(webhook_subscription::Column::Enabled.eq(true))
                .col_expr(webhook_subscription::Column::Enabled, Expr::value(false))
                .col_expr(webhook_subscription::Column::DisabledReason, Expr::value(reason))
                .col_expr(webhook_subscription::Column::DisabledAt, Expr::value(at))
                .col_expr(webhook_subscription::Column::UpdatedAt, Expr::value(at));
            if let Some(endpoint) = self.directory.get(subscription_id) {
                let event = Event {
                    workspace_id: &endpoint.workspace_id,
                    event_type: "webhook.disabled",
                    call_id: None,
                    at,
                    except: Some(subscription_id),
                };
                let data = || json!({ "webhook_id": subscription_id, "url": endpoint.url, "reason": reason, "disabled_at": crate::call_view::iso(at) });
                woken = fan_out(&txn, &self.directory, event, data).await.map_err(store_error)?;
            }
            telemetry::webhook_disabled();
        }
        update.exec(&txn).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        if disabled_reason.is_some() {
            self.directory.refresh(&self.db, subscription_id).await.map_err(store_error)?;
        }
        if !woken.is_empty() {
            let _ = self.wake.send(woken);
        }
        Ok(())
    }
}

/// Returns how many subscriptions a workspace has, enabled or not.
pub async fn count(db: &DatabaseConnection, workspace_id: &str) -> Result<u64, DbErr> {
    webhook_subscription::Entity::find()
        .filter(webhook_subscription::Column::WorkspaceId.eq(workspace_id))
        .count(db)
        .await
}
