//! The review before the EAM (issue 19 §1) and the one verdict definition
//! (§2): proposals stay out of the EAM until approved, merge, expire by the
//! injected clock, are withdrawn by a clear; decisions are audited with the
//! acting key; KPIs and the backtest agree on figures worked out by hand.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use workbridge::clock::ManualClock;

use crate::helpers::{
    AmqpNames, Backend, Broker, Options, TestApp, alert, client_with_key, sandbox_connector, spawn_app,
};
use crate::on_both_backends;

const T0: &str = "2026-11-24T10:00:00Z";

fn t0() -> DateTime<Utc> {
    T0.parse().unwrap()
}

/// An app that delivers only when the test says so, on a manual clock,
/// with the demo registry, the sandbox EAM and one rule in review mode.
async fn review_app(backend: Backend, expire_after_hours: Option<u32>) -> (TestApp, Arc<ManualClock>) {
    review_app_on(backend, expire_after_hours, None).await
}

/// [`review_app`], publishing lifecycle events to RabbitMQ when `amqp` is given.
async fn review_app_on(
    backend: Backend,
    expire_after_hours: Option<u32>,
    amqp: Option<AmqpNames>,
) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t0()));
    let options = Options { clock: clock.clone(), step_deliveries: true, amqp, ..Default::default() };
    let app = spawn_app(backend, options).await;
    app.load_demo_assets().await;
    let (s, body) = app.post_json("/v1/connectors", &sandbox_connector()).await;
    assert_eq!(s, 201, "{body}");
    let mut rule = json!({
        "name": "reviewed", "mode": "review",
        "when": {"types": ["tdl.alert"]},
        "action": {"kind": "create", "connector": "sandbox", "priority": 2}
    });
    if let Some(h) = expire_after_hours {
        rule["expire_after_hours"] = json!(h);
    }
    let (s, body) = app.post_json("/v1/rules", &rule).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["mode"], "review");
    (app, clock)
}

/// An API key of `role`: (key id, a client that sends it).
async fn key(app: &TestApp, role: &str) -> (String, reqwest::Client) {
    let (s, k) = app.post_json("/v1/api-keys", &json!({"name": format!("{role} key"), "role": role})).await;
    assert_eq!(s, 201, "{k}");
    (k["id"].as_str().unwrap().to_owned(), client_with_key(k["secret"].as_str().unwrap()))
}

async fn post(app: &TestApp, client: &reqwest::Client, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = client.post(app.url(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    if s >= 400 {
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    (s, r.json().await.unwrap_or(Value::Null))
}

/// An alert on MX-101 with its own code (so its own dedup key).
fn alert_with(id: &str, code: &str) -> Value {
    let mut a = alert(id);
    a["data"]["code"] = json!(code);
    a
}

async fn propose(app: &TestApp, event: &Value) -> String {
    let (s, a) = app.post_json("/v1/events", event).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["outcome"], "created", "{a}");
    a["work_order_id"].as_str().unwrap().to_owned()
}

async fn order(app: &TestApp, id: &str) -> Value {
    let (s, o) = app.get(&format!("/v1/work-orders/{id}")).await;
    assert_eq!(s, 200, "{o}");
    o
}

fn reviews(o: &Value) -> Vec<(String, String)> {
    o["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["review"].is_string())
        .map(|h| (h["review"].as_str().unwrap().to_owned(), h["status"].as_str().unwrap().to_owned()))
        .collect()
}

async fn sandbox_total(app: &TestApp) -> u64 {
    app.get("/v1/sandbox/orders").await.1["total"].as_u64().unwrap()
}

async fn a_proposal_reaches_the_eam_only_once_approved(backend: Backend) {
    let (app, clock) = review_app(backend, Some(24)).await;
    let (planner_id, planner) = key(&app, "planner").await;
    let (_, viewer) = key(&app, "viewer").await;

    let id = propose(&app, &alert("r-1")).await;
    let o = order(&app, &id).await;
    assert_eq!(o["status"], "proposed");
    assert_eq!(
        o["expires_at"],
        json!((t0() + Duration::hours(24)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );
    assert_eq!(reviews(&o), [("proposed".to_owned(), "proposed".to_owned())]);
    assert_eq!(app.deliver().await, 0, "nothing in the outbox");
    assert_eq!(sandbox_total(&app).await, 0, "the EAM saw nothing");

    // A later event merges into the proposal as into any open order.
    let (_, a) = app.post_json("/v1/events", &alert("r-2")).await;
    assert_eq!((a["outcome"].as_str(), a["work_order_id"].as_str()), (Some("merged"), Some(id.as_str())));
    assert_eq!(order(&app, &id).await["event_count"], 2);

    let (s, queue) = app.get("/v1/proposals?site=BEDFORD").await;
    assert_eq!(s, 200, "{queue}");
    assert_eq!((queue["total"].as_u64(), queue["items"][0]["id"].as_str()), (Some(1), Some(id.as_str())));
    assert_eq!(app.get("/v1/proposals?site=TEXAS").await.1["total"], 0);

    // A viewer may look, not decide.
    let r = viewer.get(app.url("/v1/proposals")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(post(&app, &viewer, &format!("/v1/work-orders/{id}/approve"), None).await.0, 403);
    assert_eq!(post(&app, &viewer, &format!("/v1/work-orders/{id}/reject"), Some(json!({"reason": "x"}))).await.0, 403);

    clock.advance(Duration::minutes(20));
    let (s, approved) =
        post(&app, &planner, &format!("/v1/work-orders/{id}/approve"), Some(json!({"comment": "go"}))).await;
    assert_eq!(s, 200, "{approved}");
    assert_eq!((approved["status"].as_str(), approved["review"].as_str()), (Some("pending"), Some("approved")));
    assert!(approved["expires_at"].is_null());
    let (s, again) = post(&app, &planner, &format!("/v1/work-orders/{id}/approve"), None).await;
    assert_eq!(s, 409, "{again}");
    assert!(again["detail"].as_str().unwrap().contains("not proposed"), "{again}");
    assert_eq!(post(&app, &planner, "/v1/work-orders/nope/approve", None).await.0, 404);

    // Delivered exactly as a live order.
    assert_eq!(app.deliver().await, 1);
    let o = order(&app, &id).await;
    assert_eq!(o["status"], "created");
    assert!(o["external_id"].is_string());
    assert_eq!(sandbox_total(&app).await, 1);
    assert_eq!(
        reviews(&o),
        [("proposed".to_owned(), "proposed".to_owned()), ("approved".to_owned(), "pending".to_owned())]
    );
    assert!(app.get("/v1/proposals").await.1["items"].as_array().unwrap().is_empty());

    // Audited with the acting key.
    let (_, audit) = app.get(&format!("/v1/audit?entity=work_order&entity_id={id}")).await;
    let entry = &audit["items"][0];
    assert_eq!(
        (entry["action"].as_str(), entry["actor_key_id"].as_str()),
        (Some("approve"), Some(planner_id.as_str()))
    );
    assert_eq!(entry["after"]["comment"], "go");

    // Time to review: 20 min.
    let (_, k) = app.get("/v1/kpis?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z").await;
    assert_eq!(k["review"]["time_to_review"]["p50"], 1200.0, "{k}");
    assert_eq!(k["orders"], 1, "an approved proposal is an order like any other");
}
on_both_backends!(a_proposal_reaches_the_eam_only_once_approved);

async fn rejections_and_bulk_decisions(backend: Backend) {
    let (app, clock) = review_app(backend, None).await;
    let (planner_id, planner) = key(&app, "planner").await;
    let p1 = propose(&app, &alert_with("b-1", "C1")).await;
    let p2 = propose(&app, &alert_with("b-2", "C2")).await;
    let p3 = propose(&app, &alert_with("b-3", "C3")).await;
    let (s, queue) = app.get("/v1/proposals").await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = queue["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [p1.as_str(), p2.as_str(), p3.as_str()], "oldest first");

    // Bad input names the field.
    let (s, p) = post(&app, &planner, &format!("/v1/work-orders/{p1}/reject"), Some(json!({"reason": " "}))).await;
    assert_eq!(s, 422);
    assert!(p["detail"].as_str().unwrap().starts_with("reason"), "{p}");
    let (s, p) = post(&app, &planner, "/v1/proposals/approve", Some(json!({"ids": []}))).await;
    assert_eq!(s, 422);
    assert!(p["detail"].as_str().unwrap().starts_with("ids"), "{p}");

    // 10 min after proposing: p1 rejected, one bad id beside it.
    clock.advance(Duration::minutes(10));
    let (s, r) =
        post(&app, &planner, "/v1/proposals/reject", Some(json!({"ids": [p1, "nope"], "reason": "sensor drift"})))
            .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["results"][0], json!({"id": p1, "status": "rejected"}));
    assert_eq!(
        (r["results"][1]["id"].as_str(), r["results"][1]["error"]["status"].as_u64()),
        (Some("nope"), Some(404))
    );
    // 30 min: p2 and (again) p1 approved: p1 is no longer proposed.
    clock.advance(Duration::minutes(20));
    let (s, r) = post(&app, &planner, "/v1/proposals/approve", Some(json!({"ids": [p2, p1]}))).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["results"][0], json!({"id": p2, "status": "pending"}));
    assert_eq!(r["results"][1]["error"]["status"], 409, "{r}");
    assert_eq!(app.deliver().await, 1, "only the approved one");

    let o1 = order(&app, &p1).await;
    assert_eq!((o1["status"].as_str(), o1["review"].as_str()), (Some("rejected"), Some("rejected")));
    assert!(
        o1["history"].as_array().unwrap().iter().any(|h| h["note"].as_str().unwrap_or("").contains("sensor drift"))
    );
    let fb = &o1["feedback"][0];
    assert_eq!(
        (fb["verdict"].as_str(), fb["source"].as_str(), fb["author"].as_str()),
        (Some("false_alarm"), Some("review"), Some("planner key"))
    );
    let (_, audit) = app.get(&format!("/v1/audit?entity=work_order&entity_id={p1}")).await;
    assert_eq!(audit["total"], 1, "the refused approval changed nothing, so audits nothing");
    assert_eq!(
        (audit["items"][0]["action"].as_str(), audit["items"][0]["actor_key_id"].as_str()),
        (Some("reject"), Some(planner_id.as_str()))
    );
    assert_eq!(audit["items"][0]["after"]["reason"], "sensor drift");

    // KPIs: 3 proposed, 1 approved after 30 min, 1 rejected after 10, 1 waiting.
    let (_, k) = app.get("/v1/kpis?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z").await;
    let review = &k["review"];
    assert_eq!(
        (
            review["proposed"].as_u64(),
            review["approved"].as_u64(),
            review["rejected"].as_u64(),
            review["backlog"].as_u64()
        ),
        (Some(3), Some(1), Some(1), Some(1)),
        "{k}"
    );
    assert_eq!(review["approval_rate"], 0.5);
    // nearest rank of 600 and 1800 s: p50 = rank 1, p90 = rank 2
    assert_eq!(
        review["time_to_review"],
        json!({"count": 2, "mean": 1200.0, "p50": 600.0, "p90": 1800.0, "p99": 1800.0})
    );
    assert_eq!(
        (k["orders"].as_u64(), k["backlog_open"].as_u64()),
        (Some(1), Some(1)),
        "proposals are not orders until approved"
    );
    let (_, rules) = app.get("/v1/kpis/rules?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z").await;
    let r = &rules[0];
    assert_eq!((r["proposals"].as_u64(), r["approved"].as_u64()), (Some(3), Some(1)), "{rules}");
    assert_eq!(r["approval_rate"], 0.5);
    // p1 rejected: false alarm; p2 created, p3 proposed: undecided.
    assert_eq!((r["useful"].as_u64(), r["false_alarm"].as_u64(), r["undecided"].as_u64()), (Some(0), Some(1), Some(2)));
    assert_eq!(r["precision"], 0.0);
}
on_both_backends!(rejections_and_bulk_decisions);

async fn unreviewed_proposals_expire_and_a_clear_withdraws_one(backend: Backend) {
    let (app, clock) = review_app(backend, Some(1)).await;
    let late = propose(&app, &alert_with("e-1", "C1")).await;
    let cleared = propose(&app, &alert_with("e-2", "C2")).await;

    // The clear of its alert withdraws a proposal, whatever on_clear says.
    let mut clear = alert_with("e-2c", "C2");
    clear["data"]["state"] = json!("cleared");
    let (_, a) = app.post_json("/v1/events", &clear).await;
    assert_eq!((a["outcome"].as_str(), a["work_order_id"].as_str()), (Some("cleared"), Some(cleared.as_str())));
    let o = order(&app, &cleared).await;
    assert_eq!((o["status"].as_str(), o["review"].as_str()), (Some("cancelled"), Some("withdrawn")));
    assert!(o["history"].as_array().unwrap().iter().any(|h| h["note"] == "withdrawn: alert cleared"), "{o}");

    // Not yet due at 59 min; expired at 61 min, by the dispatcher's sweep.
    clock.advance(Duration::minutes(59));
    app.deliver().await;
    assert_eq!(order(&app, &late).await["status"], "proposed");
    clock.advance(Duration::minutes(2));
    assert_eq!(app.deliver().await, 0, "nothing delivered");
    let o = order(&app, &late).await;
    assert_eq!((o["status"].as_str(), o["review"].as_str()), (Some("expired"), Some("expired")), "{o}");
    assert!(o["expires_at"].is_null());
    let (planner_id, planner) = key(&app, "planner").await;
    let _ = planner_id;
    assert_eq!(post(&app, &planner, &format!("/v1/work-orders/{late}/approve"), None).await.0, 409);
    assert_eq!(sandbox_total(&app).await, 0);

    // The key is free again: the next alert opens a new proposal.
    let again = propose(&app, &alert_with("e-3", "C1")).await;
    assert_ne!(again, late);

    let (_, k) = app.get("/v1/kpis?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z").await;
    let review = &k["review"];
    assert_eq!(
        (
            review["proposed"].as_u64(),
            review["expired"].as_u64(),
            review["withdrawn"].as_u64(),
            review["backlog"].as_u64()
        ),
        (Some(3), Some(1), Some(1), Some(1)),
        "{k}"
    );
    assert!(review["approval_rate"].is_null());
    assert_eq!(review["time_to_review"]["count"], 0);
}
on_both_backends!(unreviewed_proposals_expire_and_a_clear_withdraws_one);

/// Five orders of one rule, worked out by hand (README, "Precision"):
/// 1 cancelled in the EAM but called useful by a planner → useful;
/// 2 rejected in review → false alarm; 3 completed → useful;
/// 4 cancelled → false alarm; 5 open (created) → undecided.
/// useful 2, false alarm 2, undecided 1: precision 0.5, in the KPIs and
/// the backtest alike.
async fn kpis_and_backtest_share_one_verdict(backend: Backend) {
    let (app, clock) = review_app(backend, None).await;
    let mut ids = vec![];
    for i in 1..=5 {
        clock.advance(Duration::minutes(1));
        let mut e = alert_with(&format!("v-{i}"), &format!("C{i}"));
        e["time"] = json!(clock_now(&clock).to_rfc3339());
        ids.push(propose(&app, &e).await);
    }
    let (s, _) = app.post_json(&format!("/v1/work-orders/{}/reject", ids[1]), &json!({"reason": "no fault"})).await;
    assert_eq!(s, 200);
    for i in [0, 2, 3, 4] {
        let (s, b) = app.post_json(&format!("/v1/work-orders/{}/approve", ids[i]), &json!({})).await;
        assert_eq!(s, 200, "{b}");
    }
    assert_eq!(app.deliver().await, 4);
    for (i, status) in [(0, "cancelled"), (2, "completed"), (3, "cancelled")] {
        let sbx = order(&app, &ids[i]).await["external_id"].as_str().unwrap().to_owned();
        let (s, b) = app.post_json(&format!("/v1/sandbox/orders/{sbx}/status"), &json!({"status": status})).await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, _) = app
        .post_json(
            &format!("/v1/work-orders/{}/feedback", ids[0]),
            &json!({"verdict": "useful", "author": "j.planner"}),
        )
        .await;
    assert_eq!(s, 201);

    let (_, rules) = app.get("/v1/kpis/rules?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z").await;
    let r = &rules[0];
    assert_eq!(
        (r["useful"].as_u64(), r["false_alarm"].as_u64(), r["undecided"].as_u64()),
        (Some(2), Some(2), Some(1)),
        "{rules}"
    );
    assert_eq!(r["precision"], 0.5);

    let range = json!({"since": T0, "until": (t0() + Duration::hours(1)).to_rfc3339()});
    let (s, b) = app.post_json("/v1/rules/backtest", &range).await;
    assert_eq!(s, 200, "{b}");
    for tally in [&b["actual"], &b["proposed"]] {
        assert_eq!(
            (
                tally["orders"].as_u64(),
                tally["accepted"].as_u64(),
                tally["rejected"].as_u64(),
                tally["undecided"].as_u64()
            ),
            (Some(5), Some(2), Some(2), Some(1)),
            "{b}"
        );
        assert_eq!(tally["precision"], r["precision"]);
    }
}
on_both_backends!(kpis_and_backtest_share_one_verdict);

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    use workbridge::clock::Clock;
    clock.now()
}

async fn expire_after_hours_is_validated(backend: Backend) {
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    let (s, body) = app.post_json("/v1/connectors", &sandbox_connector()).await;
    assert_eq!(s, 201, "{body}");
    let rule = |mode: &str, hours: Value| json!({"name": "r", "mode": mode, "expire_after_hours": hours, "action": {"kind": "create", "connector": "sandbox"}});
    for (mode, hours) in [("live", json!(2)), ("shadow", json!(2)), ("review", json!(0)), ("review", json!(721))] {
        let (s, p) = app.post_json("/v1/rules", &rule(mode, hours.clone())).await;
        assert_eq!(s, 422, "{mode} {hours}: {p}");
        assert!(p["detail"].as_str().unwrap().starts_with("expire_after_hours"), "{p}");
    }
    let (s, r) = app.post_json("/v1/rules", &rule("review", json!(720))).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!((r["mode"].as_str(), r["expire_after_hours"].as_u64()), (Some("review"), Some(720)));
}
on_both_backends!(expire_after_hours_is_validated);

/// Each step of the review goes out on the lifecycle exchange like any
/// status change: proposed, approved (as `pending`, then `created` once in
/// the EAM), rejected, withdrawn by a clear (as `cancelled`) and expired,
/// with `data.review` naming the step.
async fn review_steps_are_published_as_lifecycle_events(backend: Backend) {
    let names = AmqpNames::new();
    let broker = Broker::connect(&names).await;
    let queue = broker.lifecycle_queue().await;
    let (app, clock) = review_app_on(backend, Some(1), Some(names.clone())).await;
    let (_, planner) = key(&app, "planner").await;

    let approved = propose(&app, &alert_with("l-1", "C1")).await;
    let rejected = propose(&app, &alert_with("l-2", "C2")).await;
    let expired = propose(&app, &alert_with("l-3", "C3")).await;
    let withdrawn = propose(&app, &alert_with("l-4", "C4")).await;
    assert_eq!(post(&app, &planner, &format!("/v1/work-orders/{approved}/approve"), None).await.0, 200);
    assert_eq!(app.deliver().await, 1);
    let reason = Some(json!({"reason": "sensor drift"}));
    assert_eq!(post(&app, &planner, &format!("/v1/work-orders/{rejected}/reject"), reason).await.0, 200);
    let mut clear = alert_with("l-4c", "C4");
    clear["data"]["state"] = json!("cleared");
    assert_eq!(app.post_json("/v1/events", &clear).await.1["outcome"], "cleared");
    clock.advance(Duration::minutes(61));
    app.deliver().await;
    assert_eq!(order(&app, &expired).await["status"], "expired");

    let got = broker.take(&queue, 9).await;
    let mut seen: Vec<(String, String, String)> = got
        .iter()
        .map(|d| {
            let e: Value = serde_json::from_slice(&d.data).unwrap();
            assert_eq!(e["type"], "workbridge.workorder.status");
            assert_eq!(e["data"]["status"].as_str().map(|s| format!("{s}.BEDFORD")), Some(d.routing_key.to_string()));
            let review = e["data"]["review"].as_str().unwrap_or("-").to_owned();
            (e["subject"].as_str().unwrap().to_owned(), d.routing_key.to_string(), review)
        })
        .collect();
    seen.sort();
    let step = |order: &str, key: &str, review: &str| (order.to_owned(), format!("{key}.BEDFORD"), review.to_owned());
    let mut expected = vec![
        step(&approved, "proposed", "proposed"),
        step(&approved, "pending", "approved"),
        step(&approved, "created", "-"),
        step(&rejected, "proposed", "proposed"),
        step(&rejected, "rejected", "rejected"),
        step(&expired, "proposed", "proposed"),
        step(&expired, "expired", "expired"),
        step(&withdrawn, "proposed", "proposed"),
        step(&withdrawn, "cancelled", "withdrawn"),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    drop(app);
    broker.cleanup().await;
}
on_both_backends!(review_steps_are_published_as_lifecycle_events);
