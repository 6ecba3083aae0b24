//! The set-up through the REST API: assets, the connector to the simulated
//! EAM, the rules and a maintenance window.

use std::time::Instant;

use chrono::Utc;
use serde_json::{Value, json};

use crate::Res;
use crate::plan::{CONNECTOR, Registry, SHUTDOWN_SITE, rules};

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Res<Value> {
        let resp = req.send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{what}: {status} {body}").into());
        }
        Ok(body)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Res<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body), path).await
    }
}

/// Assets, the REST connector to the simulated EAM, the rules and the
/// maintenance window of the shut-down site.
pub async fn set_up(api: &Api, reg: &Registry, rule_count: u32, eam_port: u16) -> Res<()> {
    let t = Instant::now();
    let loaded = api
        .send(
            api.http
                .post(format!("{}/v1/assets/bulk", api.base))
                .header("content-type", "text/csv")
                .body(reg.csv.clone()),
            "/v1/assets/bulk",
        )
        .await?;
    if loaded["rejected"] != 0 {
        return Err(format!("assets rejected: {loaded}").into());
    }
    println!(
        "  assets:      {} created, {} tags, in {:.1} s (one CSV bulk request)",
        loaded["created"],
        reg.equipment.len() * 3,
        t.elapsed().as_secs_f64()
    );
    // The body a REST EAM would take, with the first event's id so that
    // latency can be joined to its publish time.
    let body = json!({
        "reference": "{{ order.reference }}",
        "title": "{{ order.title }}",
        "description": "{{ order.description }}",
        "work_type": "{{ order.work_type }}",
        "priority": "{{ order.priority }}",
        "site": "{{ order.site }}",
        "asset": "{{ order.asset_id }}",
        "due_by": "{{ order.due_by }}",
        "first_event": "{{ event.id }}",
        "reported_at": "{{ event.time }}",
    });
    api.post(
        "/v1/connectors",
        &json!({"name": CONNECTOR, "config": {
            "kind": "rest",
            "url": format!("http://127.0.0.1:{eam_port}/api/orders"),
            "body": body,
            "id_path": "id",
            "status_path": "status",
        }}),
    )
    .await?;
    let t = Instant::now();
    for rule in rules(rule_count) {
        api.post("/v1/rules", &rule).await?;
    }
    println!("  rules:       {rule_count} created in {:.1} s", t.elapsed().as_secs_f64());
    api.post(
        "/v1/suppressions",
        &json!({
            "scope": "site", "target": SHUTDOWN_SITE,
            "ends_at": (Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
            "reason": "turnaround", "author": "loadgen",
        }),
    )
    .await?;
    println!("  connector:   rest → http://127.0.0.1:{eam_port}/api/orders; suppression: site {SHUTDOWN_SITE}");
    Ok(())
}
