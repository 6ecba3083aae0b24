use serde_json::{Value, json};

use crate::helpers::{Backend, FIXTURES, Options, alert, sandbox_connector, spawn_app};
use crate::on_both_backends;

async fn assets_crud_bulk_and_mapping_by_hint_tag_and_pattern(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    // CSV bulk of the large registry
    let csv = std::fs::read_to_string(format!("{FIXTURES}/assets-large.csv")).unwrap();
    let rows = csv.lines().count() - 1;
    let r = app
        .client
        .post(app.url("/v1/assets/bulk"))
        .header("content-type", "text/csv")
        .body(csv.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let res: Value = r.json().await.unwrap();
    assert_eq!(res["created"].as_u64().unwrap() as usize, rows);
    // loading again updates, never duplicates
    let r =
        app.client.post(app.url("/v1/assets/bulk")).header("content-type", "text/csv").body(csv).send().await.unwrap();
    let res: Value = r.json().await.unwrap();
    assert_eq!((res["created"].as_u64(), res["updated"].as_u64().map(|u| u as usize)), (Some(0), Some(rows)));

    // JSON bulk with one bad row: the good one lands, the bad one is reported
    let (s, res) = app
        .post_json("/v1/assets/bulk", &json!([
            {"id": "P-9001", "site": "BEDFORD", "name": "Pump 9001", "class": "PUMP", "criticality": "A", "tags": ["PLANT_A.P9001.FLOW"]},
            {"id": "P-9002", "site": "BEDFORD", "name": "Pump 9002", "class": "PUMP", "criticality": "Z"}
        ]))
        .await;
    assert_eq!(s, 200);
    assert_eq!(res["created"], 1);
    assert_eq!(res["errors"][0]["row"], 2);
    assert!(res["errors"][0]["error"].as_str().unwrap().contains("criticality"));

    // CRUD
    let (s, _) = app
        .post_json(
            "/v1/assets",
            &json!({"id": "P-101", "site": "BEDFORD", "name": "Pump 101", "class": "PUMP", "tags": []}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, p) =
        app.post_json("/v1/assets", &json!({"id": "P-101", "site": "BEDFORD", "name": "again", "class": "PUMP"})).await;
    assert_eq!((s, p["code"].as_str()), (409, Some("conflict")));
    let r = app
        .client
        .put(app.url("/v1/assets/P-101"))
        .json(
            &json!({"site": "BEDFORD", "name": "Pump 101 (renamed)", "class": "PUMP", "tags": ["PLANT_A.P101.VIB_X"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, a) = app.get("/v1/assets/P-101").await;
    assert_eq!(
        (s, a["name"].as_str(), a["tags"].clone()),
        (200, Some("Pump 101 (renamed)"), json!(["PLANT_A.P101.VIB_X"]))
    );
    // a tag of another asset is a conflict, not a silent move
    let r = app
        .client
        .put(app.url("/v1/assets/P-102"))
        .json(&json!({"site": "BEDFORD", "name": "Pump 102", "class": "PUMP", "tags": ["PLANT_A.P101.VIB_X"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = app
        .client
        .put(app.url("/v1/assets/P-102"))
        .json(&json!({"site": "BEDFORD", "name": "Pump 102", "class": "PUMP"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, list) = app.get("/v1/assets?site=BEDFORD&class=PUMP&limit=1").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["total"].as_u64().unwrap() > 1);

    // mapping
    app.post_json("/v1/connectors", &sandbox_connector()).await;
    let (s, _) = app.post_json("/v1/rules", &json!({"name": "all", "action": {"kind": "ignore"}})).await;
    assert_eq!(s, 201);
    let (s, p) = app
        .post_json(
            "/v1/tag-patterns",
            &json!({"pattern": "PLANT_A\\.(?P<asset>P\\d+)\\..*", "asset_template": "P-{nope}"}),
        )
        .await;
    assert_eq!(s, 422, "the template may only use captures of the pattern: {p}");
    let (s, _) = app
        .post_json(
            "/v1/tag-patterns",
            &json!({"pattern": "PLANT_A\\.P(?P<num>\\d+)\\..*", "asset_template": "P-{num}"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, p) = app.post_json("/v1/tag-patterns", &json!({"pattern": "(", "asset_template": "x"})).await;
    assert_eq!((s, p["code"].as_str()), (422, Some("validation-failed")));

    let ev = |id: &str, subject: Option<&str>, hint: Option<&str>| {
        let mut e = alert(id);
        match subject {
            Some(s) => e["subject"] = json!(s),
            None => {
                e.as_object_mut().unwrap().remove("subject");
            }
        }
        if let Some(h) = hint {
            e["data"]["asset"] = json!({"id": h, "site": "BEDFORD"});
        }
        e
    };
    for (e, asset, by) in [
        (ev("m-1", Some("PLANT_A.P101.VIB_X"), None), "P-101", "tag"),
        (ev("m-2", Some("PLANT_A.P102.FLOW"), None), "P-102", "pattern"),
        (ev("m-3", Some("PLANT_A.P101.VIB_X"), Some("P-9001")), "P-9001", "hint"),
        (ev("m-4", None, Some("P-9001")), "P-9001", "hint"),
        // an unknown hint does not win over the tag
        (ev("m-5", Some("PLANT_A.P101.VIB_X"), Some("NOPE")), "P-101", "tag"),
    ] {
        let (s, a) = app.post_json("/v1/events", &e).await;
        assert_eq!(s, 201, "{a}");
        let (_, stored) = app.get(&format!("/v1/events/{}", e["id"].as_str().unwrap())).await;
        assert_eq!((stored["asset_id"].as_str(), stored["mapped_by"].as_str()), (Some(asset), Some(by)), "{}", e["id"]);
    }
    let r = app.client.delete(app.url("/v1/assets/P-101")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (s, _) = app.get("/v1/assets/P-101").await;
    assert_eq!(s, 404);
}
on_both_backends!(assets_crud_bulk_and_mapping_by_hint_tag_and_pattern);

async fn rules_are_validated_and_versioned(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    let (s, p) =
        app.post_json("/v1/rules", &json!({"name": "x", "action": {"kind": "create", "connector": "nope"}})).await;
    assert_eq!(s, 422);
    assert!(p["detail"].as_str().unwrap().contains("nope"));
    app.post_json("/v1/connectors", &sandbox_connector()).await;
    let (s, p) = app
        .post_json(
            "/v1/rules",
            &json!({"name": "x", "action": {"kind": "create", "connector": "sandbox", "title": "{{ event.code "}}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(p["detail"].as_str().unwrap().contains("action.title"));
    let (s, p) = app
        .post_json(
            "/v1/rules",
            &json!({"name": "x", "action": {"kind": "create", "connector": "sandbox", "priority": 9}}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    let (s, rule) =
        app.post_json("/v1/rules", &json!({"name": "x", "action": {"kind": "create", "connector": "sandbox"}})).await;
    assert_eq!(s, 201);
    let id = rule["id"].as_str().unwrap();
    let r = app
        .client
        .put(app.url(&format!("/v1/rules/{id}")))
        .json(&json!({"name": "x", "when": {"codes": ["HIGH_VIBRATION"]}, "action": {"kind": "ignore"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, versions) = app.get(&format!("/v1/rules/{id}/versions")).await;
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[0]["action"]["kind"], "ignore");
    assert_eq!(versions[1]["action"]["kind"], "create");
    let (s, _) = app.post_json("/v1/rules", &json!({"name": "x", "action": {"kind": "ignore"}})).await;
    assert_eq!(s, 409, "names are unique");
}
on_both_backends!(rules_are_validated_and_versioned);
