use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::problem::{ApiError, Problem};
use super::{AppState, audit, begin, commit, json_of};
use crate::store::StoreError;
use crate::store::audit::Actor;
use crate::store::suppressions::{self, Scope, Suppression, SuppressionInput};
use crate::store::{assets, rules};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionFilter {
    /// Only those in force now.
    pub active: Option<bool>,
}

/// Maintenance windows and shelving, newest first.
#[utoipa::path(tag = "suppressions", params(SuppressionFilter), responses((status = 200, body = Vec<Suppression>)))]
#[get("/v1/suppressions")]
pub async fn list_suppressions(
    state: web::Data<AppState>,
    filter: super::extract::Query<SuppressionFilter>,
) -> Result<web::Json<Vec<Suppression>>, ApiError> {
    let at = filter.active.unwrap_or(false).then(|| state.clock.now());
    Ok(web::Json(suppressions::list(state.store.conn(), at).await?))
}

/// Suppress new work for an asset, a site or a rule between `starts_at`
/// (default now) and `ends_at`. Events that a rule would act on meanwhile are
/// stored with the outcome `suppressed` and the suppression in their trace;
/// nothing is dropped.
#[utoipa::path(tag = "suppressions", request_body = SuppressionInput, responses(
    (status = 201, body = Suppression),
    (status = 422, description = "A field is not valid, `ends_at` is not after `starts_at`, or the asset or rule `target` does not exist", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/suppressions")]
pub async fn create_suppression(
    state: web::Data<AppState>,
    actor: Actor,
    input: super::extract::Json<SuppressionInput>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let starts = input.starts_at.unwrap_or(now);
    for (field, value) in [("target", &input.target), ("reason", &input.reason), ("author", &input.author)] {
        crate::domain::ident::check_name(field, value, 512).map_err(|e| ApiError::field(&format!("/{field}"), e))?;
    }
    if input.ends_at <= starts {
        return Err(ApiError::field("/ends_at", format!("{} is not after starts_at ({starts})", input.ends_at)));
    }
    let txn = begin(&state).await?;
    // A suppression of something that does not exist would silently never
    // apply (a typo in an asset id or a rule id): refuse it. Sites are not
    // registered on their own, so any site is taken.
    let target = input.target.trim();
    let known = match input.scope {
        Scope::Asset => assets::get(&txn, target).await?.is_some(),
        Scope::Rule => match rules::get(&txn, target).await {
            Ok(_) => true,
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        },
        Scope::Site => true,
    };
    if !known {
        let what = if input.scope == Scope::Asset { "asset" } else { "rule" };
        return Err(ApiError::field(
            "/target",
            format!("there is no {what} {target:?}: give the id of an existing {what}"),
        ));
    }
    let s = suppressions::create(&txn, &input, now).await?;
    audit(&txn, &state, &actor, "create", "suppression", &s.id, None, json_of(&s)).await?;
    commit(txn).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/v1/suppressions/{}", s.id))).json(s))
}

/// End a suppression (delete it).
#[utoipa::path(tag = "suppressions", params(("id" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/suppressions/{id}")]
pub async fn delete_suppression(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let txn = begin(&state).await?;
    let before = suppressions::get(&txn, &id).await?;
    suppressions::delete(&txn, &id).await?;
    audit(&txn, &state, &actor, "delete", "suppression", &id, json_of(&before), None).await?;
    commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}
