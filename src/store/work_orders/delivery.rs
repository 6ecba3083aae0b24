//! The dispatcher's writes: creates the EAM confirmed, the last delivery error,
//! whether a connector keeps failing, and the manual retry of a failed order.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr};

use super::{Delivered, StatusUpdate, change_status, find_open, get, history_row};
use crate::domain::HistoryFlag;
use crate::domain::OrderStatus;
use crate::store::StoreError;
use crate::store::entities::{status_history, work_orders};

/// Records creates the EAM confirmed: a few statements for the lot.
/// Orders still pending become `created`. An order a clear cancelled while
/// its create was in flight stays cancelled: the create is noted in its
/// history and its id is returned, for the caller to cancel it in the EAM.
pub async fn mark_delivered_many<C: ConnectionTrait>(
    conn: &C,
    delivered: &[Delivered],
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    use sea_orm::sea_query::{CaseStatement, ExprTrait};
    if delivered.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<&str> = delivered.iter().map(|d| d.order_id.as_str()).collect();
    let mut current = work_orders::Entity::find()
        .select_only()
        .column(work_orders::Column::Id)
        .column(work_orders::Column::Status)
        .filter(work_orders::Column::Id.is_in(ids.iter().copied()))
        // Lock the orders in dedup-key order, as decisions do
        // (`open_by_keys`): updating them in whatever order the scan met
        // them deadlocked with a decision merging into the same orders
        // (PostgreSQL notices only after `deadlock_timeout`, a second).
        .order_by_asc(work_orders::Column::OpenKey)
        .order_by_asc(work_orders::Column::Id);
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        current = current.lock_exclusive();
    }
    let current: Vec<(String, String)> = current.into_tuple().all(conn).await?;
    let status_of = |id: &str| current.iter().find(|(i, _)| i == id).and_then(|(_, s)| OrderStatus::parse(s));
    let id = || Expr::col(work_orders::Column::Id);
    let (mut external_id, mut external_url, mut external_site) =
        (CaseStatement::new(), CaseStatement::new(), CaseStatement::new());
    for d in delivered {
        external_id = external_id.case(id().eq(d.order_id.as_str()), Expr::val(d.external_id.as_str()));
        external_url = external_url.case(id().eq(d.order_id.as_str()), Expr::val(d.external_url.clone()));
        external_site = external_site.case(id().eq(d.order_id.as_str()), Expr::val(d.external_site.clone()));
    }
    let keep = |c: work_orders::Column| Expr::col(c);
    work_orders::Entity::update_many()
        .col_expr(work_orders::Column::ExternalId, external_id.finally(keep(work_orders::Column::ExternalId)).into())
        .col_expr(work_orders::Column::ExternalUrl, external_url.finally(keep(work_orders::Column::ExternalUrl)).into())
        .col_expr(
            work_orders::Column::ExternalSite,
            external_site.finally(keep(work_orders::Column::ExternalSite)).into(),
        )
        .col_expr(work_orders::Column::DeliveredAt, Expr::value(Some(now)))
        .col_expr(work_orders::Column::LastError, Expr::value(Option::<String>::None))
        .filter(work_orders::Column::Id.is_in(ids.iter().copied()))
        .exec(conn)
        .await?;
    // Only a pending order becomes created (one statement in the usual
    // case); one created already (found again by reference) stays as it is.
    let pending: Vec<&str> = ids.iter().copied().filter(|id| status_of(id) == Some(OrderStatus::Pending)).collect();
    let moved: Vec<String> = if pending.is_empty() {
        vec![]
    } else {
        work_orders::Entity::update_many()
            .col_expr(work_orders::Column::Status, OrderStatus::Created.as_str().into())
            .col_expr(work_orders::Column::UpdatedAt, now.into())
            .filter(work_orders::Column::Id.is_in(pending))
            .filter(work_orders::Column::Status.eq(OrderStatus::Pending.as_str()))
            .exec_with_returning(conn)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect()
    };
    let mut rows = Vec::new();
    let mut cancelled = Vec::new();
    for d in delivered {
        let mut update = StatusUpdate {
            status: OrderStatus::Created,
            external_status: d.external_status.as_deref(),
            source: &d.source,
            at: now,
            note: Some("created in the EAM"),
        };
        if moved.iter().any(|m| m == d.order_id.as_str()) {
            rows.push(history_row(d.order_id.as_str(), &update, now, None));
        } else if status_of(d.order_id.as_str()) == Some(OrderStatus::Cancelled) {
            let note = format!(
                "created in the EAM as {} after the order was cancelled here; it is cancelled there next",
                d.external_id
            );
            update.note = Some(&note);
            rows.push(history_row(d.order_id.as_str(), &update, now, Some(HistoryFlag::Noted)));
            cancelled.push(d.order_id.as_str().to_owned());
        }
    }
    crate::store::insert_rows::<status_history::Entity, _>(conn, rows, None).await?;
    Ok(cancelled)
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

pub async fn clear_last_error<C: ConnectionTrait>(conn: &C, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    work_orders::Entity::update_many()
        .col_expr(work_orders::Column::LastError, Expr::value(Option::<String>::None))
        .col_expr(work_orders::Column::UpdatedAt, now.into())
        .filter(work_orders::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
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
