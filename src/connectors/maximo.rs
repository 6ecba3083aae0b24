//! IBM Maximo Manage, JSON API on the object structure MXAPIWODETAIL
//! (`docs/eam-apis.md` §1): API key header, `lean=1`, a `transactionid`
//! per create (Maximo answers 409 to a replay), `externalrefid` carrying our
//! reference so that an order whose create timed out is found again with
//! `oslc.where`, and a status change to `CAN` to cancel.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::http::{classify, retry_after, transport_error};
use super::{ConnectorError, CreatedOrder, HeaderValue, OrderDocument};
use crate::domain::{ExternalId, OrderStatus, WorkOrderId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaximoConfig {
    /// The Maximo host, e.g. `https://maximo.example.com`.
    pub base_url: String,
    /// `/maximo/api/os` (MAS 8 and later, the default) or `/maximo/oslc/os`.
    #[serde(default = "default_api_path")]
    pub api_path: String,
    #[serde(default = "default_object_structure")]
    pub object_structure: String,
    /// The API key, sent as the `apikey` header: `{"env": "MAXIMO_APIKEY"}`,
    /// `{"file": "/run/secrets/maximo"}` or a literal (masked in responses).
    pub api_key: HeaderValue,
    /// `siteid` of new orders; default: the asset's site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    /// workbridge work type → Maximo `worktype`.
    #[serde(default = "default_work_types")]
    pub work_types: BTreeMap<String, String>,
    /// Maximo status (internal value) → lifecycle status.
    #[serde(default = "default_statuses")]
    pub statuses: BTreeMap<String, OrderStatus>,
    #[serde(default = "super::default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_api_path() -> String {
    "/maximo/api/os".into()
}
fn default_object_structure() -> String {
    "mxapiwodetail".into()
}
fn default_work_types() -> BTreeMap<String, String> {
    [("corrective", "CM"), ("emergency", "EM"), ("preventive", "PM"), ("inspection", "PM"), ("calibration", "CAL")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}
/// Work-order statuses of Maximo and where they sit in the common lifecycle.
pub fn default_statuses() -> BTreeMap<String, OrderStatus> {
    use OrderStatus::*;
    super::status_map(&[
        ("WAPPR", Created),
        ("APPR", Acknowledged),
        ("WSCH", Acknowledged),
        ("WMATL", Acknowledged),
        ("WPCOND", Acknowledged),
        ("INPRG", InProgress),
        ("COMP", Completed),
        ("CLOSE", Closed),
        ("CAN", Cancelled),
    ])
}

impl MaximoConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| format!("base_url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("base_url must be http or https".into());
        }
        if !self.api_path.starts_with('/') {
            return Err("api_path must start with '/'".into());
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err("timeout_ms must be 100 to 120000".into());
        }
        Ok(())
    }

    fn collection_url(&self) -> String {
        format!("{}{}/{}", self.base_url.trim_end_matches('/'), self.api_path, self.object_structure)
    }
}

pub struct MaximoConnector {
    config: MaximoConfig,
    http: reqwest::Client,
    secrets: std::sync::Arc<super::secret::SecretPolicy>,
}

const SELECT: &str = "wonum,siteid,status,statusdate,href";

impl MaximoConnector {
    pub fn new(
        config: MaximoConfig,
        http: reqwest::Client,
        secrets: std::sync::Arc<super::secret::SecretPolicy>,
    ) -> Self {
        Self { config, http, secrets }
    }

    fn key(&self) -> Result<String, ConnectorError> {
        self.config.api_key.resolve(&self.secrets).map_err(|message| ConnectorError::Permanent { message })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, ConnectorError> {
        Ok(self
            .http
            .request(method, url)
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .header("apikey", self.key()?)
            .header(reqwest::header::ACCEPT, "application/json"))
    }

    fn created(member: &Value) -> Option<CreatedOrder> {
        Some(CreatedOrder {
            external_id: member.get("wonum")?.as_str()?.into(),
            external_url: member.get("href").and_then(Value::as_str).map(str::to_owned),
            external_status: member.get("status").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// Maximo's error envelope: `{"Error": {"reasonCode", "message", "statusCode"}}`.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/Error/message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

#[async_trait::async_trait]
impl super::Connector for MaximoConnector {
    async fn create(&self, order: &OrderDocument) -> Result<CreatedOrder, ConnectorError> {
        let site = self.config.site_id.clone().or_else(|| order.site.clone());
        let work_type =
            self.config.work_types.get(&order.work_type).cloned().unwrap_or_else(|| order.work_type.clone());
        let mut body = json!({
            "siteid": site,
            // Maximo's description holds 100 characters; the rest goes to the long description.
            "description": order.title.chars().take(100).collect::<String>(),
            "description_longdescription": order.description,
            "assetnum": order.asset_id,
            "worktype": work_type,
            "wopriority": order.priority,
            "reportdate": order.first_event_time.to_rfc3339(),
            "externalrefid": order.reference,
        });
        if let Some(due) = order.due_by {
            body["targcompdate"] = json!(due.to_rfc3339());
        }
        let url = format!("{}?lean=1", self.config.collection_url());
        let resp = self
            .request(reqwest::Method::POST, &url)?
            .header("properties", SELECT)
            // Maximo remembers transaction ids for a while and answers 409 to a replay.
            .header("transactionid", order.reference.as_str())
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status();
        let retry = retry_after(resp.headers());
        let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = resp.text().await.map_err(|e| transport_error(&e))?;
        if status == StatusCode::CONFLICT {
            // The same transaction was processed before: find what it created.
            return match self.find_by_reference(&order.reference).await? {
                Some(found) => Ok(found),
                None => Err(ConnectorError::Transient {
                    message: "Maximo answered 409 (transaction already processed) but the order is not found yet"
                        .into(),
                    retry_after: None,
                }),
            };
        }
        if !status.is_success() {
            return Err(classify(status, &error_message(&text), retry));
        }
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match Self::created(&reply) {
            Some(mut created) => {
                created.external_url = created.external_url.or(location);
                Ok(created)
            }
            // Created without a body we understand: look it up by our reference.
            None => self.find_by_reference(&order.reference).await?.ok_or_else(|| ConnectorError::Unknown {
                message: format!("Maximo answered {status} without a wonum"),
            }),
        }
    }

    async fn find_by_reference(&self, reference: &WorkOrderId) -> Result<Option<CreatedOrder>, ConnectorError> {
        let reply =
            self.query(&[("oslc.select", SELECT), ("oslc.where", &format!("externalrefid=\"{reference}\""))]).await?;
        Ok(first_member(&reply).and_then(Self::created))
    }

    async fn add_comment(&self, external_id: &ExternalId, text: &str) -> Result<(), ConnectorError> {
        let body = json!({"worklog": [{
            "description": text.chars().take(100).collect::<String>(),
            "description_longdescription": text,
            "logtype": "CLIENTNOTE",
        }]});
        // MERGE adds to the child array instead of replacing it.
        self.patch(external_id, Some("MERGE"), &body).await
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let reply = self.query(&[("oslc.select", SELECT), ("oslc.pageSize", "1")]).await?;
        if !reply.get("member").is_some_and(Value::is_array) {
            return Err(ConnectorError::Permanent {
                message: format!(
                    "{} answered without a member list: has the object structure changed?",
                    self.config.object_structure
                ),
            });
        }
        Ok(format!("{} answers with work orders", self.config.object_structure))
    }

    async fn poll(&self, external_ids: &[ExternalId]) -> Result<Option<Vec<super::PolledStatus>>, ConnectorError> {
        // One query for the batch: `wonum in [...]` (Maximo refuses `or`).
        let list =
            external_ids.iter().map(|w| format!("\"{}\"", w.as_str().replace('"', ""))).collect::<Vec<_>>().join(",");
        let reply = self
            .query(&[
                ("oslc.select", "wonum,siteid,status,statusdate"),
                ("oslc.where", &format!("wonum in [{list}]")),
                ("oslc.pageSize", &external_ids.len().max(1).to_string()),
            ])
            .await?;
        let members = reply.get("member").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(Some(
            members
                .iter()
                .filter_map(|m| {
                    Some(super::PolledStatus {
                        external_id: m.get("wonum")?.as_str()?.into(),
                        status: m.get("status")?.as_str()?.to_owned(),
                        changed_at: m
                            .get("statusdate")
                            .and_then(Value::as_str)
                            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
                            .map(|d| d.with_timezone(&chrono::Utc)),
                        closure_code: None,
                    })
                })
                .collect(),
        ))
    }

    async fn cancel(&self, external_id: &ExternalId) -> Result<(), ConnectorError> {
        self.patch(external_id, None, &json!({"status": "CAN"})).await
    }
}

impl MaximoConnector {
    /// A query on the object structure (`lean=1`), as JSON.
    async fn query(&self, params: &[(&str, &str)]) -> Result<Value, ConnectorError> {
        let resp = self
            .request(reqwest::Method::GET, &self.config.collection_url())?
            .query(&[("lean", "1")])
            .query(params)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status();
        let retry = retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| transport_error(&e))?;
        if !status.is_success() {
            return Err(classify(status, &error_message(&text), retry));
        }
        serde_json::from_str(&text).map_err(|_| ConnectorError::Transient {
            message: "Maximo query answer is not JSON".into(),
            retry_after: None,
        })
    }

    /// Patches the work order `wonum` through its `href` (POST with
    /// `x-method-override: PATCH`, as Maximo's JSON API wants it).
    async fn patch(&self, wonum: &ExternalId, patch_type: Option<&str>, body: &Value) -> Result<(), ConnectorError> {
        let reply = self.query(&[("oslc.select", SELECT), ("oslc.where", &format!("wonum=\"{wonum}\""))]).await?;
        let href = first_member(&reply)
            .and_then(Self::created)
            .and_then(|c| c.external_url)
            .ok_or_else(|| ConnectorError::Permanent { message: format!("Maximo has no work order {wonum}") })?;
        let mut req =
            self.request(reqwest::Method::POST, &format!("{href}?lean=1"))?.header("x-method-override", "PATCH");
        if let Some(t) = patch_type {
            req = req.header("patchtype", t);
        }
        let resp = req.json(body).send().await.map_err(|e| transport_error(&e))?;
        let status = resp.status();
        let retry = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() { Ok(()) } else { Err(classify(status, &error_message(&text), retry)) }
    }
}

fn first_member(reply: &Value) -> Option<&Value> {
    reply.get("member").and_then(Value::as_array).and_then(|m| m.first())
}
