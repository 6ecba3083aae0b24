//! Re-decision of stored events (issue 19 §3): an unmapped event fixed by a
//! new asset or tag pattern and decided again; a second run changes
//! nothing; a large selection runs in batches; the subject glob filter and
//! the unmapped events grouped by tag.

use std::time::Instant;

use serde_json::{Value, json};

use crate::helpers::{Backend, Options, TestApp, alert, client_with_key, sandbox_connector, spawn_app};
use crate::on_both_backends;

/// An alert like `alert(id)` but on `tag`.
fn alert_on(id: &str, tag: &str) -> Value {
    let mut e = alert(id);
    e["subject"] = json!(tag);
    e
}

async fn post_event(app: &TestApp, e: &Value) -> Value {
    let (s, a) = app.post_json("/v1/events", e).await;
    assert!(s == 201 || s == 200, "{s} {a}");
    a
}

/// Follows a job until it has ended: the job, and the `processed` values seen.
async fn wait_for(app: &TestApp, location: &str) -> (Value, std::collections::BTreeSet<u64>) {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let (s, j) = app.get(location).await;
        assert_eq!(s, 200, "{j}");
        seen.insert(j["processed"].as_u64().unwrap());
        if j["state"] == "done" || j["state"] == "failed" {
            return (j, seen);
        }
        assert!(Instant::now() < deadline, "the job did not end: {j}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Queues a job and waits until it has ended; returns it.
async fn redecide(app: &TestApp, filter: Value) -> Value {
    let r = app.client.post(app.url("/v1/events/redecide")).json(&filter).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/v1/redecide-jobs/{}", job["id"].as_str().unwrap()));
    assert!(["queued", "running", "done"].contains(&job["state"].as_str().unwrap()), "{job}");
    let (last, _) = wait_for(app, &location).await;
    assert_eq!(last["state"], "done", "{last}");
    last
}

async fn an_unmapped_event_is_fixed_and_decided_again(backend: Backend) {
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await;
    let new_tag = "BEDFORD.PUMPING.P999.BRG_TEMP";
    let first = post_event(&app, &alert_on("rd-1", new_tag)).await;
    assert_eq!(first["outcome"], "unmapped");
    let other = post_event(&app, &alert_on("rd-2", "LEEDS.UNKNOWN.TAG")).await;
    assert_eq!(other["outcome"], "unmapped");
    assert!(app.orders().await.is_empty());

    // The asset is added; sending the event again is a duplicate: nothing happens.
    let (s, body) = app
        .post_json(
            "/v1/assets",
            &json!({"id": "P-999", "site": "BEDFORD", "name": "Pump 999", "class": "PUMP", "tags": [new_tag]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let again = post_event(&app, &alert_on("rd-1", new_tag)).await;
    assert_eq!((again["duplicate"].clone(), again["outcome"].clone()), (json!(true), json!("unmapped")));

    let job = redecide(&app, json!({"outcome": "unmapped"})).await;
    assert_eq!(
        (job["total"].clone(), job["processed"].clone(), job["changed"].clone(), job["unchanged"].clone()),
        (json!(2), json!(2), json!(1), json!(1)),
        "{job}"
    );
    assert_eq!(job["failed"], 0);
    assert!(job["finished_at"].is_string(), "{job}");
    assert_eq!(job["filter"], json!({"outcome": "unmapped"}));

    let (_, e) = app.get(&format!("/v1/events/{}", first["id"].as_str().unwrap())).await;
    assert_eq!(e["outcome"], "created", "{e}");
    assert_eq!(e["asset_id"], "P-999");
    let order = e["work_order_id"].as_str().expect("an order").to_owned();
    assert_eq!(e["trace"]["first"]["decision"]["outcome"], "unmapped", "{e}");
    let redecisions = e["trace"]["redecisions"].as_array().unwrap();
    assert_eq!(redecisions.len(), 1);
    assert_eq!(redecisions[0]["job_id"], job["id"]);
    assert_eq!(redecisions[0]["previous_outcome"], "unmapped");
    assert_eq!(redecisions[0]["outcome"], "created");
    assert_eq!(redecisions[0]["work_order_id"], order.as_str());
    assert_eq!(e["trace"]["decision"]["outcome"], "created", "the current decision is the new one");
    let (_, still) = app.get(&format!("/v1/events/{}", other["id"].as_str().unwrap())).await;
    assert_eq!(still["outcome"], "unmapped");
    assert!(still["trace"].get("redecisions").is_none(), "unchanged: no entry");

    // The order goes through the outbox to the EAM like a live one.
    assert_eq!(app.deliver().await, 1);
    let (_, sandbox) = app.get("/v1/sandbox/orders").await;
    assert_eq!(sandbox["total"], 1, "{sandbox}");
    let (_, o) = app.get(&format!("/v1/work-orders/{order}")).await;
    assert_eq!(o["asset_id"], "P-999");
    assert!(o["external_id"].is_string(), "{o}");

    // A second run changes nothing: no second order, no second entry.
    for filter in [json!({"ids": [first["id"]]}), json!({"subject": "BEDFORD.**"}), json!({"outcome": "unmapped"})] {
        let job = redecide(&app, filter.clone()).await;
        assert_eq!(job["changed"], 0, "{filter}: {job}");
        assert_eq!(job["unchanged"], job["total"], "{filter}: {job}");
        assert_eq!(job["processed"], job["total"], "{filter}: {job}");
    }
    assert_eq!(app.deliver().await, 0);
    assert_eq!(app.orders().await.len(), 1);
    let (_, e) = app.get(&format!("/v1/events/{}", first["id"].as_str().unwrap())).await;
    assert_eq!(e["trace"]["redecisions"].as_array().unwrap().len(), 1, "{e}");
    assert_eq!(e["work_order_id"], order.as_str());

    // A later event of the same alert merges into the order, as it would have.
    let later = post_event(&app, &alert_on("rd-3", new_tag)).await;
    assert_eq!((later["outcome"].clone(), later["work_order_id"].clone()), (json!("merged"), json!(order)));
}
on_both_backends!(an_unmapped_event_is_fixed_and_decided_again);

async fn a_large_selection_runs_in_batches(backend: Backend) {
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await;
    // 450 unmapped events on three new tags: 250, 150 and 50.
    let tag = |i: usize| match i {
        0..250 => "BEDFORD.PUMPING.P777.BRG_TEMP",
        250..400 => "BEDFORD.PUMPING.P777.CURRENT",
        _ => "BEDFORD.PUMPING.P778.CURRENT",
    };
    let batch: Vec<Value> = (0..450).map(|i| alert_on(&format!("big-{i}"), tag(i))).collect();
    let r = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/cloudevents-batch+json")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["accepted"], 450, "{}", result["rejected"]);

    // Grouped by tag, the biggest first, paginated.
    let (s, groups) = app.get("/v1/events/unmapped-subjects?limit=2").await;
    assert_eq!(s, 200, "{groups}");
    assert_eq!(groups["total"], 3, "{groups}");
    let items = groups["items"].as_array().unwrap();
    let counts: Vec<(&str, i64)> =
        items.iter().map(|g| (g["subject"].as_str().unwrap(), g["count"].as_i64().unwrap())).collect();
    assert_eq!(counts, [("BEDFORD.PUMPING.P777.BRG_TEMP", 250), ("BEDFORD.PUMPING.P777.CURRENT", 150)]);
    assert!(items[0]["first_seen"].as_str().unwrap() <= items[0]["last_seen"].as_str().unwrap());
    let (_, example) = app.get(&format!("/v1/events/{}", items[1]["example_event_id"].as_str().unwrap())).await;
    assert_eq!(example["subject"], "BEDFORD.PUMPING.P777.CURRENT", "the example is one of the group");
    let (_, rest) = app.get("/v1/events/unmapped-subjects?limit=2&offset=2").await;
    assert_eq!(rest["items"][0]["subject"], "BEDFORD.PUMPING.P778.CURRENT");
    assert_eq!(rest["items"][0]["count"], 50);
    let (_, other_source) = app.get("/v1/events/unmapped-subjects?source=tdl://elsewhere").await;
    assert_eq!(other_source["total"], 0);

    // One pattern maps P777's tags (not P778's).
    let (s, body) = app
        .post_json("/v1/assets", &json!({"id": "P-777", "site": "BEDFORD", "name": "Pump 777", "class": "PUMP"}))
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = app
        .post_json(
            "/v1/tag-patterns",
            &json!({"pattern": r"BEDFORD\.PUMPING\.(?P<asset>P777)\..*", "asset_template": "P-777"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");

    let started = Instant::now();
    let r = app.client.post(app.url("/v1/events/redecide")).json(&json!({"outcome": "unmapped"})).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    // Progress is stored per batch of 200: only those steps are ever seen.
    let (job, seen) = wait_for(&app, &location).await;
    println!("re-decided 450 events in {:?} (progress seen: {seen:?})", started.elapsed());
    assert_eq!(job["state"], "done", "{job}");
    assert!(seen.iter().all(|p| [0, 200, 400, 450].contains(p)), "{seen:?}");
    assert_eq!(
        (job["total"].clone(), job["processed"].clone(), job["changed"].clone(), job["unchanged"].clone()),
        (json!(450), json!(450), json!(400), json!(50)),
        "{job}"
    );
    // One order per dedup key (asset and code): the first event opens it, the rest merge.
    let orders = app.orders().await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["event_count"], 400, "{}", orders[0]);
    let (_, created) = app.get("/v1/events?outcome=created").await;
    assert_eq!(created["total"], 1);
    let (_, merged) = app.get("/v1/events?outcome=merged").await;
    assert_eq!(merged["total"], 399);
    let (_, groups) = app.get("/v1/events/unmapped-subjects").await;
    assert_eq!(groups["total"], 1, "only P778's tag is left: {groups}");
    assert_eq!(app.deliver().await, 1);

    // Again: nothing changes.
    let again = redecide(&app, json!({"subject": "BEDFORD.PUMPING.P77?.*"})).await;
    assert_eq!((again["total"].clone(), again["changed"].clone()), (json!(450), json!(0)), "{again}");
    assert_eq!(app.orders().await[0]["event_count"], 400);
}
on_both_backends!(a_large_selection_runs_in_batches);

async fn the_subject_glob_filters_events(backend: Backend) {
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await;
    for (id, tag) in [
        ("g-1", "BEDFORD.PUMPING.MX101.BRG_TEMP"),
        ("g-2", "BEDFORD.PUMPING.P504.BRG_TEMP"),
        ("g-3", "BEDFORD.COOLING.F505.BRG_TEMP"),
        ("g-4", "BEDFORD.PUMPING.X_1.DEEP.BRG_TEMP"),
        ("g-5", "bedford.pumping.mx101.brg_temp"),
        ("g-6", "BEDFORD.PUMPING.XA1.FLOW"),
    ] {
        post_event(&app, &alert_on(id, tag)).await;
    }
    let ids = async |q: &str| -> Vec<String> {
        let (s, page) = app.get(&format!("/v1/events?{q}")).await;
        assert_eq!(s, 200, "{q}: {page}");
        let mut ids: Vec<String> =
            page["items"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        assert_eq!(page["total"].as_u64().unwrap() as usize, ids.len(), "{q}");
        ids
    };
    assert_eq!(ids("subject=BEDFORD.PUMPING.*.BRG_TEMP").await, ["g-1", "g-2"], "* stays within one level");
    assert_eq!(ids("subject=BEDFORD.PUMPING.**.BRG_TEMP").await, ["g-1", "g-2", "g-4"]);
    assert_eq!(ids("subject=BEDFORD.*.*.BRG_TEMP&outcome=created").await, ["g-1", "g-2", "g-3"]);
    assert_eq!(ids("subject=BEDFORD.**&outcome=unmapped").await, ["g-4", "g-6"]);
    assert_eq!(ids("subject=bedford.pumping.mx101.brg_temp").await, ["g-5"], "a plain tag, case and all");
    assert_eq!(ids("subject=BEDFORD.PUMPING.X_1.**").await, ["g-4"], "`_` is a character, not a wildcard");
    assert!(ids("subject=NOWHERE.**").await.is_empty());
    let (s, p) = app.get("/v1/events?subject=BEDFORD.%5BPUMPING").await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("subject:"), "{p}");
    assert_eq!(p["errors"][0]["parameter"], "subject", "{p}");
    let (s, p) = app.get("/v1/events/unmapped-subjects?subject=A").await;
    assert_eq!(s, 400, "not a parameter of the grouping: {p}");
}
on_both_backends!(the_subject_glob_filters_events);

async fn filters_are_validated_and_only_admins_redecide(backend: Backend) {
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    let cases = [
        (json!({}), "filter", ""),
        (json!({"subject": "A.[B"}), "subject", "/subject"),
        (json!({"subject": ""}), "subject", "/subject"),
        (json!({"since": "2026-11-24T10:00:00Z", "until": "2026-11-24T09:00:00Z"}), "until", "/until"),
        (json!({"ids": []}), "ids", "/ids"),
        (json!({"ids": ["ok", ""]}), "ids.1", "/ids/1"),
        (json!({"source": " "}), "source", "/source"),
    ];
    for (body, field, pointer) in cases {
        let (s, p) = app.post_json("/v1/events/redecide", &body).await;
        assert_eq!(s, 422, "{body}: {p}");
        assert!(p["detail"].as_str().unwrap().starts_with(&format!("{field}:")), "{body}: {p}");
        assert_eq!(p["code"], "validation-failed");
        if !pointer.is_empty() {
            assert_eq!(p["errors"][0]["pointer"], pointer, "{body}: {p}");
        }
    }
    for body in [json!({"outcome": "bogus"}), json!({"outcome": "unmapped", "nope": 1}), json!({"since": "yesterday"})]
    {
        let (s, p) = app.post_json("/v1/events/redecide", &body).await;
        assert!(s == 400 || s == 422, "{body}: {s} {p}");
    }
    let (s, _) = app.get("/v1/redecide-jobs/no-such-job").await;
    assert_eq!(s, 404);

    let (s, k) = app.post_json("/v1/api-keys", &json!({"name": "viewer key", "role": "viewer"})).await;
    assert_eq!(s, 201, "{k}");
    let viewer = client_with_key(k["secret"].as_str().unwrap());
    let r = viewer.post(app.url("/v1/events/redecide")).json(&json!({"outcome": "unmapped"})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let job = redecide(&app, json!({"outcome": "unmapped"})).await;
    assert_eq!(job["total"], 0);
    let r = viewer.get(app.url(&format!("/v1/redecide-jobs/{}", job["id"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(r.status(), 200, "a viewer follows a job");
    let r = viewer.get(app.url("/v1/events/unmapped-subjects")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The job is audited with the key that asked for it.
    let (_, audit) = app.get("/v1/audit?entity=redecide_job").await;
    assert!(audit.to_string().contains(job["id"].as_str().unwrap()), "{audit}");
}
on_both_backends!(filters_are_validated_and_only_admins_redecide);

/// A job claimed by a replica that then stopped is taken over once its
/// lease has run out, and the stopped replica can no longer record progress.
async fn a_stopped_replicas_job_is_taken_over(backend: Backend) {
    use std::sync::Arc;
    use workbridge::clock::{Clock, ManualClock};
    use workbridge::store::redecide_jobs::{self, Progress, RedecideFilter};
    use workbridge::store::{TransactionTrait, new_id};

    let clock = Arc::new(ManualClock::new("2026-11-24T12:00:00Z".parse().unwrap()));
    let app = spawn_app(backend, Options { clock: clock.clone(), step_deliveries: true, ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await;
    let tag = "BEDFORD.PUMPING.P555.BRG_TEMP";
    post_event(&app, &alert_on("to-1", tag)).await;
    let (s, body) = app
        .post_json(
            "/v1/assets",
            &json!({"id": "P-555", "site": "BEDFORD", "name": "P", "class": "PUMP", "tags": [tag]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");

    // Another replica creates and claims the job in one transaction (so
    // this one's worker never sees it queued), then stops.
    let now = clock.now();
    let filter = RedecideFilter { outcome: Some(workbridge::domain::EventOutcome::Unmapped), ..Default::default() };
    let txn = app.store.conn().begin().await.unwrap();
    let job = redecide_jobs::create(&txn, &new_id(), &filter, 1, None, now).await.unwrap();
    let gone = redecide_jobs::claim(&txn, now, now + chrono::Duration::minutes(2)).await.unwrap().unwrap();
    assert_eq!(gone.id, job.id);
    txn.commit().await.unwrap();
    assert!(redecide_jobs::claim(app.store.conn(), now, now).await.unwrap().is_none(), "leased");
    let (_, j) = app.get(&format!("/v1/redecide-jobs/{}", job.id)).await;
    assert_eq!((j["state"].clone(), j["processed"].clone()), (json!("running"), json!(0)), "{j}");

    // The lease runs out: this replica's worker takes the job over.
    clock.advance(chrono::Duration::minutes(3));
    let (j, _) = wait_for(&app, &format!("/v1/redecide-jobs/{}", job.id)).await;
    assert_eq!((j["state"].clone(), j["changed"].clone()), (json!("done"), json!(1)), "{j}");
    assert_eq!(app.orders().await.len(), 1);
    let later = clock.now() + chrono::Duration::hours(1);
    let stale = redecide_jobs::advance(app.store.conn(), &gone, Progress::default(), None, true, later, later);
    assert!(!stale.await.unwrap(), "the stopped replica's claim is void");
}
on_both_backends!(a_stopped_replicas_job_is_taken_over);
