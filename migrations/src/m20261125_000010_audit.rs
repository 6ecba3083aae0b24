//! The audit trail of configuration changes (who, what, before/after).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000010_audit"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("audit"))
                    .if_not_exists()
                    .col(ColumnDef::new(Alias::new("id")).text().not_null().primary_key())
                    .col(ColumnDef::new(Alias::new("at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Alias::new("actor_key_id")).text().not_null())
                    .col(ColumnDef::new(Alias::new("actor_name")).text().not_null())
                    .col(ColumnDef::new(Alias::new("action")).text().not_null())
                    .col(ColumnDef::new(Alias::new("entity")).text().not_null())
                    .col(ColumnDef::new(Alias::new("entity_id")).text().not_null())
                    .col(ColumnDef::new(Alias::new("before")).json().null())
                    .col(ColumnDef::new(Alias::new("after")).json().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_audit_at").table(Alias::new("audit")).col(Alias::new("at")).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Alias::new("audit")).if_exists().to_owned()).await
    }
}
