//! Indexes that the delivery path needs once its backlog is large (found by
//! the load run with every event opening an order, on SQLite):
//! - the dispatcher reads the first event of the orders it delivers by
//!   order and outcome; with an index on the order alone, SQLite picked the
//!   one on the outcome and read every created event for each batch;
//! - the lifecycle publisher takes the oldest unpublished status changes;
//!   with an index on `published_at` alone, each round sorted the whole
//!   backlog of unpublished changes to take the first hundred.
//!
//! Both replace an index that is a prefix of them.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000014_delivery_indexes"
    }
}

/// (table, replaced index and its columns, new index and its columns)
type Swap = (&'static str, (&'static str, &'static [&'static str]), (&'static str, &'static [&'static str]));

const SWAPS: &[Swap] = &[
    (
        "events",
        ("ix_events_work_order", &["work_order_id"]),
        ("ix_events_work_order_outcome", &["work_order_id", "outcome"]),
    ),
    (
        "status_history",
        ("ix_status_history_unpublished", &["published_at"]),
        ("ix_status_history_unpublished_order", &["published_at", "recorded_at", "id"]),
    ),
];

async fn swap(manager: &SchemaManager<'_>, table: &str, from: &str, to: (&str, &[&str])) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(to.0).table(Alias::new(table)).if_not_exists();
    for c in to.1 {
        index.col(Alias::new(*c));
    }
    manager.create_index(index.to_owned()).await?;
    manager.drop_index(Index::drop().name(from).table(Alias::new(table)).to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, old, new) in SWAPS {
            swap(manager, table, old.0, *new).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, old, new) in SWAPS {
            swap(manager, table, new.0, *old).await?;
        }
        Ok(())
    }
}
