//! What the fault tests share: the real binary as a child process, a load
//! of events and a publisher that outlives the broker, guards that always
//! bring RabbitMQ and PostgreSQL back, and the final accounting against the
//! database and the simulated EAM. What the load tool needs too (the
//! process, its readiness, a PostgreSQL database, raw SQL) is in
//! `tests/testkit/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use sea_orm::{Database, DatabaseConnection};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::helpers::{ADMIN_KEY, AmqpNames, FIXTURES, alert, amqp_url, client_with_key, pg_admin_url};
use crate::testkit;
pub use crate::testkit::{metric_sum, rows, wait_for};

/// Fault tests stop shared services: even under `cargo test` (one process,
/// many threads) they run one at a time.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// A test's working directory (the SQLite file, the services' logs): kept,
/// and its path printed, when the test fails.
pub struct WorkDir(Option<tempfile::TempDir>);

impl WorkDir {
    pub fn new() -> Self {
        Self(Some(tempfile::Builder::new().prefix("wb-faults-").tempdir().unwrap()))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("until dropped").path()
    }

    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.path().join("wb.db").display())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("the failed test's database and logs are kept in {}", dir.keep().display());
        }
    }
}

pub fn free_port() -> u16 {
    testkit::free_port().unwrap()
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

// ---------------------------------------------------------------- services

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn rabbitmq_up() -> bool {
    std::net::TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1)).is_ok()
        && run("rabbitmq-diagnostics", &["-q", "check_port_connectivity"]).is_ok()
}

fn postgres_up() -> bool {
    run("pg_isready", &["-h", "127.0.0.1", "-p", "5432", "-q"]).is_ok()
}

/// The cluster version, as `pg_ctlcluster` wants it (`ls /etc/postgresql`).
fn postgres_version() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql lists the clusters")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    versions.sort();
    versions.pop().expect("one PostgreSQL cluster")
}

fn start_rabbitmq_app() {
    if let Err(e) = run("rabbitmqctl", &["-q", "start_app"]) {
        eprintln!("rabbitmqctl start_app: {e}");
    }
    let _ = run("rabbitmqctl", &["-q", "await_startup"]);
    for _ in 0..60 {
        if rabbitmq_up() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("RabbitMQ is still not up after start_app");
}

fn start_postgres() {
    if postgres_up() {
        return;
    }
    if let Err(e) = run("pg_ctlcluster", &["--skip-systemctl-redirect", &postgres_version(), "main", "start"]) {
        eprintln!("{e}");
    }
    for _ in 0..60 {
        if postgres_up() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("PostgreSQL is still not up after pg_ctlcluster start");
}

/// Brings RabbitMQ and PostgreSQL back if an earlier run left them stopped
/// (a test terminated by nextest runs no destructors).
pub fn ensure_infrastructure() {
    if !postgres_up() {
        start_postgres();
    }
    if !rabbitmq_up() {
        start_rabbitmq_app();
    }
    assert!(postgres_up(), "PostgreSQL is up at 127.0.0.1:5432");
    assert!(rabbitmq_up(), "RabbitMQ is up at 127.0.0.1:5672");
}

/// RabbitMQ's application is stopped while this lives (`rabbitmqctl
/// stop_app`), and started again when it is dropped, even by a panic.
pub struct RabbitOutage {
    ended: bool,
}

impl RabbitOutage {
    pub async fn begin() -> Self {
        let guard = Self { ended: false };
        tokio::task::spawn_blocking(|| run("rabbitmqctl", &["-q", "stop_app"])).await.unwrap().unwrap();
        guard
    }

    pub async fn end(mut self) {
        self.ended = true;
        tokio::task::spawn_blocking(start_rabbitmq_app).await.unwrap();
        assert!(tokio::task::spawn_blocking(rabbitmq_up).await.unwrap(), "RabbitMQ is back");
    }
}

impl Drop for RabbitOutage {
    fn drop(&mut self) {
        if !self.ended {
            start_rabbitmq_app();
        }
    }
}

/// PostgreSQL is stopped while this lives, and started again when it is
/// dropped, even by a panic.
pub struct PostgresOutage {
    ended: bool,
}

impl PostgresOutage {
    pub async fn begin() -> Self {
        let guard = Self { ended: false };
        tokio::task::spawn_blocking(|| {
            run("pg_ctlcluster", &["--skip-systemctl-redirect", &postgres_version(), "main", "stop", "-m", "fast"])
        })
        .await
        .unwrap()
        .unwrap();
        guard
    }

    pub async fn end(mut self) {
        self.ended = true;
        tokio::task::spawn_blocking(start_postgres).await.unwrap();
        assert!(tokio::task::spawn_blocking(postgres_up).await.unwrap(), "PostgreSQL is back");
    }
}

impl Drop for PostgresOutage {
    fn drop(&mut self) {
        if !self.ended {
            start_postgres();
        }
    }
}

/// Ready and unacknowledged messages of a queue, as the broker counts them.
pub async fn queue_counts(queue: &str) -> Option<(u64, u64)> {
    let queue = queue.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("rabbitmqctl")
            .args(["-q", "list_queues", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut f = l.split_whitespace();
            if f.next()? != queue {
                return None;
            }
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------- databases

/// A fresh, empty PostgreSQL database (the service migrates it), dropped
/// with the value.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let name = format!("wb_fault_{}", short_id());
        let url = testkit::create_pg_database(&pg_admin_url(), &name).await.expect("PostgreSQL creates a database");
        Self { url, name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let _ = testkit::drop_pg_database(&pg_admin_url(), &name).await;
            });
        })
        .join();
    }
}

/// A connection of the test's own to the service's database.
pub async fn connect_db(url: &str) -> Option<DatabaseConnection> {
    let mut opts = sea_orm::ConnectOptions::new(url.to_owned());
    opts.max_connections(1).min_connections(0).acquire_timeout(Duration::from_secs(3)).sqlx_logging(false);
    Database::connect(opts).await.ok()
}

pub async fn count(db: &DatabaseConnection, sql: &str) -> Option<i64> {
    testkit::count(db, sql).await.ok()
}

// ---------------------------------------------------------------- the service

/// The real binary, as a child process, logging to a file. Killed (SIGKILL)
/// when dropped.
pub struct Service {
    pub name: String,
    pub base: String,
    child: Child,
    log: PathBuf,
    client: reqwest::Client,
}

pub struct ServiceConfig<'a> {
    pub db_url: &'a str,
    pub names: &'a AmqpNames,
    pub logs: &'a Path,
    /// Further `WORKBRIDGE_*` settings.
    pub env: Vec<(&'static str, String)>,
}

impl Service {
    pub fn spawn(name: &str, cfg: &ServiceConfig<'_>) -> Self {
        let port = free_port();
        let log = cfg.logs.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let n = cfg.names;
        let amqp_url = amqp_url();
        let mut cmd = testkit::service_command(
            Path::new(env!("CARGO_BIN_EXE_workbridge")),
            &testkit::ServiceEnv {
                port,
                db_url: cfg.db_url,
                admin_key: ADMIN_KEY,
                amqp_url: &amqp_url,
                topology: &testkit::Topology {
                    exchange: n.exchange.clone(),
                    queue: n.queue.clone(),
                    dlx: n.dlx.clone(),
                    dead_queue: n.dead_queue.clone(),
                    lifecycle: n.lifecycle.clone(),
                },
            },
        );
        cmd.env("NO_COLOR", "1")
            .env("RUST_LOG", "info,sqlx=warn,sea_orm=warn,lapin=warn,actix_server=warn,workbridge::http=warn")
            .env("WORKBRIDGE_AMQP__PREFETCH", "32")
            .env("WORKBRIDGE_AMQP__RECONNECT_MIN_MS", "100")
            .env("WORKBRIDGE_AMQP__RECONNECT_MAX_MS", "1000")
            .env("WORKBRIDGE_DATABASE__MAX_CONNECTIONS", "5")
            .env("WORKBRIDGE_OUTBOX__POLL_INTERVAL_MS", "50")
            .env("WORKBRIDGE_OUTBOX__BACKOFF_MIN_MS", "20")
            .env("WORKBRIDGE_OUTBOX__BACKOFF_MAX_MS", "500")
            .env("WORKBRIDGE_OUTBOX__MAX_ATTEMPTS", "1000")
            .env("WORKBRIDGE_HTTP__SHUTDOWN_TIMEOUT_SECS", "5");
        for (k, v) in &cfg.env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("the workbridge binary starts");
        Self {
            name: name.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            child,
            log,
            client: client_with_key(ADMIN_KEY),
        }
    }

    pub async fn get(&self, path: &str) -> Option<(u16, Value)> {
        let r = self.client.get(format!("{}{path}", self.base)).timeout(Duration::from_secs(15)).send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn metrics(&self) -> String {
        match self.client.get(format!("{}/metrics", self.base)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn post(&self, path: &str, body: reqwest::Body, content_type: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until `/readyz` answers 200 (database and broker up).
    pub async fn wait_ready(&mut self, within: Duration) {
        let (client, url) = (&self.client, format!("{}/readyz", self.base));
        let ready = testkit::wait_ready(&mut self.child, within, async || {
            let r = client.get(&url).timeout(Duration::from_secs(15)).send().await;
            r.is_ok_and(|r| r.status() == 200)
        })
        .await;
        match ready {
            Ok(()) => {}
            Err(testkit::NotReady::Exited(status)) => {
                panic!("{} exited during start-up ({status}):\n{}", self.name, self.log_tail(40))
            }
            Err(testkit::NotReady::TimedOut) => {
                panic!("{} was not ready within {within:?}:\n{}", self.name, self.log_tail(40))
            }
        }
    }

    /// The exit status, once the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn sigkill(&mut self) {
        testkit::kill(&mut self.child);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let tail = testkit::log_tail(&self.log, lines);
        format!("--- last {lines} lines of {} ({}) ---\n{tail}", self.name, self.log.display())
    }

    /// Assets of the demo registry, the ServiceNow connector and one rule
    /// that opens an order for every alert (dedup key: asset and code).
    pub async fn setup_flow(&self, connector: &Value) {
        let csv = std::fs::read_to_string(format!("{FIXTURES}/assets-demo.csv")).unwrap();
        let (s, body) = self.post("/v1/assets/bulk", csv.into(), "text/csv").await;
        assert_eq!(s, 200, "{body}");
        let (s, body) = self.post("/v1/connectors", connector.to_string().into(), "application/json").await;
        assert_eq!(s, 201, "{body}");
        let rule = json!({"name": "every-alert", "action": {"kind": "create", "connector": connector["name"]}});
        let (s, body) = self.post("/v1/rules", rule.to_string().into(), "application/json").await;
        assert_eq!(s, 201, "{body}");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.sigkill();
    }
}

// ---------------------------------------------------------------- the load

/// The events of a test, in publishing order. Alerts over every tag of the
/// demo registry and two codes, so that the assets with several tags merge
/// events from all of them into one order per (asset, code); some events are
/// published twice in a row (the same `source` and `id`).
pub struct Load {
    pub events: Vec<Value>,
    /// Distinct CloudEvents ids.
    pub ids: BTreeSet<String>,
    /// Expected dedup keys (`asset:code`, the default template).
    pub keys: BTreeSet<String>,
}

impl Load {
    pub fn new(prefix: &str, distinct: usize, twice_every: usize) -> Self {
        let csv = std::fs::read_to_string(format!("{FIXTURES}/assets-demo.csv")).unwrap();
        let mut combos: Vec<(String, String, &str)> = vec![];
        for line in csv.lines().skip(1) {
            let asset = line.split(',').next().unwrap_or_default().to_owned();
            let tags = line.rsplit(',').next().unwrap_or_default();
            for code in ["HIGH_TEMPERATURE", "HIGH_VIBRATION"] {
                // Tags of one asset next to each other: consecutive events share a key.
                for tag in tags.split(';').filter(|t| !t.is_empty()) {
                    combos.push((tag.to_owned(), asset.clone(), code));
                }
            }
        }
        let run = short_id();
        let mut events = vec![];
        let mut ids = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for i in 0..distinct {
            let (tag, asset, code) = &combos[i % combos.len()];
            let id = format!("{prefix}-{run}-{i}");
            let mut e = alert(&id);
            e["subject"] = json!(tag);
            e["data"]["code"] = json!(code);
            ids.insert(id);
            keys.insert(format!("{asset}:{code}"));
            if twice_every > 0 && i % twice_every == 0 {
                events.push(e.clone());
            }
            events.push(e);
        }
        Self { events, ids, keys }
    }
}

/// Publishes with publisher confirms, one message at a time, and survives
/// the broker: on any error it reconnects (every 100 ms) and publishes the
/// message again, so a message may reach the queue twice, never zero times.
pub struct Publisher {
    names: AmqpNames,
    pub published: Arc<AtomicUsize>,
    pub republished: Arc<AtomicUsize>,
}

impl Publisher {
    pub fn new(names: &AmqpNames) -> Self {
        Self { names: names.clone(), published: Arc::default(), republished: Arc::default() }
    }

    async fn connect(&self) -> Result<(Connection, Channel), lapin::Error> {
        let conn = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok((conn, channel))
    }

    async fn publish_one(&self, channel: &Channel, body: &[u8]) -> Result<bool, lapin::Error> {
        let confirm = channel
            .basic_publish(
                self.names.exchange.as_str().into(),
                "alert.BEDFORD".into(),
                BasicPublishOptions::default(),
                body,
                workbridge::ingest::amqp::structured_properties(),
            )
            .await?
            .await?;
        Ok(confirm.is_ack())
    }

    /// Publishes `events` in order, at most `per_second` of them a second
    /// (0: as fast as confirms come), giving up after `within`.
    pub async fn run(self, events: Vec<Value>, per_second: usize, within: Duration) -> Self {
        let deadline = Instant::now() + within;
        let started = Instant::now();
        let mut link: Option<(Connection, Channel)> = None;
        for (i, e) in events.iter().enumerate() {
            if per_second > 0 {
                tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / per_second as f64)).await;
            }
            let body = serde_json::to_vec(e).unwrap();
            loop {
                assert!(Instant::now() < deadline, "publishing did not finish within {within:?}");
                if link.is_none() {
                    match tokio::time::timeout(Duration::from_secs(5), self.connect()).await {
                        Ok(Ok(l)) => link = Some(l),
                        _ => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
                let (_, channel) = link.as_ref().expect("connected above");
                match tokio::time::timeout(Duration::from_secs(5), self.publish_one(channel, &body)).await {
                    Ok(Ok(true)) => break,
                    _ => {
                        self.republished.fetch_add(1, Ordering::Relaxed);
                        if let Some((conn, _)) = link.take() {
                            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "retry".into())).await;
                        }
                    }
                }
            }
            self.published.fetch_add(1, Ordering::Relaxed);
        }
        if let Some((conn, _)) = link {
            let _ = conn.close(200, "done".into()).await;
        }
        self
    }
}
