//! Status sync: what an EAM reports about an order becomes a status change
//! and an entry in its history. The sandbox reports directly; polling and
//! webhooks for real EAMs come through the same `apply`.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::domain::OrderStatus;
use crate::store::StoreError;
use crate::store::work_orders::{self, StatusUpdate};

/// A status reported by an EAM.
#[derive(Debug, Clone)]
pub struct Reported<'a> {
    pub status: OrderStatus,
    pub external_status: Option<&'a str>,
    /// sandbox, poll, webhook …
    pub source: &'a str,
    /// When it happened in the EAM (its own timestamp when it gives one).
    pub at: DateTime<Utc>,
    pub note: Option<&'a str>,
}

/// Applies a reported status; `false` when it changes nothing (repeats are
/// harmless).
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    order_id: &str,
    r: Reported<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    work_orders::change_status(
        conn,
        order_id,
        &StatusUpdate {
            status: r.status,
            external_status: r.external_status,
            source: r.source,
            at: r.at,
            note: r.note,
        },
        now,
    )
    .await
}
