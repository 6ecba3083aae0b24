//! Outbound connectors: one trait, one implementation per EAM kind.
//! Connectors only classify outcomes; the dispatcher owns retries.

pub mod auth;
pub mod breaker;
pub mod http;
pub mod maximo;
pub mod outbound;
pub mod registry;
pub mod rest;
pub mod sap;
pub mod secret;
pub mod servicenow;

pub use secret::HeaderValue;
use secret::{is_sensitive, redact_headers};

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{EamRef, ExternalId, OrderStatus, WorkOrderId};

/// What a connector sends: the order and its context. `reference` is our
/// work-order id, sent to the EAM so that the order can be found again.
#[derive(Debug, Clone, Serialize)]
pub struct OrderDocument {
    pub reference: WorkOrderId,
    pub title: String,
    pub description: String,
    pub work_type: String,
    pub priority: u8,
    pub site: Option<String>,
    pub asset_id: Option<String>,
    pub dedup_key: String,
    pub event_count: i32,
    pub first_event_time: DateTime<Utc>,
    pub due_by: Option<DateTime<Utc>>,
    /// `{"order": …, "asset": …, "event": …}` for body templates.
    #[serde(skip)]
    pub context: serde_json::Value,
}

/// Default per-request timeout of the EAM connectors, in milliseconds.
pub(crate) fn default_timeout_ms() -> u64 {
    10_000
}

/// A status map from (EAM status word, lifecycle status) pairs.
pub(crate) fn status_map(pairs: &[(&str, OrderStatus)]) -> BTreeMap<String, OrderStatus> {
    pairs.iter().map(|(word, status)| ((*word).to_owned(), *status)).collect()
}

/// One order's status as the EAM reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolledStatus {
    pub external_id: ExternalId,
    /// The site the EAM keeps the order under, where it numbers per site.
    pub site: Option<String>,
    /// The EAM's own status word.
    pub status: String,
    /// When it changed, if the EAM says.
    pub changed_at: Option<DateTime<Utc>>,
    /// The closure or failure code, where the EAM reports one.
    pub closure_code: Option<String>,
}

/// The EAM's answer to a create.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedOrder {
    pub external_id: ExternalId,
    pub external_url: Option<String>,
    /// The site the EAM keeps the order under, where it numbers per site
    /// (Maximo `siteid`).
    pub site: Option<String>,
    /// The EAM's own status word, when it gives one.
    pub external_status: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// Worth retrying: 5xx, 429, connection refused.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// Retrying will not help: 4xx other than 408/429, a reply without an id.
    #[error("{message}")]
    Permanent { message: String },
    /// The request may have reached the EAM (timeout, reset after sending).
    #[error("{message}")]
    Unknown { message: String },
}

#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    async fn create(&self, order: &OrderDocument) -> Result<CreatedOrder, ConnectorError>;

    /// Finds the order created for our reference, if the EAM has one: asked
    /// before a create is retried, so that a create whose outcome was unknown
    /// (a timeout after the EAM stored it) does not make a second order.
    /// Connectors that cannot look up rely on the `Idempotency-Key` header.
    async fn find_by_reference(&self, _reference: &WorkOrderId) -> Result<Option<CreatedOrder>, ConnectorError> {
        Ok(None)
    }

    /// The current status of many orders (status sync by polling), in as
    /// few queries as the EAM allows; an order the EAM no longer has is
    /// left out of the answer. `None` when this connector cannot be polled.
    async fn poll(&self, _orders: &[EamRef]) -> Result<Option<Vec<PolledStatus>>, ConnectorError> {
        Ok(None)
    }

    /// Most orders `poll` should be given at once (the EAM's page size).
    fn poll_batch_limit(&self) -> usize {
        100
    }

    /// Checks reachability, credentials and the shape of the API's answer
    /// without changing anything; `Ok(detail)` when all is well.
    async fn check(&self) -> Result<String, ConnectorError> {
        Ok("nothing to check for this kind of connector".into())
    }

    /// Adds a comment (work log, work note) to an order created earlier.
    async fn add_comment(&self, order: &EamRef, _text: &str) -> Result<(), ConnectorError> {
        Err(ConnectorError::Permanent { message: format!("this connector cannot comment on order {order}") })
    }

    /// Cancels an order created earlier. Only called for connectors whose
    /// configuration says they can (`ConnectorConfig::can_cancel`).
    async fn cancel(&self, order: &EamRef) -> Result<(), ConnectorError> {
        Err(ConnectorError::Permanent { message: format!("this connector cannot cancel order {order}") })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorConfig {
    /// An EAM simulated inside workbridge (`/v1/sandbox/orders`).
    Sandbox,
    /// Any REST system.
    Rest(rest::RestConfig),
    /// IBM Maximo (JSON API, MXAPIWODETAIL).
    Maximo(maximo::MaximoConfig),
    /// ServiceNow Table API (incident, wm_order, wm_task).
    Servicenow(servicenow::ServiceNowConfig),
    /// SAP S/4HANA maintenance notifications (OData V2).
    Sap(sap::SapConfig),
}

impl ConnectorConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Rest(_) => "rest",
            Self::Maximo(_) => "maximo",
            Self::Servicenow(_) => "servicenow",
            Self::Sap(_) => "sap",
        }
    }

    /// Whether orders can be cancelled through this connector.
    pub fn can_cancel(&self) -> bool {
        matches!(self, Self::Sandbox | Self::Maximo(_) | Self::Servicenow(_))
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Sandbox => Ok(()),
            Self::Rest(c) => c.validate(),
            Self::Maximo(c) => c.validate(),
            Self::Servicenow(c) => c.validate(),
            Self::Sap(c) => c.validate(),
        }
    }

    /// Every URL this configuration sends requests to.
    pub fn urls(&self) -> Vec<&str> {
        fn oauth(o: &Option<auth::OAuth2Config>) -> Option<&str> {
            o.as_ref().map(|o| o.token_url.as_str())
        }
        match self {
            Self::Sandbox => vec![],
            Self::Rest(c) => std::iter::once(c.url.as_str()).chain(oauth(&c.oauth2)).collect(),
            Self::Maximo(c) => vec![c.base_url.as_str()],
            Self::Servicenow(c) => std::iter::once(c.instance_url.as_str()).chain(oauth(&c.oauth2)).collect(),
            Self::Sap(c) => vec![c.service_url.as_str()],
        }
    }

    /// Every secret of this configuration, literal or by reference.
    pub fn secret_refs(&self) -> Vec<&HeaderValue> {
        fn oauth(o: &Option<auth::OAuth2Config>) -> Option<&HeaderValue> {
            o.as_ref().map(|o| &o.client_secret)
        }
        match self {
            Self::Sandbox => vec![],
            Self::Rest(c) => {
                c.headers.iter().filter(|(k, _)| is_sensitive(k)).map(|(_, v)| v).chain(oauth(&c.oauth2)).collect()
            }
            Self::Maximo(c) => vec![&c.api_key],
            Self::Servicenow(c) => c.password.iter().chain(oauth(&c.oauth2)).collect(),
            Self::Sap(c) => vec![&c.password],
        }
    }

    /// Checks every secret reference against `policy` (when saved).
    pub fn check_secrets(&self, policy: &secret::SecretPolicy) -> Result<(), String> {
        self.secret_refs().into_iter().try_for_each(|v| policy.check(v))
    }

    /// A masker for every secret value this configuration sends, in every
    /// form it takes on the wire.
    pub fn masker(&self, policy: &secret::SecretPolicy) -> secret::Masker {
        let values = self.secret_refs().into_iter().filter_map(|v| policy.resolve(v).ok());
        let masker = secret::Masker::new(values);
        let basic = match self {
            Self::Servicenow(c) => c.username.as_deref().zip(c.password.as_ref()),
            Self::Sap(c) => Some((c.username.as_str(), &c.password)),
            _ => None,
        };
        match basic.and_then(|(user, p)| Some((user, policy.resolve(p).ok()?))) {
            Some((user, password)) => masker.with_basic_auth(user, &password),
            None => masker,
        }
    }

    /// A copy safe to show: literal values of credential headers are masked.
    pub fn redacted(&self) -> Self {
        match self {
            Self::Sandbox => Self::Sandbox,
            Self::Rest(c) => {
                let mut c = c.clone();
                c.headers = redact_headers(&c.headers);
                c.oauth2 = c.oauth2.as_ref().map(auth::OAuth2Config::redacted);
                Self::Rest(c)
            }
            Self::Maximo(c) => {
                let mut c = c.clone();
                if let HeaderValue::Literal(_) = c.api_key {
                    c.api_key = HeaderValue::Literal("***".into());
                }
                Self::Maximo(c)
            }
            Self::Servicenow(c) => Self::Servicenow(c.redacted()),
            Self::Sap(c) => {
                let mut c = c.clone();
                if let HeaderValue::Literal(_) = c.password {
                    c.password = HeaderValue::Literal("***".into());
                }
                Self::Sap(c)
            }
        }
    }
}

/// Most signing secrets per connector: two during a rotation, with room.
pub const MAX_WEBHOOK_SECRETS: usize = 4;

/// Inbound status webhooks for a connector (`POST /v1/webhooks/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Signing secrets (`whsec_` + base64), usually `{"env": "VAR"}`; more
    /// than one during key rotation.
    pub secrets: Vec<HeaderValue>,
    /// EAM status word → lifecycle status; default: the connector's own map
    /// (Maximo's for Maximo) or the lifecycle names themselves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, OrderStatus>,
}

impl WebhookSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.secrets.len() > MAX_WEBHOOK_SECRETS {
            return Err(format!("webhook.secrets: at most {MAX_WEBHOOK_SECRETS} secrets (rotation needs two)"));
        }
        if self.secrets.is_empty() {
            return Err("webhook.secrets must name at least one secret".into());
        }
        for s in &self.secrets {
            if let HeaderValue::Literal(v) = s {
                secret::decode_secret(v).map_err(|e| format!("webhook.secrets: {e}"))?;
            }
        }
        Ok(())
    }

    pub fn redacted(&self) -> Self {
        let secrets = self
            .secrets
            .iter()
            .map(|s| match s {
                HeaderValue::Literal(_) => HeaderValue::Literal("***".into()),
                other => other.clone(),
            })
            .collect();
        Self { secrets, statuses: self.statuses.clone() }
    }
}

impl ConnectorConfig {
    /// The lifecycle status of an EAM status word, for this kind of system.
    /// The review's statuses (proposed, expired) are workbridge's own: no
    /// EAM reports them.
    pub fn lifecycle_status(&self, word: &str, overrides: &BTreeMap<String, OrderStatus>) -> Option<OrderStatus> {
        let status = match overrides.get(word) {
            Some(s) => Some(*s),
            None => match self {
                Self::Maximo(c) => c.statuses.get(word).copied(),
                Self::Servicenow(c) => c.statuses.get(word).copied(),
                Self::Sap(c) => c.lifecycle_status(word),
                _ => OrderStatus::parse(word),
            },
        };
        status.filter(|s| !s.is_review_only())
    }
}

/// A connector as the API shows it (secrets masked).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectorView {
    pub name: String,
    pub enabled: bool,
    pub config: ConnectorConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSettings>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feedback_codes: BTreeMap<String, crate::domain::Verdict>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorInput {
    /// 1 to 64 of A-Z, a-z, 0-9, `-`, `_` and `.`; on `PUT /v1/connectors/{name}`
    /// taken from the path, and if given here it must be equal to it (422 otherwise).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    pub config: ConnectorConfig,
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,
    /// The EAM's closure or failure codes that count as feedback, e.g.
    /// `{"No Fault Found": "false_alarm", "Solved (Permanently)": "useful"}`
    /// (a ServiceNow `close_code`, a Maximo failure remedy, an SAP cause code).
    #[serde(default)]
    pub feedback_codes: BTreeMap<String, crate::domain::Verdict>,
}

fn enabled_default() -> bool {
    true
}

pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err("name must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'".into()) }
}

/// What a literal secret is shown as in every response.
pub const MASK: &str = "***";

/// One secret field of a connector: its name in the API's terms
/// (`config.api_key`, `config.headers.Authorization`, `webhook.secrets[0]`),
/// the key it is matched by (header names in lower case) and its value.
type SecretField<'a> = (String, String, &'a mut HeaderValue);

impl ConnectorConfig {
    /// Every secret field, named as the API names it.
    fn secret_fields_mut(&mut self) -> Vec<SecretField<'_>> {
        fn field<'a>(name: &str, v: &'a mut HeaderValue) -> SecretField<'a> {
            (name.to_owned(), name.to_owned(), v)
        }
        fn oauth(o: &mut Option<auth::OAuth2Config>) -> Option<SecretField<'_>> {
            o.as_mut().map(|o| field("config.oauth2.client_secret", &mut o.client_secret))
        }
        match self {
            Self::Sandbox => vec![],
            Self::Rest(c) => c
                .headers
                .iter_mut()
                .filter(|(k, _)| is_sensitive(k))
                .map(|(k, v)| (format!("config.headers.{k}"), format!("config.headers.{}", k.to_ascii_lowercase()), v))
                .chain(oauth(&mut c.oauth2))
                .collect(),
            Self::Maximo(c) => vec![field("config.api_key", &mut c.api_key)],
            Self::Servicenow(c) => {
                c.password.iter_mut().map(|p| field("config.password", p)).chain(oauth(&mut c.oauth2)).collect()
            }
            Self::Sap(c) => vec![field("config.password", &mut c.password)],
        }
    }

    /// The origins (scheme, host, port) this configuration sends requests to.
    fn origins(&self) -> std::collections::BTreeSet<String> {
        self.urls()
            .into_iter()
            .map(|u| reqwest::Url::parse(u).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| u.to_owned()))
            .collect()
    }
}

fn is_mask(v: &HeaderValue) -> bool {
    matches!(v, HeaderValue::Literal(s) if s == MASK)
}

impl ConnectorInput {
    /// Puts the stored secret back wherever this input holds the mask `***`
    /// (a configuration read with `GET` and sent again): a literal secret is
    /// kept from the stored connector's same field, if it is of the same kind
    /// and sends to the same hosts (so a kept secret never goes to another
    /// host); a webhook signing secret from the same position in the list.
    /// `***` with no stored literal secret behind it is an error naming the
    /// field: the mask is never stored as a secret.
    pub fn keep_stored_secrets(
        &mut self,
        stored: Option<(&ConnectorConfig, Option<&WebhookSettings>)>,
    ) -> Result<(), String> {
        const NONE: &str = "\"***\" stands for a secret already stored in this field, and none is: give the \
                            secret itself or a reference ({\"env\": …} or {\"file\": …})";
        let mut stored_config = stored.map(|(c, _)| c.clone());
        let known: BTreeMap<String, HeaderValue> = match &mut stored_config {
            Some(c) if c.kind() == self.config.kind() => {
                c.secret_fields_mut().into_iter().map(|(_, key, v)| (key, v.clone())).collect()
            }
            _ => BTreeMap::new(),
        };
        let same_hosts = stored.is_some_and(|(c, _)| c.origins() == self.config.origins());
        for (name, key, value) in self.config.secret_fields_mut() {
            if !is_mask(value) {
                continue;
            }
            match known.get(&key) {
                Some(HeaderValue::Literal(secret)) if secret != MASK => {
                    if !same_hosts {
                        return Err(format!(
                            "{name}: a stored secret is kept (\"***\") only while the connector sends to the same \
                             hosts; give the secret again to send it to a new address"
                        ));
                    }
                    *value = HeaderValue::Literal(secret.clone());
                }
                _ => return Err(format!("{name}: {NONE}")),
            }
        }
        let stored_webhook = stored.and_then(|(_, w)| w);
        if let Some(w) = &mut self.webhook {
            for (i, value) in w.secrets.iter_mut().enumerate() {
                if !is_mask(value) {
                    continue;
                }
                match stored_webhook.and_then(|s| s.secrets.get(i)) {
                    Some(HeaderValue::Literal(secret)) if secret != MASK => {
                        *value = HeaderValue::Literal(secret.clone())
                    }
                    _ => return Err(format!("webhook.secrets[{i}]: {NONE}")),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod masked_secret_tests {
    use super::*;

    fn input(v: serde_json::Value) -> ConnectorInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_mask_keeps_the_stored_secret_of_the_same_field_only() {
        let stored =
            input(serde_json::json!({"config": {"kind": "rest", "url": "https://eam.example.com/a", "id_path": "id",
            "headers": {"Authorization": "Bearer s3cr3t", "Accept": "***"}}}));
        let mut echoed =
            input(serde_json::json!({"config": {"kind": "rest", "url": "https://eam.example.com/b", "id_path": "id",
            "headers": {"authorization": "***", "Accept": "***"}}}));
        echoed.keep_stored_secrets(Some((&stored.config, None))).unwrap();
        let ConnectorConfig::Rest(c) = &echoed.config else { panic!() };
        assert_eq!(c.headers["authorization"], HeaderValue::Literal("Bearer s3cr3t".into()));
        // Not a secret field: `***` is a value like any other.
        assert_eq!(c.headers["Accept"], HeaderValue::Literal("***".into()));

        let mut elsewhere =
            input(serde_json::json!({"config": {"kind": "rest", "url": "https://evil.example.net/a", "id_path": "id",
            "headers": {"Authorization": "***"}}}));
        let e = elsewhere.keep_stored_secrets(Some((&stored.config, None))).unwrap_err();
        assert!(e.starts_with("config.headers.Authorization: "), "{e}");
        let mut created = input(serde_json::json!({"config": {"kind": "sap", "service_url": "https://s4.example.com",
            "username": "u", "password": "***"}}));
        assert!(created.keep_stored_secrets(None).unwrap_err().starts_with("config.password: "));
    }
}
