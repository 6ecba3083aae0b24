//! Re-decision of stored events: `POST /v1/events/redecide` queues a job,
//! `GET /v1/redecide-jobs/{id}` reads its progress (the work is
//! `decisions::redecide`).

use actix_web::{HttpResponse, get, post, web};

use super::problem::{ApiError, Problem};
use super::{AppState, audit, begin, commit, json_of};
use crate::store::audit::Actor;
use crate::store::events;
use crate::store::new_id;
use crate::store::redecide_jobs::{self, RedecideFilter, RedecideJob};

/// Decide stored events again against today's registry and rules.
///
/// For events that were unmapped (or matched no rule) when they arrived:
/// once the asset, tag or tag pattern (or the rule) exists, a re-decision
/// maps and decides each selected event as a new event would be decided,
/// so an event now mapped opens or merges an order, which goes through the
/// outbox to the EAM. The event keeps its first decision in its trace
/// (`first`) and gains one entry in `redecisions` per change. Events
/// received after the job was created are not selected; an event attached
/// to an order is never decided again, and an event decided as before is
/// left as it is (both count `unchanged`), so running the same job twice
/// changes nothing. Runs in the background in batches; answers 202 with the
/// job (`Location` says where to follow it).
#[utoipa::path(tag = "events", request_body = RedecideFilter, responses(
    (status = 202, description = "Queued", body = RedecideJob,
     headers(("Location" = String, description = "/v1/redecide-jobs/{id}"))),
    (status = 422, description = "No filter, or a field is not valid (the detail names it)", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/events/redecide")]
pub async fn redecide_events(
    state: web::Data<AppState>,
    actor: Actor,
    filter: super::extract::Json<RedecideFilter>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter.into_inner();
    let now = state.clock.now();
    let selection = filter.selection(now).map_err(invalid)?;
    let total = events::count_selected(state.store.conn(), &selection).await?;
    let txn = begin(&state).await?;
    let job = redecide_jobs::create(&txn, &new_id(), &filter, total, Some(&actor.key_id), now).await?;
    audit(&txn, &state, &actor, "create", "redecide_job", &job.id, None, json_of(&job)).await?;
    commit(txn).await?;
    state.decider.wake_redecide();
    Ok(HttpResponse::Accepted().insert_header(("Location", format!("/v1/redecide-jobs/{}", job.id))).json(job))
}

/// A re-decision job and its progress.
#[utoipa::path(tag = "events", params(("id" = String, Path)), responses(
    (status = 200, body = RedecideJob),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/redecide-jobs/{id}")]
pub async fn get_redecide_job(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<RedecideJob>, ApiError> {
    Ok(web::Json(redecide_jobs::get(state.store.conn(), &id).await?))
}

/// A filter's refusal (`field: why`, `ids[3]: why`, or `filter: why` for
/// the whole body) as a 422 naming the field by JSON Pointer.
fn invalid(message: String) -> ApiError {
    match message.split_once(": ") {
        Some((field, why)) if field != "filter" => {
            ApiError::field(&format!("/{}", field.replace('[', "/").replace(']', "")), why)
        }
        _ => ApiError::field("", message),
    }
}
