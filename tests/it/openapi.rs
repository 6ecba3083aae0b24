/// The committed spec is what the code generates; regenerate with
/// `cargo run -- openapi > openapi/openapi.json`.
#[test]
fn committed_openapi_matches_the_code() {
    let generated = serde_json::to_string_pretty(&workbridge::api::openapi()).unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
        .expect("openapi/openapi.json exists");
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn the_service_serves_its_spec_and_docs_offline() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite, Default::default()).await;
    let (status, spec) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(spec, serde_json::to_value(workbridge::api::openapi()).unwrap());
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "the page is Swagger UI");
    assert!(!html.contains("cdn.") && !html.contains("unpkg"), "no CDN at run time");
    let js = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(js.status(), 200, "Swagger UI's script is embedded");
}

/// Found by schemathesis: an offset past i64::MAX crashed the SQLite driver.
#[tokio::test]
async fn huge_offsets_are_clamped_not_fatal() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite, Default::default()).await;
    let (s, page) = app.get("/v1/events?offset=9223372036854775808").await;
    assert_eq!(s, 200);
    assert_eq!(page["items"], serde_json::json!([]));
}
