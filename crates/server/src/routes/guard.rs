//! The access check each route is wrapped in, per its [`Access`] rule:
//! authenticate the request's credential (`identity`), apply the console
//! cookie's cross-site checks, and for site actions ask `rbac`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use jumpgate_api_types::ErrorCode;

use crate::api::{ApiError, CookieSession, presented};
use crate::identity::{self, IdentityError};
use crate::rbac::Access;
use crate::rbac::{self, Action, Decision, Resource, Subject};
use crate::state::AppState;

/// `handler` behind the check its access rule asks for.
pub(super) fn wrap(
    state: &AppState,
    access: Access,
    handler: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    match access {
        Access::Public => handler,
        Access::Site(action) => handler.route_layer(middleware::from_fn_with_state(
            state.clone(),
            move |State(st): State<AppState>, req: Request, next: Next| async move {
                authorize_site(st, action, req, next).await
            },
        )),
        Access::PerEndpoint => handler.route_layer(middleware::from_fn_with_state(
            state.clone(),
            |State(st): State<AppState>, req: Request, next: Next| async move {
                authenticate_only(st, req, next).await
            },
        )),
    }
}

/// The caller behind a session or API token. Takes the token, not the
/// request: a request (its body) must not be borrowed across an await.
async fn authenticate(st: &AppState, token: Option<String>) -> Result<Subject, ApiError> {
    let token = token.ok_or(IdentityError::Unauthenticated)?;
    Ok(identity::authenticate(&st.db, &token).await?)
}

/// Authenticates a request (bearer token or console cookie) and, for
/// cookies, applies the cross-site checks: the one entry point of every
/// non-public route.
async fn authenticate_request(st: &AppState, req: &mut Request) -> Result<Subject, ApiError> {
    let p = presented(req, &st.origins);
    let subject = authenticate(st, p.token).await?;
    if let Some((csrf_token, check)) = p.cookie {
        if let Err(why) = check {
            tracing::info!(subject = %subject.name, path = %req.uri().path(), reason = why, "cross-site check failed");
            return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Csrf, why));
        }
        req.extensions_mut().insert(CookieSession { csrf_token });
    }
    // The connection leaves the unauthenticated connections' limits.
    crate::listener::authenticated();
    Ok(subject)
}

async fn authenticate_only(st: AppState, mut req: Request, next: Next) -> Response {
    let found = authenticate_request(&st, &mut req).await;
    match found {
        Ok(subject) => {
            req.extensions_mut().insert(subject);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn authorize_site(st: AppState, action: Action, mut req: Request, next: Next) -> Response {
    let subject = match authenticate_request(&st, &mut req).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if let Decision::Forbid(why) = rbac::authorize(&subject, action, Resource::Site) {
        let target = req.uri().path().to_owned();
        return rbac::http::denied(&st, &subject, action, &target, None, why)
            .await
            .into_response();
    }
    req.extensions_mut().insert(subject);
    next.run(req).await
}
