//! Planner feedback on orders: was the automatic order useful?

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::entities::feedback;
use super::{StoreError, corrupt, new_id};

use crate::domain::Verdict;

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
