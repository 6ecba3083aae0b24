//! Configuration: built-in defaults, then an optional TOML file (`--config` or
//! `WORKBRIDGE_CONFIG`), then environment variables. The documented flat
//! variables (`WORKBRIDGE_HTTP_ADDR`, …) win over everything; any other key can
//! be set as `WORKBRIDGE_<SECTION>__<KEY>`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

#[derive(Clone, Deserialize)]
pub struct Settings {
    /// `text` (human) or `json` (one object per line, for log shippers).
    pub log_format: LogFormat,
    /// Seeds an admin API key at start-up (used by the security work).
    pub admin_key: Option<String>,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub outbox: OutboxSettings,
    #[serde(default)]
    pub sla: SlaSettings,
    #[serde(default)]
    pub rules: RulesSettings,
    #[serde(default)]
    pub sync: SyncSettings,
    /// Inhibit rules (`[[inhibit]]` in the file); default: data-quality
    /// events inhibit process alerts on their asset and its equipment.
    #[serde(default = "crate::domain::inhibit::InhibitRule::defaults")]
    pub inhibit: Vec<crate::domain::inhibit::InhibitRule>,
    #[serde(default)]
    pub secrets: SecretsSettings,
    #[serde(default)]
    pub outbound: OutboundSettings,
}

/// Where connector secret references may point (see `connectors::secret`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SecretsSettings {
    /// Directories `{"file": …}` references may read from (canonicalised:
    /// no escape by `..` or a symbolic link). `WORKBRIDGE_SECRETS__DIRS`
    /// takes a comma-separated list.
    pub dirs: Vec<std::path::PathBuf>,
    /// The prefix `{"env": …}` references must start with; never
    /// `WORKBRIDGE_`, so that a connector cannot read the service's own
    /// settings (the admin key, the database URL).
    pub env_prefix: String,
}

impl Default for SecretsSettings {
    fn default() -> Self {
        Self { dirs: vec!["/run/secrets".into()], env_prefix: "EAM_SECRET_".into() }
    }
}

/// Which destinations connectors may reach (see `connectors::outbound`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OutboundSettings {
    /// 127.0.0.0/8 and ::1: an EAM behind a local proxy or sidecar.
    pub allow_loopback: bool,
    /// 169.254.0.0/16 and fe80::/10, where cloud metadata endpoints live.
    pub allow_link_local: bool,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self { allow_loopback: true, allow_link_local: false }
    }
}

/// Shortest `WORKBRIDGE_ADMIN_KEY` accepted.
pub const MIN_ADMIN_KEY_LEN: usize = 32;

/// Status sync by polling.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SyncSettings {
    /// How often every followed order is polled; 0 switches polling off.
    pub poll_interval_ms: u64,
    /// Most orders per query to one connector (a connector may ask for
    /// fewer: its EAM's page size). Each round polls every due order, in as
    /// many queries as that takes.
    pub batch_size: u64,
    /// How long a completed order is still followed, so that its close (and
    /// the closure code that comes with it) reaches the history; 0 stops at
    /// completed.
    pub follow_completed_hours: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self { poll_interval_ms: 60_000, batch_size: 100, follow_completed_hours: 24 * 14 }
    }
}

/// Rules as code, and the bound on evaluating them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RulesSettings {
    /// A YAML rules file applied at start-up (by rule name).
    pub file: Option<std::path::PathBuf>,
    /// Longest one event's rule evaluation may take (CEL has no run-time
    /// budget); an event that exceeds it is refused, not decided.
    pub eval_timeout_ms: u64,
    /// How many dry runs (`POST /v1/rules/test`) and backtests evaluate
    /// rules at once. They have their own permits, apart from ingest's (two
    /// per core), so that planners cannot make ingest wait.
    pub dry_run_permits: usize,
}

impl Default for RulesSettings {
    fn default() -> Self {
        Self { file: None, eval_timeout_ms: 250, dry_run_permits: 2 }
    }
}

/// Due-by targets per priority.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SlaSettings {
    /// Hours from the first event to the due-by time, for priorities 1 to 5.
    pub due_hours: [u32; 5],
}

impl Default for SlaSettings {
    fn default() -> Self {
        // Common maintenance practice: emergency within the shift, then a
        // day, three days, a week, two weeks.
        Self { due_hours: [4, 24, 72, 168, 336] }
    }
}

impl SlaSettings {
    pub fn due_after(&self, priority: crate::domain::Priority) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.due_hours[usize::from(priority.get() - 1)]))
    }
}

impl std::fmt::Debug for Settings {
    // Hand-written so that the admin key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("log_format", &self.log_format)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("http", &self.http)
            .field("database", &self.database)
            .field("amqp", &self.amqp)
            .field("outbox", &self.outbox)
            .field("sla", &self.sla)
            .field("rules", &self.rules)
            .field("sync", &self.sync)
            .field("inhibit", &self.inhibit)
            .field("secrets", &self.secrets)
            .field("outbound", &self.outbound)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub addr: String,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Most events in one batch request.
    pub max_batch_events: usize,
    /// Require a viewer key for `/metrics` (open by default, for Prometheus).
    pub protect_metrics: bool,
    /// On SIGTERM or Ctrl-C: seconds for requests in flight, then again for
    /// the consumer, the dispatcher and the other workers to finish.
    pub shutdown_timeout_secs: u64,
    /// Failed authentications from one client address within
    /// `auth_failure_window_secs` after which it is answered 429 until the
    /// window ends.
    pub auth_failure_limit: u32,
    pub auth_failure_window_secs: u32,
}

#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

#[derive(Clone, Deserialize)]
pub struct AmqpSettings {
    pub enabled: bool,
    pub url: String,
    pub exchange: String,
    pub queue: String,
    pub binding_key: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    /// Unacked messages the broker sends ahead (basic.qos): at least twice
    /// `batch_max`, so that the next batch fills while one is written.
    pub prefetch: u16,
    /// Most messages decided in one transaction (group commit); a batch is
    /// what has arrived while the previous one was being committed, so a
    /// quiet queue still gets one message per transaction, without delay.
    pub batch_max: usize,
    /// Consumers per replica, each on its own connection and channel. Each
    /// already overlaps reading the next batch with writing the last, so a
    /// second one rarely gains, and it can reorder one key's events.
    pub consumers: usize,
    /// Deliveries of one message before the broker dead-letters it
    /// (quorum queue `x-delivery-limit`).
    pub delivery_limit: u32,
    pub max_message_bytes: usize,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Topic exchange for work-order lifecycle events (routing key `<status>.<site>`).
    pub lifecycle_exchange: String,
    /// Optional `x-expires` on the queues (tests use it so that their
    /// throw-away queues disappear); unset in production.
    pub queue_expires_ms: Option<u32>,
}

impl std::fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("enabled", &self.enabled)
            .field("url", &redact_url(&self.url))
            .field("exchange", &self.exchange)
            .field("queue", &self.queue)
            .field("binding_key", &self.binding_key)
            .field("dead_letter_exchange", &self.dead_letter_exchange)
            .field("dead_letter_queue", &self.dead_letter_queue)
            .field("prefetch", &self.prefetch)
            .field("batch_max", &self.batch_max)
            .field("consumers", &self.consumers)
            .field("delivery_limit", &self.delivery_limit)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

impl AmqpSettings {
    pub fn reconnect_min(&self) -> Duration {
        Duration::from_millis(self.reconnect_min_ms)
    }
    pub fn reconnect_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutboxSettings {
    pub poll_interval_ms: u64,
    pub batch_size: u64,
    /// Deliveries (of different orders) in flight at once per worker.
    pub concurrency: usize,
    /// Delivery loops per replica, each claiming its own batches (as
    /// replicas do): one claims and records while another's requests are
    /// in flight. At most `workers × concurrency` requests at once. 0: this
    /// replica delivers nothing (others do; tests step `dispatch_once`).
    pub workers: usize,
    /// Delivery attempts before an order is marked `failed`.
    pub max_attempts: u32,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// How long a claimed delivery stays reserved for the replica that claimed it.
    pub lease_ms: u64,
    /// Consecutive failures that open a connector's circuit.
    pub breaker_failures: u32,
    /// How long an open circuit stays open before a probe.
    pub breaker_open_ms: u64,
}

impl OutboxSettings {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

/// Replaces the password in `scheme://user:password@host` so that URLs can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The flat variables of docs/spec.md §7 and the keys they set.
const FLAT_ENV: &[(&str, &str)] = &[
    ("WORKBRIDGE_HTTP_ADDR", "http.addr"),
    ("WORKBRIDGE_DATABASE_URL", "database.url"),
    ("WORKBRIDGE_AMQP_URL", "amqp.url"),
    ("WORKBRIDGE_ADMIN_KEY", "admin_key"),
    ("WORKBRIDGE_LOG_FORMAT", "log_format"),
];

impl Settings {
    /// Defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: std::collections::HashMap<String, String> =
            env.into_iter().filter(|(k, _)| k.starts_with("WORKBRIDGE_")).collect();
        let mut builder = Self::defaults();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let nested: std::collections::HashMap<String, String> =
            env.iter().filter(|(k, _)| k.contains("__")).map(|(k, v)| (k.clone(), v.clone())).collect();
        builder = builder.add_source(
            config::Environment::with_prefix("WORKBRIDGE")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("secrets.dirs")
                .source(Some(nested)),
        );
        for (var, key) in FLAT_ENV {
            if let Some(value) = env.get(*var) {
                builder = builder.set_override(*key, value.clone())?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        let invalid = |e: String| ConfigError(config::ConfigError::Message(e));
        for rule in &settings.inhibit {
            rule.validate().map_err(invalid)?;
        }
        if let Some(key) = &settings.admin_key
            && key.trim().chars().count() < MIN_ADMIN_KEY_LEN
        {
            return Err(invalid(format!(
                "admin_key (WORKBRIDGE_ADMIN_KEY) must be at least {MIN_ADMIN_KEY_LEN} characters; generate one \
                 with `openssl rand -hex 32`"
            )));
        }
        Ok(settings)
    }

    fn defaults() -> config::ConfigBuilder<config::builder::DefaultState> {
        let set = |b: config::ConfigBuilder<_>, k: &str, v: config::Value| {
            b.set_default(k, v).expect("static default keys are valid")
        };
        let mut b = config::Config::builder();
        for (k, v) in [
            ("log_format", config::Value::from("text")),
            ("http.addr", "127.0.0.1:8080".into()),
            ("http.max_body_bytes", (256 * 1024).into()),
            ("http.max_batch_events", 1000.into()),
            ("http.protect_metrics", false.into()),
            ("http.shutdown_timeout_secs", 30.into()),
            ("http.auth_failure_limit", 20.into()),
            ("http.auth_failure_window_secs", 60.into()),
            ("database.url", "sqlite://workbridge.db?mode=rwc".into()),
            ("database.max_connections", 10.into()),
            ("database.migrate_on_start", true.into()),
            ("amqp.enabled", true.into()),
            ("amqp.url", "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            ("amqp.exchange", "tdl.events".into()),
            ("amqp.queue", "workbridge.events".into()),
            ("amqp.binding_key", "#".into()),
            ("amqp.dead_letter_exchange", "workbridge.dlx".into()),
            ("amqp.dead_letter_queue", "workbridge.events.dead".into()),
            ("amqp.prefetch", 1024.into()),
            ("amqp.batch_max", 256.into()),
            ("amqp.consumers", 1.into()),
            ("amqp.delivery_limit", 5.into()),
            ("amqp.max_message_bytes", (256 * 1024).into()),
            ("amqp.reconnect_min_ms", 500.into()),
            ("amqp.reconnect_max_ms", 30_000.into()),
            ("amqp.lifecycle_exchange", "workbridge.workorders".into()),
            ("outbox.poll_interval_ms", 1000.into()),
            ("outbox.batch_size", 32.into()),
            ("outbox.concurrency", 8.into()),
            ("outbox.workers", 2.into()),
            ("outbox.max_attempts", 8.into()),
            ("outbox.backoff_min_ms", 1000.into()),
            ("outbox.backoff_max_ms", 300_000.into()),
            ("outbox.lease_ms", 60_000.into()),
            ("outbox.breaker_failures", 5.into()),
            ("outbox.breaker_open_ms", 30_000.into()),
        ] {
            b = set(b, k, v);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.http.addr, "127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://workbridge.db?mode=rwc");
        assert_eq!(s.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(s.amqp.queue, "workbridge.events");
        assert!(s.admin_key.is_none());
        assert_eq!(s.sla.due_hours, [4, 24, 72, 168, 336]);
    }

    #[test]
    fn file_then_flat_and_nested_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wb.toml");
        std::fs::write(
            &path,
            "[http]\naddr = \"0.0.0.0:9000\"\n[amqp]\nprefetch = 7\nqueue = \"q.file\"\n[sla]\ndue_hours = [1, 2, 3, 4, 5]\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&path),
            env(&[
                ("WORKBRIDGE_HTTP_ADDR", "127.0.0.1:9999"),
                ("WORKBRIDGE_AMQP__PREFETCH", "128"),
                ("WORKBRIDGE_DATABASE_URL", "postgres://u:secret@db/wb"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.addr, "127.0.0.1:9999");
        assert_eq!(s.amqp.prefetch, 128);
        assert_eq!(s.amqp.queue, "q.file");
        assert_eq!(s.sla.due_hours, [1, 2, 3, 4, 5]);
        assert_eq!(s.database.url, "postgres://u:secret@db/wb");
        assert!(!format!("{s:?}").contains(":secret@"), "the database password is redacted");
    }

    #[test]
    fn a_bad_value_is_refused() {
        let err = Settings::load_from(None, env(&[("WORKBRIDGE_AMQP__PREFETCH", "many")])).unwrap_err();
        assert!(err.to_string().contains("prefetch"), "{err}");
    }

    #[test]
    fn a_short_admin_key_is_refused_and_secret_directories_are_a_list() {
        let err = Settings::load_from(None, env(&[("WORKBRIDGE_ADMIN_KEY", "x")])).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
        assert!(!err.to_string().contains("WORKBRIDGE_ADMIN_KEY\" x"), "the key itself is not echoed");
        let long = "k".repeat(32);
        assert!(Settings::load_from(None, env(&[("WORKBRIDGE_ADMIN_KEY", &long)])).is_ok());
        let s = Settings::load_from(None, env(&[("WORKBRIDGE_SECRETS__DIRS", "/run/secrets,/etc/workbridge/secrets")]))
            .unwrap();
        assert_eq!(s.secrets.dirs.len(), 2);
        assert!(s.outbound.allow_loopback && !s.outbound.allow_link_local);
    }

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("sqlite://wb.db"), "sqlite://wb.db");
    }

    #[test]
    fn inhibit_rules_default_and_come_from_the_file() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.inhibit.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wb.toml");
        std::fs::write(
            &path,
            "[[inhibit]]\nname = \"stale-tag\"\nequal = [\"tag\"]\nsource = { types = [\"tdl.data_quality\"], codes = [\"STALE\"] }\ntarget = { types = [\"tdl.alert\"] }\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(s.inhibit.len(), 1);
        assert_eq!(s.inhibit[0].max_age_hours, 24);
        std::fs::write(&path, "[[inhibit]]\nname = \"bad\"\nequal = [\"colour\"]\nsource = {}\ntarget = {}\n").unwrap();
        let err = Settings::load_from(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn the_shipped_example_configuration_loads() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/workbridge.example.toml"));
        let s = Settings::load_from(Some(path), env(&[])).unwrap();
        assert_eq!(s.inhibit.len(), 2);
        assert_eq!(s.sla.due_hours, [4, 24, 72, 168, 336]);
        assert_eq!(s.amqp.lifecycle_exchange, "workbridge.workorders");
        // The file shows the built-in defaults.
        let d = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!((s.amqp.prefetch, s.amqp.batch_max), (d.amqp.prefetch, d.amqp.batch_max));
        assert_eq!((s.outbox.batch_size, s.outbox.concurrency), (d.outbox.batch_size, d.outbox.concurrency));
        assert_eq!(s.rules.eval_timeout_ms, d.rules.eval_timeout_ms);
    }
}
