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

/// Found by schemathesis: an offset past i64::MAX crashed the SQLite driver;
/// past its documented maximum it is refused.
#[tokio::test]
async fn huge_offsets_are_refused_not_fatal() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite, Default::default()).await;
    let (s, p) = app.get("/v1/events?offset=9223372036854775808").await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["parameter"], "offset");
}

/// A known path with a method it does not have: 405 naming the methods it
/// has (found by schemathesis); an unknown path stays 404.
#[tokio::test]
async fn undeclared_methods_get_405_with_allow() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite, Default::default()).await;
    let trace = app.client.request(reqwest::Method::TRACE, app.url("/healthz")).send().await.unwrap();
    assert_eq!(trace.status(), 405);
    assert_eq!(trace.headers()["allow"], "GET");
    let patch = app.client.patch(app.url("/v1/assets/MX-101")).send().await.unwrap();
    assert_eq!(patch.status(), 405);
    assert_eq!(patch.headers()["allow"], "GET, PUT, DELETE");
    assert_eq!(patch.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = patch.json().await.unwrap();
    assert_eq!(problem["code"], "method-not-allowed");
    let (s, p) = app.get("/v1/nothing-here").await;
    assert_eq!(s, 404, "{p}");
}
