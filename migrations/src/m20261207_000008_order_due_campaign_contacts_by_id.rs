//! Due contacts are found through an index that also orders them by id. A lease takes the oldest
//! due contacts, ties broken by id; without `id` in the index PostgreSQL read every due contact of
//! the campaign and sorted them to find the first few hundred (SQLite's indexes end in the rowid,
//! so it never had to).

use sea_orm_migration::prelude::*;

use crate::m20261124_000001_create_core_tables::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

const DUE: &str = "idx_campaign_contacts_due";
const DUE_BY_ID: &str = "idx_campaign_contacts_due_by_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let due_by_id = [
            CampaignContacts::CampaignId,
            CampaignContacts::State,
            CampaignContacts::NextAttemptAt,
            CampaignContacts::Id,
        ];
        index(manager, DUE_BY_ID, CampaignContacts::Table, &due_by_id).await?;
        manager.drop_index(Index::drop().name(DUE).table(CampaignContacts::Table).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let due = [CampaignContacts::CampaignId, CampaignContacts::State, CampaignContacts::NextAttemptAt];
        index(manager, DUE, CampaignContacts::Table, &due).await?;
        manager.drop_index(Index::drop().name(DUE_BY_ID).table(CampaignContacts::Table).to_owned()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum CampaignContacts {
    Table,
    Id,
    CampaignId,
    State,
    NextAttemptAt,
}
