use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{Backend, FIXTURES, Options, alert, sandbox_connector, spawn_app};
use crate::on_both_backends;

async fn same_event_in_every_mode_is_stored_identically(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(sandbox_connector()).await;

    // structured
    let r = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/cloudevents+json")
        .body(alert("s-1").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/v1/events/"));

    // binary: attributes in ce-* headers, data as the body
    let b = alert("b-1");
    let mut req = app.client.post(app.url("/v1/events")).header("content-type", "application/json");
    for attr in ["specversion", "id", "source", "type", "time", "subject"] {
        req = req.header(format!("ce-{attr}"), b[attr].as_str().unwrap());
    }
    let r = req.body(b["data"].to_string()).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // batch, with one bad element that must not cost the good one
    let r = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(json!([alert("c-1"), {"specversion": "1.0", "source": "tdl://x"}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let batch: Value = r.json().await.unwrap();
    assert_eq!((batch["accepted"].as_u64(), batch["rejected"].as_u64()), (Some(1), Some(1)));
    assert_eq!(batch["items"][1]["status"], "rejected");
    assert_eq!(batch["items"][1]["error"]["status"], 422);

    // plain application/json is structured mode too
    let (s, _) = app.post_json("/v1/events", &alert("j-1")).await;
    assert_eq!(s, 201);

    let mut stored = vec![];
    for id in ["s-1", "b-1", "c-1", "j-1"] {
        let (s, mut e) = app.get(&format!("/v1/events/{id}")).await;
        assert_eq!(s, 200, "{id}");
        assert_eq!(e["event_id"], id);
        e["cloudevent"].as_object_mut().unwrap().remove("id");
        stored.push(e);
    }
    for e in &stored[1..] {
        assert_eq!(e["cloudevent"], stored[0]["cloudevent"], "same CloudEvent whatever the mode");
        assert_eq!(e["asset_id"], "MX-101");
        assert_eq!(e["work_order_id"], stored[0]["work_order_id"]);
    }
    assert_eq!(stored[0]["outcome"], "created");
    assert!(stored[1..].iter().all(|e| e["outcome"] == "merged"));

    // The same (source, id) again, in another mode: no second effect.
    let mut req = app.client.post(app.url("/v1/events")).header("content-type", "application/json");
    let s1 = alert("s-1");
    for attr in ["specversion", "id", "source", "type", "time", "subject"] {
        req = req.header(format!("ce-{attr}"), s1[attr].as_str().unwrap());
    }
    let r = req.body(s1["data"].to_string()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let dup: Value = r.json().await.unwrap();
    assert_eq!(dup["duplicate"], true);
    let (_, events) = app.get("/v1/events").await;
    assert_eq!(events["total"], 4);
    let orders = app.orders().await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["event_count"], 4);
}
on_both_backends!(same_event_in_every_mode_is_stored_identically);

/// A batch is written with one multi-row statement (on PostgreSQL, one
/// array per column, nullable columns with a mask): text that JSON escapes,
/// numbers, and the columns an event leaves empty come back exactly as they
/// were sent.
async fn a_batch_keeps_every_character_and_number(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(sandbox_connector()).await;
    let mut odd = alert("odd-1");
    odd["data"]["message"] = json!("quote \" backslash \\ tab \t newline \n unicode é 温度 🔥 \u{1} end");
    odd["data"]["value"] = json!(0.1 + 0.2);
    odd["data"]["context"] = json!({"nested": {"list": [1, -2.5e-7, null, true, "x\"y"]}, "big": 9007199254740993_u64});
    let mut plain = alert("odd-2");
    plain["subject"] = json!("BEDFORD.PUMPING.MX101.BRG_TEMP'; DROP TABLE events; --");
    // No time and an unknown tag: the columns that stay empty are NULL, not
    // an empty string or a zero (the time is the time received).
    let mut bare = alert("odd-3");
    bare.as_object_mut().unwrap().remove("time");
    bare["subject"] = json!("NOWHERE.NO.SUCH.TAG");
    let r = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(json!([odd, plain, bare]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let batch: Value = r.json().await.unwrap();
    assert_eq!(batch["accepted"], 3, "{batch}");
    for sent in [&odd, &plain, &bare] {
        let (s, stored) = app.get(&format!("/v1/events/{}", sent["id"].as_str().unwrap())).await;
        assert_eq!(s, 200);
        assert_eq!(&stored["cloudevent"], sent);
        assert_eq!(stored["subject"], sent["subject"]);
    }
    let (_, first) = app.get("/v1/events/odd-1").await;
    assert_eq!(first["outcome"], "created");
    assert_eq!(first["cloudevent"]["data"]["value"].as_f64(), Some(0.1 + 0.2));
    assert!(first["time"].is_string() && first["rule_version"].is_number(), "{first}");
    let (_, unmapped) = app.get("/v1/events/odd-3").await;
    assert_eq!(unmapped["outcome"], "unmapped", "{unmapped}");
    assert!(unmapped["time"].is_string(), "the time received: {unmapped}");
    for empty in ["asset_id", "mapped_by", "rule_id", "rule_version", "work_order_id"] {
        assert!(unmapped[empty].is_null(), "{empty}: {unmapped}");
    }
    let null_keys = app
        .store
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            app.store.conn().get_database_backend(),
            "SELECT COUNT(*) AS n FROM events WHERE ce_id = 'odd-3' AND dedup_key IS NULL AND event_time IS NOT NULL",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(null_keys.try_get::<i64>("", "n").unwrap(), 1);
    if backend == Backend::Postgres {
        // Migration 15: traces are compressed with LZ4 (this server has it).
        let rows = app
            .store
            .conn()
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT attcompression::text AS c FROM pg_attribute \
                 WHERE attrelid = 'events'::regclass AND attname IN ('trace', 'payload')",
            ))
            .await
            .unwrap();
        let methods: Vec<String> = rows.iter().map(|r| r.try_get("", "c").unwrap()).collect();
        assert_eq!(methods, ["l", "l"]);
    }
}
on_both_backends!(a_batch_keeps_every_character_and_number);

async fn bad_input_gets_a_problem_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    let post = |body: Vec<u8>, ct: &'static str| {
        let req = app.client.post(app.url("/v1/events")).header("content-type", ct).body(body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            let body: Value = r.json().await.unwrap();
            (status, ct, body)
        }
    };
    let missing_id = json!({"specversion": "1.0", "source": "tdl://x", "type": "tdl.alert", "subject": "A.B",
        "data": {"state": "raised", "code": "X", "severity": "minor"}});
    let mut big = alert("big");
    big["data"]["blob"] = json!("x".repeat(300 * 1024));
    for (body, ct, status, code) in [
        (b"{\"specversion\": \"1.0\", \"id\": ".to_vec(), "application/cloudevents+json", 400, "malformed-request"),
        (missing_id.to_string().into_bytes(), "application/cloudevents+json", 422, "invalid-event"),
        (big.to_string().into_bytes(), "application/cloudevents+json", 413, "payload-too-large"),
        (b"hello".to_vec(), "text/plain", 415, "unsupported-media-type"),
    ] {
        let (s, content_type, problem) = post(body, ct).await;
        assert_eq!(s, status, "{problem}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["type"], format!("urn:workbridge:problem:{code}"));
        assert_eq!(problem["status"], status);
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    assert!(
        post(missing_id.to_string().into_bytes(), "application/cloudevents+json").await.2["detail"]
            .as_str()
            .unwrap()
            .contains("id")
    );

    // Every mistake a producer could make, from the fixture.
    let fixtures = std::fs::read_to_string(format!("{FIXTURES}/events-invalid.jsonl")).unwrap();
    for line in fixtures.lines().filter(|l| !l.is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let (s, _, body) =
            post(case["body"].as_str().unwrap().as_bytes().to_vec(), "application/cloudevents+json").await;
        if case["body"].as_str().unwrap().starts_with('[') {
            // A JSON array over HTTP is a batch: each element is refused on its own.
            assert_eq!(s, 200);
            assert_eq!(body["rejected"], 3, "{body}");
        } else {
            assert!(s == 400 || s == 422, "{}: {s} {body}", case["reason"]);
        }
    }
    let (_, events) = app.get("/v1/events").await;
    assert_eq!(events["total"], 0, "nothing invalid is stored");
}
on_both_backends!(bad_input_gets_a_problem_and_stores_nothing);

async fn unmapped_events_are_kept_counted_and_listed(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(sandbox_connector()).await;
    let mut e = alert("u-1");
    e["subject"] = json!("LEGACY.DCS.5419.PV");
    let (s, accepted) = app.post_json("/v1/events", &e).await;
    assert_eq!(s, 201);
    assert_eq!(accepted["outcome"], "unmapped");
    assert_eq!(accepted["work_order_id"], Value::Null);
    let (_, page) = app.get("/v1/events?outcome=unmapped").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["subject"], "LEGACY.DCS.5419.PV");
    assert!(page["items"][0]["trace"]["decision"]["reason"].as_str().unwrap().contains("no asset"));
    let (s, ready) = app.get("/readyz").await;
    assert_eq!(s, 200);
    assert_eq!(ready["unmapped_events"], 1);
    assert!(app.orders().await.is_empty());
}
on_both_backends!(unmapped_events_are_kept_counted_and_listed);
