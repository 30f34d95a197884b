//! Telling agents about the current bundle: a [`PolicyNotice`] on the
//! `epm-policy` system stream, to every connected agent after a publish
//! (at most [`FANOUT`] at once) and to each agent when it connects (so an
//! agent that was offline catches up). The agent's [`PolicyAck`] is kept
//! in `epm_agents`.
//!
//! The notice carries a URL, never the bundle: a short-lived signed URL
//! of the blob store (S3, Azure) the agent downloads from directly, or,
//! for the local store, the gateway's signed route
//! `/epm/bundles/{version}?expires=…&sig=…` ([`sign_route`]).

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::StreamExt;
use jumpgate_proto::epm::{PolicyAck, PolicyNotice, TrustedKey};
use jumpgate_proto::system::Topic;

use super::EpmError;
use super::keys;
use super::store::{self, BundleRow};
use crate::agents::system;
use crate::blobs::BlobKey;
use crate::ids::AgentId;
use crate::keys::DataKey;
use crate::state::AppState;
use crate::store::sql;

/// Agents notified at once after a publish.
pub(crate) const FANOUT: usize = 64;
/// How long a download URL works.
pub(crate) const URL_TTL: Duration = Duration::from_secs(5 * 60);
/// How long an agent may take to fetch, verify and acknowledge a bundle.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(120);

/// What every notice of one bundle shares.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) bundle: BundleRow,
    pub(crate) url: String,
    pub(crate) keys: Vec<TrustedKey>,
    code_key: std::sync::Arc<DataKey>,
}

/// The message the gateway's route signature covers.
fn route_message(version: u64, expires: u64) -> String {
    format!("jumpgate-epm-bundle/1\n{version}\n{expires}")
}

/// The gateway route of bundle `version`, signed until `expires` (Unix
/// seconds).
pub(crate) fn sign_route(key: &DataKey, version: u64, expires: u64) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let sig = hmac::sign(&k, route_message(version, expires).as_bytes());
    format!(
        "/epm/bundles/{version}?expires={expires}&sig={}",
        URL_SAFE_NO_PAD.encode(sig.as_ref())
    )
}

/// Whether `sig` is the route's signature of (`version`, `expires`)
/// (constant time) and `expires` is not past `now` (Unix seconds).
pub(crate) fn route_ok(key: &DataKey, version: u64, expires: u64, sig: &str, now: u64) -> bool {
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    // hmac::verify compares in constant time.
    let good = hmac::verify(&k, route_message(version, expires).as_bytes(), &sig).is_ok();
    // A URL made for far longer than the gateway signs is refused too.
    good && expires >= now && expires <= now + URL_TTL.as_secs() + 60
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The shared part of the notices of the latest bundle; `None` when
/// nothing is published.
pub(crate) async fn shared(st: &AppState) -> Result<Option<Shared>, EpmError> {
    let Some(bundle) = store::latest_bundle(&st.db).await? else {
        return Ok(None);
    };
    let mut c = st.db.conn().await?;
    let trusted = keys::trusted(&mut c).await?;
    let code_key = keys::site_key(&mut c, &st.keys, keys::CODE_KEY).await?;
    let blob = BlobKey::new(bundle.blob_key.clone())?;
    let url = match st
        .blobs
        .signed_url(http::Method::GET, &blob, URL_TTL)
        .await?
    {
        Some(u) => u,
        None => {
            let key = keys::site_key(&mut c, &st.keys, keys::URL_KEY).await?;
            sign_route(&key, bundle.version, unix_now() + URL_TTL.as_secs())
        }
    };
    Ok(Some(Shared {
        bundle,
        url,
        keys: trusted,
        code_key: std::sync::Arc::new(code_key),
    }))
}

impl Shared {
    /// The notice for endpoint `agent` of `group`.
    pub(crate) fn notice(&self, agent: &AgentId, group: &str) -> PolicyNotice {
        let secret = jumpgate_epm::code::endpoint_secret(self.code_key.as_bytes(), agent.as_str());
        PolicyNotice {
            version: self.bundle.version,
            sha256: self.bundle.sha256.clone(),
            size: self.bundle.size,
            url: self.url.clone(),
            keys: self.keys.clone(),
            groups: vec![group.to_owned()],
            code_secret: base64::engine::general_purpose::STANDARD.encode(secret),
        }
    }
}

/// Sends the notice to one agent and records its answer. Answers the
/// acknowledgement (`None`: no usable answer; logged).
pub(crate) async fn notify_one(
    st: &AppState,
    shared: &Shared,
    agent: &AgentId,
    group: &str,
) -> Option<PolicyAck> {
    let notice = shared.notice(agent, group);
    let payload = match serde_json::to_vec(&notice) {
        Ok(p) => Bytes::from(p),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a policy notice");
            return None;
        }
    };
    let reply = system::send(
        st.agents.as_ref(),
        agent,
        Topic::EpmPolicy,
        payload,
        ACK_TIMEOUT,
    )
    .await
    .and_then(system::SystemReply::ok);
    let ack = match reply {
        Ok(body) => match serde_json::from_slice::<PolicyAck>(&body) {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(endpoint_id = %agent, error = %e, "unreadable policy acknowledgement");
                return None;
            }
        },
        Err(e) => {
            tracing::info!(endpoint_id = %agent, error = %e, "policy notice not acknowledged");
            return None;
        }
    };
    if let Err(e) = store::record_ack(&st.db, agent.as_str(), &ack).await {
        tracing::warn!(endpoint_id = %agent, error = %e, "cannot record a policy acknowledgement");
    }
    Some(ack)
}

/// Notifies every agent connected to this gateway of the latest bundle,
/// [`FANOUT`] at a time. Answers how many acknowledged it (accepted it).
pub(crate) async fn notify_all(st: &AppState) -> Result<usize, EpmError> {
    let Some(shared) = shared(st).await? else {
        return Ok(0);
    };
    let connected = st.agents.local().ids();
    if connected.is_empty() {
        return Ok(0);
    }
    let groups = groups_of(st).await?;
    let version = shared.bundle.version;
    let accepted = futures_util::stream::iter(connected)
        .filter_map(|id| {
            let g = groups.get(id.as_str()).cloned();
            async move { g.map(|g| (id, g)) }
        })
        .map(|(id, group)| {
            let shared = &shared;
            async move { notify_one(st, shared, &id, &group).await }
        })
        .buffer_unordered(FANOUT)
        .filter(|ack| {
            let ok = ack.as_ref().is_some_and(|a| a.accepted == Some(version));
            async move { ok }
        })
        .count()
        .await;
    Ok(accepted)
}

/// Every endpoint's group, by agent id.
async fn groups_of(
    st: &AppState,
) -> Result<std::collections::HashMap<String, String>, sqlx::Error> {
    let mut c = st.db.conn().await?;
    let rows: Vec<(String, String)> = sql!(c, |c| sqlx::query_as(
        "SELECT id, group_name FROM endpoints WHERE revoked_at IS NULL"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().collect())
}

/// An agent connected: tell it the current bundle (nothing when none is
/// published). Runs on the connection's task tracker.
pub(crate) async fn on_connect(st: AppState, agent: AgentId, group: String) {
    match shared(&st).await {
        Ok(Some(shared)) => {
            notify_one(&st, &shared, &agent, &group).await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(endpoint_id = %agent, error = %e, "cannot build a policy notice"),
    }
}
