//! SIGKILL in the middle of consuming and delivering, then a restart on the
//! same (SQLite) database and queue.

use std::time::Duration;

use tokio::time::Instant;

use crate::accounting::{assert_no_problems, audit, cleanup_broker, order_status, progress, wait_settled};
use crate::harness::{Load, Publisher, Service, ServiceConfig, WorkDir, ensure_infrastructure, serial, wait_for};
use crate::helpers::AmqpNames;
use crate::servicenow_sim::{Mode, ServiceNowSim};

/// The service is killed while events are being consumed and while a create
/// has reached the EAM but not been answered (the EAM holds every answer for
/// 150 ms). After the restart every event is stored once, and the order
/// whose create was cut off is not created a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_then_restart_stores_every_event_once_and_creates_every_order_once() {
    let _serial = serial().await;
    ensure_infrastructure();
    let started = Instant::now();
    let dir = WorkDir::new();
    let db = dir.sqlite_url();
    let names = AmqpNames::new();
    let (eam, server) = ServiceNowSim::start(Mode::Normal { delay: Duration::from_millis(150) }).await;
    // A short lease, so that the deliveries the killed process had claimed
    // come due again soon after the restart.
    // One delivery at a time: the few orders of this load would otherwise all
    // reach the EAM before the fault, and the fault must meet a create in flight.
    let env =
        vec![("WORKBRIDGE_OUTBOX__LEASE_MS", "3000".to_owned()), ("WORKBRIDGE_OUTBOX__CONCURRENCY", "1".to_owned())];
    let cfg = ServiceConfig { db_url: &db, names: &names, logs: dir.path(), env };
    let mut first = Service::spawn("first", &cfg);
    first.wait_ready(Duration::from_secs(30)).await;
    first.setup_flow(&ServiceNowSim::connector(&server.uri(), 5000)).await;

    let load = Load::new("kill", 1500, 20);
    let publishing = tokio::spawn(Publisher::new(&names).run(load.events.clone(), 0, Duration::from_secs(60)));
    let in_flight = wait_for(Duration::from_secs(30), async || {
        eam.create_in_flight(Duration::from_millis(60)) && progress(&db).await.is_some_and(|p| p.events >= 300)
    })
    .await;
    first.sigkill();
    assert!(in_flight, "300 events stored and a create in flight within 30 s:\n{}", first.log_tail(30));
    let stored = progress(&db).await.expect("the database file is readable").events;
    assert!(stored < load.ids.len() as i64, "the load was still being consumed when the service was killed");
    // The create that was cut off is in the EAM, and its order is still pending.
    let cut_off = eam.incidents().last().expect("an incident").correlation_id.clone();
    let status = order_status(&db, &cut_off).await;
    assert_eq!(status.as_deref(), Some("pending"), "the killed service never learnt the outcome of {cut_off}");
    let incidents_at_kill = eam.incidents().len();
    eprintln!("killed after {stored} events and {incidents_at_kill} incidents; {cut_off} was cut off");

    let mut second = Service::spawn("second", &cfg);
    second.wait_ready(Duration::from_secs(30)).await;
    let publisher = publishing.await.unwrap();
    wait_settled(&db, &load, Duration::from_secs(60)).await;
    let problems = audit(&db, &load, &eam, &names).await;
    assert_no_problems(&problems, &[&first, &second]);
    eprintln!(
        "{} events ({} republished) settled in {:.1} s",
        load.events.len(),
        publisher.republished.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    drop(second);
    cleanup_broker(&names).await;
}
