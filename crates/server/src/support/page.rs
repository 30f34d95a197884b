//! The public portal's page: `GET /portal` (and `/` on the portal's own
//! host), its colours as a generated style sheet (`GET /portal/theme.css`,
//! so the page needs no inline style), the allow-list of what the portal's
//! host serves, and the `Origin` check of the portal's two POSTs.
//!
//! The page itself (`web/portal.{html,js,css}`) talks to the portal's API
//! in `support::http`; it shows what `GET /api/v1/portal` returns and
//! nothing else.

use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use jumpgate_api_types::support as api;

use super::portal;
use crate::api::ApiError;
use crate::rbac::Access;
use crate::state::{Api, AppState};

pub(crate) fn routes(api: Api) -> Api {
    api.get("/portal", Access::Public, portal_page)
        .get("/portal/theme.css", Access::Public, theme)
}

/// The portal's page (the same file on either host).
pub(crate) async fn portal_page() -> Response {
    crate::web::page("portal.html")
}

/// `GET /portal/theme.css`: the administrators' colours as CSS custom
/// properties. Every value is checked to be `#rrggbb` again here (a value
/// stored by an older version, or edited in the database, falls back to the
/// default), so nothing but a colour can reach the style sheet.
async fn theme(State(st): State<AppState>) -> Result<Response, ApiError> {
    let colors = portal::load(&st.db).await?.colors;
    Ok((
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        theme_css(&colors),
    )
        .into_response())
}

/// `#rrggbb` or nothing.
fn rgb(v: &str) -> Option<[u8; 3]> {
    let hex = v.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// WCAG relative luminance (0 black … 1 white).
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

/// Text on a colour: white or near-black, whichever contrasts more.
fn on(c: [u8; 3]) -> &'static str {
    let l = luminance(c);
    // Contrast with white (1.05 / (l + .05)) against black ((l + .05) / .05).
    if 1.05 / (l + 0.05) >= (l + 0.05) / 0.05 {
        "#ffffff"
    } else {
        "#111418"
    }
}

/// `a` moved towards `b` by `t` (0…1), per channel.
fn mix(a: [u8; 3], b: [u8; 3], t: f64) -> [u8; 3] {
    let m = |x: u8, y: u8| {
        let v = f64::from(x) + (f64::from(y) - f64::from(x)) * t;
        // In 0..=255 by construction.
        v.round().clamp(0.0, 255.0) as u8
    };
    [m(a[0], b[0]), m(a[1], b[1]), m(a[2], b[2])]
}

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

pub(crate) fn theme_css(colors: &api::PortalColors) -> String {
    let d = api::PortalColors::default();
    let pick = |v: &str, default: &str| rgb(v).or_else(|| rgb(default)).unwrap_or([0, 0, 0]);
    let primary = pick(&colors.primary, &d.primary);
    let background = pick(&colors.background, &d.background);
    let text = pick(&colors.text, &d.text);
    const WHITE: [u8; 3] = [255, 255, 255];
    // Cards stand out from the page: near white on a light page, a little
    // lighter than the page on a dark one.
    let card = if luminance(background) >= 0.2 {
        mix(background, WHITE, 0.8)
    } else {
        mix(background, WHITE, 0.07)
    };
    format!(
        "/* The portal's colours, set by the site's administrators. */\n\
         :root {{\n  --primary: {};\n  --on-primary: {};\n  --bg: {};\n  --fg: {};\n  \
         --card: {};\n  --line: {};\n  --muted: {};\n}}\n",
        hex(primary),
        on(primary),
        hex(background),
        hex(text),
        hex(card),
        hex(mix(background, text, 0.2)),
        hex(mix(text, background, 0.3)),
    )
}

/// What the portal's own host serves (exact paths, and the downloads'
/// prefix); everything else answers as an unknown path.
pub(crate) fn portal_path(path: &str) -> bool {
    const EXACT: [&str; 9] = [
        "/",
        "/portal",
        "/assets/portal.js",
        "/assets/portal.css",
        "/portal/theme.css",
        "/portal/logo",
        "/api/v1/portal",
        "/api/v1/portal/key",
        "/api/v1/portal/requests",
    ];
    EXACT.contains(&path)
        || path
            .strip_prefix("/portal/download/")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// Whether `host` (a `Host` header: name, optional port) names `portal`.
pub(crate) fn names_portal(host: &str, portal: &str) -> bool {
    let name = if host.starts_with('[') {
        // An IPv6 literal is never the portal's name.
        return false;
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    name.trim_end_matches('.').eq_ignore_ascii_case(portal)
}

/// The portal's POSTs, whose `Origin` is checked.
fn checked_post(method: &Method, path: &str) -> bool {
    method == Method::POST && matches!(path, "/api/v1/portal/key" | "/api/v1/portal/requests")
}

/// The `Origin` check of the portal's POSTs: a browser always sends
/// `Origin` on a POST, so a page of another site making a visitor's
/// browser spend that visitor's key attempts (and the site-wide budget of
/// wrong keys) is refused. No cookie is involved; requests without `Origin`
/// (jg, curl, the support client) are allowed.
pub(crate) fn check_origin(
    st: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if !checked_post(method, path) {
        return Ok(());
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let port = tls_port(&st.origins);
    let portal = st.config.portal_origin(port);
    let allowed = st
        .origins
        .iter()
        .chain(portal.iter())
        .any(|o| o.eq_ignore_ascii_case(origin));
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "this request comes from another web site; the support portal answers its own page only",
        ))
    }
}

/// The TLS port, from the console's canonical origin (`Config::origins`).
fn tls_port(origins: &[String]) -> u16 {
    origins
        .first()
        .and_then(|o| o.parse::<axum::http::Uri>().ok())
        .and_then(|u| u.port_u16())
        .unwrap_or(443)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colors(primary: &str, background: &str, text: &str) -> api::PortalColors {
        api::PortalColors {
            primary: primary.into(),
            background: background.into(),
            text: text.into(),
        }
    }

    #[test]
    fn the_theme_holds_colours_only() {
        let css = theme_css(&colors("#0A7F3F", "#ffffff", "#101010"));
        assert!(css.contains("--primary: #0a7f3f;"), "{css}");
        assert!(css.contains("--bg: #ffffff;"), "{css}");
        assert!(css.contains("--fg: #101010;"), "{css}");
        // White text on a dark green, dark text on a pale yellow.
        assert!(css.contains("--on-primary: #ffffff;"), "{css}");
        let pale = theme_css(&colors("#ffe680", "#ffffff", "#101010"));
        assert!(pale.contains("--on-primary: #111418;"), "{pale}");
        let dark = theme_css(&colors("#1f6feb", "#0d1117", "#e6edf3"));
        assert!(dark.contains("--card: #1e2227;"), "{dark}");

        // Whatever is stored, only a colour gets out (the default instead).
        let d = api::PortalColors::default();
        for evil in [
            "red;} body{display:none",
            "#fff",
            "#12345g",
            "#123456;",
            "</style><script>",
            "#1234567",
            "",
            "#ééé",
        ] {
            let css = theme_css(&colors(evil, evil, evil));
            assert!(
                css.contains(&format!("--primary: {};", d.primary)),
                "{evil}: {css}"
            );
            assert!(
                css.contains(&format!("--bg: {};", d.background)),
                "{evil}: {css}"
            );
            assert!(css.contains(&format!("--fg: {};", d.text)), "{evil}: {css}");
            if evil.len() > 7 {
                assert!(!css.contains(evil), "{evil}: {css}");
            }
            // One rule, one declaration per line, nothing else.
            assert_eq!(css.matches('{').count(), 1, "{css}");
            assert_eq!(css.matches('}').count(), 1, "{css}");
            assert!(!css.contains('<'), "{css}");
        }
    }

    #[test]
    fn the_portal_host_serves_the_portal_only() {
        for p in [
            "/",
            "/portal",
            "/assets/portal.js",
            "/assets/portal.css",
            "/portal/theme.css",
            "/portal/logo",
            "/portal/download/jgd_abc",
            "/api/v1/portal",
            "/api/v1/portal/key",
            "/api/v1/portal/requests",
        ] {
            assert!(portal_path(p), "{p}");
        }
        for p in [
            "/api/v1/users",
            "/api/v1/portal/settings",
            "/api/v1/queues",
            "/assets/app.js",
            "/assets/admin.js",
            "/healthz",
            "/portal/download/",
            "/portal/download/a/b",
            "/portal/",
            "/api/v1/portal/",
            "/index.html",
        ] {
            assert!(!portal_path(p), "{p}");
        }
        assert!(names_portal("support.example.com", "support.example.com"));
        assert!(names_portal(
            "Support.Example.com.:8443",
            "support.example.com"
        ));
        assert!(!names_portal("gw.example.com:8443", "support.example.com"));
        assert!(!names_portal("[::1]:8443", "support.example.com"));
        assert!(!names_portal(
            "support.example.com.evil",
            "support.example.com"
        ));
    }
}
