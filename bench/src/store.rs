//! The store figures (`--store`), on each engine in one run: SQLite (the
//! embedded default) and, with `--postgres URL`, PostgreSQL (a fresh
//! database created on that server with `psql`, dropped afterwards).
//!
//! - **Session open**: `GET /api/v1/endpoints/bench/connect?kind=exec` on a
//!   new TLS connection (as `jg` makes it), the upgrade, `Open(exec true)`
//!   and the gateway's `Accepted`, one after another: authorization, the
//!   session row, the audit entry, the recording's start and the agent's
//!   answer are all inside.
//! - **Endpoint list**: N endpoints enrolled through the real enrollment
//!   API, then `GET /api/v1/endpoints` (all of them, and a first page of
//!   1000) timed in this process and `jg endpoints` timed as a whole
//!   command (process start, TLS, the list page by page, printing the
//!   table).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jumpgate_net::dial::ServerUrl;
use jumpgate_net::session::{Answer, MsgStream};
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::session::{SessionKind, SessionRequest};
use tokio::process::Command;

use super::{Args, Bins, PASSWORD, Site, enroll_sim, start_site, stop, timed_jg};

/// Percentile `p` (0–100) of `v`, nearest rank.
fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(v: &mut [f64]) -> String {
    format!(
        "p50 {:6.2} ms  p99 {:6.2} ms  max {:6.2} ms",
        pct(v, 50.0) * 1e3,
        pct(v, 99.0) * 1e3,
        pct(v, 100.0) * 1e3
    )
}

async fn psql(server: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", server, "-c", sql])
        .output()
        .await
        .context("psql (Debian: postgresql-client)")?;
    if !out.status.success() {
        bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// `server` with its database path replaced by `db`.
fn with_database(server: &str, db: &str) -> Result<String> {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let rest = base
        .strip_prefix("postgres://")
        .or_else(|| base.strip_prefix("postgresql://"))
        .context("--postgres must be a postgres:// URL")?;
    let host = rest.split('/').next().unwrap_or(rest);
    Ok(match query {
        Some(q) => format!("postgres://{host}/{db}?{q}"),
        None => format!("postgres://{host}/{db}"),
    })
}

pub(crate) async fn run(args: &Args) -> Result<()> {
    println!(
        "Jumpgate store figures — {} cores, release build, loopback; {} session opens, {} endpoints",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.session_opens,
        args.store_endpoints
    );
    if args.store_seconds > 0 {
        super::store_writes::run(args.store_seconds, args.postgres.as_deref()).await?;
    }
    engine(args, "SQLite (embedded, SQLCipher)", None).await?;
    if let Some(server) = &args.postgres {
        let db = format!("jg_bench_{}", std::process::id());
        psql(server, &format!("CREATE DATABASE {db}")).await?;
        let url = with_database(server, &db)?;
        let result = engine(args, "PostgreSQL", Some(url)).await;
        if let Err(e) = psql(server, &format!("DROP DATABASE {db} WITH (FORCE)")).await {
            eprintln!("could not drop the benchmark database {db}: {e:#}");
        }
        result?;
    } else {
        println!("\n(PostgreSQL skipped: pass --postgres URL)");
    }
    Ok(())
}

async fn engine(args: &Args, name: &str, database: Option<String>) -> Result<()> {
    println!("\n{name}");
    let site = start_site(Bins::here()?, database).await?;
    let result = measure(&site, args).await;
    stop(site).await;
    result
}

async fn measure(site: &Site, args: &Args) -> Result<()> {
    let url: ServerUrl = site.url.parse()?;
    let fp: tls::Fingerprint = site.fingerprint.parse()?;
    let anon = jumpgate_client::Client::new(url.clone(), &Trust::Pinned(fp), None)?;
    let login = anon.login("operator", PASSWORD, None).await?;
    let client = anon.with_token(login.token);

    // Warm-up: the first sessions pay for lazily built state on each side.
    for _ in 0..5 {
        open_once(&client).await?;
    }
    let mut opens = Vec::with_capacity(args.session_opens);
    let (mut upgrades, mut answers, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.session_opens {
        let (upgraded, accepted, ended) = open_once(&client).await?;
        opens.push(accepted.as_secs_f64());
        upgrades.push(upgraded.as_secs_f64());
        answers.push((accepted - upgraded).as_secs_f64());
        ends.push((ended - accepted).as_secs_f64());
    }
    println!(
        "  session open (API call → Accepted), {} sequential: {}",
        opens.len(),
        ms(&mut opens)
    );
    println!(
        "    of which API call → 101 (TLS, authentication, authorization): {}",
        ms(&mut upgrades)
    );
    println!(
        "    and Open → Accepted (session row + audit commit, recording, agent): {}",
        ms(&mut answers)
    );
    println!(
        "  then Accepted → the session's end at the client (`true` runs, exits; the end recorded): {}",
        ms(&mut ends)
    );

    let n = args.store_endpoints;
    if n == 0 {
        return Ok(());
    }
    let t = Instant::now();
    let tokens: Vec<String> = site
        .admin(&["enroll-token", "--count", &n.to_string()])
        .await?
        .lines()
        .map(str::to_owned)
        .collect();
    if tokens.len() != n {
        bail!("asked for {n} enrollment tokens, got {}", tokens.len());
    }
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut enrolling = tokio::task::JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (url, sem) = (url.clone(), std::sync::Arc::clone(&sem));
        enrolling.spawn(async move {
            let _p = sem.acquire().await;
            enroll_sim(&url, fp, token, i).await.map(|_| ())
        });
    }
    while let Some(r) = enrolling.join_next().await {
        r??;
    }
    let took = t.elapsed();
    println!(
        "  {n} endpoints enrolled through the API in {:.1} s ({:.0}/s, 32 at a time)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let listed = client.endpoints().await?.len();
    if listed < n {
        bail!("the endpoint list has {listed} entries, expected at least {n}");
    }
    hold(site).await?;
    let mut api = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let list = client.endpoints().await?;
        api.push(t.elapsed().as_secs_f64());
        std::hint::black_box(list);
    }
    println!(
        "  GET /api/v1/endpoints ({listed} endpoints), 50 times: {}",
        ms(&mut api)
    );
    let mut first = Vec::new();
    let page = jumpgate_client::EndpointFilter {
        limit: Some(1000),
        ..Default::default()
    };
    for _ in 0..50 {
        let t = Instant::now();
        let list = client.endpoints_page(&page).await?;
        first.push(t.elapsed().as_secs_f64());
        std::hint::black_box(list);
    }
    println!(
        "  GET /api/v1/endpoints?limit=1000 (a first page), 50 times: {}",
        ms(&mut first)
    );
    let mut cli = Vec::new();
    for _ in 0..30 {
        cli.push(timed_jg(site, &["endpoints"]).await?.as_secs_f64());
    }
    println!(
        "  jg endpoints ({listed} endpoints, whole command), 30 times: {}",
        ms(&mut cli)
    );
    Ok(())
}

/// One exec session opened and answered; the times to the upgrade, to
/// `Accepted`, and to the end of the session's stream.
async fn open_once(client: &jumpgate_client::Client) -> Result<(Duration, Duration, Duration)> {
    let t = Instant::now();
    let io = client.connect("bench", SessionKind::Exec).await?;
    let upgraded = t.elapsed();
    let mut s = MsgStream::new(io);
    let answer = s
        .open(SessionRequest::Exec {
            command: vec!["true".into()],
        })
        .await
        .map_err(|e| anyhow::anyhow!("session open: {e}"))?;
    let took = t.elapsed();
    match answer {
        Answer::Accepted(_) => {}
        Answer::Refused(r) => bail!("session refused: {}", r.message),
    }
    // Let the session end on its own (`true` exits): the next one does
    // not queue behind it.
    while let Ok(Some(_)) = s.read_msg().await {}
    Ok((upgraded, took, t.elapsed()))
}

/// With `JUMPGATE_BENCH_HOLD=FILE`: the site is described in FILE (its
/// `JG_HOME`, URL, CA fingerprint and the gateway's pid) once the
/// endpoints are enrolled, and the run waits until FILE is removed: time
/// to profile the gateway or `jg` by hand against a full site.
async fn hold(site: &Site) -> Result<()> {
    let Some(file) = std::env::var_os("JUMPGATE_BENCH_HOLD") else {
        return Ok(());
    };
    let about = format!(
        "JG_HOME={}\nURL={}\nFP={}\nGATEWAY_PID={}\n",
        site.dir.path().join("jg").display(),
        site.url,
        site.fingerprint,
        site.gateway.id().unwrap_or(0),
    );
    std::fs::write(&file, about)?;
    eprintln!("holding until {} is removed", file.to_string_lossy());
    while std::fs::exists(&file)? {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
