//! Two replicas on one database and one queue.

use std::time::Duration;

use tokio::time::Instant;

use crate::accounting::{assert_no_problems, audit, cleanup_broker, wait_settled};
use crate::harness::{
    Load, PgDatabase, Publisher, Service, ServiceConfig, WorkDir, ensure_infrastructure, metric_sum, serial, wait_for,
};
use crate::helpers::AmqpNames;
use crate::servicenow_sim::{Mode, ServiceNowSim};

/// Two processes consume the same queue and deliver from the same outbox
/// (PostgreSQL). Consecutive events share a dedup key and every fifth event
/// is published twice in a row, so the replicas race on opening the same
/// order and on storing the same event. One order per key, each event once,
/// each order once in the EAM; and both replicas did take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_race_on_the_same_keys_and_events_without_duplicates() {
    let _serial = serial().await;
    ensure_infrastructure();
    let started = Instant::now();
    let dir = WorkDir::new();
    let pg = PgDatabase::create().await;
    let names = AmqpNames::new();
    let (eam, server) = ServiceNowSim::start(Mode::Normal { delay: Duration::from_millis(20) }).await;
    let cfg = ServiceConfig { db_url: &pg.url, names: &names, logs: dir.path(), env: vec![] };
    let mut a = Service::spawn("replica-a", &cfg);
    a.wait_ready(Duration::from_secs(30)).await;
    a.setup_flow(&ServiceNowSim::connector(&server.uri(), 5000)).await;
    let mut b = Service::spawn("replica-b", &cfg);
    b.wait_ready(Duration::from_secs(30)).await;

    let load = Load::new("race", 2000, 5);
    let publisher = Publisher::new(&names).run(load.events.clone(), 0, Duration::from_secs(60)).await;
    wait_settled(&pg.url, &load, Duration::from_secs(90)).await;
    let problems = audit(&pg.url, &load, &eam, &names).await;
    assert_no_problems(&problems, &[&a, &b]);

    // Both consumed: the race did happen.
    let decided_by = |text: String| metric_sum(&text, "workbridge_events_received_total", "");
    let (by_a, by_b) = (decided_by(a.metrics().await), decided_by(b.metrics().await));
    assert!(by_a > 0.0 && by_b > 0.0, "both replicas stored events: {by_a} and {by_b}");
    assert_eq!(by_a + by_b, load.ids.len() as f64, "each event stored by one replica only");
    eprintln!(
        "{} events ({} republished; {by_a} stored by a, {by_b} by b) settled in {:.1} s",
        load.events.len(),
        publisher.republished.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    drop((a, b));
    cleanup_broker(&names).await;
}

/// Two replicas and a slow EAM: a batch of claimed deliveries takes longer
/// to work through than the claim's lease (here 32 creates of 150 ms against
/// a 1 s lease; in production 32 creates of 2 s against the default 60 s).
/// The other replica may then claim the rest of the batch, but an order must
/// still be created in the EAM once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_a_slow_eam_create_each_order_once() {
    let _serial = serial().await;
    ensure_infrastructure();
    let started = Instant::now();
    let dir = WorkDir::new();
    let pg = PgDatabase::create().await;
    let names = AmqpNames::new();
    let (eam, server) = ServiceNowSim::start(Mode::Normal { delay: Duration::from_millis(150) }).await;
    let env = vec![("WORKBRIDGE_OUTBOX__LEASE_MS", "1000".to_owned())];
    let cfg = ServiceConfig { db_url: &pg.url, names: &names, logs: dir.path(), env };
    let mut a = Service::spawn("replica-a", &cfg);
    a.wait_ready(Duration::from_secs(30)).await;
    a.setup_flow(&ServiceNowSim::connector(&server.uri(), 5000)).await;
    let mut b = Service::spawn("replica-b", &cfg);
    b.wait_ready(Duration::from_secs(30)).await;

    let load = Load::new("slow", 500, 0);
    Publisher::new(&names).run(load.events.clone(), 0, Duration::from_secs(30)).await;
    wait_settled(&pg.url, &load, Duration::from_secs(60)).await;
    let problems = audit(&pg.url, &load, &eam, &names).await;
    assert_no_problems(&problems, &[&a, &b]);
    eprintln!("{} events settled in {:.1} s", load.events.len(), started.elapsed().as_secs_f64());
    drop((a, b));
    cleanup_broker(&names).await;
}

/// SQLite serves one replica. A second process started on the same file
/// must refuse to start, with an error that says why, and leave the first
/// one running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_on_the_same_sqlite_file_is_refused_with_a_clear_error() {
    let _serial = serial().await;
    ensure_infrastructure();
    let dir = WorkDir::new();
    let db = dir.sqlite_url();
    let names = AmqpNames::new();
    let cfg = ServiceConfig { db_url: &db, names: &names, logs: dir.path(), env: vec![] };
    let mut first = Service::spawn("first", &cfg);
    first.wait_ready(Duration::from_secs(30)).await;

    let mut second = Service::spawn("second", &cfg);
    let refused = wait_for(Duration::from_secs(10), async || second.exited().is_some()).await;
    let log = second.log_text();
    assert!(
        refused,
        "a second replica on the same SQLite file is still running after 10 s; it should refuse to start:\n{log}"
    );
    let status = second.exited().expect("exited");
    assert!(!status.success(), "the refusal is an error exit: {status}\n{log}");
    let text = log.to_lowercase();
    assert!(
        text.contains("sqlite") && ["replica", "another", "in use"].iter().any(|w| text.contains(w)),
        "the error names SQLite and the other replica:\n{log}"
    );
    assert!(matches!(first.get("/readyz").await, Some((200, _))), "the first replica still serves");
    drop(first);
    cleanup_broker(&names).await;
}
