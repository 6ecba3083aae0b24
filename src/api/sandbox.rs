use actix_web::{get, post, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::domain::OrderStatus;
use crate::store::sandbox::{self, SandboxOrder};
use crate::store::{Page, PageRequest, StoreError, TransactionTrait};
use crate::sync;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SandboxFilter {
    pub status: Option<String>,
}

/// Orders in the simulated EAM.
#[utoipa::path(tag = "sandbox", params(SandboxFilter, PageRequest), responses((status = 200, body = Page<SandboxOrder>)))]
#[get("/v1/sandbox/orders")]
pub async fn list_sandbox_orders(
    state: web::Data<AppState>,
    filter: super::extract::Query<SandboxFilter>,
    page: super::extract::Query<PageRequest>,
) -> Result<web::Json<Page<SandboxOrder>>, ApiError> {
    Ok(web::Json(sandbox::list(state.store.conn(), filter.status.as_deref(), *page).await?))
}

#[utoipa::path(tag = "sandbox", params(("id" = String, Path)), responses(
    (status = 200, body = SandboxOrder),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/sandbox/orders/{id}")]
pub async fn get_sandbox_order(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<SandboxOrder>, ApiError> {
    Ok(web::Json(sandbox::get(state.store.conn(), &id).await?))
}

/// The statuses a planner sets in the (simulated) EAM; the others
/// (proposed, pending, expired, …) are workbridge's own.
pub const SETTABLE: &[OrderStatus] = {
    use OrderStatus::*;
    &[Acknowledged, InProgress, Completed, Closed, Cancelled, Rejected]
};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxStatusChange {
    /// acknowledged, in_progress, completed, closed, cancelled or rejected.
    pub status: OrderStatus,
    pub note: Option<String>,
}

/// Move a sandbox order through the lifecycle, as a planner would in a
/// real EAM. The change reaches the workbridge order and its status history
/// at once (the sandbox needs no polling or webhook).
#[utoipa::path(tag = "sandbox", params(("id" = String, Path)), request_body = SandboxStatusChange, responses(
    (status = 200, body = SandboxOrder),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/sandbox/orders/{id}/status")]
pub async fn set_sandbox_status(
    state: web::Data<AppState>,
    id: web::Path<String>,
    change: super::extract::Json<SandboxStatusChange>,
) -> Result<web::Json<SandboxOrder>, ApiError> {
    if !SETTABLE.contains(&change.status) {
        return Err(ApiError::Validation(format!(
            "status {} cannot be set in the EAM; use acknowledged, in_progress, completed, closed, cancelled or rejected",
            change.status.as_str()
        )));
    }
    let now = state.clock.now();
    let txn = state.store.conn().begin().await.map_err(StoreError::from)?;
    let order = sandbox::set_status(&txn, &id, change.status.as_str(), now).await?;
    sync::apply(
        &txn,
        &order.reference,
        sync::StatusUpdate {
            status: change.status,
            external_status: Some(change.status.as_str()),
            source: "sandbox",
            at: now,
            note: change.note.as_deref(),
        },
        now,
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    Ok(web::Json(order))
}
