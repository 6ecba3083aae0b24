//! Process and database helpers shared by the fault tests
//! (`tests/faults/harness.rs`) and the load tool (`examples/loadgen/`): the
//! service binary as a child process (its command line and environment, its
//! readiness, killing it, its log), a throw-away PostgreSQL database, raw
//! SQL and Prometheus counters.
//!
//! Dev-only, and one copy: both include this file as a module
//! (`#[path = "…/tests/testkit/mod.rs"] mod testkit;`), so it adds no crate
//! to build. It may use only what both can: the package's dependencies.

pub mod maximo_sim;

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr, QueryResult, Statement};
use tokio::time::Instant;

/// A free TCP port on the loopback interface.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `check` every 100 ms until it holds; false when `within` ran out.
pub async fn wait_for(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------- the service

/// The RabbitMQ names of one service under test (its own, so that runs and
/// tests do not share queues).
#[derive(Debug, Clone)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    pub dlx: String,
    pub dead_queue: String,
    pub lifecycle: String,
}

impl Topology {
    /// `<prefix>.tdl.events`, `<prefix>.events`, `<prefix>.dlx`, … as the
    /// defaults are named.
    pub fn with_prefix(p: &str) -> Self {
        Self {
            exchange: format!("{p}.tdl.events"),
            queue: format!("{p}.events"),
            dlx: format!("{p}.dlx"),
            dead_queue: format!("{p}.events.dead"),
            lifecycle: format!("{p}.workorders"),
        }
    }
}

/// What every service under test is started with.
pub struct ServiceEnv<'a> {
    pub port: u16,
    pub db_url: &'a str,
    pub admin_key: &'a str,
    pub amqp_url: &'a str,
    pub topology: &'a Topology,
}

/// `bin serve` with a clean environment: `PATH`, the HTTP address, the
/// database, the admin key, the broker and its names, and queues that
/// expire ten minutes after a crashed run. The caller adds `RUST_LOG`, its
/// own settings and where the output goes.
pub fn service_command(bin: &Path, env: &ServiceEnv<'_>) -> Command {
    let t = env.topology;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WORKBRIDGE_HTTP_ADDR", format!("127.0.0.1:{}", env.port))
        .env("WORKBRIDGE_DATABASE_URL", env.db_url)
        .env("WORKBRIDGE_ADMIN_KEY", env.admin_key)
        .env("WORKBRIDGE_AMQP_URL", env.amqp_url)
        .env("WORKBRIDGE_AMQP__EXCHANGE", &t.exchange)
        .env("WORKBRIDGE_AMQP__QUEUE", &t.queue)
        .env("WORKBRIDGE_AMQP__DEAD_LETTER_EXCHANGE", &t.dlx)
        .env("WORKBRIDGE_AMQP__DEAD_LETTER_QUEUE", &t.dead_queue)
        .env("WORKBRIDGE_AMQP__LIFECYCLE_EXCHANGE", &t.lifecycle)
        // So that the queues of a crashed run do not stay behind.
        .env("WORKBRIDGE_AMQP__QUEUE_EXPIRES_MS", "600000");
    cmd
}

/// Why a service did not become ready.
#[derive(Debug)]
pub enum NotReady {
    /// The process ended (during start-up).
    Exited(ExitStatus),
    TimedOut,
}

/// Polls `ready` (e.g. the service's `/readyz`) every 100 ms until it
/// holds, unless the process ends first or `within` runs out.
pub async fn wait_ready(
    child: &mut Child,
    within: Duration,
    mut ready: impl AsyncFnMut() -> bool,
) -> Result<(), NotReady> {
    let ok = wait_for(within, async || matches!(child.try_wait(), Ok(Some(_))) || ready().await).await;
    if let Ok(Some(status)) = child.try_wait() {
        return Err(NotReady::Exited(status));
    }
    if ok { Ok(()) } else { Err(NotReady::TimedOut) }
}

/// SIGKILL, and reap the process.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sums a counter family of a Prometheus text exposition, over the lines
/// that start with `family` and contain `label_filter`.
pub fn metric_sum(text: &str, family: &str, label_filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(family) && l.contains(label_filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------- databases

/// Creates the empty database `name` on the PostgreSQL server of
/// `admin_url` (the service migrates it); returns its URL.
pub async fn create_pg_database(admin_url: &str, name: &str) -> Result<String, DbErr> {
    let admin = Database::connect(admin_url).await?;
    let created = admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await;
    let _ = admin.close().await;
    created?;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
    Ok(format!("{base}/{name}"))
}

/// Drops the database `name`, closing whatever connections it still has.
pub async fn drop_pg_database(admin_url: &str, name: &str) -> Result<(), DbErr> {
    let admin = Database::connect(admin_url).await?;
    let dropped = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    let _ = admin.close().await;
    dropped.map(|_| ())
}

/// The rows of a raw SQL query.
pub async fn rows(db: &DatabaseConnection, sql: &str) -> Result<Vec<QueryResult>, DbErr> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await
}

/// The first column of the first row of a raw SQL query (a `COUNT(*)`).
pub async fn count(db: &DatabaseConnection, sql: &str) -> Result<i64, DbErr> {
    let r = rows(db, sql).await?;
    r.first().ok_or_else(|| DbErr::RecordNotFound(format!("no row: {sql}")))?.try_get_by_index::<i64>(0)
}
