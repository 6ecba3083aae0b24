//! Inbound status webhooks: per-connector settings and the ids already
//! received (a repeated `webhook-id` has no second effect).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000004_webhooks"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("connectors"))
                    .add_column(ColumnDef::new(Alias::new("webhook")).json().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("webhook_receipts"))
                    .if_not_exists()
                    .col(ColumnDef::new(Alias::new("connector")).text().not_null())
                    .col(ColumnDef::new(Alias::new("webhook_id")).text().not_null())
                    .col(ColumnDef::new(Alias::new("received_at")).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(Alias::new("connector")).col(Alias::new("webhook_id")))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Alias::new("webhook_receipts")).if_exists().to_owned()).await?;
        manager
            .alter_table(Table::alter().table(Alias::new("connectors")).drop_column(Alias::new("webhook")).to_owned())
            .await
    }
}
