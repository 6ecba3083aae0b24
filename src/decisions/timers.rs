//! Timers of `held_for_minutes` debounces: a held alert that sends nothing
//! more is decided again when its hold is complete, exactly as if an event
//! had arrived at that moment. The dispatcher sweeps them each round.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::cache::Snapshot;
use super::decide::{Prepared, decide_prepared};
use super::{Decider, DecisionError};
use crate::domain::{EventOutcome, InboundEvent, cloudevent};
use crate::mapping;
use crate::store::timers::{self, DueTimer};
use crate::store::{StoreError, TransactionTrait, events};

impl Decider {
    /// Claims up to `limit` due timers (for `lease`) and decides each
    /// held alert again; returns how many opened an order.
    pub async fn fire_due_timers(&self, limit: u64, lease: Duration) -> Result<usize, DecisionError> {
        let now = self.clock.now();
        let due = timers::claim_due(self.store.conn(), now, now + lease, limit).await?;
        let mut opened = 0;
        for timer in &due {
            match self.fire(timer).await {
                Ok(true) => opened += 1,
                Ok(false) => {}
                // The lease runs out and the timer is claimed again.
                Err(e) => tracing::warn!(key = %timer.dedup_key, error = %e, "a debounce timer could not fire"),
            }
        }
        if opened > 0 {
            self.wake.notify_one();
        }
        Ok(opened)
    }

    /// Decides the held event again at the moment its hold completes;
    /// `true` when that opened an order.
    async fn fire(&self, timer: &DueTimer) -> Result<bool, DecisionError> {
        let conn = self.store.conn();
        let Some(record) = events::find(conn, &timer.event_source, &timer.event_ce_id).await? else {
            timers::remove_claimed(conn, timer).await?;
            return Ok(false);
        };
        let moment = timer.held_since + Duration::minutes(i64::from(timer.held_for_minutes));
        let parsed = cloudevent::from_value(record.cloudevent.clone())
            .map_err(|e| StoreError::Corrupt(format!("stored event {}: {e}", record.id)))?;
        // The same event, as if it had arrived again when the hold completed.
        let event = InboundEvent { time: Some(moment), ..parsed };
        let reads = self.store.reads();
        let rules = self.rules.get(reads).await?;
        let mapping = mapping::map_event(reads, &event).await?;
        let verdict = match &mapping {
            Some(m) => Some(self.policy.budget.verdict(&event, &m.asset, &rules).await?),
            None => None,
        };
        let mut prepared = Prepared::new(&event, mapping, verdict, &rules);
        prepared.fired_by_timer = Some(timer.held_for_minutes);
        let now = self.clock.now();
        let txn = conn.begin().await?;
        let snap = Snapshot::load(&txn, &self.policy, std::slice::from_ref(&event), now).await?;
        let (mut decided, _) = decide_prepared(&txn, &event, &prepared, &snap, &self.policy, now, None)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a decision in the database gave no answer".into()))?;
        let fired = timer_trace(timer, moment, now, &record.trace);
        let same_key = decided.dedup_key.as_deref() == Some(timer.dedup_key.as_str());
        if decided.outcome == EventOutcome::Created && same_key {
            decided.trace["timer"] = fired;
            events::redecide(&txn, &record.id, decided).await?;
            txn.commit().await?;
            return Ok(true);
        }
        // Still held by the same episode (the rule's hold was made longer
        // meanwhile): the decision moved the timer; keep that, and nothing else.
        if decided.outcome == EventOutcome::Debounced
            && same_key
            && timers::held_since(&txn, &timer.dedup_key).await? == Some(timer.held_since)
        {
            txn.commit().await?;
            return Ok(false);
        }
        // Anything else (an order opened meanwhile, a window, an inhibition,
        // a clear, a changed rule): nothing of this decision is kept; the
        // held event's trace says what the timer found.
        txn.rollback().await?;
        let txn = conn.begin().await?;
        if timers::remove_claimed(&txn, timer).await? {
            let mut trace = record.trace.clone();
            if let Some(t) = trace.as_object_mut() {
                let mut fired = fired;
                fired["outcome"] = json!(decided.outcome);
                fired["reason"] = decided.trace["decision"]["reason"].clone();
                t.insert("timer".into(), fired);
            }
            events::set_trace(&txn, &record.id, trace).await?;
        }
        txn.commit().await?;
        Ok(false)
    }
}

fn timer_trace(timer: &DueTimer, moment: DateTime<Utc>, now: DateTime<Utc>, arrival: &Value) -> Value {
    json!({
        "held_for_minutes": timer.held_for_minutes,
        "held_since": moment - Duration::minutes(i64::from(timer.held_for_minutes)),
        "decided_as_of": moment,
        "due_at": timer.due_at,
        "fired_at": now,
        "on_arrival": arrival["decision"],
    })
}
