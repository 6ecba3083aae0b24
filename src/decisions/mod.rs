//! The decision: map the event, evaluate the rules, and create or merge an
//! order. The event row, the order and its outbox row are written in ONE
//! transaction, so that a committed event always carries all its effects
//! and a message is acknowledged only after that commit.

pub mod dispatcher;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::config::SlaSettings;
use crate::domain::{AlertState, EventOutcome, InboundEvent};
use crate::mapping::{self, Asset, Mapping};
use crate::rules::{self, Action, CreateAction, Rule, RuleSet, template};
use crate::store::events::{self, Decided};
use crate::store::work_orders::{self, NewOrder};
use crate::store::{self as store_mod, Store, StoreError, TransactionTrait, new_id, outbox};

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
    sla: SlaSettings,
    rules: Arc<RuleCache>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider").finish_non_exhaustive()
    }
}

/// The compiled rule set, reloaded when the rules table changes (on any
/// replica): its stamp is the rule count and the latest change.
#[derive(Default)]
struct RuleCache {
    loaded: std::sync::Mutex<Option<(store_mod::rules::Stamp, Arc<RuleSet>)>>,
}

impl RuleCache {
    async fn get<C: sea_orm::ConnectionTrait>(&self, conn: &C) -> Result<Arc<RuleSet>, StoreError> {
        let stamp = store_mod::rules::stamp(conn).await?;
        if let Some((s, set)) = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
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
    pub fn new(store: Store, clock: Arc<dyn Clock>, wake: Arc<Notify>, sla: SlaSettings) -> Self {
        Self {
            store,
            clock,
            wake,
            sla,
            rules: Arc::default(),
        }
    }

    /// Decides `event` against the stored rules, or `proposed` ones, inside a
    /// transaction that is rolled back: the answer reflects the open orders
    /// as they are, and nothing is written.
    pub async fn dry_run(
        &self,
        event: &InboundEvent,
        proposed: Option<RuleSet>,
    ) -> Result<DryRun, StoreError> {
        let txn = self.store.conn().begin().await?;
        let rules = match proposed {
            Some(set) => Arc::new(set),
            None => self.rules.get(&txn).await?,
        };
        let (decided, order) = decide(&txn, event, &rules, &self.sla, self.clock.now()).await?;
        txn.rollback().await?;
        let created = decided.outcome == EventOutcome::Created;
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
            trace: decided.trace,
        })
    }

    /// Stores the event and everything it causes, once per (source, id).
    #[tracing::instrument(skip_all, fields(source = %event.source, event_id = %event.id))]
    pub async fn accept(&self, event: &InboundEvent) -> Result<Accepted, StoreError> {
        let conn = self.store.conn();
        // Redeliveries are common (at-least-once): answer them without a write.
        if let Some(existing) = events::find(conn, &event.source, &event.id).await? {
            return Ok(duplicate(existing));
        }
        let now = self.clock.now();
        let txn = conn.begin().await?;
        let rules = self.rules.get(&txn).await?;
        let (decided, _) = decide(&txn, event, &rules, &self.sla, now).await?;
        let id = new_id();
        let accepted = Accepted {
            id: id.clone(),
            source: event.source.clone(),
            event_id: event.id.clone(),
            outcome: decided.outcome,
            duplicate: false,
            asset_id: decided.asset_id.clone(),
            work_order_id: decided.work_order_id.clone(),
        };
        if !events::insert_if_new(&txn, &id, event, decided, now).await? {
            // Another consumer or replica stored it first: undo our effects.
            txn.rollback().await?;
            let existing = events::find(conn, &event.source, &event.id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("event {}", event.id)))?;
            return Ok(duplicate(existing));
        }
        txn.commit().await?;
        if accepted.outcome == EventOutcome::Created {
            self.wake.notify_one();
        }
        tracing::debug!(outcome = accepted.outcome.as_str(), "event decided");
        Ok(accepted)
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

/// What rules and templates see of an event.
pub fn event_context(e: &InboundEvent) -> Value {
    let mut ctx = json!({
        "id": e.id,
        "source": e.source,
        "type": e.kind.as_str(),
        "subject": e.subject,
        "time": e.time.map(|t| t.to_rfc3339()),
        "state": e.state.as_str(),
        "code": e.code,
        "severity": e.severity.as_str(),
        "message": e.message,
        "data": e.data,
    });
    for f in ["value", "unit", "threshold", "score", "context"] {
        ctx[f] = e.data.get(f).cloned().unwrap_or(Value::Null);
    }
    ctx
}

fn template_context(event: &InboundEvent, asset: &Asset) -> Value {
    json!({ "event": event_context(event), "asset": asset })
}

fn mapping_trace(m: &Option<Mapping>) -> Value {
    match m {
        Some(m) => json!({"asset_id": m.asset.id, "by": m.by, "detail": m.detail}),
        None => Value::Null,
    }
}

/// Decides within `txn`; writes the order and outbox rows it needs, and
/// returns the order it opened, if any.
async fn decide(
    txn: &store_mod::DatabaseTransaction,
    event: &InboundEvent,
    rules: &RuleSet,
    sla: &SlaSettings,
    now: DateTime<Utc>,
) -> Result<(Decided, Option<NewOrder>), StoreError> {
    let mapping = mapping::map_event(txn, event).await?;
    let Some(m) = &mapping else {
        return Ok((
            Decided {
                site: event.asset_hint.as_ref().and_then(|h| h.site.clone()),
                asset_id: None,
                mapped_by: None,
                outcome: EventOutcome::Unmapped,
                rule_id: None,
                rule_version: None,
                work_order_id: None,
                trace: json!({
                    "mapping": Value::Null,
                    "rules": [],
                    "decision": {"outcome": "unmapped", "reason": "no asset hint, tag or tag pattern matches a registered asset"},
                }),
            },
            None,
        ));
    };
    let eval = rules::evaluate(event, &m.asset, rules);
    let mut opened = None;
    let mut decided = Decided {
        site: Some(m.asset.site.clone()),
        asset_id: Some(m.asset.id.clone()),
        mapped_by: Some(m.by.as_str()),
        outcome: EventOutcome::NoMatch,
        rule_id: None,
        rule_version: None,
        work_order_id: None,
        trace: Value::Null,
    };
    let decision = match eval.acting {
        None => json!({"outcome": "no_match", "reason": "no enabled rule matches"}),
        Some(rule) => {
            decided.rule_id = Some(rule.id.clone());
            decided.rule_version = Some(rule.version);
            match &rule.action {
                Action::Ignore => {
                    decided.outcome = EventOutcome::Ignored;
                    json!({"outcome": "ignored", "reason": format!("rule {} ignores it", rule.name)})
                }
                Action::Create(action) => {
                    let trace_so_far =
                        json!({"mapping": mapping_trace(&mapping), "rules": eval.trace});
                    let (outcome, order_id, detail, order) =
                        create_or_merge(txn, event, &m.asset, rule, action, sla, trace_so_far, now)
                            .await?;
                    decided.outcome = outcome;
                    decided.work_order_id = order_id;
                    opened = order;
                    detail
                }
            }
        }
    };
    decided.trace = json!({
        "mapping": mapping_trace(&mapping),
        "rules": eval.trace,
        "skipped_by_index": eval.skipped,
        "decision": decision,
    });
    Ok((decided, opened))
}

#[allow(clippy::too_many_arguments)]
async fn create_or_merge(
    txn: &store_mod::DatabaseTransaction,
    event: &InboundEvent,
    asset: &Asset,
    rule: &Rule,
    action: &CreateAction,
    sla: &SlaSettings,
    trace: Value,
    now: DateTime<Utc>,
) -> Result<(EventOutcome, Option<String>, Value, Option<NewOrder>), StoreError> {
    let ctx = template_context(event, asset);
    let key = template::render(&action.dedup_key, &ctx)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| format!("{}:{}", asset.id, event.code));
    let event_time = event.time.unwrap_or(now);

    if event.state == AlertState::Cleared {
        let open = work_orders::find_open(txn, &key).await?;
        let reason = match &open {
            Some(id) => format!("alert cleared; recorded on open order {id}"),
            None => "alert cleared; no open order for this key".to_owned(),
        };
        return Ok((
            EventOutcome::Cleared,
            open,
            json!({"outcome": "cleared", "reason": reason, "dedup_key": key}),
            None,
        ));
    }

    // Two rounds at most: if another transaction opens an order for the key
    // between our merge attempt and our insert, the insert yields and the
    // second merge finds that order.
    for _ in 0..2 {
        if let Some(id) = work_orders::merge_into_open(txn, &key, event_time, now).await? {
            let reason = format!("merged into open order {id} (same dedup key)");
            return Ok((
                EventOutcome::Merged,
                Some(id.clone()),
                json!({"outcome": "merged", "reason": reason, "dedup_key": key, "work_order_id": id}),
                None,
            ));
        }
        let mut template_errors = Vec::new();
        let mut render = |field: &str, src: &str, fallback: String| {
            template::render(src, &ctx).unwrap_or_else(|e| {
                template_errors.push(format!("{field}: {e}"));
                fallback
            })
        };
        let title = render(
            "title",
            &action.title,
            format!("{} on {}", event.code, asset.id),
        );
        let description = render(
            "description",
            &action.description,
            event.message.clone().unwrap_or_else(|| event.code.clone()),
        );
        let priority = action
            .priority
            .resolve(event.severity, asset.criticality.as_deref());
        let order = NewOrder {
            id: new_id(),
            connector: action.connector.clone(),
            rule_id: rule.id.clone(),
            rule_version: rule.version,
            dedup_key: key.clone(),
            asset_id: Some(asset.id.clone()),
            site: Some(asset.site.clone()),
            title: title.chars().take(250).collect(),
            description,
            work_type: action.work_type.clone(),
            priority: i32::from(priority.get()),
            event_time,
            due_by: Some(event_time + sla.due_after(priority)),
            trace: json!({
                "mapping": trace["mapping"],
                "rules": trace["rules"],
                "decision": {"outcome": "created", "reason": format!("rule {} v{} creates an order", rule.name, rule.version), "dedup_key": key, "template_errors": template_errors},
            }),
        };
        if work_orders::insert_open(txn, &order, now).await? {
            outbox::enqueue(txn, &order.id, outbox::KIND_CREATE, now).await?;
            return Ok((
                EventOutcome::Created,
                Some(order.id.clone()),
                json!({"outcome": "created", "reason": format!("rule {} v{} creates an order via connector {}", rule.name, rule.version, action.connector), "dedup_key": key, "work_order_id": order.id, "priority": priority.get(), "template_errors": template_errors}),
                Some(order),
            ));
        }
    }
    Err(StoreError::Conflict(format!(
        "could not open or merge into an order for key {key}"
    )))
}
