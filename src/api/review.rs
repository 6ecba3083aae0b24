//! The review queue: proposals (orders opened by rules in `review` mode)
//! listed, approved or rejected, one at a time or in bulk, each decision
//! audited with the acting key in the transaction that makes it.

use actix_web::{get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::extract::{Json, Query};
use super::problem::{ApiError, Problem};
use super::{AppState, audit, begin, commit, json_of};
use crate::decisions::review;
use crate::domain::OrderStatus;
use crate::store::audit::Actor;
use crate::store::work_orders::{self, ProposalFilter, WorkOrder};
use crate::store::{Page, PageRequest};

/// Longest reason or comment a planner may give.
const MAX_TEXT: usize = 1000;
/// Most proposals one bulk request may name.
const MAX_IDS: usize = 500;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveInput {
    /// Kept in the order's history and the audit trail (at most 1000 characters).
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectInput {
    /// Why the proposal is not work (1 to 1000 characters).
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkApprove {
    /// 1 to 500 order ids.
    #[schema(min_items = 1, max_items = 500)]
    pub ids: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReject {
    /// 1 to 500 order ids.
    #[schema(min_items = 1, max_items = 500)]
    pub ids: Vec<String>,
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

/// What became of one proposal of a bulk request: its new status, or the
/// problem (404 unknown, 409 not proposed).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalBulkResult {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<OrderStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalBulkResults {
    /// One per id, in the order of the request.
    pub results: Vec<ProposalBulkResult>,
}

fn comment_of(comment: Option<&str>) -> Result<Option<&str>, ApiError> {
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_TEXT) {
        return Err(ApiError::Validation(format!("comment: at most {MAX_TEXT} characters")));
    }
    Ok(comment)
}

fn reason_of(reason: &str) -> Result<&str, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_TEXT {
        return Err(ApiError::Validation(format!("reason: must be 1 to {MAX_TEXT} characters")));
    }
    Ok(reason)
}

fn ids_of(ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(ApiError::Validation(format!("ids: must name 1 to {MAX_IDS} orders, got {}", ids.len())));
    }
    Ok(())
}

/// The optional body of an approval: empty, or `ApproveInput` as JSON.
fn approve_body(body: &[u8]) -> Result<ApproveInput, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ApproveInput::default());
    }
    super::extract::from_json_bytes(body)
}

/// Approves one proposal, audited, in one transaction.
async fn approve_one(state: &AppState, actor: &Actor, id: &str, comment: Option<&str>) -> Result<WorkOrder, ApiError> {
    let now = state.clock.now();
    let txn = begin(state).await?;
    let order = review::approve(&txn, id, &actor.name, comment, now).await?;
    let mut after = json_of(&order);
    if let (Some(a), Some(c)) = (after.as_mut(), comment) {
        a["comment"] = json!(c);
    }
    audit(&txn, state, actor, "approve", "work_order", id, None, after).await?;
    commit(txn).await?;
    Ok(order)
}

/// Rejects one proposal, audited, in one transaction.
async fn reject_one(state: &AppState, actor: &Actor, id: &str, reason: &str) -> Result<WorkOrder, ApiError> {
    let now = state.clock.now();
    let txn = begin(state).await?;
    let order = review::reject(&txn, id, &actor.name, reason, now).await?;
    let mut after = json_of(&order);
    if let Some(a) = after.as_mut() {
        a["reason"] = json!(reason);
    }
    audit(&txn, state, actor, "reject", "work_order", id, None, after).await?;
    commit(txn).await?;
    Ok(order)
}

fn result_of(id: &str, r: Result<WorkOrder, ApiError>) -> ProposalBulkResult {
    match r {
        Ok(order) => ProposalBulkResult { id: id.to_owned(), status: Some(order.status), error: None },
        Err(e) => {
            if let ApiError::Internal(cause) = &e {
                tracing::error!(order = id, error = %cause, "a bulk review step failed");
            }
            ProposalBulkResult { id: id.to_owned(), status: None, error: Some(e.problem()) }
        }
    }
}

/// The review queue: open proposals, oldest first. Filters as for
/// `GET /v1/work-orders` (`since`/`until` on when they were proposed).
#[utoipa::path(tag = "work-orders", params(ProposalFilter, PageRequest), responses(
    (status = 200, body = Page<WorkOrder>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/proposals")]
pub async fn list_proposals(
    state: web::Data<AppState>,
    filter: Query<ProposalFilter>,
    page: Query<PageRequest>,
) -> Result<web::Json<Page<WorkOrder>>, ApiError> {
    Ok(web::Json(work_orders::list_proposals(state.store.conn(), &filter, *page).await?))
}

/// Approve a proposal: it becomes `pending` and goes through the outbox to
/// the EAM exactly as a live order does. The body is optional.
#[utoipa::path(tag = "work-orders", params(("id" = String, Path)),
    request_body(content = Option<ApproveInput>, description = "Optional: a comment"),
    responses(
        (status = 200, body = WorkOrder),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is not proposed", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/work-orders/{id}/approve")]
pub async fn approve_proposal(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<WorkOrder>, ApiError> {
    let input = approve_body(&body)?;
    let comment = comment_of(input.comment.as_deref())?;
    let order = approve_one(&state, &actor, &id, comment).await?;
    state.decider.wake_dispatcher();
    Ok(web::Json(order))
}

/// Reject a proposal with a reason: it ends `rejected`, and the rejection
/// counts as feedback `false_alarm` for its rule.
#[utoipa::path(tag = "work-orders", params(("id" = String, Path)), request_body = RejectInput, responses(
    (status = 200, body = WorkOrder),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The order is not proposed", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/work-orders/{id}/reject")]
pub async fn reject_proposal(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
    input: Json<RejectInput>,
) -> Result<web::Json<WorkOrder>, ApiError> {
    let reason = reason_of(&input.reason)?;
    Ok(web::Json(reject_one(&state, &actor, &id, reason).await?))
}

/// Approve many proposals; each is its own decision (one failing leaves
/// the others done), answered in the order of `ids`.
#[utoipa::path(tag = "work-orders", request_body = BulkApprove, responses((status = 200, body = ProposalBulkResults)))]
#[post("/v1/proposals/approve")]
pub async fn bulk_approve(
    state: web::Data<AppState>,
    actor: Actor,
    input: Json<BulkApprove>,
) -> Result<web::Json<ProposalBulkResults>, ApiError> {
    ids_of(&input.ids)?;
    let comment = comment_of(input.comment.as_deref())?;
    let mut results = Vec::with_capacity(input.ids.len());
    for id in &input.ids {
        results.push(result_of(id, approve_one(&state, &actor, id, comment).await));
    }
    if results.iter().any(|r| r.status.is_some()) {
        state.decider.wake_dispatcher();
    }
    Ok(web::Json(ProposalBulkResults { results }))
}

/// Reject many proposals with one reason; each is its own decision,
/// answered in the order of `ids`.
#[utoipa::path(tag = "work-orders", request_body = BulkReject, responses((status = 200, body = ProposalBulkResults)))]
#[post("/v1/proposals/reject")]
pub async fn bulk_reject(
    state: web::Data<AppState>,
    actor: Actor,
    input: Json<BulkReject>,
) -> Result<web::Json<ProposalBulkResults>, ApiError> {
    ids_of(&input.ids)?;
    let reason = reason_of(&input.reason)?;
    let mut results = Vec::with_capacity(input.ids.len());
    for id in &input.ids {
        results.push(result_of(id, reject_one(&state, &actor, id, reason).await));
    }
    Ok(web::Json(ProposalBulkResults { results }))
}
