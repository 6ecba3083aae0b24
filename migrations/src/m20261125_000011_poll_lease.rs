//! When a replica last polled an order's status (a lease: replicas claim
//! orders whose lease has run out, so each order is polled once per interval).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000011_poll_lease"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("work_orders"))
                    .add_column(ColumnDef::new(Alias::new("polled_at")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Alias::new("work_orders")).drop_column(Alias::new("polled_at")).to_owned(),
            )
            .await
    }
}
