//! Indexes for inhibition, which looks for recent raised events of some
//! kinds on an asset or on its children, once per decided event: without
//! them every decision scanned the events and assets tables (the load run
//! showed decisions slowing as the events table grew).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000013_inhibit_indexes"
    }
}

const INDEXES: &[(&str, &str, &[&str])] = &[
    ("events", "ix_events_asset_time", &["asset_id", "event_time"]),
    ("events", "ix_events_kind_time", &["kind", "event_time"]),
    ("assets", "ix_assets_parent", &["parent_id"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, cols) in INDEXES {
            let mut index = Index::create();
            index.name(*name).table(Alias::new(*table)).if_not_exists();
            for c in *cols {
                index.col(Alias::new(*c));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, _) in INDEXES {
            manager.drop_index(Index::drop().name(*name).table(Alias::new(*table)).to_owned()).await?;
        }
        Ok(())
    }
}
