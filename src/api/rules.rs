use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::events::CloudEvent;
use super::problem::{ApiError, Problem};
use super::{AppState, audit, begin, commit, json_of};
use crate::decisions::DryRun;
use crate::decisions::backtest::{self, BacktestReport, BacktestRequest};
use crate::domain::cloudevent as parse;
use crate::rules::{Action, Rule, RuleInput, RuleSet};
use crate::store::DatabaseTransaction;
use crate::store::audit::Actor;
use crate::store::rules::{self, RuleVersion};

/// Checks a rule, and in `txn` that the connector it names exists (the
/// connector stays locked until `txn` ends, so it cannot be deleted before
/// the rule is committed).
async fn validate(txn: &DatabaseTransaction, input: &RuleInput) -> Result<(), ApiError> {
    input.validate().map_err(ApiError::Validation)?;
    if let Action::Create(c) = &input.action
        && !crate::store::connectors::exists_locked(txn, &c.connector).await?
    {
        return Err(ApiError::Validation(format!("action.connector: connector {} does not exist", c.connector)));
    }
    Ok(())
}

/// All rules in evaluation order: ascending `position`; the first enabled
/// rule that matches an event decides, later rules are not consulted.
#[utoipa::path(tag = "rules", responses((status = 200, body = Vec<Rule>)))]
#[get("/v1/rules")]
pub async fn list_rules(state: web::Data<AppState>) -> Result<web::Json<Vec<Rule>>, ApiError> {
    Ok(web::Json(rules::list(state.store.conn()).await?))
}

/// Create a rule (version 1).
#[utoipa::path(tag = "rules", request_body = RuleInput, responses(
    (status = 201, body = Rule),
    (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/rules")]
pub async fn create_rule(
    state: web::Data<AppState>,
    actor: Actor,
    input: super::extract::Json<RuleInput>,
) -> Result<HttpResponse, ApiError> {
    let txn = begin(&state).await?;
    validate(&txn, &input).await?;
    let rule = rules::create(&txn, &input, state.clock.now()).await?;
    audit(&txn, &state, &actor, "create", "rule", &rule.id, None, json_of(&rule)).await?;
    commit(txn).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/v1/rules/{}", rule.id))).json(rule))
}

#[utoipa::path(tag = "rules", params(("id" = String, Path)), responses(
    (status = 200, body = Rule),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/rules/{id}")]
pub async fn get_rule(state: web::Data<AppState>, id: web::Path<String>) -> Result<web::Json<Rule>, ApiError> {
    Ok(web::Json(rules::get(state.store.conn(), &id).await?))
}

/// Replace a rule; this makes a new version.
#[utoipa::path(tag = "rules", params(("id" = String, Path)), request_body = RuleInput, responses(
    (status = 200, body = Rule),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[put("/v1/rules/{id}")]
pub async fn put_rule(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
    input: super::extract::Json<RuleInput>,
) -> Result<web::Json<Rule>, ApiError> {
    let txn = begin(&state).await?;
    validate(&txn, &input).await?;
    let before = rules::get(&txn, &id).await?;
    let rule = rules::update(&txn, &id, &input, state.clock.now()).await?;
    audit(&txn, &state, &actor, "update", "rule", &rule.id, json_of(&before), json_of(&rule)).await?;
    commit(txn).await?;
    Ok(web::Json(rule))
}

/// Delete a rule. Its versions stay: orders refer to them.
#[utoipa::path(tag = "rules", params(("id" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/rules/{id}")]
pub async fn delete_rule(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let txn = begin(&state).await?;
    let before = rules::get(&txn, &id).await?;
    rules::delete(&txn, &id).await?;
    audit(&txn, &state, &actor, "delete", "rule", &id, json_of(&before), None).await?;
    commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every version of a rule, newest first.
#[utoipa::path(tag = "rules", params(("id" = String, Path)), responses(
    (status = 200, body = Vec<RuleVersion>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/rules/{id}/versions")]
pub async fn rule_versions(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<Vec<RuleVersion>>, ApiError> {
    Ok(web::Json(rules::versions(state.store.conn(), &id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    /// A CloudEvent in structured mode.
    #[schema(value_type = CloudEvent)]
    pub event: serde_json::Value,
    /// A proposed rule set to use instead of the stored rules, in the same
    /// form as `POST /v1/rules` (evaluated in ascending `position`).
    #[serde(default)]
    pub rules: Option<Vec<RuleInput>>,
}

/// Dry run: decide an event against the current (or a proposed) rule set
/// and return the trace and the would-be action. Nothing is stored: the
/// decision runs in a transaction that is rolled back, so it sees the open
/// orders as they are (a would-be merge names the order).
#[utoipa::path(tag = "rules", request_body = RuleTest, responses(
    (status = 200, body = DryRun),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "The event or a proposed rule is invalid", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/rules/test")]
pub async fn test_rules(
    state: web::Data<AppState>,
    input: super::extract::Json<RuleTest>,
) -> Result<web::Json<DryRun>, ApiError> {
    let input = input.into_inner();
    let event = parse::from_value(input.event)?;
    let proposed = match input.rules {
        None => None,
        Some(inputs) => Some(proposed_rule_set(inputs, state.clock.now())?),
    };
    Ok(web::Json(state.decider.dry_run(&event, proposed).await?))
}

/// Validates and compiles a proposed rule set (ids `proposed-<index>`).
fn proposed_rule_set(inputs: Vec<RuleInput>, now: chrono::DateTime<chrono::Utc>) -> Result<RuleSet, ApiError> {
    let mut rules = Vec::with_capacity(inputs.len());
    for (i, r) in inputs.into_iter().enumerate() {
        r.validate().map_err(|e| ApiError::Validation(format!("rules[{i}]: {e}")))?;
        rules.push(Rule {
            id: format!("proposed-{i}"),
            name: r.name.trim().to_owned(),
            enabled: r.enabled,
            position: r.position,
            version: 0,
            mode: r.mode,
            when: r.when,
            action: r.action,
            created_at: now,
            updated_at: now,
        });
    }
    RuleSet::compile(rules).map_err(ApiError::Validation)
}

/// Backtest: replay the events received in `[since, until)` against a
/// proposed rule set (default: the current rules), without side effects.
///
/// Reports, beside what the stored decisions were, the orders the proposed
/// rules would have created, merged, debounced or suppressed, the events
/// whose outcome would change, and the precision it would have had where
/// the real orders of those events were accepted (in progress, completed,
/// closed) or rejected (cancelled, rejected). The replay applies dedup,
/// debounce, clears and the stored suppression windows; a simulated order
/// stays open until an order with the same key was closed in reality.
/// Cooldown and inhibition are not replayed. At most 100,000 events.
#[utoipa::path(tag = "rules", request_body = BacktestRequest, responses(
    (status = 200, body = BacktestReport),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "A rule condition ran past `rules.eval_timeout_ms`", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/rules/backtest")]
pub async fn backtest_rules(
    state: web::Data<AppState>,
    input: super::extract::Json<BacktestRequest>,
) -> Result<web::Json<BacktestReport>, ApiError> {
    let input = input.into_inner();
    if input.until <= input.since {
        return Err(ApiError::field("/until", format!("{} is not after since ({})", input.until, input.since)));
    }
    let rules = match input.rules {
        Some(inputs) => proposed_rule_set(inputs, state.clock.now())?,
        None => RuleSet::compile_skipping(rules::list(state.store.conn()).await?).0,
    };
    let rules = std::sync::Arc::new(rules);
    Ok(web::Json(backtest::run(&state.store, &rules, state.decider.dry_run_budget(), input.since, input.until).await?))
}
