//! `--notify` (alone): outbound events (issue #17). Audit entries made
//! through the API (`POST /api/v1/groups`, 4 callers at once) and
//! delivered to a webhook receiver in this process (plain HTTP on
//! loopback, answering 204 at once):
//!
//! - events delivered per second to that fast receiver, and each event's
//!   delay from the API's answer to its arrival (p50/p99);
//! - the same with a second subscription, to a dead receiver (accepts the
//!   connection and never answers), getting every event too: the delay it
//!   adds to the fast one (target: none);
//! - the fast receiver again, answering `Connection: close` each time (a
//!   new connection per delivery, as before the workers kept theirs): what
//!   keep-alive saves. Each phase says how many connections it took.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jumpgate_net::dial::ServerUrl;
use jumpgate_net::tls::{self, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Bins, PASSWORD, start_site, stop};

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// A receiver answering 204 to each request (keeping the connection open,
/// or closing it after each answer when `close`); records each body's
/// `target` with its arrival time, and counts connections.
async fn fast_receiver(close: bool) -> Result<(String, Arrivals, Arc<AtomicUsize>)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", l.local_addr()?);
    let got: Arrivals = Arc::default();
    let conns = Arc::new(AtomicUsize::new(0));
    let (g, n) = (Arc::clone(&got), Arc::clone(&conns));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            n.fetch_add(1, Ordering::Relaxed);
            let g = Arc::clone(&g);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 8192];
                    let (head_end, len) = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    while buf.len() < head_end + len {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let at = Instant::now();
                    let body: serde_json::Value =
                        serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or_default();
                    if let Some(t) = body["target"].as_str() {
                        g.lock().unwrap().insert(t.to_owned(), at);
                    }
                    buf.drain(..head_end + len);
                    let answer: &[u8] = if close {
                        b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
                    } else {
                        b"HTTP/1.1 204 No Content\r\n\r\n"
                    };
                    if s.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, got, conns))
}

/// A receiver that accepts connections and never answers.
async fn dead_receiver() -> Result<String> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", l.local_addr()?);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    Ok(url)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Makes `n` groups named `prefix-i` (4 callers at once), waits for each
/// at the receiver; prints the rate and delays.
async fn phase(
    client: &jumpgate_client::Client,
    got: &Arrivals,
    prefix: &str,
    n: usize,
    label: &str,
) -> Result<(f64, Duration, Duration)> {
    let made: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (client, made) = (client.clone(), Arc::clone(&made));
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(4) {
                let name = format!("{prefix}-{i}");
                client
                    .create_group(&jumpgate_api_types::CreateGroup {
                        name: name.clone(),
                        description: String::new(),
                        consent: None,
                    })
                    .await?;
                made.lock().unwrap().insert(name, Instant::now());
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let made_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let have = got
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(&format!("{prefix}-")))
            .count();
        if have >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("{label}: {have} of {n} events arrived in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let made = made.lock().unwrap().clone();
    let got = got.lock().unwrap().clone();
    let mut delays: Vec<Duration> = made
        .iter()
        .filter_map(|(k, t)| got.get(k).map(|a| a.saturating_duration_since(*t)))
        .collect();
    delays.sort();
    let last = made
        .keys()
        .filter_map(|k| got.get(k))
        .max()
        .copied()
        .unwrap_or(start);
    let total = last.duration_since(start);
    let rate = n as f64 / total.as_secs_f64();
    let (p50, p99) = (pct(&delays, 0.5), pct(&delays, 0.99));
    println!(
        "  {label:<44} {n} events made in {:>6.2} s; all delivered after {:>6.2} s: {rate:>7.0} events/s; delay answer→arrival p50 {:>7.1} ms, p99 {:>7.1} ms",
        made_in.as_secs_f64(),
        total.as_secs_f64(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    Ok((rate, p50, p99))
}

pub(crate) async fn run(events: usize) -> Result<()> {
    let site = start_site(Bins::here()?, None).await?;
    let result = measure(&site, events).await;
    stop(site).await;
    result
}

async fn measure(site: &super::Site, events: usize) -> Result<()> {
    println!(
        "Jumpgate outbound events (webhooks) — {} cores, loopback, SQLite",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let url: ServerUrl = site.url.parse()?;
    let fp: tls::Fingerprint = site.fingerprint.parse()?;
    let anon = jumpgate_client::Client::new(url, &Trust::Pinned(fp), None)?;
    let login = anon.login("operator", PASSWORD, None).await?;
    let client = anon.with_token(login.token);
    let (fast, got, conns) = fast_receiver(false).await?;
    let add = |url: String, name: &str| jumpgate_api_types::webhooks::NewWebhook {
        url,
        name: Some(name.to_owned()),
        events: vec!["group-create".into()],
        ..Default::default()
    };
    client
        .webhook_add(&add(fast, "fast"))
        .await
        .context("adding the fast subscription")?;
    // Warm-up.
    phase(&client, &got, "warm", 50, "warm-up").await?;
    let before = conns.load(Ordering::Relaxed);
    let (r1, a50, a99) = phase(
        &client,
        &got,
        "alone",
        events,
        "fast receiver alone (keep-alive)",
    )
    .await?;
    println!(
        "    connections: {}",
        conns.load(Ordering::Relaxed) - before
    );
    client
        .webhook_add(&add(dead_receiver().await?, "dead"))
        .await
        .context("adding the dead subscription")?;
    let (r2, b50, b99) = phase(
        &client,
        &got,
        "beside-dead",
        events,
        "fast receiver beside a dead one",
    )
    .await?;
    println!(
        "  the dead receiver's effect on the fast one: rate {:+.1} %, delay p50 {:+.1} ms, p99 {:+.1} ms",
        (r2 / r1 - 1.0) * 100.0,
        (b50.as_secs_f64() - a50.as_secs_f64()) * 1e3,
        (b99.as_secs_f64() - a99.as_secs_f64()) * 1e3
    );
    // A new connection per delivery: the receiver closes each one.
    for s in ["fast", "dead"] {
        client
            .webhook_remove(s)
            .await
            .context("removing a subscription")?;
    }
    let (closing, got, conns) = fast_receiver(true).await?;
    client
        .webhook_add(&add(closing, "closing"))
        .await
        .context("adding the closing subscription")?;
    phase(&client, &got, "warm2", 50, "warm-up (Connection: close)").await?;
    let before = conns.load(Ordering::Relaxed);
    let (r3, c50, c99) = phase(
        &client,
        &got,
        "close",
        events,
        "fast receiver alone, a connection per event",
    )
    .await?;
    println!(
        "    connections: {}",
        conns.load(Ordering::Relaxed) - before
    );
    println!(
        "  keep-alive against a connection per event: rate x{:.2}, delay p50 {:+.1} ms, p99 {:+.1} ms",
        r1 / r3,
        (a50.as_secs_f64() - c50.as_secs_f64()) * 1e3,
        (a99.as_secs_f64() - c99.as_secs_f64()) * 1e3
    );
    Ok(())
}
