//! `store::wait_for_sqlite_workers`, alone in its test process: it counts
//! the process's sqlx SQLite worker threads, which another test running
//! beside it would change.

use std::str::FromStr;
use std::time::Duration;

use jumpgate_server::store::wait_for_sqlite_workers;
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_without_closing_are_waited_for() {
    let opts = SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(opts.connect().await.unwrap());
    }
    let kept = opts.connect().await.unwrap();
    // The positive control: each connection has its worker thread.
    assert_eq!(wait_for_sqlite_workers(Duration::ZERO), 4);
    // Dropped, not closed: their workers close them after the fact.
    drop(conns);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wait_for_sqlite_workers(Duration::ZERO) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A connection nobody dropped keeps its (idle) worker: the wait ends
    // at its limit, with it still there.
    assert_eq!(wait_for_sqlite_workers(Duration::from_millis(200)), 1);
    drop(kept);
    assert_eq!(wait_for_sqlite_workers(Duration::from_secs(10)), 0);
}
