//! The sandbox EAM's own table.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::OnConflict};
use serde::Serialize;
use utoipa::ToSchema;

use super::entities::sandbox_orders;
use super::{Page, PageRequest, StoreError, paged};

/// An order in the simulated EAM.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SandboxOrder {
    /// The sandbox's own number, e.g. `SBX-4F2A9C01D3`.
    pub id: String,
    /// The workbridge work-order id this order was created for.
    pub reference: String,
    pub title: String,
    pub description: String,
    pub asset_id: Option<String>,
    pub site: Option<String>,
    pub work_type: String,
    pub priority: i32,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn view(m: sandbox_orders::Model) -> SandboxOrder {
    SandboxOrder {
        id: m.id,
        reference: m.reference,
        title: m.title,
        description: m.description,
        asset_id: m.asset_id,
        site: m.site,
        work_type: m.work_type,
        priority: m.priority,
        status: m.status,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// What the sandbox is asked to create.
pub struct NewOrder<'a> {
    /// Our work-order id.
    pub reference: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub asset_id: Option<&'a str>,
    pub site: Option<&'a str>,
    pub work_type: &'a str,
    pub priority: i32,
    /// The whole document as sent, kept for inspection.
    pub payload: serde_json::Value,
}

/// Creates the order once per reference; a repeated create returns the first.
pub async fn create<C: ConnectionTrait>(
    conn: &C,
    order: &NewOrder<'_>,
    now: DateTime<Utc>,
) -> Result<SandboxOrder, StoreError> {
    let number = uuid::Uuid::new_v4().simple().to_string()[..10].to_ascii_uppercase();
    sandbox_orders::Entity::insert(sandbox_orders::ActiveModel {
        id: Set(format!("SBX-{number}")),
        reference: Set(order.reference.to_owned()),
        title: Set(order.title.to_owned()),
        description: Set(order.description.to_owned()),
        asset_id: Set(order.asset_id.map(str::to_owned)),
        site: Set(order.site.map(str::to_owned)),
        work_type: Set(order.work_type.to_owned()),
        priority: Set(order.priority),
        status: Set("created".into()),
        payload: Set(order.payload.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(OnConflict::column(sandbox_orders::Column::Reference).do_nothing().to_owned())
    .exec_without_returning(conn)
    .await?;
    sandbox_orders::Entity::find()
        .filter(sandbox_orders::Column::Reference.eq(order.reference))
        .one(conn)
        .await?
        .map(view)
        .ok_or_else(|| StoreError::NotFound(format!("sandbox order for {}", order.reference)))
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: &str) -> Result<SandboxOrder, StoreError> {
    sandbox_orders::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?
        .map(view)
        .ok_or_else(|| StoreError::NotFound(format!("sandbox order {id}")))
}

pub async fn list<C: ConnectionTrait>(
    conn: &C,
    status: Option<&str>,
    page: PageRequest,
) -> Result<Page<SandboxOrder>, StoreError> {
    let mut q = sandbox_orders::Entity::find();
    if let Some(s) = status {
        q = q.filter(sandbox_orders::Column::Status.eq(s));
    }
    paged(conn, q, &[sandbox_orders::Column::CreatedAt], page, |m| Ok(view(m))).await
}

pub async fn set_status<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    status: &str,
    now: DateTime<Utc>,
) -> Result<SandboxOrder, StoreError> {
    let res = sandbox_orders::Entity::update_many()
        .col_expr(sandbox_orders::Column::Status, status.into())
        .col_expr(sandbox_orders::Column::UpdatedAt, now.into())
        .filter(sandbox_orders::Column::Id.eq(id))
        .exec(conn)
        .await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("sandbox order {id}")));
    }
    get(conn, id).await
}
