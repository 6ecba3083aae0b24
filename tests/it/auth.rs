//! API keys and roles on every route group.

use serde_json::{Value, json};

use crate::helpers::{Backend, Options, TestApp, alert, client_with_key, sandbox_connector, spawn_app};
use crate::on_both_backends;

async fn key(app: &TestApp, role: &str) -> (String, String) {
    let (s, k) = app.post_json("/v1/api-keys", &json!({"name": format!("{role} key"), "role": role})).await;
    assert_eq!(s, 201, "{k}");
    (k["id"].as_str().unwrap().to_owned(), k["secret"].as_str().unwrap().to_owned())
}

async fn status(app: &TestApp, client: &reqwest::Client, method: &str, path: &str, body: Option<Value>) -> u16 {
    let url = app.url(path);
    let req = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        "DELETE" => client.delete(url),
        _ => unreachable!(),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    if s == 401 || s == 403 {
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    s
}

async fn every_role_on_every_route_group(backend: Backend) {
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await;
    let (_, a) = app.post_json("/v1/events", &alert("auth-1")).await;
    let order = a["work_order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.deliver().await, 1, "the order is delivered in one round");
    let sbx = app.orders().await[0]["external_id"].as_str().unwrap().to_owned();

    let mut clients = vec![("none", reqwest::Client::new()), ("unknown", client_with_key("wb_not_a_key"))];
    let mut viewer_id = String::new();
    for role in ["admin", "planner", "viewer", "ingest"] {
        let (id, secret) = key(&app, role).await;
        if role == "viewer" {
            viewer_id = id;
        }
        clients.push((role, client_with_key(&secret)));
    }
    let feedback = json!({"verdict": "useful", "author": "someone"});
    let rule = |n: &str| json!({"name": n, "action": {"kind": "ignore"}});
    // (method, path, body, expected status for none, unknown, admin, planner, viewer, ingest)
    let cases: Vec<(&str, String, Option<Value>, [u16; 6])> = vec![
        ("GET", "/healthz".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/metrics".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/openapi.json".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/v1/events".into(), None, [401, 401, 200, 200, 200, 403]),
        ("GET", format!("/v1/work-orders/{order}"), None, [401, 401, 200, 200, 200, 403]),
        ("GET", "/v1/kpis".into(), None, [401, 401, 200, 200, 200, 403]),
        // the admin stores it (201); when the ingest key sends it again it is a duplicate (200)
        ("POST", "/v1/events".into(), Some(alert("auth-2")), [401, 401, 201, 403, 403, 200]),
        ("POST", format!("/v1/work-orders/{order}/feedback"), Some(feedback), [401, 401, 201, 201, 403, 403]),
        (
            "POST",
            format!("/v1/sandbox/orders/{sbx}/status"),
            Some(json!({"status": "acknowledged"})),
            [401, 401, 200, 200, 403, 403],
        ),
        ("POST", "/v1/rules/test".into(), Some(json!({"event": alert("auth-3")})), [401, 401, 200, 200, 403, 403]),
        ("GET", "/v1/api-keys".into(), None, [401, 401, 200, 403, 403, 403]),
        (
            "POST",
            "/v1/suppressions".into(),
            Some(
                json!({"scope": "site", "target": "X", "ends_at": "2030-01-01T00:00:00Z", "reason": "r", "author": "a"}),
            ),
            [401, 401, 201, 403, 403, 403],
        ),
    ];
    for (method, path, body, expected) in &cases {
        for ((who, client), want) in clients.iter().zip(expected) {
            let got = status(&app, client, method, path, body.clone()).await;
            assert_eq!(got, *want, "{who} {method} {path}");
        }
    }
    let admin = &clients[2].1;
    for (i, (who, client)) in clients.iter().enumerate() {
        let want = if *who == "admin" {
            201
        } else if i < 2 {
            401
        } else {
            403
        };
        assert_eq!(
            status(&app, client, "POST", "/v1/rules", Some(rule(&format!("r-{who}")))).await,
            want,
            "{who} POST /v1/rules"
        );
    }

    // The audit trail names who changed what, with before/after and no secrets.
    let (s, audit) = app.get("/v1/audit?entity=connector").await;
    assert_eq!(s, 200);
    assert_eq!(audit["items"][0]["action"], "create");
    assert_eq!(audit["items"][0]["actor_name"], "admin (WORKBRIDGE_ADMIN_KEY)");
    assert_eq!(audit["items"][0]["after"]["config"]["kind"], "sandbox");
    let (_, rules) = app.get("/v1/audit?entity=rule&action=create").await;
    assert_eq!(rules["total"], 2, "setup's rule and the admin's r-admin");
    let (_, fb) = app.get(&format!("/v1/audit?entity=work_order&entity_id={order}")).await;
    let actors: Vec<&str> = fb["items"].as_array().unwrap().iter().map(|e| e["actor_name"].as_str().unwrap()).collect();
    assert_eq!(actors, ["planner key", "admin key"], "both feedbacks, newest first");
    let (_, keys) = app.get("/v1/audit?entity=api_key").await;
    assert!(!keys.to_string().contains("wb_"), "no secret in the audit trail");
    assert_eq!(status(&app, &clients[3].1, "GET", "/v1/audit", None).await, 403);

    // Keys are listed without secrets; a revoked key stops working at once.
    let r = admin.get(app.url("/v1/api-keys")).send().await.unwrap().text().await.unwrap();
    assert!(!r.contains("secret") && !r.contains("wb_"), "{r}");
    assert_eq!(status(&app, &clients[4].1, "GET", "/v1/events", None).await, 200);
    assert_eq!(status(&app, admin, "DELETE", &format!("/v1/api-keys/{viewer_id}"), None).await, 204);
    assert_eq!(status(&app, &clients[4].1, "GET", "/v1/events", None).await, 401);
}
on_both_backends!(every_role_on_every_route_group);
