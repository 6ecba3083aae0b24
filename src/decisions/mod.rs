//! The decision: map the event, evaluate the rules, and create or merge an
//! order. The event row, the order and its outbox row are written in ONE
//! transaction, so that a committed event always carries all its effects
//! and a message is acknowledged only after that commit.

pub mod backtest;
pub mod dispatcher;
pub mod stored_connectors;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::config::SlaSettings;
use crate::domain::OrderStatus;
use crate::domain::inhibit::{InhibitRule, parse_equal};
use crate::domain::{AlertState, EventOutcome, InboundEvent};
use crate::domain::{Asset, template};
use crate::mapping::{self, Mapping};
use crate::metrics::Metrics;
use crate::rules::{self, Action, CreateAction, Debounce, Evaluated, OnClear, Rule, RuleSet};
use crate::store::events::{self, Decided};
use crate::store::suppressions::{self, Scope};
use crate::store::work_orders::{self, NewOrder, StatusUpdate};
use crate::store::{self as store_mod, Store, StoreError, TransactionTrait, new_id, outbox};

/// What happened to one accepted event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    /// workbridge's id of the stored event.
    pub id: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `id`.
    pub event_id: String,
    pub outcome: EventOutcome,
    /// True when this (source, id) had been received before: nothing new happened.
    pub duplicate: bool,
    pub asset_id: Option<String>,
    pub work_order_id: Option<String>,
}

#[derive(Clone)]
pub struct Decider {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Wakes the dispatcher when a decision created a delivery.
    wake: Arc<Notify>,
    policy: Arc<Policy>,
    rules: Arc<RuleCache>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider").finish_non_exhaustive()
    }
}

/// The compiled rule set, reloaded when the rules table changes (on any
/// replica): its stamp is the rule count and the latest change.
#[derive(Default)]
struct RuleCache {
    loaded: std::sync::Mutex<Option<(store_mod::rules::Stamp, Arc<RuleSet>)>>,
}

impl RuleCache {
    async fn get<C: sea_orm::ConnectionTrait>(&self, conn: &C) -> Result<Arc<RuleSet>, StoreError> {
        let stamp = store_mod::rules::stamp(conn).await?;
        if let Some((s, set)) = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && *s == stamp
        {
            return Ok(set.clone());
        }
        let (set, errors) = RuleSet::compile_skipping(store_mod::rules::list(conn).await?);
        for e in errors {
            tracing::error!(error = %e, "a stored rule does not compile and is skipped");
        }
        let set = Arc::new(set);
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = Some((stamp, set.clone()));
        Ok(set)
    }
}

/// What one transaction loads once for all the events it decides.
pub(crate) struct Snapshot {
    /// Per inhibit rule: whether any event could inhibit now (a recent
    /// raised source event is stored, or one is in this batch). Most of the
    /// time none is, and the per-event inhibitor queries are skipped.
    inhibit_live: Vec<bool>,
    /// Maintenance windows and shelvings in force now.
    suppressions: Vec<suppressions::Suppression>,
}

impl Snapshot {
    async fn load(
        txn: &store_mod::DatabaseTransaction,
        policy: &Policy,
        batch: &[InboundEvent],
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let earliest = batch.iter().map(|e| e.time.unwrap_or(now)).min().unwrap_or(now);
        let mut inhibit_live = Vec::with_capacity(policy.inhibit.len());
        for rule in &policy.inhibit {
            let in_batch = batch.iter().any(|e| e.state == AlertState::Raised && rule.source.matches(e.kind, &e.code));
            let live = in_batch || {
                let kinds: Vec<String> = rule.source.types.iter().map(|k| k.as_str().to_owned()).collect();
                let since = earliest - Duration::hours(i64::from(rule.max_age_hours));
                events::any_raised(txn, &kinds, &rule.source.codes, since).await?
            };
            inhibit_live.push(live);
        }
        let suppressions = suppressions::all_in_force(txn, now).await?;
        Ok(Self { inhibit_live, suppressions })
    }
}

/// Settings that shape decisions beyond the rules themselves.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub sla: SlaSettings,
    pub inhibit: Vec<InhibitRule>,
    /// The bound on evaluating the rules for ingest.
    pub budget: EvalBudget,
    /// The bound on evaluating them for planners (dry runs, backtests): its
    /// own permits, so that however many of those run, or however long,
    /// ingest's permits stay free.
    pub dry_run_budget: EvalBudget,
}

/// Rule evaluation with CEL conditions runs on the blocking pool under a
/// deadline: CEL has no run-time budget, so a hostile condition could
/// otherwise hold an async worker for ever. CPU work cannot be cancelled;
/// the permits bound how many evaluations, finished or runaway, run at once.
#[derive(Clone)]
pub struct EvalBudget {
    permits: Arc<tokio::sync::Semaphore>,
    /// How many permits there are.
    size: u32,
    limit: std::time::Duration,
}

impl std::fmt::Debug for EvalBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalBudget").field("limit", &self.limit).finish_non_exhaustive()
    }
}

impl Default for EvalBudget {
    fn default() -> Self {
        Self::new(std::time::Duration::from_millis(250))
    }
}

impl EvalBudget {
    /// Two permits per core.
    pub fn new(limit: std::time::Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_permits(limit, cores * 2)
    }

    /// At most `permits` evaluations (at least one) run at once.
    pub fn with_permits(limit: std::time::Duration, permits: usize) -> Self {
        let size = permits.clamp(1, tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
        Self { permits: Arc::new(tokio::sync::Semaphore::new(size as usize)), size, limit }
    }

    /// Takes every permit, as long evaluations would (for tests of what
    /// else still runs then); they come back when the guard is dropped.
    #[doc(hidden)]
    pub async fn occupy(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.permits.clone().acquire_many_owned(self.size).await.expect("the semaphore is never closed")
    }

    /// The verdict of `rules` on the event, or `EvaluationTimeout`.
    pub async fn verdict(
        &self,
        event: &InboundEvent,
        asset: &Asset,
        rules: &Arc<RuleSet>,
    ) -> Result<Evaluated, StoreError> {
        if !rules.has_conditions() {
            // Matchers alone are bounded by the set's size: no need to leave the task.
            return Ok(rules::verdict(event, asset, rules));
        }
        let timeout = || StoreError::EvaluationTimeout(self.limit.as_millis() as u64);
        let deadline = tokio::time::Instant::now() + self.limit;
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| timeout())?
            .map_err(|_| timeout())?;
        let (event, asset, rules) = (event.clone(), asset.clone(), rules.clone());
        let task = tokio::task::spawn_blocking(move || {
            let _held_until_done = permit;
            rules::verdict(&event, &asset, &rules)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(verdict)) => Ok(verdict),
            Ok(Err(e)) => Err(StoreError::Corrupt(format!("rule evaluation failed: {e}"))),
            Err(_) => {
                tracing::error!(limit_ms = self.limit.as_millis() as u64, "rule evaluation timed out");
                Err(timeout())
            }
        }
    }
}

impl EvalBudget {
    /// The verdicts on a batch of (event, asset), in one task on the
    /// blocking pool. Each event keeps its own deadline: if any one runs past
    /// it the whole batch is refused with `EvaluationTimeout`, and the caller
    /// decides the events one by one, so that only the runaway one is refused.
    /// The events are the batch's, by position (shared with the blocking
    /// task, not copied).
    pub async fn verdicts(
        &self,
        batch: &Arc<[InboundEvent]>,
        items: Vec<(usize, &Asset)>,
        rules: &Arc<RuleSet>,
    ) -> Result<Vec<Evaluated>, StoreError> {
        if !rules.has_conditions() || items.len() <= 1 {
            let mut out = Vec::with_capacity(items.len());
            for (position, asset) in items {
                out.push(self.verdict(&batch[position], asset, rules).await?);
            }
            return Ok(out);
        }
        let timeout = || StoreError::EvaluationTimeout(self.limit.as_millis() as u64);
        let permit = tokio::time::timeout(self.limit, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| timeout())?
            .map_err(|_| timeout())?;
        let n = items.len();
        let owned: Vec<(usize, Asset)> = items.into_iter().map(|(p, a)| (p, a.clone())).collect();
        let batch = batch.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let rules = rules.clone();
        tokio::task::spawn_blocking(move || {
            let _held_until_done = permit;
            for (position, asset) in &owned {
                if tx.send(rules::verdict(&batch[*position], asset, &rules)).is_err() {
                    return; // the batch was given up
                }
            }
        });
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout(self.limit, rx.recv()).await {
                Ok(Some(verdict)) => out.push(verdict),
                Ok(None) => return Err(StoreError::Corrupt("rule evaluation failed".into())),
                Err(_) => {
                    tracing::warn!(limit_ms = self.limit.as_millis() as u64, "rule evaluation of a batch timed out");
                    return Err(timeout());
                }
            }
        }
        Ok(out)
    }
}

/// What a decision would do, computed without side effects.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DryRun {
    pub outcome: EventOutcome,
    pub asset_id: Option<String>,
    pub rule_id: Option<String>,
    pub rule_version: Option<i32>,
    /// The open order it would merge into (or a clear would be recorded on).
    pub work_order_id: Option<String>,
    /// The order it would open.
    pub would_create: Option<OrderPreview>,
    /// Mapping, rules tried and why, and the decision.
    pub trace: Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderPreview {
    pub connector: String,
    pub title: String,
    pub description: String,
    pub work_type: String,
    pub priority: i32,
    pub dedup_key: String,
    pub due_by: Option<DateTime<Utc>>,
}

impl Decider {
    pub fn new(store: Store, clock: Arc<dyn Clock>, wake: Arc<Notify>, policy: Policy) -> Self {
        Self { store, clock, wake, policy: Arc::new(policy), rules: Arc::default(), metrics: Arc::default() }
    }

    /// Counts into `metrics` (the application's registry).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The bound on rule evaluation for ingest.
    pub fn budget(&self) -> &EvalBudget {
        &self.policy.budget
    }

    /// The bound on rule evaluation for dry runs and backtests.
    pub fn dry_run_budget(&self) -> &EvalBudget {
        &self.policy.dry_run_budget
    }

    /// Asks the dispatcher to look for work now (after a manual retry).
    pub fn wake_dispatcher(&self) {
        self.wake.notify_one();
    }

    /// Decides `event` against the stored rules, or `proposed` ones, inside a
    /// transaction that is rolled back: the answer reflects the open orders
    /// as they are, and nothing is written.
    ///
    /// The rules are evaluated first, under the dry-run budget (never
    /// ingest's) and with no connection held: on SQLite the transaction
    /// holds the one writer connection, which ingest needs.
    pub async fn dry_run(&self, event: &InboundEvent, proposed: Option<RuleSet>) -> Result<DryRun, StoreError> {
        let reads = self.store.reads();
        let rules = match proposed {
            Some(set) => Arc::new(set),
            None => self.rules.get(reads).await?,
        };
        let mapping = mapping::map_event(reads, event).await?;
        let verdict = match &mapping {
            Some(m) => Some(self.policy.dry_run_budget.verdict(event, &m.asset, &rules).await?),
            None => None,
        };
        let prepared = Prepared::new(event, mapping, verdict, &rules);
        let now = self.clock.now();
        let txn = self.store.conn().begin().await?;
        let snap = Snapshot::load(&txn, &self.policy, std::slice::from_ref(event), now).await?;
        let (decided, order) = decide_prepared(&txn, event, &prepared, &snap, &self.policy, now, None)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a decision in the database gave no answer".into()))?;
        txn.rollback().await?;
        let created = decided.outcome == EventOutcome::Created;
        Ok(DryRun {
            outcome: decided.outcome,
            asset_id: decided.asset_id,
            rule_id: decided.rule_id,
            rule_version: decided.rule_version,
            work_order_id: if created { None } else { decided.work_order_id },
            would_create: order.filter(|_| created).map(|o| OrderPreview {
                connector: o.connector,
                title: o.title,
                description: o.description,
                work_type: o.work_type,
                priority: o.priority,
                dedup_key: o.dedup_key,
                due_by: o.due_by,
            }),
            trace: decided.trace,
        })
    }

    /// Stores the event and everything it causes, once per (source, id).
    #[tracing::instrument(skip_all, fields(source = %event.source, event_id = %event.id))]
    pub async fn accept(&self, event: &InboundEvent) -> Result<Accepted, StoreError> {
        // Redeliveries are common (at-least-once): answer them without a write.
        if let Some(existing) = events::find(self.store.conn(), &event.source, &event.id).await? {
            return Ok(duplicate(existing));
        }
        match self.accept_batch(Arc::from([event.clone()])).await {
            Ok(mut accepted) => accepted.pop().ok_or_else(|| StoreError::NotFound(format!("event {}", event.id))),
            // Another consumer or replica stored it first: answer from what it stored.
            Err(e @ StoreError::Conflict(_)) => {
                match events::find(self.store.conn(), &event.source, &event.id).await? {
                    Some(existing) => Ok(duplicate(existing)),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Stores a batch of events and everything they cause in ONE transaction
    /// (group commit: one flush to disk for the lot), deciding them in order,
    /// so a later event sees the order an earlier one opened. All or nothing:
    /// on any error nothing is stored and the caller decides them one by one.
    pub async fn accept_batch(&self, batch: Arc<[InboundEvent]>) -> Result<Vec<Accepted>, StoreError> {
        let prepared = self.prepare(batch).await?;
        self.accept_prepared(prepared).await
    }

    /// `accept_batch` in two steps, so that a consumer can read and evaluate
    /// the next batch while this one is being written: the reads and the
    /// rule evaluation, outside any transaction. Nothing is written.
    pub async fn prepare(&self, batch: Arc<[InboundEvent]>) -> Result<PreparedBatch, StoreError> {
        let conn = self.store.reads();
        let rules = self.rules.get(conn).await?;
        let keys: Vec<(&str, &str)> = batch.iter().map(|e| (e.source.as_str(), e.id.as_str())).collect();
        let stored = events::existing(conn, &keys).await?;
        // The positions to decide; a repeat within the batch answers as its first.
        let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(batch.len());
        let mut repeat_of = vec![None; batch.len()];
        let mut fresh = Vec::with_capacity(batch.len());
        for (position, key) in keys.iter().enumerate() {
            if stored.contains(&position) {
                continue;
            }
            match first.entry(*key) {
                std::collections::hash_map::Entry::Occupied(o) => repeat_of[position] = Some(*o.get()),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(position);
                    fresh.push(position);
                }
            }
        }
        let fresh_events: Vec<&InboundEvent> = fresh.iter().map(|&p| &batch[p]).collect();
        let mappings = mapping::map_events(conn, &fresh_events).await?;
        let mapped = fresh.iter().zip(&mappings).filter_map(|(p, m)| m.as_ref().map(|m| (*p, &m.asset)));
        let mut verdicts = self.policy.budget.verdicts(&batch, mapped.collect(), &rules).await?.into_iter();
        let items = fresh_events
            .iter()
            .zip(mappings)
            .map(|(e, m)| {
                let verdict = m.as_ref().and_then(|_| verdicts.next());
                PreparedEvent::new(e, m, verdict, &rules)
            })
            .collect();
        Ok(PreparedBatch { events: batch, rules, fresh, repeat_of, items })
    }

    /// The second step of `accept_batch`: locks, decides and writes a
    /// prepared batch. If a new order's key was taken meanwhile, the batch is
    /// read and decided again.
    pub async fn accept_prepared(&self, prepared: PreparedBatch) -> Result<Vec<Accepted>, StoreError> {
        let batch = prepared.events.clone();
        let mut prepared = Some(prepared);
        let mut attempt = 0;
        let results = loop {
            attempt += 1;
            let this = match prepared.take() {
                Some(p) => p,
                None => self.prepare(batch.clone()).await?,
            };
            match self.decide_batch(this).await? {
                Some(results) => break results,
                // Another replica opened an order for one of our new keys
                // meanwhile: decided again, those events merge into it.
                None if attempt < 5 => {
                    tracing::debug!(attempt, "a new order's key was taken concurrently; deciding the batch again");
                    tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(1..10))).await;
                }
                None => return Err(StoreError::Conflict("new orders' keys kept being taken concurrently".into())),
            }
        };
        let mut created = false;
        let mut out = Vec::with_capacity(batch.len());
        for (event, result) in batch.iter().zip(results) {
            match result {
                Some(a) => {
                    if !a.duplicate {
                        self.metrics.event(event.kind.as_str(), a.outcome.as_str());
                        created |= a.outcome == EventOutcome::Created;
                    }
                    out.push(a);
                }
                None => {
                    let existing = events::find(self.store.conn(), &event.source, &event.id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("event {}", event.id)))?;
                    out.push(duplicate(existing));
                }
            }
        }
        if created {
            self.wake.notify_one();
        }
        Ok(out)
    }

    /// One attempt at deciding a prepared batch: what each position became
    /// (`None`: stored before this batch), or `None` when a new order's key
    /// was taken by another transaction (nothing is stored; decide again).
    ///
    /// The reads are set-based: the duplicates, the mappings and the rule
    /// verdicts were fetched once for the batch by `prepare`, and the open
    /// orders of every dedup key are locked and read at once. Most events
    /// are then decided in memory and written together (multi-row inserts,
    /// one update for all merges). An event whose
    /// decision needs more of the stored state (a clear, debounce, cooldown,
    /// a live inhibition, a comment on merge, shadow rules) first flushes
    /// what is pending and is decided against the database, as it would be
    /// alone.
    async fn decide_batch(&self, prepared: PreparedBatch) -> Result<Option<Vec<Option<Accepted>>>, StoreError> {
        let now = self.clock.now();
        let PreparedBatch { events: batch, rules, fresh, repeat_of, items } = prepared;
        let prepared: Vec<Prepared> = items.into_iter().map(|i| i.resolve(&rules)).collect();
        let fresh_events: Vec<&InboundEvent> = fresh.iter().map(|&p| &batch[p]).collect();
        // The transaction (and, on SQLite, the one connection) is held only
        // while orders are locked and written. A duplicate stored since the
        // batch was prepared is still caught by the insert.
        let conn = self.store.conn();
        let txn = conn.begin().await?;
        let snap = Snapshot::load(&txn, &self.policy, &batch, now).await?;
        let mut wanted: Vec<&str> = prepared.iter().filter_map(|p| p.key.as_deref()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let held = if wanted.is_empty() { HashMap::new() } else { work_orders::open_by_keys(&txn, &wanted).await? };
        let mut open: OpenOrders = wanted.iter().map(|k| ((*k).to_owned(), held.get(*k).cloned())).collect();

        let mut results: Vec<Option<Accepted>> = vec![None; batch.len()];
        let mut pending = Pending::default();
        for ((&position, &event), p) in fresh.iter().zip(&fresh_events).zip(&prepared) {
            let policy = &self.policy;
            let (decided, opened, in_memory) =
                match decide_prepared(&txn, event, p, &snap, policy, now, Some(&open)).await? {
                    Some((decided, opened)) => (decided, opened, true),
                    None => {
                        // Needs the stored state: bring it up to date first.
                        match pending.flush(&txn, now).await? {
                            Flushed::Done => {}
                            interrupted => return abandon(txn, interrupted).await,
                        }
                        let (decided, opened) = decide_prepared(&txn, event, p, &snap, policy, now, None)
                            .await?
                            .ok_or_else(|| StoreError::Corrupt("a decision in the database gave no answer".into()))?;
                        if let Some(key) = &p.key {
                            open.insert(key.clone(), work_orders::find_open(&txn, key).await?);
                        }
                        (decided, opened, false)
                    }
                };
            let id = new_id();
            results[position] = Some(Accepted {
                id: id.clone(),
                source: event.source.clone(),
                event_id: event.id.clone(),
                outcome: decided.outcome,
                duplicate: false,
                asset_id: decided.asset_id.clone(),
                work_order_id: decided.work_order_id.clone(),
            });
            if !in_memory {
                if !events::insert_if_new(&txn, &id, event, decided, now).await? {
                    return abandon(txn, Flushed::EventStored).await;
                }
                continue;
            }
            match (decided.outcome, opened, &decided.work_order_id) {
                (EventOutcome::Created, Some(order), _) => {
                    open.insert(order.dedup_key.clone(), Some(order.id.clone()));
                    pending.orders.push(order);
                }
                (EventOutcome::Merged, _, Some(order_id)) => pending.merge(order_id, event.time.unwrap_or(now)),
                _ => {}
            }
            pending.events.push((id, event, decided));
        }
        match pending.flush(&txn, now).await? {
            Flushed::Done => {}
            interrupted => return abandon(txn, interrupted).await,
        }
        txn.commit().await?;
        for (position, earlier) in repeat_of.into_iter().enumerate() {
            if let Some(earlier) = earlier {
                let first = results[earlier].clone().map(|a| Accepted { duplicate: true, ..a });
                results[position] = first;
            }
        }
        Ok(Some(results))
    }
}

/// Rolls back a batch that another transaction interfered with: a taken
/// key is decided again (`None`); an event stored meanwhile sends the
/// caller one by one (`Conflict`).
async fn abandon(
    txn: store_mod::DatabaseTransaction,
    why: Flushed,
) -> Result<Option<Vec<Option<Accepted>>>, StoreError> {
    txn.rollback().await?;
    match why {
        Flushed::EventStored => Err(StoreError::Conflict("an event of the batch was stored concurrently".into())),
        _ => Ok(None),
    }
}

/// Dedup key → the open order that holds it (`None`: none is open), for the
/// keys of one batch.
type OpenOrders = HashMap<String, Option<String>>;

/// What the in-memory decisions of a batch will write.
#[derive(Default)]
struct Pending<'e> {
    orders: Vec<NewOrder>,
    /// (order id, events merged, time of the last one)
    merges: Vec<(String, i32, DateTime<Utc>)>,
    merge_index: HashMap<String, usize>,
    events: Vec<(String, &'e InboundEvent, Decided)>,
}

enum Flushed {
    Done,
    /// Another transaction holds the key of one of the new orders.
    KeyTaken,
    /// Another transaction stored one of the events.
    EventStored,
}

impl<'e> Pending<'e> {
    fn merge(&mut self, order_id: &str, event_time: DateTime<Utc>) {
        match self.merge_index.get(order_id) {
            Some(&i) => {
                self.merges[i].1 += 1;
                self.merges[i].2 = event_time;
            }
            None => {
                self.merge_index.insert(order_id.to_owned(), self.merges.len());
                self.merges.push((order_id.to_owned(), 1, event_time));
            }
        }
    }

    /// Writes it all, in a few multi-row statements, and starts afresh.
    async fn flush(&mut self, txn: &store_mod::DatabaseTransaction, now: DateTime<Utc>) -> Result<Flushed, StoreError> {
        if !self.orders.is_empty() {
            if !work_orders::insert_open_many(txn, &mut self.orders, now).await? {
                return Ok(Flushed::KeyTaken);
            }
            let ids: Vec<&str> = self.orders.iter().map(|o| o.id.as_str()).collect();
            outbox::enqueue_many(txn, &ids, outbox::KIND_CREATE, now).await?;
            self.orders.clear();
        }
        if !self.merges.is_empty() {
            let merges: Vec<(&str, i32, DateTime<Utc>)> =
                self.merges.iter().map(|(id, n, at)| (id.as_str(), *n, *at)).collect();
            work_orders::merge_many(txn, &merges, now).await?;
            self.merges.clear();
            self.merge_index.clear();
        }
        if !self.events.is_empty() && !events::insert_many(txn, std::mem::take(&mut self.events), now).await? {
            return Ok(Flushed::EventStored);
        }
        Ok(Flushed::Done)
    }
}

fn duplicate(e: events::EventRecord) -> Accepted {
    Accepted {
        id: e.id,
        source: e.source,
        event_id: e.event_id,
        outcome: e.outcome,
        duplicate: true,
        asset_id: e.asset_id,
        work_order_id: e.work_order_id,
    }
}

fn template_context(event: &InboundEvent, asset: &Asset) -> Value {
    json!({ "event": crate::domain::EventView::of(event), "asset": asset })
}

fn mapping_trace(m: &Option<Mapping>) -> Value {
    match m {
        Some(m) => json!({"asset_id": m.asset.id, "by": m.by, "detail": m.detail}),
        None => Value::Null,
    }
}

/// A batch read and evaluated by `Decider::prepare`, not yet decided.
pub struct PreparedBatch {
    events: Arc<[InboundEvent]>,
    /// The set the verdicts name rules of.
    rules: Arc<RuleSet>,
    /// The positions to decide, in order: neither stored before nor a
    /// repeat of an earlier position.
    fresh: Vec<usize>,
    /// A repeat within the batch answers as the position it repeats.
    repeat_of: Vec<Option<usize>>,
    /// One per fresh position.
    items: Vec<PreparedEvent>,
}

impl std::fmt::Debug for PreparedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBatch").field("events", &self.events.len()).field("fresh", &self.fresh.len()).finish()
    }
}

impl PreparedBatch {
    pub fn events(&self) -> &Arc<[InboundEvent]> {
        &self.events
    }
}

/// An event mapped and evaluated, with its verdict naming rules by position
/// (so that it owns nothing of the rule set and can wait for its turn).
struct PreparedEvent {
    mapping: Option<Mapping>,
    verdict: Option<Evaluated>,
    ctx: Value,
    key: Option<String>,
}

impl PreparedEvent {
    fn new(event: &InboundEvent, mapping: Option<Mapping>, verdict: Option<Evaluated>, rules: &RuleSet) -> Self {
        let (Some(m), Some(verdict)) = (&mapping, verdict) else {
            return Self { mapping: None, verdict: None, ctx: Value::Null, key: None };
        };
        let ctx = template_context(event, &m.asset);
        let key = match verdict.acting(rules).map(|r| &r.action) {
            Some(Action::Create(action)) => Some(dedup_key(action, &ctx, event, &m.asset)),
            _ => None,
        };
        Self { mapping, verdict: Some(verdict), ctx, key }
    }

    fn resolve(self, rules: &RuleSet) -> Prepared<'_> {
        let Self { mapping, verdict, ctx, key } = self;
        Prepared { mapping, eval: verdict.map(|v| v.resolve(rules)), ctx, key }
    }
}

/// An event mapped and evaluated, ready to decide.
struct Prepared<'r> {
    mapping: Option<Mapping>,
    /// Present when mapped.
    eval: Option<rules::Evaluation<'r>>,
    /// What templates see (null when unmapped).
    ctx: Value,
    /// The dedup key, when a create rule acts.
    key: Option<String>,
}

impl<'r> Prepared<'r> {
    fn new(event: &InboundEvent, mapping: Option<Mapping>, verdict: Option<Evaluated>, rules: &'r RuleSet) -> Self {
        PreparedEvent::new(event, mapping, verdict, rules).resolve(rules)
    }
}

/// Decides a prepared event. With `fast` (the open orders of the batch's
/// keys) the decision is made in memory and nothing is written: `None` when
/// it needs more of the stored state. Without it, the decision reads and
/// writes in `txn` as needed.
async fn decide_prepared(
    txn: &store_mod::DatabaseTransaction,
    event: &InboundEvent,
    p: &Prepared<'_>,
    snap: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    fast: Option<&OpenOrders>,
) -> Result<Option<(Decided, Option<NewOrder>)>, StoreError> {
    let mapping = &p.mapping;
    let (Some(m), Some(eval)) = (mapping, &p.eval) else {
        let decided = Decided {
            site: event.asset_hint.as_ref().and_then(|h| h.site.clone()),
            asset_id: None,
            mapped_by: None,
            outcome: EventOutcome::Unmapped,
            rule_id: None,
            rule_version: None,
            work_order_id: None,
            dedup_key: None,
            trace: json!({
                "mapping": Value::Null,
                "rules": [],
                "decision": {"outcome": "unmapped", "reason": "no asset hint, tag or tag pattern matches a registered asset"},
            }),
        };
        return Ok(Some((decided, None)));
    };
    if fast.is_some() && !eval.shadow.is_empty() {
        // Shadow rules look up the open orders of their own keys.
        return Ok(None);
    }
    let ctx = &p.ctx;
    let mut decided = Decided {
        site: Some(m.asset.site.clone()),
        asset_id: Some(m.asset.id.clone()),
        mapped_by: Some(m.by.as_str()),
        outcome: EventOutcome::NoMatch,
        rule_id: None,
        rule_version: None,
        work_order_id: None,
        dedup_key: None,
        trace: Value::Null,
    };
    let mut opened = None;
    let decision = match eval.acting {
        None => json!({"outcome": "no_match", "reason": "no enabled live rule matches"}),
        Some(rule) => {
            decided.rule_id = Some(rule.id.clone());
            decided.rule_version = Some(rule.version);
            match &rule.action {
                Action::Ignore => {
                    decided.outcome = EventOutcome::Ignored;
                    json!({"outcome": "ignored", "reason": format!("rule {} ignores it", rule.name)})
                }
                Action::Create(action) => {
                    let key = p.key.clone().unwrap_or_else(|| dedup_key(action, ctx, event, &m.asset));
                    decided.dedup_key = Some(key.clone());
                    let trace_so_far = json!({"mapping": mapping_trace(mapping), "rules": eval.trace});
                    let step = Step { txn, event, asset: &m.asset, rule, action, key, policy, snap, now, fast };
                    let Some((outcome, order_id, detail, order)) = step.run(ctx, trace_so_far).await? else {
                        return Ok(None);
                    };
                    decided.outcome = outcome;
                    decided.work_order_id = order_id;
                    opened = order;
                    detail
                }
            }
        }
    };
    let mut shadow = vec![];
    for rule in &eval.shadow {
        shadow.push(shadow_decision(txn, event, &m.asset, rule, ctx).await?);
    }
    decided.trace = json!({
        "mapping": mapping_trace(mapping),
        "rules": eval.trace,
        "skipped_by_index": eval.skipped,
        "shadow": shadow,
        "decision": decision,
    });
    Ok(Some((decided, opened)))
}

fn dedup_key(action: &CreateAction, ctx: &Value, event: &InboundEvent, asset: &Asset) -> String {
    if action.dedup_key == rules::DEFAULT_DEDUP_KEY {
        // What the default template renders, without handing the whole
        // context to the template engine for every event.
        return format!("{}:{}", asset.id, event.code).trim().to_owned();
    }
    template::render(&action.dedup_key, ctx)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| format!("{}:{}", asset.id, event.code))
}

/// What a matching shadow rule would have done, for the trace only.
async fn shadow_decision(
    txn: &store_mod::DatabaseTransaction,
    event: &InboundEvent,
    asset: &Asset,
    rule: &Rule,
    ctx: &Value,
) -> Result<Value, StoreError> {
    let would = match &rule.action {
        Action::Ignore => json!({"action": "ignore"}),
        Action::Create(action) => {
            let key = dedup_key(action, ctx, event, asset);
            match work_orders::find_open(txn, &key).await? {
                Some(id) => json!({"action": "merge", "work_order_id": id, "dedup_key": key}),
                None => json!({
                    "action": "create",
                    "connector": action.connector,
                    "dedup_key": key,
                    "title": template::render(&action.title, ctx).unwrap_or_default(),
                    "priority": action.priority.resolve(event.severity, asset.criticality.as_deref()).get(),
                }),
            }
        }
    };
    Ok(json!({"rule_id": rule.id, "rule": rule.name, "version": rule.version, "would": would}))
}

/// One create action applied to one event.
struct Step<'a> {
    txn: &'a store_mod::DatabaseTransaction,
    event: &'a InboundEvent,
    asset: &'a Asset,
    rule: &'a Rule,
    action: &'a CreateAction,
    key: String,
    policy: &'a Policy,
    snap: &'a Snapshot,
    now: DateTime<Utc>,
    /// Decide in memory against these open orders (see `decide_prepared`).
    fast: Option<&'a OpenOrders>,
}

type StepResult = (EventOutcome, Option<String>, Value, Option<NewOrder>);

impl Step<'_> {
    fn outcome(&self, outcome: EventOutcome, order: Option<String>, reason: String) -> StepResult {
        let detail = json!({"outcome": outcome, "reason": reason, "dedup_key": self.key, "work_order_id": order});
        (outcome, order, detail, None)
    }

    fn merged(&self, id: String) -> StepResult {
        let reason = format!("merged into open order {id} (same dedup key)");
        self.outcome(EventOutcome::Merged, Some(id), reason)
    }

    /// `None` only when deciding in memory (`fast`) and the decision needs
    /// the stored state.
    async fn run(self, ctx: &Value, trace: Value) -> Result<Option<StepResult>, StoreError> {
        let txn = self.txn;
        let event_time = self.event.time.unwrap_or(self.now);
        if self.event.state == AlertState::Cleared {
            if self.fast.is_some() {
                return Ok(None);
            }
            return self.clear().await.map(Some);
        }
        // A maintenance window or shelving holds back new work and merges alike.
        if let Some(s) = suppressions::pick(&self.snap.suppressions, &self.asset.id, &self.asset.site, &self.rule.id) {
            let reason = format!(
                "suppressed by {} {} ({:?} {} until {}): {}",
                match s.scope {
                    Scope::Asset => "asset window",
                    Scope::Site => "site window",
                    Scope::Rule => "rule shelving",
                },
                s.id,
                s.scope,
                s.target,
                s.ends_at.to_rfc3339(),
                s.reason
            );
            return Ok(Some(self.outcome(EventOutcome::Suppressed, None, reason)));
        }
        if let Some(open) = self.fast {
            return Ok(self.in_memory(open, ctx, &trace, event_time));
        }
        if let Some(reason) = self.inhibited(event_time).await? {
            return Ok(Some(self.outcome(EventOutcome::Inhibited, None, reason)));
        }
        // Two rounds at most: if another transaction opens an order for the
        // key between our merge attempt and our insert, the insert yields and
        // the second merge finds that order.
        for _ in 0..2 {
            if let Some(id) = work_orders::merge_into_open(txn, &self.key, event_time, self.now).await? {
                if self.action.comment_on_merge {
                    let interval = Duration::minutes(i64::from(self.action.comment_interval_minutes.unwrap_or(60)));
                    if work_orders::claim_comment(txn, &id, interval, self.now).await? {
                        outbox::enqueue(txn, &id, outbox::KIND_COMMENT, self.now).await?;
                    }
                }
                return Ok(Some(self.merged(id)));
            }
            if let Some(minutes) = self.action.cooldown_minutes
                && let Some((id, status, closed_at)) = work_orders::last_closed(txn, &self.key).await?
                && self.now < closed_at + Duration::minutes(i64::from(minutes))
            {
                let reason = format!(
                    "cooldown: order {id} for this key became {} at {}; no new order for {minutes} min",
                    status.as_str(),
                    closed_at.to_rfc3339()
                );
                return Ok(Some(self.outcome(EventOutcome::Suppressed, None, reason)));
            }
            if let Some(reason) = self.debounced(event_time).await? {
                return Ok(Some(self.outcome(EventOutcome::Debounced, None, reason)));
            }
            if let Some(result) = self.create(ctx, &trace, event_time).await? {
                return Ok(Some(result));
            }
        }
        Err(StoreError::Conflict(format!("could not open or merge into an order for key {}", self.key)))
    }

    /// The decision against the batch's open orders, when it needs nothing
    /// else: a plain merge, or a new order without debounce or cooldown.
    fn in_memory(
        &self,
        open: &OpenOrders,
        ctx: &Value,
        trace: &Value,
        event_time: DateTime<Utc>,
    ) -> Option<StepResult> {
        if self.could_be_inhibited() {
            return None;
        }
        match open.get(&self.key)? {
            Some(id) if !self.action.comment_on_merge => Some(self.merged(id.clone())),
            None if self.action.cooldown_minutes.is_none() && self.action.debounce.is_none() => {
                Some(self.open_order(ctx, trace, event_time))
            }
            _ => None,
        }
    }

    /// Whether an inhibit rule targets this event while its sources are live.
    fn could_be_inhibited(&self) -> bool {
        let live = |i: usize| self.snap.inhibit_live.get(i).copied().unwrap_or(true);
        self.policy
            .inhibit
            .iter()
            .enumerate()
            .any(|(i, r)| live(i) && r.target.matches(self.event.kind, &self.event.code))
    }

    /// `Some(reason)` when a raised event (a data-quality problem) inhibits this one.
    async fn inhibited(&self, event_time: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        let (event, asset) = (self.event, self.asset);
        let value = |field: &str| -> Option<String> {
            match field {
                "tag" => event.subject.clone(),
                "asset" => Some(asset.id.clone()),
                "parent" => asset.parent.clone(),
                "site" => Some(asset.site.clone()),
                "code" => Some(event.code.clone()),
                _ => None,
            }
        };
        let live = |i: usize| self.snap.inhibit_live.get(i).copied().unwrap_or(true);
        'rules: for (_, rule) in self
            .policy
            .inhibit
            .iter()
            .enumerate()
            .filter(|(i, r)| live(*i) && r.target.matches(event.kind, &event.code))
        {
            let mut equal = Vec::with_capacity(rule.equal.len());
            for entry in &rule.equal {
                let Ok((source_field, target_field)) = parse_equal(entry) else { continue 'rules };
                let Some(v) = value(target_field) else { continue 'rules };
                equal.push((source_field, v));
            }
            let kinds: Vec<String> = rule.source.types.iter().map(|k| k.as_str().to_owned()).collect();
            let since = event_time - Duration::hours(i64::from(rule.max_age_hours));
            if let Some(by) = events::find_inhibitor(self.txn, &kinds, &rule.source.codes, &equal, since).await? {
                return Ok(Some(format!(
                    "inhibited by event {} ({} on {}) under inhibit rule {}",
                    by.id,
                    by.code,
                    by.subject.as_deref().unwrap_or("its asset"),
                    rule.name
                )));
            }
        }
        Ok(None)
    }

    /// `Some(reason)` while the debounce is not yet satisfied.
    async fn debounced(&self, event_time: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        let Some(debounce) = &self.action.debounce else {
            return Ok(None);
        };
        let cleared = events::last_clear(self.txn, &self.key).await?;
        Ok(match debounce {
            Debounce::Occurrences { occurrences, within_minutes } => {
                let window_start = event_time - Duration::minutes(i64::from(*within_minutes));
                let since = cleared.map_or(window_start, |c| c.max(window_start));
                let seen = events::debounced_since(self.txn, &self.key, Some(since)).await?;
                let count =
                    seen.iter().filter(|t| **t > cleared.unwrap_or(DateTime::<Utc>::MIN_UTC)).count() as u32 + 1;
                (count < *occurrences)
                    .then(|| format!("debounced: {count} of {occurrences} occurrences within {within_minutes} min"))
            }
            Debounce::HeldFor { held_for_minutes } => {
                let seen = events::debounced_since(self.txn, &self.key, cleared).await?;
                let first = seen.into_iter().find(|t| cleared.is_none_or(|c| *t > c)).unwrap_or(event_time);
                let held = event_time - first;
                (held < Duration::minutes(i64::from(*held_for_minutes)))
                    .then(|| format!("debounced: raised for {} of {held_for_minutes} min", held.num_minutes()))
            }
        })
    }

    /// Opens the order; `None` when another transaction took the key first.
    async fn create(
        &self,
        ctx: &Value,
        trace: &Value,
        event_time: DateTime<Utc>,
    ) -> Result<Option<StepResult>, StoreError> {
        let result = self.open_order(ctx, trace, event_time);
        let Some(order) = &result.3 else { return Ok(Some(result)) };
        if !work_orders::insert_open(self.txn, order, self.now).await? {
            return Ok(None);
        }
        outbox::enqueue(self.txn, &order.id, outbox::KIND_CREATE, self.now).await?;
        Ok(Some(result))
    }

    /// The order this event opens, not yet written.
    fn open_order(&self, ctx: &Value, trace: &Value, event_time: DateTime<Utc>) -> StepResult {
        let (event, asset, action, rule) = (self.event, self.asset, self.action, self.rule);
        let mut template_errors = Vec::new();
        let mut render = |field: &str, src: &str, fallback: String| {
            template::render(src, ctx).unwrap_or_else(|e| {
                template_errors.push(format!("{field}: {e}"));
                fallback
            })
        };
        let title = render("title", &action.title, format!("{} on {}", event.code, asset.id));
        let description =
            render("description", &action.description, event.message.clone().unwrap_or_else(|| event.code.clone()));
        let priority = action.priority.resolve(event.severity, asset.criticality.as_deref());
        let reason =
            format!("rule {} v{} creates an order via connector {}", rule.name, rule.version, action.connector);
        let id = new_id();
        let order = NewOrder {
            id: id.clone(),
            connector: action.connector.clone(),
            rule_id: rule.id.clone(),
            rule_version: rule.version,
            dedup_key: self.key.clone(),
            asset_id: Some(asset.id.clone()),
            site: Some(asset.site.clone()),
            title: title.chars().take(250).collect(),
            description,
            work_type: action.work_type.clone(),
            priority: i32::from(priority.get()),
            event_time,
            due_by: Some(event_time + self.policy.sla.due_after(priority)),
            trace: json!({
                "mapping": trace["mapping"],
                "rules": trace["rules"],
                "decision": {"outcome": "created", "reason": reason, "dedup_key": self.key, "priority": priority.get(), "template_errors": template_errors},
            }),
        };
        let detail = json!({"outcome": "created", "reason": reason, "dedup_key": self.key, "work_order_id": id, "priority": priority.get(), "template_errors": template_errors});
        (EventOutcome::Created, Some(id), detail, Some(order))
    }

    /// A `cleared` event, handled as the rule's `on_clear` says.
    async fn clear(&self) -> Result<StepResult, StoreError> {
        let open = work_orders::find_open(self.txn, &self.key).await?;
        let Some(id) = open else {
            return Ok(self.outcome(EventOutcome::Cleared, None, "alert cleared; no open order for this key".into()));
        };
        match self.action.on_clear {
            OnClear::Nothing => Ok(self.outcome(
                EventOutcome::Cleared,
                None,
                format!("alert cleared; order {id} left as it is (on_clear: nothing)"),
            )),
            OnClear::Annotate => Ok(self.outcome(
                EventOutcome::Cleared,
                Some(id.clone()),
                format!("alert cleared; recorded on open order {id}"),
            )),
            OnClear::CancelIfNotStarted => {
                let order = work_orders::get(self.txn, &id).await?;
                let cancellable = match order.status {
                    OrderStatus::Pending => true,
                    // Delivered: the EAM must cancel it too, which the
                    // dispatcher does for connectors that can.
                    OrderStatus::Created | OrderStatus::Acknowledged => {
                        stored_connectors::get(self.txn, &order.connector).await?.is_some_and(|c| c.config.can_cancel())
                    }
                    _ => false,
                };
                if !cancellable {
                    let reason = format!(
                        "alert cleared; order {id} is {} and cannot be cancelled here, recorded on it",
                        order.status.as_str()
                    );
                    return Ok(self.outcome(EventOutcome::Cleared, Some(id), reason));
                }
                let note = "alert cleared before work started";
                work_orders::change_status(
                    self.txn,
                    &id,
                    &StatusUpdate {
                        status: OrderStatus::Cancelled,
                        external_status: None,
                        source: "workbridge",
                        at: self.now,
                        note: Some(note),
                    },
                    self.now,
                )
                .await?;
                if order.status != OrderStatus::Pending {
                    outbox::enqueue(self.txn, &id, outbox::KIND_CANCEL, self.now).await?;
                }
                Ok(self.outcome(
                    EventOutcome::Cleared,
                    Some(id.clone()),
                    format!("alert cleared; order {id} cancelled (it had not started)"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default dedup key skips the template engine: it must be what the
    /// template renders, whatever the asset id and code hold.
    #[test]
    fn the_default_dedup_key_is_what_its_template_renders() {
        let action: CreateAction = serde_json::from_value(json!({"connector": "c"})).unwrap();
        assert_eq!(action.dedup_key, rules::DEFAULT_DEDUP_KEY);
        for (id, code) in [("P-101", "HIGH_TEMP"), ("A <&> \"b\" {{x}}", " é/ü 温度 "), ("x ", "  C  ")] {
            let asset = Asset {
                id: id.into(),
                site: "S".into(),
                name: "N".into(),
                class: "C".into(),
                criticality: None,
                parent: None,
                eam_system: None,
            };
            let event: InboundEvent = crate::domain::cloudevent::structured(
                json!({"specversion": "1.0", "id": "e", "source": "s", "type": "tdl.alert", "subject": "T",
                       "data": {"state": "raised", "code": code, "severity": "minor"}})
                .to_string()
                .as_bytes(),
            )
            .unwrap_or_else(|e| panic!("{code:?}: {e}"));
            let ctx = template_context(&event, &asset);
            let rendered = template::render(rules::DEFAULT_DEDUP_KEY, &ctx).unwrap().trim().to_owned();
            assert_eq!(dedup_key(&action, &ctx, &event, &asset), rendered, "{id:?} {code:?}");
        }
    }
}
