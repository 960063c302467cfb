//! The first schema: workspaces, users, settings, calls with their event log, the outbox of
//! outgoing deliveries, stored recordings and transcripts.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .col(string(Settings::Key).primary_key())
                    .col(text(Settings::Value))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Workspaces::Table)
                    .col(string(Workspaces::Id).primary_key())
                    .col(string(Workspaces::Name))
                    .col(string(Workspaces::SigningSecret))
                    .col(timestamp_with_time_zone(Workspaces::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string(Users::Id).primary_key())
                    .col(string(Users::WorkspaceId))
                    .col(string_uniq(Users::Email))
                    .col(string(Users::PasswordHash))
                    .col(string(Users::Role))
                    .col(boolean(Users::IsActive))
                    .col(boolean(Users::IsVerified))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Calls::Table)
                    .col(string(Calls::Id).primary_key())
                    .col(string(Calls::WorkspaceId))
                    .col(string(Calls::UserId))
                    .col(string(Calls::CallType))
                    .col(string(Calls::Status))
                    .col(string_null(Calls::Reason))
                    .col(string(Calls::CustomerNumber))
                    .col(string(Calls::AgentNumber))
                    .col(string_null(Calls::Did))
                    .col(text_null(Calls::CallbackUrl))
                    .col(string(Calls::Carrier))
                    .col(string_null(Calls::ProviderCallId))
                    .col(boolean(Calls::TranscriptEnabled))
                    .col(string_null(Calls::TranscriptLanguage))
                    .col(string(Calls::TranscriptStatus))
                    .col(string(Calls::RecordingStatus))
                    .col(integer_null(Calls::DurationS))
                    .col(integer_null(Calls::AnswerDurationS))
                    .col(text(Calls::AgentConfig))
                    .col(text(Calls::State))
                    .col(boolean(Calls::IsLive))
                    .col(timestamp_with_time_zone(Calls::CreatedAt))
                    .col(timestamp_with_time_zone(Calls::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Calls::EndedAt))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_calls_user_created", Calls::Table, &[Calls::UserId, Calls::CreatedAt]).await?;
        index(manager, "idx_calls_live", Calls::Table, &[Calls::IsLive]).await?;
        manager
            .create_table(
                Table::create()
                    .table(CallEvents::Table)
                    .col(pk_auto(CallEvents::Id))
                    .col(string(CallEvents::CallId))
                    .col(string(CallEvents::WorkspaceId))
                    .col(string(CallEvents::Source))
                    .col(string(CallEvents::Kind))
                    .col(text(CallEvents::Payload))
                    .col(timestamp_with_time_zone(CallEvents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_call_events_call", CallEvents::Table, &[CallEvents::CallId, CallEvents::Id]).await?;
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(pk_auto(Outbox::Id))
                    .col(string_uniq(Outbox::MessageId))
                    .col(string(Outbox::WorkspaceId))
                    .col(string_null(Outbox::CallId))
                    .col(string(Outbox::EventType))
                    .col(text(Outbox::TargetUrl))
                    .col(text(Outbox::Body))
                    .col(string(Outbox::Status))
                    .col(integer(Outbox::Attempts))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(integer_null(Outbox::LastStatusCode))
                    .col(text_null(Outbox::LastError))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::DeliveredAt))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_outbox_pending", Outbox::Table, &[Outbox::Status, Outbox::Id]).await?;
        manager
            .create_table(
                Table::create()
                    .table(Recordings::Table)
                    .col(string(Recordings::CallId).primary_key())
                    .col(string(Recordings::WorkspaceId))
                    .col(string(Recordings::ContentType))
                    .col(blob(Recordings::Bytes))
                    .col(timestamp_with_time_zone(Recordings::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Transcripts::Table)
                    .col(string(Transcripts::CallId).primary_key())
                    .col(string(Transcripts::TranscriptId))
                    .col(string(Transcripts::WorkspaceId))
                    .col(string(Transcripts::Language))
                    .col(text(Transcripts::Summary))
                    .col(string(Transcripts::CallOutcome))
                    .col(text(Transcripts::History))
                    .col(timestamp_with_time_zone(Transcripts::CreatedAt))
                    .col(timestamp_with_time_zone(Transcripts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

/// Creates a unique index.
pub(crate) async fn unique_index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[C],
) -> Result<(), DbErr> {
    let mut statement = Index::create();
    statement.name(name).table(table).unique();
    for col in cols {
        statement.col(*col);
    }
    manager.create_index(statement.to_owned()).await
}

pub(crate) async fn index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[C],
) -> Result<(), DbErr> {
    let mut statement = Index::create();
    statement.name(name).table(table);
    for col in cols {
        statement.col(*col);
    }
    manager.create_index(statement.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Settings {
    Table,
    Key,
    Value,
}

#[derive(DeriveIden, Clone, Copy)]
enum Workspaces {
    Table,
    Id,
    Name,
    SigningSecret,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    WorkspaceId,
    Email,
    PasswordHash,
    Role,
    IsActive,
    IsVerified,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Calls {
    Table,
    Id,
    WorkspaceId,
    UserId,
    CallType,
    Status,
    Reason,
    CustomerNumber,
    AgentNumber,
    Did,
    CallbackUrl,
    Carrier,
    ProviderCallId,
    TranscriptEnabled,
    TranscriptLanguage,
    TranscriptStatus,
    RecordingStatus,
    DurationS,
    AnswerDurationS,
    AgentConfig,
    State,
    IsLive,
    CreatedAt,
    UpdatedAt,
    EndedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum CallEvents {
    Table,
    Id,
    CallId,
    WorkspaceId,
    Source,
    Kind,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Outbox {
    Table,
    Id,
    MessageId,
    WorkspaceId,
    CallId,
    EventType,
    TargetUrl,
    Body,
    Status,
    Attempts,
    NextAttemptAt,
    LastStatusCode,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Recordings {
    Table,
    CallId,
    WorkspaceId,
    ContentType,
    Bytes,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Transcripts {
    Table,
    CallId,
    TranscriptId,
    WorkspaceId,
    Language,
    Summary,
    CallOutcome,
    History,
    CreatedAt,
    UpdatedAt,
}
