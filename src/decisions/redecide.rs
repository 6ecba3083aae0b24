//! Re-decision of stored events (a tag mapped or a rule added after they
//! arrived): a job selects events with a filter, and each is decided again
//! against today's registry and rules by the same code as a new event
//! (`decide_prepared`), so that an event now mapped opens or merges an
//! order as a live one would, outbox and all. Not a re-ingest: the stored
//! row is updated, its first decision kept in the trace as `first` and each
//! re-decision appended to `redecisions`.
//!
//! Bounded: `BATCH` events a transaction, the job's progress and cursor
//! written in the same transaction, under a lease that one replica holds at
//! a time (a stopped replica's job is taken over from its last committed
//! batch once the lease runs out). Idempotent: an event that is attached
//! to an order is never decided again (never a second order for it), and
//! an event decided as before is left as it is; both count `unchanged`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::cache::Snapshot;
use super::decide::{Prepared, decide_prepared};
use super::{Decider, DecisionError};
use crate::domain::{EventOutcome, InboundEvent, cloudevent};
use crate::mapping;
use crate::rules::Evaluated;
use crate::store::events::{self, Decided, EventRecord, Selection};
use crate::store::redecide_jobs::{self, ClaimedJob, Progress};
use crate::store::{StoreError, TransactionTrait};

/// Events decided again in one transaction.
pub const BATCH: u64 = 200;
/// How long a claimed job is ours without a batch committed.
const LEASE_SECONDS: i64 = 120;
/// A job claimed this many times without finishing is given up (each
/// claim after the first means a replica stopped or a batch kept failing).
const MAX_CLAIMS: i32 = 5;

/// One selected event, read and evaluated outside the transaction (a
/// batch's worth at most: the size of the variants does not matter).
#[allow(clippy::large_enum_variant)]
enum Item {
    /// Attached to an order already: never decided again.
    Attached,
    /// Its stored CloudEvent no longer reads, or a rule ran out of its budget.
    Failed(String, String),
    Ready {
        record: EventRecord,
        event: InboundEvent,
        verdict: Option<Evaluated>,
        mapping: Option<mapping::Mapping>,
    },
}

/// How a batch ended.
enum Batch {
    /// More to do after this cursor.
    More((DateTime<Utc>, String)),
    Done,
    /// Another replica holds the job now.
    LeaseLost,
}

impl Decider {
    /// Asks the re-decision worker to look for queued jobs now.
    pub fn wake_redecide(&self) {
        self.jobs.notify_one();
    }

    /// The re-decision worker: runs queued jobs one after the other.
    pub async fn run_redecide_jobs(self, cancel: CancellationToken) {
        loop {
            match self.redecide_round(&cancel).await {
                Ok(true) => continue,
                Ok(false) => {}
                // The job's lease runs out and it is claimed again.
                Err(e) => tracing::warn!(error = %e, "a re-decision batch failed; will retry"),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.jobs.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            }
        }
        tracing::info!("re-decision worker stopped");
    }

    /// Claims one job and runs it to its end, batch after batch; `false`
    /// when none was waiting.
    pub async fn redecide_round(&self, cancel: &CancellationToken) -> Result<bool, DecisionError> {
        let now = self.clock.now();
        let conn = self.store.conn();
        let lease = Duration::seconds(LEASE_SECONDS);
        let Some(job) = redecide_jobs::claim(conn, now, now + lease).await? else {
            return Ok(false);
        };
        if job.claims > MAX_CLAIMS {
            let error = format!("given up after {MAX_CLAIMS} attempts; the log says why");
            redecide_jobs::fail(conn, &job, &error, now).await?;
            return Ok(true);
        }
        let selection = match job.filter.selection(job.bound_at) {
            Ok(s) => s,
            Err(e) => {
                redecide_jobs::fail(conn, &job, &format!("the filter no longer reads: {e}"), now).await?;
                return Ok(true);
            }
        };
        tracing::info!(job = %job.id, "re-decision job started");
        let mut cursor = job.cursor.clone();
        // A stopping service leaves the rest to the next start (or replica).
        while !cancel.is_cancelled() {
            match self.redecide_batch(&job, &selection, cursor.as_ref()).await? {
                Batch::More(next) => cursor = Some(next),
                Batch::Done => {
                    tracing::info!(job = %job.id, "re-decision job done");
                    break;
                }
                Batch::LeaseLost => {
                    tracing::warn!(job = %job.id, "a re-decision job's lease was taken over; leaving it");
                    break;
                }
            }
        }
        Ok(true)
    }

    /// Decides the next `BATCH` selected events again, in one transaction
    /// with the job's progress.
    async fn redecide_batch(
        &self,
        job: &ClaimedJob,
        selection: &Selection,
        cursor: Option<&(DateTime<Utc>, String)>,
    ) -> Result<Batch, DecisionError> {
        let reads = self.store.reads();
        let (records, last, scanned) = events::next_selected(reads, selection, cursor.cloned(), BATCH).await?;
        let rules = self.rules.get(reads).await?;
        let items = self.prepare_redecision(reads, records, &rules).await?;

        let now = self.clock.now();
        let txn = self.store.conn().begin().await?;
        let ready: Vec<InboundEvent> = items
            .iter()
            .filter_map(|i| match i {
                Item::Ready { event, .. } => Some(event.clone()),
                _ => None,
            })
            .collect();
        let snap = Snapshot::load(&txn, &self.policy, &ready, now).await?;
        let mut progress = Progress::default();
        let mut created = false;
        for item in items {
            let (record, event, mapping, verdict) = match item {
                Item::Attached => {
                    progress.unchanged += 1;
                    continue;
                }
                Item::Failed(id, why) => {
                    tracing::warn!(job = %job.id, event = %id, error = %why, "an event could not be decided again");
                    progress.failed += 1;
                    continue;
                }
                Item::Ready { record, event, mapping, verdict } => (record, event, mapping, verdict),
            };
            // As it is now (another job may have decided it since it was read).
            let current = match events::by_id(&txn, &record.id).await? {
                Some(c) if c.work_order_id.is_none() => c,
                _ => {
                    progress.unchanged += 1;
                    continue;
                }
            };
            // Each event in its own savepoint: one that fails, or is decided
            // as before, leaves nothing behind.
            let sp = txn.begin().await?;
            let prepared = Prepared::new(&event, mapping, verdict, &rules);
            let decided = match decide_prepared(&sp, &event, &prepared, &snap, &self.policy, now, None).await {
                Ok(Some((decided, _))) => decided,
                Ok(None) => {
                    return Err(StoreError::Corrupt("a decision in the database gave no answer".into()).into());
                }
                Err(e) => {
                    sp.rollback().await?;
                    tracing::warn!(job = %job.id, event = %record.id, error = %e, "an event could not be decided again");
                    progress.failed += 1;
                    continue;
                }
            };
            if same_decision(&current, &decided) {
                sp.rollback().await?;
                progress.unchanged += 1;
                continue;
            }
            let outcome = decided.outcome;
            let decided = with_redecision(&current, decided, &job.id, now);
            // Conditional: if another job decided it meanwhile, that one stands.
            if events::redecide_from(&sp, &current.id, current.outcome, decided).await? {
                sp.commit().await?;
                progress.changed += 1;
                created |= outcome == EventOutcome::Created;
            } else {
                sp.rollback().await?;
                progress.unchanged += 1;
            }
        }
        let done = (scanned as u64) < BATCH;
        let lease_until = now + Duration::seconds(LEASE_SECONDS);
        if !redecide_jobs::advance(&txn, job, progress, last.as_ref(), done, lease_until, now).await? {
            txn.rollback().await?;
            return Ok(Batch::LeaseLost);
        }
        txn.commit().await?;
        if created {
            self.wake.notify_one();
        }
        Ok(match last {
            Some(last) if !done => Batch::More(last),
            _ => Batch::Done,
        })
    }

    /// Reads the events back from their stored CloudEvents, maps them and
    /// evaluates the rules (outside any transaction, on the planners'
    /// evaluation budget so that ingest's stays free).
    async fn prepare_redecision<C: sea_orm::ConnectionTrait>(
        &self,
        reads: &C,
        records: Vec<EventRecord>,
        rules: &Arc<crate::rules::RuleSet>,
    ) -> Result<Vec<Item>, DecisionError> {
        let mut items = Vec::with_capacity(records.len());
        let mut parsed = Vec::with_capacity(records.len());
        for record in records {
            if record.work_order_id.is_some() {
                items.push(Item::Attached);
                continue;
            }
            match cloudevent::from_value(record.cloudevent.clone()) {
                // An event sent without `time` was decided at its arrival.
                Ok(e) => parsed.push((record.clone(), InboundEvent { time: e.time.or(Some(record.received_at)), ..e })),
                Err(e) => items.push(Item::Failed(record.id, format!("the stored event does not read: {e}"))),
            }
        }
        let refs: Vec<&InboundEvent> = parsed.iter().map(|(_, e)| e).collect();
        let mappings = mapping::map_events(reads, &refs).await?;
        for ((record, event), mapping) in parsed.into_iter().zip(mappings) {
            let verdict = match &mapping {
                Some(m) => match self.policy.dry_run_budget.verdict(&event, &m.asset, rules).await {
                    Ok(v) => Some(v),
                    Err(e @ DecisionError::EvaluationTimeout(_)) => {
                        items.push(Item::Failed(record.id, e.to_string()));
                        continue;
                    }
                    Err(e) => return Err(e),
                },
                None => None,
            };
            items.push(Item::Ready { record, event, mapping, verdict });
        }
        Ok(items)
    }
}

/// Decided as it stands: nothing to change.
fn same_decision(current: &EventRecord, decided: &Decided) -> bool {
    current.outcome == decided.outcome && current.asset_id == decided.asset_id && current.rule_id == decided.rule_id
}

/// The new decision's trace, with the first decision kept as `first` and
/// this re-decision appended to `redecisions`.
fn with_redecision(current: &EventRecord, mut decided: Decided, job_id: &str, now: DateTime<Utc>) -> Decided {
    let previous = &current.trace;
    let first = previous.get("first").cloned().unwrap_or_else(|| previous.clone());
    let mut redecisions = previous.get("redecisions").and_then(Value::as_array).cloned().unwrap_or_default();
    redecisions.push(json!({
        "at": now,
        "job_id": job_id,
        "previous_outcome": current.outcome,
        "outcome": decided.outcome,
        "asset_id": decided.asset_id,
        "rule_id": decided.rule_id,
        "work_order_id": decided.work_order_id,
        "decision": decided.trace.get("decision").cloned().unwrap_or(Value::Null),
    }));
    if let Some(trace) = decided.trace.as_object_mut() {
        trace.insert("first".into(), first);
        trace.insert("redecisions".into(), Value::Array(redecisions));
    }
    decided
}
