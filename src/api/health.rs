use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::connectors::breaker::CircuitState;
use crate::decisions::stored_connectors as connectors;
use crate::domain::EventOutcome;
use crate::store::{events, outbox, work_orders};

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
    /// Every connector's health. Connectors do not make the service
    /// unready: events are still stored and decided while one is down.
    /// Shown only to a request with a valid API key (any role), as are the
    /// counts and error texts above: without one, `/readyz` tells only
    /// whether the service is ready, and which dependency is down.
    pub connectors: std::collections::BTreeMap<String, ConnectorHealth>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectorHealth {
    /// False when its circuit is open or its last 3 deliveries all failed.
    pub healthy: bool,
    /// This replica's circuit breaker.
    pub circuit: CircuitState,
    /// The last 3 orders through it all failed delivery.
    pub failing: bool,
}

/// Readiness: the database and (when enabled) RabbitMQ are reachable.
/// Without an API key only the plain status; with one (any role), the
/// counts, errors and every connector's health too.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "A dependency is down", body = Readiness),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>, req: actix_web::HttpRequest) -> HttpResponse {
    use actix_web::HttpMessage;
    let detailed = req.extensions().get::<crate::store::api_keys::ApiKey>().is_some();
    // Bounded: a database that is away would otherwise hold the probe for
    // the pool's acquire timeout, and probes expect an answer within seconds.
    let db = match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    };
    let conn = state.store.conn();
    let (outbox_pending, unmapped_events) = if db.is_ok() && detailed {
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
            error: db.as_ref().err().map(|_| "database unreachable".to_owned()),
        },
        broker: Dependency {
            ok: broker_ok,
            enabled: state.amqp_enabled,
            error: match (broker_ok, detailed) {
                (true, _) => None,
                (false, true) => Some(broker.last_error.unwrap_or_else(|| "connecting".into())),
                (false, false) => Some("broker unreachable".into()),
            },
        },
        outbox_pending,
        unmapped_events,
        connectors: if db.is_ok() && detailed { connector_health(&state).await } else { Default::default() },
    };
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

async fn connector_health(state: &AppState) -> std::collections::BTreeMap<String, ConnectorHealth> {
    let circuits: std::collections::HashMap<_, _> = state.breakers.states(state.clock.now()).into_iter().collect();
    let mut out = std::collections::BTreeMap::new();
    let Ok(all) = connectors::list(state.store.conn()).await else { return out };
    for c in all {
        let circuit = circuits.get(&c.name).copied().unwrap_or(CircuitState::Closed);
        let failing = work_orders::recently_all_failed(state.store.conn(), &c.name, 3).await.unwrap_or(false);
        out.insert(c.name, ConnectorHealth { healthy: circuit == CircuitState::Closed && !failing, circuit, failing });
    }
    out
}

/// Prometheus metrics (OpenMetrics text): events by type and outcome,
/// refused input, EAM calls by connector, kind and outcome, their latency,
/// consumer redeliveries, outbox depth, open orders, connector health.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = state.decider.metrics();
    let conn = state.store.conn();
    if let Ok(n) = outbox::pending_count(conn).await {
        m.outbox_depth.set(n as i64);
    }
    if let Ok(n) = work_orders::count_open(conn).await {
        m.orders_open.set(n as i64);
    }
    for (name, health) in connector_health(&state).await {
        m.connector_healthy
            .get_or_create(&crate::metrics::ConnectorLabels { connector: name })
            .set(i64::from(health.healthy));
    }
    HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(m.render())
}
