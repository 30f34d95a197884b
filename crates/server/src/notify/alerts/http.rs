//! `/api/v1/alert-rules*` and `/api/v1/smtp/test`: `manage-alerts`'
//! (each change audited, the test mail too).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jumpgate_api_types::ErrorCode;
use jumpgate_api_types::alerts as api;

use super::rules::{self, AlertError};
use crate::api::{ApiError, ApiJson};
use crate::rbac::{Action, Caller};
use crate::state::{Api, AppState};
use crate::store::audit::{AuditAction, AuditEvent};

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::Site;
    api.get("/api/v1/alert-rules", Site(Action::ReadAlerts), list)
        .post("/api/v1/alert-rules", Site(Action::WriteAlerts), add)
        .delete(
            "/api/v1/alert-rules/{name}",
            Site(Action::WriteAlerts),
            remove,
        )
        .post("/api/v1/smtp/test", Site(Action::WriteAlerts), test)
}

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::Invalid(_) => Self::bad_request(e.to_string()),
            AlertError::NameTaken(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::NameTaken, e.to_string())
            }
            AlertError::NotFound(_) => Self::not_found(ErrorCode::UnknownAlertRule, e.to_string()),
            AlertError::Smtp(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::SmtpFailed,
                e.to_string(),
            ),
            AlertError::Db(e) => Self::internal(e),
        }
    }
}

async fn list(State(st): State<AppState>) -> Result<Json<Vec<api::AlertRule>>, ApiError> {
    let all = rules::list(&st.db).await.map_err(AlertError::from)?;
    Ok(Json(all.iter().map(|(r, c)| r.dto(*c)).collect()))
}

async fn add(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::NewAlertRule>,
) -> Result<(StatusCode, Json<api::AlertRule>), ApiError> {
    let rule = rules::add(&st.db, &req, &who.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(rule.dto(rules::Counts::default())),
    ))
}

async fn remove(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    rules::remove(&st.db, &name, &who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test mail now (not through the queue), audited either way.
async fn test(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::SmtpTest>,
) -> Result<Json<api::SmtpTestSent>, ApiError> {
    if req.to.parse::<lettre::Address>().is_err() {
        return Err(ApiError::bad_request(format!(
            "to: `{}` is not a mail address",
            req.to
        )));
    }
    let Some(mailer) = super::mailer(&st.config, &st.db, &st.keys) else {
        return Err(AlertError::Smtp(
            "no mail server is configured (the gateway's `[smtp]` section)".into(),
        )
        .into());
    };
    let body = format!(
        "This is a test mail from Jumpgate ({}), sent by {}.\n\nAlert mail to this address will look like the rules' templates say.\n",
        st.config.hostname, who.name
    );
    let sent = mailer
        .send(std::slice::from_ref(&req.to), "[Jumpgate] test mail", &body)
        .await;
    let event = AuditEvent::new(&who.name, AuditAction::SmtpTest, &req.to);
    match sent {
        Ok(reply) => {
            st.db.audit_now(event).await.map_err(ApiError::internal)?;
            Ok(Json(api::SmtpTestSent { to: req.to, reply }))
        }
        Err(e) => {
            st.db
                .audit_now(event.outcome("failed").detail(e.to_string()))
                .await
                .map_err(ApiError::internal)?;
            Err(e.into())
        }
    }
}
