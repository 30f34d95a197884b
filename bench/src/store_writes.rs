//! Audited writes per second through the store layer, on each engine.

use std::time::Duration;

use anyhow::Result;

/// Audited writes per second through the store layer (`Store::write()`,
/// a domain row, `audit`, commit), with 1 and 16 concurrent writers, on
/// the embedded SQLite (SQLCipher, WAL, synchronous=FULL) and, with
/// `--postgres`, on PostgreSQL; the audit chain verified after each run.
pub(crate) async fn run(seconds: u64, postgres: Option<&str>) -> Result<()> {
    use jumpgate_server::bench;
    let seconds = Duration::from_secs(seconds.max(1));
    println!(
        "\nAudited writes through the store layer ({} s per run; begin → row → audit entry → commit):",
        seconds.as_secs()
    );
    println!(
        "  {:<10} {:>7} {:>12} {:>10} {:>10} {:>9}",
        "engine", "writers", "writes/s", "p50", "p99", "chain"
    );
    let show = |engine: &str, f: &bench::Figures| {
        println!(
            "  {engine:<10} {:>7} {:>12.0} {:>8.2}ms {:>8.2}ms {:>9}",
            f.writers,
            f.per_second(),
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.chain
        );
    };
    for writers in [1, 16] {
        let dir = tempfile::tempdir()?;
        let store = bench::open(bench::Target::Sqlite(dir.path()), 0).await?;
        let f = bench::audited_writes(&store, writers, seconds)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        store.close().await;
        show("sqlite", &f);
    }
    let Some(server) = postgres else {
        println!("  postgres   skipped: no --postgres URL (or JUMPGATE_BENCH_POSTGRES)");
        return Ok(());
    };
    for writers in [1, 16] {
        let url = bench::scratch_database(server).await?;
        let run = async {
            let store = bench::open(bench::Target::Postgres(&url), 32).await?;
            let f = bench::audited_writes(&store, writers, seconds)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"));
            store.close().await;
            f
        }
        .await;
        bench::drop_scratch_database(server, &url).await?;
        show("postgres", &run?);
    }
    Ok(())
}
