//! `jumpgate admin migrate-store`: a site that ran on the embedded SQLite
//! store moves to PostgreSQL with the real binaries, and runs there.

use crate::support::*;

/// A site on SQLite with a user, an endpoint and audit entries; stopped,
/// migrated with `jumpgate admin migrate-store`, started on PostgreSQL with
/// `--database`: the audit chain verifies there and the site works.
#[tokio::test]
async fn a_sqlite_site_moves_to_postgres_and_runs_there() {
    let Some(server) = postgres_server() else {
        println!("skipped: {POSTGRES_ENV} unset");
        return;
    };
    let mut site = Site::builder().engine(Engine::Sqlite).start().await;
    site.create_user("dora", "technician", "tech-long-passphrase-42")
        .await;
    let agent = site.start_agent("migrated-ep").await;
    // A failed login: an audit entry written on its own.
    let bad = site.password_file("wrong.pw", "not-the-password");
    let out = site
        .jg_in(
            &site.home("intruder"),
            &[
                "--server",
                &site.gateway.url(),
                "--ca-fingerprint",
                &site.gateway.fingerprint,
                "login",
                "--user",
                "dora",
                "--password-file",
                bad.to_str().unwrap(),
            ],
        )
        .await;
    fails(&out);
    let sqlite_audit = ok(&site.admin(&["verify-audit"]).await);
    assert!(sqlite_audit.contains("audit log intact"), "{sqlite_audit}");

    let target = PgDatabase::create_on(&server).await;
    // Refused while the gateway runs; the target stays empty.
    let refused = fails(
        &site
            .admin(&["migrate-store", "--to", target.url.as_str()])
            .await,
    );
    assert!(refused.contains("stop it"), "{refused}");
    assert_eq!(target.table_count().await, 0);

    drop(agent);
    let port = site.gateway.addr.to_string();
    assert!(site.gateway.terminate().await.success());

    let out = ok(&site
        .admin(&["migrate-store", "--to", target.url.as_str()])
        .await);
    for table in ["users", "endpoints", "events", "auth_tokens"] {
        assert!(out.contains(table), "no {table} in the summary:\n{out}");
    }
    assert!(out.contains("audit log intact on the target"), "{out}");
    // The URL is shown without its password, if it had one.
    let copied_events = entries(&out);
    assert!(copied_events >= 4, "{out}");
    // The source still opens and holds the same chain.
    let again = ok(&site.admin(&["verify-audit"]).await);
    assert_eq!(entries(&again), copied_events, "{again}");
    // A second run into the now-full target is refused.
    let twice = fails(
        &site
            .admin(&["migrate-store", "--to", target.url.as_str()])
            .await,
    );
    assert!(twice.contains("not empty"), "{twice}");

    // The copy, through the real binary on PostgreSQL: the chain verifies
    // there (against the head anchored in the data directory).
    let target = std::sync::Arc::new(target);
    site.database = Some(target.clone());
    let pg_audit = ok(&site.admin(&["verify-audit"]).await);
    assert!(pg_audit.contains("audit log intact"), "{pg_audit}");
    assert_eq!(entries(&pg_audit), copied_events, "{pg_audit}");

    // The site on PostgreSQL: same data directory (keys, TLS, anchor).
    site.gateway = Gateway::start(
        &site.data_dir(),
        &["--listen", port.as_str(), "--database", target.url.as_str()],
    )
    .await;
    assert!(
        site.gateway.stderr.wait_for("engine=postgres").await,
        "the gateway did not say it runs on PostgreSQL:\n{}",
        site.gateway.stderr.text()
    );
    let pg_audit = ok(&site.admin(&["verify-audit"]).await);
    assert!(entries(&pg_audit) >= copied_events, "{pg_audit}");

    // Last, as they go through domains converted to the store layer
    // separately: the administrator's session from before the move still
    // works, the endpoint is listed, and the migrated user logs in.
    let eps = site.endpoints().await;
    assert!(
        eps.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "migrated-ep"),
        "{eps}"
    );
    site.login("dora", "tech-long-passphrase-42").await;
}

/// The entry count of a `verify-audit` / `migrate-store` line "… intact…: N entries".
fn entries(out: &str) -> u64 {
    out.lines()
        .find(|l| l.contains("intact"))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in:\n{out}"))
}
