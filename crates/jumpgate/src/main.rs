//! `jumpgate`: the gateway (`server`), its administration (`admin`) and the
//! endpoint agent (`agent`) in one binary.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use jumpgate_server::{Config, RawConfig, config};

mod endpoint;

use endpoint::{
    AgentArgs, AssistArgs, ElevateArgs, agent, assist, elevate, init_logging, termination,
};

/// Exit code for invalid configuration (sysexits.h `EX_USAGE`).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "jumpgate",
    version,
    about = "Self-hosted privileged remote access"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway: one TLS port for the console, the API and agents.
    Server(ServerArgs),
    /// Administer a site (works while the gateway runs).
    Admin(AdminArgs),
    /// Run the endpoint agent (dials out to the gateway).
    Agent(AgentArgs),
    /// The customer's client of attended support: run the file the support
    /// portal gave you; it connects, shows a window, and leaves nothing
    /// behind when the session ends.
    Assist(AssistArgs),
    /// Run a command as root when this machine's privilege policy allows
    /// it (asks the Jumpgate agent; no setuid): `jumpgate elevate -- CMD ARGS`.
    Elevate(ElevateArgs),
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// TOML configuration file; flags override its settings.
    #[arg(long, env = "JUMPGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the database, keys and certificates.
    #[arg(long, env = "JUMPGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the TLS port [default: 0.0.0.0:443].
    #[arg(long)]
    listen: Option<String>,
    /// Optional plain-HTTP address that only redirects to the TLS port.
    #[arg(long)]
    redirect_listen: Option<String>,
    /// Address of the SSH front door (`[ssh] listen`; off unless set).
    #[arg(long)]
    ssh_listen: Option<String>,
    /// Once listening, write `listen=ADDR`, `redirect_listen=ADDR` and
    /// `ssh_listen=ADDR` (when on) and `fingerprint=FP` lines to PATH, replacing it atomically:
    /// the ports bound (0 resolved) for scripts and tests.
    #[arg(long, value_name = "PATH")]
    listen_address_file: Option<PathBuf>,
    /// The site's host name [default: localhost].
    #[arg(long)]
    hostname: Option<String>,
    /// PEM certificate chain of the site's own certificate.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the site's own certificate.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A host name of its own for the support portal (e.g.
    /// support.example.com), on the same TLS port: on it only the portal
    /// is reachable. Without --portal-tls-cert the generated certificate
    /// covers it too.
    #[arg(long, value_name = "HOST")]
    portal_hostname: Option<String>,
    /// PEM certificate chain for the portal's host name (chosen by SNI;
    /// agents always get the site's certificate).
    #[arg(long, requires = "portal_tls_key")]
    portal_tls_cert: Option<PathBuf>,
    /// PEM private key of the portal's certificate.
    #[arg(long, requires = "portal_tls_cert")]
    portal_tls_key: Option<PathBuf>,
    /// The customer client the portal offers for download [default:
    /// jumpgate-assist next to this executable, else this executable].
    #[arg(long, value_name = "FILE")]
    assist_binary: Option<PathBuf>,
    /// PostgreSQL database, postgres://USER@HOST:PORT/DB (add
    /// ?sslmode=verify-full&sslrootcert=CA.pem for TLS) [default: the
    /// embedded encrypted SQLite file in the data directory].
    #[arg(long, env = "JUMPGATE_DATABASE", hide_env_values = true)]
    database: Option<String>,
}

#[derive(Args, Debug)]
struct AdminArgs {
    /// The site's data directory.
    #[arg(long, env = "JUMPGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// The site's PostgreSQL database, when it has one (as given to
    /// `jumpgate server --database`).
    #[arg(long, env = "JUMPGATE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create a user account.
    CreateUser {
        /// The new account's user name (what it logs in with).
        name: String,
        /// admin, technician, auditor, or a custom role.
        #[arg(long)]
        role: String,
        /// Endpoint groups the role applies to, comma-separated; `*` for all
        /// [default: all for admin, none otherwise].
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// File holding the password (`-` for standard input).
        #[arg(long)]
        password_file: PathBuf,
    },
    /// Print a one-time enrollment token for a new endpoint.
    EnrollToken {
        /// Group the enrolled endpoint joins.
        #[arg(long, default_value = "default")]
        group: String,
        /// How long the token stays valid, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Print this many tokens, one per line (for mass deployment).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
    },
    /// Revoke an endpoint: its agent is refused from now on, and its live
    /// connection is cut at once.
    RevokeEndpoint {
        /// The endpoint's name.
        name: String,
    },
    /// Ask an endpoint's agent for its details now (host name, OS,
    /// architecture, agent version) and store them. Needs the running
    /// gateway and the endpoint online.
    EndpointFacts {
        /// The endpoint's name.
        name: String,
    },
    /// Print the site CA fingerprint that clients pin (`--ca-fingerprint`),
    /// or with `--ssh` the SSH host key's, as OpenSSH shows it.
    Fingerprint {
        /// The SSH front door's host key (`SHA256:…`) instead.
        #[arg(long, conflicts_with = "ssh_user_ca")]
        ssh: bool,
        /// The SSH user CA's key (`SHA256:…`), which signs the
        /// certificates `jg login` gets, instead.
        #[arg(long)]
        ssh_user_ca: bool,
    },
    /// Check the audit log's hash chain; name the first altered or missing entry.
    VerifyAudit,
    /// Rotate key-encryption keys: new data uses the new version at once; a
    /// background sweep re-wraps stored keys, then retires old versions.
    /// Works while the gateway runs (it rotates and sweeps); otherwise
    /// rotates and sweeps here.
    RotateKeys {
        /// Purposes to rotate, comma-separated: database, recordings, vault,
        /// blobs, policy, search [default: all].
        #[arg(long, value_delimiter = ',')]
        purpose: Vec<String>,
    },
    /// Make a new policy-signing key (EPM): it signs the next published
    /// bundle; the previous key stays trusted by endpoints until the next
    /// rotation (also `jg epm signing-keys --rotate`).
    RotateSigningKey,
    /// Rotate the root key: re-seal every key-encryption key under a new
    /// root key (made and stored in keys/root.key; with JUMPGATE_ROOT_KEY
    /// set, given with --new-key-file). Works while the gateway runs.
    RotateRootKey {
        /// The new root key (mode 0600 or stricter: 32 raw bytes, 64 hex
        /// digits or base64); required when JUMPGATE_ROOT_KEY is set.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Show key versions per purpose, how many stored keys each still
    /// wraps, and the rotation sweep's progress.
    KeyStatus {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy the site's embedded SQLite store into an empty PostgreSQL
    /// database and check the copy (row counts, contents, audit chain).
    /// Stop the gateway first; then start it with --database URL. The
    /// source is left unchanged.
    MigrateStore {
        /// The empty target, postgres://USER@HOST:PORT/DB (the password in
        /// PGPASSWORD rather than the URL; ?sslmode=verify-full&sslrootcert=CA.pem for TLS).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// The analytics store reports read (see `[analytics]`).
    Analytics {
        #[command(subcommand)]
        command: AnalyticsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum AnalyticsCommand {
    /// On PostgreSQL: create the event table and two roles, one that may
    /// only INSERT into it (the gateway's logging pipeline) and one that
    /// may only SELECT (reports; hand its URL to an outside reporting tool
    /// too). Run again to reset their passwords and rights.
    Init {
        /// The analytics database as its owner (or a superuser),
        /// postgres://OWNER@HOST:PORT/DB (the password in PGPASSWORD).
        #[arg(long, value_name = "URL")]
        url: String,
        /// The write role's name.
        #[arg(long, default_value = "jumpgate_analytics_writer")]
        writer_role: String,
        /// File holding the write role's password.
        #[arg(long, value_name = "FILE")]
        writer_password_file: PathBuf,
        /// The read role's name.
        #[arg(long, default_value = "jumpgate_analytics_reader")]
        reader_role: String,
        /// File holding the read role's password.
        #[arg(long, value_name = "FILE")]
        reader_password_file: PathBuf,
    },
}

fn main() -> ExitCode {
    // A customer's download carries a trailer: run without arguments, it
    // is the support client (the customer only runs it).
    let cli = if endpoint::downloaded() {
        let me = std::env::args_os().next().unwrap_or_default();
        Cli::parse_from([me, "assist".into()])
    } else {
        Cli::parse()
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jumpgate: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server(args).await,
            Command::Admin(args) => admin(args).await.map(|()| ExitCode::SUCCESS),
            Command::Agent(args) => agent(args).await.map(|()| ExitCode::SUCCESS),
            Command::Assist(args) => assist(args).await.map(|()| ExitCode::SUCCESS),
            Command::Elevate(args) => elevate(args).await,
        }
    });
    // Every task (and any database connection one still held) is dropped
    // with the runtime; their SQLite connections are closed on sqlx's
    // worker threads, which must be done before `exit()` frees SQLCipher's
    // heap.
    drop(runtime);
    jumpgate_server::store::wait_for_sqlite_workers(std::time::Duration::from_secs(5));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jumpgate: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn server(args: ServerArgs) -> Result<ExitCode> {
    let flags = RawConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        redirect_listen: args.redirect_listen,
        ssh: config::RawSsh {
            listen: args.ssh_listen,
            certificate_lifetime: None,
        },
        listen_address_file: args.listen_address_file,
        hostname: args.hostname,
        tls: config::RawTls {
            cert: args.tls_cert,
            key: args.tls_key,
        },
        database: config::RawDatabase {
            url: args.database,
            max_connections: None,
        },
        support: config::RawSupport {
            portal_hostname: args.portal_hostname,
            portal_tls_cert: args.portal_tls_cert,
            portal_tls_key: args.portal_tls_key,
            assist_binary: args.assist_binary,
        },
        ..RawConfig::default()
    };
    // Validate everything before binding any port.
    let cfg = match Config::load(args.config.as_deref(), flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jumpgate: configuration error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let data_dir = cfg.data_dir.clone();
    let portal = cfg.portal_hostname().map(str::to_owned);
    // Admin commands of a PostgreSQL site name its database too (shown
    // without its password).
    let database = cfg.database.as_ref().map_or(String::new(), |db| {
        format!(
            " --database '{}'",
            jumpgate_server::store::redacted_url(&db.url)
        )
    });
    jumpgate_server::run(cfg, termination(), |s| {
        let port = if s.addr.port() == 443 {
            String::new()
        } else {
            format!(":{}", s.addr.port())
        };
        println!("Jumpgate gateway for https://{}{port}", s.hostname);
        println!("listening on https://{}", s.addr);
        if let Some(p) = &portal {
            println!("support portal at https://{p}{port}/");
        }
        if let Some(r) = s.redirect_addr {
            println!("redirecting http://{r} to https");
        }
        let what = if s.generated_certificate {
            "site CA"
        } else {
            "site certificate"
        };
        println!(
            "certificate fingerprint (SHA-256, {what}): {}",
            s.fingerprint
        );
        let dir = shell_quote(&data_dir);
        println!("next steps:");
        println!(
            "  1. create an administrator: jumpgate admin --data-dir {dir}{database} create-user NAME --role admin --password-file FILE"
        );
        println!(
            "  2. log in: jg --server https://{}{port} --ca-fingerprint {} login --user NAME",
            s.hostname, s.fingerprint
        );
        println!("  3. enroll an endpoint: jumpgate admin --data-dir {dir}{database} enroll-token");
    })
    .await
    .context("the gateway stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

fn shell_quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn read_password(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?;
    }
    // A trailing newline is the file's, not the password's.
    let pw = text.strip_suffix('\n').unwrap_or(&text);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        bail!("the password file is empty");
    }
    Ok(pw.to_owned())
}

async fn admin(args: AdminArgs) -> Result<()> {
    use jumpgate_server::admin;
    match &args.command {
        AdminCommand::Analytics {
            command:
                AnalyticsCommand::Init {
                    url,
                    writer_role,
                    writer_password_file,
                    reader_role,
                    reader_password_file,
                },
        } => {
            let wpw = read_password(writer_password_file)?;
            let rpw = read_password(reader_password_file)?;
            let r = jumpgate_server::analytics::init_postgres(
                url,
                writer_role,
                &wpw,
                reader_role,
                &rpw,
            )
            .await?;
            println!("analytics store ready on {}:", r.database);
            println!(
                "  {writer_role}: INSERT into analytics_events only (the gateway's logging pipeline)"
            );
            println!(
                "  {reader_role}: SELECT from analytics_events only (reports; an outside reporting tool may use it too)"
            );
            println!("configure the gateway:");
            println!("  [analytics]");
            println!("  backend = \"postgres\"");
            println!("  write_url = \"{}\"", r.write_url);
            println!(
                "  write_password_file = \"{}\"",
                writer_password_file.display()
            );
            println!("  read_url = \"{}\"", r.read_url);
            println!(
                "  read_password_file = \"{}\"",
                reader_password_file.display()
            );
            return Ok(());
        }
        AdminCommand::Fingerprint { ssh, ssh_user_ca } => {
            if *ssh_user_ca {
                println!("{}", admin::ssh_user_ca_fingerprint(&args.data_dir)?);
            } else if *ssh {
                println!("{}", admin::ssh_fingerprint(&args.data_dir)?);
            } else {
                println!("{}", admin::fingerprint(&args.data_dir)?);
            }
            return Ok(());
        }
        AdminCommand::RotateKeys { purpose } => {
            match admin::rotate_keys(&args.data_dir, args.database.as_deref(), purpose).await? {
                admin::Rotated::ByGateway(v) => println!(
                    "rotated {}; the gateway is re-wrapping stored keys (jumpgate admin key-status)",
                    v.join(" ")
                ),
                admin::Rotated::Offline {
                    versions,
                    rewrapped,
                } => println!(
                    "rotated {} (gateway not running); re-wrapped {rewrapped} stored keys",
                    versions.join(" ")
                ),
            }
            return Ok(());
        }
        AdminCommand::RotateSigningKey => {
            let id =
                admin::epm_rotate_signing_key(&args.data_dir, args.database.as_deref()).await?;
            println!("new policy-signing key {id}; it signs the next bundle (jg epm publish)");
            return Ok(());
        }
        AdminCommand::RotateRootKey { new_key_file } => {
            let r = admin::rotate_root_key(
                &args.data_dir,
                args.database.as_deref(),
                new_key_file.as_deref(),
            )
            .await?;
            let whom = if r.by_gateway {
                "by the running gateway"
            } else {
                "gateway not running"
            };
            println!(
                "root key rotated (generation {}, {whom}); every key-encryption key is re-sealed under it",
                r.generation
            );
            if r.from_env {
                println!(
                    "set {} to the new key before the next start: the old value no longer opens the keyring",
                    jumpgate_server::keys::ROOT_KEY_ENV
                );
            } else {
                println!(
                    "the new key is in {}: replace your backup of the old one",
                    args.data_dir.join("keys").join("root.key").display()
                );
            }
            return Ok(());
        }
        AdminCommand::EndpointFacts { name } => {
            let f = admin::endpoint_facts(&args.data_dir, name).await?;
            let how = if f.changed {
                "changed; stored"
            } else {
                "unchanged"
            };
            println!("endpoint {name} ({how})");
            println!("  hostname       {}", f.hostname);
            println!("  os             {}", f.os);
            println!("  arch           {}", f.arch);
            println!("  agent version  {}", f.agent_version);
            return Ok(());
        }
        AdminCommand::MigrateStore { to } => {
            if args.database.is_some() {
                bail!(
                    "migrate-store copies the site's embedded SQLite store: give the PostgreSQL target with --to, not --database"
                );
            }
            let m = admin::migrate_store(&args.data_dir, to).await?;
            println!("copied {} to {}:", args.data_dir.display(), m.target);
            let width = m.tables.iter().map(|t| t.table.len()).max().unwrap_or(5);
            for t in &m.tables {
                println!("  {:<width$}  {:>9} rows", t.table, t.rows);
            }
            let total: u64 = m.tables.iter().map(|t| t.rows).sum();
            println!(
                "  {:<width$}  {total:>9} rows in {} tables (counts and contents checked)",
                "total",
                m.tables.len()
            );
            println!(
                "audit log intact on the target: {} entries, head {}",
                m.audit.entries,
                if m.audit.head.is_empty() {
                    "(empty)"
                } else {
                    m.audit.head.as_str()
                }
            );
            println!(
                "next: jumpgate server --data-dir {} --database URL (or [database] url in the config file); the SQLite file is no longer used",
                args.data_dir.display()
            );
            return Ok(());
        }
        AdminCommand::KeyStatus { json } => {
            let status = admin::key_status(&args.data_dir, args.database.as_deref()).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{status}");
            }
            return Ok(());
        }
        _ => {}
    }
    let db = admin::open(&args.data_dir, args.database.as_deref()).await?;
    match args.command {
        AdminCommand::CreateUser {
            name,
            role,
            groups,
            password_file,
        } => {
            let pw = read_password(&password_file)?;
            admin::create_user(&db, &name, &role, &groups, &pw).await?;
            println!("created user {name} ({role})");
        }
        AdminCommand::EnrollToken { group, ttl, count } => {
            let (tokens, expires) = admin::enroll_tokens(&db, &group, ttl, count).await?;
            let what = if count == 1 {
                "one-time enrollment token".to_owned()
            } else {
                format!("{count} one-time enrollment tokens")
            };
            // Complete on its own: stdout (the tokens) is often captured.
            let dest = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                "below"
            } else {
                "on standard output"
            };
            eprintln!("{what} for group `{group}`, valid until {expires}, {dest}");
            println!("{}", tokens.join("\n"));
        }
        AdminCommand::RevokeEndpoint { name } => {
            let r = admin::revoke_endpoint(&args.data_dir, &db, &name).await?;
            let how = match r {
                admin::Revoked::Disconnected => "its live connection was closed",
                admin::Revoked::WasOffline => "it was not connected",
                admin::Revoked::GatewayNotRunning => {
                    "the gateway is not running; the agent will be refused when it connects"
                }
            };
            println!("revoked endpoint {name}: {how}");
        }
        AdminCommand::Fingerprint { .. }
        | AdminCommand::EndpointFacts { .. }
        | AdminCommand::RotateKeys { .. }
        | AdminCommand::RotateSigningKey
        | AdminCommand::RotateRootKey { .. }
        | AdminCommand::KeyStatus { .. }
        | AdminCommand::MigrateStore { .. }
        | AdminCommand::Analytics { .. } => {}
        AdminCommand::VerifyAudit => match admin::verify_audit(&args.data_dir, &db).await? {
            Ok(intact) => println!(
                "audit log intact: {} entries, head {}",
                intact.entries,
                if intact.head.is_empty() {
                    "(empty)"
                } else {
                    intact.head.as_str()
                }
            ),
            Err(broken) => {
                db.close().await;
                bail!("{broken}");
            }
        },
    }
    db.close().await;
    Ok(())
}
