//! Inhibition, aware of OT data quality: while a data-quality event (STALE,
//! FLATLINE, DRIFT…) is raised on an instrument, process alerts that it
//! would explain are inhibited instead of opening corrective orders on
//! healthy equipment. Like Alertmanager's inhibit rules: a source matcher, a
//! target matcher, and the fields that must be equal.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::EventKind;

/// Fields an inhibit rule can compare: the event's tag, its asset, the
/// asset's parent (an instrument's parent is the equipment it measures), its
/// site and its code.
pub const FIELDS: [&str; 5] = ["tag", "asset", "parent", "site", "code"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    pub name: String,
    pub source: EventMatch,
    pub target: EventMatch,
    /// `field` (equal on both sides) or `source_field=target_field`, e.g.
    /// `parent=asset`: the instrument's parent is the alert's asset.
    pub equal: Vec<String>,
    /// A raised source without a clear stops inhibiting after this long.
    #[serde(default = "default_max_age")]
    pub max_age_hours: u32,
}

fn default_max_age() -> u32 {
    24
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventMatch {
    #[serde(default)]
    pub types: Vec<EventKind>,
    #[serde(default)]
    pub codes: Vec<String>,
}

impl EventMatch {
    pub fn matches(&self, kind: EventKind, code: &str) -> bool {
        (self.types.is_empty() || self.types.contains(&kind))
            && (self.codes.is_empty() || self.codes.iter().any(|c| c == code))
    }
}

/// One `equal` entry: (source field, target field).
pub fn parse_equal(entry: &str) -> Result<(&str, &str), String> {
    let (s, t) = entry.split_once('=').unwrap_or((entry, entry));
    let (s, t) = (s.trim(), t.trim());
    for f in [s, t] {
        if !FIELDS.contains(&f) {
            return Err(format!("{f:?} is not one of {FIELDS:?}"));
        }
    }
    Ok((s, t))
}

impl InhibitRule {
    pub fn validate(&self) -> Result<(), String> {
        if self.equal.is_empty() {
            return Err(format!("inhibit rule {}: equal must name at least one field", self.name));
        }
        for e in &self.equal {
            parse_equal(e).map_err(|m| format!("inhibit rule {}: equal: {m}", self.name))?;
        }
        Ok(())
    }

    /// The defaults: a data-quality problem on an asset inhibits process
    /// alerts and anomalies on that asset, and on the equipment an
    /// instrument belongs to.
    pub fn defaults() -> Vec<InhibitRule> {
        let source = EventMatch { types: vec![EventKind::DataQuality], codes: vec![] };
        let target = EventMatch { types: vec![EventKind::Alert, EventKind::Anomaly], codes: vec![] };
        vec![
            InhibitRule {
                name: "data-quality-on-the-asset".into(),
                source: source.clone(),
                target: target.clone(),
                equal: vec!["asset".into()],
                max_age_hours: 24,
            },
            InhibitRule {
                name: "data-quality-on-its-instrument".into(),
                source,
                target,
                equal: vec!["parent=asset".into()],
                max_age_hours: 24,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_entries_are_checked() {
        assert_eq!(parse_equal("asset").unwrap(), ("asset", "asset"));
        assert_eq!(parse_equal("parent = asset").unwrap(), ("parent", "asset"));
        assert!(parse_equal("colour").is_err());
        for r in InhibitRule::defaults() {
            r.validate().unwrap();
        }
    }
}
