//! One subscription's sender: its oldest pending delivery, one at a time,
//! signed; a failure waits its backoff ([`crate::notify::retry_after`]: 1 s
//! doubling to 10 min, as mail alerts) and the delivery is tried again until the subscription's retry period
//! (counted from its first try) ends, then it is `dead` and the next one
//! goes.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use http::{HeaderName, HeaderValue, Method, header};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Subscription;
use crate::http_client::{Conn, Endpoint};
use crate::ids::now_ms;
use crate::lease::Job;
use crate::state::AppState;
use crate::store::sql;

/// How long one try may take, connection included.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// Look at the queue unasked this often (deliveries queued by another
/// gateway wake nothing here).
const POLL: Duration = Duration::from_secs(2);
/// How long a send already under way may finish after the gateway is
/// told to stop.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Largest error text kept with a delivery.
const MAX_ERROR: usize = 300;

/// The signature header's value for `body` sent at unix time `t`:
/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." ‖ body)>`.
pub(crate) fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{t}.").as_bytes());
    ctx.update(body);
    format!("t={t},v1={}", crate::events::hex(ctx.sign().as_ref()))
}

/// The next pending delivery: (id, entry id, body, attempts, first try,
/// next try).
type Next = (i64, i64, Vec<u8>, i64, Option<i64>, i64);

/// What the worker keeps between tries: the endpoint (rebuilt when the
/// URL or CA change), its open connection (HTTP keep-alive: deliveries in
/// a row reuse it; closed on an error, a timeout, a new endpoint, or
/// [`crate::http_client::KEEP_IDLE`] unused), and the secret and `Authorization` header (by
/// their sealed forms: opened again when rotated).
#[derive(Default)]
struct Cache {
    endpoint: Option<(String, Option<String>, Result<Endpoint, String>)>,
    conn: Option<Conn>,
    secret: Option<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>)>,
    auth: Option<(Vec<u8>, HeaderValue)>,
}

/// Runs subscription `name`'s queue until it is removed or the gateway
/// stops.
pub(crate) async fn run(st: AppState, name: String, wake: Arc<Notify>, stop: CancellationToken) {
    let mut cache = Cache::default();
    let mut failing = false;
    loop {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let wait = match round(&st, &name, &mut cache, &stop).await {
            Ok(Some(w)) => {
                failing = false;
                w
            }
            Ok(None) => return,
            Err(e) => {
                if !failing {
                    tracing::warn!(subscription = %name, error = %e, "webhook queue unreadable; retrying");
                    failing = true;
                }
                POLL
            }
        };
        if wait.is_zero() {
            continue;
        }
        // Nothing to send now: a connection that will sit idle too long
        // is closed now rather than kept open.
        if cache.conn.as_ref().is_some_and(Conn::stale) {
            cache.conn = None;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = &mut woken => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One step: sends the head of the queue when it is due. Answers how long
/// to wait before the next step (`None`: the subscription is gone).
async fn round(
    st: &AppState,
    name: &str,
    cache: &mut Cache,
    stop: &CancellationToken,
) -> Result<Option<Duration>, sqlx::Error> {
    if stop.is_cancelled() {
        return Ok(None);
    }
    if !st.lease.hold(Job::Webhooks, POLL * 4).await {
        return Ok(Some(POLL));
    }
    let mut c = st.db.conn().await?;
    let Some(sub) = super::find(&mut c, name).await? else {
        return Ok(None);
    };
    let next: Option<Next> = sql!(c, |c| sqlx::query_as(
        "SELECT id, entry_id, body, attempts, first_try_at, next_at FROM webhook_deliveries
          WHERE subscription = $1 AND state = 'pending' ORDER BY id LIMIT 1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    drop(c);
    let Some((id, entry_id, body, attempts, first, next_at)) = next else {
        return Ok(Some(POLL));
    };
    let now = now_ms();
    if next_at > now {
        let ms = u64::try_from(next_at - now).unwrap_or(0);
        return Ok(Some(Duration::from_millis(ms).min(POLL * 5)));
    }
    let send = attempt(st, &sub, cache, id, entry_id, body);
    let result = tokio::select! {
        r = send => r,
        () = async { stop.cancelled().await; tokio::time::sleep(STOP_GRACE).await } => {
            // Not recorded: tried again after the restart.
            return Ok(None);
        }
    };
    let now = now_ms();
    let first = first.unwrap_or(now);
    let mut w = st.db.write().await?;
    match result {
        Ok(status) => {
            sql!(w, |c| sqlx::query(
                "UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1,
                        first_try_at = $1, last_status = $2, last_error = '', done_at = $3
                  WHERE id = $4 AND state = 'pending'"
            )
            .bind(first)
            .bind(i64::from(status))
            .bind(now)
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        }
        Err((status, error)) => {
            let error: String = error.chars().take(MAX_ERROR).collect();
            let dead = now.saturating_sub(first) >= sub.retry_secs.saturating_mul(1000);
            let next = now.saturating_add(
                i64::try_from(crate::notify::retry_after(attempts + 1).as_millis())
                    .unwrap_or(i64::MAX),
            );
            sql!(w, |c| sqlx::query(
                "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1,
                        first_try_at = $2, last_status = $3, last_error = $4, next_at = $5,
                        done_at = $6
                  WHERE id = $7 AND state = 'pending'"
            )
            .bind(if dead { "dead" } else { "pending" })
            .bind(first)
            .bind(status.map(i64::from))
            .bind(&error)
            .bind(next)
            .bind(dead.then_some(now))
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
            if dead {
                tracing::warn!(subscription = %name, delivery = id, entry = entry_id, error = %error, "webhook delivery dead after its retry period");
            }
        }
    }
    w.commit().await?;
    Ok(Some(Duration::ZERO))
}

/// One try: `Ok(status)` on a 2xx answer, else the status (if any) and why.
async fn attempt(
    st: &AppState,
    sub: &Subscription,
    cache: &mut Cache,
    id: i64,
    entry_id: i64,
    body: Vec<u8>,
) -> Result<u16, (Option<u16>, String)> {
    let fresh = !matches!(&cache.endpoint, Some((u, ca, _)) if *u == sub.url && *ca == sub.ca_pem);
    if fresh {
        cache.endpoint = Some((sub.url.clone(), sub.ca_pem.clone(), sub.endpoint()));
        cache.conn = None;
    }
    let ep = match cache.endpoint.as_ref().map(|(_, _, ep)| ep) {
        Some(Ok(ep)) => ep.clone(),
        Some(Err(e)) => return Err((None, format!("URL: {e}"))),
        None => return Err((None, "no endpoint".into())),
    };
    if !matches!(&cache.secret, Some((sealed, _)) if *sealed == sub.sealed) {
        let secret = sub
            .secret(&st.keys)
            .map_err(|e| (None, format!("cannot open the subscription's secret: {e}")))?;
        cache.secret = Some((sub.sealed.clone(), secret));
    }
    match sub.auth_sealed.as_deref() {
        None => cache.auth = None,
        Some(a) if cache.auth.as_ref().is_some_and(|(s, _)| s == a) => {}
        Some(a) => {
            let Some(v) = sub.auth_header(&st.keys).map_err(|e| {
                (
                    None,
                    format!("cannot open the subscription's Authorization header: {e}"),
                )
            })?
            else {
                return Err((None, "no Authorization header".into()));
            };
            // Never in a message: the value is checked when added.
            let mut v = HeaderValue::from_bytes(&v).map_err(|_| {
                (
                    None,
                    "the stored Authorization header is not a header value".to_owned(),
                )
            })?;
            v.set_sensitive(true);
            cache.auth = Some((a.to_vec(), v));
        }
    }
    let Some((_, secret)) = &cache.secret else {
        return Err((None, "no secret".into()));
    };
    let t = now_ms() / 1000;
    let sig = signature(secret, t, &body);
    let value = |s: String| HeaderValue::from_str(&s).map_err(|e| (None, e.to_string()));
    let mut headers = vec![
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            header::USER_AGENT,
            HeaderValue::from_static("Jumpgate-Webhooks/1"),
        ),
        (HeaderName::from_static("jumpgate-signature"), value(sig)?),
        (
            HeaderName::from_static("jumpgate-event-id"),
            value(entry_id.to_string())?,
        ),
        (
            HeaderName::from_static("jumpgate-delivery"),
            value(id.to_string())?,
        ),
    ];
    if let Some((_, auth)) = &cache.auth {
        headers.push((header::AUTHORIZATION, auth.clone()));
    }
    match ep
        .call_kept(&mut cache.conn, Method::POST, "", &headers, body, TIMEOUT)
        .await
    {
        Ok((status, _)) if (200..300).contains(&status) => Ok(status),
        Ok((status, answer)) => Err((
            Some(status),
            format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&answer)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        )),
        Err(e) => Err((None, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    /// The example of docs/webhooks.md.
    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        let s = signature(b"whsec_test", 1_700_000_000, br#"{"id":1}"#);
        assert!(s.starts_with("t=1700000000,v1="), "{s}");
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature(b"whsec_other", 1_700_000_000, br#"{"id":1}"#));
    }
}
