//! The gateway's HTTP surface: the one place that knows every domain's
//! routes. Each domain declares its routes with their access rules through
//! the `api` toolkit; here they are assembled, each wrapped with its access
//! check ([`guard`]), and the site-wide layers are added. Layers:
//! `routes` → domains (`identity`, `rbac`, `agents`, …) → `store`.

mod guard;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, STRICT_TRANSPORT_SECURITY};
use axum::middleware::{self, Next};
use axum::response::Response;
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
    let api = crate::support::http::routes(api);
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
        .fallback(|| async { ApiError::not_found(ErrorCode::NoRoute, "no such route") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::sessions::recheck::after_change,
        ))
        .layer(middleware::from_fn(crate::api::json_errors))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
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
