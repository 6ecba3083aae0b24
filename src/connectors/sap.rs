//! SAP S/4HANA maintenance notifications, OData V2 API_MAINTNOTIFICATION
//! (`docs/eam-apis.md` §3): a CSRF token fetched with its cookies before
//! writing (and fetched again when a write answers 403 for the token),
//! `MaintNotifExtReferenceNumber` carrying our reference (at most 20
//! characters) so a notification is found again, OData error bodies.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::http::{classify, retry_after, transport_error};
use super::{ConnectorError, CreatedOrder, HeaderValue, OrderDocument, PolledStatus};
use crate::domain::{EamRef, ExternalId, OrderStatus, WorkOrderId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SapConfig {
    /// The OData service root, e.g.
    /// `https://s4.example.com/sap/opu/odata/sap/API_MAINTNOTIFICATION`.
    pub service_url: String,
    /// `sap-client` (on-premise systems with several clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sap_client: Option<String>,
    pub username: String,
    /// `{"env": "SAP_PASSWORD"}`, `{"file": …}` or a literal (masked in responses).
    pub password: HeaderValue,
    /// `NotificationType`, e.g. M2 (malfunction report) or M1.
    #[serde(default = "default_type")]
    pub notification_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planning_plant: Option<String>,
    /// `TechObjIsEquipOrFuncnlLoc`: EAMS_EQUI (equipment) or EAMS_FL.
    #[serde(default = "default_tech_object_type")]
    pub technical_object_type: String,
    /// `NotifProcessingPhase` → lifecycle status. Only 1 (outstanding) is
    /// confirmed by SAP's documentation; check the others on your system.
    #[serde(default = "default_statuses")]
    pub statuses: BTreeMap<String, OrderStatus>,
    #[serde(default = "super::default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_type() -> String {
    "M2".into()
}
fn default_tech_object_type() -> String {
    "EAMS_EQUI".into()
}
pub fn default_statuses() -> BTreeMap<String, OrderStatus> {
    use OrderStatus::*;
    super::status_map(&[("1", Created), ("2", InProgress), ("3", Acknowledged), ("4", Completed)])
}

/// Our reference in the ≤20 characters of `MaintNotifExtReferenceNumber`:
/// `WB` and the last 18 hex digits of the order id (its random part).
pub fn external_reference(order_id: &str) -> String {
    let hex: String = order_id.chars().filter(char::is_ascii_hexdigit).collect();
    format!("WB{}", hex[hex.len().saturating_sub(18)..].to_ascii_uppercase())
}

impl SapConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.service_url).map_err(|e| format!("service_url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("service_url must be http or https".into());
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err("timeout_ms must be 100 to 120000".into());
        }
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.service_url.trim_end_matches('/'))
    }
}

pub struct SapConnector {
    config: SapConfig,
    http: reqwest::Client,
    secrets: std::sync::Arc<super::secret::SecretPolicy>,
}

/// A CSRF token with the session cookies it belongs to.
struct Csrf {
    token: String,
    cookies: String,
}

/// OData's error body: `{"error": {"code", "message": {"value"}}}`.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            let code = e.get("code").and_then(Value::as_str).unwrap_or_default();
            let msg = e.pointer("/message/value").and_then(Value::as_str).unwrap_or_default();
            Some(format!("{code} {msg}"))
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// `/Date(1736467200000)/` or `/Date(1736467200000+0000)/`.
fn odata_date(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let inner = s.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let ms: i64 = inner.split(['+', '-']).next()?.parse().ok()?;
    chrono::DateTime::from_timestamp_millis(ms)
}

impl SapConnector {
    pub fn new(config: SapConfig, http: reqwest::Client, secrets: std::sync::Arc<super::secret::SecretPolicy>) -> Self {
        Self { config, http, secrets }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, ConnectorError> {
        let password =
            self.config.password.resolve(&self.secrets).map_err(|message| ConnectorError::Permanent { message })?;
        let mut req = self
            .http
            .request(method, url)
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .basic_auth(&self.config.username, Some(password))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(client) = &self.config.sap_client {
            req = req.query(&[("sap-client", client.as_str())]);
        }
        Ok(req)
    }

    async fn fetch_csrf(&self) -> Result<Csrf, ConnectorError> {
        let resp = self
            .request(reqwest::Method::GET, &self.config.url("/"))?
            .header("X-CSRF-Token", "Fetch")
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let retry = retry_after(resp.headers());
            let text = resp.text().await.unwrap_or_default();
            return Err(classify(status, &error_message(&text), retry));
        }
        let token = resp
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ConnectorError::Permanent { message: "SAP gave no X-CSRF-Token".into() })?;
        let cookies = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Csrf { token, cookies })
    }

    async fn get_json(&self, req: reqwest::RequestBuilder) -> Result<Value, ConnectorError> {
        let resp = req.send().await.map_err(|e| transport_error(&e))?;
        let status = resp.status();
        let retry = retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| transport_error(&e))?;
        if !status.is_success() {
            return Err(classify(status, &error_message(&text), retry));
        }
        serde_json::from_str(&text).map_err(|_| ConnectorError::Transient {
            message: "SAP answered with a body that is not JSON".into(),
            retry_after: None,
        })
    }

    fn created(d: &Value) -> Option<CreatedOrder> {
        Some(CreatedOrder {
            external_id: d.get("MaintenanceNotification")?.as_str()?.into(),
            external_url: None,
            external_status: d.get("NotifProcessingPhase").and_then(Value::as_str).map(str::to_owned),

            site: None,
        })
    }
}

#[async_trait::async_trait]
impl super::Connector for SapConnector {
    async fn create(&self, order: &OrderDocument) -> Result<CreatedOrder, ConnectorError> {
        let start = order.first_event_time;
        let mut body = json!({
            "NotificationText": order.title.chars().take(40).collect::<String>(),
            "NotificationType": self.config.notification_type,
            "MaintPriority": order.priority.to_string(),
            "TechnicalObject": order.asset_id,
            "TechObjIsEquipOrFuncnlLoc": self.config.technical_object_type,
            "MalfunctionStartDate": format!("/Date({})/", start.date_naive().and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp_millis()).unwrap_or_default()),
            "MalfunctionStartTime": start.format("PT%HH%MM%SS").to_string(),
            "MaintNotifLongTextForEdit": order.description.chars().take(1333).collect::<String>(),
            "MaintNotifExtReferenceNumber": external_reference(order.reference.as_str()),
        });
        if let Some(plant) = &self.config.planning_plant {
            body["MaintenancePlanningPlant"] = json!(plant);
        }
        // A token can expire between fetch and write: SAP then answers 403
        // with `X-CSRF-Token: Required`; fetch a new one and write once more.
        for round in 0..2 {
            let csrf = self.fetch_csrf().await?;
            let resp = self
                .request(reqwest::Method::POST, &self.config.url("/MaintenanceNotification"))?
                .header("X-CSRF-Token", &csrf.token)
                .header(reqwest::header::COOKIE, &csrf.cookies)
                .json(&body)
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let status = resp.status();
            let csrf_refused = status == StatusCode::FORBIDDEN
                && resp
                    .headers()
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("required"));
            let retry = retry_after(resp.headers());
            let text = resp.text().await.map_err(|e| transport_error(&e))?;
            if csrf_refused && round == 0 {
                tracing::info!("SAP refused the CSRF token; fetching a new one");
                continue;
            }
            if !status.is_success() {
                return Err(classify(status, &error_message(&text), retry));
            }
            let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return reply.get("d").and_then(Self::created).ok_or_else(|| ConnectorError::Unknown {
                message: format!("SAP answered {status} without d.MaintenanceNotification"),
            });
        }
        Err(ConnectorError::Transient { message: "SAP refused the CSRF token twice".into(), retry_after: None })
    }

    async fn find_by_reference(&self, reference: &WorkOrderId) -> Result<Option<CreatedOrder>, ConnectorError> {
        let ext = external_reference(reference.as_str());
        let req = self.request(reqwest::Method::GET, &self.config.url("/MaintenanceNotification"))?.query(&[
            ("$filter", format!("MaintNotifExtReferenceNumber eq '{ext}'").as_str()),
            ("$select", "MaintenanceNotification,NotifProcessingPhase,MaintNotifExtReferenceNumber"),
            ("$format", "json"),
        ]);
        let reply = self.get_json(req).await?;
        Ok(reply
            .pointer("/d/results")
            .and_then(Value::as_array)
            .and_then(|r| {
                r.iter().find(|n| n.get("MaintNotifExtReferenceNumber").and_then(Value::as_str) == Some(ext.as_str()))
            })
            .and_then(Self::created))
    }

    async fn poll(&self, orders: &[EamRef]) -> Result<Option<Vec<PolledStatus>>, ConnectorError> {
        let external_ids: Vec<ExternalId> = orders.iter().map(|o| o.external_id.clone()).collect();
        let filter = external_ids
            .iter()
            .map(|id| format!("MaintenanceNotification eq '{}'", id.as_str().replace('\'', "")))
            .collect::<Vec<_>>()
            .join(" or ");
        let req = self.request(reqwest::Method::GET, &self.config.url("/MaintenanceNotification"))?.query(&[
            ("$filter", filter.as_str()),
            ("$select", "MaintenanceNotification,NotifProcessingPhase,LastChangeDateTime"),
            ("$format", "json"),
        ]);
        let reply = self.get_json(req).await?;
        let rows = reply.pointer("/d/results").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(Some(
            rows.iter()
                .filter_map(|r| {
                    Some(PolledStatus {
                        external_id: r.get("MaintenanceNotification")?.as_str()?.into(),
                        site: None,
                        status: r.get("NotifProcessingPhase")?.as_str()?.to_owned(),
                        changed_at: r.get("LastChangeDateTime").and_then(Value::as_str).and_then(odata_date),
                        closure_code: None,
                    })
                })
                .collect(),
        ))
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let reply = self
            .get_json(self.request(reqwest::Method::GET, &self.config.url("/"))?.query(&[("$format", "json")]))
            .await?;
        let sets = reply.pointer("/d/EntitySets").and_then(Value::as_array).cloned().unwrap_or_default();
        if sets.iter().any(|s| s.as_str() == Some("MaintenanceNotification")) {
            Ok("API_MAINTNOTIFICATION answers with MaintenanceNotification".into())
        } else {
            Err(ConnectorError::Permanent { message: "the service has no MaintenanceNotification entity set".into() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_fits_sap_and_stays_the_same() {
        let r = external_reference("01a2129a-6818-7095-8009-f1533ba7f1f4");
        assert_eq!(r, "WB958009F1533BA7F1F4");
        assert_eq!(r.len(), 20);
        assert_eq!(r, external_reference("01a2129a-6818-7095-8009-f1533ba7f1f4"));
        assert_eq!(odata_date("/Date(1736467200000)/").unwrap().to_rfc3339(), "2025-01-10T00:00:00+00:00");
        assert_eq!(odata_date("/Date(1736467200000+0000)/").unwrap().timestamp(), 1_736_467_200);
    }
}
