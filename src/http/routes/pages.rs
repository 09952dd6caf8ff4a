//! The web pages the binary serves, embedded at build time: the customer
//! chat widget (`/widget.js`, one script tag on another site) and the agent
//! console (`/app/`).
//!
//! The console's page names its scripts and styles by content hash
//! (`/app/app.<hash>.js`), so they are cached for a year and a new build is
//! fetched at once; the page itself and the widget's fixed URL are
//! revalidated with their ETag.

use crate::http::error::ApiError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// The Socket.IO client the widget and the console share.
const SOCKET_JS: &str = include_str!("../../web/socket.js");
/// The widget; served inside one function with the client, so it adds no globals to the host page.
const WIDGET_JS: &str = include_str!("../../web/widget.js");

/// What the console's page may load and reach: its own origin only, no
/// inline script or style, no framing.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' blob: data:; media-src 'self' blob:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long a browser may use `/widget.js` before asking again (then an ETag answers 304).
const WIDGET_MAX_AGE: &str = "public, max-age=300";
/// Hashed files never change under their name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One file as served.
struct Asset {
    body: Bytes,
    /// The body gzipped once at the best level (a quarter smaller than the
    /// fast level used for answers compressed on the fly).
    gzipped: Bytes,
    content_type: &'static str,
    etag: String,
}

impl Asset {
    fn new(body: impl Into<Bytes>, content_type: &'static str) -> Asset {
        let body = body.into();
        let etag = format!("\"{}\"", short_hash(&body));
        Asset { gzipped: gzip(&body), body, content_type, etag }
    }
}

fn gzip(bytes: &[u8]) -> Bytes {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 3), flate2::Compression::best());
    // Writing to memory cannot fail.
    let _ = gz.write_all(bytes);
    gz.finish().map(Bytes::from).unwrap_or_default()
}

/// Whether the request takes gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
fn takes_gzip(req: &HttpRequest) -> bool {
    req.headers().get_all(header::ACCEPT_ENCODING).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let refused = |p: &str| p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0);
        parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip")) && !parts.any(refused)
    })
}

/// The pages, built once from the embedded files.
struct Site {
    widget: Asset,
    console: Asset,
    /// `app.<hash>.js` → the file.
    hashed: HashMap<String, Asset>,
}

fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..6])
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// `app.js` with `hash` → `app.<hash>.js`.
fn hashed_name(name: &str, hash: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{name}.{hash}"),
    }
}

fn build() -> Site {
    let widget = Asset::new(format!("(function(){{\n{SOCKET_JS}\n{WIDGET_JS}\n}})();\n"), "text/javascript; charset=utf-8");
    let mut page = String::new();
    let mut hashed = HashMap::new();
    let files = APP_FILES.iter().map(|(n, b)| (*n, *b)).chain(std::iter::once(("socket.js", SOCKET_JS.as_bytes())));
    let mut renames = Vec::new();
    for (name, bytes) in files {
        if name == "index.html" {
            page = String::from_utf8_lossy(bytes).into_owned();
            continue;
        }
        let file = hashed_name(name, &short_hash(bytes));
        renames.push((format!("\"{name}\""), format!("\"/app/{file}\"")));
        hashed.insert(file, Asset::new(Bytes::from_static(bytes), content_type(name)));
    }
    // The page names each file by its bare quoted name (`src="app.js"`).
    for (from, to) in renames {
        page = page.replace(&from, &to);
    }
    Site { widget, console: Asset::new(page, "text/html; charset=utf-8"), hashed }
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(build)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/widget.js", web::get().to(widget))
        .route("/app", web::get().to(to_console))
        .route("/app/", web::get().to(console))
        .route("/app/{file}", web::get().to(console_file));
}

/// Answers `asset`, or 304 when the browser holds this version.
fn serve(req: &HttpRequest, asset: &Asset, cache: &'static str) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag || t.trim() == "*"));
    let mut res = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, asset.etag.clone()))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if fresh {
        return res.finish();
    }
    res.content_type(asset.content_type);
    if takes_gzip(req) && !asset.gzipped.is_empty() {
        // Already encoded: the compression middleware leaves it as it is.
        return res.insert_header((header::CONTENT_ENCODING, "gzip")).body(asset.gzipped.clone());
    }
    res.body(asset.body.clone())
}

/// The chat widget: one script for any allowed site to embed.
pub async fn widget(req: HttpRequest) -> HttpResponse {
    let mut res = serve(&req, &site().widget, WIDGET_MAX_AGE);
    // Other sites load it with a script tag, also under a cross-origin embedder policy.
    res.headers_mut().insert(header::HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("cross-origin"));
    res
}

async fn to_console() -> HttpResponse {
    HttpResponse::build(StatusCode::PERMANENT_REDIRECT).insert_header((header::LOCATION, "/app/")).finish()
}

/// The agent console's page.
pub async fn console(req: HttpRequest) -> HttpResponse {
    let mut res = serve(&req, &site().console, "no-cache");
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONSOLE_CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

/// A script, style or image of the console, by its hashed name.
pub async fn console_file(req: HttpRequest, file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let asset = site().hashed.get(file.as_str()).ok_or_else(|| ApiError::not_found("file"))?;
    Ok(serve(&req, asset, IMMUTABLE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_file_by_a_hash_the_server_answers() {
        let s = site();
        let page = std::str::from_utf8(&s.console.body).expect("utf-8");
        for name in APP_FILES.iter().map(|(n, _)| *n).filter(|n| *n != "index.html").chain(["socket.js"]) {
            assert!(!page.contains(&format!("\"{name}\"")), "{name} is still named without its hash");
        }
        let linked: Vec<&str> = page.split("\"/app/").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        assert!(linked.iter().any(|l| l.starts_with("socket.") && l.ends_with(".js")), "the page loads the socket client: {linked:?}");
        for l in linked {
            assert!(s.hashed.contains_key(l), "{l} is linked but not served");
        }
        assert!(!page.contains("<script>") && !page.contains(" style=\""), "no inline script or style: the CSP forbids them");
    }

    #[test]
    fn gzip_is_given_to_those_who_take_it() {
        use std::io::Read;
        let asset = &site().widget;
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&asset.gzipped[..]).read_to_end(&mut back).expect("gunzip");
        assert_eq!(back, asset.body);
        let req = |v: &str| actix_web::test::TestRequest::get().insert_header((header::ACCEPT_ENCODING, v)).to_http_request();
        assert!(takes_gzip(&req("gzip, deflate, br")));
        assert!(takes_gzip(&req("br;q=1.0, gzip;q=0.8")));
        assert!(!takes_gzip(&req("gzip;q=0")) && !takes_gzip(&req("gzip; q=0.0")));
        assert!(!takes_gzip(&req("br")));
        assert!(!takes_gzip(&actix_web::test::TestRequest::get().to_http_request()));
    }

    #[test]
    fn a_change_of_content_changes_the_name() {
        assert_ne!(hashed_name("app.js", &short_hash(b"a")), hashed_name("app.js", &short_hash(b"b")));
        assert_eq!(hashed_name("app.css", "abc"), "app.abc.css");
    }
}
