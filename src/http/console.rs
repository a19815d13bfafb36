//! The operator console's files (`/console/`): a page and its scripts and styles, embedded in the
//! binary at build time from `console/` and served with a Content-Security-Policy that lets the
//! browser load nothing from another origin. The page holds no data: everything it shows comes
//! from the admin API, which checks the session (decisions D39).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha1::{Digest, Sha1};
use std::sync::LazyLock;

/// One embedded file: its path under `/console/`, its media type and its bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $media:expr) => {
        Asset {
            path: $path,
            media_type: $media,
            bytes: include_bytes!(concat!("../../console/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console. A file added under `console/` is served once it is listed here
/// (the console test checks that each one the page imports is).
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("assets/style.css", "text/css; charset=utf-8"),
    asset!("assets/icon.svg", "image/svg+xml"),
    asset!("assets/app.js", JS),
    asset!("assets/api.js", JS),
    asset!("assets/dom.js", JS),
    asset!("assets/chart.js", JS),
    asset!("assets/format.js", JS),
    asset!("assets/pages/overview.js", JS),
    asset!("assets/pages/groups.js", JS),
    asset!("assets/pages/group.js", JS),
    asset!("assets/pages/broadcasts.js", JS),
    asset!("assets/pages/envelopes.js", JS),
    asset!("assets/pages/moderation.js", JS),
    asset!("assets/pages/scripts.js", JS),
    asset!("assets/pages/accounts.js", JS),
    asset!("assets/pages/audit.js", JS),
];

/// Nothing from another origin: scripts, styles, images and API calls come from this service
/// only; no inline script; the page cannot be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Each file's entity tag (a digest of its bytes): a browser revalidates and gets 304.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", &hex::encode(Sha1::digest(a.bytes))[..16]))
        .collect()
});

/// The console's routes: `/` and `/console` lead to `/console/`, which serves the page.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                serve(&path, &headers)
            }),
        )
}

/// The embedded file at `path`, 304 when the browser holds it already, or 404.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| given.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.media_type)], asset.bytes).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    for (name, value) in [
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The paths of the embedded files (tests check the page imports nothing else).
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_the_policy() {
        for path in asset_paths() {
            let response = serve(path, &HeaderMap::new());
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("default-src 'none'"), "{path}");
        }
        assert_eq!(
            serve("../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_file_the_browser_holds_is_not_sent_again() {
        let first = serve("assets/app.js", &HeaderMap::new());
        let etag = first.headers()[header::ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(
            serve("assets/app.js", &headers).status(),
            StatusCode::NOT_MODIFIED
        );
    }

    /// Every module the console imports is embedded, and nothing it names comes from elsewhere.
    #[test]
    fn the_console_imports_only_embedded_files() {
        let import = regex::Regex::new(r#"(?m)^import .* from "(\.\.?/[^"]+)";"#).unwrap();
        let paths: Vec<&str> = asset_paths().collect();
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            let dir = asset.path.rsplit_once('/').map_or("", |(d, _)| d);
            for found in import.captures_iter(text) {
                let target = normalise(&format!("{dir}/{}", &found[1]));
                assert!(
                    paths.contains(&target.as_str()),
                    "{} imports {target}, which is not embedded",
                    asset.path
                );
            }
            // The SVG namespace is a name, not an address anything is loaded from.
            let elsewhere = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !elsewhere.contains("://"),
                "{} names another origin",
                asset.path
            );
        }
    }

    /// `a/b/../c.js` → `a/c.js`.
    fn normalise(path: &str) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for part in path.split('/') {
            match part {
                ".." => {
                    parts.pop();
                }
                "." | "" => {}
                other => parts.push(other),
            }
        }
        parts.join("/")
    }
}
