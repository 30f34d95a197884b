//! Telling agents what to install: a [`PackageNotice`] on the `packages`
//! system stream with the tasks of the endpoint's group, to every
//! connected agent of a group after its assignments change (at most
//! [`FANOUT`] at once) and to each agent when it connects; the agent's
//! [`PackageAck`] (results, inventory) is stored. Inventory changes the
//! agent announces (`Control::PackagesChanged`) are pulled with
//! `package-inventory`.
//!
//! A notice carries URLs, never packages: short-lived signed URLs of the
//! blob store (S3 presigned, Azure SAS) the agent downloads from directly,
//! or, for the local store, the gateway's signed route
//! `/packages/{id}/{manifest|deb}?expires=…&sig=…` ([`sign_route`]; HMAC
//! under the site key `package-url` of EPM's key store).

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::StreamExt;
use jumpgate_epm::package::version::DebVersion;
use jumpgate_proto::epm::TrustedKey;
use jumpgate_proto::packages::{
    InventoryReport, InventoryRequest, PackageAck, PackageNotice, PackageRef, PackageTask,
    TaskAction,
};
use jumpgate_proto::system::Topic;

use super::PackageError;
use super::store::{self, PackageRow};
use crate::agents::system;
use crate::blobs::BlobKey;
use crate::ids::AgentId;
use crate::keys::DataKey;
use crate::state::AppState;
use crate::store::sql;

/// Agents told at once after an assignment changes.
pub(crate) const FANOUT: usize = 64;
/// How long a download URL works (a large package on a slow link, retried).
pub(crate) const URL_TTL: Duration = Duration::from_secs(30 * 60);
/// How long an agent may take to fetch, verify and install everything.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long an inventory may take.
const INVENTORY_TIMEOUT: Duration = Duration::from_secs(120);
/// The site key of the download route (EPM's site key store).
pub(crate) const URL_KEY: &str = "package-url";

/// The files of an upload the route serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum File {
    Manifest,
    Deb,
}

impl File {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::Deb => "deb",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "manifest" => Some(Self::Manifest),
            "deb" => Some(Self::Deb),
            _ => None,
        }
    }
}

fn route_message(id: &str, file: File, expires: u64) -> String {
    format!("jumpgate-package/1\n{id}\n{}\n{expires}", file.as_str())
}

/// The gateway route of one file of upload `id`, signed until `expires`
/// (Unix seconds).
pub(crate) fn sign_route(key: &DataKey, id: &str, file: File, expires: u64) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let sig = hmac::sign(&k, route_message(id, file, expires).as_bytes());
    format!(
        "/packages/{id}/{}?expires={expires}&sig={}",
        file.as_str(),
        URL_SAFE_NO_PAD.encode(sig.as_ref())
    )
}

/// Whether `sig` signs (`id`, `file`, `expires`) (constant time) and the
/// link is neither expired nor made for longer than the gateway signs.
pub(crate) fn route_ok(
    key: &DataKey,
    id: &str,
    file: File,
    expires: u64,
    sig: &str,
    now: u64,
) -> bool {
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let good = hmac::verify(&k, route_message(id, file, expires).as_bytes(), &sig).is_ok();
    good && expires >= now && expires <= now + URL_TTL.as_secs() + 60
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the notices of one round share: the trusted keys, the uploads by
/// name and the assignments by group.
pub(crate) struct Plan {
    keys: Vec<TrustedKey>,
    url_key: DataKey,
    uploads: HashMap<String, Vec<PackageRow>>,
    assignments: HashMap<String, Vec<store::AssignmentRow>>,
    /// Signed URLs already made this round, by blob key.
    urls: tokio::sync::Mutex<HashMap<String, String>>,
}

impl Plan {
    /// Reads what the notices need (of `group` only, when given).
    pub(crate) async fn load(st: &AppState, group: Option<&str>) -> Result<Self, PackageError> {
        let mut c = st.db.conn().await?;
        let keys = crate::epm::keys::trusted(&mut c).await?;
        let url_key = crate::epm::keys::site_key(&mut c, &st.keys, URL_KEY).await?;
        let mut assignments: HashMap<String, Vec<store::AssignmentRow>> = HashMap::new();
        for a in store::assignments(&mut c, group).await? {
            assignments.entry(a.0.clone()).or_default().push(a);
        }
        let mut uploads: HashMap<String, Vec<PackageRow>> = HashMap::new();
        for rows in assignments.values() {
            for a in rows {
                if a.2 == TaskAction::Install.as_str() && !uploads.contains_key(&a.1) {
                    uploads.insert(a.1.clone(), store::packages(&mut c, Some(&a.1)).await?);
                }
            }
        }
        Ok(Self {
            keys,
            url_key,
            uploads,
            assignments,
            urls: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn has_tasks(&self, group: &str) -> bool {
        self.assignments.get(group).is_some_and(|a| !a.is_empty())
    }

    async fn url(
        &self,
        st: &AppState,
        id: &str,
        key: &str,
        file: File,
    ) -> Result<String, PackageError> {
        let mut urls = self.urls.lock().await;
        if let Some(u) = urls.get(key) {
            return Ok(u.clone());
        }
        let blob = BlobKey::new(key.to_owned())?;
        let url = match st
            .blobs
            .signed_url(http::Method::GET, &blob, URL_TTL)
            .await?
        {
            Some(u) => u,
            None => sign_route(&self.url_key, id, file, unix_now() + URL_TTL.as_secs()),
        };
        urls.insert(key.to_owned(), url.clone());
        Ok(url)
    }

    /// The notice for an endpoint of `group`.
    pub(crate) async fn notice(
        &self,
        st: &AppState,
        group: &str,
        inventory_since: Option<u64>,
    ) -> Result<PackageNotice, PackageError> {
        let mut tasks = Vec::new();
        for (_, name, action, pinned, _, _) in self.assignments.get(group).into_iter().flatten() {
            if action == TaskAction::Remove.as_str() {
                tasks.push(PackageTask {
                    name: name.clone(),
                    action: TaskAction::Remove,
                    version: None,
                    candidates: Vec::new(),
                });
                continue;
            }
            let uploads = self
                .uploads
                .get(name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let Some(version) = pinned.clone().or_else(|| super::newest(uploads)) else {
                // Deleted meanwhile: nothing to install.
                continue;
            };
            let want = DebVersion::parse(&version).ok();
            let mut candidates = Vec::new();
            for r in uploads
                .iter()
                .filter(|r| want.is_some() && DebVersion::parse(&r.version).ok() == want)
            {
                candidates.push(PackageRef {
                    id: r.id.clone(),
                    architecture: r.architecture.clone(),
                    sha256: r.sha256.clone(),
                    size: r.size,
                    manifest_url: self.url(st, &r.id, &r.manifest_key, File::Manifest).await?,
                    manifest_sha256: r.manifest_sha256.clone(),
                    url: self.url(st, &r.id, &r.blob_key, File::Deb).await?,
                });
            }
            tasks.push(PackageTask {
                name: name.clone(),
                action: TaskAction::Install,
                version: Some(version),
                candidates,
            });
        }
        Ok(PackageNotice {
            keys: self.keys.clone(),
            tasks,
            inventory_since,
        })
    }
}

/// Attempts at a notice an agent did not answer (the first and the
/// retries).
pub(crate) const ATTEMPTS: u32 = 5;
/// The first retry's delay; doubled each time, at most [`RETRY_MAX`].
pub(crate) const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Sends the notice to one agent and stores its answer. An agent that did
/// not answer (the stream failed, or the answer was unreadable) is sent
/// the notice again with backoff ([`RETRY_FIRST`] doubling, up to
/// [`ATTEMPTS`] in all), rebuilt from the assignments then in force, for
/// as long as it stays connected here and the gateway runs.
pub(crate) async fn notify_one(
    st: &AppState,
    plan: &Plan,
    agent: &AgentId,
    group: &str,
) -> Option<PackageAck> {
    if let Some(ack) = try_notify(st, plan, agent, group).await {
        return Some(ack);
    }
    let mut wait = RETRY_FIRST;
    for attempt in 2..=ATTEMPTS {
        tokio::select! {
            () = st.shutdown.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RETRY_MAX);
        if !st.agents.local().ids().contains(agent) {
            // Gone: it is told again when it connects.
            return None;
        }
        let plan = match Plan::load(st, Some(group)).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(endpoint_id = %agent, error = %e, "cannot plan package notices");
                continue;
            }
        };
        if !plan.has_tasks(group) {
            return None;
        }
        tracing::info!(endpoint_id = %agent, attempt, "package notice sent again");
        if let Some(ack) = try_notify(st, &plan, agent, group).await {
            return Some(ack);
        }
    }
    tracing::warn!(endpoint_id = %agent, attempts = ATTEMPTS, "package notice never acknowledged; the endpoint is told again when it reconnects or the assignments change");
    None
}

/// One notice to one agent, and its answer stored.
async fn try_notify(
    st: &AppState,
    plan: &Plan,
    agent: &AgentId,
    group: &str,
) -> Option<PackageAck> {
    let since = store::inventory_revision(&st.db, agent.as_str())
        .await
        .ok()
        .flatten();
    let notice = match plan.notice(st, group, since).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(endpoint_id = %agent, error = %e, "cannot build a package notice");
            return None;
        }
    };
    if let Err(e) = store::record_pending(&st.db, agent.as_str(), &notice.tasks).await {
        tracing::warn!(endpoint_id = %agent, error = %e, "cannot record package tasks as pending");
    }
    let payload = Bytes::from(serde_json::to_vec(&notice).unwrap_or_default());
    let reply = system::send(
        st.agents.as_ref(),
        agent,
        Topic::Packages,
        payload,
        ACK_TIMEOUT,
    )
    .await
    .and_then(system::SystemReply::ok);
    let ack: PackageAck = match reply.map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::info!(endpoint_id = %agent, error = %e, "unreadable package acknowledgement");
            return None;
        }
        Err(e) => {
            tracing::info!(endpoint_id = %agent, error = %e, "package notice not acknowledged");
            return None;
        }
    };
    if let Err(e) = store::record_results(&st.db, agent.as_str(), &ack.results).await {
        tracing::warn!(endpoint_id = %agent, error = %e, "cannot record package results");
    }
    if let Some(report) = &ack.inventory {
        store_inventory(st, agent, since, report).await;
    }
    Some(ack)
}

async fn store_inventory(
    st: &AppState,
    agent: &AgentId,
    since: Option<u64>,
    report: &InventoryReport,
) {
    match store::apply_inventory(&st.db, agent.as_str(), since, report).await {
        Ok(true) => {}
        // A diff from a revision the gateway no longer holds: all of it.
        Ok(false) => {
            Box::pin(pull_inventory(st.clone(), agent.clone(), None)).await;
        }
        Err(e) => tracing::warn!(endpoint_id = %agent, error = %e, "cannot store an inventory"),
    }
}

/// Asks an agent for its inventory (a diff from what the gateway holds
/// when `since` is `Some`) and stores it.
pub(crate) async fn pull_inventory(st: AppState, agent: AgentId, since: Option<u64>) {
    let req = InventoryRequest { since };
    let payload = Bytes::from(serde_json::to_vec(&req).unwrap_or_default());
    let reply = system::send(
        st.agents.as_ref(),
        &agent,
        Topic::PackageInventory,
        payload,
        INVENTORY_TIMEOUT,
    )
    .await
    .and_then(system::SystemReply::ok);
    match reply.map(|b| serde_json::from_slice::<InventoryReport>(&b)) {
        Ok(Ok(report)) => {
            if since.is_none() && !report.full {
                tracing::info!(endpoint_id = %agent, "a diff where the full inventory was asked for");
                return;
            }
            store_inventory(&st, &agent, since, &report).await;
        }
        Ok(Err(e)) => tracing::info!(endpoint_id = %agent, error = %e, "unreadable inventory"),
        Err(e) => tracing::info!(endpoint_id = %agent, error = %e, "no inventory"),
    }
}

/// The agent announced inventory `revision`: fetch the change unless the
/// gateway holds it already.
pub(crate) async fn on_changed(st: AppState, agent: AgentId, revision: u64) {
    let held = store::inventory_revision(&st.db, agent.as_str())
        .await
        .ok()
        .flatten();
    if held == Some(revision) {
        return;
    }
    pull_inventory(st, agent, held).await;
}

/// Tells every connected agent of `group` (all groups: `None`) its tasks,
/// [`FANOUT`] at a time. Answers how many answered.
pub(crate) async fn notify_group(
    st: &AppState,
    group: Option<&str>,
) -> Result<usize, PackageError> {
    let connected = st.agents.local().ids();
    if connected.is_empty() {
        return Ok(0);
    }
    let plan = Plan::load(st, group).await?;
    let groups = groups_of(st).await?;
    let answered = futures_util::stream::iter(connected)
        .filter_map(|id| {
            let g = groups
                .get(id.as_str())
                .filter(|g| group.is_none_or(|want| want == g.as_str()))
                .cloned();
            async move { g.map(|g| (id, g)) }
        })
        .map(|(id, g)| {
            let plan = &plan;
            async move { notify_one(st, plan, &id, &g).await }
        })
        .buffer_unordered(FANOUT)
        .filter(|a| {
            let ok = a.is_some();
            async move { ok }
        })
        .count()
        .await;
    Ok(answered)
}

/// Connected agents of `group`.
pub(crate) async fn connected_in(st: &AppState, group: &str) -> Result<usize, PackageError> {
    let groups = groups_of(st).await?;
    Ok(st
        .agents
        .local()
        .ids()
        .iter()
        .filter(|id| groups.get(id.as_str()).is_some_and(|g| g == group))
        .count())
}

async fn groups_of(st: &AppState) -> Result<HashMap<String, String>, sqlx::Error> {
    let mut c = st.db.conn().await?;
    let rows: Vec<(String, String)> = sql!(c, |c| sqlx::query_as(
        "SELECT id, group_name FROM endpoints WHERE revoked_at IS NULL"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().collect())
}

/// An agent connected: tell it its group's tasks (it may have been offline
/// when they changed), or else just fetch its inventory. Runs on the
/// connection's task tracker.
pub(crate) async fn on_connect(st: AppState, agent: AgentId, group: String) {
    let plan = match Plan::load(&st, Some(&group)).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(endpoint_id = %agent, error = %e, "cannot plan package notices");
            return;
        }
    };
    if plan.has_tasks(&group) {
        notify_one(&st, &plan, &agent, &group).await;
    } else {
        let since = store::inventory_revision(&st.db, agent.as_str())
            .await
            .ok()
            .flatten();
        pull_inventory(st, agent, since).await;
    }
}
