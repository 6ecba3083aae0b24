//! KPIs against values worked out by hand, with time set by an injected clock.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use workbridge::clock::ManualClock;

use crate::helpers::{Backend, Options, TestApp, alert, sandbox_connector, spawn_app};
use crate::on_both_backends;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    format!("2026-11-24T{h:02}:{m:02}:00Z").parse().unwrap()
}

async fn order_for(app: &TestApp, id: &str, subject: &str) -> (String, String) {
    let mut e = alert(id);
    e["subject"] = json!(subject);
    e["time"] = json!(t(10, 0).to_rfc3339());
    let (_, a) = app.post_json("/v1/events", &e).await;
    let order = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("delivered", || async {
        app.get(&format!("/v1/work-orders/{order}")).await.1["external_id"].is_string()
    })
    .await;
    let sbx = app.get(&format!("/v1/work-orders/{order}")).await.1["external_id"].as_str().unwrap().to_owned();
    (order, sbx)
}

async fn move_to(app: &TestApp, sbx: &str, status: &str) {
    let (s, _) = app.post_json(&format!("/v1/sandbox/orders/{sbx}/status"), &json!({"status": status})).await;
    assert_eq!(s, 200);
}

async fn kpis_match_values_worked_out_by_hand(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t(10, 5)));
    let app = spawn_app(backend, Options { clock: clock.clone(), ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await; // priority 2: due 24 h after the first event

    // Three orders, first events all at 10:00, created in the EAM at 10:05, 10:10, 10:20.
    let (_a, sa) = order_for(&app, "k-a", "BEDFORD.PUMPING.MX101.BRG_TEMP").await;
    clock.set(t(10, 10));
    let (_b, sb) = order_for(&app, "k-b", "BEDFORD.PUMPING.P504.BRG_TEMP").await;
    clock.set(t(10, 20));
    let (c, sc) = order_for(&app, "k-c", "BEDFORD.PUMPING.P405.BRG_TEMP").await;
    // A acknowledged at 10:30, B in progress at 10:40, C cancelled at 10:50, A completed at 11:00.
    clock.set(t(10, 30));
    move_to(&app, &sa, "acknowledged").await;
    let mut merged = alert("k-a2");
    merged["time"] = json!(t(10, 31).to_rfc3339());
    assert_eq!(app.post_json("/v1/events", &merged).await.1["outcome"], "merged");
    let mut unmapped = alert("k-u");
    unmapped["subject"] = json!("NOT.KNOWN.TAG");
    app.post_json("/v1/events", &unmapped).await;
    clock.set(t(10, 40));
    move_to(&app, &sb, "in_progress").await;
    clock.set(t(10, 50));
    move_to(&app, &sc, "cancelled").await;
    clock.set(t(11, 0));
    move_to(&app, &sa, "completed").await;

    let (s, k) = app.get("/v1/kpis?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z").await;
    assert_eq!(s, 200, "{k}");
    assert_eq!(k["orders"], 3);
    // time to create: 300, 600, 1200 s; nearest rank: p50 = rank 2, p90 = p99 = rank 3
    assert_eq!(k["time_to_create"], json!({"count": 3, "mean": 700.0, "p50": 600.0, "p90": 1200.0, "p99": 1200.0}));
    // time to acknowledge: A 1800 s (acknowledged), B 2400 s (in progress); C never
    assert_eq!(
        k["time_to_acknowledge"],
        json!({"count": 2, "mean": 2100.0, "p50": 1800.0, "p90": 2400.0, "p99": 2400.0})
    );
    assert_eq!(k["time_to_complete"], json!({"count": 1, "mean": 3600.0, "p50": 3600.0, "p90": 3600.0, "p99": 3600.0}));
    close(&k["acceptance_rate"], 2.0 / 3.0); // A and B accepted, C cancelled
    close(&k["sla_compliance"], 1.0); // A completed before its due-by, nothing open is overdue
    assert_eq!(k["sla_by_priority"], json!([{"priority": 2, "met": 1, "missed": 0, "compliance": 1.0}]));
    close(&k["dedup_savings"], 0.25); // 1 merged of 4 events that led to an order
    close(&k["automation_rate"], 0.8); // 4 of 5 raised events led to an order
    close(&k["mapping_coverage"], 0.8); // 4 of 5 events mapped
    assert_eq!(k["backlog_open"], 1); // B
    close(&k["backlog_oldest_age"], 3000.0); // B was decided at 10:10, it is 11:00
    let by_age = |k: &Value| -> Vec<u64> {
        k["backlog_by_age"].as_array().unwrap().iter().map(|b| b["orders"].as_u64().unwrap()).collect()
    };
    assert_eq!(by_age(&k), [1, 0, 0, 0, 0], "B is 50 min old");
    assert_eq!(k["backlog_by_age"][1], json!({"min_days": 1, "max_days": 3, "orders": 0}));
    assert_eq!(k["backlog_by_age"][4], json!({"min_days": 28, "max_days": null, "orders": 0}));

    // Per rule: the one rule, version 1; C gets a false-alarm verdict.
    app.post_json(&format!("/v1/work-orders/{c}/feedback"), &json!({"verdict": "false_alarm", "author": "j.planner"}))
        .await;
    let (s, rules) = app.get("/v1/kpis/rules?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z").await;
    assert_eq!(s, 200, "{rules}");
    let r = &rules[0];
    assert_eq!(rules.as_array().unwrap().len(), 1);
    assert_eq!(r["rule_version"], 1);
    assert_eq!(
        (r["events_matched"].as_u64(), r["orders_created"].as_u64(), r["events_merged"].as_u64()),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(
        (r["orders_accepted"].as_u64(), r["orders_rejected"].as_u64(), r["orders_cancelled"].as_u64()),
        (Some(2), Some(0), Some(1))
    );
    close(&r["precision"], 2.0 / 3.0);
    assert_eq!(r["median_time_to_acknowledge"], 1800.0);
    assert_eq!((r["feedback_useful"].as_u64(), r["feedback_false_alarm"].as_u64()), (Some(0), Some(1)));

    // By the plant's local day (Auckland: UTC+13 in November): 10:00 UTC is
    // 23:00 on the 24th there, so all three orders fall in the first day.
    let (s, series) = app
        .get("/v1/kpis/timeseries?bucket=day&tz=Pacific/Auckland&since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z")
        .await;
    assert_eq!(s, 200, "{series}");
    let points = series.as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["start"], "2026-11-23T11:00:00Z");
    assert_eq!((points[0]["kpis"]["orders"].as_u64(), points[1]["kpis"]["orders"].as_u64()), (Some(3), Some(0)));
    let (s, _) = app.get("/v1/kpis/timeseries?bucket=day&tz=Mars/Olympus").await;
    assert_eq!(s, 422);

    // Filters: only the mixer's order (asset class MIXER).
    let (_, mixers) = app.get("/v1/kpis?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z&asset_class=MIXER").await;
    assert_eq!(mixers["orders"], 1);
    assert_eq!(mixers["time_to_create"]["p50"], 300.0);

    // An empty range: zero counts, no percentiles, no rates.
    let (_, empty) = app.get("/v1/kpis?since=2025-01-01T00:00:00Z&until=2025-02-01T00:00:00Z").await;
    assert_eq!(empty["orders"], 0);
    assert_eq!(empty["time_to_create"], json!({"count": 0, "mean": null, "p50": null, "p90": null, "p99": null}));
    assert_eq!(empty["acceptance_rate"], Value::Null);
    assert_eq!(empty["automation_rate"], Value::Null);
    let (s, _) = app.get("/v1/kpis?since=2026-11-25T00:00:00Z&until=2026-11-24T00:00:00Z").await;
    assert_eq!(s, 422);

    // B's age on the bucket bounds: exactly 3 days is in 3–7, 28 days in the last.
    let day = "/v1/kpis?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z";
    clock.set(t(10, 10) + chrono::Duration::days(3));
    assert_eq!(by_age(&app.get(day).await.1), [0, 0, 1, 0, 0]);
    clock.set(t(10, 10) + chrono::Duration::days(28));
    assert_eq!(by_age(&app.get(day).await.1), [0, 0, 0, 0, 1]);
}
on_both_backends!(kpis_match_values_worked_out_by_hand);

fn close(v: &Value, expected: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((got - expected).abs() < 1e-6, "{got} != {expected}");
}
