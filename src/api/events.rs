use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use super::{AppState, mime, read_body};
use crate::decisions::Accepted;
use crate::domain::glob::TagGlob;
use crate::domain::{AlertState, AssetHint, EventKind, Severity};
use crate::ingest::http::{self, HttpIngestError, Ingested};
use crate::store::events::{self, EventFilter, EventRecord, UnmappedFilter, UnmappedSubject};
use crate::store::{Page, PageRequest};

/// A CloudEvent in structured mode (documentation of the contract).
/// Extension attributes (lower-case letters and digits, e.g.
/// `traceparent`) and unknown `data` fields are accepted and kept. Either
/// `subject` or `data.asset` is required: an event with neither is refused
/// with 422.
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
    /// A URI of the schema `data` adheres to.
    #[schema(format = "uri")]
    dataschema: Option<String>,
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
    let ingested = http::ingest(&state.decider, state.http.max_batch_events, req.headers(), &mime(&req), &body).await?;
    Ok(match ingested {
        Ingested::Single(accepted) => {
            let mut resp = if accepted.duplicate { HttpResponse::Ok() } else { HttpResponse::Created() };
            resp.insert_header(("Location", format!("/v1/events/{}", accepted.id))).json(accepted)
        }
        Ingested::Batch(outcomes) => HttpResponse::Ok().json(batch_result(outcomes)),
    })
}

/// The batch's answer: one item per element, and the counts.
fn batch_result(outcomes: Vec<Result<Accepted, HttpIngestError>>) -> BatchResult {
    let mut result = BatchResult { accepted: 0, duplicates: 0, rejected: 0, items: Vec::with_capacity(outcomes.len()) };
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let item = match outcome {
            Ok(accepted) => {
                let status = if accepted.duplicate { "duplicate" } else { "accepted" };
                BatchItem { index, status: status.into(), result: Some(accepted), error: None }
            }
            Err(e) => {
                let problem = ApiError::from(e).problem();
                BatchItem { index, status: "rejected".into(), result: None, error: Some(problem) }
            }
        };
        match item.status.as_str() {
            "accepted" => result.accepted += 1,
            "duplicate" => result.duplicates += 1,
            _ => result.rejected += 1,
        }
        result.items.push(item);
    }
    result
}

/// List events, newest first, with what became of each.
///
/// `outcome=unmapped` lists the events no asset matched; `total` counts them.
/// `subject` takes a tag glob as rules' `when.tags` do (`*` within one
/// dot-separated level, `**` across levels).
#[utoipa::path(tag = "events", params(EventFilter, PageRequest), responses(
    (status = 200, body = Page<EventRecord>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/events")]
pub async fn list_events(
    state: web::Data<AppState>,
    filter: super::extract::Query<EventFilter>,
    page: super::extract::Query<PageRequest>,
) -> Result<web::Json<Page<EventRecord>>, ApiError> {
    let conn = state.store.conn();
    let subjects = match &filter.subject {
        Some(s) => {
            let glob = TagGlob::new(s).map_err(|e| ApiError::param("subject", e))?;
            let tags = events::subjects_matching(conn, &glob, events::MAX_GLOB_SUBJECTS).await?;
            if tags.len() > events::MAX_GLOB_SUBJECTS {
                return Err(ApiError::param(
                    "subject",
                    format!("the glob matches more than {} tags; narrow it", events::MAX_GLOB_SUBJECTS),
                ));
            }
            Some(tags)
        }
        None => None,
    };
    Ok(web::Json(events::list(conn, &filter, subjects.as_deref(), *page).await?))
}

/// Unmapped events grouped by tag, the most frequent first.
///
/// The tags (CloudEvents `subject`) that no asset, tag or tag pattern
/// matched, with how many events each sent, when first and last, and one
/// event to start from: what to add to the registry. Events without a tag
/// form one group with `subject` null.
#[utoipa::path(tag = "events", params(UnmappedFilter, PageRequest), responses(
    (status = 200, body = Page<UnmappedSubject>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/events/unmapped-subjects")]
pub async fn unmapped_subjects(
    state: web::Data<AppState>,
    filter: super::extract::Query<UnmappedFilter>,
    page: super::extract::Query<PageRequest>,
) -> Result<web::Json<Page<UnmappedSubject>>, ApiError> {
    Ok(web::Json(events::unmapped_subjects(state.store.conn(), &filter, *page).await?))
}

/// Which event, when a CloudEvents id is not enough.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventLookup {
    /// The CloudEvents `source` of the event: needed when `id` is a
    /// CloudEvents id that several sources use (otherwise 409 lists them).
    #[param(min_length = 1, max_length = 512)]
    pub source: Option<String>,
}

/// One event with its decision trace. `id` is workbridge's id or the
/// CloudEvents id; a CloudEvents id is unique per source only, so when
/// sources share it, give `source` (without it: 409 listing the sources).
#[utoipa::path(tag = "events", params(("id" = String, Path, description = "workbridge's id or the CloudEvents id"), EventLookup), responses(
    (status = 200, body = EventRecord),
    (status = 404, description = "No such event (of that `source`, if given)", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The CloudEvents id is used by several sources, listed in `detail`: give `source`", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/events/{id}")]
pub async fn get_event(
    state: web::Data<AppState>,
    id: web::Path<String>,
    lookup: super::extract::Query<EventLookup>,
) -> Result<web::Json<EventRecord>, ApiError> {
    Ok(web::Json(events::get(state.store.conn(), &id, lookup.source.as_deref()).await?))
}
