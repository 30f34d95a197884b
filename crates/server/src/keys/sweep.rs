//! Key rotation and the sweep that follows it.
//!
//! Rotating adds a KEK version (see [`super::Keyring::rotate`]); new data
//! keys are wrapped by it at once. The sweep then moves every stored data
//! key still wrapped by an older version to the current one, a batch per
//! transaction, each row with a compare-and-set so that concurrent writers
//! lose nothing. What "re-encrypting data under old keys" means per purpose:
//!
//! - **recordings**, **vault**: the data key of each recording and each
//!   secret version is re-wrapped; the data it encrypts is unchanged (it
//!   never was under the KEK).
//! - **database**: the one SQLCipher key is re-wrapped in the keyring file
//!   in the same atomic write that adds the KEK version.
//! - **blobs**: nothing is stored under it yet.
//!
//! Progress is the data itself: "keys not under the current version" is a
//! query, so a sweep killed at any point resumes by asking it again. When
//! none are left, older versions are retired (erased from the keyring).
//! `key_rotations` keeps when each rotation started and finished and how
//! many keys its sweep re-wrapped.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

use super::{KeyError, Keyring, Purpose, WrappedKey, now_ms};
use crate::state::AppState;

/// Tables holding wrapped data keys (column `wrapped_key`), per purpose.
const STORED: &[(Purpose, &str)] = &[
    (Purpose::Recordings, "recordings"),
    (Purpose::Vault, "vault_versions"),
];

fn table_of(purpose: Purpose) -> Option<&'static str> {
    STORED.iter().find(|(p, _)| *p == purpose).map(|(_, t)| *t)
}

/// Why a rotation or sweep step failed.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// How fast the sweep goes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    pub(crate) batch: u32,
    pub(crate) pause: Duration,
}

/// Rotates the KEKs of `purposes` and records it (audit log and
/// `key_rotations`). The sweep does the rest.
pub(crate) async fn rotate(
    db: &SqlitePool,
    keys: &Keyring,
    purposes: &[Purpose],
    actor: &str,
) -> Result<Vec<(Purpose, u32)>, SweepError> {
    let rotated = keys.rotate(purposes)?;
    let now = now_ms();
    for (p, v) in &rotated {
        // The database key was re-wrapped in the keyring write itself.
        let done = (*p == Purpose::Database).then_some(now);
        sqlx::query(
            "INSERT OR IGNORE INTO key_rotations (purpose, version, started_at, finished_at, rewrapped) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(p.as_str())
        .bind(i64::from(*v))
        .bind(now)
        .bind(done)
        .bind(i64::from(done.is_some()))
        .execute(db)
        .await?;
        crate::events::record(
            db,
            actor,
            "keys-rotate",
            p.as_str(),
            "ok",
            &format!("version={v}"),
        )
        .await?;
        tracing::info!(
            purpose = p.as_str(),
            version = v,
            "key-encryption key rotated"
        );
    }
    Ok(rotated)
}

/// Re-seals every KEK under a new root key (see [`Keyring::rotate_root`])
/// and records it in the audit log (never the key). Answers the new root
/// generation.
pub(crate) async fn rotate_root(
    db: &SqlitePool,
    keys: &Keyring,
    new: Option<crate::keys::LocalRoot>,
    actor: &str,
) -> Result<u32, SweepError> {
    let info = keys.rotate_root(new)?;
    crate::events::record(
        db,
        actor,
        "root-key-rotate",
        "root",
        "ok",
        &format!("generation={}", info.generation),
    )
    .await?;
    tracing::info!(generation = info.generation, "root key rotated");
    Ok(info.generation)
}

/// Re-wraps the stored keys of `purpose` that are not under its current
/// KEK, then retires older versions if none remain. Answers how many keys
/// were re-wrapped. Stops early (resumable) when `stop` is cancelled.
pub(crate) async fn sweep_purpose(
    db: &SqlitePool,
    keys: &Keyring,
    purpose: Purpose,
    pace: Pace,
    stop: &CancellationToken,
) -> Result<u64, SweepError> {
    let old = keys.old_live_versions(purpose);
    if old.is_empty() {
        return Ok(0);
    }
    let current = keys.current_version(purpose);
    sqlx::query(
        "INSERT OR IGNORE INTO key_rotations (purpose, version, started_at) VALUES (?, ?, ?)",
    )
    .bind(purpose.as_str())
    .bind(i64::from(current))
    .bind(now_ms())
    .execute(db)
    .await?;
    let mut total = 0u64;
    let mut failed = 0u64;
    if let Some(table) = table_of(purpose) {
        let select = format!(
            "SELECT rowid, wrapped_key FROM {table} WHERE rowid > ? AND substr(wrapped_key, 1, ?) != ? ORDER BY rowid LIMIT ?"
        );
        let update =
            format!("UPDATE {table} SET wrapped_key = ? WHERE rowid = ? AND wrapped_key = ?");
        let mut cursor = i64::MIN;
        loop {
            if stop.is_cancelled() {
                return Ok(total);
            }
            let current = keys.current_version(purpose);
            let prefix = format!("{}:v{current}:", purpose.as_str());
            let mut tx = crate::store::begin_write(db).await?;
            let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
                .bind(cursor)
                .bind(prefix.len() as i64)
                .bind(&prefix)
                .bind(i64::from(pace.batch))
                .fetch_all(&mut *tx)
                .await?;
            if rows.is_empty() {
                break;
            }
            let mut n = 0u64;
            for (rowid, wrapped) in rows {
                cursor = rowid;
                let fresh = match keys.unwrap(purpose, &WrappedKey(wrapped.clone())) {
                    Ok(k) => keys.wrap(purpose, &k)?,
                    Err(e) => {
                        failed += 1;
                        tracing::error!(purpose = purpose.as_str(), table, rowid, error = %e, "a stored key does not unwrap; left as it is");
                        continue;
                    }
                };
                n += sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(fresh.as_str())
                    .bind(rowid)
                    .bind(&wrapped)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            sqlx::query(
                "UPDATE key_rotations SET rewrapped = rewrapped + ? WHERE purpose = ? AND version = ?",
            )
            .bind(n as i64)
            .bind(purpose.as_str())
            .bind(i64::from(current))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            total += n;
            if !pace.pause.is_zero() {
                tokio::select! {
                    () = stop.cancelled() => return Ok(total),
                    () = tokio::time::sleep(pace.pause) => {}
                }
            }
        }
    }
    let remaining = pending(db, keys, purpose).await?;
    if remaining > 0 {
        if failed > 0 {
            tracing::warn!(
                purpose = purpose.as_str(),
                remaining,
                "old key versions kept: some stored keys could not be re-wrapped"
            );
        }
        return Ok(total);
    }
    for v in old {
        if keys.retire(purpose, v)? {
            tracing::info!(
                purpose = purpose.as_str(),
                version = v,
                "old key-encryption key retired"
            );
            crate::events::record_or_log(
                db,
                "(key sweep)",
                "keys-retire",
                purpose.as_str(),
                "ok",
                &format!("version={v}"),
            )
            .await;
        }
    }
    sqlx::query(
        "UPDATE key_rotations SET finished_at = ? WHERE purpose = ? AND finished_at IS NULL",
    )
    .bind(now_ms())
    .bind(purpose.as_str())
    .execute(db)
    .await?;
    Ok(total)
}

/// Sweeps every purpose (see [`sweep_purpose`]).
pub(crate) async fn sweep_all(
    db: &SqlitePool,
    keys: &Keyring,
    pace: Pace,
    stop: &CancellationToken,
) -> Result<u64, SweepError> {
    let mut n = 0;
    for p in Purpose::ALL {
        n += sweep_purpose(db, keys, p, pace, stop).await?;
    }
    Ok(n)
}

/// Stored keys of `purpose` not under its current KEK version.
async fn pending(db: &SqlitePool, keys: &Keyring, purpose: Purpose) -> Result<u64, SweepError> {
    let Some(table) = table_of(purpose) else {
        return Ok(0);
    };
    let prefix = format!("{}:v{}:", purpose.as_str(), keys.current_version(purpose));
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {table} WHERE substr(wrapped_key, 1, ?) != ?"
    )))
    .bind(prefix.len() as i64)
    .bind(&prefix)
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Purposes whose current KEK is at least `every` old at `now`.
fn due(keys: &Keyring, every: Duration, now: i64) -> Vec<Purpose> {
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    Purpose::ALL
        .into_iter()
        .filter(|p| {
            let cur = keys.current_version(*p);
            keys.versions(*p)
                .iter()
                .find(|v| v.version == cur)
                .is_some_and(|v| now.saturating_sub(v.created_at_ms) >= every_ms)
        })
        .collect()
}

/// The gateway's key task: scheduled rotation and the sweep after any
/// rotation (woken by `st.key_sweep`), while this gateway holds the
/// [`Job::KeySweep`](crate::lease::Job) lease.
pub(crate) async fn run(st: AppState) {
    let pace = Pace {
        batch: st.config.keys.sweep_batch,
        pause: st.config.keys.sweep_pause,
    };
    // Renewed before each round; a round waits at most a minute.
    let ttl = Duration::from_secs(180);
    loop {
        crate::lease::run_held(&*st.lease, crate::lease::Job::KeySweep, ttl, async {
            if let Some(every) = st.config.keys.rotate_every {
                let due = due(&st.keys, every, now_ms());
                if !due.is_empty()
                    && let Err(e) = rotate(&st.db, &st.keys, &due, "(scheduled rotation)").await
                {
                    tracing::error!(error = %e, "scheduled key rotation failed");
                }
            }
            if let Err(e) = sweep_all(&st.db, &st.keys, pace, &st.shutdown).await {
                tracing::error!(error = %e, "key sweep failed; it resumes on the next round");
            }
        })
        .await;
        tokio::select! {
            () = st.shutdown.cancelled() => return,
            () = st.key_sweep.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

/// One KEK version in a [`KeyStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct VersionStatus {
    pub version: u32,
    pub created_at: String,
    /// Erased from the keyring: nothing wrapped by it opens any more.
    pub retired: bool,
    /// Stored data keys wrapped by this version.
    pub wrapped_keys: u64,
}

/// The keys of one purpose.
#[derive(Clone, Debug, Serialize)]
pub struct PurposeStatus {
    pub purpose: String,
    pub current: u32,
    pub versions: Vec<VersionStatus>,
    /// Stored keys the sweep still has to re-wrap.
    pub pending: u64,
    /// Keys re-wrapped by the sweep of the latest rotation.
    pub rewrapped: u64,
    /// `done`; `sweeping` while older versions are still live;
    /// `rekey-at-next-start` for the database after a rotation.
    pub sweep: String,
}

/// The root key that seals the KEKs.
#[derive(Clone, Debug, Serialize)]
pub struct RootStatus {
    /// Where it comes from (a key file or the environment variable).
    pub source: String,
    /// 0 for the site's first root key, +1 per rotation.
    pub generation: u32,
    /// When it was last rotated (RFC 3339); `None`: never.
    pub rotated_at: Option<String>,
}

/// What `jumpgate admin key-status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct KeyStatus {
    pub root: RootStatus,
    pub purposes: Vec<PurposeStatus>,
}

pub(crate) async fn status(db: &SqlitePool, keys: &Keyring) -> Result<KeyStatus, SweepError> {
    let mut purposes = Vec::new();
    for p in Purpose::ALL {
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        if let Some(table) = table_of(p) {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT wrapped_key FROM {table}"
            )))
            .fetch_all(db)
            .await?;
            for w in rows {
                if let Some(v) = WrappedKey(w).version() {
                    *counts.entry(v).or_default() += 1;
                }
            }
        } else if p == Purpose::Database {
            let n = 1 + u64::from(keys.database_key_next()?.is_some());
            counts.insert(keys.current_version(p), n);
        }
        let current = keys.current_version(p);
        let rewrapped: Option<i64> = sqlx::query_scalar(
            "SELECT rewrapped FROM key_rotations WHERE purpose = ? AND version = ?",
        )
        .bind(p.as_str())
        .bind(i64::from(current))
        .fetch_optional(db)
        .await?;
        let pending = counts
            .iter()
            .filter(|(v, _)| **v != current)
            .map(|(_, n)| n)
            .sum();
        let live_old = !keys.old_live_versions(p).is_empty();
        let rekey = p == Purpose::Database && keys.database_key_next()?.is_some();
        purposes.push(PurposeStatus {
            purpose: p.as_str().to_owned(),
            current,
            versions: keys
                .versions(p)
                .into_iter()
                .map(|v| VersionStatus {
                    version: v.version,
                    created_at: crate::ids::rfc3339(v.created_at_ms),
                    retired: v.retired,
                    wrapped_keys: counts.get(&v.version).copied().unwrap_or(0),
                })
                .collect(),
            pending,
            rewrapped: rewrapped.map_or(0, |n| u64::try_from(n).unwrap_or(0)),
            sweep: if live_old {
                "sweeping"
            } else if rekey {
                // The file is re-encrypted with the new database key when
                // the gateway next starts.
                "rekey-at-next-start"
            } else {
                "done"
            }
            .to_owned(),
        });
    }
    let info = keys.root_info();
    Ok(KeyStatus {
        root: RootStatus {
            source: keys.root_source(),
            generation: info.map_or(0, |i| i.generation),
            rotated_at: info.map(|i| crate::ids::rfc3339(i.rotated_at_ms)),
        },
        purposes,
    })
}

impl std::fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The sweep column is as wide as its longest state.
        let sweep_w = self
            .purposes
            .iter()
            .map(|p| p.sweep.len())
            .chain(std::iter::once(5))
            .max()
            .unwrap_or(5);
        match &self.root.rotated_at {
            Some(at) => writeln!(
                f,
                "ROOT KEY    {} (generation {}, last rotated {at})",
                self.root.source, self.root.generation
            )?,
            None => writeln!(f, "ROOT KEY    {} (never rotated)", self.root.source)?,
        }
        writeln!(
            f,
            "{:<11} {:<8} {:<sweep_w$} {:<9} VERSIONS (wrapped keys)",
            "PURPOSE", "CURRENT", "SWEEP", "PENDING"
        )?;
        for p in &self.purposes {
            let versions: Vec<String> = p
                .versions
                .iter()
                .map(|v| {
                    if v.retired {
                        format!("v{} retired", v.version)
                    } else {
                        format!("v{}: {}", v.version, v.wrapped_keys)
                    }
                })
                .collect();
            writeln!(
                f,
                "{:<11} {:<8} {:<sweep_w$} {:<9} {}",
                p.purpose,
                format!("v{}", p.current),
                p.sweep,
                p.pending,
                versions.join(", ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn site() -> (tempfile::TempDir, SqlitePool, Keyring) {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::open_with(
            dir.path(),
            super::super::root::site_root_file_only(dir.path()).unwrap(),
        )
        .unwrap();
        let db =
            crate::store::open_encrypted(&dir.path().join("j.db"), &keys.database_key().unwrap())
                .await
                .unwrap();
        (dir, db, keys)
    }

    async fn add_recording(db: &SqlitePool, keys: &Keyring, id: &str) -> [u8; 32] {
        let (k, w) = keys.new_data_key(Purpose::Recordings).unwrap();
        sqlx::query("INSERT INTO recordings (id, session_id, username, endpoint_name, started_at, width, height, input_recorded, wrapped_key, file) VALUES (?, 's', 'u', 'e', 0, 80, 24, 0, ?, 'f')")
            .bind(id)
            .bind(w.as_str())
            .execute(db)
            .await
            .unwrap();
        *k.as_bytes()
    }

    async fn recording_key(db: &SqlitePool, id: &str) -> WrappedKey {
        let w: String = sqlx::query_scalar("SELECT wrapped_key FROM recordings WHERE id = ?")
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap();
        WrappedKey(w)
    }

    #[tokio::test]
    async fn the_sweep_rewraps_recordings_and_retires_the_old_version() {
        let (dir, db, keys) = site().await;
        let mut plain = Vec::new();
        for i in 0..25 {
            plain.push(add_recording(&db, &keys, &format!("r{i}")).await);
        }
        rotate(&db, &keys, &Purpose::ALL, "test").await.unwrap();
        // A recording made after the rotation is wrapped by v2 at once.
        plain.push(add_recording(&db, &keys, "r25").await);
        let st = status(&db, &keys).await.unwrap();
        let rec = &st.purposes[1];
        assert_eq!(
            (rec.purpose.as_str(), rec.current, rec.pending),
            ("recordings", 2, 25)
        );
        assert_eq!(rec.sweep, "sweeping");

        // A stopped sweep makes no progress, and loses nothing.
        let stop = CancellationToken::new();
        stop.cancel();
        let pace = Pace {
            batch: 7,
            pause: Duration::ZERO,
        };
        assert_eq!(
            sweep_purpose(&db, &keys, Purpose::Recordings, pace, &stop)
                .await
                .unwrap(),
            0
        );
        let n = sweep_all(&db, &keys, pace, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(n, 25);
        for (i, k) in plain.iter().enumerate() {
            let w = recording_key(&db, &format!("r{i}")).await;
            assert_eq!(w.version(), Some(2));
            assert_eq!(keys.unwrap(Purpose::Recordings, &w).unwrap().as_bytes(), k);
        }
        let st = status(&db, &keys).await.unwrap();
        assert_eq!(st.purposes[0].sweep, "rekey-at-next-start", "{st}");
        db.close().await;
        let path = dir.path().join("j.db");
        let db = crate::store::sqlite::open_site(&path, &keys, true)
            .await
            .unwrap()
            .0;
        let st = status(&db, &keys).await.unwrap();
        for p in &st.purposes {
            assert_eq!(p.sweep, "done", "{st}");
            assert_eq!(p.pending, 0);
            assert!(p.versions[0].retired, "{st}");
        }
        assert_eq!(st.purposes[1].rewrapped, 25);
        assert!(st.to_string().contains("v1 retired"), "{st}");
        // A fresh process sees the same: old versions are gone for good.
        drop(keys);
        let again = Keyring::open_with(
            dir.path(),
            super::super::root::site_root_file_only(dir.path()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            again.old_live_versions(Purpose::Recordings),
            Vec::<u32>::new()
        );
        let w = recording_key(&db, "r3").await;
        assert_eq!(
            again.unwrap(Purpose::Recordings, &w).unwrap().as_bytes(),
            &plain[3]
        );
    }

    #[tokio::test]
    async fn scheduled_rotation_is_due_per_purpose_by_the_age_of_its_current_key() {
        let (_dir, db, keys) = site().await;
        let hour = Duration::from_secs(3600);
        let t0 = now_ms();
        assert!(due(&keys, hour, t0).is_empty());
        assert_eq!(due(&keys, hour, t0 + 3_600_001), Purpose::ALL.to_vec());
        // Rotating vault later makes its current key young again.
        let created = keys.versions(Purpose::Vault)[0].created_at_ms;
        rotate(&db, &keys, &[Purpose::Vault], "test").await.unwrap();
        let rotated = keys.versions(Purpose::Vault)[1].created_at_ms;
        let at = created + 3_600_000;
        if rotated > created {
            assert!(!due(&keys, hour, at).contains(&Purpose::Vault));
        }
        assert!(due(&keys, hour, rotated + 3_600_000).contains(&Purpose::Vault));
    }

    #[tokio::test]
    async fn a_key_that_does_not_unwrap_keeps_the_old_version_live() {
        let (_dir, db, keys) = site().await;
        add_recording(&db, &keys, "good").await;
        sqlx::query("INSERT INTO recordings (id, session_id, username, endpoint_name, started_at, width, height, input_recorded, wrapped_key, file) VALUES ('bad', 's', 'u', 'e', 0, 80, 24, 0, 'recordings:v1:AAAA', 'f')")
            .execute(&db)
            .await
            .unwrap();
        rotate(&db, &keys, &[Purpose::Recordings], "test")
            .await
            .unwrap();
        let pace = Pace {
            batch: 100,
            pause: Duration::ZERO,
        };
        assert_eq!(
            sweep_purpose(
                &db,
                &keys,
                Purpose::Recordings,
                pace,
                &CancellationToken::new()
            )
            .await
            .unwrap(),
            1
        );
        assert_eq!(keys.old_live_versions(Purpose::Recordings), vec![1]);
        let st = status(&db, &keys).await.unwrap();
        assert_eq!(st.purposes[1].pending, 1);
    }
}

#[cfg(test)]
mod measure {
    use super::*;

    #[tokio::test]
    #[ignore = "prints figures"]
    async fn measure_open_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::open(dir.path()).unwrap();
        let path = dir.path().join("j.db");
        let db = crate::store::sqlite::open_site(&path, &keys, true)
            .await
            .unwrap()
            .0;
        let n = 10_000;
        let mut tx = crate::store::begin_write(&db).await.unwrap();
        for i in 0..n {
            let (_, w) = keys.new_data_key(Purpose::Vault).unwrap();
            sqlx::query(
                "INSERT INTO vault_secrets (name, created_at, updated_at) VALUES (?, 0, 0)",
            )
            .bind(format!("s{i}"))
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query("INSERT INTO vault_versions (name, version, created_at, created_by, wrapped_key, nonce, ciphertext) VALUES (?, 1, 0, 't', ?, x'00', x'00')").bind(format!("s{i}")).bind(w.as_str()).execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        db.close().await;
        let t = std::time::Instant::now();
        for _ in 0..20 {
            let db = crate::store::sqlite::open_site(&path, &keys, false)
                .await
                .unwrap()
                .0;
            db.close().await;
        }
        println!("open (pool + migrate check): {:?} avg", t.elapsed() / 20);
        let db = crate::store::sqlite::open_site(&path, &keys, false)
            .await
            .unwrap()
            .0;
        rotate(&db, &keys, &Purpose::ALL, "m").await.unwrap();
        let t = std::time::Instant::now();
        let k = sweep_all(
            &db,
            &keys,
            Pace {
                batch: 500,
                pause: Duration::ZERO,
            },
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        println!("sweep: {k} keys in {:?}", t.elapsed());
        db.close().await;
        let size = std::fs::metadata(&path).unwrap().len();
        let t = std::time::Instant::now();
        let db = crate::store::sqlite::open_site(&path, &keys, true)
            .await
            .unwrap()
            .0;
        println!("rekey of {size} bytes + open: {:?}", t.elapsed());
        db.close().await;
    }
}
