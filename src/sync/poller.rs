//! Status sync by polling: for each connector that can be polled, one query
//! for a batch of its open orders, and every change into the history.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::StatusUpdate;
use crate::clock::Clock;
use crate::config::SyncSettings;
use crate::connectors::registry::Registry;
use crate::decisions::stored_connectors as connectors;
use crate::domain::ExternalId;
use crate::store::{Store, StoreError, work_orders};

pub struct Poller {
    store: Store,
    clock: Arc<dyn Clock>,
    registry: Registry,
    settings: SyncSettings,
}

impl Poller {
    pub fn new(store: Store, clock: Arc<dyn Clock>, registry: Registry, settings: SyncSettings) -> Self {
        Self { store, clock, registry, settings }
    }

    pub async fn run(self, cancel: CancellationToken) {
        if self.settings.poll_interval_ms == 0 {
            return;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(self.settings.poll_interval_ms)) => {}
            }
            if let Err(e) = self.poll_once().await {
                tracing::warn!(error = %e, "status polling failed; will retry");
            }
        }
    }

    /// One round over all connectors; returns the number of status changes.
    pub async fn poll_once(&self) -> Result<usize, StoreError> {
        let mut changed = 0;
        for stored in connectors::list(self.store.conn()).await? {
            if !stored.enabled {
                continue;
            }
            let now = self.clock.now();
            let interval = chrono::Duration::milliseconds(self.settings.poll_interval_ms as i64);
            let orders = work_orders::claim_for_poll(
                self.store.conn(),
                &stored.name,
                now,
                now - interval + chrono::Duration::milliseconds(1),
                self.settings.batch_size,
            )
            .await?;
            if orders.is_empty() {
                continue;
            }
            let Ok(connector) = self.registry.build(&stored.config) else { continue };
            let ids: Vec<ExternalId> = orders.iter().filter_map(work_orders::WorkOrder::eam_id).collect();
            let polled = match connector.poll(&ids).await {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(connector = %stored.name, error = %e, "polling a connector failed");
                    continue;
                }
            };
            let now = self.clock.now();
            let overrides = stored.webhook.as_ref().map(|w| w.statuses.clone()).unwrap_or_default();
            let txn = self.store.begin().await?;
            for p in polled {
                let Some(order) = orders.iter().find(|o| o.external_id.as_deref() == Some(p.external_id.as_str()))
                else {
                    continue;
                };
                let Some(status) = stored.config.lifecycle_status(&p.status, &overrides) else {
                    tracing::warn!(connector = %stored.name, status = %p.status, "polled status is not in the status map");
                    continue;
                };
                let reported = StatusUpdate {
                    status,
                    external_status: Some(&p.status),
                    source: "poll",
                    at: p.changed_at.unwrap_or(now),
                    note: None,
                };
                if super::apply(&txn, &order.id, reported, now).await? {
                    changed += 1;
                    super::closure_feedback(&txn, &stored, &order.id, p.closure_code.as_deref(), now).await?;
                }
            }
            txn.commit().await?;
        }
        Ok(changed)
    }
}
