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

mod args;
mod db;
mod eam;
mod plan;
mod publish;
mod report;
mod resources;
mod service;
mod setup;
// The process and database helpers, shared with the fault tests.
#[path = "../../tests/testkit/mod.rs"]
mod testkit;

use std::collections::HashMap;
use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix_web::web;
use chrono::{DateTime, Utc};
use clap::Parser;
use lapin::options::{ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

use args::{Args, Backend};
use db::{decided_by_metrics, outbox_state};
use eam::{Eam, start_eam};
use plan::{Expect, Planned, plan, registry};
use publish::{PublishStats, publish};
use report::Report;
use resources::{CpuSnapshot, peak_rss_kib, print_resources};
use service::{Replicas, ServiceConfig, default_bin, names, pids, spawn_replica, wait_ready};
use setup::{Api, set_up};
use testkit::{count, create_pg_database, drop_pg_database};

type BoxError = Box<dyn Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

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
        let names = names(&run.run_id);
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
    let names = names(&run.run_id);
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
        names(&run.run_id).exchange,
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
