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
use crate::domain::{EamRef, OrderStatus, WorkOrderId};

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
    /// Most work orders asked for in one status query (`oslc.pageSize`);
    /// keep it at or below the server's `mxe.oslc.maxpagesize`.
    #[serde(default = "default_page_size")]
    #[schema(minimum = 1, maximum = 1000)]
    pub page_size: u32,
}

fn default_page_size() -> u32 {
    100
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
        if !(1..=1000).contains(&self.page_size) {
            return Err("page_size must be 1 to 1000".into());
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
/// What a status poll reads.
const POLL_SELECT: &str = "wonum,siteid,status,statusdate";

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
            site: member.get("siteid").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// The resource address of one work order. The `href` Maximo gave at
    /// create names exactly one order; it is used when it points into the
    /// configured Maximo (an address from elsewhere is not followed).
    /// Without one the order is looked up by (siteid, wonum), and a lookup
    /// that is not unique is refused rather than guessed.
    async fn href(&self, order: &EamRef) -> Result<String, ConnectorError> {
        if let Some(url) = order.url.as_deref().filter(|u| u.starts_with(&self.config.collection_url())) {
            return Ok(url.to_owned());
        }
        let wonum = quoted(order.external_id.as_str());
        let filter = match &order.site {
            Some(site) => format!("siteid={} and wonum={wonum}", quoted(site)),
            None => format!("wonum={wonum}"),
        };
        let reply = self.query(&[("oslc.select", SELECT), ("oslc.where", &filter), ("oslc.pageSize", "2")]).await?;
        let members = reply.get("member").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        match members {
            [one] => Self::created(one).and_then(|c| c.external_url).ok_or_else(|| ConnectorError::Permanent {
                message: format!("Maximo answered work order {order} without an href"),
            }),
            [] => Err(ConnectorError::Permanent { message: format!("Maximo has no work order {order}") }),
            _ => Err(ConnectorError::Permanent {
                message: format!(
                    "work order number {order} is used at several Maximo sites; no site is known for ours"
                ),
            }),
        }
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

    async fn add_comment(&self, order: &EamRef, text: &str) -> Result<(), ConnectorError> {
        let body = json!({"worklog": [{
            "description": text.chars().take(100).collect::<String>(),
            "description_longdescription": text,
            "logtype": "CLIENTNOTE",
        }]});
        // MERGE adds to the child array instead of replacing it.
        self.patch(order, Some("MERGE"), &body).await
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

    async fn poll(&self, orders: &[EamRef]) -> Result<Option<Vec<super::PolledStatus>>, ConnectorError> {
        // Work-order numbers repeat across sites: one query per site, with
        // `siteid` in it, `wonum in [...]` (Maximo refuses `or`), and pages
        // followed until the last, so no order is pushed off the page.
        let mut by_site: BTreeMap<Option<&str>, Vec<&EamRef>> = BTreeMap::new();
        for o in orders {
            by_site.entry(o.site.as_deref()).or_default().push(o);
        }
        let mut out = Vec::with_capacity(orders.len());
        for (site, group) in by_site {
            for chunk in group.chunks(self.config.page_size as usize) {
                let list = chunk.iter().map(|o| quoted(o.external_id.as_str())).collect::<Vec<_>>().join(",");
                let filter = match site {
                    Some(site) => format!("siteid={} and wonum in [{list}]", quoted(site)),
                    None => format!("wonum in [{list}]"),
                };
                let members = self.query_all(&filter, chunk.len()).await?;
                let polled = members.iter().filter_map(polled_status);
                match site {
                    Some(_) => out.extend(polled.filter(|p| p.site.as_deref() == site)),
                    // Orders recorded before sites were kept: a number that
                    // answers from several sites is ambiguous, so skipped.
                    None => {
                        let polled: Vec<_> = polled.collect();
                        out.extend(
                            polled
                                .iter()
                                .filter(|p| polled.iter().filter(|q| q.external_id == p.external_id).count() == 1)
                                .map(|p| super::PolledStatus { site: None, ..p.clone() }),
                        );
                    }
                }
            }
        }
        Ok(Some(out))
    }

    fn poll_batch_limit(&self) -> usize {
        self.config.page_size as usize
    }

    async fn cancel(&self, order: &EamRef) -> Result<(), ConnectorError> {
        self.patch(order, None, &json!({"status": "CAN"})).await
    }
}

impl MaximoConnector {
    /// A query on the object structure (`lean=1`), as JSON.
    async fn query(&self, params: &[(&str, &str)]) -> Result<Value, ConnectorError> {
        let req =
            self.request(reqwest::Method::GET, &self.config.collection_url())?.query(&[("lean", "1")]).query(params);
        self.send_json(req).await
    }

    /// A page Maximo pointed to (`nextPage`), as JSON.
    async fn get_json(&self, url: &str) -> Result<Value, ConnectorError> {
        self.send_json(self.request(reqwest::Method::GET, url)?).await
    }

    async fn send_json(&self, req: reqwest::RequestBuilder) -> Result<Value, ConnectorError> {
        let resp = req.send().await.map_err(|e| transport_error(&e))?;
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

    /// Every member matching `filter`, following `responseInfo.nextPage`.
    async fn query_all(&self, filter: &str, expected: usize) -> Result<Vec<Value>, ConnectorError> {
        let page_size = self.config.page_size.to_string();
        let mut reply =
            self.query(&[("oslc.select", POLL_SELECT), ("oslc.where", filter), ("oslc.pageSize", &page_size)]).await?;
        let mut members = Vec::with_capacity(expected);
        // A bound on pages: a server that keeps answering "next" must not
        // hold the poller forever.
        for _ in 0..=expected.div_ceil(self.config.page_size.max(1) as usize) + 1 {
            members.extend(reply.get("member").and_then(Value::as_array).cloned().unwrap_or_default());
            let next = reply.pointer("/responseInfo/nextPage/href").and_then(Value::as_str);
            match next.filter(|n| n.starts_with(&self.config.collection_url())) {
                Some(next) => reply = self.get_json(next).await?,
                None => break,
            }
        }
        Ok(members)
    }

    /// Patches one work order through its `href` (POST with
    /// `x-method-override: PATCH`, as Maximo's JSON API wants it).
    async fn patch(&self, order: &EamRef, patch_type: Option<&str>, body: &Value) -> Result<(), ConnectorError> {
        let href = self.href(order).await?;
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

/// A string literal for `oslc.where`: quotes cannot end it early.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('"', ""))
}

fn polled_status(m: &Value) -> Option<super::PolledStatus> {
    Some(super::PolledStatus {
        external_id: m.get("wonum")?.as_str()?.into(),
        site: m.get("siteid").and_then(Value::as_str).map(str::to_owned),
        status: m.get("status")?.as_str()?.to_owned(),
        changed_at: m
            .get("statusdate")
            .and_then(Value::as_str)
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc)),
        closure_code: None,
    })
}

fn first_member(reply: &Value) -> Option<&Value> {
    reply.get("member").and_then(Value::as_array).and_then(|m| m.first())
}
