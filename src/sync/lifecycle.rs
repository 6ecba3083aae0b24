//! Lifecycle events out: every status change of an order is published as a
//! CloudEvent to the topic exchange `workbridge.workorders` (routing key
//! `<status>.<site>`), with publisher confirms. The status history is the
//! outbox: a change is marked published only after the broker confirmed it,
//! so a broker outage delays these events and loses none. Delivery is at
//! least once; the CloudEvent `id` (the history entry's id) lets consumers
//! drop repeats. The review before the EAM is published the same way: a
//! proposal (`proposed.<site>`), its rejection (`rejected.<site>`) or
//! expiry (`expired.<site>`), its approval (`pending.<site>`) or withdrawal
//! (`cancelled.<site>`), with `data.review` naming the step.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::broker::until_connection_lost;
use crate::clock::Clock;
use crate::config::AmqpSettings;
use crate::store::Store;
use crate::store::work_orders::{self, Unpublished};

const BATCH: u64 = 100;
/// The advisory-lock key of the lifecycle publisher (any constant; "wblc").
const PUBLISHER_LOCK: i64 = 0x77626c63;

pub struct LifecyclePublisher {
    settings: AmqpSettings,
    store: Store,
    clock: Arc<dyn Clock>,
}

/// The CloudEvent for one status change.
pub fn cloudevent(u: &Unpublished) -> serde_json::Value {
    let o = &u.order;
    json!({
        "specversion": "1.0",
        "id": u.id,
        "source": "workbridge",
        "type": "workbridge.workorder.status",
        "time": u.change.at.to_rfc3339(),
        "subject": o.id,
        "datacontenttype": "application/json",
        "data": {
            "work_order_id": o.id,
            "status": u.change.status,
            "external_status": u.change.external_status,
            "reported_by": u.change.source,
            "note": u.change.note,
            "review": u.change.review,
            "external_id": o.external_id,
            "connector": o.connector,
            "site": o.site,
            "asset_id": o.asset_id,
            "rule_id": o.rule_id,
            "rule_version": o.rule_version,
            "priority": o.priority,
            "work_type": o.work_type,
            "title": o.title,
            "dedup_key": o.dedup_key,
            "event_count": o.event_count,
        }
    })
}

pub fn routing_key(u: &Unpublished) -> String {
    format!("{}.{}", u.change.status.as_str(), u.order.site.as_deref().unwrap_or("unknown"))
}

impl LifecyclePublisher {
    pub fn new(settings: AmqpSettings, store: Store, clock: Arc<dyn Clock>) -> Self {
        Self { settings, store, clock }
    }

    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = self.settings.reconnect_min();
        while !cancel.is_cancelled() {
            match self.publish_until_cancelled(&cancel).await {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "publishing lifecycle events paused; reconnecting"),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.settings.reconnect_max());
        }
    }

    async fn publish_until_cancelled(
        &self,
        cancel: &CancellationToken,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let props = ConnectionProperties::default().with_connection_name("workbridge lifecycle".into());
        let conn = Connection::connect(&self.settings.url, props).await?;
        until_connection_lost("lifecycle publisher", &conn, self.publish_on(&conn, cancel), |_| {}).await
    }

    async fn publish_on(
        &self,
        conn: &Connection,
        cancel: &CancellationToken,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let channel = conn.create_channel().await?;
        let exchange = self.settings.lifecycle_exchange.as_str();
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        loop {
            let published = if self.store.conn().get_database_backend() == DbBackend::Postgres {
                // One publisher at a time across replicas, so that changes
                // go out in the order they were recorded: a transaction
                // advisory lock, released by the commit (or a crash).
                let txn = self.store.begin().await?;
                let mine: Option<bool> = txn
                    .query_one_raw(Statement::from_string(
                        DbBackend::Postgres,
                        format!("SELECT pg_try_advisory_xact_lock({PUBLISHER_LOCK}) AS locked"),
                    ))
                    .await?
                    .map(|row| row.try_get("", "locked"))
                    .transpose()?;
                let n = if mine == Some(true) { self.publish_round(&txn, &channel).await? } else { 0 };
                txn.commit().await?;
                n
            } else {
                // SQLite runs one replica (see `Store::connect`).
                self.publish_round(self.store.conn(), &channel).await?
            };
            if published == 0 {
                // Idle, it sends nothing that would fail: it looks at the
                // connection instead, so that an outage is noticed (and the
                // reconnecting starts) before the next change to publish.
                if !conn.status().connected() {
                    return Err("the broker connection is lost".into());
                }
                tokio::select! {
                    _ = cancel.cancelled() => {
                        let _ = conn.close(200, "shutdown".into()).await;
                        return Ok(());
                    }
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        }
    }

    /// Publishes one batch of unpublished changes, waits for the broker's
    /// confirms, and marks the confirmed ones; returns how many there were.
    async fn publish_round<C: ConnectionTrait>(
        &self,
        conn: &C,
        channel: &Channel,
    ) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let exchange = self.settings.lifecycle_exchange.as_str();
        let batch = work_orders::unpublished(conn, BATCH).await?;
        let mut pending = Vec::with_capacity(batch.len());
        for u in &batch {
            let body = serde_json::to_vec(&cloudevent(u))?;
            let properties = BasicProperties::default()
                .with_content_type("application/cloudevents+json".into())
                .with_message_id(u.id.as_str().into())
                .with_delivery_mode(2);
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key(u).into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await?;
            pending.push((u.id.clone(), confirm));
        }
        let mut confirmed = Vec::with_capacity(pending.len());
        for (id, confirm) in pending {
            if confirm.await?.is_ack() {
                confirmed.push(id);
            }
        }
        work_orders::mark_published(conn, &confirmed, self.clock.now()).await?;
        Ok(batch.len())
    }
}
