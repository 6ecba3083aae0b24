use actix_web::{HttpResponse, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use super::{AppState, audit, json_of};
use crate::store::audit::Actor;
use crate::store::events::{self, EventRecord};
use crate::store::feedback::{self, Feedback, FeedbackInput};
use crate::store::outbox::{self, Delivery, DeliveryFilter};
use crate::store::work_orders::{self, OrderFilter, StatusChange, WorkOrder};
use crate::store::{Page, PageRequest, StoreError, TransactionTrait};

/// List work orders, newest first.
#[utoipa::path(tag = "work-orders", params(OrderFilter, PageRequest), responses(
    (status = 200, body = Page<WorkOrder>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/work-orders")]
pub async fn list_work_orders(
    state: web::Data<AppState>,
    filter: super::extract::Query<OrderFilter>,
    page: super::extract::Query<PageRequest>,
) -> Result<web::Json<Page<WorkOrder>>, ApiError> {
    Ok(web::Json(work_orders::list(state.store.conn(), &filter, *page).await?))
}

/// A work order with its events, decision trace and status history.
#[derive(Serialize, ToSchema)]
pub struct WorkOrderDetail {
    #[serde(flatten)]
    pub order: WorkOrder,
    pub events: Vec<EventRecord>,
    pub history: Vec<StatusChange>,
    /// Planner feedback, oldest first.
    pub feedback: Vec<Feedback>,
}

#[utoipa::path(tag = "work-orders", params(("id" = String, Path)), responses(
    (status = 200, body = WorkOrderDetail),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/work-orders/{id}")]
pub async fn get_work_order(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<WorkOrderDetail>, ApiError> {
    let conn = state.store.conn();
    let order = work_orders::get(conn, &id).await?;
    let events = events::of_order(conn, &id).await?;
    let history = work_orders::history(conn, &id).await?;
    let feedback = feedback::of_order(conn, &id).await?;
    Ok(web::Json(WorkOrderDetail { order, events, history, feedback }))
}

/// Deliveries to the EAMs (creates and cancels), most recently changed
/// first. `status=failed` lists the ones that gave up.
#[utoipa::path(tag = "work-orders", params(DeliveryFilter, PageRequest), responses(
    (status = 200, body = Page<Delivery>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    filter: super::extract::Query<DeliveryFilter>,
    page: super::extract::Query<PageRequest>,
) -> Result<web::Json<Page<Delivery>>, ApiError> {
    Ok(web::Json(outbox::list(state.store.conn(), &filter, *page).await?))
}

/// Send a failed order again: it goes back to `pending` and a new delivery
/// starts, with the full retry schedule. A create that may have reached the
/// EAM before is looked up by reference first, where the connector can.
#[utoipa::path(tag = "work-orders", params(("id" = String, Path)), responses(
    (status = 202, description = "Queued for delivery", body = WorkOrder),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The order is not failed", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/work-orders/{id}/retry")]
pub async fn retry_work_order(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let txn = state.store.conn().begin().await.map_err(StoreError::from)?;
    work_orders::reopen_for_retry(&txn, &id, "delivery retried through the API", now).await?;
    // Counted as a retry, so that the dispatcher asks the EAM by reference first.
    outbox::enqueue_retry(&txn, &id, outbox::KIND_CREATE, now).await?;
    audit(&txn, &state, &actor, "retry", "work_order", &id, None, None).await?;
    txn.commit().await.map_err(StoreError::from)?;
    state.decider.wake_dispatcher();
    Ok(HttpResponse::Accepted().json(work_orders::get(state.store.conn(), &id).await?))
}

/// Record a planner's verdict on an order: useful, or a false alarm (with an
/// optional comment). It feeds each rule's precision (backtests use it).
#[utoipa::path(tag = "work-orders", params(("id" = String, Path)), request_body = FeedbackInput, responses(
    (status = 201, body = Feedback),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/work-orders/{id}/feedback")]
pub async fn add_feedback(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
    input: super::extract::Json<FeedbackInput>,
) -> Result<HttpResponse, ApiError> {
    crate::domain::ident::check_name("author", &input.author, 128).map_err(ApiError::Validation)?;
    if let Some(comment) = &input.comment {
        crate::domain::ident::check_max("comment", comment, 4000).map_err(ApiError::Validation)?;
    }
    let txn = state.store.begin().await?;
    work_orders::get(&txn, &id).await?;
    let f = feedback::add(&txn, &id, &input, "planner", state.clock.now()).await?;
    audit(&txn, &state, &actor, "feedback", "work_order", &id, None, json_of(&f)).await?;
    txn.commit().await.map_err(StoreError::from)?;
    Ok(HttpResponse::Created().json(f))
}
