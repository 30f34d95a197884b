//! Credentials on HTTP requests, without deciding who they belong to: the
//! bearer token or the console's session cookie, and the cookie's
//! cross-site checks (CSRF token, WebSocket Origin). Turning a credential
//! into a `Subject` is `identity`'s; wrapping routes with that check is
//! `routes`'.

use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, COOKIE, ORIGIN, UPGRADE};
use axum::http::{HeaderMap, HeaderValue, Method};
use jumpgate_api_types::{CSRF_HEADER, SESSION_COOKIE};

/// The bearer token of a request, if any.
pub(crate) fn bearer(parts_headers: &axum::http::HeaderMap) -> Option<&str> {
    parts_headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The credential a request presents, read before any await.
pub(crate) struct Presented {
    pub(crate) token: Option<String>,
    /// Cookie sessions only: the session's CSRF token and whether the
    /// request passed the cross-site checks (`Err` names the failure).
    pub(crate) cookie: Option<(String, Result<(), &'static str>)>,
}

/// A request authenticated by the console's session cookie (inserted next
/// to the [`Subject`]); carries the session's CSRF token.
#[derive(Clone, Debug)]
pub(crate) struct CookieSession {
    pub(crate) csrf_token: String,
}

/// The session token in the console's cookie, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|t| !t.is_empty())
}

/// The session token of a request: a bearer token, else the cookie.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| session_cookie(headers))
}

/// The CSRF token of a cookie session: derived from the (secret, `HttpOnly`)
/// session token, so it needs no storage and dies with the session. A page
/// on another site can neither read the cookie nor this value.
pub(crate) fn csrf_token(session_token: &str) -> String {
    let mut input = b"jumpgate-csrf/1:".to_vec();
    input.extend_from_slice(session_token.as_bytes());
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Cross-site request checks for a cookie-authenticated request:
/// - state-changing methods must send the session's CSRF token in
///   [`CSRF_HEADER`] (compared in constant time);
/// - a WebSocket upgrade (a `GET` that opens a session, and cannot carry
///   custom headers from a browser) must come from the gateway's own
///   origin: one of the site's configured origins (`Config::origins`), never
///   whatever the request's own Host header says.
fn cross_site_check(req: &Request, csrf: &str, origins: &[String]) -> Result<(), &'static str> {
    let h = req.headers();
    let websocket = h
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if websocket {
        let origin = h.get(ORIGIN).and_then(|v| v.to_str().ok());
        return match origin {
            Some(o)
                if origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(o)) =>
            {
                Ok(())
            }
            _ => Err("a console WebSocket must come from the gateway's own origin"),
        };
    }
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = h
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if aws_lc_rs::constant_time::verify_slices_are_equal(sent, csrf.as_bytes()).is_ok() {
        Ok(())
    } else {
        Err("missing or wrong CSRF token (x-csrf-token) on a cookie-authenticated request")
    }
}

/// The credential a request presents (a bearer token, else the console's
/// cookie with the result of its cross-site checks against `origins`).
pub(crate) fn presented(req: &Request, origins: &[String]) -> Presented {
    if let Some(t) = bearer(req.headers()) {
        // Browsers never attach bearer tokens on their own: no CSRF risk.
        return Presented {
            token: Some(t.to_owned()),
            cookie: None,
        };
    }
    match session_cookie(req.headers()) {
        Some(t) => {
            let csrf = csrf_token(t);
            let check = cross_site_check(req, &csrf, origins);
            Presented {
                token: Some(t.to_owned()),
                cookie: Some((csrf, check)),
            }
        }
        None => Presented {
            token: None,
            cookie: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(method).uri("/api/v1/groups");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap_or_default()
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; __Host-jg_session=jgs_x ; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("jgs_x"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("jg_session=jgs_y"));
        assert_eq!(session_cookie(&h), None, "only the __Host- cookie counts");
        h.append(COOKIE, HeaderValue::from_static("__Host-jg_session="));
        assert_eq!(session_cookie(&h), None, "an empty value is no session");
    }

    #[test]
    fn the_csrf_token_is_bound_to_the_session() {
        let a = csrf_token("jgs_a");
        assert_eq!(a.len(), 64);
        assert_eq!(a, csrf_token("jgs_a"));
        assert_ne!(a, csrf_token("jgs_b"));
        assert!(!a.contains("jgs_a"));
    }

    #[test]
    fn cookie_requests_are_checked_for_cross_site_use() {
        let csrf = csrf_token("jgs_a");
        let origins = ["https://gw.example:8443".to_owned()];
        let check = |req: &Request| cross_site_check(req, &csrf, &origins);
        let get = request(Method::GET, &[]);
        assert!(check(&get).is_ok());
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(check(&request(m.clone(), &[])).is_err());
            let wrong = request(m.clone(), &[(CSRF_HEADER, "00")]);
            assert!(check(&wrong).is_err());
            let right = request(m, &[(CSRF_HEADER, csrf.as_str())]);
            assert!(check(&right).is_ok());
        }
        let ws = |origin: Option<&str>, host: &str| {
            let mut h = vec![("upgrade", "websocket"), ("host", host)];
            if let Some(o) = origin {
                h.push(("origin", o));
            }
            request(Method::GET, &h)
        };
        assert!(check(&ws(Some("https://gw.example:8443"), "gw.example:8443")).is_ok());
        // The configured origin decides, not the Host the request names.
        assert!(check(&ws(Some("https://gw.example:8443"), "other.example")).is_ok());
        assert!(check(&ws(Some("https://evil.example"), "evil.example")).is_err());
        for bad in [
            None,
            Some("https://evil.example"),
            Some("http://gw.example:8443"),
            Some("https://gw.example:8443.evil.example"),
            Some("https://gw.example"),
            Some("null"),
        ] {
            assert!(check(&ws(bad, "gw.example:8443")).is_err(), "{bad:?}");
        }
    }
}
