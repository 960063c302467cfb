//! Carrier accounts (a workspace's Twilio, Exotel or LiveKit credentials and settings) and phone
//! numbers (DIDs) attached to them. A call placed from a number goes out through its account.

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
                    .table(CarrierAccounts::Table)
                    .col(string(CarrierAccounts::Id).primary_key())
                    .col(string(CarrierAccounts::WorkspaceId))
                    .col(string(CarrierAccounts::Name))
                    .col(string(CarrierAccounts::Provider))
                    .col(text(CarrierAccounts::Config))
                    .col(text(CarrierAccounts::Credentials))
                    .col(double(CarrierAccounts::CallsPerSecond))
                    .col(string(CarrierAccounts::CallbackToken))
                    .col(timestamp_with_time_zone(CarrierAccounts::CreatedAt))
                    .col(timestamp_with_time_zone(CarrierAccounts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_carrier_accounts_workspace", CarrierAccounts::Table, &[CarrierAccounts::WorkspaceId])
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PhoneNumbers::Table)
                    .col(string(PhoneNumbers::Id).primary_key())
                    .col(string(PhoneNumbers::WorkspaceId))
                    .col(string(PhoneNumbers::PhoneNumber))
                    .col(string_null(PhoneNumbers::CarrierId))
                    .col(string_null(PhoneNumbers::AgentId))
                    .col(string_null(PhoneNumbers::Label))
                    .col(timestamp_with_time_zone(PhoneNumbers::CreatedAt))
                    .col(timestamp_with_time_zone(PhoneNumbers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "idx_phone_numbers_workspace_number",
            PhoneNumbers::Table,
            &[PhoneNumbers::WorkspaceId, PhoneNumbers::PhoneNumber],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PhoneNumbers::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(CarrierAccounts::Table).to_owned()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum CarrierAccounts {
    Table,
    Id,
    WorkspaceId,
    Name,
    Provider,
    Config,
    Credentials,
    CallsPerSecond,
    CallbackToken,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum PhoneNumbers {
    Table,
    Id,
    WorkspaceId,
    PhoneNumber,
    CarrierId,
    AgentId,
    Label,
    CreatedAt,
    UpdatedAt,
}
