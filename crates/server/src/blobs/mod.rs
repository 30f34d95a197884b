//! Blob storage: one seam ([`BlobStore`]) over the `object_store` crate for
//! large, write-once data (session recordings today, signed policy bundles
//! next). Three stores sit behind it, chosen by `[blobs]`:
//!
//! - **local** (the default): files under the data dir, keyed by their path
//!   below it (`recordings/rec_….jgrec` is `<data dir>/recordings/rec_….jgrec`,
//!   where recordings always were, so existing sites read them in place);
//! - **S3** (`s3://BUCKET/PREFIX`, AWS or an S3-compatible server);
//! - **Azure Blob** (`az://CONTAINER/PREFIX`).
//!
//! Keys are made by the gateway ([`BlobKey`] refuses anything else), never
//! taken from requests. Credentials come from the environment or from
//! files named in the config; they are held only inside the `object_store`
//! client and never logged ([`BlobStore::location`] names the store
//! without them). Buckets and containers are created out of band
//! (`object_store` has no API for it); the gateway checks at start that it
//! can list its prefix ([`BlobStore::check`]).
//!
//! [`BlobStore::signed_url`] hands out a time-limited URL (S3 SigV4 query
//! signing, Azure service SAS) so that a client can fetch a blob directly
//! from the store; the local store has none (`None`: serve it through the
//! gateway).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt as _};
use tokio::io::{AsyncRead, AsyncWriteExt as _};
use zeroize::Zeroizing;

use crate::config::BlobsConfig;

/// A blob's bytes as they arrive.
pub(crate) type BlobRead = Box<dyn AsyncRead + Send + Unpin>;

/// The gateway's blob store (cheap to clone).
pub(crate) type Blobs = Arc<dyn BlobStore>;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BlobError {
    #[error("blob store {store}: {message}")]
    Store { store: String, message: String },
    #[error("`{0}` is not a blob key the gateway makes")]
    BadKey(String),
    #[error("blob store: {0}")]
    Io(#[from] std::io::Error),
}

/// Why the configured blob store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BlobConfigError {
    #[error("[blobs] {store}: {message}")]
    Credentials { store: String, message: String },
    #[error("[blobs] {store}: {message}")]
    Build { store: String, message: String },
    #[error(
        "[blobs] {store}: cannot use the store: {message} (buckets and containers must exist, and the credentials must allow listing, reading, writing and deleting under the prefix)"
    )]
    Unusable { store: String, message: String },
    #[error("[blobs] local store under {path}: {cause}")]
    Local { path: String, cause: String },
}

/// A blob's name inside the store: `/`-separated parts of ASCII letters,
/// digits, `-`, `_` and `.` (no empty, `.` or `..` part), e.g.
/// `recordings/rec_01H….jgrec`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BlobKey(String);

impl BlobKey {
    pub(crate) fn new(key: impl Into<String>) -> Result<Self, BlobError> {
        let key = key.into();
        let part_ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if key.len() > 512 || !key.split('/').all(part_ok) {
            return Err(BlobError::BadKey(key));
        }
        Ok(Self(key))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Large write-once data, stored by key.
#[allow(
    dead_code,
    reason = "put, exists, list and signed_url are the seam the policy bundles of issue 11 (§4.4) build on; blobs::tests covers them on every store"
)]
#[async_trait::async_trait]
pub(crate) trait BlobStore: Send + Sync + std::fmt::Debug {
    /// The store, for messages: `local <dir>`, `s3://bucket/prefix`, … (no
    /// credentials).
    fn location(&self) -> &str;

    /// The file that holds `key`, for a store on the local file system
    /// (`None` for remote stores). Writers that already hold a durable
    /// file there need not copy it.
    fn local_path(&self, key: &BlobKey) -> Option<PathBuf>;

    /// Stores `data` under `key`, replacing what was there; durable when
    /// this returns.
    async fn put(&self, key: &BlobKey, data: Bytes) -> Result<(), BlobError>;

    /// Stores the contents of the local file `file` under `key` (streamed;
    /// large files go up in parts). Nothing to do if `file` is where the
    /// store keeps `key` already.
    async fn put_file(&self, key: &BlobKey, file: &Path) -> Result<(), BlobError>;

    /// The blob's bytes; `None` if there is no such blob.
    async fn get(&self, key: &BlobKey) -> Result<Option<BlobRead>, BlobError>;

    /// Whether the blob exists.
    async fn exists(&self, key: &BlobKey) -> Result<bool, BlobError>;

    /// Removes the blob (no error if it does not exist).
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;

    /// The keys below `prefix` (a directory-like key such as `recordings`).
    async fn list(&self, prefix: &BlobKey) -> Result<Vec<BlobKey>, BlobError>;

    /// A URL through which anyone holding it may `method` (GET, PUT) the
    /// blob directly at the store, for `expires_in`; `None` when the store
    /// cannot sign URLs (the local store: serve the blob through the
    /// gateway instead).
    async fn signed_url(
        &self,
        method: http::Method,
        key: &BlobKey,
        expires_in: Duration,
    ) -> Result<Option<String>, BlobError>;

    /// Proves the store is reachable with the configured credentials (a
    /// listing of the prefix): a missing bucket or bad credentials show
    /// at start, not at the first recording.
    async fn check(&self) -> Result<(), BlobError>;
}

/// Opens the store `[blobs]` names. Credentials are read here (environment
/// or files), never logged, and kept only in the client.
pub(crate) async fn open(config: &BlobsConfig, data_dir: &Path) -> Result<Blobs, BlobConfigError> {
    let store = config.describe();
    let built: Result<ObjectBlobs, BlobConfigError> = match config {
        BlobsConfig::Local => ObjectBlobs::local(data_dir),
        BlobsConfig::S3 {
            bucket,
            prefix,
            endpoint,
            region,
            access_key_id,
            secret_key_file,
            session_token_file,
        } => {
            let cred = |message: String| BlobConfigError::Credentials {
                store: store.clone(),
                message,
            };
            let key_id = match access_key_id {
                Some(k) => k.clone(),
                None => env_value("AWS_ACCESS_KEY_ID")
                    .map(|v| v.to_string())
                    .ok_or_else(|| {
                        cred(
                            "no access key id: set `blobs.access_key_id` or AWS_ACCESS_KEY_ID"
                                .into(),
                        )
                    })?,
            };
            let secret = read_secret(
                secret_key_file.as_deref(),
                "AWS_SECRET_ACCESS_KEY",
                "blobs.secret_key_file",
            )
            .map_err(cred)?
            .ok_or_else(|| {
                cred(
                    "no secret access key: set `blobs.secret_key_file` or AWS_SECRET_ACCESS_KEY"
                        .into(),
                )
            })?;
            let token = read_secret(
                session_token_file.as_deref(),
                "AWS_SESSION_TOKEN",
                "blobs.session_token_file",
            )
            .map_err(cred)?;
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(region)
                .with_access_key_id(key_id)
                .with_secret_access_key(secret.as_str())
                .with_retry(retry());
            if let Some(t) = token {
                b = b.with_token(t.as_str());
            }
            if let Some(e) = endpoint {
                b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
            }
            let s3 = Arc::new(b.build().map_err(|e| BlobConfigError::Build {
                store: store.clone(),
                message: e.to_string(),
            })?);
            Ok(ObjectBlobs::remote(
                s3.clone(),
                Some(s3),
                prefix,
                store.clone(),
            ))
        }
        BlobsConfig::Azure {
            container,
            prefix,
            endpoint,
            account,
            secret_key_file,
        } => {
            let cred = |message: String| BlobConfigError::Credentials {
                store: store.clone(),
                message,
            };
            let account = match account {
                Some(a) => a.clone(),
                None => env_value("AZURE_STORAGE_ACCOUNT_NAME")
                    .map(|v| v.to_string())
                    .ok_or_else(|| {
                        cred(
                            "no storage account: set `blobs.account` or AZURE_STORAGE_ACCOUNT_NAME"
                                .into(),
                        )
                    })?,
            };
            let key = read_secret(
                secret_key_file.as_deref(),
                "AZURE_STORAGE_ACCOUNT_KEY",
                "blobs.secret_key_file",
            )
            .map_err(cred)?
            .ok_or_else(|| {
                cred(
                    "no account key: set `blobs.secret_key_file` or AZURE_STORAGE_ACCOUNT_KEY"
                        .into(),
                )
            })?;
            let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                .with_account(account)
                .with_access_key(key.as_str())
                .with_container_name(container)
                .with_retry(retry());
            if let Some(e) = endpoint {
                b = b
                    .with_endpoint(e.clone())
                    .with_allow_http(e.starts_with("http://"));
            }
            let az = Arc::new(b.build().map_err(|e| BlobConfigError::Build {
                store: store.clone(),
                message: e.to_string(),
            })?);
            Ok(ObjectBlobs::remote(
                az.clone(),
                Some(az),
                prefix,
                store.clone(),
            ))
        }
    };
    let blobs = built?;
    blobs.check().await.map_err(|e| BlobConfigError::Unusable {
        store: blobs.location.clone(),
        message: match e {
            BlobError::Store { message, .. } => message,
            other => other.to_string(),
        },
    })?;
    Ok(Arc::new(blobs))
}

/// A remote-like store in memory (no local paths, no signer), for tests of
/// what uses the seam.
#[cfg(test)]
pub(crate) fn in_memory(location: &str) -> Blobs {
    Arc::new(ObjectBlobs::remote(
        Arc::new(object_store::memory::InMemory::new()),
        None,
        "site-a",
        location.to_owned(),
    ))
}

/// Bounded retries: a store that is down fails an operation within about
/// half a minute (a recording's upload is retried at the next start).
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

/// A non-empty environment variable.
fn env_value(name: &str) -> Option<Zeroizing<String>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(Zeroizing::new)
}

/// A secret from `file` (trimmed; named by `key` in errors) or else from
/// the environment variable `env`. Errors name where it was looked for,
/// never what was found.
fn read_secret(
    file: Option<&Path>,
    env: &str,
    key: &str,
) -> Result<Option<Zeroizing<String>>, String> {
    match file {
        Some(path) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("`{key}`: cannot read {}: {e}", path.display()))?,
            );
            let value = text.trim();
            if value.is_empty() {
                return Err(format!("`{key}`: {} is empty", path.display()));
            }
            Ok(Some(Zeroizing::new(value.to_owned())))
        }
        None => Ok(env_value(env).map(|v| Zeroizing::new(v.trim().to_owned()))),
    }
}

/// Every store: an `object_store` client, the key prefix inside it, and
/// its signer (S3, Azure) or local root (the file system).
#[allow(dead_code, reason = "read by signed_url, see BlobStore")]
struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
    /// Parts put before every key (the URL's prefix).
    prefix: Vec<String>,
    /// The directory of the local store.
    local_root: Option<PathBuf>,
    location: String,
}

impl std::fmt::Debug for ObjectBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds credentials: only the location is shown.
        f.debug_struct("ObjectBlobs")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl ObjectBlobs {
    fn local(data_dir: &Path) -> Result<Self, BlobConfigError> {
        let err = |cause: String| BlobConfigError::Local {
            path: data_dir.display().to_string(),
            cause,
        };
        crate::site::create_private_dir(data_dir).map_err(|e| err(e.to_string()))?;
        let root = data_dir.canonicalize().map_err(|e| err(e.to_string()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            store: Arc::new(fs),
            signer: None,
            prefix: Vec::new(),
            location: format!("local {}", root.display()),
            local_root: Some(root),
        })
    }

    fn remote(
        store: Arc<dyn ObjectStore>,
        signer: Option<Arc<dyn Signer>>,
        prefix: &str,
        location: String,
    ) -> Self {
        Self {
            store,
            signer,
            prefix: prefix
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            local_root: None,
            location,
        }
    }

    fn path(&self, key: &BlobKey) -> ObjectPath {
        self.prefix
            .iter()
            .map(String::as_str)
            .chain(key.as_str().split('/'))
            .collect()
    }

    fn fail(&self, e: impl std::fmt::Display) -> BlobError {
        BlobError::Store {
            store: self.location.clone(),
            message: e.to_string(),
        }
    }

    /// Makes a file written by the local store durable, readable only by
    /// the gateway's user, and its directory entry too.
    async fn sync_local(&self, key: &BlobKey) -> Result<(), BlobError> {
        let Some(path) = self.local_path(key) else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::PermissionsExt as _;
            let f = std::fs::File::open(&path)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for ObjectBlobs {
    fn location(&self) -> &str {
        &self.location
    }

    fn local_path(&self, key: &BlobKey) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?;
        Some(
            key.as_str()
                .split('/')
                .fold(root.clone(), |p, part| p.join(part)),
        )
    }

    async fn put(&self, key: &BlobKey, data: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&self.path(key), data.into())
            .await
            .map_err(|e| self.fail(e))?;
        self.sync_local(key).await
    }

    async fn put_file(&self, key: &BlobKey, file: &Path) -> Result<(), BlobError> {
        if let Some(at) = self.local_path(key)
            && tokio::fs::canonicalize(file).await.ok().as_deref() == Some(at.as_path())
        {
            return Ok(());
        }
        let mut source = tokio::fs::File::open(file).await?;
        // Up to 10 MiB in one request, in 10 MiB parts beyond.
        let mut up = object_store::buffered::BufWriter::new(self.store.clone(), self.path(key));
        let copied = async {
            tokio::io::copy(&mut source, &mut up).await?;
            up.shutdown().await
        }
        .await;
        if let Err(e) = copied {
            let _ = up.abort().await;
            return Err(self.fail(e));
        }
        self.sync_local(key).await
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<BlobRead>, BlobError> {
        if let Some(path) = self.local_path(key) {
            // The file itself: a recording still being written reads up
            // to its last whole chunk, as it always did.
            return match tokio::fs::File::open(&path).await {
                Ok(f) => Ok(Some(Box::new(f))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        match self.store.get(&self.path(key)).await {
            Ok(got) => {
                let stream = got.into_stream().map(|r| r.map_err(std::io::Error::other));
                Ok(Some(Box::new(tokio_util::io::StreamReader::new(stream))))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn exists(&self, key: &BlobKey) -> Result<bool, BlobError> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn list(&self, prefix: &BlobKey) -> Result<Vec<BlobKey>, BlobError> {
        let under = self.path(prefix);
        let skip = self.prefix.len();
        let mut out = Vec::new();
        let mut listing = self.store.list(Some(&under));
        while let Some(meta) = listing.next().await {
            let meta = match meta {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.fail(e)),
            };
            let parts: Vec<String> = meta
                .location
                .parts()
                .skip(skip)
                .map(|p| p.as_ref().to_owned())
                .collect();
            // Objects the gateway did not name (e.g. put there by hand) are
            // not its keys.
            if let Ok(k) = BlobKey::new(parts.join("/")) {
                out.push(k);
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn signed_url(
        &self,
        method: http::Method,
        key: &BlobKey,
        expires_in: Duration,
    ) -> Result<Option<String>, BlobError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let url = signer
            .signed_url(method, &self.path(key), expires_in)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Some(url.to_string()))
    }

    async fn check(&self) -> Result<(), BlobError> {
        if let Some(root) = &self.local_root {
            tokio::fs::metadata(root).await?;
            return Ok(());
        }
        let under: ObjectPath = self.prefix.iter().map(String::as_str).collect();
        let probe = async {
            self.store
                .list_with_delimiter(Some(&under))
                .await
                .map(|_| ())
                .map_err(|e| self.fail(e))
        };
        tokio::time::timeout(Duration::from_secs(60), probe)
            .await
            .map_err(|_| self.fail("no answer within 60 s"))?
    }
}

#[cfg(test)]
pub(crate) mod tests;
