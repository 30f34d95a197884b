//! The gateway on PostgreSQL over TLS with certificate verification, with
//! the real binaries: `jumpgate server --database
//! 'postgres://…?sslmode=verify-full&sslrootcert=CA.pem'` runs with every
//! connection encrypted, and a wrong CA or a wrong host name stops it at
//! start with the cause named. The PostgreSQL is the test's own, TLS on
//! with a certificate made at run time (`TlsPostgres`).

use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

/// `jumpgate server` on `url`: it must exit (refused); its error output.
async fn refused_at_start(url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(jumpgate_bin())
        .arg("server")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--database", url])
        .env_remove("JUMPGATE_DATABASE")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the gateway neither started nor stopped")
        .unwrap();
    assert!(!out.status.success(), "started on {url}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_gateway_reaches_postgres_over_verified_tls_and_refuses_a_wrong_ca_or_host() {
    if postgres_server().is_none() {
        println!("skipped: {POSTGRES_ENV} unset");
        return;
    }
    let pg = TlsPostgres::start();
    pg.superuser("CREATE DATABASE site").await;
    pg.enable_tls().await;

    // A wrong CA, then a host name the certificate does not name: the
    // gateway does not start, and says why.
    let err = refused_at_start(&pg.verified_url("127.0.0.1", "site", &pg.other_ca)).await;
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    let err = refused_at_start(&pg.verified_url("localhost", "site", &pg.ca)).await;
    assert!(err.contains("certificate not valid for name"), "{err}");
    assert_eq!(
        pg.count(
            "site",
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        .await,
        0,
        "a refused gateway wrote nothing"
    );

    // The right CA and host: the gateway runs on it. (`Engine::Sqlite`: no
    // database of the test harness's; `--database` names this one.)
    let url = pg.verified_url("127.0.0.1", "site", &pg.ca);
    let dir = tempfile::tempdir().unwrap();
    let mut gw =
        Gateway::start_with_engine(dir.path(), &["--database", &url], Engine::Sqlite).await;
    // The schema is there, and every connection the gateway holds is
    // encrypted (at least one: its pool).
    assert_eq!(
        pg.count(
            "site",
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'users'"
        )
        .await,
        1
    );
    let gateway_conns = "SELECT COUNT(*) FROM pg_stat_activity a
        JOIN pg_stat_ssl s ON s.pid = a.pid
        WHERE a.datname = 'site' AND a.application_name = 'jumpgate'";
    assert!(pg.count("postgres", gateway_conns).await >= 1);
    assert_eq!(
        pg.count("postgres", &format!("{gateway_conns} AND NOT s.ssl"))
            .await,
        0,
        "a connection of the gateway is not encrypted"
    );
    // Admin commands take the same URL: an account, then the audit log
    // (written by the gateway and the admin over TLS) verifies.
    let pw = dir.path().join("alice.pw");
    std::fs::write(&pw, "a-long-enough-passphrase-42\n").unwrap();
    let admin = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(jumpgate_bin());
        cmd.arg("admin")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--database", &url])
            .args(args)
            .env_remove("JUMPGATE_DATABASE")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    ok(&admin(&[
        "create-user",
        "alice",
        "--role",
        "admin",
        "--password-file",
        pw.to_str().unwrap(),
    ])
    .output()
    .await
    .unwrap());
    let audit = ok(&admin(&["verify-audit"]).output().await.unwrap());
    assert!(audit.contains("audit log intact"), "{audit}");
    assert!(gw.terminate().await.success());
}
