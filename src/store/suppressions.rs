//! Suppressions: maintenance windows and shelving, by asset, site or rule.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::ExprTrait;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::entities::suppressions;
use super::{StoreError, corrupt, new_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Asset,
    Site,
    Rule,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Asset => "asset",
            Self::Site => "site",
            Self::Rule => "rule",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Self::Asset, Self::Site, Self::Rule].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Suppression {
    pub id: String,
    pub scope: Scope,
    /// The asset id, site or rule id it applies to.
    pub target: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionInput {
    pub scope: Scope,
    /// The asset id, site or rule id it applies to; an asset or a rule that
    /// does not exist is refused with 422.
    pub target: String,
    /// Default: now.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// Must be after `starts_at` (422 otherwise).
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub author: String,
}

fn view(m: suppressions::Model) -> Result<Suppression, StoreError> {
    Ok(Suppression {
        scope: Scope::parse(&m.scope).ok_or_else(|| corrupt("suppression scope", &m.scope))?,
        id: m.id,
        target: m.target,
        starts_at: m.starts_at,
        ends_at: m.ends_at,
        reason: m.reason,
        author: m.author,
        created_at: m.created_at,
    })
}

pub async fn create<C: ConnectionTrait>(
    conn: &C,
    input: &SuppressionInput,
    now: DateTime<Utc>,
) -> Result<Suppression, StoreError> {
    let id = new_id();
    suppressions::Entity::insert(suppressions::ActiveModel {
        id: Set(id.clone()),
        scope: Set(input.scope.as_str().to_owned()),
        target: Set(input.target.trim().to_owned()),
        starts_at: Set(input.starts_at.unwrap_or(now)),
        ends_at: Set(input.ends_at),
        reason: Set(input.reason.trim().to_owned()),
        author: Set(input.author.trim().to_owned()),
        created_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    get(conn, &id).await
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Suppression, StoreError> {
    suppressions::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("suppression {id}")))
        .and_then(view)
}

/// All suppressions, or only those in force at `active_at`, newest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    active_at: Option<DateTime<Utc>>,
) -> Result<Vec<Suppression>, StoreError> {
    let mut q = suppressions::Entity::find();
    if let Some(t) = active_at {
        q = q.filter(suppressions::Column::StartsAt.lte(t)).filter(suppressions::Column::EndsAt.gt(t));
    }
    q.order_by_desc(suppressions::Column::StartsAt).all(conn).await?.into_iter().map(view).collect()
}

pub async fn delete<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), StoreError> {
    let res = suppressions::Entity::delete_by_id(id.to_owned()).exec(conn).await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("suppression {id}")));
    }
    Ok(())
}

/// The suppression in force at `at` for this asset, site or rule, if any.
/// Every suppression in force at `at` (few at any time): loaded once per
/// decision transaction and matched in memory with `pick`.
pub async fn all_in_force<C: ConnectionTrait>(conn: &C, at: DateTime<Utc>) -> Result<Vec<Suppression>, StoreError> {
    suppressions::Entity::find()
        .filter(suppressions::Column::StartsAt.lte(at))
        .filter(suppressions::Column::EndsAt.gt(at))
        .all(conn)
        .await?
        .into_iter()
        .map(view)
        .collect()
}

/// The suppression of `list` that holds back work on this asset, site or
/// rule and lasts longest, as `in_force` picks it.
pub fn pick<'a>(list: &'a [Suppression], asset: &str, site: &str, rule: &str) -> Option<&'a Suppression> {
    list.iter()
        .filter(|s| match s.scope {
            Scope::Asset => s.target == asset,
            Scope::Site => s.target == site,
            Scope::Rule => s.target == rule,
        })
        .max_by_key(|s| s.ends_at)
}

pub async fn in_force<C: ConnectionTrait>(
    conn: &C,
    asset: &str,
    site: &str,
    rule: &str,
    at: DateTime<Utc>,
) -> Result<Option<Suppression>, StoreError> {
    let targets = Condition::any()
        .add(suppressions::Column::Scope.eq("asset").and(suppressions::Column::Target.eq(asset)))
        .add(suppressions::Column::Scope.eq("site").and(suppressions::Column::Target.eq(site)))
        .add(suppressions::Column::Scope.eq("rule").and(suppressions::Column::Target.eq(rule)));
    suppressions::Entity::find()
        .filter(targets)
        .filter(suppressions::Column::StartsAt.lte(at))
        .filter(suppressions::Column::EndsAt.gt(at))
        .order_by_desc(suppressions::Column::EndsAt)
        .one(conn)
        .await?
        .map(view)
        .transpose()
}
