//! The database, read directly (the service's own tables).

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, QueryResult};

use crate::Res;
use crate::service::Replicas;
use crate::testkit::{self, count};

/// A timestamp column as µs since the epoch (SQLite keeps them as text).
pub fn timestamp_us(row: &QueryResult, col: &str) -> Res<i64> {
    if let Ok(t) = row.try_get::<DateTime<Utc>>("", col) {
        return Ok(t.timestamp_micros());
    }
    let s: String = row.try_get("", col)?;
    let t = DateTime::parse_from_rfc3339(&s)
        .or_else(|_| DateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map_err(|e| format!("{col} {s:?}: {e}"))?;
    Ok(t.timestamp_micros())
}

/// Events decided and orders opened, summed over the replicas' `/metrics`
/// (`workbridge_events_received_total`, counted after each commit). Polling
/// these rather than the tables keeps the tool's own queries from loading
/// the database during the run.
pub async fn decided_by_metrics(http: &reqwest::Client, replicas: &Replicas) -> Option<(i64, i64)> {
    const FAMILY: &str = "workbridge_events_received_total{";
    let (mut decided, mut created) = (0.0, 0.0);
    for r in &replicas.0 {
        let text = http.get(format!("{}/metrics", r.base)).send().await.ok()?.text().await.ok()?;
        decided += testkit::metric_sum(&text, FAMILY, "");
        created += testkit::metric_sum(&text, FAMILY, "outcome=\"created\"");
    }
    Some((decided as i64, created as i64))
}

/// Deliveries still to make, and those that failed for good (indexed).
pub async fn outbox_state(db: &DatabaseConnection) -> Res<(i64, i64)> {
    Ok((
        count(db, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'").await?,
        count(db, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'failed'").await?,
    ))
}
