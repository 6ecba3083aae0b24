use actix_web::{get, web};

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::kpis::{self, KpiQuery, Kpis};

/// KPIs over a time range, computed in the database: counts, time to
/// create, acknowledge and complete (count, mean, p50, p90, p99 in seconds;
/// percentiles by the nearest-rank method: the value at rank ⌈p·n⌉), SLA
/// compliance, acceptance rate, automation rate, mapping coverage, dedup
/// savings and the open backlog. Orders count by their first event's time;
/// event rates by when events were received.
#[utoipa::path(tag = "work-orders", params(KpiQuery), responses(
    (status = 200, body = Kpis),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/kpis")]
pub async fn get_kpis(state: web::Data<AppState>, q: web::Query<KpiQuery>) -> Result<web::Json<Kpis>, ApiError> {
    if let (Some(s), Some(u)) = (q.since, q.until)
        && u <= s
    {
        return Err(ApiError::Validation("until must be after since".into()));
    }
    Ok(web::Json(kpis::compute(state.store.conn(), &q, state.clock.now()).await?))
}

/// KPIs per rule and version: events matched, orders created, events
/// merged, orders accepted, rejected or cancelled, precision (accepted ÷
/// decided), median time to acknowledge, and planner feedback counts.
#[utoipa::path(tag = "work-orders", params(KpiQuery), responses(
    (status = 200, body = Vec<crate::kpis::RuleKpis>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/kpis/rules")]
pub async fn get_rule_kpis(
    state: web::Data<AppState>,
    q: web::Query<KpiQuery>,
) -> Result<web::Json<Vec<crate::kpis::RuleKpis>>, ApiError> {
    Ok(web::Json(kpis::by_rule(state.store.conn(), &q, state.clock.now()).await?))
}
