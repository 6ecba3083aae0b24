//! Connector definitions.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryOrder};

use super::entities::connectors;
use super::{StoreError, corrupt};
use crate::connectors::{ConnectorConfig, ConnectorView};

/// A stored connector with its configuration unmasked: for the dispatcher only.
#[derive(Debug, Clone)]
pub struct StoredConnector {
    pub name: String,
    pub enabled: bool,
    pub config: ConnectorConfig,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredConnector {
    pub fn view(&self) -> ConnectorView {
        ConnectorView {
            name: self.name.clone(),
            enabled: self.enabled,
            config: self.config.redacted(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn from_model(m: connectors::Model) -> Result<StoredConnector, StoreError> {
    let config: ConnectorConfig =
        serde_json::from_value(m.config).map_err(|_| corrupt("connector config of", &m.name))?;
    Ok(StoredConnector { name: m.name, enabled: m.enabled, config, created_at: m.created_at, updated_at: m.updated_at })
}

pub async fn get<C: ConnectionTrait>(conn: &C, name: &str) -> Result<Option<StoredConnector>, StoreError> {
    connectors::Entity::find_by_id(name.to_owned()).one(conn).await?.map(from_model).transpose()
}

pub async fn list<C: ConnectionTrait>(conn: &C) -> Result<Vec<StoredConnector>, StoreError> {
    connectors::Entity::find()
        .order_by_asc(connectors::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// Creates (`must_exist = false`, conflict if present) or replaces
/// (`must_exist = true`, not found if absent) a connector.
pub async fn save<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    enabled: bool,
    config: &ConnectorConfig,
    must_exist: bool,
    now: DateTime<Utc>,
) -> Result<StoredConnector, StoreError> {
    let existing = connectors::Entity::find_by_id(name.to_owned()).one(conn).await?;
    let model = connectors::ActiveModel {
        name: Set(name.to_owned()),
        kind: Set(config.kind().to_owned()),
        config: Set(serde_json::to_value(config).unwrap_or_default()),
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
