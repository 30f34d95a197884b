//! What the in-process gateway tests share: a real gateway (its real
//! database, TLS on a loopback port picked at run time) running in this
//! process, stopped when the handle is dropped.

use jumpgate_client::Client;
use jumpgate_net::tls::Trust;
use jumpgate_server::{Config, RawConfig};
use jumpgate_test_support::{Engine, PgDatabase};

pub(crate) struct Gateway {
    pub(crate) url: String,
    pub(crate) trust: Trust,
    pub(crate) data_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// After `_stop`: dropped once the gateway is told to stop.
    _database: Option<PgDatabase>,
}

/// A gateway on the engine of `JUMPGATE_TEST_ENGINE` (SQLite when unset).
pub(crate) async fn start_gateway() -> Gateway {
    start_gateway_on(Engine::from_env()).await
}

/// A gateway on `engine`: SQLite in its data directory, or a fresh
/// database of its own on `JUMPGATE_TEST_POSTGRES`, dropped with it (a
/// test on both engines: `jumpgate_test_support::for_each_engine`).
pub(crate) async fn start_gateway_on(engine: Engine) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let database =
        match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(PgDatabase::create().await.expect(
                "JUMPGATE_TEST_POSTGRES unset (for_each_engine skips PostgreSQL without it)",
            )),
        };
    let raw = RawConfig {
        data_dir: Some(data_dir.clone()),
        listen: Some("127.0.0.1:0".into()),
        ..RawConfig::default()
    };
    let cfg = Config::validate(on_database(raw, database.as_ref())).unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        jumpgate_server::run(cfg, stop, |s| {
            let _ = started_tx.send((s.addr, s.fingerprint));
        })
        .await
        .unwrap();
    });
    let (addr, fp) = started_rx.await.unwrap();
    Gateway {
        url: format!("https://{addr}"),
        trust: Trust::Pinned(fp),
        data_dir,
        _dir: dir,
        stop: Some(stop_tx),
        task: Some(task),
        _database: database,
    }
}

/// `raw` with the gateway's database: `None` keeps SQLite.
fn on_database(raw: RawConfig, database: Option<&PgDatabase>) -> RawConfig {
    let Some(db) = database else {
        return raw;
    };
    // Once the store layer (branch `store`) is merged, this is:
    // RawConfig { database: RawDatabase { url: Some(db.url.clone()), max_connections: None }, ..raw }
    panic!(
        "the gateway has no PostgreSQL engine yet (store layer not merged): cannot use {}",
        db.url
    )
}

impl Gateway {
    /// Stops the gateway and waits for its ordered shutdown (its database
    /// closed), so no thread of it is still inside SQLCipher when the test
    /// process exits (an exit racing such a thread dies of SIGSEGV after
    /// the tests passed). Dropping the handle only asks it to stop.
    #[allow(dead_code)] // each test binary compiles this module; not all stop explicitly
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), t).await;
        }
    }

    /// A client with no credentials yet.
    pub(crate) fn client(&self) -> Client {
        Client::new(self.url.parse().unwrap(), &self.trust, None).unwrap()
    }
}
