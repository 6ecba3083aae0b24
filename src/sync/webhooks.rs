//! Inbound status webhooks, signed as the Standard Webhooks specification
//! defines: `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256
//! of "{id}.{timestamp}.{body}">` (several during key rotation). The secret
//! is `whsec_` followed by base64. Timestamps more than 5 minutes off are
//! refused; signatures are compared in constant time.

pub use crate::connectors::secret::decode_secret;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How far `webhook-timestamp` may be from our clock.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// How long a `webhook-id` must be remembered: a message signed at `t` is
/// accepted until `t + 5 min`, and may have first arrived at `t - 5 min`.
pub fn replay_window() -> chrono::Duration {
    chrono::Duration::seconds(2 * TOLERANCE_SECS)
}

/// Most `v1,…` candidates read from `webhook-signature`: a sender signs
/// with each secret it rotates through, two or three at a time.
pub const MAX_SIGNATURES: usize = 8;
/// Longest `webhook-signature` header read (eight signatures fit easily).
pub const MAX_SIGNATURE_HEADER: usize = 1024;
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("webhook-timestamp is not Unix seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than 5 minutes away from now")]
    Stale,
    #[error(
        "webhook-signature is longer than {MAX_SIGNATURE_HEADER} bytes or has more than {MAX_SIGNATURES} signatures"
    )]
    TooManySignatures,
    #[error("no signature matches")]
    Mismatch,
}

fn mac(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Signs like a sender does (used by tests and by `workbridge` users'
/// scripts as a reference).
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(mac(secret, id, timestamp, body)))
}

/// Verifies a delivery against any of `secrets`. The cost is bounded
/// before any MAC is computed: one MAC per secret over the body, then each
/// of at most [`MAX_SIGNATURES`] candidates compared in constant time.
pub fn verify(
    secrets: &[Vec<u8>],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    use subtle::ConstantTimeEq;
    let id = id.ok_or(SignatureError::Missing("webhook-id"))?;
    let ts = timestamp.ok_or(SignatureError::Missing("webhook-timestamp"))?;
    let signatures = signatures.ok_or(SignatureError::Missing("webhook-signature"))?;
    let ts: i64 = ts.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    // Checked: an extreme timestamp must not overflow the subtraction.
    let off = now.timestamp().checked_sub(ts).and_then(i64::checked_abs);
    if off.is_none_or(|off| off > TOLERANCE_SECS) {
        return Err(SignatureError::Stale);
    }
    if signatures.len() > MAX_SIGNATURE_HEADER || signatures.split_whitespace().count() > MAX_SIGNATURES {
        return Err(SignatureError::TooManySignatures);
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = mac(secret, id, ts, body);
        for sig in &candidates {
            matched |= expected.as_slice().ct_eq(sig.as_slice());
        }
    }
    if bool::from(matched) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// What an EAM (or the middleware in front of it) reports about an order.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// Our reference (the workbridge order id), when the EAM carries it.
    #[serde(default)]
    pub reference: Option<String>,
    /// Or the EAM's own id of the order.
    #[serde(default)]
    pub external_id: Option<String>,
    /// The EAM's status word, e.g. Maximo `INPRG`, mapped with the
    /// connector's status map.
    pub status: String,
    /// When it changed in the EAM (default: when received).
    #[serde(default)]
    pub changed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub note: Option<String>,
    /// The EAM's closure or failure code, if any; mapped to feedback by the
    /// connector's `feedback_codes`.
    #[serde(default)]
    pub closure_code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Vec<u8> {
        decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    #[test]
    fn verifies_the_standard_webhooks_example_shape() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let body = br#"{"status":"INPRG","external_id":"1052"}"#;
        let sig = sign(&secret(), "msg_1", 1_700_000_000, body);
        assert!(sig.starts_with("v1,"));
        assert_eq!(verify(&[secret()], Some("msg_1"), Some("1700000000"), Some(&sig), body, now), Ok(()));
        // rotation: several signatures, several secrets
        let other = decode_secret("whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=").unwrap();
        let both = format!("v1,AAAA {}", sign(&other, "msg_1", 1_700_000_000, body));
        assert_eq!(verify(&[secret(), other], Some("msg_1"), Some("1700000000"), Some(&both), body, now), Ok(()));
        // tampering, staleness, missing headers
        assert_eq!(
            verify(&[secret()], Some("msg_1"), Some("1700000000"), Some(&sig), b"{}", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&[secret()], Some("msg_2"), Some("1700000000"), Some(&sig), body, now),
            Err(SignatureError::Mismatch)
        );
        let late = now + chrono::Duration::seconds(301);
        assert_eq!(
            verify(&[secret()], Some("msg_1"), Some("1700000000"), Some(&sig), body, late),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&[secret()], None, Some("1"), Some(&sig), body, now),
            Err(SignatureError::Missing("webhook-id"))
        );
        assert!(decode_secret("whsec_!!!").is_err());
        // Empty and short keys would let anyone sign.
        for weak in ["", "whsec_", "whsec_c2hvcnQ=", "   "] {
            assert!(decode_secret(weak).is_err(), "{weak:?}");
        }
        // Extreme timestamps are stale, not an overflow.
        for ts in [i64::MIN.to_string(), i64::MAX.to_string()] {
            assert_eq!(
                verify(&[secret()], Some("msg_1"), Some(&ts), Some(&sig), body, now),
                Err(SignatureError::Stale)
            );
        }
        // A flood of candidates is refused before any MAC is computed.
        let flood = [sig.as_str(); MAX_SIGNATURES + 1].join(" ");
        assert_eq!(
            verify(&[secret()], Some("msg_1"), Some("1700000000"), Some(&flood), body, now),
            Err(SignatureError::TooManySignatures)
        );
        let long = format!("{sig} {}", "x".repeat(MAX_SIGNATURE_HEADER));
        assert_eq!(
            verify(&[secret()], Some("msg_1"), Some("1700000000"), Some(&long), body, now),
            Err(SignatureError::TooManySignatures)
        );
    }
}
