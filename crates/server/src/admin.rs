//! What `jumpgate admin` does: operations on a site's data directory that
//! work whether or not the gateway is running (SQLite allows a second
//! writer; the control socket tells a running gateway to act at once).

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;

use crate::identity::{self, IdentityError};
use crate::keys::{Keyring, Purpose};
use crate::store::Store;
use crate::{agents, control, ids, store};

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no Jumpgate site at {0} (start `jumpgate server --data-dir {0}` once to create it)")]
    NoSite(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("no enrolled endpoint named `{0}`")]
    UnknownEndpoint(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(
        "no generated site CA at {0}: this site uses its own certificate; pin the fingerprint printed by `jumpgate server`"
    )]
    NoGeneratedCa(String),
    #[error("no SSH host key at {0}: start the gateway once (it makes its SSH host key at start)")]
    NoSshHostKey(String),
    #[error("no SSH user CA at {0}: start the gateway once (it makes its user CA at start)")]
    NoSshUserCa(String),
    #[error("audit head anchor: {0}")]
    Anchor(std::io::Error),
    #[error("the running gateway did not answer: {0}")]
    Control(#[from] std::io::Error),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Sweep(#[from] crate::keys::sweep::SweepError),
    #[error("the running gateway refused: {0}")]
    Refused(String),
    #[error("endpoint privilege management: {0}")]
    Epm(String),
    #[error("the gateway is not running: {0}")]
    GatewayNotRunning(&'static str),
    #[error(
        "the gateway is running with data dir {0}: stop it before migrate-store (the copy must see every write)"
    )]
    GatewayRunning(String),
    #[error(transparent)]
    Migrate(#[from] store::migrate::MigrateError),
    #[error(
        "the copy was committed but its audit chain does not verify on the target ({0}); do not start the gateway on it: drop the target database and report this"
    )]
    AuditOnTarget(crate::AuditBroken),
}

/// What `migrate-store` did.
#[derive(Debug)]
pub struct Migrated {
    /// Per table, in the order copied.
    pub tables: Vec<store::migrate::TableCopy>,
    /// The audit chain as verified on the target.
    pub audit: crate::AuditIntact,
    /// The target, its password hidden.
    pub target: String,
}

impl From<crate::keys::KeyringOpenError> for AdminError {
    fn from(e: crate::keys::KeyringOpenError) -> Self {
        match e {
            crate::keys::KeyringOpenError::Keys(e) => Self::Keys(e),
            crate::keys::KeyringOpenError::Store(e) => Self::Store(e),
            crate::keys::KeyringOpenError::Db(e) => Self::Db(e),
        }
    }
}

/// Opens an existing site's database, decrypted with the site's key (the
/// root key file, or `JUMPGATE_ROOT_KEY`). Anything done through this pool
/// bypasses the gateway's checks: it is for administration and tests.
///
/// # Errors
/// No site there, the keys do not open, or the database cannot be opened.
pub async fn open(data_dir: &Path, database: Option<&str>) -> Result<Store, AdminError> {
    Ok(open_site(data_dir, database).await?.0)
}

/// The site's store and keyring: the embedded database in `data_dir`, or
/// the PostgreSQL database at `database` (the site's keys stay in
/// `data_dir` either way).
async fn open_site(
    data_dir: &Path,
    database: Option<&str>,
) -> Result<(Store, Keyring), AdminError> {
    let path = crate::app::db_path(data_dir);
    let exists = match database {
        Some(_) => data_dir.join("keys").exists(),
        None => path.exists(),
    };
    if !exists {
        return Err(AdminError::NoSite(data_dir.display().to_string()));
    }
    let keys = match database {
        None => Keyring::open(data_dir)?,
        Some(url) => Keyring::open_for_postgres(data_dir, url, crate::schema::SCHEMA).await?,
    };
    let at = match database {
        Some(url) => store::Location::Postgres {
            url,
            max_connections: 4,
        },
        None => store::Location::Sqlite {
            path,
            keys: &keys,
            rekey: false,
        },
    };
    let db = store::open_site(at, crate::schema::SCHEMA).await?;
    crate::events::seal_legacy(&db).await?;
    Ok((db, keys))
}

/// The key purposes `rotate-keys` accepts (all when empty).
///
/// # Errors
/// An unknown purpose name.
fn purposes(names: &[String]) -> Result<Vec<Purpose>, AdminError> {
    if names.is_empty() {
        return Ok(Purpose::ALL.to_vec());
    }
    Ok(names
        .iter()
        .map(|n| n.parse())
        .collect::<Result<Vec<Purpose>, _>>()?)
}

/// What `rotate-keys` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotated {
    /// The running gateway rotated; its sweep runs in the background.
    ByGateway(Vec<String>),
    /// No gateway runs: rotated here, and the sweep ran to completion.
    Offline {
        versions: Vec<String>,
        rewrapped: u64,
    },
}

/// Rotates the key-encryption keys of `names` (all purposes when empty):
/// through the running gateway if there is one, else here.
///
/// # Errors
/// Unknown purpose, keys or database unusable, the gateway refused.
pub async fn rotate_keys(
    data_dir: &Path,
    database: Option<&str>,
    names: &[String],
) -> Result<Rotated, AdminError> {
    let list = purposes(names)?;
    let line: Vec<&str> = list.iter().map(|p| p.as_str()).collect();
    if let Some(answer) =
        control::request(data_dir, &format!("rotate-keys {}", line.join(","))).await?
    {
        return match answer.strip_prefix("ok ") {
            Some(v) => Ok(Rotated::ByGateway(
                v.split_whitespace().map(str::to_owned).collect(),
            )),
            None => Err(AdminError::Refused(
                answer.trim_start_matches("error ").to_owned(),
            )),
        };
    }
    let (db, keys) = open_site(data_dir, database).await?;
    let rotated = crate::keys::sweep::rotate(&db, &keys, &list, "(admin cli)").await?;
    let pace = crate::keys::sweep::Pace {
        batch: 500,
        pause: Duration::ZERO,
    };
    let rewrapped = crate::keys::sweep::sweep_all(
        &db,
        &keys,
        pace,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await?;
    db.close().await;
    Ok(Rotated::Offline {
        versions: rotated
            .iter()
            .map(|(p, v)| format!("{}:v{v}", p.as_str()))
            .collect(),
        rewrapped,
    })
}

/// `jumpgate admin epm rotate-signing-key`: a new policy signing key
/// signs the next bundle; the previous one stays trusted (older ones are
/// retired). Answers the new key's id (`pk_…`). Audited as the admin CLI.
///
/// # Errors
/// Keys or database unusable.
pub async fn epm_rotate_signing_key(
    data_dir: &Path,
    database: Option<&str>,
) -> Result<String, AdminError> {
    let (db, keys) = open_site(data_dir, database).await?;
    let r = crate::epm::rotate_signing_key_with(&db, &keys, "(admin cli)").await;
    db.close().await;
    r.map_err(|e| AdminError::Epm(e.to_string()))
}

/// What `rotate-root-key` did.
#[derive(Debug, PartialEq, Eq)]
pub struct RootRotated {
    /// The new root generation (1 after the first rotation).
    pub generation: u32,
    /// The running gateway rotated (else this process, offline).
    pub by_gateway: bool,
    /// The root key comes from `JUMPGATE_ROOT_KEY`: the operator must set
    /// it to the new key before the next start.
    pub from_env: bool,
}

/// Re-seals every key-encryption key under a new root key: through the
/// running gateway if there is one, else here. With the key file the new
/// key is made and stored in `keys/root.key`; with `JUMPGATE_ROOT_KEY` set
/// the operator gives it in `new_key_file` (mode 0600 or stricter).
///
/// # Errors
/// `JUMPGATE_ROOT_KEY` is set and no new key file given, the new key file
/// is unusable, keys or database unusable, the gateway refused.
pub async fn rotate_root_key(
    data_dir: &Path,
    database: Option<&str>,
    new_key_file: Option<&Path>,
) -> Result<RootRotated, AdminError> {
    if std::env::var(crate::keys::ROOT_KEY_ENV).is_ok() && new_key_file.is_none() {
        return Err(crate::keys::KeyError::NewRootNeeded.into());
    }
    let new_key_file = match new_key_file {
        Some(f) => {
            // Checked here for a clear error; the gateway reads it itself
            // (the key never goes through the socket).
            crate::keys::LocalRoot::from_new_key_file(f)?;
            Some(
                std::path::absolute(f).map_err(|cause| crate::keys::KeyError::Io {
                    path: f.display().to_string(),
                    cause,
                })?,
            )
        }
        None => None,
    };
    let line = match &new_key_file {
        Some(f) => format!("rotate-root-key {}", f.display()),
        None => "rotate-root-key".to_owned(),
    };
    if let Some(answer) = control::request(data_dir, &line).await? {
        let mut words = answer.split_whitespace();
        return match (words.next(), words.next(), words.next()) {
            (Some("ok"), Some(g), Some(src)) => Ok(RootRotated {
                generation: g.parse().unwrap_or(0),
                by_gateway: true,
                from_env: src == "env",
            }),
            _ => Err(AdminError::Refused(
                answer.trim_start_matches("error ").to_owned(),
            )),
        };
    }
    let new = new_key_file
        .as_deref()
        .map(crate::keys::LocalRoot::from_new_key_file)
        .transpose()?;
    let (db, keys) = open_site(data_dir, database).await?;
    let from_env = !keys.root_is_key_file();
    let generation = crate::keys::sweep::rotate_root(&db, &keys, new, "(admin cli)").await?;
    db.close().await;
    Ok(RootRotated {
        generation,
        by_gateway: false,
        from_env,
    })
}

/// Whether the root key in `key_file` (32 raw bytes, mode 0600, like
/// `keys/root.key`) opens the site's keyring: `Ok(())`, or the error
/// opening it gives (e.g. a wrong root key).
///
/// # Errors
/// The key file is unusable or does not open the keyring.
pub fn check_root_key(data_dir: &Path, key_file: &Path) -> Result<(), AdminError> {
    if !data_dir
        .join("keys")
        .join(crate::keys::KEYRING_FILE)
        .exists()
    {
        return Err(AdminError::NoSite(data_dir.display().to_string()));
    }
    let root = crate::keys::read_root_file(key_file)?;
    Keyring::open_with(data_dir, root)?;
    Ok(())
}

/// Key versions per purpose, how many stored keys each still wraps, and
/// the progress of the rotation sweep.
///
/// # Errors
/// Keys or database unusable.
pub async fn key_status(
    data_dir: &Path,
    database: Option<&str>,
) -> Result<crate::KeyStatus, AdminError> {
    let (db, keys) = open_site(data_dir, database).await?;
    let status = crate::keys::sweep::status(&db, &keys).await?;
    db.close().await;
    Ok(status)
}

/// Checks the whole audit chain and its head against the anchor the
/// gateway keeps outside the database: `Ok(Err(broken))` names the first
/// entry that was altered, that follows a removed one, or where entries
/// removed from the end used to be.
///
/// # Errors
/// The database or the anchor file cannot be read.
pub async fn verify_audit(
    data_dir: &Path,
    db: &Store,
) -> Result<Result<crate::AuditIntact, crate::AuditBroken>, AdminError> {
    let anchor = crate::events::read_anchor(data_dir).map_err(AdminError::Anchor)?;
    Ok(crate::events::verify(db, anchor).await?)
}

/// The fingerprint clients pin, when the site uses its generated certificate.
///
/// # Errors
/// The site uses its own certificate (nothing generated to read).
pub fn fingerprint(data_dir: &Path) -> Result<String, AdminError> {
    let ca = data_dir.join("tls").join("ca.crt");
    let der = rustls::pki_types::CertificateDer::from_pem_file(&ca)
        .map_err(|_| AdminError::NoGeneratedCa(ca.display().to_string()))?;
    Ok(jumpgate_net::tls::Fingerprint::of(&der).to_string())
}

/// The gateway's SSH host key fingerprint as OpenSSH shows it
/// (`SHA256:…`), from the public half the gateway writes at start.
///
/// # Errors
/// The gateway has not made its host key yet, or the file is damaged.
pub fn ssh_fingerprint(data_dir: &Path) -> Result<String, AdminError> {
    let path = crate::ssh::host_key::public_file(data_dir);
    let text = std::fs::read_to_string(&path)
        .map_err(|_| AdminError::NoSshHostKey(path.display().to_string()))?;
    let key = russh::keys::PublicKey::from_openssh(text.trim())
        .map_err(|_| AdminError::NoSshHostKey(path.display().to_string()))?;
    Ok(crate::ssh::host_key::fingerprint(&key))
}

/// The SSH user CA's fingerprint (`SHA256:…`), from its public file.
///
/// # Errors
/// The gateway has not made the CA yet (it does on its first start).
pub fn ssh_user_ca_fingerprint(data_dir: &Path) -> Result<String, AdminError> {
    let path = crate::ssh::user_ca::public_file(data_dir);
    let text = std::fs::read_to_string(&path)
        .map_err(|_| AdminError::NoSshUserCa(path.display().to_string()))?;
    let key = russh::keys::PublicKey::from_openssh(text.trim())
        .map_err(|_| AdminError::NoSshUserCa(path.display().to_string()))?;
    Ok(crate::ssh::host_key::fingerprint(&key))
}

/// # Errors
/// Unknown role, invalid name, weak password, existing user.
pub async fn create_user(
    db: &Store,
    username: &str,
    role: &str,
    groups: &[String],
    password: &str,
) -> Result<(), AdminError> {
    identity::create_user(
        db,
        &identity::NewUser {
            username,
            password,
            role,
            groups,
            email: None,
        },
        store::AuditEvent::new("(admin cli)", store::AuditAction::UserCreate, username)
            .detail(format!("role={role}")),
    )
    .await?;
    Ok(())
}

/// A new enrollment token and when it expires (RFC 3339).
///
/// # Errors
/// Invalid group name.
pub async fn enroll_token(
    db: &Store,
    group: &str,
    ttl: Duration,
) -> Result<(String, String), AdminError> {
    let (mut tokens, expires) = enroll_tokens(db, group, ttl, 1).await?;
    Ok((tokens.pop().unwrap_or_default(), expires))
}

/// `count` new enrollment tokens and when they expire (RFC 3339), audited
/// as one entry.
///
/// # Errors
/// Invalid group name.
pub async fn enroll_tokens(
    db: &Store,
    group: &str,
    ttl: Duration,
    count: u32,
) -> Result<(Vec<String>, String), AdminError> {
    let audit = store::AuditEvent::new("(admin cli)", store::AuditAction::EnrollTokenCreate, group)
        .detail(format!("count={count}"))
        .group(group);
    let made = identity::create_enroll_tokens(db, group, ttl, count, audit).await?;
    let expires = made
        .first()
        .map(|t| ids::rfc3339(t.expires_at_ms))
        .unwrap_or_default();
    Ok((made.into_iter().map(|t| t.token).collect(), expires))
}

/// What revocation achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoked {
    /// The gateway cut the agent's live connection.
    Disconnected,
    /// The gateway runs; the agent was not connected.
    WasOffline,
    /// No gateway runs; the agent will be refused when it next connects.
    GatewayNotRunning,
}

/// Whether an endpoint named `name` is enrolled and not revoked.
///
/// # Errors
/// The store failed.
pub async fn endpoint_enrolled(db: &Store, name: &str) -> Result<bool, AdminError> {
    Ok(agents::find_by_name(db, name)
        .await?
        .is_some_and(|e| !e.revoked))
}

/// Revokes an endpoint and cuts its live connection.
///
/// # Errors
/// No such endpoint.
pub async fn revoke_endpoint(
    data_dir: &Path,
    db: &Store,
    name: &str,
) -> Result<Revoked, AdminError> {
    let id = agents::revoke(db, name, "(admin cli)", |_| String::new())
        .await?
        .ok_or_else(|| AdminError::UnknownEndpoint(name.to_owned()))?;
    Ok(
        match control::request(data_dir, &format!("revoke {id}")).await? {
            None => Revoked::GatewayNotRunning,
            Some(a) if a == "ok disconnected" => Revoked::Disconnected,
            Some(_) => Revoked::WasOffline,
        },
    )
}

/// An endpoint's details as its agent reports them now.
#[derive(Debug, serde::Deserialize)]
pub struct EndpointFacts {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: String,
    /// They differed from the stored details (now replaced; audited as
    /// `endpoint-details` by `(system)`).
    pub changed: bool,
}

/// Asks the running gateway to fetch an endpoint's details from its agent
/// now (a `facts` system stream) and store them.
///
/// # Errors
/// The gateway is not running, or it could not get the facts (unknown or
/// offline endpoint, no answer).
pub async fn endpoint_facts(data_dir: &Path, name: &str) -> Result<EndpointFacts, AdminError> {
    let answer = control::request(data_dir, &format!("endpoint-facts {name}"))
        .await?
        .ok_or(AdminError::GatewayNotRunning(
            "an endpoint's facts come from its agent, through the gateway",
        ))?;
    match answer.strip_prefix("ok ") {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| AdminError::Refused(format!("unexpected answer: {e}"))),
        None => Err(AdminError::Refused(
            answer.strip_prefix("error ").unwrap_or(&answer).to_owned(),
        )),
    }
}

/// Copies the site's embedded SQLite store into the empty PostgreSQL
/// database at `to`, then checks it (row counts and contents per table, the
/// audit chain against the anchored head): `jumpgate admin migrate-store`.
/// The gateway must be stopped; while the copy runs this holds the data
/// directory's control socket, so no gateway starts on the site and admin
/// commands are told to wait. The source is left unchanged.
///
/// # Errors
/// The gateway runs, no site, keys or databases unusable, the target is not
/// empty, or the copy does not check out (see
/// [`store::migrate::MigrateError`]).
pub async fn migrate_store(data_dir: &Path, to: &str) -> Result<Migrated, AdminError> {
    let listener = control::bind(data_dir).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            AdminError::GatewayRunning(data_dir.display().to_string())
        } else {
            AdminError::Control(e)
        }
    })?;
    let busy = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut s,
                b"error migrate-store is copying this site's database; try again when it has finished\n",
            )
            .await;
        }
    });
    let result = async {
        let (db, keys) = open_site(data_dir, None).await?;
        let anchor = crate::events::read_anchor(data_dir).map_err(AdminError::Anchor)?;
        let copied = store::migrate::copy_to_postgres(&db, to, crate::schema::SCHEMA).await;
        db.close().await;
        let copied = copied?;
        let target = store::open_site(
            store::Location::Postgres {
                url: to,
                max_connections: 2,
            },
            crate::schema::SCHEMA,
        )
        .await?;
        // The audit chain on the committed copy, against the head anchored
        // in the data directory.
        let verified = crate::events::verify(&target, anchor).await;
        let audit = match verified {
            Ok(Ok(intact)) => intact,
            Ok(Err(broken)) => {
                target.close().await;
                return Err(AdminError::AuditOnTarget(broken));
            }
            Err(e) => {
                target.close().await;
                return Err(e.into());
            }
        };
        // TOTP secrets a site of an earlier version still holds in the clear
        // (its gateway seals them at start) are sealed on the target before
        // any gateway serves it; the source stays as it was.
        let sealed = crate::identity::reseal_totp_secrets(&target, &keys).await;
        target.close().await;
        sealed?;
        Ok(Migrated {
            tables: copied.tables,
            audit,
            target: copied.target,
        })
    }
    .await;
    busy.abort();
    let _ = busy.await;
    let _ = std::fs::remove_file(control::socket_path(data_dir));
    result
}
