//! The Package Manager on the endpoint (issue #15): the gateway's
//! `packages` notice says which packages this endpoint should have; for
//! each task the agent checks whether it is already so (nothing to do),
//! downloads the signed manifest and the `.deb` **directly from blob
//! storage** (or the gateway's signed route), verifies the manifest's
//! signature (by a key the gateway connection told it to trust), that it
//! names the package and version asked for, and the `.deb`'s SHA-256 and
//! size — all **before touching the system** — then installs it with
//! `apt-get install ./FILE` / `dpkg -i FILE` or removes it with
//! `dpkg -r`, and answers with the installer's output.
//!
//! What a failed install leaves: a package that was not installed before
//! is removed again (`dpkg -r`), so the system is as it was. A failed
//! upgrade is unwound by dpkg itself while unpacking; when it failed later
//! (configuring) the previous version is installed again from the copy
//! the agent kept of it (`packages/cache/`), when it has one; otherwise
//! the package stays as dpkg left it and the result says so.
//!
//! Downloads and verification are retried with backoff (a blob store
//! hiccup, a link that was being replaced); the installer is not (its
//! failure is an answer).
//!
//! Inventory: `dpkg-query` after every notice, and whenever dpkg's status
//! file changes (its modification time and size are polled), with a
//! revision; the gateway is told of a change (`Control::PackagesChanged`)
//! and asks for the diff.
//!
//! - [`dpkg`]: running dpkg / dpkg-query on the system or a private root.

pub mod dpkg;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jumpgate_epm::package::manifest;
use jumpgate_epm::package::version::DebVersion;
use jumpgate_net::mux::MuxHandle;
use jumpgate_proto::control::Control;
use jumpgate_proto::epm::TrustedKey;
use jumpgate_proto::packages::{
    InventoryReport, InventoryRequest, PackageAck, PackageNotice, PackageRef, PackageTask,
    TaskAction, TaskOutcome, TaskResult,
};

use self::dpkg::{Dpkg, Installed};
use crate::epm::fetch::Fetcher;

/// Package Manager settings of the agent (from flags).
#[derive(Clone, Debug)]
pub struct PackageOptions {
    /// The root dpkg works on: `/`, or a private directory (tests and
    /// benchmarks: `dpkg --root`, so this machine's packages are never
    /// touched).
    pub root: PathBuf,
    /// How often dpkg's status file is looked at for changes.
    pub poll: Duration,
    /// Download and verification attempts per task.
    pub attempts: u32,
    /// The first retry's delay; doubles each time.
    pub backoff: Duration,
    /// Limit on one download.
    pub fetch_timeout: Duration,
}

impl Default for PackageOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            poll: Duration::from_secs(30),
            attempts: 3,
            backoff: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// The inventory as last read, and the one before (for diffs).
#[derive(Debug, Default)]
struct Inventory {
    revision: u64,
    current: Installed,
    previous: Option<(u64, Installed)>,
    /// dpkg's status file as last seen: (modified, size).
    seen: Option<(std::time::SystemTime, u64)>,
}

/// The Package Manager's state in a running agent.
#[derive(Debug)]
pub struct Packages {
    dir: PathBuf,
    dpkg: Dpkg,
    opts: PackageOptions,
    fetcher: RwLock<Fetcher>,
    /// One notice at a time.
    busy: tokio::sync::Mutex<()>,
    inventory: Mutex<Inventory>,
    arch: tokio::sync::OnceCell<Option<String>>,
}

/// Why the Package Manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error("package state in {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
}

/// Why a download was refused (retried).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("download failed: {0}")]
    Fetch(#[from] crate::epm::fetch::FetchError),
    #[error("{0}")]
    Manifest(#[from] manifest::ManifestError),
    #[error("the manifest does not match the task: {0}")]
    WrongManifest(String),
    #[error("the package's SHA-256 is {got}, but its signed manifest says {expected}")]
    Hash { expected: String, got: String },
    #[error("the package is {got} bytes, but its signed manifest says {expected}")]
    Size { expected: u64, got: u64 },
}

impl Packages {
    /// Opens the state in `state_dir/packages` and prepares a private root.
    ///
    /// # Errors
    /// The directories cannot be made.
    pub fn open(
        state_dir: &Path,
        opts: PackageOptions,
        fetcher: Fetcher,
    ) -> Result<Arc<Self>, PackagesError> {
        let dir = state_dir.join("packages");
        let io = |p: &Path| {
            let path = p.display().to_string();
            move |cause| PackagesError::Io { path, cause }
        };
        std::fs::create_dir_all(dir.join("cache")).map_err(io(&dir))?;
        let dpkg = Dpkg::new(&opts.root);
        dpkg.prepare().map_err(io(&opts.root))?;
        // A restarted agent cannot know what changed while it was down:
        // a new revision, and no diff base.
        let revision = std::fs::read_to_string(dir.join("revision"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let me = Arc::new(Self {
            dir,
            dpkg,
            opts,
            fetcher: RwLock::new(fetcher),
            busy: tokio::sync::Mutex::new(()),
            inventory: Mutex::new(Inventory {
                revision,
                ..Inventory::default()
            }),
            arch: tokio::sync::OnceCell::new(),
        });
        me.save_revision(revision);
        Ok(me)
    }

    fn save_revision(&self, revision: u64) {
        if let Err(e) = jumpgate_net::fs::write_atomic(
            &self.dir.join("revision"),
            format!("{revision}\n").as_bytes(),
            0o600,
        ) {
            tracing::warn!(error = %e, "packages: cannot save the inventory revision");
        }
    }

    fn fetcher(&self) -> Fetcher {
        let mut f = self
            .fetcher
            .read()
            .map(|f| f.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        f.timeout = self.opts.fetch_timeout;
        f
    }

    async fn arch(&self) -> Option<String> {
        self.arch
            .get_or_init(|| async { self.dpkg.architecture().await })
            .await
            .clone()
    }

    /// Reads the inventory; answers its revision (raised when it changed).
    pub async fn refresh(&self) -> u64 {
        let meta = std::fs::metadata(self.dpkg.status_file())
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let now = match self.dpkg.installed().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "packages: no inventory");
                return self.lock_inventory().revision;
            }
        };
        let mut inv = self.lock_inventory();
        inv.seen = meta;
        if inv.current != now {
            let old = std::mem::replace(&mut inv.current, now);
            let prev = inv.revision;
            inv.previous = Some((prev, old));
            inv.revision += 1;
            let r = inv.revision;
            drop(inv);
            self.save_revision(r);
            return r;
        }
        inv.revision
    }

    fn lock_inventory(&self) -> std::sync::MutexGuard<'_, Inventory> {
        self.inventory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The inventory for a gateway that holds revision `since`.
    pub async fn report(&self, since: Option<u64>) -> InventoryReport {
        self.refresh().await;
        let inv = self.lock_inventory();
        if since == Some(inv.revision) {
            return InventoryReport {
                revision: inv.revision,
                full: false,
                packages: Vec::new(),
                removed: Vec::new(),
            };
        }
        if let Some((prev_rev, prev)) = &inv.previous
            && since == Some(*prev_rev)
        {
            let packages = inv
                .current
                .iter()
                .filter(|(k, v)| prev.get(*k) != Some(*v))
                .map(
                    |((name, architecture), version)| jumpgate_proto::packages::InstalledPackage {
                        name: name.clone(),
                        version: version.clone(),
                        architecture: architecture.clone(),
                    },
                )
                .collect();
            let removed = prev
                .keys()
                .filter(|k| !inv.current.contains_key(*k))
                .cloned()
                .collect();
            return InventoryReport {
                revision: inv.revision,
                full: false,
                packages,
                removed,
            };
        }
        InventoryReport {
            revision: inv.revision,
            full: true,
            packages: dpkg::as_list(&inv.current),
            removed: Vec::new(),
        }
    }

    /// Answers `package-inventory`.
    pub async fn handle_inventory(&self, req: InventoryRequest) -> InventoryReport {
        self.report(req.since).await
    }

    /// Watches dpkg's status file while the connection lasts and tells the
    /// gateway when the inventory changed.
    pub async fn watch(self: Arc<Self>, handle: MuxHandle) {
        loop {
            tokio::select! {
                () = handle.closed() => return,
                () = tokio::time::sleep(self.opts.poll) => {}
            }
            let meta = std::fs::metadata(self.dpkg.status_file())
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            let seen = self.lock_inventory().seen;
            if meta == seen {
                continue;
            }
            let before = self.lock_inventory().revision;
            let now = self.refresh().await;
            if now != before {
                tracing::info!(revision = now, "packages: the inventory changed");
                handle.send_control(&Control::PackagesChanged { revision: now });
            }
        }
    }

    /// Handles a `packages` notice: every task in turn, then the inventory.
    pub async fn handle_notice(self: &Arc<Self>, notice: PackageNotice) -> PackageAck {
        let _one = self.busy.lock().await;
        let mut results = Vec::with_capacity(notice.tasks.len());
        for task in &notice.tasks {
            let r = self.task(&notice.keys, task).await;
            tracing::info!(
                package = %r.name,
                action = r.action.as_str(),
                outcome = r.outcome.as_str(),
                version = ?r.version,
                message = %r.message,
                "package task"
            );
            results.push(r);
        }
        let inventory = Some(self.report(notice.inventory_since).await);
        PackageAck { results, inventory }
    }

    async fn task(&self, keys: &[TrustedKey], task: &PackageTask) -> TaskResult {
        let installed = self.dpkg.version_of(&task.name).await;
        let mut result = TaskResult {
            name: task.name.clone(),
            action: task.action,
            version: installed.clone().ok().flatten(),
            outcome: TaskOutcome::Unchanged,
            message: String::new(),
            output: String::new(),
            attempts: 0,
        };
        let installed = match installed {
            Ok(v) => v,
            Err(e) => {
                result.outcome = TaskOutcome::Failed;
                result.message = e;
                return result;
            }
        };
        match task.action {
            TaskAction::Remove => {
                if installed.is_none() {
                    result.message = "not installed".into();
                    return result;
                }
                let ran = self.dpkg.remove(&task.name).await;
                result.output = ran.output;
                result.version = self.dpkg.version_of(&task.name).await.ok().flatten();
                if ran.ok {
                    result.outcome = TaskOutcome::Removed;
                    result.message = "removed".into();
                    self.forget_cached(&task.name);
                } else {
                    result.outcome = TaskOutcome::Failed;
                    result.message = "dpkg -r failed".into();
                }
                result
            }
            TaskAction::Install => self.install(keys, task, installed, result).await,
        }
    }

    async fn install(
        &self,
        keys: &[TrustedKey],
        task: &PackageTask,
        installed: Option<String>,
        mut result: TaskResult,
    ) -> TaskResult {
        let Some(want) = task.version.clone() else {
            result.outcome = TaskOutcome::Refused;
            result.message = "no version to install".into();
            return result;
        };
        let same = |v: &str| matches!((DebVersion::parse(v), DebVersion::parse(&want)), (Ok(a), Ok(b)) if a == b);
        if installed.as_deref().is_some_and(same) {
            result.message = format!("{want} is installed");
            return result;
        }
        let arch = self.arch().await.unwrap_or_default();
        let Some(cand) = task
            .candidates
            .iter()
            .find(|c| c.architecture == arch)
            .or_else(|| task.candidates.iter().find(|c| c.architecture == "all"))
        else {
            result.outcome = TaskOutcome::Refused;
            result.message = format!("no upload of {} {want} for architecture {arch}", task.name);
            return result;
        };
        let file = self.dir.join("cache").join(format!("{}.part", cand.id));
        let mut delay = self.opts.backoff;
        let mut last = String::new();
        let mut fetched = false;
        for attempt in 1..=self.opts.attempts.max(1) {
            result.attempts = attempt;
            match self.fetch(keys, task, &want, cand, &file).await {
                Ok(()) => {
                    fetched = true;
                    break;
                }
                Err(e) => {
                    tracing::info!(package = %task.name, attempt, error = %e, "package download refused");
                    last = e.to_string();
                    if attempt < self.opts.attempts {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        if !fetched {
            let _ = std::fs::remove_file(&file);
            result.outcome = TaskOutcome::Refused;
            result.message = format!("refused, nothing was changed: {last}");
            return result;
        }
        // Verified: now, and only now, the system changes.
        let ran = self.dpkg.install(&file).await;
        result.output = ran.output;
        let after = self.dpkg.version_of(&task.name).await.ok().flatten();
        if ran.ok && after.as_deref().is_some_and(same) {
            self.keep_cached(&task.name, &file, &want);
            result.outcome = TaskOutcome::Installed;
            result.version = after;
            result.message = match &installed {
                Some(old) => format!("{old} → {want}"),
                None => format!("{want} installed"),
            };
            return result;
        }
        let _ = std::fs::remove_file(&file);
        result.outcome = TaskOutcome::Failed;
        result.message = self
            .roll_back(&task.name, installed.as_deref(), &mut result.output)
            .await;
        result.version = self.dpkg.version_of(&task.name).await.ok().flatten();
        result
    }

    /// Downloads and verifies a candidate into `file`.
    async fn fetch(
        &self,
        keys: &[TrustedKey],
        task: &PackageTask,
        want: &str,
        cand: &PackageRef,
        file: &Path,
    ) -> Result<(), Refusal> {
        let fetcher = self.fetcher();
        let bytes = fetcher
            .get(&cand.manifest_url, manifest::MAX_SIZE as u64)
            .await?;
        let m = manifest::verify(&bytes, keys, Some(&cand.manifest_sha256))?;
        let mismatch = if m.name != task.name {
            Some(format!("it is for {}, not {}", m.name, task.name))
        } else if m.version != want {
            Some(format!("it is version {}, not {want}", m.version))
        } else if m.id != cand.id || m.architecture != cand.architecture {
            Some(format!(
                "it is upload {} ({}), not {}",
                m.id, m.architecture, cand.id
            ))
        } else if !m.sha256.eq_ignore_ascii_case(&cand.sha256) || m.size != cand.size {
            Some("its hash or size differs from the notice's".into())
        } else {
            None
        };
        if let Some(why) = mismatch {
            return Err(Refusal::WrongManifest(why));
        }
        let (sha256, size) = fetcher.download_to(&cand.url, m.size, file).await?;
        if size != m.size {
            return Err(Refusal::Size {
                expected: m.size,
                got: size,
            });
        }
        if !sha256.eq_ignore_ascii_case(&m.sha256) {
            return Err(Refusal::Hash {
                expected: m.sha256,
                got: sha256,
            });
        }
        Ok(())
    }

    /// After a failed install: back to the state before, where dpkg
    /// allows it. Answers what was done (and appends the commands' output).
    async fn roll_back(&self, name: &str, before: Option<&str>, output: &mut String) -> String {
        let now = self.dpkg.version_of(name).await.ok().flatten();
        match before {
            None => {
                let ran = self.dpkg.remove(name).await;
                output.push_str("\n--- rollback: dpkg -r ---\n");
                output.push_str(&ran.output);
                *output = jumpgate_proto::packages::bound_output(output);
                if ran.ok {
                    "the install failed; the partly installed package was removed again (the system is as before)".into()
                } else {
                    "the install failed, and removing what it left failed too".into()
                }
            }
            Some(old) if now.as_deref() == Some(old) => {
                format!("the install failed; dpkg kept {old} (the system is as before)")
            }
            Some(old) => match self.cached(name, old) {
                Some(copy) => {
                    let ran = self.dpkg.install(&copy).await;
                    output.push_str(&format!("\n--- rollback: reinstalling {old} ---\n"));
                    output.push_str(&ran.output);
                    *output = jumpgate_proto::packages::bound_output(output);
                    if ran.ok {
                        format!("the install failed; {old} was installed again from the kept copy")
                    } else {
                        format!("the install failed, and reinstalling {old} failed too")
                    }
                }
                None => format!(
                    "the install failed; no copy of {old} is kept here, so the package stays as dpkg left it"
                ),
            },
        }
    }

    fn cache_paths(&self, name: &str) -> (PathBuf, PathBuf) {
        let c = self.dir.join("cache");
        (
            c.join(format!("{name}.deb")),
            c.join(format!("{name}.version")),
        )
    }

    /// Keeps the installed `.deb` (for a rollback of the next upgrade).
    fn keep_cached(&self, name: &str, file: &Path, version: &str) {
        let (deb, ver) = self.cache_paths(name);
        if let Err(e) = std::fs::rename(file, &deb)
            .and_then(|()| jumpgate_net::fs::write_atomic(&ver, version.as_bytes(), 0o600))
        {
            tracing::warn!(package = %name, error = %e, "packages: cannot keep a copy");
        }
    }

    fn cached(&self, name: &str, version: &str) -> Option<PathBuf> {
        let (deb, ver) = self.cache_paths(name);
        let kept = std::fs::read_to_string(ver).ok()?;
        (kept.trim() == version && deb.is_file()).then_some(deb)
    }

    fn forget_cached(&self, name: &str) {
        let (deb, ver) = self.cache_paths(name);
        let _ = std::fs::remove_file(deb);
        let _ = std::fs::remove_file(ver);
    }

    /// The gateway this agent talks to (for relative URLs).
    pub fn set_gateway(&self, gateway: crate::epm::fetch::Gateway) {
        if let Ok(mut f) = self.fetcher.write() {
            f.gateway = Some(gateway);
        }
    }
}
