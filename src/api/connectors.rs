use actix_web::{HttpResponse, delete, get, post, put, web};

use super::problem::{ApiError, Problem};
use super::{AppState, audit, begin, commit, json_of};
use crate::connectors::{ConnectorInput, ConnectorView, WebhookSettings, validate_name};
use crate::decisions::stored_connectors::{self as connectors, StoredConnector};
use crate::store::DatabaseTransaction;
use crate::store::audit::Actor;

/// A connector as the API shows it: literal secrets masked.
fn view(c: &StoredConnector) -> ConnectorView {
    ConnectorView {
        name: c.name.clone(),
        enabled: c.enabled,
        config: c.config.redacted(),
        webhook: c.webhook.as_ref().map(WebhookSettings::redacted),
        feedback_codes: c.feedback_codes.clone(),
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// All connectors. Credentials given literally are masked; references to
/// environment variables or files are shown, never their values.
#[utoipa::path(tag = "connectors", responses((status = 200, body = Vec<ConnectorView>)))]
#[get("/v1/connectors")]
pub async fn list_connectors(state: web::Data<AppState>) -> Result<web::Json<Vec<ConnectorView>>, ApiError> {
    let all = connectors::list(state.store.conn()).await?;
    Ok(web::Json(all.iter().map(view).collect()))
}

/// Define a connector: `{"name": "sandbox", "config": {"kind": "sandbox"}}`
/// or a generic REST system (`"kind": "rest"`). A secret given as `"***"`
/// (the mask) is refused here: there is no stored secret for it to stand for.
#[utoipa::path(tag = "connectors", request_body = ConnectorInput, responses(
    (status = 201, body = ConnectorView),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/connectors")]
pub async fn create_connector(
    state: web::Data<AppState>,
    actor: Actor,
    input: super::extract::Json<ConnectorInput>,
) -> Result<HttpResponse, ApiError> {
    let mut input = input.into_inner();
    let name = input.name.clone().ok_or_else(|| ApiError::Validation("name is required".into()))?;
    validate_name(&name).map_err(ApiError::Validation)?;
    input.keep_stored_secrets(None).map_err(ApiError::Validation)?;
    validate(&state, &input)?;
    let txn = begin(&state).await?;
    let saved = save(&txn, &state, &name, &input, false).await?;
    audit(&txn, &state, &actor, "create", "connector", &name, None, json_of(&view(&saved))).await?;
    commit(txn).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/v1/connectors/{name}"))).json(view(&saved)))
}

#[utoipa::path(tag = "connectors", params(("name" = String, Path)), responses(
    (status = 200, body = ConnectorView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/connectors/{name}")]
pub async fn get_connector(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<web::Json<ConnectorView>, ApiError> {
    let c = connectors::get(state.store.conn(), &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("connector {name} not found")))?;
    Ok(web::Json(view(&c)))
}

/// Replace a connector's configuration.
///
/// A secret given as `"***"`, as `GET` shows every literal secret, keeps the
/// secret stored in that field: a configuration read with `GET` can be sent
/// back with other changes (say, `timeout_ms`) without giving the secrets
/// again. This holds for every secret field (Maximo `api_key`, SAP and
/// ServiceNow `password`, `oauth2.client_secret`, the values of REST
/// credential headers, and `webhook.secrets`, by position in the list),
/// as long as the connector keeps its kind and its hosts. `"***"` where no
/// literal secret is stored (a new field, another kind, a new host) is a 422
/// naming the field.
#[utoipa::path(tag = "connectors", params(("name" = String, Path)), request_body = ConnectorInput, responses(
    (status = 200, body = ConnectorView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[put("/v1/connectors/{name}")]
pub async fn put_connector(
    state: web::Data<AppState>,
    actor: Actor,
    name: web::Path<String>,
    input: super::extract::Json<ConnectorInput>,
) -> Result<web::Json<ConnectorView>, ApiError> {
    let mut input = input.into_inner();
    if let Some(body_name) = &input.name
        && body_name != name.as_str()
    {
        return Err(ApiError::Validation(format!("name {body_name:?} in the body differs from {name:?} in the path")));
    }
    let txn = begin(&state).await?;
    let stored =
        connectors::get(&txn, &name).await?.ok_or_else(|| ApiError::NotFound(format!("connector {name} not found")))?;
    input.keep_stored_secrets(Some((&stored.config, stored.webhook.as_ref()))).map_err(ApiError::Validation)?;
    validate(&state, &input)?;
    let after = view(&save(&txn, &state, &name, &input, true).await?);
    audit(&txn, &state, &actor, "update", "connector", &name, json_of(&view(&stored)), json_of(&after)).await?;
    commit(txn).await?;
    Ok(web::Json(after))
}

/// Checks a connector's configuration, its secret references and where it sends.
fn validate(state: &AppState, input: &ConnectorInput) -> Result<(), ApiError> {
    // The configuration's checks name its fields (`base_url must …`).
    let in_config = |m: String| ApiError::field(&format!("/config{}", super::problem::pointer_of(&m)), m);
    input.config.validate().map_err(in_config)?;
    let policy = state.registry.secrets();
    input.config.check_secrets(policy).map_err(in_config)?;
    for url in input.config.urls() {
        state.registry.outbound().check_url(url).map_err(|m| ApiError::field("/config", m))?;
    }
    if let Some(w) = &input.webhook {
        w.validate().map_err(ApiError::Validation)?;
        w.secrets.iter().try_for_each(|s| policy.check(s)).map_err(ApiError::Validation)?;
    }
    Ok(())
}

/// Stores a validated connector (`replace`: it must exist; else it must not).
async fn save(
    txn: &DatabaseTransaction,
    state: &AppState,
    name: &str,
    input: &ConnectorInput,
    replace: bool,
) -> Result<StoredConnector, ApiError> {
    let webhook = input.webhook.as_ref();
    let now = state.clock.now();
    let codes = &input.feedback_codes;
    let kind = input.config.kind();
    Ok(crate::store::connectors::save(txn, name, kind, input.enabled, &input.config, webhook, codes, replace, now)
        .await?)
}

/// Delete a connector. Refused with 409 while an enabled rule creates
/// orders through it or an order delivered through it is still open (the
/// problem names the rules and counts the orders): disable or change those
/// rules, and let the orders close, first.
#[utoipa::path(tag = "connectors", params(("name" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Enabled rules or open orders use the connector", body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/connectors/{name}")]
pub async fn delete_connector(
    state: web::Data<AppState>,
    actor: Actor,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let txn = begin(&state).await?;
    let before = connectors::get_locked(&txn, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("connector {name} not found")))?;
    let usage = crate::store::connectors::usage(&txn, &name).await?;
    if !usage.is_unused() {
        return Err(ApiError::Conflict(format!("connector {name} is in use: {usage}")));
    }
    crate::store::connectors::delete(&txn, &name).await?;
    audit(&txn, &state, &actor, "delete", "connector", &name, json_of(&view(&before)), None).await?;
    commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ConnectorCheck {
    pub ok: bool,
    /// What was checked, or what is wrong.
    pub detail: String,
    pub elapsed_ms: u64,
}

/// Check a connector: reachability, credentials, and that the EAM's API
/// still answers in the shape workbridge expects, so that a vendor change is
/// caught before orders pile up. Reads only.
#[utoipa::path(tag = "connectors", params(("name" = String, Path)), responses(
    (status = 200, description = "The check ran (see `ok`)", body = ConnectorCheck),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/connectors/{name}/check")]
pub async fn check_connector(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<web::Json<ConnectorCheck>, ApiError> {
    let stored = connectors::get(state.store.conn(), &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("connector {name} not found")))?;
    let connector = state.registry.build(&stored.config).map_err(|e| ApiError::Validation(e.to_string()))?;
    let started = std::time::Instant::now();
    let result = connector.check().await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(web::Json(match result {
        Ok(detail) => ConnectorCheck { ok: true, detail, elapsed_ms },
        Err(e) => ConnectorCheck { ok: false, detail: e.to_string(), elapsed_ms },
    }))
}
