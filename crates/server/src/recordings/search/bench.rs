//! The search figures (`examples/recording_search.rs` through
//! `crate::bench::recording_search`): N sealed terminal recordings of
//! shell-like output (prompts in colour, commands, listings, logs) written
//! with the recorder's file format and rows, indexed by the real indexer
//! (throughput: asciicast and text MB/s), then searched (p50/p99) for a
//! rare phrase, a phrase whose words are in most recordings, and a word
//! in none.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Cursor, Query, Request, Retry, Source, index_pending, search};
use crate::blobs::Blobs;
use crate::ids::{RecordingId, SessionId};
use crate::keys::{Keyring, Purpose};
use crate::rbac::ReadScope;
use crate::store::{Store, sql};

/// What the run measured.
#[derive(Clone, Debug)]
pub struct Figures {
    pub recordings: usize,
    pub cast_bytes: u64,
    pub text_bytes: u64,
    pub index_time: Duration,
    /// Per query: (query, results found, p50, p99).
    pub searches: Vec<(String, usize, Duration, Duration)>,
}

/// A small deterministic generator (xorshift), so runs compare.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const COMMANDS: &[&str] = &[
    "ls -la /etc",
    "systemctl status nginx",
    "journalctl -u sshd --since today",
    "df -h",
    "cat /var/log/syslog | tail -n 50",
    "ps aux --sort=-%mem | head",
    "apt-get update",
    "grep -r ERROR /var/log/app",
    "docker ps",
    "vim /etc/hosts",
];

/// One recording's asciicast: about `bytes` of output events.
fn cast(rng: &mut Rng, i: usize, bytes: usize, rare: bool) -> String {
    let mut out = String::from("{\"version\": 2, \"width\": 120, \"height\": 40}\n");
    let mut t = 0.0f64;
    let mut n = 0;
    while out.len() < bytes {
        t += 0.05 + (rng.below(2000) as f64) / 1000.0;
        let cmd = if rare && n == 7 {
            format!("rm -rf /var/lib/app-{i}")
        } else {
            COMMANDS[rng.below(COMMANDS.len())].to_owned()
        };
        let prompt = format!(
            "\u{1b}[01;32mops@host-{}\u{1b}[00m:\u{1b}[01;34m~\u{1b}[00m$ ",
            i % 50
        );
        let line = |s: &str| serde_json::to_string(s).unwrap_or_default();
        out.push_str(&format!("[{t:.6}, \"o\", {}]\n", line(&prompt)));
        for c in cmd.chars() {
            t += 0.03;
            out.push_str(&format!("[{t:.6}, \"o\", {}]\n", line(&c.to_string())));
        }
        t += 0.2;
        let mut body = String::from("\r\n");
        for _ in 0..(5 + rng.below(30)) {
            body.push_str(&format!(
                "{:>8} {} \u{1b}[0;3{}m{}-{:x}.log\u{1b}[0m worker={} status={}\r\n",
                rng.below(1 << 20),
                ["Dec", "Nov", "Jan"][rng.below(3)],
                rng.below(8),
                ["service", "cache", "backup", "metrics", "session"][rng.below(5)],
                rng.next() & 0xffff,
                rng.below(64),
                ["ok", "failed", "degraded", "restarting"][rng.below(4)],
            ));
        }
        out.push_str(&format!("[{t:.6}, \"o\", {}]\n", line(&body)));
        n += 1;
    }
    out
}

/// Writes `n` ended recordings of about `kib` KiB of asciicast each.
async fn write_recordings(
    db: &Store,
    keys: &Keyring,
    data_dir: &std::path::Path,
    n: usize,
    kib: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = super::super::dir(data_dir);
    crate::site::create_private_dir(&dir).map_err(|e| e.to_string())?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let base = crate::ids::now_ms() - 86_400_000;
    for i in 0..n {
        let id = RecordingId::generate();
        let (key, wrapped) = keys.new_data_key(Purpose::Recordings)?;
        let file = super::super::file_name(&id);
        // One recording in a hundred has the rare command.
        let text = cast(&mut rng, i, kib * 1024, i % 100 == 0);
        let mut w =
            super::super::file::Writer::create_with(&dir.join(&file), &key, id.as_str(), b"")
                .await?;
        w.append(text.as_bytes(), true).await?;
        let started = base + (i as i64) * 60_000;
        let mut c = db.write_conn().await?;
        sql!(c, |c| {
            sqlx::query(
            "INSERT INTO recordings (id, session_id, username, endpoint_name, endpoint_group, started_at, ended_at, duration_ms, width, height, input_recorded, wrapped_key, file, kind)
             VALUES ($1, $2, 'ops', $3, 'default', $4, $5, 60000, 120, 40, 0, $6, $7, 'terminal')"
        )
        .bind(id.as_str())
        .bind(SessionId::generate().as_str())
        .bind(format!("host-{}", i % 50))
        .bind(started)
        .bind(started + 60_000)
        .bind(wrapped.as_str())
        .bind(&file)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len().max(1)) - 1)
        .copied()
        .unwrap_or_default()
}

/// Runs the benchmark on `db` (a new site's store, keys of `data_dir`).
///
/// # Errors
/// Writing, indexing or searching failed.
pub(crate) async fn run(
    db: &Store,
    keys: &Keyring,
    blobs: &Blobs,
    data_dir: &std::path::Path,
    n: usize,
    kib: usize,
    searches: usize,
) -> Result<Figures, Box<dyn std::error::Error + Send + Sync>> {
    write_recordings(db, keys, data_dir, n, kib).await?;
    let src = Source {
        db,
        keys,
        blobs,
        data_dir,
    };
    let stop = CancellationToken::new();
    let mut retry = Retry::new();
    let (mut cast_bytes, mut text_bytes, mut indexed) = (0, 0, 0);
    let started = Instant::now();
    loop {
        let pass = index_pending(src, &mut retry, &stop).await?;
        cast_bytes += pass.cast_bytes;
        text_bytes += pass.text_bytes;
        indexed += pass.indexed;
        if pass.indexed == 0 {
            break;
        }
    }
    let index_time = started.elapsed();
    if indexed as usize != n {
        return Err(format!("{indexed} of {n} recordings indexed").into());
    }
    let mut out = Vec::new();
    let scope = ReadScope::All;
    for q in [
        "rm -rf /var/lib/app-500",
        "rm -rf /var/lib",
        "systemctl status nginx",
        "no-such-word-anywhere",
    ] {
        let query = Query::parse(q)?;
        let mut lat = Vec::with_capacity(searches);
        let mut found = 0;
        for _ in 0..searches {
            let t = Instant::now();
            let req = Request {
                query: &query,
                scope: &scope,
                limit: 20,
                after: None::<Cursor>,
            };
            found = search(src, &req).await?.page.results.len();
            lat.push(t.elapsed());
        }
        out.push((
            q.to_owned(),
            found,
            pct(&mut lat, 50.0),
            pct(&mut lat, 99.0),
        ));
    }
    Ok(Figures {
        recordings: n,
        cast_bytes,
        text_bytes,
        index_time,
        searches: out,
    })
}
