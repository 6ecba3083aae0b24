//! The first rule form: structured matchers and a create action with a dedup
//! key. Evaluation is pure (`evaluate`), so that the full rule engine, dry
//! runs and backtests can reuse it. The first enabled rule that matches, in
//! ascending `position`, decides; later rules are not consulted.

pub mod template;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{AlertState, EventKind, InboundEvent, Priority, Severity};
use crate::mapping::Asset;

pub const DEFAULT_DEDUP_KEY: &str = "{{ asset.id }}:{{ event.code }}";
pub const DEFAULT_TITLE: &str = "{{ event.code }} on {{ asset.name }} ({{ asset.id }})";
pub const DEFAULT_DESCRIPTION: &str = "{{ event.message or event.code }}\nSeverity: {{ event.severity }}\nTag: {{ event.subject }}\nFirst event: {{ event.time }}\nRaised by workbridge from {{ event.source }}.";

/// Which events a rule applies to. Every list that is not empty must contain
/// the event's value; an empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Matchers {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<EventKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<String>,
    /// The event's severity must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asset_classes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Open a work order (or merge into the open one with the same dedup key).
    Create(CreateAction),
    /// Record that the event needs no work; stops evaluation.
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAction {
    /// Name of the connector that delivers the order.
    pub connector: String,
    /// e.g. corrective, emergency, inspection, calibration.
    #[serde(default = "default_work_type")]
    pub work_type: String,
    #[serde(default = "default_priority")]
    pub priority: Priority,
    /// Template over `event` and `asset` (MiniJinja syntax).
    #[serde(default = "default_title")]
    pub title: String,
    #[serde(default = "default_description")]
    pub description: String,
    /// While an order with this key is open, further events merge into it.
    #[serde(default = "default_dedup_key")]
    pub dedup_key: String,
}

fn default_work_type() -> String {
    "corrective".into()
}
fn default_priority() -> Priority {
    Priority::new(3).expect("3 is a valid priority")
}
fn default_title() -> String {
    DEFAULT_TITLE.into()
}
fn default_description() -> String {
    DEFAULT_DESCRIPTION.into()
}
fn default_dedup_key() -> String {
    DEFAULT_DEDUP_KEY.into()
}

/// A rule as stored and listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// Rules are evaluated in ascending position; the first match acts.
    pub position: i32,
    /// Starts at 1; every change makes a new version.
    pub version: i32,
    pub when: Matchers,
    pub action: Action,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Create or replace a rule.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub position: i32,
    #[serde(default)]
    pub when: Matchers,
    pub action: Action,
}

fn yes() -> bool {
    true
}

/// The part of a rule that is versioned as one JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleDefinition {
    pub when: Matchers,
    pub action: Action,
}

impl RuleInput {
    /// Checks names and compiles every template; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err("name must be 1 to 128 characters".into());
        }
        if let Action::Create(c) = &self.action {
            if c.connector.trim().is_empty() {
                return Err("action.connector must not be empty".into());
            }
            for (field, src) in [
                ("action.title", &c.title),
                ("action.description", &c.description),
                ("action.dedup_key", &c.dedup_key),
            ] {
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
    pub reason: String,
}

pub struct Evaluation<'r> {
    /// The rule that acts, if any.
    pub acting: Option<&'r Rule>,
    pub trace: Vec<RuleTrace>,
}

/// Evaluates `rules` (already in position order) against an event and its asset.
pub fn evaluate<'r>(event: &InboundEvent, asset: &Asset, rules: &'r [Rule]) -> Evaluation<'r> {
    let mut trace = Vec::new();
    for rule in rules.iter().filter(|r| r.enabled) {
        let miss = mismatch(&rule.when, event, asset);
        trace.push(RuleTrace {
            rule_id: rule.id.clone(),
            rule: rule.name.clone(),
            version: rule.version,
            matched: miss.is_none(),
            reason: miss.clone().unwrap_or_else(|| "all matchers hold".into()),
        });
        if miss.is_none() {
            return Evaluation {
                acting: Some(rule),
                trace,
            };
        }
    }
    Evaluation {
        acting: None,
        trace,
    }
}

/// `None` when every matcher holds, else why not.
fn mismatch(m: &Matchers, event: &InboundEvent, asset: &Asset) -> Option<String> {
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
        return Some(format!(
            "severity {} below {}",
            event.severity.as_str(),
            min.as_str()
        ));
    }
    if !m.sites.is_empty() && !m.sites.iter().any(|s| s == &asset.site) {
        return Some(format!("site {} not in {:?}", asset.site, m.sites));
    }
    if !m.asset_classes.is_empty() && !m.asset_classes.iter().any(|c| c == &asset.class) {
        return Some(format!(
            "asset class {} not in {:?}",
            asset.class, m.asset_classes
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AssetHint;

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

    fn asset() -> Asset {
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
            rule(
                "vibration",
                2,
                Matchers {
                    codes: vec!["HIGH_VIBRATION".into()],
                    ..Default::default()
                },
            ),
            rule("catch-all", 3, Matchers::default()),
        ];
        let ev = evaluate(&event("HIGH_VIBRATION", Severity::Minor), &asset(), &rules);
        assert_eq!(ev.acting.unwrap().name, "vibration");
        assert_eq!(ev.trace.len(), 2);
        assert!(ev.trace[0].reason.contains("severity minor below major"));
        let ev = evaluate(
            &event("HIGH_VIBRATION", Severity::Critical),
            &asset(),
            &rules,
        );
        assert_eq!(ev.acting.unwrap().name, "pumps-major");
    }

    #[test]
    fn disabled_rules_and_other_sites_do_not_match() {
        let mut off = rule("off", 1, Matchers::default());
        off.enabled = false;
        let texas = rule(
            "texas",
            2,
            Matchers {
                sites: vec!["TEXAS".into()],
                ..Default::default()
            },
        );
        let rules = [off, texas];
        let ev = evaluate(&event("X", Severity::Info), &asset(), &rules);
        assert!(ev.acting.is_none());
        assert_eq!(ev.trace.len(), 1);
        assert!(ev.trace[0].reason.contains("site BEDFORD"));
    }
}
