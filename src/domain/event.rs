use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// What the trusted data layer reports (CloudEvents `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventKind {
    /// `tdl.alert`: a limit or threshold alarm.
    #[serde(rename = "tdl.alert")]
    Alert,
    /// `tdl.anomaly`: a model score.
    #[serde(rename = "tdl.anomaly")]
    Anomaly,
    /// `tdl.data_quality`: the sensor itself misbehaves.
    #[serde(rename = "tdl.data_quality")]
    DataQuality,
}

impl EventKind {
    pub const ALL: [EventKind; 3] = [Self::Alert, Self::Anomaly, Self::DataQuality];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "tdl.alert",
            Self::Anomaly => "tdl.anomaly",
            Self::DataQuality => "tdl.data_quality",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Raised,
    Cleared,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Cleared => "cleared",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "raised" => Some(Self::Raised),
            "cleared" => Some(Self::Cleared),
            _ => None,
        }
    }
}

/// Ordered from least to most severe, so `>=` means "at least".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Minor,
    Major,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [Self::Info, Self::Warning, Self::Minor, Self::Major, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Minor => "minor",
            Self::Major => "major",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `data.asset` of an event: the producer's guess at the asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssetHint {
    pub id: String,
    pub site: Option<String>,
}

/// A validated inbound event. Built only by `domain::cloudevent`.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    pub id: String,
    pub source: String,
    pub kind: EventKind,
    pub time: Option<DateTime<Utc>>,
    pub subject: Option<String>,
    pub state: AlertState,
    pub code: String,
    pub severity: Severity,
    pub message: Option<String>,
    pub asset_hint: Option<AssetHint>,
    /// The `data` object as sent, with unknown fields kept.
    pub data: serde_json::Value,
    /// The whole CloudEvent in structured JSON form, as stored and shown.
    pub cloudevent: serde_json::Value,
}

/// What the decision trace says of an event the producer sent without `time`.
pub const TIME_RECEIVED: &str = "the producer sent no time: the time workbridge received the event is used";

impl InboundEvent {
    /// Whether the producer sent `time` (the CloudEvent is kept as sent).
    pub fn time_from_producer(&self) -> bool {
        self.cloudevent.get("time").is_some()
    }
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// No asset in the registry matches it: stored and counted, no order.
    Unmapped,
    /// Mapped, but no enabled rule matches it.
    NoMatch,
    /// A rule with the `ignore` action matched.
    Ignored,
    /// It opened a new work order.
    Created,
    /// It was merged into an open work order with the same dedup key.
    Merged,
    /// A `cleared` event: recorded on the open order, if any.
    Cleared,
    /// A rule matched, but a maintenance window, shelving or a cooldown holds it back.
    Suppressed,
    /// A rule matched, but not yet often or long enough (debounce).
    Debounced,
    /// A raised data-quality event explains it (inhibition): no order.
    Inhibited,
}

impl EventOutcome {
    pub const ALL: [EventOutcome; 9] = [
        Self::Unmapped,
        Self::NoMatch,
        Self::Ignored,
        Self::Created,
        Self::Merged,
        Self::Cleared,
        Self::Suppressed,
        Self::Debounced,
        Self::Inhibited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unmapped => "unmapped",
            Self::NoMatch => "no_match",
            Self::Ignored => "ignored",
            Self::Created => "created",
            Self::Merged => "merged",
            Self::Cleared => "cleared",
            Self::Suppressed => "suppressed",
            Self::Debounced => "debounced",
            Self::Inhibited => "inhibited",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What rules and templates see of an event: its attributes, its `data`,
/// and the common `data` fields at the top. Borrowed, so that a rule's CEL
/// input is serialized straight from the event, without a JSON copy first.
#[derive(Serialize)]
pub struct EventView<'a> {
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    subject: Option<&'a str>,
    time: Option<String>,
    state: &'a str,
    code: &'a str,
    severity: &'a str,
    message: Option<&'a str>,
    data: &'a Value,
    value: Option<&'a Value>,
    unit: Option<&'a Value>,
    threshold: Option<&'a Value>,
    score: Option<&'a Value>,
    context: Option<&'a Value>,
}

impl<'a> EventView<'a> {
    pub fn of(e: &'a InboundEvent) -> Self {
        Self {
            id: &e.id,
            source: &e.source,
            kind: e.kind.as_str(),
            subject: e.subject.as_deref(),
            time: e.time.map(|t| t.to_rfc3339()),
            state: e.state.as_str(),
            code: &e.code,
            severity: e.severity.as_str(),
            message: e.message.as_deref(),
            data: &e.data,
            value: e.data.get("value"),
            unit: e.data.get("unit"),
            threshold: e.data.get("threshold"),
            score: e.data.get("score"),
            context: e.data.get("context"),
        }
    }

    /// The event's `data.context` (what conditions call `context`).
    pub fn context(&self) -> Option<&'a Value> {
        self.context
    }
}

/// [`EventView`] as a JSON document.
pub fn event_context(e: &InboundEvent) -> Value {
    serde_json::to_value(EventView::of(e)).unwrap_or_default()
}
