//! Start-up and ordered shutdown of the gateway.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jumpgate_net::tls::Fingerprint;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::state::{AppState, Inner};
use crate::{agents, control, listener, sessions, site, store};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("data dir {path}: {cause}")]
    DataDir { path: String, cause: std::io::Error },
    #[error(transparent)]
    Site(#[from] site::SiteError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("control socket: {0}")]
    Control(std::io::Error),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("vault: {0}")]
    Vault(String),
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobConfigError),
    #[error(transparent)]
    Analytics(#[from] crate::analytics::AnalyticsError),
    #[error("SSH front door: {0}")]
    Ssh(#[from] crate::ssh::SshError),
}

impl From<crate::keys::KeyringOpenError> for ServerError {
    fn from(e: crate::keys::KeyringOpenError) -> Self {
        match e {
            crate::keys::KeyringOpenError::Keys(e) => Self::Keys(e),
            crate::keys::KeyringOpenError::Store(e) => Self::Store(e),
            crate::keys::KeyringOpenError::Db(e) => Self::Db(e),
        }
    }
}

/// What a started gateway tells its operator.
#[derive(Clone, Debug)]
pub struct Started {
    pub addr: SocketAddr,
    pub redirect_addr: Option<SocketAddr>,
    /// The SSH front door's port, when `[ssh] listen` is set.
    pub ssh_addr: Option<SocketAddr>,
    pub hostname: String,
    /// The fingerprint clients pin (`--ca-fingerprint`).
    pub fingerprint: Fingerprint,
    pub generated_certificate: bool,
}

impl Started {
    /// What `listen_address_file` holds: `key=value` lines, `listen`, then
    /// `redirect_listen` and `ssh_listen` (only when that port is on), then
    /// `fingerprint`.
    #[must_use]
    pub fn address_file(&self) -> String {
        let mut text = format!("listen={}\n", self.addr);
        if let Some(r) = self.redirect_addr {
            text.push_str(&format!("redirect_listen={r}\n"));
        }
        if let Some(r) = self.ssh_addr {
            text.push_str(&format!("ssh_listen={r}\n"));
        }
        text.push_str(&format!("fingerprint={}\n", self.fingerprint));
        text
    }
}

pub(crate) fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("jumpgate.db")
}

/// Where the site's database is: the configured PostgreSQL database, or
/// the embedded file in the data directory.
pub(crate) fn location<'a>(
    config: &'a Config,
    keys: &'a crate::keys::Keyring,
    rekey: bool,
) -> store::Location<'a> {
    match &config.database {
        Some(db) => store::Location::Postgres {
            url: &db.url,
            max_connections: db.max_connections,
        },
        None => store::Location::Sqlite {
            path: db_path(&config.data_dir),
            keys,
            rekey,
        },
    }
}

/// Time each shutdown stage may take before the next one starts anyway.
const STAGE_GRACE: Duration = Duration::from_secs(5);

/// Runs the gateway until `shutdown` completes, then stops in order:
/// new work is refused, sessions are told why they end, agents are sent away,
/// tasks are awaited, and the database is checkpointed and closed.
///
/// # Errors
/// Start-up failures (bad certificate, port in use, unusable data dir).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    on_started: impl FnOnce(&Started),
) -> Result<(), ServerError> {
    site::create_private_dir(&config.data_dir)?;
    let keys = match &config.database {
        None => crate::keys::Keyring::open(&config.data_dir)?,
        Some(db) => {
            crate::keys::Keyring::open_for_postgres(
                &config.data_dir,
                &db.url,
                crate::schema::SCHEMA,
            )
            .await?
        }
    };
    // Nothing else has the database open yet: a pending re-encryption
    // (after a database key rotation) happens here.
    let db = store::open_site(location(&config, &keys, true), crate::schema::SCHEMA).await?;
    tracing::info!(engine = %db.engine(), "database open");
    crate::vault::fix_retention(&db, config.vault_retention)
        .await
        .map_err(|e| ServerError::Vault(e.to_string()))?;
    let sealed = crate::events::seal_legacy(&db).await?;
    if sealed > 0 {
        tracing::info!(
            count = sealed,
            "chained audit entries written before the audit log was a chain"
        );
    }
    // TOTP secrets stored in the clear (before they were sealed) are
    // sealed now, and those under an old KEK version re-wrapped.
    let resealed = crate::identity::reseal_totp_secrets(&db, &keys).await?;
    if resealed > 0 {
        tracing::info!(count = resealed, "TOTP secrets sealed or re-wrapped");
    }
    for (name, older) in crate::identity::name_clashes(&db).await? {
        tracing::warn!(
            user = %name,
            clashes_with = %older,
            "user names are not case-sensitive: this account, kept from before, clashes with an older one and logs in only with its exact name; delete it (jg admin users delete) and re-create it under another name"
        );
    }
    let orphans = sessions::close_orphans(&db).await?;
    if orphans > 0 {
        tracing::warn!(
            count = orphans,
            "closed session events left open by an unclean stop"
        );
    }
    let blobs = crate::blobs::open(&config.blobs, &config.data_dir).await?;
    tracing::info!(store = blobs.location(), "blob store");
    let interrupted =
        crate::recordings::close_orphans(&db, &keys, &blobs, &config.data_dir).await?;
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "recordings interrupted by an unclean stop end at their last written second"
        );
    }
    // Listed before any session of this run starts: every one is finished.
    let spooled = crate::recordings::spooled(&blobs, &config.data_dir)
        .await
        .map_err(|cause| ServerError::DataDir {
            path: crate::recordings::dir(&config.data_dir)
                .display()
                .to_string(),
            cause,
        })?;
    let (analytics_writer, analytics_reader) =
        crate::analytics::open(&config.analytics, &config.data_dir, &keys).await?;
    tracing::info!(store = %analytics_writer.describe(), "analytics store");
    let tls = site::load_or_create(&config.data_dir, &config.hostname, &config.tls)?;
    // Made on the first start (whether or not the SSH port is on), so its
    // fingerprint can be published before the port is opened.
    let ssh_host_key = crate::ssh::host_key::load_or_create(&db, &keys, &config.data_dir).await?;
    // The user CA likewise: the front door trusts the certificates it signs.
    let ssh_user_ca =
        crate::ssh::user_ca::load_or_create(&db, &keys, Some(&config.data_dir)).await?;
    raise_fd_limit();

    let tcp = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            cause: source,
        })?;
    let addr = tcp.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        cause: source,
    })?;
    let redirect = match config.redirect_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: a,
                    cause: source,
                })?,
        ),
        None => None,
    };
    let redirect_addr = redirect.as_ref().and_then(|l| l.local_addr().ok());
    let ssh = match config.ssh_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: a,
                    cause: source,
                })?,
        ),
        None => None,
    };
    let ssh_addr = ssh.as_ref().and_then(|l| l.local_addr().ok());
    let control_listener = control::bind(&config.data_dir)
        .await
        .map_err(ServerError::Control)?;
    let started = Started {
        addr,
        redirect_addr,
        ssh_addr,
        hostname: config.hostname.clone(),
        fingerprint: tls.fingerprint,
        generated_certificate: tls.generated,
    };
    if let Some(path) = &config.listen_address_file {
        site::write_public(path, started.address_file().as_bytes())?;
    }

    let stop = CancellationToken::new();
    let origins = config.origins(addr.port());
    let gateway = crate::ids::GatewayId::generate();
    tracing::info!(gateway = gateway.as_str(), "gateway starting");
    // What the gateway serves with: ports bound (`:0` resolved), so routes
    // can tell clients where the SSH front door is.
    let mut served = config.clone();
    served.ssh_listen = ssh_addr;
    let st = AppState::new(Inner {
        db: db.clone(),
        config: served,
        origins: origins.clone(),
        fingerprint: tls.fingerprint.to_string(),
        portal_origin: config.portal_origin(addr.port()),
        keys,
        gateway: gateway.clone(),
        agents: agents::directory::single_node(),
        lease: Arc::new(crate::lease::LocalLease),
        blobs: blobs.clone(),
        sessions: sessions::LiveSessions::default(),
        shutdown: stop.clone(),
        tasks: TaskTracker::new(),
        login_limiter: crate::identity::login_rate_limiter(),
        support_limits: crate::support::Limits::default(),
        support_hub: Default::default(),
        epm: Default::default(),
        key_sweep: Arc::default(),
        access_wake: Arc::default(),
        endpoint_list: Default::default(),
        analytics: crate::analytics::Reports::new(analytics_reader),
        webhooks: Default::default(),
    });
    // The logging pipeline has its own stop: it ships the last events of
    // the shutdown after everything else has stopped writing.
    let shipper_stop = CancellationToken::new();
    let shipper = tokio::spawn(crate::analytics::shipper::run(
        db.clone(),
        analytics_writer,
        config.data_dir.clone(),
        shipper_stop.clone(),
    ));
    st.tasks.spawn(crate::keys::sweep::run(st.clone()));
    st.tasks.spawn(sessions::recheck::run(st.clone()));
    st.tasks.spawn(crate::access::expiry::run(st.clone()));
    // Search inside recordings: indexes every ended terminal recording.
    st.tasks.spawn(crate::recordings::search::run(st.clone()));
    // Mail alerts (`[smtp]`): the audit chain's reader and the mail worker.
    crate::notify::alerts::start(&st);
    // Outbound events: the audit chain's reader and one worker per webhook
    // subscription.
    st.tasks.spawn(crate::notify::webhooks::run(st.clone()));
    if !spooled.is_empty() {
        let (db, blobs, dir) = (db.clone(), blobs.clone(), config.data_dir.clone());
        st.tasks.spawn(async move {
            let n = crate::recordings::publish_spooled(&db, &blobs, &dir, &spooled).await;
            tracing::info!(
                published = n,
                waiting = spooled.len(),
                store = blobs.location(),
                "recordings from the local spool moved to the blob store"
            );
        });
    }
    let router = crate::routes::router(st.clone());
    // One admission gate for the site: `[limits]` bound the TLS port and
    // the SSH front door together.
    let gate = listener::site_gate(&st);
    let accept = tokio::spawn(listener::serve_tls(
        tcp,
        st.clone(),
        Arc::clone(&gate),
        tls.config.clone(),
        router,
    ));
    if let Some(l) = redirect {
        tokio::spawn(listener::serve_redirect(
            l,
            origins[0].clone(),
            stop.clone(),
        ));
    }
    let ssh_accept = ssh.map(|l| {
        tokio::spawn(crate::ssh::serve(
            l,
            st.clone(),
            Arc::clone(&gate),
            ssh_host_key,
            ssh_user_ca.public_key().clone(),
        ))
    });
    tokio::spawn(control::serve(control_listener, st.clone(), stop.clone()));
    let upkeep = tokio::spawn(crate::housekeeping::run(st.clone()));

    on_started(&started);
    shutdown.await;
    tracing::info!(
        gateway = %st.gateway,
        agents = st.agents.local().len(),
        sessions = st.sessions.len(),
        "shutting down"
    );

    // 1. No new connections, sessions or requests.
    stop.cancel();
    let _ = accept.await;
    if let Some(a) = ssh_accept {
        let _ = a.await;
    }
    // 2. Live sessions end at a message boundary with a reason.
    st.sessions.stop_all("the gateway is shutting down");
    wait_until(|| st.sessions.len() == 0).await;
    // 3. Agents are told to come back later.
    let handles = st.agents.local().close_all(
        jumpgate_proto::control::go_away_code::SHUTDOWN,
        "the gateway is shutting down",
    );
    let _ = tokio::time::timeout(STAGE_GRACE, async {
        for h in handles {
            h.closed().await;
        }
    })
    .await;
    // 4. Every remaining task, then the database.
    st.tasks.close();
    if tokio::time::timeout(STAGE_GRACE, st.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
    let _ = upkeep.await;
    // Backend before frontend: the shipper flushes what the stages above
    // wrote, then closes the write identity; then the reports' reader.
    shipper_stop.cancel();
    let _ = shipper.await;
    if let Some(r) = st.analytics.reader() {
        r.close().await;
    }
    if let Err(e) = crate::events::write_anchor(&db, &config.data_dir, None).await {
        tracing::warn!(error = %e, "cannot anchor the audit log's head");
    }
    db.stop_checkpoints().await;
    if let Some(pool) = db.sqlite_pool()
        && let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await
    {
        tracing::warn!(error = %e, "database checkpoint failed");
    }
    db.close().await;
    let _ = std::fs::remove_file(control::socket_path(&config.data_dir));
    tracing::info!("stopped");
    Ok(())
}

async fn wait_until(done: impl Fn() -> bool) {
    let _ = tokio::time::timeout(STAGE_GRACE, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Each agent holds a socket: allow as many as the hard limit permits.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum
        && lim.current.is_some_and(|c| c < max)
    {
        lim.current = Some(max);
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
}
