//! What the order lifecycle needs to stay true to the EAM: the site the EAM
//! keeps the order under (Maximo numbers work orders per site), the EAM's
//! time of the last status applied (a report older than that is stale), and
//! a flag on history entries that did not move the order as reported
//! (`stale`) or moved it along a transition the lifecycle does not know
//! (`illegal`).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000016_order_lifecycle"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        let add =
            |table: &str, column: ColumnDef| Table::alter().table(Alias::new(table)).add_column(column).to_owned();
        manager
            .alter_table(add("work_orders", ColumnDef::new(Alias::new("external_site")).string().null().to_owned()))
            .await?;
        manager
            .alter_table(add(
                "work_orders",
                ColumnDef::new(Alias::new("status_at")).timestamp_with_time_zone().null().to_owned(),
            ))
            .await?;
        manager.alter_table(add("status_history", ColumnDef::new(Alias::new("flag")).string().null().to_owned())).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = |table: &str, column: &str| {
            Table::alter().table(Alias::new(table)).drop_column(Alias::new(column)).to_owned()
        };
        manager.alter_table(drop("status_history", "flag")).await?;
        manager.alter_table(drop("work_orders", "status_at")).await?;
        manager.alter_table(drop("work_orders", "external_site")).await
    }
}
