//! Key rotation and the sweep that follows it.
//!
//! Rotating adds a KEK version (see [`super::Keyring::rotate`]); new data
//! keys are wrapped by it at once. The sweep then moves every stored data
//! key still wrapped by an older version to the current one. It does not
//! know where keys are stored: it asks each domain of the registry
//! ([`stored::domains`]) for its keys not under the current version, a
//! batch at a time after a cursor on the domain's key, re-wraps them
//! outside any transaction, and has the domain replace each one with a
//! compare-and-set in one short write transaction per batch, so that
//! concurrent writers lose nothing. What "re-encrypting data under old
//! keys" means per purpose:
//!
//! - **recordings**, **vault** (and every other domain of the registry):
//!   the data key of each recording, each secret version, … is re-wrapped;
//!   the data it encrypts is unchanged (it never was under the KEK).
//! - **database** (SQLite only): the one SQLCipher key is re-wrapped in
//!   the keyring file in the same atomic write that adds the KEK version,
//!   and the file is re-encrypted with a new database key at the next
//!   start. On PostgreSQL Jumpgate does not encrypt the database: there is
//!   no database key, and rotation skips the purpose.
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
use tokio_util::sync::CancellationToken;

use super::stored::{self, WrappedKeys};
use super::{KeyError, Keyring, Purpose, now_ms};
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent, Engine, Store, sql};

/// Why a rotation or sweep step failed.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// `database` asked for on PostgreSQL.
    #[error(
        "this site's database is on PostgreSQL, which Jumpgate does not encrypt: there is no database key to rotate (secrets are encrypted by Jumpgate under the other purposes' keys; protect the PostgreSQL server, its disks and backups yourself)"
    )]
    NoDatabaseKey,
}

/// How fast the sweep goes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    pub(crate) batch: u32,
    pub(crate) pause: Duration,
}

/// The purposes of `purposes` that have keys on `engine`: on PostgreSQL
/// there is no database key (the database is not encrypted by Jumpgate).
fn on_engine(engine: Engine, purposes: &[Purpose]) -> Vec<Purpose> {
    purposes
        .iter()
        .copied()
        .filter(|p| engine == Engine::Sqlite || *p != Purpose::Database)
        .collect()
}

/// Rotates the KEKs of `purposes` and records it (audit log and
/// `key_rotations`, in one transaction). The sweep does the rest. On
/// PostgreSQL `database` is skipped (refused when it is all that was
/// asked for).
pub(crate) async fn rotate(
    db: &Store,
    keys: &Keyring,
    purposes: &[Purpose],
    actor: &str,
) -> Result<Vec<(Purpose, u32)>, SweepError> {
    let usable = on_engine(db.engine(), purposes);
    if usable.is_empty() && !purposes.is_empty() {
        return Err(SweepError::NoDatabaseKey);
    }
    let rotated = keys.rotate(&usable)?;
    let now = now_ms();
    let mut w = db.write().await?;
    for (p, v) in &rotated {
        // The database key was re-wrapped in the keyring write itself.
        let done = (*p == Purpose::Database).then_some(now);
        sql!(w, |c| sqlx::query(
            "INSERT INTO key_rotations (purpose, version, started_at, finished_at, rewrapped)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (purpose, version) DO NOTHING",
        )
        .bind(p.as_str())
        .bind(i64::from(*v))
        .bind(now)
        .bind(done)
        .bind(i64::from(done.is_some()))
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        w.audit(
            AuditEvent::new(actor, AuditAction::KeysRotate, p.as_str())
                .detail(format!("version={v}")),
        )
        .await?;
    }
    w.commit().await?;
    for (p, v) in &rotated {
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
    db: &Store,
    keys: &Keyring,
    new: Option<crate::keys::LocalRoot>,
    actor: &str,
) -> Result<u32, SweepError> {
    let info = keys.rotate_root(new)?;
    db.audit_now(
        AuditEvent::new(actor, AuditAction::RootKeyRotate, "root")
            .detail(format!("generation={}", info.generation)),
    )
    .await?;
    tracing::info!(generation = info.generation, "root key rotated");
    Ok(info.generation)
}

/// Re-wraps the stored keys of `purpose` that are not under its current
/// KEK, in every domain of the registry, then retires older versions if
/// none remain. Answers how many keys were re-wrapped. Stops early
/// (resumable) when `stop` is cancelled.
pub(crate) async fn sweep_purpose(
    db: &Store,
    keys: &Keyring,
    purpose: Purpose,
    pace: Pace,
    stop: &CancellationToken,
) -> Result<u64, SweepError> {
    sweep_domains(db, keys, purpose, stored::domains(), pace, stop).await
}

/// [`sweep_purpose`] over the domains given.
async fn sweep_domains(
    db: &Store,
    keys: &Keyring,
    purpose: Purpose,
    domains: &[&dyn WrappedKeys],
    pace: Pace,
    stop: &CancellationToken,
) -> Result<u64, SweepError> {
    let old = keys.old_live_versions(purpose);
    if old.is_empty() {
        return Ok(0);
    }
    let current = keys.current_version(purpose);
    {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query(
            "INSERT INTO key_rotations (purpose, version, started_at) VALUES ($1, $2, $3)
             ON CONFLICT (purpose, version) DO NOTHING",
        )
        .bind(purpose.as_str())
        .bind(i64::from(current))
        .bind(now_ms())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    let mut total = 0u64;
    let mut failed = 0u64;
    for domain in domains.iter().filter(|d| d.purpose() == purpose) {
        // A pass re-wraps what it finds; keys a concurrent writer replaced
        // meanwhile are left to it, and looked at again by the next pass
        // (while passes make progress).
        loop {
            let Some((n, unwrappable)) = pass(db, keys, *domain, pace, stop).await? else {
                return Ok(total);
            };
            total += n;
            failed += unwrappable;
            if n == 0 || pending_in(db, keys, purpose, &[*domain]).await? == 0 {
                break;
            }
        }
    }
    let remaining = pending_in(db, keys, purpose, domains).await?;
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
            db.audit_or_log(
                AuditEvent::new("(key sweep)", AuditAction::KeysRetire, purpose.as_str())
                    .detail(format!("version={v}")),
            )
            .await;
        }
    }
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query(
        "UPDATE key_rotations SET finished_at = $1 WHERE purpose = $2 AND finished_at IS NULL",
    )
    .bind(now_ms())
    .bind(purpose.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(total)
}

/// One pass over `domain`'s keys not under the current KEK: answers how
/// many were re-wrapped and how many do not unwrap, or `None` when
/// stopped.
async fn pass(
    db: &Store,
    keys: &Keyring,
    domain: &dyn WrappedKeys,
    pace: Pace,
    stop: &CancellationToken,
) -> Result<Option<(u64, u64)>, SweepError> {
    let purpose = domain.purpose();
    let (mut rewrapped, mut failed) = (0u64, 0u64);
    let mut cursor = String::new();
    loop {
        if stop.is_cancelled() {
            return Ok(None);
        }
        let current = keys.current_version(purpose);
        let batch = {
            let mut c = db.conn().await?;
            domain
                .stale_after(&mut c, current, &cursor, pace.batch.max(1))
                .await?
        };
        let Some(last) = batch.last() else {
            return Ok(Some((rewrapped, failed)));
        };
        cursor.clone_from(&last.id);
        // Unwrapped and re-wrapped before the write transaction, which
        // then holds the write lock only for the replacements.
        let mut fresh = Vec::with_capacity(batch.len());
        for k in batch {
            match keys.unwrap(purpose, &k.wrapped) {
                Ok(plain) => {
                    let new = keys.wrap(purpose, &plain)?;
                    fresh.push((k, new));
                }
                Err(e) => {
                    failed += 1;
                    tracing::error!(purpose = purpose.as_str(), domain = domain.name(), key = %k.id, error = %e, "a stored key does not unwrap; left as it is");
                }
            }
        }
        let mut w = db.write().await?;
        let mut n = 0u64;
        for (k, new) in &fresh {
            if domain.replace(&mut w, &k.id, &k.wrapped, new).await? {
                n += 1;
            }
        }
        sql!(w, |c| {
            sqlx::query(
            "UPDATE key_rotations SET rewrapped = rewrapped + $1 WHERE purpose = $2 AND version = $3",
        )
        .bind(n as i64)
        .bind(purpose.as_str())
        .bind(i64::from(current))
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })?;
        w.commit().await?;
        rewrapped += n;
        if !pace.pause.is_zero() {
            tokio::select! {
                () = stop.cancelled() => return Ok(None),
                () = tokio::time::sleep(pace.pause) => {}
            }
        }
    }
}

/// Sweeps every purpose (see [`sweep_purpose`]).
pub(crate) async fn sweep_all(
    db: &Store,
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

/// Stored keys of `purpose` in `domains` not under its current KEK version.
async fn pending_in(
    db: &Store,
    keys: &Keyring,
    purpose: Purpose,
    domains: &[&dyn WrappedKeys],
) -> Result<u64, SweepError> {
    let current = keys.current_version(purpose);
    let mut c = db.conn().await?;
    let mut n = 0;
    for d in domains.iter().filter(|d| d.purpose() == purpose) {
        n += d
            .count_by_version(&mut c, &[current])
            .await?
            .iter()
            .filter(|(v, _)| **v != Some(current))
            .map(|(_, n)| n)
            .sum::<u64>();
    }
    Ok(n)
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
                let due = on_engine(st.db.engine(), &due(&st.keys, every, now_ms()));
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
    /// Stored data keys wrapped by this version (every domain).
    pub wrapped_keys: u64,
}

/// The stored keys of one domain under a purpose.
#[derive(Clone, Debug, Serialize)]
pub struct DomainStatus {
    /// The domain that stores them (`vault`, `recordings`, …).
    pub domain: String,
    /// Stored data keys, under any version.
    pub wrapped_keys: u64,
    /// Stored keys the sweep still has to re-wrap.
    pub pending: u64,
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
    /// The domains whose stored keys this purpose wraps.
    pub domains: Vec<DomainStatus>,
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

/// How the site's database itself is protected.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseStatus {
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// Whether Jumpgate encrypts the database as a whole (SQLite: SQLCipher
    /// under the database key; PostgreSQL: no).
    pub encrypted_by_jumpgate: bool,
    /// The same, in words.
    pub note: String,
}

/// What `jumpgate admin key-status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct KeyStatus {
    pub root: RootStatus,
    pub database: DatabaseStatus,
    /// Per purpose; `database` only where there is a database key (SQLite).
    pub purposes: Vec<PurposeStatus>,
}

pub(crate) async fn status(db: &Store, keys: &Keyring) -> Result<KeyStatus, SweepError> {
    let engine = db.engine();
    let mut purposes = Vec::new();
    for p in on_engine(engine, &Purpose::ALL) {
        let current = keys.current_version(p);
        let known: Vec<u32> = keys.versions(p).iter().map(|v| v.version).collect();
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        let mut domains = Vec::new();
        let mut c = db.conn().await?;
        for d in stored::domains().iter().filter(|d| d.purpose() == p) {
            let by_version = d.count_by_version(&mut c, &known).await?;
            for (v, n) in &by_version {
                if let Some(v) = v {
                    *counts.entry(*v).or_default() += n;
                }
            }
            domains.push(DomainStatus {
                domain: d.name().to_owned(),
                wrapped_keys: by_version.values().sum(),
                pending: by_version
                    .iter()
                    .filter(|(v, _)| **v != Some(current))
                    .map(|(_, n)| n)
                    .sum(),
            });
        }
        if p == Purpose::Database {
            let n = 1 + u64::from(keys.database_key_next()?.is_some());
            counts.insert(current, n);
        }
        let rewrapped: Option<i64> = sql!(c, |c| sqlx::query_scalar(
            "SELECT rewrapped FROM key_rotations WHERE purpose = $1 AND version = $2",
        )
        .bind(p.as_str())
        .bind(i64::from(current))
        .fetch_optional(&mut *c)
        .await)?;
        drop(c);
        let pending = domains.iter().map(|d| d.pending).sum();
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
            domains,
        });
    }
    let info = keys.root_info();
    let database = match engine {
        Engine::Sqlite => DatabaseStatus {
            engine: engine.as_str().to_owned(),
            encrypted_by_jumpgate: true,
            note: "encrypted by Jumpgate as a whole (SQLCipher) with the database key".to_owned(),
        },
        Engine::Postgres => DatabaseStatus {
            engine: engine.as_str().to_owned(),
            encrypted_by_jumpgate: false,
            note: "PostgreSQL: not encrypted by Jumpgate (protect the server, its disks and backups); secrets are app-encrypted by Jumpgate under the keys below".to_owned(),
        },
    };
    Ok(KeyStatus {
        root: RootStatus {
            source: keys.root_source(),
            generation: info.map_or(0, |i| i.generation),
            rotated_at: info.map(|i| crate::ids::rfc3339(i.rotated_at_ms)),
        },
        database,
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
            "DATABASE    {}: {}",
            self.database.engine, self.database.note
        )?;
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
            for d in &p.domains {
                writeln!(
                    f,
                    "  {:<9} {} stored, {} pending",
                    d.domain, d.wrapped_keys, d.pending
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::WrappedKey;
    use crate::keys::stored::StoredKey;
    use crate::store::Exec;

    struct Site {
        db: Store,
        keys: Keyring,
        _dirs: [Option<tempfile::TempDir>; 2],
    }

    fn keyring(dir: &std::path::Path) -> Keyring {
        Keyring::open_with(dir, super::super::root::site_root_file_only(dir).unwrap()).unwrap()
    }

    /// A fresh store per engine, with a keyring.
    async fn sites(test: &str) -> Vec<Site> {
        let mut out = Vec::new();
        for (db, lite) in crate::store::tests::engines(test).await {
            let dir = tempfile::tempdir().unwrap();
            let keys = keyring(dir.path());
            out.push(Site {
                db,
                keys,
                _dirs: [lite, Some(dir)],
            });
        }
        out
    }

    async fn add_recording(db: &Store, keys: &Keyring, id: &str) -> [u8; 32] {
        let (k, w) = keys.new_data_key(Purpose::Recordings).unwrap();
        insert_recording(db, id, w.as_str()).await;
        *k.as_bytes()
    }

    async fn insert_recording(db: &Store, id: &str, wrapped: &str) {
        let mut c = db.conn().await.unwrap();
        sql!(c, |c| sqlx::query(
            "INSERT INTO recordings (id, session_id, username, endpoint_name, started_at, width, height, input_recorded, wrapped_key, file)
             VALUES ($1, 's', 'u', 'e', 0, 80, 24, 0, $2, 'f')"
        )
        .bind(id)
        .bind(wrapped)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }

    async fn recording_key(db: &Store, id: &str) -> WrappedKey {
        let mut c = db.conn().await.unwrap();
        let w: String = sql!(c, |c| sqlx::query_scalar(
            "SELECT wrapped_key FROM recordings WHERE id = $1"
        )
        .bind(id)
        .fetch_one(&mut *c)
        .await)
        .unwrap();
        WrappedKey::from(w)
    }

    async fn vault_keys(db: &Store) -> Vec<WrappedKey> {
        let mut c = db.conn().await.unwrap();
        let w: Vec<String> = sql!(c, |c| sqlx::query_scalar(
            "SELECT wrapped_key FROM vault_versions ORDER BY name, version"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        w.into_iter().map(WrappedKey::from).collect()
    }

    async fn actions(db: &Store) -> Vec<(String, String, String)> {
        let mut c = db.conn().await.unwrap();
        sql!(c, |c| sqlx::query_as(
            "SELECT action, target, detail FROM events WHERE action LIKE 'keys-%' ORDER BY id"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap()
    }

    fn purpose<'a>(st: &'a KeyStatus, name: &str) -> &'a PurposeStatus {
        st.purposes.iter().find(|p| p.purpose == name).unwrap()
    }

    const FAST: Pace = Pace {
        batch: 7,
        pause: Duration::ZERO,
    };

    /// A rotation followed by a sweep re-wraps every vault and recording
    /// key, on both engines; status reports per domain; old versions are
    /// retired; on PostgreSQL there is no database key to rotate.
    #[tokio::test]
    async fn a_rotation_then_a_sweep_rewraps_every_vault_and_recording_key() {
        for Site {
            db,
            keys,
            _dirs: dirs,
        } in sites("sweep_rewraps").await
        {
            let engine = db.engine();
            let mut plain = Vec::new();
            for i in 0..25 {
                plain.push(add_recording(&db, &keys, &format!("r{i:02}")).await);
            }
            for i in 0..10 {
                for v in 0..2 {
                    crate::vault::put(
                        &db,
                        &keys,
                        &format!("s{i}"),
                        format!("{i}-{v}").as_bytes(),
                        "t",
                    )
                    .await
                    .unwrap();
                }
            }
            let rotated = rotate(&db, &keys, &Purpose::ALL, "test").await.unwrap();
            let names: Vec<&str> = rotated.iter().map(|(p, _)| p.as_str()).collect();
            match engine {
                Engine::Sqlite => assert_eq!(
                    names,
                    [
                        "database",
                        "recordings",
                        "vault",
                        "blobs",
                        "policy",
                        "search",
                        "ssh"
                    ]
                ),
                Engine::Postgres => {
                    assert_eq!(
                        names,
                        ["recordings", "vault", "blobs", "policy", "search", "ssh"]
                    )
                }
            }
            // A recording made after the rotation is wrapped by v2 at once.
            plain.push(add_recording(&db, &keys, "r25").await);
            let st = status(&db, &keys).await.unwrap();
            let rec = purpose(&st, "recordings");
            assert_eq!(
                (rec.current, rec.pending, rec.sweep.as_str()),
                (2, 25, "sweeping"),
                "{engine}: {st}"
            );
            let domains: Vec<(&str, u64)> = rec
                .domains
                .iter()
                .map(|d| (d.domain.as_str(), d.wrapped_keys))
                .collect();
            assert_eq!(domains, [("recordings", 26), ("support sessions", 0)]);
            let vault = purpose(&st, "vault");
            assert_eq!(
                (vault.pending, vault.versions[0].wrapped_keys),
                (20, 20),
                "{st}"
            );
            assert_eq!(vault.domains[0].domain, "vault");
            match engine {
                Engine::Sqlite => assert!(st.database.encrypted_by_jumpgate),
                Engine::Postgres => {
                    assert!(!st.database.encrypted_by_jumpgate);
                    assert!(st.purposes.iter().all(|p| p.purpose != "database"), "{st}");
                    let text = st.to_string();
                    assert!(
                        text.contains("not encrypted by Jumpgate")
                            && text.contains("app-encrypted"),
                        "{text}"
                    );
                }
            }

            // A stopped sweep makes no progress, and loses nothing.
            let stop = CancellationToken::new();
            stop.cancel();
            assert_eq!(
                sweep_purpose(&db, &keys, Purpose::Recordings, FAST, &stop)
                    .await
                    .unwrap(),
                0
            );
            let n = sweep_all(&db, &keys, FAST, &CancellationToken::new())
                .await
                .unwrap();
            assert_eq!(n, 45, "{engine}");
            for (i, k) in plain.iter().enumerate() {
                let w = recording_key(&db, &format!("r{i:02}")).await;
                assert_eq!(w.version(), Some(2));
                assert_eq!(keys.unwrap(Purpose::Recordings, &w).unwrap().as_bytes(), k);
            }
            let vk = vault_keys(&db).await;
            assert_eq!(vk.len(), 20);
            assert!(vk.iter().all(|w| w.version() == Some(2)), "{engine}");
            for i in 0..10 {
                for v in 0..2u32 {
                    let (_, value) =
                        crate::vault::get(&db, &keys, &format!("s{i}"), Some(v + 1), "t")
                            .await
                            .unwrap();
                    assert_eq!(&value[..], format!("{i}-{v}").as_bytes());
                }
            }
            let st = status(&db, &keys).await.unwrap();
            for p in &st.purposes {
                if p.purpose == "database" {
                    assert_eq!(p.sweep, "rekey-at-next-start", "{st}");
                    continue;
                }
                assert_eq!((p.sweep.as_str(), p.pending), ("done", 0), "{engine}: {st}");
                assert!(p.versions[0].retired, "{st}");
            }
            assert_eq!(purpose(&st, "recordings").rewrapped, 25);
            assert_eq!(purpose(&st, "vault").rewrapped, 20);
            assert!(st.to_string().contains("v1 retired"), "{st}");
            // The rotation and the retirements are in the audit log.
            let log = actions(&db).await;
            assert!(
                log.contains(&("keys-rotate".into(), "vault".into(), "version=2".into())),
                "{log:?}"
            );
            assert!(
                log.contains(&(
                    "keys-retire".into(),
                    "recordings".into(),
                    "version=1".into()
                )),
                "{log:?}"
            );
            assert_eq!(
                log.iter()
                    .any(|(a, t, _)| a == "keys-rotate" && t == "database"),
                engine == Engine::Sqlite,
                "{log:?}"
            );
            // A fresh process sees the same: old versions are gone for good.
            let dir = dirs[1].as_ref().unwrap().path().to_owned();
            drop(keys);
            let again = keyring(&dir);
            assert_eq!(
                again.old_live_versions(Purpose::Recordings),
                Vec::<u32>::new()
            );
            assert_eq!(again.old_live_versions(Purpose::Vault), Vec::<u32>::new());
            let w = recording_key(&db, "r03").await;
            assert_eq!(
                again.unwrap(Purpose::Recordings, &w).unwrap().as_bytes(),
                &plain[3]
            );
        }
    }

    /// On PostgreSQL there is no database key: asking to rotate only it is
    /// a clear error; on SQLite it waits for the next start.
    #[tokio::test]
    async fn rotating_the_database_key_depends_on_the_engine() {
        for Site { db, keys, _dirs } in sites("sweep_database_key").await {
            let r = rotate(&db, &keys, &[Purpose::Database], "test").await;
            match db.engine() {
                Engine::Sqlite => {
                    assert_eq!(r.unwrap(), [(Purpose::Database, 2)]);
                    let st = status(&db, &keys).await.unwrap();
                    assert_eq!(purpose(&st, "database").sweep, "rekey-at-next-start");
                }
                Engine::Postgres => {
                    let err = r.unwrap_err();
                    assert!(matches!(err, SweepError::NoDatabaseKey), "{err}");
                    assert!(
                        err.to_string().contains("no database key to rotate"),
                        "{err}"
                    );
                    assert_eq!(keys.current_version(Purpose::Database), 1);
                    assert!(actions(&db).await.is_empty());
                }
            }
        }
    }

    /// A domain whose keys a concurrent writer replaces while the sweep
    /// re-wraps them (between its read and its write).
    struct Interfering {
        db: Store,
        keys: Keyring,
        /// What the concurrent writer stored, once it has.
        wrote: std::sync::Mutex<Option<(String, WrappedKey)>>,
    }

    #[async_trait::async_trait]
    impl WrappedKeys for Interfering {
        fn name(&self) -> &'static str {
            "interfering"
        }
        fn purpose(&self) -> Purpose {
            Purpose::Recordings
        }
        async fn count_by_version(
            &self,
            e: &mut dyn Exec,
            versions: &[u32],
        ) -> Result<BTreeMap<Option<u32>, u64>, sqlx::Error> {
            crate::recordings::STORED_KEYS
                .count_by_version(e, versions)
                .await
        }
        async fn stale_after(
            &self,
            e: &mut dyn Exec,
            current: u32,
            after: &str,
            limit: u32,
        ) -> Result<Vec<StoredKey>, sqlx::Error> {
            let batch = crate::recordings::STORED_KEYS
                .stale_after(e, current, after, limit)
                .await?;
            let first = self.wrote.lock().unwrap().is_none();
            if let (true, Some(k)) = (first, batch.first()) {
                // Another writer, in its own transaction, gives the key a
                // new wrap (of a new data key) before the sweep writes.
                let (_, mine) = self.keys.new_data_key(Purpose::Recordings).unwrap();
                let mut w = self.db.write().await?;
                assert!(
                    crate::recordings::STORED_KEYS
                        .replace(&mut w, &k.id, &k.wrapped, &mine)
                        .await?
                );
                w.commit().await?;
                *self.wrote.lock().unwrap() = Some((k.id.clone(), mine));
            }
            Ok(batch)
        }
        async fn replace(
            &self,
            e: &mut dyn Exec,
            id: &str,
            old: &WrappedKey,
            new: &WrappedKey,
        ) -> Result<bool, sqlx::Error> {
            crate::recordings::STORED_KEYS
                .replace(e, id, old, new)
                .await
        }
    }

    #[tokio::test]
    async fn a_key_replaced_by_a_concurrent_writer_mid_sweep_is_not_overwritten() {
        for Site { db, keys, _dirs } in sites("sweep_concurrent_writer").await {
            let engine = db.engine();
            for i in 0..10 {
                add_recording(&db, &keys, &format!("r{i}")).await;
            }
            rotate(&db, &keys, &[Purpose::Recordings], "test")
                .await
                .unwrap();
            let domain = Interfering {
                db: db.clone(),
                keys: keys.clone(),
                wrote: std::sync::Mutex::new(None),
            };
            let n = sweep_domains(
                &db,
                &keys,
                Purpose::Recordings,
                &[&domain],
                FAST,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
            let (id, mine) = domain
                .wrote
                .lock()
                .unwrap()
                .clone()
                .expect("the writer ran");
            // Its key is kept (the sweep's compare-and-set failed); the
            // other nine were re-wrapped.
            assert_eq!(recording_key(&db, &id).await, mine, "{engine}");
            assert_eq!(n, 9, "{engine}");
            for i in 0..10 {
                assert_eq!(
                    recording_key(&db, &format!("r{i}")).await.version(),
                    Some(2)
                );
            }
            assert!(
                keys.old_live_versions(Purpose::Recordings).is_empty(),
                "{engine}"
            );
        }
    }

    #[tokio::test]
    async fn scheduled_rotation_is_due_per_purpose_by_the_age_of_its_current_key() {
        for Site { db, keys, _dirs } in sites("sweep_due").await {
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
    }

    #[tokio::test]
    async fn a_key_that_does_not_unwrap_keeps_the_old_version_live() {
        for Site { db, keys, _dirs } in sites("sweep_unwrappable").await {
            add_recording(&db, &keys, "good").await;
            insert_recording(&db, "bad", "recordings:v1:AAAA").await;
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
            assert_eq!(purpose(&st, "recordings").pending, 1);
        }
    }

    /// SQLite: the database key's rotation ends when the gateway next
    /// starts and re-encrypts the file.
    #[tokio::test]
    async fn sqlite_database_rotation_is_done_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keyring(dir.path());
        let path = dir.path().join("j.db");
        let db = Store::sqlite(
            crate::store::sqlite::open_site(&path, &keys, true, crate::schema::SCHEMA)
                .await
                .unwrap()
                .0,
        );
        rotate(&db, &keys, &Purpose::ALL, "test").await.unwrap();
        sweep_all(&db, &keys, FAST, &CancellationToken::new())
            .await
            .unwrap();
        let st = status(&db, &keys).await.unwrap();
        assert_eq!(
            purpose(&st, "database").sweep,
            "rekey-at-next-start",
            "{st}"
        );
        db.close().await;
        let db = Store::sqlite(
            crate::store::sqlite::open_site(&path, &keys, true, crate::schema::SCHEMA)
                .await
                .unwrap()
                .0,
        );
        let st = status(&db, &keys).await.unwrap();
        for p in &st.purposes {
            assert_eq!(p.sweep, "done", "{st}");
            assert!(p.versions[0].retired, "{st}");
        }
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
        let db = Store::sqlite(
            crate::store::sqlite::open_site(&path, &keys, true, crate::schema::SCHEMA)
                .await
                .unwrap()
                .0,
        );
        let n = 10_000;
        let mut w = db.write().await.unwrap();
        for i in 0..n {
            let (_, k) = keys.new_data_key(Purpose::Vault).unwrap();
            sql!(w, |c| sqlx::query(
                "INSERT INTO vault_secrets (name, created_at, updated_at) VALUES ($1, 0, 0)",
            )
            .bind(format!("s{i}"))
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
            sql!(w, |c| sqlx::query("INSERT INTO vault_versions (name, version, created_at, created_by, wrapped_key, nonce, ciphertext) VALUES ($1, 1, 0, 't', $2, x'00', x'00')")
                .bind(format!("s{i}"))
                .bind(k.as_str())
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected()))
            .unwrap();
        }
        w.commit().await.unwrap();
        db.close().await;
        let t = std::time::Instant::now();
        for _ in 0..20 {
            let pool = crate::store::sqlite::open_site(&path, &keys, false, crate::schema::SCHEMA)
                .await
                .unwrap()
                .0;
            pool.close().await;
        }
        println!("open (pool + migrate check): {:?} avg", t.elapsed() / 20);
        let db = Store::sqlite(
            crate::store::sqlite::open_site(&path, &keys, false, crate::schema::SCHEMA)
                .await
                .unwrap()
                .0,
        );
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
        let db = crate::store::sqlite::open_site(&path, &keys, true, crate::schema::SCHEMA)
            .await
            .unwrap()
            .0;
        println!("rekey of {size} bytes + open: {:?}", t.elapsed());
        db.close().await;
    }
}
