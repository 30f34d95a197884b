//! What the in-process gateway tests share: a real gateway (its real
//! database, TLS on a loopback port picked at run time) running in this
//! process, stopped when the handle is dropped.

use jumpgate_client::Client;
use jumpgate_net::tls::Trust;
use jumpgate_server::{Config, RawConfig};

pub(crate) struct Gateway {
    pub(crate) url: String,
    pub(crate) trust: Trust,
    pub(crate) data_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn start_gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let cfg = Config::validate(RawConfig {
        data_dir: Some(data_dir.clone()),
        listen: Some("127.0.0.1:0".into()),
        ..RawConfig::default()
    })
    .unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
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
        _stop: stop_tx,
    }
}

impl Gateway {
    /// A client with no credentials yet.
    pub(crate) fn client(&self) -> Client {
        Client::new(self.url.parse().unwrap(), &self.trust, None).unwrap()
    }
}
