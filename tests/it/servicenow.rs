//! The ServiceNow connector against a simulated Table API (wiremock),
//! shaped after ServiceNow's documentation (`docs/eam-apis.md` §2).

use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Options, alert, spawn_app};
use crate::on_both_backends;

const TABLE: &str = "/api/now/table/incident";

fn connector(server: &MockServer) -> Value {
    json!({"name": "servicenow", "config": {
        "kind": "servicenow", "instance_url": server.uri(), "username": "workbridge", "password": "sn-secret",
        "assignment_group": "Maintenance Bedford"
    }})
}

/// Rate limited first (429 with Retry-After and ServiceNow's error body),
/// then created: one incident, with our reference as correlation_id.
async fn rate_limited_then_created(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(json!({
            "error": {"message": "Rate limit exceeded", "detail": "Rate limit of 10 requests per hour for Table API exceeded"},
            "status": "failure"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .and(basic_auth("workbridge", "sn-secret"))
        .and(header("accept", "application/json"))
        .and(query_param("sysparm_fields", "sys_id,number,state,correlation_id"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": {
            "sys_id": "a9e30c7dc61122760116894de7bcc7bd", "number": "INC0010002", "state": "1", "correlation_id": "set below"
        }})))
        .with_priority(2)
        .mount(&server)
        .await;
    // The retry looks the incident up first (none yet).
    Mock::given(method("GET"))
        .and(path(TABLE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": []})))
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(connector(&server)).await;
    let (_, a) = app.post_json("/v1/events", &alert("sn-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("created in ServiceNow", || async {
        app.get(&format!("/v1/work-orders/{order_id}")).await.1["external_id"] == "a9e30c7dc61122760116894de7bcc7bd"
    })
    .await;
    let requests = server.received_requests().await.unwrap();
    let posts: Vec<_> = requests.iter().filter(|r| r.method == wiremock::http::Method::POST).collect();
    assert_eq!(posts.len(), 2, "the 429, then the create");
    let body: Value = serde_json::from_slice(&posts[1].body).unwrap();
    assert_eq!(body["correlation_id"], order_id.as_str());
    assert_eq!(body["short_description"], "HIGH_TEMPERATURE on Mixer 101 (MX-101)");
    assert_eq!((body["impact"].as_str(), body["urgency"].as_str()), (Some("1"), Some("2")), "priority 2");
    assert_eq!(body["assignment_group"], "Maintenance Bedford");
    assert_eq!(body["cmdb_ci"], "MX-101");
    let lookup = requests.iter().find(|r| r.method == wiremock::http::Method::GET).expect("a lookup before the retry");
    let q = lookup.url.query_pairs().find(|(k, _)| k == "sysparm_query").unwrap().1.into_owned();
    assert_eq!(q, format!("correlation_id={order_id}"));
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["history"][1]["external_status"], "1");
    let (_, c) = app.get("/v1/connectors/servicenow").await;
    assert_eq!(c["config"]["password"], "***");
}
on_both_backends!(rate_limited_then_created);

/// A lookup by correlation_id that ServiceNow answers with unrelated rows
/// (an unknown query field is dropped silently) is not taken as our record.
async fn the_lookup_checks_the_correlation_id_itself(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(
                json!({"error": {"message": "Service Unavailable", "detail": null}, "status": "failure"}),
            ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result": {"sys_id": "b1", "number": "INC0010003", "state": "1"}})),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TABLE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [
            {"sys_id": "other", "number": "INC0000001", "state": "7", "correlation_id": "someone-else"}
        ]})))
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(connector(&server)).await;
    app.post_json("/v1/events", &alert("sn-2")).await;
    app.eventually("created", || async { app.orders().await[0]["external_id"] == "b1" }).await;
}
on_both_backends!(the_lookup_checks_the_correlation_id_itself);

async fn polling_uses_one_query_per_batch(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result": {"sys_id": "c1", "number": "INC0010004", "state": "1"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TABLE))
        .and(query_param("sysparm_query", "sys_idINc1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [
            {"sys_id": "c1", "state": "6", "sys_updated_on": "2026-11-24 16:30:00", "close_code": "No Fault Found"}
        ]})))
        .mount(&server)
        .await;
    let env = vec![("WORKBRIDGE_SYNC__POLL_INTERVAL_MS", "100".to_owned())];
    let app = spawn_app(backend, Options { env, ..Default::default() }).await;
    let mut c = connector(&server);
    c["feedback_codes"] = json!({"No Fault Found": "false_alarm", "Solved (Permanently)": "useful"});
    app.setup_flow(c).await;
    let (_, a) = app.post_json("/v1/events", &alert("snp-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("resolved", || async {
        app.get(&format!("/v1/work-orders/{order_id}")).await.1["status"] == "completed"
    })
    .await;
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    let polled = o["history"].as_array().unwrap().iter().find(|h| h["source"] == "poll").unwrap().clone();
    assert_eq!((polled["at"].as_str(), polled["external_status"].as_str()), (Some("2026-11-24T16:30:00Z"), Some("6")));
    // ServiceNow's close code counts as feedback: no fault found, a false alarm.
    assert_eq!(o["feedback"].as_array().unwrap().len(), 1, "{o}");
    assert_eq!(
        (o["feedback"][0]["verdict"].as_str(), o["feedback"][0]["source"].as_str()),
        (Some("false_alarm"), Some("eam"))
    );
}
on_both_backends!(polling_uses_one_query_per_batch);

async fn oauth2_client_credentials(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth_token.do"))
        .and(wiremock::matchers::body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "scope": "useraccount", "token_type": "Bearer", "expires_in": 1799, "access_token": "sn-access-1"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .and(header("authorization", "Bearer sn-access-1"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result": {"sys_id": "d1", "number": "INC0010005", "state": "1"}})),
        )
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(json!({"name": "servicenow", "config": {
        "kind": "servicenow", "instance_url": server.uri(),
        "oauth2": {"token_url": format!("{}/oauth_token.do", server.uri()), "client_id": "wb", "client_secret": "shh"}
    }}))
    .await;
    app.post_json("/v1/events", &alert("sno-1")).await;
    let mut other = alert("sno-2");
    other["subject"] = json!("BEDFORD.PUMPING.P504.BRG_TEMP");
    app.post_json("/v1/events", &other).await;
    app.eventually("both created", || async {
        app.orders().await.iter().filter(|o| o["external_id"] == "d1").count() == 2
    })
    .await;
    // `expect(1)`: one token for both orders, checked when the server drops.
    let (s, p) = app
        .post_json("/v1/connectors", &json!({"name": "half", "config": {"kind": "servicenow", "instance_url": server.uri(), "username": "only-user"}}))
        .await;
    assert_eq!(s, 422, "{p}");
}
on_both_backends!(oauth2_client_credentials);
