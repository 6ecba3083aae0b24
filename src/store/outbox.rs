//! The outbox: deliveries decided in the same transaction as the event,
//! claimed by the dispatcher with a lease.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, Statement,
    sea_query::{Expr, ExprTrait},
};

use super::entities::outbox;
use super::{StoreError, new_id};

pub const KIND_CREATE: &str = "create";
/// Cancel a delivered order in the EAM (a clear before work started).
pub const KIND_CANCEL: &str = "cancel";
/// Add a comment about merged events to the order in the EAM.
pub const KIND_COMMENT: &str = "comment";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    work_order_id: &str,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    insert(conn, work_order_id, kind, 0, now).await
}

/// A delivery that follows earlier attempts (a manual retry): counted as
/// attempted, so that the dispatcher looks the order up before creating.
pub async fn enqueue_retry<C: ConnectionTrait>(
    conn: &C,
    work_order_id: &str,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    insert(conn, work_order_id, kind, 1, now).await
}

fn row(work_order_id: &str, kind: &str, attempts: i32, now: DateTime<Utc>) -> outbox::Model {
    outbox::Model {
        id: new_id(),
        work_order_id: work_order_id.to_owned(),
        kind: kind.to_owned(),
        status: DeliveryStatus::Pending.as_str().to_owned(),
        attempts,
        next_attempt_at: now,
        locked_until: None,
        claims: 0,
        claim_token: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}

async fn insert<C: ConnectionTrait>(
    conn: &C,
    work_order_id: &str,
    kind: &str,
    attempts: i32,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    outbox::Entity::insert(super::new_row(row(work_order_id, kind, attempts, now)))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// `enqueue` for many orders, a few hundred rows per statement.
pub async fn enqueue_many<C: ConnectionTrait>(
    conn: &C,
    work_order_ids: &[&str],
    kind: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rows = work_order_ids.iter().map(|id| row(id, kind, 0, now)).collect();
    super::insert_rows::<outbox::Entity, _>(conn, rows, None).await?;
    Ok(())
}

/// A delivery reserved for this dispatcher until its lease ends.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Claimed {
    pub id: String,
    pub work_order_id: String,
    pub kind: String,
    pub attempts: i32,
    /// How often the row has been claimed, this claim included: more than
    /// once means an earlier claim may have reached the EAM.
    pub claims: i32,
    /// This claim's token, to renew the lease by (`renew_many`).
    pub claim_token: String,
}

/// Claims up to `limit` due deliveries. On PostgreSQL rows locked by another
/// replica are skipped (`FOR UPDATE SKIP LOCKED`); SQLite runs one replica
/// and the single UPDATE is atomic there.
pub async fn claim<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Claimed>, StoreError> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            // `= ANY(ARRAY(…))`, not `IN (…)`: with `IN` the planner joined
            // the claimed ids to a scan of the whole table, delivered rows
            // and all, so that each claim cost more as the outbox grew.
            "UPDATE outbox SET locked_until = $1, claims = claims + 1, claim_token = $4 WHERE id = ANY(ARRAY(\
               SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
               AND (locked_until IS NULL OR locked_until < $2) \
               ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)) \
             RETURNING id, work_order_id, kind, attempts, claims, claim_token"
        }
        _ => {
            "UPDATE outbox SET locked_until = ?1, claims = claims + 1, claim_token = ?4 WHERE id IN (\
               SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?2 \
               AND (locked_until IS NULL OR locked_until < ?2) \
               ORDER BY next_attempt_at LIMIT ?3) \
             RETURNING id, work_order_id, kind, attempts, claims, claim_token"
        }
    };
    let token = uuid::Uuid::new_v4().to_string();
    let values = [lease_until.into(), now.into(), (limit as i64).into(), token.into()];
    let stmt = Statement::from_sql_and_values(backend, sql, values);
    Ok(Claimed::find_by_statement(stmt).all(conn).await?)
}

/// Extends the leases of claimed rows just before they are delivered, in
/// one statement per claim: the ids whose lease is still ours. The others
/// ran out while earlier rows were delivered and were claimed by another
/// replica: skip them.
pub async fn renew_many<C: ConnectionTrait>(
    conn: &C,
    rows: &[&Claimed],
    lease_until: DateTime<Utc>,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut ours = std::collections::HashSet::with_capacity(rows.len());
    let mut tokens: Vec<&str> = rows.iter().map(|c| c.claim_token.as_str()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    for token in tokens {
        let ids = rows.iter().filter(|c| c.claim_token == token).map(|c| c.id.as_str());
        let renewed: Vec<String> = outbox::Entity::update_many()
            .col_expr(outbox::Column::LockedUntil, Expr::value(Some(lease_until)))
            .filter(outbox::Column::Id.is_in(ids))
            .filter(outbox::Column::ClaimToken.eq(token))
            .filter(outbox::Column::Status.eq("pending"))
            .exec_with_returning(conn)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect();
        ours.extend(renewed);
    }
    Ok(ours)
}

/// `mark_done` as delivered for many rows, in one statement.
pub async fn mark_delivered_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[&str],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, DeliveryStatus::Delivered.as_str().into())
        .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
        .col_expr(outbox::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(outbox::Column::LastError, Expr::value(Option::<String>::None))
        .col_expr(outbox::Column::UpdatedAt, now.into())
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn mark_done<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    status: DeliveryStatus,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, status.as_str().into())
        .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
        .col_expr(outbox::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(outbox::Column::LastError, Expr::value(error.map(str::to_owned)))
        .col_expr(outbox::Column::UpdatedAt, now.into())
        .filter(outbox::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Counts the attempt and schedules the next one.
pub async fn reschedule<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    next: DateTime<Utc>,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
        .col_expr(outbox::Column::NextAttemptAt, next.into())
        .col_expr(outbox::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(outbox::Column::LastError, Expr::value(Some(error.to_owned())))
        .col_expr(outbox::Column::UpdatedAt, now.into())
        .filter(outbox::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Moves a delivery later without counting an attempt (an open circuit).
pub async fn postpone<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    next: DateTime<Utc>,
    note: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::NextAttemptAt, next.into())
        .col_expr(outbox::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(outbox::Column::LastError, Expr::value(Some(note.to_owned())))
        .col_expr(outbox::Column::UpdatedAt, now.into())
        .filter(outbox::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deliveries still to make (the outbox depth).
pub async fn pending_count<C: ConnectionTrait>(conn: &C) -> Result<u64, StoreError> {
    Ok(outbox::Entity::find().filter(outbox::Column::Status.eq(DeliveryStatus::Pending.as_str())).count(conn).await?)
}

/// One delivery (create or cancel) as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: String,
    pub work_order_id: String,
    /// `create` or `cancel`.
    pub kind: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    pub kind: Option<String>,
    pub work_order: Option<String>,
}

pub async fn list<C: ConnectionTrait>(
    conn: &C,
    f: &DeliveryFilter,
    page: super::PageRequest,
) -> Result<super::Page<Delivery>, StoreError> {
    let q = super::filtered(
        outbox::Entity::find(),
        &[
            (outbox::Column::Status, &f.status),
            (outbox::Column::Kind, &f.kind),
            (outbox::Column::WorkOrderId, &f.work_order),
        ],
        outbox::Column::CreatedAt,
        None,
        None,
    );
    super::paged(conn, q, &[outbox::Column::UpdatedAt, outbox::Column::Id], page, |m| {
        Ok(Delivery {
            id: m.id,
            work_order_id: m.work_order_id,
            kind: m.kind,
            status: m.status,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    })
    .await
}
