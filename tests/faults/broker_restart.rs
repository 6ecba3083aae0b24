//! RabbitMQ goes away under load (`rabbitmqctl stop_app`) and comes back.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::accounting::{assert_no_problems, audit, cleanup_broker, wait_settled};
use crate::harness::{
    Load, Publisher, RabbitOutage, Service, ServiceConfig, WorkDir, ensure_infrastructure, serial, wait_for,
};
use crate::helpers::AmqpNames;
use crate::servicenow_sim::{Mode, ServiceNowSim};

/// The broker's application stops while events are published and consumed.
/// `/readyz` reports the broker down (503, `broker.ok: false`, a reason)
/// meanwhile; the publisher and the consumer reconnect once it is back, and
/// every event is stored once, every order created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_stopped_and_started_under_load_loses_nothing_and_doubles_nothing() {
    let _serial = serial().await;
    ensure_infrastructure();
    let started = Instant::now();
    let dir = WorkDir::new();
    let db = dir.sqlite_url();
    let names = AmqpNames::new();
    let (eam, server) = ServiceNowSim::start(Mode::Normal { delay: Duration::from_millis(20) }).await;
    let cfg = ServiceConfig { db_url: &db, names: &names, logs: dir.path(), env: vec![] };
    let mut svc = Service::spawn("service", &cfg);
    svc.wait_ready(Duration::from_secs(30)).await;
    svc.setup_flow(&ServiceNowSim::connector(&server.uri(), 5000)).await;

    let load = Load::new("broker", 2000, 20);
    let publisher = Publisher::new(&names);
    let published = publisher.published.clone();
    let publishing = tokio::spawn(publisher.run(load.events.clone(), 250, Duration::from_secs(90)));
    let under_load = wait_for(Duration::from_secs(20), async || published.load(Ordering::Relaxed) >= 500).await;
    assert!(under_load, "500 events published within 20 s");

    let outage = RabbitOutage::begin().await;
    let at_stop = published.load(Ordering::Relaxed);
    let mut seen: Option<(u16, Value)> = None;
    let reported = wait_for(Duration::from_secs(20), async || {
        seen = svc.get("/readyz").await;
        matches!(&seen, Some((503, body)) if body["broker"]["ok"] == false)
    })
    .await;
    assert!(reported, "/readyz reports the broker down while it is stopped; last answer: {seen:?}");
    let (_, body) = seen.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["database"]["ok"], true, "{body}");
    assert!(body["broker"]["error"].as_str().is_some_and(|e| !e.is_empty()), "a reason is given: {body}");
    let during = published.load(Ordering::Relaxed);
    outage.end().await;
    eprintln!("broker stopped after {at_stop} events published ({during} when /readyz had reported it)");

    let back = wait_for(
        Duration::from_secs(30),
        async || matches!(svc.get("/readyz").await, Some((200, body)) if body["broker"]["ok"] == true),
    )
    .await;
    assert!(back, "the consumer reconnects within 30 s of the broker's return:\n{}", svc.log_tail(30));
    let publisher = publishing.await.unwrap();
    assert!(
        publisher.republished.load(Ordering::Relaxed) > 0,
        "the publisher lost its connection too (and published again)"
    );
    wait_settled(&db, &load, Duration::from_secs(60)).await;
    let problems = audit(&db, &load, &eam, &names).await;
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
