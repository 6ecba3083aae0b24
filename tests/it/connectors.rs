//! Connectors as an administrator handles them: a connector that rules or
//! open orders use cannot be deleted, and a configuration read back (its
//! secrets masked as `***`) can be sent again without losing the secrets.

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Options, TestApp, alert, sandbox_connector, spawn_app};
use crate::on_both_backends;

async fn put(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let r = app.client.put(app.url(path)).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete(app: &TestApp, path: &str) -> (u16, Option<String>, Value) {
    let r = app.client.delete(app.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    (status, ctype, r.json().await.unwrap_or(Value::Null))
}

/// A connector that an enabled rule or an open order uses answers 409 to a
/// delete, naming the rules and counting the orders; once neither holds,
/// it can go.
async fn a_connector_in_use_cannot_be_deleted(backend: Backend) {
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await;

    // An enabled rule uses it.
    let (s, ctype, p) = delete(&app, "/v1/connectors/sandbox").await;
    assert_eq!(s, 409, "{p}");
    assert_eq!(ctype.as_deref(), Some("application/problem+json"));
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("\"alerts\""), "names the rule: {detail}");
    assert!(detail.contains("0 open work orders"), "{detail}");

    // An open order uses it (the rule is disabled meanwhile).
    let (_, a) = app.post_json("/v1/events", &alert("in-use-1")).await;
    let order = a["work_order_id"].as_str().unwrap().to_owned();
    app.deliver().await;
    let (_, rules) = app.get("/v1/rules").await;
    let rule = rules[0].clone();
    let (s, body) = put(
        &app,
        &format!("/v1/rules/{}", rule["id"].as_str().unwrap()),
        &json!({"name": "alerts", "enabled": false, "when": rule["when"], "action": rule["action"]}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, _, p) = delete(&app, "/v1/connectors/sandbox").await;
    assert_eq!(s, 409, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("1 open work order"), "{detail}");
    assert!(!detail.contains("\"alerts\""), "a disabled rule does not hold it: {detail}");

    // The order closes in the EAM: nothing uses the connector any more.
    let (_, o) = app.get(&format!("/v1/work-orders/{order}")).await;
    let external = o["external_id"].as_str().expect("delivered to the sandbox").to_owned();
    let (s, body) = app.post_json(&format!("/v1/sandbox/orders/{external}/status"), &json!({"status": "closed"})).await;
    assert_eq!(s, 200, "{body}");
    let (s, _, p) = delete(&app, "/v1/connectors/sandbox").await;
    assert_eq!(s, 204, "{p}");
    let (s, _) = app.get("/v1/connectors/sandbox").await;
    assert_eq!(s, 404);
}
on_both_backends!(a_connector_in_use_cannot_be_deleted);

const WHSEC_1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WHSEC_2: &str = "whsec_dGhpcyBpcyB0aGUgc2Vjb25kIHNpZ25pbmcga2V5";

/// Each kind with every secret field it has, given literally.
fn with_secrets(url: &str) -> Vec<Value> {
    vec![
        json!({"name": "mx", "config": {"kind": "maximo", "base_url": url, "api_key": "mx-secret-key", "timeout_ms": 500},
               "webhook": {"secrets": [WHSEC_1, WHSEC_2]}}),
        json!({"name": "s4", "config": {"kind": "sap", "service_url": url, "username": "WB", "password": "sap-pa55word"}}),
        json!({"name": "sn-basic", "config": {"kind": "servicenow", "instance_url": url, "username": "wb", "password": "sn-pa55word"}}),
        json!({"name": "sn-oauth", "config": {"kind": "servicenow", "instance_url": url,
               "oauth2": {"token_url": format!("{url}/oauth_token.do"), "client_id": "wb", "client_secret": "sn-client-secret"}}}),
        json!({"name": "rest", "config": {"kind": "rest", "url": format!("{url}/orders"), "id_path": "id",
               "headers": {"Authorization": "Bearer rest-token-123", "X-Api-Key": "rest-key-456", "Accept": "application/json"},
               "oauth2": {"token_url": format!("{url}/token"), "client_id": "wb", "client_secret": "rest-client-secret"}}}),
    ]
}

/// The literal secrets of a stored connector, as the service would use them.
async fn stored_secrets(app: &TestApp, name: &str) -> Vec<String> {
    let c = workbridge::decisions::stored_connectors::get(app.store.conn(), name).await.unwrap().unwrap();
    let literal = |v: &workbridge::connectors::HeaderValue| match v {
        workbridge::connectors::HeaderValue::Literal(s) => s.clone(),
        other => format!("{other:?}"),
    };
    let mut out: Vec<String> = c.config.secret_refs().into_iter().map(literal).collect();
    out.extend(c.webhook.iter().flat_map(|w| w.secrets.iter().map(literal)));
    out
}

/// A `GET` masks every literal secret as `***`; a `PUT` of that same
/// document (to change `timeout_ms`) keeps the stored secrets, for every
/// secret field of every kind, and the EAM still receives the real key.
async fn a_masked_secret_sent_back_keeps_the_stored_one(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"wonum": "1001", "siteid": "BEDFORD", "status": "WAPPR",
            "href": format!("{}/maximo/api/os/mxapiwodetail/_QkVERk9SRC8xMDAx", server.uri())})),
        )
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    app.load_demo_assets().await;
    for c in with_secrets(&server.uri()) {
        let name = c["name"].as_str().unwrap();
        let (s, body) = app.post_json("/v1/connectors", &c).await;
        assert_eq!(s, 201, "{body}");
        let before = stored_secrets(&app, name).await;
        assert!(!before.is_empty() && before.iter().all(|s| s != "***"), "{name}: {before:?}");

        let (_, mut shown) = app.get(&format!("/v1/connectors/{name}")).await;
        assert!(shown.to_string().contains("\"***\""), "{name}: {shown}");
        assert!(!before.iter().any(|s| shown.to_string().contains(s.as_str())), "{name} shows no secret");
        shown["config"]["timeout_ms"] = json!(2500);
        let input = json!({"enabled": shown["enabled"], "config": shown["config"], "webhook": shown["webhook"]});
        let (s, body) = put(&app, &format!("/v1/connectors/{name}"), &input).await;
        assert_eq!(s, 200, "{name}: {body}");
        assert_eq!(body["config"]["timeout_ms"], 2500);
        assert_eq!(stored_secrets(&app, name).await, before, "{name} keeps its secrets");
    }

    // The EAM receives the real key, not `***`.
    let (s, body) = app
        .post_json(
            "/v1/rules",
            &json!({"name": "mx", "action": {"kind": "create", "connector": "mx", "work_type": "corrective", "priority": 2}}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (_, body) = app.post_json("/v1/events", &alert("masked-1")).await;
    assert!(body["work_order_id"].is_string(), "{body}");
    app.deliver().await;
    let requests = server.received_requests().await.unwrap();
    let create = requests.iter().find(|r| r.method == wiremock::http::Method::POST).expect("a create reached Maximo");
    assert_eq!(create.headers["apikey"], "mx-secret-key");

    // A new secret replaces the stored one; a reference replaces it too.
    let (_, shown) = app.get("/v1/connectors/mx").await;
    let mut config = shown["config"].clone();
    config["api_key"] = json!("mx-new-key");
    let (s, body) =
        put(&app, "/v1/connectors/mx", &json!({"config": config, "webhook": {"secrets": ["***", WHSEC_1]}})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(stored_secrets(&app, "mx").await, ["mx-new-key", WHSEC_1, WHSEC_1]);
}
on_both_backends!(a_masked_secret_sent_back_keeps_the_stored_one);

/// `***` where no secret is stored is refused, naming the field: on a
/// create, in a field the stored connector does not have, or at a webhook
/// secret's position that holds none.
async fn a_mask_with_no_stored_secret_behind_it_is_refused(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    let url = "https://eam.example.com";
    let (s, p) = app
        .post_json(
            "/v1/connectors",
            &json!({"name": "mx", "config": {"kind": "maximo", "base_url": url, "api_key": "***"}}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("config.api_key:"), "{p}");

    for c in with_secrets(url) {
        let (s, body) = app.post_json("/v1/connectors", &c).await;
        assert_eq!(s, 201, "{body}");
    }
    // ServiceNow from basic to OAuth2 with a masked client secret: nothing to keep.
    let (s, p) = put(
        &app,
        "/v1/connectors/sn-basic",
        &json!({"config": {"kind": "servicenow", "instance_url": url,
                "oauth2": {"token_url": format!("{url}/oauth_token.do"), "client_id": "wb", "client_secret": "***"}}}),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("config.oauth2.client_secret:"), "{p}");
    // A new sensitive header given as `***`.
    let (_, shown) = app.get("/v1/connectors/rest").await;
    let mut config = shown["config"].clone();
    config["headers"]["X-Auth-Token"] = json!("***");
    let (s, p) = put(&app, "/v1/connectors/rest", &json!({"config": config})).await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("config.headers.X-Auth-Token:"), "{p}");
    // A third webhook secret given as `***`.
    let (_, shown) = app.get("/v1/connectors/mx").await;
    let (s, p) = put(
        &app,
        "/v1/connectors/mx",
        &json!({"config": shown["config"], "webhook": {"secrets": ["***", "***", "***"]}}),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("webhook.secrets[2]:"), "{p}");
    // Another kind under the same name keeps nothing either.
    let (s, p) = put(
        &app,
        "/v1/connectors/s4",
        &json!({"config": {"kind": "servicenow", "instance_url": url, "username": "wb", "password": "***"}}),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("config.password:"), "{p}");
    // A masked secret is kept only for the hosts it was given for.
    let (_, shown) = app.get("/v1/connectors/mx").await;
    let mut config = shown["config"].clone();
    config["base_url"] = json!("https://elsewhere.example.net");
    let (s, p) = put(&app, "/v1/connectors/mx", &json!({"config": config})).await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("config.api_key:"), "{p}");
    // Nothing of that changed the stored secrets.
    assert_eq!(stored_secrets(&app, "mx").await, ["mx-secret-key", WHSEC_1, WHSEC_2]);
}
on_both_backends!(a_mask_with_no_stored_secret_behind_it_is_refused);
