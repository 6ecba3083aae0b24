//! Timers of `held_for_minutes` debounces: one per dedup key whose alert is
//! held, due when the hold is complete. The decision that holds an event
//! sets it, a clear or a new order for the key removes it, and the
//! dispatcher claims due timers with a lease, as it claims outbox rows.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, Statement,
    sea_query::OnConflict,
};

use super::StoreError;
use super::entities::debounce_timers;

/// A timer to set (or move) for a held alert.
#[derive(Debug, Clone)]
pub struct HeldAlert<'a> {
    pub dedup_key: &'a str,
    pub rule_id: &'a str,
    /// The latest held event (source, CloudEvents id): the timer decides it again.
    pub event_source: &'a str,
    pub event_ce_id: &'a str,
    /// Event time of the episode's first held event.
    pub held_since: DateTime<Utc>,
    pub held_for_minutes: i32,
    /// On the service's clock.
    pub due_at: DateTime<Utc>,
}

/// Sets the key's timer, or moves it to this event; a claim in progress
/// loses its token, so that it does not remove the timer it no longer owns.
pub async fn set<C: ConnectionTrait>(conn: &C, held: &HeldAlert<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
    let row = debounce_timers::Model {
        dedup_key: held.dedup_key.to_owned(),
        rule_id: held.rule_id.to_owned(),
        event_source: held.event_source.to_owned(),
        event_ce_id: held.event_ce_id.to_owned(),
        held_since: held.held_since,
        held_for_minutes: held.held_for_minutes,
        due_at: held.due_at,
        locked_until: None,
        claim_token: None,
        created_at: now,
        updated_at: now,
    };
    use debounce_timers::Column as C;
    debounce_timers::Entity::insert(super::new_row(row))
        .on_conflict(
            OnConflict::column(C::DedupKey)
                .update_columns([
                    C::RuleId,
                    C::EventSource,
                    C::EventCeId,
                    C::HeldSince,
                    C::HeldForMinutes,
                    C::DueAt,
                    C::LockedUntil,
                    C::ClaimToken,
                    C::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Removes the key's timer (the alert was cleared, or an order opened).
pub async fn remove<C: ConnectionTrait>(conn: &C, dedup_key: &str) -> Result<(), StoreError> {
    debounce_timers::Entity::delete_many().filter(debounce_timers::Column::DedupKey.eq(dedup_key)).exec(conn).await?;
    Ok(())
}

/// When the key's held alert was first raised, if a timer is set for it.
pub async fn held_since<C: ConnectionTrait>(conn: &C, dedup_key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(debounce_timers::Entity::find_by_id(dedup_key.to_owned()).one(conn).await?.map(|t| t.held_since))
}

/// A due timer reserved for this sweep until its lease ends.
#[derive(Debug, Clone, FromQueryResult)]
pub struct DueTimer {
    pub dedup_key: String,
    pub rule_id: String,
    pub event_source: String,
    pub event_ce_id: String,
    pub held_since: DateTime<Utc>,
    pub held_for_minutes: i32,
    pub due_at: DateTime<Utc>,
    pub claim_token: String,
}

/// Claims up to `limit` due timers, as `outbox::claim` claims deliveries:
/// `FOR UPDATE SKIP LOCKED` on PostgreSQL, one atomic UPDATE on SQLite.
pub async fn claim_due<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<DueTimer>, StoreError> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE debounce_timers SET locked_until = $1, claim_token = $4 WHERE dedup_key = ANY(ARRAY(\
               SELECT dedup_key FROM debounce_timers WHERE due_at <= $2 \
               AND (locked_until IS NULL OR locked_until < $2) \
               ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED)) \
             RETURNING dedup_key, rule_id, event_source, event_ce_id, held_since, held_for_minutes, due_at, claim_token"
        }
        _ => {
            "UPDATE debounce_timers SET locked_until = ?1, claim_token = ?4 WHERE dedup_key IN (\
               SELECT dedup_key FROM debounce_timers WHERE due_at <= ?2 \
               AND (locked_until IS NULL OR locked_until < ?2) \
               ORDER BY due_at LIMIT ?3) \
             RETURNING dedup_key, rule_id, event_source, event_ce_id, held_since, held_for_minutes, due_at, claim_token"
        }
    };
    let token = uuid::Uuid::new_v4().to_string();
    let values = [lease_until.into(), now.into(), (limit as i64).into(), token.into()];
    Ok(DueTimer::find_by_statement(Statement::from_sql_and_values(backend, sql, values)).all(conn).await?)
}

/// Removes a fired timer if it is still the one claimed (`false`: another
/// held event moved it meanwhile, or the lease ran out and another sweep
/// took it; its own decision stands).
pub async fn remove_claimed<C: ConnectionTrait>(conn: &C, timer: &DueTimer) -> Result<bool, StoreError> {
    let done = debounce_timers::Entity::delete_many()
        .filter(debounce_timers::Column::DedupKey.eq(timer.dedup_key.as_str()))
        .filter(debounce_timers::Column::ClaimToken.eq(timer.claim_token.as_str()))
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}
