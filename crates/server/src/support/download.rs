//! `GET /portal/download/{token}`: the customer's client, carrying what it
//! needs to connect ([`Trailer`]: the site's address, the fingerprint it
//! pins, a fresh single-use ticket), so the customer only runs it.
//!
//! Each download mints a new ticket (the previous one stops working), so
//! a copy of an earlier download is worthless; a link works
//! [`super::keys::DOWNLOADS`] times within [`super::keys::DOWNLOAD_TTL`].

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use jumpgate_proto::assist::Trailer;

use super::SupportError;
use super::assist::TICKET_TTL;
use crate::ids;
use crate::state::AppState;
use crate::store::sql;

/// The file name the browser saves.
pub(crate) const FILE_NAME: &str = "jumpgate-assist";

/// The executable sent: `[support] assist_binary`, else `jumpgate-assist`
/// next to the gateway's own executable when there is one (the lean
/// client), else the gateway's executable itself (it has the `assist`
/// command too).
pub(crate) fn client_binary(configured: Option<&std::path::Path>) -> std::io::Result<PathBuf> {
    if let Some(p) = configured {
        return Ok(p.to_owned());
    }
    let me = std::env::current_exe()?;
    let lean = me.with_file_name(FILE_NAME);
    Ok(if lean.is_file() { lean } else { me })
}

/// Spends one download of the link `token`: its session and a fresh
/// ticket, or `None` for a link that is unknown, used up or expired.
async fn spend(st: &AppState, token: &str) -> Result<Option<(String, String, i64)>, SupportError> {
    let now = ids::now_ms();
    let ticket = ids::random_token("jga");
    let expires_at = now + TICKET_TTL.as_millis() as i64;
    let mut w = st.db.write().await?;
    let id: Option<String> = sql!(w, |c| sqlx::query_scalar(
        "UPDATE support_sessions
            SET download_left = download_left - 1, ticket_hash = $1, ticket_expires_at = $2
          WHERE download_hash = $3 AND state = 'pending' AND download_left > 0
            AND download_expires_at > $4
         RETURNING id"
    )
    .bind(ids::token_hash(&ticket))
    .bind(expires_at)
    .bind(ids::token_hash(token))
    .bind(now)
    .fetch_optional(&mut *c)
    .await)?;
    w.commit().await?;
    Ok(id.map(|id| (id, ticket, expires_at)))
}

/// The download's response: the executable, then its trailer.
pub(crate) async fn serve(st: &AppState, token: &str) -> Result<Response, SupportError> {
    let Some((support_id, ticket, expires_at_ms)) = spend(st, token).await? else {
        return Err(SupportError::InvalidKey);
    };
    let site = super::portal::load(&st.db).await?.site_name;
    let trailer = Trailer {
        v: 1,
        url: st
            .portal_origin
            .clone()
            .unwrap_or_else(|| st.origins[0].clone()),
        fingerprint: st.fingerprint.clone(),
        ticket,
        site,
        support_id: support_id.clone(),
        expires_at_ms,
    }
    .encode();
    let trailer = bytes::Bytes::from(trailer);
    let path = client_binary(st.config.assist_binary.as_deref()).map_err(SupportError::Binary)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(SupportError::Binary)?;
    let len = file.metadata().await.map_err(SupportError::Binary)?.len();
    tracing::info!(support = %support_id, bytes = len, "customer client downloaded");
    let total = len + trailer.len() as u64;
    let body = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).chain(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(trailer) }),
    );
    let mut res = Body::from_stream(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"jumpgate-assist\""),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
