//! The sandbox carrier's own durable log of the calls it accepted (so it survives a restart like a
//! real carrier would, and can answer status requests), and the Idempotency-Key records of
//! call-creating requests.

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
                    .table(SandboxCalls::Table)
                    .col(string(SandboxCalls::Sid).primary_key())
                    .col(string(SandboxCalls::Reference))
                    .col(string(SandboxCalls::Kind))
                    .col(string(SandboxCalls::CustomerNumber))
                    .col(text(SandboxCalls::StatusCallback))
                    .col(timestamp_with_time_zone(SandboxCalls::PlacedAt))
                    .col(double(SandboxCalls::TimeScale))
                    .col(integer(SandboxCalls::AckedSequence))
                    .col(boolean(SandboxCalls::Finished))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sandbox_calls_reference")
                    .table(SandboxCalls::Table)
                    .col(SandboxCalls::Reference)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(string(IdempotencyKeys::WorkspaceId))
                    .col(string(IdempotencyKeys::Key))
                    .col(string(IdempotencyKeys::RequestHash))
                    .col(string(IdempotencyKeys::CallId))
                    .col(integer(IdempotencyKeys::ResponseStatus))
                    .col(text(IdempotencyKeys::ResponseBody))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .primary_key(Index::create().col(IdempotencyKeys::WorkspaceId).col(IdempotencyKeys::Key))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_idempotency_keys_created")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(SandboxCalls::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum SandboxCalls {
    Table,
    Sid,
    Reference,
    Kind,
    CustomerNumber,
    StatusCallback,
    PlacedAt,
    TimeScale,
    AckedSequence,
    Finished,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    WorkspaceId,
    Key,
    RequestHash,
    CallId,
    ResponseStatus,
    ResponseBody,
    CreatedAt,
}
