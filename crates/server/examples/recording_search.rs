//! Search inside recordings, measured: index build throughput and search
//! latency over N sealed terminal recordings (docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p jumpgate-server --example recording_search -- [N [KIB [SEARCHES [POSTGRES_URL]]]]
//! ```
//!
//! Defaults: 1000 recordings of 64 KiB of asciicast each, 50 searches per
//! query, on SQLite (SQLCipher) in a temporary directory; with a
//! PostgreSQL URL (an empty database) the store is there.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        Ok(args.get(i).map(|s| s.parse()).transpose()?.unwrap_or(d))
    };
    let (n, kib, searches) = (arg(0, 1000)?, arg(1, 64)?, arg(2, 50)?);
    let postgres = args.get(3).map(String::as_str);
    let dir = tempfile::tempdir()?;
    let f =
        jumpgate_server::bench::recording_search(dir.path(), postgres, n, kib, searches).await?;
    let mb = |b: u64| b as f64 / 1_000_000.0;
    let secs = f.index_time.as_secs_f64();
    println!(
        "engine: {}",
        if postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    println!(
        "index build: {} recordings, {:.1} MB asciicast ({:.1} MB text) in {:.2} s: {:.1} MB/s asciicast, {:.1} MB/s text",
        f.recordings,
        mb(f.cast_bytes),
        mb(f.text_bytes),
        secs,
        mb(f.cast_bytes) / secs,
        mb(f.text_bytes) / secs
    );
    for (q, found, p50, p99) in &f.searches {
        println!(
            "search {q:?}: {found} recordings, p50 {:.2} ms, p99 {:.2} ms ({searches} searches)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
