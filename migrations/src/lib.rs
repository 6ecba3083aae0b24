//! Schema migrations for workbridge (PostgreSQL and SQLite).

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_initial;
mod m20261125_000002_order_due_by;
mod m20261125_000003_suppressions_and_keys;
mod m20261125_000004_webhooks;
mod m20261125_000005_order_comments;
mod m20261125_000006_history_published;
mod m20261125_000007_feedback;
mod m20261125_000008_feedback_codes;
mod m20261125_000009_api_keys;
mod m20261125_000010_audit;
mod m20261125_000011_poll_lease;
mod m20261125_000012_outbox_claims;
mod m20261125_000013_inhibit_indexes;
mod m20261130_000014_delivery_indexes;
mod m20261130_000015_events_lz4;
mod m20261205_000016_order_lifecycle;
mod m20261205_000020_debounce_timers;
mod m20261206_000031_review_proposals;
mod m20261206_000041_redecide_jobs;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_initial::Migration),
            Box::new(m20261125_000002_order_due_by::Migration),
            Box::new(m20261125_000003_suppressions_and_keys::Migration),
            Box::new(m20261125_000004_webhooks::Migration),
            Box::new(m20261125_000005_order_comments::Migration),
            Box::new(m20261125_000006_history_published::Migration),
            Box::new(m20261125_000007_feedback::Migration),
            Box::new(m20261125_000008_feedback_codes::Migration),
            Box::new(m20261125_000009_api_keys::Migration),
            Box::new(m20261125_000010_audit::Migration),
            Box::new(m20261125_000011_poll_lease::Migration),
            Box::new(m20261125_000012_outbox_claims::Migration),
            Box::new(m20261125_000013_inhibit_indexes::Migration),
            Box::new(m20261130_000014_delivery_indexes::Migration),
            Box::new(m20261130_000015_events_lz4::Migration),
            Box::new(m20261205_000016_order_lifecycle::Migration),
            Box::new(m20261205_000020_debounce_timers::Migration),
            Box::new(m20261206_000031_review_proposals::Migration),
            Box::new(m20261206_000041_redecide_jobs::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm_migration::sea_orm::Database;

    #[tokio::test]
    async fn migrations_apply_roll_back_and_apply_again() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let manager = SchemaManager::new(&db);
        assert!(manager.has_table("work_orders").await.unwrap());
        assert!(manager.has_index("work_orders", "ux_work_orders_open_key").await.unwrap());
        assert!(manager.has_column("work_orders", "due_by").await.unwrap());
        assert!(manager.has_table("suppressions").await.unwrap());
        assert!(manager.has_column("events", "dedup_key").await.unwrap());
        assert!(manager.has_table("webhook_receipts").await.unwrap());
        assert!(manager.has_column("work_orders", "expires_at").await.unwrap());
        assert!(manager.has_index("work_orders", "ix_work_orders_expires_at").await.unwrap());
        Migrator::down(&db, None).await.unwrap();
        assert!(!manager.has_table("events").await.unwrap());
        Migrator::up(&db, None).await.unwrap();
        assert!(manager.has_table("events").await.unwrap());
    }

    /// The delivery path's reads stay index lookups on SQLite, which has no
    /// statistics to steer it (the dispatcher and the lifecycle publisher
    /// once scanned, then sorted, their whole backlog every round).
    #[tokio::test]
    async fn delivery_reads_use_their_indexes() {
        use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let plan = async |sql: &str| -> String {
            let rows = db
                .query_all_raw(Statement::from_string(db.get_database_backend(), format!("EXPLAIN QUERY PLAN {sql}")))
                .await
                .unwrap();
            rows.iter().map(|r| r.try_get::<String>("", "detail").unwrap()).collect::<Vec<_>>().join("; ")
        };
        let first_events =
            plan("SELECT work_order_id, payload FROM events WHERE work_order_id IN ('a', 'b') AND outcome = 'created'")
                .await;
        assert!(first_events.contains("ix_events_work_order_outcome"), "{first_events}");
        let unpublished =
            plan("SELECT * FROM status_history WHERE published_at IS NULL ORDER BY recorded_at, id LIMIT 100").await;
        assert!(unpublished.contains("ix_status_history_unpublished_order"), "{unpublished}");
        assert!(!unpublished.contains("TEMP B-TREE"), "no sort of the backlog: {unpublished}");
    }
}
