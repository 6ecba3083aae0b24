//! The CEL evaluation budget: rule verdicts on the blocking pool, under a
//! deadline and a bounded number of permits.

use super::DecisionError;
use std::sync::Arc;

use crate::domain::{Asset, InboundEvent};
use crate::rules::{self, Evaluated, RuleSet};
use crate::store::StoreError;

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
    ) -> Result<Evaluated, DecisionError> {
        if !rules.has_conditions() {
            // Matchers alone are bounded by the set's size: no need to leave the task.
            return Ok(rules::verdict(event, asset, rules));
        }
        let timeout = || DecisionError::EvaluationTimeout(self.limit.as_millis() as u64);
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
            Ok(Err(e)) => Err(StoreError::Corrupt(format!("rule evaluation failed: {e}")).into()),
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
    ) -> Result<Vec<Evaluated>, DecisionError> {
        if !rules.has_conditions() || items.len() <= 1 {
            let mut out = Vec::with_capacity(items.len());
            for (position, asset) in items {
                out.push(self.verdict(&batch[position], asset, rules).await?);
            }
            return Ok(out);
        }
        let timeout = || DecisionError::EvaluationTimeout(self.limit.as_millis() as u64);
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
                Ok(None) => return Err(StoreError::Corrupt("rule evaluation failed".into()).into()),
                Err(_) => {
                    tracing::warn!(limit_ms = self.limit.as_millis() as u64, "rule evaluation of a batch timed out");
                    return Err(timeout());
                }
            }
        }
        Ok(out)
    }
}
