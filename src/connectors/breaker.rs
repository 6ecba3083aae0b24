//! A circuit breaker per connector: after `threshold` consecutive failures
//! (transient or unknown outcomes) deliveries through that connector stop
//! for `open_for`, then one probe is let through; its success closes the
//! circuit, its failure opens it again. State is per replica, in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
struct Circuit {
    failures: u32,
    open_until: Option<DateTime<Utc>>,
    probing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Allowed,
    /// Open: try again at this time.
    Rejected(DateTime<Utc>),
}

#[derive(Debug)]
pub struct Breakers {
    threshold: u32,
    open_for: Duration,
    circuits: Mutex<HashMap<String, Circuit>>,
}

impl Breakers {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self { threshold: threshold.max(1), open_for, circuits: Mutex::default() }
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Circuit) -> T) -> T {
        let mut map = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let c = map.entry(name.to_owned()).or_insert(Circuit { failures: 0, open_until: None, probing: false });
        f(c)
    }

    /// May a delivery through `name` go now?
    pub fn permit(&self, name: &str, now: DateTime<Utc>) -> Permit {
        self.with(name, |c| match c.open_until {
            None => Permit::Allowed,
            Some(until) if now < until => Permit::Rejected(until),
            // Half-open: one probe at a time.
            Some(_) if c.probing => Permit::Rejected(now + Duration::seconds(1)),
            Some(_) => {
                c.probing = true;
                Permit::Allowed
            }
        })
    }

    /// Records the outcome of a delivery that was permitted.
    pub fn record(&self, name: &str, success: bool, now: DateTime<Utc>) {
        let (threshold, open_for) = (self.threshold, self.open_for);
        self.with(name, |c| {
            if success {
                *c = Circuit { failures: 0, open_until: None, probing: false };
                return;
            }
            c.failures += 1;
            if c.probing || c.failures >= threshold {
                c.open_until = Some(now + open_for);
                c.probing = false;
                tracing::warn!(connector = name, failures = c.failures, "circuit opened");
            }
        })
    }

    pub fn states(&self, now: DateTime<Utc>) -> Vec<(String, CircuitState)> {
        let map = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .map(|(name, c)| {
                let state = match c.open_until {
                    None => CircuitState::Closed,
                    Some(until) if now < until => CircuitState::Open,
                    Some(_) => CircuitState::HalfOpen,
                };
                (name.clone(), state)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_and_closes() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let b = Breakers::new(3, Duration::seconds(30));
        for _ in 0..2 {
            assert_eq!(b.permit("eam", t), Permit::Allowed);
            b.record("eam", false, t);
        }
        assert_eq!(b.permit("eam", t), Permit::Allowed);
        b.record("eam", false, t);
        assert_eq!(b.permit("eam", t + Duration::seconds(10)), Permit::Rejected(t + Duration::seconds(30)));
        assert_eq!(b.states(t), [("eam".to_owned(), CircuitState::Open)]);
        // half-open: one probe; a second caller waits
        let later = t + Duration::seconds(31);
        assert_eq!(b.permit("eam", later), Permit::Allowed);
        assert!(matches!(b.permit("eam", later), Permit::Rejected(_)));
        // the probe fails: open again
        b.record("eam", false, later);
        assert!(matches!(b.permit("eam", later + Duration::seconds(1)), Permit::Rejected(_)));
        // the next probe succeeds: closed
        let again = later + Duration::seconds(31);
        assert_eq!(b.permit("eam", again), Permit::Allowed);
        b.record("eam", true, again);
        assert_eq!(b.states(again), [("eam".to_owned(), CircuitState::Closed)]);
        // other connectors are independent
        assert_eq!(b.permit("sandbox", t), Permit::Allowed);
    }
}
