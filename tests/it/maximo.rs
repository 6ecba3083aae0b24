//! The Maximo connector against a simulated Maximo (wiremock), shaped after
//! IBM's documentation of the JSON API (`docs/eam-apis.md` §1).

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{Backend, Options, alert, spawn_app};
use crate::on_both_backends;

const OS_PATH: &str = "/maximo/api/os/mxapiwodetail";

fn maximo_connector(server: &MockServer) -> Value {
    json!({"name": "maximo", "config": {
        "kind": "maximo", "base_url": server.uri(), "api_key": "mx-secret-key", "timeout_ms": 500
    }})
}

fn wo(wonum: &str, status: &str, server: &MockServer) -> Value {
    json!({"wonum": wonum, "siteid": "BEDFORD", "status": status, "statusdate": "2026-11-24T10:15:01-05:00",
           "href": format!("{}{OS_PATH}/_QkVERk9SRC8{wonum}", server.uri())})
}

fn by_reference(req: &Request) -> bool {
    req.url.query_pairs().any(|(k, v)| k == "oslc.where" && v.starts_with("externalrefid=\""))
}

/// The create reaches Maximo, which stores the order but answers too late:
/// the retry asks Maximo by our reference first and finds it. One order.
async fn a_create_that_times_out_after_storing_makes_one_order(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(OS_PATH))
        .and(query_param("lean", "1"))
        .and(header("apikey", "mx-secret-key"))
        .and(header_exists("transactionid"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(wo("1052", "WAPPR", &server)).set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(OS_PATH))
        .and(query_param("lean", "1"))
        .and(header("apikey", "mx-secret-key"))
        .and(by_reference)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "member": [wo("1052", "WAPPR", &server)], "href": format!("{}{OS_PATH}", server.uri()), "responseInfo": {"pagenum": 1}
        })))
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(maximo_connector(&server)).await;
    let (_, a) = app.post_json("/v1/events", &alert("mx-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("the order is found in Maximo", || async {
        app.get(&format!("/v1/work-orders/{order_id}")).await.1["external_id"] == "1052"
    })
    .await;

    let requests = server.received_requests().await.unwrap();
    let posts: Vec<&Request> = requests.iter().filter(|r| r.method == wiremock::http::Method::POST).collect();
    assert_eq!(posts.len(), 1, "one create, never a second");
    assert_eq!(posts[0].headers["transactionid"], order_id.as_str());
    let body: Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(body["siteid"], "BEDFORD");
    assert_eq!(body["assetnum"], "MX-101");
    assert_eq!(body["worktype"], "CM");
    assert_eq!(body["wopriority"], 2);
    assert_eq!(body["externalrefid"], order_id.as_str());
    assert_eq!(body["description"], "HIGH_TEMPERATURE on Mixer 101 (MX-101)");
    assert!(body["targcompdate"].is_string());
    let lookup = requests.iter().find(|r| r.method == wiremock::http::Method::GET).expect("a lookup by reference");
    let where_ = lookup.url.query_pairs().find(|(k, _)| k == "oslc.where").unwrap().1.into_owned();
    assert_eq!(where_, format!("externalrefid=\"{order_id}\""));

    let (_, detail) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(detail["status"], "created");
    assert_eq!(detail["history"][1]["external_status"], "WAPPR");
    // The API key never leaves workbridge.
    let (_, c) = app.get("/v1/connectors/maximo").await;
    assert_eq!(c["config"]["api_key"], "***");
    assert!(!c.to_string().contains("mx-secret-key"));
}
on_both_backends!(a_create_that_times_out_after_storing_makes_one_order);

/// A validation error in Maximo's envelope fails the order with Maximo's message.
async fn maximo_errors_fail_the_order_with_the_reason(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(OS_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"Error": {
            "extendedError": {"moreInfo": {"href": "oslc/error/messages/BMXAA4195E"}},
            "reasonCode": "BMXAA4195E", "message": "BMXAA4195E - Asset MX-101 is not a valid asset.", "statusCode": "400"
        }})))
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(maximo_connector(&server)).await;
    app.post_json("/v1/events", &alert("mx-2")).await;
    app.eventually("failed", || async { app.orders().await[0]["status"] == "failed" }).await;
    let order = &app.orders().await[0];
    assert!(
        order["last_error"].as_str().unwrap().contains("BMXAA4195E - Asset MX-101 is not a valid asset."),
        "{order}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1, "a 400 is not retried");
}
on_both_backends!(maximo_errors_fail_the_order_with_the_reason);

fn polling(req: &Request) -> bool {
    req.url.query_pairs().any(|(k, v)| k == "oslc.where" && v.contains("wonum in ["))
}

/// Status sync by polling: one query for the open orders (`wonum in [...]`),
/// and Maximo's status date in the history.
async fn polled_statuses_reach_the_history(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(OS_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(wo("1052", "WAPPR", &server)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(OS_PATH))
        .and(header("apikey", "mx-secret-key"))
        .and(polling)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"member": [
            {"wonum": "1052", "siteid": "BEDFORD", "status": "INPRG", "statusdate": "2026-11-24T12:00:00-05:00"}
        ], "responseInfo": {"pagenum": 1}})))
        .mount(&server)
        .await;
    let env = vec![("WORKBRIDGE_SYNC__POLL_INTERVAL_MS", "100".to_owned())];
    let app = spawn_app(backend, Options { env, ..Default::default() }).await;
    app.setup_flow(maximo_connector(&server)).await;
    let (_, a) = app.post_json("/v1/events", &alert("poll-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("polled to in progress", || async {
        app.get(&format!("/v1/work-orders/{order_id}")).await.1["status"] == "in_progress"
    })
    .await;
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    let polled = o["history"].as_array().unwrap().iter().find(|h| h["source"] == "poll").unwrap().clone();
    assert_eq!(polled["at"], "2026-11-24T17:00:00Z", "Maximo's own status date");
    assert_eq!(polled["external_status"], "INPRG");
    let requests = server.received_requests().await.unwrap();
    let poll = requests.iter().find(|r| polling(r)).unwrap();
    let where_ = poll.url.query_pairs().find(|(k, _)| k == "oslc.where").unwrap().1.into_owned();
    assert_eq!(where_, "siteid=\"BEDFORD\" and wonum in [\"1052\"]", "the site is in every query");
    // Repeated polls of the same status add nothing.
    let entries = o["history"].as_array().unwrap().len();
    app.eventually("polled again", || async {
        server.received_requests().await.unwrap().iter().filter(|r| polling(r)).count() >= 3
    })
    .await;
    assert_eq!(app.get(&format!("/v1/work-orders/{order_id}")).await.1["history"].as_array().unwrap().len(), entries);
}
on_both_backends!(polled_statuses_reach_the_history);

/// The connector check catches refused credentials and an API that no
/// longer answers in the expected shape.
async fn the_connector_check_reports_what_is_wrong(backend: Backend) {
    let server = MockServer::start().await;
    let app = spawn_app(backend, Options::default()).await;
    app.post_json("/v1/connectors", &maximo_connector(&server)).await;
    let check = || async { app.post_json("/v1/connectors/maximo/check", &json!({})).await.1 };

    Mock::given(method("GET"))
        .and(path(OS_PATH))
        .and(header("apikey", "mx-secret-key"))
        .and(query_param("oslc.pageSize", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"member": [], "responseInfo": {"pagenum": 1}})))
        .mount(&server)
        .await;
    let ok = check().await;
    assert_eq!(ok["ok"], true, "{ok}");

    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"Error": {"reasonCode": "BMXAA0021E", "message": "BMXAA0021E - User name and password combination are not valid.", "statusCode": "401"}})))
        .mount(&server)
        .await;
    let refused = check().await;
    assert_eq!(refused["ok"], false);
    assert!(refused["detail"].as_str().unwrap().contains("BMXAA0021E"), "{refused}");

    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"rdfs:member": []})))
        .mount(&server)
        .await;
    let changed = check().await;
    assert_eq!(changed["ok"], false);
    assert!(changed["detail"].as_str().unwrap().contains("member list"), "{changed}");
    let (s, _) = app.post_json("/v1/connectors/nobody/check", &json!({})).await;
    assert_eq!(s, 404);
}
on_both_backends!(the_connector_check_reports_what_is_wrong);

/// Events merged into an open order add a work log in Maximo, at most once
/// per interval.
async fn merges_comment_at_most_once_per_interval(backend: Backend) {
    use std::sync::Arc;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(OS_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(wo("1052", "WAPPR", &server)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(OS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"member": [wo("1052", "WAPPR", &server)]})))
        .mount(&server)
        .await;
    let worklog_path = format!("{OS_PATH}/_QkVERk9SRC81052");
    Mock::given(method("POST"))
        .and(path(worklog_path.as_str()))
        .and(header("x-method-override", "PATCH"))
        .and(header("patchtype", "MERGE"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let clock = Arc::new(workbridge::clock::ManualClock::new("2026-11-24T10:00:00Z".parse().unwrap()));
    let app = spawn_app(backend, Options { clock: clock.clone(), ..Default::default() }).await;
    let csv = std::fs::read_to_string(format!("{}/assets-demo.csv", crate::helpers::FIXTURES)).unwrap();
    app.client.post(app.url("/v1/assets/bulk")).header("content-type", "text/csv").body(csv).send().await.unwrap();
    app.post_json("/v1/connectors", &maximo_connector(&server)).await;
    let (s, _) = app
        .post_json("/v1/rules", &json!({"name": "alerts", "action": {"kind": "create", "connector": "maximo", "comment_on_merge": true, "comment_interval_minutes": 60}}))
        .await;
    assert_eq!(s, 201);
    let worklogs = || async {
        server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == worklog_path)
            .collect::<Vec<_>>()
    };
    app.post_json("/v1/events", &alert("c-1")).await;
    app.eventually("created", || async { app.orders().await[0]["external_id"] == "1052" }).await;
    app.post_json("/v1/events", &alert("c-2")).await;
    app.eventually("a work log", || async { worklogs().await.len() == 1 }).await;
    let body: Value = serde_json::from_slice(&worklogs().await[0].body).unwrap();
    assert_eq!(body["worklog"][0]["logtype"], "CLIENTNOTE");
    assert!(body["worklog"][0]["description_longdescription"].as_str().unwrap().contains("2 events"));

    clock.advance(chrono::Duration::minutes(1));
    app.post_json("/v1/events", &alert("c-3")).await;
    clock.advance(chrono::Duration::minutes(60));
    app.post_json("/v1/events", &alert("c-4")).await;
    app.eventually("a second work log", || async { worklogs().await.len() == 2 }).await;
    let body: Value = serde_json::from_slice(&worklogs().await[1].body).unwrap();
    assert!(body["worklog"][0]["description_longdescription"].as_str().unwrap().contains("4 events"), "{body}");
    let (_, d) = app.get("/v1/deliveries?kind=comment").await;
    assert_eq!(d["total"], 2, "c-3 came within the interval: no comment for it");
}
on_both_backends!(merges_comment_at_most_once_per_interval);
