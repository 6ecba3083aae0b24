//! End-to-end load run: starts the service (1 or 2 replicas of the release
//! binary) on a fresh database, loads a realistic registry (10,000 assets
//! with tags, 200 rules, a REST connector, a maintenance window), publishes N
//! CloudEvents to RabbitMQ with pipelined publisher confirms, and measures
//! what comes out at a simulated EAM in this process.
//!
//! ```text
//! export CARGO_TARGET_DIR=$HOME/.cache/workbridge-target
//! cargo build --release --bin workbridge --example loadgen
//! $CARGO_TARGET_DIR/release/examples/loadgen --db postgres --replicas 1 --events 100000
//! $CARGO_TARGET_DIR/release/examples/loadgen --db sqlite --events 20000 --rate 2000
//! ```
//!
//! The mix: about 20 % of the events are the first of an (asset, code) dedup
//! key and open an order, 60 % repeat a key already opened and merge, and
//! 20 % are split among an ignore rule, a site under a maintenance window
//! (suppressed) and tags that map to no asset. The outcomes printed are the
//! ones stored by the service, compared with the plan. `--mix new-orders`
//! makes every event open an order, to load the delivery path.
//!
//! It prints throughput (events decided per second, orders delivered per
//! second), latency publish → decision and publish → order received by the
//! EAM, CPU seconds and peak RSS of each replica, a README table row, and
//! checks that every event is stored once and no order reached the EAM
//! twice. Exit status 1 when a check fails or the run times out.
//!
//! The decision time is the stored event's `received_at`, stamped when the
//! decision (or the consumer's batch) starts; its commit follows within the
//! batch. The EAM time is when the simulated EAM received the POST.
//!
//! Other options: `--replicas 2` (PostgreSQL), `--env WORKBRIDGE_X__Y=V` to
//! tune the service, `--keep` to keep the database and the logs,
//! `--eam-delay-ms`, `--seed`. Where the PostgreSQL server runs without
//! autovacuum (as on the development machines), `--analyze-every-secs 30`
//! gives the growing tables the statistics production would have.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, ValueEnum};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection, ConnectionProperties};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, QueryResult, Statement};
use serde_json::{Value, json};

type BoxError = Box<dyn Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

/// End-to-end load run of workbridge through RabbitMQ, the database and a
/// simulated REST EAM.
#[derive(Parser, Debug, Clone)]
#[command(about, long_about = None)]
struct Args {
    /// Database of the service: a fresh SQLite file or a fresh PostgreSQL database.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    db: Backend,
    /// Service processes consuming the same queue (2 needs PostgreSQL).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    replicas: u8,
    /// Events to publish.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events per second; 0 publishes as fast as the broker confirms.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Publishes awaiting the broker's confirm at once.
    #[arg(long, default_value_t = 4096)]
    window: usize,
    /// Assets in the registry (sites and areas included).
    #[arg(long, default_value_t = 10_000)]
    assets: usize,
    /// Rules (one ignore rule, specific create rules, one catch-all).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(3..))]
    rules: u32,
    /// The workbridge binary [default: $CARGO_TARGET_DIR/release/workbridge, else ./target/release/workbridge].
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Extra variables for the service, e.g. `--env WORKBRIDGE_AMQP__PREFETCH=128` (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// RabbitMQ, for the service and the publisher.
    #[arg(long, env = "WORKBRIDGE_AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// PostgreSQL server database used to create and drop the run's database.
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    pg_admin_url: String,
    /// Keep the database, the logs and the temporary folder.
    #[arg(long)]
    keep: bool,
    /// Give up waiting for decisions and deliveries after this long.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// PostgreSQL: run ANALYZE on the run's database this often during the
    /// load (0: never), standing in for autovacuum where it is switched off.
    #[arg(long, default_value_t = 0)]
    analyze_every_secs: u64,
    /// Delay of each answer of the simulated EAM.
    #[arg(long, default_value_t = 0)]
    eam_delay_ms: u64,
    /// Seed of the event plan (same seed, same events).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The mix: `realistic` (20 % new orders, 60 % merges, 20 % others) or
    /// `new-orders` (every event opens an order: the delivery path at full load).
    #[arg(long, value_enum, default_value_t = Mix::Realistic)]
    mix: Mix,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    Realistic,
    NewOrders,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("expected K=V, got {s:?}"))
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

// ---------------------------------------------------------------------------
// The registry and the rules

const ACTIVE_SITES: [&str; 3] = ["BEDFORD", "TEXAS", "NASHUA"];
/// Under a maintenance window for the whole run: its events are suppressed.
const SHUTDOWN_SITE: &str = "LOWELL";
const AREAS: [&str; 4] = ["PUMPING", "MIXING", "UTILITIES", "PACKAGING"];
/// (class, tag prefix, the tags of one asset)
const CLASSES: [(&str, &str, [&str; 3]); 7] = [
    ("PUMP", "P", ["VIB_X", "BRG_TEMP", "DISCH_PRESS"]),
    ("MOTOR", "M", ["CURRENT", "WINDING_TEMP", "VIB_X"]),
    ("COMPRESSOR", "K", ["DISCH_PRESS", "DISCH_TEMP", "VIB_X"]),
    ("FAN", "F", ["VIB_X", "BRG_TEMP", "CURRENT"]),
    ("CONVEYOR", "CV", ["SPEED", "CURRENT", "BRG_TEMP"]),
    ("HEAT_EXCHANGER", "HX", ["OUTLET_TEMP", "DIFF_PRESS", "FLOW"]),
    ("MIXER", "MX", ["CURRENT", "BRG_TEMP", "VIB_X"]),
];
const CODES: [&str; 5] = ["HIGH_VIBRATION", "HIGH_TEMPERATURE", "LOW_PRESSURE", "LOW_FLOW", "HIGH_CURRENT"];
/// Matched by the ignore rule.
const IGNORED_CODE: &str = "SENSOR_TEST";
const CONNECTOR: &str = "eam";

struct Equipment {
    site: &'static str,
    area: &'static str,
    tags: Vec<String>,
}

struct Registry {
    equipment: Vec<Equipment>,
    csv: String,
}

/// Sites, their areas, then equipment (about 3 % of it at the shut-down site).
fn registry(total: usize) -> Registry {
    let sites: Vec<&str> = ACTIVE_SITES.iter().copied().chain([SHUTDOWN_SITE]).collect();
    let mut csv = String::from("external_id,site,name,class,criticality,parent,eam_system,tags\n");
    for site in &sites {
        csv.push_str(&format!("{site},{site},{site} plant,SITE,,,rest,\n"));
        for area in AREAS {
            csv.push_str(&format!("{site}-{area},{site},{area} area,AREA,,{site},rest,\n"));
        }
    }
    let fixed = sites.len() * (1 + AREAS.len());
    let n = total.saturating_sub(fixed);
    let mut equipment = Vec::with_capacity(n);
    for j in 0..n {
        let site = if j % 33 == 32 { SHUTDOWN_SITE } else { ACTIVE_SITES[j % 3] };
        let area = AREAS[(j / 3) % AREAS.len()];
        let class = (j / 12) % CLASSES.len();
        let (class_name, prefix, tag_names) = CLASSES[class];
        let id = format!("{prefix}-{j:05}");
        let tags: Vec<String> = tag_names.iter().map(|t| format!("{site}.{area}.{prefix}{j:05}.{t}")).collect();
        let criticality = match j % 10 {
            0 => "A",
            1..=3 => "B",
            _ => "C",
        };
        let name = format!("{} {j:05}", class_name.to_lowercase().replace('_', " "));
        csv.push_str(&format!("{id},{site},{name},{class_name},{criticality},{site}-{area},rest,{}\n", tags.join(";")));
        equipment.push(Equipment { site, area, tags });
    }
    Registry { equipment, csv }
}

/// `n` rules: the ignore rule first, then emergency and corrective rules per
/// code, site and class, each with a CEL condition, and a catch-all last.
fn rules(n: u32) -> Vec<Value> {
    let specific = (n - 2) as usize;
    let emergency = specific * 47 / 100;
    let mut out = vec![json!({
        "name": "ignore-sensor-tests",
        "position": 0,
        "when": {"codes": [IGNORED_CODE]},
        "action": {"kind": "ignore"},
    })];
    for i in 0..specific {
        let code = CODES[i % CODES.len()];
        let site = ACTIVE_SITES[(i / CODES.len()) % ACTIVE_SITES.len()];
        let class = CLASSES[(i / (CODES.len() * ACTIVE_SITES.len())) % CLASSES.len()].0;
        let (kind, factor, priority) = if i < emergency {
            ("emergency", 1.8, json!({"critical": {"A": 1, "*": 1}, "major": {"A": 1, "*": 2}, "minor": {"*": 2}}))
        } else {
            ("corrective", 1.0, json!({"critical": {"A": 1, "*": 2}, "major": {"A": 2, "*": 3}, "minor": {"*": 4}}))
        };
        out.push(json!({
            "name": format!("{kind}-{}-{site}-{}-{i}", code.to_lowercase(), class.to_lowercase()),
            "position": 10 + i,
            "when": {
                "types": ["tdl.alert"],
                "codes": [code],
                "sites": [site],
                "asset_classes": [class],
                "min_severity": "minor",
                "condition": format!("event.value > {factor:.1} * event.threshold"),
            },
            "action": {
                "kind": "create",
                "connector": CONNECTOR,
                "work_type": kind,
                "priority": priority,
                "title": "{{ event.code }} on {{ asset.name }} ({{ asset.id }})",
            },
        }));
    }
    out.push(json!({
        "name": "alerts-to-orders",
        "position": 10_000,
        "when": {"types": ["tdl.alert"]},
        "action": {"kind": "create", "connector": CONNECTOR, "work_type": "corrective", "priority": 3},
    }));
    out
}

// ---------------------------------------------------------------------------
// The event plan

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Expect {
    Created,
    Merged,
    Ignored,
    Suppressed,
    Unmapped,
}

impl Expect {
    const ALL: [Expect; 5] = [Self::Created, Self::Merged, Self::Ignored, Self::Suppressed, Self::Unmapped];

    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Merged => "merged",
            Self::Ignored => "ignored",
            Self::Suppressed => "suppressed",
            Self::Unmapped => "unmapped",
        }
    }
}

struct Planned {
    subject: String,
    site: &'static str,
    area: &'static str,
    code: &'static str,
    severity: &'static str,
    value: f64,
    threshold: f64,
    expect: Expect,
}

/// Blocks of ten events, shuffled: 2 new keys, 6 repeats of an opened key,
/// 2 others (ignored, suppressed, unmapped in turn); or only new keys.
fn plan(reg: &Registry, n: usize, seed: u64, mix: Mix) -> Res<Vec<Planned>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let active: Vec<usize> = (0..reg.equipment.len()).filter(|&i| reg.equipment[i].site != SHUTDOWN_SITE).collect();
    let shut: Vec<usize> = (0..reg.equipment.len()).filter(|&i| reg.equipment[i].site == SHUTDOWN_SITE).collect();
    if active.is_empty() || shut.is_empty() {
        return Err("--assets is too small for the mix".into());
    }
    let mut fresh: Vec<(usize, usize)> = active.iter().flat_map(|&a| (0..CODES.len()).map(move |c| (a, c))).collect();
    fresh.shuffle(&mut rng);
    let creates = if mix == Mix::NewOrders { n } else { n.div_ceil(10) * 2 };
    if creates > fresh.len() {
        return Err(format!("{n} events need {creates} (asset, code) keys; the registry has {}", fresh.len()).into());
    }
    let mut fresh = fresh.into_iter();
    let mut opened: Vec<(usize, usize)> = Vec::with_capacity(creates);
    let mut others = 0usize;
    let mut out = Vec::with_capacity(n);
    let severities = |rng: &mut StdRng| match rng.random_range(0..100) {
        0..50 => "minor",
        50..85 => "major",
        _ => "critical",
    };
    while out.len() < n {
        let mut block = [
            Expect::Created,
            Expect::Created,
            Expect::Merged,
            Expect::Merged,
            Expect::Merged,
            Expect::Merged,
            Expect::Merged,
            Expect::Merged,
            Expect::Ignored,
            Expect::Ignored,
        ];
        if mix == Mix::NewOrders {
            block = [Expect::Created; 10];
        }
        block.shuffle(&mut rng);
        if opened.is_empty() {
            // A repeat needs a key opened before it.
            let first = block.iter().position(|e| *e == Expect::Created).unwrap_or(0);
            block.swap(0, first);
        }
        for slot in block {
            if out.len() == n {
                break;
            }
            let (asset, code, expect) = match slot {
                Expect::Created => {
                    let (a, c) = fresh.next().ok_or("out of fresh keys")?;
                    opened.push((a, c));
                    (Some(a), CODES[c], Expect::Created)
                }
                Expect::Merged => {
                    let (a, c) = opened[rng.random_range(0..opened.len())];
                    (Some(a), CODES[c], Expect::Merged)
                }
                _ => {
                    others += 1;
                    match others % 3 {
                        0 => (Some(active[rng.random_range(0..active.len())]), IGNORED_CODE, Expect::Ignored),
                        1 => (
                            Some(shut[rng.random_range(0..shut.len())]),
                            CODES[rng.random_range(0..5)],
                            Expect::Suppressed,
                        ),
                        _ => (None, CODES[rng.random_range(0..5)], Expect::Unmapped),
                    }
                }
            };
            let threshold = [10.0, 80.0, 4.0, 50.0, 120.0][rng.random_range(0..5)];
            let value = threshold * rng.random_range(1.02..2.5);
            let (subject, site, area) = match asset {
                Some(a) => {
                    let e = &reg.equipment[a];
                    (e.tags[rng.random_range(0..e.tags.len())].clone(), e.site, e.area)
                }
                None => {
                    // Tags outside the registry (and no tag pattern covers them).
                    let site = ACTIVE_SITES[rng.random_range(0..3)];
                    let area = AREAS[rng.random_range(0..AREAS.len())];
                    (format!("{site}.{area}.XT{:05}.PV", rng.random_range(0..100_000)), site, area)
                }
            };
            let severity = severities(&mut rng);
            out.push(Planned { subject, site, area, code, severity, value, threshold, expect });
        }
    }
    Ok(out)
}

fn event_id(i: usize) -> String {
    format!("ev-{i:08}")
}

fn event_index(ce_id: &str) -> Option<usize> {
    ce_id.strip_prefix("ev-")?.parse().ok()
}

fn event_body(p: &Planned, i: usize, source: &str) -> Vec<u8> {
    let e = json!({
        "specversion": "1.0",
        "id": event_id(i),
        "source": source,
        "type": "tdl.alert",
        "time": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        "subject": p.subject,
        "datacontenttype": "application/json",
        "data": {
            "state": "raised",
            "code": p.code,
            "severity": p.severity,
            "message": format!("{} on {}", p.code, p.subject),
            "value": (p.value * 100.0).round() / 100.0,
            "threshold": p.threshold,
            "context": {"area": p.area},
        },
    });
    serde_json::to_vec(&e).expect("a JSON value serialises")
}

// ---------------------------------------------------------------------------
// The simulated EAM

/// One order as the EAM received it.
struct Received {
    external_id: String,
    /// CloudEvents id of the order's first event (from the body template).
    first_event: String,
    at_us: i64,
}

#[derive(Default)]
struct Eam {
    orders: Mutex<HashMap<String, Received>>,
    posts: AtomicU64,
    /// POSTs that repeated an Idempotency-Key already created.
    replays: AtomicU64,
    delay: Duration,
}

/// Answers like a REST EAM that honours `Idempotency-Key`: 201 with the new
/// id, or 200 with the same id when the key was seen before.
async fn eam_create(eam: web::Data<Eam>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let at_us = now_us();
    eam.posts.fetch_add(1, Ordering::Relaxed);
    let Some(reference) = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return HttpResponse::BadRequest().json(json!({"error": "Idempotency-Key is required"}));
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"error": "body is not JSON"}));
    };
    if !eam.delay.is_zero() {
        tokio::time::sleep(eam.delay).await;
    }
    let mut orders = eam.orders.lock().unwrap_or_else(|p| p.into_inner());
    let n = orders.len();
    let mut created = false;
    let order = orders.entry(reference).or_insert_with(|| {
        created = true;
        Received {
            external_id: format!("WO-{:07}", n + 1),
            first_event: doc["first_event"].as_str().unwrap_or_default().to_owned(),
            at_us,
        }
    });
    let reply = json!({"id": order.external_id, "status": "OPEN"});
    if created {
        HttpResponse::Created().json(reply)
    } else {
        eam.replays.fetch_add(1, Ordering::Relaxed);
        HttpResponse::Ok().json(reply)
    }
}

/// Starts the EAM on a free port; returns its server handle and port.
fn start_eam(eam: web::Data<Eam>) -> Res<(actix_web::dev::ServerHandle, u16)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server =
        HttpServer::new(move || App::new().app_data(eam.clone()).route("/api/orders", web::post().to(eam_create)))
            .workers(1)
            .listen(listener)?
            .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((handle, port))
}

// ---------------------------------------------------------------------------
// The service under test

struct Names {
    exchange: String,
    queue: String,
    dlx: String,
    dead_queue: String,
    lifecycle: String,
}

impl Names {
    fn new(run: &str) -> Self {
        let p = format!("loadgen.{run}");
        Self {
            exchange: format!("{p}.tdl.events"),
            queue: format!("{p}.events"),
            dlx: format!("{p}.dlx"),
            dead_queue: format!("{p}.events.dead"),
            lifecycle: format!("{p}.workorders"),
        }
    }
}

struct Replica {
    child: Child,
    base: String,
    log: PathBuf,
}

/// The replicas; any still running are killed when this is dropped (on an
/// early error, too).
#[derive(Default)]
struct Replicas(Vec<Replica>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for r in &mut self.0 {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

impl Replicas {
    /// SIGTERM (a clean stop, as in production), then SIGKILL after 30 s.
    async fn stop(&mut self) {
        for r in &self.0 {
            let _ = Command::new("kill").args(["-TERM", &r.child.id().to_string()]).status();
        }
        for r in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(r.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if matches!(r.child.try_wait(), Ok(None)) {
                eprintln!("replica {} did not stop in 30 s; killing it", r.child.id());
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
        }
    }
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn default_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    target.join("release").join("workbridge")
}

struct ServiceConfig<'a> {
    bin: &'a Path,
    db_url: &'a str,
    admin_key: &'a str,
    amqp_url: &'a str,
    names: &'a Names,
    extra: &'a [(String, String)],
    dir: &'a Path,
}

fn spawn_replica(cfg: &ServiceConfig<'_>, k: usize) -> Res<Replica> {
    let port = free_port()?;
    let log = cfg.dir.join(format!("replica-{k}.log"));
    let n = cfg.names;
    let mut cmd = Command::new(cfg.bin);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("WORKBRIDGE_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKBRIDGE_DATABASE_URL", cfg.db_url)
        .env("WORKBRIDGE_ADMIN_KEY", cfg.admin_key)
        .env("WORKBRIDGE_AMQP_URL", cfg.amqp_url)
        .env("WORKBRIDGE_AMQP__EXCHANGE", &n.exchange)
        .env("WORKBRIDGE_AMQP__QUEUE", &n.queue)
        .env("WORKBRIDGE_AMQP__DEAD_LETTER_EXCHANGE", &n.dlx)
        .env("WORKBRIDGE_AMQP__DEAD_LETTER_QUEUE", &n.dead_queue)
        .env("WORKBRIDGE_AMQP__LIFECYCLE_EXCHANGE", &n.lifecycle)
        // So that the queues of a crashed run do not stay behind.
        .env("WORKBRIDGE_AMQP__QUEUE_EXPIRES_MS", "600000");
    for (k, v) in cfg.extra {
        cmd.env(k, v);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cfg.bin.display()))?;
    Ok(Replica { child, base: format!("http://127.0.0.1:{port}"), log })
}

/// Waits until the replica answers `/readyz` with the broker connected (its
/// queue is then declared and bound).
async fn wait_ready(http: &reqwest::Client, r: &mut Replica) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = r.child.try_wait() {
            return Err(format!("the service exited ({status}); see {}:\n{}", r.log.display(), tail(&r.log)).into());
        }
        if let Ok(resp) = http.get(format!("{}/readyz", r.base)).send().await
            && let Ok(v) = resp.json::<Value>().await
            && v["broker"]["ok"] == true
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the service is not ready after 120 s; see {}", r.log.display()).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is field 3.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Peak resident set size of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU counters at one moment, in clock ticks.
struct CpuSnapshot {
    replicas: Vec<u64>,
    own: u64,
    /// (busy, total) of the whole host, over all cores.
    host: (u64, u64),
    /// The database and the broker, by process name (their processes that
    /// exist at both snapshots; short-lived ones are missed).
    neighbours: HashMap<u32, (&'static str, u64)>,
}

const NEIGHBOURS: [(&str, &str); 2] = [("postgres", "PostgreSQL"), ("beam.smp", "RabbitMQ")];

impl CpuSnapshot {
    fn take(replicas: &Replicas) -> Self {
        let mut neighbours = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if let Some((_, label)) = NEIGHBOURS.iter().find(|(c, _)| *c == comm.trim())
                && let Some(t) = cpu_ticks(pid)
            {
                neighbours.insert(pid, (*label, t));
            }
        }
        let host = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let v: Vec<u64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal
                let total: u64 = v.iter().take(8).sum();
                Some((total - v.get(3)? - v.get(4)?, total))
            })
            .unwrap_or((0, 1));
        Self {
            replicas: replicas.0.iter().map(|r| cpu_ticks(r.child.id()).unwrap_or(0)).collect(),
            own: cpu_ticks(std::process::id()).unwrap_or(0),
            host,
            neighbours,
        }
    }

    /// CPU seconds of each neighbour (by label) between `self` and `later`.
    fn neighbours_since(&self, later: &Self, ticks: f64) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = vec![];
        for (pid, (label, after)) in &later.neighbours {
            let before = self.neighbours.get(pid).map_or(0, |b| b.1);
            let secs = after.saturating_sub(before) as f64 / ticks;
            match out.iter_mut().find(|(l, _)| l == label) {
                Some(e) => e.1 += secs,
                None => out.push((label, secs)),
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The REST API

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Res<Value> {
        let resp = req.send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{what}: {status} {body}").into());
        }
        Ok(body)
    }

    async fn post(&self, path: &str, body: &Value) -> Res<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body), path).await
    }
}

/// Assets, the REST connector to the simulated EAM, the rules and the
/// maintenance window of the shut-down site.
async fn set_up(api: &Api, reg: &Registry, rule_count: u32, eam_port: u16) -> Res<()> {
    let t = Instant::now();
    let loaded = api
        .send(
            api.http
                .post(format!("{}/v1/assets/bulk", api.base))
                .header("content-type", "text/csv")
                .body(reg.csv.clone()),
            "/v1/assets/bulk",
        )
        .await?;
    if loaded["rejected"] != 0 {
        return Err(format!("assets rejected: {loaded}").into());
    }
    println!(
        "  assets:      {} created, {} tags, in {:.1} s (one CSV bulk request)",
        loaded["created"],
        reg.equipment.len() * 3,
        t.elapsed().as_secs_f64()
    );
    // The body a REST EAM would take, with the first event's id so that
    // latency can be joined to its publish time.
    let body = json!({
        "reference": "{{ order.reference }}",
        "title": "{{ order.title }}",
        "description": "{{ order.description }}",
        "work_type": "{{ order.work_type }}",
        "priority": "{{ order.priority }}",
        "site": "{{ order.site }}",
        "asset": "{{ order.asset_id }}",
        "due_by": "{{ order.due_by }}",
        "first_event": "{{ event.id }}",
        "reported_at": "{{ event.time }}",
    });
    api.post(
        "/v1/connectors",
        &json!({"name": CONNECTOR, "config": {
            "kind": "rest",
            "url": format!("http://127.0.0.1:{eam_port}/api/orders"),
            "body": body,
            "id_path": "id",
            "status_path": "status",
        }}),
    )
    .await?;
    let t = Instant::now();
    for rule in rules(rule_count) {
        api.post("/v1/rules", &rule).await?;
    }
    println!("  rules:       {rule_count} created in {:.1} s", t.elapsed().as_secs_f64());
    api.post(
        "/v1/suppressions",
        &json!({
            "scope": "site", "target": SHUTDOWN_SITE,
            "ends_at": (Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
            "reason": "turnaround", "author": "loadgen",
        }),
    )
    .await?;
    println!("  connector:   rest → http://127.0.0.1:{eam_port}/api/orders; suppression: site {SHUTDOWN_SITE}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Publishing

#[derive(Default)]
struct PublishStats {
    acked: AtomicUsize,
    nacked: AtomicUsize,
    returned: AtomicUsize,
}

/// Publishes every planned event, `window` confirms in flight at most,
/// paced at `rate` per second when it is positive. Returns each event's
/// publish time (µs since the epoch).
async fn publish(
    channel: Channel,
    exchange: String,
    source: String,
    plan: Arc<Vec<Planned>>,
    window: usize,
    rate: f64,
    stats: Arc<PublishStats>,
) -> Res<Vec<i64>> {
    let props = workbridge::ingest::amqp::structured_properties();
    let mut sent_at = vec![0i64; plan.len()];
    let mut inflight = FuturesUnordered::new();
    let start = tokio::time::Instant::now();
    let settle = |c: Result<Confirmation, lapin::Error>| -> Res<()> {
        match c? {
            Confirmation::Ack(None) => stats.acked.fetch_add(1, Ordering::Relaxed),
            Confirmation::Ack(Some(_)) => stats.returned.fetch_add(1, Ordering::Relaxed),
            _ => stats.nacked.fetch_add(1, Ordering::Relaxed),
        };
        Ok(())
    };
    for (i, p) in plan.iter().enumerate() {
        if rate > 0.0 {
            // Settle confirms while waiting for this event's slot.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            while tokio::time::Instant::now() < due {
                if inflight.is_empty() {
                    tokio::time::sleep_until(due).await;
                    break;
                }
                match tokio::time::timeout_at(due, inflight.next()).await {
                    Ok(Some(c)) => settle(c)?,
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let body = event_body(p, i, &source);
        let key = format!("alert.{}", p.site);
        sent_at[i] = now_us();
        // `mandatory`: an unroutable event comes back instead of vanishing.
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                key.into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &body,
                props.clone(),
            )
            .await?;
        inflight.push(confirm);
        // Count the confirms already in (progress), then keep the window.
        while let Some(Some(c)) = inflight.next().now_or_never() {
            settle(c)?;
        }
        while inflight.len() >= window {
            if let Some(c) = inflight.next().await {
                settle(c)?;
            }
        }
    }
    while let Some(c) = inflight.next().await {
        settle(c)?;
    }
    Ok(sent_at)
}

// ---------------------------------------------------------------------------
// The database (read directly: the service's own tables)

async fn count(db: &DatabaseConnection, sql: &str) -> Res<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await?
        .ok_or("COUNT returned no row")?;
    Ok(row.try_get::<i64>("", "n")?)
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Res<Vec<QueryResult>> {
    Ok(db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await?)
}

/// A timestamp column as µs since the epoch (SQLite keeps them as text).
fn timestamp_us(row: &QueryResult, col: &str) -> Res<i64> {
    if let Ok(t) = row.try_get::<DateTime<Utc>>("", col) {
        return Ok(t.timestamp_micros());
    }
    let s: String = row.try_get("", col)?;
    let t = DateTime::parse_from_rfc3339(&s)
        .or_else(|_| DateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map_err(|e| format!("{col} {s:?}: {e}"))?;
    Ok(t.timestamp_micros())
}

/// Events decided and orders opened, summed over the replicas' `/metrics`
/// (`workbridge_events_received_total`, counted after each commit). Polling
/// these rather than the tables keeps the tool's own queries from loading
/// the database during the run.
async fn decided_by_metrics(http: &reqwest::Client, replicas: &Replicas) -> Option<(i64, i64)> {
    let (mut decided, mut created) = (0.0, 0.0);
    for r in &replicas.0 {
        let text = http.get(format!("{}/metrics", r.base)).send().await.ok()?.text().await.ok()?;
        for line in text.lines().filter(|l| l.starts_with("workbridge_events_received_total{")) {
            let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
            decided += value;
            if line.contains("outcome=\"created\"") {
                created += value;
            }
        }
    }
    Some((decided as i64, created as i64))
}

/// Deliveries still to make, and those that failed for good (indexed).
async fn outbox_state(db: &DatabaseConnection) -> Res<(i64, i64)> {
    Ok((
        count(db, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'").await?,
        count(db, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'failed'").await?,
    ))
}

async fn create_pg_database(admin_url: &str, name: &str) -> Res<String> {
    let admin = Database::connect(admin_url).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    admin.close().await?;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
    Ok(format!("{base}/{name}"))
}

async fn drop_pg_database(admin_url: &str, name: &str) -> Res<()> {
    let admin = Database::connect(admin_url).await?;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    admin.close().await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Figures

struct Dist {
    p50: i64,
    p90: i64,
    p99: i64,
    max: i64,
}

/// Nearest-rank percentiles (as the KPIs compute them).
fn dist(mut v: Vec<i64>) -> Option<Dist> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Dist { p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: v[v.len() - 1] })
}

fn fmt_us(us: i64) -> String {
    if us.abs() < 1_000_000 { format!("{:.1} ms", us as f64 / 1e3) } else { format!("{:.2} s", us as f64 / 1e6) }
}

fn fmt_dist(d: &Option<Dist>) -> String {
    match d {
        Some(d) => format!("{} / {} / {} / {}", fmt_us(d.p50), fmt_us(d.p90), fmt_us(d.p99), fmt_us(d.max)),
        None => "n/a".into(),
    }
}

// ---------------------------------------------------------------------------

struct Run {
    args: Args,
    run_id: String,
    dir: tempfile::TempDir,
    pg_database: Option<String>,
    replicas: Replicas,
    eam_handle: Option<actix_web::dev::ServerHandle>,
    amqp: Option<Connection>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.db == Backend::Sqlite && args.replicas > 1 {
        eprintln!("SQLite serves one replica; use --db postgres for --replicas 2");
        return ExitCode::from(2);
    }
    let dir = match tempfile::Builder::new().prefix("loadgen-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot create a temporary folder: {e}");
            return ExitCode::from(2);
        }
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let mut run =
        Run { args, run_id, dir, pg_database: None, replicas: Replicas::default(), eam_handle: None, amqp: None };
    let outcome = execute(&mut run).await;
    teardown(run).await;
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("FAILED: see the checks above");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn teardown(mut run: Run) {
    run.replicas.stop().await;
    if let Some(conn) = run.amqp.take() {
        let names = Names::new(&run.run_id);
        if let Ok(ch) = conn.create_channel().await {
            for q in [&names.queue, &names.dead_queue] {
                let _ = ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
            }
            for e in [&names.exchange, &names.dlx, &names.lifecycle] {
                let _ = ch.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default()).await;
            }
        }
        let _ = conn.close(200, "done".into()).await;
    }
    if let Some(h) = run.eam_handle.take() {
        h.stop(true).await;
    }
    if run.args.keep {
        let dir = run.dir.keep();
        println!("kept: {} (logs{})", dir.display(), if run.args.db == Backend::Sqlite { ", database" } else { "" });
        if let Some(db) = &run.pg_database {
            println!("kept: PostgreSQL database {db}");
        }
    } else if let Some(db) = &run.pg_database
        && let Err(e) = drop_pg_database(&run.args.pg_admin_url, db).await
    {
        eprintln!("could not drop database {db}: {e}");
    }
}

async fn execute(run: &mut Run) -> Res<bool> {
    let args = run.args.clone();
    let names = Names::new(&run.run_id);
    let source = source_of(&run.run_id);
    let bin = args.bin.clone().unwrap_or_else(default_bin);
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release --bin workbridge`, or pass --bin",
            bin.display()
        )
        .into());
    }
    println!(
        "loadgen {}: {} replica(s) on {}, {} events at {}, {} assets, {} rules",
        run.run_id,
        args.replicas,
        args.db.name(),
        args.events,
        if args.rate > 0.0 { format!("{} ev/s", args.rate) } else { "full speed".into() },
        args.assets,
        args.rules
    );

    // Plan first: a registry too small for the run fails before anything starts.
    let reg = registry(args.assets);
    let plan = Arc::new(plan(&reg, args.events, args.seed, args.mix)?);
    let mut expected: HashMap<Expect, i64> = HashMap::new();
    for p in plan.iter() {
        *expected.entry(p.expect).or_default() += 1;
    }

    let db_url = match args.db {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", run.dir.path().join("workbridge.db").display()),
        Backend::Postgres => {
            let name = format!("loadgen_{}", run.run_id);
            let url = create_pg_database(&args.pg_admin_url, &name).await?;
            run.pg_database = Some(name);
            url
        }
    };

    let eam = web::Data::new(Eam { delay: Duration::from_millis(args.eam_delay_ms), ..Default::default() });
    let (handle, eam_port) = start_eam(eam.clone())?;
    run.eam_handle = Some(handle);

    let admin_key = format!("lg-{}", uuid::Uuid::new_v4().simple());
    let cfg = ServiceConfig {
        bin: &bin,
        db_url: &db_url,
        admin_key: &admin_key,
        amqp_url: &args.amqp_url,
        names: &names,
        extra: &args.env,
        dir: run.dir.path(),
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {admin_key}").parse()?);
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    // One at a time: the first one migrates the database.
    for k in 0..args.replicas as usize {
        run.replicas.0.push(spawn_replica(&cfg, k + 1)?);
        let r = run.replicas.0.last_mut().ok_or("no replica")?;
        wait_ready(&http, r).await?;
    }
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).map(DateTime::<Utc>::from);
    println!(
        "service:       {} (built {}; pid {})",
        bin.display(),
        built.map_or("?".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        pids(&run.replicas).join(", ")
    );
    let api = Api { http: http.clone(), base: run.replicas.0[0].base.clone() };
    set_up(&api, &reg, args.rules, eam_port).await?;

    let db = {
        let url = match args.db {
            Backend::Sqlite => db_url.replace("mode=rwc", "mode=rw"),
            Backend::Postgres => db_url.clone(),
        };
        let mut opts = ConnectOptions::new(url);
        opts.max_connections(1).sqlx_logging(false);
        Database::connect(opts).await?
    };
    if args.db == Backend::Postgres
        && let Ok(Some(row)) =
            db.query_one_raw(Statement::from_string(db.get_database_backend(), "SHOW autovacuum")).await
        && row.try_get::<String>("", "autovacuum").is_ok_and(|v| v == "off")
        && args.analyze_every_secs == 0
    {
        println!(
            "  note: autovacuum is off on this server: the tables get no statistics as they grow and plans may \
             degrade; --analyze-every-secs 30 stands in for it"
        );
    }
    let amqp = Connection::connect(&args.amqp_url, ConnectionProperties::default()).await?;
    let channel = amqp.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    run.amqp = Some(amqp);

    let stats = Arc::new(PublishStats::default());
    let Some(load) = drive(run, &http, &db, channel, plan.clone(), &eam, stats.clone()).await? else {
        return Ok(false);
    };
    let report = Report {
        args: &args,
        source: &source,
        db: &db,
        eam: &eam,
        sent_at: &load.sent_at,
        plan: &plan,
        expected: &expected,
        stats: &stats,
        published_in: load.published_in,
    };
    let (figures, ok) = report.print().await?;
    let (cpu_total, resources_ok) = print_resources(run, &db, &load).await;
    report.table_row(&figures, cpu_total, &load.rss_kib);
    Ok(ok && resources_ok && !load.timed_out)
}

/// What the load phase measured.
struct Load {
    /// Publish time of each event, µs since the epoch.
    sent_at: Vec<i64>,
    published_in: Duration,
    elapsed: Duration,
    timed_out: bool,
    cpu_before: CpuSnapshot,
    cpu_after: CpuSnapshot,
    rss_kib: Vec<u64>,
}

fn source_of(run_id: &str) -> String {
    format!("tdl://loadgen/{run_id}")
}

/// Publishes the plan, reports progress, and waits until every event is
/// decided and every order delivered, or the timeout. `None` if it timed out
/// while still publishing.
async fn drive(
    run: &Run,
    http: &reqwest::Client,
    db: &DatabaseConnection,
    channel: Channel,
    plan: Arc<Vec<Planned>>,
    eam: &Eam,
    stats: Arc<PublishStats>,
) -> Res<Option<Load>> {
    let args = &run.args;
    let source = source_of(&run.run_id);
    if args.db == Backend::Postgres && args.analyze_every_secs > 0 {
        // The registry and rules were just loaded: autovacuum would have
        // analyzed them before production load arrives.
        db.execute_unprepared("ANALYZE").await?;
    }
    // CPU is counted from here.
    let cpu_before = CpuSnapshot::take(&run.replicas);
    let started = Instant::now();
    let publisher = tokio::spawn(publish(
        channel,
        Names::new(&run.run_id).exchange,
        source.clone(),
        plan,
        args.window.max(1),
        args.rate,
        stats.clone(),
    ));
    let n = args.events as i64;
    let mut published_in = None;
    let mut last_report = Instant::now();
    let mut last_change = (Instant::now(), -1i64, -1i64);
    let mut timed_out = false;
    let mut publisher = Some(publisher);
    let mut sent_at = vec![];
    let mut analyzed = Instant::now();
    loop {
        // Once a second: each `/metrics` scrape costs the service two scans
        // of its work_orders table.
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(p) = publisher.as_ref()
            && p.is_finished()
        {
            sent_at = publisher.take().ok_or("publisher gone")?.await??;
            published_in = Some(started.elapsed());
        }
        if args.db == Backend::Postgres
            && args.analyze_every_secs > 0
            && analyzed.elapsed() >= Duration::from_secs(args.analyze_every_secs)
        {
            analyzed = Instant::now();
            db.execute_unprepared("ANALYZE").await?;
        }
        let (decided, created) = match decided_by_metrics(http, &run.replicas).await {
            Some(m) => m,
            // A service without the counters: count the table instead.
            None => (count(db, &format!("SELECT COUNT(*) AS n FROM events WHERE source = '{source}'")).await?, 0),
        };
        let delivered = eam.orders.lock().unwrap_or_else(|e| e.into_inner()).len() as i64;
        let confirmed = stats.acked.load(Ordering::Relaxed);
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            println!(
                "  t={:>5.1}s published {confirmed:>7}  decided {decided:>7}  orders {created:>6}  in EAM {delivered:>6}",
                started.elapsed().as_secs_f64(),
            );
        }
        if (decided, delivered) != (last_change.1, last_change.2) {
            last_change = (Instant::now(), decided, delivered);
        } else if last_change.0.elapsed() > Duration::from_secs(60) && published_in.is_some() {
            let (pending, failed) = outbox_state(db).await?;
            println!("  no progress for 60 s (outbox: {pending} pending, {failed} failed)");
            last_change.0 = Instant::now();
        }
        // Every event decided (its outbox row committed with it): done when
        // the outbox has nothing left to deliver.
        if published_in.is_some() && decided >= n {
            let (pending, failed) = outbox_state(db).await?;
            if pending == 0 {
                if failed > 0 {
                    println!("  {failed} deliveries failed for good");
                }
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(args.timeout_secs) {
            println!("TIMEOUT after {} s", args.timeout_secs);
            timed_out = true;
            break;
        }
    }
    let elapsed = started.elapsed();
    let cpu_after = CpuSnapshot::take(&run.replicas);
    let rss_kib = run.replicas.0.iter().map(|r| peak_rss_kib(r.child.id()).unwrap_or(0)).collect();
    if let Some(p) = publisher.take() {
        // Timed out while publishing: no figure would mean anything.
        p.abort();
        return Ok(None);
    }
    Ok(Some(Load {
        sent_at,
        published_in: published_in.unwrap_or(elapsed),
        elapsed,
        timed_out,
        cpu_before,
        cpu_after,
        rss_kib,
    }))
}

/// CPU and memory of the replicas and their neighbours during the load,
/// what the logs and PostgreSQL say about it, and the dead letters (which
/// fail the run). Returns the replicas' CPU seconds and whether all is well.
async fn print_resources(run: &Run, db: &DatabaseConnection, load: &Load) -> (f64, bool) {
    let (before, after, elapsed) = (&load.cpu_before, &load.cpu_after, load.elapsed);
    let ticks = clock_ticks_per_second();
    let mut ok = true;
    println!("\nresources during the load ({:.1} s):", elapsed.as_secs_f64());
    let mut cpu_total = 0.0;
    for (k, r) in run.replicas.0.iter().enumerate() {
        let cpu = after.replicas[k].saturating_sub(before.replicas[k]) as f64 / ticks;
        cpu_total += cpu;
        println!(
            "  replica {} (pid {}): CPU {cpu:.1} s ({:.0} % of one core), peak RSS {:.0} MB",
            k + 1,
            r.child.id(),
            100.0 * cpu / elapsed.as_secs_f64(),
            load.rss_kib[k] as f64 / 1024.0
        );
    }
    println!("  loadgen itself: CPU {:.1} s (publisher, EAM, polling)", (after.own - before.own) as f64 / ticks);
    for (label, secs) in before.neighbours_since(after, ticks) {
        println!("  {label}: CPU {secs:.1} s");
    }
    let (busy, total) = (after.host.0 - before.host.0, after.host.1 - before.host.1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("  host: {:.0} % busy over {cores} core(s)", 100.0 * busy as f64 / total.max(1) as f64);
    let warnings = warnings(&run.replicas);
    println!("  service logs: {} WARN/ERROR line(s)", warnings.iter().map(|w| w.1).sum::<usize>());
    for (message, n, first) in warnings.iter().take(5) {
        println!("    {n:>6} × {message}");
        println!("             first: {}", first.chars().take(400).collect::<String>());
    }
    if run.args.db == Backend::Postgres {
        // The run's own database: its counters cover this run only.
        let sql = "SELECT deadlocks AS d, xact_rollback AS r FROM pg_stat_database WHERE datname = current_database()";
        if let Ok(Some(row)) = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await {
            let (d, r): (i64, i64) = (row.try_get("", "d").unwrap_or(-1), row.try_get("", "r").unwrap_or(-1));
            println!("  PostgreSQL: {d} deadlock(s), {r} rolled-back transaction(s) in the run's database");
        }
        // Sequential scans that read many rows point at a missing index.
        let sql = "SELECT relname AS t, seq_scan AS s, seq_tup_read AS r FROM pg_stat_user_tables \
                   WHERE seq_tup_read > 0 ORDER BY seq_tup_read DESC LIMIT 4";
        if let Ok(scans) = rows(db, sql).await {
            let text: Vec<String> = scans
                .iter()
                .filter_map(|row| {
                    let (t, s, r): (String, i64, i64) =
                        (row.try_get("", "t").ok()?, row.try_get("", "s").ok()?, row.try_get("", "r").ok()?);
                    Some(format!("{t} {s} scans / {r} rows"))
                })
                .collect();
            println!(
                "  PostgreSQL sequential scans: {}",
                if text.is_empty() { "none".into() } else { text.join(", ") }
            );
        }
    }
    let dead = dead_lettered(run.amqp.as_ref(), &Names::new(&run.run_id)).await;
    println!("  dead-lettered messages: {}", dead.map_or("?".into(), |d| d.to_string()));
    if dead.unwrap_or(0) > 0 {
        ok = false;
    }
    (cpu_total, ok)
}

fn pids(r: &Replicas) -> Vec<String> {
    r.0.iter().map(|r| r.child.id().to_string()).collect()
}

/// WARN and ERROR lines of the replicas' logs, grouped by their message
/// (the text before the first field), most frequent first, each with its
/// first line in full.
fn warnings(r: &Replicas) -> Vec<(String, usize, String)> {
    let mut by_message: HashMap<String, (usize, String)> = HashMap::new();
    for r in &r.0 {
        for line in std::fs::read_to_string(&r.log).unwrap_or_default().lines() {
            let line = strip_ansi(line);
            let Some(at) = line.find(" WARN ").or_else(|| line.find(" ERROR ")) else {
                continue;
            };
            let rest = line[at..].trim();
            // Up to the first `field=value`.
            let message = match rest.split_once('=') {
                Some((head, _)) => head.rsplit_once(' ').map_or(head, |(m, _)| m),
                None => rest,
            };
            let entry = by_message.entry(message.trim().chars().take(140).collect()).or_insert((0, line.clone()));
            entry.0 += 1;
        }
    }
    let mut out: Vec<_> = by_message.into_iter().map(|(m, (n, first))| (m, n, first)).collect();
    out.sort_by_key(|w| std::cmp::Reverse(w.1));
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn dead_lettered(conn: Option<&Connection>, names: &Names) -> Option<u32> {
    let ch = conn?.create_channel().await.ok()?;
    let q = ch
        .queue_declare(
            names.dead_queue.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .ok()?;
    let _ = ch.close(200, "done".into()).await;
    Some(q.message_count())
}

struct Report<'a> {
    args: &'a Args,
    source: &'a str,
    db: &'a DatabaseConnection,
    eam: &'a Eam,
    sent_at: &'a [i64],
    plan: &'a [Planned],
    expected: &'a HashMap<Expect, i64>,
    stats: &'a PublishStats,
    published_in: Duration,
}

/// The figures, joined from the tool's publish times, the service's tables
/// and the EAM's receive times.
struct Figures {
    decision: Option<Dist>,
    to_eam: Option<Dist>,
    events_per_s: f64,
    orders_per_s: f64,
}

impl Report<'_> {
    async fn figures(&self) -> Res<(Figures, bool)> {
        let mut ok = true;
        let n = self.plan.len();
        let events = rows(
            self.db,
            &format!("SELECT ce_id, received_at, outcome, work_order_id FROM events WHERE source = '{}'", self.source),
        )
        .await?;
        let mut seen = vec![0u32; n];
        let mut decision = Vec::with_capacity(n);
        let mut last_decision = i64::MIN;
        let mut outcomes: HashMap<String, i64> = HashMap::new();
        let mut created_by_order: HashMap<String, String> = HashMap::new();
        let mut foreign = 0;
        for row in &events {
            let ce_id: String = row.try_get("", "ce_id")?;
            let Some(i) = event_index(&ce_id).filter(|&i| i < n) else {
                foreign += 1;
                continue;
            };
            seen[i] += 1;
            let at = timestamp_us(row, "received_at")?;
            last_decision = last_decision.max(at);
            decision.push(at - self.sent_at[i]);
            let outcome: String = row.try_get("", "outcome")?;
            if outcome == "created" {
                let order: Option<String> = row.try_get("", "work_order_id")?;
                created_by_order.insert(order.unwrap_or_default(), ce_id);
            }
            *outcomes.entry(outcome).or_default() += 1;
        }

        println!("\noutcomes (stored by the service; planned in brackets):");
        for e in Expect::ALL {
            let got = outcomes.remove(e.as_str()).unwrap_or(0);
            let want = self.expected.get(&e).copied().unwrap_or(0);
            println!(
                "  {:<11} {got:>8}  {:>5.1} %  [{want}]{}",
                e.as_str(),
                100.0 * got as f64 / n as f64,
                if got == want { "" } else { "  MISMATCH" }
            );
            ok &= got == want;
        }
        for (outcome, got) in &outcomes {
            println!("  {outcome:<11} {got:>8}  unexpected");
            ok = false;
        }

        // Orders: every one delivered once, under one external id.
        let orders = rows(self.db, "SELECT id, external_id, status FROM work_orders").await?;
        let received = self.eam.orders.lock().unwrap_or_else(|p| p.into_inner());
        let mut external_ids = HashSet::new();
        let (mut with_external, mut not_delivered, mut mismatched) = (0usize, 0usize, 0usize);
        for row in &orders {
            let id: String = row.try_get("", "id")?;
            let external: Option<String> = row.try_get("", "external_id")?;
            match external {
                Some(x) => {
                    with_external += 1;
                    external_ids.insert(x);
                }
                None => not_delivered += 1,
            }
            // The EAM's first event must be the event that opened the order.
            let got = received.get(&id).map(|r| r.first_event.as_str());
            if got != created_by_order.get(&id).map(String::as_str) {
                mismatched += 1;
            }
        }
        let mut to_eam = Vec::with_capacity(received.len());
        let mut last_eam = i64::MIN;
        for r in received.values() {
            last_eam = last_eam.max(r.at_us);
            if let Some(i) = event_index(&r.first_event).filter(|&i| i < n) {
                to_eam.push(r.at_us - self.sent_at[i]);
            }
        }
        let first = self.sent_at.iter().copied().min().unwrap_or(0);
        let span = |last: i64| (last - first).max(1) as f64 / 1e6;
        let figures = Figures {
            decision: dist(decision),
            to_eam: dist(to_eam),
            events_per_s: n as f64 / span(last_decision),
            orders_per_s: received.len() as f64 / span(last_eam),
        };

        println!("\nchecks:");
        let missing = seen.iter().filter(|&&c| c == 0).count();
        let doubled = seen.iter().filter(|&&c| c > 1).count();
        let mut check = |good: bool, text: String| {
            println!("  [{}] {text}", if good { "ok" } else { "FAIL" });
            ok &= good;
        };
        let (acked, nacked, returned) = (
            self.stats.acked.load(Ordering::Relaxed),
            self.stats.nacked.load(Ordering::Relaxed),
            self.stats.returned.load(Ordering::Relaxed),
        );
        check(
            acked == n && nacked == 0 && returned == 0,
            format!("published {n}: {acked} confirmed, {nacked} nacked, {returned} unroutable"),
        );
        check(
            missing == 0 && doubled == 0 && foreign == 0,
            format!(
                "each event stored exactly once: {} rows, {missing} missing, {doubled} stored twice, {foreign} unknown",
                events.len()
            ),
        );
        let posts = self.eam.posts.load(Ordering::Relaxed);
        let replays = self.eam.replays.load(Ordering::Relaxed);
        check(
            received.len() == external_ids.len() && with_external == external_ids.len(),
            format!(
                "no duplicate in the EAM: {} created there, {} orders with an external id, {} distinct external ids \
                 ({posts} POSTs, {replays} repeated an Idempotency-Key)",
                received.len(),
                with_external,
                external_ids.len()
            ),
        );
        check(
            not_delivered == 0 && orders.len() == received.len(),
            format!("every order delivered: {} orders, {not_delivered} without an external id", orders.len()),
        );
        check(mismatched == 0, format!("EAM body names the order's first event: {mismatched} mismatch(es)"));
        Ok((figures, ok))
    }

    async fn print(&self) -> Res<(Figures, bool)> {
        let (f, ok) = self.figures().await?;
        let n = self.plan.len();
        println!("\nthroughput:");
        println!(
            "  published   {:>9.0} ev/s  ({n} in {:.1} s, confirms pipelined)",
            n as f64 / self.published_in.as_secs_f64(),
            self.published_in.as_secs_f64()
        );
        println!("  decided     {:>9.0} ev/s  (first publish to last decision)", f.events_per_s);
        println!("  delivered   {:>9.0} orders/s  (first publish to last order in the EAM)", f.orders_per_s);
        if self.args.rate > 0.0 && f.events_per_s < 0.95 * self.args.rate {
            println!("  the service fell behind the offered {} ev/s: latency below is mostly queueing", self.args.rate);
        }
        println!("latency p50 / p90 / p99 / max:");
        println!("  publish → decision        {}", fmt_dist(&f.decision));
        println!("  publish → order in EAM    {}", fmt_dist(&f.to_eam));
        Ok((f, ok))
    }

    fn table_row(&self, f: &Figures, cpu: f64, peak_rss_kib: &[u64]) {
        let achieved = self.plan.len() as f64 / self.published_in.as_secs_f64();
        let rate = match self.args.rate {
            r if r <= 0.0 => "max".to_owned(),
            r if achieved < 0.95 * r => format!("{r} ev/s ({achieved:.0} achieved)"),
            r => format!("{r} ev/s"),
        };
        println!("\nREADME row:");
        println!(
            "| database | replicas | events | offered | decided | delivered | publish → decision p50/p90/p99/max \
             | publish → EAM p50/p90/p99/max | CPU s | peak RSS |"
        );
        println!(
            "| {} | {} | {} | {rate} | {:.0} ev/s | {:.0} orders/s | {} | {} | {cpu:.1} | {} MB |",
            self.args.db.name(),
            self.args.replicas,
            self.plan.len(),
            f.events_per_s,
            f.orders_per_s,
            fmt_dist(&f.decision),
            fmt_dist(&f.to_eam),
            peak_rss_kib.iter().map(|k| format!("{:.0}", *k as f64 / 1024.0)).collect::<Vec<_>>().join(" + ")
        );
    }
}
