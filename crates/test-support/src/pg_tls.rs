//! A PostgreSQL server of a test's own with TLS on, for the tests of TLS
//! with certificate verification: its own cluster in a temporary directory
//! (`scripts/postgres`, loopback and trust only), a CA made at run time and
//! the server's certificate from it, for `127.0.0.1` only. Stopped when
//! dropped.
//!
//! Needs the PostgreSQL binaries `scripts/postgres` uses (a test calls it
//! only when [`crate::POSTGRES_ENV`] is set: `scripts/test` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sqlx::Connection;

#[derive(Debug)]
pub struct TlsPostgres {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    pub port: u16,
    /// The CA that issued the server's certificate (PEM).
    pub ca: PathBuf,
    /// Another CA, which did not (PEM).
    pub other_ca: PathBuf,
}

impl TlsPostgres {
    /// Starts the server without TLS ([`TlsPostgres::enable_tls`] turns it
    /// on) and makes the certificates.
    ///
    /// # Panics
    /// The server does not start.
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        // As root the cluster belongs to `postgres`, which must reach it.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        let dir = tmp.path().join("pg");
        let out = Command::new(script())
            .arg("start")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/postgres start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap();
        // postgres://postgres@127.0.0.1:PORT/postgres
        let port = url
            .trim()
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"));
        let ca = tmp.path().join("ca.pem");
        let other_ca = tmp.path().join("other-ca.pem");
        Self {
            tmp,
            dir,
            port,
            ca,
            other_ca,
        }
    }

    /// A URL of this server: `postgres://postgres@HOST:PORT/DB?QUERY`.
    pub fn url(&self, host: &str, db: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/{db}?{query}", self.port)
    }

    /// `verify-full` against [`TlsPostgres::ca`] (or `ca`), to `host`.
    pub fn verified_url(&self, host: &str, db: &str, ca: &Path) -> String {
        self.url(
            host,
            db,
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        )
    }

    /// Runs one statement as the superuser, without TLS.
    ///
    /// # Panics
    /// It fails.
    pub async fn superuser(&self, sql: &str) {
        let mut c =
            sqlx::PgConnection::connect(&self.url("127.0.0.1", "postgres", "sslmode=disable"))
                .await
                .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }

    /// One number, queried as the superuser in database `db`, without TLS.
    ///
    /// # Panics
    /// It fails.
    pub async fn count(&self, db: &str, sql: &str) -> i64 {
        let mut c = sqlx::PgConnection::connect(&self.url("127.0.0.1", db, "sslmode=disable"))
            .await
            .unwrap();
        let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        n
    }

    /// Makes the CAs and the server's certificate (for 127.0.0.1), turns
    /// TLS on and waits until the server offers it.
    ///
    /// # Panics
    /// The server does not turn TLS on within 30 s.
    pub async fn enable_tls(&self) {
        let (issuer, ca_pem) = ca("test PostgreSQL CA");
        let (_, other_pem) = ca("another CA");
        std::fs::write(&self.ca, ca_pem).unwrap();
        std::fs::write(&self.other_ca, other_pem).unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let crt = server_file(&self.dir, "server.crt", &cert.pem());
        let key = server_file(&self.dir, "server.key", &key.serialize_pem());
        self.superuser(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            crt.display()
        ))
        .await;
        self.superuser(&format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            key.display()
        ))
        .await;
        self.superuser("ALTER SYSTEM SET ssl = on").await;
        self.superuser("SELECT pg_reload_conf()").await;
        // The reload is asynchronous: wait until TLS is offered.
        let require = self.url("127.0.0.1", "postgres", "sslmode=require");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match sqlx::PgConnection::connect(&require).await {
                Ok(c) => {
                    c.close().await.unwrap();
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("the server did not turn TLS on: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The temporary directory (for files of the test's).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres")
}

/// A CA; its certificate as PEM.
fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (Issuer::new(params, key), cert.pem())
}

/// Writes a file the server (the owner of `dir`) can read, private.
fn server_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let owner = std::fs::metadata(dir).unwrap();
    std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
    path
}
