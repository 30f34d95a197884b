//! Endpoint privilege management on the endpoint (design
//! `docs/design/14-epm.md` §5): the policy in force, how it arrives, the
//! elevation service, and the events it reports.
//!
//! ```text
//! gateway ── epm-policy ──> fetch (blob storage / gateway) ─ verify ─> store + Engine
//! jumpgate elevate ── unix socket + fds ──> service ── Engine.decide ──> run (root)
//!                                               └── journal (fsync) ── EpmEvents ──> gateway
//! gateway ── epm-decision ──> a waiting approval
//! ```
//!
//! # Layout
//! - [`store`]: `epm/` in the state directory (bundle, trust, version,
//!   code secret).
//! - [`journal`]: the durable event queue.
//! - [`fetch`]: bundle downloads.
//! - [`wire`]: the elevation socket's messages and fd passing.
//! - [`service`]: the socket server and the decision flow.
//! - [`run`]: local users, resolving, hashing and starting programs.
//! - [`client`]: `jumpgate elevate`.

pub mod client;
pub mod fetch;
pub mod journal;
pub mod run;
pub mod service;
pub mod store;
pub mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use jumpgate_epm::bundle::{self, BundleError};
use jumpgate_epm::engine::Engine;
use jumpgate_net::mux::MuxHandle;
use jumpgate_proto::control::Control;
use jumpgate_proto::epm::{ApprovalDecision, EpmEventKind, PolicyAck, PolicyNotice};
use zeroize::Zeroizing;

use self::journal::{Journal, JournalError};
use self::store::{Store, StoreError, Trust};

/// The default elevation socket.
pub const DEFAULT_SOCKET: &str = "/run/jumpgate/elevate.sock";
/// Batches sent and not yet acknowledged, at most.
const WINDOW: usize = 4;

/// EPM settings of the agent (from flags).
#[derive(Clone, Debug)]
pub struct EpmOptions {
    /// The elevation socket; `None`: no elevation service.
    pub socket: Option<PathBuf>,
    /// A private CA for blob storage downloads (PEM).
    pub blob_ca: Option<PathBuf>,
    /// Limit on one bundle download.
    pub fetch_timeout: Duration,
    /// Where local users and groups are read (`/etc`).
    pub etc: PathBuf,
}

impl Default for EpmOptions {
    fn default() -> Self {
        Self {
            socket: Some(PathBuf::from(DEFAULT_SOCKET)),
            blob_ca: None,
            fetch_timeout: fetch::DEFAULT_TIMEOUT,
            etc: PathBuf::from("/etc"),
        }
    }
}

/// Why EPM could not start.
#[derive(Debug, thiserror::Error)]
pub enum EpmError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
}

/// The policy in force.
#[derive(Debug)]
pub struct Active {
    pub engine: Engine,
    pub version: u64,
    pub sha256: String,
    pub groups: Vec<String>,
}

/// EPM's state in a running agent, shared by the connection, the system
/// topics and the elevation service.
pub struct Epm {
    store: Store,
    journal: Mutex<Journal>,
    active: RwLock<Option<Arc<Active>>>,
    code_secret: RwLock<Option<Zeroizing<Vec<u8>>>>,
    /// Approval requests waiting for their `epm-decision`.
    approvals: Mutex<HashMap<String, tokio::sync::oneshot::Sender<ApprovalDecision>>>,
    /// New events or acknowledgements: the sender looks again.
    changed: tokio::sync::Notify,
    /// One notice at a time.
    notices: tokio::sync::Mutex<()>,
    fetcher: RwLock<fetch::Fetcher>,
    pub(crate) opts: EpmOptions,
}

impl std::fmt::Debug for Epm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epm")
            .field("dir", &self.store.dir())
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// Now, RFC 3339 UTC.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Epm {
    /// Opens EPM's state in `state_dir/epm`: the journal, and the last
    /// accepted bundle (verified again; a bundle that no longer verifies is
    /// not used).
    ///
    /// # Errors
    /// The store or journal cannot be opened.
    pub fn open(state_dir: &Path, opts: EpmOptions) -> Result<Arc<Self>, EpmError> {
        let store = Store::open(&state_dir.join("epm"))?;
        let journal = Journal::open(&store.events_dir())?;
        let mut active = None;
        if let Some((bytes, trust)) = store.current()? {
            let accepted = store.accepted()?;
            match bundle::verify(&bytes, &trust.keys, None, accepted) {
                Ok(content) => {
                    store.raise_accepted(content.version)?;
                    tracing::info!(version = content.version, "EPM policy loaded");
                    active = Some(Arc::new(Active {
                        engine: Engine::compile(&content.policy, &trust.groups),
                        version: content.version,
                        sha256: bundle::sha256_hex(&bytes),
                        groups: trust.groups,
                    }));
                }
                Err(e) => {
                    tracing::error!(error = %e, "EPM: the stored policy does not verify; none in force")
                }
            }
        }
        let code_secret = store.code_secret()?;
        let fetcher = fetch::Fetcher {
            gateway: None,
            blob_tls: fetch::blob_tls(opts.blob_ca.as_deref())?,
            timeout: opts.fetch_timeout,
        };
        Ok(Arc::new(Self {
            store,
            journal: Mutex::new(journal),
            active: RwLock::new(active),
            code_secret: RwLock::new(code_secret),
            approvals: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
            notices: tokio::sync::Mutex::new(()),
            fetcher: RwLock::new(fetcher),
            opts,
        }))
    }

    /// The gateway this agent talks to (for relative bundle URLs).
    pub fn set_gateway(&self, gateway: fetch::Gateway) {
        if let Ok(mut f) = self.fetcher.write() {
            f.gateway = Some(gateway);
        }
    }

    /// The policy in force.
    pub fn active(&self) -> Option<Arc<Active>> {
        self.active.read().ok().and_then(|a| a.clone())
    }

    /// The version in force.
    pub fn version(&self) -> Option<u64> {
        self.active().map(|a| a.version)
    }

    pub(crate) fn code_secret(&self) -> Option<Zeroizing<Vec<u8>>> {
        self.code_secret.read().ok().and_then(|s| s.clone())
    }

    /// Records an event durably (fsynced) and wakes the sender.
    ///
    /// # Errors
    /// It could not be written: whatever it reports must not happen.
    pub async fn record(self: &Arc<Self>, kind: EpmEventKind) -> Result<u64, JournalError> {
        let me = Arc::clone(self);
        let seq = tokio::task::spawn_blocking(move || {
            let mut j = me.journal.lock().unwrap_or_else(|p| p.into_inner());
            j.append(now(), kind)
        })
        .await
        .map_err(|e| JournalError::Io {
            path: "(journal task)".into(),
            cause: std::io::Error::other(e.to_string()),
        })??;
        self.changed.notify_waiters();
        Ok(seq)
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The gateway stored the events through `through`.
    pub fn ack(&self, through: u64) {
        if let Err(e) = self.journal().ack(through) {
            tracing::warn!(error = %e, "EPM: saving an acknowledgement failed");
        }
        self.changed.notify_waiters();
    }

    /// Sends the journal to the gateway on this connection, in order, at
    /// most [`WINDOW`] batches ahead of the acknowledgements, until the
    /// connection ends. Everything unacknowledged is sent again on the
    /// next connection.
    pub async fn send_events(self: Arc<Self>, handle: MuxHandle) {
        let mut sent_through = self.journal().acked();
        let mut in_flight: Vec<u64> = Vec::new();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if handle.is_closed() {
                return;
            }
            let batch = {
                let j = self.journal();
                let acked = j.acked();
                in_flight.retain(|last| *last > acked);
                sent_through = sent_through.max(acked);
                if in_flight.len() < WINDOW {
                    j.batch_after(sent_through)
                } else {
                    None
                }
            };
            if let Some(batch) = batch {
                let last = batch.events.last().map_or(sent_through, |e| e.seq);
                handle.send_control(&Control::EpmEvents(batch));
                sent_through = last;
                in_flight.push(last);
                continue;
            }
            tokio::select! {
                () = &mut changed => {}
                () = handle.closed() => return,
                // A batch the gateway never acknowledged (an older gateway,
                // or lost in a reconnect of its own) is sent again.
                () = tokio::time::sleep(Duration::from_secs(30)), if !in_flight.is_empty() => {
                    in_flight.clear();
                    sent_through = self.journal().acked();
                }
            }
        }
    }

    /// Handles an `epm-policy` notice: download, verify, switch.
    pub async fn handle_notice(self: &Arc<Self>, notice: PolicyNotice) -> PolicyAck {
        let _one = self.notices.lock().await;
        if !notice.code_secret.is_empty() {
            match base64::engine::general_purpose::STANDARD.decode(&notice.code_secret) {
                Ok(secret) if !secret.is_empty() => {
                    if let Err(e) = self.store.save_code_secret(&secret) {
                        tracing::warn!(error = %e, "EPM: saving the code secret failed");
                    }
                    if let Ok(mut s) = self.code_secret.write() {
                        *s = Some(Zeroizing::new(secret));
                    }
                }
                _ => tracing::warn!("EPM: the notice's code secret is not base64"),
            }
        }
        let current = self.active();
        let accepted = self.store.accepted().ok().flatten();
        if notice.version == 0 {
            return PolicyAck {
                accepted: current.map(|a| a.version),
                refused: None,
            };
        }
        if let Some(cur) = &current
            && cur.version == notice.version
        {
            if !cur.sha256.eq_ignore_ascii_case(&notice.sha256) {
                return self
                    .refuse(
                        notice.version,
                        Some(cur.version),
                        "same version as the policy in force, other content".into(),
                    )
                    .await;
            }
            if cur.groups != notice.groups {
                self.regroup(cur, &notice);
            }
            return PolicyAck {
                accepted: Some(cur.version),
                refused: None,
            };
        }
        let running = current.as_ref().map(|a| a.version);
        if let Some(a) = accepted
            && notice.version < a
        {
            let why = BundleError::Rollback {
                offered: notice.version,
                accepted: a,
            }
            .to_string();
            return self.refuse(notice.version, running, why).await;
        }
        let fetcher = self
            .fetcher
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let bytes = match fetcher.get(&notice.url, notice.size).await {
            Ok(b) => b,
            Err(e) => return self.refuse(notice.version, running, e.to_string()).await,
        };
        let content = match bundle::verify(&bytes, &notice.keys, Some(&notice.sha256), accepted) {
            Ok(c) => c,
            Err(e) => return self.refuse(notice.version, running, e.to_string()).await,
        };
        if content.version != notice.version {
            let why = format!(
                "the bundle is version {}, the notice announced {}",
                content.version, notice.version
            );
            return self.refuse(notice.version, running, why).await;
        }
        let trust = Trust {
            keys: notice.keys.clone(),
            groups: notice.groups.clone(),
        };
        if let Err(e) = self.store.accept(content.version, &bytes, &trust) {
            return self.refuse(notice.version, running, e.to_string()).await;
        }
        let active = Arc::new(Active {
            engine: Engine::compile(&content.policy, &notice.groups),
            version: content.version,
            sha256: bundle::sha256_hex(&bytes),
            groups: notice.groups,
        });
        if let Ok(mut a) = self.active.write() {
            *a = Some(active);
        }
        tracing::info!(version = content.version, "EPM policy accepted");
        if let Err(e) = self
            .record(EpmEventKind::BundleAccepted {
                version: content.version,
            })
            .await
        {
            tracing::warn!(error = %e, "EPM: recording the accepted bundle failed");
        }
        PolicyAck {
            accepted: Some(content.version),
            refused: None,
        }
    }

    /// Same bundle, other endpoint groups: compile it again for them.
    fn regroup(&self, cur: &Active, notice: &PolicyNotice) {
        let Ok(Some((bytes, trust))) = self.store.current() else {
            return;
        };
        let Ok(content) = bundle::verify(&bytes, &trust.keys, None, None) else {
            return;
        };
        let trust = Trust {
            keys: notice.keys.clone(),
            groups: notice.groups.clone(),
        };
        if let Err(e) = self.store.save_trust(&trust) {
            tracing::warn!(error = %e, "EPM: saving the endpoint groups failed");
        }
        let active = Arc::new(Active {
            engine: Engine::compile(&content.policy, &notice.groups),
            version: cur.version,
            sha256: cur.sha256.clone(),
            groups: notice.groups.clone(),
        });
        if let Ok(mut a) = self.active.write() {
            *a = Some(active);
        }
    }

    async fn refuse(
        self: &Arc<Self>,
        version: u64,
        running: Option<u64>,
        why: String,
    ) -> PolicyAck {
        tracing::warn!(version, %why, "EPM policy refused; the previous one stays");
        if let Err(e) = self
            .record(EpmEventKind::BundleRefused {
                version,
                why: why.clone(),
            })
            .await
        {
            tracing::warn!(error = %e, "EPM: recording the refusal failed");
        }
        PolicyAck {
            accepted: running,
            refused: Some(why),
        }
    }

    /// Handles an `epm-decision`: whether a request was waiting for it.
    pub fn handle_decision(&self, decision: ApprovalDecision) -> bool {
        let waiting = self
            .approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&decision.request);
        match waiting {
            Some(tx) => tx.send(decision).is_ok(),
            None => false,
        }
    }

    /// Registers a request waiting for its decision.
    pub(crate) fn wait_for_decision(
        &self,
        request: &str,
    ) -> tokio::sync::oneshot::Receiver<ApprovalDecision> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request.to_owned(), tx);
        rx
    }

    /// Forgets a request (timed out, or the caller left).
    pub(crate) fn forget_request(&self, request: &str) {
        self.approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(request);
    }

    /// The events not yet acknowledged (tests, diagnostics).
    pub fn pending_events(&self) -> Vec<jumpgate_proto::epm::EpmEvent> {
        self.journal().pending().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use jumpgate_epm::bundle::{BundleContent, SigningKey};
    use jumpgate_epm::policy::Policy;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Serves `body` to every request on loopback; its base URL.
    async fn serve(body: Vec<u8>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut req = vec![0u8; 4096];
                    let _ = s.read(&mut req).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                });
            }
        });
        format!("http://{addr}/epm/bundles/x")
    }

    fn sealed(key: &SigningKey, version: u64) -> Vec<u8> {
        let policy = Policy::from_yaml("default: block\n").unwrap();
        bundle::seal(
            &BundleContent {
                version,
                published_at: "2026-12-02T05:00:00Z".into(),
                published_by: "admin".into(),
                policy,
            },
            key,
        )
    }

    async fn notice_for(key: &SigningKey, bytes: Vec<u8>, version: u64) -> PolicyNotice {
        PolicyNotice {
            version,
            sha256: bundle::sha256_hex(&bytes),
            size: bytes.len() as u64,
            url: serve(bytes).await,
            keys: vec![key.trusted()],
            groups: vec!["linux".into()],
            code_secret: base64::engine::general_purpose::STANDARD.encode([3u8; 32]),
        }
    }

    fn opts() -> EpmOptions {
        EpmOptions {
            socket: None,
            ..EpmOptions::default()
        }
    }

    #[tokio::test]
    async fn notices_switch_policies_and_refuse_rollbacks_and_bad_content() {
        let state = tempfile::tempdir().unwrap();
        let epm = Epm::open(state.path(), opts()).unwrap();
        assert_eq!(epm.version(), None);
        let (key, _) = SigningKey::generate("pk_a").unwrap();

        let ack = epm
            .handle_notice(notice_for(&key, sealed(&key, 2), 2).await)
            .await;
        assert_eq!(
            ack,
            PolicyAck {
                accepted: Some(2),
                refused: None
            }
        );
        assert_eq!(epm.version(), Some(2));
        assert_eq!(epm.code_secret().unwrap().as_slice(), &[3u8; 32]);
        // The same notice again: nothing to do.
        let again = epm
            .handle_notice(notice_for(&key, sealed(&key, 2), 2).await)
            .await;
        assert_eq!(again.accepted, Some(2));

        // Older, signed correctly: refused (rollback), the policy stays.
        let ack = epm
            .handle_notice(notice_for(&key, sealed(&key, 1), 1).await)
            .await;
        assert_eq!(ack.accepted, Some(2));
        assert!(ack.refused.unwrap().contains('1'));
        // Content that does not match the announced hash.
        let mut n = notice_for(&key, sealed(&key, 3), 3).await;
        n.sha256 = bundle::sha256_hex(b"other");
        let ack = epm.handle_notice(n).await;
        assert!(ack.refused.is_some());
        assert_eq!(epm.version(), Some(2));
        // Signed by a key the gateway does not name.
        let (stranger, _) = SigningKey::generate("pk_b").unwrap();
        let mut n = notice_for(&key, sealed(&stranger, 3), 3).await;
        n.keys = vec![key.trusted()];
        let ack = epm.handle_notice(n).await;
        assert!(ack.refused.is_some());

        let kinds: Vec<_> = epm.pending_events().into_iter().map(|e| e.kind).collect();
        assert!(matches!(
            kinds[0],
            EpmEventKind::BundleAccepted { version: 2 }
        ));
        assert_eq!(
            kinds
                .iter()
                .filter(|k| matches!(k, EpmEventKind::BundleRefused { .. }))
                .count(),
            3
        );
        // After a restart, offline: the last good policy, verified again.
        drop(epm);
        let epm = Epm::open(state.path(), opts()).unwrap();
        assert_eq!(epm.version(), Some(2));
        assert_eq!(epm.active().unwrap().groups, ["linux"]);
        // An approval nobody waits for is answered as such.
        assert!(!epm.handle_decision(ApprovalDecision {
            request: "er_nope".into(),
            approved: true,
            by: "t".into(),
            comment: String::new(),
        }));
    }
}
