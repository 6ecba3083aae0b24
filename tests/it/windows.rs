//! Suppression windows, cooldown, debounce, clear handling and shadow rules,
//! with time controlled by an injected clock (and the events' own times).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use workbridge::clock::ManualClock;

use crate::helpers::{Backend, FIXTURES, Options, TestApp, alert, sandbox_connector, spawn_app};
use crate::on_both_backends;

fn t0() -> DateTime<Utc> {
    "2026-11-24T10:00:00Z".parse().unwrap()
}

async fn app_with_rule(backend: Backend, clock: Arc<ManualClock>, rules: &[Value]) -> TestApp {
    let app = spawn_app(backend, Options { clock, ..Default::default() }).await;
    let csv = std::fs::read_to_string(format!("{FIXTURES}/assets-demo.csv")).unwrap();
    let r =
        app.client.post(app.url("/v1/assets/bulk")).header("content-type", "text/csv").body(csv).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.post_json("/v1/connectors", &sandbox_connector()).await;
    for rule in rules {
        let (s, body) = app.post_json("/v1/rules", rule).await;
        assert_eq!(s, 201, "{body}");
    }
    app
}

fn create_rule(extra: Value) -> Value {
    let mut action = json!({"kind": "create", "connector": "sandbox", "priority": 2});
    action.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"name": "alerts", "when": {"types": ["tdl.alert"]}, "action": action})
}

/// An alert for MX-101 at `minutes` after t0 (the event's own time).
fn alert_at(id: &str, minutes: i64) -> Value {
    let mut e = alert(id);
    e["time"] = json!((t0() + Duration::minutes(minutes)).to_rfc3339());
    e
}

async fn post(app: &TestApp, e: &Value) -> Value {
    let (s, a) = app.post_json("/v1/events", e).await;
    assert_eq!(s, 201, "{a}");
    a
}

async fn reason(app: &TestApp, event_id: &str) -> String {
    let (_, e) = app.get(&format!("/v1/events/{event_id}")).await;
    e["trace"]["decision"]["reason"].as_str().unwrap_or_default().to_owned()
}

async fn maintenance_windows_suppress_and_expire(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let app = app_with_rule(backend, clock.clone(), &[create_rule(json!({}))]).await;
    let (s, w) = app
        .post_json("/v1/suppressions", &json!({"scope": "site", "target": "BEDFORD", "ends_at": (t0() + Duration::hours(2)).to_rfc3339(), "reason": "shutdown TA-26", "author": "j.planner"}))
        .await;
    assert_eq!(s, 201, "{w}");
    let (s, p) = app.post_json("/v1/suppressions", &json!({"scope": "site", "target": "X", "starts_at": t0().to_rfc3339(), "ends_at": t0().to_rfc3339(), "reason": "r", "author": "a"})).await;
    assert_eq!((s, p["code"].as_str()), (422, Some("validation-failed")));

    let a = post(&app, &alert_at("w-1", 0)).await;
    assert_eq!(a["outcome"], "suppressed");
    assert!(reason(&app, "w-1").await.contains(w["id"].as_str().unwrap()), "the trace names the window");
    assert!(app.orders().await.is_empty());
    let (_, active) = app.get("/v1/suppressions?active=true").await;
    assert_eq!(active.as_array().unwrap().len(), 1);

    clock.advance(Duration::hours(3));
    let (_, active) = app.get("/v1/suppressions?active=true").await;
    assert_eq!(active.as_array().unwrap().len(), 0);
    let a = post(&app, &alert_at("w-2", 180)).await;
    assert_eq!(a["outcome"], "created");

    // Shelving a rule, then ending the shelving early.
    let (_, rules) = app.get("/v1/rules").await;
    let rule_id = rules[0]["id"].as_str().unwrap();
    let (_, shelf) = app.post_json("/v1/suppressions", &json!({"scope": "rule", "target": rule_id, "ends_at": (clock_now(&clock) + Duration::days(1)).to_rfc3339(), "reason": "noisy", "author": "r.engineer"})).await;
    let a = post(&app, &alert_at("w-3", 181)).await;
    assert_eq!(a["outcome"], "suppressed", "merges are held back too");
    let r = app
        .client
        .delete(app.url(&format!("/v1/suppressions/{}", shelf["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let a = post(&app, &alert_at("w-4", 182)).await;
    assert_eq!(a["outcome"], "merged");
}
on_both_backends!(maintenance_windows_suppress_and_expire);

fn clock_now(c: &ManualClock) -> DateTime<Utc> {
    use workbridge::clock::Clock;
    c.now()
}

async fn cooldown_after_an_order_closes(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let app = app_with_rule(backend, clock.clone(), &[create_rule(json!({"cooldown_minutes": 60}))]).await;
    let a = post(&app, &alert_at("c-1", 0)).await;
    assert_eq!(a["outcome"], "created");
    app.eventually("delivered", || async { app.orders().await[0]["external_id"].is_string() }).await;
    let sbx = app.orders().await[0]["external_id"].as_str().unwrap().to_owned();
    clock.advance(Duration::minutes(10));
    let (s, _) = app.post_json(&format!("/v1/sandbox/orders/{sbx}/status"), &json!({"status": "completed"})).await;
    assert_eq!(s, 200);

    clock.advance(Duration::minutes(30));
    let a = post(&app, &alert_at("c-2", 40)).await;
    assert_eq!(a["outcome"], "suppressed");
    assert!(reason(&app, "c-2").await.starts_with("cooldown"), "{}", reason(&app, "c-2").await);

    clock.advance(Duration::minutes(31)); // 61 minutes after completion
    let a = post(&app, &alert_at("c-3", 71)).await;
    assert_eq!(a["outcome"], "created");
    assert_eq!(app.orders().await.len(), 2);
}
on_both_backends!(cooldown_after_an_order_closes);

async fn debounce_by_occurrences_and_by_duration(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let rules = [
        create_rule(json!({"debounce": {"occurrences": 3, "within_minutes": 10}})),
        json!({"name": "held", "when": {"types": ["tdl.alert"], "codes": ["HIGH_CURRENT"]}, "position": -1,
               "action": {"kind": "create", "connector": "sandbox", "debounce": {"held_for_minutes": 15}}}),
    ];
    let app = app_with_rule(backend, clock, &rules).await;

    // 3 within 10 minutes: the third opens the order
    assert_eq!(post(&app, &alert_at("d-1", 0)).await["outcome"], "debounced");
    assert!(reason(&app, "d-1").await.contains("1 of 3"));
    assert_eq!(post(&app, &alert_at("d-2", 4)).await["outcome"], "debounced");
    assert!(reason(&app, "d-2").await.contains("2 of 3"));
    // an occurrence outside the window does not count: d-1 at 0 is 11 min before
    let mut late = alert_at("d-3", 11);
    late["data"]["code"] = json!("HIGH_TEMPERATURE");
    assert_eq!(post(&app, &late).await["outcome"], "debounced", "only d-2 is within 10 min");
    assert_eq!(post(&app, &alert_at("d-4", 12)).await["outcome"], "created");

    // a clear ends the episode: counting starts again
    let mut clear = alert_at("d-5", 20);
    clear["data"]["state"] = json!("cleared");
    assert_eq!(post(&app, &clear).await["outcome"], "cleared");
    // the planner completes the order, so the next event cannot merge
    app.eventually("delivered", || async { app.orders().await[0]["external_id"].is_string() }).await;
    let sbx = app.orders().await[0]["external_id"].as_str().unwrap().to_owned();
    let (s, _) = app.post_json(&format!("/v1/sandbox/orders/{sbx}/status"), &json!({"status": "completed"})).await;
    assert_eq!(s, 200);
    assert_eq!(post(&app, &alert_at("d-6", 21)).await["outcome"], "debounced");
    assert!(reason(&app, "d-6").await.contains("1 of 3"), "d-2 and d-4 were before the clear");

    // held for 15 minutes (another code, the "held" rule)
    let held = |id: &str, m: i64| {
        let mut e = alert_at(id, m);
        e["data"]["code"] = json!("HIGH_CURRENT");
        e
    };
    assert_eq!(post(&app, &held("h-1", 0)).await["outcome"], "debounced");
    assert_eq!(post(&app, &held("h-2", 10)).await["outcome"], "debounced");
    assert!(reason(&app, "h-2").await.contains("10 of 15"));
    assert_eq!(post(&app, &held("h-3", 16)).await["outcome"], "created");
}
on_both_backends!(debounce_by_occurrences_and_by_duration);

async fn a_clear_cancels_an_order_that_has_not_started(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let app = app_with_rule(backend, clock, &[create_rule(json!({"on_clear": "cancel_if_not_started"}))]).await;
    let a = post(&app, &alert_at("x-1", 0)).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("delivered", || async { app.orders().await[0]["external_id"].is_string() }).await;
    let sbx = app.orders().await[0]["external_id"].as_str().unwrap().to_owned();
    let mut clear = alert_at("x-2", 5);
    clear["data"]["state"] = json!("cleared");
    let c = post(&app, &clear).await;
    assert_eq!((c["outcome"].as_str(), c["work_order_id"].as_str()), (Some("cleared"), Some(order_id.as_str())));
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["status"], "cancelled");
    app.eventually("the EAM cancelled it too", || async {
        app.get(&format!("/v1/sandbox/orders/{sbx}")).await.1["status"] == "cancelled"
    })
    .await;

    // Work has started on the next one: a clear does not cancel it.
    let a = post(&app, &alert_at("x-3", 10)).await;
    assert_eq!(a["outcome"], "created");
    let id2 = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("delivered", || async {
        app.get(&format!("/v1/work-orders/{id2}")).await.1["external_id"].is_string()
    })
    .await;
    let sbx2 = app.get(&format!("/v1/work-orders/{id2}")).await.1["external_id"].as_str().unwrap().to_owned();
    app.post_json(&format!("/v1/sandbox/orders/{sbx2}/status"), &json!({"status": "in_progress"})).await;
    let mut clear = alert_at("x-4", 15);
    clear["data"]["state"] = json!("cleared");
    post(&app, &clear).await;
    assert_eq!(app.get(&format!("/v1/work-orders/{id2}")).await.1["status"], "in_progress");
    assert!(reason(&app, "x-4").await.contains("cannot be cancelled"));
}
on_both_backends!(a_clear_cancels_an_order_that_has_not_started);

async fn shadow_rules_trace_but_never_act(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let rules = [
        json!({"name": "candidate", "mode": "shadow", "position": 0, "when": {"types": ["tdl.alert"]},
               "action": {"kind": "create", "connector": "sandbox", "priority": {"major": {"*": 1}}}}),
        json!({"name": "current", "position": 1, "when": {"types": ["tdl.alert"]}, "action": {"kind": "ignore"}}),
    ];
    let app = app_with_rule(backend, clock, &rules).await;
    let a = post(&app, &alert_at("s-1", 0)).await;
    assert_eq!(a["outcome"], "ignored", "the live rule decides");
    let (_, e) = app.get("/v1/events/s-1").await;
    let shadow = &e["trace"]["shadow"][0];
    assert_eq!(shadow["rule"], "candidate");
    assert_eq!(shadow["would"]["action"], "create");
    assert_eq!(shadow["would"]["priority"], 1);
    assert_eq!(e["trace"]["rules"][0]["shadow"], true);
    assert!(app.orders().await.is_empty(), "a shadow rule creates nothing");
}
on_both_backends!(shadow_rules_trace_but_never_act);

fn dq_event_state(id: &str, minutes: i64, state: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "tdl://bedford/dq", "type": "tdl.data_quality",
        "time": (t0() + Duration::minutes(minutes)).to_rfc3339(), "subject": "BEDFORD.PUMPING.VT101.PV",
        "data": {"state": state, "code": "STALE", "severity": "warning", "message": "signal stale for 30 min"}
    })
}

async fn data_quality_inhibits_process_alerts_on_its_equipment(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let rules = [
        json!({"name": "calibration", "position": 0,
               "when": {"types": ["tdl.data_quality"], "asset_classes": ["TRANSMITTER"]},
               "action": {"kind": "create", "connector": "sandbox", "work_type": "calibration", "dedup_key": "{{ asset.id }}:calibration"}}),
        create_rule(json!({})),
    ];
    let app = app_with_rule(backend, clock, &rules).await;

    // The transmitter VT-101 (on mixer MX-101) goes stale: a calibration order.
    let dq = post(&app, &dq_event_state("dq-1", 0, "raised")).await;
    assert_eq!(dq["outcome"], "created");
    assert_eq!(dq["asset_id"], "VT-101");

    // A process alert on MX-101 meanwhile is explained by the bad signal.
    let a = post(&app, &alert_at("p-1", 5)).await;
    assert_eq!(a["outcome"], "inhibited");
    let why = reason(&app, "p-1").await;
    assert!(why.contains(dq["id"].as_str().unwrap()) && why.contains("data-quality-on-its-instrument"), "{why}");
    // Other equipment is not affected.
    let mut other = alert_at("p-2", 6);
    other["subject"] = json!("BEDFORD.PUMPING.P504.BRG_TEMP");
    assert_eq!(post(&app, &other).await["outcome"], "created");

    // The signal is good again: alerts on MX-101 open orders again.
    assert_eq!(post(&app, &dq_event_state("dq-2", 30, "cleared")).await["outcome"], "cleared");
    assert_eq!(post(&app, &alert_at("p-3", 31)).await["outcome"], "created");
    let orders = app.orders().await;
    assert_eq!(orders.len(), 3, "calibration, P-504 and MX-101");
    assert!(orders.iter().any(|o| o["work_type"] == "calibration" && o["asset_id"] == "VT-101"));
}
on_both_backends!(data_quality_inhibits_process_alerts_on_its_equipment);

/// A batch is decided in one transaction: a data-quality event early in it
/// inhibits an alert later in it, exactly as one by one.
async fn data_quality_inhibits_within_one_batch(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let rules = [
        json!({"name": "calibration", "position": 0,
               "when": {"types": ["tdl.data_quality"], "asset_classes": ["TRANSMITTER"]},
               "action": {"kind": "create", "connector": "sandbox", "work_type": "calibration", "dedup_key": "{{ asset.id }}:calibration"}}),
        create_rule(json!({})),
    ];
    let app = app_with_rule(backend, clock, &rules).await;
    let batch = json!([alert_at("p-0", 0), dq_event_state("dq-1", 1, "raised"), alert_at("p-1", 5)]);
    let (s, b) = app.post_json("/v1/events", &batch).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["accepted"], 3, "{b}");
    assert_eq!(b["items"][0]["result"]["outcome"], "created", "before the bad signal: {b}");
    assert_eq!(b["items"][1]["result"]["outcome"], "created", "the calibration order: {b}");
    assert_eq!(b["items"][2]["result"]["outcome"], "inhibited", "{b}");
}
on_both_backends!(data_quality_inhibits_within_one_batch);

/// One batch in which merges and new orders (decided in memory) alternate
/// with a clear and a debounced rule (decided against the database): each
/// sees what the events before it did, as if they came one at a time.
async fn a_batch_is_decided_in_order_across_memory_and_database(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let debounced = json!({"name": "debounced", "position": 0,
        "when": {"types": ["tdl.alert"], "codes": ["LOW_FLOW"]},
        "action": {"kind": "create", "connector": "sandbox", "debounce": {"occurrences": 2, "within_minutes": 60}}});
    let mut alerts = create_rule(json!({"on_clear": "cancel_if_not_started"}));
    alerts["position"] = json!(100);
    let app = app_with_rule(backend, clock, &[debounced, alerts]).await;
    let low_flow = |id: &str, minutes: i64| {
        let mut e = alert_at(id, minutes);
        e["data"]["code"] = json!("LOW_FLOW");
        e
    };
    let mut clear = alert_at("b-3", 3);
    clear["data"]["state"] = json!("cleared");
    let batch = json!([
        alert_at("b-1", 1), // opens order A (memory)
        alert_at("b-2", 2), // merges into A (memory)
        clear,              // cancels A, which is still pending (database)
        alert_at("b-4", 4), // opens order B: A no longer holds the key (memory)
        alert_at("b-5", 5), // merges into B (memory)
        low_flow("b-6", 6), // debounced, 1 of 2 (database)
        low_flow("b-7", 7), // 2 of 2: opens order C (database)
        low_flow("b-8", 8), // merges into C (memory)
        alert_at("b-1", 1), // a repeat of the first
    ]);
    let (s, b) = app.post_json("/v1/events", &batch).await;
    assert_eq!(s, 200, "{b}");
    let outcome = |i: usize| b["items"][i]["result"]["outcome"].as_str().unwrap_or_default().to_owned();
    let order = |i: usize| b["items"][i]["result"]["work_order_id"].as_str().unwrap_or_default().to_owned();
    let outcomes: Vec<String> = (0..9).map(outcome).collect();
    assert_eq!(
        outcomes,
        ["created", "merged", "cleared", "created", "merged", "debounced", "created", "merged", "created"],
        "{b}"
    );
    assert_eq!((b["accepted"].as_u64(), b["duplicates"].as_u64()), (Some(8), Some(1)), "{b}");
    let (a, order_b, c) = (order(0), order(3), order(6));
    assert_eq!([order(1), order(2), order(8)], [a.clone(), a.clone(), a.clone()]);
    assert_eq!([order(4), order(7)], [order_b.clone(), c.clone()]);
    assert!(a != order_b && order_b != c && a != c, "{b}");
    let app = &app;
    let wo = |id: String| async move { app.get(&format!("/v1/work-orders/{id}")).await.1 };
    let (wa, wb, wc) = (wo(a).await, wo(order_b).await, wo(c).await);
    assert_eq!((wa["status"].as_str(), wa["event_count"].as_i64()), (Some("cancelled"), Some(2)), "{wa}");
    assert_eq!(wb["event_count"], 2, "{wb}");
    assert_eq!(
        wb["last_event_time"],
        json!((t0() + Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "{wb}"
    );
    assert_eq!(wc["event_count"], 2, "{wc}");
    let (_, orders) = app.get("/v1/work-orders?limit=50").await;
    assert_eq!(orders["items"].as_array().map(Vec::len), Some(3), "{orders}");
}
on_both_backends!(a_batch_is_decided_in_order_across_memory_and_database);

/// `app_with_rule` with no delivery loop: the test steps the dispatcher
/// (which also sweeps due debounce timers) with `TestApp::deliver`.
async fn stepped_app_with_rules(backend: Backend, clock: Arc<ManualClock>, rules: &[Value]) -> TestApp {
    let app = spawn_app(backend, Options { clock, step_deliveries: true, ..Default::default() }).await;
    let csv = std::fs::read_to_string(format!("{FIXTURES}/assets-demo.csv")).unwrap();
    let r =
        app.client.post(app.url("/v1/assets/bulk")).header("content-type", "text/csv").body(csv).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.post_json("/v1/connectors", &sandbox_connector()).await;
    for rule in rules {
        let (s, body) = app.post_json("/v1/rules", rule).await;
        assert_eq!(s, 201, "{body}");
    }
    app
}

/// Issue 17, item 9: an alarm that stays raised and sends nothing more
/// opens its order when `held_for_minutes` have passed (the timer), unless
/// it was cleared meanwhile.
async fn held_for_opens_the_order_when_its_timer_fires(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let held = json!({"name": "held", "when": {"types": ["tdl.alert"]},
        "action": {"kind": "create", "connector": "sandbox", "debounce": {"held_for_minutes": 15}}});
    let app = stepped_app_with_rules(backend, clock.clone(), &[held]).await;

    // MX-101 raised at 0 and never heard of again.
    assert_eq!(post(&app, &alert_at("t-1", 0)).await["outcome"], "debounced");
    // P-504 raised at 0, cleared at 5: its timer must not fire.
    let p504 = |id: &str, m: i64, state: &str| {
        let mut e = alert_at(id, m);
        e["subject"] = json!("BEDFORD.PUMPING.P504.BRG_TEMP");
        e["data"]["state"] = json!(state);
        e
    };
    assert_eq!(post(&app, &p504("t-2", 0, "raised")).await["outcome"], "debounced");
    clock.advance(Duration::minutes(5));
    assert_eq!(post(&app, &p504("t-3", 5, "cleared")).await["outcome"], "cleared");

    clock.advance(Duration::minutes(9)); // 14 min: not yet
    app.deliver().await;
    assert!(app.orders().await.is_empty(), "held for 14 of 15 min");

    clock.advance(Duration::minutes(2)); // 16 min
    app.deliver().await;
    let orders = app.orders().await;
    assert_eq!(orders.len(), 1, "the timer opened MX-101's order, not the cleared P-504's: {orders:?}");
    let order = &orders[0];
    assert_eq!(order["asset_id"], "MX-101");
    let id = order["id"].as_str().unwrap();
    let (_, o) = app.get(&format!("/v1/work-orders/{id}")).await;
    let why = o["trace"]["decision"]["reason"].as_str().unwrap_or_default();
    assert!(why.contains("held for 15 min: opened by the timer"), "{o}");
    assert_eq!(o["trace"]["decision"]["outcome"], "created", "{o}");
    // As if an event had arrived at 15 min: the order's first event time.
    let (_, e) = app.get("/v1/events/t-1").await;
    assert_eq!((e["outcome"].as_str(), e["work_order_id"].as_str()), (Some("created"), Some(id)), "{e}");
    assert!(e["trace"]["decision"]["reason"].as_str().unwrap_or_default().contains("opened by the timer"), "{e}");
    assert!(o["external_id"].is_string(), "delivered in the same round: {o}");

    // Fired once: nothing more happens later.
    clock.advance(Duration::minutes(30));
    app.deliver().await;
    assert_eq!(app.orders().await.len(), 1);
}
on_both_backends!(held_for_opens_the_order_when_its_timer_fires);

/// Issue 17, item 10: an event without `time` counts from when it was received.
async fn an_event_without_time_counts_from_when_it_was_received(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let rule = create_rule(json!({"debounce": {"occurrences": 2, "within_minutes": 10}}));
    let app = app_with_rule(backend, clock.clone(), &[rule]).await;
    let untimed = |id: &str| {
        let mut e = alert(id);
        e.as_object_mut().unwrap().remove("time");
        e
    };
    assert_eq!(post(&app, &untimed("n-1")).await["outcome"], "debounced");
    let (_, e) = app.get("/v1/events/n-1").await;
    assert_eq!(e["time"], json!(t0().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)), "{e}");
    let note = e["trace"]["time"].as_str().unwrap_or_default();
    assert!(note.contains("received"), "the trace says where its time came from: {e}");
    assert!(e["cloudevent"].get("time").is_none(), "the CloudEvent is kept as sent: {e}");
    clock.advance(Duration::minutes(1));
    assert_eq!(post(&app, &untimed("n-2")).await["outcome"], "created", "2 of 2 within 10 min");
}
on_both_backends!(an_event_without_time_counts_from_when_it_was_received);

/// Issue 17, item 11: a clear reaches the open order of its episode even
/// when the rule's condition is false for the clear's own values.
async fn a_clear_reaches_its_order_whatever_the_condition_says(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let hot = json!({"name": "hot", "position": 0,
        "when": {"codes": ["HIGH_TEMPERATURE"], "condition": "event.value >= 90.0"},
        "action": {"kind": "create", "connector": "sandbox", "on_clear": "cancel_if_not_started"}});
    let app = app_with_rule(backend, clock, &[hot]).await;
    let a = post(&app, &alert_at("k-1", 0)).await; // 92.1 degC
    assert_eq!(a["outcome"], "created");
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    // Delivered first: a clear racing the create is item 2's business.
    app.eventually("delivered", || async { app.orders().await[0]["external_id"].is_string() }).await;
    let mut clear = alert_at("k-2", 5);
    clear["data"]["state"] = json!("cleared");
    clear["data"]["value"] = json!(71.0);
    let c = post(&app, &clear).await;
    assert_eq!((c["outcome"].as_str(), c["work_order_id"].as_str()), (Some("cleared"), Some(order_id.as_str())), "{c}");
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["status"], "cancelled", "on_clear ran: {o}");
    assert!(reason(&app, "k-2").await.contains("cancelled"), "{}", reason(&app, "k-2").await);
}
on_both_backends!(a_clear_reaches_its_order_whatever_the_condition_says);

/// A hold made longer while an alert is held moves its timer: the order
/// opens when the new hold completes, not at the old one, and not never.
async fn a_longer_hold_moves_the_timer(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let held = |minutes: u32| {
        json!({"name": "held", "when": {"types": ["tdl.alert"]},
            "action": {"kind": "create", "connector": "sandbox", "debounce": {"held_for_minutes": minutes}}})
    };
    let app = stepped_app_with_rules(backend, clock.clone(), &[held(15)]).await;
    assert_eq!(post(&app, &alert_at("m-1", 0)).await["outcome"], "debounced");
    // (The rule cache knows a change by its time: let the clock move first.)
    clock.advance(Duration::minutes(1));
    let (_, rules) = app.get("/v1/rules").await;
    let id = rules[0]["id"].as_str().unwrap();
    let r = app.client.put(app.url(&format!("/v1/rules/{id}"))).json(&held(30)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    clock.advance(Duration::minutes(15)); // 16 min
    app.deliver().await;
    assert!(app.orders().await.is_empty(), "held for 16 of 30 min");
    clock.advance(Duration::minutes(15)); // 31 min
    app.deliver().await;
    let orders = app.orders().await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    let (_, o) = app.get(&format!("/v1/work-orders/{}", orders[0]["id"].as_str().unwrap())).await;
    assert!(o["trace"]["decision"]["reason"].as_str().unwrap_or_default().contains("held for 30 min"), "{o}");
}
on_both_backends!(a_longer_hold_moves_the_timer);
