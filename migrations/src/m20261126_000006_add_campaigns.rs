//! Campaigns: the campaigns (state and settings), their contacts (each with its own dialing state,
//! attempts and next due time), and on each call the campaign contact it dials.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_create_core_tables::{index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .col(string(Campaigns::Id).primary_key())
                    .col(string(Campaigns::WorkspaceId))
                    .col(string(Campaigns::UserId))
                    .col(string(Campaigns::Name))
                    .col(string(Campaigns::State))
                    .col(text(Campaigns::Settings))
                    .col(timestamp_with_time_zone(Campaigns::CreatedAt))
                    .col(timestamp_with_time_zone(Campaigns::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Campaigns::LaunchedAt))
                    .col(timestamp_with_time_zone_null(Campaigns::FinishedAt))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_campaigns_workspace", Campaigns::Table, &[Campaigns::WorkspaceId]).await?;
        index(manager, "idx_campaigns_state", Campaigns::Table, &[Campaigns::State]).await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignContacts::Table)
                    .col(big_integer(CampaignContacts::Id).primary_key().auto_increment())
                    .col(string(CampaignContacts::CampaignId))
                    .col(string(CampaignContacts::WorkspaceId))
                    .col(string_null(CampaignContacts::ContactId))
                    .col(string(CampaignContacts::Phone))
                    .col(string_null(CampaignContacts::Name))
                    .col(string(CampaignContacts::Timezone))
                    .col(text(CampaignContacts::Variables))
                    .col(string(CampaignContacts::State))
                    .col(integer(CampaignContacts::Attempts))
                    .col(timestamp_with_time_zone(CampaignContacts::NextAttemptAt))
                    .col(string_null(CampaignContacts::CallId))
                    .col(string_null(CampaignContacts::LastOutcome))
                    .col(timestamp_with_time_zone(CampaignContacts::CreatedAt))
                    .col(timestamp_with_time_zone(CampaignContacts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "idx_campaign_contacts_phone",
            CampaignContacts::Table,
            &[CampaignContacts::CampaignId, CampaignContacts::Phone],
        )
        .await?;
        index(
            manager,
            "idx_campaign_contacts_due",
            CampaignContacts::Table,
            &[CampaignContacts::CampaignId, CampaignContacts::State, CampaignContacts::NextAttemptAt],
        )
        .await?;
        manager
            .alter_table(Table::alter().table(Calls::Table).add_column(string_null(Calls::CampaignId)).to_owned())
            .await?;
        index(manager, "idx_calls_campaign", Calls::Table, &[Calls::CampaignId]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_calls_campaign").table(Calls::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Calls::Table).drop_column(Calls::CampaignId).to_owned()).await?;
        manager.drop_table(Table::drop().table(CampaignContacts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Campaigns::Table).to_owned()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Campaigns {
    Table,
    Id,
    WorkspaceId,
    UserId,
    Name,
    State,
    Settings,
    CreatedAt,
    UpdatedAt,
    LaunchedAt,
    FinishedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum CampaignContacts {
    Table,
    Id,
    CampaignId,
    WorkspaceId,
    ContactId,
    Phone,
    Name,
    Timezone,
    Variables,
    State,
    Attempts,
    NextAttemptAt,
    CallId,
    LastOutcome,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Calls {
    Table,
    CampaignId,
}
