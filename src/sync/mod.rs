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
pub use crate::store::work_orders::StatusUpdate;

/// Applies a reported status; `false` when it changes nothing (repeats are
/// harmless).
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    order_id: &str,
    r: StatusUpdate<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    work_orders::change_status(conn, order_id, &r, now).await
}

/// Records the EAM's closure code as feedback when the connector maps it
/// (`feedback_codes`); `true` when it did.
pub async fn closure_feedback<C: ConnectionTrait>(
    conn: &C,
    connector: &crate::decisions::stored_connectors::StoredConnector,
    order_id: &str,
    code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(code) = code else { return Ok(false) };
    let Some(verdict) = connector.feedback_codes.get(code) else { return Ok(false) };
    let input = crate::store::feedback::FeedbackInput {
        verdict: *verdict,
        comment: Some(format!("closure code {code:?} in {}", connector.name)),
        author: connector.name.clone(),
    };
    crate::store::feedback::add(conn, order_id, &input, "eam", now).await?;
    Ok(true)
}
