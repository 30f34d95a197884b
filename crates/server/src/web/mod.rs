//! The web console: static pages and scripts embedded in the gateway binary
//! and served on the API's TLS port, so `jumpgate server` alone serves it.
//!
//! The console is a single page (`/`) of plain ES modules with hash routes
//! (`#/endpoints`, `#/terminal/web-1`…); it talks to the same REST API as
//! `jg`, authenticated by an `HttpOnly` session cookie plus a CSRF header
//! (see `routes::guard`), and opens sessions over a WebSocket on
//! the connect route. No build step: the files under `crates/server/web/`
//! are the files served, the xterm.js distribution vendored as published.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use jumpgate_api_types::ErrorCode;

use crate::api::ApiError;
use crate::rbac::Access;
use crate::state::Api;

#[cfg(test)]
mod contract;

/// The Content-Security-Policy of every answer of the gateway: scripts,
/// styles, images and connections from the gateway itself only; no inline
/// script, no `eval`, no framing, no plugins, no `<base>`. One deliberate
/// allowance, verified in chromium by the browser test:
/// `style-src-elem 'unsafe-inline'`: xterm.js's DOM renderer writes its
/// cell metrics and theme into `<style>`
/// elements it creates at run time (their content depends on the font and
/// window size, so no hash fits, and xterm.js takes no nonce). This admits
/// `<style>` elements only: inline `style="…"` attributes stay forbidden
/// (`style-src-attr` falls back to `style-src 'self'`), and the console
/// never builds markup from strings (no `innerHTML`), so no
/// attacker-supplied `<style>` can appear.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; style-src-elem 'self' 'unsafe-inline'; img-src 'self'; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ct:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Every file of the console (served under `/assets/`, `index.html` at `/`).
static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.css", CSS),
    asset!("app.js", JS),
    asset!("contract.js", JS),
    asset!("api.js", JS),
    asset!("session.js", JS),
    asset!("pages.js", JS),
    asset!("terminal.js", JS),
    asset!("player.js", JS),
    asset!("recording-search.js", JS),
    asset!("admin.js", JS),
    asset!("desktop.js", JS),
    asset!("support.js", JS),
    asset!("epm.js", JS),
    asset!("packages.js", JS),
    asset!("reports.js", JS),
    asset!("targets.js", JS),
    asset!("access.js", JS),
    asset!("alerts.js", JS),
    asset!("webhooks.js", JS),
    asset!("keys.js", JS),
    asset!("desktop-recording.js", JS),
    // The codec's browser decoder, served from where the codec keeps it
    // (one copy, tested with the codec in crates/codec/tests/browser.rs).
    Asset {
        path: "desktop-decoder.js",
        content_type: JS,
        body: include_bytes!("../../../codec/js/desktop-decoder.js"),
    },
    asset!("ui.js", JS),
    // The support portal's page (public; see `support::page`).
    asset!("portal.html", HTML),
    asset!("portal.css", CSS),
    asset!("portal.js", JS),
    asset!("vendor/xterm/xterm.mjs", JS),
    asset!("vendor/xterm/xterm.css", CSS),
    asset!("vendor/addon-fit/addon-fit.mjs", JS),
    asset!("vendor/noble-hashes/sha2.js", JS),
    asset!("vendor/noble-hashes/_md.js", JS),
    asset!("vendor/noble-hashes/_u64.js", JS),
    asset!("vendor/noble-hashes/utils.js", JS),
    asset!("vendor/noble-hashes/crypto.js", JS),
];

pub(crate) fn routes(api: Api) -> Api {
    api.get("/", Access::Public, index)
        .get("/assets/{*path}", Access::Public, asset)
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn serve(a: &'static Asset) -> Response {
    ([(CONTENT_TYPE, a.content_type)], a.body).into_response()
}

async fn index() -> Response {
    page("index.html")
}

/// An embedded page, by file name (`index.html`, `portal.html`).
pub(crate) fn page(name: &str) -> Response {
    match find(name) {
        Some(a) => serve(a),
        None => ApiError::internal(format!("{name} is not embedded")).into_response(),
    }
}

async fn asset(Path(path): Path<String>) -> Response {
    match find(&path) {
        Some(a) => serve(a),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoAsset,
            format!("no console file `{path}`"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_with_a_type() {
        assert!(ASSETS.len() >= 10);
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            let ext = a.path.rsplit('.').next().unwrap_or_default();
            let expected = match ext {
                "js" | "mjs" => JS,
                "css" => CSS,
                "html" => HTML,
                other => panic!("unexpected file type {other}"),
            };
            assert_eq!(a.content_type, expected, "{}", a.path);
        }
    }

    #[test]
    fn pages_load_no_inline_script() {
        for (page, script) in [("index.html", "app.js"), ("portal.html", "portal.js")] {
            page_loads_no_inline_script(page, script);
        }
        // The portal's page has no inline style either: its colours come
        // from /portal/theme.css.
        let portal = std::str::from_utf8(find("portal.html").map(|a| a.body).unwrap_or_default())
            .unwrap_or_default();
        assert!(!portal.contains("<style") && !portal.contains(" style="));
        assert!(portal.contains("href=\"/portal/theme.css\""));
    }

    fn page_loads_no_inline_script(name: &str, script: &str) {
        let index =
            std::str::from_utf8(find(name).map(|a| a.body).unwrap_or_default()).unwrap_or_default();
        assert!(index.contains(&format!(
            "<script type=\"module\" src=\"/assets/{script}\">"
        )));
        // Every <script> has a src: nothing inline for the CSP to forbid.
        assert_eq!(
            index.matches("<script").count(),
            index.matches("<script type=\"module\" src=").count()
        );
        // No inline event handlers (` onclick=` and the like).
        let handlers = index.match_indices(" on").filter(|(i, _)| {
            let rest = &index[i + 3..];
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert_eq!(handlers.count(), 0, "inline event handler in {name}");
    }

    #[test]
    fn csp_forbids_inline_script() {
        let directives: Vec<&str> = CONTENT_SECURITY_POLICY.split(';').map(str::trim).collect();
        assert!(directives.contains(&"script-src 'self'"));
        assert!(directives.contains(&"default-src 'none'"));
        // The one unsafe allowance is for <style> elements (xterm.js).
        let unsafe_ones: Vec<&&str> = directives.iter().filter(|d| d.contains("unsafe")).collect();
        assert_eq!(unsafe_ones, [&"style-src-elem 'self' 'unsafe-inline'"]);
    }
}
