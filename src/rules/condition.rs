//! Rule conditions in the Common Expression Language (the `cel` crate).
//! Compiled once when a rule set is loaded; evaluated per event over
//! `event`, `asset` and `context` (the event's `data.context`).

use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program, Value};

use crate::domain::InboundEvent;
use crate::mapping::Asset;

/// Longest condition accepted: CEL has no run-time budget, so inputs are kept small.
pub const MAX_CONDITION_LEN: usize = 4096;
const VARIABLES: [&str; 3] = ["event", "asset", "context"];

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

#[derive(Debug)]
pub struct Condition {
    source: String,
    program: Program,
}

impl Condition {
    /// Parses `source`; errors give line and column, e.g.
    /// `line 1, column 14: Syntax error: …`.
    pub fn compile(source: &str) -> Result<Self, String> {
        if source.len() > MAX_CONDITION_LEN {
            return Err(format!("longer than {MAX_CONDITION_LEN} characters"));
        }
        let program = Program::compile(source).map_err(|errors| {
            errors
                .errors
                .iter()
                .map(|e| format!("line {}, column {}: {}", e.pos.0, e.pos.1 + 1, e.msg))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let references = program.references();
        // The references include the variables that comprehensions bind
        // (`readings.exists(r, r > 90.0)`): those are not unknown.
        let bound = comprehension_variables(source);
        let mut unknown: Vec<&str> = references
            .variables()
            .into_iter()
            .filter(|v| !VARIABLES.contains(v) && !bound.iter().any(|b| b == v))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        if !unknown.is_empty() {
            return Err(format!(
                "unknown variable {}: a condition can use event, asset and context",
                unknown.join(", ")
            ));
        }
        Ok(Self { source: source.to_owned(), program })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// True or false; anything else (an error, a non-boolean) is an error.
    pub fn holds(&self, input: &Input) -> Result<bool, String> {
        match self.program.execute(&input.context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("returned {other:?}, not a bool")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The names bound by comprehension macros: `.all(x, …)`, `.exists(x, …)`,
/// `.exists_one(x, …)`, `.map(x, …)`, `.filter(x, …)`.
fn comprehension_variables(source: &str) -> Vec<String> {
    static MACRO: OnceLock<regex::Regex> = OnceLock::new();
    let re = MACRO.get_or_init(|| {
        regex::Regex::new(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
            .expect("a valid pattern")
    });
    re.captures_iter(source).map(|c| c[1].to_owned()).collect()
}

/// The variables of one event, built once and shared by every condition.
pub struct Input {
    context: Context<'static, 'static>,
}

impl Input {
    pub fn new(event: &InboundEvent, asset: &Asset) -> Self {
        let mut context = Context::with_env(env());
        let ev = crate::decisions::EventView::of(event);
        // These always convert; a failure would leave the variable unset,
        // which the condition then reports as an error.
        let _ = context.add_variable("context", ev.context());
        let _ = context.add_variable("event", &ev);
        let _ = context.add_variable("asset", asset);
        Self { context }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertState, EventKind, Severity};
    use crate::rules::tests::asset;

    fn event(data: serde_json::Value) -> InboundEvent {
        InboundEvent {
            id: "e1".into(),
            source: "tdl://t".into(),
            kind: EventKind::Alert,
            time: chrono::DateTime::from_timestamp(1_795_000_000, 0),
            subject: Some("BEDFORD.PUMPING.P101.VIB_X".into()),
            state: AlertState::Raised,
            code: "HIGH_VIBRATION".into(),
            severity: Severity::Major,
            message: Some("vibration above limit".into()),
            asset_hint: None,
            data,
            cloudevent: serde_json::json!({}),
        }
    }

    fn holds(source: &str, event: &InboundEvent) -> Result<bool, String> {
        Condition::compile(source).unwrap().holds(&Input::new(event, &asset()))
    }

    #[test]
    fn conditions_see_the_event_its_data_and_the_asset() {
        let data = serde_json::json!({
            "value": 9.2, "unit": "mm/s", "threshold": 7.1,
            "readings": [6.0, 9.2], "context": {"area": "Pumping"}
        });
        let e = event(data);
        for source in [
            "event.type == 'tdl.alert' && event.state == 'raised' && event.severity == 'major'",
            "event.code == 'HIGH_VIBRATION' && event.subject.startsWith('BEDFORD.') && event.source == 'tdl://t'",
            "event.message == 'vibration above limit' && event.time.startsWith('2026-')",
            "event.value > event.threshold && event.unit == 'mm/s' && event.data.value == 9.2",
            "event.data.readings.exists(r, r > 9.0) && context.area == 'Pumping'",
            "event.context.area == 'Pumping' && event.score == null",
            "asset.id == 'P-101' && asset.class == 'PUMP' && asset.criticality == 'A' && asset.parent == null",
        ] {
            assert_eq!(holds(source, &e), Ok(true), "{source}");
        }
        assert_eq!(holds("event.value < event.threshold", &e), Ok(false));
        // Without data.context, `context` is null rather than unset.
        let bare = event(serde_json::json!({}));
        assert_eq!(holds("context == null && event.value == null", &bare), Ok(true));
        assert!(holds("context.area == 'Pumping'", &bare).is_err());
    }

    #[test]
    fn syntax_errors_point_at_the_position() {
        let err = Condition::compile("event.value > ").unwrap_err();
        assert!(err.starts_with("line 1, column"), "{err}");
        let err = Condition::compile("evnt.value > 2").unwrap_err();
        assert!(err.contains("unknown variable evnt"), "{err}");
        assert!(Condition::compile("event.value > 2.0 * event.threshold").is_ok());
        // comprehension variables are bound, not unknown; a typo beside them still is
        let ok = "event.data.readings.exists(r, r > 90.0) && [1, 2].all(n, n > 0)";
        assert!(Condition::compile(ok).is_ok(), "{:?}", Condition::compile(ok).err());
        let err = Condition::compile("event.data.readings.exists(r, r > limit)").unwrap_err();
        assert!(err.contains("unknown variable limit"), "{err}");
    }
}
