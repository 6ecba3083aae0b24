//! The console: served at `/` and `/console/` without a key, every asset
//! embedded with its type and entity tag, under the console's CSP; and
//! `GET /v1/me`, which tells the page the key's role.

use serde_json::json;
use workbridge::api::console::{FILES, content_type};

use crate::helpers::{Backend, Options, client_with_key, spawn_app};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_without_a_key() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    let anonymous = reqwest::Client::new();

    let r = anonymous.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["content-security-policy"], CSP);
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-cache");
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#), "{html}");
    assert!(!html.contains("<script>") && !html.contains("style="), "nothing inline: {html}");

    for (name, bytes) in FILES {
        let r = anonymous.get(app.url(&format!("/console/{name}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.headers()["content-type"], content_type(name), "{name}");
        assert_eq!(r.headers()["content-security-policy"], CSP, "{name}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{name}");
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(&r.bytes().await.unwrap()[..], *bytes, "{name}");
        // Revalidation: the same tag is answered 304 with no body.
        let again =
            anonymous.get(app.url(&format!("/console/{name}"))).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{name}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        assert!(again.bytes().await.unwrap().is_empty());
        let stale = anonymous
            .get(app.url(&format!("/console/{name}")))
            .header("if-none-match", "\"0000\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200, "{name}");
    }
    let js = anonymous.get(app.url("/console/app.js")).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");

    for missing in [
        "/console/nope.js",
        "/console/",
        "/console/..%2fCargo.toml",
        "/console/pages%2f..%2f..%2fCargo.toml",
        "/console/.hidden",
    ] {
        let r = anonymous.get(app.url(missing)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{missing}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{missing}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], 404, "{missing}");
    }
    // Only GET is open: anything else on the console's paths needs a key.
    let post = anonymous.post(app.url("/console/app.js")).send().await.unwrap();
    assert_eq!(post.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_tells_every_role_its_name() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    for role in ["admin", "planner", "viewer", "ingest"] {
        let (s, k) = app.post_json("/v1/api-keys", &json!({"name": format!("{role} on shift"), "role": role})).await;
        assert_eq!(s, 201, "{k}");
        let r = client_with_key(k["secret"].as_str().unwrap()).get(app.url("/v1/me")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{role}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let me: serde_json::Value = r.json().await.unwrap();
        assert_eq!(me, json!({"name": format!("{role} on shift"), "role": role}));
    }
    let s = reqwest::Client::new().get(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(s.status(), 401);
    assert_eq!(s.headers()["content-type"], "application/problem+json");
    let bad = client_with_key("wb_not_a_key").get(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(bad.status(), 401);
}

/// Every file under `console/` is embedded: a new page cannot be forgotten.
#[test]
fn every_console_file_is_embedded() {
    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let mut on_disk = vec![];
    walk(&base, &base, &mut on_disk);
    on_disk.sort();
    let mut embedded: Vec<String> = FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "console/ and the table in src/api/console.rs differ");
}

/// The console's own scripts never parse markup: plant text reaches the page
/// as text nodes only (the vendored uPlot is not ours to check).
#[test]
fn console_scripts_never_insert_html() {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let mut checked = 0;
    for (name, bytes) in FILES {
        if !name.ends_with(".js") || name.starts_with("vendor/") {
            continue;
        }
        let text = std::str::from_utf8(bytes).unwrap();
        for bad in
            [".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "createContextualFragment", "eval("]
        {
            assert!(!text.contains(bad), "{} uses {bad}", base.join(name).display());
        }
        checked += 1;
    }
    assert!(checked >= 9, "scripts checked: {checked}");
}
