//! Each status change is published to RabbitMQ as a lifecycle event; the
//! history row records when, so that the history is its own outbox.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000006_history_published"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("status_history"))
                    .add_column(ColumnDef::new(Alias::new("published_at")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_status_history_unpublished")
                    .table(Alias::new("status_history"))
                    .col(Alias::new("published_at"))
                    .col(Alias::new("recorded_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop().name("ix_status_history_unpublished").table(Alias::new("status_history")).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Alias::new("status_history")).drop_column(Alias::new("published_at")).to_owned(),
            )
            .await
    }
}
