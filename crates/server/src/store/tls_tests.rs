//! TLS to PostgreSQL with certificate verification, end to end: a
//! PostgreSQL server of this test's own (`scripts/postgres`), TLS turned on
//! with a certificate made here (a CA of the test's, the server's
//! certificate for 127.0.0.1), and the store connecting with
//! `sslmode=verify-full&sslrootcert=CA.pem`. A wrong CA, a wrong host name
//! and a server without TLS are refused, each with its cause named.
//!
//! Runs when `JUMPGATE_TEST_POSTGRES` is set (the PostgreSQL binaries are
//! then known to be installed: `scripts/test` starts its server with them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::{StoreError, postgres};

/// A PostgreSQL server in a temporary directory, stopped when dropped.
struct Server {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start() -> Self {
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
        let port = url::Url::parse(url.trim()).unwrap().port().unwrap();
        Self { tmp, dir, port }
    }

    fn url(&self, host: &str, db: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/{db}?{query}", self.port)
    }
}

impl Drop for Server {
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

async fn superuser(s: &Server, sql: String) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&s.url("127.0.0.1", "postgres", "sslmode=disable"))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
}

/// Why opening the store at `url` failed (it must fail).
async fn refused(url: &str) -> String {
    match postgres::open(url, 1, crate::schema::SCHEMA).await {
        Ok(_) => panic!("{url}: connected"),
        Err(e @ StoreError::Connect { .. }) => {
            eprintln!("refused as it must be: {e}");
            e.to_string()
        }
        Err(e) => panic!("{url}: not a connection error: {e}"),
    }
}

#[tokio::test]
async fn postgres_over_tls_verifies_the_certificate_and_host_name() {
    if std::env::var("JUMPGATE_TEST_POSTGRES").is_err() {
        eprintln!("skipped (postgres_tls): JUMPGATE_TEST_POSTGRES unset");
        return;
    }
    let server = Server::start();
    superuser(&server, "CREATE DATABASE tls".to_owned()).await;

    // The site's CA, another CA, and the server's certificate (for
    // 127.0.0.1 only) signed by the first.
    let (issuer, ca_pem) = ca("test PostgreSQL CA");
    let (_, other_pem) = ca("another CA");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let ca_file = server.tmp.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let other_ca = server.tmp.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other_pem).unwrap();
    let ca = ca_file.display();
    let verify_full = server.url(
        "127.0.0.1",
        "tls",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );

    // No TLS on the server yet: a URL that asks for it does not fall back.
    let why = refused(&verify_full).await;
    assert!(why.contains("TLS"), "{why}");

    let crt = server_file(&server.dir, "server.crt", &cert.pem());
    let key = server_file(&server.dir, "server.key", &key.serialize_pem());
    superuser(
        &server,
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", crt.display()),
    )
    .await;
    superuser(
        &server,
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
    )
    .await;
    superuser(&server, "ALTER SYSTEM SET ssl = on".to_owned()).await;
    superuser(&server, "SELECT pg_reload_conf()".to_owned()).await;
    // The reload is asynchronous: wait until TLS is offered.
    let require = server.url("127.0.0.1", "tls", "sslmode=require");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        use sqlx::Connection;
        match sqlx::PgConnection::connect(&require).await {
            Ok(c) => {
                c.close().await.unwrap();
                break;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the server did not turn TLS on: {e}"),
        }
    }

    // The right CA and host name: the store opens (its migrations run
    // over the connection) and the session is encrypted.
    let pool = postgres::open(&verify_full, 2, crate::schema::SCHEMA)
        .await
        .unwrap();
    let (ssl, version): (bool, String) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(ssl, "not encrypted");
    assert!(version.starts_with("TLSv1."), "{version}");
    let roles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles WHERE builtin = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(roles, 3);
    pool.close().await;

    // Another CA: the chain does not verify.
    let wrong_ca = server.url(
        "127.0.0.1",
        "tls",
        &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
    );
    let why = refused(&wrong_ca).await;
    assert!(why.contains("UnknownIssuer"), "{why}");

    // Another host name (the certificate names 127.0.0.1 only): refused by
    // verify-full; verify-ca checks the chain alone and connects.
    let wrong_host = server.url(
        "localhost",
        "tls",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let why = refused(&wrong_host).await;
    assert!(why.contains("not valid for name"), "{why}");
    let chain_only = server.url(
        "localhost",
        "tls",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    postgres::open(&chain_only, 1, crate::schema::SCHEMA)
        .await
        .unwrap()
        .close()
        .await;
}
