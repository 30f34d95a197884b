//! (`--package-agents N`, alone) The Package Manager: one package (50 MiB
//! by default, `--package-mib`) assigned to the group of N connected idle
//! agents (issue #15). The gateway's blob store is SeaweedFS S3 on
//! loopback. The simulated agents serve the `packages` system topic with
//! the real agent's code paths up to dpkg: the real [`Fetcher`] downloads
//! the manifest and the package from the presigned S3 URLs, the manifest
//! is checked with [`manifest::verify`] (signature by a notice key, the
//! announced SHA-256) and against the task, and the package's SHA-256 and
//! size are computed while it streams ([`Fetcher::download_into`], as the
//! agent's `download_to` does) and compared. The package is written to a
//! sink (not to disk) and **not installed**:
//! a no-op stand-in replaces dpkg (a thousand dpkg runs would measure
//! dpkg on two cores, not the distribution).
//!
//! Figures: time from the assignment call (`PUT
//! /api/v1/packages/assignments`) until the last agent verified the
//! package, and until the gateway's status shows all installed; bytes the
//! gateway sent on its sockets in that window (target: notices only, no
//! package bytes); bytes the agents downloaded from S3.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jumpgate_agent::epm::fetch::{self, Fetcher};
use jumpgate_epm::package::manifest;
use jumpgate_net::dial::ServerUrl;
use jumpgate_net::mux::MuxStream;
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::control::AGENT_ALPN;
use jumpgate_proto::packages::{PackageAck, PackageNotice, TaskAction, TaskOutcome, TaskResult};
use jumpgate_proto::system::{Status, Topic};
use jumpgate_test_support::s3::SeaweedFs;

use crate::epm::{mib, proc_io, serve_system_stream, sim_agent, socket_bytes};
use crate::{Bins, Fleet, PASSWORD, enroll_sim, print_counts, stop};

const BUCKET: &str = "jumpgate-packages";
const PACKAGE: &str = "bench-payload";

#[derive(Default)]
struct Tally {
    verified: AtomicUsize,
    want: AtomicUsize,
    all_at: Mutex<Option<Instant>>,
    from_s3: AtomicU64,
    from_gateway: AtomicU64,
    notice_bytes: AtomicU64,
    notices: AtomicUsize,
}

struct Ctx {
    fleet: Arc<Fleet>,
    tally: Tally,
    fetcher: Fetcher,
    gateway_prefix: String,
}

impl Ctx {
    fn count(&self, url: &str, n: u64) {
        if url.starts_with('/') || url.starts_with(&self.gateway_prefix) {
            self.tally.from_gateway.fetch_add(n, Ordering::Relaxed);
        } else {
            self.tally.from_s3.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The real agent's checks (`Packages::fetch`), the install a no-op.
    async fn handle(&self, n: PackageNotice) -> PackageAck {
        let mut results = Vec::new();
        for task in n.tasks {
            let mut r = TaskResult {
                name: task.name.clone(),
                action: task.action,
                version: None,
                outcome: TaskOutcome::Refused,
                message: String::new(),
                output: String::new(),
                attempts: 1,
            };
            if task.action != TaskAction::Install {
                r.outcome = TaskOutcome::Unchanged;
                results.push(r);
                continue;
            }
            match self.fetch(&n.keys, &task).await {
                Ok(version) => {
                    r.outcome = TaskOutcome::Installed;
                    r.version = Some(version);
                    r.message = "verified; install skipped (benchmark stand-in)".into();
                    let done = self.tally.verified.fetch_add(1, Ordering::Relaxed) + 1;
                    if done == self.tally.want.load(Ordering::Relaxed) {
                        *self.tally.all_at.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(Instant::now());
                    }
                }
                Err(why) => {
                    self.fleet.fail(format!(
                        "package refused: {}",
                        why.chars().take(80).collect::<String>()
                    ));
                    r.message = why;
                }
            }
            results.push(r);
        }
        PackageAck {
            results,
            inventory: None,
        }
    }

    async fn fetch(
        &self,
        keys: &[jumpgate_proto::epm::TrustedKey],
        task: &jumpgate_proto::packages::PackageTask,
    ) -> Result<String, String> {
        let want = task.version.clone().ok_or("no version")?;
        let cand = task
            .candidates
            .iter()
            .find(|c| c.architecture == "all")
            .ok_or("no candidate")?;
        let bytes = self
            .fetcher
            .get(&cand.manifest_url, manifest::MAX_SIZE as u64)
            .await
            .map_err(|e| e.to_string())?;
        self.count(&cand.manifest_url, bytes.len() as u64);
        let m = manifest::verify(&bytes, keys, Some(&cand.manifest_sha256))
            .map_err(|e| e.to_string())?;
        if m.name != task.name || m.version != want || m.sha256 != cand.sha256 {
            return Err("the manifest does not match the task".into());
        }
        let (sha, size) = self
            .fetcher
            .download_into(&cand.url, m.size, &mut tokio::io::sink())
            .await
            .map_err(|e| e.to_string())?;
        self.count(&cand.url, size);
        if size != m.size || sha != m.sha256 {
            return Err(format!("hash or size differ: {size} bytes, {sha}"));
        }
        Ok(want)
    }
}

async fn serve_stream(s: MuxStream, ctx: Arc<Ctx>) {
    let fleet = Arc::clone(&ctx.fleet);
    serve_system_stream(s, &fleet, |topic, body| async move {
        match topic {
            Some(Topic::Packages) => match serde_json::from_slice::<PackageNotice>(&body) {
                Ok(n) => {
                    ctx.tally
                        .notice_bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    ctx.tally.notices.fetch_add(1, Ordering::Relaxed);
                    let ack = ctx.handle(n).await;
                    (Status::Ok, serde_json::to_vec(&ack).unwrap_or_default())
                }
                Err(_) => (Status::Invalid, Vec::new()),
            },
            // No inventory in the stand-in: an empty full list.
            Some(Topic::PackageInventory) => (
                Status::Ok,
                serde_json::to_vec(&jumpgate_proto::packages::InventoryReport {
                    revision: 1,
                    full: true,
                    ..Default::default()
                })
                .unwrap_or_default(),
            ),
            _ => (Status::UnknownTopic, Vec::new()),
        }
    })
    .await;
}

/// A `.deb` of `mib` MiB of incompressible data (built uncompressed with
/// dpkg-deb).
fn build_payload(dir: &Path, mib: usize) -> Result<std::path::PathBuf> {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("DEBIAN"))?;
    std::fs::create_dir_all(src.join("opt/bench"))?;
    std::fs::write(
        src.join("DEBIAN/control"),
        format!(
            "Package: {PACKAGE}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: bench <bench@example.com>\nDescription: benchmark payload\n"
        ),
    )?;
    let mut data = vec![0u8; mib * 1024 * 1024];
    aws_lc_rs::rand::fill(&mut data).map_err(|_| anyhow::anyhow!("random"))?;
    std::fs::write(src.join("opt/bench/payload.bin"), &data)?;
    let out = dir.join("payload.deb");
    let built = std::process::Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Znone", "--build"])
        .arg(&src)
        .arg(&out)
        .output()
        .context("dpkg-deb")?;
    if !built.status.success() {
        bail!("dpkg-deb: {}", String::from_utf8_lossy(&built.stderr));
    }
    Ok(out)
}

pub(crate) async fn run(n: usize, package_mib: usize) -> Result<()> {
    let bins = Bins::here()?;
    let conf = tempfile::tempdir()?;
    let s3 = SeaweedFs::start()
        .await
        .context("SeaweedFS (weed) or aws is not installed")?;
    s3.aws(&["s3", "mb", &format!("s3://{BUCKET}")]).await;
    let config = conf.path().join("jumpgate.toml");
    std::fs::write(
        &config,
        s3.blobs_config(BUCKET, "site", &conf.path().join("s3-secret")),
    )?;
    let config_arg = config.to_str().context("config path")?.to_owned();
    let site = crate::start_site_with(bins, None, &["--config", &config_arg]).await?;
    println!(
        "Jumpgate benchmark — {} cores, release build, loopback",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "\nPackages: one {package_mib} MiB package assigned to {n} connected idle agents, blobs on S3 (SeaweedFS at {})",
        s3.endpoint
    );
    let url: ServerUrl = site.url.parse()?;
    let fp: tls::Fingerprint = site.fingerprint.parse()?;
    let target: SocketAddr = site.listen.parse()?;
    let cfg = tls::client_config(&Trust::Pinned(fp), &[AGENT_ALPN])?;
    let fleet = Arc::new(Fleet::default());
    let ctx = Arc::new(Ctx {
        fleet: Arc::clone(&fleet),
        tally: Tally::default(),
        fetcher: Fetcher {
            gateway: Some(fetch::Gateway {
                server: url.clone(),
                tls: tls::client_config(&Trust::Pinned(fp), &[b"http/1.1".as_slice()])?,
                proxy: None,
            }),
            blob_tls: fetch::blob_tls(None)?,
            timeout: Duration::from_secs(1800),
        },
        gateway_prefix: format!("https://{}/", site.listen),
    });
    ctx.tally.want.store(n, Ordering::Relaxed);
    let mut tokens = site
        .admin(&[
            "enroll-token",
            "--group",
            "fleet",
            "--count",
            &n.to_string(),
        ])
        .await?
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter();
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut enrolling = tokio::task::JoinSet::new();
    for i in 0..n {
        let token = tokens.next().context("not enough tokens")?;
        let (url, sem) = (url.clone(), Arc::clone(&sem));
        enrolling.spawn(async move {
            let _p = sem.acquire().await;
            enroll_sim(&url, fp, token, i).await
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(a) = enrolling.join_next().await {
        let ctx = Arc::clone(&ctx);
        tasks.spawn(sim_agent(
            a??,
            target,
            Arc::clone(&cfg),
            Arc::clone(&fleet),
            move |s| serve_stream(s, Arc::clone(&ctx)),
        ));
    }
    fleet.wait_online(n, Duration::from_secs(900)).await?;
    println!(
        "  {n} agents enrolled and connected in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let connect_failures = fleet.take_failures();

    let deb = build_payload(conf.path(), package_mib)?;
    let client = jumpgate_client::Client::new(url.clone(), &Trust::Pinned(fp), None)?;
    let login = client.login("operator", PASSWORD, None).await?;
    let client = client.with_token(login.token);
    let t_up = Instant::now();
    let (pkg, _) = client.package_upload(std::fs::read(&deb)?, None).await?;
    println!(
        "  upload: {} {} ({:.1} MiB, sha256 {}…) checked and stored in {:.2} s",
        pkg.name,
        pkg.version,
        mib(pkg.size),
        &pkg.sha256[..16],
        t_up.elapsed().as_secs_f64()
    );
    // Let the connect-time inventory pulls settle before the window.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let pid = site.gateway.id().context("gateway pid")?;
    let notices_before = ctx.tally.notice_bytes.load(Ordering::Relaxed);
    let (wchar0, disk0) = proc_io(pid)?;
    let sockets0 = socket_bytes(pid).await?;
    let t0 = Instant::now();
    let answer = client
        .package_assign(&jumpgate_api_types::packages::AssignRequest {
            group: "fleet".into(),
            package: PACKAGE.into(),
            action: "install".into(),
            version: None,
        })
        .await?;
    let assign_took = t0.elapsed();
    let deadline = t0 + Duration::from_secs(1800);
    let mut report_at = Instant::now() + Duration::from_secs(15);
    while ctx.tally.verified.load(Ordering::Relaxed) < n {
        if Instant::now() > report_at {
            report_at += Duration::from_secs(15);
            eprintln!(
                "    … {:.0} s: {} of {n} verified, {} notices, {:.0} MiB from S3",
                t0.elapsed().as_secs_f64(),
                ctx.tally.verified.load(Ordering::Relaxed),
                ctx.tally.notices.load(Ordering::Relaxed),
                mib(ctx.tally.from_s3.load(Ordering::Relaxed))
            );
            print_counts("failures so far", &fleet.take_failures());
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} agents verified the package after 1800 s",
                ctx.tally.verified.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_at = ctx
        .tally
        .all_at
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_else(Instant::now);
    let took = all_at.saturating_duration_since(t0);
    // The gateway's own view: every endpoint reported installed.
    let mut status_n = 0;
    let status_deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < status_deadline {
        status_n = client
            .package_status(None, Some(PACKAGE))
            .await?
            .iter()
            .filter(|s| s.outcome == "installed")
            .count();
        if status_n == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status_at = t0.elapsed();
    let (wchar1, disk1) = proc_io(pid)?;
    let sockets1 = socket_bytes(pid).await?;
    let on_sockets: u64 = sockets1
        .iter()
        .map(|(k, v)| v.saturating_sub(sockets0.get(k).copied().unwrap_or(0)))
        .sum();
    let t = &ctx.tally;
    let notices = t.notice_bytes.load(Ordering::Relaxed) - notices_before;
    println!(
        "  assignment call (PUT /api/v1/packages/assignments): {:.1} ms; {} agents being told",
        assign_took.as_secs_f64() * 1e3,
        answer.notified
    );
    println!(
        "  all {n} agents verified it (manifest signature and hash, package SHA-256 and size while streaming; install a no-op stand-in): {:.2} s after the call  ({:.1} agents/s, {:.0} MiB/s from S3)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64().max(1e-9),
        mib(t.from_s3.load(Ordering::Relaxed)) / took.as_secs_f64().max(1e-9)
    );
    println!(
        "  GET /api/v1/packages/status: {status_n} of {n} endpoints installed (seen {:.2} s after the call)",
        status_at.as_secs_f64()
    );
    println!(
        "  gateway sent {:.2} MiB on its TCP sockets in that window ({:.0} bytes per agent; ss -tinp bytes_sent) — the package is {:.1} MiB",
        mib(on_sockets),
        on_sockets as f64 / n as f64,
        mib(pkg.size)
    );
    println!(
        "  gateway process wrote {:.2} MiB (/proc/{pid}/io wchar: sockets and files), storage writes {:.2} MiB",
        mib(wchar1.saturating_sub(wchar0)),
        mib(disk1.saturating_sub(disk0))
    );
    println!(
        "  agents downloaded {:.1} MiB from S3 and {:.2} MiB from the gateway; notices received: {:.2} MiB ({:.0} bytes each, {} notices)",
        mib(t.from_s3.load(Ordering::Relaxed)),
        mib(t.from_gateway.load(Ordering::Relaxed)),
        mib(notices),
        notices as f64 / n as f64,
        t.notices.load(Ordering::Relaxed)
    );
    print_counts("failures while connecting", &connect_failures);
    print_counts("failures during the distribution", &fleet.take_failures());
    tasks.abort_all();
    stop(site).await;
    drop(s3);
    Ok(())
}
