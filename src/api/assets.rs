use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use super::{AppState, audit, begin, commit, json_of, mime, read_body};
use crate::domain::asset::{AssetInput, AssetView, CsvAssetRow, TagPattern, TagPatternInput};
use crate::store::assets::{self, AssetFilter, Upserted};
use crate::store::audit::Actor;
use crate::store::{Page, PageRequest, StoreError};

/// Most rows in one bulk load.
pub const MAX_BULK_ROWS: usize = 50_000;

/// List assets with their tags.
#[utoipa::path(tag = "assets", params(AssetFilter, PageRequest), responses((status = 200, body = Page<AssetView>)))]
#[get("/v1/assets")]
pub async fn list_assets(
    state: web::Data<AppState>,
    filter: super::extract::Query<AssetFilter>,
    page: super::extract::Query<PageRequest>,
) -> Result<web::Json<Page<AssetView>>, ApiError> {
    Ok(web::Json(assets::list(state.store.conn(), &filter, *page).await?))
}

/// Register one asset (409 if the id exists; use PUT to replace).
#[utoipa::path(tag = "assets", request_body = AssetInput, responses(
    (status = 201, body = AssetView),
    (status = 409, description = "The id or one of the tags is taken", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/assets")]
pub async fn create_asset(
    state: web::Data<AppState>,
    actor: Actor,
    input: super::extract::Json<AssetInput>,
) -> Result<HttpResponse, ApiError> {
    let valid = input.into_inner().validate(None).map_err(ApiError::Validation)?;
    let txn = begin(&state).await?;
    if assets::get(&txn, &valid.asset.id).await?.is_some() {
        return Err(ApiError::Conflict(format!("asset {} already exists", valid.asset.id)));
    }
    assets::upsert(&txn, &valid, state.clock.now()).await?;
    let view = assets::view(&txn, &valid.asset.id).await?;
    audit(&txn, &state, &actor, "create", "asset", &view.asset.id, None, json_of(&view)).await?;
    commit(txn).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/v1/assets/{}", view.asset.id))).json(view))
}

/// One asset with its tags.
#[utoipa::path(tag = "assets", params(("id" = String, Path, description = "External id")), responses(
    (status = 200, body = AssetView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/assets/{id}")]
pub async fn get_asset(state: web::Data<AppState>, id: web::Path<String>) -> Result<web::Json<AssetView>, ApiError> {
    Ok(web::Json(assets::view(state.store.conn(), &id).await?))
}

/// Create or replace an asset and its tag set.
#[utoipa::path(tag = "assets", params(("id" = String, Path, description = "External id")), request_body = AssetInput, responses(
    (status = 200, body = AssetView),
    (status = 409, description = "A tag belongs to another asset", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[put("/v1/assets/{id}")]
pub async fn put_asset(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
    input: super::extract::Json<AssetInput>,
) -> Result<web::Json<AssetView>, ApiError> {
    let valid = input.into_inner().validate(Some(&id)).map_err(ApiError::Validation)?;
    let txn = begin(&state).await?;
    let before = match assets::view(&txn, &valid.asset.id).await {
        Ok(v) => Some(v),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    assets::upsert(&txn, &valid, state.clock.now()).await?;
    let after = assets::view(&txn, &valid.asset.id).await?;
    let action = if before.is_some() { "update" } else { "create" };
    audit(&txn, &state, &actor, action, "asset", &after.asset.id, before.as_ref().and_then(json_of), json_of(&after))
        .await?;
    commit(txn).await?;
    Ok(web::Json(after))
}

/// Remove an asset and its tags. Events already mapped to it keep their record.
#[utoipa::path(tag = "assets", params(("id" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/assets/{id}")]
pub async fn delete_asset(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let txn = begin(&state).await?;
    let before = assets::view(&txn, &id).await?;
    assets::delete(&txn, &id).await?;
    audit(&txn, &state, &actor, "delete", "asset", &id, json_of(&before), None).await?;
    commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct BulkError {
    /// 1-based row (CSV: data line after the header; JSON: array element).
    pub row: usize,
    pub id: Option<String>,
    pub error: String,
}

#[derive(Serialize, ToSchema)]
pub struct BulkResult {
    pub created: usize,
    pub updated: usize,
    pub rejected: usize,
    pub errors: Vec<BulkError>,
}

/// Create or replace many assets: a JSON array of assets, or CSV
/// (`text/csv`) with the columns `external_id,site,name,class,criticality,parent,eam_system,tags`
/// (tags joined by `;`). Valid rows are stored even when others are
/// rejected; each rejected row is listed with its reason. 422 when no row
/// is valid.
#[utoipa::path(
    tag = "assets",
    request_body(content(
        (Vec<AssetInput> = "application/json"),
        (String = "text/csv"),
    )),
    responses(
        (status = 200, body = BulkResult),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Nothing valid in the request", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/assets/bulk")]
pub async fn bulk_assets(
    state: web::Data<AppState>,
    actor: Actor,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<BulkResult>, ApiError> {
    // Registries are larger than events: allow 64 times the event limit.
    let body = read_body(payload, state.http.max_body_bytes.saturating_mul(64)).await?;
    let rows: Vec<Result<AssetInput, String>> = match mime(&req).as_str() {
        "text/csv" | "application/csv" => {
            let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(body.as_ref());
            reader
                .deserialize::<CsvAssetRow>()
                .map(|r| r.map(AssetInput::from).map_err(|e| format!("CSV: {e}")))
                .collect()
        }
        "application/json" | "" => {
            let values: Vec<serde_json::Value> = serde_json::from_slice(&body)
                .map_err(|e| ApiError::Malformed(format!("expected a JSON array of assets: {e}")))?;
            values.into_iter().map(|v| serde_json::from_value::<AssetInput>(v).map_err(|e| e.to_string())).collect()
        }
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "{other} is not accepted: use application/json or text/csv"
            )));
        }
    };
    if rows.len() > MAX_BULK_ROWS {
        return Err(ApiError::BatchTooLarge { count: rows.len(), limit: MAX_BULK_ROWS });
    }
    let mut result = BulkResult { created: 0, updated: 0, rejected: 0, errors: vec![] };
    let now = state.clock.now();
    let txn = begin(&state).await?;
    // The first row of an id wins: a later one would replace it within the
    // same request (and drop its tags), which no client means.
    let mut first_row: std::collections::HashMap<String, usize> = Default::default();
    for (i, row) in rows.into_iter().enumerate() {
        let id = row.as_ref().ok().and_then(|r| r.id.clone());
        let earlier = id.as_ref().and_then(|id| match first_row.entry(id.trim().to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i + 1);
                None
            }
        });
        let row = match earlier {
            Some(first) => Err(format!(
                "id {} is already at row {first} of this request; the first row is kept",
                id.as_deref().unwrap_or_default().trim()
            )),
            None => row,
        };
        let outcome = match row.and_then(|r| r.validate(None)) {
            Ok(valid) => assets::upsert(&txn, &valid, now).await.map_err(|e| match e {
                StoreError::Conflict(m) => Ok(m),
                other => Err(other),
            }),
            Err(e) => Err(Ok(e)),
        };
        match outcome {
            Ok(Upserted::Created) => result.created += 1,
            Ok(Upserted::Updated) => result.updated += 1,
            Err(Ok(error)) => {
                result.rejected += 1;
                result.errors.push(BulkError { row: i + 1, id, error });
            }
            Err(Err(e)) => return Err(e.into()),
        }
    }
    if result.created + result.updated == 0 && result.rejected > 0 {
        txn.rollback().await.map_err(StoreError::from)?;
        let first = &result.errors[0];
        return Err(ApiError::Validation(format!(
            "no valid row; {} rejected, first at row {}: {}",
            result.rejected, first.row, first.error
        )));
    }
    audit(&txn, &state, &actor, "bulk_upsert", "asset", "*", None, json_of(&result)).await?;
    commit(txn).await?;
    Ok(web::Json(result))
}

/// Tag patterns, in the order they are tried.
#[utoipa::path(tag = "assets", responses((status = 200, body = Vec<TagPattern>)))]
#[get("/v1/tag-patterns")]
pub async fn list_patterns(state: web::Data<AppState>) -> Result<web::Json<Vec<TagPattern>>, ApiError> {
    Ok(web::Json(assets::list_patterns(state.store.conn()).await?))
}

/// Add a tag pattern: a regular expression over the whole tag whose
/// captures build the asset id, e.g. `PLANT_A\.(?P<asset>P\d+)\..*` → `P-{asset}`.
/// Used when no asset holds the tag exactly.
#[utoipa::path(tag = "assets", request_body = TagPatternInput, responses(
    (status = 201, body = TagPattern),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/tag-patterns")]
pub async fn create_pattern(
    state: web::Data<AppState>,
    actor: Actor,
    input: super::extract::Json<TagPatternInput>,
) -> Result<HttpResponse, ApiError> {
    input.validate().map_err(ApiError::Validation)?;
    let txn = begin(&state).await?;
    let p = assets::create_pattern(&txn, &input, state.clock.now()).await?;
    audit(&txn, &state, &actor, "create", "tag_pattern", &p.id, None, json_of(&p)).await?;
    commit(txn).await?;
    Ok(HttpResponse::Created().json(p))
}

#[utoipa::path(tag = "assets", params(("id" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/tag-patterns/{id}")]
pub async fn delete_pattern(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let txn = begin(&state).await?;
    assets::delete_pattern(&txn, &id).await?;
    audit(&txn, &state, &actor, "delete", "tag_pattern", &id, None, None).await?;
    commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}
