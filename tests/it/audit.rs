//! The audit trail is written in the transaction of the change it records:
//! a change whose entry cannot be written is not made. The rules file
//! applied at start-up is audited too.

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Options, TestApp, alert, sandbox_connector, spawn_app, spawn_app_prepared};
use crate::on_both_backends;

async fn send(app: &TestApp, verb: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = match verb {
        "POST" => app.client.post(app.url(path)),
        "PUT" => app.client.put(app.url(path)),
        "DELETE" => app.client.delete(app.url(path)),
        _ => unreachable!(),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Makes the database refuse every audit entry from now on (a trigger: the
/// insert really fails, as a full disk or a lost connection would).
async fn refuse_audit_entries(app: &TestApp, backend: Backend) {
    let conn = app.store.conn();
    match backend {
        Backend::Sqlite => {
            conn.execute_unprepared(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
            )
            .await
            .unwrap();
        }
        Backend::Postgres => {
            conn.execute_unprepared(
                "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$ \
                 LANGUAGE plpgsql",
            )
            .await
            .unwrap();
            conn.execute_unprepared(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
            )
            .await
            .unwrap();
        }
    }
}

/// Everything an admin can see of the configuration and the orders.
async fn snapshot(app: &TestApp) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/v1/connectors",
        "/v1/rules",
        "/v1/assets?limit=500",
        "/v1/tag-patterns",
        "/v1/suppressions",
        "/v1/api-keys",
        "/v1/work-orders?limit=500",
        "/v1/audit?limit=500",
    ] {
        let (s, body) = app.get(path).await;
        assert_eq!(s, 200, "{path}: {body}");
        out.insert(path.to_owned(), body);
    }
    Value::Object(out)
}

/// Every audited change, with its audit insert failing, answers 500 and
/// leaves nothing behind: connectors, rules, assets (one, bulk), tag
/// patterns, suppressions, API keys, retries and feedback.
async fn a_change_whose_audit_entry_fails_is_not_made(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(400).set_body_string("no")).mount(&server).await;
    let app = spawn_app(backend, Options { step_deliveries: true, max_attempts: 1, ..Default::default() }).await;
    app.load_demo_assets().await;
    assert_eq!(app.post_json("/v1/connectors", &json!({"name": "spare", "config": {"kind": "sandbox"}})).await.0, 201);
    let rest =
        json!({"name": "rest", "config": {"kind": "rest", "url": format!("{}/orders", server.uri()), "id_path": "id"}});
    assert_eq!(app.post_json("/v1/connectors", &rest).await.0, 201);
    let (s, rule) = app
        .post_json(
            "/v1/rules",
            &json!({"name": "to-rest", "when": {"types": ["tdl.alert"]},
                    "action": {"kind": "create", "connector": "rest", "work_type": "corrective", "priority": 2}}),
        )
        .await;
    assert_eq!(s, 201, "{rule}");
    let (_, a) = app.post_json("/v1/events", &alert("audit-1")).await;
    let failed = a["work_order_id"].as_str().unwrap().to_owned();
    app.deliver().await;
    assert_eq!(app.get(&format!("/v1/work-orders/{failed}")).await.1["status"], "failed");
    let (_, p) = app
        .post_json(
            "/v1/tag-patterns",
            &json!({"pattern": "PLANT_Z\\.(?P<asset>P\\d+)\\..*", "asset_template": "P-{asset}"}),
        )
        .await;
    let pattern = p["id"].as_str().expect("a tag pattern").to_owned();
    let (_, sup) = app
        .post_json(
            "/v1/suppressions",
            &json!({"scope": "asset", "target": "MX-101", "reason": "overhaul", "author": "ops", "ends_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    let (_, key) = app.post_json("/v1/api-keys", &json!({"name": "viewer", "role": "viewer"})).await;
    let rule_id = rule["id"].as_str().unwrap();
    let before = snapshot(&app).await;

    refuse_audit_entries(&app, backend).await;
    let asset = json!({"id": "P-7", "site": "BEDFORD", "name": "Pump 7", "class": "PUMP"});
    let changes: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/v1/connectors".into(), Some(json!({"name": "other", "config": {"kind": "sandbox"}}))),
        ("PUT", "/v1/connectors/rest".into(), Some(json!({"enabled": false, "config": rest["config"]}))),
        ("DELETE", "/v1/connectors/spare".into(), None),
        ("POST", "/v1/rules".into(), Some(json!({"name": "new", "action": {"kind": "ignore"}}))),
        (
            "PUT",
            format!("/v1/rules/{rule_id}"),
            Some(json!({"name": "to-rest", "enabled": false, "action": {"kind": "ignore"}})),
        ),
        ("DELETE", format!("/v1/rules/{rule_id}"), None),
        ("POST", "/v1/assets".into(), Some(asset.clone())),
        ("PUT", "/v1/assets/P-7".into(), Some(asset.clone())),
        ("PUT", "/v1/assets/MX-101".into(), Some(json!({"site": "BEDFORD", "name": "renamed", "class": "MIXER"}))),
        ("DELETE", "/v1/assets/MX-101".into(), None),
        ("POST", "/v1/assets/bulk".into(), Some(json!([asset]))),
        (
            "POST",
            "/v1/tag-patterns".into(),
            Some(json!({"pattern": "PLANT_Y\\.(?P<asset>P\\d+)\\..*", "asset_template": "P-{asset}"})),
        ),
        ("DELETE", format!("/v1/tag-patterns/{pattern}"), None),
        (
            "POST",
            "/v1/suppressions".into(),
            Some(
                json!({"scope": "site", "target": "BEDFORD", "reason": "x", "author": "ops", "ends_at": "2099-01-01T00:00:00Z"}),
            ),
        ),
        ("DELETE", format!("/v1/suppressions/{}", sup["id"].as_str().unwrap()), None),
        ("POST", "/v1/api-keys".into(), Some(json!({"name": "another", "role": "viewer"}))),
        ("DELETE", format!("/v1/api-keys/{}", key["id"].as_str().unwrap()), None),
        ("POST", format!("/v1/work-orders/{failed}/retry"), None),
        (
            "POST",
            format!("/v1/work-orders/{failed}/feedback"),
            Some(json!({"verdict": "false_alarm", "author": "planner"})),
        ),
    ];
    for (verb, path, body) in changes {
        let (s, p) = send(&app, verb, &path, body).await;
        assert_eq!(s, 500, "{verb} {path} fails with its audit entry: {p}");
        assert!(snapshot(&app).await == before, "{verb} {path} changed nothing");
    }
    // The revoked-but-not-revoked key still works.
    let viewer = crate::helpers::client_with_key(key["secret"].as_str().unwrap());
    assert_eq!(viewer.get(app.url("/v1/rules")).send().await.unwrap().status(), 200);
}
on_both_backends!(a_change_whose_audit_entry_fails_is_not_made);

/// Rules applied from the YAML file at start-up are in the audit trail,
/// with the file as the actor: created, then updated (an unchanged rule
/// records nothing).
async fn rules_applied_from_the_file_are_audited(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    let v1 = "rules:\n  - name: pumps\n    when: {asset_classes: [PUMP]}\n    action: {kind: create, connector: sandbox, priority: 2}\n  - name: quiet\n    action: {kind: ignore}\n";
    std::fs::write(&file, v1).unwrap();
    let app =
        spawn_app_prepared(backend, Options { rules_file: Some(file.clone()), ..Default::default() }, async |app| {
            assert_eq!(app.post_json("/v1/connectors", &sandbox_connector()).await.0, 201);
        })
        .await;
    let actor = format!("rules-file:{}", file.display());
    let (_, audit) = app.get("/v1/audit?entity=rule").await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{audit}");
    for item in items {
        assert_eq!(item["action"], "create", "{item}");
        assert_eq!(item["actor_key_id"], actor.as_str(), "{item}");
        assert_eq!(item["after"]["version"], 1, "{item}");
    }

    std::fs::write(&file, v1.replace("priority: 2", "priority: 1")).unwrap();
    let app = app.restart(Options { rules_file: Some(file.clone()), ..Default::default() }).await;
    let (_, audit) = app.get(&format!("/v1/audit?entity=rule&action=update&actor={}", urlencode(&actor))).await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the changed rule: {audit}");
    assert_eq!(items[0]["before"]["action"]["priority"], 2);
    assert_eq!(items[0]["after"]["action"]["priority"], 1);
    assert_eq!(items[0]["after"]["name"], "pumps");
}
on_both_backends!(rules_applied_from_the_file_are_audited);

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
