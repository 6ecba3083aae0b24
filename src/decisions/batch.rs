//! The batch pipeline: `Decider::prepare` (reads and rule evaluation outside
//! any transaction), `PreparedBatch`, and the group commit that decides and
//! writes a prepared batch in one transaction.

use super::DecisionError;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::cache::Snapshot;
use super::decide::{Prepared, PreparedEvent, decide_prepared};
use super::step::OpenOrders;
use super::{Accepted, Decider, duplicate};
use crate::domain::{EventOutcome, InboundEvent};
use crate::mapping;
use crate::rules::RuleSet;
use crate::store::events::{self, Decided};
use crate::store::work_orders::{self, NewOrder};
use crate::store::{self as store_mod, StoreError, TransactionTrait, new_id, outbox};

impl Decider {
    /// Stores a batch of events and everything they cause in ONE transaction
    /// (group commit: one flush to disk for the lot), deciding them in order,
    /// so a later event sees the order an earlier one opened. All or nothing:
    /// on any error nothing is stored and the caller decides them one by one.
    pub async fn accept_batch(&self, batch: Arc<[InboundEvent]>) -> Result<Vec<Accepted>, DecisionError> {
        let prepared = self.prepare(batch).await?;
        self.accept_prepared(prepared).await
    }

    /// Gives the events the producer sent without `time` the time they were
    /// received: debounce, inhibition and clears all go by event time, and
    /// an event with none would count for none of them. The CloudEvent
    /// stays as sent, and the trace says so (`TIME_RECEIVED`).
    fn with_received_times(&self, batch: Arc<[InboundEvent]>) -> Arc<[InboundEvent]> {
        if batch.iter().all(|e| e.time.is_some()) {
            return batch;
        }
        let now = self.clock.now();
        batch.iter().map(|e| InboundEvent { time: e.time.or(Some(now)), ..e.clone() }).collect()
    }

    /// `accept_batch` in two steps, so that a consumer can read and evaluate
    /// the next batch while this one is being written: the reads and the
    /// rule evaluation, outside any transaction. Nothing is written.
    pub async fn prepare(&self, batch: Arc<[InboundEvent]>) -> Result<PreparedBatch, DecisionError> {
        let batch = self.with_received_times(batch);
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
    pub async fn accept_prepared(&self, prepared: PreparedBatch) -> Result<Vec<Accepted>, DecisionError> {
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
                None => {
                    return Err(StoreError::Conflict("new orders' keys kept being taken concurrently".into()).into());
                }
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
                        .ok_or_else(|| DecisionError::from(StoreError::NotFound(format!("event {}", event.id))))?;
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
    async fn decide_batch(&self, prepared: PreparedBatch) -> Result<Option<Vec<Option<Accepted>>>, DecisionError> {
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
) -> Result<Option<Vec<Option<Accepted>>>, DecisionError> {
    txn.rollback().await?;
    match why {
        Flushed::EventStored => {
            Err(StoreError::Conflict("an event of the batch was stored concurrently".into()).into())
        }
        _ => Ok(None),
    }
}

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
    async fn flush(
        &mut self,
        txn: &store_mod::DatabaseTransaction,
        now: DateTime<Utc>,
    ) -> Result<Flushed, DecisionError> {
        if !self.orders.is_empty() {
            if !work_orders::insert_open_many(txn, &mut self.orders, now).await? {
                return Ok(Flushed::KeyTaken);
            }
            // Proposals wait for their review: they enter the outbox when approved.
            let ids: Vec<&str> = self.orders.iter().filter(|o| o.review.is_none()).map(|o| o.id.as_str()).collect();
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
