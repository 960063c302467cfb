//! Dialplane's database schema as sea-orm migrations. The same migrations run on SQLite (the
//! embedded default) and PostgreSQL; they run at server start and via `dialplane migrate`.
//! Migrations are independent of the entity code so old ones never change meaning.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_core_tables;
mod m20261124_000002_add_sandbox_calls_and_idempotency_keys;
mod m20261125_000003_add_webhook_subscriptions;
mod m20261125_000004_add_agents;
mod m20261126_000005_add_contacts_and_dnc;
mod m20261126_000006_add_campaigns;
mod m20261126_000007_add_carrier_accounts_and_phone_numbers;
mod m20261207_000008_order_due_campaign_contacts_by_id;
mod m20261207_000009_add_refresh_tokens;

/// Lists every migration in the order it applies.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_core_tables::Migration),
            Box::new(m20261124_000002_add_sandbox_calls_and_idempotency_keys::Migration),
            Box::new(m20261125_000003_add_webhook_subscriptions::Migration),
            Box::new(m20261125_000004_add_agents::Migration),
            Box::new(m20261126_000005_add_contacts_and_dnc::Migration),
            Box::new(m20261126_000006_add_campaigns::Migration),
            Box::new(m20261126_000007_add_carrier_accounts_and_phone_numbers::Migration),
            Box::new(m20261207_000008_order_due_campaign_contacts_by_id::Migration),
            Box::new(m20261207_000009_add_refresh_tokens::Migration),
        ]
    }
}
