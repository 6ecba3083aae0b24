//! Spawns the real application on a random port against a fresh database
//! (an SQLite file, or a PostgreSQL database copied from a migrated
//! template) and, when asked, its own RabbitMQ exchange and queues.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use workbridge::app::Application;
use workbridge::clock::{Clock, SystemClock};
use workbridge::config::Settings;
use workbridge::store::Store;

/// The admin key every test app is seeded with; `TestApp::client` sends it.
pub const ADMIN_KEY: &str = "wb_test_admin_key_0123456789abcdef";

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

pub fn pg_admin_url() -> String {
    std::env::var("WORKBRIDGE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn amqp_url() -> String {
    std::env::var("WORKBRIDGE_TEST_AMQP").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Name of the migrated template: changes whenever a migration file does.
fn template_name() -> String {
    use std::hash::{Hash, Hasher};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/src");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        std::fs::read(&f).unwrap().hash(&mut h);
    }
    format!("wb_tmpl_{:016x}", h.finish())
}

/// Creates a fresh PostgreSQL database from the migrated template; the
/// template is built once, under an advisory lock, by whichever test (or
/// test process) comes first.
async fn fresh_pg_database() -> (String, String) {
    let admin_url = pg_admin_url();
    let admin = Database::connect(&admin_url).await.expect("PostgreSQL is reachable");
    let template = template_name();
    let name = format!("wb_test_{}", short_id());
    admin.execute_unprepared("SELECT pg_advisory_lock(7423001)").await.unwrap();
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT 1 FROM pg_database WHERE datname = '{template}'"),
        ))
        .await
        .unwrap()
        .is_some();
    if !exists {
        // Templates of older migration sets are of no further use.
        let stale = admin
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT datname FROM pg_database WHERE datname LIKE 'wb_tmpl_%'".to_owned(),
            ))
            .await
            .unwrap();
        for row in stale {
            let old: String = row.try_get("", "datname").unwrap();
            let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {old}")).await;
        }
        admin.execute_unprepared(&format!("CREATE DATABASE {template}")).await.unwrap();
        let url = db_url(&admin_url, &template);
        let store = Store::connect(&url, 1).await.unwrap();
        store.migrate().await.unwrap();
        store.close().await;
    }
    admin.execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await.unwrap();
    admin.execute_unprepared("SELECT pg_advisory_unlock(7423001)").await.unwrap();
    let _ = admin.close().await;
    (db_url(&admin_url, &name), name)
}

fn db_url(admin_url: &str, db: &str) -> String {
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
    format!("{base}/{db}")
}

/// Names of one test's RabbitMQ objects (the load tool and the fault
/// harness name theirs the same way).
pub type AmqpNames = crate::testkit::Topology;

impl crate::testkit::Topology {
    /// Fresh names for one test: tests do not share queues.
    pub fn new() -> Self {
        Self::with_prefix(&format!("wbtest.{}", short_id()))
    }
}

pub struct Options {
    pub amqp: Option<AmqpNames>,
    pub clock: Arc<dyn Clock>,
    pub max_message_bytes: usize,
    pub max_attempts: u32,
    pub rules_file: Option<std::path::PathBuf>,
    /// No delivery loop: the test delivers with `TestApp::deliver`.
    pub step_deliveries: bool,
    /// Further `WORKBRIDGE_*` settings.
    pub env: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            amqp: None,
            clock: Arc::new(SystemClock),
            max_message_bytes: 256 * 1024,
            max_attempts: 5,
            rules_file: None,
            step_deliveries: false,
            env: vec![],
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    #[allow(dead_code)]
    pub store: Store,
    pub settings: Settings,
    /// The bounds on rule evaluation: (ingest, dry runs and backtests).
    #[allow(dead_code)]
    pub budgets: (workbridge::decisions::EvalBudget, workbridge::decisions::EvalBudget),
    dispatcher: workbridge::decisions::dispatcher::Dispatcher,
    poller: workbridge::sync::poller::Poller,
    handle: actix_web::dev::ServerHandle,
    stopped: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
    pg_database: Option<String>,
}

pub fn settings(backend_url: &str, opts: &Options) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("WORKBRIDGE_HTTP_ADDR".into(), "127.0.0.1:0".into()),
        ("WORKBRIDGE_ADMIN_KEY".into(), ADMIN_KEY.into()),
        ("WORKBRIDGE_DATABASE_URL".into(), backend_url.into()),
        ("WORKBRIDGE_AMQP_URL".into(), amqp_url()),
        ("WORKBRIDGE_DATABASE__MAX_CONNECTIONS".into(), "5".into()),
        ("WORKBRIDGE_OUTBOX__POLL_INTERVAL_MS".into(), "50".into()),
        ("WORKBRIDGE_OUTBOX__BACKOFF_MIN_MS".into(), "20".into()),
        ("WORKBRIDGE_OUTBOX__BACKOFF_MAX_MS".into(), "200".into()),
        ("WORKBRIDGE_OUTBOX__MAX_ATTEMPTS".into(), opts.max_attempts.to_string()),
        ("WORKBRIDGE_AMQP__RECONNECT_MIN_MS".into(), "100".into()),
        ("WORKBRIDGE_AMQP__RECONNECT_MAX_MS".into(), "1000".into()),
        ("WORKBRIDGE_AMQP__MAX_MESSAGE_BYTES".into(), opts.max_message_bytes.to_string()),
        ("WORKBRIDGE_AMQP__ENABLED".into(), opts.amqp.is_some().to_string()),
    ];
    if opts.step_deliveries {
        env.push(("WORKBRIDGE_OUTBOX__WORKERS".into(), "0".into()));
    }
    env.extend(opts.env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    if let Some(f) = &opts.rules_file {
        env.push(("WORKBRIDGE_RULES__FILE".into(), f.display().to_string()));
    }
    if let Some(n) = &opts.amqp {
        env.extend([
            ("WORKBRIDGE_AMQP__EXCHANGE".into(), n.exchange.clone()),
            ("WORKBRIDGE_AMQP__QUEUE".into(), n.queue.clone()),
            ("WORKBRIDGE_AMQP__DEAD_LETTER_EXCHANGE".into(), n.dlx.clone()),
            ("WORKBRIDGE_AMQP__DEAD_LETTER_QUEUE".into(), n.dead_queue.clone()),
            ("WORKBRIDGE_AMQP__QUEUE_EXPIRES_MS".into(), "600000".into()),
            ("WORKBRIDGE_AMQP__LIFECYCLE_EXCHANGE".into(), n.lifecycle.clone()),
        ]);
    }
    Settings::load_from(None, env).expect("test settings are valid")
}

pub async fn spawn_app(backend: Backend, opts: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_database) = match backend {
        Backend::Sqlite => (format!("sqlite://{}?mode=rwc", dir.path().join("wb.db").display()), None),
        Backend::Postgres => {
            let (url, name) = fresh_pg_database().await;
            (url, Some(name))
        }
    };
    start(url, dir, pg_database, opts).await
}

/// Runs `setup` against the app with RabbitMQ switched off, stops it, and
/// starts it again on the same database with `opts`: so that the consumer
/// finds assets, connector and rules in place (as after a restart).
pub async fn spawn_app_prepared(backend: Backend, opts: Options, setup: impl AsyncFnOnce(&TestApp)) -> TestApp {
    let first = spawn_app(backend, Options { amqp: None, ..Default::default() }).await;
    setup(&first).await;
    first.restart(opts).await
}

impl TestApp {
    /// Stops the service and starts it again on the same database.
    /// Stops the service and waits until it has finished; its database stays.
    pub async fn stop(&mut self) {
        self.handle.stop(true).await;
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
    }

    pub async fn restart(mut self, opts: Options) -> TestApp {
        self.stop().await;
        let url = self.settings.database.url.clone();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        let pg_database = self.pg_database.take();
        start(url, dir, pg_database, opts).await
    }
}

async fn start(url: String, dir: tempfile::TempDir, pg_database: Option<String>, opts: Options) -> TestApp {
    let settings = settings(&url, &opts);
    let app =
        Application::build_with_clock(settings.clone(), opts.clock.clone()).await.expect("the application starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let budgets = app.eval_budgets();
    let dispatcher = app.dispatcher();
    let poller = app.poller();
    let handle = app.server_handle();
    let stopped = tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        client: client_with_key(ADMIN_KEY),
        store,
        settings,
        budgets,
        dispatcher,
        poller,
        handle,
        stopped: Some(stopped),
        _dir: dir,
        pg_database,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The stop command is sent at once; its completion needs the test's
        // runtime, which Drop must not block on.
        drop(self.handle.stop(false));
        let Some(db) = self.pg_database.take() else {
            return;
        };
        // Async clean-up from a sync Drop: a thread with its own runtime,
        // independent of the test's (FORCE ends the app's connections).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(&pg_admin_url()).await {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.client.post(self.url(path)).json(body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Loads the demo registry (`tests/fixtures/assets-demo.csv`).
    pub async fn load_demo_assets(&self) {
        let csv = std::fs::read_to_string(format!("{FIXTURES}/assets-demo.csv")).unwrap();
        let r = self
            .client
            .post(self.url("/v1/assets/bulk"))
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// Loads the demo registry, a connector and one rule that creates orders
    /// for alerts of at least `minor` severity through it.
    pub async fn setup_flow(&self, connector: Value) {
        self.load_demo_assets().await;
        let (s, body) = self.post_json("/v1/connectors", &connector).await;
        assert_eq!(s, 201, "{body}");
        let name = connector["name"].as_str().unwrap();
        let (s, body) = self
            .post_json(
                "/v1/rules",
                &json!({
                    "name": "alerts",
                    "when": {"types": ["tdl.alert"], "min_severity": "minor"},
                    "action": {"kind": "create", "connector": name, "work_type": "corrective", "priority": 2}
                }),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }

    /// Delivers what the outbox holds now, as the delivery loop would, round
    /// after round until nothing is left to claim (with `step_deliveries`:
    /// exact, and no waiting). Returns the deliveries made.
    #[allow(dead_code)]
    pub async fn deliver(&self) -> usize {
        let mut total = 0;
        loop {
            let n = self.dispatcher.dispatch_once().await.expect("a delivery round");
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    /// One status-polling round, as the polling loop would run it (set
    /// `WORKBRIDGE_SYNC__POLL_INTERVAL_MS=0` to run no loop beside it: then
    /// every followed order is due each round).
    #[allow(dead_code)]
    pub async fn poll(&self) -> workbridge::sync::poller::PollRound {
        self.poller.poll_round().await.expect("a polling round")
    }

    /// Waits until `check` holds, failing after 20 s.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn orders(&self) -> Vec<Value> {
        let (s, page) = self.get("/v1/work-orders?limit=500").await;
        assert_eq!(s, 200);
        page["items"].as_array().unwrap().clone()
    }
}

/// An alert for a tag of the demo registry (MX-101's bearing temperature).
pub fn alert(id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "tdl://bedford/analytics",
        "type": "tdl.alert",
        "time": "2026-11-24T10:15:00Z",
        "subject": "BEDFORD.PUMPING.MX101.BRG_TEMP",
        "datacontenttype": "application/json",
        "data": {
            "state": "raised", "code": "HIGH_TEMPERATURE", "severity": "major",
            "message": "Bearing temperature above alarm limit", "value": 92.1, "unit": "degC",
            "context": {"area": "Pumping"}
        }
    })
}

pub fn sandbox_connector() -> Value {
    json!({"name": "sandbox", "config": {"kind": "sandbox"}})
}

/// A test's own RabbitMQ connection.
pub struct Broker {
    pub conn: Connection,
    pub channel: Channel,
    pub names: AmqpNames,
}

impl Broker {
    pub async fn connect(names: &AmqpNames) -> Self {
        let conn =
            Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("RabbitMQ is reachable");
        let channel = conn.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        Self { conn, channel, names: names.clone() }
    }

    /// Publishes to the test's exchange and waits for the broker's confirm.
    pub async fn publish(&self, routing_key: &str, body: &[u8], props: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                self.names.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "publish confirmed");
    }

    pub async fn publish_structured(&self, event: &Value) {
        self.publish(
            "alert.BEDFORD",
            &serde_json::to_vec(event).unwrap(),
            workbridge::ingest::amqp::structured_properties(),
        )
        .await
    }

    /// An exclusive queue bound to every routing key of the lifecycle
    /// exchange (declared here as the service declares it), so a test reads
    /// what the service publishes there.
    pub async fn lifecycle_queue(&self) -> String {
        self.channel
            .exchange_declare(
                self.names.lifecycle.as_str().into(),
                lapin::ExchangeKind::Topic,
                lapin::options::ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let q = self
            .channel
            .queue_declare(
                "".into(),
                lapin::options::QueueDeclareOptions { exclusive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = q.name().as_str().to_owned();
        self.channel
            .queue_bind(
                queue.as_str().into(),
                self.names.lifecycle.as_str().into(),
                "#".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        queue
    }

    /// Takes up to `n` messages from a queue (acking them), waiting up to 20 s.
    pub async fn take(&self, queue: &str, n: usize) -> Vec<lapin::message::Delivery> {
        let ch = self.conn.create_channel().await.unwrap();
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                format!("test-{}", short_id()).into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut out = vec![];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while out.len() < n {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(d))) => out.push(d),
                _ => break,
            }
        }
        let _ = ch.close(200, "done".into()).await;
        out
    }

    pub async fn queue_depth(&self, queue: &str) -> u32 {
        let ch = self.conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = ch.close(200, "done".into()).await;
        q.message_count()
    }

    pub async fn cleanup(self) {
        let n = &self.names;
        for q in [&n.queue, &n.dead_queue] {
            let _ = self.channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
        }
        for e in [&n.exchange, &n.dlx, &n.lifecycle] {
            let _ = self.channel.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default()).await;
        }
        let _ = self.conn.close(200, "done".into()).await;
    }
}

/// An HTTP client that sends `key` as its bearer token.
pub fn client_with_key(key: &str) -> reqwest::Client {
    // The one TLS provider (ring), as the service installs it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// A log writer for tests that check what the service logs.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
