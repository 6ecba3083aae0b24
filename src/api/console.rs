//! The console: the single page at `/` and its assets under `/console/`,
//! embedded in the binary so that it runs with nothing fetched at run time
//! and no Node.js. `FILES` lists every file of `console/` (a test checks
//! that none is missing). `WORKBRIDGE_CONSOLE_DIR=<dir>` serves the files
//! from that directory instead, read per request, so that JavaScript edits
//! need no rebuild while developing the console.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::Digest;

use super::problem::ApiError;

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        /// Every file of `console/`, by its path under it.
        pub const FILES: &[(&str, &[u8])] = &[
            $(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $name)))),*
        ];
    };
}

files!(
    "index.html",
    "style.css",
    "app.js",
    "lib.js",
    "pages/overview.js",
    "pages/orders.js",
    "pages/order.js",
    "pages/review.js",
    "pages/triage.js",
    "pages/rules.js",
    "pages/connectors.js",
    "vendor/uplot/uPlot.esm.js",
    "vendor/uplot/uPlot.min.css",
    "vendor/uplot/LICENSE",
);

/// The content type of a console file, from its extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "text/plain; charset=utf-8",
    }
}

fn etag_of(bytes: &[u8]) -> String {
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The embedded files' entity tags, computed once.
fn embedded_etags() -> &'static Vec<String> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| FILES.iter().map(|(_, bytes)| etag_of(bytes)).collect())
}

/// The development directory, when `WORKBRIDGE_CONSOLE_DIR` names one.
fn dev_dir() -> Option<&'static std::path::PathBuf> {
    static DIR: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("WORKBRIDGE_CONSOLE_DIR").filter(|d| !d.is_empty()).map(std::path::PathBuf::from);
        if let Some(d) = &dir {
            tracing::warn!(dir = %d.display(), "serving the console from a directory (WORKBRIDGE_CONSOLE_DIR), not the embedded files");
        }
        dir
    })
    .as_ref()
}

/// A name that stays inside the console directory: plain segments only.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        })
}

/// A console file's bytes and entity tag, or `None` when there is none.
fn lookup(name: &str) -> Option<(std::borrow::Cow<'static, [u8]>, String)> {
    if !safe_name(name) {
        return None;
    }
    if let Some(dir) = dev_dir() {
        let bytes = std::fs::read(dir.join(name)).ok()?;
        let tag = etag_of(&bytes);
        return Some((bytes.into(), tag));
    }
    let i = FILES.iter().position(|(n, _)| *n == name)?;
    Some((FILES[i].1.into(), embedded_etags()[i].clone()))
}

fn matches(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn serve(req: &HttpRequest, name: &str) -> Result<HttpResponse, ApiError> {
    let (bytes, etag) = lookup(name).ok_or_else(|| ApiError::NotFound(format!("no console file {name}")))?;
    // Revalidated on every load: a new binary's console is never stale.
    let mut res = if matches(req, &etag) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok().content_type(content_type(name)).body(bytes.into_owned())
    };
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    Ok(res)
}

/// `GET /`: the console's page.
pub async fn index(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, "index.html")
}

/// `GET /console/{file}`: one of its assets.
pub async fn asset(req: HttpRequest, file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&req, &file)
}

/// Registers the console's routes (outside the OpenAPI document: they are
/// not the API).
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index)).route("/console/{file:.*}", web::get().to(asset));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_directory() {
        assert!(safe_name("pages/order.js"));
        assert!(safe_name("vendor/uplot/LICENSE"));
        assert!(!safe_name("../Cargo.toml"));
        assert!(!safe_name("pages/../../x"));
        assert!(!safe_name("/etc/passwd"));
        assert!(!safe_name(".hidden"));
        assert!(!safe_name("a//b"));
        assert!(!safe_name(""));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("vendor/uplot/uPlot.min.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("vendor/uplot/LICENSE"), "text/plain; charset=utf-8");
    }
}
