//! The review before the EAM: a proposal approved (on to the outbox),
//! rejected, expired or withdrawn, each a move out of `proposed` recorded
//! in the status history with its review step.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr};

use super::{StatusUpdate, WorkOrder, add_history, get, history_row};
use crate::domain::{OrderStatus, ReviewAction};
use crate::store::StoreError;
use crate::store::entities::work_orders;

/// Moves a proposal out of `proposed` as `action` says; `false` (nothing
/// written) when the order is not (or no longer) a proposal.
async fn try_move<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    action: ReviewAction,
    source: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let status = action.status();
    let mut q = work_orders::Entity::update_many()
        .col_expr(work_orders::Column::Status, status.as_str().into())
        .col_expr(work_orders::Column::UpdatedAt, now.into())
        .col_expr(work_orders::Column::ExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(work_orders::Column::ReviewedAt, Expr::value(Some(now)))
        .col_expr(work_orders::Column::ReviewOutcome, Expr::value(Some(action.as_str())))
        .filter(work_orders::Column::Id.eq(id))
        .filter(work_orders::Column::Status.eq(OrderStatus::Proposed.as_str()));
    if !status.is_open() {
        q = q.col_expr(work_orders::Column::OpenKey, Expr::value(Option::<String>::None));
    }
    if q.exec(conn).await?.rows_affected == 0 {
        return Ok(false);
    }
    let u = StatusUpdate { status, external_status: None, source, at: now, note };
    let mut row = history_row(id, &u, now, None);
    row.review = Some(action.as_str().to_owned());
    add_history(conn, row).await?;
    Ok(true)
}

/// Ends a proposal's review (approved, rejected, expired, withdrawn) and
/// returns the order. Not found, or a conflict when it is not proposed.
/// An approved order is `pending`: the caller puts it in the outbox in the
/// same transaction.
pub async fn review_move<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    action: ReviewAction,
    source: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<WorkOrder, StoreError> {
    if action == ReviewAction::Proposed {
        return Err(StoreError::Conflict("an order is proposed only when a review rule opens it".into()));
    }
    if !try_move(conn, id, action, source, note, now).await? {
        let order = get(conn, id).await?;
        return Err(StoreError::Conflict(format!(
            "work order {id} is {}, not proposed: only a proposal can be {}",
            order.status.as_str(),
            action.as_str()
        )));
    }
    get(conn, id).await
}

/// Ends as `expired` up to `limit` proposals whose expiry is past; returns
/// their ids. A proposal reviewed concurrently is left to that review.
pub async fn expire_due<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<String>, StoreError> {
    let due: Vec<(String, Option<DateTime<Utc>>)> = work_orders::Entity::find()
        .select_only()
        .column(work_orders::Column::Id)
        .column(work_orders::Column::ProposedAt)
        .filter(work_orders::Column::ExpiresAt.lte(now))
        .filter(work_orders::Column::Status.eq(OrderStatus::Proposed.as_str()))
        .order_by_asc(work_orders::Column::ExpiresAt)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    let mut expired = Vec::with_capacity(due.len());
    for (id, proposed_at) in due {
        let note = match proposed_at {
            Some(at) => format!("not reviewed since {}", at.to_rfc3339()),
            None => "not reviewed in time".to_owned(),
        };
        if try_move(conn, &id, ReviewAction::Expired, "workbridge", Some(&note), now).await? {
            expired.push(id);
        }
    }
    Ok(expired)
}
