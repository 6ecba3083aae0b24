use actix_web::{get, web};

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::kpis::{self, KpiQuery, Kpis};

/// KPIs over a time range, computed in the database: counts, time to
/// create, acknowledge and complete (count, mean, p50, p90, p99 in seconds;
/// percentiles by the nearest-rank method: the value at rank ⌈p·n⌉), SLA
/// compliance, acceptance rate, automation rate, mapping coverage, dedup
/// savings, the open backlog, and the review before the EAM (proposals,
/// approval rate, time to review, backlog). Orders count by their first event's time;
/// event rates by when events were received.
#[utoipa::path(tag = "kpis", params(KpiQuery), responses(
    (status = 200, body = Kpis),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/kpis")]
pub async fn get_kpis(
    state: web::Data<AppState>,
    q: super::extract::Query<KpiQuery>,
) -> Result<web::Json<Kpis>, ApiError> {
    if let (Some(s), Some(u)) = (q.since, q.until)
        && u <= s
    {
        return Err(ApiError::param("until", format!("{u} is not after since ({s})")));
    }
    Ok(web::Json(kpis::compute(state.store.conn(), &q, state.clock.now()).await?))
}

/// KPIs per rule and version: events matched, orders created, events
/// merged, orders accepted, rejected or cancelled, proposals and their
/// approval rate (review mode), orders by verdict (useful, false alarm,
/// undecided: planner feedback, then a review rejection, then the EAM's
/// closure code, then the order's outcome) and precision = useful ÷
/// (useful + false alarm), median time to acknowledge, and planner
/// feedback counts.
#[utoipa::path(tag = "kpis", params(KpiQuery), responses(
    (status = 200, body = Vec<crate::kpis::RuleKpis>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/kpis/rules")]
pub async fn get_rule_kpis(
    state: web::Data<AppState>,
    q: super::extract::Query<KpiQuery>,
) -> Result<web::Json<Vec<crate::kpis::RuleKpis>>, ApiError> {
    Ok(web::Json(kpis::by_rule(state.store.conn(), &q, state.clock.now()).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// hour, day or week.
    #[param(inline)]
    pub bucket: crate::kpis::Bucket,
    /// IANA time zone that aligns the buckets (default UTC), e.g. `America/Chicago`;
    /// a name the time zone database does not know is refused with 422.
    pub tz: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    pub kpis: Kpis,
}

/// The KPIs of `GET /v1/kpis`, bucketed by hour, day or week in the time
/// zone the request names (a plant's day is its local day; weeks start on
/// Monday). At most 400 buckets.
#[utoipa::path(tag = "kpis", params(KpiQuery, SeriesQuery), responses(
    (status = 200, body = Vec<SeriesPoint>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/kpis/timeseries")]
pub async fn get_kpi_series(
    state: web::Data<AppState>,
    q: super::extract::Query<KpiQuery>,
    series: super::extract::Query<SeriesQuery>,
) -> Result<web::Json<Vec<SeriesPoint>>, ApiError> {
    let tz: chrono_tz::Tz = series.tz.as_deref().unwrap_or("UTC").parse().map_err(|_| {
        ApiError::param(
            "tz",
            format!(
                "{:?} is not an IANA time zone name; use e.g. UTC or Europe/Berlin",
                series.tz.as_deref().unwrap_or("")
            ),
        )
    })?;
    let now = state.clock.now();
    let until = q.until.unwrap_or(now);
    let since = q.since.unwrap_or(until - chrono::Duration::days(30));
    if until <= since {
        return Err(ApiError::param("until", format!("{until} is not after since ({since})")));
    }
    let bounds = kpis::buckets(since, until, series.bucket, tz).map_err(|e| ApiError::param("since", e))?;
    let mut points = Vec::with_capacity(bounds.len());
    for (start, end) in bounds {
        let bucket = KpiQuery { since: Some(start), until: Some(end), ..q.0.clone() };
        points.push(SeriesPoint { start, end, kpis: kpis::compute(state.store.conn(), &bucket, now).await? });
    }
    Ok(web::Json(points))
}
