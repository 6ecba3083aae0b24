//! The decisions' writes: opening orders (one or many), locking and reading the
//! open orders of a batch's dedup keys, merging events into them, the
//! comment-on-merge claim and the cooldown's last closed order.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict},
};

use super::{DECIDED, NewOrder, add_history, history_row};
use crate::domain::{OrderStatus, ReviewAction};
use crate::store::entities::{status_history, work_orders};
use crate::store::{StoreError, corrupt};

fn decided(now: DateTime<Utc>, proposed: bool) -> super::StatusUpdate<'static> {
    super::StatusUpdate {
        status: if proposed { OrderStatus::Proposed } else { OrderStatus::Pending },
        external_status: None,
        source: "workbridge",
        at: now,
        note: Some(if proposed { PROPOSED } else { DECIDED }),
    }
}

const PROPOSED: &str = "proposed for review";

/// The first history entry of an order: decided, or proposed for review.
fn first_history(o: &NewOrder, now: DateTime<Utc>) -> crate::store::entities::status_history::Model {
    let proposed = o.review.is_some();
    let mut row = history_row(&o.id, &decided(now, proposed), now, None);
    row.review = proposed.then(|| ReviewAction::Proposed.as_str().to_owned());
    row
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
        status: if o.review.is_some() { OrderStatus::Proposed } else { OrderStatus::Pending }.as_str().to_owned(),
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
        external_site: None,
        status_at: None,
        expires_at: o.review.flatten(),
        proposed_at: o.review.is_some().then_some(now),
        reviewed_at: None,
        review_outcome: None,
    }
}

/// Inserts an open order unless another open order holds the dedup key
/// (then `false`, nothing written): the unique index on `open_key`
/// serialises concurrent decisions, across replicas too.
pub async fn insert_open<C: ConnectionTrait>(conn: &C, o: &NewOrder, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let rows = work_orders::Entity::insert(crate::store::new_row(open_row(o, now)))
        .on_conflict(OnConflict::column(work_orders::Column::OpenKey).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    if rows == 1 {
        add_history(conn, first_history(o, now)).await?;
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
    if crate::store::insert_rows::<work_orders::Entity, _>(conn, rows, Some(&unique)).await? != orders.len() as u64 {
        return Ok(false);
    }
    let history = orders.iter().map(|o| first_history(o, now));
    crate::store::insert_rows::<status_history::Entity, _>(conn, history.collect(), None).await?;
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
                crate::store::values_rows(backend, 2, chunk.len())
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
