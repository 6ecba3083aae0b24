use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::store::events::{self, EventRecord};
use crate::store::work_orders::{self, OrderFilter, StatusChange, WorkOrder};
use crate::store::{Page, PageRequest};

/// List work orders, newest first.
#[utoipa::path(tag = "work-orders", params(OrderFilter, PageRequest), responses(
    (status = 200, body = Page<WorkOrder>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/work-orders")]
pub async fn list_work_orders(
    state: web::Data<AppState>,
    filter: web::Query<OrderFilter>,
    page: web::Query<PageRequest>,
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
    Ok(web::Json(WorkOrderDetail { order, events, history }))
}
