//! A `jumpgate server` process on a loopback port picked at run time.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::engine::{Engine, PgDatabase, database_for};
use crate::{Log, WAIT, jumpgate_bin};

/// A running gateway process, killed when dropped.
#[derive(Debug)]
pub struct Gateway {
    pub child: Child,
    /// The TLS port, as bound (from its listen-address file).
    pub addr: SocketAddr,
    /// The redirect port, when `--redirect-listen` was given.
    pub redirect: Option<SocketAddr>,
    /// The SSH front door, when `--ssh-listen` was given.
    pub ssh: Option<SocketAddr>,
    /// What clients pin (`--ca-fingerprint`).
    pub fingerprint: String,
    pub stdout: Log,
    pub stderr: Log,
    /// Its PostgreSQL database (`None`: SQLite in the data directory).
    /// After `child`: dropped once the process is killed.
    pub database: Option<Arc<PgDatabase>>,
    /// Holds the listen-address file.
    _files: tempfile::TempDir,
}

/// What a started gateway wrote to its `--listen-address-file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddresses {
    pub listen: SocketAddr,
    pub redirect_listen: Option<SocketAddr>,
    pub ssh_listen: Option<SocketAddr>,
    pub fingerprint: String,
}

impl ListenAddresses {
    /// Parses the file's `key=value` lines.
    ///
    /// # Errors
    /// A line that is not `key=value`, a bad address, or a key missing.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (mut listen, mut redirect_listen, mut fingerprint) = (None, None, None);
        let mut ssh_listen = None;
        for line in text.lines() {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("not key=value: {line:?}"))?;
            let addr = || {
                value
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("{key}: {e}"))
            };
            match key {
                "listen" => listen = Some(addr()?),
                "redirect_listen" => redirect_listen = Some(addr()?),
                "ssh_listen" => ssh_listen = Some(addr()?),
                "fingerprint" => fingerprint = Some(value.to_owned()),
                // Room for more: unknown keys are not an error.
                _ => {}
            }
        }
        Ok(Self {
            listen: listen.ok_or("no listen= line")?,
            redirect_listen,
            ssh_listen,
            fingerprint: fingerprint.ok_or("no fingerprint= line")?,
        })
    }
}

impl Gateway {
    /// Starts `jumpgate server` on `data_dir` and waits until it listens.
    /// `extra` adds flags; `--listen` on a free loopback port below the
    /// kernel's ephemeral range ([`crate::free_port`]: a restart
    /// on the same address cannot find it taken) unless it has
    /// `--listen`. A data directory seen before keeps its engine (and its
    /// PostgreSQL database); a new one gets [`Engine::from_env`].
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let database = database_for(data_dir, None).await;
        Self::start_on(data_dir, extra, database).await
    }

    /// Starts a gateway on a new data directory with `engine`.
    pub async fn start_with_engine(data_dir: &Path, extra: &[&str], engine: Engine) -> Self {
        let database = database_for(data_dir, Some(engine)).await;
        Self::start_on(data_dir, extra, database).await
    }

    /// Starts the gateway, again when its port was taken: a port of its
    /// own choosing is chosen anew, a port given in `extra` (a restart on
    /// the address the site's clients know) is tried until [`WAIT`] has
    /// passed, since another test may hold it for a moment.
    async fn start_on(data_dir: &Path, extra: &[&str], database: Option<Arc<PgDatabase>>) -> Self {
        let given = extra.contains(&"--listen");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let listen = (!given).then(|| format!("127.0.0.1:{}", crate::free_port()));
            match Self::try_start(data_dir, listen.as_deref(), extra, &database).await {
                Ok(gateway) => return gateway,
                Err(failure) => {
                    let taken = failure.contains("Address already in use");
                    if !taken || tokio::time::Instant::now() >= deadline {
                        panic!("{failure}");
                    }
                    if given {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }

    /// One start: the gateway, or what it printed before it failed.
    async fn try_start(
        data_dir: &Path,
        listen: Option<&str>,
        extra: &[&str],
        database: &Option<Arc<PgDatabase>>,
    ) -> Result<Self, String> {
        let files = tempfile::tempdir().unwrap();
        let address_file = files.path().join("listen-address");
        let mut cmd = Command::new(jumpgate_bin());
        cmd.arg("server").arg("--data-dir").arg(data_dir);
        if let Some(listen) = listen {
            cmd.args(["--listen", listen]);
        }
        if let Some(db) = database
            && !extra.contains(&"--database")
        {
            cmd.args(["--database", &db.url]);
        }
        cmd.arg("--listen-address-file")
            .arg(&address_file)
            .args(extra)
            // The database is the test's choice, not the environment's.
            .env_remove("JUMPGATE_DATABASE")
            .env("RUST_LOG", "info,jumpgate_server=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn jumpgate server");
        let stdout = Log::default();
        let stderr = Log::default();
        let drains = [
            stdout.drain(child.stdout.take().unwrap()),
            stderr.drain(child.stderr.take().unwrap()),
        ];
        let addresses =
            wait_for_address_file(&mut child, &address_file, drains, &stdout, &stderr).await?;
        if let Some(db) = database {
            assert!(
                db.table_count().await > 0,
                "the gateway started but left its PostgreSQL database {} empty: is it on SQLite?\nstderr:\n{}",
                db.name,
                stderr.text()
            );
        }
        Ok(Self {
            child,
            addr: addresses.listen,
            redirect: addresses.redirect_listen,
            ssh: addresses.ssh_listen,
            fingerprint: addresses.fingerprint,
            stdout,
            stderr,
            database: database.clone(),
            _files: files,
        })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The engine this gateway runs on.
    pub fn engine(&self) -> Engine {
        if self.database.is_some() {
            Engine::Postgres
        } else {
            Engine::Sqlite
        }
    }

    /// SIGTERM, then wait for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        if let Some(status) = self.child.try_wait().unwrap() {
            return status;
        }
        signal(&self.child, rustix::process::Signal::TERM);
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("gateway did not stop after SIGTERM")
            .unwrap()
    }
}

/// Polls for the listen-address file (written atomically: it is whole
/// once it exists) until `WAIT` has passed or the gateway has exited.
/// `Err`: the gateway did not start, with all it printed.
async fn wait_for_address_file(
    child: &mut Child,
    path: &Path,
    drains: [tokio::task::JoinHandle<()>; 2],
    stdout: &Log,
    stderr: &Log,
) -> Result<ListenAddresses, String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return Ok(ListenAddresses::parse(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("{}: {e}", path.display()),
        }
        let exited = child.try_wait().unwrap();
        if exited.is_some() || tokio::time::Instant::now() >= deadline {
            // All it said: its pipes read to the end (bounded: a
            // gateway still running is killed when `child` is dropped).
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = child.wait().await;
                for d in drains {
                    let _ = d.await;
                }
            })
            .await;
            return Err(format!(
                "gateway did not start ({})\nstdout:\n{}\nstderr:\n{}",
                exited.map_or_else(|| "still running".to_owned(), |s| s.to_string()),
                stdout.text(),
                stderr.text()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `sig` to `child`.
pub fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_what_the_gateway_writes() {
        let a = ListenAddresses::parse(
            "listen=127.0.0.1:8443\nredirect_listen=[::1]:8080\nfingerprint=ab:cd\nlater=x\n",
        )
        .unwrap();
        assert_eq!(a.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(a.redirect_listen, Some("[::1]:8080".parse().unwrap()));
        assert_eq!(a.fingerprint, "ab:cd");
        let a = ListenAddresses::parse("listen=127.0.0.1:1\nfingerprint=ab\n").unwrap();
        assert_eq!(a.redirect_listen, None);
        assert!(ListenAddresses::parse("fingerprint=ab\n").is_err());
        assert!(ListenAddresses::parse("listen=nowhere\nfingerprint=ab\n").is_err());
        assert!(ListenAddresses::parse("listen 127.0.0.1:1\n").is_err());
    }
}
