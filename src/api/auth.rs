//! API keys with roles. `Authorization: Bearer <key>`; a missing or unknown
//! key is 401, a key whose role does not allow the route is 403, both as
//! problem+json. Health, the API description, the docs and the signed
//! webhooks stay open; `/metrics` too unless `http.protect_metrics`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use super::AppState;
use super::problem::ApiError;
use crate::store::api_keys::{self, ApiKey, Role};

/// The role a request needs, or `None` for open routes.
pub fn required_role(method: &Method, path: &str, protect_metrics: bool) -> Option<Role> {
    let open = matches!(path, "/healthz" | "/readyz" | "/openapi.json" | "/docs")
        || path.starts_with("/docs/")
        || path.starts_with("/v1/webhooks/")
        || (path == "/metrics" && !protect_metrics);
    if open {
        return None;
    }
    if path == "/metrics" {
        return Some(Role::Viewer);
    }
    if path == "/v1/events" && method == Method::POST {
        return Some(Role::Ingest);
    }
    if method == Method::GET && !path.starts_with("/v1/api-keys") && !path.starts_with("/v1/audit") {
        return Some(Role::Viewer);
    }
    let planner = path.starts_with("/v1/work-orders/") && (path.ends_with("/feedback") || path.ends_with("/retry"))
        || path.starts_with("/v1/sandbox/orders/") && path.ends_with("/status")
        || path == "/v1/rules/test"
        || path == "/v1/rules/backtest";
    if method == Method::POST && planner {
        return Some(Role::Planner);
    }
    Some(Role::Admin)
}

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

pub async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state else { return next.call(req).await };
    let Some(need) = required_role(req.method(), req.path(), state.http.protect_metrics) else {
        return next.call(req).await;
    };
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let Some(token) = token else {
        return Err(ApiError::Unauthorized("an API key is required: send Authorization: Bearer <key>".into()).into());
    };
    let key: ApiKey = api_keys::authenticate(state.store.conn(), &token)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key".into()))?;
    if !allows(key.role, need) {
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
        let r = |m: Method, p: &str| required_role(&m, p, false);
        assert_eq!(r(Method::GET, "/healthz"), None);
        assert_eq!(r(Method::GET, "/docs/index.html"), None);
        assert_eq!(r(Method::POST, "/v1/webhooks/maximo"), None);
        assert_eq!(r(Method::GET, "/metrics"), None);
        assert_eq!(required_role(&Method::GET, "/metrics", true), Some(Role::Viewer));
        assert_eq!(r(Method::POST, "/v1/events"), Some(Role::Ingest));
        assert_eq!(r(Method::GET, "/v1/events"), Some(Role::Viewer));
        assert_eq!(r(Method::POST, "/v1/work-orders/x/feedback"), Some(Role::Planner));
        assert_eq!(r(Method::POST, "/v1/rules"), Some(Role::Admin));
        assert_eq!(r(Method::GET, "/v1/api-keys"), Some(Role::Admin));
        assert_eq!(r(Method::GET, "/v1/audit"), Some(Role::Admin));
        assert!(allows(Role::Admin, Role::Ingest));
        assert!(allows(Role::Planner, Role::Viewer));
        assert!(!allows(Role::Viewer, Role::Planner));
        assert!(!allows(Role::Ingest, Role::Viewer));
        assert!(!allows(Role::Planner, Role::Ingest));
    }
}
