//! Planner feedback on automatic orders (useful / false alarm).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000007_feedback"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("feedback"))
                    .if_not_exists()
                    .col(ColumnDef::new(Alias::new("id")).text().not_null().primary_key())
                    .col(ColumnDef::new(Alias::new("work_order_id")).text().not_null())
                    .col(ColumnDef::new(Alias::new("verdict")).text().not_null())
                    .col(ColumnDef::new(Alias::new("comment")).text().null())
                    .col(ColumnDef::new(Alias::new("author")).text().not_null())
                    .col(ColumnDef::new(Alias::new("source")).text().not_null())
                    .col(ColumnDef::new(Alias::new("created_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_feedback_order")
                    .table(Alias::new("feedback"))
                    .col(Alias::new("work_order_id"))
                    .col(Alias::new("created_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Alias::new("feedback")).if_exists().to_owned()).await
    }
}
