//! Where connector secrets may come from, and keeping them out of what
//! leaves the service.
//!
//! A secret is given literally (stored, masked as `***` in responses) or by
//! reference: `{"env": "NAME"}` or `{"file": "/run/secrets/x"}`, read when
//! the connector is used. An admin key is trusted with EAM credentials, not
//! with the host's files or the service's own settings, so references are
//! confined: a file must lie inside one of the configured directories (after
//! resolving `..` and symbolic links), and an environment variable must
//! start with the configured prefix, which can never be `WORKBRIDGE_`.
//! Anything refused, missing or unreadable gets one generic error, so that
//! the error does not tell whether a path exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{EamRef, WorkOrderId};

/// A header value: literal, or a secret read from the environment or a file
/// when the connector is used, so the secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum HeaderValue {
    Literal(String),
    Env { env: String },
    File { file: String },
}

const SENSITIVE_HEADERS: &[&str] =
    &["authorization", "apikey", "api-key", "x-api-key", "maxauth", "cookie", "proxy-authorization"];

pub(crate) fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SENSITIVE_HEADERS.contains(&n.as_str()) || n.contains("token") || n.contains("secret") || n.contains("password")
}

impl HeaderValue {
    /// The value, read from where the reference points if `policy` allows it.
    pub fn resolve(&self, policy: &SecretPolicy) -> Result<String, String> {
        policy.resolve(self)
    }
}

pub(crate) fn redact_headers(h: &BTreeMap<String, HeaderValue>) -> BTreeMap<String, HeaderValue> {
    h.iter()
        .map(|(k, v)| {
            let v = match v {
                HeaderValue::Literal(_) if is_sensitive(k) => HeaderValue::Literal("***".into()),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Shortest signing key accepted, as the reference libraries require.
pub const MIN_SECRET_BYTES: usize = 24;
/// Longest signing key accepted (the specification's upper bound).
pub const MAX_SECRET_BYTES: usize = 64;

/// Decodes a `whsec_…` secret (the prefix is optional). Keys shorter than
/// 24 bytes are refused: an empty key would let anyone sign.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let raw = secret.trim().strip_prefix("whsec_").unwrap_or(secret.trim());
    let key = STANDARD.decode(raw).map_err(|_| "a webhook secret is whsec_ followed by base64".to_owned())?;
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
        return Err(format!(
            "a webhook secret must decode to {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes (this one has {})",
            key.len()
        ));
    }
    Ok(key)
}

/// The one error for a reference that cannot be used.
pub const REFUSED: &str = "secret reference refused: a file must be readable and inside an allowed secrets \
                           directory (secrets.dirs), an environment variable must be set and start with the \
                           allowed prefix (secrets.env_prefix)";

/// Where secret references may point (`[secrets]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPolicy {
    dirs: Vec<PathBuf>,
    env_prefix: String,
}

impl Default for SecretPolicy {
    fn default() -> Self {
        Self { dirs: vec![PathBuf::from("/run/secrets")], env_prefix: "EAM_SECRET_".into() }
    }
}

impl SecretPolicy {
    /// Refuses a prefix that would reach the service's own settings.
    pub fn new(dirs: Vec<PathBuf>, env_prefix: String) -> Result<Self, String> {
        if env_prefix.trim().is_empty() || env_prefix.to_ascii_uppercase().starts_with("WORKBRIDGE") {
            return Err(format!(
                "secrets.env_prefix {env_prefix:?} is not allowed: it must be non-empty and must not reach the \
                 service's own WORKBRIDGE_* settings"
            ));
        }
        if let Some(d) = dirs.iter().find(|d| !d.is_absolute()) {
            return Err(format!("secrets.dirs: {} is not an absolute path", d.display()));
        }
        Ok(Self { dirs, env_prefix })
    }

    pub fn env_prefix(&self) -> &str {
        &self.env_prefix
    }

    /// Checks a reference without reading it (when a connector is saved).
    pub fn check(&self, value: &HeaderValue) -> Result<(), String> {
        match value {
            HeaderValue::Literal(_) => Ok(()),
            HeaderValue::Env { env } if self.env_allowed(env) => Ok(()),
            HeaderValue::File { file } if self.lexically_inside(Path::new(file)) => Ok(()),
            _ => Err(REFUSED.into()),
        }
    }

    /// The secret's value.
    pub fn resolve(&self, value: &HeaderValue) -> Result<String, String> {
        match value {
            HeaderValue::Literal(v) => Ok(v.clone()),
            HeaderValue::Env { env } if self.env_allowed(env) => std::env::var(env).map_err(|_| REFUSED.to_owned()),
            HeaderValue::File { file } => self.read_file(Path::new(file)).ok_or_else(|| REFUSED.to_owned()),
            HeaderValue::Env { .. } => Err(REFUSED.into()),
        }
    }

    fn env_allowed(&self, name: &str) -> bool {
        name.starts_with(&self.env_prefix) && name.len() > self.env_prefix.len()
    }

    /// Absolute, no `..`, below an allowed directory (as written).
    fn lexically_inside(&self, path: &Path) -> bool {
        use std::path::Component;
        path.is_absolute()
            && !path.components().any(|c| matches!(c, Component::ParentDir))
            && self.dirs.iter().any(|d| path.starts_with(d) && path != d)
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        if !self.lexically_inside(path) {
            return None;
        }
        // After links are resolved too: a link inside the directory that
        // points outside it is refused.
        let real = path.canonicalize().ok()?;
        let inside = self.dirs.iter().filter_map(|d| d.canonicalize().ok()).any(|d| real.starts_with(&d) && real != d);
        if !inside || !real.is_file() {
            return None;
        }
        std::fs::read_to_string(&real).ok().map(|s| s.trim_end().to_owned())
    }
}

/// Masks known secret values in text that is stored, logged or shown
/// (an EAM error body that echoes the request's headers, for example).
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

/// Shorter values are not masked: they would mask ordinary words.
const MIN_MASKED_LEN: usize = 4;

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = values.into_iter().filter(|s| s.len() >= MIN_MASKED_LEN).collect();
        // Longest first, so that a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// Adds the forms a value takes on the wire: as is, and in a basic
    /// `Authorization` header (base64 of `user:password`).
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Self {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.secrets.push(encoded);
        self.secrets.push(password.to_owned());
        Self::new(std::mem::take(&mut self.secrets))
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret, and a secret cut off at the end of the text
    /// (error bodies are truncated), replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        for s in &self.secrets {
            let cut = (MIN_MASKED_LEN..s.len()).rev().find(|&n| s.is_char_boundary(n) && out.ends_with(&s[..n]));
            if let Some(n) = cut {
                out.truncate(out.len() - n);
                out.push_str("***");
            }
        }
        out
    }
}

/// A connector whose errors have every secret of its configuration masked:
/// the messages are stored as `last_error`, shown in `GET /v1/deliveries`
/// and the status history, and logged.
pub struct MaskedConnector {
    inner: Box<dyn super::Connector>,
    masker: Masker,
}

impl MaskedConnector {
    pub fn wrap(inner: Box<dyn super::Connector>, masker: Masker) -> Box<dyn super::Connector> {
        if masker.is_empty() { inner } else { Box::new(Self { inner, masker }) }
    }

    fn masked<T>(&self, result: Result<T, super::ConnectorError>) -> Result<T, super::ConnectorError> {
        use super::ConnectorError::*;
        result.map_err(|e| match e {
            Transient { message, retry_after } => Transient { message: self.masker.mask(&message), retry_after },
            Permanent { message } => Permanent { message: self.masker.mask(&message) },
            Unknown { message } => Unknown { message: self.masker.mask(&message) },
        })
    }
}

#[async_trait::async_trait]
impl super::Connector for MaskedConnector {
    async fn create(&self, order: &super::OrderDocument) -> Result<super::CreatedOrder, super::ConnectorError> {
        self.masked(self.inner.create(order).await)
    }

    async fn find_by_reference(
        &self,
        reference: &WorkOrderId,
    ) -> Result<Option<super::CreatedOrder>, super::ConnectorError> {
        self.masked(self.inner.find_by_reference(reference).await)
    }

    async fn poll(&self, orders: &[EamRef]) -> Result<Option<Vec<super::PolledStatus>>, super::ConnectorError> {
        self.masked(self.inner.poll(orders).await)
    }

    fn poll_batch_limit(&self) -> usize {
        self.inner.poll_batch_limit()
    }

    async fn check(&self) -> Result<String, super::ConnectorError> {
        self.masked(self.inner.check().await).map(|detail| self.masker.mask(&detail))
    }

    async fn add_comment(&self, order: &EamRef, text: &str) -> Result<(), super::ConnectorError> {
        self.masked(self.inner.add_comment(order, text).await)
    }

    async fn cancel(&self, order: &EamRef) -> Result<(), super::ConnectorError> {
        self.masked(self.inner.cancel(order).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(dir: &Path) -> SecretPolicy {
        SecretPolicy::new(vec![dir.to_path_buf()], "EAM_SECRET_".into()).unwrap()
    }

    #[test]
    fn files_are_read_only_inside_the_allowed_directories() {
        let root = tempfile::tempdir().unwrap();
        let secrets = root.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::write(secrets.join("maximo"), "k3y\n").unwrap();
        std::fs::write(root.path().join("outside"), "host file").unwrap();
        std::os::unix::fs::symlink(root.path().join("outside"), secrets.join("link")).unwrap();
        let p = policy(&secrets);
        let file = |f: &Path| HeaderValue::File { file: f.display().to_string() };
        assert_eq!(p.resolve(&file(&secrets.join("maximo"))), Ok("k3y".into()));
        for refused in [
            root.path().join("outside"),
            secrets.join("../outside"),
            secrets.join("link"),
            secrets.join("missing"),
            PathBuf::from("/etc/passwd"),
            PathBuf::from("/proc/self/environ"),
            secrets.clone(),
        ] {
            assert_eq!(p.resolve(&file(&refused)), Err(REFUSED.into()), "{}", refused.display());
        }
        // Missing and forbidden read alike: the error does not tell which.
        assert_eq!(p.resolve(&file(&secrets.join("missing"))), p.resolve(&file(Path::new("/etc/passwd"))));
        assert!(p.check(&file(&secrets.join("later"))).is_ok());
        assert!(p.check(&file(Path::new("/etc/passwd"))).is_err());
        assert!(p.check(&file(&secrets.join("../x"))).is_err());
    }

    #[test]
    fn environment_references_need_the_prefix_and_never_reach_workbridge_settings() {
        let p = SecretPolicy::default();
        let env = |n: &str| HeaderValue::Env { env: n.into() };
        assert_eq!(p.resolve(&env("WORKBRIDGE_ADMIN_KEY")), Err(REFUSED.into()));
        assert_eq!(p.resolve(&env("PATH")), Err(REFUSED.into()));
        assert_eq!(p.resolve(&env("EAM_SECRET_NOT_SET_ANYWHERE")), Err(REFUSED.into()));
        assert!(p.check(&env("EAM_SECRET_MAXIMO")).is_ok());
        assert!(p.check(&env("HOME")).is_err());
        assert!(SecretPolicy::new(vec![], "WORKBRIDGE_".into()).is_err());
        assert!(SecretPolicy::new(vec![], "workbridge_x".into()).is_err());
        assert!(SecretPolicy::new(vec![], String::new()).is_err());
        assert!(SecretPolicy::new(vec![PathBuf::from("relative")], "X_".into()).is_err());
    }

    #[test]
    fn secrets_are_masked_whole_cut_off_and_in_basic_auth() {
        let m = Masker::new(["s3cr3t-key".to_owned(), "ab".to_owned()]).with_basic_auth("wb", "pa55word");
        assert_eq!(m.mask("echo apikey: s3cr3t-key!"), "echo apikey: ***!");
        assert_eq!(m.mask("Authorization: Basic d2I6cGE1NXdvcmQ="), "Authorization: Basic ***");
        assert_eq!(m.mask("password pa55word"), "password ***");
        assert_eq!(m.mask("truncated s3cr3t-"), "truncated ***");
        assert_eq!(m.mask("ab stays: too short to mask"), "ab stays: too short to mask");
    }

    #[test]
    fn credential_headers_are_masked_but_references_shown() {
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".into(), HeaderValue::Literal("Bearer s3cr3t".into()));
        headers.insert("apikey".into(), HeaderValue::Env { env: "MAXIMO_KEY".into() });
        headers.insert("Accept".into(), HeaderValue::Literal("application/json".into()));
        let r = redact_headers(&headers);
        assert_eq!(r["Authorization"], HeaderValue::Literal("***".into()));
        assert_eq!(r["apikey"], HeaderValue::Env { env: "MAXIMO_KEY".into() });
        assert_eq!(r["Accept"], HeaderValue::Literal("application/json".into()));
    }
}
