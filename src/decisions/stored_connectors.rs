//! Connector definitions as the rest of the service reads them: the store
//! keeps them as JSON documents of types it does not know; here they are
//! typed with the connectors' configuration.

use crate::connectors::{ConnectorConfig, WebhookSettings};
use crate::store::{StoreError, connectors};

/// A stored connector with its configuration unmasked (never shown as is:
/// the API shows `ConnectorView`).
pub type StoredConnector = connectors::StoredConnector<ConnectorConfig, WebhookSettings>;

pub async fn get(conn: &impl sea_orm::ConnectionTrait, name: &str) -> Result<Option<StoredConnector>, StoreError> {
    connectors::get(conn, name).await
}

pub async fn list(conn: &impl sea_orm::ConnectionTrait) -> Result<Vec<StoredConnector>, StoreError> {
    connectors::list(conn).await
}

/// The connector, locked until the transaction ends (for a delete).
pub async fn get_locked(
    conn: &impl sea_orm::ConnectionTrait,
    name: &str,
) -> Result<Option<StoredConnector>, StoreError> {
    connectors::get_locked(conn, name).await
}
