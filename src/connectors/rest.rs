//! The generic REST connector: URL, method, headers, a JSON body template
//! and the paths of the id (and optionally status and link) in the reply.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::http::{classify, retry_after, transport_error};
use super::{ConnectorError, CreatedOrder, HeaderValue, OrderDocument};
use crate::domain::template;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// Where orders are created, e.g. `https://eam.example.com/api/orders`.
    pub url: String,
    /// POST (default) or PUT.
    #[serde(default = "post")]
    pub method: String,
    /// Extra headers; values are literal or `{"env": "VAR"}` / `{"file": "/path"}`.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValue>,
    /// JSON body; every string in it is a template over `order`, `asset` and
    /// `event`. A string that is one `{{ expression }}` keeps its type.
    /// Default: the order document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Path of the external id in the reply: JSON pointer (`/result/sys_id`)
    /// or dotted (`result.sys_id`).
    pub id_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path: Option<String>,
    /// Per request; default 10 s.
    #[serde(default = "timeout_default")]
    pub timeout_ms: u64,
    /// OAuth2 client credentials: a bearer token, cached and refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<super::auth::OAuth2Config>,
}

fn post() -> String {
    "POST".into()
}
fn timeout_default() -> u64 {
    10_000
}

impl RestConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url must be http or https".into());
        }
        if !matches!(self.method.as_str(), "POST" | "PUT") {
            return Err("method must be POST or PUT".into());
        }
        if self.id_path.trim().is_empty() {
            return Err("id_path must not be empty".into());
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err("timeout_ms must be 100 to 120000".into());
        }
        for name in self.headers.keys() {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header name {name:?} is not valid"))?;
        }
        if let Some(body) = &self.body {
            check_templates(body)?;
        }
        if let Some(o) = &self.oauth2 {
            o.validate()?;
        }
        Ok(())
    }
}

fn check_templates(v: &serde_json::Value) -> Result<(), String> {
    match v {
        serde_json::Value::String(s) => template::check(s).map_err(|e| format!("body: {e}")),
        serde_json::Value::Array(a) => a.iter().try_for_each(check_templates),
        serde_json::Value::Object(o) => o.values().try_for_each(check_templates),
        _ => Ok(()),
    }
}

pub struct RestConnector {
    config: RestConfig,
    http: reqwest::Client,
    tokens: std::sync::Arc<super::auth::TokenCache>,
    secrets: std::sync::Arc<super::secret::SecretPolicy>,
}

impl RestConnector {
    pub fn new(
        config: RestConfig,
        http: reqwest::Client,
        tokens: std::sync::Arc<super::auth::TokenCache>,
        secrets: std::sync::Arc<super::secret::SecretPolicy>,
    ) -> Self {
        Self { config, http, tokens, secrets }
    }

    async fn send_once(
        &self,
        order: &OrderDocument,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response, ConnectorError> {
        let method = if self.config.method == "PUT" { reqwest::Method::PUT } else { reqwest::Method::POST };
        let mut req = self
            .http
            .request(method, &self.config.url)
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .header("Idempotency-Key", order.reference.as_str())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body);
        for (name, value) in &self.config.headers {
            let value = value.resolve(&self.secrets).map_err(|message| ConnectorError::Permanent { message })?;
            req = req.header(name.as_str(), value);
        }
        if let Some(oauth) = &self.config.oauth2 {
            req = req.bearer_auth(self.tokens.bearer(&self.http, oauth, &self.secrets).await?);
        }
        req.send().await.map_err(|e| transport_error(&e))
    }
}

/// Looks up `path` (JSON pointer or dotted) in `v`, as text.
pub fn lookup(v: &serde_json::Value, path: &str) -> Option<String> {
    let found = if path.starts_with('/') {
        v.pointer(path)
    } else {
        path.split('.').try_fold(v, |cur, seg| match seg.parse::<usize>() {
            Ok(i) if cur.is_array() => cur.get(i),
            _ => cur.get(seg),
        })
    }?;
    match found {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[async_trait::async_trait]
impl super::Connector for RestConnector {
    async fn create(&self, order: &OrderDocument) -> Result<CreatedOrder, ConnectorError> {
        let body = match &self.config.body {
            Some(t) => template::render_json(t, &order.context)
                .map_err(|e| ConnectorError::Permanent { message: format!("body template: {e}") })?,
            None => serde_json::to_value(order).unwrap_or_default(),
        };
        let mut resp = self.send_once(order, &body).await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED
            && let Some(oauth) = &self.config.oauth2
        {
            // The token may have been revoked or expired early: one fresh try.
            self.tokens.invalidate(oauth);
            resp = self.send_once(order, &body).await?;
        }
        let status = resp.status();
        let retry = retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| transport_error(&e))?;
        if !status.is_success() {
            return Err(classify(status, &text, retry));
        }
        let reply: serde_json::Value = serde_json::from_str(&text).map_err(|_| ConnectorError::Unknown {
            message: format!("EAM answered {status} with a body that is not JSON"),
        })?;
        let external_id = lookup(&reply, &self.config.id_path).ok_or_else(|| ConnectorError::Unknown {
            message: format!("EAM answered {status} without an id at {}", self.config.id_path),
        })?;
        Ok(CreatedOrder {
            external_id: external_id.into(),
            external_url: self.config.url_path.as_deref().and_then(|p| lookup(&reply, p)),
            external_status: self.config.status_path.as_deref().and_then(|p| lookup(&reply, p)),

            site: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn looks_up_ids_by_pointer_and_dotted_path() {
        let v = json!({"result": {"sys_id": "abc", "number": 7}, "items": [{"id": "x"}]});
        assert_eq!(lookup(&v, "/result/sys_id").as_deref(), Some("abc"));
        assert_eq!(lookup(&v, "result.number").as_deref(), Some("7"));
        assert_eq!(lookup(&v, "items.0.id").as_deref(), Some("x"));
        assert_eq!(lookup(&v, "result.missing"), None);
    }
}
