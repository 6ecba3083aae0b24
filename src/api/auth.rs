//! API keys with roles. `Authorization: Bearer <key>`; a missing or unknown
//! key is 401, a key whose role does not allow the route is 403, both as
//! problem+json. Health, the API description, the docs and the signed
//! webhooks stay open; `/metrics` too unless `http.protect_metrics`.
//!
//! Who may call a route is decided from the route itself, never from the
//! raw path string: every route is registered together with its [`Access`]
//! (see `api::routes`), and a request is matched against those routes the
//! way actix's router matches it, on the percent-decoded path, in
//! registration order. A request that matches no route needs an admin key
//! (deny by default), so that no spelling of a path reaches another role's
//! handler.

use std::sync::OnceLock;

use actix_web::body::MessageBody;
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use super::AppState;
use super::problem::ApiError;
use crate::store::api_keys::{self, ApiKey, Role};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key: health, the API description, the docs, signed webhooks.
    Open,
    /// `/metrics`: open, or a viewer key with `http.protect_metrics`.
    Metrics,
    /// Any valid key, whatever its role (`/v1/me`).
    AnyKey,
    /// A key whose role covers this one.
    Role(Role),
}

/// What a request must bring: nothing, a valid key, or a key of a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Nothing,
    AnyKey,
    Role(Role),
}

impl Access {
    const ADMIN: Self = Self::Role(Role::Admin);
    const PLANNER: Self = Self::Role(Role::Planner);
    const VIEWER: Self = Self::Role(Role::Viewer);
    const INGEST: Self = Self::Role(Role::Ingest);
}

/// One registered route: its method, its pattern and who may call it.
pub struct Route {
    pub method: Method,
    pub pattern: String,
    def: ResourceDef,
    pub access: Access,
}

/// Every route in registration order, with the routes outside the OpenAPI
/// document (the documentation pages) first.
fn table() -> &'static [Route] {
    static TABLE: OnceLock<Vec<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut routes = vec![
            route(Method::GET, "/docs", Access::Open),
            route(Method::GET, "/docs/{_:.*}", Access::Open),
            route(Method::GET, "/openapi.json", Access::Open),
            // The console's page and assets: the page signs in with a key.
            route(Method::GET, "/", Access::Open),
            route(Method::GET, "/console/{_:.*}", Access::Open),
        ];
        for (methods, path, access) in super::route_access() {
            for m in methods {
                routes.push(route(m, &path, access));
            }
        }
        routes
    })
}

fn route(method: Method, pattern: &str, access: Access) -> Route {
    Route { method, pattern: pattern.to_owned(), def: ResourceDef::new(pattern), access }
}

/// Every route and who may call it (for the OpenAPI document and tests).
pub fn routes() -> &'static [Route] {
    table()
}

/// What a request needs: the access of the first route that matches its
/// method and decoded path, as the router picks it; admin when none does.
pub fn required(method: &Method, decoded_path: &str, protect_metrics: bool) -> Need {
    let access = table()
        .iter()
        .find(|r| r.method == *method && r.def.is_match(decoded_path))
        .map_or(Access::ADMIN, |r| r.access);
    need(access, protect_metrics)
}

/// What an access level asks of a request.
pub fn need(access: Access, protect_metrics: bool) -> Need {
    match access {
        Access::Open => Need::Nothing,
        Access::Metrics if protect_metrics => Need::Role(Role::Viewer),
        Access::Metrics => Need::Nothing,
        Access::AnyKey => Need::AnyKey,
        Access::Role(r) => Need::Role(r),
    }
}

/// The access of the route registered as `pattern` for `method`, if any.
pub fn access_of(method: &Method, pattern: &str) -> Option<Access> {
    table().iter().find(|r| r.method == *method && r.pattern == pattern).map(|r| r.access)
}

pub(super) const ADMIN: Access = Access::ADMIN;
pub(super) const PLANNER: Access = Access::PLANNER;
pub(super) const VIEWER: Access = Access::VIEWER;
pub(super) const INGEST: Access = Access::INGEST;
pub(super) const ANY_KEY: Access = Access::AnyKey;

/// Whether a key's role covers the role a route needs.
pub fn allows(have: Role, need: Role) -> bool {
    matches!(
        (have, need),
        (Role::Admin, _)
            | (Role::Planner, Role::Planner | Role::Viewer)
            | (Role::Viewer, Role::Viewer)
            | (Role::Ingest, Role::Ingest)
    )
}

fn bearer(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

pub async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state else { return next.call(req).await };
    let need = required(req.method(), req.match_info().as_str(), state.http.protect_metrics);
    let token = bearer(&req);
    let client = req.peer_addr().map(|a| a.ip());
    if need == Need::Nothing {
        // Open routes serve everyone; a valid key shows more (`/readyz`).
        if let Some(token) = token
            && state.auth_failures.allowed(client, state.clock.now())
            && let Ok(Some(key)) = api_keys::authenticate(state.store.conn(), &token).await
        {
            req.extensions_mut().insert(key);
        }
        return next.call(req).await;
    }
    let now = state.clock.now();
    if !state.auth_failures.allowed(client, now) {
        tracing::warn!(client = ?client, path = req.path(), "authentication refused: too many failures from this client");
        return Err(ApiError::TooManyFailures { retry_after: state.auth_failures.window_secs() }.into());
    }
    let Some(token) = token else {
        // Logged, not counted: a request without a key guesses nothing.
        tracing::warn!(client = ?client, method = %req.method(), path = req.path(), "authentication failed: no API key");
        return Err(ApiError::Unauthorized("an API key is required: send Authorization: Bearer <key>".into()).into());
    };
    let key: Option<ApiKey> = api_keys::authenticate(state.store.conn(), &token).await.map_err(ApiError::from)?;
    let Some(key) = key else {
        state.auth_failures.failed(client, now);
        tracing::warn!(
            client = ?client, method = %req.method(), path = req.path(), key_hash = %key_hint(&token),
            "authentication failed: unknown or revoked API key"
        );
        return Err(ApiError::Unauthorized("unknown or revoked API key".into()).into());
    };
    if let Need::Role(need) = need
        && !allows(key.role, need)
    {
        tracing::warn!(
            client = ?client, method = %req.method(), path = req.path(), key_id = %key.id, role = key.role.as_str(),
            "authorization failed: the key's role does not allow this route"
        );
        return Err(ApiError::Forbidden(format!(
            "the role {} may not do this; it needs {}",
            key.role.as_str(),
            need.as_str()
        ))
        .into());
    }
    req.extensions_mut().insert(key);
    next.call(req).await
}

/// A short prefix of the key's hash: enough to tell attempts apart in the
/// logs, useless for guessing the key.
fn key_hint(token: &str) -> String {
    api_keys::hash(token)[..8].to_owned()
}

/// Failed authentications (a key that is unknown or revoked) per client
/// address, in fixed windows: a client past `limit` failures in a window is answered 429 without its key being
/// looked at, until the window ends. Bounded in memory: when full, windows
/// that have ended are dropped, and an address seen while it is still full
/// is not counted (fail open for counting, never for access).
pub struct AuthFailures {
    limit: u32,
    window: chrono::Duration,
    max_clients: usize,
    seen: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (chrono::DateTime<chrono::Utc>, u32)>>,
}

impl AuthFailures {
    pub fn new(limit: u32, window_secs: u32) -> Self {
        Self {
            limit,
            window: chrono::Duration::seconds(i64::from(window_secs.max(1))),
            max_clients: 10_000,
            seen: Default::default(),
        }
    }

    pub fn window_secs(&self) -> u64 {
        self.window.num_seconds() as u64
    }

    fn allowed(&self, client: Option<std::net::IpAddr>, now: chrono::DateTime<chrono::Utc>) -> bool {
        let Some(ip) = client else { return true };
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&ip).is_none_or(|(start, n)| now - *start >= self.window || *n < self.limit)
    }

    fn failed(&self, client: Option<std::net::IpAddr>, now: chrono::DateTime<chrono::Utc>) {
        let Some(ip) = client else { return };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= self.max_clients && !seen.contains_key(&ip) {
            seen.retain(|_, (start, _)| now - *start < self.window);
            if seen.len() >= self.max_clients {
                return;
            }
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now - entry.0 >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// The acting API key, for the audit trail (protected routes only).
impl actix_web::FromRequest for crate::store::audit::Actor {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<ApiKey>()
                .map(|k| crate::store::audit::Actor { key_id: k.id.clone(), name: k.name.clone() })
                .ok_or_else(|| ApiError::Unauthorized("an API key is required".into())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_right_roles() {
        let role = |n: Need| match n {
            Need::Nothing => None,
            Need::Role(r) => Some(r),
            Need::AnyKey => panic!("not a role route"),
        };
        let r = |m: Method, p: &str| role(required(&m, p, false));
        assert_eq!(r(Method::GET, "/healthz"), None);
        assert_eq!(r(Method::GET, "/docs/index.html"), None);
        assert_eq!(r(Method::POST, "/v1/webhooks/maximo"), None);
        assert_eq!(r(Method::GET, "/metrics"), None);
        assert_eq!(required(&Method::GET, "/metrics", true), Need::Role(Role::Viewer));
        assert_eq!(required(&Method::GET, "/v1/me", false), Need::AnyKey);
        assert_eq!(r(Method::GET, "/"), None);
        assert_eq!(r(Method::GET, "/console/app.js"), None);
        // Only GET: the console's paths are no way around a key.
        assert_eq!(r(Method::POST, "/console/app.js"), Some(Role::Admin));
        assert_eq!(r(Method::POST, "/v1/events"), Some(Role::Ingest));
        assert_eq!(r(Method::GET, "/v1/events"), Some(Role::Viewer));
        assert_eq!(r(Method::POST, "/v1/work-orders/x/feedback"), Some(Role::Planner));
        assert_eq!(r(Method::POST, "/v1/rules"), Some(Role::Admin));
        assert_eq!(r(Method::GET, "/v1/api-keys"), Some(Role::Admin));
        assert_eq!(r(Method::GET, "/v1/audit"), Some(Role::Admin));
        // GET /v1/assets/bulk is routed to GET /v1/assets/{id}, as actix does.
        assert_eq!(r(Method::GET, "/v1/assets/bulk"), Some(Role::Viewer));
        // Deny by default: no route, or no route for this method.
        assert_eq!(r(Method::GET, "/v1/nothing-here"), Some(Role::Admin));
        assert_eq!(r(Method::PATCH, "/v1/events"), Some(Role::Admin));
        assert_eq!(r(Method::GET, "/v1/api-keys/"), Some(Role::Admin));
        assert!(allows(Role::Admin, Role::Ingest));
        assert!(allows(Role::Planner, Role::Viewer));
        assert!(!allows(Role::Viewer, Role::Planner));
        assert!(!allows(Role::Ingest, Role::Viewer));
        assert!(!allows(Role::Planner, Role::Ingest));
    }

    #[test]
    fn every_documented_operation_has_its_access_declared() {
        let api = super::super::openapi();
        for (path, item) in &api.paths.paths {
            for (method, op) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ] {
                if op.is_some() {
                    assert!(access_of(&method, path).is_some(), "{method} {path} has no access in the route table");
                }
            }
        }
    }

    #[test]
    fn repeated_failures_from_one_client_are_refused_for_a_window() {
        let f = AuthFailures::new(3, 60);
        let ip: std::net::IpAddr = [10, 0, 0, 1].into();
        let other: std::net::IpAddr = [10, 0, 0, 2].into();
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for _ in 0..3 {
            assert!(f.allowed(Some(ip), t0));
            f.failed(Some(ip), t0);
        }
        assert!(!f.allowed(Some(ip), t0 + chrono::Duration::seconds(59)));
        assert!(f.allowed(Some(other), t0));
        assert!(f.allowed(Some(ip), t0 + chrono::Duration::seconds(60)));
    }
}
