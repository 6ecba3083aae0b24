//! How long one replica takes to poll the status of every open order of one
//! connector: N delivered Maximo orders (spread over two sites, so queries
//! carry `siteid`), a simulated Maximo (`tests/testkit/maximo_sim.rs`) that
//! answers every request after a delay, and one polling round of the real
//! poller. Some orders changed status in the EAM, so the round writes too.
//!
//! ```text
//! export CARGO_TARGET_DIR=$HOME/.cache/workbridge-target
//! cargo run --release --example poll_scale -- --orders 10000 --eam-delay-ms 50
//! cargo run --release --example poll_scale -- --db postgres --orders 10000 --eam-delay-ms 50
//! ```
//!
//! It prints the orders polled, the queries sent, the status changes
//! applied and the time the round took; exit status 1 when an order was not
//! polled or a change was lost.

#[path = "../tests/testkit/mod.rs"]
#[allow(dead_code)]
mod testkit;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use testkit::maximo_sim::MaximoSim;
use workbridge::app::Application;
use workbridge::clock::SystemClock;
use workbridge::config::Settings;
use workbridge::domain::{ExternalId, WorkOrderId};
use workbridge::store::work_orders::{self, Delivered, NewOrder};

#[derive(Parser)]
struct Args {
    /// Open, delivered orders on the one connector.
    #[arg(long, default_value_t = 10_000)]
    orders: usize,
    /// How long the simulated EAM takes to answer each request.
    #[arg(long, default_value_t = 50)]
    eam_delay_ms: u64,
    /// Orders per status query (`sync.batch_size` and Maximo's `page_size`).
    #[arg(long, default_value_t = 100)]
    batch: u32,
    /// Orders whose status changed in the EAM, one in `changed_every`.
    #[arg(long, default_value_t = 10)]
    changed_every: usize,
    /// `sqlite` (a temporary file) or `postgres` (a fresh database).
    #[arg(long, default_value = "sqlite")]
    db: String,
}

const KEY: &str = "wb_poll_scale_admin_key_0123456789";
const SITES: [&str; 2] = ["BEDFORD", "NASHUA"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (db_url, pg) = match args.db.as_str() {
        "postgres" => {
            let admin = std::env::var("WORKBRIDGE_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("wb_poll_scale_{}", std::process::id());
            let url = testkit::create_pg_database(&admin, &name).await.expect("a PostgreSQL database");
            (url, Some((admin, name)))
        }
        _ => (format!("sqlite://{}?mode=rwc", dir.path().join("wb.db").display()), None),
    };
    let (server, sim) = MaximoSim::start(1000, Duration::from_millis(args.eam_delay_ms)).await;
    let env: Vec<(String, String)> = [
        ("WORKBRIDGE_HTTP_ADDR", "127.0.0.1:0".to_owned()),
        ("WORKBRIDGE_ADMIN_KEY", KEY.to_owned()),
        ("WORKBRIDGE_DATABASE_URL", db_url),
        ("WORKBRIDGE_AMQP__ENABLED", "false".to_owned()),
        ("WORKBRIDGE_OUTBOX__WORKERS", "0".to_owned()),
        // No loop beside the measured round.
        ("WORKBRIDGE_SYNC__POLL_INTERVAL_MS", "0".to_owned()),
        ("WORKBRIDGE_SYNC__BATCH_SIZE", args.batch.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::load_from(None, env).expect("valid settings");
    let app = Application::build_with_clock(settings, Arc::new(SystemClock)).await.expect("the service starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let poller = app.poller();
    let handle = app.server_handle();
    let running = tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::new();
    let connector = json!({"name": "maximo", "config": {
        "kind": "maximo", "base_url": server.uri(), "api_key": "poll-scale-key", "timeout_ms": 10000,
        "page_size": args.batch
    }});
    let r = client.post(format!("{base}/v1/connectors")).bearer_auth(KEY).json(&connector).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());

    // The orders, as the dispatcher leaves them once Maximo created them.
    let now = chrono::Utc::now();
    let seeding = Instant::now();
    let mut expected_changes = 0;
    for chunk in (0..args.orders).collect::<Vec<_>>().chunks(500) {
        let mut new: Vec<NewOrder> = Vec::new();
        let mut delivered = Vec::new();
        for &i in chunk {
            let site = SITES[i % SITES.len()];
            let changed = i % args.changed_every.max(1) == 0;
            expected_changes += usize::from(changed);
            let status = if changed { "INPRG" } else { "WAPPR" };
            let wo = sim.insert(site, status, "2026-11-24T12:00:00-05:00");
            let id = uuid::Uuid::now_v7().to_string();
            new.push(NewOrder {
                id: id.clone(),
                connector: "maximo".into(),
                rule_id: "poll-scale".into(),
                rule_version: 1,
                dedup_key: format!("poll-scale:{i}"),
                asset_id: None,
                site: Some(site.into()),
                title: format!("order {i}"),
                description: String::new(),
                work_type: "corrective".into(),
                priority: 3,
                event_time: now,
                due_by: None,
                trace: json!({}),
                review: None,
            });
            delivered.push(Delivered {
                order_id: WorkOrderId::new(id),
                external_id: ExternalId::new(wo.wonum.clone()),
                external_url: None,
                external_site: Some(site.into()),
                external_status: Some("WAPPR".into()),
                source: "connector:maximo".into(),
            });
        }
        work_orders::insert_open_many(store.conn(), &mut new, now).await.expect("orders stored");
        work_orders::mark_delivered_many(store.conn(), &delivered, now).await.expect("orders delivered");
    }
    println!("seeded {} orders in {:.1} s", args.orders, seeding.elapsed().as_secs_f64());

    let started = Instant::now();
    let round = poller.poll_round().await.expect("a polling round");
    let took = started.elapsed();
    println!(
        "one round: {} orders polled in {} queries, {} status changes, {} missing, in {:.2} s \
         ({:.0} orders/s; EAM delay {} ms, {} orders per query, {})",
        round.polled,
        round.queries,
        round.changed,
        round.missing,
        took.as_secs_f64(),
        round.polled as f64 / took.as_secs_f64(),
        args.eam_delay_ms,
        args.batch,
        args.db,
    );
    handle.stop(true).await;
    let _ = running.await;
    if let Some((admin, name)) = pg {
        let _ = testkit::drop_pg_database(&admin, &name).await;
    }
    if round.polled != args.orders || round.changed != expected_changes {
        eprintln!("expected {} polled and {expected_changes} changes", args.orders);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
