//! The ServiceNow connector against a simulated Table API (wiremock),
//! shaped after ServiceNow's documentation (`docs/eam-apis.md` §2).

use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Options, alert, spawn_app};
use crate::on_both_backends;

const TABLE: &str = "/api/now/table/incident";

fn connector(server: &MockServer) -> Value {
    json!({"name": "servicenow", "config": {
        "kind": "servicenow", "instance_url": server.uri(), "username": "workbridge", "password": "sn-secret",
        "assignment_group": "Maintenance Bedford"
    }})
}

/// Rate limited first (429 with Retry-After and ServiceNow's error body),
/// then created: one incident, with our reference as correlation_id.
async fn rate_limited_then_created(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(json!({
            "error": {"message": "Rate limit exceeded", "detail": "Rate limit of 10 requests per hour for Table API exceeded"},
            "status": "failure"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .and(basic_auth("workbridge", "sn-secret"))
        .and(header("accept", "application/json"))
        .and(query_param("sysparm_fields", "sys_id,number,state,correlation_id"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": {
            "sys_id": "a9e30c7dc61122760116894de7bcc7bd", "number": "INC0010002", "state": "1", "correlation_id": "set below"
        }})))
        .with_priority(2)
        .mount(&server)
        .await;
    // The retry looks the incident up first (none yet).
    Mock::given(method("GET"))
        .and(path(TABLE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": []})))
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(connector(&server)).await;
    let (_, a) = app.post_json("/v1/events", &alert("sn-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("created in ServiceNow", || async {
        app.get(&format!("/v1/work-orders/{order_id}")).await.1["external_id"] == "a9e30c7dc61122760116894de7bcc7bd"
    })
    .await;
    let requests = server.received_requests().await.unwrap();
    let posts: Vec<_> = requests.iter().filter(|r| r.method == wiremock::http::Method::POST).collect();
    assert_eq!(posts.len(), 2, "the 429, then the create");
    let body: Value = serde_json::from_slice(&posts[1].body).unwrap();
    assert_eq!(body["correlation_id"], order_id.as_str());
    assert_eq!(body["short_description"], "HIGH_TEMPERATURE on Mixer 101 (MX-101)");
    assert_eq!((body["impact"].as_str(), body["urgency"].as_str()), (Some("1"), Some("2")), "priority 2");
    assert_eq!(body["assignment_group"], "Maintenance Bedford");
    assert_eq!(body["cmdb_ci"], "MX-101");
    let lookup = requests.iter().find(|r| r.method == wiremock::http::Method::GET).expect("a lookup before the retry");
    let q = lookup.url.query_pairs().find(|(k, _)| k == "sysparm_query").unwrap().1.into_owned();
    assert_eq!(q, format!("correlation_id={order_id}"));
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["history"][1]["external_status"], "1");
    let (_, c) = app.get("/v1/connectors/servicenow").await;
    assert_eq!(c["config"]["password"], "***");
}
on_both_backends!(rate_limited_then_created);

/// A lookup by correlation_id that ServiceNow answers with unrelated rows
/// (an unknown query field is dropped silently) is not taken as our record.
async fn the_lookup_checks_the_correlation_id_itself(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(
                json!({"error": {"message": "Service Unavailable", "detail": null}, "status": "failure"}),
            ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result": {"sys_id": "b1", "number": "INC0010003", "state": "1"}})),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TABLE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [
            {"sys_id": "other", "number": "INC0000001", "state": "7", "correlation_id": "someone-else"}
        ]})))
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(connector(&server)).await;
    app.post_json("/v1/events", &alert("sn-2")).await;
    app.eventually("created", || async { app.orders().await[0]["external_id"] == "b1" }).await;
}
on_both_backends!(the_lookup_checks_the_correlation_id_itself);

async fn polling_uses_one_query_per_batch(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result": {"sys_id": "c1", "number": "INC0010004", "state": "1"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TABLE))
        .and(query_param("sysparm_query", "sys_idINc1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [
            {"sys_id": "c1", "state": "6", "sys_updated_on": "2026-11-24 16:30:00", "close_code": "No Fault Found"}
        ]})))
        .mount(&server)
        .await;
    let env = vec![("WORKBRIDGE_SYNC__POLL_INTERVAL_MS", "100".to_owned())];
    let app = spawn_app(backend, Options { env, ..Default::default() }).await;
    let mut c = connector(&server);
    c["feedback_codes"] = json!({"No Fault Found": "false_alarm", "Solved (Permanently)": "useful"});
    app.setup_flow(c).await;
    let (_, a) = app.post_json("/v1/events", &alert("snp-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("resolved", || async {
        app.get(&format!("/v1/work-orders/{order_id}")).await.1["status"] == "completed"
    })
    .await;
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    let polled = o["history"].as_array().unwrap().iter().find(|h| h["source"] == "poll").unwrap().clone();
    assert_eq!((polled["at"].as_str(), polled["external_status"].as_str()), (Some("2026-11-24T16:30:00Z"), Some("6")));
    // ServiceNow's close code counts as feedback: no fault found, a false alarm.
    assert_eq!(o["feedback"].as_array().unwrap().len(), 1, "{o}");
    assert_eq!(
        (o["feedback"][0]["verdict"].as_str(), o["feedback"][0]["source"].as_str()),
        (Some("false_alarm"), Some("eam"))
    );
}
on_both_backends!(polling_uses_one_query_per_batch);

async fn oauth2_client_credentials(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth_token.do"))
        .and(wiremock::matchers::body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "scope": "useraccount", "token_type": "Bearer", "expires_in": 1799, "access_token": "sn-access-1"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TABLE))
        .and(header("authorization", "Bearer sn-access-1"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result": {"sys_id": "d1", "number": "INC0010005", "state": "1"}})),
        )
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(json!({"name": "servicenow", "config": {
        "kind": "servicenow", "instance_url": server.uri(),
        "oauth2": {"token_url": format!("{}/oauth_token.do", server.uri()), "client_id": "wb", "client_secret": "shh"}
    }}))
    .await;
    app.post_json("/v1/events", &alert("sno-1")).await;
    let mut other = alert("sno-2");
    other["subject"] = json!("BEDFORD.PUMPING.P504.BRG_TEMP");
    app.post_json("/v1/events", &other).await;
    app.eventually("both created", || async {
        app.orders().await.iter().filter(|o| o["external_id"] == "d1").count() == 2
    })
    .await;
    // `expect(1)`: one token for both orders, checked when the server drops.
    let (s, p) = app
        .post_json("/v1/connectors", &json!({"name": "half", "config": {"kind": "servicenow", "instance_url": server.uri(), "username": "only-user"}}))
        .await;
    assert_eq!(s, 422, "{p}");
}
on_both_backends!(oauth2_client_credentials);

/// One ServiceNow table, simulated after the Table API (`docs/eam-apis.md`
/// §2): `POST` creates a record in state 1 (Draft on `wm_order`/`wm_task`,
/// New on `incident`), `GET` answers `sysparm_query=sys_idIN…` and
/// `correlation_id=…` with `{"result": [...]}` (in its own order, not the
/// order asked), `PATCH /{sys_id}` updates the record.
#[derive(Clone)]
struct Table {
    name: &'static str,
    rows: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Table {
    fn new(name: &'static str) -> Self {
        Self { name, rows: Default::default() }
    }

    async fn mount(&self, server: &MockServer) {
        Mock::given(wiremock::matchers::path_regex(format!("^/api/now/table/{}(/.*)?$", self.name)))
            .and(basic_auth("workbridge", "sn-secret"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    /// What the planner does in ServiceNow: a new state at a time.
    fn set(&self, sys_id: &str, state: &str, updated_on: &str) {
        let mut rows = self.rows.lock().unwrap();
        let row = rows.iter_mut().find(|r| r["sys_id"] == sys_id).expect("a record of this table");
        row["state"] = json!(state);
        row["sys_updated_on"] = json!(updated_on);
    }
}

impl wiremock::Respond for Table {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        use wiremock::http::Method;
        let mut rows = self.rows.lock().unwrap();
        let record_id = req.url.path().rsplit_once(&format!("/{}/", self.name)).map(|(_, id)| id.to_owned());
        match (&req.method, record_id) {
            (&Method::POST, None) => {
                let body: Value = serde_json::from_slice(&req.body).unwrap();
                let n = rows.len() + 1;
                let prefix = if self.name == "incident" { "INC" } else { "WO" };
                let row = json!({
                    "sys_id": format!("{:032x}", 0xa9e3_0000_u64 + n as u64),
                    "number": format!("{prefix}00100{n:02}"), "state": "1",
                    "correlation_id": body["correlation_id"], "short_description": body["short_description"],
                    "sys_updated_on": "2026-11-24 10:15:01", "close_code": ""
                });
                rows.push(row.clone());
                ResponseTemplate::new(201).set_body_json(json!({"result": row}))
            }
            (&Method::GET, None) => {
                let q = req.url.query_pairs().find(|(k, _)| k == "sysparm_query").map(|(_, v)| v.into_owned());
                let q = q.unwrap_or_default();
                let found: Vec<Value> = if let Some(ids) = q.strip_prefix("sys_idIN") {
                    let ids: Vec<&str> = ids.split(',').collect();
                    rows.iter().rev().filter(|r| ids.contains(&r["sys_id"].as_str().unwrap())).cloned().collect()
                } else if let Some(c) = q.strip_prefix("correlation_id=") {
                    rows.iter().filter(|r| r["correlation_id"] == c).cloned().collect()
                } else {
                    rows.clone()
                };
                ResponseTemplate::new(200).set_body_json(json!({"result": found}))
            }
            (&Method::PATCH, Some(id)) => match rows.iter_mut().find(|r| r["sys_id"] == id.as_str()) {
                Some(row) => {
                    let body: Value = serde_json::from_slice(&req.body).unwrap();
                    if let Some(state) = body.get("state") {
                        row["state"] = state.clone();
                    }
                    ResponseTemplate::new(200).set_body_json(json!({"result": row}))
                }
                None => ResponseTemplate::new(404).set_body_json(json!({
                    "error": {"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"},
                    "status": "failure"
                })),
            },
            _ => ResponseTemplate::new(405),
        }
    }
}

fn table_connector(server: &MockServer, table: &str) -> Value {
    json!({"name": "servicenow", "config": {
        "kind": "servicenow", "instance_url": server.uri(), "table": table,
        "username": "workbridge", "password": "sn-secret"
    }})
}

/// Deliveries and polls stepped by the test, on a clock stopped just after
/// the alerts (the EAM's later times come after workbridge's own).
fn stepped() -> Options {
    let t0 = "2026-11-24T10:16:00Z".parse().unwrap();
    Options {
        step_deliveries: true,
        clock: std::sync::Arc::new(workbridge::clock::ManualClock::new(t0)),
        env: vec![("WORKBRIDGE_SYNC__POLL_INTERVAL_MS", "0".to_owned())],
        ..Default::default()
    }
}

/// The demo registry, the connector and a rule whose clears cancel orders
/// that have not started.
async fn flow_cancelling_on_clear(app: &crate::helpers::TestApp, connector: Value) {
    let csv = std::fs::read_to_string(format!("{}/assets-demo.csv", crate::helpers::FIXTURES)).unwrap();
    let r = app.client.post(app.url("/v1/assets/bulk")).header("content-type", "text/csv").body(csv).send().await;
    assert_eq!(r.unwrap().status(), 200);
    let (s, body) = app.post_json("/v1/connectors", &connector).await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = app
        .post_json(
            "/v1/rules",
            &json!({
                "name": "alerts", "when": {"types": ["tdl.alert"], "min_severity": "minor"},
                "action": {"kind": "create", "connector": "servicenow", "work_type": "corrective", "priority": 2,
                           "on_clear": "cancel_if_not_started"}
            }),
        )
        .await;
    assert_eq!(s, 201, "{body}");
}

fn alert_on(id: &str, subject: &str) -> Value {
    let mut e = alert(id);
    e["subject"] = json!(subject);
    e
}

async fn order(app: &crate::helpers::TestApp, id: &str) -> Value {
    app.get(&format!("/v1/work-orders/{id}")).await.1
}

/// Work order tasks have their own states (Draft 1, Pending Dispatch 10,
/// Assigned 16, Accepted 17, Work in Progress 18, Closed Complete 3, Closed
/// Incomplete 4, Cancelled 7): polled in one query for two tasks (answered
/// in another order than asked), and a cancel sends the task's Cancelled, 7.
async fn wm_task_states_and_cancel_follow_the_table(backend: Backend) {
    let server = MockServer::start().await;
    let table = Table::new("wm_task");
    table.mount(&server).await;
    let app = spawn_app(backend, stepped()).await;
    flow_cancelling_on_clear(&app, table_connector(&server, "wm_task")).await;
    let (_, a) = app.post_json("/v1/events", &alert_on("wt-1", "BEDFORD.PUMPING.MX101.BRG_TEMP")).await;
    let (_, b) = app.post_json("/v1/events", &alert_on("wt-2", "BEDFORD.PUMPING.P504.BRG_TEMP")).await;
    assert_eq!(app.deliver().await, 2);
    let (mixer, pump) = (
        order(&app, a["work_order_id"].as_str().unwrap()).await,
        order(&app, b["work_order_id"].as_str().unwrap()).await,
    );
    let (mixer_task, pump_task) = (mixer["external_id"].as_str().unwrap(), pump["external_id"].as_str().unwrap());
    assert_eq!(mixer["external_url"].as_str().unwrap(), format!("{}/wm_task.do?sys_id={mixer_task}", server.uri()));

    table.set(mixer_task, "18", "2026-11-24 11:00:00");
    table.set(pump_task, "16", "2026-11-24 11:05:00");
    assert_eq!(app.poll().await.changed, 2);
    let (mixer, pump) =
        (order(&app, mixer["id"].as_str().unwrap()).await, order(&app, pump["id"].as_str().unwrap()).await);
    assert_eq!((mixer["status"].as_str(), pump["status"].as_str()), (Some("in_progress"), Some("acknowledged")));
    let polls: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::GET)
        .collect();
    assert_eq!(polls.len(), 1, "one query for both tasks");

    // The pump's alert clears before work started: the task is cancelled.
    let mut clear = alert_on("wt-3", "BEDFORD.PUMPING.P504.BRG_TEMP");
    clear["data"]["state"] = json!("cleared");
    app.post_json("/v1/events", &clear).await;
    assert_eq!(app.deliver().await, 1);
    let requests = server.received_requests().await.unwrap();
    let patch = requests.iter().find(|r| r.method == wiremock::http::Method::PATCH).expect("a cancel");
    assert_eq!(patch.url.path(), format!("/api/now/table/wm_task/{pump_task}"));
    let body: Value = serde_json::from_slice(&patch.body).unwrap();
    assert_eq!(body, json!({"state": "7"}), "wm_task's Cancelled");
    assert_eq!(order(&app, pump["id"].as_str().unwrap()).await["status"], "cancelled");
}
on_both_backends!(wm_task_states_and_cancel_follow_the_table);

/// An incident put On Hold (3) while In Progress (2) stays in progress: On
/// Hold is a pause in the work, not a step back to before it.
async fn an_incident_on_hold_stays_in_progress(backend: Backend) {
    let server = MockServer::start().await;
    let table = Table::new("incident");
    table.mount(&server).await;
    let app = spawn_app(backend, stepped()).await;
    app.setup_flow(table_connector(&server, "incident")).await;
    let (_, a) = app.post_json("/v1/events", &alert("hold-1")).await;
    let id = a["work_order_id"].as_str().unwrap().to_owned();
    app.deliver().await;
    let sys_id = order(&app, &id).await["external_id"].as_str().unwrap().to_owned();
    table.set(&sys_id, "2", "2026-11-24 11:00:00");
    app.poll().await;
    table.set(&sys_id, "3", "2026-11-24 11:30:00");
    app.poll().await;
    assert_eq!(order(&app, &id).await["status"], "in_progress", "On Hold after In Progress");
    table.set(&sys_id, "6", "2026-11-24 12:00:00");
    app.poll().await;
    let o = order(&app, &id).await;
    let history: Vec<&str> = o["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["pending", "created", "in_progress", "completed"]);
}
on_both_backends!(an_incident_on_hold_stays_in_progress);

/// Each table gets its own default state map and cancel state; values given
/// in the configuration win.
async fn state_maps_default_per_table(backend: Backend) {
    let server = MockServer::start().await;
    let app = spawn_app(backend, Options::default()).await;
    let mut wm_order = table_connector(&server, "wm_order");
    wm_order["name"] = json!("fsm");
    let (s, body) = app.post_json("/v1/connectors", &wm_order).await;
    assert_eq!(s, 201, "{body}");
    let (_, c) = app.get("/v1/connectors/fsm").await;
    assert_eq!(c["config"]["cancel_state"], "7", "{c}");
    assert_eq!(c["config"]["statuses"]["18"], "in_progress");
    assert_eq!(c["config"]["statuses"]["3"], "completed", "Closed Complete");
    assert!(c["config"]["statuses"].get("8").is_none(), "8 is not a work order state");
    let (_, c) = app.post_json("/v1/connectors", &table_connector(&server, "incident")).await;
    assert_eq!(
        (c["config"]["cancel_state"].as_str(), c["config"]["statuses"]["3"].as_str()),
        (Some("8"), Some("in_progress"))
    );
    let mut custom = table_connector(&server, "wm_order");
    custom["name"] = json!("custom");
    custom["config"]["statuses"] = json!({"1": "created", "22": "in_progress"});
    custom["config"]["cancel_state"] = json!("9");
    let (_, c) = app.post_json("/v1/connectors", &custom).await;
    assert_eq!(c["config"]["statuses"], json!({"1": "created", "22": "in_progress"}));
    assert_eq!(c["config"]["cancel_state"], "9");
}
on_both_backends!(state_maps_default_per_table);
