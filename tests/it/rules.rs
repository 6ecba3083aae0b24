use serde_json::json;

use crate::helpers::{AmqpNames, Backend, Broker, Options, alert, sandbox_connector, spawn_app, spawn_app_prepared};
use crate::on_both_backends;

async fn conditions_matrix_and_sla_shape_the_order(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(sandbox_connector()).await; // rule "alerts" at position 0
    let (s, _) = app
        .post_json(
            "/v1/rules",
            &json!({
                "name": "hot-bearings", "position": -1,
                "when": {"codes": ["HIGH_TEMPERATURE"], "tags": ["BEDFORD.PUMPING.*.BRG_TEMP"],
                         "condition": "event.value >= 90.0 && context.area == 'Pumping'"},
                "action": {"kind": "create", "connector": "sandbox", "work_type": "emergency",
                           "priority": {"major": {"B": 1, "*": 2}, "critical": {"*": 1}},
                           "title": "Hot bearing {{ asset.id }} at {{ event.value }} {{ event.unit }}"}
            }),
        )
        .await;
    assert_eq!(s, 201);
    let (_, a) = app.post_json("/v1/events", &alert("hot-1")).await;
    let (_, order) = app.get(&format!("/v1/work-orders/{}", a["work_order_id"].as_str().unwrap())).await;
    assert_eq!(order["title"], "Hot bearing MX-101 at 92.1 degC");
    assert_eq!(order["work_type"], "emergency");
    assert_eq!(order["priority"], 1, "major on a criticality-B asset");
    // priority 1 is due 4 hours after the first event (the default SLA table)
    assert_eq!(order["due_by"], "2026-11-24T14:15:00Z");
    let rules = order["trace"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["rule"], "hot-bearings");
    assert_eq!(rules[0]["matched"], true);

    // A cooler reading fails the condition and falls to the next rule.
    let mut cool = alert("cool-1");
    cool["data"]["value"] = json!(80.0);
    let (s, e) = app.post_json("/v1/events", &cool).await;
    assert_eq!(s, 201, "{e}");
    let (_, ev) = app.get(&format!("/v1/events/{}", e["id"].as_str().unwrap())).await;
    let trace = &ev["trace"]["rules"];
    assert!(trace[0]["reason"].as_str().unwrap().contains("condition is false"), "{trace}");
    assert_eq!(trace[1]["rule"], "alerts");
}
on_both_backends!(conditions_matrix_and_sla_shape_the_order);

async fn invalid_expressions_are_refused_with_their_position(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.post_json("/v1/connectors", &sandbox_connector()).await;
    let (s, p) = app
        .post_json(
            "/v1/rules",
            &json!({"name": "bad", "when": {"condition": "event.value > "}, "action": {"kind": "ignore"}}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(p["type"], "urn:workbridge:problem:validation-failed");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.starts_with("when.condition: line 1, column"), "{detail}");
    let (s, p) = app
        .post_json(
            "/v1/rules",
            &json!({"name": "bad", "when": {"condition": "evt.code == 'X'"}, "action": {"kind": "ignore"}}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(p["detail"].as_str().unwrap().contains("unknown variable evt"));
    let (s, _) = app
        .post_json("/v1/rules", &json!({"name": "bad", "when": {"tags": ["[a-"]}, "action": {"kind": "ignore"}}))
        .await;
    assert_eq!(s, 422);
}
on_both_backends!(invalid_expressions_are_refused_with_their_position);

async fn dry_run_decides_without_side_effects(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(sandbox_connector()).await;

    // Against the stored rules: would create.
    let (s, dry) = app.post_json("/v1/rules/test", &json!({"event": alert("dry-1")})).await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(dry["outcome"], "created");
    assert_eq!(dry["would_create"]["title"], "HIGH_TEMPERATURE on Mixer 101 (MX-101)");
    assert_eq!(dry["would_create"]["priority"], 2);
    assert_eq!(dry["would_create"]["dedup_key"], "MX-101:HIGH_TEMPERATURE");
    assert!(app.orders().await.is_empty(), "nothing was created");
    assert_eq!(dry["trace"]["decision"]["outcome"], "created");
    assert!(dry["trace"]["decision"].get("work_order_id").is_none(), "no id of a rolled-back order: {dry}");
    let (_, events) = app.get("/v1/events").await;
    assert_eq!(events["total"], 0, "nothing was stored");

    // With an open order, the dry run names the order it would merge into.
    let (_, real) = app.post_json("/v1/events", &alert("real-1")).await;
    let (_, dry) = app.post_json("/v1/rules/test", &json!({"event": alert("dry-2")})).await;
    assert_eq!(dry["outcome"], "merged");
    assert_eq!(dry["work_order_id"], real["work_order_id"]);
    assert_eq!(app.orders().await[0]["event_count"], 1, "the merge did not happen");

    // A proposed rule set replaces the stored one.
    let (_, dry) = app
        .post_json(
            "/v1/rules/test",
            &json!({"event": alert("dry-3"), "rules": [
                {"name": "quiet", "position": 1, "when": {"codes": ["HIGH_TEMPERATURE"]}, "action": {"kind": "ignore"}},
                {"name": "never", "position": 0, "when": {"sites": ["TEXAS"]}, "action": {"kind": "create", "connector": "sandbox"}}
            ]}),
        )
        .await;
    assert_eq!(dry["outcome"], "ignored");
    assert_eq!(dry["trace"]["rules"][0]["rule"], "quiet", "the TEXAS rule is ruled out by the site index");
    assert_eq!(dry["trace"]["skipped_by_index"], 1);

    // Bad input is a problem, as anywhere.
    let (s, _) = app.post_json("/v1/rules/test", &json!({"event": {"specversion": "1.0"}})).await;
    assert_eq!(s, 422);
    let (s, p) = app
        .post_json("/v1/rules/test", &json!({"event": alert("x"), "rules": [{"name": "b", "when": {"condition": "("}, "action": {"kind": "ignore"}}]}))
        .await;
    assert_eq!(s, 422);
    assert!(p["detail"].as_str().unwrap().starts_with("rules[0]: when.condition"));
}
on_both_backends!(dry_run_decides_without_side_effects);

async fn rules_file_is_applied_at_start_up_by_name(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    let v1 = "rules:\n  - name: pumps\n    position: 1\n    when: {asset_classes: [PUMP]}\n    action: {kind: create, connector: sandbox, priority: 2}\n  - name: quiet-info\n    position: 9\n    when: {condition: \"event.severity == 'info'\"}\n    action: {kind: ignore}\n";
    std::fs::write(&file, v1).unwrap();
    // The connector the file names exists before the file is applied.
    let app =
        spawn_app_prepared(backend, Options { rules_file: Some(file.clone()), ..Default::default() }, async |app| {
            assert_eq!(app.post_json("/v1/connectors", &sandbox_connector()).await.0, 201);
        })
        .await;
    let (_, rules) = app.get("/v1/rules").await;
    let names: Vec<&str> = rules.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pumps", "quiet-info"]);
    // A rule made through the API is left alone by the file.
    let (s, _) = app.post_json("/v1/rules", &json!({"name": "api-made", "action": {"kind": "ignore"}})).await;
    assert_eq!(s, 201);

    // Change one rule and restart: it gets version 2, the other stays at 1.
    std::fs::write(&file, v1.replace("priority: 2", "priority: 1")).unwrap();
    let mut app = app.restart(Options { rules_file: Some(file.clone()), ..Default::default() }).await;
    let (_, rules) = app.get("/v1/rules").await;
    let version = |name: &str| rules.as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["version"].clone();
    assert_eq!(version("pumps"), 2);
    assert_eq!(version("quiet-info"), 1);
    assert_eq!(version("api-made"), 1);

    // A file with an error stops start-up, naming the line.
    app.stop().await;
    std::fs::write(
        &file,
        "rules:\n  - name: broken\n    when: {condition: \"event.value >\"}\n    action: {kind: ignore}\n",
    )
    .unwrap();
    let s =
        crate::helpers::settings(&app.settings.database.url, &Options { rules_file: Some(file), ..Default::default() });
    let err = workbridge::app::Application::build(s).await.err().expect("start-up refuses the file");
    assert!(err.to_string().contains("line 2"), "{err}");
}
on_both_backends!(rules_file_is_applied_at_start_up_by_name);

/// A rules file whose rule names a connector that does not exist stops
/// start-up, naming the rule and the field, as the API refuses such a rule;
/// nothing of the file is applied.
async fn a_rules_file_naming_a_missing_connector_stops_start_up(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(
        &file,
        "rules:\n  - name: fine\n    action: {kind: create, connector: sandbox, priority: 2}\n  - name: pumps\n    action: {kind: create, connector: maximo, priority: 2}\n",
    )
    .unwrap();
    let mut app = spawn_app(backend, Options::default()).await;
    assert_eq!(app.post_json("/v1/connectors", &sandbox_connector()).await.0, 201);
    app.stop().await;
    let s = crate::helpers::settings(
        &app.settings.database.url,
        &Options { rules_file: Some(file.clone()), ..Default::default() },
    );
    let err = workbridge::app::Application::build(s).await.err().expect("start-up refuses the file");
    let err = err.to_string();
    assert!(err.contains("line 4 (rules[1], \"pumps\"): action.connector: connector maximo does not exist"), "{err}");
    assert!(!err.contains("\"fine\""), "{err}");
    // Nothing was applied.
    let app = app.restart(Options::default()).await;
    assert_eq!(app.get("/v1/rules").await.1, json!([]));
}
on_both_backends!(a_rules_file_naming_a_missing_connector_stops_start_up);

/// `workbridge rules validate FILE --connectors a,b` checks the connectors
/// the rules name against the names given (offline, there is no database
/// to ask); without the option it says that it did not check them.
#[test]
fn rules_validate_checks_connector_names_given_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(
        &file,
        "rules:\n  - name: fine\n    action: {kind: create, connector: sandbox, priority: 2}\n  - name: pumps\n    action: {kind: create, connector: maximo, priority: 2}\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_workbridge"))
            .args(["rules", "validate"])
            .arg(&file)
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };
    let out = run(&["--connectors", "sandbox,servicenow"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 4 (rules[1], \"pumps\"): action.connector: connector maximo does not exist"),
        "{stderr}"
    );
    let out = run(&["--connectors", "sandbox", "--connectors", "maximo"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("connectors not checked"), "{stdout}");
}

async fn backtest_compares_proposed_rules_with_what_happened(backend: Backend) {
    use std::sync::Arc;
    let t0: chrono::DateTime<chrono::Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
    let clock = Arc::new(workbridge::clock::ManualClock::new(t0));
    let app = spawn_app(backend, Options { clock: clock.clone(), ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await;
    let at = |id: &str, subject: &str, minutes: i64| {
        let mut e = alert(id);
        e["subject"] = json!(subject);
        e["time"] = json!((t0 + chrono::Duration::minutes(minutes)).to_rfc3339());
        e
    };
    let mut ids = vec![];
    for (id, subject, m) in [
        ("b-1", "BEDFORD.PUMPING.MX101.BRG_TEMP", 0),
        ("b-2", "BEDFORD.PUMPING.MX101.BRG_TEMP", 1),
        ("b-3", "BEDFORD.PUMPING.P504.BRG_TEMP", 2),
    ] {
        clock.advance(chrono::Duration::minutes(1));
        let (s, a) = app.post_json("/v1/events", &at(id, subject, m)).await;
        assert_eq!(s, 201);
        ids.push(a["work_order_id"].as_str().unwrap().to_owned());
    }
    app.eventually("delivered", || async { app.orders().await.iter().all(|o| o["external_id"].is_string()) }).await;
    // The planner works the mixer's order and rejects the pump's as a false alarm.
    for (order, status) in [(&ids[0], "in_progress"), (&ids[2], "cancelled")] {
        let (_, o) = app.get(&format!("/v1/work-orders/{order}")).await;
        let sbx = o["external_id"].as_str().unwrap();
        let (s, _) = app.post_json(&format!("/v1/sandbox/orders/{sbx}/status"), &json!({"status": status})).await;
        assert_eq!(s, 200);
    }
    let range = json!({"since": t0.to_rfc3339(), "until": (t0 + chrono::Duration::hours(1)).to_rfc3339()});

    // The current rules, replayed, reproduce what happened.
    let (s, same) = app.post_json("/v1/rules/backtest", &range).await;
    assert_eq!(s, 200, "{same}");
    assert_eq!(same["events"], 3);
    assert_eq!(same["actual"]["outcomes"], json!({"created": 2, "merged": 1}));
    assert_eq!(same["proposed"]["outcomes"], same["actual"]["outcomes"]);
    assert_eq!(same["actual"]["precision"], 0.5);
    assert_eq!(same["proposed"]["precision"], 0.5);
    assert!(same["changes"].as_array().unwrap().is_empty());

    // Only mixers: the false alarm on the pump would not have been raised.
    let mut only_mixers = range.clone();
    only_mixers["rules"] = json!([{"name": "only-mixers", "when": {"asset_classes": ["MIXER"]},
                                   "action": {"kind": "create", "connector": "sandbox"}}]);
    let (_, r) = app.post_json("/v1/rules/backtest", &only_mixers).await;
    assert_eq!(r["proposed"]["outcomes"], json!({"created": 1, "merged": 1, "no_match": 1}));
    assert_eq!(r["proposed"]["orders"], 1);
    assert_eq!(r["proposed"]["precision"], 1.0);
    assert_eq!(r["orders"][0]["asset_id"], "MX-101");
    assert_eq!(r["orders"][0]["verdict"], "accepted");
    assert_eq!(r["changes"], json!([{"event_id": "b-3", "actual": "created", "proposed": "no_match"}]));

    // A debounce of two occurrences would have held back the first alert of each asset.
    let mut debounced = range.clone();
    debounced["rules"] = json!([{"name": "twice", "action": {"kind": "create", "connector": "sandbox",
                                 "debounce": {"occurrences": 2, "within_minutes": 10}}}]);
    let (_, r) = app.post_json("/v1/rules/backtest", &debounced).await;
    assert_eq!(r["proposed"]["outcomes"], json!({"created": 1, "debounced": 2}));

    // Nothing was written.
    let (_, events) = app.get("/v1/events").await;
    assert_eq!(events["total"], 3);
    assert_eq!(app.orders().await.len(), 2);
    let (s, _) =
        app.post_json("/v1/rules/backtest", &json!({"since": t0.to_rfc3339(), "until": t0.to_rfc3339()})).await;
    assert_eq!(s, 422);

    // A planner calls the mixer's order a false alarm after all: feedback
    // wins over the order's status in precision.
    let (s, f) = app
        .post_json(
            &format!("/v1/work-orders/{}/feedback", ids[0]),
            &json!({"verdict": "false_alarm", "comment": "sensor noise", "author": "j.planner"}),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let (_, o) = app.get(&format!("/v1/work-orders/{}", ids[0])).await;
    assert_eq!(o["feedback"][0]["verdict"], "false_alarm");
    assert_eq!(o["feedback"][0]["source"], "planner");
    let (_, r) = app.post_json("/v1/rules/backtest", &range).await;
    assert_eq!(r["actual"]["precision"], 0.0);
    assert_eq!(r["actual"]["rejected"], 2);
    let (s, _) = app
        .post_json(&format!("/v1/work-orders/{}/feedback", ids[0]), &json!({"verdict": "useful", "author": " "}))
        .await;
    assert_eq!(s, 422);
    let (s, _) = app.post_json("/v1/work-orders/nope/feedback", &json!({"verdict": "useful", "author": "a"})).await;
    assert_eq!(s, 404);
}
on_both_backends!(backtest_compares_proposed_rules_with_what_happened);

/// CEL has no run-time budget: a condition that takes too long refuses the
/// event (HTTP 503, AMQP dead-letter with the reason) instead of holding a
/// worker, and the service goes on deciding once the rule is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_condition_is_cut_off_and_the_event_kept() {
    let names = AmqpNames::new();
    let opts = Options {
        amqp: Some(names.clone()),
        env: vec![("WORKBRIDGE_RULES__EVAL_TIMEOUT_MS", "20".into())],
        ..Default::default()
    };
    let app = spawn_app(Backend::Sqlite, opts).await;
    app.setup_flow(sandbox_connector()).await;
    // Nested comprehensions are refused at save; the costliest a condition
    // may be is still far beyond 20 ms in a test build: over the 128 items
    // of `context`, lists of 1,664 items built 128 times.
    let slow = format!("context.map(x, {}).size() > 0", vec!["context"; 13].join(" + "));
    let slow_alert = |id: &str| {
        let mut a = alert(id);
        a["data"]["context"] = json!((0..128).collect::<Vec<i32>>());
        a
    };
    let (s, rule) = app
        .post_json(
            "/v1/rules",
            &json!({"name": "runaway", "position": -1, "when": {"condition": slow}, "action": {"kind": "ignore"}}),
        )
        .await;
    assert_eq!(s, 201, "{rule}");

    let (s, p) = app.post_json("/v1/events", &slow_alert("slow-http")).await;
    assert_eq!(s, 503, "{p}");
    assert_eq!(p["code"], "rule-evaluation-timeout");
    assert!(p["detail"].as_str().unwrap().contains("20 ms"), "{p}");
    // In a batch, the element is rejected with the same problem.
    let (s, b) = app.post_json("/v1/events", &json!([slow_alert("slow-batch")])).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["items"][0]["error"]["code"], "rule-evaluation-timeout", "{b}");

    app.eventually("the consumer is up", || async { app.get("/readyz").await.0 == 200 }).await;
    let broker = Broker::connect(&names).await;
    broker.publish_structured(&slow_alert("slow-amqp")).await;
    let dead = broker.take(&names.dead_queue, 1).await;
    let headers = dead[0].properties.headers().as_ref().unwrap().inner();
    assert_eq!(
        headers.get("x-workbridge-error-kind"),
        Some(&lapin::types::AMQPValue::LongString("rule_timeout".into()))
    );
    assert_eq!(app.get("/v1/events").await.1["total"], 0, "neither event was decided");

    // Fixed: the same service decides again at once.
    let (s, _) = app
        .client
        .delete(app.url(&format!("/v1/rules/{}", rule["id"].as_str().unwrap())))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert!(s.is_success());
    let (s, e) = app.post_json("/v1/events", &alert("after-fix")).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["outcome"], "created");
    broker.cleanup().await;
}

async fn nested_comprehensions_are_refused_at_save(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.post_json("/v1/connectors", &sandbox_connector()).await;
    // Over a list of 15,000 items this made 225 million steps, on a thread
    // that no deadline can stop.
    let nested = "event.data.readings.exists(r, event.data.readings.exists(s, r == s + 1.0))";
    let rule = json!({"name": "pairs", "when": {"condition": nested}, "action": {"kind": "ignore"}});
    let (s, p) = app.post_json("/v1/rules", &rule).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["type"], "urn:workbridge:problem:validation-failed");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.starts_with("when.condition: line 1, column"), "{detail}");
    assert!(detail.contains("contains another one"), "{detail}");
    // A proposed rule set of a dry run is refused the same way.
    let (s, p) = app.post_json("/v1/rules/test", &json!({"event": alert("x"), "rules": [rule]})).await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("rules[0]: when.condition"), "{p}");
    // One level is fine.
    let one = json!({"name": "any-high", "when": {"condition": "event.data.readings.exists(r, r > 90.0)"}, "action": {"kind": "ignore"}});
    let (s, p) = app.post_json("/v1/rules", &one).await;
    assert_eq!(s, 201, "{p}");
}
on_both_backends!(nested_comprehensions_are_refused_at_save);

/// Dry runs and backtests evaluate under their own permits: with all of
/// them taken (as a flood of slow dry runs would), ingest still decides.
async fn dry_runs_cannot_take_ingests_permits(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(sandbox_connector()).await;
    // A condition, so that evaluation goes through the budget.
    let rule = json!({"name": "very-hot", "position": -1, "when": {"condition": "event.value > 500.0"}, "action": {"kind": "ignore"}});
    let (s, _) = app.post_json("/v1/rules", &rule).await;
    assert_eq!(s, 201);

    let held = app.budgets.1.occupy().await;
    let (s, a) = app.post_json("/v1/events", &alert("ingest-1")).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["outcome"], "created");
    // The dry run waits for its own permits, and gives up at the deadline.
    let (s, p) = app.post_json("/v1/rules/test", &json!({"event": alert("dry-1")})).await;
    assert_eq!(s, 503, "{p}");
    assert_eq!(p["type"], "urn:workbridge:problem:rule-evaluation-timeout");
    drop(held);
    let (s, dry) = app.post_json("/v1/rules/test", &json!({"event": alert("dry-2")})).await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(dry["outcome"], "merged");
}
on_both_backends!(dry_runs_cannot_take_ingests_permits);

/// A dry run evaluates with no database connection held: on SQLite its
/// transaction would hold the one writer, and ingest would wait for it.
async fn a_waiting_dry_run_does_not_hold_the_writer(backend: Backend) {
    let opts = Options { env: vec![("WORKBRIDGE_RULES__EVAL_TIMEOUT_MS", "60000".into())], ..Default::default() };
    let app = spawn_app(backend, opts).await;
    app.setup_flow(sandbox_connector()).await;
    let rule = json!({"name": "very-hot", "position": -1, "when": {"condition": "event.value > 500.0"}, "action": {"kind": "ignore"}});
    let (s, _) = app.post_json("/v1/rules", &rule).await;
    assert_eq!(s, 201);

    let held = app.budgets.1.occupy().await;
    let dry = {
        let (client, url) = (app.client.clone(), app.url("/v1/rules/test"));
        tokio::spawn(async move { client.post(url).json(&json!({"event": alert("dry-1")})).send().await })
    };
    // A head start for the dry run (the test's strength, not its outcome,
    // depends on it): it now waits for a permit, for up to 60 s.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (s, a) = app.post_json("/v1/events", &alert("ingest-1")).await;
    assert_eq!(s, 201, "{a}");
    assert!(!dry.is_finished(), "the dry run is still waiting");
    drop(held);
    let answer = dry.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    let dry: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(dry["outcome"], "merged", "it sees the order ingest opened meanwhile");
}
on_both_backends!(a_waiting_dry_run_does_not_hold_the_writer);
