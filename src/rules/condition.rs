//! Rule conditions in the Common Expression Language (the `cel` crate).
//! Compiled once when a rule set is loaded; evaluated per event over
//! `event`, `asset` and `context` (the event's `data.context`).
//!
//! CEL has no run-time budget, and CPU work on a blocking thread cannot be
//! cancelled: a condition's cost is therefore bounded before it runs. At
//! compile (save) time a comprehension (`all`, `exists`, `exists_one`,
//! `map`, `filter`) may not contain another one, anywhere (body or range):
//! nesting multiplies the sizes of the lists iterated (`l.exists(x,
//! l.exists(y, …))` over 15,000 items is 225 million steps), and a chain
//! (`l.map(x, …).map(y, …)`) can grow what it builds at every link. The
//! bodies of all comprehensions together hold at most
//! [`MAX_PER_ITEM_NODES`] nodes, and no expression nests deeper than
//! [`MAX_EXPRESSION_DEPTH`] (evaluation recurses on the thread's stack). At
//! run time a condition with a comprehension refuses an event whose data
//! holds a list or map longer than [`MAX_ITERATED_ITEMS`]: its cost is then at
//! most items × body nodes × the largest value (a list of at most that many
//! items, or a string of the event's 256 KiB).

use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::{Context, Env, Program, Value};

use crate::domain::Asset;
use crate::domain::InboundEvent;

/// Longest condition accepted: CEL has no run-time budget, so inputs are kept small.
pub const MAX_CONDITION_LEN: usize = 4096;
const VARIABLES: [&str; 3] = ["event", "asset", "context"];
/// Deepest nesting of comprehensions: 1, none inside another (see the module doc).
pub const MAX_COMPREHENSION_DEPTH: usize = 1;
/// Most items of one list or map in an event's data that a condition with a
/// comprehension evaluates over.
pub const MAX_ITERATED_ITEMS: usize = 128;
/// Most nodes of all comprehensions' bodies together: each runs once per
/// item, and may itself cost up to the size of a list or string.
pub const MAX_PER_ITEM_NODES: usize = 32;
/// Deepest expression tree: evaluation recurses once per level, on a
/// thread's stack (`a + a + …` 400 times overflowed it).
pub const MAX_EXPRESSION_DEPTH: usize = 50;

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

#[derive(Debug)]
pub struct Condition {
    source: String,
    program: Program,
    /// Whether it has a comprehension (and so is bounded by the size of the
    /// event's lists).
    iterates: bool,
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
        let depth = Shape { program: &program, per_item: 0 }.visit(program.expression(), 0, false)?;
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
        Ok(Self { source: source.to_owned(), program, iterates: depth > 0 })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// True or false; anything else (an error, a non-boolean) is an error.
    pub fn holds(&self, input: &Input) -> Result<bool, String> {
        if self.iterates {
            let largest = input.largest();
            if largest > MAX_ITERATED_ITEMS {
                return Err(format!(
                    "the event's data holds a list or map of {largest} items; a condition with a \
                     comprehension evaluates over at most {MAX_ITERATED_ITEMS}"
                ));
            }
        }
        match self.program.execute(&input.context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("returned {other:?}, not a bool")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What compiling measures of a condition's shape.
struct Shape<'p> {
    program: &'p Program,
    /// Nodes evaluated once per item: inside a comprehension, but not the
    /// list it iterates.
    per_item: usize,
}

impl Shape<'_> {
    /// The deepest nesting of comprehensions in `expr` (0: none), or an error
    /// naming where a bound is passed. `depth` is how deep `expr` sits in the
    /// tree; `per_item` whether it is evaluated once per item.
    fn visit(&mut self, expr: &IdedExpr, depth: usize, per_item: bool) -> Result<usize, String> {
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(format!(
                "{}the expression nests deeper than {MAX_EXPRESSION_DEPTH} levels",
                position(self.program, expr)
            ));
        }
        if per_item {
            self.per_item += 1;
            if self.per_item > MAX_PER_ITEM_NODES {
                return Err(format!(
                    "{}the comprehensions' bodies (all, exists, exists_one, map, filter) hold more than \
                     {MAX_PER_ITEM_NODES} operations, which run once per item",
                    position(self.program, expr)
                ));
            }
        }
        let children: Vec<&IdedExpr> = match &expr.expr {
            Expr::Call(call) => call.target.as_deref().into_iter().chain(&call.args).collect(),
            Expr::Comprehension(c) => {
                let mut deepest = self.visit(&c.iter_range, depth + 1, per_item)?;
                for e in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    deepest = deepest.max(self.visit(e, depth + 1, true)?);
                }
                if deepest + 1 > MAX_COMPREHENSION_DEPTH {
                    return Err(nested_comprehension(self.program, expr));
                }
                return Ok(deepest + 1);
            }
            Expr::List(list) => list.elements.iter().collect(),
            Expr::Map(map) => entries(&map.entries),
            Expr::Struct(s) => entries(&s.entries),
            Expr::Select(select) => vec![&select.operand],
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => vec![],
        };
        let mut deepest = 0;
        for e in children {
            deepest = deepest.max(self.visit(e, depth + 1, per_item)?);
        }
        Ok(deepest)
    }
}

fn entries(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&IdedExpr> {
    entries
        .iter()
        .flat_map(|e| match &e.expr {
            EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
            EntryExpr::StructField(f) => vec![&f.value],
        })
        .collect()
}

/// `line L, column C: ` of `expr` in the source, when known.
fn position(program: &Program, expr: &IdedExpr) -> String {
    program
        .source_info()
        .offset_for(expr.id)
        .and_then(|(start, _)| {
            let source = &program.source_info().source;
            let before = source.get(..start as usize)?;
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
            Some(format!("line {line}, column {column}: "))
        })
        .unwrap_or_default()
}

fn nested_comprehension(program: &Program, outer: &IdedExpr) -> String {
    format!(
        "{}a comprehension (all, exists, exists_one, map, filter) contains another one, in its \
         body or in the list it iterates: nested comprehensions cost the product of the lists' \
         sizes, so a condition may not nest them (at most {MAX_COMPREHENSION_DEPTH} level); \
         combine the tests in one comprehension instead",
        position(program, outer)
    )
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
    /// The most items of one list or map in the event's data.
    largest: usize,
}

impl Input {
    pub fn new(event: &InboundEvent, asset: &Asset) -> Self {
        let mut context = Context::with_env(env());
        let ev = crate::domain::EventView::of(event);
        // These always convert; a failure would leave the variable unset,
        // which the condition then reports as an error.
        let _ = context.add_variable("context", ev.context());
        let _ = context.add_variable("event", &ev);
        let _ = context.add_variable("asset", asset);
        Self { context, largest: largest_collection(&event.data) }
    }

    fn largest(&self) -> usize {
        self.largest
    }
}

/// The most items of one array or object in `value`, at any depth (a walk
/// of the document, cheaper than its conversion into CEL values).
fn largest_collection(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => items.iter().map(largest_collection).fold(items.len(), usize::max),
        serde_json::Value::Object(map) => map.values().map(largest_collection).fold(map.len(), usize::max),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertState, EventKind, Severity};
    use crate::rules::tests::asset;

    pub(super) fn event(data: serde_json::Value) -> InboundEvent {
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
    #[test]
    fn nested_comprehensions_are_refused() {
        for source in [
            "event.data.l.exists(x, event.data.l.exists(y, x == y))",
            "event.data.l.all(x, event.data.m.map(y, y).size() > 0)",
            // a chain: the outer one iterates what the inner one builds
            "event.data.l.map(x, x + x).exists(y, y > 2)",
        ] {
            let err = Condition::compile(source).unwrap_err();
            assert!(err.starts_with("line 1, column "), "{source}: {err}");
            assert!(err.contains("contains another one"), "{source}: {err}");
        }
        let ok = "event.data.l.exists(x, x > 2) && event.data.m.all(y, y < 9) && size(event.data.l) > 0";
        assert!(Condition::compile(ok).is_ok(), "{:?}", Condition::compile(ok).err());
    }

    #[test]
    fn comprehension_bodies_and_depth_are_bounded() {
        let body = vec!["x == 1"; 15].join(" || ");
        let err = Condition::compile(&format!("event.data.l.exists(x, {body})")).unwrap_err();
        assert!(err.contains("hold more than 32 operations"), "{err}");
        // the same outside a comprehension runs once: fine
        assert!(Condition::compile(&format!("[1].size() == 1 && ({})", body.replace('x', "event.value"))).is_ok());
        let deep = vec!["event.value"; 120].join(" + ");
        let err = Condition::compile(&format!("{deep} > 1.0")).unwrap_err();
        assert!(err.contains("nests deeper than 50 levels"), "{err}");
    }

    #[test]
    fn a_condition_that_iterates_refuses_long_lists() {
        let long: Vec<usize> = (0..=MAX_ITERATED_ITEMS).collect();
        let e = event(serde_json::json!({"readings": long, "short": [1, 2]}));
        let err = holds("event.data.short.exists(r, r == 2)", &e).unwrap_err();
        assert!(err.contains("a list or map of 129 items"), "{err}");
        // without a comprehension its cost is linear: evaluated as before
        assert_eq!(holds("128 in event.data.readings && size(event.data.short) == 2", &e), Ok(true));
        let fits = event(serde_json::json!({"readings": &long[1..]}));
        assert_eq!(holds("event.data.readings.exists(r, r == 128)", &fits), Ok(true));
    }
}

/// Worst cases at the limits, timed (not asserted): `cargo test --release
/// --lib rules::condition::cost -- --ignored --nocapture`.
#[cfg(test)]
mod cost {
    use super::*;
    use crate::rules::tests::asset;

    /// An event of about 256 KiB (the largest accepted): a list of
    /// MAX_ITERATED_ITEMS numbers as `context`, and the rest a long message.
    fn worst_event() -> InboundEvent {
        let items: Vec<i64> = (0..MAX_ITERATED_ITEMS as i64).collect();
        let mut e = super::tests::event(serde_json::json!({ "context": items }));
        e.message = Some("x".repeat(240 * 1024));
        e
    }

    /// `head` + `term` repeated (joined by `join`) + `tail`: the longest
    /// that compiles.
    fn fill(head: &str, term: &str, join: &str, tail: &str) -> String {
        let mut terms = vec![term];
        loop {
            terms.push(term);
            let longer = format!("{head}{}{tail}", terms.join(join));
            if Condition::compile(&longer).is_err() {
                terms.pop();
                return format!("{head}{}{tail}", terms.join(join));
            }
        }
    }

    #[test]
    #[ignore = "a measurement, run by hand"]
    fn worst_case_evaluation_time() {
        let e = worst_event();
        let input = Input::new(&e, &asset());
        let cases = [
            ("`in` scans in one body", fill("context.all(x, ", "!(-1 in context)", " && ", ")")),
            ("list equality in one body", fill("context.all(x, ", "context == context", " && ", ")")),
            ("map building lists", fill("context.map(x, ", "context", " + ", ").size() > 0")),
            ("without a comprehension", fill("", "context == context", " && ", "")),
            ("deepest expression", fill("", "context", " + ", " == []")),
            ("string scans in one body", fill("context.all(x, ", "!event.message.contains('y')", " && ", ")")),
            ("regex over the message", fill("context.all(x, ", "!event.message.matches('y+z')", " && ", ")")),
            ("comprehensions side by side", fill("", "context.all(x, !(-1 in context))", " && ", "")),
        ];
        for (what, source) in cases {
            let c = Condition::compile(&source).unwrap_or_else(|e| panic!("{what}: {e}"));
            let start = std::time::Instant::now();
            let result = c.holds(&input);
            println!(
                "{what}: {:?} ({} chars) -> {:?}",
                start.elapsed(),
                source.len(),
                result.map_err(|e| e.chars().take(80).collect::<String>())
            );
        }
    }
}
