use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Options, TestApp, alert, sandbox_connector, spawn_app};
use crate::on_both_backends;

/// A generic REST EAM: bearer token, a JSON body template, and the id of the
/// new order at `data.id` in the reply.
pub fn rest_connector(eam: &MockServer) -> Value {
    json!({
        "name": "eam",
        "config": {
            "kind": "rest",
            "url": format!("{}/api/v1/workorders", eam.uri()),
            "headers": {"Authorization": "Bearer wb-test-token"},
            "body": {
                "reference": "{{ order.reference }}",
                "title": "{{ order.title }}",
                "asset": "{{ order.asset_id }}",
                "site": "{{ asset.site }}",
                "priority": "{{ order.priority }}",
                "workType": "{{ order.work_type }}",
                "code": "{{ event.code }}",
                "detectedAt": "{{ event.time }}",
                "value": "{{ event.value }}"
            },
            "id_path": "data.id",
            "status_path": "data.status",
            "timeout_ms": 2000
        }
    })
}

pub fn expected_body(order_id: &str) -> Value {
    json!({
        "reference": order_id,
        "title": "HIGH_TEMPERATURE on Mixer 101 (MX-101)",
        "asset": "MX-101",
        "site": "BEDFORD",
        "priority": 2,
        "workType": "corrective",
        "code": "HIGH_TEMPERATURE",
        "detectedAt": "2026-11-24T10:15:00+00:00",
        "value": 92.1
    })
}

pub fn created_reply() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"data": {"id": "WO-1001", "status": "OPEN"}}))
}

pub async fn wait_delivered(app: &TestApp) -> Value {
    app.eventually("the order is delivered", || async {
        app.orders().await.first().is_some_and(|o| o["external_id"].is_string())
    })
    .await;
    app.orders().await.remove(0)
}

async fn eam_unavailable_twice_then_created(backend: Backend) {
    let eam = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/workorders"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "0").set_body_string("maintenance"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&eam)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/workorders"))
        .and(header("authorization", "Bearer wb-test-token"))
        .respond_with(created_reply())
        .with_priority(2)
        .mount(&eam)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(rest_connector(&eam)).await;

    let (s, accepted) = app.post_json("/v1/events", &alert("r-1")).await;
    assert_eq!(s, 201);
    let order = wait_delivered(&app).await;
    let order_id = accepted["work_order_id"].as_str().unwrap();
    assert_eq!(order["id"], order_id);
    assert_eq!(order["external_id"], "WO-1001");
    assert_eq!(order["status"], "created");
    assert_eq!(order["last_error"], Value::Null);

    let requests = eam.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3, "two refusals, one create");
    for r in &requests {
        assert_eq!(r.headers["idempotency-key"], order_id, "the same reference on every attempt");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, expected_body(order_id));
    }
    let (_, detail) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    let history: Vec<&str> =
        detail["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["pending", "created"]);
    assert_eq!(detail["history"][1]["external_status"], "OPEN");
    assert_eq!(detail["events"][0]["event_id"], "r-1");
    assert_eq!(detail["trace"]["decision"]["outcome"], "created");
    assert_eq!(detail["trace"]["mapping"]["by"], "tag");

    // The connector's credential is never shown.
    let (_, c) = app.get("/v1/connectors/eam").await;
    assert_eq!(c["config"]["headers"]["Authorization"], "***");
    assert!(!c.to_string().contains("wb-test-token"));
}
on_both_backends!(eam_unavailable_twice_then_created);

async fn permanent_rejection_fails_the_order(backend: Backend) {
    let eam = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "unknown asset"})))
        .mount(&eam)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(rest_connector(&eam)).await;
    app.post_json("/v1/events", &alert("f-1")).await;
    app.eventually("the order fails", || async { app.orders().await.first().is_some_and(|o| o["status"] == "failed") })
        .await;
    let order = app.orders().await.remove(0);
    assert!(order["last_error"].as_str().unwrap().contains("400"), "{order}");
    assert_eq!(eam.received_requests().await.unwrap().len(), 1, "a 400 is not retried");
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["connectors"]["eam"]["healthy"], true, "one failure is not yet a failing connector");
    // A failed order no longer holds its dedup key: the next event opens a new one.
    let (_, a) = app.post_json("/v1/events", &alert("f-2")).await;
    assert_eq!(a["outcome"], "created");
    app.eventually("two failed", || async { app.orders().await.iter().all(|o| o["status"] == "failed") }).await;
    app.post_json("/v1/events", &alert("f-3")).await;
    app.eventually("three failed", || async {
        let o = app.orders().await;
        o.len() == 3 && o.iter().all(|o| o["status"] == "failed")
    })
    .await;
    let (s, ready) = app.get("/readyz").await;
    assert_eq!(s, 200, "a failing connector does not make the service unready");
    assert_eq!(
        (ready["connectors"]["eam"]["failing"].as_bool(), ready["connectors"]["eam"]["healthy"].as_bool()),
        (Some(true), Some(false))
    );
}
on_both_backends!(permanent_rejection_fails_the_order);

async fn merges_while_open_and_opens_anew_after_completion(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(sandbox_connector()).await;
    let (_, first) = app.post_json("/v1/events", &alert("o-1")).await;
    assert_eq!(first["outcome"], "created");
    let order_id = first["work_order_id"].as_str().unwrap().to_owned();
    let mut later = alert("o-2");
    later["time"] = json!("2026-11-24T10:20:00Z");
    let (_, second) = app.post_json("/v1/events", &later).await;
    assert_eq!(
        (second["outcome"].as_str(), second["work_order_id"].as_str()),
        (Some("merged"), Some(order_id.as_str()))
    );
    let order = wait_delivered(&app).await;
    assert_eq!(order["event_count"], 2);
    assert_eq!(order["last_event_time"], "2026-11-24T10:20:00Z");
    let (_, sandbox) = app.get("/v1/sandbox/orders").await;
    assert_eq!(sandbox["total"], 1, "one order in the EAM");
    let sbx = sandbox["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(order["external_id"], sbx.as_str());
    assert_eq!(sandbox["items"][0]["reference"], order_id.as_str());

    // A clear is recorded on the open order.
    let mut clear = alert("o-3");
    clear["data"]["state"] = json!("cleared");
    let (_, cleared) = app.post_json("/v1/events", &clear).await;
    assert_eq!(
        (cleared["outcome"].as_str(), cleared["work_order_id"].as_str()),
        (Some("cleared"), Some(order_id.as_str()))
    );

    // The planner works the order in the (sandbox) EAM.
    for status in ["in_progress", "completed"] {
        let (s, body) = app.post_json(&format!("/v1/sandbox/orders/{sbx}/status"), &json!({"status": status})).await;
        assert_eq!(s, 200, "{body}");
    }
    let (s, p) = app.post_json(&format!("/v1/sandbox/orders/{sbx}/status"), &json!({"status": "pending"})).await;
    assert_eq!(s, 422, "{p}");
    let (_, detail) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(detail["status"], "completed");
    let history: Vec<&str> =
        detail["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["pending", "created", "in_progress", "completed"]);
    assert_eq!(detail["events"].as_array().unwrap().len(), 3);

    // The work is done: the same alert again opens a new order.
    let (_, again) = app.post_json("/v1/events", &alert("o-4")).await;
    assert_eq!(again["outcome"], "created");
    assert_ne!(again["work_order_id"].as_str(), Some(order_id.as_str()));
    let (_, open) = app.get("/v1/work-orders?status=completed").await;
    assert_eq!(open["total"], 1);
}
on_both_backends!(merges_while_open_and_opens_anew_after_completion);

async fn failed_deliveries_are_listed_and_can_be_retried(backend: Backend) {
    let eam = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"error": "asset locked"})))
        .mount(&eam)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(rest_connector(&eam)).await;
    let (_, a) = app.post_json("/v1/events", &alert("rt-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("failed", || async { app.orders().await[0]["status"] == "failed" }).await;
    let (_, failed) = app.get("/v1/deliveries?status=failed").await;
    assert_eq!(failed["total"], 1);
    assert_eq!(failed["items"][0]["work_order_id"], order_id.as_str());
    assert!(failed["items"][0]["last_error"].as_str().unwrap().contains("422"));

    // The EAM is fixed; the planner retries.
    eam.reset().await;
    Mock::given(method("POST")).respond_with(created_reply()).mount(&eam).await;
    let r = app.client.post(app.url(&format!("/v1/work-orders/{order_id}/retry"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let order = wait_delivered(&app).await;
    assert_eq!(order["status"], "created");
    let (_, detail) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    let history: Vec<&str> =
        detail["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["pending", "failed", "pending", "created"]);
    // While it is open, new events merge into it again.
    let (_, again) = app.post_json("/v1/events", &alert("rt-2")).await;
    assert_eq!(again["outcome"], "merged");
    // Only failed orders can be retried.
    let r = app.client.post(app.url(&format!("/v1/work-orders/{order_id}/retry"))).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("only failed orders"));
}
on_both_backends!(failed_deliveries_are_listed_and_can_be_retried);

/// The EAM keeps failing: after two failures the circuit opens and nothing
/// is sent until it may probe; the probe succeeds and closes it. Time moves
/// only when the test moves the clock.
async fn the_circuit_opens_and_closes(backend: Backend) {
    use std::sync::Arc;
    use workbridge::clock::ManualClock;
    let eam = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&eam).await;
    let clock = Arc::new(ManualClock::new("2026-11-24T10:00:00Z".parse().unwrap()));
    let env = vec![
        ("WORKBRIDGE_OUTBOX__BREAKER_FAILURES", "2".to_owned()),
        ("WORKBRIDGE_OUTBOX__BREAKER_OPEN_MS", "60000".to_owned()),
    ];
    let app = spawn_app(backend, Options { clock: clock.clone(), env, max_attempts: 10, ..Default::default() }).await;
    app.setup_flow(rest_connector(&eam)).await;
    app.post_json("/v1/events", &alert("cb-1")).await;
    let posts = || async { eam.received_requests().await.unwrap().len() };
    app.eventually("first attempt", || async { posts().await == 1 }).await;
    clock.advance(chrono::Duration::seconds(1));
    app.eventually("second attempt", || async { posts().await == 2 }).await;
    app.eventually("the circuit is open", || async {
        app.get("/readyz").await.1["connectors"]["eam"]["circuit"] == "open"
    })
    .await;

    // Due again, but the circuit holds it back without calling the EAM.
    clock.advance(chrono::Duration::seconds(1));
    app.eventually("postponed by the circuit", || async {
        app.orders().await[0]["last_error"].as_str().is_some_and(|e| e.contains("circuit"))
    })
    .await;
    assert_eq!(posts().await, 2, "no call while the circuit is open");

    // The EAM recovers; after the open period one probe goes through and succeeds.
    eam.reset().await;
    Mock::given(method("POST")).respond_with(created_reply()).mount(&eam).await;
    clock.advance(chrono::Duration::seconds(61));
    let order = wait_delivered(&app).await;
    assert_eq!(order["external_id"], "WO-1001");
    let ready = app.get("/readyz").await.1;
    assert_eq!(ready["connectors"]["eam"]["circuit"], "closed");
    assert_eq!(ready["connectors"]["eam"]["healthy"], true);
}
on_both_backends!(the_circuit_opens_and_closes);
