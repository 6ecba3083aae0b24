//! CloudEvents 1.0 JSON → [`InboundEvent`]. The official SDK checks the
//! envelope (spec version, required attributes, time format); this module
//! adds the workbridge contract of docs/spec.md §2 on top.
//!
//! Binary mode (HTTP `ce-*` headers, AMQP `ce-`/`cloudEvents:` headers) is
//! turned into the structured form first, so that every mode goes through
//! the same validation and is stored identically.

use cloudevents::{AttributesReader, Data, Event};
use serde_json::{Map, Value};

use super::{AlertState, AssetHint, EventKind, InboundEvent, Severity};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or not the JSON shape of a CloudEvent at all.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A well-formed CloudEvent that breaks the contract.
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("too large: {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
}

impl EventError {
    /// Short machine-readable reason, used in `x-workbridge-error` and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Invalid(_) => "invalid",
            Self::TooLarge { .. } => "too_large",
        }
    }
}

const MAX_ID: usize = 256;
const MAX_SOURCE: usize = 1024;
const MAX_SUBJECT: usize = 512;
const MAX_CODE: usize = 128;

/// Parses JSON text (serde_json refuses nesting deeper than 128 levels).
pub fn json(body: &[u8]) -> Result<Value, EventError> {
    serde_json::from_slice(body).map_err(|e| EventError::Malformed(format!("not valid JSON: {e}")))
}

/// One structured-mode event.
pub fn structured(body: &[u8]) -> Result<InboundEvent, EventError> {
    match json(body)? {
        Value::Array(_) => Err(EventError::Malformed(
            "a JSON array where one event is expected (send batches over HTTP with application/cloudevents-batch+json)"
                .into(),
        )),
        v => from_value(v),
    }
}

/// A batch: each element is parsed on its own, so one bad event does not
/// reject the others.
pub fn batch(body: &[u8]) -> Result<Vec<Result<InboundEvent, EventError>>, EventError> {
    match json(body)? {
        Value::Array(items) => Ok(items.into_iter().map(from_value).collect()),
        _ => Err(EventError::Malformed("a batch must be a JSON array of events".into())),
    }
}

/// Binary mode: attributes in headers, `data` in the body. `headers` are
/// all headers of the message; those with a CloudEvents prefix are used.
pub fn binary<'a>(
    headers: impl IntoIterator<Item = (&'a str, String)>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<InboundEvent, EventError> {
    let mut obj = Map::new();
    for (name, value) in headers {
        if let Some(attr) = ce_attribute(name) {
            obj.insert(attr, Value::String(value));
        }
    }
    if !obj.contains_key("specversion") {
        return Err(EventError::Malformed("binary mode needs a ce-specversion header".into()));
    }
    let content_type = content_type.unwrap_or("application/json");
    obj.insert("datacontenttype".into(), Value::String(content_type.to_owned()));
    if !body.is_empty() {
        let data =
            if is_json(content_type) { json(body)? } else { Value::String(String::from_utf8_lossy(body).into_owned()) };
        obj.insert("data".into(), data);
    }
    from_value(Value::Object(obj))
}

/// `ce-id` → `id` (HTTP and the AMQP 0-9-1 convention), `cloudEvents:id` and
/// `cloudEvents_id` (the AMQP binding's prefixes) likewise.
fn ce_attribute(header: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    ["ce-", "ce_", "cloudevents:", "cloudevents_"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

pub fn is_json(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    mime == "application/json" || mime.ends_with("+json") || mime == "text/json"
}

/// Validates one event given as a JSON value.
pub fn from_value(value: Value) -> Result<InboundEvent, EventError> {
    if !value.is_object() {
        return Err(EventError::Malformed("an event must be a JSON object".into()));
    }
    check_attributes(&value)?;
    let event: Event =
        serde_json::from_value(value).map_err(|e| EventError::Invalid(format!("not a valid CloudEvent: {e}")))?;
    // The SDK checks presence; the spec also requires non-empty values.
    let id = bounded("id", event.id(), MAX_ID)?;
    let source = bounded("source", event.source(), MAX_SOURCE)?;
    let kind = EventKind::parse(event.ty()).ok_or_else(|| {
        EventError::Invalid(format!("type {:?} is not one of tdl.alert, tdl.anomaly, tdl.data_quality", event.ty()))
    })?;
    let subject = match event.subject() {
        Some(s) => Some(bounded("subject", s, MAX_SUBJECT)?),
        None => None,
    };
    let data = match event.data() {
        Some(Data::Json(v @ Value::Object(_))) => v.clone(),
        Some(Data::Json(_)) | Some(Data::String(_)) => {
            return Err(EventError::Invalid("data must be a JSON object".into()));
        }
        Some(Data::Binary(_)) => {
            return Err(EventError::Invalid("data must be JSON, not data_base64".into()));
        }
        None => return Err(EventError::Invalid("data is required".into())),
    };
    let field = |name: &str| data.get(name).and_then(Value::as_str);
    let state_raw = field("state").ok_or_else(|| EventError::Invalid("data.state is required".into()))?;
    let state = AlertState::parse(state_raw)
        .ok_or_else(|| EventError::Invalid(format!("data.state {state_raw:?} is neither raised nor cleared")))?;
    let code = bounded(
        "data.code",
        field("code").ok_or_else(|| EventError::Invalid("data.code is required".into()))?,
        MAX_CODE,
    )?;
    let sev_raw = field("severity").ok_or_else(|| EventError::Invalid("data.severity is required".into()))?;
    let severity = Severity::parse(sev_raw).ok_or_else(|| {
        EventError::Invalid(format!("data.severity {sev_raw:?} is not one of critical, major, minor, warning, info"))
    })?;
    let asset_hint = match data.get("asset") {
        None | Some(Value::Null) => None,
        Some(Value::Object(a)) => {
            let id = a.get("id").and_then(Value::as_str).unwrap_or("");
            if id.trim().is_empty() {
                return Err(EventError::Invalid("data.asset.id must be a non-empty string".into()));
            }
            Some(AssetHint {
                id: bounded("data.asset.id", id, MAX_ID)?.trim().to_owned(),
                site: a.get("site").and_then(Value::as_str).map(str::to_owned),
            })
        }
        Some(_) => return Err(EventError::Invalid("data.asset must be an object".into())),
    };
    if subject.is_none() && asset_hint.is_none() {
        return Err(EventError::Invalid("subject (the historian tag) is required unless data.asset is given".into()));
    }
    let message = field("message").map(str::to_owned);
    let time = event.time().copied();
    let cloudevent =
        serde_json::to_value(&event).map_err(|e| EventError::Invalid(format!("cannot re-encode event: {e}")))?;
    Ok(InboundEvent { id, source, kind, time, subject, state, code, severity, message, asset_hint, data, cloudevent })
}

/// What the CloudEvents SDK would refuse with a message that names no
/// field, checked first so that the message names it: the required
/// attributes, `specversion` 1.0 only, `time` in RFC 3339 with its zone, and
/// numbers in `data.value`, `data.threshold` and `data.score` (a string
/// there would later make a rule condition such as `event.data.value > 90`
/// fail to evaluate, so it is refused rather than coerced).
fn check_attributes(value: &Value) -> Result<(), EventError> {
    let invalid = |m: String| Err(EventError::Invalid(m));
    for name in ["specversion", "id", "source", "type"] {
        match value.get(name) {
            None | Some(Value::Null) => return invalid(format!("{name} is required")),
            Some(Value::String(_)) => {}
            Some(other) => return invalid(format!("{name} must be a string, not {other}")),
        }
    }
    match value["specversion"].as_str() {
        Some("1.0") => {}
        Some(other) => return invalid(format!("specversion {other:?} is not supported: only \"1.0\" is")),
        None => {}
    }
    match value.get("time") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if chrono::DateTime::parse_from_rfc3339(t).is_ok() => {}
        Some(t) => {
            return invalid(format!(
                "time {t} is not an RFC 3339 date-time with a time zone offset; send e.g. \
                 2026-11-24T10:15:00Z or 2026-11-24T11:15:00+01:00"
            ));
        }
    }
    // Extension attributes: CloudEvents 1.0 names (lower-case letters and
    // digits) with a string, boolean or integer value; the document says so.
    if let Some(object) = value.as_object() {
        for (name, v) in object {
            if KNOWN_ATTRIBUTES.contains(&name.as_str()) {
                continue;
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                return invalid(format!(
                    "attribute {name:?} is not a CloudEvents attribute name (lower-case letters and digits)"
                ));
            }
            let fits = match v {
                Value::String(_) | Value::Bool(_) => true,
                Value::Number(n) => n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                _ => false,
            };
            if !fits {
                return invalid(format!(
                    "extension attribute {name} must be a string, a boolean or a 32-bit integer, not {v}"
                ));
            }
        }
    }
    for name in ["subject", "datacontenttype", "dataschema"] {
        match value.get(name) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => return invalid(format!("{name} must be a string, not {other}")),
        }
    }
    if let Some(data) = value.get("data").and_then(Value::as_object) {
        for name in ["message", "unit"] {
            match data.get(name) {
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(other) => return invalid(format!("data.{name} must be a string, not {other}")),
            }
        }
        if let Some(Value::Object(asset)) = data.get("asset") {
            match asset.get("site") {
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(other) => return invalid(format!("data.asset.site must be a string, not {other}")),
            }
        }
        for name in ["value", "threshold", "score"] {
            match data.get(name) {
                None | Some(Value::Null) | Some(Value::Number(_)) => {}
                Some(other) => {
                    return invalid(format!("data.{name} must be a JSON number (e.g. 92.1), not {other}"));
                }
            }
        }
    }
    Ok(())
}

/// Keeps the W3C `traceparent` of the transport (an HTTP or AMQP header) as
/// the CloudEvents distributed-tracing extension, unless the event has one.
pub fn with_traceparent(mut event: InboundEvent, traceparent: Option<&str>) -> InboundEvent {
    if let Some(tp) = traceparent.map(str::trim)
        && is_traceparent(tp)
        && let Some(obj) = event.cloudevent.as_object_mut()
    {
        obj.entry("traceparent").or_insert_with(|| Value::String(tp.to_owned()));
    }
    event
}

/// `version-traceid-parentid-flags`, lower-case hex (W3C Trace Context).
fn is_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 4
        && [2, 32, 16, 2]
            .iter()
            .zip(&parts)
            .all(|(len, p)| p.len() == *len && p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// The attributes of CloudEvents 1.0 itself (any other is an extension).
const KNOWN_ATTRIBUTES: &[&str] =
    &["specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time", "data", "data_base64"];

fn bounded(name: &str, v: &str, max: usize) -> Result<String, EventError> {
    if v.trim().is_empty() {
        return Err(EventError::Invalid(format!("{name} must not be empty")));
    }
    super::ident::check_max(name, v, max).map_err(EventError::Invalid)?;
    super::ident::check_text(name, v).map_err(EventError::Invalid)?;
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"{
      "specversion": "1.0", "id": "7d0c5f1e-2f0a-4c55-9a61-0c1c6e3b9a10",
      "source": "tdl://plant-a/vibration-analytics", "type": "tdl.alert",
      "time": "2026-11-24T10:15:00Z", "subject": "PLANT_A.P101.VIB_X",
      "datacontenttype": "application/json", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "data": {"state": "raised", "code": "HIGH_VIBRATION", "severity": "major",
        "message": "Vibration above alarm limit", "asset": {"id": "P-101", "site": "BEDFORD"},
        "value": 12.7, "unit": "mm/s", "threshold": 11.0, "score": 0.97,
        "context": {"area": "Pumping", "line": "2"}, "extra": [1, 2]}
    }"#;

    #[test]
    fn parses_the_spec_example_and_keeps_unknown_fields() {
        let e = structured(SPEC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(e.kind, EventKind::Alert);
        assert_eq!(e.severity, Severity::Major);
        assert_eq!(e.asset_hint.as_ref().unwrap().id, "P-101");
        assert_eq!(e.data["extra"], serde_json::json!([1, 2]));
        assert_eq!(e.cloudevent["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        assert_eq!(e.time.unwrap().to_rfc3339(), "2026-11-24T10:15:00+00:00");
    }

    #[test]
    fn binary_mode_gives_the_same_event() {
        let s = structured(SPEC_EXAMPLE.as_bytes()).unwrap();
        let v: Value = serde_json::from_str(SPEC_EXAMPLE).unwrap();
        let mut headers = vec![];
        for k in ["specversion", "id", "source", "type", "time", "subject", "traceparent"] {
            headers.push((format!("ce-{k}"), v[k].as_str().unwrap().to_owned()));
        }
        let body = serde_json::to_vec(&v["data"]).unwrap();
        let b = binary(headers.iter().map(|(k, v)| (k.as_str(), v.clone())), Some("application/json"), &body).unwrap();
        assert_eq!(s, b);
    }

    #[test]
    fn every_invalid_fixture_is_refused_with_a_reason() {
        let fixtures = include_str!("../../tests/fixtures/events-invalid.jsonl");
        let mut n = 0;
        for line in fixtures.lines().filter(|l| !l.trim().is_empty()) {
            let case: Value = serde_json::from_str(line).unwrap();
            let reason = case["reason"].as_str().unwrap();
            let body = case["body"].as_str().unwrap();
            let err = structured(body.as_bytes()).expect_err(reason);
            assert!(!err.to_string().is_empty(), "{reason}");
            n += 1;
        }
        assert!(n >= 10, "only {n} fixtures");
    }

    #[test]
    fn every_event_of_the_fixture_day_is_valid() {
        let day = include_str!("../../tests/fixtures/events-day.jsonl");
        for line in day.lines().filter(|l| !l.trim().is_empty()) {
            structured(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
    }

    #[test]
    fn a_transport_traceparent_is_kept_unless_the_event_has_one() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let e = structured(br#"{"specversion":"1.0","id":"1","source":"tdl://x","type":"tdl.alert","subject":"A.B","data":{"state":"raised","code":"X","severity":"minor"}}"#).unwrap();
        assert_eq!(with_traceparent(e.clone(), Some(tp)).cloudevent["traceparent"], tp);
        assert!(with_traceparent(e.clone(), Some("garbage")).cloudevent.get("traceparent").is_none());
        let own = structured(SPEC_EXAMPLE.as_bytes()).unwrap();
        let kept = with_traceparent(own.clone(), Some(tp));
        assert_eq!(kept.cloudevent["traceparent"], own.cloudevent["traceparent"]);
    }

    #[test]
    fn specific_reasons() {
        let missing_id = br#"{"specversion":"1.0","source":"tdl://x","type":"tdl.alert","subject":"A.B","data":{"state":"raised","code":"X","severity":"minor"}}"#;
        let err = structured(missing_id).unwrap_err();
        assert!(matches!(err, EventError::Invalid(ref m) if m.contains("id")), "{err}");
        let sev = br#"{"specversion":"1.0","id":"1","source":"tdl://x","type":"tdl.alert","subject":"A.B","data":{"state":"raised","code":"X","severity":"apocalyptic"}}"#;
        assert!(structured(sev).unwrap_err().to_string().contains("apocalyptic"));
        assert!(matches!(structured(b"{\"a\":"), Err(EventError::Malformed(_))));
        assert!(matches!(structured(b"[1,2]"), Err(EventError::Malformed(_))));
    }
}
