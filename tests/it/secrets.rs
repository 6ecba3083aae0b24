//! OAuth2 client credentials, and credentials that never reach logs,
//! responses or stored errors.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{Captured, Options, alert, spawn_app};

const CLIENT_SECRET: &str = "s3cret-client-credential";

/// Hands out tok-1, tok-2, … and counts.
struct TokenEndpoint(AtomicUsize);

impl Respond for TokenEndpoint {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 1799}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_tokens_are_cached_refreshed_on_401_and_never_shown() {
    let logs = Captured::default();
    let writer = logs.clone();
    // The only test that installs a subscriber: everything the app logs, at debug.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init();

    let eam = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(format!("client_secret={CLIENT_SECRET}").as_str()))
        .respond_with(TokenEndpoint(AtomicUsize::new(0)))
        .mount(&eam)
        .await;
    // tok-1 has been revoked: 401, echoing what the client sent.
    Mock::given(method("POST"))
        .and(path("/api/orders"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("invalid token tok-1 for {CLIENT_SECRET}")))
        .mount(&eam)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/orders"))
        .and(header("authorization", "Bearer tok-2"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "R-1"})))
        .mount(&eam)
        .await;

    let app = spawn_app(crate::helpers::Backend::Sqlite, Options::default()).await;
    app.setup_flow(json!({"name": "eam", "config": {
        "kind": "rest", "url": format!("{}/api/orders", eam.uri()), "id_path": "id",
        "oauth2": {"token_url": format!("{}/oauth/token", eam.uri()), "client_id": "workbridge", "client_secret": CLIENT_SECRET}
    }}))
    .await;
    app.post_json("/v1/events", &alert("oa-1")).await;
    let mut other = alert("oa-2");
    other["subject"] = json!("BEDFORD.PUMPING.P504.BRG_TEMP");
    app.post_json("/v1/events", &other).await;
    app.eventually("both delivered", || async {
        let o = app.orders().await;
        o.len() == 2 && o.iter().all(|o| o["external_id"] == "R-1")
    })
    .await;
    let requests = eam.received_requests().await.unwrap();
    let token_calls = requests.iter().filter(|r| r.url.path() == "/oauth/token").count();
    assert_eq!(token_calls, 2, "tok-1, refused; tok-2, then cached for the second order");

    // A token endpoint that refuses the credentials fails the order without echoing them.
    let (s, _) = app
        .client
        .put(app.url("/v1/connectors/eam"))
        .json(&json!({"config": {"kind": "rest", "url": format!("{}/api/orders", eam.uri()), "id_path": "id",
            "oauth2": {"token_url": format!("{}/oauth/refuse", eam.uri()), "client_id": "workbridge", "client_secret": CLIENT_SECRET}}}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(s, 200);
    Mock::given(method("POST"))
        .and(path("/oauth/refuse"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("unknown client_secret {CLIENT_SECRET}")))
        .mount(&eam)
        .await;
    let mut third = alert("oa-3");
    third["subject"] = json!("BEDFORD.PUMPING.P405.BRG_TEMP");
    let (_, a) = app.post_json("/v1/events", &third).await;
    let id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("failed", || async { app.get(&format!("/v1/work-orders/{id}")).await.1["status"] == "failed" })
        .await;

    // Nowhere: not in responses, stored errors or logs.
    let mut seen: Vec<Value> = vec![app.get("/v1/connectors").await.1, app.get("/v1/deliveries").await.1];
    for o in app.orders().await {
        seen.push(app.get(&format!("/v1/work-orders/{}", o["id"].as_str().unwrap())).await.1);
    }
    for v in &seen {
        assert!(!v.to_string().contains(CLIENT_SECRET), "a response shows the secret: {v}");
        assert!(!v.to_string().contains("tok-2"), "a response shows a token: {v}");
    }
    let (_, c) = app.get("/v1/connectors/eam").await;
    assert_eq!(c["config"]["oauth2"]["client_secret"], "***");
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("delivery failed for good"), "the logs were captured");
    assert!(!logged.contains(CLIENT_SECRET), "the logs show the secret");
    assert!(!logged.contains("tok-2"), "the logs show a token");
}
