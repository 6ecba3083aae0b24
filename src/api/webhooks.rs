use actix_web::{HttpRequest, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use super::{AppState, read_body};
use crate::decisions::stored_connectors;
use crate::domain::{ExternalId, WorkOrderId};
use crate::store::{StoreError, TransactionTrait, connectors, work_orders};
use crate::sync::{self, webhooks};

#[derive(Serialize, ToSchema)]
pub struct WebhookResult {
    /// False when the status was already the order's (nothing changed) or
    /// the report is stale.
    pub applied: bool,
    /// True when this `webhook-id` was received before: nothing happened.
    pub duplicate: bool,
    /// True when `changed_at` is older than the status last applied: the
    /// report is recorded in the history as stale and does not move the
    /// order (a replay or a late delivery cannot move it backwards).
    #[serde(default)]
    pub stale: bool,
    pub work_order_id: Option<String>,
    pub status: Option<crate::domain::OrderStatus>,
}

/// Status changes pushed by an EAM (an outbound REST message, a middleware
/// flow or a script), signed per the Standard Webhooks specification with
/// one of the connector's `webhook.secrets`. The body names the order (our
/// `reference` or the EAM's `external_id`) and the EAM's status word, which
/// the connector's status map turns into the common lifecycle. A repeated
/// `webhook-id` answers 200 with `duplicate: true` and changes nothing.
#[utoipa::path(
    tag = "webhooks",
    params(
        ("connector" = String, Path),
        ("webhook-id" = String, Header, description = "Unique per message; the same on retries"),
        ("webhook-timestamp" = i64, Header, description = "Unix seconds; refused when more than 5 minutes off"),
        ("webhook-signature" = String, Header, description = "Space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`"),
    ),
    request_body = crate::sync::webhooks::StatusReport,
    responses(
        (status = 200, body = WebhookResult),
        (status = 401, description = "Unknown connector, or a missing, stale or wrong signature (one answer for all)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown order or status", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/webhooks/{connector}")]
pub async fn receive_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<web::Json<WebhookResult>, ApiError> {
    let body = read_body(payload, state.http.max_body_bytes).await?;
    // An unknown connector, one without webhooks, a secret that cannot be
    // read and a bad signature all answer the same 401, so that the
    // endpoint does not tell which connectors exist.
    let rejected = || ApiError::Unauthorized("webhook rejected: unknown connector or bad signature".into());
    let connector = stored_connectors::get(state.store.conn(), &name).await?.ok_or_else(rejected)?;
    let settings = connector.webhook.as_ref().ok_or_else(rejected)?;
    let mut secrets = Vec::with_capacity(settings.secrets.len());
    for s in &settings.secrets {
        match s.resolve(state.registry.secrets()).and_then(|raw| webhooks::decode_secret(&raw)) {
            Ok(secret) => secrets.push(secret),
            // A configuration error, not the sender's: the operator sees it in the log.
            Err(e) => {
                tracing::error!(connector = %name, error = %e, "a webhook secret of this connector cannot be used")
            }
        }
    }
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let webhook_id = header("webhook-id");
    let now = state.clock.now();
    // Off the async workers: one MAC per secret over a body of up to the
    // request limit.
    let checked = {
        let (id, ts, sig, body) =
            (webhook_id.clone(), header("webhook-timestamp"), header("webhook-signature"), body.clone());
        web::block(move || webhooks::verify(&secrets, id.as_deref(), ts.as_deref(), sig.as_deref(), &body, now))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
    };
    if let Err(e) = checked {
        tracing::warn!(connector = %name, reason = %e, client = ?req.peer_addr().map(|a| a.ip()), "webhook rejected");
        return Err(rejected());
    }
    let report: webhooks::StatusReport =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("status report: {e}")))?;
    let status = connector.config.lifecycle_status(&report.status, &settings.statuses).ok_or_else(|| {
        ApiError::Validation(format!("status {:?} is not in the status map of connector {name}", report.status))
    })?;
    let webhook_id = webhook_id.unwrap_or_default();

    let txn = state.store.conn().begin().await.map_err(StoreError::from)?;
    if !connectors::record_webhook(&txn, &name, &webhook_id, now, now - webhooks::replay_window()).await? {
        txn.rollback().await.map_err(StoreError::from)?;
        return Ok(web::Json(WebhookResult {
            applied: false,
            duplicate: true,
            stale: false,
            work_order_id: None,
            status: None,
        }));
    }
    // The report's ids are plain strings in the API; typed from here on.
    let reference = report.reference.as_deref().map(WorkOrderId::from);
    let external_id = report.external_id.as_deref().map(ExternalId::from);
    let order = work_orders::find_for_connector(&txn, &name, reference.as_ref(), external_id.as_ref())
        .await?
        .ok_or_else(|| {
            ApiError::Validation(format!("no order of connector {name} matches the report's reference or external_id"))
        })?;
    let outcome = work_orders::apply_status(
        &txn,
        &order.id,
        Some((order.status, order.status_at)),
        &sync::StatusUpdate {
            status,
            external_status: Some(&report.status),
            source: "webhook",
            at: report.changed_at.unwrap_or(now),
            note: report.note.as_deref(),
        },
        now,
    )
    .await?;
    let applied = outcome.moved();
    if applied {
        sync::closure_feedback(&txn, &connector, &order.id, report.closure_code.as_deref(), now).await?;
    }
    txn.commit().await.map_err(StoreError::from)?;
    let stale = outcome == work_orders::Applied::Stale;
    Ok(web::Json(WebhookResult {
        applied,
        duplicate: false,
        stale,
        work_order_id: Some(order.id),
        status: Some(status),
    }))
}
