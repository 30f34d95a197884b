//! Jumpgate benchmarks. Prints figures; asserts nothing.
//!
//! ```text
//! cargo build --release -p jumpgate -p jumpgate-bench
//! target/release/jumpgate-bench            # everything
//! target/release/jumpgate-bench --agents 1000 --seconds 3
//! target/release/jumpgate-bench --rounds 8 --baseline /tmp/before   # before/after, interleaved
//! ```
//!
//! Measures, against the release `jumpgate` and `jg` binaries next to this
//! one, on loopback:
//! 1. bulk throughput of one stream `jg forward` → gateway → agent → sink,
//!    next to a direct loopback connection to the same sink, with the CPU
//!    time the relaying processes spent per GiB; optionally next to another
//!    build of the binaries (`--baseline DIR`) and to OpenSSH ProxyJump
//!    through a plain `sshd` jump host (when `sshd` is installed and the
//!    bench runs as root), in interleaved rounds with medians;
//! 2. 64-byte ping-pong round trips (p50/p99) through the same paths and direct;
//! 3. the gateway's resident memory with N idle agents connected (real agent
//!    handshakes and heartbeats, opened from this process);
//! 4. recorded session output: `jg shell bench -- CMD` printing text (every
//!    byte recorded, encrypted and fsync'd each second), next to `jg cp`
//!    downloading the same bytes (not recorded); the recording's size on
//!    disk; and `jg recordings export` of it;
//! 5. a reconnect storm: N agents (simulated in this process, with the real
//!    agent's backoff and handshake) connected, the gateway restarted, and
//!    the time until all are back online, with failures counted by kind;
//! 6. system stream round trips (`echo` topic, gateway → agent → gateway,
//!    asked through the control socket) from an empty body to 16 MiB;
//! 7. audited writes per second through the store layer with 1 and 16
//!    writers, on SQLite and (`--postgres`) PostgreSQL (`store_writes.rs`;
//!    alone with `--store-writes`).
//! 8. (`--store`, alone) the store figures on each engine: session open
//!    latency (API call → `Accepted`) and `jg endpoints` with 10,000
//!    endpoints enrolled (`store.rs`).
//! 9. (`--desktop`, alone) remote desktop figures, Jumpgate and x11vnc side
//!    by side on the same Xvfb workloads: frames and kbit/s, time to
//!    pixel-exact, idle bytes, input to pixel, CPU (`desktop.rs`).
//! 10. (`--epm-publish-agents N`, alone) one EPM bundle published to N
//!     connected idle agents: time until all verified it, bytes the gateway
//!     sent, bytes downloaded from S3 / the gateway (`epm.rs`).
//! 11. (`--ssh`, alone) the SSH front door next to OpenSSH's ProxyJump:
//!     `ssh -L` bulk, round trips and CPU per GiB, `scp` throughput and CPU
//!     per GiB (`ssh.rs`).
//! 12. (`--notify`, alone) outbound events: webhook events delivered per
//!     second to a fast receiver, and the delay a dead receiver adds to it
//!     (`notify.rs`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::Parser;
use jumpgate_net::dial::{self, ServerUrl};
use jumpgate_net::mux::{self, DriverConfig};
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::control::{self, AGENT_ALPN, Control, Hello};
use jumpgate_proto::frame::Frame;
use jumpgate_proto::mux::Role;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

mod analytics;
mod desktop;
mod epm;
mod notify;
mod notify_mail;
mod packages;
mod ssh;
mod store;
mod store_writes;
mod support;

#[derive(Parser, Debug)]
#[command(about = "Jumpgate benchmarks (prints figures)")]
struct Args {
    /// Seconds of bulk transfer per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Ping-pong round trips per latency measurement.
    #[arg(long, default_value_t = 20_000)]
    round_trips: usize,
    /// Interleaved rounds of the bulk and round-trip measurements (medians
    /// are reported).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// A directory holding `jumpgate` and `jg` of another build (e.g. the
    /// previous commit), measured in the same rounds as "baseline".
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Skip the OpenSSH ProxyJump reference.
    #[arg(long)]
    no_ssh: bool,
    /// Cipher of the OpenSSH reference.
    #[arg(long, default_value = "aes128-gcm@openssh.com")]
    ssh_cipher: String,
    /// Idle agent counts to measure gateway memory at (cumulative).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    agents: Vec<usize>,
    /// Skip the idle-agent memory measurement.
    #[arg(long)]
    no_memory: bool,
    /// MiB of terminal output for the recording measurement (0: skip it).
    #[arg(long, default_value_t = 256)]
    recorded_mib: u64,
    /// Agents in the reconnect storm (0: skip it).
    #[arg(long, default_value_t = 5000)]
    storm: usize,
    /// Round trips per body size of the system stream measurement (0: skip it).
    #[arg(long, default_value_t = 10)]
    system_rounds: usize,
    /// Plain TCP relay processes chained as a reference path (no TLS, no
    /// multiplexing; 0: skip it). Three, like `jg`, the gateway and the
    /// agent: the floor any relay through three processes pays here.
    #[arg(long, default_value_t = 3)]
    plain_hops: usize,
    /// Seconds of audited store writes per engine and writer count (0:
    /// skip them).
    #[arg(long, default_value_t = 5)]
    store_seconds: u64,
    /// A PostgreSQL server (a role that may create databases) for the
    /// store measurement's second engine: a throw-away database is made on
    /// it and dropped after. Without it PostgreSQL is skipped.
    #[arg(long, value_name = "URL", env = "JUMPGATE_BENCH_POSTGRES")]
    postgres: Option<String>,
    /// Only the audited store writes (no gateway, agents or binaries).
    #[arg(long)]
    store_writes: bool,
    /// Only the alert mail figure: this many audited events, each to its
    /// mail at a real SMTP server (aiosmtpd; 0: skip it).
    #[arg(long, default_value_t = 0)]
    notify_mail: usize,
    /// Internal: run as one plain relay process forwarding to these
    /// addresses (one listener each, addresses printed on stdout).
    #[arg(long, hide = true, value_delimiter = ',')]
    tcp_relay_to: Vec<SocketAddr>,
    /// Only the store figures (audited writes, session open latency, `jg
    /// endpoints` with many endpoints), on SQLite and, with `--postgres`,
    /// on PostgreSQL side by side.
    #[arg(long)]
    store: bool,
    /// Endpoints enrolled for the `jg endpoints` figure.
    #[arg(long, default_value_t = 10_000)]
    store_endpoints: usize,
    /// Session opens timed per engine.
    #[arg(long, default_value_t = 300)]
    session_opens: usize,
    /// Only the remote desktop figures: Jumpgate and x11vnc side by side
    /// on the same 1920x1080 Xvfb workloads (full-screen change,
    /// scrolling, typing, clicks, idle). About 2 minutes with the defaults.
    #[arg(long)]
    desktop: bool,
    /// Seconds of each changing desktop workload (full screen, scrolling,
    /// typing), per system.
    #[arg(long, default_value_t = 8)]
    desktop_seconds: u64,
    /// Seconds of the idle desktop measurement, per system.
    #[arg(long, default_value_t = 20)]
    desktop_idle_seconds: u64,
    /// Clicks of the desktop input-to-pixel measurement, per system.
    #[arg(long, default_value_t = 60)]
    desktop_clicks: usize,
    /// Repetitions of the desktop take-back-control measurement (Jumpgate;
    /// 0 leaves it out).
    #[arg(long, default_value_t = 20)]
    desktop_take_backs: usize,
    /// Frames per second the full-screen workload's painter draws (each a
    /// whole new 1920x1080 picture). At 30, any frame lost shows below 30
    /// delivered; a faster painter measures what the viewer can be given.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
    desktop_paint_hz: u32,
    /// Leave x11vnc out of the desktop figures.
    #[arg(long)]
    desktop_no_x11vnc: bool,
    /// Leave Jumpgate out of the desktop figures.
    #[arg(long)]
    desktop_no_jumpgate: bool,
    /// Internal: run one of the desktop benchmark's X clients (`painter`,
    /// `clicker`) on `--desktop-display`.
    #[arg(long, hide = true)]
    desktop_client: Option<String>,
    #[arg(long, hide = true)]
    desktop_display: Option<String>,
    /// Only the attended support figures: customer joins → technician's
    /// queue with customers waiting, and the session key guessing rate.
    #[arg(long)]
    support: bool,
    /// Customers already waiting when the joins are timed.
    #[arg(long, default_value_t = 200)]
    support_waiting: usize,
    /// Joins timed.
    #[arg(long, default_value_t = 500)]
    support_joins: usize,
    /// Joins per second.
    #[arg(long, default_value_t = 20.0)]
    support_rate: f64,
    /// Seconds of each key guessing round (1, 16, 254 addresses; 0: none).
    #[arg(long, default_value_t = 60)]
    support_guess_seconds: u64,
    /// Only the SSH front door figures (issue #16): `ssh -L` bulk and
    /// round trips, one step and ProxyJump through the gateway, and `scp`,
    /// next to OpenSSH's ProxyJump through a plain `sshd` (`ssh.rs`).
    #[arg(long)]
    ssh: bool,
    /// Only the outbound events figures (issue #17): webhook events
    /// delivered per second to a fast receiver, and the delay a dead
    /// receiver's subscription adds to it (`notify.rs`).
    #[arg(long)]
    notify: bool,
    /// Events per `--notify` phase.
    #[arg(long, default_value_t = 2000)]
    notify_events: usize,
    /// MiB per `scp` of the SSH front door figures.
    #[arg(long, default_value_t = 256)]
    ssh_scp_mib: u64,
    /// Connections per route and round of the SSH front door's
    /// connection figure (`ssh HOST true`; 0: none).
    #[arg(long, default_value_t = 20)]
    ssh_connects: usize,
    /// Only the EPM publish figure: one bundle to this many connected idle
    /// agents that download and verify it (`epm.rs`; 0: none).
    #[arg(long, default_value_t = 0)]
    epm_publish_agents: usize,
    /// Where the gateway keeps the bundle for `--epm-publish-agents`.
    #[arg(long, value_enum, default_value = "s3")]
    epm_blobs: epm::Blobs,
    /// Only the Package Manager figure: one package assigned to this many
    /// connected idle agents that download and verify it from S3
    /// (`packages.rs`; 0: none).
    #[arg(long, default_value_t = 0)]
    package_agents: usize,
    /// The package's size for `--package-agents`, MiB.
    #[arg(long, default_value_t = 50)]
    package_mib: usize,
    /// Only the analytics figures (`analytics.rs`): events ingested per
    /// second by each backend (embedded; PostgreSQL with `--postgres`) and
    /// report latency over a large store.
    #[arg(long)]
    analytics: bool,
    /// Events timed for the ingest figure.
    #[arg(long, default_value_t = 1_000_000)]
    analytics_events: usize,
    /// Events in the store when the reports are timed.
    #[arg(long, default_value_t = 10_000_000)]
    analytics_report_events: usize,
    /// Runs of each report per window.
    #[arg(long, default_value_t = 20)]
    analytics_runs: usize,
}

const PASSWORD: &str = "a-long-benchmark-passphrase-7";

/// The `jumpgate` and `jg` binaries of one build.
#[derive(Clone, Debug)]
struct Bins {
    jumpgate: PathBuf,
    jg: PathBuf,
}

impl Bins {
    /// The binaries next to this one.
    fn here() -> Result<Self> {
        let exe = std::env::current_exe()?;
        Self::in_dir(exe.parent().context("no directory")?)
            .context("build them first: cargo build --release -p jumpgate -p jumpgate-bench")
    }

    fn in_dir(dir: &Path) -> Result<Self> {
        let bins = Self {
            jumpgate: dir.join("jumpgate"),
            jg: dir.join("jg"),
        };
        for b in [&bins.jumpgate, &bins.jg] {
            if !b.exists() {
                bail!("{} not found", b.display());
            }
        }
        Ok(bins)
    }
}

/// Warnings and errors a gateway logged, by kind.
type LogCounts = Arc<Mutex<BTreeMap<String, u64>>>;

struct Site {
    dir: tempfile::TempDir,
    bins: Bins,
    gateway: Child,
    /// `host:port` the gateway listens on (kept across restarts).
    listen: String,
    url: String,
    fingerprint: String,
    log: LogCounts,
    agent: Child,
    /// `--database` of the gateway and `admin` (PostgreSQL); `None`: SQLite.
    database: Option<String>,
}

impl Site {
    fn jg(&self) -> Command {
        let mut c = Command::new(&self.bins.jg);
        c.env("JG_HOME", self.dir.path().join("jg"))
            .kill_on_drop(true);
        c
    }

    async fn admin(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.bins.jumpgate);
        cmd.args(["admin", "--data-dir"])
            .arg(self.dir.path().join("data"));
        if let Some(url) = &self.database {
            cmd.args(["--database", url]);
        }
        let out = cmd.args(args).output().await?;
        if !out.status.success() {
            bail!("admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

/// The kind of a gateway log line: level, target and message without the
/// fields (which hold ids and addresses).
fn log_kind(line: &str) -> Option<String> {
    let plain: String = {
        // Drop ANSI colour sequences, should there be any.
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let level = ["WARN", "ERROR"]
        .into_iter()
        .find(|l| plain.split_whitespace().nth(1) == Some(*l))?;
    let rest = plain.split_once(level)?.1.trim();
    let words: Vec<&str> = rest
        .split_whitespace()
        .take_while(|w| !w.contains('='))
        .take(12)
        .collect();
    Some(format!("{level} {}", words.join(" ")))
}

/// Starts `jumpgate server` on `listen`; returns it with its URL and CA
/// fingerprint once it is listening.
async fn start_gateway(
    bins: &Bins,
    dir: &Path,
    listen: &str,
    log: &LogCounts,
    database: Option<&str>,
) -> Result<(Child, String, String)> {
    start_gateway_with(bins, dir, listen, log, database, &[]).await
}

async fn start_gateway_with(
    bins: &Bins,
    dir: &Path,
    listen: &str,
    log: &LogCounts,
    database: Option<&str>,
    extra: &[&str],
) -> Result<(Child, String, String)> {
    let mut gateway = Command::new(&bins.jumpgate);
    gateway
        .args(["server", "--listen", listen, "--data-dir"])
        .arg(dir.join("data"))
        .args(extra);
    if let Some(url) = database {
        gateway.args(["--database", url]);
    }
    let mut gateway = gateway
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(gateway.stdout.take().context("stdout")?).lines();
    let mut errs = BufReader::new(gateway.stderr.take().context("stderr")?).lines();
    let counts = Arc::clone(log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = errs.next_line().await {
            if let Some(kind) = log_kind(&line) {
                *counts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(kind)
                    .or_default() += 1;
            }
        }
    });
    let (mut url, mut fingerprint) = (String::new(), String::new());
    while let Some(line) = lines.next_line().await? {
        if let Some(a) = line.strip_prefix("listening on ") {
            url = a.to_owned();
        }
        if line.starts_with("certificate fingerprint") {
            fingerprint = line.rsplit(' ').next().unwrap_or_default().to_owned();
            break;
        }
    }
    if url.is_empty() {
        bail!("the gateway did not start");
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((gateway, url, fingerprint))
}

async fn start_site(bins: Bins, database: Option<String>) -> Result<Site> {
    start_site_with(bins, database, &[]).await
}

/// [`start_site`] with more arguments for `jumpgate server`.
async fn start_site_with(bins: Bins, database: Option<String>, extra: &[&str]) -> Result<Site> {
    let dir = tempfile::tempdir()?;
    let log = LogCounts::default();
    let (gateway, url, fingerprint) = start_gateway_with(
        &bins,
        dir.path(),
        "127.0.0.1:0",
        &log,
        database.as_deref(),
        extra,
    )
    .await?;
    let listen = url
        .strip_prefix("https://")
        .unwrap_or(&url)
        .trim_end_matches('/')
        .to_owned();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PASSWORD)?;
    let mut site = Site {
        dir,
        bins,
        gateway,
        listen,
        url,
        fingerprint,
        log,
        agent: Command::new("true").spawn()?,
        database,
    };
    site.admin(&[
        "create-user",
        "operator",
        "--role",
        "admin",
        "--password-file",
        pw.to_str().unwrap_or_default(),
    ])
    .await?;
    let status = site
        .jg()
        .args([
            "--server",
            &site.url,
            "--ca-fingerprint",
            &site.fingerprint,
            "login",
            "--user",
            "operator",
            "--password-file",
        ])
        .arg(&pw)
        .stdout(Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("jg login failed");
    }
    let token = site.admin(&["enroll-token"]).await?;
    site.agent = Command::new(&site.bins.jumpgate)
        .args([
            "agent",
            "--server",
            &site.url,
            "--ca-fingerprint",
            &site.fingerprint,
            "--name",
            "bench",
            "--serve-echo-topic",
        ])
        .args(["--enroll-token", token.trim(), "--state-dir"])
        .arg(site.dir.path().join("agent"))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    for _ in 0..200 {
        let out = site.jg().args(["endpoints", "--json"]).output().await?;
        if String::from_utf8_lossy(&out.stdout).contains("\"online\": true") {
            return Ok(site);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the benchmark agent never came online")
}

/// `jg forward bench 0:127.0.0.1:PORT`; returns the local address.
async fn forward(site: &Site, target: SocketAddr) -> Result<(Child, SocketAddr)> {
    let mut child = site
        .jg()
        .args([
            "forward",
            "bench",
            &format!("0:127.0.0.1:{}", target.port()),
        ])
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let line = lines
        .next_line()
        .await?
        .context("jg forward printed nothing")?;
    let addr = line
        .strip_prefix("jg: forwarding ")
        .and_then(|r| r.split(' ').next())
        .context("unexpected jg forward output")?
        .parse()?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr))
}

/// Counts bytes until EOF and reports (bytes, first byte → EOF).
async fn sink() -> Result<(SocketAddr, tokio::sync::mpsc::Receiver<(u64, Duration)>)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                let mut start = None;
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    start.get_or_insert_with(Instant::now);
                    total += n as u64;
                }
                let _ = tx
                    .send((total, start.map_or(Duration::ZERO, |s| s.elapsed())))
                    .await;
            });
        }
    });
    Ok((addr, rx))
}

async fn echo() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// One bulk transfer: (bytes, Gbit/s as the sink saw it).
async fn bulk(
    to: SocketAddr,
    seconds: u64,
    results: &mut tokio::sync::mpsc::Receiver<(u64, Duration)>,
) -> Result<(u64, f64)> {
    let mut s = TcpStream::connect(to).await?;
    let buf = vec![0x5au8; 256 * 1024];
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        s.write_all(&buf).await?;
    }
    s.shutdown().await?;
    drop(s);
    let (bytes, took) = results.recv().await.context("sink result")?;
    Ok((bytes, bytes as f64 * 8.0 / took.as_secs_f64() / 1e9))
}

async fn ping_pong(to: SocketAddr, n: usize) -> Result<(Duration, Duration)> {
    let mut s = TcpStream::connect(to).await?;
    s.set_nodelay(true)?;
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    for _ in 0..n / 10 {
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
    }
    let mut rtts = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
        rtts.push(t.elapsed());
    }
    rtts.sort();
    Ok((rtts[n / 2], rtts[n * 99 / 100]))
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .context("VmRSS")
}

// ---------------------------------------------------------------- CPU time

/// Clock ticks per second of `/proc` times.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Every process: pid → (parent pid, user + system ticks of all its threads).
fn process_table() -> HashMap<u32, (u32, u64)> {
    let mut table = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return table;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields count
        // from the last `)`. After it: state(3) ppid(4) … utime(14) stime(15).
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        table.insert(pid, (num(1) as u32, num(11) + num(12)));
    }
    table
}

/// CPU seconds used so far by `roots` and all their descendants.
fn tree_cpu(roots: &[u32], ticks: f64) -> f64 {
    let table = process_table();
    let mut total = 0u64;
    for (&pid, &(_, t)) in &table {
        let mut p = pid;
        // Walk up to init; a process counts if a root is among its ancestors.
        for _ in 0..64 {
            if roots.contains(&p) {
                total += t;
                break;
            }
            match table.get(&p) {
                Some(&(parent, _)) if parent != 0 && parent != p => p = parent,
                _ => break,
            }
        }
    }
    total as f64 / ticks
}

/// A relaying process's name as the figures show it: its role where the
/// command name alone is ambiguous (`jumpgate` is the gateway and the agent;
/// `sshd` the jump host and the target), else the command name
/// (`/proc/PID/comm`), or its pid when it is gone.
fn process_name(pid: u32) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| pid.to_string());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0 || b == b' ').collect();
    let has = |word: &str| args.contains(&word.as_bytes());
    let mentions = |part: &str| {
        args.iter()
            .any(|a| a.windows(part.len()).any(|w| w == part.as_bytes()))
    };
    match comm.as_str() {
        "jumpgate" if has("server") => GATEWAY.to_owned(),
        "jumpgate" if has("agent") => "agent".to_owned(),
        "sshd" if mentions("sshd_jump") => JUMP_SSHD.to_owned(),
        "sshd" if mentions("sshd_target") => "target sshd".to_owned(),
        _ => comm,
    }
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

// ------------------------------------------------------------------ routes

/// One way from the benchmark client to the sink and the echo server.
struct Route {
    name: String,
    bulk: SocketAddr,
    echo: SocketAddr,
    /// Processes (with their descendants) doing the relaying.
    pids: Vec<u32>,
    /// The round trips' processes, in the same roles, where they are not
    /// `pids` (jumpgate's round trips go through a `jg forward` of their own).
    echo_pids: Option<Vec<u32>>,
    _keep: Vec<Child>,
}

/// One round's figures of one route.
#[derive(Clone, Debug, Default)]
struct Sample {
    gbps: f64,
    cpu_per_gib: f64,
    /// The CPU seconds per GiB of each of the route's processes (with its
    /// descendants), by name: where the route's CPU goes.
    by_process: Vec<(String, f64)>,
    busy_cores: f64,
    p50: f64,
    p99: f64,
    /// The CPU microseconds (user and system) each of the route's
    /// processes spent per 64-byte round trip, by name: a steadier measure
    /// of a hop's cost than latency on a shared machine.
    per_trip: Vec<(String, f64)>,
}

async fn measure(
    route: &Route,
    args: &Args,
    results: &mut tokio::sync::mpsc::Receiver<(u64, Duration)>,
    ticks: f64,
) -> Result<Sample> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu0 = tree_cpu(&route.pids, ticks);
    let each0: Vec<f64> = route.pids.iter().map(|p| tree_cpu(&[*p], ticks)).collect();
    let (busy0, total0) = machine_jiffies();
    let (bytes, gbps) = bulk(route.bulk, args.seconds, results).await?;
    let cpu = tree_cpu(&route.pids, ticks) - cpu0;
    let gib = bytes as f64 / f64::from(1u32 << 30);
    let by_process = route
        .pids
        .iter()
        .zip(each0)
        .map(|(&p, c0)| (process_name(p), (tree_cpu(&[p], ticks) - c0) / gib))
        .collect();
    let (busy1, total1) = machine_jiffies();
    let busy_cores = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * cores;
    let echo_pids = route.echo_pids.as_ref().unwrap_or(&route.pids);
    let each0: Vec<f64> = echo_pids.iter().map(|p| tree_cpu(&[*p], ticks)).collect();
    let (p50, p99) = ping_pong(route.echo, args.round_trips).await?;
    // `ping_pong` warms up with a tenth more.
    let trips = (args.round_trips + args.round_trips / 10) as f64;
    let per_trip = echo_pids
        .iter()
        .zip(each0)
        .map(|(&p, c0)| (process_name(p), (tree_cpu(&[p], ticks) - c0) * 1e6 / trips))
        .collect();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Ok(Sample {
        gbps,
        cpu_per_gib: cpu / gib,
        by_process,
        busy_cores,
        p50: us(p50),
        p99: us(p99),
        per_trip,
    })
}

/// The reference path: `hops` processes of this binary (`--tcp-relay-to`),
/// each a plain TCP relay to the next (TCP_NODELAY, one task per
/// connection), the last to the sink and the echo server.
async fn plain_route(hops: usize, sink: SocketAddr, echo: SocketAddr) -> Result<Route> {
    let mut targets = (sink, echo);
    let mut keep = Vec::new();
    for _ in 0..hops {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--tcp-relay-to")
            .arg(format!("{},{}", targets.0, targets.1))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut addrs = Vec::new();
        for _ in 0..2 {
            let line = lines
                .next_line()
                .await?
                .context("the relay printed nothing")?;
            addrs.push(line.parse::<SocketAddr>()?);
        }
        targets = (addrs[0], addrs[1]);
        keep.push(child);
    }
    Ok(Route {
        name: format!("{hops} plain TCP relay processes"),
        bulk: targets.0,
        echo: targets.1,
        pids: keep.iter().filter_map(Child::id).collect(),
        echo_pids: None,
        _keep: keep,
    })
}

/// `--tcp-relay-to`: relays every connection to listener *i* to target *i*.
async fn tcp_relay(targets: &[SocketAddr]) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for &to in targets {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", l.local_addr()?);
        tasks.spawn(async move {
            while let Ok((mut a, _)) = l.accept().await {
                tokio::spawn(async move {
                    let Ok(mut b) = TcpStream::connect(to).await else {
                        return;
                    };
                    let _ = a.set_nodelay(true);
                    let _ = b.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn jumpgate_route(
    name: &str,
    site: &Site,
    sink: SocketAddr,
    echo: SocketAddr,
) -> Result<Route> {
    let (fwd_sink, bulk) = forward(site, sink).await?;
    let (fwd_echo, echo) = forward(site, echo).await?;
    let pids = [fwd_sink.id(), site.gateway.id(), site.agent.id()]
        .into_iter()
        .flatten()
        .collect();
    let echo_pids = [fwd_echo.id(), site.gateway.id(), site.agent.id()]
        .into_iter()
        .flatten()
        .collect();
    Ok(Route {
        name: name.to_owned(),
        bulk,
        echo,
        pids,
        echo_pids: Some(echo_pids),
        _keep: vec![fwd_sink, fwd_echo],
    })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_port(port: u16, what: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status})");
        }
        if Instant::now() > deadline {
            bail!("{what} is not listening on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// OpenSSH ProxyJump as administrators would use it: `ssh -J jump target
/// -L …`, with its own `sshd`s (jump host and target) on loopback ports.
/// `Ok(None)` (with the reason printed) when it cannot run here.
async fn ssh_route(
    cipher: &str,
    sink: SocketAddr,
    echo: SocketAddr,
    dir: &Path,
) -> Result<Option<Route>> {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(sshd) = sshd else {
        println!(
            "OpenSSH reference skipped: sshd is not installed (Debian: apt-get install openssh-server)"
        );
        return Ok(None);
    };
    if !rustix::process::geteuid().is_root() {
        println!("OpenSSH reference skipped: sshd must be started as root");
        return Ok(None);
    }
    // sshd's privilege separation directory.
    std::fs::create_dir_all("/run/sshd")?;
    let dir = dir.join("ssh");
    std::fs::create_dir_all(&dir)?;
    let keygen = |file: &Path| {
        let file = file.to_path_buf();
        async move {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&file)
                .stdout(Stdio::null())
                .status()
                .await?;
            if !st.success() {
                bail!("ssh-keygen failed");
            }
            anyhow::Ok(())
        }
    };
    keygen(&dir.join("host_key")).await?;
    keygen(&dir.join("id")).await?;
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys"))?;
    let mut keep = Vec::new();
    let mut ports = Vec::new();
    for name in ["jump", "target"] {
        let port = free_port()?;
        let config = dir.join(format!("sshd_{name}.conf"));
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile none\nUsePAM no\n\
                 AuthorizedKeysFile {ak}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nAllowTcpForwarding yes\n\
                 Ciphers {cipher}\nLogLevel ERROR\n",
                hk = dir.join("host_key").display(),
                ak = dir.join("authorized_keys").display(),
            ),
        )?;
        let mut child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .kill_on_drop(true)
            .spawn()
            .context("starting sshd")?;
        wait_for_port(port, "sshd", &mut child).await?;
        keep.push(child);
        ports.push(port);
    }
    let client_config = dir.join("ssh_config");
    let common = format!(
        "  HostName 127.0.0.1\n  User root\n  IdentityFile {id}\n  IdentitiesOnly yes\n\
         StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n\
         LogLevel ERROR\n  Ciphers {cipher}\n",
        id = dir.join("id").display()
    );
    std::fs::write(
        &client_config,
        format!(
            "Host jump\n  Port {}\n{common}\nHost target\n  Port {}\n  ProxyJump jump\n{common}",
            ports[0], ports[1]
        ),
    )?;
    let (bulk_port, echo_port) = (free_port()?, free_port()?);
    let mut ssh = Command::new("ssh")
        .arg("-F")
        .arg(&client_config)
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("127.0.0.1:{bulk_port}:{sink}"))
        .arg("-L")
        .arg(format!("127.0.0.1:{echo_port}:{echo}"))
        .arg("target")
        .kill_on_drop(true)
        .spawn()
        .context("starting ssh")?;
    // Probe the echo forward only: a probe of the sink's would count as a
    // (0-byte) transfer.
    wait_for_port(echo_port, "ssh -J", &mut ssh).await?;
    let mut pids: Vec<u32> = keep.iter().filter_map(Child::id).collect();
    pids.extend(ssh.id());
    keep.push(ssh);
    Ok(Some(Route {
        name: format!("OpenSSH ProxyJump ({cipher})"),
        bulk: SocketAddr::from(([127, 0, 0, 1], bulk_port)),
        echo: SocketAddr::from(([127, 0, 0, 1], echo_port)),
        pids,
        echo_pids: None,
        _keep: keep,
    }))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Direct, through this build, through the baseline build and through
/// OpenSSH: bulk and round trips in interleaved rounds.
async fn relay_section(site: &Site, args: &Args) -> Result<()> {
    let (sink_addr, mut results) = sink().await?;
    let echo_addr = echo().await?;
    let mut routes = vec![Route {
        name: "direct loopback".into(),
        bulk: sink_addr,
        echo: echo_addr,
        pids: Vec::new(),
        echo_pids: None,
        _keep: Vec::new(),
    }];
    routes.push(jumpgate_route("jumpgate (this build)", site, sink_addr, echo_addr).await?);
    let baseline = match &args.baseline {
        Some(dir) => Some(
            start_site(Bins::in_dir(dir)?, None)
                .await
                .context("baseline site")?,
        ),
        None => None,
    };
    if let Some(b) = &baseline {
        let name = format!(
            "jumpgate (baseline {})",
            args.baseline.as_deref().unwrap_or(Path::new("")).display()
        );
        routes.push(jumpgate_route(&name, b, sink_addr, echo_addr).await?);
    }
    if args.plain_hops > 0 {
        routes.push(plain_route(args.plain_hops, sink_addr, echo_addr).await?);
    }
    if !args.no_ssh
        && let Some(r) = ssh_route(&args.ssh_cipher, sink_addr, echo_addr, site.dir.path()).await?
    {
        routes.push(r);
    }
    relay_rounds(&routes, args, &mut results).await?;
    drop(routes);
    if let Some(b) = baseline {
        stop(b).await;
    }
    Ok(())
}

/// Bulk and round trips of every route, in interleaved rounds.
async fn relay_rounds(
    routes: &[Route],
    args: &Args,
    results: &mut tokio::sync::mpsc::Receiver<(u64, Duration)>,
) -> Result<()> {
    let ticks = clock_ticks();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); routes.len()];
    for round in 1..=args.rounds {
        for (i, r) in routes.iter().enumerate() {
            let s = measure(r, args, results, ticks).await?;
            let by: Vec<String> = s
                .by_process
                .iter()
                .map(|(name, c)| format!("{name} {c:.2}"))
                .collect();
            let per_trip: Vec<String> = s
                .per_trip
                .iter()
                .map(|(name, c)| format!("{name} {c:.0}"))
                .collect();
            eprintln!(
                "round {round}/{}: {:<40} {:6.2} Gbit/s  {:5.2} CPU-s/GiB ({})  {:4.2} cores busy  p50 {:6.1} µs  p99 {:6.1} µs  CPU µs per round trip ({})",
                args.rounds,
                r.name,
                s.gbps,
                s.cpu_per_gib,
                by.join(", "),
                s.busy_cores,
                s.p50,
                s.p99,
                per_trip.join(", ")
            );
            samples[i].push(s);
        }
    }
    let direct = &samples[0];
    println!(
        "relays side by side: medians of {} interleaved round(s); bulk {} s per round, {} round trips",
        args.rounds, args.seconds, args.round_trips
    );
    println!(
        "  {:<42} {:>11} {:>12} {:>11} {:>10} {:>10} {:>12} {:>12}  CPU µs per round trip, by process",
        "path",
        "bulk Gbit/s",
        "CPU-s/GiB",
        "cores busy",
        "RTT p50",
        "RTT p99",
        "added p50",
        "added p99",
    );
    for (r, s) in routes.iter().zip(&samples) {
        let m = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
        let added = |f: fn(&Sample) -> f64| {
            median(s.iter().zip(direct).map(|(a, d)| f(a) - f(d)).collect())
        };
        let cpu = if r.pids.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.2}", m(|x| x.cpu_per_gib))
        };
        let rounds: Vec<&[(String, f64)]> = s.iter().map(|x| x.per_trip.as_slice()).collect();
        let per_trip = medians_by_process(&rounds, r.pids.len(), 0);
        println!(
            "  {:<42} {:>11.2} {:>12} {:>11.2} {:>7.1} µs {:>7.1} µs {:>9.1} µs {:>9.1} µs  {}",
            r.name,
            m(|x| x.gbps),
            cpu,
            m(|x| x.busy_cores),
            m(|x| x.p50),
            m(|x| x.p99),
            added(|x| x.p50),
            added(|x| x.p99),
            if per_trip.is_empty() {
                "-".to_owned()
            } else {
                per_trip.join(", ")
            },
        );
    }
    // Each process's share of the bulk CPU: the gateway's own figure (the
    // jump host's, for OpenSSH), not only the whole path's; and the server
    // side's, every process but the technician's client (gateway and agent;
    // jump and target `sshd`), which do the same work on either path.
    println!("  bulk CPU-s/GiB by process (medians; server side: all but the client):");
    for (r, s) in routes.iter().zip(&samples) {
        if r.pids.is_empty() {
            continue;
        }
        let rounds: Vec<&[(String, f64)]> = s.iter().map(|x| x.by_process.as_slice()).collect();
        let each = medians_by_process(&rounds, r.pids.len(), 2);
        let server = median(s.iter().map(|x| server_side(&x.by_process)).collect());
        println!(
            "    {:<42} {}; server side {server:.2}",
            r.name,
            each.join(", ")
        );
    }
    paired_ratios(routes, &samples);
    Ok(())
}

/// The gateway's bulk CPU per GiB over the jump `sshd`'s, round by round:
/// the two ran in the same round, so a load that came and went weighs on
/// both alike. The medians above come from different rounds for each; on
/// a noisy host, the paired ratio is the steadier comparison.
fn paired_ratios(routes: &[Route], samples: &[Vec<Sample>]) {
    let of = |s: &Sample, who: &str| {
        s.by_process
            .iter()
            .find(|(name, _)| name == who)
            .map(|(_, v)| *v)
    };
    let Some(jump) = samples
        .iter()
        .position(|s| s.first().and_then(|x| of(x, JUMP_SSHD)).is_some())
    else {
        return;
    };
    let mut header = false;
    for (r, s) in routes.iter().zip(samples) {
        let mut ratios: Vec<f64> = s
            .iter()
            .zip(&samples[jump])
            .filter_map(|(a, j)| Some(of(a, GATEWAY)? / of(j, JUMP_SSHD)?))
            .filter(|v| v.is_finite())
            .collect();
        if ratios.is_empty() {
            continue;
        }
        if !header {
            println!(
                "  gateway ÷ jump sshd, bulk CPU-s/GiB, paired by round (below 1: the gateway took less):"
            );
            header = true;
        }
        let below = ratios.iter().filter(|v| **v < 1.0).count();
        let n = ratios.len();
        ratios.sort_by(f64::total_cmp);
        println!(
            "    {:<42} median {:.2}, {:.2}–{:.2}; below 1 in {below} of {n} round(s)",
            r.name,
            median(ratios.clone()),
            ratios[0],
            ratios[n - 1],
        );
    }
}

/// The role names the by-process figures give the gateway and OpenSSH's
/// jump host.
const GATEWAY: &str = "gateway";
const JUMP_SSHD: &str = "jump sshd";

/// The sum of a round's figures by process, less the technician's client
/// (`ssh`, `jg`).
fn server_side(by_process: &[(String, f64)]) -> f64 {
    by_process
        .iter()
        .filter(|(name, _)| !CLIENTS.contains(&name.as_str()))
        .map(|(_, v)| v)
        .sum()
}

/// The command names of the technician's side of a route.
const CLIENTS: [&str; 2] = ["ssh", "jg"];

/// Each of a route's `processes`' median over the rounds of one figure
/// (a round's figures by process, in the route's order), as "name value"
/// with `decimals` after the point.
fn medians_by_process(
    rounds: &[&[(String, f64)]],
    processes: usize,
    decimals: usize,
) -> Vec<String> {
    (0..processes)
        .map(|i| {
            let name = rounds
                .first()
                .and_then(|r| r.get(i))
                .map_or("?", |(n, _)| n.as_str());
            let v = median(
                rounds
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|p| p.1)
                    .collect(),
            );
            format!("{name} {v:.decimals$}")
        })
        .collect()
}

// ------------------------------------------------------ simulated agents

/// What the simulated agents report: how many are online, and every
/// failed attempt or lost connection by kind.
#[derive(Default)]
struct Fleet {
    online: AtomicUsize,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Fleet {
    fn fail(&self, kind: String) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    fn take_failures(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn wait_online(&self, n: usize, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while self.online.load(Ordering::Relaxed) != n {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {n} agents online after {limit:?}",
                    self.online.load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// An enrolled simulated agent.
struct SimAgent {
    agent_id: String,
    key: aws_lc_rs::signature::Ed25519KeyPair,
    /// Its own source address, so that per-address limits of the gateway
    /// see many endpoints, as in a real deployment.
    source: std::net::IpAddr,
}

async fn enroll_sim(
    url: &ServerUrl,
    fp: tls::Fingerprint,
    token: String,
    i: usize,
) -> Result<SimAgent> {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())?;
    let client = jumpgate_client::Client::new(url.clone(), &Trust::Pinned(fp), None)?;
    let enrolled = client
        .enroll(&jumpgate_api_types::EnrollRequest {
            token,
            name: format!("idle-{i}"),
            public_key: base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref()),
            details: Default::default(),
        })
        .await?;
    Ok(SimAgent {
        agent_id: enrolled.agent_id,
        key,
        source: std::net::IpAddr::from([127, 1, (i / 250) as u8, (i % 250 + 1) as u8]),
    })
}

/// Connects and performs the agent handshake; the error is the failure's kind.
async fn sim_handshake(
    agent: &SimAgent,
    target: SocketAddr,
    cfg: Arc<tokio_rustls::rustls::ClientConfig>,
) -> Result<
    (
        tokio_rustls::client::TlsStream<TcpStream>,
        bytes::BytesMut,
        u64,
    ),
    String,
> {
    let sock = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {:?}", e.kind()))?;
    sock.bind(SocketAddr::new(agent.source, 0))
        .map_err(|e| format!("bind: {:?}", e.kind()))?;
    let tcp = sock
        .connect(target)
        .await
        .map_err(|e| format!("connect: {:?}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1")
        .map_err(|e| e.to_string())?;
    let mut t = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {:?} {e}", e.kind()))?;
    let exporter = t
        .get_ref()
        .1
        .export_keying_material([0u8; 32], control::AUTH_EXPORTER_LABEL, None)
        .map_err(|e| format!("exporter: {e}"))?;
    let sig = agent
        .key
        .sign(&control::auth_message(&agent.agent_id, &exporter));
    let hello = Control::Hello(Hello {
        versions: control::SUPPORTED_VERSIONS.to_vec(),
        agent_id: agent.agent_id.clone(),
        signature: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
        info: Default::default(),
    });
    let mut out = bytes::BytesMut::new();
    Frame::Control(hello.to_bytes().into()).encode(&mut out);
    t.write_all(&out)
        .await
        .map_err(|e| format!("hello: {:?}", e.kind()))?;
    let mut buf = bytes::BytesMut::new();
    let answer = loop {
        if let Some(f) = Frame::decode(&mut buf).map_err(|e| format!("answer: {e}"))? {
            break f;
        }
        match t.read_buf(&mut buf).await {
            Ok(0) => return Err("closed during the handshake".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("answer: {:?}", e.kind())),
        }
    };
    match answer {
        Frame::Control(p) => match Control::from_bytes(&p) {
            Ok(Control::Welcome(w)) => Ok((t, buf, u64::from(w.heartbeat_secs.clamp(1, 300)))),
            Ok(Control::Reject(r)) => Err(format!("rejected: {:?}", r.code)),
            other => Err(format!("unexpected answer: {other:?}")),
        },
        other => Err(format!("unexpected frame: {other:?}")),
    }
}

/// Connects, serves until the connection ends, and reconnects with the real
/// agent's backoff, forever.
async fn sim_agent(
    agent: SimAgent,
    target: SocketAddr,
    cfg: Arc<tokio_rustls::rustls::ClientConfig>,
    fleet: Arc<Fleet>,
) {
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
                    Ok((_handle, _events, driver)) => {
                        fleet.online.fetch_add(1, Ordering::Relaxed);
                        let end = driver.await;
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

/// Enrolls and connects agents until `n` are online.
async fn grow_fleet(
    site: &Site,
    fleet: &Arc<Fleet>,
    tasks: &mut tokio::task::JoinSet<()>,
    tokens: &mut impl Iterator<Item = String>,
    n: usize,
) -> Result<()> {
    let url: ServerUrl = site.url.parse()?;
    let fp: tls::Fingerprint = site.fingerprint.parse()?;
    let target: SocketAddr = site.listen.parse()?;
    let cfg = tls::client_config(&Trust::Pinned(fp), &[AGENT_ALPN])?;
    let have = tasks.len();
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut enrolling = tokio::task::JoinSet::new();
    for i in have..n {
        let token = tokens.next().context("not enough tokens")?;
        let (url, sem) = (url.clone(), Arc::clone(&sem));
        enrolling.spawn(async move {
            let _p = sem.acquire().await;
            enroll_sim(&url, fp, token, i).await
        });
    }
    while let Some(agent) = enrolling.join_next().await {
        let agent = agent??;
        tasks.spawn(sim_agent(
            agent,
            target,
            Arc::clone(&cfg),
            Arc::clone(fleet),
        ));
    }
    fleet.wait_online(n, Duration::from_secs(600)).await
}

async fn memory(
    site: &Site,
    counts: &[usize],
    fleet: &Arc<Fleet>,
    tasks: &mut tokio::task::JoinSet<()>,
    tokens: &mut impl Iterator<Item = String>,
) -> Result<()> {
    let pid = site.gateway.id().context("gateway pid")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = rss_kib(pid)?;
    println!("gateway memory with idle agents (VmRSS of the gateway process)");
    println!(
        "  baseline (1 agent, after warm-up): {:.1} MiB",
        base as f64 / 1024.0
    );
    for &n in counts {
        let before = tasks.len();
        let started = Instant::now();
        grow_fleet(site, fleet, tasks, tokens, n).await?;
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = rss_kib(pid)?;
        let per = (rss.saturating_sub(base)) as f64 * 1024.0 / n as f64;
        println!(
            "  {n:>5} idle agents: {:.1} MiB  => {:.1} KB per idle agent  (enrolled+connected at {:.0}/s)",
            rss as f64 / 1024.0,
            per / 1000.0,
            n.saturating_sub(before) as f64 / took.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}

fn print_counts(title: &str, counts: &BTreeMap<String, u64>) {
    if counts.is_empty() {
        println!("  {title}: none");
        return;
    }
    println!("  {title}:");
    for (kind, n) in counts {
        println!("    {n:>7}  {kind}");
    }
}

/// Simulated agents the gateway lists as online.
async fn online_in_gateway(site: &Site) -> Result<usize> {
    let out = site.jg().args(["endpoints", "--json"]).output().await?;
    if !out.status.success() {
        // The new gateway may not answer yet.
        return Ok(0);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v.as_array().map_or(0, |a| {
        a.iter()
            .filter(|e| {
                e["online"] == serde_json::Value::Bool(true)
                    && e["name"].as_str().is_some_and(|n| n.starts_with("idle-"))
            })
            .count()
    }))
}

/// Restarts the gateway under `n` connected agents and times their return.
async fn reconnect_storm(site: &mut Site, fleet: &Fleet, n: usize) -> Result<()> {
    let before = fleet.take_failures();
    if !before.is_empty() {
        print_counts("failures while connecting the fleet", &before);
    }
    site.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let started = Instant::now();
    if let Some(pid) = site
        .gateway
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    tokio::time::timeout(Duration::from_secs(60), site.gateway.wait())
        .await
        .context("the gateway did not stop within 60 s")??;
    let stopped = started.elapsed();
    fleet.wait_online(0, Duration::from_secs(60)).await?;
    let (gateway, _, _) = start_gateway(
        &site.bins,
        site.dir.path(),
        &site.listen,
        &site.log,
        site.database.as_deref(),
    )
    .await
    .context("restarting the gateway")?;
    site.gateway = gateway;
    let listening = started.elapsed();
    let mut marks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    for pct in [50, 90, 99, 100] {
        let want = (n * pct).div_ceil(100);
        while fleet.online.load(Ordering::Relaxed) < want {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {n} agents back after 600 s",
                    fleet.online.load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        marks.push((pct, started.elapsed()));
    }
    let all = started.elapsed();
    // The agents count themselves online at the gateway's welcome; the
    // gateway registers them right after. Confirm with its own list.
    let confirmed = loop {
        if online_in_gateway(site).await? >= n {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            bail!("the gateway never listed all {n} agents online");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "reconnect storm: {n} agents connected, gateway restarted (SIGTERM, start again on the same port)"
    );
    println!(
        "  gateway stopped after        : {:6.2} s",
        stopped.as_secs_f64()
    );
    println!(
        "  new gateway listening after  : {:6.2} s",
        listening.as_secs_f64()
    );
    for (pct, at) in &marks {
        println!(
            "  {pct:>3} % back online after      : {:6.2} s  ({:.2} s after it listened)",
            at.as_secs_f64(),
            (*at - listening).as_secs_f64()
        );
    }
    println!(
        "  => all {n} agents back online {:.2} s after the restart began",
        all.as_secs_f64()
    );
    println!(
        "  gateway lists all {n} online   : {:6.2} s after the restart began",
        confirmed.as_secs_f64()
    );
    print_counts(
        "agent-side failures and lost connections, by kind",
        &fleet.take_failures(),
    );
    let log = std::mem::take(&mut *site.log.lock().unwrap_or_else(|e| e.into_inner()));
    print_counts("gateway warnings and errors, by kind", &log);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Stopped by a signal, the bench still drops what it started: its
    // gateways, agents, `sshd`s and clients are killed on drop, which a
    // process ended by the signal's default action never does.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (name, status) = tokio::select! {
        r = bench(args) => return r,
        _ = term.recv() => ("SIGTERM", 143),
        _ = tokio::signal::ctrl_c() => ("SIGINT", 130),
    };
    // The bench's future is dropped by now, and with it what it started.
    eprintln!("jumpgate-bench: stopped by {name}");
    std::process::exit(status);
}

/// What the command line asks for.
async fn bench(args: Args) -> Result<()> {
    if !args.tcp_relay_to.is_empty() {
        return tcp_relay(&args.tcp_relay_to).await;
    }
    if let Some(client) = &args.desktop_client {
        let display = args
            .desktop_display
            .as_deref()
            .context("--desktop-display")?;
        if client == "pipeline" {
            return desktop::pipeline::serve(display).await;
        }
        return desktop::xclients::run(client, display, args.desktop_paint_hz);
    }
    raise_fd_limit();
    if args.desktop {
        return desktop::run(&desktop::Opts {
            seconds: args.desktop_seconds,
            idle_seconds: args.desktop_idle_seconds,
            clicks: args.desktop_clicks,
            take_backs: args.desktop_take_backs,
            paint_hz: args.desktop_paint_hz,
            no_x11vnc: args.desktop_no_x11vnc,
            no_jumpgate: args.desktop_no_jumpgate,
        })
        .await;
    }
    if args.support {
        return support::run(&support::Opts {
            waiting: args.support_waiting,
            joins: args.support_joins,
            rate: args.support_rate,
            guess_seconds: args.support_guess_seconds,
        })
        .await;
    }
    if args.notify_mail > 0 {
        return notify_mail::run(args.notify_mail).await;
    }
    if args.store_writes {
        return store_writes::run(args.store_seconds, args.postgres.as_deref()).await;
    }
    if args.store {
        return store::run(&args).await;
    }
    if args.package_agents > 0 {
        return packages::run(args.package_agents, args.package_mib).await;
    }
    if args.analytics {
        return analytics::run(&analytics::Opts {
            events: args.analytics_events,
            report_events: args.analytics_report_events,
            runs: args.analytics_runs,
            postgres: args.postgres.clone(),
        })
        .await;
    }
    if args.ssh {
        return ssh::run(&args).await;
    }
    if args.notify {
        return notify::run(args.notify_events).await;
    }
    if args.epm_publish_agents > 0 {
        return epm::run(args.epm_publish_agents, args.epm_blobs).await;
    }
    let mut site = start_site(Bins::here()?, None).await?;
    println!(
        "Jumpgate benchmark — {} cores, release build, loopback",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    relay_section(&site, &args).await?;
    if args.recorded_mib > 0 {
        recorded_output(&site, args.recorded_mib).await?;
    }
    if args.system_rounds > 0 {
        system_streams(&site, args.system_rounds).await?;
    }
    let fleet = Arc::new(Fleet::default());
    let mut tasks = tokio::task::JoinSet::new();
    let wanted = args
        .agents
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(args.storm);
    if wanted > 0 && (!args.no_memory || args.storm > 0) {
        let mut tokens = site
            .admin(&["enroll-token", "--count", &wanted.to_string()])
            .await?
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter();
        if !args.no_memory {
            memory(&site, &args.agents, &fleet, &mut tasks, &mut tokens).await?;
        }
        if args.storm > 0 {
            grow_fleet(&site, &fleet, &mut tasks, &mut tokens, args.storm).await?;
            reconnect_storm(&mut site, &fleet, tasks.len()).await?;
        }
    }
    tasks.abort_all();
    stop(site).await;
    if args.store_seconds > 0 {
        store_writes::run(args.store_seconds, args.postgres.as_deref()).await?;
    }
    Ok(())
}

/// One request on the gateway's control socket; its answer.
async fn control(site: &Site, line: &str) -> Result<String> {
    let s = tokio::net::UnixStream::connect(site.dir.path().join("data").join("control.sock"))
        .await
        .context("the gateway's control socket")?;
    let (r, mut w) = s.into_split();
    w.write_all(format!("{line}\n").as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(r).read_line(&mut answer).await?;
    Ok(answer.trim().to_owned())
}

/// Round trips of the `echo` system topic: the gateway sends the body on a
/// system stream, the agent sends it back, the gateway hashes the reply.
async fn system_streams(site: &Site, rounds: usize) -> Result<()> {
    println!("\nsystem streams: echo round trip gateway → agent → gateway (median of {rounds})");
    for size in [0usize, 64 << 10, 1 << 20, 16 << 20] {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            let answer = control(site, &format!("system-echo bench {size}")).await?;
            if !answer.starts_with(&format!("ok {size} ")) {
                bail!("system-echo {size}: {answer}");
            }
            times.push(t.elapsed().as_secs_f64());
        }
        let med = median(times);
        let rate = if size == 0 {
            String::new()
        } else {
            format!(
                ", {:.0} MiB/s of body per round trip",
                size as f64 / med / f64::from(1 << 20)
            )
        };
        println!("  {:>8} KiB body: {:.2} ms{rate}", size >> 10, med * 1e3);
    }
    Ok(())
}

/// Runs `jg ARGS` with stdout discarded; returns the wall time.
async fn timed_jg(site: &Site, args: &[&str]) -> Result<Duration> {
    let t = Instant::now();
    let out = site
        .jg()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await?;
    if !out.status.success() {
        bail!("jg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(t.elapsed())
}

/// Terminal-like text output through a recorded exec session, next to the
/// same bytes as an (unrecorded) file download.
async fn recorded_output(site: &Site, mib: u64) -> Result<()> {
    let bytes = mib << 20;
    // `yes` adds the newline: 64 bytes a line.
    let line = "jumpgate recorded terminal output, a line of 64 characters 0123";
    let file = site.dir.path().join("output.txt");
    let make = format!("yes '{line}' | head -c {bytes} > {}", file.display());
    let status = Command::new("sh").args(["-c", &make]).status().await?;
    if !status.success() {
        bail!("cannot write the benchmark output file");
    }
    let cat = format!("cat {}", file.display());
    let recorded = timed_jg(site, &["shell", "bench", "--", "sh", "-c", &cat]).await?;
    let remote = format!("bench:{}", file.display());
    let copy = site.dir.path().join("copy.txt");
    let copied = timed_jg(site, &["cp", &remote, copy.to_str().context("path")?]).await?;
    let rate = |d: Duration| bytes as f64 / d.as_secs_f64() / (1 << 20) as f64;
    // Wait for the recording to be finished, then measure it.
    let mut rec = serde_json::Value::Null;
    for _ in 0..100 {
        let out = site.jg().args(["recordings", "--json"]).output().await?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        if let Some(r) = v.as_array().and_then(|a| a.first())
            && r["ended_at"].is_string()
        {
            rec = r.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = rec["id"]
        .as_str()
        .context("no finished recording")?
        .to_owned();
    let on_disk = std::fs::metadata(
        site.dir
            .path()
            .join("data/recordings")
            .join(format!("{id}.jgrec")),
    )?
    .len();
    let exported = timed_jg(site, &["recordings", "export", &id]).await?;
    println!("recorded session output, {mib} MiB of text");
    println!(
        "  jg shell -- cat (recorded)               : {:7.1} MiB/s",
        rate(recorded)
    );
    println!(
        "  jg cp download of the same file          : {:7.1} MiB/s",
        rate(copied)
    );
    println!(
        "  recording on disk                        : {:7.1} MiB ({:.2}x the output)",
        on_disk as f64 / (1 << 20) as f64,
        on_disk as f64 / bytes as f64
    );
    println!(
        "  jg recordings export                     : {:7.1} MiB/s of output",
        rate(exported)
    );
    Ok(())
}

/// Stops the gateway the way an operator would (SIGTERM, then wait).
async fn stop(mut site: Site) {
    if let Some(pid) = site
        .gateway
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = tokio::time::timeout(Duration::from_secs(60), site.gateway.wait()).await;
    }
}

fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.maximum.is_some() {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
}
