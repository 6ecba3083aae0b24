//! `/metrics` after a known run, parsed.

use std::collections::HashMap;

use serde_json::json;

use crate::helpers::{Backend, Options, alert, sandbox_connector, spawn_app};
use crate::on_both_backends;

fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

async fn metrics_count_what_happened(backend: Backend) {
    let app = spawn_app(backend, Options { step_deliveries: true, ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await;
    app.post_json("/v1/events", &alert("m-1")).await;
    app.post_json("/v1/events", &alert("m-2")).await;
    app.post_json("/v1/events", &alert("m-2")).await; // duplicate: not counted again
    let mut unmapped = alert("m-3");
    unmapped["subject"] = json!("NOT.KNOWN.TAG");
    app.post_json("/v1/events", &unmapped).await;
    let (s, _) =
        app.post_json("/v1/events", &json!({"specversion": "1.0", "source": "tdl://x", "type": "tdl.alert"})).await;
    assert_eq!(s, 422);
    assert_eq!(app.deliver().await, 1);
    assert!(app.orders().await[0]["external_id"].is_string(), "delivered");

    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let m = parse(&r.text().await.unwrap());
    let get = |k: &str| m.get(k).copied().unwrap_or_else(|| panic!("no sample {k} in {m:?}"));
    assert_eq!(get(r#"workbridge_events_received_total{type="tdl.alert",outcome="created"}"#), 1.0);
    assert_eq!(get(r#"workbridge_events_received_total{type="tdl.alert",outcome="merged"}"#), 1.0);
    assert_eq!(get(r#"workbridge_events_received_total{type="tdl.alert",outcome="unmapped"}"#), 1.0);
    assert_eq!(get(r#"workbridge_events_rejected_total{reason="invalid"}"#), 1.0);
    assert_eq!(get(r#"workbridge_deliveries_total{connector="sandbox",kind="create",outcome="success"}"#), 1.0);
    assert_eq!(get(r#"workbridge_delivery_seconds_count{connector="sandbox"}"#), 1.0);
    assert_eq!(get("workbridge_orders_open"), 1.0);
    assert_eq!(get("workbridge_outbox_depth"), 0.0);
    assert_eq!(get(r#"workbridge_connector_healthy{connector="sandbox"}"#), 1.0);
}
on_both_backends!(metrics_count_what_happened);
