//! The gateway's HTTP surface: the one place that knows every domain's
//! routes. Each domain declares its routes with their access rules through
//! the `api` toolkit; here they are assembled, each wrapped with its access
//! check ([`guard`]), and the site-wide layers are added. Layers:
//! `routes` → domains (`identity`, `rbac`, `agents`, …) → `store`.

mod guard;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, HOST, STRICT_TRANSPORT_SECURITY};
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use jumpgate_api_types::ErrorCode;

use crate::api::{ApiError, RouteInfo};
use crate::rbac::Access;
use crate::state::Api;
use crate::state::AppState;

/// Every domain's routes, in order.
fn assemble() -> Api {
    let api = Api::new().get("/healthz", Access::Public, || async { "ok" });
    let api = crate::identity::http::routes(api);
    let api = crate::rbac::http::routes(api);
    let api = crate::agents::http::routes(api);
    let api = crate::events::routes(api);
    let api = crate::recordings::http::routes(api);
    let api = crate::sessions::http::routes(api);
    let api = crate::vault::http::routes(api);
    let api = crate::targets::http::routes(api);
    let api = crate::support::http::routes(api);
    let api = crate::support::pin::routes(api);
    let api = crate::epm::http::routes(api);
    let api = crate::packages::http::routes(api);
    let api = crate::analytics::http::routes(api);
    let api = crate::ssh::http::routes(api);
    let api = crate::access::http::routes(api);
    let api = crate::notify::alerts::http::routes(api);
    let api = crate::notify::webhooks::http::routes(api);
    crate::web::routes(api)
}

/// The whole HTTP surface of the TLS port.
pub(crate) fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in assemble().into_routes() {
        let handler = guard::wrap(&state, route.access, route.handler);
        router = router.route(route.path, handler);
    }
    router
        .fallback(|| async { no_route() })
        .layer(middleware::from_fn_with_state(state.clone(), portal_host))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::sessions::recheck::after_change,
        ))
        .layer(middleware::from_fn(crate::api::json_errors))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The answer to a path the gateway does not serve.
fn no_route() -> ApiError {
    ApiError::not_found(ErrorCode::NoRoute, "no such route")
}

/// The support portal's own host name (`[support] portal_hostname`): on it
/// only the portal is reachable (`support::page::portal_path`), `/` being
/// the portal's page; every other path answers exactly as an unknown one,
/// before any login check, so the portal's host tells nothing about the
/// console, users or endpoints. On the console's host the portal stays at
/// `/portal`. Also checks the `Origin` of the portal's POSTs, on either host.
async fn portal_host(State(st): State<AppState>, req: Request, next: Next) -> Response {
    use crate::support::page;
    if let Err(e) = page::check_origin(&st, req.method(), req.uri().path(), req.headers()) {
        return e.into_response();
    }
    let on_portal = st.config.portal_hostname().is_some_and(|portal| {
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        host.is_some_and(|h| page::names_portal(h, portal))
    });
    if !on_portal {
        return next.run(req).await;
    }
    match req.uri().path() {
        "/" if matches!(*req.method(), Method::GET | Method::HEAD) => page::portal_page().await,
        p if page::portal_path(p) && p != "/" => next.run(req).await,
        _ => no_route().into_response(),
    }
}

/// Every HTTP route with its access rule, built by the same code as the
/// router (for documentation and the access-matrix test).
pub fn route_table() -> Vec<RouteInfo> {
    assemble()
        .into_routes()
        .into_iter()
        .map(|r| RouteInfo {
            method: r.method.to_string(),
            path: r.path.to_owned(),
            access: r.access.name().to_owned(),
        })
        .collect()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if !h.contains_key(CONTENT_SECURITY_POLICY) {
        h.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::web::CONTENT_SECURITY_POLICY),
        );
    }
    res
}
