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
