//! Reading requests so that every refusal names its input: `Json<T>` and
//! `Query<T>` in place of actix's, whose errors are problem+json with an
//! `errors` array (`{pointer, detail}` for body fields, `{parameter,
//! detail}` for query parameters), and the middleware that holds every query
//! string to the parameters the OpenAPI document declares for its operation
//! (so that a new endpoint is checked as soon as it declares them).

use std::sync::OnceLock;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AppState;
use super::problem::{ApiError, FieldError, Invalid};

/// A JSON body. Not JSON: 400; JSON that does not fit `T`: 422 naming the
/// field by JSON Pointer, with what was given and what is allowed.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<web::Data<AppState>>().map_or(256 * 1024, |s| s.http.max_body_bytes);
        let mime = super::mime(req);
        let mut payload = payload.take();
        Box::pin(async move {
            if !(mime == "application/json" || mime.ends_with("+json")) {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Content-Type {:?} is not accepted: send application/json",
                    if mime.is_empty() { "(none)" } else { mime.as_str() }
                ))
                .into());
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = futures_util::StreamExt::next(&mut payload).await {
                let chunk = chunk.map_err(|e| ApiError::Malformed(format!("cannot read the body: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::TooLarge { size: body.len() + chunk.len(), limit }.into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Json(from_json_bytes(&body)?))
        })
    }
}

/// Parses a JSON body into `T`, with errors that name the field.
pub fn from_json_bytes<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::Invalid {
        kind: Invalid::Malformed,
        errors: vec![FieldError::at("", format!("the body is not valid JSON: {e}"))],
    })?;
    // Every body of this API is an object: say so rather than let serde
    // read an array as a struct's fields in order.
    if !value.is_object() {
        return Err(ApiError::Invalid {
            kind: Invalid::Malformed,
            errors: vec![FieldError::at("", format!("the body must be a JSON object, not {}", json_type(&value)))],
        });
    }
    from_json_value(&value)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON Schema's `integer` is a number without a fraction, `3.0` as much as
/// `3`; serde takes only the latter for an integer field. Such numbers are
/// made integers (a float field takes either).
fn integral(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
                Value::from(f as i64)
            } else if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
                Value::from(f as u64)
            } else {
                value.clone()
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(integral).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), integral(v))).collect()),
        other => other.clone(),
    }
}

/// Deserializes `T` from `value`; a failure names the field by JSON Pointer.
pub fn from_json_value<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    let value = &integral(value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let (pointer, detail) = describe_body_error(value, e.path(), e.inner());
        // A body of the wrong JSON type altogether is malformed, not invalid.
        let kind = if pointer.is_empty() && e.inner().to_string().starts_with("invalid type") {
            Invalid::Malformed
        } else {
            Invalid::Validation
        };
        ApiError::Invalid { kind, errors: vec![FieldError::at(pointer, detail)] }
    })
}

/// serde's path as a JSON Pointer (`action.priority` → `/action/priority`).
fn pointer_of_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => pointer.push_str(&format!("/{}", key.replace('~', "~0").replace('/', "~1"))),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

/// Untagged enums say only that nothing matched: the field each one is
/// (inside an internally tagged enum serde reports at the enclosing object)
/// and what it allows.
const UNTAGGED: &[(&str, &str, &str)] = &[
    (
        "PrioritySpec",
        "priority",
        "must be a priority from 1 (highest) to 5 (lowest), or a matrix severity → criticality (or \"*\") → \
         priority, e.g. {\"critical\": {\"A\": 1, \"*\": 2}}",
    ),
    (
        "Debounce",
        "debounce",
        "must be {\"occurrences\": n (at least 2), \"within_minutes\": m (at least 1)} or \
         {\"held_for_minutes\": m (at least 1)}",
    ),
];

/// Names of fields whose values are not repeated in an error.
fn is_secret(pointer: &str) -> bool {
    let last = pointer.rsplit('/').next().unwrap_or("").to_ascii_lowercase();
    ["secret", "password", "api_key", "token", "credential", "authorization"].iter().any(|s| last.contains(s))
        || pointer.contains("/headers/")
        || pointer.contains("/secrets")
}

/// A value as the message shows it, cut short.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 80 { format!("{}…", text.chars().take(80).collect::<String>()) } else { text }
}

/// Where a deserialization error is and what it says, in words a client can
/// show next to the field.
fn describe_body_error(body: &Value, path: &serde_path_to_error::Path, error: &serde_json::Error) -> (String, String) {
    let mut pointer = pointer_of_path(path);
    let message = error.to_string();
    // `missing field `x`` and `unknown field `x`` are about a field of the object at `path`.
    let named = |prefix: &str| message.strip_prefix(prefix).and_then(|rest| rest.split('`').next()).map(str::to_owned);
    if let Some(field) = named("missing field `") {
        if !pointer.ends_with(&format!("/{field}")) {
            pointer.push('/');
            pointer.push_str(&field);
        }
        return (pointer, "is required".into());
    }
    if let Some(field) = named("unknown field `") {
        if !pointer.ends_with(&format!("/{field}")) {
            pointer.push('/');
            pointer.push_str(&field);
        }
        let expected = message.split_once(", expected ").map(|(_, e)| e.replace('`', "")).unwrap_or_default();
        let detail = if expected.is_empty() {
            "is not a known field".to_owned()
        } else {
            format!("is not a known field; expected {expected}")
        };
        return (pointer, detail);
    }
    if let Some((_, name)) = message.split_once("untagged enum ") {
        let name = name.trim();
        let Some((_, field, detail)) = UNTAGGED.iter().find(|(n, _, _)| *n == name) else {
            return (pointer, format!("does not have any of the accepted forms of {name}"));
        };
        if !pointer.ends_with(&format!("/{field}")) && body.pointer(&format!("{pointer}/{field}")).is_some() {
            pointer = format!("{pointer}/{field}");
        }
        let given = body.pointer(&pointer).map(|v| format!(" (given: {})", shown(v))).unwrap_or_default();
        return (pointer, format!("{detail}{given}"));
    }
    let given = body.pointer(&pointer).filter(|_| !is_secret(&pointer));
    let given_text = given.map(|v| format!(" (given: {})", shown(v))).unwrap_or_default();
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (variant, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected.trim_start_matches(", expected ").replace('`', "");
        // An internally tagged enum (`{"kind": …}`) may report at the object.
        if body.pointer(&format!("{pointer}/kind")).and_then(Value::as_str) == Some(variant) {
            pointer.push_str("/kind");
        }
        return (
            pointer,
            format!("{variant:?} is not accepted; expected one of {}", expected.trim_start_matches("one of ")),
        );
    }
    // chrono's messages say nothing of the format.
    if [
        "premature end of input",
        "input contains invalid characters",
        "trailing input",
        "input is out of range",
        "input is not enough for unique date and time",
        "no possible date and time matching input",
        "bad or unsupported format string",
    ]
    .iter()
    .any(|m| message.contains(m))
    {
        return (
            pointer,
            format!(
                "must be an RFC 3339 date-time with a time zone offset, e.g. 2026-12-05T10:15:00Z or \
                 2026-12-05T11:15:00+01:00 ({message}){given_text}"
            ),
        );
    }
    if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("invalid length")
    {
        // serde says what was given and what was expected: `invalid type: string "92.1", expected f64`.
        let message = message.replace("expected f64", "expected a number").replace("expected f32", "expected a number");
        let message = if is_secret(&pointer) { redact_given(&message) } else { message };
        return (pointer, message);
    }
    // Messages of the types' own checks (`priority must be 1 to 5, got 9`).
    (pointer, format!("{message}{given_text}"))
}

/// `invalid type: string "hunter2", expected …` → `invalid type: string, expected …`.
fn redact_given(message: &str) -> String {
    match (message.find('"'), message.rfind('"')) {
        (Some(a), Some(b)) if b > a => format!("{}{}", message[..a].trim_end(), &message[b + 1..]),
        _ => message.to_owned(),
    }
}

/// A query string. A value that does not fit `T`: 422 naming the parameter,
/// with what was given and what the document allows. (Unknown parameters
/// and values outside the declared bounds are refused before, by
/// [`check_query`].)
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req).map(Query).map_err(Into::into))
    }
}

fn parse_query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    let qs = req.query_string();
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(qs.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let name = e.path().iter().next().map(|s| s.to_string()).unwrap_or_default();
        let message = e.inner().to_string();
        let name =
            if name.is_empty() || name == "?" { message.split('`').nth(1).unwrap_or("").to_owned() } else { name };
        let given = form_urlencoded::parse(qs.as_bytes()).find(|(k, _)| *k == name).map(|(_, v)| v.into_owned());
        let allowed = operation_of(req.method(), req.match_info().as_str())
            .and_then(|op| op.params.iter().find(|p| p.name == name))
            .map(|p| p.allowed.clone());
        let detail = match (given, allowed) {
            (Some(given), Some(allowed)) => format!("{given:?} is not allowed; expected {allowed}"),
            (Some(given), None) => format!("{given:?} is not allowed ({message})"),
            (None, _) => message,
        };
        ApiError::param(&name, detail)
    })
}

/// One declared query parameter of an operation.
struct Param {
    name: String,
    schema: Value,
    /// What the schema allows, in words.
    allowed: String,
}

/// One operation of the document: its route and its query parameters.
struct Operation {
    method: actix_web::http::Method,
    def: ResourceDef,
    params: Vec<Param>,
}

/// The document's operations in registration order (the order the router
/// tries them), with their declared query parameters.
fn operations() -> &'static [Operation] {
    static OPS: OnceLock<Vec<Operation>> = OnceLock::new();
    OPS.get_or_init(|| {
        let doc = serde_json::to_value(super::openapi()).expect("the document serializes");
        super::auth::routes()
            .iter()
            .filter_map(|route| {
                let op = doc.pointer(&format!(
                    "/paths/{}/{}",
                    route.pattern.replace('~', "~0").replace('/', "~1"),
                    route.method.as_str().to_ascii_lowercase()
                ))?;
                let params = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| resolve(&doc, p))
                    .filter(|p| p["in"] == "query")
                    .map(|p| {
                        let schema = resolve(&doc, &p["schema"]).clone();
                        let schema = inline_refs(&doc, &schema);
                        Param {
                            name: p["name"].as_str().unwrap_or_default().to_owned(),
                            allowed: describe_schema(&schema),
                            schema,
                        }
                    })
                    .collect();
                Some(Operation { method: route.method.clone(), def: ResourceDef::new(route.pattern.as_str()), params })
            })
            .collect()
    })
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).map_or(v, |t| resolve(doc, t)),
        None => v,
    }
}

/// The schema with `$ref`s replaced by what they name (parameter schemas are small).
fn inline_refs(doc: &Value, v: &Value) -> Value {
    match resolve(doc, v) {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), inline_refs(doc, v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|v| inline_refs(doc, v)).collect()),
        other => other.clone(),
    }
}

/// The operation a request goes to, as the router picks it.
fn operation_of(method: &actix_web::http::Method, path: &str) -> Option<&'static Operation> {
    operations().iter().find(|op| op.method == *method && op.def.is_match(path))
}

/// The alternatives of a schema that are not `null`.
fn non_null(schema: &Value) -> Vec<&Value> {
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            return alts.iter().filter(|a| a.get("type") != Some(&Value::from("null"))).collect();
        }
    }
    vec![schema]
}

fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => vec![],
    }
}

/// What a parameter schema allows, in words.
fn describe_schema(schema: &Value) -> String {
    let alts = non_null(schema);
    let described: Vec<String> = alts.iter().map(|s| describe_one(s)).collect();
    described.join(", or ")
}

fn describe_one(schema: &Value) -> String {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    let (min, max) = (schema.get("minimum").and_then(Value::as_f64), schema.get("maximum").and_then(Value::as_f64));
    let range = match (min, max) {
        (Some(a), Some(b)) => format!(" from {a} to {b}"),
        (Some(a), None) => format!(" of at least {a}"),
        (None, Some(b)) => format!(" of at most {b}"),
        (None, None) => String::new(),
    };
    match (types(schema).first().copied(), schema.get("format").and_then(Value::as_str)) {
        (Some("integer"), _) => format!("an integer{range}"),
        (Some("number"), _) => format!("a number{range}"),
        (Some("boolean"), _) => "true or false".into(),
        (Some("string"), Some("date-time")) => {
            "an RFC 3339 date-time with a time zone offset, e.g. 2026-12-05T10:15:00Z".into()
        }
        _ => "a string".into(),
    }
}

/// Why `value` does not fit a parameter's schema, if it does not: the type,
/// the bounds and the enum the document declares.
fn misfit(value: &str, schema: &Value) -> Option<String> {
    let fits = |s: &Value| -> bool {
        if let Some(values) = s.get("enum").and_then(Value::as_array) {
            return values
                .iter()
                .any(|v| v.as_str() == Some(value) || (!v.is_string() && v.to_string().as_str() == value));
        }
        let number = match types(s).first().copied() {
            Some("integer") => match value.parse::<i128>() {
                Ok(n) => Some(n as f64),
                Err(_) => return false,
            },
            Some("number") => match value.parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => return false,
            },
            Some("boolean") => return matches!(value, "true" | "false"),
            Some("string") if s.get("format").and_then(Value::as_str) == Some("date-time") => {
                return chrono::DateTime::parse_from_rfc3339(value).is_ok();
            }
            _ => None,
        };
        if let Some(n) = number {
            let min = s.get("minimum").and_then(Value::as_f64);
            let max = s.get("maximum").and_then(Value::as_f64);
            return min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m);
        }
        let len = value.chars().count() as u64;
        s.get("minLength").and_then(Value::as_u64).is_none_or(|m| len >= m)
            && s.get("maxLength").and_then(Value::as_u64).is_none_or(|m| len <= m)
    };
    (!non_null(schema).into_iter().any(fits))
        .then(|| format!("{value:?} is not allowed; expected {}", describe_schema(schema)))
}

/// Answers with the problem (as a response, so that the access log has it).
fn refuse<B>(req: ServiceRequest, e: ApiError) -> ServiceResponse<EitherBody<B>> {
    use actix_web::ResponseError;
    req.into_response(e.error_response()).map_into_right_body()
}

/// Holds every query string to the parameters the document declares for
/// its operation: an undeclared name is a 400 naming it and the accepted
/// ones; a value of the wrong type, outside its bounds or its enum, a 422
/// naming it. Requests to routes outside the document pass untouched.
pub async fn check_query(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let qs = req.query_string();
    if !qs.is_empty()
        && let Some(op) = operation_of(req.method(), req.match_info().as_str())
    {
        let mut unknown: Vec<String> = vec![];
        let mut invalid = vec![];
        for (name, value) in form_urlencoded::parse(qs.as_bytes()) {
            match op.params.iter().find(|p| p.name == name) {
                None if !unknown.contains(&name.to_string()) => unknown.push(name.into_owned()),
                None => {}
                Some(p) => {
                    if let Some(detail) = misfit(&value, &p.schema) {
                        invalid.push(FieldError::param(&p.name, detail));
                    }
                }
            }
        }
        if !unknown.is_empty() {
            let accepted: Vec<&str> = op.params.iter().map(|p| p.name.as_str()).collect();
            let accepted = if accepted.is_empty() {
                "this operation takes no query parameters".to_owned()
            } else {
                format!("accepted: {}", accepted.join(", "))
            };
            let errors = unknown
                .into_iter()
                .map(|name| FieldError::param(&name, format!("is not a parameter of this operation; {accepted}")))
                .collect();
            return Ok(refuse(req, ApiError::Invalid { kind: Invalid::UnknownParameter, errors }));
        }
        if !invalid.is_empty() {
            return Ok(refuse(req, ApiError::fields(invalid)));
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemas_are_described_and_checked() {
        let limit = json!({"type": ["integer", "null"], "minimum": 1, "maximum": 500});
        assert_eq!(describe_schema(&limit), "an integer from 1 to 500");
        assert!(misfit("50", &limit).is_none());
        for bad in ["-5", "0", "501", "abc", "1.5"] {
            assert!(misfit(bad, &limit).unwrap().contains("from 1 to 500"), "{bad}");
        }
        let status = json!({"oneOf": [{"type": "null"}, {"type": "string", "enum": ["pending", "failed"]}]});
        assert!(misfit("failed", &status).is_none());
        assert_eq!(misfit("nope", &status).unwrap(), "\"nope\" is not allowed; expected one of pending, failed");
        let since = json!({"type": ["string", "null"], "format": "date-time"});
        assert!(misfit("2026-12-05T10:00:00Z", &since).is_none());
        assert!(misfit("2026-12-05T10:00:00", &since).is_some());
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        value: f64,
    }

    #[test]
    fn body_errors_name_the_field() {
        let err = from_json_value::<Outer>(&json!({"name": "x", "inner": [{"value": 1}, {"value": "92.1"}]}));
        let errors = err.unwrap_err().errors();
        assert_eq!(errors[0].pointer.as_deref(), Some("/inner/1/value"));
        assert!(errors[0].detail.contains("\"92.1\"") && errors[0].detail.contains("number"), "{errors:?}");
        #[derive(Debug, serde::Deserialize)]
        struct Count {
            n: u64,
        }
        assert_eq!(from_json_value::<Count>(&json!({"n": 3.0})).unwrap().n, 3, "3.0 is an integer");
        assert!(from_json_value::<Count>(&json!({"n": 3.5})).is_err());
        let errors = from_json_value::<Outer>(&json!({"inner": []})).unwrap_err().errors();
        assert_eq!(errors[0].pointer.as_deref(), Some("/name"));
        assert_eq!(errors[0].detail, "is required");
    }
}
