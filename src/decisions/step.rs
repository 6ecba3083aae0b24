//! One create action applied to one event (`Step`): suppression, inhibition,
//! merge, cooldown, debounce, a new order, or a clear handled as `on_clear` says.

use super::DecisionError;
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::Policy;
use super::cache::Snapshot;
use crate::domain::ReviewAction;
use crate::domain::inhibit::parse_equal;
use crate::domain::{AlertState, Asset, EventOutcome, InboundEvent, OrderStatus, template};
use crate::rules::{CreateAction, Debounce, OnClear, Rule, RuleMode};
use crate::store::events;
use crate::store::suppressions::{self, Scope};
use crate::store::work_orders::{self, NewOrder, StatusUpdate};
use crate::store::{self as store_mod, StoreError, new_id, outbox, timers};

/// The note of a proposal withdrawn by the clear of its alert.
pub const WITHDRAWN: &str = "withdrawn: alert cleared";

/// Dedup key → the open order that holds it (`None`: none is open), for the
/// keys of one batch.
pub(super) type OpenOrders = HashMap<String, Option<String>>;

/// One create action applied to one event.
pub(super) struct Step<'a> {
    pub(super) txn: &'a store_mod::DatabaseTransaction,
    pub(super) event: &'a InboundEvent,
    pub(super) asset: &'a Asset,
    pub(super) rule: &'a Rule,
    pub(super) action: &'a CreateAction,
    pub(super) key: String,
    pub(super) policy: &'a Policy,
    pub(super) snap: &'a Snapshot,
    pub(super) now: DateTime<Utc>,
    /// Decide in memory against these open orders (see `decide_prepared`).
    pub(super) fast: Option<&'a OpenOrders>,
    /// A held alert decided again by its timer (`held_for_minutes`).
    pub(super) fired_by_timer: Option<i32>,
}

pub(super) type StepResult = (EventOutcome, Option<String>, Value, Option<NewOrder>);

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
    pub(super) async fn run(self, ctx: &Value, trace: Value) -> Result<Option<StepResult>, DecisionError> {
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
        Err(StoreError::Conflict(format!("could not open or merge into an order for key {}", self.key)).into())
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
    async fn inhibited(&self, event_time: DateTime<Utc>) -> Result<Option<String>, DecisionError> {
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
    async fn debounced(&self, event_time: DateTime<Utc>) -> Result<Option<String>, DecisionError> {
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
                let hold = Duration::minutes(i64::from(*held_for_minutes));
                if held >= hold {
                    return Ok(None);
                }
                // An alarm that stays raised may send nothing more: a timer
                // decides it again when the hold is complete. Due on the
                // service's clock (what remains of the hold from now), so
                // that a producer's clock skew or a replayed backlog does
                // not fire it early.
                let held_alert = timers::HeldAlert {
                    dedup_key: &self.key,
                    rule_id: &self.rule.id,
                    event_source: &self.event.source,
                    event_ce_id: &self.event.id,
                    held_since: first,
                    held_for_minutes: i32::try_from(*held_for_minutes).unwrap_or(i32::MAX),
                    due_at: self.now + (hold - held),
                };
                timers::set(self.txn, &held_alert, self.now).await?;
                Some(format!("debounced: raised for {} of {held_for_minutes} min", held.num_minutes()))
            }
        })
    }

    /// Opens the order; `None` when another transaction took the key first.
    async fn create(
        &self,
        ctx: &Value,
        trace: &Value,
        event_time: DateTime<Utc>,
    ) -> Result<Option<StepResult>, DecisionError> {
        let result = self.open_order(ctx, trace, event_time);
        let Some(order) = &result.3 else { return Ok(Some(result)) };
        if !work_orders::insert_open(self.txn, order, self.now).await? {
            return Ok(None);
        }
        if self.action.debounce.is_some() {
            // The hold is over: its timer has nothing left to do.
            timers::remove(self.txn, &self.key).await?;
        }
        // A proposal waits for its review: it enters the outbox when approved.
        if order.review.is_none() {
            outbox::enqueue(self.txn, &order.id, outbox::KIND_CREATE, self.now).await?;
        }
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
        let review = rule.mode == RuleMode::Review;
        let mut reason = if review {
            format!(
                "rule {} v{} (mode review) proposes an order via connector {}; it reaches the EAM once approved",
                rule.name, rule.version, action.connector
            )
        } else {
            format!("rule {} v{} creates an order via connector {}", rule.name, rule.version, action.connector)
        };
        if let Some(minutes) = self.fired_by_timer {
            reason = format!("held for {minutes} min: opened by the timer; {reason}");
        }
        let id = new_id();
        let mut order = NewOrder {
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
            review: review.then(|| rule.expire_after_hours.map(|h| self.now + Duration::hours(i64::from(h)))),
            trace: json!({
                "mapping": trace["mapping"],
                "rules": trace["rules"],
                "decision": {"outcome": "created", "reason": reason, "dedup_key": self.key, "priority": priority.get(), "template_errors": template_errors},
            }),
        };
        if !event.time_from_producer() {
            order.trace["time"] = Value::from(crate::domain::TIME_RECEIVED);
        }
        let detail = json!({"outcome": "created", "reason": reason, "dedup_key": self.key, "work_order_id": id, "priority": priority.get(), "template_errors": template_errors});
        (EventOutcome::Created, Some(id), detail, Some(order))
    }

    /// A `cleared` event, handled as the rule's `on_clear` says.
    async fn clear(&self) -> Result<StepResult, DecisionError> {
        // The episode is over: a held alert no longer opens an order.
        timers::remove(self.txn, &self.key).await?;
        let open = work_orders::find_open(self.txn, &self.key).await?;
        let Some(id) = open else {
            return Ok(self.outcome(EventOutcome::Cleared, None, "alert cleared; no open order for this key".into()));
        };
        // A proposal nobody approved yet is withdrawn, whatever `on_clear`
        // says: there is no work to keep track of.
        if work_orders::get(self.txn, &id).await?.status == OrderStatus::Proposed {
            work_orders::review_move(self.txn, &id, ReviewAction::Withdrawn, "workbridge", Some(WITHDRAWN), self.now)
                .await?;
            return Ok(self.outcome(
                EventOutcome::Cleared,
                Some(id.clone()),
                format!("alert cleared; proposal {id} withdrawn before review"),
            ));
        }
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
                        super::stored_connectors::get(self.txn, &order.connector)
                            .await?
                            .is_some_and(|c| c.config.can_cancel())
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
