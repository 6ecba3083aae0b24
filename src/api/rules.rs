use actix_web::{HttpResponse, delete, get, post, put, web};

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::rules::{Action, Rule, RuleInput};
use crate::store::rules::{self, RuleVersion};
use crate::store::{StoreError, TransactionTrait, connectors};

async fn validate(state: &AppState, input: &RuleInput) -> Result<(), ApiError> {
    input.validate().map_err(ApiError::Validation)?;
    if let Action::Create(c) = &input.action
        && connectors::get(state.store.conn(), &c.connector)
            .await?
            .is_none()
    {
        return Err(ApiError::Validation(format!(
            "action.connector: connector {} does not exist",
            c.connector
        )));
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
    input: web::Json<RuleInput>,
) -> Result<HttpResponse, ApiError> {
    validate(&state, &input).await?;
    let txn = state.store.conn().begin().await.map_err(StoreError::from)?;
    let rule = rules::create(&txn, &input, state.clock.now()).await?;
    txn.commit().await.map_err(StoreError::from)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/rules/{}", rule.id)))
        .json(rule))
}

#[utoipa::path(tag = "rules", params(("id" = String, Path)), responses(
    (status = 200, body = Rule),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/rules/{id}")]
pub async fn get_rule(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<Rule>, ApiError> {
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
    id: web::Path<String>,
    input: web::Json<RuleInput>,
) -> Result<web::Json<Rule>, ApiError> {
    validate(&state, &input).await?;
    let txn = state.store.conn().begin().await.map_err(StoreError::from)?;
    let rule = rules::update(&txn, &id, &input, state.clock.now()).await?;
    txn.commit().await.map_err(StoreError::from)?;
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
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    rules::delete(state.store.conn(), &id).await?;
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
