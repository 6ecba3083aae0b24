//! Rules and their versions.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;

use super::entities::{rule_versions, rules};
use super::{StoreError, corrupt, new_id};
use crate::domain::rule::{Action, Matchers, Rule, RuleDefinition, RuleInput, RuleMode};

fn from_model(m: rules::Model) -> Result<Rule, StoreError> {
    let def: RuleDefinition = serde_json::from_value(m.definition).map_err(|_| corrupt("rule definition of", &m.id))?;
    Ok(Rule {
        id: m.id,
        name: m.name,
        enabled: m.enabled,
        position: m.position,
        version: m.version,
        mode: def.mode,
        expire_after_hours: def.expire_after_hours,
        when: def.when,
        action: def.action,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// Changes when any rule is created, changed or deleted.
pub type Stamp = (u64, Option<DateTime<Utc>>);

pub async fn stamp<C: ConnectionTrait>(conn: &C) -> Result<Stamp, StoreError> {
    use sea_orm::QuerySelect;
    // One query per event: count and latest change together.
    let (count, latest): (i64, Option<DateTime<Utc>>) = rules::Entity::find()
        .select_only()
        .column_as(rules::Column::Id.count(), "n")
        .column_as(rules::Column::UpdatedAt.max(), "latest")
        .into_tuple()
        .one(conn)
        .await?
        .unwrap_or((0, None));
    Ok((count.max(0) as u64, latest))
}

/// All rules in evaluation order.
pub async fn list<C: ConnectionTrait>(conn: &C) -> Result<Vec<Rule>, StoreError> {
    rules::Entity::find()
        .order_by_asc(rules::Column::Position)
        .order_by_asc(rules::Column::CreatedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Rule, StoreError> {
    rules::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("rule {id}")))
        .and_then(from_model)
}

fn definition(input: &RuleInput) -> serde_json::Value {
    serde_json::to_value(RuleDefinition {
        mode: input.mode,
        expire_after_hours: input.expire_after_hours,
        when: input.when.clone(),
        action: input.action.clone(),
    })
    .unwrap_or_default()
}

async fn record_version<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    version: i32,
    input: &RuleInput,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    rule_versions::Entity::insert(rule_versions::ActiveModel {
        rule_id: Set(id.to_owned()),
        version: Set(version),
        name: Set(input.name.trim().to_owned()),
        enabled: Set(input.enabled),
        position: Set(input.position),
        definition: Set(definition(input)),
        created_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

fn name_conflict(e: StoreError, name: &str) -> StoreError {
    if e.is_unique_violation() { StoreError::Conflict(format!("a rule named {name:?} already exists")) } else { e }
}

pub async fn create<C: ConnectionTrait>(conn: &C, input: &RuleInput, now: DateTime<Utc>) -> Result<Rule, StoreError> {
    let id = new_id();
    let name = input.name.trim();
    rules::Entity::insert(rules::ActiveModel {
        id: Set(id.clone()),
        name: Set(name.to_owned()),
        enabled: Set(input.enabled),
        position: Set(input.position),
        version: Set(1),
        definition: Set(definition(input)),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(conn)
    .await
    .map_err(|e| name_conflict(e.into(), name))?;
    record_version(conn, &id, 1, input, now).await?;
    get(conn, &id).await
}

/// Replaces a rule, making a new version.
pub async fn update<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    input: &RuleInput,
    now: DateTime<Utc>,
) -> Result<Rule, StoreError> {
    let current = get(conn, id).await?;
    let version = current.version + 1;
    let name = input.name.trim();
    rules::Entity::update(rules::ActiveModel {
        id: Set(id.to_owned()),
        name: Set(name.to_owned()),
        enabled: Set(input.enabled),
        position: Set(input.position),
        version: Set(version),
        definition: Set(definition(input)),
        created_at: Set(current.created_at),
        updated_at: Set(now),
    })
    .exec(conn)
    .await
    .map_err(|e| name_conflict(e.into(), name))?;
    record_version(conn, id, version, input, now).await?;
    get(conn, id).await
}

/// Deletes the rule; its versions stay, since orders refer to them.
pub async fn delete<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), StoreError> {
    let res = rules::Entity::delete_by_id(id.to_owned()).exec(conn).await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("rule {id}")));
    }
    Ok(())
}

/// One version of a rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleVersion {
    pub rule_id: String,
    pub version: i32,
    pub name: String,
    pub enabled: bool,
    pub position: i32,
    pub mode: RuleMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_after_hours: Option<u32>,
    pub when: Matchers,
    pub action: Action,
    pub created_at: DateTime<Utc>,
}

pub async fn versions<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Vec<RuleVersion>, StoreError> {
    let rows = rule_versions::Entity::find()
        .filter(rule_versions::Column::RuleId.eq(id))
        .order_by_desc(rule_versions::Column::Version)
        .all(conn)
        .await?;
    if rows.is_empty() {
        return Err(StoreError::NotFound(format!("rule {id}")));
    }
    rows.into_iter()
        .map(|m| {
            let def: RuleDefinition =
                serde_json::from_value(m.definition).map_err(|_| corrupt("rule version of", &m.rule_id))?;
            Ok(RuleVersion {
                rule_id: m.rule_id,
                version: m.version,
                name: m.name,
                enabled: m.enabled,
                position: m.position,
                mode: def.mode,
                expire_after_hours: def.expire_after_hours,
                when: def.when,
                action: def.action,
                created_at: m.created_at,
            })
        })
        .collect()
}

/// What applying a rules file did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Creates or updates rules by name (a changed rule gets a new version),
/// each change audited with `actor`, on `conn` (the caller's transaction);
/// rules not in `inputs` are left as they are.
pub async fn apply_by_name<C: ConnectionTrait>(
    conn: &C,
    inputs: &[RuleInput],
    actor: &super::audit::Actor,
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    let audit = async |action: &str, id: &str, before: Option<&Rule>, after: &Rule| {
        let json = |r: &Rule| serde_json::to_value(r).ok();
        super::audit::record(conn, actor, action, "rule", id, before.and_then(json), json(after), now).await
    };
    let mut applied = Applied::default();
    for input in inputs {
        let existing = rules::Entity::find().filter(rules::Column::Name.eq(input.name.trim())).one(conn).await?;
        match existing {
            None => {
                let rule = create(conn, input, now).await?;
                audit("create", &rule.id, None, &rule).await?;
                applied.created += 1;
            }
            Some(m)
                if m.definition == definition(input) && m.enabled == input.enabled && m.position == input.position =>
            {
                applied.unchanged += 1;
            }
            Some(m) => {
                let before = from_model(m)?;
                let rule = update(conn, &before.id, input, now).await?;
                audit("update", &rule.id, Some(&before), &rule).await?;
                applied.updated += 1;
            }
        }
    }
    Ok(applied)
}
