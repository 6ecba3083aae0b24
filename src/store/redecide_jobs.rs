//! Re-decision jobs: a filter over stored events, decided again in bounded
//! batches by whichever replica holds the job's lease. Progress and the
//! cursor are written in each batch's own transaction (`advance`), so that
//! what a job says it has done is exactly what is committed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::entities::redecide_jobs;
use super::{StoreError, corrupt};
use crate::domain::EventOutcome;
use crate::domain::glob::TagGlob;

/// The most ids one job may name.
pub const MAX_IDS: usize = 1000;

/// Which stored events to decide again; give at least one field (an empty
/// filter is refused with 422).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedecideFilter {
    /// Only events whose outcome is this now (typically `unmapped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<EventOutcome>,
    /// Received at or after (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Received before (RFC 3339); must be after `since` (422 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// CloudEvents `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 500)]
    pub source: Option<String>,
    /// A tag glob, as in rules' `when.tags` (e.g. `BEDFORD.PUMPING.**`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub subject: Option<String>,
    /// workbridge ids or CloudEvents ids of the events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 1000)]
    pub ids: Option<Vec<String>>,
}

impl RedecideFilter {
    /// The events it selects, received at or before `bound`; an error names
    /// the field.
    pub fn selection(&self, bound: DateTime<Utc>) -> Result<super::events::Selection, String> {
        let empty = self.outcome.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.source.is_none()
            && self.subject.is_none()
            && self.ids.is_none();
        if empty {
            return Err("filter: give at least one of outcome, since, until, source, subject, ids".into());
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err("until: must be after since".into());
        }
        if let Some(source) = &self.source
            && (source.trim().is_empty() || source.chars().count() > 500)
        {
            return Err("source: must be 1 to 500 characters".into());
        }
        let subject = match &self.subject {
            Some(s) => Some(TagGlob::new(s).map_err(|e| format!("subject: {e}"))?),
            None => None,
        };
        let ids = self.ids.clone().unwrap_or_default();
        if self.ids.is_some() && ids.is_empty() {
            return Err("ids: must not be empty".into());
        }
        if ids.len() > MAX_IDS {
            return Err(format!("ids: at most {MAX_IDS}"));
        }
        if let Some(i) = ids.iter().position(|id| id.trim().is_empty() || id.chars().count() > 500) {
            return Err(format!("ids[{i}]: must be 1 to 500 characters"));
        }
        Ok(super::events::Selection {
            outcome: self.outcome,
            since: self.since,
            until: self.until,
            source: self.source.clone(),
            subject,
            ids,
            bound,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Done, Self::Failed].into_iter().find(|v| v.as_str() == s)
    }
}

/// A re-decision job and its progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedecideJob {
    pub id: String,
    pub state: JobState,
    pub filter: RedecideFilter,
    /// Events the filter selected when the job was created.
    pub total: u64,
    /// Events decided again so far (changed + unchanged + failed).
    pub processed: u64,
    /// Events whose decision changed (an unmapped event now mapped, …).
    pub changed: u64,
    /// Events decided as before, or already attached to an order (never a second one).
    pub unchanged: u64,
    /// Events that could not be decided again (see the log; e.g. a rule ran out of its budget).
    pub failed: u64,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn view(m: redecide_jobs::Model) -> Result<RedecideJob, StoreError> {
    let state = JobState::parse(&m.state).ok_or_else(|| corrupt("redecide job state", &m.state))?;
    let filter = serde_json::from_value(m.filter).map_err(|e| StoreError::Corrupt(format!("redecide filter: {e}")))?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(RedecideJob {
        id: m.id,
        state,
        filter,
        total: n(m.total),
        processed: n(m.processed),
        changed: n(m.changed),
        unchanged: n(m.unchanged),
        failed: n(m.failed),
        created_at: m.created_at,
        finished_at: m.finished_at,
        error: m.error,
    })
}

/// Stores a queued job.
pub async fn create<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    filter: &RedecideFilter,
    total: u64,
    created_by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<RedecideJob, StoreError> {
    let model = redecide_jobs::Model {
        id: id.to_owned(),
        state: JobState::Queued.as_str().to_owned(),
        filter: serde_json::to_value(filter).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        bound_at: now,
        total: i64::try_from(total).unwrap_or(i64::MAX),
        processed: 0,
        changed: 0,
        unchanged: 0,
        failed: 0,
        cursor_received_at: None,
        cursor_id: None,
        error: None,
        created_by: created_by.map(str::to_owned),
        claims: 0,
        locked_until: None,
        claim_token: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
    };
    redecide_jobs::Entity::insert(super::new_row(model.clone())).exec_without_returning(conn).await?;
    view(model)
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: &str) -> Result<RedecideJob, StoreError> {
    redecide_jobs::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("redecide job {id}")))
        .and_then(view)
}

/// A job this replica holds until its lease ends.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub token: String,
    pub filter: RedecideFilter,
    pub bound_at: DateTime<Utc>,
    pub cursor: Option<(DateTime<Utc>, String)>,
    /// How many times it has been claimed (a job that keeps failing is given up).
    pub claims: i32,
}

fn runnable(now: DateTime<Utc>) -> Condition {
    Condition::any().add(redecide_jobs::Column::State.eq(JobState::Queued.as_str())).add(
        Condition::all()
            .add(redecide_jobs::Column::State.eq(JobState::Running.as_str()))
            .add(redecide_jobs::Column::LockedUntil.lt(now)),
    )
}

/// Claims the oldest job that is queued, or running under a lease that ran
/// out (its replica stopped): the update is conditional, so of replicas
/// that try at once one wins.
pub async fn claim<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<ClaimedJob>, StoreError> {
    let candidates: Vec<String> = redecide_jobs::Entity::find()
        .select_only()
        .column(redecide_jobs::Column::Id)
        .filter(runnable(now))
        .order_by_asc(redecide_jobs::Column::CreatedAt)
        .limit(5)
        .into_tuple()
        .all(conn)
        .await?;
    for id in candidates {
        let token = uuid::Uuid::new_v4().to_string();
        let claimed = redecide_jobs::Entity::update_many()
            .col_expr(redecide_jobs::Column::State, Expr::value(JobState::Running.as_str()))
            .col_expr(redecide_jobs::Column::ClaimToken, Expr::value(token.clone()))
            .col_expr(redecide_jobs::Column::LockedUntil, Expr::value(lease_until))
            .col_expr(redecide_jobs::Column::Claims, Expr::col(redecide_jobs::Column::Claims).add(1))
            .col_expr(
                redecide_jobs::Column::StartedAt,
                Expr::col(redecide_jobs::Column::StartedAt).if_null(Expr::value(now)),
            )
            .col_expr(redecide_jobs::Column::UpdatedAt, Expr::value(now))
            .filter(redecide_jobs::Column::Id.eq(id.as_str()))
            .filter(runnable(now))
            .exec(conn)
            .await?
            .rows_affected
            == 1;
        if !claimed {
            continue;
        }
        let m = redecide_jobs::Entity::find_by_id(id.clone())
            .one(conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("redecide job {id}")))?;
        let filter =
            serde_json::from_value(m.filter).map_err(|e| StoreError::Corrupt(format!("redecide filter: {e}")))?;
        let cursor = m.cursor_received_at.zip(m.cursor_id);
        return Ok(Some(ClaimedJob { id, token, filter, bound_at: m.bound_at, cursor, claims: m.claims }));
    }
    Ok(None)
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub changed: u64,
    pub unchanged: u64,
    pub failed: u64,
}

/// Records a batch in its own transaction: the counts, the cursor, a
/// renewed lease, and `done` when nothing is left. `false` (nothing
/// written) when the lease is no longer ours: the caller rolls back.
pub async fn advance<C: ConnectionTrait>(
    conn: &C,
    job: &ClaimedJob,
    progress: Progress,
    cursor: Option<&(DateTime<Utc>, String)>,
    done: bool,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    use redecide_jobs::Column as C;
    let add = |col: C, n: u64| Expr::col(col).add(i64::try_from(n).unwrap_or(i64::MAX));
    let mut update = redecide_jobs::Entity::update_many()
        .col_expr(C::Processed, add(C::Processed, progress.changed + progress.unchanged + progress.failed))
        .col_expr(C::Changed, add(C::Changed, progress.changed))
        .col_expr(C::Unchanged, add(C::Unchanged, progress.unchanged))
        .col_expr(C::Failed, add(C::Failed, progress.failed))
        .col_expr(C::UpdatedAt, Expr::value(now));
    if let Some((at, id)) = cursor {
        update = update.col_expr(C::CursorReceivedAt, Expr::value(*at)).col_expr(C::CursorId, Expr::value(id.clone()));
    }
    if done {
        update = update
            .col_expr(C::State, Expr::value(JobState::Done.as_str()))
            .col_expr(C::FinishedAt, Expr::value(now))
            .col_expr(C::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(C::ClaimToken, Expr::value(Option::<String>::None));
    } else {
        update = update.col_expr(C::LockedUntil, Expr::value(lease_until));
    }
    let rows = update
        .filter(C::Id.eq(job.id.as_str()))
        .filter(C::ClaimToken.eq(job.token.as_str()))
        .filter(C::State.eq(JobState::Running.as_str()))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(rows == 1)
}

/// Ends a job as failed (it kept failing, or its filter no longer reads).
pub async fn fail<C: ConnectionTrait>(
    conn: &C,
    job: &ClaimedJob,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    use redecide_jobs::Column as C;
    redecide_jobs::Entity::update_many()
        .col_expr(C::State, Expr::value(JobState::Failed.as_str()))
        .col_expr(C::Error, Expr::value(error))
        .col_expr(C::FinishedAt, Expr::value(now))
        .col_expr(C::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(C::ClaimToken, Expr::value(Option::<String>::None))
        .col_expr(C::UpdatedAt, Expr::value(now))
        .filter(C::Id.eq(job.id.as_str()))
        .filter(C::ClaimToken.eq(job.token.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}
