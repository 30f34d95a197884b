//! Endpoint privilege management, the gateway's side (issue #14; design
//! `docs/design/14-epm.md` §4): the draft policy, signed bundles published
//! through the blob store, notices to agents, their events and the
//! approval requests technicians answer.
//!
//! - [`keys`]: signing keys and site keys under key purpose `policy`.
//! - [`store`]: the domain's rows.
//! - [`notify`]: `epm-policy` notices (publish fan-out, on connect) and
//!   the gateway's signed bundle route.
//! - [`ingest`]: `Control::EpmEvents` → stored once → `Control::EpmAck`.
//! - [`http`]: `/api/v1/epm/…` and `/epm/bundles/{version}`.
//!
//! The policy logic itself (validation, the engine, the bundle format, the
//! offline code) is `jumpgate_epm`, shared with the agent and `jg`.

pub(crate) mod http;
pub(crate) mod ingest;
pub(crate) mod keys;
pub(crate) mod notify;
pub(crate) mod schema;
pub(crate) mod store;
#[cfg(test)]
mod tests;

pub(crate) use keys::{SIGNING_KEYS, SITE_KEYS};

use bytes::Bytes;
use jumpgate_epm::bundle::{self, BundleContent};
use jumpgate_epm::policy::{Policy, Problems};
use tokio::sync::broadcast;

use crate::blobs::{BlobError, BlobKey};
use crate::ids::rfc3339;
use crate::keys::{KeyError, now_ms};
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent};
use store::{BundleRow, RequestRow};

/// Why an EPM operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EpmError {
    /// The policy does not validate (every bad field).
    #[error("the policy is not valid: {0}")]
    Invalid(Problems),
    /// `PUT /policy` named an older revision than the stored one.
    #[error(
        "the policy was changed since revision {given} (it is at {current}): read it again and reapply your change"
    )]
    Stale { given: i64, current: i64 },
    #[error("no endpoint named `{0}`")]
    UnknownEndpoint(String),
    #[error("no elevation request `{0}`")]
    UnknownRequest(String),
    #[error("the request is {0}, no longer pending")]
    NotPending(String),
    #[error("nothing is published yet")]
    NothingPublished,
    #[error("key error: {0}")]
    Keys(#[from] KeyError),
    #[error("blob store: {0}")]
    Blobs(#[from] BlobError),
    #[error("policy bundle: {0}")]
    Bundle(String),
    #[error("stored EPM data is damaged: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Events a slow subscriber of the request stream may fall behind by.
const CAPACITY: usize = 1024;

/// The domain's live state on this gateway: the request stream technicians
/// follow, and the limit on bad signatures at the bundle route.
#[derive(Debug)]
pub(crate) struct Epm {
    requests: broadcast::Sender<RequestRow>,
    pub(crate) bad_signatures: crate::identity::lockout::RateLimiter,
}

impl Default for Epm {
    fn default() -> Self {
        Self {
            requests: broadcast::channel(CAPACITY).0,
            // 20 wrong signatures at once per address, then 1 a second.
            bad_signatures: crate::identity::lockout::RateLimiter::new(20, 60),
        }
    }
}

impl Epm {
    /// A request appeared or changed.
    pub(crate) fn publish(&self, r: RequestRow) {
        let _ = self.requests.send(r);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RequestRow> {
        self.requests.subscribe()
    }
}

/// The blob key of bundle `version`.
pub(crate) fn blob_key(version: u64) -> String {
    format!("epm/bundles/v{version:010}.jgpol")
}

/// The draft (the default policy at revision 0 before the first save).
pub(crate) async fn draft(st: &AppState) -> Result<(Policy, i64, String, i64), EpmError> {
    let mut c = st.db.conn().await?;
    match store::draft(&mut c).await? {
        Some((json, revision, by, at)) => {
            let policy = serde_json::from_str(&json)
                .map_err(|e| EpmError::Corrupt(format!("the stored draft: {e}")))?;
            Ok((policy, revision, by, at))
        }
        None => Ok((Policy::default(), 0, String::new(), 0)),
    }
}

/// Validates and saves the draft if it is still at `revision`; audited.
/// Answers the new revision.
pub(crate) async fn save_draft(
    st: &AppState,
    revision: i64,
    policy: &Policy,
    by: &str,
) -> Result<i64, EpmError> {
    policy.validate().map_err(EpmError::Invalid)?;
    let json = serde_json::to_string(policy).map_err(|e| EpmError::Bundle(e.to_string()))?;
    let mut w = st.db.write().await?;
    let next = store::put_draft(&mut w, revision, &json, by).await?;
    w.audit(
        AuditEvent::new(by, AuditAction::EpmPolicyUpdate, "policy").detail(format!(
            "revision {next}: {} applications, {} rules, default {}",
            policy.applications.len(),
            policy.rules.len(),
            policy.default
        )),
    )
    .await?;
    w.commit().await?;
    Ok(next)
}

/// Publishes the draft: the next site-wide version, sealed with the
/// current signing key, stored in the blob store, recorded and audited.
/// Agents are told afterwards ([`notify::notify_all`]).
///
/// The write transaction is held while the bundle is stored, so two
/// publishes never share a version (or a blob key); publishing is rare and
/// the bundle small.
pub(crate) async fn publish(st: &AppState, by: &str) -> Result<BundleRow, EpmError> {
    let (policy, revision, ..) = draft(st).await?;
    policy.validate().map_err(EpmError::Invalid)?;
    let mut w = st.db.write().await?;
    let version = store::next_version(&mut w).await?;
    let key = keys::current_signing_key(&mut w, &st.keys).await?;
    let now = now_ms();
    let content = BundleContent {
        version,
        published_at: rfc3339(now),
        published_by: by.to_owned(),
        policy,
    };
    let bytes = bundle::seal(&content, &key);
    let row = BundleRow {
        version,
        sha256: bundle::sha256_hex(&bytes),
        size: bytes.len() as u64,
        blob_key: blob_key(version),
        key_id: key.id().to_owned(),
        published_by: by.to_owned(),
        published_at: now,
    };
    st.blobs
        .put(&BlobKey::new(row.blob_key.clone())?, Bytes::from(bytes))
        .await?;
    store::insert_bundle(&mut w, &row).await?;
    w.audit(
        AuditEvent::new(by, AuditAction::EpmPublish, format!("v{version}")).detail(format!(
            "draft revision {revision}, sha256 {}, {} bytes, key {}",
            row.sha256, row.size, row.key_id
        )),
    )
    .await?;
    w.commit().await?;
    tracing::info!(version, sha256 = %row.sha256, key = %row.key_id, "EPM policy published");
    Ok(row)
}

/// Publishes, then tells every connected agent in the background (on the
/// gateway's task tracker). Answers the bundle and how many agents are
/// being told.
pub(crate) async fn publish_and_notify(
    st: &AppState,
    by: &str,
) -> Result<(BundleRow, usize), EpmError> {
    let row = publish(st, by).await?;
    let connected = st.agents.local().len();
    let bg = st.clone();
    st.tasks.spawn(async move {
        match notify::notify_all(&bg).await {
            Ok(n) => tracing::info!(accepted = n, "EPM agents told of the new bundle"),
            Err(e) => tracing::warn!(error = %e, "cannot tell agents of the new bundle"),
        }
    });
    Ok((row, connected))
}

/// A new signing key signs from now on; the previous one stays trusted
/// (and older ones are retired). Audited. Answers the new key's id.
pub(crate) async fn rotate_signing_key(st: &AppState, by: &str) -> Result<String, EpmError> {
    rotate_signing_key_with(&st.db, &st.keys, by).await
}

/// [`rotate_signing_key`] on a store and keyring (`jumpgate admin`).
pub(crate) async fn rotate_signing_key_with(
    db: &crate::store::Store,
    keyring: &crate::keys::Keyring,
    by: &str,
) -> Result<String, EpmError> {
    let mut w = db.write().await?;
    let id = keys::add_signing_key(&mut w, keyring).await?;
    w.audit(AuditEvent::new(by, AuditAction::EpmKeyRotate, &id))
        .await?;
    w.commit().await?;
    Ok(id)
}

/// The policy of a published bundle, as agents get it (read back from the
/// blob store and verified).
pub(crate) async fn published_policy(st: &AppState) -> Result<(Policy, u64), EpmError> {
    let row = store::latest_bundle(&st.db)
        .await?
        .ok_or(EpmError::NothingPublished)?;
    let bytes = read_blob(st, &row).await?;
    let mut c = st.db.conn().await?;
    let mut trusted = keys::trusted(&mut c).await?;
    trusted.extend(keys::all_public(&mut c).await?);
    let content = bundle::verify(&bytes, &trusted, Some(&row.sha256), None)
        .map_err(|e| EpmError::Bundle(e.to_string()))?;
    Ok((content.policy, row.version))
}

/// The bytes of a bundle (bounded by the format's largest size).
pub(crate) async fn read_blob(st: &AppState, row: &BundleRow) -> Result<Vec<u8>, EpmError> {
    use tokio::io::AsyncReadExt;
    let r = st
        .blobs
        .get(&BlobKey::new(row.blob_key.clone())?)
        .await?
        .ok_or_else(|| EpmError::Corrupt(format!("bundle v{} is missing", row.version)))?;
    let mut out = Vec::new();
    r.take(bundle::MAX_SIZE as u64 + 1)
        .read_to_end(&mut out)
        .await
        .map_err(|e| EpmError::Corrupt(e.to_string()))?;
    Ok(out)
}

/// The request as the API shows it.
pub(crate) fn request_dto(
    r: &RequestRow,
    endpoint: &str,
) -> jumpgate_api_types::epm::ElevationRequest {
    jumpgate_api_types::epm::ElevationRequest {
        id: r.id.clone(),
        endpoint: endpoint.to_owned(),
        user: r.username.clone(),
        program: r.program.clone(),
        args: serde_json::from_str(&r.args).unwrap_or_default(),
        sha256: r.sha256.clone(),
        rule: r.rule.clone(),
        reason: r.reason.clone(),
        state: r.state.clone(),
        created_at: rfc3339(r.created_at),
        decided_by: r.decided_by.clone(),
        decided_at: r.decided_at.map(rfc3339),
        comment: r.comment.clone().unwrap_or_default(),
    }
}
