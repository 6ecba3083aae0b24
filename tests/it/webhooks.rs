//! Status changes pushed by an EAM, signed per Standard Webhooks.

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};
use workbridge::sync::webhooks::{decode_secret, sign};

use crate::helpers::{Backend, Options, TestApp, alert, spawn_app};
use crate::on_both_backends;

const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

async fn push(app: &TestApp, id: &str, ts: i64, secret: &str, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = sign(&decode_secret(secret).unwrap(), id, ts, &bytes);
    let r = app
        .client
        .post(app.url("/v1/webhooks/maximo"))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn signed_status_webhooks_reach_the_history(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "wonum": "1052", "siteid": "BEDFORD", "status": "WAPPR", "href": format!("{}/maximo/api/os/mxapiwodetail/_QkVERk9SRC8xMDUy", server.uri())
        })))
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    app.setup_flow(json!({"name": "maximo",
        "config": {"kind": "maximo", "base_url": server.uri(), "api_key": "k"},
        "webhook": {"secrets": [OLD, NEW]}, "feedback_codes": {"NFF": "false_alarm"}}))
        .await;
    let (_, a) = app.post_json("/v1/events", &alert("wh-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.deliver().await, 1);
    assert_eq!(app.orders().await[0]["external_id"], "1052", "delivered");
    let now = chrono::Utc::now().timestamp();

    // Signed with the new key during rotation; Maximo's INPRG is in progress.
    let report =
        json!({"external_id": "1052", "status": "INPRG", "changed_at": "2026-11-24T11:00:00Z", "note": "crew on site"});
    let (s, r) = push(&app, "msg_1", now, NEW, &report).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!((r["applied"].as_bool(), r["status"].as_str()), (Some(true), Some("in_progress")));
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["status"], "in_progress");
    let last = o["history"].as_array().unwrap().iter().find(|h| h["source"] == "webhook").unwrap().clone();
    assert_eq!(last["at"], "2026-11-24T11:00:00Z", "the EAM's own time");
    assert_eq!((last["external_status"].as_str(), last["source"].as_str()), (Some("INPRG"), Some("webhook")));

    // A late message from before (another id, an older time): recorded as
    // stale, and the order does not move back to approved.
    let late = json!({"external_id": "1052", "status": "APPR", "changed_at": "2026-11-24T10:30:00Z"});
    let (s, r) = push(&app, "msg_0", now, NEW, &late).await;
    assert_eq!((s, r["applied"].as_bool(), r["stale"].as_bool()), (200, Some(false), Some(true)), "{r}");
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["status"], "in_progress", "{o}");
    let stale = o["history"].as_array().unwrap().iter().find(|h| h["flag"] == "stale").expect("a stale entry");
    assert_eq!(stale["external_status"], "APPR");
    let entries = o["history"].as_array().unwrap().len();

    // The same message again: no second effect.
    let (s, r) = push(&app, "msg_1", now, NEW, &report).await;
    assert_eq!((s, r["duplicate"].as_bool()), (200, Some(true)));
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["history"].as_array().unwrap().len(), entries);

    // Refused: wrong key, stale timestamp, missing signature.
    let wrong = "whsec_d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZyE=";
    for (id, ts, key) in [("msg_2", now, wrong), ("msg_3", now - 301, OLD)] {
        let (s, p) = push(&app, id, ts, key, &json!({"external_id": "1052", "status": "COMP"})).await;
        assert_eq!(s, 401, "{p}");
        assert_eq!(p["type"], "urn:workbridge:problem:unauthorized");
    }
    let r = app.client.post(app.url("/v1/webhooks/maximo")).json(&report).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["status"], "in_progress", "nothing refused took effect");

    // Unknown status word or order: 422; unknown connector: 401, as a bad
    // signature (the endpoint does not tell which connectors exist).
    let (s, _) = push(&app, "msg_4", now, OLD, &json!({"external_id": "1052", "status": "NOPE"})).await;
    assert_eq!(s, 422);
    let (s, _) = push(&app, "msg_5", now, OLD, &json!({"external_id": "9999", "status": "COMP"})).await;
    assert_eq!(s, 422);
    let r = app.client.post(app.url("/v1/webhooks/nobody")).json(&report).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // By our reference, with the old key: completed.
    let (s, r) =
        push(&app, "msg_6", now, OLD, &json!({"reference": order_id, "status": "COMP", "closure_code": "NFF"})).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("completed")));
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["feedback"][0]["verdict"], "false_alarm", "the EAM's closure code is feedback");
    // Secrets are never shown.
    let (_, c) = app.get("/v1/connectors/maximo").await;
    assert_eq!(c["webhook"]["secrets"], json!(["***", "***"]));
}
on_both_backends!(signed_status_webhooks_reach_the_history);
