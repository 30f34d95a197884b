//! TLS to PostgreSQL with certificate verification, end to end: a
//! PostgreSQL server of this test's own with TLS on and a certificate made
//! at run time (`jumpgate_test_support::TlsPostgres`), and the store
//! connecting with `sslmode=verify-full&sslrootcert=CA.pem`. A wrong CA, a
//! wrong host name and a server without TLS are refused, each with its
//! cause named.
//!
//! Runs when `JUMPGATE_TEST_POSTGRES` is set (the PostgreSQL binaries are
//! then known to be installed: `scripts/test` starts its server with them).

use jumpgate_test_support::TlsPostgres;

use super::{StoreError, postgres};
use crate::schema::SCHEMA;

/// Why opening the store at `url` failed (it must fail).
async fn refused(url: &str) -> String {
    match postgres::open(url, 1, SCHEMA).await {
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
    let server = TlsPostgres::start();
    server.superuser("CREATE DATABASE tls").await;
    let verify_full = server.verified_url("127.0.0.1", "tls", &server.ca);

    // No TLS on the server yet: a URL that asks for it does not fall back.
    let why = refused(&verify_full).await;
    assert!(why.contains("server does not support TLS"), "{why}");

    server.enable_tls().await;

    // The right CA and host name: the store opens (its migrations run
    // over the connection) and the session is encrypted.
    let pool = postgres::open(&verify_full, 2, SCHEMA).await.unwrap();
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
    assert_eq!(roles, 4);
    pool.close().await;

    // Another CA: the chain does not verify.
    let why = refused(&server.verified_url("127.0.0.1", "tls", &server.other_ca)).await;
    assert!(
        why.contains("invalid peer certificate: UnknownIssuer"),
        "{why}"
    );

    // Another host name (the certificate names 127.0.0.1 only): refused by
    // verify-full; verify-ca checks the chain alone and connects.
    let why = refused(&server.verified_url("localhost", "tls", &server.ca)).await;
    assert!(
        why.contains(r#"certificate not valid for name "localhost""#),
        "{why}"
    );
    let chain_only = server.url(
        "localhost",
        "tls",
        &format!("sslmode=verify-ca&sslrootcert={}", server.ca.display()),
    );
    postgres::open(&chain_only, 1, SCHEMA)
        .await
        .unwrap()
        .close()
        .await;
}
