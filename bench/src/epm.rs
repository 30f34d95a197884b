//! (`--epm-publish-agents N`, alone) Endpoint privilege management: one
//! bundle published to N connected idle agents (issue #14). The gateway's
//! blob store is SeaweedFS S3 on loopback (`--epm-blobs s3`) or its local
//! directory (`--epm-blobs local`). The simulated agents serve the
//! `epm-policy` system topic as the real agent does: they download the
//! notice's URL with the real agent's [`Fetcher`] (an S3 presigned URL, or
//! the gateway's signed route over the agent's pinned TLS trust), check
//! size, SHA-256 and signature ([`jumpgate_epm::bundle::verify`] with the
//! notice's keys) and answer a `PolicyAck`.
//!
//! Figures: time from the publish call (`POST /api/v1/epm/publish`) until
//! the last agent verified the bundle (counted in the agents, cross-checked
//! with `GET /api/v1/epm/status`); bytes the gateway process wrote during
//! that window (`/proc/PID/io` `wchar`: every `write`/`send` to sockets and
//! files, with `write_bytes`, what reached storage, beside it); bytes the
//! agents downloaded from S3 and from the gateway.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use jumpgate_agent::epm::fetch::{self, Fetcher};
use jumpgate_net::dial::{self, ServerUrl};
use jumpgate_net::mux::{self, DriverConfig, MuxEvent, MuxStream};
use jumpgate_net::system::{read_message, write_message};
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::control::AGENT_ALPN;
use jumpgate_proto::epm::{PolicyAck, PolicyNotice};
use jumpgate_proto::mux::Role;
use jumpgate_proto::system::{Head, MAX_BODY, Reply, Status, Topic};
use jumpgate_test_support::s3::SeaweedFs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Bins, Fleet, PASSWORD, SimAgent, enroll_sim, print_counts, sim_handshake, stop};

/// Where the gateway keeps the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Blobs {
    /// SeaweedFS S3 on loopback; agents download presigned URLs from it.
    S3,
    /// Files under the data dir; agents download the gateway's signed route.
    Local,
}

const BUCKET: &str = "jumpgate-epm";

/// What the simulated agents counted.
#[derive(Default)]
struct Tally {
    /// Agents that verified a published bundle (version > 0).
    verified: AtomicUsize,
    /// How many make "all".
    want: AtomicUsize,
    /// When the last of `want` verified.
    all_at: Mutex<Option<Instant>>,
    from_s3: AtomicU64,
    s3_downloads: AtomicUsize,
    from_gateway: AtomicU64,
    gateway_downloads: AtomicUsize,
    /// Bodies of `epm-policy` requests (notices), bytes.
    notice_bytes: AtomicU64,
}

/// Shared by every simulated agent.
struct Ctx {
    fleet: Arc<Fleet>,
    tally: Tally,
    fetcher: Fetcher,
    /// `https://HOST:PORT/` of the gateway: URLs under it are its route.
    gateway_prefix: String,
}

impl Ctx {
    fn refuse(&self, version: u64, why: String) -> PolicyAck {
        let kind: String = why.chars().take(80).collect();
        self.fleet.fail(format!("bundle refused: {kind}"));
        PolicyAck {
            accepted: None,
            refused: Some(format!("version {version}: {why}")),
        }
    }

    /// The real agent's checks (`Epm::handle_notice`), without keeping the
    /// policy: download, size, SHA-256, signature, version.
    async fn handle(&self, n: PolicyNotice) -> PolicyAck {
        if n.version == 0 {
            return PolicyAck::default();
        }
        let bytes = match self.fetcher.get(&n.url, n.size).await {
            Ok(b) => b,
            Err(e) => return self.refuse(n.version, e.to_string()),
        };
        let len = bytes.len() as u64;
        if n.url.starts_with('/') || n.url.starts_with(&self.gateway_prefix) {
            self.tally.from_gateway.fetch_add(len, Ordering::Relaxed);
            self.tally.gateway_downloads.fetch_add(1, Ordering::Relaxed);
        } else {
            self.tally.from_s3.fetch_add(len, Ordering::Relaxed);
            self.tally.s3_downloads.fetch_add(1, Ordering::Relaxed);
        }
        if len != n.size {
            return self.refuse(
                n.version,
                format!("{len} bytes, the notice announced {}", n.size),
            );
        }
        match jumpgate_epm::bundle::verify(&bytes, &n.keys, Some(&n.sha256), None) {
            Ok(c) if c.version == n.version => {}
            Ok(c) => {
                return self.refuse(n.version, format!("the bundle is version {}", c.version));
            }
            Err(e) => return self.refuse(n.version, e.to_string()),
        }
        let done = self.tally.verified.fetch_add(1, Ordering::Relaxed) + 1;
        if done == self.tally.want.load(Ordering::Relaxed) {
            *self.tally.all_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        PolicyAck {
            accepted: Some(n.version),
            refused: None,
        }
    }
}

/// Serves one system stream the gateway opened, as the real agent's
/// `system::serve` does: request whole, reply with what `answer` makes of
/// its topic and body, end, wait for its end.
pub(crate) async fn serve_system_stream<F, Fut>(mut s: MuxStream, fleet: &Fleet, answer: F)
where
    F: FnOnce(Option<Topic>, Bytes) -> Fut,
    Fut: std::future::Future<Output = (Status, Vec<u8>)>,
{
    let read = read_message(&mut s, &[], MAX_BODY);
    let Ok(Ok((Head::Request(req), body))) =
        tokio::time::timeout(Duration::from_secs(60), read).await
    else {
        fleet.fail("system stream: no whole request".into());
        return;
    };
    let (status, out) = answer(req.topic.parse::<Topic>().ok(), body).await;
    let reply = Reply {
        status,
        message: String::new(),
        size: 0,
    };
    if let Err(e) = write_message(&mut s, Head::Reply(reply), &Bytes::from(out)).await {
        fleet.fail(format!("system reply: {:?}", e.kind()));
        return;
    }
    let _ = s.shutdown().await;
    let mut rest = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while matches!(s.read(&mut rest).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// An EPM notice: verified as the agent would, acknowledged.
async fn serve_stream(s: MuxStream, ctx: Arc<Ctx>) {
    let fleet = Arc::clone(&ctx.fleet);
    serve_system_stream(s, &fleet, |topic, body| async move {
        match topic {
            Some(Topic::EpmPolicy) => match serde_json::from_slice::<PolicyNotice>(&body) {
                Ok(n) => {
                    ctx.tally
                        .notice_bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    let ack = ctx.handle(n).await;
                    (Status::Ok, serde_json::to_vec(&ack).unwrap_or_default())
                }
                Err(_) => (Status::Invalid, Vec::new()),
            },
            _ => (Status::UnknownTopic, Vec::new()),
        }
    })
    .await;
}

/// A simulated agent that serves system streams with `serve`: connects,
/// serves until the connection ends, reconnects with the real agent's
/// backoff, forever.
pub(crate) async fn sim_agent<S, Fut>(
    agent: SimAgent,
    target: SocketAddr,
    cfg: Arc<tokio_rustls::rustls::ClientConfig>,
    fleet: Arc<Fleet>,
    serve: S,
) where
    S: Fn(MuxStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut backoff = jumpgate_agent::Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let attempt = tokio::time::timeout(
            dial::CONNECT_TIMEOUT,
            sim_handshake(&agent, target, Arc::clone(&cfg)),
        );
        match attempt.await {
            Err(_) => fleet.fail("handshake timed out".into()),
            Ok(Err(kind)) => fleet.fail(kind),
            Ok(Ok((tls, leftover, heartbeat))) => {
                let config = DriverConfig {
                    ping_interval: Some(Duration::from_secs(heartbeat)),
                    idle_timeout: Duration::from_secs(heartbeat * 3),
                    ..DriverConfig::default()
                };
                match mux::start(tls, Role::Agent, &leftover, config) {
                    Err(e) => fleet.fail(format!("protocol: {e}")),
                    Ok((_handle, mut events, driver)) => {
                        fleet.online.fetch_add(1, Ordering::Relaxed);
                        let serve = async {
                            while let Some(ev) = events.recv().await {
                                if let MuxEvent::Stream(s) = ev {
                                    tokio::spawn(serve(s));
                                }
                            }
                        };
                        let (end, ()) = tokio::join!(driver, serve);
                        fleet.online.fetch_sub(1, Ordering::Relaxed);
                        fleet.fail(match end {
                            Ok(()) => "connection closed".into(),
                            Err(e) => format!("connection lost: {e}"),
                        });
                        backoff.reset();
                    }
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// `wchar` and `write_bytes` of `/proc/PID/io`.
pub(crate) fn proc_io(pid: u32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    let field = |name: &str| -> Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .with_context(|| format!("{name} in /proc/{pid}/io"))
    };
    Ok((field("wchar:")?, field("write_bytes:")?))
}

/// `bytes_sent` of every TCP socket of process `pid`, by socket (`ss
/// -tinp`): what the kernel sent on it so far.
pub(crate) async fn socket_bytes(pid: u32) -> Result<std::collections::HashMap<String, u64>> {
    let out = tokio::process::Command::new("ss")
        .args(["-tinpH"])
        .output()
        .await
        .context("ss (iproute2)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let owner = format!("pid={pid},");
    let mut by_socket = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            // A socket line: state, queues, local and peer address, users.
            current = line.contains(&owner).then(|| {
                line.split_whitespace()
                    .skip(3)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        } else if let Some(sock) = &current
            && let Some(n) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("bytes_sent:")?.parse::<u64>().ok())
        {
            by_socket.insert(sock.clone(), n);
        }
    }
    Ok(by_socket)
}

/// A policy of a realistic size: 200 applications, 40 rules.
fn policy_yaml() -> String {
    let mut y = String::from("default: block\napplications:\n");
    for i in 0..200 {
        y.push_str(&format!(
            "  - name: tool-{i}\n    path: /opt/vendor/bin/tool-{i}\n"
        ));
    }
    y.push_str("rules:\n");
    let actions = [
        "elevate",
        "block",
        "elevate-with-reason",
        "elevate-with-code",
    ];
    for r in 0..40 {
        let apps: Vec<String> = (0..5).map(|k| format!("tool-{}", r * 5 + k)).collect();
        y.push_str(&format!(
            "  - name: rule-{r}\n    applications: [{}]\n    action: {}\n",
            apps.join(", "),
            actions[r % actions.len()]
        ));
    }
    y
}

pub(crate) fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

pub(crate) async fn run(n: usize, blobs: Blobs) -> Result<()> {
    let bins = Bins::here()?;
    let conf = tempfile::tempdir()?;
    let s3 = match blobs {
        Blobs::S3 => {
            let s3 = SeaweedFs::start()
                .await
                .context("SeaweedFS (weed) or aws is not installed")?;
            s3.aws(&["s3", "mb", &format!("s3://{BUCKET}")]).await;
            Some(s3)
        }
        Blobs::Local => None,
    };
    let config = conf.path().join("jumpgate.toml");
    let config_arg = config.to_str().context("config path")?.to_owned();
    let mut extra: Vec<&str> = Vec::new();
    if let Some(s3) = &s3 {
        std::fs::write(
            &config,
            s3.blobs_config(BUCKET, "site", &conf.path().join("s3-secret")),
        )?;
        extra = vec!["--config", config_arg.as_str()];
    }
    let site = crate::start_site_with(bins, None, &extra).await?;
    let where_ = match blobs {
        Blobs::S3 => format!(
            "S3 (SeaweedFS at {})",
            s3.as_ref().map_or("", |s| s.endpoint.as_str())
        ),
        Blobs::Local => "the gateway's local store (signed route /epm/bundles/…)".to_owned(),
    };
    println!(
        "Jumpgate benchmark — {} cores, release build, loopback",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("\nEPM: one bundle published to {n} connected idle agents, blobs on {where_}");

    // The fleet: enrolled and connected as in the memory figure, but each
    // agent serves the `epm-policy` topic.
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
            timeout: fetch::DEFAULT_TIMEOUT,
        },
        gateway_prefix: format!("https://{}/", site.listen),
    });
    ctx.tally.want.store(n, Ordering::Relaxed);
    let mut tokens = site
        .admin(&["enroll-token", "--count", &n.to_string()])
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
    while let Some(agent) = enrolling.join_next().await {
        let ctx = Arc::clone(&ctx);
        tasks.spawn(sim_agent(
            agent??,
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

    // The draft, then the timed publish, as an administrator.
    let policy = conf.path().join("policy.yaml");
    std::fs::write(&policy, policy_yaml())?;
    let out = site
        .jg()
        .args(["epm", "policy", "import"])
        .arg(&policy)
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "jg epm policy import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let client = jumpgate_client::Client::new(url.clone(), &Trust::Pinned(fp), None)?;
    let login = client.login("operator", PASSWORD, None).await?;
    let client = client.with_token(login.token);
    let pid = site.gateway.id().context("gateway pid")?;
    let notices_before = ctx.tally.notice_bytes.load(Ordering::Relaxed);
    let (wchar0, disk0) = proc_io(pid)?;
    let sockets0 = socket_bytes(pid).await?;
    let t0 = Instant::now();
    let bundle = client.epm_publish().await?;
    let publish_took = t0.elapsed();
    let deadline = t0 + Duration::from_secs(900);
    while ctx.tally.verified.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} agents verified the bundle after 900 s",
                ctx.tally.verified.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (wchar1, disk1) = proc_io(pid)?;
    let sockets1 = socket_bytes(pid).await?;
    let all_at = ctx
        .tally
        .all_at
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_else(Instant::now);
    let took = all_at.saturating_duration_since(t0);

    // The gateway's own view: every idle endpoint at the new version.
    let mut status_n = 0;
    let status_deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < status_deadline {
        status_n = client
            .epm_status()
            .await?
            .iter()
            .filter(|e| {
                e.endpoint.starts_with("idle-") && e.accepted_version == Some(bundle.version)
            })
            .count();
        if status_n == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status_at = t0.elapsed();

    let sent = wchar1.saturating_sub(wchar0);
    // Sockets open at both ends of the window, and those opened in it.
    let on_sockets: u64 = sockets1
        .iter()
        .map(|(k, v)| v.saturating_sub(sockets0.get(k).copied().unwrap_or(0)))
        .sum();
    let disk = disk1.saturating_sub(disk0);
    let t = &ctx.tally;
    let (s3_b, gw_b) = (
        t.from_s3.load(Ordering::Relaxed),
        t.from_gateway.load(Ordering::Relaxed),
    );
    println!(
        "  bundle: version {}, {} bytes, signed by {}; the gateway notified {} agents",
        bundle.version, bundle.size, bundle.key, bundle.notified
    );
    println!(
        "  publish call (POST /api/v1/epm/publish): {:.1} ms",
        publish_took.as_secs_f64() * 1e3
    );
    println!(
        "  all {n} agents verified it (download, size, SHA-256, signature): {:.2} s after the publish call  ({:.0} agents/s)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64().max(1e-9)
    );
    println!(
        "  GET /api/v1/epm/status: {status_n} of {n} idle endpoints at version {} (seen {:.2} s after the publish call)",
        bundle.version,
        status_at.as_secs_f64()
    );
    println!(
        "  gateway sent {:.2} MiB on its TCP sockets in that window ({:.0} bytes per agent; ss -tinp bytes_sent, sockets open at its end)",
        mib(on_sockets),
        on_sockets as f64 / n as f64
    );
    println!(
        "  gateway process wrote {:.2} MiB in that window: /proc/{pid}/io wchar, every write/send to sockets and files (database included); storage writes (write_bytes) {:.2} MiB",
        mib(sent),
        mib(disk)
    );
    println!(
        "  agents downloaded: {:.2} MiB from S3 ({} downloads), {:.2} MiB from the gateway ({} downloads); notices received: {:.2} MiB ({:.0} bytes each)",
        mib(s3_b),
        t.s3_downloads.load(Ordering::Relaxed),
        mib(gw_b),
        t.gateway_downloads.load(Ordering::Relaxed),
        mib(t.notice_bytes.load(Ordering::Relaxed) - notices_before),
        (t.notice_bytes.load(Ordering::Relaxed) - notices_before) as f64 / n as f64
    );
    print_counts("failures while connecting", &connect_failures);
    print_counts("failures during the publish", &fleet.take_failures());
    tasks.abort_all();
    stop(site).await;
    drop(s3);
    Ok(())
}
