//! Webhook subscriptions: the subscriptions themselves (URL, event filter, secrets with a rotation
//! window, health), the log of every delivery attempt, the outbox columns that tie a message to a
//! subscription and an event, and the per-call event sequence number.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_create_core_tables::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookSubscriptions::Table)
                    .col(string(WebhookSubscriptions::Id).primary_key())
                    .col(string(WebhookSubscriptions::WorkspaceId))
                    .col(text(WebhookSubscriptions::Url))
                    .col(text(WebhookSubscriptions::Description))
                    .col(text(WebhookSubscriptions::EventTypes))
                    .col(boolean(WebhookSubscriptions::Enabled))
                    .col(text_null(WebhookSubscriptions::DisabledReason))
                    .col(timestamp_with_time_zone_null(WebhookSubscriptions::DisabledAt))
                    .col(timestamp_with_time_zone_null(WebhookSubscriptions::FailingSince))
                    .col(string(WebhookSubscriptions::Secret))
                    .col(string_null(WebhookSubscriptions::PreviousSecret))
                    .col(timestamp_with_time_zone_null(WebhookSubscriptions::PreviousSecretExpiresAt))
                    .col(timestamp_with_time_zone(WebhookSubscriptions::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookSubscriptions::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_webhook_subscriptions_workspace",
            WebhookSubscriptions::Table,
            &[WebhookSubscriptions::WorkspaceId],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(pk_auto(WebhookAttempts::Id))
                    .col(string(WebhookAttempts::SubscriptionId))
                    .col(string(WebhookAttempts::WorkspaceId))
                    .col(string(WebhookAttempts::MessageId))
                    .col(string(WebhookAttempts::EventType))
                    .col(integer(WebhookAttempts::Attempt))
                    .col(timestamp_with_time_zone(WebhookAttempts::AttemptedAt))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(integer(WebhookAttempts::LatencyMs))
                    .col(string(WebhookAttempts::Result))
                    .col(text_null(WebhookAttempts::Error))
                    .col(text_null(WebhookAttempts::ResponseExcerpt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_webhook_attempts_subscription",
            WebhookAttempts::Table,
            &[WebhookAttempts::SubscriptionId, WebhookAttempts::Id],
        )
        .await?;
        // SQLite adds one column per statement.
        for column in [string_null(Outbox::SubscriptionId), string_null(Outbox::EventId)] {
            manager.alter_table(Table::alter().table(Outbox::Table).add_column(column).to_owned()).await?;
        }
        index(
            manager,
            "idx_outbox_subscription_pending",
            Outbox::Table,
            &[Outbox::SubscriptionId, Outbox::Status, Outbox::Id],
        )
        .await?;
        manager
            .alter_table(Table::alter().table(Calls::Table).add_column(integer(Calls::EventSeq).default(0)).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Calls::Table).drop_column(Calls::EventSeq).to_owned()).await?;
        manager
            .drop_index(Index::drop().name("idx_outbox_subscription_pending").table(Outbox::Table).to_owned())
            .await?;
        for column in [Outbox::EventId, Outbox::SubscriptionId] {
            manager.alter_table(Table::alter().table(Outbox::Table).drop_column(column).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table(WebhookAttempts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(WebhookSubscriptions::Table).to_owned()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookSubscriptions {
    Table,
    Id,
    WorkspaceId,
    Url,
    Description,
    EventTypes,
    Enabled,
    DisabledReason,
    DisabledAt,
    FailingSince,
    Secret,
    PreviousSecret,
    PreviousSecretExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookAttempts {
    Table,
    Id,
    SubscriptionId,
    WorkspaceId,
    MessageId,
    EventType,
    Attempt,
    AttemptedAt,
    StatusCode,
    LatencyMs,
    Result,
    Error,
    ResponseExcerpt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Outbox {
    Table,
    SubscriptionId,
    EventId,
    Status,
    Id,
}

#[derive(DeriveIden)]
enum Calls {
    Table,
    EventSeq,
}
