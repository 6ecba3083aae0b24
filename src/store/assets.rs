//! The asset registry, its tags and tag patterns.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::entities::{asset_tags, assets, tag_patterns};
use super::{Page, PageRequest, StoreError, new_id};
use crate::domain::asset::{Asset, AssetView, TagPattern, TagPatternInput, ValidAsset};

fn to_asset(m: assets::Model) -> Asset {
    Asset {
        id: m.id,
        site: m.site,
        name: m.name,
        class: m.class,
        criticality: m.criticality,
        parent: m.parent_id,
        eam_system: m.eam_system,
    }
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Asset>, StoreError> {
    Ok(assets::Entity::find_by_id(id.to_owned()).one(conn).await?.map(to_asset))
}

/// The asset a historian tag belongs to: one statement (each decision makes it).
pub async fn by_tag<C: ConnectionTrait>(conn: &C, tag: &str) -> Result<Option<Asset>, StoreError> {
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    let owner = Query::select()
        .column(asset_tags::Column::AssetId)
        .from(asset_tags::Entity)
        .and_where(Expr::col(asset_tags::Column::Tag).eq(tag))
        .to_owned();
    Ok(assets::Entity::find().filter(Expr::col(assets::Column::Id).in_subquery(owner)).one(conn).await?.map(to_asset))
}

/// Most values bound in one `IN (…)` list: well inside both databases' limits.
const IN_CHUNK: usize = 1000;

/// The known assets among `ids`, by id: one statement per thousand ids.
pub async fn get_many<C: ConnectionTrait>(conn: &C, ids: &[&str]) -> Result<HashMap<String, Asset>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let found = match by_key_on_postgres(conn, "assets", "id", chunk) {
            Some(statement) => assets::Entity::find().from_raw_sql(statement).all(conn).await?,
            None => assets::Entity::find().filter(assets::Column::Id.is_in(chunk.iter().copied())).all(conn).await?,
        };
        for m in found {
            out.insert(m.id.clone(), to_asset(m));
        }
    }
    Ok(out)
}

/// PostgreSQL: the rows whose `key` is among `keys`, looked up one key at a
/// time through the key's index. For a batch's few hundred keys, `IN (…)`
/// made the planner (at the default `random_page_cost`) scan the whole
/// table and test each row against the list: 7 ms a batch for the 30,000
/// tags of the load run, against 1–2 ms by index. The `LIMIT 1` keeps the
/// lookup a nested loop (the key is unique). `None` on SQLite, which looks
/// an `IN` list up by index anyway.
fn by_key_on_postgres<C: ConnectionTrait>(
    conn: &C,
    table: &str,
    key: &str,
    keys: &[&str],
) -> Option<sea_orm::Statement> {
    use sea_orm::sea_query::{ArrayType, Value};
    if conn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return None;
    }
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    let keys: Vec<Value> = keys.into_iter().map(Value::from).collect();
    Some(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        format!(
            "SELECT t.* FROM unnest($1::text[]) AS k(key) \
             CROSS JOIN LATERAL (SELECT * FROM {table} WHERE {key} = k.key LIMIT 1) AS t"
        ),
        [Value::Array(ArrayType::String, Some(Box::new(keys)))],
    ))
}

/// The owners of these historian tags: tag → asset id.
pub async fn owners_of_tags<C: ConnectionTrait>(
    conn: &C,
    tags: &[&str],
) -> Result<HashMap<String, String>, StoreError> {
    let mut out = HashMap::with_capacity(tags.len());
    for chunk in tags.chunks(IN_CHUNK) {
        let found = match by_key_on_postgres(conn, "asset_tags", "tag", chunk) {
            Some(statement) => asset_tags::Entity::find().from_raw_sql(statement).all(conn).await?,
            None => {
                asset_tags::Entity::find()
                    .filter(asset_tags::Column::Tag.is_in(chunk.iter().copied()))
                    .all(conn)
                    .await?
            }
        };
        for t in found {
            out.insert(t.tag, t.asset_id);
        }
    }
    Ok(out)
}

async fn tags_of<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Vec<String>, StoreError> {
    Ok(asset_tags::Entity::find()
        .filter(asset_tags::Column::AssetId.eq(id))
        .order_by_asc(asset_tags::Column::Tag)
        .all(conn)
        .await?
        .into_iter()
        .map(|t| t.tag)
        .collect())
}

pub async fn view<C: ConnectionTrait>(conn: &C, id: &str) -> Result<AssetView, StoreError> {
    let m = assets::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("asset {id}")))?;
    let tags = tags_of(conn, id).await?;
    let (created_at, updated_at) = (m.created_at, m.updated_at);
    Ok(AssetView { asset: to_asset(m), tags, created_at, updated_at })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetFilter {
    pub site: Option<String>,
    pub class: Option<String>,
    /// Only assets that hold this historian tag.
    pub tag: Option<String>,
}

pub async fn list<C: ConnectionTrait>(
    conn: &C,
    filter: &AssetFilter,
    page: PageRequest,
) -> Result<Page<AssetView>, StoreError> {
    let mut q = assets::Entity::find();
    if let Some(site) = &filter.site {
        q = q.filter(assets::Column::Site.eq(site.as_str()));
    }
    if let Some(class) = &filter.class {
        q = q.filter(assets::Column::Class.eq(class.as_str()));
    }
    if let Some(tag) = &filter.tag {
        let owner = asset_tags::Entity::find_by_id(tag.clone()).one(conn).await?;
        q = q.filter(assets::Column::Id.eq(owner.map(|o| o.asset_id).unwrap_or_default()));
    }
    let total = q.clone().count(conn).await?;
    let models = q.order_by_asc(assets::Column::Id).limit(page.limit()).offset(page.offset()).all(conn).await?;
    let ids: Vec<String> = models.iter().map(|m| m.id.clone()).collect();
    let mut tags = asset_tags::Entity::find()
        .filter(asset_tags::Column::AssetId.is_in(ids))
        .order_by_asc(asset_tags::Column::Tag)
        .all(conn)
        .await?;
    let items = models
        .into_iter()
        .map(|m| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut tags).into_iter().partition(|t| t.asset_id == m.id);
            tags = rest;
            let (created_at, updated_at) = (m.created_at, m.updated_at);
            AssetView { asset: to_asset(m), tags: mine.into_iter().map(|t| t.tag).collect(), created_at, updated_at }
        })
        .collect();
    Ok(Page { items, total, limit: page.limit(), offset: page.offset() })
}

/// Whether an upsert created or replaced the asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
}

/// Creates or replaces an asset and its tag set. A tag that belongs to
/// another asset is a conflict: tags are moved deliberately, never silently.
pub async fn upsert<C: ConnectionTrait>(
    conn: &C,
    input: &ValidAsset,
    now: DateTime<Utc>,
) -> Result<Upserted, StoreError> {
    let a = &input.asset;
    if !input.tags.is_empty() {
        let taken = asset_tags::Entity::find()
            .filter(asset_tags::Column::Tag.is_in(input.tags.clone()))
            .filter(asset_tags::Column::AssetId.ne(a.id.as_str()))
            .one(conn)
            .await?;
        if let Some(t) = taken {
            return Err(StoreError::Conflict(format!("tag {} already belongs to asset {}", t.tag, t.asset_id)));
        }
    }
    let existing = assets::Entity::find_by_id(a.id.clone()).one(conn).await?;
    let model = assets::ActiveModel {
        id: Set(a.id.clone()),
        site: Set(a.site.clone()),
        name: Set(a.name.clone()),
        class: Set(a.class.clone()),
        criticality: Set(a.criticality.clone()),
        parent_id: Set(a.parent.clone()),
        eam_system: Set(a.eam_system.clone()),
        created_at: Set(existing.as_ref().map_or(now, |e| e.created_at)),
        updated_at: Set(now),
    };
    let outcome = if existing.is_some() {
        assets::Entity::update(model).exec(conn).await?;
        asset_tags::Entity::delete_many().filter(asset_tags::Column::AssetId.eq(a.id.as_str())).exec(conn).await?;
        Upserted::Updated
    } else {
        assets::Entity::insert(model).exec_without_returning(conn).await?;
        Upserted::Created
    };
    if !input.tags.is_empty() {
        asset_tags::Entity::insert_many(
            input.tags.iter().map(|t| asset_tags::ActiveModel { tag: Set(t.clone()), asset_id: Set(a.id.clone()) }),
        )
        .exec_without_returning(conn)
        .await?;
    }
    Ok(outcome)
}

pub async fn delete<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), StoreError> {
    asset_tags::Entity::delete_many().filter(asset_tags::Column::AssetId.eq(id)).exec(conn).await?;
    let res = assets::Entity::delete_by_id(id.to_owned()).exec(conn).await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("asset {id}")));
    }
    Ok(())
}

pub async fn list_patterns<C: ConnectionTrait>(conn: &C) -> Result<Vec<TagPattern>, StoreError> {
    Ok(tag_patterns::Entity::find()
        .order_by_asc(tag_patterns::Column::Position)
        .order_by_asc(tag_patterns::Column::CreatedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(|m| TagPattern { id: m.id, pattern: m.pattern, asset_template: m.asset_template, position: m.position })
        .collect())
}

pub async fn create_pattern<C: ConnectionTrait>(
    conn: &C,
    input: &TagPatternInput,
    now: DateTime<Utc>,
) -> Result<TagPattern, StoreError> {
    let id = new_id();
    tag_patterns::Entity::insert(tag_patterns::ActiveModel {
        id: Set(id.clone()),
        pattern: Set(input.pattern.clone()),
        asset_template: Set(input.asset_template.trim().to_owned()),
        position: Set(input.position),
        created_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(TagPattern {
        id,
        pattern: input.pattern.clone(),
        asset_template: input.asset_template.trim().to_owned(),
        position: input.position,
    })
}

pub async fn delete_pattern<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), StoreError> {
    let res = tag_patterns::Entity::delete_by_id(id.to_owned()).exec(conn).await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("tag pattern {id}")));
    }
    Ok(())
}
