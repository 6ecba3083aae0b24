//! The sandbox: an EAM simulated inside workbridge, with its own table.
//! Orders are created idempotently by our reference, and planners (or a
//! demo) move them through the lifecycle with `/v1/sandbox/orders`. It
//! writes workbridge's own database, so it stands outside `connectors` and
//! is handed to the connector registry at start-up.

use crate::connectors::{Connector, ConnectorError, CreatedOrder, OrderDocument};
use crate::domain::EamRef;
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
impl Connector for SandboxConnector {
    async fn create(&self, order: &OrderDocument) -> Result<CreatedOrder, ConnectorError> {
        let new = sandbox::NewOrder {
            reference: order.reference.as_str(),
            title: &order.title,
            description: &order.description,
            asset_id: order.asset_id.as_deref(),
            site: order.site.as_deref(),
            work_type: &order.work_type,
            priority: i32::from(order.priority),
            payload: serde_json::to_value(order).unwrap_or_default(),
        };
        let created = sandbox::create(self.store.conn(), &new, chrono::Utc::now())
            .await
            .map_err(|e| ConnectorError::Transient { message: format!("sandbox: {e}"), retry_after: None })?;
        Ok(CreatedOrder {
            external_url: Some(format!("/v1/sandbox/orders/{}", created.id)),
            external_id: created.id.into(),
            external_status: Some(created.status),
            site: None,
        })
    }

    async fn cancel(&self, order: &EamRef) -> Result<(), ConnectorError> {
        sandbox::set_status(self.store.conn(), order.external_id.as_str(), "cancelled", chrono::Utc::now())
            .await
            .map(drop)
            .map_err(|e| ConnectorError::Transient { message: format!("sandbox: {e}"), retry_after: None })
    }
}
