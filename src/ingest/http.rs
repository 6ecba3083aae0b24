//! HTTP ingest: the CloudEvents content modes (structured, binary, batch),
//! `traceparent`, and what became of each event, duplicates included. The
//! handler in `api::events` reads the request and maps the answer (and
//! `HttpIngestError`, in `api::problem`) to the response.

use std::sync::Arc;

use actix_web::http::header::{CONTENT_TYPE, HeaderMap};

use crate::decisions::{Accepted, Decider, DecisionError};
use crate::domain::InboundEvent;
use crate::domain::cloudevent::{self as parse, EventError};
use crate::store::StoreError;

/// Why a request, or one element of a batch, was refused.
#[derive(Debug, thiserror::Error)]
pub enum HttpIngestError {
    /// Not JSON, or not a CloudEvent's shape.
    #[error("{0}")]
    Malformed(String),
    /// A CloudEvent that is not a valid event.
    #[error("{0}")]
    Invalid(String),
    #[error("request body is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the batch has {count} items; the limit is {limit}")]
    BatchTooLarge { count: usize, limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The event is valid but a rule is too expensive to evaluate.
    #[error("{0}")]
    EvaluationTimeout(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<EventError> for HttpIngestError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Malformed(m) => Self::Malformed(m),
            EventError::Invalid(m) => Self::Invalid(m),
            EventError::TooLarge { size, limit } => Self::TooLarge { size, limit },
        }
    }
}

impl From<DecisionError> for HttpIngestError {
    fn from(e: DecisionError) -> Self {
        match e {
            e @ DecisionError::EvaluationTimeout(_) => Self::EvaluationTimeout(e.to_string()),
            DecisionError::Store(e) => Self::Store(e),
        }
    }
}

/// What became of a request's events.
#[derive(Debug)]
pub enum Ingested {
    /// One event, new or already received (`duplicate`).
    Single(Accepted),
    /// A batch: one answer per element, in order.
    Batch(Vec<Result<Accepted, HttpIngestError>>),
}

/// Ingests the body of a `POST /v1/events`: `mime` is the request's media
/// type (lower-cased, without parameters; empty when there is none).
pub async fn ingest(
    decider: &Decider,
    max_batch_events: usize,
    headers: &HeaderMap,
    mime: &str,
    body: &[u8],
) -> Result<Ingested, HttpIngestError> {
    if mime == "application/cloudevents-batch+json" {
        return batch(decider, max_batch_events, body).await;
    }
    if headers.contains_key("ce-specversion") {
        let ce_headers = headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v.to_owned())));
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let event =
            parse::binary(ce_headers, content_type, body).inspect_err(|e| decider.metrics().rejected(e.kind()))?;
        return single(decider, &parse::with_traceparent(event, traceparent(headers))).await;
    }
    if !(mime.is_empty() || parse::is_json(mime)) {
        return Err(HttpIngestError::UnsupportedMediaType(format!(
            "{mime} is not accepted: use application/cloudevents+json, application/cloudevents-batch+json, application/json, or binary mode with ce-* headers"
        )));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return batch(decider, max_batch_events, body).await;
    }
    let event = parse::structured(body).inspect_err(|e| decider.metrics().rejected(e.kind()))?;
    single(decider, &parse::with_traceparent(event, traceparent(headers))).await
}

fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|v| v.to_str().ok())
}

async fn single(decider: &Decider, event: &InboundEvent) -> Result<Ingested, HttpIngestError> {
    Ok(Ingested::Single(decider.accept(event).await?))
}

async fn batch(decider: &Decider, limit: usize, body: &[u8]) -> Result<Ingested, HttpIngestError> {
    let parsed = parse::batch(body)?;
    if parsed.len() > limit {
        return Err(HttpIngestError::BatchTooLarge { count: parsed.len(), limit });
    }
    let mut valid = Vec::with_capacity(parsed.len());
    let mut events = Vec::with_capacity(parsed.len());
    let mut items: Vec<Option<Result<Accepted, HttpIngestError>>> = Vec::with_capacity(parsed.len());
    for (index, item) in parsed.into_iter().enumerate() {
        match item {
            Ok(event) => {
                valid.push(index);
                events.push(event);
                items.push(None);
            }
            Err(e) => {
                decider.metrics().rejected(e.kind());
                let e: EventError = e;
                items.push(Some(Err(e.into())));
            }
        }
    }
    // The valid elements in one transaction (group commit); if that fails,
    // one by one, so that one element's failure does not sink the others.
    let events: Arc<[InboundEvent]> = events.into();
    let decided: Vec<Result<Accepted, DecisionError>> = match decider.accept_batch(events.clone()).await {
        Ok(all) => all.into_iter().map(Ok).collect(),
        Err(_) => {
            let mut one_by_one = Vec::with_capacity(events.len());
            for event in events.iter() {
                one_by_one.push(decider.accept(event).await);
            }
            one_by_one
        }
    };
    for (index, outcome) in valid.iter().zip(decided) {
        let item = match outcome {
            Ok(accepted) => Ok(accepted),
            // This element's rules ran too long; the others go on.
            Err(e @ DecisionError::EvaluationTimeout(_)) => Err(e.into()),
            Err(e) => return Err(e.into()),
        };
        items[*index] = Some(item);
    }
    Ok(Ingested::Batch(items.into_iter().flatten().collect()))
}
