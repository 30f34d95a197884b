//! Jumpgate benchmarks. Prints figures; asserts nothing.
//!
//! ```text
//! cargo build --release -p jumpgate -p jumpgate-bench
//! target/release/jumpgate-bench            # everything
//! target/release/jumpgate-bench --agents 1000 --seconds 3
//! ```
//!
//! Measures, against the release `jumpgate` and `jg` binaries next to this
//! one, on loopback:
//! 1. bulk throughput of one stream `jg forward` → gateway → agent → sink,
//!    next to a direct loopback connection to the same sink;
//! 2. 64-byte ping-pong round trips (p50/p99) through the same path and direct;
//! 3. the gateway's resident memory with N idle agents connected (real agent
//!    handshakes and heartbeats, opened from this process);
//! 4. recorded session output: `jg shell bench -- CMD` printing text (every
//!    byte recorded, encrypted and fsync'd each second), next to `jg cp`
//!    downloading the same bytes (not recorded); the recording's size on
//!    disk; and `jg recordings export` of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::Parser;
use jumpgate_net::dial::{self, ServerUrl};
use jumpgate_net::mux::{self, DriverConfig, MuxHandle};
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::control::{self, AGENT_ALPN, Control, Hello};
use jumpgate_proto::frame::Frame;
use jumpgate_proto::mux::Role;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

#[derive(Parser, Debug)]
#[command(about = "Jumpgate benchmarks (prints figures)")]
struct Args {
    /// Seconds of bulk transfer per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Ping-pong round trips per latency measurement.
    #[arg(long, default_value_t = 20_000)]
    round_trips: usize,
    /// Idle agent counts to measure gateway memory at (cumulative).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    agents: Vec<usize>,
    /// Skip the idle-agent memory measurement.
    #[arg(long)]
    no_memory: bool,
    /// MiB of terminal output for the recording measurement (0: skip it).
    #[arg(long, default_value_t = 256)]
    recorded_mib: u64,
}

const PASSWORD: &str = "a-long-benchmark-passphrase-7";

fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found next to {}; build it first: cargo build --release -p jumpgate -p jumpgate-bench",
            name,
            exe.display()
        );
    }
    Ok(path)
}

struct Site {
    dir: tempfile::TempDir,
    gateway: Child,
    url: String,
    fingerprint: String,
    _agent: Child,
}

impl Site {
    fn jg(&self) -> Result<Command> {
        let mut c = Command::new(bin("jg")?);
        c.env("JG_HOME", self.dir.path().join("jg"))
            .kill_on_drop(true);
        Ok(c)
    }

    async fn admin(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(bin("jumpgate")?)
            .args(["admin", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(args)
            .output()
            .await?;
        if !out.status.success() {
            bail!("admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

async fn start_site() -> Result<Site> {
    let dir = tempfile::tempdir()?;
    let mut gateway = Command::new(bin("jumpgate")?)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(gateway.stdout.take().context("stdout")?).lines();
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
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PASSWORD)?;
    let mut site = Site {
        dir,
        gateway,
        url,
        fingerprint,
        _agent: Command::new("true").spawn()?,
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
        .jg()?
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
    site._agent = Command::new(bin("jumpgate")?)
        .args([
            "agent",
            "--server",
            &site.url,
            "--ca-fingerprint",
            &site.fingerprint,
            "--name",
            "bench",
        ])
        .args(["--enroll-token", token.trim(), "--state-dir"])
        .arg(site.dir.path().join("agent"))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    for _ in 0..200 {
        let out = site.jg()?.args(["endpoints", "--json"]).output().await?;
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
        .jg()?
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

async fn bulk(
    to: SocketAddr,
    seconds: u64,
    results: &mut tokio::sync::mpsc::Receiver<(u64, Duration)>,
) -> Result<f64> {
    let mut s = TcpStream::connect(to).await?;
    let buf = vec![0x5au8; 256 * 1024];
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        s.write_all(&buf).await?;
    }
    s.shutdown().await?;
    drop(s);
    let (bytes, took) = results.recv().await.context("sink result")?;
    Ok(bytes as f64 * 8.0 / took.as_secs_f64() / 1e9)
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

/// One idle agent: enrolled over the API, connected with a real handshake,
/// kept alive by heartbeats from this process.
async fn idle_agent(
    url: &ServerUrl,
    fp: tls::Fingerprint,
    token: String,
    i: usize,
) -> Result<MuxHandle> {
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
    let cfg = tls::client_config(&Trust::Pinned(fp), &[AGENT_ALPN])?;
    let mut t = dial::connect_tls(url, cfg, None).await?;
    let exporter =
        t.get_ref()
            .1
            .export_keying_material([0u8; 32], control::AUTH_EXPORTER_LABEL, None)?;
    let sig = key.sign(&control::auth_message(&enrolled.agent_id, &exporter));
    let hello = Control::Hello(Hello {
        versions: control::SUPPORTED_VERSIONS.to_vec(),
        agent_id: enrolled.agent_id,
        signature: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
        info: Default::default(),
    });
    let mut out = bytes::BytesMut::new();
    Frame::Control(hello.to_bytes().into()).encode(&mut out);
    t.write_all(&out).await?;
    let mut buf = bytes::BytesMut::new();
    let welcome = loop {
        if let Some(f) = Frame::decode(&mut buf)? {
            break f;
        }
        if t.read_buf(&mut buf).await? == 0 {
            bail!("gateway closed during handshake");
        }
    };
    if !matches!(welcome, Frame::Control(ref p) if matches!(Control::from_bytes(p), Ok(Control::Welcome(_))))
    {
        bail!("not welcomed: {welcome:?}");
    }
    let (handle, _events, driver) = mux::start(
        t,
        Role::Agent,
        &buf,
        DriverConfig {
            ping_interval: Some(Duration::from_secs(20)),
            idle_timeout: Duration::from_secs(600),
            ..DriverConfig::default()
        },
    )?;
    tokio::spawn(async move {
        let _events = _events;
        let _ = driver.await;
    });
    Ok(handle)
}

async fn memory(site: &Site, counts: &[usize]) -> Result<()> {
    let pid = site.gateway.id().context("gateway pid")?;
    let url: ServerUrl = site.url.parse()?;
    let fp: tls::Fingerprint = site.fingerprint.parse()?;
    let total = counts.iter().copied().max().unwrap_or(0);
    let tokens: Vec<String> = site
        .admin(&["enroll-token", "--count", &total.to_string()])
        .await?
        .lines()
        .map(str::to_owned)
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = rss_kib(pid)?;
    println!("gateway memory with idle agents (VmRSS of the gateway process)");
    println!(
        "  baseline (1 agent, after warm-up): {:.1} MiB",
        base as f64 / 1024.0
    );
    let mut handles = Vec::new();
    let mut tokens = tokens.into_iter();
    for &n in counts {
        let before = handles.len();
        let started = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(32));
        let mut tasks = Vec::new();
        for i in handles.len()..n {
            let token = tokens.next().context("not enough tokens")?;
            let (url, sem) = (url.clone(), Arc::clone(&sem));
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await;
                idle_agent(&url, fp, token, i).await
            }));
        }
        for t in tasks {
            handles.push(t.await??);
        }
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = rss_kib(pid)?;
        let per = (rss.saturating_sub(base)) as f64 * 1024.0 / n as f64;
        println!(
            "  {n:>5} idle agents: {:.1} MiB  => {:.1} KB per idle agent  (enrolled+connected at {:.0}/s)",
            rss as f64 / 1024.0,
            per / 1000.0,
            (n - before) as f64 / took.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    raise_fd_limit();
    let site = start_site().await?;
    println!(
        "Jumpgate benchmark — {} cores, release build, loopback",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let (sink_addr, mut results) = sink().await?;
    let (_fwd_sink, via_sink) = forward(&site, sink_addr).await?;
    let direct = bulk(sink_addr, args.seconds, &mut results).await?;
    let via = bulk(via_sink, args.seconds, &mut results).await?;
    println!("bulk throughput, one stream, {} s each", args.seconds);
    println!("  direct loopback                          : {direct:6.2} Gbit/s");
    println!("  jg forward -> gateway -> agent -> sink   : {via:6.2} Gbit/s");

    let echo_addr = echo().await?;
    let (_fwd_echo, via_echo) = forward(&site, echo_addr).await?;
    let (d50, d99) = ping_pong(echo_addr, args.round_trips).await?;
    let (v50, v99) = ping_pong(via_echo, args.round_trips).await?;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("64-byte ping-pong round trip, {} samples", args.round_trips);
    println!(
        "  direct loopback      : p50 {:7.1} µs   p99 {:7.1} µs",
        us(d50),
        us(d99)
    );
    println!(
        "  through the gateway  : p50 {:7.1} µs   p99 {:7.1} µs",
        us(v50),
        us(v99)
    );
    println!(
        "  added by the gateway : p50 {:7.1} µs   p99 {:7.1} µs",
        us(v50) - us(d50),
        us(v99) - us(d99)
    );
    if args.recorded_mib > 0 {
        recorded_output(&site, args.recorded_mib).await?;
    }
    if !args.no_memory {
        memory(&site, &args.agents).await?;
    }
    stop(site).await;
    Ok(())
}

/// Runs `jg ARGS` with stdout discarded; returns the wall time.
async fn timed_jg(site: &Site, args: &[&str]) -> Result<Duration> {
    let t = Instant::now();
    let out = site
        .jg()?
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
        let out = site.jg()?.args(["recordings", "--json"]).output().await?;
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
