//! Contacts (E.164 phone unique per workspace, name, timezone, variables) and do-not-call entries
//! (per workspace, or per campaign when `campaign_id` is set; `""` means the whole workspace).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_create_core_tables::unique_index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Contacts::Table)
                    .col(string(Contacts::Id).primary_key())
                    .col(string(Contacts::WorkspaceId))
                    .col(string(Contacts::Phone))
                    .col(string_null(Contacts::Name))
                    .col(string_null(Contacts::Timezone))
                    .col(text(Contacts::Variables))
                    .col(timestamp_with_time_zone(Contacts::CreatedAt))
                    .col(timestamp_with_time_zone(Contacts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "idx_contacts_workspace_phone",
            Contacts::Table,
            &[Contacts::WorkspaceId, Contacts::Phone],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(DncEntries::Table)
                    .col(pk_auto(DncEntries::Id))
                    .col(string(DncEntries::WorkspaceId))
                    .col(string(DncEntries::CampaignId))
                    .col(string(DncEntries::Phone))
                    .col(string_null(DncEntries::Reason))
                    .col(timestamp_with_time_zone(DncEntries::CreatedAt))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "idx_dnc_workspace_campaign_phone",
            DncEntries::Table,
            &[DncEntries::WorkspaceId, DncEntries::CampaignId, DncEntries::Phone],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DncEntries::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Contacts::Table).to_owned()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Contacts {
    Table,
    Id,
    WorkspaceId,
    Phone,
    Name,
    Timezone,
    Variables,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DncEntries {
    Table,
    Id,
    WorkspaceId,
    CampaignId,
    Phone,
    Reason,
    CreatedAt,
}
