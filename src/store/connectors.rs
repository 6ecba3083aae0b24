//! Connector definitions, stored as JSON documents. The store does not
//! know the connector kinds: the configuration and webhook types are the
//! caller's (`decisions::StoredConnector` names them).

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::connectors;
use super::{StoreError, corrupt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A stored connector with its configuration unmasked: for the dispatcher only.
#[derive(Debug, Clone)]
pub struct StoredConnector<C, W> {
    pub name: String,
    pub enabled: bool,
    pub config: C,
    pub webhook: Option<W>,
    pub feedback_codes: std::collections::BTreeMap<String, crate::domain::Verdict>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn from_model<C: DeserializeOwned, W: DeserializeOwned>(
    m: connectors::Model,
) -> Result<StoredConnector<C, W>, StoreError> {
    let config: C = serde_json::from_value(m.config).map_err(|_| corrupt("connector config of", &m.name))?;
    let webhook = match m.webhook {
        Some(w) => Some(serde_json::from_value(w).map_err(|_| corrupt("webhook settings of", &m.name))?),
        None => None,
    };
    let feedback_codes = match m.feedback_codes {
        Some(f) => serde_json::from_value(f).map_err(|_| corrupt("feedback codes of", &m.name))?,
        None => Default::default(),
    };
    Ok(StoredConnector {
        name: m.name,
        enabled: m.enabled,
        config,
        webhook,
        feedback_codes,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub async fn get<C: DeserializeOwned, W: DeserializeOwned>(
    conn: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<StoredConnector<C, W>>, StoreError> {
    connectors::Entity::find_by_id(name.to_owned()).one(conn).await?.map(from_model).transpose()
}

pub async fn list<C: DeserializeOwned, W: DeserializeOwned>(
    conn: &impl ConnectionTrait,
) -> Result<Vec<StoredConnector<C, W>>, StoreError> {
    connectors::Entity::find()
        .order_by_asc(connectors::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

#[allow(clippy::too_many_arguments)]
/// Creates (`must_exist = false`, conflict if present) or replaces
/// (`must_exist = true`, not found if absent) a connector.
pub async fn save<C: Serialize + DeserializeOwned, W: Serialize + DeserializeOwned>(
    conn: &impl ConnectionTrait,
    name: &str,
    kind: &str,
    enabled: bool,
    config: &C,
    webhook: Option<&W>,
    feedback_codes: &std::collections::BTreeMap<String, crate::domain::Verdict>,
    must_exist: bool,
    now: DateTime<Utc>,
) -> Result<StoredConnector<C, W>, StoreError> {
    let existing = connectors::Entity::find_by_id(name.to_owned()).one(conn).await?;
    let model = connectors::ActiveModel {
        name: Set(name.to_owned()),
        kind: Set(kind.to_owned()),
        config: Set(serde_json::to_value(config).unwrap_or_default()),
        webhook: Set(webhook.map(|w| serde_json::to_value(w).unwrap_or_default())),
        feedback_codes: Set(
            (!feedback_codes.is_empty()).then(|| serde_json::to_value(feedback_codes).unwrap_or_default())
        ),
        enabled: Set(enabled),
        created_at: Set(existing.as_ref().map_or(now, |e| e.created_at)),
        updated_at: Set(now),
    };
    match (existing.is_some(), must_exist) {
        (true, false) => {
            return Err(StoreError::Conflict(format!("connector {name} already exists")));
        }
        (false, true) => return Err(StoreError::NotFound(format!("connector {name}"))),
        (true, true) => {
            connectors::Entity::update(model).exec(conn).await?;
        }
        (false, false) => {
            connectors::Entity::insert(model).exec_without_returning(conn).await?;
        }
    }
    get(conn, name).await?.ok_or_else(|| StoreError::NotFound(format!("connector {name}")))
}

pub async fn delete<C: ConnectionTrait>(conn: &C, name: &str) -> Result<(), StoreError> {
    let res = connectors::Entity::delete_by_id(name.to_owned()).exec(conn).await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("connector {name}")));
    }
    Ok(())
}

/// Records a webhook delivery id; `false` when it was received before.
/// Receipts from before `forget_before` are dropped first: a replay that
/// old fails the timestamp check anyway, so the table holds only the
/// replay window.
pub async fn record_webhook<C: ConnectionTrait>(
    conn: &C,
    connector: &str,
    webhook_id: &str,
    now: DateTime<Utc>,
    forget_before: DateTime<Utc>,
) -> Result<bool, StoreError> {
    use super::entities::webhook_receipts;
    use sea_orm::sea_query::OnConflict;
    webhook_receipts::Entity::delete_many()
        .filter(webhook_receipts::Column::Connector.eq(connector))
        .filter(webhook_receipts::Column::ReceivedAt.lt(forget_before))
        .exec(conn)
        .await?;
    let rows = webhook_receipts::Entity::insert(webhook_receipts::ActiveModel {
        connector: Set(connector.to_owned()),
        webhook_id: Set(webhook_id.to_owned()),
        received_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([webhook_receipts::Column::Connector, webhook_receipts::Column::WebhookId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(rows == 1)
}
