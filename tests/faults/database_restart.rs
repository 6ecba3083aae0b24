//! PostgreSQL goes away under load and comes back.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::accounting::{assert_no_problems, audit, cleanup_broker, progress, wait_settled};
use crate::harness::{
    Load, PgDatabase, PostgresOutage, Publisher, Service, ServiceConfig, WorkDir, ensure_infrastructure, queue_counts,
    serial, wait_for,
};
use crate::helpers::AmqpNames;
use crate::servicenow_sim::{Mode, ServiceNowSim};

/// PostgreSQL is stopped (fast: sessions are cut, open transactions roll
/// back) while events are consumed and a create is in flight in the EAM,
/// and started again. Meanwhile `/readyz` reports the database down and the
/// consumer holds its deliveries unacknowledged; afterwards every event is
/// stored once with all its effects, and every order is in the EAM once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_nothing_and_half_writes_nothing() {
    let _serial = serial().await;
    ensure_infrastructure();
    let started = Instant::now();
    let dir = WorkDir::new();
    let pg = PgDatabase::create().await;
    let names = AmqpNames::new();
    let (eam, server) = ServiceNowSim::start(Mode::Normal { delay: Duration::from_millis(100) }).await;
    // One delivery at a time: the few orders of this load would otherwise all
    // reach the EAM before the fault, and the fault must meet a create in flight.
    let env =
        vec![("WORKBRIDGE_OUTBOX__LEASE_MS", "3000".to_owned()), ("WORKBRIDGE_OUTBOX__CONCURRENCY", "1".to_owned())];
    let cfg = ServiceConfig { db_url: &pg.url, names: &names, logs: dir.path(), env };
    let mut svc = Service::spawn("service", &cfg);
    svc.wait_ready(Duration::from_secs(30)).await;
    svc.setup_flow(&ServiceNowSim::connector(&server.uri(), 5000)).await;

    let load = Load::new("pg", 2000, 20);
    let publisher = Publisher::new(&names);
    let published = publisher.published.clone();
    let publishing = tokio::spawn(publisher.run(load.events.clone(), 300, Duration::from_secs(90)));
    let under_load = wait_for(Duration::from_secs(30), async || {
        eam.create_in_flight(Duration::from_millis(40)) && progress(&pg.url).await.is_some_and(|p| p.events >= 300)
    })
    .await;
    assert!(under_load, "300 events stored and a create in flight within 30 s");

    let outage = PostgresOutage::begin().await;
    let at_stop = published.load(Ordering::Relaxed);
    let mut seen: Option<(u16, Value)> = None;
    let reported = wait_for(Duration::from_secs(30), async || {
        seen = svc.get("/readyz").await;
        matches!(&seen, Some((503, body)) if body["database"]["ok"] == false)
    })
    .await;
    assert!(reported, "/readyz reports the database down while it is stopped; last answer: {seen:?}");
    // What the consumer could not commit stays unacknowledged in the broker
    // (the broker's queue counters lag by a few seconds, so wait for them).
    let mut counts = (0, 0);
    let holding = wait_for(Duration::from_secs(20), async || {
        counts = queue_counts(&names.queue).await.expect("the queue is listed");
        counts.1 > 0
    })
    .await;
    let (ready, unacked) = counts;
    assert!(holding, "the consumer holds unacknowledged deliveries while the database is down ({ready} ready)");
    outage.end().await;
    eprintln!("PostgreSQL stopped after {at_stop} events published; {unacked} unacknowledged, {ready} ready meanwhile");

    svc.wait_ready(Duration::from_secs(30)).await;
    let publisher = publishing.await.unwrap();
    wait_settled(&pg.url, &load, Duration::from_secs(60)).await;
    let problems = audit(&pg.url, &load, &eam, &names).await;
    assert_no_problems(&problems, &[&svc]);
    eprintln!(
        "{} events ({} republished) settled in {:.1} s",
        load.events.len(),
        publisher.republished.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    drop(svc);
    cleanup_broker(&names).await;
}
