use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use super::{AppState, mime, read_body};
use crate::decisions::Accepted;
use crate::domain::cloudevent::{self as parse, EventError};
use crate::domain::{AlertState, AssetHint, EventKind, InboundEvent, Severity};
use crate::store::events::{self, EventFilter, EventRecord};
use crate::store::{Page, PageRequest, StoreError};

/// A CloudEvent in structured mode (documentation of the contract; unknown
/// extra attributes and `data` fields are accepted and kept).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CloudEvent {
    /// Must be `1.0`.
    specversion: String,
    /// Unique per `source`; a repeated (source, id) has no second effect.
    id: String,
    source: String,
    #[schema(rename = "type")]
    kind: EventKind,
    time: Option<chrono::DateTime<chrono::Utc>>,
    /// The historian tag; required unless `data.asset` is given.
    subject: Option<String>,
    datacontenttype: Option<String>,
    data: EventData,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventData {
    state: AlertState,
    code: String,
    severity: Severity,
    message: Option<String>,
    asset: Option<AssetHint>,
    value: Option<f64>,
    unit: Option<String>,
    threshold: Option<f64>,
    score: Option<f64>,
    context: Option<serde_json::Value>,
}

/// The outcome of one element of a batch.
#[derive(Serialize, ToSchema)]
pub struct BatchItem {
    /// Position in the batch, from 0.
    pub index: usize,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: String,
    pub result: Option<Accepted>,
    pub error: Option<Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResult {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub items: Vec<BatchItem>,
}

/// Ingest events (CloudEvents 1.0 over HTTP).
///
/// Structured mode (`application/cloudevents+json` or `application/json`),
/// binary mode (`ce-*` headers, `data` as the body with its own
/// Content-Type) and batch mode (`application/cloudevents-batch+json`, or a
/// JSON array). One event answers 201 when it is new and 200 when this
/// (source, id) was already received (nothing happens a second time). A
/// batch answers 200 with one item per element: valid elements are stored
/// even when others are rejected, and each rejected element carries its
/// problem. A batch that fails half-way on a server error can be sent again
/// whole: elements already stored come back as duplicates.
#[utoipa::path(
    tag = "events",
    request_body(content(
        (CloudEvent = "application/cloudevents+json"),
        (CloudEvent = "application/json"),
        (Vec<CloudEvent> = "application/cloudevents-batch+json"),
    )),
    responses(
        (status = 201, description = "Stored and decided", body = Accepted),
        (status = 200, description = "Already received (single event), or the batch result", body = BatchResult),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or batch too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported Content-Type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid event", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A rule condition ran past `rules.eval_timeout_ms`: the event is not stored", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/events")]
pub async fn post_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.http.max_body_bytes).await?;
    let mime = mime(&req);
    if mime == "application/cloudevents-batch+json" {
        return batch(&state, &body).await;
    }
    if req.headers().contains_key("ce-specversion") {
        let headers = req.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v.to_owned())));
        let content_type = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let event =
            parse::binary(headers, content_type, &body).inspect_err(|e| state.decider.metrics().rejected(e.kind()))?;
        return single(&state, &parse::with_traceparent(event, traceparent(&req))).await;
    }
    if !(mime.is_empty() || parse::is_json(&mime)) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "{mime} is not accepted: use application/cloudevents+json, application/cloudevents-batch+json, application/json, or binary mode with ce-* headers"
        )));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return batch(&state, &body).await;
    }
    let event = parse::structured(&body).inspect_err(|e| state.decider.metrics().rejected(e.kind()))?;
    single(&state, &parse::with_traceparent(event, traceparent(&req))).await
}

fn traceparent(req: &HttpRequest) -> Option<&str> {
    req.headers().get("traceparent").and_then(|v| v.to_str().ok())
}

async fn single(state: &AppState, event: &InboundEvent) -> Result<HttpResponse, ApiError> {
    let accepted = state.decider.accept(event).await?;
    let mut resp = if accepted.duplicate { HttpResponse::Ok() } else { HttpResponse::Created() };
    Ok(resp.insert_header(("Location", format!("/v1/events/{}", accepted.id))).json(accepted))
}

async fn batch(state: &AppState, body: &[u8]) -> Result<HttpResponse, ApiError> {
    let parsed = parse::batch(body)?;
    let limit = state.http.max_batch_events;
    if parsed.len() > limit {
        return Err(ApiError::BatchTooLarge { count: parsed.len(), limit });
    }
    let mut result = BatchResult { accepted: 0, duplicates: 0, rejected: 0, items: Vec::with_capacity(parsed.len()) };
    let mut valid = Vec::with_capacity(parsed.len());
    let mut events = Vec::with_capacity(parsed.len());
    let mut items: Vec<Option<BatchItem>> = Vec::with_capacity(parsed.len());
    for (index, item) in parsed.into_iter().enumerate() {
        match item {
            Ok(event) => {
                valid.push(index);
                events.push(event);
                items.push(None);
            }
            Err(e) => {
                state.decider.metrics().rejected(e.kind());
                let e: EventError = e;
                let problem = ApiError::from(e).problem();
                items.push(Some(BatchItem { index, status: "rejected".into(), result: None, error: Some(problem) }));
            }
        }
    }
    // The valid elements in one transaction (group commit); if that fails,
    // one by one, so that one element's failure does not sink the others.
    let events: std::sync::Arc<[crate::domain::InboundEvent]> = events.into();
    let decided: Vec<Result<crate::decisions::Accepted, StoreError>> =
        match state.decider.accept_batch(events.clone()).await {
            Ok(all) => all.into_iter().map(Ok).collect(),
            Err(_) => {
                let mut one_by_one = Vec::with_capacity(events.len());
                for event in events.iter() {
                    one_by_one.push(state.decider.accept(event).await);
                }
                one_by_one
            }
        };
    for (index, outcome) in valid.iter().zip(decided) {
        let item = match outcome {
            Ok(accepted) => {
                let status = if accepted.duplicate { "duplicate" } else { "accepted" };
                BatchItem { index: *index, status: status.into(), result: Some(accepted), error: None }
            }
            // This element's rules ran too long; the others go on.
            Err(e @ StoreError::EvaluationTimeout(_)) => {
                let problem = ApiError::from(e).problem();
                BatchItem { index: *index, status: "rejected".into(), result: None, error: Some(problem) }
            }
            Err(e) => return Err(e.into()),
        };
        items[*index] = Some(item);
    }
    for item in items.into_iter().flatten() {
        match item.status.as_str() {
            "accepted" => result.accepted += 1,
            "duplicate" => result.duplicates += 1,
            _ => result.rejected += 1,
        }
        result.items.push(item);
    }
    Ok(HttpResponse::Ok().json(result))
}

/// List events, newest first, with what became of each.
///
/// `outcome=unmapped` lists the events no asset matched; `total` counts them.
#[utoipa::path(tag = "events", params(EventFilter, PageRequest), responses(
    (status = 200, body = Page<EventRecord>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/events")]
pub async fn list_events(
    state: web::Data<AppState>,
    filter: web::Query<EventFilter>,
    page: web::Query<PageRequest>,
) -> Result<web::Json<Page<EventRecord>>, ApiError> {
    Ok(web::Json(events::list(state.store.conn(), &filter, *page).await?))
}

/// One event with its decision trace. `id` is workbridge's id or the CloudEvents id.
#[utoipa::path(tag = "events", params(("id" = String, Path)), responses(
    (status = 200, body = EventRecord),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/events/{id}")]
pub async fn get_event(state: web::Data<AppState>, id: web::Path<String>) -> Result<web::Json<EventRecord>, ApiError> {
    Ok(web::Json(events::get(state.store.conn(), &id).await?))
}
