//! Work orders and their status history. This module holds the types and the
//! helpers its callers share; the queries are split by caller: `opening`
//! (the decisions open and merge orders), `delivery` (the dispatcher records
//! what the EAM said), `polling` (status polls, webhooks and lifecycle
//! publishing) and `reads` (the API's lists and lookups).

mod delivery;
mod opening;
mod polling;
mod reads;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};
use serde::Serialize;
use utoipa::ToSchema;

use super::entities::{status_history, work_orders};
use super::{StoreError, corrupt, new_id};
use crate::domain::{ExternalId, OrderStatus, WorkOrderId};

pub use delivery::{mark_delivered_many, recently_all_failed, reopen_for_retry, set_last_error};
pub use opening::{
    claim_comment, insert_open, insert_open_many, last_closed, merge_into_open, merge_many, open_by_keys,
};
pub use polling::{claim_for_poll, find_for_connector, mark_published, unpublished};
pub use reads::{OrderFilter, count_open, get, get_many, history, list};

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

impl WorkOrder {
    /// Our id, typed: the reference sent to the EAM. (`id` stays a string
    /// in the API's schema.)
    pub fn order_id(&self) -> WorkOrderId {
        WorkOrderId::new(self.id.as_str())
    }

    /// The EAM's id of this order, once it was delivered.
    pub fn eam_id(&self) -> Option<ExternalId> {
        self.external_id.as_deref().map(ExternalId::from)
    }
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

pub async fn find_open<C: ConnectionTrait>(conn: &C, key: &str) -> Result<Option<String>, StoreError> {
    Ok(work_orders::Entity::find()
        .select_only()
        .column(work_orders::Column::Id)
        .filter(work_orders::Column::OpenKey.eq(key))
        .into_tuple::<String>()
        .one(conn)
        .await?)
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

/// A create the EAM confirmed.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub order_id: WorkOrderId,
    pub external_id: ExternalId,
    pub external_url: Option<String>,
    pub external_status: Option<String>,
    /// `connector:<name>`, the history's source.
    pub source: String,
}

/// A status change not yet published as a lifecycle event, with what the
/// event carries about its order.
#[derive(Debug, Clone)]
pub struct Unpublished {
    pub id: String,
    pub change: StatusChange,
    pub order: WorkOrder,
}
