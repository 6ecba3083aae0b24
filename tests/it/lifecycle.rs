//! Orders that stay true to the EAM (issue 17): against a simulated Maximo
//! with several sites (`testkit::maximo_sim`), status reports arriving late
//! or out of order, clears racing creates, and polls of many orders.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, FIXTURES, Options, TestApp, alert, spawn_app};
use crate::on_both_backends;
use crate::testkit::maximo_sim::{MaximoSim, OS_PATH};

/// An app that delivers and polls only when the test says so.
async fn app_on(backend: Backend, sim_uri: &str, page_size: u32, on_clear: &str) -> TestApp {
    app_with_clock(backend, sim_uri, page_size, on_clear, Options::default().clock).await
}

async fn app_with_clock(
    backend: Backend,
    sim_uri: &str,
    page_size: u32,
    on_clear: &str,
    clock: std::sync::Arc<dyn workbridge::clock::Clock>,
) -> TestApp {
    let env = vec![("WORKBRIDGE_SYNC__POLL_INTERVAL_MS", "0".to_owned())];
    let app = spawn_app(backend, Options { env, clock, step_deliveries: true, ..Default::default() }).await;
    let csv = std::fs::read_to_string(format!("{FIXTURES}/assets-demo.csv")).unwrap();
    let r = app.client.post(app.url("/v1/assets/bulk")).header("content-type", "text/csv").body(csv).send().await;
    assert_eq!(r.unwrap().status(), 200);
    let connector = json!({"name": "maximo", "config": {
        "kind": "maximo", "base_url": sim_uri, "api_key": "mx-secret-key", "timeout_ms": 5000, "page_size": page_size
    }});
    let (s, body) = app.post_json("/v1/connectors", &connector).await;
    assert_eq!(s, 201, "{body}");
    let rule = json!({"name": "alerts", "when": {"types": ["tdl.alert"]}, "action": {
        "kind": "create", "connector": "maximo", "work_type": "corrective", "priority": 2,
        "on_clear": on_clear, "comment_on_merge": true, "comment_interval_minutes": 0
    }});
    let (s, body) = app.post_json("/v1/rules", &rule).await;
    assert_eq!(s, 201, "{body}");
    app
}

/// An alert of its own episode (its own dedup key).
fn alert_with_code(id: &str, code: &str) -> Value {
    let mut a = alert(id);
    a["data"]["code"] = json!(code);
    a
}

fn cleared(mut a: Value, id: &str) -> Value {
    a["id"] = json!(id);
    a["data"]["state"] = json!("cleared");
    a
}

async fn order(app: &TestApp, id: &str) -> Value {
    let (s, o) = app.get(&format!("/v1/work-orders/{id}")).await;
    assert_eq!(s, 200, "{o}");
    o
}

async fn open(app: &TestApp, event: &Value) -> String {
    let (s, a) = app.post_json("/v1/events", event).await;
    assert!(matches!(s, 200..=202), "{s} {a}");
    a["work_order_id"].as_str().expect("an order").to_owned()
}

fn history(o: &Value) -> Vec<(String, String, String)> {
    o["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let s = |k: &str| h[k].as_str().unwrap_or_default().to_owned();
            (s("status"), s("source"), s("flag"))
        })
        .collect()
}

/// Two Maximo sites hold work order 1001. Polls, work logs and the cancel
/// reach ours (BEDFORD), never NASHUA's, and NASHUA's status is never
/// taken for ours.
async fn work_order_numbers_shared_by_two_sites_never_mix(backend: Backend) {
    let (server, sim) = MaximoSim::start(100, Duration::ZERO).await;
    let app = app_on(backend, &server.uri(), 100, "cancel_if_not_started").await;
    let first = alert_with_code("site-1", "HIGH_TEMPERATURE");
    let id = open(&app, &first).await;
    app.deliver().await;
    let ours = order(&app, &id).await;
    assert_eq!((ours["external_id"].as_str(), ours["external_site"].as_str()), (Some("1001"), Some("BEDFORD")));
    // NASHUA's 1001, newer than ours: Maximo lists it first.
    sim.insert("NASHUA", "INPRG", "2026-11-24T11:30:00-05:00");

    app.poll().await;
    let o = order(&app, &id).await;
    assert_eq!(o["status"], "created", "NASHUA's INPRG is not ours: {o}");

    // A merged event adds a work log to ours only.
    open(&app, &alert_with_code("site-2", "HIGH_TEMPERATURE")).await;
    app.deliver().await;
    assert_eq!(sim.order("BEDFORD", "1001").unwrap().worklog.len(), 1, "the work log reached our order");
    assert!(sim.order("NASHUA", "1001").unwrap().worklog.is_empty(), "and not NASHUA's");

    // The clear cancels ours, in workbridge and in Maximo; NASHUA's goes on.
    open(&app, &cleared(first, "site-3")).await;
    app.deliver().await;
    assert_eq!(sim.order("BEDFORD", "1001").unwrap().status, "CAN");
    assert_eq!(sim.order("NASHUA", "1001").unwrap().status, "INPRG", "another site's order is left alone");
    assert_eq!(order(&app, &id).await["status"], "cancelled");

    // Every write went to the member's href, every query named the site.
    let requests = server.received_requests().await.unwrap();
    for r in requests.iter().filter(|r| r.url.path() == OS_PATH && r.method == wiremock::http::Method::GET) {
        let where_ = r.url.query_pairs().find(|(k, _)| k == "oslc.where").map(|(_, v)| v.into_owned());
        if let Some(w) = where_.filter(|w| w.contains("wonum")) {
            assert!(w.starts_with("siteid=\"BEDFORD\" and "), "{w}");
        }
    }
}
on_both_backends!(work_order_numbers_shared_by_two_sites_never_mix);

/// A clear cancels the order while its create is in flight: once Maximo
/// answers, the order is cancelled there too, and stays cancelled here,
/// with both steps in its history.
async fn a_clear_during_the_create_cancels_the_order_in_the_eam_after_it(backend: Backend) {
    let (server, sim) = MaximoSim::start(100, Duration::from_millis(1500)).await;
    let app = app_on(backend, &server.uri(), 100, "cancel_if_not_started").await;
    let raised = alert_with_code("race-1", "HIGH_TEMPERATURE");
    let id = open(&app, &raised).await;
    let clear_while_creating = async {
        app.eventually("the create reached Maximo", || async {
            server.received_requests().await.unwrap().iter().any(|r| r.method == wiremock::http::Method::POST)
        })
        .await;
        let (_, c) = app.post_json("/v1/events", &cleared(raised.clone(), "race-2")).await;
        assert_eq!(c["outcome"], "cleared", "{c}");
    };
    tokio::join!(app.deliver(), clear_while_creating);
    app.deliver().await;

    let o = order(&app, &id).await;
    assert_eq!(o["status"], "cancelled", "{o}");
    assert_eq!(o["external_id"], "1001", "the EAM's id is kept: {o}");
    assert_eq!(sim.order("BEDFORD", "1001").unwrap().status, "CAN", "cancelled in Maximo too");
    let steps = history(&o);
    assert!(steps.contains(&("cancelled".into(), "workbridge".into(), String::new())), "{steps:?}");
    assert!(steps.contains(&("created".into(), "connector:maximo".into(), "noted".into())), "{steps:?}");
    assert!(steps.contains(&("cancelled".into(), "connector:maximo".into(), "noted".into())), "{steps:?}");
    // Cancelled, the order is no longer polled.
    assert_eq!(app.poll().await.polled, 0);
}
on_both_backends!(a_clear_during_the_create_cancels_the_order_in_the_eam_after_it);

/// A late report (older than the status applied) is recorded as stale and
/// moves nothing; a move the lifecycle does not allow is followed, as the
/// EAM is the system of record, and flagged; completed orders are followed
/// until they close.
async fn late_reports_are_stale_and_illegal_moves_are_flagged(backend: Backend) {
    let (server, sim) = MaximoSim::start(100, Duration::ZERO).await;
    let app = app_on(backend, &server.uri(), 100, "annotate").await;
    let id = open(&app, &alert_with_code("lc-1", "HIGH_TEMPERATURE")).await;
    app.deliver().await;

    sim.set_status("BEDFORD", "1001", "INPRG", "2026-11-24T12:00:00-05:00");
    assert_eq!(app.poll().await.changed, 1);
    assert_eq!(order(&app, &id).await["status"], "in_progress");

    // A webhook or a slow poll reports an older status: not applied.
    sim.set_status("BEDFORD", "1001", "APPR", "2026-11-24T11:00:00-05:00");
    let round = app.poll().await;
    assert_eq!((round.changed, round.stale), (0, 1));
    let o = order(&app, &id).await;
    assert_eq!(o["status"], "in_progress", "{o}");
    assert!(history(&o).contains(&("acknowledged".into(), "poll".into(), "stale".into())), "{o}");

    // Completed, the order is still followed, and its close arrives.
    sim.set_status("BEDFORD", "1001", "COMP", "2026-11-24T13:00:00-05:00");
    app.poll().await;
    assert_eq!(order(&app, &id).await["status"], "completed");
    sim.set_status("BEDFORD", "1001", "CLOSE", "2026-11-24T14:00:00-05:00");
    assert_eq!(app.poll().await.changed, 1, "a completed order is polled until it closes");
    assert_eq!(order(&app, &id).await["status"], "closed");
    assert_eq!(app.poll().await.polled, 0, "closed: no longer followed");

    // Closed is final in the lifecycle; a webhook saying otherwise is
    // followed and flagged.
    let o = order(&app, &id).await;
    let (s, _) = app.get("/v1/connectors/maximo").await;
    assert_eq!(s, 200);
    let moved = workbridge::store::work_orders::change_status(
        app.store.conn(),
        &id,
        &workbridge::store::work_orders::StatusUpdate {
            status: workbridge::domain::OrderStatus::InProgress,
            external_status: Some("INPRG"),
            source: "webhook",
            at: "2026-11-24T20:00:00Z".parse().unwrap(),
            note: None,
        },
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert!(moved);
    let after = order(&app, &id).await;
    assert_eq!(after["status"], "in_progress");
    assert!(history(&after).contains(&("in_progress".into(), "webhook".into(), "illegal".into())), "{after}");
    assert_eq!(history(&after).len(), history(&o).len() + 1);
}
on_both_backends!(late_reports_are_stale_and_illegal_moves_are_flagged);

/// Several orders per query, in pages no larger than the connector's page
/// size, answered newest first (not in the order asked); one order was
/// deleted in Maximo: flagged, its status left, still followed.
async fn one_round_polls_every_order_in_pages_and_flags_a_missing_one(backend: Backend) {
    let (server, sim) = MaximoSim::start(100, Duration::ZERO).await;
    let app = app_on(backend, &server.uri(), 2, "annotate").await;
    let codes = ["C1", "C2", "C3", "C4", "C5"];
    let mut ids = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        ids.push(open(&app, &alert_with_code(&format!("many-{i}"), code)).await);
    }
    app.deliver().await;
    let mut wonums = Vec::new();
    for id in &ids {
        wonums.push(order(&app, id).await["external_id"].as_str().unwrap().to_owned());
    }
    let wonum = |i: usize| wonums[i].clone();
    sim.set_status("BEDFORD", &wonum(0), "APPR", "2026-11-24T12:00:00-05:00");
    sim.set_status("BEDFORD", &wonum(3), "INPRG", "2026-11-24T12:00:00-05:00");
    sim.set_status("BEDFORD", &wonum(4), "COMP", "2026-11-24T12:00:00-05:00");
    sim.delete("BEDFORD", &wonum(2));

    let queries_before = sim.status_queries();
    let round = app.poll().await;
    assert_eq!((round.polled, round.queries, round.changed, round.missing), (5, 3, 3, 1), "{round:?}");
    assert_eq!(sim.status_queries() - queries_before, 3, "pages of at most 2");
    let statuses: Vec<String> = futures_util::future::join_all(ids.iter().map(|id| order(&app, id)))
        .await
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["acknowledged", "created", "created", "in_progress", "completed"]);
    let missing = order(&app, &ids[2]).await;
    assert!(missing["last_error"].as_str().unwrap().contains("did not return this order"), "{missing}");
    // Still followed: when it is found again the flag goes.
    assert_eq!(app.poll().await.polled, 5);
}
on_both_backends!(one_round_polls_every_order_in_pages_and_flags_a_missing_one);

/// An EAM that answers 429 is not polled again before its `Retry-After`,
/// and the orders it was asked about stay due (not skipped for an interval).
async fn a_rate_limited_eam_is_asked_again_only_after_retry_after(backend: Backend) {
    use wiremock::{Mock, Request, ResponseTemplate};
    let (server, sim) = MaximoSim::start(100, Duration::ZERO).await;
    let clock = std::sync::Arc::new(workbridge::clock::ManualClock::new("2026-11-24T16:00:00Z".parse().unwrap()));
    let app = app_with_clock(backend, &server.uri(), 100, "annotate", clock.clone()).await;
    let id = open(&app, &alert_with_code("rl-1", "HIGH_TEMPERATURE")).await;
    app.deliver().await;
    let polling = |r: &Request| {
        r.method == wiremock::http::Method::GET
            && r.url.query_pairs().any(|(k, v)| k == "oslc.where" && v.contains("wonum in"))
    };
    Mock::given(polling)
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120").set_body_json(json!({"Error": {
            "reasonCode": "BMXAA0000E", "message": "Too many requests", "statusCode": "429"}})))
        .with_priority(1)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let round = app.poll().await;
    assert_eq!((round.queries, round.polled), (1, 0), "{round:?}");
    let round = app.poll().await;
    assert_eq!(round.queries, 0, "not asked again before Retry-After: {round:?}");
    sim.set_status("BEDFORD", "1001", "APPR", "2026-11-24T12:00:00-05:00");
    clock.advance(chrono::Duration::seconds(119));
    assert_eq!(app.poll().await.queries, 0, "two minutes have not passed");
    assert_eq!(order(&app, &id).await["status"], "created");
    clock.advance(chrono::Duration::seconds(2));
    let round = app.poll().await;
    assert_eq!((round.queries, round.polled, round.changed), (1, 1, 1), "asked again after Retry-After: {round:?}");
    assert_eq!(order(&app, &id).await["status"], "acknowledged");
}
on_both_backends!(a_rate_limited_eam_is_asked_again_only_after_retry_after);
