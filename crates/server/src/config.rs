//! Gateway configuration: a TOML file and command-line flags (flags win),
//! parsed into a validated [`Config`] before any port is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The raw, unvalidated settings, as written in the TOML file. Command-line
/// flags fill the same structure and are merged over the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where the database, keys and certificates live.
    pub data_dir: Option<PathBuf>,
    /// The one TLS port: console, API and agents.
    pub listen: Option<String>,
    /// Optional plain-HTTP port that only redirects to `listen`.
    pub redirect_listen: Option<String>,
    /// A file the gateway writes once it listens: the addresses it bound
    /// (port 0 resolved) and the fingerprint clients pin, so scripts and
    /// tests need not read its standard output.
    pub listen_address_file: Option<PathBuf>,
    /// The site's host name (the generated certificate is issued for it).
    pub hostname: Option<String>,
    /// Where users reach the console, `https://HOST[:PORT]`, when it is not
    /// `https://<hostname>` on the TLS port (e.g. behind port forwarding).
    pub public_url: Option<String>,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub agents: RawAgents,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub recording: RawRecording,
    #[serde(default)]
    pub retention: RawRetention,
    #[serde(default)]
    pub keys: RawKeys,
    #[serde(default)]
    pub vault: RawVault,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub blobs: RawBlobs,
    #[serde(default)]
    pub support: RawSupport,
    #[serde(default)]
    pub analytics: RawAnalytics,
    #[serde(default)]
    pub ssh: RawSsh,
    #[serde(default)]
    pub audit: RawAudit,
    /// `[smtp]`: the mail server alerts are sent through (unset: no mail).
    pub smtp: Option<RawSmtp>,
}

/// `[smtp]`: the mail server alert mail goes through. The password is not
/// in this file: it is a vault secret, named here.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    /// The mail server's host name (checked against its certificate).
    pub host: Option<String>,
    /// Default: 587 (`starttls`), 465 (`tls`), 25 (`none`).
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (only to a
    /// loopback host).
    pub security: Option<String>,
    /// The user to authenticate as (unset: no AUTH).
    pub user: Option<String>,
    /// The vault secret holding the user's password.
    pub password_secret: Option<String>,
    /// The `From` address, e.g. `Jumpgate <jumpgate@example.com>`.
    pub sender: Option<String>,
    /// A PEM file of CA certificates trusted for the mail server besides
    /// the system's roots (a site's own CA).
    pub ca_file: Option<PathBuf>,
}

/// How the connection to the mail server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required, never optional).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No TLS: only to a loopback host.
    None,
}

/// `[smtp]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// `(user, vault secret name)` when the server wants AUTH.
    pub auth: Option<(String, String)>,
    pub sender: String,
    pub ca_file: Option<PathBuf>,
}

/// `[ssh]`: the SSH front door (stock OpenSSH clients reach endpoints
/// through the gateway). Off unless `listen` is set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    /// `ADDR:PORT` for SSH (port 22 in production).
    pub listen: Option<String>,
    /// The longest a user certificate (`jg login`, `jg ssh-cert`) is valid
    /// (`12h` by default; 1m to 7d). A certificate never outlives its login.
    pub certificate_lifetime: Option<String>,
}

/// `[analytics]`: where reports read the site's events from, with a write
/// identity (the gateway's logging pipeline) and a read identity (reports)
/// of their own. Unset: the embedded encrypted file in the data directory.
/// Passwords come from files, never from this file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnalytics {
    /// `embedded` (default), `postgres` or `opensearch`.
    pub backend: Option<String>,
    /// PostgreSQL: the write role's URL, `postgres://WRITER@HOST:PORT/DB`.
    pub write_url: Option<String>,
    /// PostgreSQL: the read role's URL, `postgres://READER@HOST:PORT/DB`.
    pub read_url: Option<String>,
    /// OpenSearch/Elasticsearch: the cluster, `https://HOST:9200`.
    pub url: Option<String>,
    /// OpenSearch: the index (default `jumpgate-events`).
    pub index: Option<String>,
    /// OpenSearch: the user allowed `_bulk` on the index.
    pub write_user: Option<String>,
    /// OpenSearch: the user allowed `_search` on the index.
    pub read_user: Option<String>,
    /// File holding the write identity's password.
    pub write_password_file: Option<PathBuf>,
    /// File holding the read identity's password.
    pub read_password_file: Option<PathBuf>,
    /// OpenSearch over https: the SHA-256 fingerprint of a certificate of
    /// the cluster's chain (its CA); unset: the system's roots.
    pub ca_fingerprint: Option<String>,
}

/// `[support]`: attended support's public portal.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSupport {
    /// A host name of its own for the portal (e.g. support.example.com),
    /// served on the same TLS port; on it only the portal is reachable.
    pub portal_hostname: Option<String>,
    /// PEM certificate chain for the portal's host name (chosen by SNI);
    /// unset: the generated server certificate also covers it.
    pub portal_tls_cert: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub portal_tls_key: Option<PathBuf>,
    /// The customer client the portal offers for download (its trailer is
    /// appended per download). Unset: `jumpgate-assist` next to the
    /// gateway's executable, else the gateway's executable itself.
    pub assist_binary: Option<PathBuf>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    /// `postgres://USER@HOST:PORT/DB` (libpq URL; `sslmode=verify-full` and
    /// `sslrootcert=FILE` for TLS with certificate checks). Unset: the
    /// embedded encrypted SQLite file in the data directory.
    pub url: Option<String>,
    /// PostgreSQL connections the gateway keeps at most.
    pub max_connections: Option<u32>,
}

impl std::fmt::Debug for RawDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDatabase")
            .field(
                "url",
                &self.url.as_deref().map(crate::store::postgres::redacted),
            )
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `[blobs]`: where recordings (and later other blobs) are stored. Unset:
/// files under the data dir. Secrets are never written here: they come from
/// environment variables or from the files named here.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBlobs {
    /// `s3://BUCKET[/PREFIX]` or `az://CONTAINER[/PREFIX]`.
    pub url: Option<String>,
    /// The service's URL when it is not the cloud's default (S3-compatible
    /// servers, Azurite, private endpoints), e.g. `https://s3.example.com`.
    pub endpoint: Option<String>,
    /// S3 region (default `us-east-1`).
    pub region: Option<String>,
    /// S3 access key id (default: `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Azure storage account (default: `AZURE_STORAGE_ACCOUNT_NAME`).
    pub account: Option<String>,
    /// File holding the S3 secret access key or the Azure account key
    /// (default: `AWS_SECRET_ACCESS_KEY` / `AZURE_STORAGE_ACCOUNT_KEY`).
    pub secret_key_file: Option<PathBuf>,
    /// File holding an S3 session token (default: `AWS_SESSION_TOKEN`, if set).
    pub session_token_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// Rotate every key-encryption key this often, e.g. "90d"; "never" to
    /// rotate only with `jumpgate admin rotate-keys`.
    pub rotate_every: Option<String>,
    /// Wrapped keys the rotation sweep re-wraps per transaction.
    pub sweep_batch: Option<u32>,
    /// Pause between sweep batches, e.g. "10ms", to bound the sweep's I/O.
    pub sweep_pause: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    /// How long a deleted secret stays recoverable, 7d to 90d. Fixed for
    /// the site once it has run with it.
    pub retention: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain of the site's own certificate.
    pub cert: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub key: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgents {
    /// How often agents ping, e.g. "20s".
    pub heartbeat: Option<String>,
    /// An endpoint offline this long gets an `endpoint-offline` audit
    /// entry (which alert rules and webhooks pick up), e.g. "15m"
    /// (default), or "off".
    pub offline_after: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// How often the gateway walks the whole audit chain, e.g. "1h"
    /// (default), or "off"; a broken chain gets an `audit-verify` entry
    /// with outcome `failure`.
    pub verify_every: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Lifetime of a login session token, e.g. "12h".
    pub session_ttl: Option<String>,
    /// The longest window an access request may ask for, e.g. "8h"
    /// (default 8h, at most 30d).
    pub access_max_window: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Concurrent TCP connections on the TLS port (agents included).
    pub max_connections: Option<usize>,
    /// Of those, connections not yet authenticated (in the TLS handshake,
    /// or HTTP connections that have not presented a valid token, or agent
    /// connections before their hello is verified). When full, the oldest
    /// one of the address holding the most is closed to admit a newcomer.
    pub max_unauthenticated: Option<usize>,
    /// Unauthenticated connections from one source address; more are
    /// refused at accept.
    pub max_unauthenticated_per_address: Option<usize>,
    /// Time a request body may take in all, e.g. "60s".
    pub request_body_timeout: Option<String>,
    /// Bytes per second a request body must keep up after a 5 s grace.
    pub request_body_min_rate: Option<u64>,
    /// An HTTP connection with no request in progress is closed after this
    /// long, e.g. "60s" (upgraded sessions and agents are not affected).
    pub idle_timeout: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecording {
    /// Whether shell recordings include the technician's keystrokes
    /// (passwords typed into the remote shell included). Off by default.
    pub keystrokes: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Days session recordings are kept; unset keeps them forever.
    pub recordings_days: Option<u32>,
    /// Days audit entries are kept; unset keeps them forever.
    pub audit_days: Option<u32>,
    /// Days ended support sessions (chat, rights, participants) are kept;
    /// unset follows `recordings_days`.
    pub support_days: Option<u32>,
    /// Days delivered webhook deliveries stay listed before they are
    /// removed (dead ones stay until replayed or their subscription is
    /// removed); default 7.
    pub webhook_deliveries_days: Option<u32>,
}

impl RawConfig {
    /// Settings in `other` replace ours.
    #[must_use]
    pub fn merged_with(self, other: Self) -> Self {
        Self {
            data_dir: other.data_dir.or(self.data_dir),
            listen: other.listen.or(self.listen),
            redirect_listen: other.redirect_listen.or(self.redirect_listen),
            listen_address_file: other.listen_address_file.or(self.listen_address_file),
            hostname: other.hostname.or(self.hostname),
            public_url: other.public_url.or(self.public_url),
            tls: RawTls {
                cert: other.tls.cert.or(self.tls.cert),
                key: other.tls.key.or(self.tls.key),
            },
            agents: RawAgents {
                heartbeat: other.agents.heartbeat.or(self.agents.heartbeat),
                offline_after: other.agents.offline_after.or(self.agents.offline_after),
            },
            audit: RawAudit {
                verify_every: other.audit.verify_every.or(self.audit.verify_every),
            },
            auth: RawAuth {
                session_ttl: other.auth.session_ttl.or(self.auth.session_ttl),
                access_max_window: other.auth.access_max_window.or(self.auth.access_max_window),
            },
            limits: RawLimits {
                max_connections: other.limits.max_connections.or(self.limits.max_connections),
                max_unauthenticated: other
                    .limits
                    .max_unauthenticated
                    .or(self.limits.max_unauthenticated),
                max_unauthenticated_per_address: other
                    .limits
                    .max_unauthenticated_per_address
                    .or(self.limits.max_unauthenticated_per_address),
                request_body_timeout: other
                    .limits
                    .request_body_timeout
                    .or(self.limits.request_body_timeout),
                request_body_min_rate: other
                    .limits
                    .request_body_min_rate
                    .or(self.limits.request_body_min_rate),
                idle_timeout: other.limits.idle_timeout.or(self.limits.idle_timeout),
            },
            recording: RawRecording {
                keystrokes: other.recording.keystrokes.or(self.recording.keystrokes),
            },
            retention: RawRetention {
                recordings_days: other
                    .retention
                    .recordings_days
                    .or(self.retention.recordings_days),
                audit_days: other.retention.audit_days.or(self.retention.audit_days),
                support_days: other.retention.support_days.or(self.retention.support_days),
                webhook_deliveries_days: other
                    .retention
                    .webhook_deliveries_days
                    .or(self.retention.webhook_deliveries_days),
            },
            keys: RawKeys {
                rotate_every: other.keys.rotate_every.or(self.keys.rotate_every),
                sweep_batch: other.keys.sweep_batch.or(self.keys.sweep_batch),
                sweep_pause: other.keys.sweep_pause.or(self.keys.sweep_pause),
            },
            vault: RawVault {
                retention: other.vault.retention.or(self.vault.retention),
            },
            database: RawDatabase {
                url: other.database.url.or(self.database.url),
                max_connections: other
                    .database
                    .max_connections
                    .or(self.database.max_connections),
            },
            blobs: RawBlobs {
                url: other.blobs.url.or(self.blobs.url),
                endpoint: other.blobs.endpoint.or(self.blobs.endpoint),
                region: other.blobs.region.or(self.blobs.region),
                access_key_id: other.blobs.access_key_id.or(self.blobs.access_key_id),
                account: other.blobs.account.or(self.blobs.account),
                secret_key_file: other.blobs.secret_key_file.or(self.blobs.secret_key_file),
                session_token_file: other
                    .blobs
                    .session_token_file
                    .or(self.blobs.session_token_file),
            },
            support: RawSupport {
                portal_hostname: other
                    .support
                    .portal_hostname
                    .or(self.support.portal_hostname),
                portal_tls_cert: other
                    .support
                    .portal_tls_cert
                    .or(self.support.portal_tls_cert),
                portal_tls_key: other.support.portal_tls_key.or(self.support.portal_tls_key),
                assist_binary: other.support.assist_binary.or(self.support.assist_binary),
            },
            ssh: RawSsh {
                listen: other.ssh.listen.or(self.ssh.listen),
                certificate_lifetime: other
                    .ssh
                    .certificate_lifetime
                    .or(self.ssh.certificate_lifetime),
            },
            smtp: other.smtp.or(self.smtp),
            analytics: RawAnalytics {
                backend: other.analytics.backend.or(self.analytics.backend),
                write_url: other.analytics.write_url.or(self.analytics.write_url),
                read_url: other.analytics.read_url.or(self.analytics.read_url),
                url: other.analytics.url.or(self.analytics.url),
                index: other.analytics.index.or(self.analytics.index),
                write_user: other.analytics.write_user.or(self.analytics.write_user),
                read_user: other.analytics.read_user.or(self.analytics.read_user),
                write_password_file: other
                    .analytics
                    .write_password_file
                    .or(self.analytics.write_password_file),
                read_password_file: other
                    .analytics
                    .read_password_file
                    .or(self.analytics.read_password_file),
                ca_fingerprint: other
                    .analytics
                    .ca_fingerprint
                    .or(self.analytics.ca_fingerprint),
            },
        }
    }
}

/// A configuration problem, naming the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Where the TLS certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// A site CA and server certificate generated (once) under the data dir.
    Generated,
    /// The site's own certificate (e.g. for a company CNAME).
    Files { cert: PathBuf, key: PathBuf },
}

/// Everything the TLS port presents: the site's certificate and, if the
/// portal has a host name of its own, what it needs for that name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    pub site: TlsSource,
    pub portal: Option<PortalTls>,
}

/// The portal's host name and, if it has one, its own certificate
/// (otherwise the generated site certificate covers the name too; with
/// the site's own certificate files, that certificate must).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalTls {
    /// Lowercase, without a trailing dot.
    pub hostname: String,
    /// `(cert, key)` PEM files, chosen by SNI for the portal's host name.
    pub files: Option<(PathBuf, PathBuf)>,
}

/// The validated configuration. Every field is meaningful as it is.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub redirect_listen: Option<SocketAddr>,
    /// Where to write [`crate::Started::address_file`] once listening.
    pub listen_address_file: Option<PathBuf>,
    pub hostname: String,
    /// `https://host[:port]` from `public_url` (no default port, no path).
    pub public_origin: Option<String>,
    pub tls: TlsConfig,
    /// `[support] assist_binary`: an existing file, when set.
    pub assist_binary: Option<PathBuf>,
    pub agent_heartbeat: Duration,
    /// `agents.offline_after` (`None`: off).
    pub endpoint_offline_after: Option<Duration>,
    /// `audit.verify_every` (`None`: off).
    pub audit_verify_every: Option<Duration>,
    pub session_ttl: Duration,
    /// `auth.access_max_window`: the longest access grant a request may
    /// ask for.
    pub access_max_window: Duration,
    pub max_connections: usize,
    pub limits: Limits,
    /// Shell recordings include keystrokes.
    pub record_keystrokes: bool,
    /// How long recordings are kept (`None`: forever).
    pub recording_retention: Option<Duration>,
    /// How long audit entries are kept (`None`: forever).
    pub audit_retention: Option<Duration>,
    /// How long ended support sessions are kept (`None`: as recordings).
    pub support_retention: Option<Duration>,
    /// How long delivered webhook deliveries are kept (default 7 days).
    pub webhook_delivery_retention: Duration,
    pub keys: KeysConfig,
    /// How long a deleted vault secret stays recoverable (7 to 90 days);
    /// `None`: what the site already uses, 90 days for a new site.
    pub vault_retention: Option<Duration>,
    /// `None`: the embedded encrypted SQLite file in the data directory.
    pub database: Option<DatabaseConfig>,
    /// Where blobs (recordings) are stored.
    pub blobs: BlobsConfig,
    /// The analytics store reports read (`[analytics]`).
    pub analytics: AnalyticsConfig,
    /// `[ssh] listen`: the SSH front door's address (`None`: off).
    pub ssh_listen: Option<SocketAddr>,
    /// `[ssh] certificate_lifetime`: the longest a user certificate is valid.
    pub ssh_cert_lifetime: Duration,
    /// `[smtp]`: where alert mail goes (`None`: no mail is sent).
    pub smtp: Option<SmtpConfig>,
}

/// The analytics store (`[analytics]`). Holds no secret: passwords are
/// read from the named files when the store is opened.
#[derive(Clone, PartialEq, Eq)]
pub enum AnalyticsConfig {
    /// `<data dir>/analytics.db`, encrypted, written and read by the
    /// gateway's two connections.
    Embedded,
    /// PostgreSQL with two roles (`jumpgate admin analytics init`).
    Postgres {
        write_url: String,
        write_password_file: Option<PathBuf>,
        read_url: String,
        read_password_file: Option<PathBuf>,
    },
    /// An OpenSearch/Elasticsearch cluster with two users.
    OpenSearch(OpenSearchConfig),
}

impl std::fmt::Debug for AnalyticsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("Embedded"),
            Self::Postgres {
                write_url,
                write_password_file,
                read_url,
                read_password_file,
            } => f
                .debug_struct("Postgres")
                .field("write_url", &crate::store::postgres::redacted(write_url))
                .field("write_password_file", write_password_file)
                .field("read_url", &crate::store::postgres::redacted(read_url))
                .field("read_password_file", read_password_file)
                .finish(),
            Self::OpenSearch(c) => c.fmt(f),
        }
    }
}

/// `[analytics] backend = "opensearch"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSearchConfig {
    /// `https://HOST:PORT[/PREFIX]` (no credentials in it).
    pub url: String,
    pub index: String,
    pub write_user: String,
    pub write_password_file: PathBuf,
    pub read_user: String,
    pub read_password_file: PathBuf,
    pub ca_fingerprint: Option<String>,
}

/// A PostgreSQL database (`[database]`).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// Checked for shape; may hold a password (never shown: see `Debug`).
    pub url: String,
    pub max_connections: u32,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &crate::store::postgres::redacted(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Where blobs are stored (`[blobs]`). Holds no secret: credentials are
/// read from the environment or the named files when the store is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobsConfig {
    /// Files under the data dir (recordings in `<data dir>/recordings/`).
    Local,
    /// An S3 bucket (AWS or an S3-compatible server).
    S3 {
        bucket: String,
        /// Key prefix inside the bucket (no leading or trailing `/`).
        prefix: String,
        /// `None`: AWS for `region`.
        endpoint: Option<String>,
        region: String,
        /// `None`: `AWS_ACCESS_KEY_ID`.
        access_key_id: Option<String>,
        /// `None`: `AWS_SECRET_ACCESS_KEY`.
        secret_key_file: Option<PathBuf>,
        /// `None`: `AWS_SESSION_TOKEN` if set.
        session_token_file: Option<PathBuf>,
    },
    /// An Azure Blob Storage container.
    Azure {
        container: String,
        prefix: String,
        /// `None`: `https://<account>.blob.core.windows.net`.
        endpoint: Option<String>,
        /// `None`: `AZURE_STORAGE_ACCOUNT_NAME`.
        account: Option<String>,
        /// `None`: `AZURE_STORAGE_ACCOUNT_KEY`.
        secret_key_file: Option<PathBuf>,
    },
}

impl BlobsConfig {
    /// The store as a URL for messages (`local`, `s3://bucket/prefix`, ...).
    #[must_use]
    pub fn describe(&self) -> String {
        let join = |scheme: &str, root: &str, prefix: &str| {
            if prefix.is_empty() {
                format!("{scheme}://{root}")
            } else {
                format!("{scheme}://{root}/{prefix}")
            }
        };
        match self {
            Self::Local => "local files under the data dir".to_owned(),
            Self::S3 { bucket, prefix, .. } => join("s3", bucket, prefix),
            Self::Azure {
                container, prefix, ..
            } => join("az", container, prefix),
        }
    }
}

/// Connection and request bounds (`[limits]`, beside `max_connections`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections not yet authenticated, site-wide (≤ `max_connections`).
    pub max_unauthenticated: usize,
    /// Unauthenticated connections per source address (≤ `max_unauthenticated`).
    pub max_unauthenticated_per_address: usize,
    /// A request body must arrive in full within this time...
    pub request_body_timeout: Duration,
    /// ...and, after [`Limits::BODY_GRACE`], at this many bytes/s or more.
    pub request_body_min_rate: u64,
    /// An HTTP connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
}

impl Limits {
    /// Time a request body may take before the minimum rate applies.
    pub const BODY_GRACE: Duration = Duration::from_secs(5);
}

/// Key rotation settings (`[keys]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysConfig {
    /// `None`: no scheduled rotation.
    pub rotate_every: Option<Duration>,
    pub sweep_batch: u32,
    pub sweep_pause: Duration,
}

const DAY: u64 = 86_400;

impl Config {
    /// Reads `file` (if any), merges `flags` over it and validates the result.
    ///
    /// # Errors
    /// The file cannot be read or parsed, or a setting is invalid.
    pub fn load(file: Option<&Path>, flags: RawConfig) -> Result<Self, ConfigError> {
        let from_file = match file {
            None => RawConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    cause: source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    message: e.to_string().trim_end().to_owned(),
                })?
            }
        };
        Self::validate(from_file.merged_with(flags))
    }

    /// # Errors
    /// A setting is missing or invalid.
    pub fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let data_dir = raw
            .data_dir
            .ok_or_else(|| invalid("data_dir", "required (--data-dir DIR)"))?;
        let listen = parse_addr("listen", raw.listen.as_deref().unwrap_or("0.0.0.0:443"))?;
        let redirect_listen = raw
            .redirect_listen
            .as_deref()
            .map(|a| parse_addr("redirect_listen", a))
            .transpose()?;
        // Port 0 asks the OS for a free port, so two of them never collide.
        if redirect_listen.is_some_and(|r| r == listen && r.port() != 0) {
            return Err(invalid("redirect_listen", "must differ from `listen`"));
        }
        let ssh_listen = raw
            .ssh
            .listen
            .as_deref()
            .map(|a| parse_addr("ssh.listen", a))
            .transpose()?;
        if let Some(s) = ssh_listen
            && s.port() != 0
            && (s == listen || redirect_listen == Some(s))
        {
            return Err(invalid(
                "ssh.listen",
                "must differ from `listen` and `redirect_listen`",
            ));
        }
        let ssh_cert_lifetime = parse_duration(
            "ssh.certificate_lifetime",
            raw.ssh.certificate_lifetime.as_deref(),
            "12h",
        )?;
        let (lo, hi) = crate::ssh::certs::LIFETIME_BOUNDS;
        if ssh_cert_lifetime < lo || ssh_cert_lifetime > hi {
            return Err(invalid(
                "ssh.certificate_lifetime",
                "must be between 1m and 7d",
            ));
        }
        let hostname = raw.hostname.unwrap_or_else(|| "localhost".to_owned());
        validate_hostname(&hostname)?;
        let public_origin = raw.public_url.as_deref().map(parse_origin).transpose()?;
        let tls = match (raw.tls.cert, raw.tls.key) {
            (None, None) => TlsSource::Generated,
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            (Some(_), None) => return Err(invalid("tls.key", "required when tls.cert is set")),
            (None, Some(_)) => return Err(invalid("tls.cert", "required when tls.key is set")),
        };
        let assist_binary = raw.support.assist_binary.clone();
        if let Some(p) = &assist_binary
            && !p.is_file()
        {
            return Err(invalid(
                "support.assist_binary",
                format!("{} is not a file", p.display()),
            ));
        }
        let portal = validate_portal(raw.support, &hostname, public_origin.as_deref())?;
        let tls = TlsConfig { site: tls, portal };
        let agent_heartbeat =
            parse_duration("agents.heartbeat", raw.agents.heartbeat.as_deref(), "20s")?;
        if agent_heartbeat < Duration::from_secs(1) || agent_heartbeat > Duration::from_secs(300) {
            return Err(invalid("agents.heartbeat", "must be between 1s and 5m"));
        }
        let endpoint_offline_after = optional_duration(
            "agents.offline_after",
            raw.agents.offline_after.as_deref(),
            "15m",
            Duration::from_secs(1),
            Duration::from_secs(30 * 86400),
            "must be between 1s and 30d, or off",
        )?;
        let audit_verify_every = optional_duration(
            "audit.verify_every",
            raw.audit.verify_every.as_deref(),
            "1h",
            Duration::from_secs(1),
            Duration::from_secs(30 * 86400),
            "must be between 1s and 30d, or off",
        )?;
        let session_ttl =
            parse_duration("auth.session_ttl", raw.auth.session_ttl.as_deref(), "12h")?;
        if session_ttl < Duration::from_secs(10) || session_ttl > Duration::from_secs(7 * 86400) {
            return Err(invalid("auth.session_ttl", "must be between 10s and 7d"));
        }
        let access_max_window = parse_duration(
            "auth.access_max_window",
            raw.auth.access_max_window.as_deref(),
            "8h",
        )?;
        if access_max_window < Duration::from_secs(60)
            || access_max_window > Duration::from_secs(30 * 86400)
        {
            return Err(invalid(
                "auth.access_max_window",
                "must be between 1m and 30d",
            ));
        }
        let max_connections = raw.limits.max_connections.unwrap_or(20_000);
        if max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        let limits = validate_limits(&raw.limits, max_connections)?;
        let days = |key: &'static str, d: Option<u32>| match d {
            None => Ok(None),
            Some(d @ 1..=36_500) => Ok(Some(Duration::from_secs(u64::from(d) * 86_400))),
            Some(d) => Err(invalid(key, format!("{d} is not between 1 and 36500 days"))),
        };
        let recording_retention = days("retention.recordings_days", raw.retention.recordings_days)?;
        let audit_retention = days("retention.audit_days", raw.retention.audit_days)?;
        let support_retention = days("retention.support_days", raw.retention.support_days)?;
        let webhook_delivery_retention = days(
            "retention.webhook_deliveries_days",
            raw.retention.webhook_deliveries_days,
        )?
        .unwrap_or(Duration::from_secs(7 * 86_400));
        let rotate_every = match raw.keys.rotate_every.as_deref() {
            Some("never") => None,
            other => {
                let d = parse_duration("keys.rotate_every", other, "90d")?;
                if d < Duration::from_secs(3600) || d > Duration::from_secs(3650 * DAY) {
                    return Err(invalid(
                        "keys.rotate_every",
                        "must be between 1h and 3650d, or \"never\"",
                    ));
                }
                Some(d)
            }
        };
        let sweep_batch = raw.keys.sweep_batch.unwrap_or(500);
        if !(1..=100_000).contains(&sweep_batch) {
            return Err(invalid("keys.sweep_batch", "must be between 1 and 100000"));
        }
        let sweep_pause =
            parse_duration("keys.sweep_pause", raw.keys.sweep_pause.as_deref(), "0s")?;
        if sweep_pause > Duration::from_secs(60) {
            return Err(invalid("keys.sweep_pause", "must be at most 60s"));
        }
        let vault_retention = match raw.vault.retention.as_deref() {
            None => None,
            Some(s) => {
                let d = parse_duration("vault.retention", Some(s), "90d")?;
                if d < Duration::from_secs(7 * DAY)
                    || d > Duration::from_secs(90 * DAY)
                    || d.as_secs() % DAY != 0
                {
                    return Err(invalid(
                        "vault.retention",
                        "must be a whole number of days from 7d to 90d",
                    ));
                }
                Some(d)
            }
        };
        let database = match raw.database.url {
            None => {
                if raw.database.max_connections.is_some() {
                    return Err(invalid(
                        "database.max_connections",
                        "only applies with database.url (PostgreSQL)",
                    ));
                }
                None
            }
            Some(url) => {
                crate::store::postgres::check_url(&url).map_err(|m| invalid("database.url", m))?;
                let max_connections = raw.database.max_connections.unwrap_or(32);
                if !(2..=1000).contains(&max_connections) {
                    return Err(invalid(
                        "database.max_connections",
                        "must be between 2 and 1000",
                    ));
                }
                Some(DatabaseConfig {
                    url,
                    max_connections,
                })
            }
        };
        let blobs = validate_blobs(raw.blobs)?;
        let analytics = validate_analytics(raw.analytics)?;
        let smtp = raw.smtp.map(validate_smtp).transpose()?;
        Ok(Self {
            data_dir,
            listen,
            redirect_listen,
            listen_address_file: raw.listen_address_file,
            hostname,
            public_origin,
            tls,
            assist_binary,
            agent_heartbeat,
            endpoint_offline_after,
            audit_verify_every,
            session_ttl,
            access_max_window,
            max_connections,
            limits,
            record_keystrokes: raw.recording.keystrokes.unwrap_or(false),
            recording_retention,
            audit_retention,
            support_retention,
            webhook_delivery_retention,
            keys: KeysConfig {
                rotate_every,
                sweep_batch,
                sweep_pause,
            },
            vault_retention,
            database,
            blobs,
            analytics,
            ssh_listen,
            ssh_cert_lifetime,
            smtp,
        })
    }
}

impl Config {
    /// The portal's own host name (`[support] portal_hostname`), if any.
    #[must_use]
    pub fn portal_hostname(&self) -> Option<&str> {
        self.tls.portal.as_ref().map(|p| p.hostname.as_str())
    }

    /// The portal's origin, `https://<portal_hostname>[:port]`, when it has
    /// a host name of its own: on the console's external port (that of
    /// `public_url` if set, else `tls_port`), as both share the TLS port.
    #[must_use]
    pub fn portal_origin(&self, tls_port: u16) -> Option<String> {
        let host = self.portal_hostname()?;
        let port = match &self.public_origin {
            Some(o) => o
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.port_u16())
                .unwrap_or(443),
            None => tls_port,
        };
        let host = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => host.to_owned(),
        };
        Some(if port == 443 {
            format!("https://{host}")
        } else {
            format!("https://{host}:{port}")
        })
    }

    /// The origins the console is served from, canonical one first:
    /// `public_url`, or `https://<hostname>` on `tls_port`. With a loopback
    /// host name (the default `localhost`), its loopback aliases too.
    #[must_use]
    pub fn origins(&self, tls_port: u16) -> Vec<String> {
        if let Some(o) = &self.public_origin {
            return vec![o.clone()];
        }
        let port = if tls_port == 443 {
            String::new()
        } else {
            format!(":{tls_port}")
        };
        let host = match self.hostname.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => self.hostname.to_ascii_lowercase(),
        };
        let mut origins = vec![format!("https://{host}{port}")];
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            for alias in ["localhost", "127.0.0.1", "[::1]"] {
                let o = format!("https://{alias}{port}");
                if !origins.contains(&o) {
                    origins.push(o);
                }
            }
        }
        origins
    }
}

/// `https://host[:port]` with nothing after it; the default port dropped.
fn parse_origin(url: &str) -> Result<String, ConfigError> {
    let bad = || {
        invalid(
            "public_url",
            format!("`{url}` is not like https://support.example.com or https://host:8443"),
        )
    };
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let authority = uri.authority().ok_or_else(bad)?;
    if uri.scheme_str() != Some("https")
        || authority.as_str().contains('@')
        || !matches!(uri.path(), "" | "/")
        || uri.query().is_some()
    {
        return Err(bad());
    }
    let host = authority.host();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if validate_hostname(bare).is_err() {
        return Err(bad());
    }
    let port = match authority.port_u16() {
        None | Some(443) => String::new(),
        Some(0) => return Err(bad()),
        Some(p) => format!(":{p}"),
    };
    Ok(format!("https://{}{port}", host.to_ascii_lowercase()))
}

fn validate_portal(
    raw: RawSupport,
    hostname: &str,
    public_origin: Option<&str>,
) -> Result<Option<PortalTls>, ConfigError> {
    let files = match (raw.portal_tls_cert, raw.portal_tls_key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((c, k)),
        (Some(_), None) => {
            return Err(invalid(
                "support.portal_tls_key",
                "required when support.portal_tls_cert is set",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "support.portal_tls_cert",
                "required when support.portal_tls_key is set",
            ));
        }
    };
    let Some(name) = raw.portal_hostname else {
        if files.is_some() {
            return Err(invalid(
                "support.portal_tls_cert",
                "only applies with support.portal_hostname (the name it is chosen for)",
            ));
        }
        return Ok(None);
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if validate_hostname(&name).is_err() || name.parse::<std::net::IpAddr>().is_ok() {
        return Err(invalid(
            "support.portal_hostname",
            format!("`{name}` is not a host name like support.example.com"),
        ));
    }
    let console_host = public_origin
        .and_then(|o| o.parse::<http::Uri>().ok())
        .and_then(|u| u.host().map(str::to_owned));
    if name.eq_ignore_ascii_case(hostname)
        || console_host.is_some_and(|h| h.eq_ignore_ascii_case(&name))
    {
        return Err(invalid(
            "support.portal_hostname",
            "must differ from the console's host name (hostname, public_url)",
        ));
    }
    Ok(Some(PortalTls {
        hostname: name,
        files,
    }))
}

fn validate_limits(raw: &RawLimits, max_connections: usize) -> Result<Limits, ConfigError> {
    let max_unauthenticated = raw
        .max_unauthenticated
        .unwrap_or_else(|| (max_connections / 2).clamp(1, 1024));
    if max_unauthenticated == 0 || max_unauthenticated > max_connections {
        return Err(invalid(
            "limits.max_unauthenticated",
            format!("must be between 1 and limits.max_connections ({max_connections})"),
        ));
    }
    let per_address = raw
        .max_unauthenticated_per_address
        .unwrap_or_else(|| max_unauthenticated.min(64));
    if per_address == 0 || per_address > max_unauthenticated {
        return Err(invalid(
            "limits.max_unauthenticated_per_address",
            format!("must be between 1 and limits.max_unauthenticated ({max_unauthenticated})"),
        ));
    }
    let request_body_timeout = parse_duration(
        "limits.request_body_timeout",
        raw.request_body_timeout.as_deref(),
        "60s",
    )?;
    if request_body_timeout < Duration::from_secs(1)
        || request_body_timeout > Duration::from_secs(3600)
    {
        return Err(invalid(
            "limits.request_body_timeout",
            "must be between 1s and 1h",
        ));
    }
    let request_body_min_rate = raw.request_body_min_rate.unwrap_or(1024);
    if !(1..=100 * 1024 * 1024).contains(&request_body_min_rate) {
        return Err(invalid(
            "limits.request_body_min_rate",
            "must be between 1 and 104857600 bytes per second",
        ));
    }
    let idle_timeout = parse_duration("limits.idle_timeout", raw.idle_timeout.as_deref(), "60s")?;
    if idle_timeout < Duration::from_secs(1) || idle_timeout > Duration::from_secs(3600) {
        return Err(invalid("limits.idle_timeout", "must be between 1s and 1h"));
    }
    Ok(Limits {
        max_unauthenticated,
        max_unauthenticated_per_address: per_address,
        request_body_timeout,
        request_body_min_rate,
        idle_timeout,
    })
}

/// `[analytics]`: each backend takes its own keys and refuses the others'.
fn validate_analytics(raw: RawAnalytics) -> Result<AnalyticsConfig, ConfigError> {
    let set = [
        ("analytics.write_url", raw.write_url.is_some()),
        ("analytics.read_url", raw.read_url.is_some()),
        ("analytics.url", raw.url.is_some()),
        ("analytics.index", raw.index.is_some()),
        ("analytics.write_user", raw.write_user.is_some()),
        ("analytics.read_user", raw.read_user.is_some()),
        (
            "analytics.write_password_file",
            raw.write_password_file.is_some(),
        ),
        (
            "analytics.read_password_file",
            raw.read_password_file.is_some(),
        ),
        ("analytics.ca_fingerprint", raw.ca_fingerprint.is_some()),
    ];
    let refuse = |allowed: &[&str], why: &str| -> Result<(), ConfigError> {
        match set.iter().find(|(k, on)| *on && !allowed.contains(k)) {
            Some((k, _)) => Err(invalid(k, why)),
            None => Ok(()),
        }
    };
    let file = |key: &'static str, p: &Option<PathBuf>| -> Result<(), ConfigError> {
        match p {
            Some(p) if !p.is_file() => Err(invalid(key, format!("{} is not a file", p.display()))),
            _ => Ok(()),
        }
    };
    match raw.backend.as_deref().unwrap_or("embedded") {
        "embedded" => {
            refuse(
                &[],
                "only applies with analytics.backend = \"postgres\" or \"opensearch\"",
            )?;
            Ok(AnalyticsConfig::Embedded)
        }
        "postgres" => {
            refuse(
                &[
                    "analytics.write_url",
                    "analytics.read_url",
                    "analytics.write_password_file",
                    "analytics.read_password_file",
                ],
                "is for analytics.backend = \"opensearch\"",
            )?;
            let need = |key: &'static str, v: Option<String>| {
                let v = v.ok_or_else(|| {
                    invalid(key, "is required with analytics.backend = \"postgres\"")
                })?;
                crate::store::postgres::check_url(&v).map_err(|m| invalid(key, m))?;
                Ok::<_, ConfigError>(v)
            };
            let write_url = need("analytics.write_url", raw.write_url)?;
            let read_url = need("analytics.read_url", raw.read_url)?;
            let user = |u: &str| {
                url::Url::parse(u)
                    .map(|u| u.username().to_owned())
                    .unwrap_or_default()
            };
            if user(&write_url) == user(&read_url) {
                return Err(invalid(
                    "analytics.read_url",
                    "must name another role than analytics.write_url: the write and read identities are separate (jumpgate admin analytics init makes both)",
                ));
            }
            file("analytics.write_password_file", &raw.write_password_file)?;
            file("analytics.read_password_file", &raw.read_password_file)?;
            Ok(AnalyticsConfig::Postgres {
                write_url,
                write_password_file: raw.write_password_file,
                read_url,
                read_password_file: raw.read_password_file,
            })
        }
        "opensearch" | "elasticsearch" => {
            refuse(
                &[
                    "analytics.url",
                    "analytics.index",
                    "analytics.write_user",
                    "analytics.read_user",
                    "analytics.write_password_file",
                    "analytics.read_password_file",
                    "analytics.ca_fingerprint",
                ],
                "is for analytics.backend = \"postgres\"",
            )?;
            let url = raw.url.ok_or_else(|| {
                invalid(
                    "analytics.url",
                    "is required with analytics.backend = \"opensearch\"",
                )
            })?;
            let u = url::Url::parse(&url)
                .map_err(|e| invalid("analytics.url", format!("`{url}` is not a URL ({e})")))?;
            if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none() {
                return Err(invalid("analytics.url", "expected https://HOST:PORT"));
            }
            if !u.username().is_empty() || u.password().is_some() {
                return Err(invalid(
                    "analytics.url",
                    "must not hold credentials: use analytics.write_user/read_user and their password files",
                ));
            }
            let index = raw.index.unwrap_or_else(|| "jumpgate-events".to_owned());
            if index.is_empty()
                || index.len() > 200
                || index.starts_with(['_', '-', '+', '.'])
                || !index
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
            {
                return Err(invalid(
                    "analytics.index",
                    "use lower-case letters, digits, -, _ and . (not first)",
                ));
            }
            let req = |key: &'static str, v: Option<String>| {
                v.filter(|s| !s.is_empty()).ok_or_else(|| {
                    invalid(key, "is required with analytics.backend = \"opensearch\"")
                })
            };
            let write_user = req("analytics.write_user", raw.write_user)?;
            let read_user = req("analytics.read_user", raw.read_user)?;
            if write_user == read_user {
                return Err(invalid(
                    "analytics.read_user",
                    "must differ from analytics.write_user: the write and read identities are separate",
                ));
            }
            let pw = |key: &'static str, p: Option<PathBuf>| {
                let p = p.ok_or_else(|| {
                    invalid(key, "is required with analytics.backend = \"opensearch\"")
                })?;
                file(key, &Some(p.clone()))?;
                Ok::<_, ConfigError>(p)
            };
            let write_password_file = pw("analytics.write_password_file", raw.write_password_file)?;
            let read_password_file = pw("analytics.read_password_file", raw.read_password_file)?;
            if let Some(fp) = &raw.ca_fingerprint
                && fp.parse::<jumpgate_net::tls::Fingerprint>().is_err()
            {
                return Err(invalid(
                    "analytics.ca_fingerprint",
                    "expected a SHA-256 fingerprint (64 hex digits, colons allowed)",
                ));
            }
            Ok(AnalyticsConfig::OpenSearch(OpenSearchConfig {
                url,
                index,
                write_user,
                write_password_file,
                read_user,
                read_password_file,
                ca_fingerprint: raw.ca_fingerprint,
            }))
        }
        other => Err(invalid(
            "analytics.backend",
            format!("`{other}`: expected embedded, postgres or opensearch"),
        )),
    }
}

fn validate_blobs(raw: RawBlobs) -> Result<BlobsConfig, ConfigError> {
    let Some(url) = raw.url else {
        let set = [
            ("blobs.endpoint", raw.endpoint.is_some()),
            ("blobs.region", raw.region.is_some()),
            ("blobs.access_key_id", raw.access_key_id.is_some()),
            ("blobs.account", raw.account.is_some()),
            ("blobs.secret_key_file", raw.secret_key_file.is_some()),
            ("blobs.session_token_file", raw.session_token_file.is_some()),
        ];
        if let Some((key, _)) = set.iter().find(|(_, s)| *s) {
            return Err(invalid(
                key,
                "only applies with `blobs.url` (s3://BUCKET/PREFIX or az://CONTAINER/PREFIX)",
            ));
        }
        return Ok(BlobsConfig::Local);
    };
    let bad_url = || {
        invalid(
            "blobs.url",
            format!("`{url}` is not like s3://BUCKET/PREFIX or az://CONTAINER/PREFIX"),
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad_url)?;
    let rest = rest.trim_end_matches('/');
    let (root, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !prefix.is_empty() && !prefix.split('/').all(segment_ok) {
        return Err(invalid(
            "blobs.url",
            format!(
                "the prefix `{prefix}` may only hold letters, digits, `-`, `_`, `.` and `/` between non-empty parts"
            ),
        ));
    }
    let endpoint = raw
        .endpoint
        .as_deref()
        .map(|e| {
            let uri: http::Uri = e.parse().map_err(|_| ())?;
            let ok = matches!(uri.scheme_str(), Some("https" | "http"))
                && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
                && uri.query().is_none();
            if ok {
                Ok(e.trim_end_matches('/').to_owned())
            } else {
                Err(())
            }
        })
        .transpose()
        .map_err(|()| {
            invalid(
                "blobs.endpoint",
                "must be an http(s) URL like https://s3.example.com (no user name or query)",
            )
        })?;
    let prefix = prefix.to_owned();
    match scheme {
        "s3" => {
            // S3 bucket names: 3-63 lowercase letters, digits, `-` and `.`.
            let bucket_ok = (3..=63).contains(&root.len())
                && root.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                })
                && !root.starts_with(['-', '.'])
                && !root.ends_with(['-', '.']);
            if !bucket_ok {
                return Err(invalid(
                    "blobs.url",
                    format!(
                        "`{root}` is not an S3 bucket name (3 to 63 lowercase letters, digits, `-` and `.`)"
                    ),
                ));
            }
            if raw.account.is_some() {
                return Err(invalid(
                    "blobs.account",
                    "is for Azure (az://); S3 takes `blobs.access_key_id`",
                ));
            }
            let region = raw.region.unwrap_or_else(|| "us-east-1".to_owned());
            if region.is_empty()
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(
                    "blobs.region",
                    format!("`{region}` is not a region like eu-west-1"),
                ));
            }
            Ok(BlobsConfig::S3 {
                bucket: root.to_owned(),
                prefix,
                endpoint,
                region,
                access_key_id: raw.access_key_id,
                secret_key_file: raw.secret_key_file,
                session_token_file: raw.session_token_file,
            })
        }
        "az" | "azure" => {
            // Azure container names: 3-63 lowercase letters, digits and `-`.
            let container_ok = (3..=63).contains(&root.len())
                && root
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !root.starts_with('-')
                && !root.ends_with('-')
                && !root.contains("--");
            if !container_ok {
                return Err(invalid(
                    "blobs.url",
                    format!(
                        "`{root}` is not an Azure container name (3 to 63 lowercase letters, digits and single `-`)"
                    ),
                ));
            }
            for (key, set) in [
                ("blobs.region", raw.region.is_some()),
                ("blobs.access_key_id", raw.access_key_id.is_some()),
                ("blobs.session_token_file", raw.session_token_file.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        key,
                        "is for S3 (s3://); Azure takes `blobs.account` and `blobs.secret_key_file`",
                    ));
                }
            }
            Ok(BlobsConfig::Azure {
                container: root.to_owned(),
                prefix,
                endpoint,
                account: raw.account,
                secret_key_file: raw.secret_key_file,
            })
        }
        _ => Err(bad_url()),
    }
}

/// `[smtp]`: a host, a sender, and no plain text to anything but loopback.
fn validate_smtp(raw: RawSmtp) -> Result<SmtpConfig, ConfigError> {
    let host = raw
        .host
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| invalid("smtp.host", "required"))?;
    if validate_hostname(&host).is_err() {
        return Err(invalid(
            "smtp.host",
            format!("`{host}` is not a valid host name"),
        ));
    }
    let security = match raw.security.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpSecurity::StartTls,
        "tls" => SmtpSecurity::Tls,
        "none" => SmtpSecurity::None,
        other => {
            return Err(invalid(
                "smtp.security",
                format!("`{other}`: expected starttls, tls or none"),
            ));
        }
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if security == SmtpSecurity::None && !loopback {
        return Err(invalid(
            "smtp.security",
            format!(
                "`none` sends mail (and any password) in the clear: only allowed to a loopback host, not `{host}`"
            ),
        ));
    }
    let port = match raw.port {
        Some(0) => return Err(invalid("smtp.port", "must be 1 to 65535")),
        Some(p) => p,
        None => match security {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        },
    };
    let auth = match (raw.user, raw.password_secret) {
        (Some(u), Some(s)) => {
            crate::vault::validate_name(&s)
                .map_err(|e| invalid("smtp.password_secret", e.to_string()))?;
            Some((u, s))
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "smtp.password_secret",
                "required with `smtp.user` (the vault secret holding its password)",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid("smtp.user", "required with `smtp.password_secret`"));
        }
    };
    let sender = raw
        .sender
        .ok_or_else(|| invalid("smtp.sender", "required (the From address)"))?;
    if sender.parse::<lettre::message::Mailbox>().is_err() {
        return Err(invalid(
            "smtp.sender",
            format!("`{sender}` is not a mail address"),
        ));
    }
    if let Some(f) = &raw.ca_file
        && !f.is_file()
    {
        return Err(invalid(
            "smtp.ca_file",
            format!("{} is not a file", f.display()),
        ));
    }
    Ok(SmtpConfig {
        host,
        port,
        security,
        auth,
        sender,
        ca_file: raw.ca_file,
    })
}

fn parse_addr(key: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        invalid(
            key,
            format!("`{s}` is not an address like 0.0.0.0:443 or [::]:443"),
        )
    })
}

fn parse_duration(
    key: &'static str,
    s: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let s = s.unwrap_or(default);
    humantime::parse_duration(s).map_err(|e| invalid(key, format!("`{s}`: {e}")))
}

/// A duration setting that may be `off` (`None`), within `min..=max`.
fn optional_duration(
    key: &'static str,
    s: Option<&str>,
    default: &str,
    min: Duration,
    max: Duration,
    range: &str,
) -> Result<Option<Duration>, ConfigError> {
    if s.is_some_and(|s| s.trim() == "off") {
        return Ok(None);
    }
    let d = parse_duration(key, s, default)?;
    if d < min || d > max {
        return Err(invalid(key, range));
    }
    Ok(Some(d))
}

fn validate_hostname(h: &str) -> Result<(), ConfigError> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok || h.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(invalid(
            "hostname",
            format!("`{h}` is not a valid host name"),
        ))
    }
}

#[cfg(test)]
mod tests;
