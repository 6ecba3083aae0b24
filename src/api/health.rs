use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::domain::EventOutcome;
use crate::store::{events, outbox};

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(tag = "operations", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok".into() })
}

#[derive(Serialize, ToSchema)]
pub struct Dependency {
    pub ok: bool,
    /// False when this dependency is switched off by configuration.
    pub enabled: bool,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `degraded`.
    pub status: String,
    pub database: Dependency,
    pub broker: Dependency,
    /// Deliveries waiting for the EAM.
    pub outbox_pending: Option<u64>,
    /// Events kept because no asset matched them.
    pub unmapped_events: Option<u64>,
    /// Circuit of each connector used since start-up (this replica).
    pub circuits: std::collections::BTreeMap<String, crate::connectors::breaker::CircuitState>,
}

/// Readiness: the database and (when enabled) RabbitMQ are reachable.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "A dependency is down", body = Readiness),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.store.ping().await;
    let conn = state.store.conn();
    let (outbox_pending, unmapped_events) = if db.is_ok() {
        (outbox::pending_count(conn).await.ok(), events::count_by_outcome(conn, EventOutcome::Unmapped).await.ok())
    } else {
        (None, None)
    };
    let broker = state.broker.get();
    let broker_ok = !state.amqp_enabled || broker.connected;
    let ready = db.is_ok() && broker_ok;
    let body = Readiness {
        status: if ready { "ready" } else { "degraded" }.into(),
        database: Dependency {
            ok: db.is_ok(),
            enabled: true,
            error: db.err().map(|_| "database unreachable".to_owned()),
        },
        broker: Dependency {
            ok: broker_ok,
            enabled: state.amqp_enabled,
            error: if broker_ok { None } else { Some(broker.last_error.unwrap_or_else(|| "connecting".into())) },
        },
        outbox_pending,
        unmapped_events,
        circuits: state.breakers.states(state.clock.now()).into_iter().collect(),
    };
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
