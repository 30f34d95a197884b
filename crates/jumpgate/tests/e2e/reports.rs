//! Analytics and reports end to end: a real gateway ships its events (a
//! real `jg shell` session, failed logins) into the analytics store, and
//! `jg report`, the REST API and the console read them back:
//!
//! - the embedded store (an encrypted file next to the main store), across
//!   a gateway restart (the cursor is durable: nothing twice);
//! - PostgreSQL with the two roles of `jumpgate admin analytics init`, on a
//!   private cluster this test stops and starts again: the events written
//!   while it is down (a gateway restart included) arrive exactly once;
//! - the dashboard in Debian's chromium (`tests/browser/reports.mjs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::support::*;
use crate::web::{browser_prerequisites, run_browser};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `jg report NAME --format json ARGS…` as JSON (`None` when it failed).
async fn report(site: &Site, name: &str, args: &[&str]) -> Option<serde_json::Value> {
    let mut a = vec!["report", name, "--format", "json"];
    a.extend_from_slice(args);
    let out = site.jg(&a).await;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The failed logins of `user` a report shows (the sum of its rows).
async fn failed_logins(site: &Site, user: &str) -> Option<i64> {
    let r = report(site, "failed-logins", &["--user", user]).await?;
    Some(
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row[2].as_i64().unwrap())
            .sum(),
    )
}

/// Waits until the reports show exactly `want` failed logins of `user`
/// (fails on more: a duplicate).
async fn wait_failed_logins(site: &Site, user: &str, want: i64, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        last = failed_logins(site, user).await;
        if let Some(n) = last {
            assert!(
                n <= want,
                "{n} failed logins of {user} shown, {want} happened: a duplicate"
            );
            if n == want {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{want} failed logins of {user} not shown within {within:?} (last: {last:?})\ngateway log:\n{}",
        site.gateway.stderr.text()
    );
}

/// Failed logins of an existing account (each one audited under its name;
/// unknown names are audited as fingerprints).
async fn fail_logins(site: &Site, user: &str, n: usize) {
    let home = site.home("intruder");
    for _ in 0..n {
        let out = site.try_login_in(&home, user, "wrong-password", &[]).await;
        assert!(!out.status.success());
    }
}

#[tokio::test]
async fn reports_from_the_embedded_store_through_jg_the_api_and_a_restart() {
    let mut site = Site::start().await;
    let _agent = site.start_agent("web-1").await;
    ok(&site.jg(&["shell", "web-1", "--", "true"]).await);
    ok(&site.jg(&["shell", "web-1", "--", "true"]).await);
    site.create_user("ghost", "technician", "correct-horse-staple-42")
        .await;
    fail_logins(&site, "ghost", 3).await;
    wait_failed_logins(&site, "ghost", 3, WAIT).await;

    // Sessions per technician and endpoint, as CSV and as a table.
    let csv = ok(&site
        .jg(&["report", "sessions-per-technician", "--format", "csv"])
        .await);
    assert_eq!(csv, "technician,sessions\r\nadmin,2\r\n");
    let table = ok(&site.jg(&["report", "sessions-per-endpoint"]).await);
    assert!(table.starts_with("ENDPOINT"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web-1") && l.trim_end().ends_with('2')),
        "{table}"
    );
    let days = report(&site, "sessions-per-day", &["--since", "1d"])
        .await
        .unwrap();
    assert_eq!(days["rows"].as_array().unwrap().len(), 1, "{days}");
    // The list of reports.
    let list = ok(&site.jg(&["report"]).await);
    for name in [
        "failed-logins",
        "blocked-programs",
        "support-wait-times",
        "elevation-decisions",
    ] {
        assert!(list.contains(name), "{list}");
    }
    // An unknown report, a bad filter.
    let out = site.jg(&["report", "no-such-report"]).await;
    assert!(fails(&out).contains("no report `no-such-report`"));

    // The analytics file is encrypted, next to the main store.
    let file = std::fs::read(site.data_dir().join("analytics.db")).unwrap();
    assert!(!file.starts_with(b"SQLite format 3"));
    assert!(!file.windows(5).any(|w| w == b"ghost"));

    // A restart: the cursor survives, nothing is sent twice.
    site.restart(&[]).await;
    fail_logins(&site, "ghost", 1).await;
    wait_failed_logins(&site, "ghost", 4, WAIT).await;
    let csv = ok(&site
        .jg(&["report", "sessions-per-technician", "--format", "csv"])
        .await);
    assert_eq!(csv, "technician,sessions\r\nadmin,2\r\n");

    // Reports need `reports-read`: a technician is refused.
    let tech = site.technician("tina", "purple-monkey-dishwasher-9").await;
    let out = site.jg_in(&tech, &["report", "failed-logins"]).await;
    assert!(
        fails(&out).contains("reports-read"),
        "{}",
        text(&out.stderr)
    );
}

/// A private PostgreSQL cluster (`scripts/postgres`), stopped and started
/// by the test; `None` when PostgreSQL is not installed.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
}

fn pg_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres")
}

impl Cluster {
    async fn start() -> Option<Self> {
        let bin = std::env::var("JUMPGATE_PG_BIN")
            .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
        if !Path::new(&bin).join("initdb").exists() {
            println!("skipped: no PostgreSQL in {bin}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("jg-analytics-pg")
            .tempdir()
            .unwrap();
        let mut c = Self {
            dir,
            url: String::new(),
        };
        c.url = c.up().await;
        Some(c)
    }

    async fn up(&self) -> String {
        let out = Command::new(pg_script())
            .arg("start")
            .arg(self.dir.path())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/postgres start: {}",
            text(&out.stderr)
        );
        text(&out.stdout).trim().to_owned()
    }

    async fn down(&self) {
        let out = Command::new(pg_script())
            .arg("stop")
            .arg(self.dir.path())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/postgres stop: {}",
            text(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(pg_script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

#[tokio::test]
async fn postgres_analytics_lose_nothing_and_duplicate_nothing_while_the_store_is_down() {
    let Some(pg) = Cluster::start().await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let wpw = work.path().join("writer.pw");
    let rpw = work.path().join("reader.pw");
    std::fs::write(&wpw, "writer-secret\n").unwrap();
    std::fs::write(&rpw, "reader-secret\n").unwrap();
    let init = Command::new(jumpgate_bin())
        .args(["admin", "--data-dir"])
        .arg(work.path().join("unused"))
        .args([
            "analytics",
            "init",
            "--url",
            &pg.url,
            "--writer-password-file",
        ])
        .arg(&wpw)
        .arg("--reader-password-file")
        .arg(&rpw)
        .output()
        .await
        .unwrap();
    let said = ok(&init);
    let url_of = |key: &str| {
        said.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key} = \"")))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no {key} in {said}"))
            .to_owned()
    };
    let (write_url, read_url) = (url_of("write_url"), url_of("read_url"));
    assert!(write_url.contains("jumpgate_analytics_writer@"), "{said}");
    assert!(
        !said.contains("writer-secret") && !said.contains("reader-secret"),
        "{said}"
    );
    let config = work.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[analytics]\nbackend = \"postgres\"\nwrite_url = \"{write_url}\"\nwrite_password_file = \"{}\"\nread_url = \"{read_url}\"\nread_password_file = \"{}\"\n",
            wpw.display(),
            rpw.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let mut site = Site::builder()
        .engine(Engine::Sqlite)
        .args(&["--config", cfg])
        .start()
        .await;
    site.create_user("ghost", "technician", "correct-horse-staple-42")
        .await;
    fail_logins(&site, "ghost", 2).await;
    wait_failed_logins(&site, "ghost", 2, WAIT).await;

    // The store goes away: reports say so, events keep happening, the
    // gateway even restarts meanwhile.
    pg.down().await;
    let out = site.jg(&["report", "failed-logins"]).await;
    assert!(
        fails(&out).contains("analytics store"),
        "{}",
        text(&out.stderr)
    );
    fail_logins(&site, "ghost", 2).await;
    site.restart(&["--config", cfg]).await;
    fail_logins(&site, "ghost", 1).await;

    // It comes back: the five arrive, once each.
    let url = pg.up().await;
    assert_eq!(url, pg.url, "the cluster kept its port");
    wait_failed_logins(&site, "ghost", 5, Duration::from_secs(90)).await;
    fail_logins(&site, "ghost", 1).await;
    wait_failed_logins(&site, "ghost", 6, WAIT).await;

    // The read role's URL works for an outside tool too, and it holds each
    // event once.
    let mut opts: sqlx::postgres::PgConnectOptions = read_url.parse().unwrap();
    opts = opts.password("reader-secret");
    let mut c = sqlx::ConnectOptions::connect(&opts).await.unwrap();
    let (n, distinct): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT id) FROM analytics_events WHERE kind = 'login' AND actor = 'ghost'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!((n, distinct), (6, 6));
    let denied = sqlx::query("DELETE FROM analytics_events")
        .execute(&mut c)
        .await;
    assert!(denied.is_err(), "the read role may not delete");
}

#[tokio::test]
async fn the_reports_dashboard_in_a_real_browser() {
    browser_prerequisites();
    let site = Site::start().await;
    let _agent = site.start_agent("web-1").await;
    ok(&site.jg(&["shell", "web-1", "--", "true"]).await);
    site.create_user("ghost", "technician", "correct-horse-staple-42")
        .await;
    site.create_user("mallory", "technician", "battery-horse-staple-43")
        .await;
    fail_logins(&site, "ghost", 3).await;
    fail_logins(&site, "mallory", 2).await;
    wait_failed_logins(&site, "ghost", 3, WAIT).await;
    wait_failed_logins(&site, "mallory", 2, WAIT).await;
    let artifacts = run_browser(
        &site,
        "reports.mjs",
        "reports",
        "REPORTS-TEST PASSED",
        &[("JG_FAILED_USER", "ghost".as_ref())],
        Duration::from_secs(180),
    )
    .await;
    assert!(artifacts.join("reports-dashboard.png").exists());
}
