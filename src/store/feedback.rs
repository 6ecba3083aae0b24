//! Planner feedback on orders: was the automatic order useful?

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::entities::feedback;
use super::{StoreError, corrupt, new_id};

use crate::domain::{FeedbackSource, OrderStatus, OrderVerdict, Verdict, order_verdict};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Feedback {
    pub id: String,
    pub work_order_id: String,
    pub verdict: Verdict,
    pub comment: Option<String>,
    pub author: String,
    /// `planner` (through the API) or the EAM's closure code.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    pub verdict: Verdict,
    #[serde(default)]
    pub comment: Option<String>,
    pub author: String,
}

fn view(m: feedback::Model) -> Result<Feedback, StoreError> {
    Ok(Feedback {
        verdict: Verdict::parse(&m.verdict).ok_or_else(|| corrupt("feedback verdict", &m.verdict))?,
        id: m.id,
        work_order_id: m.work_order_id,
        comment: m.comment,
        author: m.author,
        source: m.source,
        created_at: m.created_at,
    })
}

pub async fn add<C: ConnectionTrait>(
    conn: &C,
    work_order_id: &str,
    input: &FeedbackInput,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Feedback, StoreError> {
    let id = new_id();
    feedback::Entity::insert(feedback::ActiveModel {
        id: Set(id.clone()),
        work_order_id: Set(work_order_id.to_owned()),
        verdict: Set(input.verdict.as_str().to_owned()),
        comment: Set(input.comment.clone()),
        author: Set(input.author.trim().to_owned()),
        source: Set(source.to_owned()),
        created_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    feedback::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound("feedback".into()))
        .and_then(view)
}

/// Feedback on an order, oldest first.
pub async fn of_order<C: ConnectionTrait>(conn: &C, work_order_id: &str) -> Result<Vec<Feedback>, StoreError> {
    feedback::Entity::find()
        .filter(feedback::Column::WorkOrderId.eq(work_order_id))
        .order_by_asc(feedback::Column::CreatedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(view)
        .collect()
}

/// The latest verdict on an order, if any.
pub async fn latest<C: ConnectionTrait>(conn: &C, work_order_id: &str) -> Result<Option<Verdict>, StoreError> {
    Ok(of_order(conn, work_order_id).await?.last().map(|f| f.verdict))
}

/// The verdict on each of these orders (`domain::order_verdict`: planner
/// feedback, then a review rejection, then the EAM's closure code, then the
/// order's outcome), in a few statements per thousand orders. Unknown ids
/// are left out.
pub async fn verdicts<C: ConnectionTrait>(
    conn: &C,
    order_ids: &[&str],
) -> Result<std::collections::HashMap<String, OrderVerdict>, StoreError> {
    use super::entities::work_orders;
    use sea_orm::QuerySelect;
    let mut out = std::collections::HashMap::with_capacity(order_ids.len());
    for chunk in order_ids.chunks(1000) {
        let statuses: Vec<(String, String)> = work_orders::Entity::find()
            .select_only()
            .column(work_orders::Column::Id)
            .column(work_orders::Column::Status)
            .filter(work_orders::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(conn)
            .await?;
        let mut given: std::collections::HashMap<String, Vec<(FeedbackSource, Verdict)>> =
            std::collections::HashMap::new();
        let rows = feedback::Entity::find()
            .filter(feedback::Column::WorkOrderId.is_in(chunk.iter().copied()))
            .order_by_asc(feedback::Column::CreatedAt)
            .order_by_asc(feedback::Column::Id)
            .all(conn)
            .await?;
        for f in rows {
            let verdict = Verdict::parse(&f.verdict).ok_or_else(|| corrupt("feedback verdict", &f.verdict))?;
            // A source this version does not know counts for nothing.
            if let Some(source) = FeedbackSource::parse(&f.source) {
                given.entry(f.work_order_id).or_default().push((source, verdict));
            }
        }
        for (id, status) in statuses {
            let status = OrderStatus::parse(&status).ok_or_else(|| corrupt("order status", &status))?;
            let verdict = order_verdict(given.remove(&id).unwrap_or_default(), status);
            out.insert(id, verdict);
        }
    }
    Ok(out)
}
