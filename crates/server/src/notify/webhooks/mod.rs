//! Outbound events (webhooks): subscriptions, their durable queues, and
//! one sending task per subscription (design: `docs/design/17-alerts.md`,
//! receivers' side: `docs/webhooks.md`).
//!
//! ```text
//! audit chain ──notify::run──► Taker::take: one delivery row per matching
//!                              subscription (same commit as the cursor)
//!                                     │ wake
//!               ┌─────────────────────┼─────────────────────┐
//!               ▼                     ▼                     ▼
//!        worker (sub A)         worker (sub B)         worker (sub C)
//!   oldest pending first, one at a time, HMAC-signed POST; failure:
//!   backoff 1 s doubling to 10 min until the retry period ends → dead
//! ```
//!
//! Each subscription's worker sends only its own queue: a slow or dead
//! receiver holds up nothing else. Deliveries are at least once (a
//! gateway stopped between the receiver's answer and its record sends
//! again): `Jumpgate-Event-Id`, the audit entry's id, lets receivers drop
//! a repeat.

pub(crate) mod formats;
pub(crate) mod http;
pub(crate) mod schema;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jumpgate_api_types::webhooks as api;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::formats::{Format, Options};
use super::{Consumer, Entry, TakeFuture};
use crate::http_client::{Endpoint, PlainHttp, TrustSpec};
use crate::ids::{self, now_ms, random_bytes, rfc3339};
use crate::keys::stored::TableKeys;
use crate::keys::{KeyError, Keyring, Purpose, WrappedKey};
use crate::lease::Job;
use crate::state::AppState;
use crate::store::audit::{AuditAction, AuditEvent};
use crate::store::{Exec, Store, WriteTx, sql};

/// The KEK purpose whose data keys seal subscriptions' secrets (they are
/// secrets of the site like the vault's).
const PURPOSE: Purpose = Purpose::Vault;

/// Default retry period of a delivery: 24 hours.
pub(crate) const DEFAULT_RETRY_SECS: u64 = 24 * 3600;
/// Longest retry period accepted: 30 days.
const MAX_RETRY_SECS: u64 = 30 * 24 * 3600;
/// Subscriptions per site.
const MAX_SUBSCRIPTIONS: i64 = 200;

/// The subscriptions' data keys, for the rotation sweep and key status.
pub(crate) const SECRET_KEYS: TableKeys = TableKeys {
    name: "webhook secrets",
    purpose: PURPOSE,
    count_all: "SELECT COUNT(*) FROM webhook_subscriptions",
    count_like: "SELECT COUNT(*) FROM webhook_subscriptions WHERE wrapped_key LIKE $1",
    stale_after: "SELECT name, wrapped_key FROM webhook_subscriptions
          WHERE name > $1 AND wrapped_key NOT LIKE $2 ORDER BY name LIMIT $3",
    replace: "UPDATE webhook_subscriptions SET wrapped_key = $1 WHERE name = $2 AND wrapped_key = $3",
};

/// Why a webhook request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("a webhook subscription named {0} exists")]
    NameTaken(String),
    #[error("no webhook subscription named {0}")]
    NotFound(String),
    #[error("no dead delivery {0}")]
    NoDelivery(i64),
    #[error("cannot seal the subscription's secret: {0}")]
    Key(#[from] KeyError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A subscription as stored.
#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) events: Vec<String>,
    pub(crate) groups: Vec<String>,
    pub(crate) format: Format,
    pub(crate) options: Options,
    pub(crate) ca_pem: Option<String>,
    wrapped_key: String,
    sealed: Vec<u8>,
    /// The `Authorization` header's value, sealed under the same data key
    /// as the secret (its own AAD); `None`: no such header.
    auth_sealed: Option<Vec<u8>>,
    pub(crate) retry_secs: i64,
    pub(crate) after_id: i64,
    created_at: i64,
    created_by: String,
}

type SubRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Vec<u8>,
    i64,
    i64,
    i64,
    String,
    Option<Vec<u8>>,
);

/// Longest `Authorization` header value accepted.
const MAX_AUTH_HEADER: usize = 4096;

impl Subscription {
    fn from_row(r: SubRow) -> Self {
        let list = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_default();
        Self {
            name: r.0,
            url: r.1,
            events: list(&r.2),
            groups: list(&r.3),
            format: Format::parse(&r.4).unwrap_or(Format::Json),
            options: serde_json::from_str(&r.5).unwrap_or_default(),
            ca_pem: r.6,
            wrapped_key: r.7,
            sealed: r.8,
            retry_secs: r.9,
            after_id: r.10,
            created_at: r.11,
            created_by: r.12,
            auth_sealed: r.13,
        }
    }

    /// Whether entry `e` goes to this subscription.
    pub(crate) fn wants(&self, e: &Entry) -> bool {
        e.id > self.after_id
            && self
                .events
                .iter()
                .any(|s| event_matches(s, &e.action, &e.outcome))
            && (self.groups.is_empty() || e.group_names().iter().any(|g| self.groups.contains(g)))
    }

    /// Where deliveries go.
    ///
    /// # Errors
    /// A bad URL or CA (checked when the subscription was added).
    pub(crate) fn endpoint(&self) -> Result<Endpoint, String> {
        let trust = match &self.ca_pem {
            Some(pem) => TrustSpec::CaPem(pem),
            None => TrustSpec::System,
        };
        Endpoint::parse(&self.url, &trust, PlainHttp::LoopbackOnly)
    }

    /// The HMAC key (the secret's text).
    ///
    /// # Errors
    /// The data key does not unwrap or the secret does not open.
    pub(crate) fn secret(&self, keys: &Keyring) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
        let dk = keys.unwrap(PURPOSE, &WrappedKey::from(self.wrapped_key.clone()))?;
        open_sealed(&dk, &aad(&self.name), &self.sealed)
    }

    /// The `Authorization` header's value, if the subscription has one.
    ///
    /// # Errors
    /// The data key does not unwrap or the value does not open.
    pub(crate) fn auth_header(
        &self,
        keys: &Keyring,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, KeyError> {
        let Some(sealed) = &self.auth_sealed else {
            return Ok(None);
        };
        let dk = keys.unwrap(PURPOSE, &WrappedKey::from(self.wrapped_key.clone()))?;
        open_sealed(&dk, &auth_aad(&self.name), sealed).map(Some)
    }

    fn dto(&self, counts: (u64, u64, u64)) -> api::Webhook {
        api::Webhook {
            name: self.name.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            groups: self.groups.clone(),
            format: self.format.as_str().to_owned(),
            jira_project: self.options.jira_project.clone(),
            jira_issue_type: self.options.jira_issue_type.clone(),
            servicenow_category: self.options.servicenow_category.clone(),
            custom_ca: self.ca_pem.is_some(),
            auth_header: self.auth_sealed.is_some(),
            retry_for_secs: u64::try_from(self.retry_secs).unwrap_or(0),
            created_at: rfc3339(self.created_at),
            created_by: self.created_by.clone(),
            pending: counts.0,
            delivered: counts.1,
            dead: counts.2,
        }
    }
}

/// What binds a sealed secret to its subscription.
fn aad(name: &str) -> Vec<u8> {
    format!("jumpgate webhook secret v1:{name}").into_bytes()
}

/// What binds a sealed `Authorization` header value to its subscription.
fn auth_aad(name: &str) -> Vec<u8> {
    format!("jumpgate webhook authorization v1:{name}").into_bytes()
}

fn seal(dk: &crate::keys::DataKey, aad: &[u8], value: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (nonce, ct) = dk.seal(aad, value)?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ct);
    Ok(sealed)
}

fn open_sealed(
    dk: &crate::keys::DataKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
    if sealed.len() < 12 {
        return Err(KeyError::Malformed);
    }
    let (nonce, ct) = sealed.split_at(12);
    dk.open(aad, nonce, ct)
}

/// Checks an `Authorization` header value: what an HTTP header may hold
/// (visible ASCII and spaces), not empty, at most [`MAX_AUTH_HEADER`]
/// characters. The message never repeats the value.
fn validate_auth_header(v: &str) -> Result<(), WebhookError> {
    let bad = |m: &str| Err(WebhookError::Invalid(format!("--auth-header-file: {m}")));
    if v.trim().is_empty() {
        return bad("the value is empty");
    }
    if v.len() > MAX_AUTH_HEADER {
        return bad("at most 4096 characters");
    }
    if !v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return bad("visible ASCII characters and spaces only (one line)");
    }
    Ok(())
}

/// Whether event spec `spec` (`all`, an action, an action family such as
/// `session-open`, each optionally `:outcome`) selects an entry.
pub(crate) fn event_matches(spec: &str, action: &str, outcome: &str) -> bool {
    let names = |s: &str| s == action || action.starts_with(&format!("{s}:"));
    if spec == "all" || names(spec) {
        return true;
    }
    match spec.rsplit_once(':') {
        Some((a, o)) => o == outcome && (a == "all" || names(a)),
        None => false,
    }
}

fn validate_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    if events.is_empty() {
        return Err(WebhookError::Invalid(
            "--events: name at least one audit action (or all)".into(),
        ));
    }
    let mut out = Vec::new();
    for e in events {
        let e = e.trim();
        let ok = !e.is_empty()
            && e.len() <= 64
            && e.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == ':');
        if !ok {
            return Err(WebhookError::Invalid(format!(
                "--events: `{e}` is not an audit action (lowercase letters, digits, '-', optionally :outcome)"
            )));
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_owned());
        }
    }
    Ok(out)
}

/// The counts (pending, delivered, dead) of each subscription's queue.
async fn counts(e: &mut impl Exec) -> Result<HashMap<String, (u64, u64, u64)>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sql!(e, |c| sqlx::query_as(
        "SELECT subscription, state, CAST(COUNT(*) AS BIGINT) FROM webhook_deliveries
         GROUP BY subscription, state"
    )
    .fetch_all(&mut *c)
    .await)?;
    let mut out: HashMap<String, (u64, u64, u64)> = HashMap::new();
    for (s, state, n) in rows {
        let c = out.entry(s).or_default();
        let n = u64::try_from(n).unwrap_or(0);
        match state.as_str() {
            "pending" => c.0 = n,
            "delivered" => c.1 = n,
            _ => c.2 = n,
        }
    }
    Ok(out)
}

/// Every subscription, by name.
pub(crate) async fn list_all(e: &mut impl Exec) -> Result<Vec<Subscription>, sqlx::Error> {
    let rows: Vec<SubRow> = sql!(e, |c| sqlx::query_as(
        "SELECT name, url, events, groups, format, options, ca_pem, wrapped_key, sealed,
                retry_secs, after_id, created_at, created_by, auth_sealed
           FROM webhook_subscriptions ORDER BY name"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().map(Subscription::from_row).collect())
}

/// One subscription.
pub(crate) async fn find(
    e: &mut impl Exec,
    name: &str,
) -> Result<Option<Subscription>, sqlx::Error> {
    let row: Option<SubRow> = sql!(e, |c| sqlx::query_as(
        "SELECT name, url, events, groups, format, options, ca_pem, wrapped_key, sealed,
                retry_secs, after_id, created_at, created_by, auth_sealed
           FROM webhook_subscriptions WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(Subscription::from_row))
}

/// The subscriptions as the API shows them.
pub(crate) async fn list(db: &Store) -> Result<Vec<api::Webhook>, sqlx::Error> {
    let mut c = db.conn().await?;
    let n = counts(&mut c).await?;
    Ok(list_all(&mut c)
        .await?
        .iter()
        .map(|s| s.dto(n.get(&s.name).copied().unwrap_or_default()))
        .collect())
}

/// One subscription as the API shows it, with its queue's counts.
async fn shown(db: &Store, name: &str) -> Result<api::Webhook, WebhookError> {
    let mut c = db.conn().await?;
    let n = counts(&mut c).await?;
    let sub = find(&mut c, name)
        .await?
        .ok_or_else(|| WebhookError::NotFound(name.to_owned()))?;
    Ok(sub.dto(n.get(name).copied().unwrap_or_default()))
}

/// A new secret: its text (`whsec_` and 32 random bytes), its sealed form
/// under a new data key, that key wrapped, and the key (to seal the
/// `Authorization` header with).
fn new_secret(
    keys: &Keyring,
    name: &str,
) -> Result<(String, String, Vec<u8>, crate::keys::DataKey), KeyError> {
    let secret = format!("whsec_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
    let (dk, wrapped) = keys.new_data_key(PURPOSE)?;
    let sealed = seal(&dk, &aad(name), secret.as_bytes())?;
    Ok((secret, wrapped.as_str().to_owned(), sealed, dk))
}

/// Adds a subscription (audited `webhook-add`); answers it with its
/// secret, which is shown this once.
///
/// # Errors
/// Bad input (the message names the option), a name taken, the store.
pub(crate) async fn add(
    st: &AppState,
    req: &api::NewWebhook,
    actor: &str,
) -> Result<api::WebhookSecret, WebhookError> {
    let name = match &req.name {
        Some(n) => {
            ids::validate_name("webhook", n).map_err(WebhookError::Invalid)?;
            if n == "deliveries" {
                return Err(WebhookError::Invalid(
                    "--name: `deliveries` is reserved".into(),
                ));
            }
            n.clone()
        }
        None => format!("wh-{}", crate::events::hex(&random_bytes::<4>())),
    };
    let events = validate_events(&req.events)?;
    let format = Format::parse(req.format.as_deref().unwrap_or("json"))
        .map_err(|e| WebhookError::Invalid(format!("--format: {e}")))?;
    let clean = |o: &Option<String>, what: &str| -> Result<Option<String>, WebhookError> {
        match o.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.len() <= 100 && !v.chars().any(char::is_control) => Ok(Some(v.to_owned())),
            Some(_) => Err(WebhookError::Invalid(format!(
                "--{what}: at most 100 characters, no control characters"
            ))),
        }
    };
    let options = Options {
        jira_project: clean(&req.jira_project, "jira-project")?,
        jira_issue_type: clean(&req.jira_issue_type, "jira-issue-type")?,
        servicenow_category: clean(&req.servicenow_category, "servicenow-category")?,
    };
    if format == Format::Jira && options.jira_project.is_none() {
        return Err(WebhookError::Invalid(
            "--format jira needs --jira-project KEY".into(),
        ));
    }
    let retry = req.retry_for_secs.unwrap_or(DEFAULT_RETRY_SECS);
    if retry == 0 || retry > MAX_RETRY_SECS {
        return Err(WebhookError::Invalid(format!(
            "--retry-for: between 1 second and {} days",
            MAX_RETRY_SECS / 86400
        )));
    }
    let ca = req.ca_pem.clone().filter(|p| !p.trim().is_empty());
    let trust = match &ca {
        Some(pem) => TrustSpec::CaPem(pem),
        None => TrustSpec::System,
    };
    // A plain-http URL needs no trust; check it without loading roots.
    let probe = if req.url.starts_with("http://") && ca.is_none() {
        TrustSpec::System
    } else {
        trust
    };
    if req.url.len() > 2000 {
        return Err(WebhookError::Invalid(
            "--url: at most 2000 characters".into(),
        ));
    }
    Endpoint::parse(&req.url, &probe, PlainHttp::LoopbackOnly)
        .map_err(|e| WebhookError::Invalid(format!("URL: {e}")))?;
    let mut groups: Vec<String> = req.groups.iter().map(|g| g.trim().to_owned()).collect();
    groups.retain(|g| !g.is_empty());
    groups.sort();
    groups.dedup();
    if let Some(a) = &req.auth_header {
        validate_auth_header(a)?;
    }
    let (secret, wrapped, sealed, dk) = new_secret(&st.keys, &name)?;
    let auth_sealed = match &req.auth_header {
        Some(a) => Some(seal(&dk, &auth_aad(&name), a.as_bytes())?),
        None => None,
    };
    drop(dk);
    let now = now_ms();
    let mut w = st.db.write().await?;
    for g in &groups {
        if !crate::agents::groups::exists(&mut w, g).await? {
            return Err(WebhookError::Invalid(format!(
                "--groups: no group named {g}"
            )));
        }
    }
    if find(&mut w, &name).await?.is_some() {
        return Err(WebhookError::NameTaken(name));
    }
    let n: i64 = sql!(w, |c| sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM webhook_subscriptions"
    )
    .fetch_one(&mut *c)
    .await)?;
    if n >= MAX_SUBSCRIPTIONS {
        return Err(WebhookError::Invalid(format!(
            "at most {MAX_SUBSCRIPTIONS} webhook subscriptions"
        )));
    }
    let mut detail = format!(
        "url={} format={} events={}",
        req.url,
        format.as_str(),
        events.join(",")
    );
    if !groups.is_empty() {
        detail.push_str(&format!(" groups={}", groups.join(",")));
    }
    if ca.is_some() {
        detail.push_str(" ca=custom");
    }
    if auth_sealed.is_some() {
        // That there is one, never its value.
        detail.push_str(" authorization=set");
    }
    w.audit(
        AuditEvent::new(actor, AuditAction::WebhookAdd, &name)
            .detail(detail)
            .groups(&groups),
    )
    .await?;
    // It gets the entries after the one that created it.
    let after_id = crate::store::audit::last_id(&mut w).await?;
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    sql!(w, |c| sqlx::query(
        "INSERT INTO webhook_subscriptions (name, url, events, groups, format, options, ca_pem,
             wrapped_key, sealed, retry_secs, after_id, created_at, created_by, auth_sealed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )
    .bind(&name)
    .bind(&req.url)
    .bind(json(&events))
    .bind(json(&groups))
    .bind(format.as_str())
    .bind(serde_json::to_string(&options).unwrap_or_else(|_| "{}".into()))
    .bind(ca.as_deref())
    .bind(&wrapped)
    .bind(&sealed)
    .bind(i64::try_from(retry).unwrap_or(i64::MAX))
    .bind(after_id)
    .bind(now)
    .bind(actor)
    .bind(auth_sealed.as_deref())
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    w.commit().await?;
    st.webhooks.changed();
    let sub = find(&mut st.db.conn().await?, &name)
        .await?
        .ok_or_else(|| WebhookError::NotFound(name.clone()))?;
    Ok(api::WebhookSecret {
        webhook: sub.dto((0, 0, 0)),
        secret,
    })
}

/// Gives a subscription a new secret (audited); the old one stops at once.
/// Its `Authorization` header, if any, is sealed again under the new data
/// key.
///
/// # Errors
/// No such subscription, the keys, the store.
pub(crate) async fn rotate_secret(
    st: &AppState,
    name: &str,
    actor: &str,
) -> Result<api::WebhookSecret, WebhookError> {
    let (secret, wrapped, sealed, dk) = new_secret(&st.keys, name)?;
    let mut w = st.db.write().await?;
    let Some(old) = find(&mut w, name).await? else {
        return Err(WebhookError::NotFound(name.to_owned()));
    };
    let auth_sealed = match old.auth_header(&st.keys)? {
        Some(v) => Some(seal(&dk, &auth_aad(name), &v)?),
        None => None,
    };
    drop(dk);
    let n = sql!(w, |c| sqlx::query(
        "UPDATE webhook_subscriptions SET wrapped_key = $1, sealed = $2, auth_sealed = $3
          WHERE name = $4"
    )
    .bind(&wrapped)
    .bind(&sealed)
    .bind(auth_sealed.as_deref())
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(WebhookError::NotFound(name.to_owned()));
    }
    w.audit(AuditEvent::new(
        actor,
        AuditAction::WebhookRotateSecret,
        name,
    ))
    .await?;
    w.commit().await?;
    Ok(api::WebhookSecret {
        webhook: shown(&st.db, name).await?,
        secret,
    })
}

/// Sets the `Authorization` header a subscription's deliveries carry
/// (`Some`: a new token or account, sealed under the subscription's data
/// key like the one given at `add`), or removes it (`None`). Audited, never
/// the value. Deliveries waiting for a retry are tried again at once: the
/// usual reason to change the header is a receiver that refused the old
/// one.
///
/// # Errors
/// A bad value (the message never repeats it), no such subscription, the
/// keys, the store.
pub(crate) async fn set_auth_header(
    st: &AppState,
    name: &str,
    value: Option<&str>,
    actor: &str,
) -> Result<api::Webhook, WebhookError> {
    if let Some(v) = value {
        validate_auth_header(v)?;
    }
    let mut w = st.db.write().await?;
    store_auth_header(&mut w, &st.keys, name, value, actor, now_ms()).await?;
    w.commit().await?;
    st.webhooks.wake_all();
    shown(&st.db, name).await
}

/// [`set_auth_header`]'s writes, in `w` (`value` already checked): the
/// sealed value, the waiting deliveries due at `now`, the audit entry.
async fn store_auth_header(
    w: &mut WriteTx,
    keys: &Keyring,
    name: &str,
    value: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<(), WebhookError> {
    let Some(sub) = find(w, name).await? else {
        return Err(WebhookError::NotFound(name.to_owned()));
    };
    let auth_sealed = match value {
        Some(v) => {
            let dk = keys.unwrap(PURPOSE, &WrappedKey::from(sub.wrapped_key.clone()))?;
            Some(seal(&dk, &auth_aad(name), v.as_bytes())?)
        }
        None => None,
    };
    sql!(w, |c| sqlx::query(
        "UPDATE webhook_subscriptions SET auth_sealed = $1 WHERE name = $2"
    )
    .bind(auth_sealed.as_deref())
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    let retried = sql!(w, |c| sqlx::query(
        "UPDATE webhook_deliveries SET next_at = $1
          WHERE subscription = $2 AND state = 'pending' AND next_at > $1"
    )
    .bind(now)
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    // That there is one, never its value.
    let detail = match (value.is_some(), sub.auth_sealed.is_some()) {
        (true, true) => "authorization=replaced",
        (true, false) => "authorization=set",
        (false, true) => "authorization=removed",
        (false, false) => "authorization=none",
    };
    w.audit(
        AuditEvent::new(actor, AuditAction::WebhookAuth, name)
            .detail(format!("{detail} retried={retried}")),
    )
    .await?;
    Ok(())
}

/// Removes a subscription and its queue (audited); its worker stops.
///
/// # Errors
/// No such subscription, the store.
pub(crate) async fn remove(st: &AppState, name: &str, actor: &str) -> Result<(), WebhookError> {
    let mut w = st.db.write().await?;
    let dropped = sql!(w, |c| sqlx::query(
        "DELETE FROM webhook_deliveries WHERE subscription = $1"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let n = sql!(w, |c| sqlx::query(
        "DELETE FROM webhook_subscriptions WHERE name = $1"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(WebhookError::NotFound(name.to_owned()));
    }
    w.audit(
        AuditEvent::new(actor, AuditAction::WebhookRemove, name)
            .detail(format!("deliveries dropped={dropped}")),
    )
    .await?;
    w.commit().await?;
    st.webhooks.changed();
    Ok(())
}

type DeliveryRow = (
    i64,
    String,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    String,
    i64,
    Option<i64>,
    i64,
);

fn delivery_dto(r: DeliveryRow) -> api::Delivery {
    let pending = r.4 == "pending";
    api::Delivery {
        id: r.0,
        subscription: r.1,
        entry_id: r.2,
        action: r.3,
        state: r.4,
        attempts: u64::try_from(r.5).unwrap_or(0),
        last_status: r.6.and_then(|s| u16::try_from(s).ok()),
        last_error: r.7,
        created_at: rfc3339(r.8),
        done_at: r.9.map(rfc3339),
        next_at: pending.then(|| rfc3339(r.10)),
    }
}

/// Deliveries, newest first (at most 500): of one subscription or all,
/// dead ones only when `dead`.
///
/// # Errors
/// The store.
pub(crate) async fn deliveries(
    db: &Store,
    subscription: Option<&str>,
    dead: bool,
) -> Result<Vec<api::Delivery>, WebhookError> {
    let mut c = db.conn().await?;
    if let Some(s) = subscription
        && find(&mut c, s).await?.is_none()
    {
        return Err(WebhookError::NotFound(s.to_owned()));
    }
    let rows: Vec<DeliveryRow> = sql!(c, |c| sqlx::query_as(
        "SELECT id, subscription, entry_id, action, state, attempts, last_status, last_error,
                created_at, done_at, next_at
           FROM webhook_deliveries
          WHERE ($1 IS NULL OR subscription = $1) AND ($2 = 0 OR state = 'dead')
          ORDER BY id DESC LIMIT 500"
    )
    .bind(subscription)
    .bind(i64::from(dead))
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().map(delivery_dto).collect())
}

/// Queues dead deliveries again (audited `webhook-replay`): by id, or
/// every dead one (of one subscription when named). Each is tried again
/// at once with a new retry period, before the newer deliveries of its
/// subscription (the queue goes in id order).
///
/// # Errors
/// An id that is not a dead delivery, bad input, the store.
pub(crate) async fn replay(
    st: &AppState,
    req: &api::Replay,
    actor: &str,
) -> Result<u64, WebhookError> {
    // Exactly one of the two.
    if req.all_dead != req.ids.is_empty() {
        return Err(WebhookError::Invalid(
            "give delivery ids or --all-dead (not both)".into(),
        ));
    }
    if req.ids.len() > 1000 {
        return Err(WebhookError::Invalid("at most 1000 ids at once".into()));
    }
    let now = now_ms();
    let mut w = st.db.write().await?;
    if let Some(s) = &req.subscription
        && find(&mut w, s).await?.is_none()
    {
        return Err(WebhookError::NotFound(s.clone()));
    }
    let mut count = 0;
    if req.all_dead {
        count = sql!(w, |c| {
            sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, first_try_at = NULL,
                    next_at = $1, done_at = NULL, last_error = ''
              WHERE state = 'dead' AND ($2 IS NULL OR subscription = $2)"
        )
        .bind(now)
        .bind(req.subscription.as_deref())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })?;
    } else {
        for id in &req.ids {
            let n = sql!(w, |c| {
                sqlx::query(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, first_try_at = NULL,
                        next_at = $1, done_at = NULL, last_error = ''
                  WHERE state = 'dead' AND id = $2 AND ($3 IS NULL OR subscription = $3)"
            )
            .bind(now)
            .bind(id)
            .bind(req.subscription.as_deref())
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
            })?;
            if n != 1 {
                return Err(WebhookError::NoDelivery(*id));
            }
            count += 1;
        }
    }
    let what = if req.all_dead {
        "all-dead".to_owned()
    } else {
        req.ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    w.audit(
        AuditEvent::new(
            actor,
            AuditAction::WebhookReplay,
            req.subscription.as_deref().unwrap_or("*"),
        )
        .detail(format!("deliveries={what} queued={count}")),
    )
    .await?;
    w.commit().await?;
    st.webhooks.wake_all();
    Ok(count)
}

/// Removes delivered deliveries done before `cutoff_ms` (retention:
/// `[retention] webhook_deliveries_days`). Pending and dead ones stay: a
/// dead letter is kept until it is replayed or its subscription removed.
/// Answers how many were removed.
///
/// # Errors
/// The store.
pub(crate) async fn expire_delivered(db: &Store, cutoff_ms: i64) -> Result<u64, sqlx::Error> {
    let mut w = db.write().await?;
    let n = sql!(w, |c| sqlx::query(
        "DELETE FROM webhook_deliveries WHERE state = 'delivered' AND done_at < $1"
    )
    .bind(cutoff_ms)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.commit().await?;
    Ok(n)
}

/// The running workers of this gateway, and what wakes them.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    /// Subscriptions were added or removed.
    changed: Notify,
    workers: Mutex<HashMap<String, (Arc<Notify>, CancellationToken)>>,
}

impl Hub {
    /// Subscriptions changed: the supervisor starts and stops workers.
    pub(crate) fn changed(&self) {
        self.changed.notify_one();
    }

    /// New deliveries: every worker looks at its queue.
    pub(crate) fn wake_all(&self) {
        let w = self
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (n, _) in w.values() {
            n.notify_one();
        }
    }
}

/// The audit chain's consumer: one delivery per entry and subscription
/// that wants it.
struct Taker {
    hub: Arc<Hub>,
}

impl Consumer for Taker {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn job(&self) -> Job {
        Job::Webhooks
    }

    fn take<'a>(&'a self, tx: &'a mut WriteTx, entries: &'a [Entry]) -> TakeFuture<'a> {
        Box::pin(async move {
            let subs = list_all(tx).await?;
            if subs.is_empty() {
                return Ok(());
            }
            let now = now_ms();
            for e in entries {
                for s in subs.iter().filter(|s| s.wants(e)) {
                    let body = formats::body(s.format, &s.options, e);
                    sql!(tx, |c| {
                        sqlx::query(
                        "INSERT INTO webhook_deliveries (subscription, entry_id, action, body, next_at, created_at)
                         VALUES ($1, $2, $3, $4, $5, $5)"
                    )
                    .bind(&s.name)
                    .bind(e.id)
                    .bind(&e.action)
                    .bind(&body)
                    .bind(now)
                    .execute(&mut *c)
                    .await
                    .map(|_| ())
                    })?;
                }
            }
            Ok(())
        })
    }

    fn taken(&self) {
        self.hub.wake_all();
    }
}

/// How often the supervisor looks at the subscriptions unasked (another
/// gateway or an `admin` command may have changed them).
const SUPERVISE_POLL: Duration = Duration::from_secs(5);

/// Runs outbound events until the gateway stops: the audit chain's reader
/// and one worker per subscription (started and stopped as subscriptions
/// come and go).
pub(crate) async fn run(st: AppState) {
    let hub = Arc::clone(&st.webhooks);
    st.tasks.spawn(super::run(
        st.db.clone(),
        Arc::clone(&st.lease),
        Arc::new(Taker {
            hub: Arc::clone(&hub),
        }),
        st.shutdown.clone(),
    ));
    loop {
        let woken = hub.changed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match st.db.conn().await {
            Ok(mut c) => match list_all(&mut c).await {
                Ok(subs) => supervise(&st, &hub, &subs),
                Err(e) => tracing::warn!(error = %e, "cannot list webhook subscriptions"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot list webhook subscriptions"),
        }
        tokio::select! {
            () = st.shutdown.cancelled() => break,
            () = &mut woken => {}
            () = tokio::time::sleep(SUPERVISE_POLL) => {}
        }
    }
}

/// Starts a worker for each new subscription, stops those of removed ones.
fn supervise(st: &AppState, hub: &Hub, subs: &[Subscription]) {
    let mut workers = hub
        .workers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    workers.retain(|name, (_, stop)| {
        let keep = subs.iter().any(|s| &s.name == name);
        if !keep {
            stop.cancel();
        }
        keep
    });
    for s in subs {
        if workers.contains_key(&s.name) {
            continue;
        }
        let wake = Arc::new(Notify::new());
        let stop = st.shutdown.child_token();
        workers.insert(s.name.clone(), (Arc::clone(&wake), stop.clone()));
        st.tasks
            .spawn(worker::run(st.clone(), s.name.clone(), wake, stop));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retention removes delivered rows done before the cutoff; dead
    /// letters and pending deliveries stay whatever their age.
    #[tokio::test]
    async fn old_delivered_rows_expire_while_dead_and_pending_stay() {
        for (db, _lite) in crate::store::tests::engines("webhooks_expire").await {
            let mut w = db.write().await.unwrap();
            sql!(w, |c| sqlx::query(
                "INSERT INTO webhook_subscriptions (name, url, events, format, wrapped_key, sealed,
                     retry_secs, after_id, created_at, created_by)
                 VALUES ('s', 'http://127.0.0.1:1/', '[\"all\"]', 'json', 'k', $1, 60, 0, 0, 'a')"
            )
            .bind(vec![0u8; 20])
            .execute(&mut *c)
            .await
            .map(|_| ()))
            .unwrap();
            for (state, done) in [
                ("delivered", Some(1_000i64)),
                ("delivered", Some(9_000)),
                ("dead", Some(1_000)),
                ("pending", None),
            ] {
                sql!(w, |c| sqlx::query(
                    "INSERT INTO webhook_deliveries (subscription, entry_id, action, body, state,
                         next_at, created_at, done_at)
                     VALUES ('s', 1, 'x', $1, $2, 0, 0, $3)"
                )
                .bind(b"{}".to_vec())
                .bind(state)
                .bind(done)
                .execute(&mut *c)
                .await
                .map(|_| ()))
                .unwrap();
            }
            w.commit().await.unwrap();
            assert_eq!(expire_delivered(&db, 5_000).await.unwrap(), 1);
            assert_eq!(expire_delivered(&db, 5_000).await.unwrap(), 0);
            let left = deliveries(&db, Some("s"), false).await.unwrap();
            let mut states: Vec<&str> = left.iter().map(|d| d.state.as_str()).collect();
            states.sort_unstable();
            assert_eq!(states, ["dead", "delivered", "pending"], "{}", db.engine());
        }
    }

    /// The `Authorization` value opens with its subscription's data key
    /// and name only, never as the signing secret; bad values are refused
    /// without being repeated.
    #[test]
    fn the_authorization_header_is_sealed_to_its_subscription() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::open(dir.path()).unwrap();
        let (_, wrapped, sealed, dk) = new_secret(&keys, "snow").unwrap();
        let auth = seal(&dk, &auth_aad("snow"), b"Basic c25vdzpwdw==").unwrap();
        let sub = Subscription {
            name: "snow".into(),
            url: "https://snow.example.com/".into(),
            events: vec!["all".into()],
            groups: vec![],
            format: Format::ServiceNow,
            options: Options::default(),
            ca_pem: None,
            wrapped_key: wrapped,
            sealed,
            auth_sealed: Some(auth.clone()),
            retry_secs: 60,
            after_id: 0,
            created_at: 0,
            created_by: "a".into(),
        };
        assert_eq!(
            sub.auth_header(&keys).unwrap().unwrap().as_slice(),
            b"Basic c25vdzpwdw=="
        );
        assert!(sub.secret(&keys).unwrap().starts_with(b"whsec_"));
        // Bound to the name, and not the secret.
        let renamed = Subscription {
            name: "other".into(),
            ..sub.clone()
        };
        assert!(renamed.auth_header(&keys).is_err());
        let swapped = Subscription {
            sealed: auth,
            ..sub.clone()
        };
        assert!(swapped.secret(&keys).is_err());
        let none = Subscription {
            auth_sealed: None,
            ..sub
        };
        assert!(none.auth_header(&keys).unwrap().is_none());
        assert!(validate_auth_header("Bearer abc.def").is_ok());
        for bad in ["", "  ", "Bearer a\nb", "Bearer \u{e9}"] {
            let e = validate_auth_header(bad).unwrap_err().to_string();
            assert!(e.starts_with("--auth-header-file: "), "{e}");
            assert!(bad.trim().is_empty() || !e.contains(bad.trim()), "{e}");
        }
        let long = "x".repeat(MAX_AUTH_HEADER + 1);
        assert!(validate_auth_header(&long).is_err());
    }

    /// Setting, replacing and removing a subscription's `Authorization`
    /// header: the stored value opens to the new one (bound to the
    /// subscription), deliveries waiting for a retry become due at once
    /// (delivered and dead ones untouched), each change is audited with
    /// what happened, never the value; an unknown name changes nothing.
    #[tokio::test]
    async fn the_authorization_header_is_set_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::open(dir.path()).unwrap();
        for (db, _lite) in crate::store::tests::engines("webhooks_auth").await {
            let (_, wrapped, sealed, dk) = new_secret(&keys, "snow").unwrap();
            drop(dk);
            let mut w = db.write().await.unwrap();
            sql!(w, |c| {
                sqlx::query(
                "INSERT INTO webhook_subscriptions (name, url, events, format, wrapped_key, sealed,
                     retry_secs, after_id, created_at, created_by)
                 VALUES ('snow', 'http://127.0.0.1:1/', '[\"all\"]', 'json', $1, $2, 60, 0, 0, 'a')"
            )
            .bind(&wrapped)
            .bind(&sealed)
            .execute(&mut *c)
            .await
            .map(|_| ())
            })
            .unwrap();
            for (state, next_at) in [
                ("pending", 9_000_000i64),
                ("pending", 10),
                ("delivered", 9_000_000),
                ("dead", 9_000_000),
            ] {
                sql!(w, |c| sqlx::query(
                    "INSERT INTO webhook_deliveries (subscription, entry_id, action, body, state,
                         next_at, created_at)
                     VALUES ('snow', 1, 'x', $1, $2, $3, 0)"
                )
                .bind(b"{}".to_vec())
                .bind(state)
                .bind(next_at)
                .execute(&mut *c)
                .await
                .map(|_| ()))
                .unwrap();
            }
            w.commit().await.unwrap();
            let engine = db.engine();
            let change = |value: Option<&'static str>, name: &'static str| {
                let (db, keys) = (db.clone(), &keys);
                async move {
                    let mut w = db.write().await.unwrap();
                    let r = store_auth_header(&mut w, keys, name, value, "admin", 1_000).await;
                    if r.is_ok() {
                        w.commit().await.unwrap();
                    }
                    r
                }
            };
            let last_detail = || {
                let db = db.clone();
                async move {
                    let mut c = db.conn().await.unwrap();
                    let (action, detail): (String, String) = sql!(c, |c| sqlx::query_as(
                        "SELECT action, detail FROM events ORDER BY id DESC LIMIT 1"
                    )
                    .fetch_one(&mut *c)
                    .await)
                    .unwrap();
                    format!("{action} {detail}")
                }
            };
            let header = || {
                let db = db.clone();
                let keys = &keys;
                async move {
                    let mut c = db.conn().await.unwrap();
                    let sub = find(&mut c, "snow").await.unwrap().unwrap();
                    sub.auth_header(keys)
                        .unwrap()
                        .map(|v| String::from_utf8(v.to_vec()).unwrap())
                }
            };
            let due = || {
                let db = db.clone();
                async move {
                    let mut c = db.conn().await.unwrap();
                    let rows: Vec<(String, i64)> = sql!(c, |c| sqlx::query_as(
                        "SELECT state, next_at FROM webhook_deliveries ORDER BY id"
                    )
                    .fetch_all(&mut *c)
                    .await)
                    .unwrap();
                    rows
                }
            };

            change(Some("Bearer first-1"), "snow").await.unwrap();
            assert_eq!(
                header().await.as_deref(),
                Some("Bearer first-1"),
                "{engine}"
            );
            assert_eq!(
                last_detail().await,
                "webhook-auth authorization=set retried=1",
                "{engine}"
            );
            assert_eq!(
                due().await,
                [
                    ("pending".to_owned(), 1_000),
                    ("pending".to_owned(), 10),
                    ("delivered".to_owned(), 9_000_000),
                    ("dead".to_owned(), 9_000_000),
                ],
                "{engine}"
            );
            change(Some("Bearer second-2"), "snow").await.unwrap();
            assert_eq!(
                header().await.as_deref(),
                Some("Bearer second-2"),
                "{engine}"
            );
            assert_eq!(
                last_detail().await,
                "webhook-auth authorization=replaced retried=0",
                "{engine}"
            );
            let e = change(Some("Bearer third-3"), "nobody").await.unwrap_err();
            assert!(matches!(e, WebhookError::NotFound(_)), "{e}");
            assert_eq!(
                header().await.as_deref(),
                Some("Bearer second-2"),
                "{engine}"
            );
            change(None, "snow").await.unwrap();
            assert_eq!(header().await, None, "{engine}");
            assert_eq!(
                last_detail().await,
                "webhook-auth authorization=removed retried=0",
                "{engine}"
            );
            let mut c = db.conn().await.unwrap();
            let details: Vec<String> = sql!(c, |c| sqlx::query_scalar(
                "SELECT detail FROM events WHERE action = 'webhook-auth'"
            )
            .fetch_all(&mut *c)
            .await)
            .unwrap();
            assert_eq!(
                details.len(),
                3,
                "{engine}: the refused change is not audited"
            );
            assert!(
                details.iter().all(|d| !d.contains("Bearer")),
                "{engine}: {details:?}"
            );
        }
    }

    #[test]
    fn event_specs_select_actions_families_and_outcomes() {
        assert!(event_matches("all", "login", "ok"));
        assert!(event_matches("lockout", "lockout", "ok"));
        assert!(!event_matches("lockout", "login", "ok"));
        assert!(event_matches("session-open", "session-open:shell", "ok"));
        assert!(event_matches(
            "session-open:shell",
            "session-open:shell",
            "ok"
        ));
        assert!(event_matches(
            "session-open:denied",
            "session-open:shell",
            "denied"
        ));
        assert!(!event_matches(
            "session-open:denied",
            "session-open:shell",
            "ok"
        ));
        assert!(event_matches("all:denied", "login", "denied"));
        assert!(!event_matches("all:denied", "login", "ok"));
        assert!(!event_matches("session", "session-open:shell", "ok"));
    }
}
