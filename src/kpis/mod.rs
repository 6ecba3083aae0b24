//! KPIs (docs/spec.md §6), computed in the database with aggregate queries, one SQL
//! dialect per backend where they differ (epoch arithmetic).
//!
//! Percentiles use the nearest-rank method: the p-th percentile of n sorted
//! values is the value at rank ⌈p·n⌉ (1-based).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::OrderVerdict;
use crate::store::StoreError;

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// Orders whose first event is at or after this time (default: 30 days before `until`).
    pub since: Option<DateTime<Utc>>,
    /// … and before this time (default: now); must be after `since` (422 otherwise).
    pub until: Option<DateTime<Utc>>,
    pub site: Option<String>,
    pub asset_class: Option<String>,
    /// Rule id.
    pub rule: Option<String>,
    pub priority: Option<i32>,
    pub connector: Option<String>,
}

/// Durations in seconds.
#[derive(Debug, Default, Clone, PartialEq, Serialize, ToSchema)]
pub struct Stats {
    pub count: u64,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// Open orders whose age (since created) is at least `min_days` and under
/// `max_days` (no upper bound on the last bucket).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BacklogAge {
    pub min_days: u32,
    pub max_days: Option<u32>,
    pub orders: u64,
}

/// The age buckets of the backlog, in days: under 1, 1–3, 3–7, 7–28, 28 and over.
const BACKLOG_AGE_DAYS: [(u32, Option<u32>); 5] = [(0, Some(1)), (1, Some(3)), (3, Some(7)), (7, Some(28)), (28, None)];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlaCompliance {
    pub priority: i32,
    /// Completed by the due-by time.
    pub met: u64,
    /// Completed late, or open past the due-by time.
    pub missed: u64,
    pub compliance: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Kpis {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Orders in range (by first event time) matching the filters.
    pub orders: u64,
    /// Order created in the EAM − first event time.
    pub time_to_create: Stats,
    /// First reached acknowledged or a later state − first event time.
    pub time_to_acknowledge: Stats,
    /// Reached completed − first event time.
    pub time_to_complete: Stats,
    /// Orders that reached in progress or completed ÷ those plus cancelled
    /// or rejected; none when no planner decision yet.
    pub acceptance_rate: Option<f64>,
    /// Completed by their due-by time ÷ completed, or open past due.
    pub sla_compliance: Option<f64>,
    /// The same per priority (the targets are `[sla] due_hours`).
    pub sla_by_priority: Vec<SlaCompliance>,
    /// Events merged into an open order ÷ events that led to an order.
    pub dedup_savings: Option<f64>,
    /// Raised events that led to an order (new or merged) ÷ raised events
    /// (events received in range, matching `site`).
    pub automation_rate: Option<f64>,
    /// Mapped events ÷ events (received in range, matching `site`).
    pub mapping_coverage: Option<f64>,
    /// Orders open now, among those in range.
    pub backlog_open: u64,
    /// Age of the oldest open order, in seconds.
    pub backlog_oldest_age: Option<f64>,
    /// The open orders by age, in five buckets (their sum is `backlog_open`).
    pub backlog_by_age: Vec<BacklogAge>,
    /// The review before the EAM (orders opened by rules in `review` mode).
    pub review: ReviewKpis,
}

/// The review before the EAM, over the proposals in range (by first event
/// time) matching the filters. Proposals count nowhere else in `Kpis`
/// until approved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ReviewKpis {
    /// Orders opened as proposals.
    pub proposed: u64,
    pub approved: u64,
    pub rejected: u64,
    /// Not reviewed before their rule's `expire_after_hours`.
    pub expired: u64,
    /// Withdrawn by the clear of their alert before review.
    pub withdrawn: u64,
    /// Proposals waiting for review now.
    pub backlog: u64,
    /// approved ÷ (approved + rejected); none when nothing was reviewed.
    pub approval_rate: Option<f64>,
    /// Approved or rejected − proposed, in seconds (nearest rank).
    pub time_to_review: Stats,
}

/// Count, mean and nearest-rank percentiles of some durations (seconds).
fn stats_of(mut secs: Vec<f64>) -> Stats {
    if secs.is_empty() {
        return Stats::default();
    }
    secs.sort_by(f64::total_cmp);
    let n = secs.len() as u64;
    let at = |p: f64| Some(secs[(nearest_rank(p, n) - 1) as usize]);
    Stats { count: n, mean: Some(secs.iter().sum::<f64>() / n as f64), p50: at(0.5), p90: at(0.9), p99: at(0.99) }
}

#[derive(FromQueryResult)]
struct ProposalRow {
    review_outcome: Option<String>,
    status: String,
    proposed_at: Option<DateTime<Utc>>,
    reviewed_at: Option<DateTime<Utc>>,
}

/// The review KPIs of the proposals matching `q` in range.
async fn review_kpis<C: ConnectionTrait>(
    conn: &C,
    q: &KpiQuery,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<ReviewKpis, StoreError> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("SELECT w.review_outcome AS review_outcome, w.status AS status, w.proposed_at AS proposed_at, w.reviewed_at AS reviewed_at FROM work_orders w");
    q.any_order_filter(&mut sql, since, until);
    sql.push(" AND w.proposed_at IS NOT NULL");
    let rows = ProposalRow::find_by_statement(sql.statement()).all(conn).await?;
    let mut r = ReviewKpis { proposed: rows.len() as u64, ..Default::default() };
    let mut waits = vec![];
    for row in rows {
        let reviewed = match row.review_outcome.as_deref().and_then(crate::domain::ReviewAction::parse) {
            Some(crate::domain::ReviewAction::Approved) => {
                r.approved += 1;
                true
            }
            Some(crate::domain::ReviewAction::Rejected) => {
                r.rejected += 1;
                true
            }
            Some(crate::domain::ReviewAction::Expired) => {
                r.expired += 1;
                false
            }
            Some(crate::domain::ReviewAction::Withdrawn) => {
                r.withdrawn += 1;
                false
            }
            Some(crate::domain::ReviewAction::Proposed) | None => {
                r.backlog += u64::from(row.status == crate::domain::OrderStatus::Proposed.as_str());
                false
            }
        };
        if reviewed && let (Some(a), Some(b)) = (row.proposed_at, row.reviewed_at) {
            waits.push((b - a).num_milliseconds() as f64 / 1000.0);
        }
    }
    r.approval_rate = ratio(r.approved, r.approved + r.rejected);
    r.time_to_review = stats_of(waits);
    Ok(r)
}

/// Builds SQL with numbered parameters in the backend's style.
struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn new(backend: DbBackend) -> Self {
        Self { backend, text: String::new(), values: vec![] }
    }
    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    fn bind(&mut self, v: impl Into<Value>) -> &mut Self {
        self.values.push(v.into());
        let n = self.values.len();
        match self.backend {
            DbBackend::Postgres => self.text.push_str(&format!("${n}")),
            _ => self.text.push_str(&format!("?{n}")),
        }
        self
    }
    fn epoch(&self, expr: &str) -> String {
        match self.backend {
            DbBackend::Postgres => format!("EXTRACT(EPOCH FROM {expr})::float8"),
            _ => format!("(julianday({expr}) * 86400.0)"),
        }
    }
    fn statement(&self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text.clone(), self.values.clone())
    }
}

#[derive(FromQueryResult)]
struct CountMean {
    n: i64,
    mean: Option<f64>,
}

#[derive(FromQueryResult)]
struct One {
    v: Option<f64>,
}

#[derive(FromQueryResult)]
struct Num {
    n: i64,
}

impl KpiQuery {
    fn range(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let until = self.until.unwrap_or(now);
        (self.since.unwrap_or(until - chrono::Duration::days(30)), until)
    }

    /// `WHERE` over work_orders `w` for the range and filters: the orders
    /// that went the EAM's way (live ones, and proposals once approved).
    fn order_filter(&self, sql: &mut Sql, since: DateTime<Utc>, until: DateTime<Utc>) {
        self.any_order_filter(sql, since, until);
        sql.push(" AND (w.proposed_at IS NULL OR w.review_outcome = 'approved')");
    }

    /// `order_filter`, proposals included whatever became of them.
    fn any_order_filter(&self, sql: &mut Sql, since: DateTime<Utc>, until: DateTime<Utc>) {
        sql.push(" WHERE w.first_event_time >= ").bind(since).push(" AND w.first_event_time < ").bind(until);
        if let Some(s) = &self.site {
            sql.push(" AND w.site = ").bind(s.clone());
        }
        if let Some(r) = &self.rule {
            sql.push(" AND w.rule_id = ").bind(r.clone());
        }
        if let Some(p) = self.priority {
            sql.push(" AND w.priority = ").bind(p);
        }
        if let Some(c) = &self.connector {
            sql.push(" AND w.connector = ").bind(c.clone());
        }
        if let Some(c) = &self.asset_class {
            sql.push(" AND w.asset_id IN (SELECT a.id FROM assets a WHERE a.class = ").bind(c.clone()).push(")");
        }
    }
}

/// Nearest rank (1-based) of the p-th percentile among n values.
pub fn nearest_rank(p: f64, n: u64) -> u64 {
    ((p * n as f64).ceil() as u64).clamp(1, n.max(1))
}

async fn duration_stats<C: ConnectionTrait>(
    conn: &C,
    q: &KpiQuery,
    statuses: &[&str],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Stats, StoreError> {
    let backend = conn.get_database_backend();
    // The per-order durations, as a derived table.
    let derived = |sql: &mut Sql| {
        let e_at = sql.epoch("MIN(h.at)");
        let e_first = sql.epoch("w.first_event_time");
        sql.push(&format!("(SELECT w.id AS id, {e_at} - {e_first} AS secs FROM work_orders w JOIN status_history h ON h.work_order_id = w.id AND COALESCE(h.flag, '') <> 'stale' AND h.status IN ("));
        for (i, s) in statuses.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(s.to_string());
        }
        sql.push(")");
        q.order_filter(sql, since, until);
        sql.push(" GROUP BY w.id, w.first_event_time) d");
    };
    let mut sql = Sql::new(backend);
    sql.push("SELECT COUNT(*) AS n, AVG(d.secs) AS mean FROM ");
    derived(&mut sql);
    let cm = CountMean::find_by_statement(sql.statement()).one(conn).await?.map_or((0, None), |r| (r.n, r.mean));
    let n = cm.0.max(0) as u64;
    let mut stats = Stats { count: n, mean: cm.1, ..Default::default() };
    if n == 0 {
        return Ok(stats);
    }
    for (p, slot) in [(0.5, &mut stats.p50), (0.9, &mut stats.p90), (0.99, &mut stats.p99)] {
        let mut sql = Sql::new(backend);
        sql.push("SELECT d.secs AS v FROM ");
        derived(&mut sql);
        sql.push(" ORDER BY d.secs LIMIT 1 OFFSET ").bind((nearest_rank(p, n) - 1) as i64);
        *slot = One::find_by_statement(sql.statement()).one(conn).await?.and_then(|r| r.v);
    }
    Ok(stats)
}

async fn count<C: ConnectionTrait>(conn: &C, sql: &Sql) -> Result<u64, StoreError> {
    Ok(Num::find_by_statement(sql.statement()).one(conn).await?.map_or(0, |r| r.n.max(0) as u64))
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

pub async fn compute<C: ConnectionTrait>(conn: &C, q: &KpiQuery, now: DateTime<Utc>) -> Result<Kpis, StoreError> {
    let backend = conn.get_database_backend();
    let (since, until) = q.range(now);
    let orders_where = |extra: &str| {
        let mut sql = Sql::new(backend);
        sql.push("SELECT COUNT(*) AS n FROM work_orders w");
        q.order_filter(&mut sql, since, until);
        sql.push(extra);
        sql
    };
    let orders = count(conn, &orders_where("")).await?;
    let reached = |statuses: &str| {
        format!(
            " AND EXISTS (SELECT 1 FROM status_history h WHERE h.work_order_id = w.id AND COALESCE(h.flag, '') <> 'stale' AND h.status IN ({statuses}))"
        )
    };
    let accepted = count(conn, &orders_where(&reached("'in_progress', 'completed'"))).await?;
    let declined = count(
        conn,
        &orders_where(&format!(
            "{} AND NOT EXISTS (SELECT 1 FROM status_history h WHERE h.work_order_id = w.id AND COALESCE(h.flag, '') <> 'stale' AND h.status IN ('in_progress', 'completed'))",
            reached("'cancelled', 'rejected'")
        )),
    )
    .await?;

    // SLA: completed by due-by, against completed plus open past due.
    let mut met_n = 0;
    let mut missed_n = 0;
    let mut sla_by_priority = vec![];
    for p in 1..=5 {
        if q.priority.is_some_and(|qp| qp != p) {
            continue;
        }
        let by_priority = KpiQuery { priority: Some(p), ..q.clone() };
        let w = |extra: &str| {
            let mut sql = Sql::new(backend);
            sql.push("SELECT COUNT(*) AS n FROM work_orders w");
            by_priority.order_filter(&mut sql, since, until);
            sql.push(extra);
            sql
        };
        let completed = " AND w.due_by IS NOT NULL AND EXISTS (SELECT 1 FROM status_history h WHERE h.work_order_id = w.id AND COALESCE(h.flag, '') <> 'stale' AND h.status = 'completed'";
        let met = count(conn, &w(&format!("{completed} AND h.at <= w.due_by)"))).await?;
        let done = count(conn, &w(&format!("{completed})"))).await?;
        let mut overdue = w(" AND w.open_key IS NOT NULL AND w.due_by < ");
        overdue.bind(now);
        let missed = done - met + count(conn, &overdue).await?;
        met_n += met;
        missed_n += missed;
        if met + missed > 0 {
            sla_by_priority.push(SlaCompliance { priority: p, met, missed, compliance: ratio(met, met + missed) });
        }
    }

    let backlog_open = count(conn, &orders_where(" AND w.open_key IS NOT NULL")).await?;
    let mut backlog_by_age = Vec::with_capacity(BACKLOG_AGE_DAYS.len());
    for (min_days, max_days) in BACKLOG_AGE_DAYS {
        let mut sql = orders_where(" AND w.open_key IS NOT NULL");
        if min_days > 0 {
            sql.push(" AND w.created_at <= ").bind(now - chrono::Duration::days(min_days.into()));
        }
        if let Some(max) = max_days {
            sql.push(" AND w.created_at > ").bind(now - chrono::Duration::days(max.into()));
        }
        backlog_by_age.push(BacklogAge { min_days, max_days, orders: count(conn, &sql).await? });
    }
    let mut oldest = Sql::new(backend);
    let e_now = match backend {
        DbBackend::Postgres => "EXTRACT(EPOCH FROM $1::timestamptz)::float8".to_owned(),
        _ => "(julianday(?1) * 86400.0)".to_owned(),
    };
    oldest.values.push(now.into());
    let e_created = oldest.epoch("MIN(w.created_at)");
    oldest.push(&format!("SELECT {e_now} - {e_created} AS v FROM work_orders w"));
    q.order_filter(&mut oldest, since, until);
    oldest.push(" AND w.open_key IS NOT NULL");
    let backlog_oldest_age = if backlog_open > 0 {
        One::find_by_statement(oldest.statement()).one(conn).await?.and_then(|r| r.v)
    } else {
        None
    };

    // Event-based rates: events received in range (site filter only; the
    // others are order properties).
    let events_where = |extra: &str| {
        let mut sql = Sql::new(backend);
        sql.push("SELECT COUNT(*) AS n FROM events e WHERE e.received_at >= ")
            .bind(since)
            .push(" AND e.received_at < ")
            .bind(until);
        if let Some(s) = &q.site {
            sql.push(" AND e.site = ").bind(s.clone());
        }
        sql.push(extra);
        sql
    };
    let all_events = count(conn, &events_where("")).await?;
    let mapped = count(conn, &events_where(" AND e.outcome <> 'unmapped'")).await?;
    let raised = count(conn, &events_where(" AND e.state = 'raised'")).await?;
    let automated =
        count(conn, &events_where(" AND e.state = 'raised' AND e.outcome IN ('created', 'merged')")).await?;
    let merged = count(conn, &events_where(" AND e.outcome = 'merged'")).await?;

    Ok(Kpis {
        since,
        until,
        orders,
        time_to_create: duration_stats(
            conn,
            q,
            &["created", "acknowledged", "in_progress", "completed", "closed"],
            since,
            until,
        )
        .await?,
        time_to_acknowledge: duration_stats(
            conn,
            q,
            &["acknowledged", "in_progress", "completed", "closed"],
            since,
            until,
        )
        .await?,
        time_to_complete: duration_stats(conn, q, &["completed"], since, until).await?,
        acceptance_rate: ratio(accepted, accepted + declined),
        sla_compliance: ratio(met_n, met_n + missed_n),
        sla_by_priority,
        dedup_savings: ratio(merged, automated),
        automation_rate: ratio(automated, raised),
        mapping_coverage: ratio(mapped, all_events),
        backlog_open,
        backlog_oldest_age,
        backlog_by_age,
        review: review_kpis(conn, q, since, until).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(0.5, 4), 2);
        assert_eq!(nearest_rank(0.9, 4), 4);
        assert_eq!(nearest_rank(0.99, 100), 99);
        assert_eq!(nearest_rank(0.5, 1), 1);
        assert_eq!(nearest_rank(0.5, 5), 3);
    }
}

/// Per rule and version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleKpis {
    pub rule_id: String,
    pub rule_version: i32,
    /// Events this rule version decided (received in range).
    pub events_matched: u64,
    pub orders_created: u64,
    pub events_merged: u64,
    /// Its orders (first event in range) that reached in progress or completed.
    pub orders_accepted: u64,
    pub orders_rejected: u64,
    pub orders_cancelled: u64,
    /// useful ÷ (useful + false_alarm), with each order judged by
    /// `domain::order_verdict` (the README's definition): the rule's precision.
    pub precision: Option<f64>,
    /// Median time to acknowledge, in seconds.
    pub median_time_to_acknowledge: Option<f64>,
    pub feedback_useful: u64,
    pub feedback_false_alarm: u64,
    /// Its orders (first event in range) opened as proposals (mode review).
    pub proposals: u64,
    /// … of which approved.
    pub approved: u64,
    /// approved ÷ (approved + rejected in review); none when none reviewed.
    pub approval_rate: Option<f64>,
    /// Its orders (first event in range, proposals included) by verdict.
    pub useful: u64,
    pub false_alarm: u64,
    pub undecided: u64,
}

#[derive(FromQueryResult)]
struct RuleOrder {
    id: String,
    review_outcome: Option<String>,
    proposed_at: Option<DateTime<Utc>>,
}

#[derive(FromQueryResult)]
struct RuleKey {
    rule_id: String,
    rule_version: i32,
}

pub async fn by_rule<C: ConnectionTrait>(
    conn: &C,
    q: &KpiQuery,
    now: DateTime<Utc>,
) -> Result<Vec<RuleKpis>, StoreError> {
    let backend = conn.get_database_backend();
    let (since, until) = q.range(now);
    let mut keys = Sql::new(backend);
    keys.push("SELECT DISTINCT e.rule_id AS rule_id, e.rule_version AS rule_version FROM events e WHERE e.rule_id IS NOT NULL AND e.received_at >= ")
        .bind(since)
        .push(" AND e.received_at < ")
        .bind(until);
    if let Some(r) = &q.rule {
        keys.push(" AND e.rule_id = ").bind(r.clone());
    }
    keys.push(" ORDER BY rule_id, rule_version");
    let mut out = vec![];
    for key in RuleKey::find_by_statement(keys.statement()).all(conn).await? {
        let events = |extra: &str| {
            let mut sql = Sql::new(backend);
            sql.push("SELECT COUNT(*) AS n FROM events e WHERE e.rule_id = ")
                .bind(key.rule_id.clone())
                .push(" AND e.rule_version = ")
                .bind(key.rule_version)
                .push(" AND e.received_at >= ")
                .bind(since)
                .push(" AND e.received_at < ")
                .bind(until);
            if let Some(s) = &q.site {
                sql.push(" AND e.site = ").bind(s.clone());
            }
            sql.push(extra);
            sql
        };
        let scoped = KpiQuery { rule: Some(key.rule_id.clone()), ..q.clone() };
        let orders = |extra: String| {
            let mut sql = Sql::new(backend);
            sql.push("SELECT COUNT(*) AS n FROM work_orders w");
            scoped.order_filter(&mut sql, since, until);
            sql.push(" AND w.rule_version = ").bind(key.rule_version);
            sql.push(&extra);
            sql
        };
        let reached = |s: &str| {
            format!(
                " AND EXISTS (SELECT 1 FROM status_history h WHERE h.work_order_id = w.id AND COALESCE(h.flag, '') <> 'stale' AND h.status IN ({s}))"
            )
        };
        let not_accepted = " AND NOT EXISTS (SELECT 1 FROM status_history h WHERE h.work_order_id = w.id AND COALESCE(h.flag, '') <> 'stale' AND h.status IN ('in_progress', 'completed'))";
        let accepted = count(conn, &orders(reached("'in_progress', 'completed'"))).await?;
        let rejected = count(conn, &orders(format!("{}{not_accepted}", reached("'rejected'")))).await?;
        let cancelled = count(conn, &orders(format!("{}{not_accepted}", reached("'cancelled'")))).await?;
        let verdict = |v: &str| {
            orders(format!(" AND EXISTS (SELECT 1 FROM feedback f WHERE f.work_order_id = w.id AND f.verdict = '{v}')"))
        };
        let ack = duration_stats(conn, &scoped, &["acknowledged", "in_progress", "completed", "closed"], since, until)
            .await?;
        // Every order of this version, proposals included, judged once.
        let mut all = Sql::new(backend);
        all.push(
            "SELECT w.id AS id, w.review_outcome AS review_outcome, w.proposed_at AS proposed_at FROM work_orders w",
        );
        scoped.any_order_filter(&mut all, since, until);
        all.push(" AND w.rule_version = ").bind(key.rule_version);
        let rule_orders = RuleOrder::find_by_statement(all.statement()).all(conn).await?;
        let ids: Vec<&str> = rule_orders.iter().map(|o| o.id.as_str()).collect();
        let verdicts = crate::store::feedback::verdicts(conn, &ids).await?;
        let tally = |v: OrderVerdict| verdicts.values().filter(|x| **x == v).count() as u64;
        let (useful, false_alarm) = (tally(OrderVerdict::Useful), tally(OrderVerdict::FalseAlarm));
        let outcome = |a: &str| rule_orders.iter().filter(|o| o.review_outcome.as_deref() == Some(a)).count() as u64;
        let (approved, rejected_in_review) = (outcome("approved"), outcome("rejected"));
        out.push(RuleKpis {
            events_matched: count(conn, &events("")).await?,
            orders_created: count(conn, &events(" AND e.outcome = 'created'")).await?,
            events_merged: count(conn, &events(" AND e.outcome = 'merged'")).await?,
            orders_accepted: accepted,
            orders_rejected: rejected,
            orders_cancelled: cancelled,
            precision: ratio(useful, useful + false_alarm),
            median_time_to_acknowledge: ack.p50,
            feedback_useful: count(conn, &verdict("useful")).await?,
            feedback_false_alarm: count(conn, &verdict("false_alarm")).await?,
            proposals: rule_orders.iter().filter(|o| o.proposed_at.is_some()).count() as u64,
            approved,
            approval_rate: ratio(approved, approved + rejected_in_review),
            useful,
            false_alarm,
            undecided: verdicts.len() as u64 - useful - false_alarm,
            rule_id: key.rule_id,
            rule_version: key.rule_version,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    Day,
    Week,
}

/// A bucket: `[start, end)`.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// Most buckets one time series may have.
pub const MAX_BUCKETS: usize = 400;

/// Bucket boundaries covering `[since, until)`, aligned in time zone `tz`
/// (a plant's day is its local day; weeks start on Monday), DST-aware.
pub fn buckets(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
    tz: chrono_tz::Tz,
) -> Result<Vec<Span>, String> {
    use chrono::{Datelike, NaiveTime, TimeZone, Timelike};
    let local = since.with_timezone(&tz).naive_local();
    let mut start = match bucket {
        Bucket::Hour => local.date().and_time(NaiveTime::from_hms_opt(local.hour(), 0, 0).unwrap_or_default()),
        Bucket::Day => local.date().and_time(NaiveTime::MIN),
        Bucket::Week => (local.date() - chrono::Days::new(u64::from(local.weekday().num_days_from_monday())))
            .and_time(NaiveTime::MIN),
    };
    let to_utc = |n: chrono::NaiveDateTime| {
        tz.from_local_datetime(&n)
            .earliest()
            .or_else(|| tz.from_local_datetime(&(n + chrono::Duration::hours(1))).earliest())
            .map(|d| d.with_timezone(&Utc))
    };
    let mut out = vec![];
    loop {
        let next = match bucket {
            Bucket::Hour => start + chrono::Duration::hours(1),
            Bucket::Day => start + chrono::Days::new(1),
            Bucket::Week => start + chrono::Days::new(7),
        };
        let (Some(a), Some(b)) = (to_utc(start), to_utc(next)) else {
            return Err("a bucket boundary does not exist in that time zone".into());
        };
        if a >= until {
            break;
        }
        if b > a {
            out.push((a, b));
        }
        if out.len() > MAX_BUCKETS {
            return Err(format!("more than {MAX_BUCKETS} buckets: use a larger bucket or a shorter range"));
        }
        start = next;
    }
    Ok(out)
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    #[test]
    fn days_follow_the_plant_time_zone_and_dst() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let auckland: chrono_tz::Tz = "Pacific/Auckland".parse().unwrap();
        let b = buckets(t("2026-11-24T00:00:00Z"), t("2026-11-25T00:00:00Z"), Bucket::Day, auckland).unwrap();
        assert_eq!(b[0], (t("2026-11-23T11:00:00Z"), t("2026-11-24T11:00:00Z")));
        assert_eq!(b.len(), 2);
        // Europe/Berlin leaves summer time on 2026-10-25: that day has 25 hours.
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let b = buckets(t("2026-10-25T00:00:00Z"), t("2026-10-25T12:00:00Z"), Bucket::Day, berlin).unwrap();
        assert_eq!(b[0].1 - b[0].0, chrono::Duration::hours(25));
        // weeks start on Monday (2026-11-23 is a Monday)
        let b = buckets(t("2026-11-25T12:00:00Z"), t("2026-11-26T00:00:00Z"), Bucket::Week, chrono_tz::UTC).unwrap();
        assert_eq!(b[0].0, t("2026-11-23T00:00:00Z"));
        assert!(buckets(t("2020-01-01T00:00:00Z"), t("2026-01-01T00:00:00Z"), Bucket::Hour, chrono_tz::UTC).is_err());
    }
}
