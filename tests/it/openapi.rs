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

/// What generated clients hold is named and typed in the document: tagged
/// unions are discriminated `oneOf`s over named components (each variant
/// with its single-value `kind` and no other field than its own), untagged
/// enums' variants and page items are `$ref`s, the decision trace and the
/// stored CloudEvent have their schemas, every request body has one media
/// type, and every operation is filed under a declared tag.
#[test]
fn the_document_names_and_types_what_clients_hold() {
    use serde_json::{Value, json};
    let doc = serde_json::to_value(workbridge::api::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let reference = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});

    let unions: [(&str, &[(&str, &str)]); 2] = [
        ("Action", &[("create", "CreateAction"), ("ignore", "IgnoreAction")]),
        (
            "ConnectorConfig",
            &[
                ("sandbox", "SandboxConfig"),
                ("rest", "RestConfig"),
                ("maximo", "MaximoConfig"),
                ("servicenow", "ServiceNowConfig"),
                ("sap", "SapConfig"),
            ],
        ),
    ];
    for (union, variants) in unions {
        let schema = &schemas[union];
        assert_eq!(schema["discriminator"]["propertyName"], "kind", "{union}: {schema}");
        let one_of: Vec<Value> = variants.iter().map(|(_, name)| reference(name)).collect();
        assert_eq!(schema["oneOf"], Value::Array(one_of), "{union}");
        for (tag, name) in variants {
            assert_eq!(schema["discriminator"]["mapping"][tag], format!("#/components/schemas/{name}"));
            let variant = &schemas[name];
            assert_eq!(variant["properties"]["kind"], json!({"type": "string", "enum": [tag]}), "{name}");
            assert!(variant["required"].as_array().unwrap().contains(&json!("kind")), "{name}: kind is required");
            assert_eq!(variant["additionalProperties"], false, "{name}");
        }
    }
    assert_eq!(schemas["Debounce"]["oneOf"], json!([reference("DebounceOccurrences"), reference("DebounceHeldFor")]));
    assert_eq!(
        schemas["HeaderValue"]["oneOf"],
        json!([{"type": "string"}, reference("EnvSecret"), reference("FileSecret")])
    );
    assert_eq!(schemas["PrioritySpec"]["oneOf"], json!([reference("Priority"), reference("PriorityMatrix")]));
    assert_eq!(schemas["PriorityMatrix"]["additionalProperties"], reference("PriorityRow"));
    assert_eq!(schemas["PriorityRow"]["additionalProperties"], reference("Priority"));

    let pages: Vec<&String> = schemas.as_object().unwrap().keys().filter(|n| n.starts_with("Page_")).collect();
    assert!(pages.len() >= 6, "{pages:?}");
    for page in pages {
        let item = page.trim_start_matches("Page_");
        assert_eq!(schemas[page]["properties"]["items"]["items"], reference(item), "{page}");
    }
    for owner in ["EventRecord", "WorkOrder", "DryRun"] {
        assert_eq!(schemas[owner]["properties"]["trace"]["$ref"], "#/components/schemas/DecisionTrace", "{owner}");
    }
    for part in ["mapping", "rules", "decision", "shadow", "episode", "timer"] {
        assert!(schemas["DecisionTrace"]["properties"].get(part).is_some(), "DecisionTrace.{part}");
    }
    assert_eq!(schemas["EventRecord"]["properties"]["cloudevent"]["$ref"], "#/components/schemas/CloudEvent");
    for (owner, property, name) in [
        ("EventData", "context", "EventContext"),
        ("AuditEntry", "before", "AuditSnapshot"),
        ("AuditEntry", "after", "AuditSnapshot"),
        ("RestConfig", "body", "BodyTemplate"),
    ] {
        assert_eq!(schemas[owner]["properties"][property]["$ref"], format!("#/components/schemas/{name}"));
    }

    // No anonymous object with properties below a component's top level
    // (allOf parts are merged into their component by generators), and no
    // unnamed free-form property.
    fn walk(node: &Value, path: &str, top: bool, found: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if !top && map.contains_key("properties") {
                    found.push(format!("{path}: inline object"));
                }
                for (key, child) in map {
                    if key == "properties" {
                        for (name, property) in child.as_object().unwrap() {
                            let free = property.as_object().is_some_and(|c| c.keys().all(|k| k == "description"));
                            if free {
                                found.push(format!("{path}.{name}: unnamed free-form"));
                            }
                            walk(property, &format!("{path}.{name}"), false, found);
                        }
                    } else if key == "allOf" {
                        for part in child.as_array().unwrap() {
                            walk(part, &format!("{path}.allOf"), true, found);
                        }
                    } else {
                        walk(child, &format!("{path}/{key}"), false, found);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, path, false, found)),
            _ => {}
        }
    }
    let mut found = vec![];
    for (name, schema) in schemas.as_object().unwrap() {
        walk(schema, name, true, &mut found);
    }
    assert!(found.is_empty(), "{found:#?}");

    let declared: Vec<&Value> = doc["tags"].as_array().unwrap().iter().map(|t| &t["name"]).collect();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let tags = op["tags"].as_array().unwrap();
            assert!(tags.len() == 1 && declared.contains(&&tags[0]), "{method} {path}: {tags:?}");
            if let Some(content) = op["requestBody"]["content"].as_object() {
                assert_eq!(content.keys().collect::<Vec<_>>(), ["application/json"], "{method} {path}");
            }
            // Responses and bodies name their object schemas.
            for (status, response) in op["responses"].as_object().unwrap() {
                for media in response["content"].as_object().into_iter().flat_map(|c| c.values()) {
                    let schema = &media["schema"];
                    assert!(schema.get("properties").is_none(), "{method} {path} {status}: inline object");
                }
            }
        }
    }
    assert!(operations > 40);
    let tag_of = |method: &str, path: &str| doc["paths"][path][method]["tags"][0].as_str().unwrap().to_owned();
    assert_eq!(tag_of("get", "/v1/kpis"), "kpis");
    assert_eq!(tag_of("get", "/v1/kpis/rules"), "kpis");
    assert_eq!(tag_of("post", "/v1/webhooks/{connector}"), "webhooks");
    assert_eq!(tag_of("post", "/v1/suppressions"), "suppressions");
    assert_eq!(tag_of("post", "/v1/api-keys"), "api-keys");

    let events = &doc["paths"]["/v1/events"]["post"];
    assert_eq!(
        events["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"],
        json!([reference("Accepted"), reference("BatchResult")]),
        "a repeated single event answers 200 with Accepted, a batch 200 with BatchResult"
    );
    assert_eq!(events["responses"]["201"]["content"]["application/json"]["schema"], reference("Accepted"));
}

/// utoipa keys components by type name: two `ToSchema` types of one name
/// silently share one schema, and a client then reads one with the other's
/// fields (a proposal's bulk result once replaced the assets' one).
#[test]
fn every_schema_type_has_its_own_name() {
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = vec![];
    sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut seen = std::collections::BTreeMap::<String, String>::new();
    let mut clashes = vec![];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut derives_schema = false;
        let mut renamed = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("#[derive(") && line.contains("ToSchema") {
                derives_schema = true;
            } else if line.starts_with("#[schema(") && line.contains("as =") {
                renamed = true;
            }
            let item = ["pub struct ", "pub enum ", "struct ", "enum "].iter().find_map(|p| line.strip_prefix(p));
            if let Some(rest) = item {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if derives_schema && !renamed {
                    let here = file.display().to_string();
                    if let Some(before) = seen.insert(name.clone(), here.clone()) {
                        clashes.push(format!("{name}: {before} and {here}"));
                    }
                }
                derives_schema = false;
                renamed = false;
            }
        }
    }
    assert!(seen.len() > 50, "{}", seen.len());
    assert!(clashes.is_empty(), "{clashes:#?}");
}
