//! Input handling: every refusal is problem+json whose `errors` array names
//! the body field (`pointer`) or the parameter (`parameter`), what was given
//! and what is allowed.

use serde_json::{Value, json};

use crate::helpers::{Backend, Options, TestApp, alert, sandbox_connector, spawn_app};

/// The problem's one error, checked to be of `kind` (`pointer` or `parameter`) `at`.
fn only_error<'a>(problem: &'a Value, kind: &str, at: &str) -> &'a str {
    let errors = problem["errors"].as_array().unwrap_or_else(|| panic!("no errors array: {problem}"));
    assert_eq!(errors.len(), 1, "{problem}");
    assert_eq!(errors[0][kind], at, "{problem}");
    errors[0]["detail"].as_str().unwrap()
}

async fn sqlite() -> TestApp {
    spawn_app(Backend::Sqlite, Options::default()).await
}

#[tokio::test]
async fn an_event_time_without_a_zone_names_time_and_the_format() {
    let app = sqlite().await;
    let mut event = alert("no-zone");
    event["time"] = json!("2026-11-24T10:15:00");
    let (s, p) = app.post_json("/v1/events", &event).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["code"], "invalid-event");
    let detail = only_error(&p, "pointer", "/time");
    assert!(detail.contains("\"2026-11-24T10:15:00\"") && detail.contains("RFC 3339"), "{detail}");
    assert!(detail.contains("2026-11-24T10:15:00Z"), "shows an example: {detail}");
}

#[tokio::test]
async fn specversion_other_than_1_0_is_refused() {
    let app = sqlite().await;
    let mut event = alert("old-spec");
    event["specversion"] = json!("0.3");
    let (s, p) = app.post_json("/v1/events", &event).await;
    assert_eq!(s, 422, "{p}");
    let detail = only_error(&p, "pointer", "/specversion");
    assert!(detail.contains("\"0.3\"") && detail.contains("1.0"), "{detail}");
}

/// The event contract says `number`: a string there is refused (a CEL
/// condition would otherwise fail on it later), in a batch per element too.
#[tokio::test]
async fn numbers_given_as_strings_are_refused() {
    let app = sqlite().await;
    for field in ["value", "threshold", "score"] {
        let mut event = alert(&format!("string-{field}"));
        event["data"][field] = json!("92.1");
        let (s, p) = app.post_json("/v1/events", &event).await;
        assert_eq!(s, 422, "{p}");
        let detail = only_error(&p, "pointer", &format!("/data/{field}"));
        assert!(detail.contains("number") && detail.contains("\"92.1\""), "{detail}");
    }
    let mut event = alert("string-in-batch");
    event["data"]["value"] = json!("92.1");
    let r = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(json!([event, alert("fine-in-batch")]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let batch: Value = r.json().await.unwrap();
    assert_eq!(batch["rejected"], 1, "{batch}");
    only_error(&batch["items"][0]["error"], "pointer", "/data/value");
    assert_eq!(batch["items"][1]["status"], "accepted");
}

#[tokio::test]
async fn limit_is_1_to_500_and_refused_outside_not_clamped() {
    let app = sqlite().await;
    for bad in ["-5", "0", "501", "100000", "ten"] {
        let (s, p) = app.get(&format!("/v1/work-orders?limit={bad}")).await;
        assert_eq!(s, 422, "limit={bad}: {p}");
        let detail = only_error(&p, "parameter", "limit");
        assert!(detail.contains(&format!("{bad:?}")) && detail.contains("from 1 to 500"), "{detail}");
    }
    for good in ["1", "500"] {
        let (s, page) = app.get(&format!("/v1/work-orders?limit={good}")).await;
        assert_eq!(s, 200);
        assert_eq!(page["limit"], good.parse::<u64>().unwrap());
    }
    let (s, p) = app.get("/v1/events?offset=1000000001").await;
    assert_eq!(s, 422, "{p}");
    assert!(only_error(&p, "parameter", "offset").contains("from 0 to 1000000000"), "{p}");
    let (s, _) = app.get("/v1/events?offset=1000000000").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn unknown_query_parameters_are_named_with_the_accepted_ones() {
    let app = sqlite().await;
    let (s, p) = app.get("/v1/work-orders?statu=failed").await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["code"], "unknown-parameter");
    let detail = only_error(&p, "parameter", "statu");
    assert!(detail.contains("status") && detail.contains("limit"), "lists the accepted ones: {detail}");
    let (s, p) = app.get("/v1/events?severity=critical&limit=5").await;
    assert_eq!(s, 400, "{p}");
    only_error(&p, "parameter", "severity");
    // An operation without parameters takes none.
    let (s, p) = app.get("/v1/rules?x=1").await;
    assert_eq!(s, 400, "{p}");
    assert!(only_error(&p, "parameter", "x").contains("no query parameters"), "{p}");
    // Declared values of the wrong kind: 422 naming the parameter and the values allowed.
    let (s, p) = app.get("/v1/work-orders?status=nope").await;
    assert_eq!(s, 422, "{p}");
    assert!(only_error(&p, "parameter", "status").contains("one of"), "{p}");
    let (s, p) = app.get("/v1/events?since=2026-11-24").await;
    assert_eq!(s, 422, "{p}");
    assert!(only_error(&p, "parameter", "since").contains("RFC 3339"), "{p}");
    // Without a key, the key is what is wrong.
    let r = reqwest::Client::new().get(app.url("/v1/work-orders?statu=failed")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_rule_priority_out_of_range_says_the_allowed_forms() {
    let app = sqlite().await;
    app.post_json("/v1/connectors", &sandbox_connector()).await;
    for priority in [json!(9), json!({"critical": {"A": 7}}), json!("high")] {
        let (s, p) = app
            .post_json(
                "/v1/rules",
                &json!({"name": "p", "when": {}, "action": {"kind": "create", "connector": "sandbox", "priority": priority}}),
            )
            .await;
        assert_eq!(s, 422, "{p}");
        let detail = only_error(&p, "pointer", "/action/priority");
        assert!(detail.contains("1 (highest) to 5 (lowest)") && detail.contains("matrix"), "{detail}");
        assert!(detail.contains(&format!("given: {priority}")), "{detail}");
    }
}

#[tokio::test]
async fn a_connector_of_unknown_kind_lists_the_kinds() {
    let app = sqlite().await;
    let (s, p) = app.post_json("/v1/connectors", &json!({"name": "x", "config": {"kind": "sharepoint"}})).await;
    assert_eq!(s, 422, "{p}");
    let detail = only_error(&p, "pointer", "/config/kind");
    for kind in ["\"sharepoint\"", "sandbox", "rest", "maximo", "servicenow", "sap"] {
        assert!(detail.contains(kind), "{detail}");
    }
}

#[tokio::test]
async fn body_errors_point_at_the_field() {
    let app = sqlite().await;
    // Missing, unknown, wrong type, and a domain check.
    let (s, p) = app.post_json("/v1/api-keys", &json!({"role": "viewer"})).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(only_error(&p, "pointer", "/name"), "is required");
    let (s, p) = app.post_json("/v1/api-keys", &json!({"name": "k", "role": "viewer", "colour": 1})).await;
    assert_eq!(s, 422, "{p}");
    let detail = only_error(&p, "pointer", "/colour");
    assert!(detail.contains("name") && detail.contains("role"), "{p}");
    let (s, p) = app.post_json("/v1/api-keys", &json!({"name": "k", "role": "god"})).await;
    assert_eq!(s, 422, "{p}");
    assert!(only_error(&p, "pointer", "/role").contains("\"god\""), "{p}");
    let (s, p) = app.post_json("/v1/api-keys", &json!({"name": " ", "role": "viewer"})).await;
    assert_eq!(s, 422, "{p}");
    only_error(&p, "pointer", "/name");
    let (s, p) = app
        .post_json(
            "/v1/suppressions",
            &json!({"scope": "asset", "target": "MX-101", "reason": "r", "author": "a", "starts_at": "2026-11-24T10:00:00",
                    "ends_at": "2026-11-25T10:00:00Z"}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert!(only_error(&p, "pointer", "/starts_at").contains("RFC 3339"), "{p}");
    // Not JSON, or not an object: 400, at the whole body.
    let r = app
        .client
        .post(app.url("/v1/api-keys"))
        .header("content-type", "application/json")
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert!(only_error(&p, "pointer", "").contains("JSON object"), "{p}");
}

/// Two rows of one id in one bulk load: the first is stored with its tags,
/// the later one is refused naming its row and the id (JSON and CSV).
#[tokio::test]
async fn duplicate_ids_in_one_bulk_load_are_refused_per_row() {
    let app = sqlite().await;
    let (s, res) = app
        .post_json(
            "/v1/assets/bulk",
            &json!([
                {"id": "P-1", "site": "S", "name": "first", "class": "PUMP", "tags": ["T.P1.A"]},
                {"id": "P-2", "site": "S", "name": "other", "class": "PUMP"},
                {"id": " P-1", "site": "S", "name": "second", "class": "PUMP", "tags": ["T.P1.B"]}
            ]),
        )
        .await;
    assert_eq!(s, 200, "{res}");
    assert_eq!(
        (res["created"].as_u64(), res["updated"].as_u64(), res["rejected"].as_u64()),
        (Some(2), Some(0), Some(1))
    );
    assert_eq!(res["errors"][0]["row"], 3, "{res}");
    assert_eq!(res["errors"][0]["id"], " P-1", "{res}");
    let error = res["errors"][0]["error"].as_str().unwrap();
    assert!(error.contains("P-1") && error.contains("row 1"), "{error}");
    let (_, asset) = app.get("/v1/assets/P-1").await;
    assert_eq!((asset["name"].as_str(), &asset["tags"]), (Some("first"), &json!(["T.P1.A"])), "{asset}");

    let csv = "external_id,site,name,class,criticality,parent,eam_system,tags\n\
               C-1,S,first,PUMP,,,,T.C1.A;T.C1.B\n\
               C-1,S,second,PUMP,,,,T.C1.C\n";
    let r = app.client.post(app.url("/v1/assets/bulk")).header("content-type", "text/csv").body(csv).send().await;
    let res: Value = r.unwrap().json().await.unwrap();
    assert_eq!(
        (res["created"].as_u64(), res["updated"].as_u64(), res["rejected"].as_u64()),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(res["errors"][0]["row"], 2, "{res}");
    assert!(res["errors"][0]["error"].as_str().unwrap().contains("C-1"), "{res}");
    let (_, asset) = app.get("/v1/assets/C-1").await;
    assert_eq!(asset["tags"], json!(["T.C1.A", "T.C1.B"]), "{asset}");
}

/// The default description of an event without `subject`, `time` and
/// `message` has no "none" or "null" in it, and leaves out the Tag line.
#[tokio::test]
async fn the_default_description_never_renders_none() {
    let app = sqlite().await;
    app.setup_flow(sandbox_connector()).await;
    let mut event = alert("bare");
    for field in ["subject", "time"] {
        event.as_object_mut().unwrap().remove(field);
    }
    event["data"].as_object_mut().unwrap().remove("message");
    event["data"]["asset"] = json!({"id": "MX-101"});
    let (s, a) = app.post_json("/v1/events", &event).await;
    assert_eq!((s, a["outcome"].as_str()), (201, Some("created")), "{a}");
    app.eventually("delivered to the sandbox", || async {
        app.get("/v1/sandbox/orders").await.1["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    let (_, page) = app.get("/v1/sandbox/orders").await;
    let description = page["items"][0]["description"].as_str().unwrap().to_owned();
    assert!(description.starts_with("HIGH_TEMPERATURE\nSeverity: major\n"), "{description}");
    assert!(!description.contains("Tag:"), "{description}");
    for word in ["none", "None", "null"] {
        assert!(!description.contains(word), "{description}");
    }
    assert!(description.ends_with("Raised by workbridge from tdl://bedford/analytics."), "{description}");
}

/// A suppression of an asset or a rule that does not exist would never
/// apply: refused at `/target`. Sites are free text.
#[tokio::test]
async fn a_suppression_of_an_unknown_asset_or_rule_is_refused() {
    let app = sqlite().await;
    app.setup_flow(sandbox_connector()).await;
    let suppression = |scope: &str, target: &str| json!({"scope": scope, "target": target, "reason": "r", "author": "a", "ends_at": "2099-01-01T00:00:00Z"});
    for (scope, target) in [("asset", "NO-SUCH"), ("rule", "no-such-rule")] {
        let (s, p) = app.post_json("/v1/suppressions", &suppression(scope, target)).await;
        assert_eq!(s, 422, "{p}");
        let detail = only_error(&p, "pointer", "/target");
        assert!(detail.contains(target) && detail.contains(scope), "{detail}");
    }
    let (_, rules) = app.get("/v1/rules").await;
    let rule = rules[0]["id"].as_str().or(rules["items"][0]["id"].as_str()).unwrap().to_owned();
    for (scope, target) in [("asset", "MX-101"), ("rule", rule.as_str()), ("site", "ANYWHERE")] {
        let (s, p) = app.post_json("/v1/suppressions", &suppression(scope, target)).await;
        assert_eq!(s, 201, "{scope} {target}: {p}");
    }
    let (_, list) = app.get("/v1/suppressions").await;
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
}

/// A CloudEvents id is unique per source only: shared by two sources, the
/// lookup by it answers 409 listing them, and `source` picks one.
#[tokio::test]
async fn an_event_id_shared_by_two_sources_needs_the_source() {
    let app = sqlite().await;
    let first = alert("shared-id");
    let mut second = alert("shared-id");
    second["source"] = json!("tdl://other/analytics");
    for event in [&first, &second] {
        let (s, a) = app.post_json("/v1/events", event).await;
        assert_eq!(s, 201, "{a}");
    }
    let (s, p) = app.get("/v1/events/shared-id").await;
    assert_eq!(s, 409, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("tdl://bedford/analytics") && detail.contains("tdl://other/analytics"), "{detail}");
    assert!(detail.contains("source"), "says how to choose: {detail}");
    for source in ["tdl://bedford/analytics", "tdl://other/analytics"] {
        let (s, e) = app.get(&format!("/v1/events/shared-id?source={}", urlencode(source))).await;
        assert_eq!(s, 200, "{e}");
        assert_eq!(e["source"], source, "{e}");
    }
    let (s, p) = app.get("/v1/events/shared-id?source=tdl%3A%2F%2Fnowhere").await;
    assert_eq!(s, 404, "{p}");
    // A single source: no source needed; workbridge's own id works as before.
    let (s, e) = app.post_json("/v1/events", &alert("single-id")).await;
    assert_eq!(s, 201);
    let (s, by_ce) = app.get("/v1/events/single-id").await;
    assert_eq!(s, 200, "{by_ce}");
    let (s, by_own) = app.get(&format!("/v1/events/{}", e["id"].as_str().unwrap())).await;
    assert_eq!((s, &by_own["id"]), (200, &by_ce["id"]));
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Lengths are characters as JSON Schema counts them (not bytes), blank
/// names and control characters are refused as the document's patterns say.
#[tokio::test]
async fn text_fields_count_characters_and_refuse_what_the_patterns_refuse() {
    let app = sqlite().await;
    // 128 two-byte characters: 256 bytes, within maxLength 128.
    let (s, k) = app.post_json("/v1/api-keys", &json!({"name": "ü".repeat(128), "role": "viewer"})).await;
    assert_eq!(s, 201, "{k}");
    let (s, p) = app.post_json("/v1/api-keys", &json!({"name": "ü".repeat(129), "role": "viewer"})).await;
    assert_eq!(s, 422, "{p}");
    assert!(only_error(&p, "pointer", "/name").contains("128"), "{p}");
    for bad in ["   ", "a\tb", "x\u{202E}y"] {
        let (s, p) = app.post_json("/v1/api-keys", &json!({"name": bad, "role": "viewer"})).await;
        assert_eq!(s, 422, "{bad:?}: {p}");
        only_error(&p, "pointer", "/name");
    }
    let asset = |name: &str| json!({"id": "A-1", "site": "S", "name": name, "class": "PUMP"});
    let (s, p) = app.post_json("/v1/assets", &asset(&"é".repeat(512))).await;
    assert_eq!(s, 201, "{p}");
    let (s, p) = app
        .post_json("/v1/assets", &json!({"id": "A-2", "site": "S", "name": "n", "class": "PUMP", "criticality": ""}))
        .await;
    assert_eq!(s, 422, "criticality is one of the enum or null: {p}");
    let (s, p) = app.post_json("/v1/assets", &json!({"id": "A/3", "site": "S", "name": "n", "class": "PUMP"})).await;
    assert_eq!(s, 422, "{p}");
    // The sandbox takes only the statuses the document lists.
    let (s, p) = app.post_json("/v1/sandbox/orders/x/status", &json!({"status": "expired"})).await;
    assert_eq!(s, 422, "{p}");
    assert!(only_error(&p, "pointer", "/status").contains("acknowledged"), "{p}");
}

/// Event fields have the types the document gives: `data.unit` and
/// `data.message` are strings; extension attributes are lower-case names
/// with a string, boolean or integer value and are kept.
#[tokio::test]
async fn event_fields_and_extensions_have_their_documented_types() {
    let app = sqlite().await;
    for (field, value) in [("unit", json!(5)), ("message", json!({"a": 1}))] {
        let mut event = alert(&format!("typed-{field}"));
        event["data"][field] = value;
        let (s, p) = app.post_json("/v1/events", &event).await;
        assert_eq!(s, 422, "{p}");
        assert!(p["detail"].as_str().unwrap().contains(&format!("data.{field}")), "{p}");
    }
    let mut event = alert("with-extensions");
    event["plant"] = json!("bedford");
    event["retries"] = json!(2);
    event["replayed"] = json!(true);
    let (s, a) = app.post_json("/v1/events", &event).await;
    assert_eq!(s, 201, "{a}");
    let (_, stored) = app.get("/v1/events/with-extensions").await;
    assert_eq!(stored["cloudevent"]["plant"], "bedford", "{stored}");
    for (name, value) in [("Bad-Name", json!("x")), ("nested", json!({"a": 1})), ("ratio", json!(0.5))] {
        let mut event = alert(&format!("ext-{name}"));
        event[name] = value;
        let (s, p) = app.post_json("/v1/events", &event).await;
        assert_eq!(s, 422, "{name}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(name), "{p}");
    }
}
