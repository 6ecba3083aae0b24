//! ServiceNow Table API (`docs/eam-apis.md` §2): incidents (or work
//! orders, work order tasks) created with `correlation_id` carrying our
//! reference, found again with `sysparm_query=correlation_id=…`, followed
//! and cancelled with the table's own `state` values (incident 8, wm_task
//! and wm_order 7); basic authentication or OAuth2;
//! `{"error": {"message", "detail"}, "status": "failure"}`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::http::{classify, retry_after, transport_error};
use super::{ConnectorError, CreatedOrder, HeaderValue, OrderDocument};
use crate::domain::{EamRef, ExternalId, OrderStatus, WorkOrderId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
// Read through `ServiceNowConfigInput` (defaults that depend on other fields);
// `deny_unknown_fields` here only for the OpenAPI schema.
#[serde(from = "ServiceNowConfigInput", deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// e.g. `https://example.service-now.com`.
    pub instance_url: String,
    /// `incident` (default), `wm_order` or `wm_task`.
    #[serde(default = "default_table")]
    pub table: String,
    /// Basic authentication: user …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// … and password: `{"env": "SN_PASSWORD"}`, `{"file": …}` or a literal (masked in responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<HeaderValue>,
    /// Or OAuth2 client credentials (`/oauth_token.do`; Washington DC and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<super::auth::OAuth2Config>,
    /// `assignment_group` of new records (sys_id or name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_group: Option<String>,
    /// ServiceNow `state` value → lifecycle status. Default: the table's
    /// own map (incident, wm_order, wm_task; other tables: the incident's),
    /// see the README's "Status maps: ServiceNow".
    #[serde(default)]
    pub statuses: BTreeMap<String, OrderStatus>,
    /// The `state` value that cancels. Default: the table's (incident 8,
    /// wm_task 7, wm_order 7 — unconfirmed for wm_order).
    #[serde(default)]
    pub cancel_state: String,
    #[serde(default = "super::default_timeout_ms")]
    pub timeout_ms: u64,
}

/// The configuration as sent: a map or cancel state left out takes the
/// table's default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceNowConfigInput {
    instance_url: String,
    #[serde(default = "default_table")]
    table: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<HeaderValue>,
    #[serde(default)]
    oauth2: Option<super::auth::OAuth2Config>,
    #[serde(default)]
    assignment_group: Option<String>,
    #[serde(default)]
    statuses: Option<BTreeMap<String, OrderStatus>>,
    #[serde(default)]
    cancel_state: Option<String>,
    #[serde(default = "super::default_timeout_ms")]
    timeout_ms: u64,
}

impl From<ServiceNowConfigInput> for ServiceNowConfig {
    fn from(c: ServiceNowConfigInput) -> Self {
        // Configurations saved before the maps were per table carry the
        // incident's old map and 8 whatever their table: they never chose
        // them, so they take their table's defaults now.
        let legacy = c.statuses.as_ref() == Some(&legacy_incident_statuses());
        let statuses = c.statuses.filter(|_| !legacy).unwrap_or_else(|| default_statuses(&c.table));
        let cancel_state = c
            .cancel_state
            .filter(|s| !(legacy && s == "8"))
            .unwrap_or_else(|| default_cancel_state(&c.table).to_owned());
        Self {
            instance_url: c.instance_url,
            table: c.table,
            username: c.username,
            password: c.password,
            oauth2: c.oauth2,
            assignment_group: c.assignment_group,
            statuses,
            cancel_state,
            timeout_ms: c.timeout_ms,
        }
    }
}

fn default_table() -> String {
    "incident".into()
}

/// The `state` value that cancels a record of `table`: incident 8 Canceled
/// [S6]; wm_task 7 Cancelled [S8]; wm_order 7, assumed the same as its
/// tasks' (UNCONFIRMED).
pub fn default_cancel_state(table: &str) -> &'static str {
    match table {
        "wm_order" | "wm_task" => "7",
        _ => "8",
    }
}

/// The state map of `table` (`docs/eam-apis.md` §2):
/// - incident: 1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed,
///   8 Canceled. On Hold is a pause in the work, so it counts as in
///   progress: an order on hold never moves back before in progress.
/// - wm_task: 1 Draft, 10 Pending Dispatch, 16 Assigned, 17 Accepted, 18
///   Work in Progress, 3 Closed Complete, 4 Closed Incomplete, 7 Cancelled
///   (values from one customer guide, not ServiceNow's own documentation).
/// - wm_order: the same values where its states bear the same labels
///   (UNCONFIRMED); Awaiting Qualification, Qualified and Ready for Dispatch
///   have no confirmed value and are left out (add them in `statuses`).
/// - any other table: the incident's.
pub fn default_statuses(table: &str) -> BTreeMap<String, OrderStatus> {
    use OrderStatus::*;
    match table {
        "wm_task" => super::status_map(&[
            ("1", Created),
            ("10", Acknowledged),
            ("16", Acknowledged),
            ("17", Acknowledged),
            ("18", InProgress),
            ("3", Completed),
            ("4", Closed),
            ("7", Cancelled),
        ]),
        "wm_order" => super::status_map(&[
            ("1", Created),
            ("16", Acknowledged),
            ("17", Acknowledged),
            ("18", InProgress),
            ("3", Completed),
            ("4", Closed),
            ("7", Cancelled),
        ]),
        _ => super::status_map(&[
            ("1", Created),
            ("2", InProgress),
            ("3", InProgress),
            ("6", Completed),
            ("7", Closed),
            ("8", Cancelled),
        ]),
    }
}

/// The incident map every table had by default before the maps were per
/// table (On Hold as acknowledged).
fn legacy_incident_statuses() -> BTreeMap<String, OrderStatus> {
    use OrderStatus::*;
    super::status_map(&[
        ("1", Created),
        ("2", InProgress),
        ("3", Acknowledged),
        ("6", Completed),
        ("7", Closed),
        ("8", Cancelled),
    ])
}

/// workbridge priority → ServiceNow (impact, urgency); ServiceNow computes
/// its priority from the two (1+1 → P1 … 3+3 → P5).
fn impact_urgency(priority: u8) -> (&'static str, &'static str) {
    match priority {
        1 => ("1", "1"),
        2 => ("1", "2"),
        3 => ("2", "2"),
        4 => ("2", "3"),
        _ => ("3", "3"),
    }
}

const FIELDS: &str = "sys_id,number,state,correlation_id";

impl ServiceNowConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.instance_url).map_err(|e| format!("instance_url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("instance_url must be http or https".into());
        }
        if self.table.is_empty() || !self.table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("table must be a table name such as incident".into());
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err("timeout_ms must be 100 to 120000".into());
        }
        if self.cancel_state.trim().is_empty() {
            return Err("cancel_state must be a state value such as 8".into());
        }
        match (&self.username, &self.password, &self.oauth2) {
            (Some(_), Some(_), None) => Ok(()),
            (None, None, Some(o)) => o.validate(),
            _ => Err("give either username and password (basic) or oauth2".into()),
        }
    }

    pub fn redacted(&self) -> Self {
        let mut c = self.clone();
        if let Some(HeaderValue::Literal(_)) = c.password {
            c.password = Some(HeaderValue::Literal("***".into()));
        }
        c.oauth2 = c.oauth2.as_ref().map(super::auth::OAuth2Config::redacted);
        c
    }

    fn table_url(&self) -> String {
        format!("{}/api/now/table/{}", self.instance_url.trim_end_matches('/'), self.table)
    }
}

pub struct ServiceNowConnector {
    config: ServiceNowConfig,
    http: reqwest::Client,
    tokens: std::sync::Arc<super::auth::TokenCache>,
    secrets: std::sync::Arc<super::secret::SecretPolicy>,
}

fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            let msg = e.get("message").and_then(Value::as_str).unwrap_or_default();
            let detail = e.get("detail").and_then(Value::as_str).unwrap_or_default();
            Some(format!("{msg}: {detail}"))
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

impl ServiceNowConnector {
    pub fn new(
        config: ServiceNowConfig,
        http: reqwest::Client,
        tokens: std::sync::Arc<super::auth::TokenCache>,
        secrets: std::sync::Arc<super::secret::SecretPolicy>,
    ) -> Self {
        Self { config, http, tokens, secrets }
    }

    async fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, ConnectorError> {
        let req = self
            .http
            .request(method, url)
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .header(reqwest::header::ACCEPT, "application/json");
        Ok(match (&self.config.oauth2, &self.config.username, &self.config.password) {
            (Some(o), _, _) => req.bearer_auth(self.tokens.bearer(&self.http, o, &self.secrets).await?),
            (None, Some(user), Some(password)) => {
                let password =
                    password.resolve(&self.secrets).map_err(|message| ConnectorError::Permanent { message })?;
                req.basic_auth(user, Some(password))
            }
            _ => return Err(ConnectorError::Permanent { message: "the connector has no credentials".into() }),
        })
    }

    fn created(&self, record: &Value) -> Option<CreatedOrder> {
        let sys_id = record.get("sys_id")?.as_str()?.to_owned();
        Some(CreatedOrder {
            external_url: Some(format!(
                "{}/{}.do?sys_id={sys_id}",
                self.config.instance_url.trim_end_matches('/'),
                self.config.table
            )),
            external_id: sys_id.into(),
            external_status: record.get("state").and_then(Value::as_str).map(str::to_owned),

            site: None,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ConnectorError> {
        let resp = req.send().await.map_err(|e| transport_error(&e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED
            && let Some(o) = &self.config.oauth2
        {
            // A revoked or early-expired token: the next attempt fetches a new one.
            self.tokens.invalidate(o);
            return Err(ConnectorError::Transient {
                message: "ServiceNow refused the OAuth token (401)".into(),
                retry_after: None,
            });
        }
        let retry = retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| transport_error(&e))?;
        if !status.is_success() {
            return Err(classify(status, &error_message(&text), retry));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[async_trait::async_trait]
impl super::Connector for ServiceNowConnector {
    async fn create(&self, order: &OrderDocument) -> Result<CreatedOrder, ConnectorError> {
        let (impact, urgency) = impact_urgency(order.priority);
        let mut body = json!({
            "short_description": order.title,
            "description": order.description,
            "cmdb_ci": order.asset_id,
            "impact": impact,
            "urgency": urgency,
            "correlation_id": order.reference,
            "correlation_display": "workbridge",
        });
        if let Some(group) = &self.config.assignment_group {
            body["assignment_group"] = json!(group);
        }
        let req = self
            .request(reqwest::Method::POST, &self.config.table_url())
            .await?
            .query(&[("sysparm_fields", FIELDS), ("sysparm_input_display_value", "true")])
            .json(&body);
        let reply = self.send(req).await?;
        reply
            .get("result")
            .and_then(|r| self.created(r))
            .ok_or_else(|| ConnectorError::Unknown { message: "ServiceNow answered without result.sys_id".into() })
    }

    async fn find_by_reference(&self, reference: &WorkOrderId) -> Result<Option<CreatedOrder>, ConnectorError> {
        let req = self.request(reqwest::Method::GET, &self.config.table_url()).await?.query(&[
            ("sysparm_query", format!("correlation_id={reference}").as_str()),
            ("sysparm_fields", FIELDS),
            ("sysparm_limit", "1"),
        ]);
        let reply = self.send(req).await?;
        // An unknown field in sysparm_query is silently dropped by ServiceNow
        // (all rows come back): check the correlation id ourselves.
        Ok(reply
            .get("result")
            .and_then(Value::as_array)
            .and_then(|rows| {
                rows.iter().find(|r| r.get("correlation_id").and_then(Value::as_str) == Some(reference.as_str()))
            })
            .and_then(|r| self.created(r)))
    }

    async fn add_comment(&self, order: &EamRef, text: &str) -> Result<(), ConnectorError> {
        let external_id = &order.external_id;
        let url = format!("{}/{external_id}", self.config.table_url());
        let req = self.request(reqwest::Method::PATCH, &url).await?.json(&json!({"work_notes": text}));
        self.send(req).await.map(drop)
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let req = self
            .request(reqwest::Method::GET, &self.config.table_url())
            .await?
            .query(&[("sysparm_limit", "1"), ("sysparm_fields", FIELDS)]);
        let reply = self.send(req).await?;
        if !reply.get("result").is_some_and(Value::is_array) {
            return Err(ConnectorError::Permanent {
                message: format!("table {} answered without a result list", self.config.table),
            });
        }
        Ok(format!("table {} answers", self.config.table))
    }

    async fn poll(&self, orders: &[EamRef]) -> Result<Option<Vec<super::PolledStatus>>, ConnectorError> {
        let external_ids: Vec<ExternalId> = orders.iter().map(|o| o.external_id.clone()).collect();
        let req = self.request(reqwest::Method::GET, &self.config.table_url()).await?.query(&[
            (
                "sysparm_query",
                format!("sys_idIN{}", external_ids.iter().map(ExternalId::as_str).collect::<Vec<_>>().join(","))
                    .as_str(),
            ),
            ("sysparm_fields", "sys_id,state,sys_updated_on,close_code"),
            ("sysparm_limit", &external_ids.len().max(1).to_string()),
        ]);
        let reply = self.send(req).await?;
        let rows = reply.get("result").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(Some(
            rows.iter()
                .filter_map(|r| {
                    Some(super::PolledStatus {
                        external_id: r.get("sys_id")?.as_str()?.into(),
                        site: None,
                        status: r.get("state")?.as_str()?.to_owned(),
                        // ServiceNow answers "2026-11-24 10:15:00" in UTC.
                        changed_at: r
                            .get("sys_updated_on")
                            .and_then(Value::as_str)
                            .and_then(|d| chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%d %H:%M:%S").ok())
                            .map(|d| d.and_utc()),
                        closure_code: r
                            .get("close_code")
                            .and_then(Value::as_str)
                            .filter(|c| !c.is_empty())
                            .map(str::to_owned),
                    })
                })
                .collect(),
        ))
    }

    async fn cancel(&self, order: &EamRef) -> Result<(), ConnectorError> {
        let external_id = &order.external_id;
        let url = format!("{}/{external_id}", self.config.table_url());
        let req = self.request(reqwest::Method::PATCH, &url).await?.json(&json!({"state": self.config.cancel_state}));
        self.send(req).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Value) -> ServiceNowConfig {
        let mut c = json!({"instance_url": "https://x.service-now.com", "username": "u", "password": "p"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn each_table_has_its_own_defaults() {
        let incident = config(json!({}));
        assert_eq!((incident.table.as_str(), incident.cancel_state.as_str()), ("incident", "8"));
        assert_eq!(incident.statuses["3"], OrderStatus::InProgress, "On Hold is not before In Progress");
        let task = config(json!({"table": "wm_task"}));
        assert_eq!(task.cancel_state, "7");
        assert_eq!(task.statuses["18"], OrderStatus::InProgress);
        assert!(!task.statuses.contains_key("8"));
        // What the API shows is what applies, and reads back the same.
        let again: ServiceNowConfig = serde_json::from_value(serde_json::to_value(&task).unwrap()).unwrap();
        assert_eq!(again, task);
    }

    #[test]
    fn saved_configurations_with_the_old_incident_default_take_their_table_defaults() {
        let old = serde_json::to_value(legacy_incident_statuses()).unwrap();
        let task = config(json!({"table": "wm_task", "statuses": old, "cancel_state": "8"}));
        assert_eq!((task.statuses.clone(), task.cancel_state.as_str()), (default_statuses("wm_task"), "7"));
        let incident = config(json!({"statuses": old, "cancel_state": "8"}));
        assert_eq!(incident.statuses["3"], OrderStatus::InProgress);
        // A map of one's own is kept, and so is its cancel state.
        let own = config(json!({"table": "wm_task", "statuses": {"18": "in_progress"}, "cancel_state": "8"}));
        assert_eq!((own.statuses.len(), own.cancel_state.as_str()), (1, "8"));
        assert!(serde_json::from_value::<ServiceNowConfig>(json!({"instance_url": "x", "unknown": 1})).is_err());
    }
}
