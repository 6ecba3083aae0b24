//! The one place where errors become RFC 9457 `application/problem+json`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::cloudevent::EventError;
use crate::ingest::http::HttpIngestError;
use crate::store::StoreError;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable URI of the problem type, e.g. `urn:workbridge:problem:invalid-event`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable short code (the last part of `type`).
    pub code: String,
    /// For a 400 or 422: each field or parameter at fault, so that a client
    /// can show the message next to it (RFC 9457's extension practice).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One input at fault: a body field (`pointer`, a JSON Pointer into the
/// body; `""` is the whole body) or a query or path parameter (`parameter`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// What was given and what is allowed.
    pub detail: String,
}

impl FieldError {
    /// A body field, by JSON Pointer.
    pub fn at(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { pointer: Some(pointer.into()), parameter: None, detail: detail.into() }
    }
    /// A query or path parameter.
    pub fn param(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { pointer: None, parameter: Some(name.into()), detail: detail.into() }
    }
    /// Where, as a client reads it: `data.value` or `limit`.
    fn place(&self) -> String {
        match (&self.parameter, &self.pointer) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) if !p.is_empty() => {
                p.trim_start_matches('/').replace('/', ".").replace("~1", "/").replace("~0", "~")
            }
            _ => String::new(),
        }
    }
}

/// Which 400 or 422 a list of [`FieldError`]s is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// 400: the body is not JSON (or not the JSON type expected at all).
    Malformed,
    /// 400: a query parameter the operation does not declare.
    UnknownParameter,
    /// 422: an event that is not a valid CloudEvent of the contract.
    Event,
    /// 422: a well-formed request whose values are not allowed.
    Validation,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Field errors, each naming its field or parameter.
    #[error("{}", summary(.errors))]
    Invalid { kind: Invalid, errors: Vec<FieldError> },
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    InvalidEvent(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the batch has {count} items; the limit is {limit}")]
    BatchTooLarge { count: usize, limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The event is valid but a rule is too expensive to evaluate.
    #[error("{0}")]
    EvaluationTimeout(String),
    /// Too many failed authentications from this client.
    #[error("too many failed authentications from this address; try again in {retry_after} s")]
    TooManyFailures { retry_after: u64 },
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The errors in one sentence, for `detail`.
fn summary(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let place = e.place();
            if place.is_empty() || e.detail.starts_with(&place) {
                e.detail.clone()
            } else {
                format!("{place}: {}", e.detail)
            }
        })
        .collect();
    parts.join("; ")
}

/// Words that begin a message without naming a field.
const NOT_FIELDS: &[&str] = &[
    "a",
    "an",
    "at",
    "the",
    "no",
    "not",
    "expected",
    "cannot",
    "request",
    "this",
    "invalid",
    "unknown",
    "missing",
    "each",
    "every",
    "only",
    "one",
    "some",
    "too",
    "body",
    "data did",
    "none",
    "duplicate",
    "rows",
];

/// The field a validation message begins with (`name must be …`,
/// `action.connector: …`, `rules[0]: name …`) as a JSON Pointer; `""` (the
/// whole body) when it names none.
pub fn pointer_of(message: &str) -> String {
    let mut pointer = String::new();
    let mut rest = message;
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']')))
            .unwrap_or(rest.len());
        let token = &rest[..end];
        let after = &rest[end..];
        let well_formed = token.starts_with(|c: char| c.is_ascii_lowercase())
            && !token.ends_with('.')
            && (after.is_empty() || after.starts_with([' ', ':', ',']))
            && !after.starts_with(":/");
        if !well_formed || NOT_FIELDS.contains(&token) {
            return pointer;
        }
        for part in token.split('.') {
            let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, i)| (n, i));
            pointer.push('/');
            pointer.push_str(name);
            for index in indexes.split(['[', ']']).filter(|i| !i.is_empty()) {
                pointer.push('/');
                pointer.push_str(index);
            }
        }
        // `rules[0]: name …`: the message goes on about a field of that element.
        match after.strip_prefix(": ") {
            Some(more) if token.ends_with(']') => rest = more,
            _ => return pointer,
        }
    }
}

impl ApiError {
    /// 422 naming body fields or parameters.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        Self::Invalid { kind: Invalid::Validation, errors }
    }

    /// 422 for one query or path parameter.
    pub fn param(name: &str, detail: impl Into<String>) -> Self {
        Self::fields(vec![FieldError::param(name, detail)])
    }

    /// 422 for one body field.
    pub fn field(pointer: &str, detail: impl Into<String>) -> Self {
        Self::fields(vec![FieldError::at(pointer, detail)])
    }

    /// The field errors of a 400 or 422: as given, or the field a message
    /// names (validations in the domain say `name must be …`).
    pub fn errors(&self) -> Vec<FieldError> {
        match self {
            Self::Invalid { errors, .. } => errors.clone(),
            Self::Malformed(m) | Self::InvalidEvent(m) | Self::Validation(m) => {
                vec![FieldError::at(pointer_of(m), m.clone())]
            }
            _ => vec![],
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Invalid { kind: Invalid::Malformed, .. } => {
                (StatusCode::BAD_REQUEST, "malformed-request", "Malformed request")
            }
            Self::Invalid { kind: Invalid::UnknownParameter, .. } => {
                (StatusCode::BAD_REQUEST, "unknown-parameter", "Unknown query parameter")
            }
            Self::Invalid { kind: Invalid::Event, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid-event", "Invalid event")
            }
            Self::Invalid { kind: Invalid::Validation, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation-failed", "Validation failed")
            }
            Self::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed-request", "Malformed request"),
            Self::InvalidEvent(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-event", "Invalid event"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation-failed", "Validation failed"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large"),
            Self::BatchTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "batch-too-large", "Batch too large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            Self::EvaluationTimeout(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "rule-evaluation-timeout", "Rule evaluation timed out")
            }
            Self::TooManyFailures { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too-many-authentication-failures", "Too many failed authentications")
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, code, title) = self.parts();
        Problem {
            kind: format!("urn:workbridge:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            // 5xx bodies stay opaque; the log has the cause.
            detail: self.to_string(),
            code: code.to_owned(),
            errors: self.errors(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            tracing::error!(error = %e, source = ?e.source(), "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Self::TooManyFailures { retry_after } = self {
            response.insert_header((actix_web::http::header::RETRY_AFTER, retry_after.to_string()));
        }
        response.content_type("application/problem+json").json(self.problem())
    }
}

impl From<crate::decisions::DecisionError> for ApiError {
    fn from(e: crate::decisions::DecisionError) -> Self {
        match e {
            crate::decisions::DecisionError::Store(e) => e.into(),
            e @ crate::decisions::DecisionError::EvaluationTimeout(_) => Self::EvaluationTimeout(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict(msg) => Self::Conflict(msg),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Malformed(m) => Self::Malformed(m),
            EventError::Invalid(m) => Self::InvalidEvent(m),
            EventError::TooLarge { size, limit } => Self::TooLarge { size, limit },
        }
    }
}

impl From<HttpIngestError> for ApiError {
    fn from(e: HttpIngestError) -> Self {
        match e {
            HttpIngestError::Malformed(m) => Self::Malformed(m),
            HttpIngestError::Invalid(m) => Self::InvalidEvent(m),
            HttpIngestError::TooLarge { size, limit } => Self::TooLarge { size, limit },
            HttpIngestError::BatchTooLarge { count, limit } => Self::BatchTooLarge { count, limit },
            HttpIngestError::UnsupportedMediaType(m) => Self::UnsupportedMediaType(m),
            HttpIngestError::EvaluationTimeout(m) => Self::EvaluationTimeout(m),
            HttpIngestError::Store(e) => Self::from(e),
        }
    }
}

/// Problem responses for actix's own extractor failures.
pub fn json_error(err: actix_web::error::JsonPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { length, limit } => ApiError::TooLarge { size: length, limit },
        E::Overflow { limit } => ApiError::TooLarge { size: limit + 1, limit },
        E::ContentType => ApiError::UnsupportedMediaType("expected Content-Type: application/json".into()),
        E::Deserialize(e) if e.is_data() => ApiError::Validation(e.to_string()),
        E::Deserialize(e) => ApiError::Malformed(format!("not valid JSON: {e}")),
        other => ApiError::Malformed(other.to_string()),
    }
    .into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::Validation(format!("query: {err}")).into()
}

pub fn path_error(err: actix_web::error::PathError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::NotFound(format!("path: {err}")).into()
}

/// For routes that do not exist: 405 with `Allow` when the path exists
/// with other methods, else 404.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    let allowed = allowed_methods(req.path());
    if allowed.is_empty() {
        return ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())).error_response();
    }
    let allow = allowed.join(", ");
    let problem = Problem {
        kind: "urn:workbridge:problem:method-not-allowed".into(),
        title: "Method not allowed".into(),
        status: 405,
        detail: format!("{} is not allowed on {}; use {allow}", req.method(), req.path()),
        code: "method-not-allowed".into(),
        errors: vec![],
    };
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, allow))
        .content_type("application/problem+json")
        .json(problem)
}

/// The methods the API documents for `path` (matching `{param}` segments).
fn allowed_methods(path: &str) -> Vec<&'static str> {
    static ROUTES: std::sync::OnceLock<Vec<(Vec<String>, Vec<&'static str>)>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        super::openapi()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                let segments = template.split('/').map(str::to_owned).collect();
                (segments, methods.into_iter().filter(|(_, has)| *has).map(|(m, _)| m).collect())
            })
            .collect()
    });
    let segments: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .find(|(template, _)| {
            template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .map(|(_, methods)| methods.clone())
        .unwrap_or_default()
}
