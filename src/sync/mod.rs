//! Status sync: what an EAM reports about an order becomes a status change
//! and an entry in its history. The sandbox reports directly; polling and
//! webhooks for real EAMs come through the same `apply`.

pub mod lifecycle;
pub mod poller;
pub mod webhooks;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::store::StoreError;
use crate::store::work_orders;

/// A status reported by an EAM: the status in the common lifecycle, the
/// EAM's own word, who reported it (sandbox, poll, webhook …) and when it
/// happened in the EAM.
pub use crate::store::work_orders::StatusUpdate as Reported;

/// Applies a reported status; `false` when it changes nothing (repeats are
/// harmless).
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    order_id: &str,
    r: Reported<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    work_orders::change_status(conn, order_id, &r, now).await
}
