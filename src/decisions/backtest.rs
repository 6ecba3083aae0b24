//! Backtest: replay the stored events of a time range against a proposed
//! rule set, without side effects, and compare with what happened.
//!
//! The replay keeps its own open orders per dedup key, and applies
//! debounce, clears and the stored suppression windows. A simulated order
//! stays open until an order with the same key was closed in reality.
//! Precision is computed from the real orders that the simulated order's
//! events belonged to, each judged by `domain::order_verdict` (the one
//! definition `GET /v1/kpis/rules` uses too): planner feedback, then a
//! rejection in review, then the EAM's closure code, then the order's
//! outcome. `accepted` counts useful orders, `rejected` false alarms.
//!
//! Not replayed: cooldown and inhibition (they depend on the state at each
//! past moment).

use super::DecisionError;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::EvalBudget;
use crate::domain::Asset;
use crate::domain::cloudevent as parse;
use crate::domain::event_context;
use crate::domain::template;
use crate::domain::{AlertState, EventOutcome, OrderVerdict};
use crate::rules::{Action, Debounce, RuleInput, RuleSet};
use crate::store::{Store, assets, events, suppressions, work_orders};

/// Most events one backtest replays.
pub const MAX_EVENTS: u64 = 100_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    /// Events received at or after this time.
    pub since: DateTime<Utc>,
    /// Events received before this time; must be after `since` (422 otherwise).
    pub until: DateTime<Utc>,
    /// The proposed rule set (as for `POST /v1/rules`); default: the current rules.
    #[serde(default)]
    pub rules: Option<Vec<RuleInput>>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Tally {
    /// Events per outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Orders opened.
    pub orders: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub undecided: u64,
    /// accepted ÷ (accepted + rejected); none when nothing was decided.
    pub precision: Option<f64>,
}

impl Tally {
    fn count(&mut self, outcome: EventOutcome) {
        *self.outcomes.entry(outcome.as_str().to_owned()).or_default() += 1;
    }
    fn verdict(&mut self, v: BacktestOutcome) {
        match v {
            BacktestOutcome::Accepted => self.accepted += 1,
            BacktestOutcome::Rejected => self.rejected += 1,
            BacktestOutcome::Undecided => self.undecided += 1,
        }
    }
    fn finish(&mut self) {
        let decided = self.accepted + self.rejected;
        self.precision = (decided > 0).then(|| self.accepted as f64 / decided as f64);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
/// What became of an order, as the backtest counts it.
pub enum BacktestOutcome {
    Accepted,
    Rejected,
    Undecided,
}

impl From<OrderVerdict> for BacktestOutcome {
    fn from(v: OrderVerdict) -> Self {
        match v {
            OrderVerdict::Useful => Self::Accepted,
            OrderVerdict::FalseAlarm => Self::Rejected,
            OrderVerdict::Undecided => Self::Undecided,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimulatedOrder {
    pub dedup_key: String,
    pub rule: String,
    pub asset_id: String,
    pub title: String,
    pub first_event_time: DateTime<Utc>,
    pub events: u64,
    /// Real orders its events belonged to.
    pub real_orders: Vec<String>,
    pub verdict: BacktestOutcome,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    /// CloudEvents id.
    pub event_id: String,
    pub actual: EventOutcome,
    pub proposed: EventOutcome,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BacktestReport {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub events: u64,
    /// True when the range held more than the replay limit.
    pub truncated: bool,
    /// What the stored decisions were.
    pub actual: Tally,
    /// What the proposed rules would have done.
    pub proposed: Tally,
    /// The first 200 simulated orders.
    pub orders: Vec<SimulatedOrder>,
    /// The first 200 events whose outcome would change.
    pub changes: Vec<Change>,
}

struct Open {
    index: usize,
    opened_at: DateTime<Utc>,
}

pub async fn run(
    store: &Store,
    rules: &Arc<RuleSet>,
    budget: &EvalBudget,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<BacktestReport, DecisionError> {
    // Reads only, none inside a transaction: on SQLite they take the
    // read-only connections, not the one writer that ingest needs.
    let conn = store.reads();
    let stored = events::in_range(conn, since, until, MAX_EVENTS + 1).await?;
    let truncated = stored.len() as u64 > MAX_EVENTS;
    let stored = &stored[..stored.len().min(MAX_EVENTS as usize)];

    let mut actual = Tally::default();
    let mut proposed = Tally::default();
    let mut orders: Vec<SimulatedOrder> = vec![];
    let mut open: HashMap<String, Open> = HashMap::new();
    let mut debounce: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    let mut changes = vec![];
    let mut asset_cache: HashMap<String, Option<Asset>> = HashMap::new();
    // The real orders the stored decisions created, in order.
    let mut real_created: Vec<String> = vec![];
    let mut real_orders_seen = std::collections::HashSet::new();

    for record in stored {
        actual.count(record.outcome);
        if let Some(id) = &record.work_order_id
            && record.outcome == EventOutcome::Created
            && real_orders_seen.insert(id.clone())
        {
            real_created.push(id.clone());
        }
        let outcome = match (parse::from_value(record.cloudevent.clone()), &record.asset_id) {
            (Ok(event), Some(asset_id)) => {
                let asset = match asset_cache.get(asset_id) {
                    Some(a) => a.clone(),
                    None => {
                        let a = assets::get(conn, asset_id).await?;
                        asset_cache.insert(asset_id.clone(), a.clone());
                        a
                    }
                };
                match asset {
                    None => EventOutcome::Unmapped,
                    Some(asset) => {
                        let eval = budget.verdict(&event, &asset, rules).await?.resolve(rules);
                        match eval.acting.map(|r| (r, &r.action)) {
                            None => EventOutcome::NoMatch,
                            Some((_, Action::Ignore)) => EventOutcome::Ignored,
                            Some((rule, Action::Create(action))) => {
                                let ctx = serde_json::json!({"event": event_context(&event), "asset": asset});
                                let key = super::decide::dedup_key(action, &ctx, &event, &asset);
                                let time = event.time.unwrap_or(record.received_at);
                                // A real order for the key that closed since our simulated one opened closes it too.
                                if let Some(o) = open.get(&key)
                                    && let Some((_, _, closed_at)) = work_orders::last_closed(conn, &key).await?
                                    && closed_at > o.opened_at
                                    && closed_at <= record.received_at
                                {
                                    open.remove(&key);
                                }
                                if event.state == AlertState::Cleared {
                                    debounce.remove(&key);
                                    EventOutcome::Cleared
                                } else if suppressions::in_force(
                                    conn,
                                    &asset.id,
                                    &asset.site,
                                    &rule.id,
                                    record.received_at,
                                )
                                .await?
                                .is_some()
                                {
                                    EventOutcome::Suppressed
                                } else if let Some(o) = open.get(&key) {
                                    let order = &mut orders[o.index];
                                    order.events += 1;
                                    note_real(order, record.work_order_id.as_deref());
                                    EventOutcome::Merged
                                } else if !debounce_satisfied(
                                    action.debounce.as_ref(),
                                    debounce.entry(key.clone()).or_default(),
                                    time,
                                ) {
                                    EventOutcome::Debounced
                                } else {
                                    debounce.remove(&key);
                                    open.insert(
                                        key.clone(),
                                        Open { index: orders.len(), opened_at: record.received_at },
                                    );
                                    let mut order = SimulatedOrder {
                                        dedup_key: key,
                                        rule: rule.name.clone(),
                                        asset_id: asset.id.clone(),
                                        title: template::render(&action.title, &ctx).unwrap_or_default(),
                                        first_event_time: time,
                                        events: 1,
                                        real_orders: vec![],
                                        verdict: BacktestOutcome::Undecided,
                                    };
                                    note_real(&mut order, record.work_order_id.as_deref());
                                    orders.push(order);
                                    EventOutcome::Created
                                }
                            }
                        }
                    }
                }
            }
            _ => EventOutcome::Unmapped,
        };
        proposed.count(outcome);
        if outcome != record.outcome && changes.len() < 200 {
            changes.push(Change { event_id: record.event_id.clone(), actual: record.outcome, proposed: outcome });
        }
    }

    let mut judged: Vec<&str> = real_created.iter().map(String::as_str).collect();
    judged.extend(orders.iter().flat_map(|o| o.real_orders.iter().map(String::as_str)));
    judged.sort_unstable();
    judged.dedup();
    let verdicts = crate::store::feedback::verdicts(conn, &judged).await?;
    let verdict_of = |id: &str| verdicts.get(id).copied().map_or(BacktestOutcome::Undecided, BacktestOutcome::from);
    for id in &real_created {
        actual.orders += 1;
        actual.verdict(verdict_of(id));
    }
    for order in &mut orders {
        let mut verdict = BacktestOutcome::Undecided;
        for id in &order.real_orders {
            match verdict_of(id) {
                BacktestOutcome::Accepted => verdict = BacktestOutcome::Accepted,
                BacktestOutcome::Rejected if verdict == BacktestOutcome::Undecided => {
                    verdict = BacktestOutcome::Rejected
                }
                _ => {}
            }
        }
        order.verdict = verdict;
        proposed.verdict(verdict);
    }
    proposed.orders = orders.len() as u64;
    actual.finish();
    proposed.finish();
    orders.truncate(200);
    Ok(BacktestReport { since, until, events: stored.len() as u64, truncated, actual, proposed, orders, changes })
}

fn note_real(order: &mut SimulatedOrder, real: Option<&str>) {
    if let Some(id) = real
        && !order.real_orders.iter().any(|r| r == id)
    {
        order.real_orders.push(id.to_owned());
    }
}

/// Records `time` and says whether the debounce is satisfied with it.
fn debounce_satisfied(debounce: Option<&Debounce>, seen: &mut Vec<DateTime<Utc>>, time: DateTime<Utc>) -> bool {
    let Some(d) = debounce else { return true };
    seen.push(time);
    match d {
        Debounce::Occurrences { occurrences, within_minutes } => {
            let start = time - Duration::minutes(i64::from(*within_minutes));
            seen.iter().filter(|t| **t >= start && **t <= time).count() as u32 >= *occurrences
        }
        Debounce::HeldFor { held_for_minutes } => {
            seen.iter().min().is_some_and(|first| time - *first >= Duration::minutes(i64::from(*held_for_minutes)))
        }
    }
}
