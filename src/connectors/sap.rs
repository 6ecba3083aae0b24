//! SAP S/4HANA maintenance notifications, OData V2 API_MAINTNOTIFICATION
//! (`docs/eam-apis.md` §3): a CSRF token fetched with its session cookies
//! and kept for every later write (fetched again only when SAP answers 403
//! with `X-CSRF-Token: Required`), `MaintNotifExtReferenceNumber` carrying
//! our reference (at most 20 characters) so a notification is found again,
//! status from the notification's system statuses
//! (`ConcatenatedActiveSystStsName`: OSNO, NOPO, NOPR, NOCO), its
//! processing phase as a fallback, OData error bodies.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::http::{classify, retry_after, transport_error};
use super::{ConnectorError, CreatedOrder, HeaderValue, OrderDocument, PolledStatus};
use crate::domain::{EamRef, ExternalId, OrderStatus, WorkOrderId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
// Read through `SapConfigInput` (defaults that depend on other fields);
// `deny_unknown_fields` here only for the OpenAPI schema.
#[serde(from = "SapConfigInput", deny_unknown_fields)]
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
    /// System status (one word of `ConcatenatedActiveSystStsName`, which
    /// lists the notification's active statuses) → lifecycle status.
    /// Default: SAP's documented notification statuses, OSNO created, NOPO
    /// acknowledged, NOPR in progress, NOCO completed. When several words
    /// are mapped, the furthest status in the lifecycle wins.
    #[serde(default = "default_statuses")]
    pub statuses: BTreeMap<String, OrderStatus>,
    /// `NotifProcessingPhase` → lifecycle status, used only when SAP reports
    /// no system status. Default: 1 (outstanding) created, the only phase
    /// SAP's documentation confirms.
    #[serde(default = "default_phase_statuses")]
    pub phase_statuses: BTreeMap<String, OrderStatus>,
    #[serde(default = "super::default_timeout_ms")]
    pub timeout_ms: u64,
}

/// The configuration as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SapConfigInput {
    service_url: String,
    #[serde(default)]
    sap_client: Option<String>,
    username: String,
    password: HeaderValue,
    #[serde(default = "default_type")]
    notification_type: String,
    #[serde(default)]
    planning_plant: Option<String>,
    #[serde(default = "default_tech_object_type")]
    technical_object_type: String,
    #[serde(default)]
    statuses: Option<BTreeMap<String, OrderStatus>>,
    #[serde(default)]
    phase_statuses: Option<BTreeMap<String, OrderStatus>>,
    #[serde(default = "super::default_timeout_ms")]
    timeout_ms: u64,
}

impl From<SapConfigInput> for SapConfig {
    fn from(c: SapConfigInput) -> Self {
        // Configurations saved before the system statuses carry the old
        // phase map (never chosen, and wrong for 3) as `statuses`.
        let legacy = c.statuses.as_ref() == Some(&legacy_phase_statuses());
        Self {
            service_url: c.service_url,
            sap_client: c.sap_client,
            username: c.username,
            password: c.password,
            notification_type: c.notification_type,
            planning_plant: c.planning_plant,
            technical_object_type: c.technical_object_type,
            statuses: c.statuses.filter(|_| !legacy).unwrap_or_else(default_statuses),
            phase_statuses: c.phase_statuses.unwrap_or_else(default_phase_statuses),
            timeout_ms: c.timeout_ms,
        }
    }
}

fn default_type() -> String {
    "M2".into()
}
fn default_tech_object_type() -> String {
    "EAMS_EQUI".into()
}

/// SAP's notification system statuses (SAP Help, "Process Notification"):
/// OSNO outstanding, NOPO postponed (only before it is in process), NOPR in
/// process (also set when an order is created for it), NOCO completed.
pub fn default_statuses() -> BTreeMap<String, OrderStatus> {
    use OrderStatus::*;
    super::status_map(&[("OSNO", Created), ("NOPO", Acknowledged), ("NOPR", InProgress), ("NOCO", Completed)])
}

/// Processing phases: only 1 (outstanding) is documented.
pub fn default_phase_statuses() -> BTreeMap<String, OrderStatus> {
    super::status_map(&[("1", OrderStatus::Created)])
}

/// The phase map every SAP connector had by default before.
fn legacy_phase_statuses() -> BTreeMap<String, OrderStatus> {
    use OrderStatus::*;
    super::status_map(&[("1", Created), ("2", InProgress), ("3", Acknowledged), ("4", Completed)])
}

/// The status word of a notification as SAP reports it: its active system
/// statuses (`ConcatenatedActiveSystStsName`, e.g. `NOPR ORAS`), or its
/// processing phase when SAP gives none.
fn status_word(d: &Value) -> Option<String> {
    let field = |name: &str| d.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    field("ConcatenatedActiveSystStsName").or_else(|| field("NotifProcessingPhase")).map(str::to_owned)
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

    /// The lifecycle status of what SAP reports: the furthest of the mapped
    /// system statuses in `word`, else `word` as a processing phase.
    pub fn lifecycle_status(&self, word: &str) -> Option<OrderStatus> {
        let rank = |s: &OrderStatus| OrderStatus::ALL.iter().position(|a| a == s);
        word.split_whitespace()
            .filter_map(|w| self.statuses.get(w).copied())
            .max_by_key(rank)
            .or_else(|| self.phase_statuses.get(word.trim()).copied())
    }

    /// Whose session a CSRF token belongs to.
    fn session_key(&self) -> String {
        format!("{}|{}|{}", self.service_url, self.sap_client.as_deref().unwrap_or_default(), self.username)
    }
}

pub struct SapConnector {
    config: SapConfig,
    http: reqwest::Client,
    secrets: Arc<super::secret::SecretPolicy>,
    sessions: Arc<SapSessions>,
}

/// A CSRF token with the session cookies it belongs to (secrets: never
/// logged, never in an error).
pub struct Csrf {
    token: String,
    cookies: String,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf(***)")
    }
}

/// SAP sessions kept between writes, one per system, client and user:
/// a CSRF token is valid for its session, so one fetch serves every write
/// until SAP answers 403 `X-CSRF-Token: Required`.
#[derive(Debug, Default)]
pub struct SapSessions {
    tokens: Mutex<HashMap<String, Arc<Csrf>>>,
    /// One fetch at a time: writes that start together share it.
    fetching: tokio::sync::Mutex<()>,
}

impl SapSessions {
    /// The kept token, unless it is the one SAP just refused.
    fn usable(&self, key: &str, refused: Option<&Arc<Csrf>>) -> Option<Arc<Csrf>> {
        let map = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).filter(|c| refused.is_none_or(|r| !Arc::ptr_eq(c, r))).cloned()
    }

    fn put(&self, key: &str, csrf: Arc<Csrf>) {
        self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.to_owned(), csrf);
    }

    /// Forgets `refused`, unless another write has fetched a newer one.
    fn forget(&self, key: &str, refused: &Arc<Csrf>) {
        let mut map = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.get(key).is_some_and(|c| Arc::ptr_eq(c, refused)) {
            map.remove(key);
        }
    }
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
    pub fn new(
        config: SapConfig,
        http: reqwest::Client,
        secrets: Arc<super::secret::SecretPolicy>,
        sessions: Arc<SapSessions>,
    ) -> Self {
        Self { config, http, secrets, sessions }
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
            external_status: status_word(d),
            site: None,
        })
    }

    /// The session's CSRF token: the one kept, else (or when SAP has just
    /// refused the one kept) a new fetch, shared by the writes waiting.
    async fn session(&self, key: &str, refused: Option<&Arc<Csrf>>) -> Result<Arc<Csrf>, ConnectorError> {
        if let Some(csrf) = self.sessions.usable(key, refused) {
            return Ok(csrf);
        }
        let _one_fetch = self.sessions.fetching.lock().await;
        if let Some(csrf) = self.sessions.usable(key, refused) {
            return Ok(csrf);
        }
        let csrf = Arc::new(self.fetch_csrf().await?);
        self.sessions.put(key, csrf.clone());
        Ok(csrf)
    }

    /// A write with the session's CSRF token and cookies: fetched once and
    /// kept; fetched again, and the write sent once more, only when SAP
    /// answers 403 with `X-CSRF-Token: Required`. Returns SAP's answer.
    async fn write(
        &self,
        method: reqwest::Method,
        url: &str,
        body: &Value,
    ) -> Result<(StatusCode, String), ConnectorError> {
        let key = self.config.session_key();
        let mut refused: Option<Arc<Csrf>> = None;
        for round in 0..2 {
            let csrf = self.session(&key, refused.as_ref()).await?;
            let resp = self
                .request(method.clone(), url)?
                .header("X-CSRF-Token", &csrf.token)
                .header(reqwest::header::COOKIE, &csrf.cookies)
                .json(body)
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
            if csrf_refused {
                self.sessions.forget(&key, &csrf);
                refused = Some(csrf);
                if round == 0 {
                    tracing::info!("SAP refused the CSRF token (its session ended); fetching a new one");
                    continue;
                }
                break;
            }
            if !status.is_success() {
                return Err(classify(status, &error_message(&text), retry));
            }
            return Ok((status, text));
        }
        Err(ConnectorError::Transient { message: "SAP refused the CSRF token twice".into(), retry_after: None })
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
        let (status, text) =
            self.write(reqwest::Method::POST, &self.config.url("/MaintenanceNotification"), &body).await?;
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        reply.get("d").and_then(Self::created).ok_or_else(|| ConnectorError::Unknown {
            message: format!("SAP answered {status} without d.MaintenanceNotification"),
        })
    }

    async fn find_by_reference(&self, reference: &WorkOrderId) -> Result<Option<CreatedOrder>, ConnectorError> {
        let ext = external_reference(reference.as_str());
        let req = self.request(reqwest::Method::GET, &self.config.url("/MaintenanceNotification"))?.query(&[
            ("$filter", format!("MaintNotifExtReferenceNumber eq '{ext}'").as_str()),
            (
                "$select",
                "MaintenanceNotification,ConcatenatedActiveSystStsName,NotifProcessingPhase,MaintNotifExtReferenceNumber",
            ),
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
            (
                "$select",
                "MaintenanceNotification,ConcatenatedActiveSystStsName,NotifProcessingPhase,LastChangeDateTime",
            ),
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
                        status: status_word(r)?,
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

    fn config(extra: Value) -> SapConfig {
        let mut c = json!({"service_url": "https://s4.example.com/sap/opu/odata/sap/API_MAINTNOTIFICATION",
                           "username": "u", "password": "p"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn status_comes_from_the_system_statuses_then_the_phase() {
        let c = config(json!({}));
        assert_eq!(c.lifecycle_status("OSNO"), Some(OrderStatus::Created));
        assert_eq!(c.lifecycle_status("NOPR ORAS"), Some(OrderStatus::InProgress));
        assert_eq!(c.lifecycle_status("NOPO NOPT"), Some(OrderStatus::Acknowledged));
        assert_eq!(c.lifecycle_status("NOCO ORAS ATCO"), Some(OrderStatus::Completed));
        assert_eq!(c.lifecycle_status("1"), Some(OrderStatus::Created), "the phase, when no system status");
        assert_eq!(c.lifecycle_status("3"), None, "undocumented phases are not guessed");
        assert_eq!(c.lifecycle_status("NOPT"), None);
        // Several mapped words: the furthest in the lifecycle.
        let c = config(json!({"statuses": {"ORAS": "acknowledged", "NOPR": "in_progress", "DLFL": "cancelled"}}));
        assert_eq!(c.lifecycle_status("ORAS NOPR"), Some(OrderStatus::InProgress));
        assert_eq!(c.lifecycle_status("NOPR DLFL"), Some(OrderStatus::Cancelled));
        let d = json!({"ConcatenatedActiveSystStsName": " ", "NotifProcessingPhase": "1"});
        assert_eq!(status_word(&d).as_deref(), Some("1"));
        let d = json!({"ConcatenatedActiveSystStsName": "NOPR ORAS", "NotifProcessingPhase": "3"});
        assert_eq!(status_word(&d).as_deref(), Some("NOPR ORAS"));
    }

    #[test]
    fn saved_configurations_with_the_old_phase_map_take_the_new_defaults() {
        let old = serde_json::to_value(legacy_phase_statuses()).unwrap();
        let c = config(json!({"statuses": old}));
        assert_eq!((c.statuses.clone(), c.phase_statuses.clone()), (default_statuses(), default_phase_statuses()));
        let own = config(json!({"statuses": {"MEAB": "completed"}, "phase_statuses": {"4": "completed"}}));
        assert_eq!((own.statuses.len(), own.phase_statuses.len()), (1, 1));
        let again: SapConfig = serde_json::from_value(serde_json::to_value(&own).unwrap()).unwrap();
        assert_eq!(again, own);
        assert_eq!(format!("{:?}", Csrf { token: "t0k3n".into(), cookies: "SAP_SESSIONID=s".into() }), "Csrf(***)");
    }
}
