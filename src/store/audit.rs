//! The audit trail: every configuration change, retry and feedback, with
//! the acting key, the time, and the entity before and after (secrets are
//! already masked in what callers pass: connector views, keys without
//! their secret). Callers record an entry on the transaction that makes
//! the change, so that the two are committed together or not at all.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::entities::audit;
use super::{Page, PageRequest, StoreError, filtered, new_id, paged};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor_key_id: String,
    pub actor_name: String,
    /// create, update, delete, retry, feedback, revoke.
    pub action: String,
    /// asset, tag_pattern, rule, connector, suppression, api_key, work_order.
    pub entity: String,
    pub entity_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Who did it: the API key's id and name.
#[derive(Debug, Clone)]
pub struct Actor {
    pub key_id: String,
    pub name: String,
}

#[allow(clippy::too_many_arguments)]
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    action: &str,
    entity: &str,
    entity_id: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    audit::Entity::insert(audit::ActiveModel {
        id: Set(new_id()),
        at: Set(now),
        actor_key_id: Set(actor.key_id.clone()),
        actor_name: Set(actor.name.clone()),
        action: Set(action.to_owned()),
        entity: Set(entity.to_owned()),
        entity_id: Set(entity_id.to_owned()),
        before: Set(before),
        after: Set(after),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub action: Option<String>,
    /// The acting API key's id.
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

pub async fn list<C: ConnectionTrait>(
    conn: &C,
    f: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditEntry>, StoreError> {
    let q = filtered(
        audit::Entity::find(),
        &[
            (audit::Column::Entity, &f.entity),
            (audit::Column::EntityId, &f.entity_id),
            (audit::Column::Action, &f.action),
            (audit::Column::ActorKeyId, &f.actor),
        ],
        audit::Column::At,
        f.since,
        f.until,
    );
    paged(conn, q, &[audit::Column::At, audit::Column::Id], page, |m| {
        Ok(AuditEntry {
            id: m.id,
            at: m.at,
            actor_key_id: m.actor_key_id,
            actor_name: m.actor_name,
            action: m.action,
            entity: m.entity,
            entity_id: m.entity_id,
            before: m.before,
            after: m.after,
        })
    })
    .await
}
