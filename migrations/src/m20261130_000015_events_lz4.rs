//! PostgreSQL: compress the events' decision trace and payload with LZ4.
//!
//! A decision trace (one entry per candidate rule) makes most event rows
//! larger than the 2 kB past which PostgreSQL compresses a row's values, so
//! every stored event paid for pglz (about a tenth of the cost of inserting
//! a batch of events, measured on the load run's rows). LZ4 compresses as
//! well here and several times faster. Rows already stored keep their
//! compression; both read the same.
//!
//! A server built without LZ4 (or before PostgreSQL 14) keeps pglz: the
//! statement's error is caught, and nothing else depends on it. SQLite does
//! not compress.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000015_events_lz4"
    }
}

async fn set_compression(manager: &SchemaManager<'_>, method: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let sql = format!(
        "DO $$ BEGIN \
           EXECUTE 'ALTER TABLE events ALTER COLUMN trace SET COMPRESSION {method}, \
                                       ALTER COLUMN payload SET COMPRESSION {method}'; \
         EXCEPTION WHEN feature_not_supported OR syntax_error THEN \
           RAISE NOTICE 'events keep the default compression: %', SQLERRM; \
         END $$"
    );
    manager.get_connection().execute_unprepared(&sql).await.map(|_| ())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_compression(manager, "lz4").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_compression(manager, "default").await
    }
}
