//! `--support`: attended support's figures.
//!
//! 1. *Customer joins → the technician's queue shows it*, with N customers
//!    already waiting: each customer's client (simulated in this process at
//!    the protocol level: real TLS, the real `AssistHello` with an ephemeral
//!    key and a ticket from a real portal download) is timed from its TCP
//!    connect to the `waiting` event on one technician's event stream
//!    (`GET /api/v1/support/events`, what the console and `jg support queue
//!    --watch` follow).
//! 2. *Key guessing*: wrong session keys per second the portal accepts for
//!    verification (answers other than 429) from 1, 16 and 254 source
//!    addresses (127.0.0.x), and what that means for finding one live
//!    10-digit key.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jumpgate_api_types::support as api;
use jumpgate_net::dial::ServerUrl;
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::assist::Trailer;
use jumpgate_test_support::assist::SimCustomer;
use tokio::sync::Mutex;

use super::{Bins, PASSWORD, Site, start_site_with};

/// What `--support` measures.
pub(crate) struct Opts {
    pub(crate) waiting: usize,
    pub(crate) joins: usize,
    pub(crate) rate: f64,
    pub(crate) guess_seconds: u64,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

pub(crate) async fn run(o: &Opts) -> Result<()> {
    println!(
        "Jumpgate attended support figures — {} cores, release build, loopback",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir()?;
    // The download's executable does not matter here (its trailer does):
    // a small file keeps hundreds of downloads from measuring the copy.
    let small = dir.path().join("assist-binary");
    std::fs::write(&small, b"\x7fELF benchmark stand-in")?;
    let site = start_site_with(
        Bins::here()?,
        None,
        &["--assist-binary", small.to_str().unwrap_or_default()],
    )
    .await?;
    let result = measure(&site, o).await;
    super::stop(site).await;
    result
}

async fn measure(site: &Site, o: &Opts) -> Result<()> {
    let url: ServerUrl = site.url.parse()?;
    let fp: tls::Fingerprint = site.fingerprint.parse()?;
    let anon = jumpgate_client::Client::new(url.clone(), &Trust::Pinned(fp), None)?;
    let login = anon.login("operator", PASSWORD, None).await?;
    let tech = anon.with_token(login.token);
    let max = u32::try_from(o.waiting + o.joins + 10)?;
    tech.create_queue(&api::CreateQueue {
        name: "bench".into(),
        group: "default".into(),
        description: String::new(),
        public: true,
        auto_assign: false,
        max_waiting: Some(max),
        members: vec!["operator".into()],
    })
    .await
    .context("creating the queue")?;

    // Tickets first (each a real request + download), so that making them
    // is not part of what is measured. The portal allows 3 requests at
    // once and 6 a minute per address: each request comes from its own
    // loopback address.
    let total = o.waiting + o.joins;
    println!("  preparing {total} customers (request form + download each)");
    let tickets = prepare(site, &url, fp, total).await?;

    let mut events = tech.support_events().await?;
    match events.next().await? {
        Some(api::SupportEvent::Snapshot { .. }) => {}
        other => bail!("expected a snapshot first, got {other:?}"),
    }
    // The event stream is read by its own task, which stamps each
    // `waiting` event as it arrives.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let notify = Arc::new(tokio::sync::Notify::new());
    {
        let (seen, notify) = (Arc::clone(&seen), Arc::clone(&notify));
        tokio::spawn(async move {
            while let Ok(Some(e)) = events.next().await {
                if let api::SupportEvent::Session { session } = e
                    && session.state == "waiting"
                    && session.online
                {
                    seen.lock()
                        .await
                        .entry(session.id)
                        .or_insert_with(Instant::now);
                    notify.notify_waiters();
                }
            }
        });
    }
    let mut clients = Vec::with_capacity(total);
    let mut tickets = tickets.into_iter();
    let started = Instant::now();
    for t in tickets.by_ref().take(o.waiting) {
        clients.push(
            SimCustomer::connect(&t.url, &t.fingerprint, &t.ticket)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    wait_seen(&seen, &notify, o.waiting, Duration::from_secs(120)).await?;
    println!(
        "  {} customers waiting (joined in {:.1} s)",
        o.waiting,
        started.elapsed().as_secs_f64()
    );

    let period = Duration::from_secs_f64(1.0 / o.rate);
    let mut lat = Vec::with_capacity(o.joins);
    let mut next = tokio::time::Instant::now();
    let mut pending = Vec::new();
    for t in tickets {
        tokio::time::sleep_until(next).await;
        next += period;
        let t0 = Instant::now();
        let c = SimCustomer::connect(&t.url, &t.fingerprint, &t.ticket)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        pending.push((t.support_id, t0));
        clients.push(c);
    }
    wait_seen(&seen, &notify, total, Duration::from_secs(120)).await?;
    let seen = seen.lock().await;
    for (id, t0) in pending {
        let at = seen.get(&id).context("a join never showed")?;
        lat.push(at.duration_since(t0).as_secs_f64() * 1000.0);
    }
    println!(
        "  customer joins → technician's queue shows it, {} joins at {}/s with {} waiting: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        o.rate,
        o.waiting,
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0),
    );
    drop(clients);

    if o.guess_seconds > 0 {
        guessing(site, &url, fp, o.guess_seconds).await?;
    }
    Ok(())
}

async fn wait_seen(
    seen: &Mutex<HashMap<String, Instant>>,
    notify: &tokio::sync::Notify,
    n: usize,
    within: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let wake = notify.notified();
        if seen.lock().await.len() >= n {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, wake).await.is_err() {
            bail!("only {} of {n} joins showed", seen.lock().await.len());
        }
    }
}

/// A client bound to source address `ip`.
fn client_from(
    url: &ServerUrl,
    fp: tls::Fingerprint,
    ip: IpAddr,
) -> Result<jumpgate_client::Client> {
    Ok(jumpgate_client::Client::new(url.clone(), &Trust::Pinned(fp), None)?.bind_source(ip))
}

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        (i / 250) as u8 + 1,
        (i % 250) as u8 + 2,
    ))
}

async fn prepare(
    site: &Site,
    url: &ServerUrl,
    fp: tls::Fingerprint,
    n: usize,
) -> Result<Vec<Trailer>> {
    let dir = tempfile::tempdir()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let c = client_from(url, fp, source(i))?;
        let dl = c
            .portal_request(&api::HelpRequest {
                name: format!("Customer {i}"),
                problem: "benchmark".into(),
                queue: "bench".into(),
            })
            .await
            .with_context(|| format!("request {i}"))?;
        let file = dir.path().join("dl");
        c.download_to(&dl.download, &file).await?;
        out.push(trailer_of(&file)?);
    }
    let _ = site;
    Ok(out)
}

fn trailer_of(file: &Path) -> Result<Trailer> {
    let bytes = std::fs::read(file)?;
    Trailer::parse(&bytes)?.context("the download has no trailer")
}

/// Wrong keys per second the portal verifies, from `addrs` source addresses.
async fn guessing(site: &Site, url: &ServerUrl, fp: tls::Fingerprint, seconds: u64) -> Result<()> {
    let _ = site;
    println!(
        "  session key guessing ({seconds} s each, wrong keys, answers other than 429 counted):"
    );
    for addrs in [1usize, 16, 254] {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for a in 0..addrs {
            let c = client_from(url, fp, IpAddr::V4(Ipv4Addr::new(127, 1, 0, a as u8 + 1)))?;
            tasks.spawn(async move {
                let (mut verified, mut limited) = (0u64, 0u64);
                let mut k = a as u64 * 1_000_003;
                while Instant::now() < deadline {
                    k += 1;
                    let key = format!("{:010}", k % 10_000_000_000);
                    match c.portal_redeem(&key).await {
                        Err(jumpgate_client::ClientError::Api { status: 429, .. }) => {
                            limited += 1;
                            // A client that honours Retry-After gets no more.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        _ => verified += 1,
                    }
                }
                (verified, limited)
            });
        }
        let (mut verified, mut limited) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            let (v, l) = r?;
            verified += v;
            limited += l;
        }
        let rate = verified as f64 / seconds as f64;
        // Expected time to hit one of `live` live keys: 10^10 / (rate × live).
        let years = |live: f64| 1e10 / (rate.max(1e-9) * live) / (365.25 * 86400.0);
        println!(
            "    {addrs:>3} addresses: {rate:.2} keys verified/s ({verified} verified, {limited} refused with 429); one live key found after ~{:.0} years on average (10 live keys: ~{:.0} years)",
            years(1.0),
            years(10.0)
        );
        // The limits refill before the next round.
        tokio::time::sleep(Duration::from_secs(61)).await;
    }
    Ok(())
}
