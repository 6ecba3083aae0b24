//! The EAM is down, then answers too late after storing, then recovers.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::accounting::{assert_no_problems, audit, cleanup_broker, wait_settled};
use crate::harness::{
    Load, Publisher, Service, ServiceConfig, WorkDir, ensure_infrastructure, free_port, metric_sum, serial, wait_for,
};
use crate::helpers::AmqpNames;
use crate::servicenow_sim::{Mode, ServiceNowSim};

const CONNECTOR_TIMEOUT_MS: u64 = 400;

/// ServiceNow (which does not deduplicate creates itself) is
/// 1. not there (connection refused): the circuit opens;
/// 2. up but answering 503;
/// 3. storing each incident and answering after the connector's timeout:
///    the outcome is unknown to workbridge, and the retry finds the incident
///    by its `correlation_id` instead of creating it again;
/// 4. healthy: every order is delivered and the circuit closes.
///
/// Then every order is in ServiceNow exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eam_refuses_then_times_out_after_storing_then_recovers_without_a_duplicate() {
    let _serial = serial().await;
    ensure_infrastructure();
    let started = Instant::now();
    let dir = WorkDir::new();
    let db = dir.sqlite_url();
    let names = AmqpNames::new();
    let port = free_port();
    let eam = ServiceNowSim::new(Mode::Unavailable);
    let env = vec![
        ("WORKBRIDGE_OUTBOX__BREAKER_FAILURES", "3".to_owned()),
        ("WORKBRIDGE_OUTBOX__BREAKER_OPEN_MS", "1000".to_owned()),
    ];
    let cfg = ServiceConfig { db_url: &db, names: &names, logs: dir.path(), env };
    let mut svc = Service::spawn("service", &cfg);
    svc.wait_ready(Duration::from_secs(30)).await;
    svc.setup_flow(&ServiceNowSim::connector(&format!("http://127.0.0.1:{port}"), CONNECTOR_TIMEOUT_MS)).await;
    let load = Load::new("eam", 500, 10);
    let publisher = Publisher::new(&names).run(load.events.clone(), 0, Duration::from_secs(30)).await;

    // 1. Connection refused: the circuit opens, deliveries are held back.
    let circuit = async |svc: &Service| -> Value {
        svc.get("/readyz").await.map(|(_, body)| body["connectors"]["servicenow"].clone()).unwrap_or_default()
    };
    let mut health = Value::Null;
    let opened = wait_for(Duration::from_secs(20), async || {
        health = circuit(&svc).await;
        health["circuit"] == "open"
    })
    .await;
    assert!(opened, "the circuit opens while the EAM refuses connections: {health}");
    assert_eq!(health["healthy"], false, "{health}");
    let metrics = svc.metrics().await;
    let deliveries = |outcome: &str| {
        metric_sum(
            &metrics,
            "workbridge_deliveries_total",
            &format!("connector=\"servicenow\",kind=\"create\",outcome=\"{outcome}\""),
        )
    };
    assert!(deliveries("transient") >= 3.0, "refused connections count as transient failures:\n{metrics}");
    let held_back = wait_for(Duration::from_secs(10), async || {
        metric_sum(&svc.metrics().await, "workbridge_deliveries_total", "outcome=\"circuit_open\"") > 0.0
    })
    .await;
    assert!(held_back, "deliveries are held back by the open circuit");
    assert_eq!(
        metric_sum(&svc.metrics().await, "workbridge_connector_healthy", "connector=\"servicenow\""),
        0.0,
        "the connector is reported unhealthy"
    );

    // 2. The EAM is up but unavailable.
    let server = eam.start_on(port).await;
    let refused = wait_for(Duration::from_secs(20), async || eam.refused() >= 2).await;
    assert!(refused, "the circuit lets probes through to the EAM");
    assert!(eam.incidents().is_empty());

    // 3. Creates are stored, but answered after the connector gave up.
    eam.set_mode(Mode::SlowAfterStore { delay: Duration::from_millis(CONNECTOR_TIMEOUT_MS * 4) });
    let recovered_by_lookup = || {
        let late: HashSet<String> =
            eam.incidents().into_iter().filter(|i| i.answered_late).map(|i| i.correlation_id).collect();
        let found: HashSet<String> = eam.lookups().into_iter().filter(|l| l.found).map(|l| l.reference).collect();
        late.intersection(&found).count()
    };
    let looked_up = wait_for(Duration::from_secs(30), async || recovered_by_lookup() >= 3).await;
    assert!(looked_up, "three creates answered too late, then found by reference:\n{}", svc.log_tail(30));
    eprintln!("{} incidents stored without a timely answer so far", eam.incidents().len());

    // 4. Healthy again.
    eam.set_mode(Mode::Normal { delay: Duration::ZERO });
    wait_settled(&db, &load, Duration::from_secs(60)).await;
    let closed = wait_for(Duration::from_secs(10), async || {
        health = circuit(&svc).await;
        health["circuit"] == "closed" && health["healthy"] == true
    })
    .await;
    assert!(closed, "the circuit closes once the EAM answers: {health}");
    let metrics = svc.metrics().await;
    assert_eq!(metric_sum(&metrics, "workbridge_connector_healthy", "connector=\"servicenow\""), 1.0, "{metrics}");
    assert!(
        metric_sum(&metrics, "workbridge_deliveries_total", "outcome=\"unknown\"") >= 3.0,
        "timed-out creates are counted as unknown outcomes:\n{metrics}"
    );

    let problems = audit(&db, &load, &eam, &names).await;
    assert_no_problems(&problems, &[&svc]);
    // Every create that timed out was recovered by the lookup, not repeated.
    let late: Vec<String> = eam.incidents().into_iter().filter(|i| i.answered_late).map(|i| i.correlation_id).collect();
    let found: HashSet<String> = eam.lookups().into_iter().filter(|l| l.found).map(|l| l.reference).collect();
    let lost: Vec<&String> = late.iter().filter(|r| !found.contains(*r)).collect();
    assert!(lost.is_empty(), "orders whose late create was never looked up: {lost:?}");
    eprintln!(
        "{} events ({} republished), {} incidents ({} answered late) settled in {:.1} s",
        load.events.len(),
        publisher.republished.load(std::sync::atomic::Ordering::Relaxed),
        eam.incidents().len(),
        late.len(),
        started.elapsed().as_secs_f64()
    );
    drop((svc, server));
    cleanup_broker(&names).await;
}
