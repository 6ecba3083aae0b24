//! What sync reads and writes: claiming delivered orders for a status poll,
//! finding the order a webhook reports on, and the status changes not yet
//! published as lifecycle events.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};

use super::{StatusChange, Unpublished, WorkOrder, get_many, view};
use crate::domain::{ExternalId, HistoryFlag, OrderStatus, WorkOrderId};
use crate::store::entities::{status_history, work_orders};
use crate::store::{StoreError, corrupt};

/// The order of `connector` with our reference or the EAM's id.
pub async fn find_for_connector<C: ConnectionTrait>(
    conn: &C,
    connector: &str,
    reference: Option<&WorkOrderId>,
    external_id: Option<&ExternalId>,
) -> Result<Option<WorkOrder>, StoreError> {
    let mut q = work_orders::Entity::find().filter(work_orders::Column::Connector.eq(connector));
    q = match (reference, external_id) {
        (Some(r), _) => q.filter(work_orders::Column::Id.eq(r.as_str())),
        (None, Some(e)) => q.filter(work_orders::Column::ExternalId.eq(e.as_str())),
        (None, None) => return Ok(None),
    };
    q.one(conn).await?.map(view).transpose()
}

/// Claims up to `limit` followed orders of `connector` for a status poll:
/// delivered orders that are open, or completed since `completed_since`
/// (followed until they close), not polled since `due_before`, least
/// recently polled first, stamped `polled_at = now` in the same statement.
/// Replicas therefore split the orders between them and each order is
/// polled once per interval; on PostgreSQL rows another replica is claiming
/// are skipped (`FOR UPDATE SKIP LOCKED`), on SQLite (one replica) the
/// UPDATE is atomic.
pub async fn claim_for_poll<C: ConnectionTrait>(
    conn: &C,
    connector: &str,
    now: DateTime<Utc>,
    due_before: DateTime<Utc>,
    completed_since: DateTime<Utc>,
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
               SELECT id FROM work_orders WHERE connector = $2 AND external_id IS NOT NULL \
               AND (status IN ('created', 'acknowledged', 'in_progress') \
                    OR (status = 'completed' AND updated_at >= $5)) \
               AND (polled_at IS NULL OR polled_at < $3) \
               ORDER BY polled_at NULLS FIRST, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING id"
        }
        _ => {
            "UPDATE work_orders SET polled_at = ?1 WHERE id IN (\
               SELECT id FROM work_orders WHERE connector = ?2 AND external_id IS NOT NULL \
               AND (status IN ('created', 'acknowledged', 'in_progress') \
                    OR (status = 'completed' AND updated_at >= ?5)) \
               AND (polled_at IS NULL OR polled_at < ?3) \
               ORDER BY polled_at NULLS FIRST, id LIMIT ?4) \
             RETURNING id"
        }
    };
    let values = [now.into(), connector.into(), due_before.into(), (limit as i64).into(), completed_since.into()];
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

/// Gives claimed orders back unpolled (the EAM could not be asked): they
/// are due again at once, not an interval later.
pub async fn release_poll_claims<C: ConnectionTrait>(conn: &C, ids: &[&str]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    work_orders::Entity::update_many()
        .col_expr(work_orders::Column::PolledAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(work_orders::Column::Id.is_in(ids.iter().copied()))
        .exec(conn)
        .await?;
    Ok(())
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
                flag: m.flag.as_deref().and_then(HistoryFlag::parse),
                review: m.review.as_deref().and_then(crate::domain::ReviewAction::parse),
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
