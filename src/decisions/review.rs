//! The review before the EAM: a planner approves a proposal (it becomes
//! `pending` and enters the outbox in the same transaction, then goes to
//! the EAM exactly as a live order does) or rejects it (it ends
//! `rejected`, and the rejection is feedback `false_alarm` from source
//! `review`); the dispatcher sweeps the proposals past their expiry.

use chrono::{DateTime, Utc};

use super::{Decider, DecisionError};
use crate::domain::{FeedbackSource, ReviewAction, Verdict};
use crate::store::work_orders::{self, WorkOrder};
use crate::store::{StoreError, TransactionTrait, feedback, outbox};

/// History source of a planner's review.
const SOURCE: &str = "review";

/// Approves a proposal in `txn`: pending, and in the outbox.
pub async fn approve<C: sea_orm::ConnectionTrait>(
    txn: &C,
    id: &str,
    by: &str,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> Result<WorkOrder, StoreError> {
    let note = match comment {
        Some(c) => format!("approved by {by}: {c}"),
        None => format!("approved by {by}"),
    };
    let order = work_orders::review_move(txn, id, ReviewAction::Approved, SOURCE, Some(&note), now).await?;
    outbox::enqueue(txn, id, outbox::KIND_CREATE, now).await?;
    Ok(order)
}

/// Rejects a proposal in `txn`, recording the rejection as feedback.
pub async fn reject<C: sea_orm::ConnectionTrait>(
    txn: &C,
    id: &str,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<WorkOrder, StoreError> {
    let note = format!("rejected by {by}: {reason}");
    let order = work_orders::review_move(txn, id, ReviewAction::Rejected, SOURCE, Some(&note), now).await?;
    let input = feedback::FeedbackInput {
        verdict: Verdict::FalseAlarm,
        comment: Some(reason.to_owned()),
        author: by.to_owned(),
    };
    feedback::add(txn, id, &input, FeedbackSource::Review.as_str(), now).await?;
    Ok(order)
}

impl Decider {
    /// Ends up to `limit` proposals past their expiry as `expired`; returns
    /// how many.
    pub async fn expire_proposals(&self, limit: u64) -> Result<usize, DecisionError> {
        let now = self.clock.now();
        let txn = self.store.conn().begin().await?;
        let expired = work_orders::expire_due(&txn, now, limit).await?;
        txn.commit().await?;
        if !expired.is_empty() {
            tracing::info!(count = expired.len(), "proposals expired without review");
        }
        Ok(expired.len())
    }
}
