//! Delivers decided orders: claims due outbox rows, calls the connector,
//! records the outcome. Connectors classify failures; this is the one place
//! that retries (exponential backoff with jitter, honouring `Retry-After`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::stored_connectors::{self as connectors, StoredConnector};
use crate::clock::Clock;
use crate::config::OutboxSettings;
use crate::connectors::breaker::{Breakers, Permit};
use crate::connectors::registry::Registry;
use crate::connectors::{Connector, ConnectorError, OrderDocument};
use crate::domain::OrderStatus;
use crate::domain::{cloudevent as parse, event_context};
use crate::metrics::Metrics;
use crate::store::outbox::{self, Claimed, DeliveryStatus};
use crate::store::work_orders::{self, Delivered, StatusUpdate, WorkOrder};
use crate::store::{Store, StoreError, TransactionTrait, assets, events};

/// What one batch of deliveries needs from the database, read up front.
struct Prefetched {
    orders: HashMap<String, WorkOrder>,
    connectors: HashMap<String, Option<StoredConnector>>,
    /// Order id → the CloudEvent that opened it.
    first_events: HashMap<String, serde_json::Value>,
    assets: HashMap<String, crate::domain::Asset>,
}

/// A call about an order already in the EAM.
enum FollowUp {
    Cancel,
    Comment(String),
}

#[derive(Clone, Debug)]
pub struct Dispatcher {
    store: Store,
    clock: Arc<dyn Clock>,
    registry: Registry,
    settings: OutboxSettings,
    wake: Arc<Notify>,
    breakers: Arc<Breakers>,
    metrics: Arc<Metrics>,
    /// Sweeps the debounce timers and the expired proposals each round, when set.
    timers: Option<super::Decider>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        registry: Registry,
        settings: OutboxSettings,
        wake: Arc<Notify>,
        breakers: Arc<Breakers>,
    ) -> Self {
        Self { store, clock, registry, settings, wake, breakers, metrics: Arc::default(), timers: None }
    }

    /// Counts into `metrics` (the application's registry).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Fires `decider`'s due debounce timers at the start of each round, so
    /// that an order a timer opens is delivered in the same round.
    pub fn with_timers(mut self, decider: super::Decider) -> Self {
        self.timers = Some(decider);
        self
    }

    /// `false` (and the delivery postponed) while the connector's circuit is open.
    async fn circuit_allows(&self, c: &Claimed, connector: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        match self.breakers.permit(connector, now) {
            Permit::Allowed => Ok(true),
            Permit::Rejected(until) => {
                self.metrics.delivery(connector, &c.kind, "circuit_open", None);
                let note = format!("circuit of connector {connector} is open until {}", until.to_rfc3339());
                outbox::postpone(self.store.conn(), &c.id, until, &note, now).await?;
                work_orders::set_last_error(self.store.conn(), &c.work_order_id, &note, now).await?;
                Ok(false)
            }
        }
    }

    /// Feeds the breaker (a permanent refusal means the EAM is up and
    /// answering) and the metrics.
    fn record<T>(&self, connector: &str, kind: &str, started: std::time::Instant, result: &Result<T, ConnectorError>) {
        let healthy = matches!(result, Ok(_) | Err(ConnectorError::Permanent { .. }));
        self.breakers.record(connector, healthy, self.clock.now());
        let outcome = match result {
            Ok(_) => "success",
            Err(ConnectorError::Transient { .. }) => "transient",
            Err(ConnectorError::Permanent { .. }) => "permanent",
            Err(ConnectorError::Unknown { .. }) => "unknown",
        };
        self.metrics.delivery(connector, kind, outcome, Some(started.elapsed().as_secs_f64()));
    }

    /// Delivers until cancelled: at once when a decision wakes it, otherwise
    /// every poll interval (retries come due with time).
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            match self.dispatch_once().await {
                // A full batch: there may be more due right now; an idle
                // sibling worker takes the next batch meanwhile.
                Ok(n) if n as u64 >= self.settings.batch_size => {
                    self.wake.notify_one();
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox dispatch failed; will retry"),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval()) => {}
            }
        }
        tracing::info!("dispatcher stopped");
    }

    /// Claims and delivers one batch of due deliveries; returns how many.
    ///
    /// What the deliveries need from the database (orders, connectors,
    /// assets, first events) is read once for the batch. Deliveries of
    /// different orders overlap, `concurrency` at a time (an EAM answers in
    /// tens of milliseconds; one at a time caps orders/s); those of one order
    /// (a create, then a comment or a cancel) keep their order. Each round's
    /// leases are renewed together just before it starts, and its confirmed
    /// creates are recorded together in one transaction.
    pub async fn dispatch_once(&self) -> Result<usize, StoreError> {
        let conn = self.store.conn();
        let now = self.clock.now();
        let lease = chrono::Duration::milliseconds(self.settings.lease_ms as i64);
        let lease_for = || self.clock.now() + lease;
        if let Some(decider) = &self.timers
            && let Err(e) = decider.fire_due_timers(self.settings.batch_size, lease).await
        {
            tracing::warn!(error = %e, "sweeping debounce timers failed; will retry");
        }
        if let Some(decider) = &self.timers
            && let Err(e) = decider.expire_proposals(self.settings.batch_size).await
        {
            tracing::warn!(error = %e, "sweeping expired proposals failed; will retry");
        }
        let claimed = outbox::claim(conn, now, lease_for(), self.settings.batch_size).await?;
        let n = claimed.len();
        if n == 0 {
            return Ok(0);
        }
        let mut by_order: Vec<Vec<Claimed>> = Vec::new();
        for c in claimed {
            match by_order.iter_mut().find(|g| g[0].work_order_id == c.work_order_id) {
                Some(group) => group.push(c),
                None => by_order.push(vec![c]),
            }
        }
        let batch = self.prefetch(&by_order).await?;
        for round in by_order.chunks(self.settings.concurrency.max(1)) {
            let rows: Vec<&Claimed> = round.iter().flatten().collect();
            let ours = match outbox::renew_many(conn, &rows, lease_for()).await {
                Ok(ours) => ours,
                Err(e) => {
                    tracing::warn!(error = %e, "renewing leases failed");
                    continue;
                }
            };
            let confirmed = futures_util::future::join_all(round.iter().map(|group| {
                let (batch, ours) = (&batch, &ours);
                async move {
                    let mut confirmed = None;
                    for (i, c) in group.iter().enumerate() {
                        if !ours.contains(&c.id) {
                            tracing::info!(order = %c.work_order_id, "lease lost to another dispatcher; skipping");
                            break;
                        }
                        // A create followed by a cancel or comment is recorded
                        // at once: those read the order's EAM id.
                        let last = i + 1 == group.len();
                        match self.deliver(c, batch, last).await {
                            Ok(done) => confirmed = done,
                            // The lease runs out and the row is claimed again.
                            Err(e) => {
                                tracing::warn!(order = %c.work_order_id, error = %e, source = ?std::error::Error::source(&e), "recording a delivery failed")
                            }
                        }
                    }
                    confirmed
                }
            }))
            .await;
            let confirmed: Vec<(String, Delivered)> = confirmed.into_iter().flatten().collect();
            if !confirmed.is_empty()
                && let Err(e) = self.record_created(&confirmed).await
            {
                // The rows are claimed again once their leases end, and their
                // orders found in the EAM by reference.
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "recording deliveries failed");
            }
        }
        Ok(n)
    }

    /// What a batch of deliveries needs from the database, in a few statements.
    async fn prefetch(&self, by_order: &[Vec<Claimed>]) -> Result<Prefetched, StoreError> {
        // Committed rows only (the claim is): on SQLite, beside the writer.
        let conn = self.store.reads();
        let ids: Vec<&str> = by_order.iter().map(|g| g[0].work_order_id.as_str()).collect();
        let orders = work_orders::get_many(conn, &ids).await?;
        let mut names: Vec<&str> = orders.values().map(|o| o.connector.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut stored = std::collections::HashMap::new();
        for name in names {
            stored.insert(name.to_owned(), connectors::get(conn, name).await?);
        }
        let creating: Vec<&str> = by_order
            .iter()
            .filter(|g| g.iter().any(|c| c.kind == outbox::KIND_CREATE))
            .map(|g| g[0].work_order_id.as_str())
            .filter(|id| orders.get(*id).is_some_and(|o| o.status == OrderStatus::Pending))
            .collect();
        let first_events = events::first_of_orders(conn, &creating).await?;
        let mut asset_ids: Vec<&str> =
            creating.iter().filter_map(|id| orders.get(*id).and_then(|o| o.asset_id.as_deref())).collect();
        asset_ids.sort_unstable();
        asset_ids.dedup();
        let assets = assets::get_many(conn, &asset_ids).await?;
        Ok(Prefetched { orders, connectors: stored, first_events, assets })
    }

    /// Records confirmed creates: one transaction for the lot. A deadlock
    /// with a decision locking the same orders in another order is tried
    /// again: otherwise the rows wait for their leases to end and are
    /// delivered again (looked up by reference first).
    async fn record_created(&self, confirmed: &[(String, Delivered)]) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_record_created(confirmed).await {
                Err(e) if e.is_contention() && attempt < 5 => {
                    tracing::info!(error = %e, attempt, "recording deliveries met lock contention; trying again");
                    tokio::time::sleep(Duration::from_millis(rand::random_range(2..20))).await;
                }
                other => return other,
            }
        }
    }

    async fn try_record_created(&self, confirmed: &[(String, Delivered)]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let txn = self.store.conn().begin().await?;
        let delivered: Vec<Delivered> = confirmed.iter().map(|(_, d)| d.clone()).collect();
        let cancelled_meanwhile = work_orders::mark_delivered_many(&txn, &delivered, now).await?;
        let rows: Vec<&str> = confirmed.iter().map(|(row, _)| row.as_str()).collect();
        outbox::mark_delivered_many(&txn, &rows, now).await?;
        // A clear cancelled these while their creates were in flight: the
        // EAM has them now, so they are cancelled there too.
        let cancels: Vec<&str> = cancelled_meanwhile.iter().map(String::as_str).collect();
        outbox::enqueue_many(&txn, &cancels, outbox::KIND_CANCEL, now).await?;
        txn.commit().await?;
        for id in &cancelled_meanwhile {
            tracing::info!(order = %id, "created in the EAM after a clear cancelled it: cancelling it there");
        }
        if !cancelled_meanwhile.is_empty() {
            self.wake.notify_one();
        }
        for (_, d) in confirmed {
            tracing::info!(order = %d.order_id, external_id = %d.external_id, "order created in the EAM");
        }
        Ok(())
    }

    /// Delivers one claimed row. With `defer`, a confirmed create is
    /// returned (outbox row id, what the EAM said) for the caller to record
    /// with others; everything else is recorded here.
    #[tracing::instrument(skip_all, fields(order = %c.work_order_id, attempt = c.attempts + 1))]
    async fn deliver(
        &self,
        c: &Claimed,
        batch: &Prefetched,
        defer: bool,
    ) -> Result<Option<(String, Delivered)>, StoreError> {
        if c.kind == outbox::KIND_CANCEL {
            return self.cancel(c).await.map(|()| None);
        }
        if c.kind == outbox::KIND_COMMENT {
            return self.comment(c).await.map(|()| None);
        }
        let conn = self.store.conn();
        let order = match batch.orders.get(&c.work_order_id) {
            Some(order) => order.clone(),
            None => work_orders::get(conn, &c.work_order_id).await?,
        };
        if order.status != OrderStatus::Pending {
            // Delivered already (or cancelled meanwhile): nothing to send.
            outbox::mark_done(conn, &c.id, DeliveryStatus::Delivered, None, self.clock.now()).await?;
            return Ok(None);
        }
        if !self.circuit_allows(c, &order.connector).await? {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let stored = match batch.connectors.get(&order.connector) {
            Some(stored) => stored.clone(),
            None => connectors::get(conn, &order.connector).await?,
        };
        let result = match self.connector_from(&order, stored) {
            Ok(connector) => {
                let doc = self.document(&order, batch).await?;
                // A retry may follow a create whose outcome was unknown (a
                // timeout after the EAM stored it), and a row claimed again
                // may follow a crash after the EAM stored it: look first.
                let found = if c.attempts > 0 || c.claims > 1 {
                    connector.find_by_reference(&doc.reference).await
                } else {
                    Ok(None)
                };
                match found {
                    Ok(Some(existing)) => {
                        tracing::info!(external_id = %existing.external_id, "found the order from an earlier attempt");
                        Ok(existing)
                    }
                    Ok(None) => connector.create(&doc).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        self.record(&order.connector, outbox::KIND_CREATE, started, &result);
        if let Ok(created) = &result {
            let delivered = Delivered {
                order_id: order.order_id(),
                external_id: created.external_id.clone(),
                external_url: created.external_url.clone(),
                external_site: created.site.clone(),
                external_status: created.external_status.clone(),
                source: format!("connector:{}", order.connector),
            };
            if defer {
                return Ok(Some((c.id.clone(), delivered)));
            }
            self.record_created(&[(c.id.clone(), delivered)]).await?;
            return Ok(None);
        }
        let Err(err) = result else { return Ok(None) };
        let now = self.clock.now();
        let txn = conn.begin().await?;
        let attempts = c.attempts as u32 + 1;
        let message = err.to_string();
        let give_up = matches!(err, ConnectorError::Permanent { .. }) || attempts >= self.settings.max_attempts;
        work_orders::set_last_error(&txn, &order.id, &message, now).await?;
        if give_up {
            work_orders::change_status(
                &txn,
                &order.id,
                &StatusUpdate {
                    status: OrderStatus::Failed,
                    external_status: None,
                    source: "workbridge",
                    at: now,
                    note: Some(&format!("delivery gave up after {attempts} attempt(s): {message}")),
                },
                now,
            )
            .await?;
            outbox::mark_done(&txn, &c.id, DeliveryStatus::Failed, Some(&message), now).await?;
            tracing::warn!(attempts, error = %message, "delivery failed for good");
        } else {
            let delay = self.delay(attempts, &err);
            let next = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
            outbox::reschedule(&txn, &c.id, next, &message, now).await?;
            tracing::info!(attempts, retry_in_ms = delay.as_millis() as u64, error = %message, "delivery will be retried");
        }
        txn.commit().await?;
        Ok(None)
    }

    /// Cancels a delivered order in the EAM (the order is already
    /// `cancelled` here); failures are retried like creates.
    async fn cancel(&self, c: &Claimed) -> Result<(), StoreError> {
        let order = work_orders::get(self.store.conn(), &c.work_order_id).await?;
        self.follow_up(c, &order, FollowUp::Cancel).await
    }

    /// Adds a comment about the merged events to the order in the EAM.
    async fn comment(&self, c: &Claimed) -> Result<(), StoreError> {
        let order = work_orders::get(self.store.conn(), &c.work_order_id).await?;
        if order.external_id.is_none() && matches!(order.status, OrderStatus::Pending | OrderStatus::Proposed) {
            // Not created in the EAM yet (or still in review): comment once it is.
            let next = self.clock.now() + chrono::Duration::seconds(5);
            outbox::postpone(
                self.store.conn(),
                &c.id,
                next,
                "waiting for the order to reach the EAM",
                self.clock.now(),
            )
            .await?;
            return Ok(());
        }
        let text = format!(
            "workbridge: {} events so far for \"{}\" (dedup key {}), the latest at {}.",
            order.event_count,
            order.title,
            order.dedup_key,
            order.last_event_time.to_rfc3339()
        );
        self.follow_up(c, &order, FollowUp::Comment(text)).await
    }

    /// A call about an order that already exists in the EAM (cancel,
    /// comment). Its failure never changes the order's status.
    async fn follow_up(&self, c: &Claimed, order: &WorkOrder, call: FollowUp) -> Result<(), StoreError> {
        let what = match call {
            FollowUp::Cancel => "cancel",
            FollowUp::Comment(_) => "comment",
        };
        let conn = self.store.conn();
        if !self.circuit_allows(c, &order.connector).await? {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let result = match (self.connector_for(order).await?, order.eam_ref()) {
            (Ok(connector), Some(eam)) => match &call {
                FollowUp::Cancel => connector.cancel(&eam).await,
                FollowUp::Comment(text) => connector.add_comment(&eam, text).await,
            },
            (Ok(_), None) => Ok(()), // never reached the EAM: nothing to do there
            (Err(e), _) => Err(e),
        };
        self.record(&order.connector, what, started, &result);
        let now = self.clock.now();
        let txn = conn.begin().await?;
        match result {
            Ok(()) => {
                outbox::mark_done(&txn, &c.id, DeliveryStatus::Delivered, None, now).await?;
                if matches!(call, FollowUp::Cancel) && order.external_id.is_some() {
                    let source = format!("connector:{}", order.connector);
                    let done = StatusUpdate {
                        status: OrderStatus::Cancelled,
                        external_status: None,
                        source: &source,
                        at: now,
                        note: Some("cancelled in the EAM"),
                    };
                    work_orders::note_history(&txn, &order.id, &done, now).await?;
                }
                tracing::info!(order = %order.id, what, "done in the EAM");
            }
            Err(err) => {
                let attempts = c.attempts as u32 + 1;
                let message = format!("{what}: {err}");
                work_orders::set_last_error(&txn, &order.id, &message, now).await?;
                if matches!(err, ConnectorError::Permanent { .. }) || attempts >= self.settings.max_attempts {
                    outbox::mark_done(&txn, &c.id, DeliveryStatus::Failed, Some(&message), now).await?;
                    tracing::warn!(order = %order.id, error = %message, "giving up");
                } else {
                    let next = now + chrono::Duration::from_std(self.delay(attempts, &err)).unwrap_or_default();
                    outbox::reschedule(&txn, &c.id, next, &message, now).await?;
                }
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// Backoff for the attempt just failed; `Retry-After` wins when longer.
    fn delay(&self, attempts: u32, err: &ConnectorError) -> Duration {
        let max = Duration::from_millis(self.settings.backoff_max_ms);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.settings.backoff_min_ms))
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempts.saturating_sub(1) as usize)
            .unwrap_or(max);
        match err {
            ConnectorError::Transient { retry_after: Some(ra), .. } => {
                backoff.max((*ra).min(Duration::from_secs(3600)))
            }
            _ => backoff,
        }
    }

    async fn connector_for(&self, order: &WorkOrder) -> Result<Result<Box<dyn Connector>, ConnectorError>, StoreError> {
        let stored = connectors::get(self.store.conn(), &order.connector).await?;
        Ok(self.connector_from(order, stored))
    }

    fn connector_from(
        &self,
        order: &WorkOrder,
        stored: Option<StoredConnector>,
    ) -> Result<Box<dyn Connector>, ConnectorError> {
        let Some(stored) = stored else {
            return Err(ConnectorError::Permanent { message: format!("connector {} does not exist", order.connector) });
        };
        if !stored.enabled {
            return Err(ConnectorError::Transient {
                message: format!("connector {} is disabled", order.connector),
                retry_after: None,
            });
        }
        self.registry.build(&stored.config)
    }

    async fn document(&self, order: &WorkOrder, batch: &Prefetched) -> Result<OrderDocument, StoreError> {
        let conn = self.store.conn();
        let asset = match &order.asset_id {
            Some(id) => match batch.assets.get(id) {
                Some(asset) => Some(asset.clone()),
                None => assets::get(conn, id).await?,
            },
            None => None,
        };
        let first = match batch.first_events.get(&order.id) {
            Some(ce) => Some(ce.clone()),
            None => events::first_of_order(conn, &order.id).await?,
        };
        let event = first
            .and_then(|ce| parse::from_value(ce).ok())
            .map(|e| event_context(&e))
            .unwrap_or(serde_json::Value::Null);
        let mut doc = OrderDocument {
            reference: order.order_id(),
            title: order.title.clone(),
            description: order.description.clone(),
            work_type: order.work_type.clone(),
            priority: order.priority.clamp(1, 5) as u8,
            site: order.site.clone(),
            asset_id: order.asset_id.clone(),
            dedup_key: order.dedup_key.clone(),
            event_count: order.event_count,
            first_event_time: order.first_event_time,
            due_by: order.due_by,
            context: serde_json::Value::Null,
        };
        doc.context = serde_json::json!({
            "order": &doc,
            "asset": asset,
            "event": event,
        });
        Ok(doc)
    }
}
