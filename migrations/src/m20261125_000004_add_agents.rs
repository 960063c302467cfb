//! AI voice agents (seed 001): the agents, their versioned configs (draft, published, archived; one
//! current), the legacy developer API key of a user, and the per-outcome values of a transcript.

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
                    .table(Agents::Table)
                    .col(string(Agents::AgentId).primary_key())
                    .col(string_uniq(Agents::Id))
                    .col(string(Agents::WorkspaceId))
                    .col(string(Agents::UserId))
                    .col(string(Agents::AgentName))
                    .col(text(Agents::AgentDescription))
                    .col(text(Agents::Team))
                    .col(boolean(Agents::IsActive))
                    .col(string(Agents::AgentType))
                    .col(boolean(Agents::WhatsappEnabled))
                    .col(boolean(Agents::IsAuto))
                    .col(double(Agents::AgentCost))
                    .col(string_null(Agents::LivekitApiKey))
                    .col(string_null(Agents::LivekitHostUrl))
                    .col(timestamp_with_time_zone(Agents::CreatedAt))
                    .col(timestamp_with_time_zone(Agents::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique_index(manager, "idx_agents_user_name", Agents::Table, &[Agents::UserId, Agents::AgentName]).await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentConfigs::Table)
                    .col(string(AgentConfigs::Id).primary_key())
                    .col(string(AgentConfigs::AgentId))
                    .col(integer(AgentConfigs::Version))
                    .col(string(AgentConfigs::Status))
                    .col(boolean(AgentConfigs::IsCurrent))
                    .col(text(AgentConfigs::Document))
                    .col(string(AgentConfigs::CreatedBy))
                    .col(string(AgentConfigs::UpdatedBy))
                    .col(timestamp_with_time_zone(AgentConfigs::CreatedAt))
                    .col(timestamp_with_time_zone(AgentConfigs::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "idx_agent_configs_version",
            AgentConfigs::Table,
            &[AgentConfigs::AgentId, AgentConfigs::Version],
        )
        .await?;
        index(manager, "idx_agents_workspace", Agents::Table, &[Agents::WorkspaceId]).await?;
        manager
            .alter_table(Table::alter().table(Users::Table).add_column(string_null(Users::ApiKeyHash)).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table(Transcripts::Table).add_column(text_null(Transcripts::Outcomes)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Transcripts::Table).drop_column(Transcripts::Outcomes).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::ApiKeyHash).to_owned()).await?;
        manager.drop_table(Table::drop().table(AgentConfigs::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Agents::Table).to_owned()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Agents {
    Table,
    AgentId,
    Id,
    WorkspaceId,
    UserId,
    AgentName,
    AgentDescription,
    Team,
    IsActive,
    AgentType,
    WhatsappEnabled,
    IsAuto,
    AgentCost,
    LivekitApiKey,
    LivekitHostUrl,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AgentConfigs {
    Table,
    Id,
    AgentId,
    Version,
    Status,
    IsCurrent,
    Document,
    CreatedBy,
    UpdatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    ApiKeyHash,
}

#[derive(DeriveIden, Clone, Copy)]
enum Transcripts {
    Table,
    Outcomes,
}
