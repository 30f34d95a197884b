//! The Package Manager, the gateway's side (issue #15): administrators
//! upload Debian packages, which are checked (a well-formed `.deb`, its
//! name, version and architecture, SHA-256, an optional publisher
//! signature) and stored in the blob store beside a manifest signed with
//! the EPM signing keys agents already trust; assignments per endpoint
//! group say what endpoints should have; agents are told over the
//! `packages` system stream and download from blob storage directly; what
//! they did and their inventories come back.
//!
//! - [`store`]: the domain's rows.
//! - [`notify`]: notices to agents (assignment fan-out, on connect), their
//!   answers, inventory pulls, and the gateway's signed download route.
//! - [`http`]: `/api/v1/packages/…` and `/packages/{id}/{file}`.
//!
//! The `.deb` reading, version order, manifest format and publisher
//! signatures are `jumpgate_epm::package`, shared with the agent and `jg`.

pub(crate) mod http;
pub(crate) mod notify;
pub(crate) mod schema;
pub(crate) mod store;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::StreamExt;
use jumpgate_epm::package::deb::{self, DebError};
use jumpgate_epm::package::manifest::{self, Manifest};
use jumpgate_epm::package::publisher::{DetachedSignature, PublisherError, PublisherKey};
use jumpgate_epm::package::version::DebVersion;
use tokio::io::AsyncWriteExt;

use crate::blobs::{BlobError, BlobKey};
use crate::epm::EpmError;
use crate::ids::{random_bytes, rfc3339};
use crate::keys::now_ms;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent, Exec, sql};
use store::PackageRow;

/// Largest package accepted.
pub(crate) const MAX_UPLOAD: u64 = 1024 * 1024 * 1024;

/// Why a Package Manager operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PackageError {
    /// The upload is not an acceptable `.deb`.
    #[error("not an acceptable Debian package: {0}")]
    Deb(#[from] DebError),
    /// The publisher key or signature is not acceptable.
    #[error("{0}")]
    Publisher(#[from] PublisherError),
    #[error(
        "this site requires packages signed by a trusted publisher: give the signature (jg epm packages upload FILE.deb --signature FILE.deb.minisig)"
    )]
    SignatureRequired,
    #[error("the package is larger than {0} bytes")]
    TooLarge(u64),
    #[error(
        "{name} {version} ({arch}) was uploaded before with other contents (sha256 {sha256}); delete it first or give it a new version"
    )]
    Duplicate {
        name: String,
        version: String,
        arch: String,
        sha256: String,
    },
    #[error("no package `{0}`")]
    UnknownPackage(String),
    #[error("no upload of {package} at version {version}")]
    NoSuchVersion { package: String, version: String },
    #[error("no endpoint group `{0}`")]
    UnknownGroup(String),
    #[error("no publisher `{0}`")]
    UnknownPublisher(String),
    #[error("a publisher named `{0}` or with that key exists already")]
    PublisherExists(String),
    #[error("{name} {version} is pinned by the assignment of group `{group}`: change that first")]
    Pinned {
        name: String,
        version: String,
        group: String,
    },
    #[error("no assignment of `{package}` to group `{group}`")]
    UnknownAssignment { group: String, package: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("signing: {0}")]
    Signing(#[from] EpmError),
    #[error("blob store: {0}")]
    Blobs(#[from] BlobError),
    #[error("upload spool: {0}")]
    Io(#[from] std::io::Error),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// The site setting (`settings` key `packages`).
pub(crate) const SETTINGS_KEY: &str = "packages";

pub(crate) async fn settings(
    e: &mut dyn Exec,
) -> Result<jumpgate_api_types::packages::PackageSettings, sqlx::Error> {
    let raw: Option<String> = sql!(e, |c| sqlx::query_scalar(
        "SELECT value FROM settings WHERE key = $1"
    )
    .bind(SETTINGS_KEY)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(raw
        .and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or_default())
}

pub(crate) async fn save_settings(
    st: &AppState,
    s: &jumpgate_api_types::packages::PackageSettings,
    by: &str,
) -> Result<(), PackageError> {
    let json = serde_json::to_string(s).unwrap_or_default();
    let mut w = st.db.write().await?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    .bind(SETTINGS_KEY)
    .bind(&json)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new(by, AuditAction::PackageSettings, "packages")
            .detail(format!("require_signature {}", s.require_signature)),
    )
    .await?;
    w.commit().await?;
    Ok(())
}

/// The trusted publisher keys, parsed (a stored key that no longer parses
/// is skipped and logged).
pub(crate) async fn publisher_keys(e: &mut dyn Exec) -> Result<Vec<PublisherKey>, sqlx::Error> {
    Ok(store::publishers(e)
        .await?
        .into_iter()
        .filter_map(|(name, _, key, _, _)| match PublisherKey::parse(&name, &key) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::error!(publisher = %name, error = %e, "a stored publisher key does not parse");
                None
            }
        })
        .collect())
}

/// Adds a trusted publisher key; audited.
pub(crate) async fn add_publisher(
    st: &AppState,
    name: &str,
    text: &str,
    by: &str,
) -> Result<store::PublisherRow, PackageError> {
    crate::ids::validate_name("publisher", name).map_err(PackageError::BadRequest)?;
    let key = PublisherKey::parse(name, text)?;
    let line = PublisherKey::normalized(text).unwrap_or_default();
    let row = (
        name.to_owned(),
        key.key_id.clone(),
        line,
        by.to_owned(),
        now_ms(),
    );
    let mut w = st.db.write().await?;
    if !store::add_publisher(&mut w, &row).await? {
        return Err(PackageError::PublisherExists(name.to_owned()));
    }
    w.audit(
        AuditEvent::new(by, AuditAction::PackagePublisherAdd, name)
            .detail(format!("minisign key {}", key.key_id)),
    )
    .await?;
    w.commit().await?;
    Ok(row)
}

pub(crate) async fn remove_publisher(
    st: &AppState,
    name: &str,
    by: &str,
) -> Result<(), PackageError> {
    let mut w = st.db.write().await?;
    if !store::remove_publisher(&mut w, name).await? {
        return Err(PackageError::UnknownPublisher(crate::ids::echo(name)));
    }
    w.audit(AuditEvent::new(
        by,
        AuditAction::PackagePublisherRemove,
        name,
    ))
    .await?;
    w.commit().await?;
    Ok(())
}

/// A spooled upload, removed when dropped.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spool_dir(st: &AppState) -> PathBuf {
    st.config.data_dir.join("packages").join("incoming")
}

/// Writes the body to a spool file, hashing it; answers (path, sha256, size).
async fn spool<S, E>(dir: &Path, mut body: S) -> Result<(Spool, String, u64), PackageError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(format!(
        "up_{}.deb",
        URL_SAFE_NO_PAD.encode(random_bytes::<12>())
    ));
    let guard = Spool(path.clone());
    let mut file = tokio::fs::File::create(&path).await?;
    let mut hash = jumpgate_net::digest::Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| PackageError::BadRequest(format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > MAX_UPLOAD {
            return Err(PackageError::TooLarge(MAX_UPLOAD));
        }
        hash.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    let sha256 = hash.hex();
    Ok((guard, sha256, size))
}

/// The blob keys of upload `id`.
pub(crate) fn blob_keys(id: &str) -> (String, String) {
    (
        format!("packages/{id}/package.deb"),
        format!("packages/{id}/manifest.jgpkg"),
    )
}

/// Checks and stores an upload whose bytes `body` yields; `signature`: the
/// publisher's minisign signature file. Answers the package and whether it
/// is new (the same file uploaded again is the existing package).
pub(crate) async fn upload<S, E>(
    st: &AppState,
    body: S,
    signature: Option<String>,
    by: &str,
) -> Result<(PackageRow, bool), PackageError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (spooled, sha256, size) = spool(&spool_dir(st), body).await?;
    // Parse and check the signature off the runtime (a large file).
    let (keys, require) = {
        let mut c = st.db.conn().await?;
        (
            publisher_keys(&mut c).await?,
            settings(&mut c).await?.require_signature,
        )
    };
    let path = spooled.0.clone();
    let checked = tokio::task::spawn_blocking(move || -> Result<_, PackageError> {
        let file = std::fs::File::open(&path)?;
        let info = deb::parse(std::io::BufReader::new(file))?;
        let publisher = match signature {
            Some(text) => {
                let sig = DetachedSignature::parse(&text)?;
                let file = std::fs::File::open(&path)?;
                Some(sig.verify(&keys, std::io::BufReader::new(file))?)
            }
            None if require => return Err(PackageError::SignatureRequired),
            None => None,
        };
        Ok((info, publisher))
    })
    .await
    .map_err(|e| PackageError::Io(std::io::Error::other(e)))??;
    let (info, publisher) = checked;
    {
        let mut c = st.db.conn().await?;
        if let Some(existing) =
            store::package_by_identity(&mut c, &info.package, &info.version, &info.architecture)
                .await?
        {
            if existing.sha256 == sha256 {
                return Ok((existing, false));
            }
            return Err(PackageError::Duplicate {
                name: info.package,
                version: info.version,
                arch: info.architecture,
                sha256: existing.sha256,
            });
        }
    }
    let id = format!("pkg_{}", URL_SAFE_NO_PAD.encode(random_bytes::<12>()));
    let (blob_key, manifest_key) = blob_keys(&id);
    // The package first (large; no transaction held), then the manifest.
    st.blobs
        .put_file(&BlobKey::new(blob_key.clone())?, &spooled.0)
        .await?;
    drop(spooled);
    let now = now_ms();
    let mut w = st.db.write().await?;
    let key = crate::epm::keys::current_signing_key(&mut w, &st.keys).await?;
    let m = Manifest {
        id: id.clone(),
        name: info.package.clone(),
        version: info.version.clone(),
        architecture: info.architecture.clone(),
        sha256: sha256.clone(),
        size,
        publisher: publisher.clone(),
        uploaded_by: by.to_owned(),
        uploaded_at: rfc3339(now),
    };
    let sealed = manifest::seal(&m, &key);
    let manifest_sha256 = jumpgate_epm::bundle::sha256_hex(&sealed);
    st.blobs
        .put(&BlobKey::new(manifest_key.clone())?, Bytes::from(sealed))
        .await?;
    let row = PackageRow {
        id: id.clone(),
        name: info.package,
        version: info.version,
        architecture: info.architecture,
        sha256,
        size,
        publisher,
        description: info.description,
        depends: info.depends,
        blob_key,
        manifest_key,
        manifest_sha256,
        key_id: key.id().to_owned(),
        uploaded_by: by.to_owned(),
        uploaded_at: now,
    };
    if let Err(e) = store::insert_package(&mut w, &row).await {
        drop(w);
        remove_blobs(st, &row).await;
        return Err(e.into());
    }
    w.audit(
        AuditEvent::new(by, AuditAction::PackageUpload, &row.id).detail(format!(
            "{} {} ({}), sha256 {}, {} bytes, publisher {}",
            row.name,
            row.version,
            row.architecture,
            row.sha256,
            row.size,
            row.publisher.as_deref().unwrap_or("(unsigned)")
        )),
    )
    .await?;
    w.commit().await?;
    tracing::info!(package = %row.name, version = %row.version, id = %row.id, "package uploaded");
    Ok((row, true))
}

async fn remove_blobs(st: &AppState, row: &PackageRow) {
    for k in [&row.blob_key, &row.manifest_key] {
        if let Ok(k) = BlobKey::new(k.clone())
            && let Err(e) = st.blobs.delete(&k).await
        {
            tracing::warn!(key = %k, error = %e, "cannot delete a package blob");
        }
    }
}

/// Deletes an upload (refused while an assignment pins its version);
/// audited.
pub(crate) async fn delete(st: &AppState, id: &str, by: &str) -> Result<(), PackageError> {
    let mut w = st.db.write().await?;
    let Some(row) = store::package_by_id(&mut w, id).await? else {
        return Err(PackageError::UnknownPackage(crate::ids::echo(id)));
    };
    if let Some(group) = store::pinned(&mut w, &row.name, &row.version).await? {
        return Err(PackageError::Pinned {
            name: row.name,
            version: row.version,
            group,
        });
    }
    store::delete_package(&mut w, id).await?;
    w.audit(
        AuditEvent::new(by, AuditAction::PackageDelete, id).detail(format!(
            "{} {} ({})",
            row.name, row.version, row.architecture
        )),
    )
    .await?;
    w.commit().await?;
    remove_blobs(st, &row).await;
    Ok(())
}

/// The newest uploaded version of `name` (Debian order).
pub(crate) fn newest(rows: &[PackageRow]) -> Option<String> {
    rows.iter()
        .filter_map(|r| DebVersion::parse(&r.version).ok())
        .max()
        .map(|v| v.to_string())
}

/// Makes or changes an assignment (the package and a pinned version must
/// be uploaded); audited. Answers the version endpoints are to have.
pub(crate) async fn assign(
    st: &AppState,
    group: &str,
    package: &str,
    action: jumpgate_proto::packages::TaskAction,
    version: Option<String>,
    by: &str,
) -> Result<(store::AssignmentRow, Option<String>), PackageError> {
    use jumpgate_proto::packages::TaskAction;
    let mut w = st.db.write().await?;
    if !store::group_exists(&mut w, group).await? {
        return Err(PackageError::UnknownGroup(crate::ids::echo(group)));
    }
    let uploads = store::packages(&mut w, Some(package)).await?;
    let resolved = match action {
        TaskAction::Install => {
            if uploads.is_empty() {
                return Err(PackageError::UnknownPackage(crate::ids::echo(package)));
            }
            match &version {
                Some(v) => {
                    let want = DebVersion::parse(v)
                        .map_err(|e| PackageError::BadRequest(e.to_string()))?;
                    let found = uploads
                        .iter()
                        .find(|r| DebVersion::parse(&r.version).is_ok_and(|have| have == want))
                        .ok_or_else(|| PackageError::NoSuchVersion {
                            package: package.to_owned(),
                            version: crate::ids::echo(v),
                        })?;
                    Some(found.version.clone())
                }
                None => newest(&uploads),
            }
        }
        TaskAction::Remove => {
            if !deb::valid_package_name(package) {
                return Err(PackageError::BadRequest(format!(
                    "{} is not a Debian package name",
                    crate::ids::echo(package)
                )));
            }
            if version.is_some() {
                return Err(PackageError::BadRequest(
                    "a version goes with install only".into(),
                ));
            }
            None
        }
    };
    let row = (
        group.to_owned(),
        package.to_owned(),
        action.as_str().to_owned(),
        version.as_ref().and(resolved.clone()),
        by.to_owned(),
        now_ms(),
    );
    store::put_assignment(&mut w, &row).await?;
    w.audit(
        AuditEvent::new(by, AuditAction::PackageAssign, format!("{group}/{package}"))
            .detail(format!(
                "{} {}",
                action.as_str(),
                version
                    .as_deref()
                    .unwrap_or(if action == TaskAction::Install {
                        "newest"
                    } else {
                        ""
                    })
            ))
            .group(group.to_owned()),
    )
    .await?;
    w.commit().await?;
    Ok((row, resolved))
}

pub(crate) async fn unassign(
    st: &AppState,
    group: &str,
    package: &str,
    by: &str,
) -> Result<(), PackageError> {
    let mut w = st.db.write().await?;
    if !store::delete_assignment(&mut w, group, package).await? {
        return Err(PackageError::UnknownAssignment {
            group: crate::ids::echo(group),
            package: crate::ids::echo(package),
        });
    }
    w.audit(
        AuditEvent::new(
            by,
            AuditAction::PackageUnassign,
            format!("{group}/{package}"),
        )
        .group(group.to_owned()),
    )
    .await?;
    w.commit().await?;
    Ok(())
}

/// The package as the API shows it.
pub(crate) fn package_dto(r: &PackageRow) -> jumpgate_api_types::packages::PackageInfo {
    jumpgate_api_types::packages::PackageInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        version: r.version.clone(),
        architecture: r.architecture.clone(),
        sha256: r.sha256.clone(),
        size: r.size,
        publisher: r.publisher.clone(),
        description: r.description.clone(),
        depends: r.depends.clone(),
        key: r.key_id.clone(),
        manifest_sha256: r.manifest_sha256.clone(),
        uploaded_by: r.uploaded_by.clone(),
        uploaded_at: rfc3339(r.uploaded_at),
    }
}
