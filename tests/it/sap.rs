//! The SAP S/4HANA connector against a simulated API_MAINTNOTIFICATION
//! (wiremock), shaped after SAP's documentation (`docs/eam-apis.md` §3).

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{Backend, Options, alert, spawn_app};
use crate::on_both_backends;

const SERVICE: &str = "/sap/opu/odata/sap/API_MAINTNOTIFICATION";

/// Each fetch hands out a new token, with its session cookie.
struct TokenDesk(AtomicUsize);

impl Respond for TokenDesk {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .insert_header("x-csrf-token", format!("tok-{n}").as_str())
            .append_header("set-cookie", format!("SAP_SESSIONID_S4H_100=session{n}; path=/; HttpOnly").as_str())
            .append_header("set-cookie", "sap-usercontext=sap-client=100; path=/")
            .set_body_json(json!({"d": {"EntitySets": ["MaintenanceNotification", "MaintenanceNotificationItem"]}}))
    }
}

/// The first token has expired by the time of the write (403, `X-CSRF-Token:
/// Required`); a new fetch and one more write create the notification.
async fn a_refused_csrf_token_is_fetched_again(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{SERVICE}/")))
        .and(header("x-csrf-token", "Fetch"))
        .and(basic_auth("WB_INTEGRATION", "sap-secret"))
        .and(query_param("sap-client", "100"))
        .respond_with(TokenDesk(AtomicUsize::new(0)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{SERVICE}/MaintenanceNotification")))
        .and(header("x-csrf-token", "tok-1"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-csrf-token", "Required")
                .set_body_string("CSRF token validation failed"),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{SERVICE}/MaintenanceNotification")))
        .and(header("x-csrf-token", "tok-2"))
        .and(header("cookie", "SAP_SESSIONID_S4H_100=session2; sap-usercontext=sap-client=100"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"d": {
            "MaintenanceNotification": "10000020", "NotifProcessingPhase": "1", "NotifProcessingPhaseDesc": "Outstanding"
        }})))
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(json!({"name": "s4", "config": {
        "kind": "sap", "service_url": format!("{}{SERVICE}", server.uri()), "sap_client": "100",
        "username": "WB_INTEGRATION", "password": "sap-secret", "planning_plant": "1010"
    }}))
    .await;
    let (_, a) = app.post_json("/v1/events", &alert("sap-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("notification created", || async {
        app.get(&format!("/v1/work-orders/{order_id}")).await.1["external_id"] == "10000020"
    })
    .await;
    let requests = server.received_requests().await.unwrap();
    let posts: Vec<_> = requests.iter().filter(|r| r.method == wiremock::http::Method::POST).collect();
    assert_eq!(posts.len(), 2, "refused once for the token, then created");
    let body: Value = serde_json::from_slice(&posts[1].body).unwrap();
    assert_eq!(body["NotificationType"], "M2");
    assert_eq!(body["MaintPriority"], "2");
    assert_eq!(body["TechnicalObject"], "MX-101");
    assert_eq!(body["MaintenancePlanningPlant"], "1010");
    assert!(body["NotificationText"].as_str().unwrap().chars().count() <= 40);
    let ext = body["MaintNotifExtReferenceNumber"].as_str().unwrap();
    assert!(ext.starts_with("WB") && ext.len() <= 20, "{ext}");
    assert_eq!(ext, workbridge::connectors::sap::external_reference(&order_id));
    assert!(body["MalfunctionStartDate"].as_str().unwrap().starts_with("/Date("));
    assert_eq!(body["MalfunctionStartTime"], "PT10H15M00S");
    let (_, o) = app.get(&format!("/v1/work-orders/{order_id}")).await;
    assert_eq!(o["history"][1]["external_status"], "1");
    Mock::given(method("GET"))
        .and(path(format!("{SERVICE}/")))
        .and(query_param("$format", "json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"d": {"EntitySets": ["MaintenanceNotification"]}})),
        )
        .mount(&server)
        .await;
    let (_, check) = app.post_json("/v1/connectors/s4/check", &json!({})).await;
    assert_eq!(check["ok"], true, "{check}");
}
on_both_backends!(a_refused_csrf_token_is_fetched_again);

/// An OData error body fails the order with SAP's message.
async fn odata_errors_fail_the_order(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(TokenDesk(AtomicUsize::new(0))).mount(&server).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": "IM/106", "message": {"lang": "en", "value": "Equipment MX-101 does not exist"},
            "innererror": {"transactionid": "5F2E", "errordetails": []}
        }})))
        .mount(&server)
        .await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(json!({"name": "s4", "config": {
        "kind": "sap", "service_url": format!("{}{SERVICE}", server.uri()), "username": "u", "password": "p"
    }}))
    .await;
    app.post_json("/v1/events", &alert("sap-2")).await;
    app.eventually("failed", || async { app.orders().await[0]["status"] == "failed" }).await;
    let e = app.orders().await[0]["last_error"].as_str().unwrap().to_owned();
    assert!(e.contains("IM/106 Equipment MX-101 does not exist"), "{e}");
}
on_both_backends!(odata_errors_fail_the_order);

/// API_MAINTNOTIFICATION simulated after SAP's documentation
/// (`docs/eam-apis.md` §3): a CSRF token fetched with its session cookie
/// (valid until the session ends: then a write answers 403 with
/// `X-CSRF-Token: Required`), notifications created with system status
/// OSNO, `$filter` of `eq` terms joined by `or`, `$select` honoured, the
/// answer in SAP's own order (not the order asked).
#[derive(Clone, Default)]
struct S4(std::sync::Arc<std::sync::Mutex<S4State>>);

#[derive(Default)]
struct S4State {
    /// The tokens SAP accepts now, each with its session cookie.
    sessions: Vec<(String, String)>,
    fetches: usize,
    notifications: Vec<Value>,
    /// Stores the next create but answers 504 (the answer is lost).
    lose_next_answer: bool,
}

impl S4 {
    async fn mount(&self, server: &MockServer) {
        Mock::given(wiremock::matchers::path_regex(format!("^{SERVICE}/")))
            .and(basic_auth("WB_INTEGRATION", "sap-secret"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }
    fn fetches(&self) -> usize {
        self.0.lock().unwrap().fetches
    }
    /// The sessions time out in SAP: their tokens are no longer accepted.
    fn end_sessions(&self) {
        self.0.lock().unwrap().sessions.clear();
    }
    /// The planner works the notification: new system statuses.
    fn set(&self, id: &str, system_status: &str, phase: &str, changed_ms: i64) {
        let mut s = self.0.lock().unwrap();
        let n = s.notifications.iter_mut().find(|n| n["MaintenanceNotification"] == id).unwrap();
        n["ConcatenatedActiveSystStsName"] = json!(system_status);
        n["NotifProcessingPhase"] = json!(phase);
        n["LastChangeDateTime"] = json!(format!("/Date({changed_ms}+0000)/"));
    }
    fn delete(&self, id: &str) {
        self.0.lock().unwrap().notifications.retain(|n| n["MaintenanceNotification"] != id);
    }
}

/// `Field eq 'value' or Field eq 'value' …` → (field, value) pairs.
fn eq_terms(filter: &str) -> Vec<(String, String)> {
    filter
        .split(" or ")
        .filter_map(|t| {
            let (field, value) = t.trim().split_once(" eq ")?;
            Some((field.to_owned(), value.trim_matches('\'').to_owned()))
        })
        .collect()
}

impl Respond for S4 {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        use wiremock::http::Method;
        let mut s = self.0.lock().unwrap();
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let query = |name: &str| req.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        let set = req.url.path().strip_prefix(SERVICE).unwrap_or_default().to_owned();
        match (&req.method, set.as_str()) {
            (&Method::GET, "/") if header("x-csrf-token") == "Fetch" => {
                s.fetches += 1;
                let (token, cookie) = (format!("tok-{}", s.fetches), format!("session{}", s.fetches));
                s.sessions.push((token.clone(), cookie.clone()));
                ResponseTemplate::new(200)
                    .insert_header("x-csrf-token", token.as_str())
                    .append_header("set-cookie", format!("SAP_SESSIONID_S4H_100={cookie}; path=/; HttpOnly").as_str())
                    .append_header("set-cookie", "sap-usercontext=sap-client=100; path=/")
                    .set_body_json(json!({"d": {"EntitySets": ["MaintenanceNotification"]}}))
            }
            (&Method::POST, "/MaintenanceNotification") => {
                let valid = s.sessions.iter().any(|(token, cookie)| {
                    header("x-csrf-token") == *token
                        && header("cookie").contains(&format!("SAP_SESSIONID_S4H_100={cookie}"))
                });
                if !valid {
                    return ResponseTemplate::new(403)
                        .insert_header("x-csrf-token", "Required")
                        .set_body_string("CSRF token validation failed");
                }
                let body: Value = serde_json::from_slice(&req.body).unwrap();
                let id = format!("{}", 10_000_020 + s.notifications.len());
                let n = json!({
                    "MaintenanceNotification": id, "NotificationText": body["NotificationText"],
                    "NotifProcessingPhase": "1", "NotifProcessingPhaseDesc": "Outstanding",
                    "ConcatenatedActiveSystStsName": "OSNO",
                    "MaintNotifExtReferenceNumber": body["MaintNotifExtReferenceNumber"],
                    "LastChangeDateTime": "/Date(1795516501000+0000)/"
                });
                s.notifications.push(n.clone());
                if std::mem::take(&mut s.lose_next_answer) {
                    return ResponseTemplate::new(504).set_body_string("Gateway Timeout");
                }
                ResponseTemplate::new(201).set_body_json(json!({"d": n}))
            }
            (&Method::GET, "/MaintenanceNotification") => {
                let terms = eq_terms(&query("$filter").unwrap_or_default());
                let select: Option<Vec<String>> = query("$select").map(|s| s.split(',').map(str::to_owned).collect());
                let results: Vec<Value> = s
                    .notifications
                    .iter()
                    .rev()
                    .filter(|n| terms.iter().any(|(f, v)| n[f.as_str()] == v.as_str()))
                    .map(|n| match &select {
                        Some(fields) => fields.iter().map(|f| (f.clone(), n[f.as_str()].clone())).collect(),
                        None => n.clone(),
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"d": {"results": results}}))
            }
            _ => ResponseTemplate::new(404).set_body_json(json!({"error": {
                "code": "/IWFND/MED/170", "message": {"lang": "en", "value": "No service found for namespace ''"}
            }})),
        }
    }
}

fn s4_connector(server: &MockServer) -> Value {
    json!({"name": "s4", "config": {
        "kind": "sap", "service_url": format!("{}{SERVICE}", server.uri()), "sap_client": "100",
        "username": "WB_INTEGRATION", "password": "sap-secret", "planning_plant": "1010"
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

fn alert_on(id: &str, subject: &str) -> Value {
    let mut e = alert(id);
    e["subject"] = json!(subject);
    e
}

async fn order(app: &crate::helpers::TestApp, id: &str) -> Value {
    app.get(&format!("/v1/work-orders/{id}")).await.1
}

/// One token and its session serve every write; SAP's 403 `Required` (the
/// session ended) is the only reason to fetch again.
async fn one_csrf_session_serves_many_writes(backend: Backend) {
    let server = MockServer::start().await;
    let s4 = S4::default();
    s4.mount(&server).await;
    let app = spawn_app(backend, stepped()).await;
    app.setup_flow(s4_connector(&server)).await;
    app.post_json("/v1/events", &alert_on("cs-1", "BEDFORD.PUMPING.MX101.BRG_TEMP")).await;
    app.post_json("/v1/events", &alert_on("cs-2", "BEDFORD.PUMPING.P504.BRG_TEMP")).await;
    assert_eq!(app.deliver().await, 2);
    assert_eq!(s4.fetches(), 1, "one token for both creates");
    s4.end_sessions();
    app.post_json("/v1/events", &alert_on("cs-3", "BEDFORD.PUMPING.CV702.VIB_X")).await;
    assert_eq!(app.deliver().await, 1);
    assert_eq!(s4.fetches(), 2, "fetched again after SAP's 403 Required");
    let orders = app.orders().await;
    assert!(orders.iter().all(|o| o["status"] == "created"), "{orders:?}");
    let posts: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::POST)
        .map(|r| r.headers.get("x-csrf-token").unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(posts, ["tok-1", "tok-1", "tok-1", "tok-2"]);
}
on_both_backends!(one_csrf_session_serves_many_writes);

/// Status by polling, from SAP's documented system statuses: three
/// notifications in one query, answered in another order than asked; one
/// was deleted in SAP and is missing from the answer (its order is left as
/// it is, and asked for again at the next poll).
async fn poll_maps_system_statuses_of_several_notifications(backend: Backend) {
    let server = MockServer::start().await;
    let s4 = S4::default();
    s4.mount(&server).await;
    let app = spawn_app(backend, stepped()).await;
    app.setup_flow(s4_connector(&server)).await;
    let mut ids = vec![];
    for (event, subject) in [
        ("sp-1", "BEDFORD.PUMPING.MX101.BRG_TEMP"),
        ("sp-2", "BEDFORD.PUMPING.P504.BRG_TEMP"),
        ("sp-3", "BEDFORD.PUMPING.CV702.VIB_X"),
    ] {
        let (_, a) = app.post_json("/v1/events", &alert_on(event, subject)).await;
        ids.push(a["work_order_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.deliver().await, 3);
    let mut notifs = vec![];
    for id in &ids {
        let o = order(&app, id).await;
        let created = o["history"].as_array().unwrap().iter().find(|h| h["status"] == "created").cloned();
        assert_eq!(created.unwrap()["external_status"], "OSNO", "{o}");
        notifs.push(o["external_id"].as_str().unwrap().to_owned());
    }
    // 2026-11-24T11:00:00Z and later.
    s4.set(&notifs[0], "NOPR ORAS", "3", 1_795_518_000_000);
    s4.set(&notifs[1], "NOPO NOPT", "2", 1_795_518_300_000);
    s4.delete(&notifs[2]);
    assert_eq!(app.poll().await.changed, 2);
    let polled = |o: &Value| o["history"].as_array().unwrap().iter().find(|h| h["source"] == "poll").cloned();
    let o = order(&app, &ids[0]).await;
    assert_eq!(o["status"], "in_progress");
    let p = polled(&o).unwrap();
    assert_eq!((p["external_status"].as_str(), p["at"].as_str()), (Some("NOPR ORAS"), Some("2026-11-24T11:00:00Z")));
    assert_eq!(order(&app, &ids[1]).await["status"], "acknowledged", "postponed");
    let gone = order(&app, &ids[2]).await;
    assert_eq!(gone["status"], "created");
    assert!(polled(&gone).is_none());
    let requests = server.received_requests().await.unwrap();
    let polls: Vec<_> = requests
        .iter()
        .filter(|r| r.method == wiremock::http::Method::GET && r.url.path().ends_with("/MaintenanceNotification"))
        .collect();
    assert_eq!(polls.len(), 1, "one query for the three");
    let filter = polls[0].url.query_pairs().find(|(k, _)| k == "$filter").unwrap().1.into_owned();
    let mut asked: Vec<String> = eq_terms(&filter).into_iter().map(|(_, v)| v).collect();
    asked.sort();
    let mut all = notifs.clone();
    all.sort();
    assert_eq!(asked, all);

    // Completed in SAP; a notification with no system status (an older
    // release) falls back to its phase.
    s4.set(&notifs[0], "NOCO ORAS", "4", 1_795_521_600_000);
    s4.set(&notifs[1], "", "1", 1_795_521_600_000);
    app.poll().await;
    assert_eq!(order(&app, &ids[0]).await["status"], "completed");
    assert_eq!(order(&app, &ids[1]).await["status"], "created", "phase 1, outstanding");
}
on_both_backends!(poll_maps_system_statuses_of_several_notifications);

/// A create whose answer was lost (SAP stored the notification, the gateway
/// answered 504) is found by its external reference before the retry: no
/// second notification.
async fn a_lost_create_is_found_by_reference(backend: Backend) {
    let server = MockServer::start().await;
    let s4 = S4::default();
    s4.0.lock().unwrap().lose_next_answer = true;
    s4.mount(&server).await;
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(s4_connector(&server)).await;
    let (_, a) = app.post_json("/v1/events", &alert("sf-1")).await;
    let id = a["work_order_id"].as_str().unwrap().to_owned();
    app.eventually("found in SAP", || async { order(&app, &id).await["external_id"] == "10000020" }).await;
    assert_eq!(s4.0.lock().unwrap().notifications.len(), 1, "no second notification");
    let requests = server.received_requests().await.unwrap();
    let lookup = requests
        .iter()
        .find(|r| r.method == wiremock::http::Method::GET && r.url.path().ends_with("/MaintenanceNotification"))
        .expect("a lookup before the retry");
    let filter = lookup.url.query_pairs().find(|(k, _)| k == "$filter").unwrap().1.into_owned();
    let ext = workbridge::connectors::sap::external_reference(&id);
    assert_eq!(filter, format!("MaintNotifExtReferenceNumber eq '{ext}'"));
    assert_eq!(lookup.url.query_pairs().find(|(k, _)| k == "sap-client").unwrap().1, "100");
    let o = order(&app, &id).await;
    assert_eq!(o["history"][1]["external_status"], "OSNO");
    assert_eq!(requests.iter().filter(|r| r.method == wiremock::http::Method::POST).count(), 1);
}
on_both_backends!(a_lost_create_is_found_by_reference);
