//! (`--analytics`, alone) Analytics (issue #15): events ingested per second
//! by each backend's write identity, and report query latency by the read
//! identity over a large store.
//!
//! - **Ingest**: `--analytics-report-events` synthetic events (a year of a
//!   site: sessions, logins, elevations, support, other audit entries, in
//!   time order as the shipper sends them) inserted in batches of 1000 —
//!   the shipper's batch — into the embedded SQLCipher file
//!   (`synchronous=FULL`, one transaction per batch with its day rollups)
//!   and, with `--postgres URL`, into PostgreSQL through the write role
//!   that `jumpgate admin analytics init` makes (one `INSERT … SELECT FROM
//!   UNNEST` per batch, the rollups by its statement trigger). The rate is
//!   printed for each step of `--analytics-events` events, so that a rate
//!   falling as the file grows shows.
//! - **Reports**: then each report run `--analytics-runs` times over the
//!   whole year, over the last 7 days, over the last 7 days from 10:00
//!   (partial first day: from the events) and over the last 7 days of one
//!   group (a group filter: from the events), timed from the query to the
//!   shaped table; p50 and p99.

use std::time::Duration;

use anyhow::{Context, Result};
use jumpgate_server::analytics::bench::{Bench, synthetic};

/// What `--analytics` measures.
#[derive(Clone, Debug)]
pub(crate) struct Opts {
    pub(crate) events: usize,
    pub(crate) report_events: usize,
    pub(crate) runs: usize,
    pub(crate) postgres: Option<String>,
}

const BATCH: usize = 1000;
/// Events generated and inserted per step (memory bound).
const STEP: usize = 200_000;
/// 2025-12-25, the last 7 days of the synthetic year.
const LAST_WEEK: i64 = 1_766_620_800_000;
/// 2025-12-25T10:00:00Z.
const LAST_WEEK_10H: i64 = LAST_WEEK + 10 * 3_600_000;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

async fn grow(b: &Bench, from: usize, to: usize, total: usize) -> Result<Duration> {
    let mut spent = Duration::ZERO;
    let mut i = from;
    while i < to {
        let n = STEP.min(to - i);
        let events = synthetic(i as u64, n, total as u64, 7);
        spent += b.ingest(&events, BATCH).await.context("ingest")?;
        i += n;
    }
    Ok(spent)
}

async fn reports(b: &Bench, runs: usize) -> Result<()> {
    for (label, since, group) in [
        ("whole year", None, None),
        ("last 7 days", Some(LAST_WEEK), None),
        ("last 7 days from 10:00", Some(LAST_WEEK_10H), None),
        ("last 7 days of group-7", Some(LAST_WEEK), Some("group-7")),
    ] {
        println!("  reports over the {label} ({runs} runs each):");
        for name in Bench::report_names() {
            let mut times = Vec::with_capacity(runs);
            let mut rows = 0;
            for _ in 0..runs {
                let (t, n) = b.report(name, since, None, group).await.context("report")?;
                times.push(t);
                rows = n;
            }
            println!(
                "    {name:<26} rows {rows:>5}  p50 {:8.1} ms  p99 {:8.1} ms",
                pct(&mut times, 50.0).as_secs_f64() * 1e3,
                pct(&mut times, 99.0).as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}

async fn engine(name: &str, b: &Bench, o: &Opts) -> Result<()> {
    let total = o.report_events.max(o.events);
    let step = o.events.clamp(1, total);
    let mut spent = Duration::ZERO;
    let mut at = 0;
    while at < total {
        let to = (at + step).min(total);
        let t = grow(b, at, to, total).await?;
        spent += t;
        println!(
            "{name}: events {at:>9}..{to:<9} ingested at {:>7.0} events/s",
            (to - at) as f64 / t.as_secs_f64()
        );
        at = to;
    }
    println!(
        "{name}: ingest {total} events in batches of {BATCH}: {:.1} s, {:.0} events/s overall",
        spent.as_secs_f64(),
        total as f64 / spent.as_secs_f64()
    );
    // A resend of the first batches: the ids are kept, nothing changes.
    let again = synthetic(0, 10_000, total as u64, 7);
    let t = b.ingest(&again, BATCH).await?;
    println!(
        "{name}: resend of 10000 stored events (all skipped): {:.0} events/s",
        10_000.0 / t.as_secs_f64()
    );
    reports(b, o.runs).await
}

pub(crate) async fn run(o: &Opts) -> Result<()> {
    println!(
        "Jumpgate analytics benchmark — {} cores, release build",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir()?;
    let b = Bench::embedded(dir.path()).await?;
    engine("embedded (SQLCipher)", &b, o).await?;
    b.close().await;
    let size = std::fs::metadata(dir.path().join("analytics.db")).map_or(0, |m| m.len());
    println!("embedded file: {:.0} MiB", size as f64 / (1 << 20) as f64);
    if let Some(url) = &o.postgres {
        let tag: String = std::process::id().to_string();
        let db = format!("jg_bench_analytics_{tag}");
        psql(url, &format!("CREATE DATABASE {db}")).await?;
        let (server, _) = url
            .split('?')
            .next()
            .and_then(|u| u.rsplit_once('/'))
            .context("--postgres: expected postgres://USER@HOST:PORT/DB")?;
        let b = Bench::postgres(&format!("{server}/{db}"), &tag).await?;
        let r = engine("postgres", &b, o).await;
        b.close().await;
        psql(url, &format!("DROP DATABASE {db} WITH (FORCE)")).await?;
        for role in [format!("jg_bench_w_{tag}"), format!("jg_bench_r_{tag}")] {
            psql(url, &format!("DROP ROLE IF EXISTS {role}")).await?;
        }
        r?;
    }
    drop(dir);
    Ok(())
}

async fn psql(url: &str, sql: &str) -> Result<()> {
    let out = tokio::process::Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .await
        .context("psql")?;
    anyhow::ensure!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
