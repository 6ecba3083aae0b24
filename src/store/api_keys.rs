//! API keys: the secret is shown once at creation and stored only as its
//! SHA-256 hash.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::ToSchema;

use super::entities::api_keys;
use super::{StoreError, corrupt, new_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: rules, connectors, suppressions, keys, and what the others may do.
    Admin,
    /// Read, feedback, retry, and moving sandbox orders.
    Planner,
    /// Read only.
    Viewer,
    /// Post events only.
    Ingest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Planner => "planner",
            Self::Viewer => "viewer",
            Self::Ingest => "ingest",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Self::Admin, Self::Planner, Self::Viewer, Self::Ingest].into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub fn hash(secret: &str) -> String {
    sha2::Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn view(m: api_keys::Model) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        role: Role::parse(&m.role).ok_or_else(|| corrupt("api key role", &m.role))?,
        id: m.id,
        name: m.name,
        created_at: m.created_at,
        revoked_at: m.revoked_at,
    })
}

/// Stores a key for `secret` (which the caller generated or was given).
/// An existing key with the same secret is left as it is.
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    role: Role,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<ApiKey, StoreError> {
    let id = new_id();
    api_keys::Entity::insert(api_keys::ActiveModel {
        id: Set(id),
        name: Set(name.to_owned()),
        role: Set(role.as_str().to_owned()),
        key_hash: Set(hash(secret)),
        created_at: Set(now),
        revoked_at: Set(None),
    })
    .on_conflict(OnConflict::column(api_keys::Column::KeyHash).do_nothing().to_owned())
    .exec_without_returning(conn)
    .await?;
    api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(hash(secret)))
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound("api key".into()))
        .and_then(view)
}

/// The name of the key seeded from `WORKBRIDGE_ADMIN_KEY`.
pub const SEEDED_ADMIN: &str = "admin (WORKBRIDGE_ADMIN_KEY)";

/// Makes `secret` the one active seeded admin key: a key seeded from an
/// earlier value is revoked, and a value set back is active again.
pub async fn seed_admin<C: ConnectionTrait>(conn: &C, secret: &str, now: DateTime<Utc>) -> Result<ApiKey, StoreError> {
    let revoked = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(Some(now)))
        .filter(api_keys::Column::Name.eq(SEEDED_ADMIN))
        .filter(api_keys::Column::KeyHash.ne(hash(secret)))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    if revoked.rows_affected > 0 {
        tracing::warn!(
            revoked = revoked.rows_affected,
            "WORKBRIDGE_ADMIN_KEY changed: the key seeded from its earlier value is revoked"
        );
    }
    api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(api_keys::Column::Name.eq(SEEDED_ADMIN))
        .filter(api_keys::Column::KeyHash.eq(hash(secret)))
        .exec(conn)
        .await?;
    insert(conn, SEEDED_ADMIN, Role::Admin, secret, now).await
}

/// The active key with this secret.
pub async fn authenticate<C: ConnectionTrait>(conn: &C, secret: &str) -> Result<Option<ApiKey>, StoreError> {
    api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(hash(secret)))
        .filter(api_keys::Column::RevokedAt.is_null())
        .one(conn)
        .await?
        .map(view)
        .transpose()
}

pub async fn list<C: ConnectionTrait>(conn: &C) -> Result<Vec<ApiKey>, StoreError> {
    api_keys::Entity::find().order_by_asc(api_keys::Column::CreatedAt).all(conn).await?.into_iter().map(view).collect()
}

pub async fn revoke<C: ConnectionTrait>(conn: &C, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let res = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(Some(now)))
        .filter(api_keys::Column::Id.eq(id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("active api key {id}")));
    }
    Ok(())
}
