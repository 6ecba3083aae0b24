//! The decision boundary's error: the store failed, or the rules could not
//! be evaluated in time (the event is then refused, not decided, and kept
//! for a replay once the rule is fixed).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The rules could not be evaluated within the budget: the event is
    /// refused (not stored), as retrying will not help until a rule changes.
    #[error("rule evaluation did not finish within {0} ms: a rule condition is too expensive")]
    EvaluationTimeout(u64),
}

impl From<sea_orm::DbErr> for DecisionError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Store(e.into())
    }
}

impl DecisionError {
    /// A conflict with a concurrent writer: worth one more try.
    pub fn is_contention(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_contention())
    }

    /// The database went away (not this event's fault).
    pub fn is_connection_error(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_connection_error())
    }
}
