//! Rule declarations: what a rule says (which events, what to do), as
//! stored, listed and sent by clients. `rules` validates and evaluates them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{EventKind, Priority, Severity};

pub const DEFAULT_DEDUP_KEY: &str = "{{ asset.id }}:{{ event.code }}";
pub const DEFAULT_TITLE: &str = "{{ event.code }} on {{ asset.name }} ({{ asset.id }})";
/// Lines whose field the event may lack (`subject`, `time`) are left out then.
pub const DEFAULT_DESCRIPTION: &str = "{{ event.message or event.code }}\nSeverity: {{ event.severity }}\n\
{% if event.subject %}Tag: {{ event.subject }}\n{% endif %}\
{% if event.time %}First event: {{ event.time }}\n{% endif %}\
Raised by workbridge from {{ event.source }}.";

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
    /// The asset's criticality must be one of these (A/B/C or 1–5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub criticality: Vec<String>,
    /// Glob patterns over the event's tag (`subject`), e.g. `BEDFORD.*.P1*.VIB_*`:
    /// `*` stays within one dot-separated level, `**` spans any number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A Common Expression Language condition over `event`, `asset` and
    /// `context`, e.g. `event.value > 2.0 * event.threshold && asset.criticality == "A"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
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
    /// A fixed priority, or a matrix severity → criticality → priority
    /// (`"*"` for any criticality), e.g. `{"critical": {"A": 1, "*": 2}}`.
    #[serde(default = "default_priority")]
    pub priority: PrioritySpec,
    /// Template over `event` and `asset` (MiniJinja syntax).
    #[serde(default = "default_title")]
    pub title: String,
    #[serde(default = "default_description")]
    pub description: String,
    /// While an order with this key is open, further events merge into it.
    #[serde(default = "default_dedup_key")]
    pub dedup_key: String,
    /// Wait for repeated or lasting evidence before opening an order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Debounce>,
    /// After an order for the same key closed, no new order for this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_minutes: Option<u32>,
    /// What a `cleared` event does to the open order.
    #[serde(default)]
    pub on_clear: OnClear,
    /// Add a comment (work log) to the order in the EAM when events merge
    /// into it, at most once per `comment_interval_minutes` (default 60).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub comment_on_merge: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_interval_minutes: Option<u32>,
}

/// Debounce: open an order only when the condition is confirmed. Counted per
/// dedup key over the events' own times, since the last `cleared` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Debounce {
    /// At least `occurrences` raised events within `within_minutes`.
    Occurrences { occurrences: u32, within_minutes: u32 },
    /// Raised for at least `held_for_minutes` without a clear; decided when
    /// a later event for the same key arrives.
    HeldFor { held_for_minutes: u32 },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnClear {
    /// Record the clear on the event only.
    Nothing,
    /// Record the clear among the open order's events.
    #[default]
    Annotate,
    /// Cancel the open order if work has not started (pending, created or
    /// acknowledged) and its connector can cancel; otherwise annotate.
    CancelIfNotStarted,
}

/// Live rules act; shadow rules are evaluated and traced, their would-be
/// decision recorded, and nothing happens; review rules act, but the order
/// they open is a proposal that reaches the EAM only once a planner
/// approves it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    #[default]
    Live,
    Shadow,
    Review,
}

fn default_work_type() -> String {
    "corrective".into()
}
fn default_priority() -> PrioritySpec {
    PrioritySpec::Fixed(Priority::new(3).expect("3 is a valid priority"))
}

/// How a create action sets the order's priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PrioritySpec {
    Fixed(Priority),
    /// severity → criticality (or `"*"`) → priority.
    Matrix(std::collections::BTreeMap<Severity, std::collections::BTreeMap<String, Priority>>),
}

impl PrioritySpec {
    /// The priority for an event's severity and its asset's criticality;
    /// 3 when the matrix has no cell for them.
    pub fn resolve(&self, severity: Severity, criticality: Option<&str>) -> Priority {
        match self {
            Self::Fixed(p) => *p,
            Self::Matrix(m) => m
                .get(&severity)
                .and_then(|row| criticality.and_then(|c| row.get(c)).or_else(|| row.get("*")))
                .copied()
                .unwrap_or_else(|| Priority::new(3).expect("3 is a valid priority")),
        }
    }
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
    pub mode: RuleMode,
    /// Mode `review` only: a proposal nobody reviewed for this many hours
    /// ends `expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_after_hours: Option<u32>,
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
    /// `shadow`: evaluate and trace only, never act. `review`: orders
    /// open as proposals and reach the EAM once a planner approves them.
    #[serde(default)]
    pub mode: RuleMode,
    /// Mode `review` only (1 to 720): a proposal nobody reviewed for this
    /// many hours ends `expired`. Default: proposals wait indefinitely.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 720)]
    pub expire_after_hours: Option<u32>,
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
    #[serde(default)]
    pub mode: RuleMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after_hours: Option<u32>,
    pub when: Matchers,
    pub action: Action,
}
