//! OAuth2 client credentials: a token fetched from the token endpoint,
//! cached until shortly before it expires, and dropped when the EAM answers
//! 401 so that the next request fetches a fresh one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::http::{classify, transport_error};
use super::{ConnectorError, HeaderValue};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// e.g. `https://example.service-now.com/oauth_token.do`.
    pub token_url: String,
    pub client_id: String,
    /// `{"env": "VAR"}`, `{"file": …}` or a literal (masked in responses).
    pub client_secret: HeaderValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl OAuth2Config {
    pub fn validate(&self) -> Result<(), String> {
        reqwest::Url::parse(&self.token_url).map_err(|e| format!("oauth2.token_url: {e}"))?;
        if self.client_id.trim().is_empty() {
            return Err("oauth2.client_id must not be empty".into());
        }
        Ok(())
    }

    pub fn redacted(&self) -> Self {
        let mut c = self.clone();
        if let HeaderValue::Literal(_) = c.client_secret {
            c.client_secret = HeaderValue::Literal("***".into());
        }
        c
    }

    fn key(&self) -> String {
        format!("{} {}", self.token_url, self.client_id)
    }
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// Tokens by (token URL, client id), shared by every delivery of a replica.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
    /// Held while a token is fetched: deliveries that need one at the same
    /// moment (several delivery loops, a round's concurrent requests) wait
    /// for the first fetch and use its token instead of each asking.
    fetching: tokio::sync::Mutex<()>,
}

impl TokenCache {
    fn cached(&self, cfg: &OAuth2Config) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.get(&cfg.key()).filter(|(_, until)| *until > Utc::now()).map(|(token, _)| token.clone())
    }

    /// A valid access token: cached, or fetched with the client credentials.
    pub async fn bearer(
        &self,
        http: &reqwest::Client,
        cfg: &OAuth2Config,
        secrets: &super::secret::SecretPolicy,
    ) -> Result<String, ConnectorError> {
        if let Some(token) = self.cached(cfg) {
            return Ok(token);
        }
        let _fetching = self.fetching.lock().await;
        if let Some(token) = self.cached(cfg) {
            return Ok(token); // fetched by whoever held the lock before
        }
        // Its lifetime counts from before the request.
        let now = Utc::now();
        let secret = cfg.client_secret.resolve(secrets).map_err(|message| ConnectorError::Permanent { message })?;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", secret.as_str()),
        ];
        if let Some(scope) = &cfg.scope {
            form.push(("scope", scope));
        }
        let resp = http
            .post(&cfg.token_url)
            .timeout(Duration::from_secs(10))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            // The body may echo what was sent; keep it out of errors.
            return Err(match classify(status, "", None) {
                ConnectorError::Permanent { .. } => ConnectorError::Permanent {
                    message: format!("the token endpoint refused the client credentials ({status})"),
                },
                other => other,
            });
        }
        let reply: TokenReply = resp.json().await.map_err(|_| ConnectorError::Transient {
            message: "the token endpoint answered without an access_token".into(),
            retry_after: None,
        })?;
        // Refresh a minute early, so that a token never expires in flight.
        let lifetime = reply.expires_in.unwrap_or(300).saturating_sub(60).max(0);
        let until = now + chrono::Duration::seconds(lifetime);
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(cfg.key(), (reply.access_token.clone(), until));
        Ok(reply.access_token)
    }

    /// Forgets the token after the EAM refused it (401).
    pub fn invalidate(&self, cfg: &OAuth2Config) {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(&cfg.key());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// Deliveries that need a token at the same moment share one fetch.
    #[tokio::test]
    async fn concurrent_deliveries_fetch_one_token() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth_token.do"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"access_token": "t-1", "expires_in": 1800}))
                    .set_delay(Duration::from_millis(100)),
            )
            .expect(1)
            .mount(&server)
            .await;
        let cfg: OAuth2Config = serde_json::from_value(serde_json::json!({
            "token_url": format!("{}/oauth_token.do", server.uri()), "client_id": "wb", "client_secret": "shh"
        }))
        .unwrap();
        crate::app::install_tls_provider();
        let (cache, http) = (TokenCache::default(), reqwest::Client::new());
        let policy = super::super::secret::SecretPolicy::default();
        let tokens = futures_util::future::join_all((0..8).map(|_| cache.bearer(&http, &cfg, &policy))).await;
        assert!(tokens.iter().all(|t| t.as_deref().ok() == Some("t-1")), "{tokens:?}");
        server.verify().await;
    }
}
