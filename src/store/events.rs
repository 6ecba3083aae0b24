//! Stored events: one row per (source, id), with what became of it.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::entities::events;
use super::{Page, PageRequest, StoreError, corrupt, filtered, paged};
use crate::domain::glob::TagGlob;
use crate::domain::{EventOutcome, InboundEvent};

/// An event as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventRecord {
    /// workbridge's id of the stored event.
    pub id: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `id`.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub state: String,
    pub code: String,
    pub severity: String,
    pub site: Option<String>,
    /// The asset it was mapped to (none when unmapped).
    pub asset_id: Option<String>,
    /// hint, tag or pattern.
    pub mapped_by: Option<String>,
    pub outcome: EventOutcome,
    pub rule_id: Option<String>,
    pub rule_version: Option<i32>,
    pub work_order_id: Option<String>,
    /// How the decision was reached.
    pub trace: serde_json::Value,
    /// The CloudEvent as received, in structured form.
    pub cloudevent: serde_json::Value,
}

fn record(m: events::Model) -> Result<EventRecord, StoreError> {
    let outcome = EventOutcome::parse(&m.outcome).ok_or_else(|| corrupt("event outcome", &m.outcome))?;
    Ok(EventRecord {
        id: m.id,
        source: m.source,
        event_id: m.ce_id,
        kind: m.kind,
        subject: m.subject,
        time: m.event_time,
        received_at: m.received_at,
        state: m.state,
        code: m.code,
        severity: m.severity,
        site: m.site,
        asset_id: m.asset_id,
        mapped_by: m.mapped_by,
        outcome,
        rule_id: m.rule_id,
        rule_version: m.rule_version,
        work_order_id: m.work_order_id,
        trace: m.trace,
        cloudevent: m.payload,
    })
}

/// The decided fields of an event row.
#[derive(Debug, Clone)]
pub struct Decided {
    pub site: Option<String>,
    pub asset_id: Option<String>,
    pub mapped_by: Option<&'static str>,
    pub outcome: EventOutcome,
    pub rule_id: Option<String>,
    pub rule_version: Option<i32>,
    pub work_order_id: Option<String>,
    pub dedup_key: Option<String>,
    pub trace: serde_json::Value,
}

fn row(id: String, event: &InboundEvent, decided: Decided, received_at: DateTime<Utc>) -> events::Model {
    events::Model {
        id,
        source: event.source.clone(),
        ce_id: event.id.clone(),
        kind: event.kind.as_str().to_owned(),
        subject: event.subject.clone(),
        event_time: event.time,
        received_at,
        state: event.state.as_str().to_owned(),
        code: event.code.clone(),
        severity: event.severity.as_str().to_owned(),
        site: decided.site,
        asset_id: decided.asset_id,
        mapped_by: decided.mapped_by.map(str::to_owned),
        outcome: decided.outcome.as_str().to_owned(),
        rule_id: decided.rule_id,
        rule_version: decided.rule_version,
        work_order_id: decided.work_order_id,
        trace: decided.trace,
        payload: event.cloudevent.clone(),
        dedup_key: decided.dedup_key,
    }
}

fn unless_stored() -> OnConflict {
    OnConflict::columns([events::Column::Source, events::Column::CeId]).do_nothing().to_owned()
}

/// Inserts the event with its decision; `false` when (source, id) is
/// already stored, in which case nothing was written.
pub async fn insert_if_new<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    event: &InboundEvent,
    decided: Decided,
    received_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let rows = events::Entity::insert(super::new_row(row(id.to_owned(), event, decided, received_at)))
        .on_conflict(unless_stored())
        .exec_without_returning(conn)
        .await?;
    Ok(rows == 1)
}

/// Inserts decided events in one statement (`store::insert_rows`);
/// `false` when one of them is stored already (another replica took it
/// meanwhile): the caller then rolls back.
pub async fn insert_many<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<(String, &InboundEvent, Decided)>,
    received_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let want = rows.len() as u64;
    let rows: Vec<events::Model> = rows.into_iter().map(|(id, e, d)| row(id, e, d, received_at)).collect();
    let unique = [events::Column::Source, events::Column::CeId];
    Ok(super::insert_rows::<events::Entity, _>(conn, rows, Some(&unique)).await? == want)
}

/// Replaces the decision of a stored event (a held alert decided again by
/// its timer, or an event re-decided by a job).
pub async fn redecide<C: ConnectionTrait>(conn: &C, id: &str, decided: Decided) -> Result<(), StoreError> {
    use sea_orm::sea_query::Expr;
    events::Entity::update_many()
        .col_expr(events::Column::Site, Expr::value(decided.site))
        .col_expr(events::Column::AssetId, Expr::value(decided.asset_id))
        .col_expr(events::Column::MappedBy, Expr::value(decided.mapped_by.map(str::to_owned)))
        .col_expr(events::Column::Outcome, Expr::value(decided.outcome.as_str()))
        .col_expr(events::Column::RuleId, Expr::value(decided.rule_id))
        .col_expr(events::Column::RuleVersion, Expr::value(decided.rule_version))
        .col_expr(events::Column::WorkOrderId, Expr::value(decided.work_order_id))
        .col_expr(events::Column::DedupKey, Expr::value(decided.dedup_key))
        .col_expr(events::Column::Trace, Expr::value(decided.trace))
        .filter(events::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Replaces the decision of a stored event if it still has outcome `from`
/// and no order (a re-decision: another job may have decided it since it
/// was read); `false` when nothing was written.
pub async fn redecide_from<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    from: EventOutcome,
    decided: Decided,
) -> Result<bool, StoreError> {
    use sea_orm::sea_query::Expr;
    let rows = events::Entity::update_many()
        .col_expr(events::Column::Site, Expr::value(decided.site))
        .col_expr(events::Column::AssetId, Expr::value(decided.asset_id))
        .col_expr(events::Column::MappedBy, Expr::value(decided.mapped_by.map(str::to_owned)))
        .col_expr(events::Column::Outcome, Expr::value(decided.outcome.as_str()))
        .col_expr(events::Column::RuleId, Expr::value(decided.rule_id))
        .col_expr(events::Column::RuleVersion, Expr::value(decided.rule_version))
        .col_expr(events::Column::WorkOrderId, Expr::value(decided.work_order_id))
        .col_expr(events::Column::DedupKey, Expr::value(decided.dedup_key))
        .col_expr(events::Column::Trace, Expr::value(decided.trace))
        .filter(events::Column::Id.eq(id))
        .filter(events::Column::Outcome.eq(from.as_str()))
        .filter(events::Column::WorkOrderId.is_null())
        .exec(conn)
        .await?
        .rows_affected;
    Ok(rows == 1)
}

/// Replaces the trace of a stored event (what its timer found).
pub async fn set_trace<C: ConnectionTrait>(conn: &C, id: &str, trace: serde_json::Value) -> Result<(), StoreError> {
    use sea_orm::sea_query::Expr;
    events::Entity::update_many()
        .col_expr(events::Column::Trace, Expr::value(trace))
        .filter(events::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The stored event with this (source, id), if any.
pub async fn find<C: ConnectionTrait>(conn: &C, source: &str, ce_id: &str) -> Result<Option<EventRecord>, StoreError> {
    events::Entity::find()
        .filter(events::Column::Source.eq(source))
        .filter(events::Column::CeId.eq(ce_id))
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// The positions in `keys` (source, CloudEvents id) of the events stored
/// already: one query per source (a batch usually has one).
pub async fn existing<C: ConnectionTrait>(
    conn: &C,
    keys: &[(&str, &str)],
) -> Result<std::collections::HashSet<usize>, StoreError> {
    // One probe of the unique index per listed id (a subquery per row is
    // never flattened into a join), whatever the statistics say: 1 ms a
    // batch of 128 on PostgreSQL. Row values, `(source, ce_id) IN ((…), …)`,
    // became a bitmap OR of one index scan per pair rechecked against every
    // pair (26 ms); `source = $1 AND ce_id IN (…)` and a join with the ids
    // read every event of the source when the statistics were older than
    // the table. (VALUES columns are `column1` on both databases.)
    let mut by_source: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (source, id) in keys {
        by_source.entry(*source).or_default().push(*id);
    }
    let backend = conn.get_database_backend();
    let mut stored: std::collections::HashSet<(String, String)> = Default::default();
    for (source, ids) in by_source {
        for chunk in ids.chunks(1000) {
            let sql = format!(
                "SELECT k.column1 AS ce_id FROM (VALUES {}) AS k \
                 WHERE (SELECT 1 FROM events e WHERE e.source = {} AND e.ce_id = k.column1) IS NOT NULL",
                super::values_rows(backend, 2, chunk.len()),
                super::placeholder(backend, 1)
            );
            let mut binds: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() + 1);
            binds.push(source.into());
            binds.extend(chunk.iter().map(|id| sea_orm::Value::from(*id)));
            let rows = conn.query_all_raw(sea_orm::Statement::from_sql_and_values(backend, sql, binds)).await?;
            for row in rows {
                stored.insert((source.to_owned(), row.try_get::<String>("", "ce_id")?));
            }
        }
    }
    if stored.is_empty() {
        return Ok(Default::default());
    }
    Ok(keys
        .iter()
        .enumerate()
        .filter(|(_, (source, id))| stored.contains(&((*source).to_owned(), (*id).to_owned())))
        .map(|(position, _)| position)
        .collect())
}

/// By workbridge id, or else by CloudEvents id (of `source`, if given). A
/// CloudEvents id is unique per source only: when sources share it and no
/// `source` is given, a conflict that lists them.
pub async fn get<C: ConnectionTrait>(conn: &C, id: &str, source: Option<&str>) -> Result<EventRecord, StoreError> {
    if let Some(m) = events::Entity::find_by_id(id.to_owned()).one(conn).await?
        && source.is_none_or(|s| s == m.source)
    {
        return record(m);
    }
    let mut q = events::Entity::find().filter(events::Column::CeId.eq(id));
    if let Some(source) = source {
        q = q.filter(events::Column::Source.eq(source));
    }
    // Two are enough to know it is ambiguous; the sources are listed apart.
    let found = q.order_by_asc(events::Column::ReceivedAt).limit(2).all(conn).await?;
    match found.len() {
        0 => Err(StoreError::NotFound(match source {
            Some(source) => format!("event {id} of source {source}"),
            None => format!("event {id}"),
        })),
        1 => found.into_iter().next().map(record).expect("one"),
        _ => {
            let sources: Vec<String> = events::Entity::find()
                .select_only()
                .column(events::Column::Source)
                .distinct()
                .filter(events::Column::CeId.eq(id))
                .order_by_asc(events::Column::Source)
                .limit(20)
                .into_tuple()
                .all(conn)
                .await?;
            Err(StoreError::Conflict(format!(
                "event id {id} is used by {} sources: {}; choose one with the `source` parameter",
                sources.len(),
                sources.join(", ")
            )))
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    pub outcome: Option<EventOutcome>,
    pub asset: Option<String>,
    pub site: Option<String>,
    pub source: Option<String>,
    /// CloudEvents type, e.g. `tdl.alert`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<String>,
    pub work_order: Option<String>,
    /// Received at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Received before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// A tag glob, as in rules' `when.tags`: levels separated by dots, `*`
    /// within one level, `**` across levels (e.g. `BEDFORD.*.VIB_*`).
    #[param(max_length = 200)]
    pub subject: Option<String>,
}

/// Events listed as `f` says (its `subject` glob resolved by the caller
/// into `subjects`, the tags it matches; `f.subject` itself is not read).
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    f: &EventFilter,
    subjects: Option<&[String]>,
    page: PageRequest,
) -> Result<Page<EventRecord>, StoreError> {
    let mut q = events::Entity::find();
    if let Some(subjects) = subjects {
        q = q.filter(events::Column::Subject.is_in(subjects.iter().map(String::as_str)));
    }
    if let Some(o) = f.outcome {
        q = q.filter(events::Column::Outcome.eq(o.as_str()));
    }
    let q = filtered(
        q,
        &[
            (events::Column::AssetId, &f.asset),
            (events::Column::Site, &f.site),
            (events::Column::Source, &f.source),
            (events::Column::Kind, &f.kind),
            (events::Column::Code, &f.code),
            (events::Column::WorkOrderId, &f.work_order),
        ],
        events::Column::ReceivedAt,
        f.since,
        f.until,
    );
    paged(conn, q, &[events::Column::ReceivedAt, events::Column::Id], page, record).await
}

/// Events of one work order, oldest first.
pub async fn of_order<C: ConnectionTrait>(conn: &C, order_id: &str) -> Result<Vec<EventRecord>, StoreError> {
    events::Entity::find()
        .filter(events::Column::WorkOrderId.eq(order_id))
        .order_by_asc(events::Column::ReceivedAt)
        .order_by_asc(events::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// The CloudEvent that opened an order.
pub async fn first_of_order<C: ConnectionTrait>(
    conn: &C,
    order_id: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    Ok(events::Entity::find()
        .select_only()
        .column(events::Column::Payload)
        .filter(events::Column::WorkOrderId.eq(order_id))
        .filter(events::Column::Outcome.eq(EventOutcome::Created.as_str()))
        .into_tuple::<serde_json::Value>()
        .one(conn)
        .await?)
}

/// `first_of_order` for many orders: order id → the CloudEvent that opened it.
pub async fn first_of_orders<C: ConnectionTrait>(
    conn: &C,
    order_ids: &[&str],
) -> Result<std::collections::HashMap<String, serde_json::Value>, StoreError> {
    let mut out = std::collections::HashMap::with_capacity(order_ids.len());
    for chunk in order_ids.chunks(1000) {
        let rows: Vec<(Option<String>, serde_json::Value)> = events::Entity::find()
            .select_only()
            .column(events::Column::WorkOrderId)
            .column(events::Column::Payload)
            .filter(events::Column::WorkOrderId.is_in(chunk.iter().copied()))
            .filter(events::Column::Outcome.eq(EventOutcome::Created.as_str()))
            .into_tuple()
            .all(conn)
            .await?;
        out.extend(rows.into_iter().filter_map(|(id, payload)| Some((id?, payload))));
    }
    Ok(out)
}

/// Count of events by outcome (for `/readyz` details and the walkthrough).
pub async fn count_by_outcome<C: ConnectionTrait>(conn: &C, outcome: EventOutcome) -> Result<u64, StoreError> {
    Ok(events::Entity::find().filter(events::Column::Outcome.eq(outcome.as_str())).count(conn).await?)
}

/// The latest `cleared` event for a dedup key: debounce counts from there.
pub async fn last_clear<C: ConnectionTrait>(conn: &C, key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(events::Entity::find()
        .filter(events::Column::DedupKey.eq(key))
        .filter(events::Column::State.eq("cleared"))
        .order_by_desc(events::Column::EventTime)
        .one(conn)
        .await?
        .and_then(|m| m.event_time))
}

/// The rule and dedup key that decided the latest raised event of an alert
/// episode (same source, tag and code): where its clear belongs, whatever
/// the rules say of the clear's own values.
pub async fn episode<C: ConnectionTrait>(
    conn: &C,
    source: &str,
    subject: Option<&str>,
    code: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let mut q = events::Entity::find()
        .select_only()
        .column(events::Column::DedupKey)
        .column(events::Column::RuleId)
        .filter(events::Column::Source.eq(source))
        .filter(events::Column::Code.eq(code))
        .filter(events::Column::State.eq("raised"))
        .filter(events::Column::DedupKey.is_not_null())
        .filter(events::Column::RuleId.is_not_null());
    q = match subject {
        Some(s) => q.filter(events::Column::Subject.eq(s)),
        None => q.filter(events::Column::Subject.is_null()),
    };
    let row: Option<(Option<String>, Option<String>)> = q
        .order_by_desc(events::Column::EventTime)
        .order_by_desc(events::Column::ReceivedAt)
        .limit(1)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(row.and_then(|(key, rule)| Some((key?, rule?))))
}

/// Debounced events for a key at or after `since` (event time), oldest first.
pub async fn debounced_since<C: ConnectionTrait>(
    conn: &C,
    key: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<DateTime<Utc>>, StoreError> {
    let mut q = events::Entity::find()
        .filter(events::Column::DedupKey.eq(key))
        .filter(events::Column::Outcome.eq(EventOutcome::Debounced.as_str()));
    if let Some(since) = since {
        q = q.filter(events::Column::EventTime.gte(since));
    }
    Ok(q.order_by_asc(events::Column::EventTime).all(conn).await?.into_iter().filter_map(|m| m.event_time).collect())
}

/// A raised event that inhibits another.
#[derive(Debug, Clone)]
pub struct Inhibitor {
    pub id: String,
    pub event_id: String,
    pub code: String,
    pub subject: Option<String>,
}

/// The latest raised event matching `source` (kinds, codes), at or after
/// `since`, whose fields equal the given values, and that has not been
/// cleared since (same source, tag and code).
/// Whether any raised event of these kinds (and codes, if given) happened
/// at or after `since`: one indexed query.
pub async fn any_raised<C: ConnectionTrait>(
    conn: &C,
    kinds: &[String],
    codes: &[String],
    since: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut q = events::Entity::find()
        .select_only()
        .column(events::Column::Id)
        .filter(events::Column::State.eq("raised"))
        .filter(events::Column::EventTime.gte(since));
    if !kinds.is_empty() {
        q = q.filter(events::Column::Kind.is_in(kinds.to_vec()));
    }
    if !codes.is_empty() {
        q = q.filter(events::Column::Code.is_in(codes.to_vec()));
    }
    Ok(q.limit(1).into_tuple::<String>().one(conn).await?.is_some())
}

pub async fn find_inhibitor<C: ConnectionTrait>(
    conn: &C,
    kinds: &[String],
    codes: &[String],
    equal: &[(&str, String)],
    since: DateTime<Utc>,
) -> Result<Option<Inhibitor>, StoreError> {
    use super::entities::assets;
    let mut q =
        events::Entity::find().filter(events::Column::State.eq("raised")).filter(events::Column::EventTime.gte(since));
    if !kinds.is_empty() {
        q = q.filter(events::Column::Kind.is_in(kinds.to_vec()));
    }
    if !codes.is_empty() {
        q = q.filter(events::Column::Code.is_in(codes.to_vec()));
    }
    for (field, value) in equal {
        q = match *field {
            "tag" => q.filter(events::Column::Subject.eq(value.as_str())),
            "asset" => q.filter(events::Column::AssetId.eq(value.as_str())),
            "site" => q.filter(events::Column::Site.eq(value.as_str())),
            "code" => q.filter(events::Column::Code.eq(value.as_str())),
            "parent" => {
                let children: Vec<String> = assets::Entity::find()
                    .filter(assets::Column::ParentId.eq(value.as_str()))
                    .all(conn)
                    .await?
                    .into_iter()
                    .map(|a| a.id)
                    .collect();
                q.filter(events::Column::AssetId.is_in(children))
            }
            other => return Err(StoreError::Corrupt(format!("inhibit field {other}"))),
        };
    }
    for candidate in q.order_by_desc(events::Column::EventTime).limit(20).all(conn).await? {
        let mut cleared = events::Entity::find()
            .filter(events::Column::Source.eq(candidate.source.as_str()))
            .filter(events::Column::Code.eq(candidate.code.as_str()))
            .filter(events::Column::State.eq("cleared"))
            .filter(events::Column::EventTime.gt(candidate.event_time));
        cleared = match &candidate.subject {
            Some(s) => cleared.filter(events::Column::Subject.eq(s.as_str())),
            None => cleared.filter(events::Column::Subject.is_null()),
        };
        if cleared.one(conn).await?.is_none() {
            return Ok(Some(Inhibitor {
                id: candidate.id,
                event_id: candidate.ce_id,
                code: candidate.code,
                subject: candidate.subject,
            }));
        }
    }
    Ok(None)
}

/// Stored events received in `[since, until)`, oldest first, at most `limit`
/// (the backtest's input): (record, stored CloudEvent).
pub async fn in_range<C: ConnectionTrait>(
    conn: &C,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<EventRecord>, StoreError> {
    events::Entity::find()
        .filter(events::Column::ReceivedAt.gte(since))
        .filter(events::Column::ReceivedAt.lt(until))
        .order_by_asc(events::Column::ReceivedAt)
        .order_by_asc(events::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// The most tags a subject glob may select in a listing (they become one
/// `IN` list; SQLite binds at most 32,766 parameters).
pub const MAX_GLOB_SUBJECTS: usize = 10_000;

/// Narrows `q` to events whose subject may match `glob`: equal to it, or
/// starting with its literal prefix (an index range). Over-inclusive (SQLite's
/// LIKE ignores ASCII case): the caller checks the glob itself.
fn subject_prefilter(q: sea_orm::Select<events::Entity>, glob: &TagGlob) -> sea_orm::Select<events::Entity> {
    use sea_orm::sea_query::LikeExpr;
    if glob.is_literal() {
        return q.filter(events::Column::Subject.eq(glob.as_str()));
    }
    let prefix = glob.literal_prefix();
    if prefix.is_empty() {
        return q.filter(events::Column::Subject.is_not_null());
    }
    let escaped: String =
        prefix.chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
    q.filter(events::Column::Subject.like(LikeExpr::new(format!("{escaped}%")).escape('\\')))
}

/// The distinct tags of stored events that match `glob`, sorted; at most
/// `cap + 1` (more than `cap` tells the caller the glob is too wide).
pub async fn subjects_matching<C: ConnectionTrait>(
    conn: &C,
    glob: &TagGlob,
    cap: usize,
) -> Result<Vec<String>, StoreError> {
    let q = subject_prefilter(events::Entity::find().select_only().column(events::Column::Subject).distinct(), glob);
    let candidates: Vec<Option<String>> = q.into_tuple().all(conn).await?;
    let mut out: Vec<String> = candidates.into_iter().flatten().filter(|s| glob.is_match(s)).take(cap + 1).collect();
    out.sort_unstable();
    Ok(out)
}

/// What a re-decision job selects.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub outcome: Option<EventOutcome>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub subject: Option<TagGlob>,
    /// workbridge ids or CloudEvents ids.
    pub ids: Vec<String>,
    /// Received at or before (the job's creation: later events were decided
    /// against the registry and rules of their own arrival).
    pub bound: DateTime<Utc>,
}

fn selected(s: &Selection) -> sea_orm::Select<events::Entity> {
    use sea_orm::Condition;
    let mut q = events::Entity::find().filter(events::Column::ReceivedAt.lte(s.bound));
    if let Some(o) = s.outcome {
        q = q.filter(events::Column::Outcome.eq(o.as_str()));
    }
    if let Some(source) = &s.source {
        q = q.filter(events::Column::Source.eq(source.as_str()));
    }
    if let Some(since) = s.since {
        q = q.filter(events::Column::ReceivedAt.gte(since));
    }
    if let Some(until) = s.until {
        q = q.filter(events::Column::ReceivedAt.lt(until));
    }
    if !s.ids.is_empty() {
        let ids = || s.ids.iter().map(String::as_str);
        q = q.filter(Condition::any().add(events::Column::Id.is_in(ids())).add(events::Column::CeId.is_in(ids())));
    }
    if let Some(glob) = &s.subject {
        q = subject_prefilter(q, glob);
    }
    q
}

/// How many stored events a selection holds.
pub async fn count_selected<C: ConnectionTrait>(conn: &C, s: &Selection) -> Result<u64, StoreError> {
    let Some(glob) = &s.subject else {
        return Ok(selected(s).count(conn).await?);
    };
    // The glob is checked on the distinct tags, then the events are counted
    // by tag, a chunk of tags at a time (the tags are disjoint).
    let tags = subjects_matching(conn, glob, usize::MAX - 1).await?;
    let mut total = 0;
    for chunk in tags.chunks(1000) {
        total +=
            selected(s).filter(events::Column::Subject.is_in(chunk.iter().map(String::as_str))).count(conn).await?;
    }
    Ok(total)
}

/// The next events of a selection after `after` (received_at, id), oldest
/// first: up to `limit` rows scanned, of which those that match (the
/// subject glob is checked here). Returns them and the last row scanned
/// (`None` when nothing is left).
pub async fn next_selected<C: ConnectionTrait>(
    conn: &C,
    s: &Selection,
    after: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<(Vec<EventRecord>, Option<(DateTime<Utc>, String)>, usize), StoreError> {
    use sea_orm::Condition;
    let mut q = selected(s);
    if let Some((at, id)) = &after {
        q = q.filter(
            Condition::any()
                .add(events::Column::ReceivedAt.gt(*at))
                .add(Condition::all().add(events::Column::ReceivedAt.eq(*at)).add(events::Column::Id.gt(id.as_str()))),
        );
    }
    let rows =
        q.order_by_asc(events::Column::ReceivedAt).order_by_asc(events::Column::Id).limit(limit).all(conn).await?;
    let scanned = rows.len();
    let last = rows.last().map(|m| (m.received_at, m.id.clone()));
    let records = rows
        .into_iter()
        .filter(|m| match &s.subject {
            Some(glob) => m.subject.as_deref().is_some_and(|t| glob.is_match(t)),
            None => true,
        })
        .map(record)
        .collect::<Result<_, _>>()?;
    Ok((records, last, scanned))
}

/// A stored event read in a transaction (before it is decided again).
pub async fn by_id<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<EventRecord>, StoreError> {
    events::Entity::find_by_id(id.to_owned()).one(conn).await?.map(record).transpose()
}

/// Unmapped events of one tag.
#[derive(Debug, Clone, Serialize, ToSchema, sea_orm::FromQueryResult)]
pub struct UnmappedSubject {
    /// The tag (CloudEvents `subject`); null for events that carried none.
    pub subject: Option<String>,
    pub count: i64,
    /// Received first.
    pub first_seen: DateTime<Utc>,
    /// Received last.
    pub last_seen: DateTime<Utc>,
    /// One of them (its workbridge id), to look at or to create the asset from.
    pub example_event_id: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnmappedFilter {
    /// Received at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Received before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    pub source: Option<String>,
}

/// Unmapped events grouped by tag, the most frequent first.
pub async fn unmapped_subjects<C: ConnectionTrait>(
    conn: &C,
    f: &UnmappedFilter,
    page: PageRequest,
) -> Result<Page<UnmappedSubject>, StoreError> {
    use sea_orm::sea_query::{Expr, ExprTrait, Order};
    let base = filtered(
        events::Entity::find().filter(events::Column::Outcome.eq(EventOutcome::Unmapped.as_str())),
        &[(events::Column::Source, &f.source)],
        events::Column::ReceivedAt,
        f.since,
        f.until,
    );
    let total: Option<i64> = base
        .clone()
        .select_only()
        .column_as(Expr::col(events::Column::Subject).count_distinct(), "n")
        .into_tuple()
        .one(conn)
        .await?;
    // COUNT(DISTINCT) leaves out NULL: the events without a tag are one more group.
    let untagged = base.clone().filter(events::Column::Subject.is_null()).limit(1).one(conn).await?.is_some();
    let total = total.unwrap_or(0) as u64 + u64::from(untagged);
    let items = base
        .select_only()
        .column(events::Column::Subject)
        .column_as(Expr::col(events::Column::Id).count(), "count")
        .column_as(Expr::col(events::Column::ReceivedAt).min(), "first_seen")
        .column_as(Expr::col(events::Column::ReceivedAt).max(), "last_seen")
        .column_as(Expr::col(events::Column::Id).min(), "example_event_id")
        .group_by(events::Column::Subject)
        .order_by(Expr::col(events::Column::Id).count(), Order::Desc)
        .order_by(events::Column::Subject, Order::Asc)
        .limit(page.limit())
        .offset(page.offset())
        .into_model::<UnmappedSubject>()
        .all(conn)
        .await?;
    Ok(Page { items, total, limit: page.limit(), offset: page.offset() })
}
