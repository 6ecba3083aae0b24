//! The sandbox: an EAM simulated inside workbridge, with its own table.
//! Orders are created idempotently by our reference, and planners (or a
//! demo) move them through the lifecycle with `/v1/sandbox/orders`.

use super::{ConnectorError, CreatedOrder, OrderDocument};
use crate::store::{Store, sandbox};

pub struct SandboxConnector {
    store: Store,
}

impl SandboxConnector {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl super::Connector for SandboxConnector {
    async fn create(&self, order: &OrderDocument) -> Result<CreatedOrder, ConnectorError> {
        let created = sandbox::create(self.store.conn(), order, chrono::Utc::now())
            .await
            .map_err(|e| ConnectorError::Transient { message: format!("sandbox: {e}"), retry_after: None })?;
        Ok(CreatedOrder {
            external_url: Some(format!("/v1/sandbox/orders/{}", created.id)),
            external_id: created.id,
            external_status: Some(created.status),
        })
    }

    async fn cancel(&self, external_id: &str) -> Result<(), ConnectorError> {
        sandbox::set_status(self.store.conn(), external_id, "cancelled", chrono::Utc::now())
            .await
            .map(drop)
            .map_err(|e| ConnectorError::Transient { message: format!("sandbox: {e}"), retry_after: None })
    }
}
