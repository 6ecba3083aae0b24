//! Status sync by polling: every round, every followed order of every
//! connector that can be polled is asked about, in queries as large as the
//! EAM's page, and every change goes into the history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::StatusUpdate;
use crate::clock::Clock;
use crate::config::SyncSettings;
use crate::connectors::registry::Registry;
use crate::connectors::{Connector, ConnectorError, PolledStatus};
use crate::decisions::stored_connectors::{self as connectors, StoredConnector};
use crate::domain::EamRef;
use crate::store::work_orders::{self, Applied, WorkOrder};
use crate::store::{Store, StoreError};

/// What an order whose status the EAM no longer answers for shows as its
/// last error: it is still followed, and its status is left as it was.
pub const MISSING_IN_EAM: &str = "status poll: the EAM did not return this order (deleted there?)";

/// What one polling round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollRound {
    /// Orders asked about.
    pub polled: usize,
    /// Queries sent to EAMs.
    pub queries: usize,
    /// Orders whose status moved.
    pub changed: usize,
    /// Reports older than the status last applied (recorded, not applied).
    pub stale: usize,
    /// Orders the EAM did not return.
    pub missing: usize,
}

#[derive(Clone)]
pub struct Poller {
    store: Store,
    clock: Arc<dyn Clock>,
    registry: Registry,
    settings: SyncSettings,
    /// Connector → when its EAM may be asked again (a 429's `Retry-After`).
    paused_until: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
}

impl Poller {
    pub fn new(store: Store, clock: Arc<dyn Clock>, registry: Registry, settings: SyncSettings) -> Self {
        Self { store, clock, registry, settings, paused_until: Arc::default() }
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
        Ok(self.poll_round().await?.changed)
    }

    /// One round over all connectors: every order due is polled.
    pub async fn poll_round(&self) -> Result<PollRound, StoreError> {
        let mut round = PollRound::default();
        for stored in connectors::list(self.store.conn()).await? {
            if !stored.enabled || self.paused(&stored.name) {
                continue;
            }
            let Ok(connector) = self.registry.build(&stored.config) else { continue };
            self.poll_connector(&stored, connector.as_ref(), &mut round).await?;
        }
        Ok(round)
    }

    fn paused(&self, connector: &str) -> bool {
        let now = self.clock.now();
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        match paused.get(connector) {
            Some(until) if *until > now => true,
            Some(_) => {
                paused.remove(connector);
                false
            }
            None => false,
        }
    }

    /// Claims and polls batches of one connector's due orders until none is
    /// left due (another replica may take some of them meanwhile).
    async fn poll_connector(
        &self,
        stored: &StoredConnector,
        connector: &dyn Connector,
        round: &mut PollRound,
    ) -> Result<(), StoreError> {
        let interval = chrono::Duration::milliseconds(self.settings.poll_interval_ms as i64);
        let follow_completed = chrono::Duration::hours(self.settings.follow_completed_hours as i64);
        let limit = (connector.poll_batch_limit() as u64).min(self.settings.batch_size).max(1);
        // Due: not polled within the interval. An order this round polled
        // already is not asked about again (with a zero interval, or a clock
        // that does not move, it would be due again at once).
        let mut seen = std::collections::HashSet::new();
        loop {
            let now = self.clock.now();
            let claimed = work_orders::claim_for_poll(
                self.store.conn(),
                &stored.name,
                now,
                now - interval + chrono::Duration::milliseconds(1),
                now - follow_completed,
                limit,
            )
            .await?;
            let full = claimed.len() as u64 >= limit;
            let orders: Vec<WorkOrder> = claimed.into_iter().filter(|o| seen.insert(o.id.clone())).collect();
            if orders.is_empty() {
                return Ok(());
            }
            let refs: Vec<EamRef> = orders.iter().filter_map(WorkOrder::eam_ref).collect();
            round.queries += 1;
            let polled = match connector.poll(&refs).await {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
                    work_orders::release_poll_claims(self.store.conn(), &ids).await?;
                    self.pause_after(&stored.name, &e);
                    tracing::warn!(connector = %stored.name, error = %e, "polling a connector failed");
                    return Ok(());
                }
            };
            round.polled += orders.len();
            self.apply(stored, &orders, polled, round).await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// An EAM that answered 429 is not asked again before its `Retry-After`
    /// (capped at an hour); other failures wait for the next round.
    fn pause_after(&self, connector: &str, e: &ConnectorError) {
        if let ConnectorError::Transient { retry_after: Some(wait), .. } = e {
            let wait = chrono::Duration::from_std((*wait).min(Duration::from_secs(3600))).unwrap_or_default();
            let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            paused.insert(connector.to_owned(), self.clock.now() + wait);
        }
    }

    /// Applies what the EAM answered for a batch, in one transaction. The
    /// answer is matched by the EAM's id and site, not by its order; an
    /// order missing from it is flagged (`MISSING_IN_EAM`) and followed on.
    async fn apply(
        &self,
        stored: &StoredConnector,
        orders: &[WorkOrder],
        polled: Vec<PolledStatus>,
        round: &mut PollRound,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let overrides = stored.webhook.as_ref().map(|w| w.statuses.clone()).unwrap_or_default();
        let txn = self.store.begin().await?;
        let mut answered = vec![false; orders.len()];
        for p in polled {
            let Some(i) = orders.iter().position(|o| {
                o.external_id.as_deref() == Some(p.external_id.as_str())
                    && (p.site.is_none() || o.external_site.is_none() || o.external_site == p.site)
            }) else {
                continue;
            };
            answered[i] = true;
            let order = &orders[i];
            if order.last_error.as_deref() == Some(MISSING_IN_EAM) {
                work_orders::clear_last_error(&txn, &order.id, now).await?;
            }
            let Some(status) = stored.config.lifecycle_status(&p.status, &overrides) else {
                tracing::warn!(connector = %stored.name, status = %p.status, "polled status is not in the status map");
                continue;
            };
            let reported = StatusUpdate {
                status,
                external_status: Some(&p.status),
                source: "poll",
                // The EAM's time; one that gives none reports "now".
                at: p.changed_at.unwrap_or(now),
                note: None,
            };
            match work_orders::apply_status(&txn, &order.id, Some((order.status, order.status_at)), &reported, now)
                .await?
            {
                Applied::Moved | Applied::MovedIllegally => {
                    round.changed += 1;
                    super::closure_feedback(&txn, stored, &order.id, p.closure_code.as_deref(), now).await?;
                }
                Applied::Stale => round.stale += 1,
                Applied::Unchanged => {}
            }
        }
        for (order, _) in orders.iter().zip(&answered).filter(|(_, a)| !**a) {
            round.missing += 1;
            if order.last_error.as_deref() != Some(MISSING_IN_EAM) {
                tracing::warn!(connector = %stored.name, order = %order.id, external_id = ?order.external_id, "the EAM did not return a polled order");
                work_orders::set_last_error(&txn, &order.id, MISSING_IN_EAM, now).await?;
            }
        }
        txn.commit().await?;
        Ok(())
    }
}
