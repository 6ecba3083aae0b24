//! Regression tests for the security findings of issue 15: each fails on
//! the code before the fix.

use std::sync::Arc;

use serde_json::{Value, json};
use wiremock::matchers::{any, header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};
use workbridge::clock::ManualClock;
use workbridge::sync::webhooks::sign;

use crate::helpers::{
    ADMIN_KEY, Backend, Captured, Options, TestApp, alert, client_with_key, sandbox_connector, spawn_app,
};

async fn key(app: &TestApp, role: &str) -> String {
    let (s, k) = app.post_json("/v1/api-keys", &json!({"name": format!("{role} key"), "role": role})).await;
    assert_eq!(s, 201, "{k}");
    k["secret"].as_str().unwrap().to_owned()
}

async fn send(client: &reqwest::Client, method: &str, url: &str, body: Option<&Value>) -> u16 {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(m, url);
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Spellings of `path` that actix decodes to the same route: one letter or
/// `-` percent-encoded (lower- and upper-case hex).
fn encoded_variants(path: &str) -> Vec<String> {
    let mut out = vec![];
    let segments: Vec<&str> = path.split('/').collect();
    // The first static segment after /v1 (or the first segment), letter by letter.
    let idx = if segments.get(1) == Some(&"v1") { 2 } else { 1 };
    if let Some(seg) = segments.get(idx) {
        for (i, c) in seg.char_indices().filter(|(_, c)| c.is_ascii_alphabetic() || *c == '-').take(3) {
            for hex in [format!("%{:02x}", c as u32), format!("%{:02X}", c as u32)] {
                let mut s = segments.clone();
                let encoded = format!("{}{hex}{}", &seg[..i], &seg[i + 1..]);
                s[idx] = &encoded;
                out.push(s.join("/"));
            }
        }
        if let Some(last) = seg.rfind(|c: char| c.is_ascii_alphabetic()) {
            let c = seg.as_bytes()[last] as char;
            let mut s = segments.clone();
            let encoded = format!("{}%{:02X}{}", &seg[..last], c as u32, &seg[last + 1..]);
            s[idx] = &encoded;
            out.push(s.join("/"));
        }
    }
    out
}

/// No spelling of a path reaches a route the key's role may not call: every
/// documented operation, each non-admin role, several encodings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_paths_reach_no_other_roles_route() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    let (_, doc) = app.get("/openapi.json").await;
    let mut operations = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "delete"] {
            if item.get(m).is_some() {
                operations.push((m.to_uppercase(), path.replace("{id}", "x").replace("{name}", "x")));
            }
        }
    }
    assert!(operations.len() > 40, "every documented operation: {}", operations.len());
    let mut checked = 0;
    for role in ["planner", "viewer", "ingest"] {
        let client = client_with_key(&key(&app, role).await);
        for (m, path) in &operations {
            let plain = send(&client, m, &app.url(path), Some(&json!({}))).await;
            if plain != 403 {
                continue;
            }
            for variant in encoded_variants(path) {
                let got = send(&client, m, &app.url(&variant), Some(&json!({}))).await;
                assert_eq!(got, 403, "{role} {m} {variant} (plain {path}: 403)");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "encoded variants checked: {checked}");
    // The probe's own examples.
    let viewer = client_with_key(&key(&app, "viewer").await);
    let planner = client_with_key(&key(&app, "planner").await);
    for (client, path) in [(&viewer, "/v1/api%2Dkeys"), (&viewer, "/v1/%61udit"), (&planner, "/v1/audi%74")] {
        assert_eq!(send(client, "GET", &app.url(path), None).await, 403, "{path}");
    }
    // The right key still reaches the route by any spelling.
    assert_eq!(send(&app.client, "GET", &app.url("/v1/api%2Dkeys"), None).await, 200);
}

async fn webhook(app: &TestApp, connector: &str, secret: &[u8], id: &str, ts: i64, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let r = reqwest::Client::new()
        .post(app.url(&format!("/v1/webhooks/{connector}")))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign(secret, id, ts, &bytes))
        .body(bytes)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

const WH_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An unknown connector, one without webhooks and a bad signature answer
/// alike; a flood of signature candidates is refused; `/readyz` shows
/// connectors only to a key; receipts are pruned after the replay window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_tell_nothing_and_cost_little() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app(Backend::Sqlite, Options { clock: clock.clone(), ..Default::default() }).await;
    app.setup_flow(json!({"name": "eam", "config": {"kind": "sandbox"}, "webhook": {"secrets": [WH_SECRET]}})).await;
    let (s, _) = app.post_json("/v1/connectors", &json!({"name": "plain", "config": {"kind": "sandbox"}})).await;
    assert_eq!(s, 201);
    let (_, a) = app.post_json("/v1/events", &alert("wh-sec-1")).await;
    let order = a["work_order_id"].as_str().unwrap().to_owned();
    let secret = workbridge::sync::webhooks::decode_secret(WH_SECRET).unwrap();
    let wrong = workbridge::sync::webhooks::decode_secret("whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=").unwrap();
    let now = clock.now_ts();
    let report = json!({"reference": order, "status": "in_progress"});

    let unknown = webhook(&app, "no-such-connector", &secret, "m-1", now, &report).await;
    let no_webhooks = webhook(&app, "plain", &secret, "m-2", now, &report).await;
    let bad_signature = webhook(&app, "eam", &wrong, "m-3", now, &report).await;
    assert_eq!(unknown.0, 401);
    assert_eq!(unknown, no_webhooks, "no webhooks reads as unknown");
    assert_eq!(unknown, bad_signature, "a bad signature reads as unknown");

    // 400 candidates (as many as fit the server's header limit): refused
    // before any MAC is computed (the old code computed one per candidate
    // and secret, 15,000 × 2 in the probe).
    let bytes = serde_json::to_vec(&report).unwrap();
    let flood = vec!["v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; 400].join(" ");
    let r = reqwest::Client::new()
        .post(app.url("/v1/webhooks/eam"))
        .header("webhook-id", "m-4")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", flood)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // An extreme timestamp is refused, not an overflow (a 500 before).
    let r = webhook(&app, "eam", &secret, "m-5", i64::MIN, &report).await;
    assert_eq!(r.0, 401);

    // Signed right: applied once; the same id again is a duplicate.
    let ok = webhook(&app, "eam", &secret, "m-6", now, &report).await;
    assert_eq!(ok.0, 200, "{:?}", ok.1);
    assert_eq!(ok.1["duplicate"], false);
    assert_eq!(webhook(&app, "eam", &secret, "m-6", now, &report).await.1["duplicate"], true);
    // After the replay window the receipt is gone: a sender that signs the
    // same id anew (it can only with the secret) is no longer a duplicate,
    // so the table holds only the window.
    clock.advance(chrono::Duration::minutes(11));
    let later = clock.now_ts();
    let again = webhook(&app, "eam", &secret, "m-6", later, &report).await;
    assert_eq!((again.0, &again.1["duplicate"]), (200, &json!(false)), "{:?}", again.1);

    // /readyz: plain status without a key, connector detail with one.
    let anon: Value = reqwest::get(app.url("/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(anon["status"], "ready");
    assert_eq!(anon["connectors"], json!({}), "{anon}");
    assert!(anon["outbox_pending"].is_null() && anon["unmapped_events"].is_null(), "{anon}");
    let (_, keyed) = app.get("/readyz").await;
    assert!(keyed["connectors"]["eam"].is_object(), "{keyed}");
}

trait NowTs {
    fn now_ts(&self) -> i64;
}
impl NowTs for ManualClock {
    fn now_ts(&self) -> i64 {
        workbridge::clock::Clock::now(self).timestamp()
    }
}

/// Webhook secrets shorter than 24 bytes are refused when saved, and when a
/// reference resolves to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_short_webhook_secrets_are_refused() {
    // SAFETY: nextest runs each test in its own process; set before the app starts.
    unsafe { std::env::set_var("EAM_SECRET_EMPTY_WEBHOOK", "") };
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    for weak in ["", "whsec_", "whsec_c2hvcnQ="] {
        let (s, p) = app
            .post_json(
                "/v1/connectors",
                &json!({"name": "wh", "config": {"kind": "sandbox"}, "webhook": {"secrets": [weak]}}),
            )
            .await;
        assert_eq!(s, 422, "{weak:?}: {p}");
        assert!(p["detail"].as_str().unwrap().contains("24"), "{p}");
    }
    app.setup_flow(json!({"name": "wh", "config": {"kind": "sandbox"},
        "webhook": {"secrets": [{"env": "EAM_SECRET_EMPTY_WEBHOOK"}]}}))
        .await;
    let (_, a) = app.post_json("/v1/events", &alert("wh-empty-1")).await;
    let report = json!({"reference": a["work_order_id"], "status": "completed"});
    // Signed with the empty key, as anyone could.
    let (s, _) = webhook(&app, "wh", b"", "forged-1", chrono::Utc::now().timestamp(), &report).await;
    assert_eq!(s, 401);
    let (_, o) = app.get(&format!("/v1/work-orders/{}", a["work_order_id"].as_str().unwrap())).await;
    assert_ne!(o["status"], "completed", "{o}");
}

/// Secret references read only allowed files and variables; a refused one
/// gets the same error whether or not it exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_references_are_confined_to_the_allowed_places() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("secrets");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("maximo"), "file-api-key-123\n").unwrap();
    std::fs::write(root.path().join("host-file"), "host-secret-content").unwrap();
    std::os::unix::fs::symlink(root.path().join("host-file"), dir.join("escape")).unwrap();
    let opts = Options { env: vec![("WORKBRIDGE_SECRETS__DIRS", dir.display().to_string())], ..Default::default() };
    let app = spawn_app(Backend::Sqlite, opts).await;
    let eam = MockServer::start().await;
    let maximo = |name: &str, api_key: Value| json!({"name": name, "config": {"kind": "maximo", "base_url": eam.uri(), "api_key": api_key}});
    let mut details = vec![];
    for refused in [
        json!({"file": "/etc/passwd"}),
        json!({"file": "/proc/self/environ"}),
        json!({"file": format!("{}/../host-file", dir.display())}),
        json!({"file": "/no/such/file"}),
        json!({"env": "WORKBRIDGE_ADMIN_KEY"}),
        json!({"env": "HOME"}),
    ] {
        let (s, p) = app.post_json("/v1/connectors", &maximo("m", refused.clone())).await;
        assert_eq!(s, 422, "{refused}: {p}");
        details.push(p["detail"].as_str().unwrap().to_owned());
    }
    details.dedup();
    assert_eq!(details.len(), 1, "one generic error: {details:?}");
    assert!(!details[0].contains("passwd") && !details[0].contains("No such file"), "{}", details[0]);

    // Allowed: the file's content is the key the EAM receives.
    Mock::given(method("POST"))
        .and(header("apikey", "file-api-key-123"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"wonum": "1001", "siteid": "BEDFORD",
            "status": "WAPPR", "href": format!("{}/maximo/api/os/mxapiwodetail/_QkVERk9SRC8xMDAx", eam.uri())})))
        .mount(&eam)
        .await;
    app.setup_flow(maximo("eam", json!({"file": dir.join("maximo").display().to_string()}))).await;
    app.post_json("/v1/events", &alert("sec-file-1")).await;
    app.eventually("delivered", || async { app.orders().await[0]["external_id"] == "1001" }).await;

    // A link inside the directory that points outside is refused when used,
    // and what it points at is never sent.
    let (s, _) = app
        .client
        .put(app.url("/v1/connectors/eam"))
        .json(&maximo("eam", json!({"file": dir.join("escape").display().to_string()})))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(s, 200);
    let mut other = alert("sec-file-2");
    other["subject"] = json!("BEDFORD.PUMPING.P504.BRG_TEMP");
    let (_, a) = app.post_json("/v1/events", &other).await;
    let id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("failed", || async { app.get(&format!("/v1/work-orders/{id}")).await.1["status"] == "failed" })
        .await;
    let sent = eam.received_requests().await.unwrap();
    assert!(sent.iter().all(|r| r.headers.get("apikey").is_none_or(|v| v != "host-secret-content")));
}

/// Redirects are not followed (the credential would go along), and no
/// `Referer` is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_another_host_are_not_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"wonum": "6"})))
        .mount(&elsewhere)
        .await;
    let eam = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(302).insert_header("location", format!("{}/steal", elsewhere.uri())))
        .mount(&eam)
        .await;
    let app = spawn_app(Backend::Sqlite, Options { max_attempts: 1, ..Default::default() }).await;
    app.setup_flow(
        json!({"name": "eam", "config": {"kind": "maximo", "base_url": eam.uri(), "api_key": "redirected-key-1"}}),
    )
    .await;
    let (_, a) = app.post_json("/v1/events", &alert("redirect-1")).await;
    let id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("failed", || async { app.get(&format!("/v1/work-orders/{id}")).await.1["status"] == "failed" })
        .await;
    assert!(elsewhere.received_requests().await.unwrap().is_empty(), "the redirect was followed");
    let sent = eam.received_requests().await.unwrap();
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|r| r.headers.get("referer").is_none()));
    let (_, o) = app.get(&format!("/v1/work-orders/{id}")).await;
    assert!(o["last_error"].as_str().unwrap_or_default().contains("302"), "{o}");
    // Link-local destinations (cloud metadata) are refused when saved.
    let (s, p) = app
        .post_json(
            "/v1/connectors",
            &json!({"name": "meta", "config": {"kind": "rest", "url": "http://169.254.169.254/latest/meta-data", "id_path": "id"}}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
}

/// Changing WORKBRIDGE_ADMIN_KEY revokes the key its earlier value seeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_admin_key_revokes_the_earlier_one() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    let new_key = "wb_rotated_admin_key_0123456789abcdefXYZ";
    let app = app.restart(Options { env: vec![("WORKBRIDGE_ADMIN_KEY", new_key.into())], ..Default::default() }).await;
    let old = client_with_key(ADMIN_KEY);
    let new = client_with_key(new_key);
    assert_eq!(send(&old, "GET", &app.url("/v1/api-keys"), None).await, 401, "the earlier seeded key still works");
    assert_eq!(send(&new, "GET", &app.url("/v1/api-keys"), None).await, 200);
    let keys: Value = new.get(app.url("/v1/api-keys")).send().await.unwrap().json().await.unwrap();
    let active = keys.as_array().unwrap().iter().filter(|k| k["role"] == "admin" && k["revoked_at"].is_null()).count();
    assert_eq!(active, 1, "{keys}");
    // Set back: the first value works again, the second is revoked.
    let app = app.restart(Options::default()).await;
    assert_eq!(send(&old, "GET", &app.url("/v1/api-keys"), None).await, 200);
    assert_eq!(send(&new, "GET", &app.url("/v1/api-keys"), None).await, 401);
}

/// Failed authentications are logged (hash prefix, client) and a client
/// that keeps failing is answered 429 for the rest of the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_logged_and_slowed() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init();
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    let mut statuses = vec![];
    for i in 0..25 {
        let guess = client_with_key(&format!("wb_guess_{i:04}"));
        let r = guess.get(app.url("/v1/events")).send().await.unwrap();
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..20], &[401; 20]);
    assert_eq!(&statuses[20..], &[429; 5], "{statuses:?}");
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("authentication failed") && logged.contains("key_hash"), "{logged}");
    assert!(logged.contains("127.0.0.1"), "the client address is logged");
    assert!(!logged.contains("wb_guess_0001"), "the key itself is never logged");
    // The access log names the path, never the query string.
    // (An open route, as this address is locked out; the parameter is not
    // one of its own, so the answer is a 400 that names it, not its value.)
    let admin_from_elsewhere = app.client.get(app.url("/healthz?probe=secret-query-value")).send().await.unwrap();
    assert_eq!(admin_from_elsewhere.status(), 400);
    let problem = admin_from_elsewhere.text().await.unwrap();
    assert!(problem.contains("probe") && !problem.contains("secret-query-value"), "{problem}");
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("GET /healthz 400"), "{logged}");
    assert!(!logged.contains("secret-query-value"), "{logged}");
}

/// Ids with control or bidirectional characters, or a `/` in an asset id,
/// are refused before anything is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_with_control_characters_are_refused() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    for id in ["P-1\r\nX-Injected: 1", "P\u{0}1", "P\u{202E}1", "P/1"] {
        let (s, p) =
            app.post_json("/v1/assets", &json!({"id": id, "site": "BEDFORD", "name": "Pump", "class": "PUMP"})).await;
        assert_eq!(s, 422, "{id:?}: {p}");
        assert!(p["detail"].as_str().unwrap().contains("id"), "{p}");
    }
    let csv = "external_id,site,name,class,criticality,parent,eam_system,tags\nOK-1,BEDFORD,Pump,PUMP,,,,\n\"BAD\r\n1\",BEDFORD,Pump,PUMP,,,,\n";
    let r =
        app.client.post(app.url("/v1/assets/bulk")).header("content-type", "text/csv").body(csv).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let result: Value = r.json().await.unwrap();
    assert_eq!((result["created"].as_u64(), result["rejected"].as_u64()), (Some(1), Some(1)), "{result}");
    assert_eq!(result["errors"][0]["row"], 2, "{result}");
    let (_, assets) = app.get("/v1/assets").await;
    assert_eq!(assets["total"], 1, "only the valid row is stored: {assets}");
    let mut event = alert("ok-id");
    event["id"] = json!("evt-1\nInjected: yes");
    let (s, p) = app.post_json("/v1/events", &event).await;
    assert_eq!(s, 422, "{p}");
    let (_, events) = app.get("/v1/events").await;
    assert_eq!(events["total"], 0);
}

/// An EAM error that echoes the request's credentials is stored and shown
/// with the credentials masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_echoed_by_the_eam_are_masked() {
    const KEY: &str = "maximo-api-key-7f3a9c";
    let eam = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"Error": {
            "message": format!("BMXAA0001E - bad request; headers were apikey={KEY}"), "statusCode": "400"}})))
        .mount(&eam)
        .await;
    let sn = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_string("rejected: Authorization: Basic d29ya2JyaWRnZTpzbi1wYXNzd29yZC05OQ=="),
        )
        .mount(&sn)
        .await;
    let app = spawn_app(Backend::Sqlite, Options { max_attempts: 1, ..Default::default() }).await;
    app.setup_flow(json!({"name": "eam", "config": {"kind": "maximo", "base_url": eam.uri(), "api_key": KEY}})).await;
    let (s, _) = app
        .post_json(
            "/v1/connectors",
            &json!({"name": "sn", "config": {"kind": "servicenow", "instance_url": sn.uri(),
                "username": "workbridge", "password": "sn-password-99"}}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = app
        .post_json(
            "/v1/rules",
            &json!({"name": "sn", "when": {"types": ["tdl.anomaly"]},
                "action": {"kind": "create", "connector": "sn", "work_type": "inspection", "priority": 3}}),
        )
        .await;
    assert_eq!(s, 201);
    app.post_json("/v1/events", &alert("mask-1")).await;
    let mut anomaly = alert("mask-2");
    anomaly["type"] = json!("tdl.anomaly");
    anomaly["subject"] = json!("BEDFORD.PUMPING.P504.BRG_TEMP");
    app.post_json("/v1/events", &anomaly).await;
    app.eventually("both failed", || async {
        let o = app.orders().await;
        o.len() == 2 && o.iter().all(|o| o["status"] == "failed")
    })
    .await;
    let mut seen = vec![app.get("/v1/deliveries").await.1];
    for o in app.orders().await {
        seen.push(app.get(&format!("/v1/work-orders/{}", o["id"].as_str().unwrap())).await.1);
    }
    let text = serde_json::to_string(&seen).unwrap();
    assert!(!text.contains(KEY), "{text}");
    assert!(!text.contains("sn-password-99") && !text.contains("d29ya2JyaWRnZTpzbi1wYXNzd29yZC05OQ"), "{text}");
    assert!(text.contains("apikey=***") && text.contains("Basic ***"), "{text}");
}

/// nosniff everywhere, no-store on the API, no framing of the docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_the_security_headers() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    app.setup_flow(sandbox_connector()).await;
    for path in ["/healthz", "/v1/events", "/openapi.json", "/docs/", "/v1/nothing"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let r =
        app.client.post(app.url("/v1/api-keys")).json(&json!({"name": "k", "role": "viewer"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store", "a key's one-time secret must not be cached");
    let r = app.client.get(app.url("/docs/")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}
