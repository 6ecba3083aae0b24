//! The REST API: thin actix handlers, each documented with utoipa. The
//! OpenAPI document is generated from the same router that serves requests.

mod api_keys;
mod assets;
pub mod auth;
mod connectors;
pub mod console;
mod events;
pub mod extract;
pub mod headers;
mod health;
mod kpis;
pub mod problem;
mod redecide;
mod review;
mod rules;
mod sandbox;
mod schema;
mod suppressions;
mod webhooks;
mod work_orders;

use std::sync::Arc;

use actix_web::web;
use futures_util::StreamExt;
use utoipa::OpenApi;
use utoipa_actix_web::{AppExt, service_config::ServiceConfig};

use crate::broker::BrokerStatus;
use crate::clock::Clock;
use crate::config::HttpSettings;
use crate::decisions::Decider;
use crate::store::Store;
use problem::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub decider: Decider,
    pub clock: Arc<dyn Clock>,
    pub http: HttpSettings,
    pub broker: Arc<BrokerStatus>,
    pub amqp_enabled: bool,
    pub breakers: Arc<crate::connectors::breaker::Breakers>,
    /// Builds connectors (for checks) and knows the secret and destination policies.
    pub registry: crate::connectors::registry::Registry,
    /// Failed authentications per client, to slow guessing.
    pub auth_failures: Arc<auth::AuthFailures>,
}

/// Declares the bearer API key scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key: Authorization: Bearer <key>. Roles: admin, planner, viewer, ingest.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    info(
        title = "workbridge",
        description = "Turns alert, anomaly and data-quality events from a plant's trusted data layer into work orders in EAM systems, and follows them.\n\nEvery /v1 route needs an API key (`Authorization: Bearer <key>`) whose role allows it: viewer reads, planner also gives feedback, retries and moves sandbox orders, ingest posts events, admin does everything. Missing or unknown key: 401; wrong role: 403. GET /v1/me answers any valid key with its name and role. /healthz, /readyz, /metrics, /openapi.json, /docs, the signed /v1/webhooks and the web console (/ and /console/) are open.\n\nErrors are RFC 9457 `application/problem+json` documents with a stable `type` (`urn:workbridge:problem:<code>`).\n\nLists are paginated with `limit` (1–500, default 50) and `offset`, and return `total`.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "events", description = "Ingest CloudEvents and see what became of them"),
        (name = "assets", description = "The asset registry and how events map to it"),
        (name = "rules", description = "Rules that decide whether an event needs work"),
        (name = "connectors", description = "Where orders are created"),
        (name = "suppressions", description = "Maintenance windows and shelving: matched events that open no order"),
        (name = "work-orders", description = "Orders and their history"),
        (name = "webhooks", description = "Status changes pushed by EAM systems (signed)"),
        (name = "kpis", description = "How well the rules and the EAM round trip do"),
        (name = "sandbox", description = "The EAM simulated inside workbridge"),
        (name = "api-keys", description = "API keys and their roles"),
        (name = "operations", description = "Health, readiness, metrics and the audit trail")
    )
)]
struct ApiDoc;

/// Declares every documented route once, with who may call it: `routes`
/// registers the handlers in this order and `route_access` gives the
/// authorization table the same routes in the same order, so that the
/// access of a request is the access of the handler the router picks.
macro_rules! routes {
    ($($access:expr => $handler:path,)*) => {
        /// Registers every documented route.
        pub fn routes(cfg: &mut ServiceConfig) {
            $(cfg.service($handler);)*
        }

        /// Each route's methods, pattern and access, in registration order.
        fn route_access() -> Vec<(Vec<actix_web::http::Method>, String, auth::Access)> {
            vec![$((
                <$handler as utoipa::Path>::methods().into_iter().map(http_method).collect(),
                <$handler as utoipa::Path>::path(),
                $access,
            ),)*]
        }
    };
}

routes! {
    auth::INGEST => events::post_events,
    auth::VIEWER => events::list_events,
    auth::ADMIN => redecide::redecide_events,
    // Before `/v1/events/{id}`, which would take it for an id.
    auth::VIEWER => events::unmapped_subjects,
    auth::VIEWER => events::get_event,
    auth::VIEWER => redecide::get_redecide_job,
    auth::VIEWER => assets::list_assets,
    auth::ADMIN => assets::create_asset,
    auth::ADMIN => assets::bulk_assets,
    auth::VIEWER => assets::get_asset,
    auth::ADMIN => assets::put_asset,
    auth::ADMIN => assets::delete_asset,
    auth::VIEWER => assets::list_patterns,
    auth::ADMIN => assets::create_pattern,
    auth::ADMIN => assets::delete_pattern,
    auth::VIEWER => rules::list_rules,
    auth::ADMIN => rules::create_rule,
    auth::VIEWER => rules::get_rule,
    auth::ADMIN => rules::put_rule,
    auth::ADMIN => rules::delete_rule,
    auth::VIEWER => rules::rule_versions,
    auth::PLANNER => rules::test_rules,
    auth::PLANNER => rules::backtest_rules,
    auth::VIEWER => suppressions::list_suppressions,
    auth::ADMIN => suppressions::create_suppression,
    auth::ADMIN => suppressions::delete_suppression,
    auth::VIEWER => connectors::list_connectors,
    auth::ADMIN => connectors::create_connector,
    auth::VIEWER => connectors::get_connector,
    auth::ADMIN => connectors::put_connector,
    auth::ADMIN => connectors::delete_connector,
    auth::ADMIN => connectors::check_connector,
    auth::VIEWER => work_orders::list_work_orders,
    auth::VIEWER => work_orders::get_work_order,
    auth::PLANNER => work_orders::retry_work_order,
    auth::PLANNER => work_orders::add_feedback,
    auth::VIEWER => work_orders::list_deliveries,
    auth::VIEWER => review::list_proposals,
    auth::PLANNER => review::approve_proposal,
    auth::PLANNER => review::reject_proposal,
    auth::PLANNER => review::bulk_approve,
    auth::PLANNER => review::bulk_reject,
    auth::Access::Open => webhooks::receive_webhook,
    auth::VIEWER => sandbox::list_sandbox_orders,
    auth::VIEWER => sandbox::get_sandbox_order,
    auth::PLANNER => sandbox::set_sandbox_status,
    auth::Access::Open => health::healthz,
    auth::VIEWER => kpis::get_kpis,
    auth::VIEWER => kpis::get_rule_kpis,
    auth::VIEWER => kpis::get_kpi_series,
    auth::ADMIN => api_keys::list_keys,
    auth::ADMIN => api_keys::create_key,
    auth::ADMIN => api_keys::revoke_key,
    auth::ADMIN => api_keys::list_audit,
    auth::ANY_KEY => api_keys::me,
    auth::Access::Open => health::readyz,
    auth::Access::Metrics => health::metrics,
}

fn http_method(m: utoipa::openapi::path::HttpMethod) -> actix_web::http::Method {
    use actix_web::http::Method;
    use utoipa::openapi::path::HttpMethod;
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// The OpenAPI document, as served at `/openapi.json` and committed at
/// `openapi/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) =
        actix_web::App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(routes).split_for_parts();
    document_common_responses(&mut api);
    schema::refine(&mut api);
    api
}

/// What every operation can answer besides its own responses, applied in
/// one place so that the document says what the middleware and the
/// extractors really do: 401/403 from the API-key check (open routes carry
/// an empty security requirement instead), 400/413/415/422 from reading a
/// body, 400 from a query parameter the operation does not take (on every
/// operation: `extract::check_query`), and 422 from a query that does not parse.
fn document_common_responses(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build()
    };
    for (path, item) in api.paths.paths.iter_mut() {
        for (method, op) in [
            (actix_web::http::Method::GET, item.get.as_mut()),
            (actix_web::http::Method::POST, item.post.as_mut()),
            (actix_web::http::Method::PUT, item.put.as_mut()),
            (actix_web::http::Method::DELETE, item.delete.as_mut()),
        ] {
            let Some(op) = op else { continue };
            let mut add = |status: &str, description: &str| {
                if !op.responses.responses.contains_key(status) {
                    op.responses.responses.insert(status.into(), problem(description).into());
                }
            };
            let access = auth::access_of(&method, path).unwrap_or(auth::ADMIN);
            if auth::need(access, false) == auth::Need::Nothing {
                op.security = Some(vec![SecurityRequirement::default()]);
            } else {
                add("401", "No API key, or an unknown or revoked one");
                add("403", "The key's role does not allow this");
                add("429", "Too many unknown keys from this address: refused until the window ends (Retry-After)");
            }
            // Every operation of the document refuses query parameters it
            // does not declare (`extract::check_query`), and a body that is
            // not JSON: both are a 400 naming the parameter or the body.
            add(
                "400",
                if op.request_body.is_some() {
                    "Malformed body (not JSON, or not the JSON type expected), or a query parameter this operation \
                     does not take"
                } else {
                    "A query parameter this operation does not take"
                },
            );
            if op.request_body.is_some() {
                add("413", "Body too large");
                add("415", "Unsupported Content-Type");
                add("422", "Validation failed");
            }
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
            if has_query {
                add("422", "A query parameter is not valid");
            }
            // OpenAPI requires a description on every response: where a
            // handler gives none, the status's reason phrase.
            for (status, response) in op.responses.responses.iter_mut() {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    let reason = status
                        .parse::<u16>()
                        .ok()
                        .and_then(|code| actix_web::http::StatusCode::from_u16(code).ok())
                        .and_then(|code| code.canonical_reason());
                    response.description = reason.unwrap_or("Response").to_owned();
                }
            }
        }
    }
}

/// Reads a request body up to `limit` bytes (413 past it).
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::Malformed(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { size: body.len() + chunk.len(), limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The media type of a request, lower-cased, without parameters.
fn mime(req: &actix_web::HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Records a change in the audit trail, in the transaction that makes the
/// change: both are committed, or neither.
#[allow(clippy::too_many_arguments)]
async fn audit(
    txn: &crate::store::DatabaseTransaction,
    state: &AppState,
    actor: &crate::store::audit::Actor,
    action: &str,
    entity: &str,
    id: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    crate::store::audit::record(txn, actor, action, entity, id, before, after, state.clock.now()).await?;
    Ok(())
}

/// Begins the transaction of a change and its audit entry.
async fn begin(state: &AppState) -> Result<crate::store::DatabaseTransaction, ApiError> {
    Ok(state.store.begin().await?)
}

/// Commits a change with its audit entry.
async fn commit(txn: crate::store::DatabaseTransaction) -> Result<(), ApiError> {
    use crate::store::StoreError;
    txn.commit().await.map_err(StoreError::from)?;
    Ok(())
}

fn json_of(v: &impl serde::Serialize) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}
