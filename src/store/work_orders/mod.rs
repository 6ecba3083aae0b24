//! Work orders and their status history. This module holds the types and the
//! helpers its callers share; the queries are split by caller: `opening`
//! (the decisions open and merge orders), `delivery` (the dispatcher records
//! what the EAM said), `polling` (status polls, webhooks and lifecycle
//! publishing) and `reads` (the API's lists and lookups).

mod delivery;
mod opening;
mod polling;
mod reads;
mod review;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};
use serde::Serialize;
use utoipa::ToSchema;

use super::entities::{status_history, work_orders};
use super::{StoreError, corrupt, new_id};
use crate::domain::{EamRef, ExternalId, HistoryFlag, OrderStatus, ReviewAction, Transition, WorkOrderId};

pub use delivery::{clear_last_error, mark_delivered_many, recently_all_failed, reopen_for_retry, set_last_error};
pub use opening::{
    claim_comment, insert_open, insert_open_many, last_closed, merge_into_open, merge_many, open_by_keys,
};
pub use polling::{claim_for_poll, find_for_connector, mark_published, release_poll_claims, unpublished};
pub use reads::{OrderFilter, ProposalFilter, count_open, get, get_many, history, list, list_proposals};
pub use review::{expire_due, review_move};

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
    /// The site the EAM keeps the order under (Maximo `siteid`), when it
    /// numbers orders per site.
    pub external_site: Option<String>,
    /// The EAM's time of the status last applied: a report older than this
    /// is stale and does not move the order.
    pub status_at: Option<DateTime<Utc>>,
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
    /// Opened by a rule in review mode: when it was proposed.
    pub proposed_at: Option<DateTime<Utc>>,
    /// An open proposal's expiry (its rule's `expire_after_hours`).
    pub expires_at: Option<DateTime<Utc>>,
    /// How a proposal's review ended (approved, rejected, expired,
    /// withdrawn), and when.
    pub review: Option<ReviewAction>,
    pub reviewed_at: Option<DateTime<Utc>>,
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

    /// How later calls reach the order in the EAM, once it was delivered.
    pub fn eam_ref(&self) -> Option<EamRef> {
        Some(EamRef::new(self.eam_id()?).at_site(self.external_site.clone()).with_url(self.external_url.clone()))
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
        external_site: m.external_site,
        status_at: m.status_at,
        event_count: m.event_count,
        first_event_time: m.first_event_time,
        last_event_time: m.last_event_time,
        created_at: m.created_at,
        updated_at: m.updated_at,
        delivered_at: m.delivered_at,
        last_error: m.last_error,
        due_by: m.due_by,
        trace: m.trace,
        proposed_at: m.proposed_at,
        expires_at: m.expires_at,
        review: m.review_outcome.as_deref().and_then(ReviewAction::parse),
        reviewed_at: m.reviewed_at,
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
    /// Opened by a rule in review mode: a proposal, not sent to the EAM
    /// until approved; `Some(expiry)` when its rule sets one.
    pub review: Option<Option<DateTime<Utc>>>,
}

fn history_row(
    order_id: &str,
    u: &StatusUpdate<'_>,
    now: DateTime<Utc>,
    flag: Option<HistoryFlag>,
) -> status_history::Model {
    status_history::Model {
        id: new_id(),
        work_order_id: order_id.to_owned(),
        status: u.status.as_str().to_owned(),
        external_status: u.external_status.map(str::to_owned),
        source: u.source.to_owned(),
        at: u.at,
        recorded_at: now,
        note: u.note.map(str::to_owned),
        // A stale report moved nothing: no lifecycle event announces it.
        published_at: (flag == Some(HistoryFlag::Stale)).then_some(now),
        flag: flag.map(|f| f.as_str().to_owned()),
        review: None,
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
    /// Set when the entry did not move the order as reported (`stale`,
    /// `noted`) or moved it along a transition the lifecycle does not know
    /// (`illegal`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<HistoryFlag>,
    /// The step of the review before the EAM this entry records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewAction>,
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

/// What applying a reported status did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The order moved (along a legal transition).
    Moved,
    /// The order moved along a transition the lifecycle does not know:
    /// followed, because the EAM is the system of record, and flagged.
    MovedIllegally,
    /// Already in that status: nothing recorded (repeats are harmless).
    Unchanged,
    /// Older than the status last applied: recorded as stale, not applied.
    Stale,
}

impl Applied {
    pub fn moved(self) -> bool {
        matches!(self, Self::Moved | Self::MovedIllegally)
    }
}

/// Moves an order to a reported status along the lifecycle
/// (`OrderStatus::transition_to`) and records it; an order that is no
/// longer open releases its dedup key. `true` when the order moved.
pub async fn change_status<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    u: &StatusUpdate<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(apply_status(conn, id, None, u, now).await?.moved())
}

/// As `change_status`, starting from the order's state as the caller read
/// it (`known`: status and `status_at`), which saves a read per order when
/// a poll applies many; a concurrent change is noticed and read again.
pub async fn apply_status<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    known: Option<(OrderStatus, Option<DateTime<Utc>>)>,
    u: &StatusUpdate<'_>,
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    let mut known = known;
    loop {
        let (current, status_at) = match known.take() {
            Some(k) => k,
            None => {
                let order = get(conn, id).await?;
                (order.status, order.status_at)
            }
        };
        // workbridge's own moves (a clear's cancel, a retry) are decisions,
        // not reports: never stale, whatever the EAM's clock said last.
        let own = u.source == "workbridge";
        if !own && status_at.is_some_and(|last| u.at < last) {
            if current == u.status {
                return Ok(Applied::Unchanged);
            }
            tracing::info!(
                order = id,
                reported = u.status.as_str(),
                source = u.source,
                "stale status report recorded, not applied"
            );
            add_history(conn, history_row(id, u, now, Some(HistoryFlag::Stale))).await?;
            return Ok(Applied::Stale);
        }
        let transition = current.transition_to(u.status);
        if transition == Transition::Unchanged {
            return Ok(Applied::Unchanged);
        }
        let mut q = work_orders::Entity::update_many()
            .col_expr(work_orders::Column::Status, u.status.as_str().into())
            .col_expr(work_orders::Column::UpdatedAt, now.into())
            .col_expr(work_orders::Column::StatusAt, Expr::value(Some(status_at.map_or(u.at, |last| last.max(u.at)))))
            .filter(work_orders::Column::Id.eq(id))
            .filter(work_orders::Column::Status.eq(current.as_str()));
        if !u.status.is_open() {
            q = q.col_expr(work_orders::Column::OpenKey, Expr::value(Option::<String>::None));
        }
        if q.exec(conn).await?.rows_affected == 0 {
            // Changed meanwhile (or unknown: `get` says which): decide again.
            continue;
        }
        let flag = (transition == Transition::Illegal).then_some(HistoryFlag::Illegal);
        if flag.is_some() {
            tracing::warn!(
                order = id,
                from = current.as_str(),
                to = u.status.as_str(),
                source = u.source,
                "a transition the lifecycle does not allow: followed, flagged in the history"
            );
        }
        add_history(conn, history_row(id, u, now, flag)).await?;
        return Ok(if flag.is_some() { Applied::MovedIllegally } else { Applied::Moved });
    }
}

/// Records a fact about an order that does not move it (flagged `noted`).
pub async fn note_history<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    u: &StatusUpdate<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    add_history(conn, history_row(id, u, now, Some(HistoryFlag::Noted))).await
}

/// A create the EAM confirmed.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub order_id: WorkOrderId,
    pub external_id: ExternalId,
    pub external_url: Option<String>,
    /// The site the EAM keeps the order under, when it says.
    pub external_site: Option<String>,
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
