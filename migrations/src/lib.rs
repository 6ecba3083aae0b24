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
        Migrator::down(&db, None).await.unwrap();
        assert!(!manager.has_table("events").await.unwrap());
        Migrator::up(&db, None).await.unwrap();
        assert!(manager.has_table("events").await.unwrap());
    }
}
