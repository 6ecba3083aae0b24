//! The dispatcher's writes: creates the EAM confirmed, the last delivery error,
//! whether a connector keeps failing, and the manual retry of a failed order.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr};

use super::{Delivered, StatusUpdate, change_status, find_open, get, history_row};
use crate::domain::OrderStatus;
use crate::store::StoreError;
use crate::store::entities::{status_history, work_orders};

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
    let rows = delivered.iter().filter(|d| moved.iter().any(|m| m == d.order_id.as_str())).map(|d| {
        let note = Some("created in the EAM");
        history_row(d.order_id.as_str(), OrderStatus::Created, d.external_status.as_deref(), &d.source, now, now, note)
    });
    crate::store::insert_rows::<status_history::Entity, _>(conn, rows.collect(), None).await?;
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
