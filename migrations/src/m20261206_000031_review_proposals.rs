//! The review before the EAM (issue 19 §1): a proposal's expiry, when it
//! was proposed and how and when its review ended (the KPIs' time to
//! review and approval rate), the review step a status-history entry
//! records (for the lifecycle events), and an index for the expiry sweep.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000031_review_proposals"
    }
}

const ORDER_COLUMNS: [(&str, bool); 4] =
    [("expires_at", true), ("proposed_at", true), ("reviewed_at", true), ("review_outcome", false)];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        let add =
            |table: &str, column: ColumnDef| Table::alter().table(Alias::new(table)).add_column(column).to_owned();
        for (name, time) in ORDER_COLUMNS {
            let mut col = ColumnDef::new(Alias::new(name));
            if time {
                col.timestamp_with_time_zone();
            } else {
                col.string();
            }
            manager.alter_table(add("work_orders", col.null().to_owned())).await?;
        }
        manager
            .alter_table(add("status_history", ColumnDef::new(Alias::new("review")).string().null().to_owned()))
            .await?;
        // Only open proposals carry an expiry: the sweep reads a few rows.
        manager
            .create_index(
                Index::create()
                    .name("ix_work_orders_expires_at")
                    .table(Alias::new("work_orders"))
                    .col(Alias::new("expires_at"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = |table: &str, column: &str| {
            Table::alter().table(Alias::new(table)).drop_column(Alias::new(column)).to_owned()
        };
        manager
            .drop_index(Index::drop().name("ix_work_orders_expires_at").table(Alias::new("work_orders")).to_owned())
            .await?;
        manager.alter_table(drop("status_history", "review")).await?;
        for (name, _) in ORDER_COLUMNS.iter().rev() {
            manager.alter_table(drop("work_orders", name)).await?;
        }
        Ok(())
    }
}
