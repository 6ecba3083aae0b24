//! The database, read directly (the service's own tables).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, QueryResult, Statement};

use crate::Res;
use crate::service::Replicas;

pub async fn count(db: &DatabaseConnection, sql: &str) -> Res<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await?
        .ok_or("COUNT returned no row")?;
    Ok(row.try_get::<i64>("", "n")?)
}

pub async fn rows(db: &DatabaseConnection, sql: &str) -> Res<Vec<QueryResult>> {
    Ok(db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await?)
}

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
    let (mut decided, mut created) = (0.0, 0.0);
    for r in &replicas.0 {
        let text = http.get(format!("{}/metrics", r.base)).send().await.ok()?.text().await.ok()?;
        for line in text.lines().filter(|l| l.starts_with("workbridge_events_received_total{")) {
            let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
            decided += value;
            if line.contains("outcome=\"created\"") {
                created += value;
            }
        }
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

pub async fn create_pg_database(admin_url: &str, name: &str) -> Res<String> {
    let admin = Database::connect(admin_url).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    admin.close().await?;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
    Ok(format!("{base}/{name}"))
}

pub async fn drop_pg_database(admin_url: &str, name: &str) -> Res<()> {
    let admin = Database::connect(admin_url).await?;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    admin.close().await?;
    Ok(())
}
