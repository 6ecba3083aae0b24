//! The first rule form: structured matchers and a create action with a dedup
//! key. Evaluation is pure (`evaluate`), so that the full rule engine, dry
//! runs and backtests can reuse it. The first enabled rule that matches, in
//! ascending `position`, decides; later rules are not consulted.

mod condition;
pub mod file;

mod set;

pub use condition::Condition;
pub use set::{CompiledRule, RuleSet};

// The declarations (what a rule says) are domain types; this module
// validates and evaluates them.
pub use crate::domain::rule::{
    Action, CreateAction, DEFAULT_DEDUP_KEY, DEFAULT_DESCRIPTION, DEFAULT_TITLE, Debounce, Matchers, OnClear,
    PrioritySpec, Rule, RuleDefinition, RuleInput, RuleMode,
};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{AlertState, InboundEvent};
use crate::domain::{Asset, template};

impl RuleInput {
    /// Checks names and compiles every template and expression; the message
    /// names the field (and, for expressions, the line and column).
    pub fn validate(&self) -> Result<(), String> {
        crate::domain::ident::check_name("name", &self.name, 128)?;
        if let Some(src) = &self.when.condition {
            Condition::compile(src).map_err(|e| format!("when.condition: {e}"))?;
        }
        set::compile_globs(&self.when.tags).map_err(|e| format!("when.tags: {e}"))?;
        if let Some(hours) = self.expire_after_hours {
            if self.mode != RuleMode::Review {
                return Err("expire_after_hours: only allowed with mode review".into());
            }
            if !(1..=720).contains(&hours) {
                return Err(format!("expire_after_hours must be 1 to 720, got {hours}"));
            }
        }
        if let Action::Create(c) = &self.action {
            if c.connector.trim().is_empty() {
                return Err("action.connector must not be empty".into());
            }
            match c.debounce {
                Some(Debounce::Occurrences { occurrences, within_minutes })
                    if occurrences < 2 || within_minutes == 0 =>
                {
                    return Err("action.debounce: occurrences must be at least 2 and within_minutes at least 1".into());
                }
                Some(Debounce::HeldFor { held_for_minutes: 0 }) => {
                    return Err("action.debounce: held_for_minutes must be at least 1".into());
                }
                _ => {}
            }
            for (field, src) in
                [("action.title", &c.title), ("action.description", &c.description), ("action.dedup_key", &c.dedup_key)]
            {
                template::check(src).map_err(|e| format!("{field}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// Why a rule did or did not act, for the decision trace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleTrace {
    pub rule_id: String,
    pub rule: String,
    pub version: i32,
    pub matched: bool,
    /// A shadow rule: traced, never acts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    pub reason: String,
}

pub struct Evaluation<'r> {
    /// The rule that acts, if any.
    pub acting: Option<&'r Rule>,
    pub trace: Vec<RuleTrace>,
    /// Rules the index ruled out without evaluating them.
    pub skipped: usize,
    /// Shadow rules that matched before the acting rule (or all, if none acts).
    pub shadow: Vec<&'r Rule>,
}

/// An evaluation that names rules by their position in the set, so that it
/// owns nothing of the set and can be computed on another thread.
#[derive(Debug)]
pub struct Evaluated {
    acting: Option<usize>,
    trace: Vec<RuleTrace>,
    skipped: usize,
    shadow: Vec<usize>,
}

impl Evaluated {
    /// The rule that acts, in `rules`, the set this verdict was computed on.
    pub fn acting<'r>(&self, rules: &'r RuleSet) -> Option<&'r Rule> {
        self.acting.map(|p| &rules.at(p).rule)
    }

    /// The evaluation against `rules`, the set this verdict was computed on.
    pub fn resolve(self, rules: &RuleSet) -> Evaluation<'_> {
        Evaluation {
            acting: self.acting.map(|p| &rules.at(p).rule),
            trace: self.trace,
            skipped: self.skipped,
            shadow: self.shadow.into_iter().map(|p| &rules.at(p).rule).collect(),
        }
    }
}

/// Evaluates the rules that can match (the set's index picks them, in
/// position order) against an event and its asset.
pub fn evaluate<'r>(event: &InboundEvent, asset: &Asset, rules: &'r RuleSet) -> Evaluation<'r> {
    verdict(event, asset, rules).resolve(rules)
}

/// `evaluate`, by rule positions.
pub fn verdict(event: &InboundEvent, asset: &Asset, rules: &RuleSet) -> Evaluated {
    let mut trace = Vec::new();
    let candidates = rules.candidates(event, &asset.site);
    let skipped = rules.len() - candidates.len();
    let mut cel_input = None;
    let mut shadow = vec![];
    for position in candidates {
        let rule = rules.at(position);
        let miss = mismatch(rule, event, asset, &mut cel_input);
        let is_shadow = rule.rule.mode == RuleMode::Shadow;
        trace.push(RuleTrace {
            rule_id: rule.rule.id.clone(),
            rule: rule.rule.name.clone(),
            version: rule.rule.version,
            matched: miss.is_none(),
            shadow: is_shadow,
            reason: miss.unwrap_or_else(|| "all matchers hold".into()),
        });
        if trace.last().is_some_and(|t| t.matched) {
            if is_shadow {
                shadow.push(position);
                continue;
            }
            return Evaluated { acting: Some(position), trace, skipped, shadow };
        }
    }
    Evaluated { acting: None, trace, skipped, shadow }
}

/// `None` when every matcher holds, else why not.
fn mismatch(
    r: &CompiledRule,
    event: &InboundEvent,
    asset: &Asset,
    cel_input: &mut Option<condition::Input>,
) -> Option<String> {
    let m = &r.rule.when;
    if !m.types.is_empty() && !m.types.contains(&event.kind) {
        return Some(format!(
            "type {} not in {:?}",
            event.kind.as_str(),
            m.types.iter().map(|t| t.as_str()).collect::<Vec<_>>()
        ));
    }
    if !m.codes.is_empty() && !m.codes.iter().any(|c| c == &event.code) {
        return Some(format!("code {} not in {:?}", event.code, m.codes));
    }
    // A cleared event carries the severity of its episode; the clear itself
    // must still find the rule that opened the order.
    if let Some(min) = m.min_severity
        && event.state == AlertState::Raised
        && event.severity < min
    {
        return Some(format!("severity {} below {}", event.severity.as_str(), min.as_str()));
    }
    if !m.sites.is_empty() && !m.sites.iter().any(|s| s == &asset.site) {
        return Some(format!("site {} not in {:?}", asset.site, m.sites));
    }
    if !m.asset_classes.is_empty() && !m.asset_classes.iter().any(|c| c == &asset.class) {
        return Some(format!("asset class {} not in {:?}", asset.class, m.asset_classes));
    }
    if !m.criticality.is_empty() && !asset.criticality.as_ref().is_some_and(|c| m.criticality.contains(c)) {
        return Some(format!(
            "criticality {} not in {:?}",
            asset.criticality.as_deref().unwrap_or("(none)"),
            m.criticality
        ));
    }
    if let Some(globs) = &r.tags
        && !event.subject.as_deref().is_some_and(|s| set::tag_matches(globs, s))
    {
        return Some(format!("tag {} matches none of {:?}", event.subject.as_deref().unwrap_or("(none)"), m.tags));
    }
    if let Some(cond) = &r.condition {
        let input = cel_input.get_or_insert_with(|| condition::Input::new(event, asset));
        match cond.holds(input) {
            Ok(true) => {}
            Ok(false) => return Some(format!("condition is false: {}", cond.source())),
            Err(e) => {
                return Some(format!("condition could not be evaluated ({e}): {}", cond.source()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AssetHint, EventKind, Severity};
    use chrono::Utc;

    fn event(code: &str, severity: Severity) -> InboundEvent {
        InboundEvent {
            id: "e1".into(),
            source: "tdl://t".into(),
            kind: EventKind::Alert,
            time: None,
            subject: Some("BEDFORD.PUMPING.P101.VIB_X".into()),
            state: AlertState::Raised,
            code: code.into(),
            severity,
            message: None,
            asset_hint: None::<AssetHint>,
            data: serde_json::json!({}),
            cloudevent: serde_json::json!({}),
        }
    }

    /// A pump at BEDFORD, criticality A (also the condition tests' asset).
    pub(super) fn asset() -> Asset {
        Asset {
            id: "P-101".into(),
            site: "BEDFORD".into(),
            name: "Pump".into(),
            class: "PUMP".into(),
            criticality: Some("A".into()),
            parent: None,
            eam_system: None,
        }
    }

    fn rule(name: &str, position: i32, when: Matchers) -> Rule {
        Rule {
            id: name.into(),
            name: name.into(),
            enabled: true,
            position,
            version: 1,
            mode: RuleMode::Live,
            expire_after_hours: None,
            when,
            action: Action::Ignore,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn first_matching_rule_acts_and_the_trace_says_why_others_did_not() {
        let rules = vec![
            rule(
                "pumps-major",
                1,
                Matchers {
                    min_severity: Some(Severity::Major),
                    asset_classes: vec!["PUMP".into()],
                    ..Default::default()
                },
            ),
            rule("vibration", 2, Matchers { codes: vec!["HIGH_VIBRATION".into()], ..Default::default() }),
            rule("catch-all", 3, Matchers::default()),
        ];
        let rules = RuleSet::compile(rules).unwrap();
        let ev = evaluate(&event("HIGH_VIBRATION", Severity::Minor), &asset(), &rules);
        assert_eq!(ev.acting.unwrap().name, "vibration");
        assert_eq!(ev.trace.len(), 2);
        assert!(ev.trace[0].reason.contains("severity minor below major"));
        let ev = evaluate(&event("HIGH_VIBRATION", Severity::Critical), &asset(), &rules);
        assert_eq!(ev.acting.unwrap().name, "pumps-major");
    }

    #[test]
    fn disabled_rules_and_other_sites_do_not_match() {
        let mut off = rule("off", 1, Matchers::default());
        off.enabled = false;
        let texas = rule("texas", 2, Matchers { sites: vec!["TEXAS".into()], ..Default::default() });
        let rules = RuleSet::compile(vec![off, texas]).unwrap();
        let ev = evaluate(&event("X", Severity::Info), &asset(), &rules);
        assert!(ev.acting.is_none());
        assert!(ev.trace.is_empty(), "the disabled rule is not loaded, the site index rules out texas");
        assert_eq!(ev.skipped, 1);
    }

    #[test]
    fn cel_conditions_see_event_asset_and_context() {
        let mut e = event("HIGH_VIBRATION", Severity::Major);
        e.data = serde_json::json!({"value": 25.0, "threshold": 11.0, "context": {"line": "2"}});
        let when = |c: &str| Matchers { condition: Some(c.into()), ..Default::default() };
        let rules = RuleSet::compile(vec![
            rule("twice-over", 1, when("event.value > 2.0 * event.threshold && asset.criticality == 'A'")),
            rule("line-3", 0, when("context.line == '3'")),
        ])
        .unwrap();
        let ev = evaluate(&e, &asset(), &rules);
        assert_eq!(ev.acting.unwrap().name, "twice-over");
        assert!(ev.trace[0].reason.contains("condition is false"), "{:?}", ev.trace);
        // A condition that cannot be evaluated does not match, and says why.
        let broken = RuleSet::compile(vec![rule("no-field", 0, when("event.nope > 1"))]).unwrap();
        let ev = evaluate(&e, &asset(), &broken);
        assert!(ev.acting.is_none());
        assert!(ev.trace[0].reason.contains("could not be evaluated"), "{:?}", ev.trace);
    }

    #[test]
    fn criticality_and_tag_globs() {
        let rules = RuleSet::compile(vec![
            rule("crit-b", 0, Matchers { criticality: vec!["B".into()], ..Default::default() }),
            rule("cooling", 1, Matchers { tags: vec!["BEDFORD.COOLING.*".into()], ..Default::default() }),
            rule("pumping-vib", 2, Matchers { tags: vec!["BEDFORD.PUMPING.*.VIB_*".into()], ..Default::default() }),
        ])
        .unwrap();
        let ev = evaluate(&event("X", Severity::Minor), &asset(), &rules);
        assert_eq!(ev.acting.unwrap().name, "pumping-vib");
        assert!(ev.trace[0].reason.contains("criticality A"));
        assert!(ev.trace[1].reason.contains("matches none"));
        // `*` stays within one level of the tag
        let deep = RuleSet::compile(vec![rule(
            "one-level",
            0,
            Matchers { tags: vec!["BEDFORD.*".into()], ..Default::default() },
        )])
        .unwrap();
        assert!(evaluate(&event("X", Severity::Minor), &asset(), &deep).acting.is_none());
    }

    #[test]
    fn the_index_only_offers_rules_that_can_match_in_order() {
        let mut rules = vec![];
        for i in 0..100 {
            rules.push(rule(&format!("code-{i}"), i, Matchers { codes: vec![format!("C{i}")], ..Default::default() }));
        }
        rules.push(rule("anomalies", 100, Matchers { types: vec![EventKind::Anomaly], ..Default::default() }));
        rules.push(rule("catch-all", 101, Matchers::default()));
        let set = RuleSet::compile(rules).unwrap();
        let ev = evaluate(&event("C42", Severity::Minor), &asset(), &set);
        assert_eq!(ev.acting.unwrap().name, "code-42");
        assert_eq!(ev.trace.len(), 1);
        assert_eq!(ev.skipped, 100, "only code-42 and the catch-all are candidates");
        let ev = evaluate(&event("OTHER", Severity::Minor), &asset(), &set);
        assert_eq!(ev.acting.unwrap().name, "catch-all");
        assert_eq!(ev.trace.len(), 1, "the anomaly rule is not a candidate for an alert");
    }

    #[test]
    fn priority_from_the_matrix() {
        let spec: PrioritySpec = serde_json::from_value(serde_json::json!({
            "critical": {"A": 1, "*": 2}, "major": {"A": 2, "B": 3, "*": 4}
        }))
        .unwrap();
        let p = |s, c| spec.resolve(s, c).get();
        assert_eq!(p(Severity::Critical, Some("A")), 1);
        assert_eq!(p(Severity::Critical, Some("C")), 2);
        assert_eq!(p(Severity::Major, Some("B")), 3);
        assert_eq!(p(Severity::Major, None), 4);
        assert_eq!(p(Severity::Minor, Some("A")), 3, "no row: the default");
        let fixed: PrioritySpec = serde_json::from_value(serde_json::json!(1)).unwrap();
        assert_eq!(fixed.resolve(Severity::Info, None).get(), 1);
        assert!(serde_json::from_value::<PrioritySpec>(serde_json::json!({"major": {"A": 9}})).is_err());
    }
}
