//! The per-event decision: an event mapped and evaluated (`Prepared`), decided
//! by `decide_prepared` into what is stored for it (and the order it opens), with
//! the dedup key and the shadow rules' trace.

use super::DecisionError;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Policy;
use super::cache::Snapshot;
use super::step::{OpenOrders, Step};
use crate::domain::{AlertState, Asset, EventOutcome, InboundEvent, template};
use crate::mapping::Mapping;
use crate::rules::{self, Action, CreateAction, Evaluated, Rule, RuleMode, RuleSet};
use crate::store as store_mod;
use crate::store::events::{self, Decided};
use crate::store::work_orders::{self, NewOrder};

fn template_context(event: &InboundEvent, asset: &Asset) -> Value {
    json!({ "event": crate::domain::EventView::of(event), "asset": asset })
}

fn mapping_trace(m: &Option<Mapping>) -> Value {
    match m {
        Some(m) => json!({"asset_id": m.asset.id, "by": m.by, "detail": m.detail}),
        None => Value::Null,
    }
}

/// An event mapped and evaluated, with its verdict naming rules by position
/// (so that it owns nothing of the rule set and can wait for its turn).
pub(super) struct PreparedEvent {
    mapping: Option<Mapping>,
    verdict: Option<Evaluated>,
    ctx: Value,
    key: Option<String>,
}

impl PreparedEvent {
    pub(super) fn new(
        event: &InboundEvent,
        mapping: Option<Mapping>,
        verdict: Option<Evaluated>,
        rules: &RuleSet,
    ) -> Self {
        let (Some(m), Some(verdict)) = (&mapping, verdict) else {
            return Self { mapping: None, verdict: None, ctx: Value::Null, key: None };
        };
        let ctx = template_context(event, &m.asset);
        let key = match verdict.acting(rules).map(|r| &r.action) {
            Some(Action::Create(action)) => Some(dedup_key(action, &ctx, event, &m.asset)),
            _ => None,
        };
        Self { mapping, verdict: Some(verdict), ctx, key }
    }

    pub(super) fn resolve(self, rules: &RuleSet) -> Prepared<'_> {
        let Self { mapping, verdict, ctx, key } = self;
        Prepared { mapping, eval: verdict.map(|v| v.resolve(rules)), ctx, key, rules, fired_by_timer: None }
    }
}

/// An event mapped and evaluated, ready to decide.
pub(super) struct Prepared<'r> {
    pub(super) mapping: Option<Mapping>,
    /// Present when mapped.
    pub(super) eval: Option<rules::Evaluation<'r>>,
    /// What templates see (null when unmapped).
    pub(super) ctx: Value,
    /// The dedup key, when a create rule acts.
    pub(super) key: Option<String>,
    /// The set `eval` names rules of (a clear looks up its episode's rule).
    pub(super) rules: &'r RuleSet,
    /// Decided again by the timer of a hold of this many minutes.
    pub(super) fired_by_timer: Option<i32>,
}

impl<'r> Prepared<'r> {
    pub(super) fn new(
        event: &InboundEvent,
        mapping: Option<Mapping>,
        verdict: Option<Evaluated>,
        rules: &'r RuleSet,
    ) -> Self {
        PreparedEvent::new(event, mapping, verdict, rules).resolve(rules)
    }
}

/// Decides a prepared event. With `fast` (the open orders of the batch's
/// keys) the decision is made in memory and nothing is written: `None` when
/// it needs more of the stored state. Without it, the decision reads and
/// writes in `txn` as needed.
pub(super) async fn decide_prepared(
    txn: &store_mod::DatabaseTransaction,
    event: &InboundEvent,
    p: &Prepared<'_>,
    snap: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    fast: Option<&OpenOrders>,
) -> Result<Option<(Decided, Option<NewOrder>)>, DecisionError> {
    let mapping = &p.mapping;
    let (Some(m), Some(eval)) = (mapping, &p.eval) else {
        let decided = Decided {
            site: event.asset_hint.as_ref().and_then(|h| h.site.clone()),
            asset_id: None,
            mapped_by: None,
            outcome: EventOutcome::Unmapped,
            rule_id: None,
            rule_version: None,
            work_order_id: None,
            dedup_key: None,
            trace: json!({
                "mapping": Value::Null,
                "rules": [],
                "decision": {"outcome": "unmapped", "reason": "no asset hint, tag or tag pattern matches a registered asset"},
            }),
        };
        return Ok(Some((with_time_note(decided, event), None)));
    };
    if fast.is_some() && (!eval.shadow.is_empty() || event.state == AlertState::Cleared) {
        // Shadow rules look up the open orders of their own keys; a clear
        // looks up its episode.
        return Ok(None);
    }
    // A clear belongs to the episode its raise opened: the rule that decided
    // that raise acts on it, with the raise's dedup key, whatever the rules
    // say of the clear's own values (a condition on `value` is false once
    // the value is back to normal).
    let episode = match event.state {
        AlertState::Cleared => events::episode(txn, &event.source, event.subject.as_deref(), &event.code)
            .await?
            .and_then(|(key, rule_id)| {
                let rule = p.rules.by_id(&rule_id).filter(|r| r.mode != RuleMode::Shadow)?;
                matches!(rule.action, Action::Create(_)).then_some((key, rule))
            }),
        AlertState::Raised => None,
    };
    let ctx = &p.ctx;
    let mut decided = Decided {
        site: Some(m.asset.site.clone()),
        asset_id: Some(m.asset.id.clone()),
        mapped_by: Some(m.by.as_str()),
        outcome: EventOutcome::NoMatch,
        rule_id: None,
        rule_version: None,
        work_order_id: None,
        dedup_key: None,
        trace: Value::Null,
    };
    let mut opened = None;
    let acting = episode.as_ref().map(|(_, rule)| *rule).or(eval.acting);
    let decision = match acting {
        None => json!({"outcome": "no_match", "reason": "no enabled live rule matches"}),
        Some(rule) => {
            decided.rule_id = Some(rule.id.clone());
            decided.rule_version = Some(rule.version);
            match &rule.action {
                Action::Ignore => {
                    decided.outcome = EventOutcome::Ignored;
                    json!({"outcome": "ignored", "reason": format!("rule {} ignores it", rule.name)})
                }
                Action::Create(action) => {
                    let key = match &episode {
                        Some((key, _)) => key.clone(),
                        None => p.key.clone().unwrap_or_else(|| dedup_key(action, ctx, event, &m.asset)),
                    };
                    decided.dedup_key = Some(key.clone());
                    let trace_so_far = json!({"mapping": mapping_trace(mapping), "rules": eval.trace});
                    let step = Step {
                        txn,
                        event,
                        asset: &m.asset,
                        rule,
                        action,
                        key,
                        policy,
                        snap,
                        now,
                        fast,
                        fired_by_timer: p.fired_by_timer,
                    };
                    let Some((outcome, order_id, detail, order)) = step.run(ctx, trace_so_far).await? else {
                        return Ok(None);
                    };
                    decided.outcome = outcome;
                    decided.work_order_id = order_id;
                    opened = order;
                    detail
                }
            }
        }
    };
    let mut shadow = vec![];
    for rule in &eval.shadow {
        shadow.push(shadow_decision(txn, event, &m.asset, rule, ctx).await?);
    }
    decided.trace = json!({
        "mapping": mapping_trace(mapping),
        "rules": eval.trace,
        "skipped_by_index": eval.skipped,
        "shadow": shadow,
        "decision": decision,
    });
    if let Some((key, rule)) = &episode {
        decided.trace["episode"] = json!({
            "rule_id": rule.id, "rule": rule.name, "dedup_key": key,
            "reason": "a clear goes to the rule and dedup key of its raise (same source, subject and code), whatever the rules say of its own values",
        });
    }
    Ok(Some((with_time_note(decided, event), opened)))
}

/// Says in the trace where the event's time came from when the producer sent none.
fn with_time_note(mut decided: Decided, event: &InboundEvent) -> Decided {
    if !event.time_from_producer()
        && let Some(trace) = decided.trace.as_object_mut()
    {
        trace.insert("time".into(), Value::from(crate::domain::TIME_RECEIVED));
    }
    decided
}

pub(super) fn dedup_key(action: &CreateAction, ctx: &Value, event: &InboundEvent, asset: &Asset) -> String {
    if action.dedup_key == rules::DEFAULT_DEDUP_KEY {
        // What the default template renders, without handing the whole
        // context to the template engine for every event.
        return format!("{}:{}", asset.id, event.code).trim().to_owned();
    }
    template::render(&action.dedup_key, ctx)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| format!("{}:{}", asset.id, event.code))
}

/// What a matching shadow rule would have done, for the trace only.
async fn shadow_decision(
    txn: &store_mod::DatabaseTransaction,
    event: &InboundEvent,
    asset: &Asset,
    rule: &Rule,
    ctx: &Value,
) -> Result<Value, DecisionError> {
    let would = match &rule.action {
        Action::Ignore => json!({"action": "ignore"}),
        Action::Create(action) => {
            let key = dedup_key(action, ctx, event, asset);
            match work_orders::find_open(txn, &key).await? {
                Some(id) => json!({"action": "merge", "work_order_id": id, "dedup_key": key}),
                None => json!({
                    "action": "create",
                    "connector": action.connector,
                    "dedup_key": key,
                    "title": template::render(&action.title, ctx).unwrap_or_default(),
                    "priority": action.priority.resolve(event.severity, asset.criticality.as_deref()).get(),
                }),
            }
        }
    };
    Ok(json!({"rule_id": rule.id, "rule": rule.name, "version": rule.version, "would": would}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default dedup key skips the template engine: it must be what the
    /// template renders, whatever the asset id and code hold.
    #[test]
    fn the_default_dedup_key_is_what_its_template_renders() {
        let action: CreateAction = serde_json::from_value(json!({"connector": "c"})).unwrap();
        assert_eq!(action.dedup_key, rules::DEFAULT_DEDUP_KEY);
        for (id, code) in [("P-101", "HIGH_TEMP"), ("A <&> \"b\" {{x}}", " é/ü 温度 "), ("x ", "  C  ")] {
            let asset = Asset {
                id: id.into(),
                site: "S".into(),
                name: "N".into(),
                class: "C".into(),
                criticality: None,
                parent: None,
                eam_system: None,
            };
            let event: InboundEvent = crate::domain::cloudevent::structured(
                json!({"specversion": "1.0", "id": "e", "source": "s", "type": "tdl.alert", "subject": "T",
                       "data": {"state": "raised", "code": code, "severity": "minor"}})
                .to_string()
                .as_bytes(),
            )
            .unwrap_or_else(|e| panic!("{code:?}: {e}"));
            let ctx = template_context(&event, &asset);
            let rendered = template::render(rules::DEFAULT_DEDUP_KEY, &ctx).unwrap().trim().to_owned();
            assert_eq!(dedup_key(&action, &ctx, &event, &asset), rendered, "{id:?} {code:?}");
        }
    }
}
