//! Building a connector from its configuration: one place for the
//! dispatcher, the poller, the API's check and the CLI. What a connector
//! needs from outside (the HTTP client, the token cache, the secret and
//! destination policies, and the sandbox EAM, which lives outside this
//! module because it writes workbridge's own database) is given to the
//! registry once, at start-up.

use std::sync::Arc;

use super::auth::TokenCache;
use super::maximo::MaximoConnector;
use super::outbound::OutboundPolicy;
use super::rest::RestConnector;
use super::sap::{SapConnector, SapSessions};
use super::secret::{MaskedConnector, SecretPolicy};
use super::servicenow::ServiceNowConnector;
use super::{Connector, ConnectorConfig, ConnectorError, CreatedOrder, OrderDocument, PolledStatus};
use crate::domain::{EamRef, WorkOrderId};

#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    tokens: Arc<TokenCache>,
    /// SAP's CSRF tokens and session cookies, kept between writes.
    sap_sessions: Arc<SapSessions>,
    secrets: Arc<SecretPolicy>,
    outbound: OutboundPolicy,
    sandbox: Option<Arc<dyn Connector>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("secrets", &self.secrets).field("outbound", &self.outbound).finish()
    }
}

impl Registry {
    pub fn new(http: reqwest::Client, secrets: SecretPolicy, outbound: OutboundPolicy) -> Self {
        Self {
            http,
            tokens: Arc::default(),
            sap_sessions: Arc::default(),
            secrets: Arc::new(secrets),
            outbound,
            sandbox: None,
        }
    }

    /// The sandbox EAM (`kind: sandbox`); without it such connectors fail.
    pub fn with_sandbox(mut self, sandbox: Arc<dyn Connector>) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// The secret policy connectors resolve their references under.
    pub fn secrets(&self) -> &SecretPolicy {
        &self.secrets
    }

    /// Where connectors may send requests.
    pub fn outbound(&self) -> OutboundPolicy {
        self.outbound
    }

    /// The connector for a configuration, its errors masked of its secrets.
    pub fn build(&self, config: &ConnectorConfig) -> Result<Box<dyn Connector>, ConnectorError> {
        for url in config.urls() {
            self.outbound.check_url(url).map_err(|message| ConnectorError::Permanent { message })?;
        }
        let (http, tokens, secrets) = (self.http.clone(), self.tokens.clone(), self.secrets.clone());
        let connector: Box<dyn Connector> = match config.clone() {
            ConnectorConfig::Sandbox => match &self.sandbox {
                Some(sandbox) => Box::new(Shared(sandbox.clone())),
                None => {
                    return Err(ConnectorError::Permanent { message: "the sandbox EAM is not available here".into() });
                }
            },
            ConnectorConfig::Rest(cfg) => Box::new(RestConnector::new(cfg, http, tokens, secrets)),
            ConnectorConfig::Maximo(cfg) => Box::new(MaximoConnector::new(cfg, http, secrets)),
            ConnectorConfig::Servicenow(cfg) => Box::new(ServiceNowConnector::new(cfg, http, tokens, secrets)),
            ConnectorConfig::Sap(cfg) => Box::new(SapConnector::new(cfg, http, secrets, self.sap_sessions.clone())),
        };
        Ok(MaskedConnector::wrap(connector, config.masker(&self.secrets)))
    }
}

/// A connector shared by every build (the sandbox holds no per-use state).
struct Shared(Arc<dyn Connector>);

#[async_trait::async_trait]
impl Connector for Shared {
    async fn create(&self, order: &OrderDocument) -> Result<CreatedOrder, ConnectorError> {
        self.0.create(order).await
    }
    async fn find_by_reference(&self, reference: &WorkOrderId) -> Result<Option<CreatedOrder>, ConnectorError> {
        self.0.find_by_reference(reference).await
    }
    async fn poll(&self, orders: &[EamRef]) -> Result<Option<Vec<PolledStatus>>, ConnectorError> {
        self.0.poll(orders).await
    }
    fn poll_batch_limit(&self) -> usize {
        self.0.poll_batch_limit()
    }
    async fn check(&self) -> Result<String, ConnectorError> {
        self.0.check().await
    }
    async fn add_comment(&self, order: &EamRef, text: &str) -> Result<(), ConnectorError> {
        self.0.add_comment(order, text).await
    }
    async fn cancel(&self, order: &EamRef) -> Result<(), ConnectorError> {
        self.0.cancel(order).await
    }
}
