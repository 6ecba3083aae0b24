//! The decision: map the event, evaluate the rules, and create or merge an
//! order. The event row, the order and its outbox row are written in ONE
//! transaction, so that a committed event always carries all its effects
//! and a message is acknowledged only after that commit.

pub mod backtest;
mod batch;
mod budget;
mod cache;
mod decide;
pub mod dispatcher;
mod dry_run;
mod error;
mod redecide;
pub mod review;
mod step;
pub mod stored_connectors;
mod timers;

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::config::SlaSettings;
use crate::domain::EventOutcome;
use crate::domain::InboundEvent;
use crate::domain::inhibit::InhibitRule;
use crate::metrics::Metrics;
use crate::store::events;
use crate::store::{Store, StoreError};

pub use batch::PreparedBatch;
pub use budget::EvalBudget;
use cache::RuleCache;
pub use dry_run::{DryRun, OrderPreview};
pub use error::DecisionError;
pub use redecide::BATCH as REDECIDE_BATCH;

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
    /// Wakes the re-decision worker when a job is queued.
    jobs: Arc<Notify>,
    policy: Arc<Policy>,
    rules: Arc<RuleCache>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider").finish_non_exhaustive()
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

impl Decider {
    pub fn new(store: Store, clock: Arc<dyn Clock>, wake: Arc<Notify>, policy: Policy) -> Self {
        Self {
            store,
            clock,
            wake,
            jobs: Arc::default(),
            policy: Arc::new(policy),
            rules: Arc::default(),
            metrics: Arc::default(),
        }
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

    /// Stores the event and everything it causes, once per (source, id).
    #[tracing::instrument(skip_all, fields(source = %event.source, event_id = %event.id))]
    pub async fn accept(&self, event: &InboundEvent) -> Result<Accepted, DecisionError> {
        // Redeliveries are common (at-least-once): answer them without a write.
        if let Some(existing) = events::find(self.store.conn(), &event.source, &event.id).await? {
            return Ok(duplicate(existing));
        }
        match self.accept_batch(Arc::from([event.clone()])).await {
            Ok(mut accepted) => {
                accepted.pop().ok_or_else(|| StoreError::NotFound(format!("event {}", event.id)).into())
            }
            // Another consumer or replica stored it first: answer from what it stored.
            Err(e @ DecisionError::Store(StoreError::Conflict(_))) => {
                match events::find(self.store.conn(), &event.source, &event.id).await? {
                    Some(existing) => Ok(duplicate(existing)),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
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
