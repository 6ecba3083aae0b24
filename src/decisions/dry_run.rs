//! Dry runs: what a decision would do (`Decider::dry_run`, `DryRun`), computed
//! in a transaction that is rolled back.

use super::DecisionError;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::Decider;
use super::cache::Snapshot;
use super::decide::{Prepared, decide_prepared};
use crate::domain::{EventOutcome, InboundEvent};
use crate::mapping;
use crate::rules::RuleSet;
use crate::store::{StoreError, TransactionTrait};

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
    /// Decides `event` against the stored rules, or `proposed` ones, inside a
    /// transaction that is rolled back: the answer reflects the open orders
    /// as they are, and nothing is written.
    ///
    /// The rules are evaluated first, under the dry-run budget (never
    /// ingest's) and with no connection held: on SQLite the transaction
    /// holds the one writer connection, which ingest needs.
    pub async fn dry_run(&self, event: &InboundEvent, proposed: Option<RuleSet>) -> Result<DryRun, DecisionError> {
        // As ingest would decide it: with the time received if it has none.
        let event = &InboundEvent { time: event.time.or_else(|| Some(self.clock.now())), ..event.clone() };
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
        let mut trace = decided.trace;
        if created {
            // The order was rolled back with the transaction: its id names nothing.
            if let Some(decision) = trace.get_mut("decision").and_then(Value::as_object_mut) {
                decision.remove("work_order_id");
            }
        }
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
            trace,
        })
    }
}
