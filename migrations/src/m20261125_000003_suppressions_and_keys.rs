//! Suppressions (maintenance windows, shelving) and the dedup key on each
//! event, which debounce counts by.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000003_suppressions_and_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("suppressions"))
                    .if_not_exists()
                    .col(ColumnDef::new(Alias::new("id")).text().not_null().primary_key())
                    .col(ColumnDef::new(Alias::new("scope")).text().not_null())
                    .col(ColumnDef::new(Alias::new("target")).text().not_null())
                    .col(ColumnDef::new(Alias::new("starts_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Alias::new("ends_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Alias::new("reason")).text().not_null())
                    .col(ColumnDef::new(Alias::new("author")).text().not_null())
                    .col(ColumnDef::new(Alias::new("created_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_suppressions_target")
                    .table(Alias::new("suppressions"))
                    .col(Alias::new("scope"))
                    .col(Alias::new("target"))
                    .col(Alias::new("ends_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("events"))
                    .add_column(ColumnDef::new(Alias::new("dedup_key")).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_events_dedup_key")
                    .table(Alias::new("events"))
                    .col(Alias::new("dedup_key"))
                    .col(Alias::new("event_time"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_events_dedup_key").table(Alias::new("events")).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(Alias::new("events")).drop_column(Alias::new("dedup_key")).to_owned())
            .await?;
        manager.drop_table(Table::drop().table(Alias::new("suppressions")).if_exists().to_owned()).await
    }
}
