//! Refresh tokens, one row per token issued: its family (the tokens rotated from one login), its
//! user, when it expires, when it was rotated (used once) and when its family was revoked.

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
                    .table(RefreshTokens::Table)
                    .col(string(RefreshTokens::Id).primary_key())
                    .col(string(RefreshTokens::FamilyId))
                    .col(string(RefreshTokens::UserId))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RotatedAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_refresh_tokens_family", RefreshTokens::Table, &[RefreshTokens::FamilyId]).await?;
        index(manager, "idx_refresh_tokens_expires", RefreshTokens::Table, &[RefreshTokens::ExpiresAt]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RefreshTokens::Table).to_owned()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    Id,
    FamilyId,
    UserId,
    ExpiresAt,
    RotatedAt,
    RevokedAt,
    CreatedAt,
}
