//! What every HTTP connector shares: how an answer is classified
//! (transient, permanent, unknown) and how long the EAM asks us to wait.
//! Connectors only classify; the dispatcher owns retries.

use std::time::Duration;

use reqwest::StatusCode;

use super::ConnectorError;

/// `Retry-After` in seconds (the HTTP-date form is rare in EAM APIs and is
/// treated as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Classifies an HTTP failure status.
pub fn classify(status: StatusCode, body: &str, retry: Option<Duration>) -> ConnectorError {
    // Keep bodies short in errors: they are stored and shown to planners.
    let snippet: String = body.chars().take(300).collect();
    let message = format!("EAM answered {status}: {snippet}");
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        ConnectorError::Transient { message, retry_after: retry }
    } else {
        ConnectorError::Permanent { message }
    }
}

pub fn transport_error(e: &reqwest::Error) -> ConnectorError {
    // Without the URL: it may carry credentials in its query.
    let text = e.without_url_ref();
    if e.is_connect() {
        ConnectorError::Transient { message: format!("cannot connect: {text}"), retry_after: None }
    } else if e.is_timeout() {
        ConnectorError::Unknown { message: format!("no answer in time: {text}") }
    } else {
        ConnectorError::Unknown { message: format!("request failed: {text}") }
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}
impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut s = self.to_string();
        if let Some(url) = self.url() {
            s = s.replace(url.as_str(), "<url>");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        assert!(matches!(classify(StatusCode::SERVICE_UNAVAILABLE, "", None), ConnectorError::Transient { .. }));
        assert!(
            matches!(classify(StatusCode::TOO_MANY_REQUESTS, "", Some(Duration::from_secs(3))), ConnectorError::Transient { retry_after: Some(d), .. } if d.as_secs() == 3)
        );
        assert!(matches!(classify(StatusCode::BAD_REQUEST, "bad", None), ConnectorError::Permanent { .. }));
    }
}
