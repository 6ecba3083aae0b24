//! Reads for the API: one order, many by id, the filtered list, an order's
//! status history, and the count of open orders.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{StatusChange, WorkOrder, view};
use crate::domain::{HistoryFlag, OrderStatus};
use crate::store::entities::{status_history, work_orders};
use crate::store::{Page, PageRequest, StoreError, corrupt, filtered, paged, paged_in};

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

/// Which proposals to list: as for orders.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProposalFilter {
    pub asset: Option<String>,
    pub site: Option<String>,
    /// Rule id.
    pub rule: Option<String>,
    /// Proposed at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Proposed before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

/// Open proposals, oldest first (the review queue).
pub async fn list_proposals<C: ConnectionTrait>(
    conn: &C,
    f: &ProposalFilter,
    page: PageRequest,
) -> Result<Page<WorkOrder>, StoreError> {
    let q = work_orders::Entity::find().filter(work_orders::Column::Status.eq(OrderStatus::Proposed.as_str()));
    let q = filtered(
        q,
        &[
            (work_orders::Column::AssetId, &f.asset),
            (work_orders::Column::Site, &f.site),
            (work_orders::Column::RuleId, &f.rule),
        ],
        work_orders::Column::CreatedAt,
        f.since,
        f.until,
    );
    let order = [work_orders::Column::CreatedAt, work_orders::Column::Id];
    paged_in(conn, q, &order, sea_orm::Order::Asc, page, view).await
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
                flag: m.flag.as_deref().and_then(HistoryFlag::parse),
                review: m.review.as_deref().and_then(crate::domain::ReviewAction::parse),
            })
        })
        .collect()
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

/// Orders that are open (pending to in progress).
pub async fn count_open<C: ConnectionTrait>(conn: &C) -> Result<u64, StoreError> {
    use sea_orm::PaginatorTrait;
    Ok(work_orders::Entity::find().filter(work_orders::Column::OpenKey.is_not_null()).count(conn).await?)
}
