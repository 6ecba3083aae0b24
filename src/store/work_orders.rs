//! Work orders and their status history.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::entities::{status_history, work_orders};
use super::{Page, PageRequest, StoreError, corrupt, filtered, new_id, paged};
use crate::domain::OrderStatus;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkOrder {
    /// workbridge's id; also the reference sent to the EAM.
    pub id: String,
    pub connector: String,
    pub rule_id: String,
    pub rule_version: i32,
    pub dedup_key: String,
    pub asset_id: Option<String>,
    pub site: Option<String>,
    pub title: String,
    pub description: String,
    pub work_type: String,
    pub priority: i32,
    pub status: OrderStatus,
    /// The EAM's id (e.g. Maximo `wonum`), once delivered.
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    /// Events that opened or were merged into this order.
    pub event_count: i32,
    pub first_event_time: DateTime<Utc>,
    pub last_event_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The last delivery error, if delivery is failing.
    pub last_error: Option<String>,
    /// When the work is due, from the SLA of its priority.
    pub due_by: Option<DateTime<Utc>>,
    /// The decision trace of the event that opened the order.
    pub trace: serde_json::Value,
}

fn view(m: work_orders::Model) -> Result<WorkOrder, StoreError> {
    let status = OrderStatus::parse(&m.status).ok_or_else(|| corrupt("order status", &m.status))?;
    Ok(WorkOrder {
        id: m.id,
        connector: m.connector,
        rule_id: m.rule_id,
        rule_version: m.rule_version,
        dedup_key: m.dedup_key,
        asset_id: m.asset_id,
        site: m.site,
        title: m.title,
        description: m.description,
        work_type: m.work_type,
        priority: m.priority,
        status,
        external_id: m.external_id,
        external_url: m.external_url,
        event_count: m.event_count,
        first_event_time: m.first_event_time,
        last_event_time: m.last_event_time,
        created_at: m.created_at,
        updated_at: m.updated_at,
        delivered_at: m.delivered_at,
        last_error: m.last_error,
        due_by: m.due_by,
        trace: m.trace,
    })
}

/// A decided, not yet delivered order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: String,
    pub connector: String,
    pub rule_id: String,
    pub rule_version: i32,
    pub dedup_key: String,
    pub asset_id: Option<String>,
    pub site: Option<String>,
    pub title: String,
    pub description: String,
    pub work_type: String,
    pub priority: i32,
    pub event_time: DateTime<Utc>,
    pub due_by: Option<DateTime<Utc>>,
    pub trace: serde_json::Value,
}

fn open_row(o: &NewOrder, now: DateTime<Utc>) -> work_orders::Model {
    work_orders::Model {
        id: o.id.clone(),
        connector: o.connector.clone(),
        rule_id: o.rule_id.clone(),
        rule_version: o.rule_version,
        dedup_key: o.dedup_key.clone(),
        open_key: Some(o.dedup_key.clone()),
        asset_id: o.asset_id.clone(),
        site: o.site.clone(),
        title: o.title.clone(),
        description: o.description.clone(),
        work_type: o.work_type.clone(),
        priority: o.priority,
        status: OrderStatus::Pending.as_str().to_owned(),
        external_id: None,
        external_url: None,
        event_count: 1,
        first_event_time: o.event_time,
        last_event_time: o.event_time,
        created_at: now,
        updated_at: now,
        delivered_at: None,
        trace: o.trace.clone(),
        last_error: None,
        due_by: o.due_by,
        last_comment_at: None,
        polled_at: None,
    }
}

fn history_row(
    order_id: &str,
    status: OrderStatus,
    external_status: Option<&str>,
    source: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    note: Option<&str>,
) -> status_history::Model {
    status_history::Model {
        id: new_id(),
        work_order_id: order_id.to_owned(),
        status: status.as_str().to_owned(),
        external_status: external_status.map(str::to_owned),
        source: source.to_owned(),
        at,
        recorded_at: now,
        note: note.map(str::to_owned),
        published_at: None,
    }
}

const DECIDED: &str = "decided";

/// Inserts an open order unless another open order holds the dedup key
/// (then `false`, nothing written): the unique index on `open_key`
/// serialises concurrent decisions, across replicas too.
pub async fn insert_open<C: ConnectionTrait>(conn: &C, o: &NewOrder, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let rows = work_orders::Entity::insert(super::new_row(open_row(o, now)))
        .on_conflict(OnConflict::column(work_orders::Column::OpenKey).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    if rows == 1 {
        add_history(conn, history_row(&o.id, OrderStatus::Pending, None, "workbridge", now, now, Some(DECIDED)))
            .await?;
    }
    Ok(rows == 1)
}

/// `insert_open` for many orders with distinct keys, in one statement
/// (`store::insert_rows`), in key order (two replicas inserting the same keys wait for
/// each other in the same order). `false` when another transaction holds one
/// of the keys: the caller must roll back, as some rows may be written.
pub async fn insert_open_many<C: ConnectionTrait>(
    conn: &C,
    orders: &mut [NewOrder],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    orders.sort_unstable_by(|a, b| a.dedup_key.cmp(&b.dedup_key));
    let rows = orders.iter().map(|o| open_row(o, now)).collect();
    let unique = [work_orders::Column::OpenKey];
    if super::insert_rows::<work_orders::Entity, _>(conn, rows, Some(&unique)).await? != orders.len() as u64 {
        return Ok(false);
    }
    let history =
        orders.iter().map(|o| history_row(&o.id, OrderStatus::Pending, None, "workbridge", now, now, Some(DECIDED)));
    super::insert_rows::<status_history::Entity, _>(conn, history.collect(), None).await?;
    Ok(true)
}

/// Namespace of the transaction-level advisory locks on dedup keys.
const KEY_LOCKS: i32 = 0x776b;

/// The open orders holding these dedup keys (sorted), key → order id, in one
/// statement per thousand keys. On PostgreSQL every key is locked first, in
/// key order, until the transaction ends (a transaction-level advisory lock:
/// a key with no open order has no row to lock), then the open orders' rows:
/// batches of two consumers or replicas that touch the same keys queue up
/// instead of deadlocking, and one that opens an order is seen by the next.
pub async fn open_by_keys<C: ConnectionTrait>(
    conn: &C,
    keys: &[&str],
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    let backend = conn.get_database_backend();
    if backend == sea_orm::DbBackend::Postgres {
        for chunk in keys.chunks(1000) {
            // A VALUES list is scanned in order, so the locks are taken in it.
            let sql = format!(
                "SELECT pg_advisory_xact_lock($1, hashtext(v.k)) FROM (VALUES {}) AS v(k)",
                super::values_rows(backend, 2, chunk.len())
            );
            let mut binds: Vec<sea_orm::Value> = vec![KEY_LOCKS.into()];
            binds.extend(chunk.iter().map(|k| sea_orm::Value::from(*k)));
            conn.execute_raw(sea_orm::Statement::from_sql_and_values(backend, sql, binds)).await?;
        }
    }
    let mut out = std::collections::HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(1000) {
        let mut q = work_orders::Entity::find()
            .select_only()
            .column(work_orders::Column::OpenKey)
            .column(work_orders::Column::Id)
            .filter(work_orders::Column::OpenKey.is_in(chunk.iter().copied()))
            .order_by_asc(work_orders::Column::OpenKey);
        if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
            q = q.lock_exclusive();
        }
        for (key, id) in q.into_tuple::<(String, String)>().all(conn).await? {
            out.insert(key, id);
        }
    }
    Ok(out)
}

/// Counts merged events on open orders: (order id, events merged, time of
/// the last of them), one statement per few hundred orders.
pub async fn merge_many<C: ConnectionTrait>(
    conn: &C,
    merges: &[(&str, i32, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    use sea_orm::sea_query::{CaseStatement, ExprTrait};
    for chunk in merges.chunks(300) {
        let (mut count, mut last) = (CaseStatement::new(), CaseStatement::new());
        for (id, n, at) in chunk {
            count = count
                .case(Expr::col(work_orders::Column::Id).eq(*id), Expr::col(work_orders::Column::EventCount).add(*n));
            last = last.case(Expr::col(work_orders::Column::Id).eq(*id), Expr::val(*at));
        }
        count = count.finally(Expr::col(work_orders::Column::EventCount));
        last = last.finally(Expr::col(work_orders::Column::LastEventTime));
        work_orders::Entity::update_many()
            .col_expr(work_orders::Column::EventCount, count.into())
            .col_expr(work_orders::Column::LastEventTime, last.into())
            .col_expr(work_orders::Column::UpdatedAt, now.into())
            .filter(work_orders::Column::Id.is_in(chunk.iter().map(|(id, _, _)| *id)))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Counts one more event on the open order with this key; returns its id,
/// or `None` when no order with the key is open.
pub async fn merge_into_open<C: ConnectionTrait>(
    conn: &C,
    key: &str,
    event_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    // One round trip: the update names the order it merged into.
    #[derive(Debug, sea_orm::FromQueryResult)]
    struct Merged {
        id: String,
    }
    use sea_orm::FromQueryResult;
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "UPDATE work_orders SET event_count = event_count + 1, last_event_time = $1, updated_at = $2 \
             WHERE open_key = $3 RETURNING id"
        }
        _ => {
            "UPDATE work_orders SET event_count = event_count + 1, last_event_time = ?1, updated_at = ?2 \
             WHERE open_key = ?3 RETURNING id"
        }
    };
    let stmt = sea_orm::Statement::from_sql_and_values(backend, sql, [event_time.into(), now.into(), key.into()]);
    Ok(Merged::find_by_statement(stmt).one(conn).await?.map(|m| m.id))
}

pub async fn find_open<C: ConnectionTrait>(conn: &C, key: &str) -> Result<Option<String>, StoreError> {
    Ok(work_orders::Entity::find()
        .select_only()
        .column(work_orders::Column::Id)
        .filter(work_orders::Column::OpenKey.eq(key))
        .into_tuple::<String>()
        .one(conn)
        .await?)
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: &str) -> Result<WorkOrder, StoreError> {
    work_orders::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("work order {id}")))
        .and_then(view)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub asset: Option<String>,
    pub site: Option<String>,
    pub connector: Option<String>,
    pub rule: Option<String>,
    /// Orders created at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Orders created before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

pub async fn list<C: ConnectionTrait>(
    conn: &C,
    f: &OrderFilter,
    page: PageRequest,
) -> Result<Page<WorkOrder>, StoreError> {
    let mut q = work_orders::Entity::find();
    if let Some(s) = f.status {
        q = q.filter(work_orders::Column::Status.eq(s.as_str()));
    }
    let q = filtered(
        q,
        &[
            (work_orders::Column::AssetId, &f.asset),
            (work_orders::Column::Site, &f.site),
            (work_orders::Column::Connector, &f.connector),
            (work_orders::Column::RuleId, &f.rule),
        ],
        work_orders::Column::CreatedAt,
        f.since,
        f.until,
    );
    paged(conn, q, &[work_orders::Column::CreatedAt, work_orders::Column::Id], page, view).await
}

/// One entry of an order's status history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusChange {
    pub status: OrderStatus,
    /// The EAM's own status word (e.g. Maximo `WAPPR`).
    pub external_status: Option<String>,
    /// Who reported it: workbridge, a connector, the sandbox, a poll or a webhook.
    pub source: String,
    /// When it happened (the EAM's timestamp when it gives one).
    pub at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub note: Option<String>,
}

async fn add_history<C: ConnectionTrait>(conn: &C, row: status_history::Model) -> Result<(), StoreError> {
    status_history::Entity::insert(super::new_row(row)).exec_without_returning(conn).await?;
    Ok(())
}

pub async fn history<C: ConnectionTrait>(conn: &C, order_id: &str) -> Result<Vec<StatusChange>, StoreError> {
    status_history::Entity::find()
        .filter(status_history::Column::WorkOrderId.eq(order_id))
        .order_by_asc(status_history::Column::At)
        .order_by_asc(status_history::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|m| {
            Ok(StatusChange {
                status: OrderStatus::parse(&m.status).ok_or_else(|| corrupt("history status", &m.status))?,
                external_status: m.external_status,
                source: m.source,
                at: m.at,
                recorded_at: m.recorded_at,
                note: m.note,
            })
        })
        .collect()
}

/// A status change reported for an order.
#[derive(Debug, Clone)]
pub struct StatusUpdate<'a> {
    pub status: OrderStatus,
    pub external_status: Option<&'a str>,
    pub source: &'a str,
    pub at: DateTime<Utc>,
    pub note: Option<&'a str>,
}

/// Moves an order to a new status and records it; an order that is no
/// longer open releases its dedup key. `false` when the status is unchanged
/// (a repeated report has no second effect).
pub async fn change_status<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    u: &StatusUpdate<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut q = work_orders::Entity::update_many()
        .col_expr(work_orders::Column::Status, u.status.as_str().into())
        .col_expr(work_orders::Column::UpdatedAt, now.into())
        .filter(work_orders::Column::Id.eq(id))
        .filter(work_orders::Column::Status.ne(u.status.as_str()));
    if !u.status.is_open() {
        q = q.col_expr(work_orders::Column::OpenKey, Expr::value(Option::<String>::None));
    }
    let res = q.exec(conn).await?;
    if res.rows_affected == 0 {
        // Either unknown or already in that status.
        get(conn, id).await?;
        return Ok(false);
    }
    add_history(conn, history_row(id, u.status, u.external_status, u.source, u.at, now, u.note)).await?;
    Ok(true)
}

/// Orders by id (the unknown ones are left out), in one statement per
/// thousand ids.
pub async fn get_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, WorkOrder>, StoreError> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        for m in
            work_orders::Entity::find().filter(work_orders::Column::Id.is_in(chunk.iter().copied())).all(conn).await?
        {
            out.insert(m.id.clone(), view(m)?);
        }
    }
    Ok(out)
}

/// A create the EAM confirmed.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub order_id: String,
    pub external_id: String,
    pub external_url: Option<String>,
    pub external_status: Option<String>,
    /// `connector:<name>`, the history's source.
    pub source: String,
}

/// Records creates the EAM confirmed: a few statements for the lot.
pub async fn mark_delivered_many<C: ConnectionTrait>(
    conn: &C,
    delivered: &[Delivered],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    use sea_orm::sea_query::{CaseStatement, ExprTrait};
    if delivered.is_empty() {
        return Ok(());
    }
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        // Lock the orders in dedup-key order, as decisions do
        // (`open_by_keys`): updating them in whatever order the scan met
        // them deadlocked with a decision merging into the same orders
        // (PostgreSQL notices only after `deadlock_timeout`, a second).
        let ids: Vec<&str> = delivered.iter().map(|d| d.order_id.as_str()).collect();
        work_orders::Entity::find()
            .select_only()
            .column(work_orders::Column::Id)
            .filter(work_orders::Column::Id.is_in(ids))
            .order_by_asc(work_orders::Column::OpenKey)
            .order_by_asc(work_orders::Column::Id)
            .lock_exclusive()
            .into_tuple::<String>()
            .all(conn)
            .await?;
    }
    let id = || Expr::col(work_orders::Column::Id);
    let (mut external_id, mut external_url) = (CaseStatement::new(), CaseStatement::new());
    for d in delivered {
        external_id = external_id.case(id().eq(d.order_id.as_str()), Expr::val(d.external_id.as_str()));
        external_url = external_url.case(id().eq(d.order_id.as_str()), Expr::val(d.external_url.clone()));
    }
    let external = |q: sea_orm::UpdateMany<work_orders::Entity>| {
        q.col_expr(
            work_orders::Column::ExternalId,
            external_id.clone().finally(Expr::col(work_orders::Column::ExternalId)).into(),
        )
        .col_expr(
            work_orders::Column::ExternalUrl,
            external_url.clone().finally(Expr::col(work_orders::Column::ExternalUrl)).into(),
        )
        .col_expr(work_orders::Column::DeliveredAt, Expr::value(Some(now)))
        .col_expr(work_orders::Column::LastError, Expr::value(Option::<String>::None))
    };
    // As `change_status`: the status moves (and is recorded) only where it
    // changes; one statement in the usual case.
    let ids: Vec<&str> = delivered.iter().map(|d| d.order_id.as_str()).collect();
    let moved: Vec<String> = external(work_orders::Entity::update_many())
        .col_expr(work_orders::Column::Status, OrderStatus::Created.as_str().into())
        .col_expr(work_orders::Column::UpdatedAt, now.into())
        .filter(work_orders::Column::Id.is_in(ids.iter().copied()))
        .filter(work_orders::Column::Status.ne(OrderStatus::Created.as_str()))
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    let unmoved: Vec<&str> = ids.iter().copied().filter(|id| !moved.iter().any(|m| m == id)).collect();
    if !unmoved.is_empty() {
        external(work_orders::Entity::update_many()).filter(work_orders::Column::Id.is_in(unmoved)).exec(conn).await?;
    }
    let rows = delivered.iter().filter(|d| moved.contains(&d.order_id)).map(|d| {
        let note = Some("created in the EAM");
        history_row(&d.order_id, OrderStatus::Created, d.external_status.as_deref(), &d.source, now, now, note)
    });
    super::insert_rows::<status_history::Entity, _>(conn, rows.collect(), None).await?;
    Ok(())
}

pub async fn set_last_error<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    work_orders::Entity::update_many()
        .col_expr(work_orders::Column::LastError, Expr::value(Some(error.to_owned())))
        .col_expr(work_orders::Column::UpdatedAt, now.into())
        .filter(work_orders::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The most recent order for a key that is no longer open: its id and when
/// it left the open states.
pub async fn last_closed<C: ConnectionTrait>(
    conn: &C,
    key: &str,
) -> Result<Option<(String, OrderStatus, DateTime<Utc>)>, StoreError> {
    let Some(m) = work_orders::Entity::find()
        .filter(work_orders::Column::DedupKey.eq(key))
        .filter(work_orders::Column::OpenKey.is_null())
        .order_by_desc(work_orders::Column::UpdatedAt)
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let status = OrderStatus::parse(&m.status).ok_or_else(|| corrupt("order status", &m.status))?;
    Ok(Some((m.id, status, m.updated_at)))
}

/// Puts a failed order back to `pending` for another delivery, taking its
/// dedup key again unless another open order holds it meanwhile.
pub async fn reopen_for_retry<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let order = get(conn, id).await?;
    if order.status != OrderStatus::Failed {
        return Err(StoreError::Conflict(format!(
            "order {id} is {}; only failed orders can be retried",
            order.status.as_str()
        )));
    }
    change_status(
        conn,
        id,
        &StatusUpdate {
            status: OrderStatus::Pending,
            external_status: None,
            source: "workbridge",
            at: now,
            note: Some(note),
        },
        now,
    )
    .await?;
    if find_open(conn, &order.dedup_key).await?.is_none() {
        work_orders::Entity::update_many()
            .col_expr(work_orders::Column::OpenKey, Expr::value(Some(order.dedup_key.clone())))
            .filter(work_orders::Column::Id.eq(id))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// The order of `connector` with our reference or the EAM's id.
pub async fn find_for_connector<C: ConnectionTrait>(
    conn: &C,
    connector: &str,
    reference: Option<&str>,
    external_id: Option<&str>,
) -> Result<Option<WorkOrder>, StoreError> {
    let mut q = work_orders::Entity::find().filter(work_orders::Column::Connector.eq(connector));
    q = match (reference, external_id) {
        (Some(r), _) => q.filter(work_orders::Column::Id.eq(r)),
        (None, Some(e)) => q.filter(work_orders::Column::ExternalId.eq(e)),
        (None, None) => return Ok(None),
    };
    q.one(conn).await?.map(view).transpose()
}

/// Delivered orders of a connector that are still open, least recently
/// updated first (the polling batch).
/// Claims up to `limit` open, delivered orders of `connector` for a status
/// poll: those not polled since `due_before`, least recently polled first,
/// stamped `polled_at = now` in the same statement. Replicas therefore
/// split the orders between them and each order is polled once per
/// interval; on PostgreSQL rows another replica is claiming are skipped
/// (`FOR UPDATE SKIP LOCKED`), on SQLite (one replica) the UPDATE is atomic.
pub async fn claim_for_poll<C: ConnectionTrait>(
    conn: &C,
    connector: &str,
    now: DateTime<Utc>,
    due_before: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<WorkOrder>, StoreError> {
    #[derive(Debug, sea_orm::FromQueryResult)]
    struct Claimed {
        id: String,
    }
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "UPDATE work_orders SET polled_at = $1 WHERE id IN (\
               SELECT id FROM work_orders WHERE connector = $2 AND open_key IS NOT NULL \
               AND external_id IS NOT NULL AND (polled_at IS NULL OR polled_at < $3) \
               ORDER BY polled_at NULLS FIRST, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING id"
        }
        _ => {
            "UPDATE work_orders SET polled_at = ?1 WHERE id IN (\
               SELECT id FROM work_orders WHERE connector = ?2 AND open_key IS NOT NULL \
               AND external_id IS NOT NULL AND (polled_at IS NULL OR polled_at < ?3) \
               ORDER BY polled_at NULLS FIRST, id LIMIT ?4) \
             RETURNING id"
        }
    };
    let values = [now.into(), connector.into(), due_before.into(), (limit as i64).into()];
    let stmt = sea_orm::Statement::from_sql_and_values(backend, sql, values);
    use sea_orm::FromQueryResult;
    let ids: Vec<String> = Claimed::find_by_statement(stmt).all(conn).await?.into_iter().map(|c| c.id).collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    work_orders::Entity::find()
        .filter(work_orders::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(view)
        .collect()
}

/// Claims the right to comment on an order now: `true` (and the time
/// recorded) when the last comment is older than `interval` or there was none.
pub async fn claim_comment<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    interval: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let res = work_orders::Entity::update_many()
        .col_expr(work_orders::Column::LastCommentAt, Expr::value(Some(now)))
        .filter(work_orders::Column::Id.eq(id))
        .filter(
            sea_orm::Condition::any()
                .add(work_orders::Column::LastCommentAt.is_null())
                .add(work_orders::Column::LastCommentAt.lte(now - interval)),
        )
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Whether the last `n` orders of a connector that finished delivery all
/// failed (a connector failing permanently, e.g. after a vendor change).
pub async fn recently_all_failed<C: ConnectionTrait>(conn: &C, connector: &str, n: u64) -> Result<bool, StoreError> {
    use sea_orm::QuerySelect;
    let last: Vec<String> = work_orders::Entity::find()
        .select_only()
        .column(work_orders::Column::Status)
        .filter(work_orders::Column::Connector.eq(connector))
        .filter(work_orders::Column::Status.ne(OrderStatus::Pending.as_str()))
        .order_by_desc(work_orders::Column::UpdatedAt)
        .limit(n)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(last.len() as u64 == n && last.iter().all(|s| s == OrderStatus::Failed.as_str()))
}

/// Orders that are open (pending to in progress).
pub async fn count_open<C: ConnectionTrait>(conn: &C) -> Result<u64, StoreError> {
    use sea_orm::PaginatorTrait;
    Ok(work_orders::Entity::find().filter(work_orders::Column::OpenKey.is_not_null()).count(conn).await?)
}

/// A status change not yet published as a lifecycle event, with what the
/// event carries about its order.
#[derive(Debug, Clone)]
pub struct Unpublished {
    pub id: String,
    pub change: StatusChange,
    pub order: WorkOrder,
}

/// The oldest unpublished status changes (at most `limit`).
pub async fn unpublished<C: ConnectionTrait>(conn: &C, limit: u64) -> Result<Vec<Unpublished>, StoreError> {
    use sea_orm::QuerySelect;
    let rows = status_history::Entity::find()
        .filter(status_history::Column::PublishedAt.is_null())
        .order_by_asc(status_history::Column::RecordedAt)
        .order_by_asc(status_history::Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    // Their orders in one statement, not one each.
    let ids: Vec<&str> = rows.iter().map(|m| m.work_order_id.as_str()).collect();
    let orders = get_many(conn, &ids).await?;
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        let order = orders
            .get(&m.work_order_id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("work order {}", m.work_order_id)))?;
        out.push(Unpublished {
            id: m.id,
            change: StatusChange {
                status: OrderStatus::parse(&m.status).ok_or_else(|| corrupt("history status", &m.status))?,
                external_status: m.external_status,
                source: m.source,
                at: m.at,
                recorded_at: m.recorded_at,
                note: m.note,
            },
            order,
        });
    }
    Ok(out)
}

pub async fn mark_published<C: ConnectionTrait>(
    conn: &C,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    status_history::Entity::update_many()
        .col_expr(status_history::Column::PublishedAt, Expr::value(Some(now)))
        .filter(status_history::Column::Id.is_in(ids.to_vec()))
        .exec(conn)
        .await?;
    Ok(())
}
