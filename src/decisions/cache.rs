//! The rule-set cache (`RuleCache`, reloaded when the rules table changes) and
//! the per-transaction `Snapshot` of what every decision of a batch reads once.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::Policy;
use crate::domain::{AlertState, InboundEvent};
use crate::rules::RuleSet;
use crate::store::events;
use crate::store::suppressions;
use crate::store::{self as store_mod, StoreError};

/// The compiled rule set, reloaded when the rules table changes (on any
/// replica): its stamp is the rule count and the latest change.
#[derive(Default)]
pub(super) struct RuleCache {
    loaded: std::sync::Mutex<Option<(store_mod::rules::Stamp, Arc<RuleSet>)>>,
}

impl RuleCache {
    pub(super) async fn get<C: sea_orm::ConnectionTrait>(&self, conn: &C) -> Result<Arc<RuleSet>, StoreError> {
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
    pub(super) inhibit_live: Vec<bool>,
    /// Maintenance windows and shelvings in force now.
    pub(super) suppressions: Vec<suppressions::Suppression>,
}

impl Snapshot {
    pub(super) async fn load(
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
