use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use super::{AppState, audit, begin, commit, json_of};
use crate::store::api_keys::{self, ApiKey, Role};
use crate::store::audit::Actor;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    pub name: String,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret, shown this once; workbridge keeps only its hash.
    pub secret: String,
}

/// API keys (never their secrets).
#[utoipa::path(tag = "api-keys", responses((status = 200, body = Vec<ApiKey>)))]
#[get("/v1/api-keys")]
pub async fn list_keys(state: web::Data<AppState>) -> Result<web::Json<Vec<ApiKey>>, ApiError> {
    Ok(web::Json(api_keys::list(state.store.conn()).await?))
}

/// Create an API key with a role: admin (configuration and keys), planner
/// (read, feedback, retry), viewer (read) or ingest (post events). The
/// secret is in this answer only.
#[utoipa::path(tag = "api-keys", request_body = ApiKeyInput, responses(
    (status = 201, body = CreatedApiKey),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/api-keys")]
pub async fn create_key(
    state: web::Data<AppState>,
    actor: Actor,
    input: super::extract::Json<ApiKeyInput>,
) -> Result<HttpResponse, ApiError> {
    let name = crate::domain::ident::check_name("name", &input.name, 128).map_err(ApiError::Validation)?;
    let secret = format!("wb_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let txn = begin(&state).await?;
    let key = api_keys::insert(&txn, name, input.role, &secret, state.clock.now()).await?;
    // The key without its secret.
    audit(&txn, &state, &actor, "create", "api_key", &key.id, None, json_of(&key)).await?;
    commit(txn).await?;
    Ok(HttpResponse::Created().json(CreatedApiKey { key, secret }))
}

/// Revoke an API key at once.
#[utoipa::path(tag = "api-keys", params(("id" = String, Path)), responses(
    (status = 204, description = "Revoked"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/api-keys/{id}")]
pub async fn revoke_key(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let txn = begin(&state).await?;
    api_keys::revoke(&txn, &id, state.clock.now()).await?;
    audit(&txn, &state, &actor, "revoke", "api_key", &id, None, None).await?;
    commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The audit trail, newest first: every change to rules, assets, tag
/// patterns, connectors, suppressions and API keys, and every retry and
/// feedback, with the acting key, the time, and before/after (secrets
/// masked).
#[utoipa::path(tag = "operations", params(crate::store::audit::AuditFilter, crate::store::PageRequest), responses(
    (status = 200, body = crate::store::Page<crate::store::audit::AuditEntry>),
))]
#[get("/v1/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    filter: super::extract::Query<crate::store::audit::AuditFilter>,
    page: super::extract::Query<crate::store::PageRequest>,
) -> Result<web::Json<crate::store::Page<crate::store::audit::AuditEntry>>, ApiError> {
    Ok(web::Json(crate::store::audit::list(state.store.conn(), &filter, *page).await?))
}

/// Who the calling key is.
#[derive(Serialize, ToSchema)]
pub struct Me {
    /// The key's name.
    pub name: String,
    pub role: Role,
}

/// The calling key's name and role: any valid key may ask (the console
/// shows and allows what the role does).
#[utoipa::path(tag = "api-keys", responses((status = 200, body = Me)))]
#[get("/v1/me")]
pub async fn me(req: actix_web::HttpRequest) -> Result<web::Json<Me>, ApiError> {
    use actix_web::HttpMessage;
    let ext = req.extensions();
    let key = ext.get::<ApiKey>().ok_or_else(|| ApiError::Unauthorized("an API key is required".into()))?;
    Ok(web::Json(Me { name: key.name.clone(), role: key.role }))
}
