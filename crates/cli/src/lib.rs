//! `jg`, the technician's client: log in to a gateway, list endpoints and
//! sessions, read the audit log, open shells, run commands, copy files and forward ports, take
//! screenshots of desktops, always through the gateway; manage your own password and MFA; and, for
//! administrators, users, roles, groups, endpoints, API clients and settings;
//! and secrets in the vault.

// Stdout only through `out!`/`outln!`/`out::bytes` (see `out`).
#![cfg_attr(not(test), deny(clippy::print_stdout))]

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use jumpgate_net::dial::{HttpProxy, ServerUrl};
use jumpgate_net::tls::Fingerprint;

#[macro_use]
mod out;

mod args;
#[cfg(test)]
mod cli_tests;
mod commands;
mod desktop_export;
mod errors;
mod input;
mod session_io;
mod state;
mod stdin;
mod table;
mod term;
mod transfer;
mod webm;

use commands::Ctx;

#[derive(Debug, Parser)]
#[command(name = "jg", version, about = "Jumpgate technician client")]
struct Cli {
    /// Gateway URL, https://HOST:PORT (default: the one saved by `jg login`).
    #[arg(long, global = true, value_name = "URL")]
    server: Option<ServerUrl>,
    /// SHA-256 fingerprint of the gateway's CA certificate to pin (default:
    /// the one saved by `jg login`, else the system's root certificates).
    #[arg(long, global = true, value_name = "SHA256")]
    ca_fingerprint: Option<Fingerprint>,
    /// HTTP proxy to reach the gateway through (CONNECT), http://HOST:PORT.
    #[arg(long, global = true, value_name = "URL")]
    proxy: Option<HttpProxy>,
    #[command(subcommand)]
    command: Command,
}

/// `jg endpoints …` subcommands.
#[derive(Debug, clap::Subcommand)]
enum EndpointsCommand {
    /// Mark endpoint NAME as a jump point (`on`) or not (`off`): only jump
    /// points reach agentless targets, and their agent must agree too
    /// (`jumpgate agent --jump-point`). Audited.
    JumpPoint {
        /// The endpoint's name.
        name: String,
        /// `on` to mark it, `off` to unmark it.
        #[arg(value_enum)]
        state: OnOff,
        /// With `on`: a destination it may reach, repeated (an address
        /// range 10.0.0.0/8, a host db.internal or *.corp.example, each
        /// with an optional :PORT). Replaces its list; without any it may
        /// reach any destination.
        #[arg(long, value_name = "DEST")]
        allow: Vec<String>,
    },
    /// List the jump points and the destinations each may reach.
    JumpPoints {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}
#[derive(Debug, Subcommand)]
enum Command {
    /// Log in and save the session in $JG_HOME/session.json.
    Login {
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Read the password from the first line of FILE (`-`: stdin)
        /// instead of prompting.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// TOTP or recovery code, for accounts with MFA (default: asked
        /// for when the gateway wants one and stdin is a terminal).
        #[arg(long, value_name = "CODE")]
        totp: Option<args::Code>,
    },
    /// Show who you are logged in as: role, groups, permissions, MFA.
    Whoami {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change your password (asked for without echo unless given in files);
    /// you must log in again afterwards.
    Passwd {
        /// Read the new password from the first line of FILE (`-`: stdin).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Read the current password from the first line of FILE (`-`: stdin).
        #[arg(long, value_name = "FILE")]
        current_password_file: Option<PathBuf>,
    },
    /// Your second factor (TOTP) and recovery codes.
    Mfa {
        #[command(subcommand)]
        command: commands::mfa::MfaCommand,
    },
    /// Administer users, roles, groups, endpoints, API clients and settings.
    Admin {
        #[command(subcommand)]
        command: commands::admin::AdminCommand,
    },
    /// End the session on the gateway and forget it locally.
    Logout,
    /// List the endpoints you can reach (and, in the table, the agentless
    /// targets, marked `target`: `jg targets list --json` gives theirs);
    /// `jg endpoints jump-point NAME on|off` marks a jump point.
    #[command(args_conflicts_with_subcommands = true)]
    Endpoints {
        #[command(subcommand)]
        command: Option<EndpointsCommand>,
        /// Only endpoints whose name contains TEXT (any case).
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        /// Only endpoints of GROUP.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Only endpoints whose agent is connected.
        #[arg(long, conflicts_with = "offline")]
        online: bool,
        /// Only endpoints whose agent is not connected.
        #[arg(long)]
        offline: bool,
        /// At most N endpoints (default: all).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Watch a live terminal session (shell or exec), read-only, from its
    /// recent output on, until it ends (needs monitor-sessions on its
    /// endpoint's group; the watch is audited). Desktop sessions are
    /// watched in the web console; `--screenshot` takes one picture of one.
    Watch {
        /// The session's id (`jg sessions --active`).
        session: String,
        /// A desktop session: write its screen to FILE as a PNG (taken once
        /// the screen has been still for a second), then stop watching.
        #[arg(long, value_name = "FILE")]
        screenshot: Option<PathBuf>,
        /// With --screenshot: give up after SECS. A screen that never stops
        /// changing is written as it is then, with a warning.
        #[arg(long, value_name = "SECS", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: u64,
    },
    /// List session events, newest first (needs the view-audit permission;
    /// only sessions on endpoints of your groups).
    Sessions {
        /// Only sessions on ENDPOINT.
        #[arg(long, value_name = "ENDPOINT")]
        endpoint: Option<String>,
        /// Only sessions of user NAME.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only sessions of one kind.
        #[arg(long, value_parser = ["shell", "exec", "upload", "download", "forward", "desktop"])]
        kind: Option<String>,
        /// Only sessions started from TIME on: RFC 3339 or a duration ago (2h, 7d).
        #[arg(long, value_name = "TIME", value_parser = args::parse_since)]
        since: Option<String>,
        /// Only sessions started before TIME: RFC 3339 or a duration ago.
        #[arg(long, value_name = "TIME", value_parser = args::parse_since)]
        until: Option<String>,
        /// Only sessions still running.
        #[arg(long, conflicts_with = "ended")]
        active: bool,
        /// Only sessions that ended.
        #[arg(long)]
        ended: bool,
        /// The next page: sessions after session ID (the last row shown).
        #[arg(long, value_name = "ID")]
        before: Option<String>,
        /// At most N sessions, 1 to 1000 (default 1000).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: Option<u32>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the audit log, newest first (needs the view-audit permission).
    Audit {
        /// Only events from TIME on: RFC 3339 (2026-11-23T10:00:00Z) or a
        /// duration ago (30m, 2h, 7d).
        #[arg(long, value_name = "TIME", value_parser = args::parse_since)]
        since: Option<String>,
        /// Only events whose actor is NAME.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// At most N events, 1 to 10000 (default: the gateway's, 1000).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: Option<u32>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List session recordings, newest first, or export one (needs the
    /// view-audit permission).
    #[command(args_conflicts_with_subcommands = true)]
    Recordings {
        #[command(subcommand)]
        command: Option<RecordingsCommand>,
        /// Only recordings of sessions on ENDPOINT.
        #[arg(long, value_name = "ENDPOINT")]
        endpoint: Option<String>,
        /// Only recordings of sessions by NAME.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only recordings started from TIME on: RFC 3339 or a duration ago (2h, 7d).
        #[arg(long, value_name = "TIME", value_parser = args::parse_since)]
        since: Option<String>,
        /// At most N recordings, 1 to 1000 (default 100).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: Option<u32>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Play a session recording in this terminal (needs view-audit).
    Play {
        /// The recording's ID (see `jg recordings`).
        id: String,
        /// Playback speed: 2 plays twice as fast, 0.5 at half speed.
        #[arg(long, default_value_t = 1.0, value_parser = args::parse_speed)]
        speed: f64,
        /// Shorten pauses longer than SECS to SECS.
        #[arg(long, value_name = "SECS", value_parser = args::parse_idle_limit)]
        idle_limit: Option<f64>,
    },
    /// Interactive shell on ENDPOINT, or run `-- CMD ARGS...` there.
    Shell {
        /// The endpoint's name (see `jg endpoints`).
        endpoint: String,
        /// With a command: send the local stdin even when it is a terminal.
        #[arg(short = 'i', long = "stdin")]
        stdin: bool,
        /// Command to run instead of an interactive shell.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Attended support: session keys for customers, support sessions.
    Support {
        #[command(subcommand)]
        command: commands::support::SupportCommand,
    },
    /// Endpoint privilege management: the policy (show, export, import,
    /// validate, publish), what-if tests, status, events, elevation
    /// requests (approve, deny, watch) and offline codes.
    Epm {
        #[command(subcommand)]
        command: commands::epm::EpmCommand,
    },
    /// Reports of the analytics store (needs reports-read): sessions per
    /// technician, endpoint and day, support wait times and ratings,
    /// elevation decisions, blocked programs, failed logins. Without NAME,
    /// the list.
    Report {
        /// The report (see `jg report`).
        name: Option<String>,
        /// From TIME on: RFC 3339 or a duration ago (2h, 7d).
        #[arg(long, value_name = "TIME", value_parser = args::parse_since)]
        since: Option<String>,
        /// Before TIME: RFC 3339 or a duration ago.
        #[arg(long, value_name = "TIME", value_parser = args::parse_since)]
        until: Option<String>,
        /// Only events of endpoint group G.
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// Only events by user (technician, account) U.
        #[arg(long, value_name = "U")]
        user: Option<String>,
        /// Only events about endpoint E.
        #[arg(long, value_name = "E")]
        endpoint: Option<String>,
        /// table (default), csv or json.
        #[arg(long, value_enum, default_value = "table")]
        format: commands::report::Format,
    },
    /// Access requests with approval: request access to a group or
    /// endpoint for a window, list, show, approve, deny, cancel.
    Access {
        #[command(subcommand)]
        command: commands::access::AccessCommand,
    },
    /// Agentless targets reached through jump points: add, list, show,
    /// remove.
    Targets {
        #[command(subcommand)]
        command: commands::targets::TargetsCommand,
    },
    /// Your SSH public keys for the gateway's SSH front door: add FILE|-,
    /// list, remove ID.
    SshKeys {
        #[command(subcommand)]
        command: commands::ssh_keys::SshKeysCommand,
    },
    /// Get a new short-lived SSH certificate for your login (`jg login`
    /// gets one too), for plain `ssh` through the gateway's front door;
    /// optionally one that permits less (the front door honours it).
    SshCert(commands::ssh_cert::SshCertArgs),
    /// Put a block at the top of ~/.ssh/config so that plain `ssh ENDPOINT`
    /// goes through the gateway's SSH front door (one step as
    /// `YOU+ENDPOINT`; with a user name typed, `ssh root@ENDPOINT`, through
    /// ProxyJump), with the gateway's host key in
    /// ~/.ssh/jumpgate_known_hosts.
    SshConfig {
        /// Where the ssh files are [default: ~/.ssh].
        #[arg(long, value_name = "DIR")]
        ssh_dir: Option<std::path::PathBuf>,
        /// Print the block instead of writing it.
        #[arg(long)]
        print: bool,
    },
    /// Secrets in the gateway's vault: put, get, list, versions, delete,
    /// recover, purge (values from stdin or a file, never the command line).
    Vault {
        #[command(subcommand)]
        command: commands::vault::VaultCommand,
    },
    /// Copy a file to or from an endpoint; the remote side is ENDPOINT:/path.
    Cp {
        /// What to copy: a local file, or ENDPOINT:/remote/path (absolute) to
        /// download.
        #[arg(value_name = "SRC")]
        src: String,
        /// Where to: ENDPOINT:/remote/path (absolute) to upload, or a local
        /// path to download to.
        #[arg(value_name = "DST")]
        dst: String,
    },
    /// Forward a local port to HOST:PORT as seen from ENDPOINT.
    Forward {
        /// The endpoint's name (see `jg endpoints`); TARGET_HOST is resolved there.
        endpoint: String,
        /// [BIND:]LOCAL_PORT:TARGET_HOST:TARGET_PORT (LOCAL_PORT 0: any free port).
        #[arg(value_name = "SPEC")]
        spec: commands::forward::Spec,
    },
    /// A picture of ENDPOINT's screen through a view-only desktop session
    /// (needs desktop-view; the person at the endpoint is asked as the
    /// endpoint group's consent mode says).
    #[command(after_help = DESKTOP_HELP)]
    Desktop {
        /// The endpoint's name (see `jg endpoints`).
        endpoint: String,
        /// Write the screen to FILE as a PNG, pixel-exact: taken once the
        /// screen has been still for a second.
        #[arg(long, value_name = "FILE", required = true)]
        screenshot: PathBuf,
        /// Only monitor N (the endpoint's RandR monitor number; default:
        /// all monitors, the whole screen).
        #[arg(long, value_name = "N")]
        monitor: Option<u32>,
        /// Give up after SECS in all, waiting for the endpoint's consent
        /// included. A screen that never stops changing is written as it
        /// is then, with a warning.
        #[arg(long, value_name = "SECS", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: u64,
    },
}

const DESKTOP_HELP: &str = "\
Examples:
  jg desktop web-01 --screenshot web-01.png
  jg desktop kiosk-3 --screenshot left.png --monitor 0 --timeout 20

Watching and controlling a desktop is done in the web console; recordings of
desktop sessions export as video with `jg recordings export ID -o FILE.webm`.
Exit status 1 when the session is refused (no desktop-view permission, the
person at the endpoint denied it or did not answer, no X display there).";

#[derive(Debug, clap::Subcommand)]
enum RecordingsCommand {
    /// Write a recording for external players: a terminal session as
    /// plain asciicast v2 (`asciinema play FILE`), a desktop session as a
    /// WebM video (VP9; needs -o).
    Export {
        /// The recording's ID (see `jg recordings`).
        id: String,
        /// Write to FILE (whole or not at all) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Desktop recordings: frames per second of the video (while the
        /// screen is still, one frame a second is written instead).
        #[arg(long, value_name = "N", default_value_t = desktop_export::DEFAULT_FPS,
              value_parser = clap::value_parser!(u32).range(1..=30))]
        fps: u32,
    },
    /// Find the terminal sessions where TEXT was printed or typed: whole
    /// words, case and spacing ignored (`grep -iwF`), with the moment of
    /// each match (`jg play ID`, or the console's player at that time).
    Search {
        /// The text, e.g. "rm -rf /var/lib" (quote it).
        text: String,
        /// At most N recordings, 1 to 1000 (default 20).
        #[arg(long, value_name = "N", default_value_t = 20,
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print the API's JSON (the recordings and their matches).
        #[arg(long)]
        json: bool,
    },
}

/// Runs `jg` with the process's arguments and exits. The `jg` binary is
/// this function (see `crates/jumpgate/src/bin/jg.rs`).
pub fn main() -> ! {
    term::install_panic_hook();
    let cli = Cli::parse();
    init_tracing();
    let is_login = matches!(cli.command, Command::Login { .. });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jg: error: cannot start the runtime: {e}");
            std::process::exit(errors::EXIT_ERROR);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let (line, code) = errors::report(&e, is_login);
            if !line.is_empty() {
                eprintln!("{line}");
            }
            code
        }
    };
    // `exit` rather than a runtime shutdown: the stdin reader thread may be
    // stuck in a read that nothing can cancel.
    std::process::exit(code);
}

/// Logs go to stderr, filtered by `JG_LOG` (e.g. `JG_LOG=debug`); quiet by default.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour_on_stderr())
        .try_init();
}

/// Colour only for a terminal, and never with `NO_COLOR` set (no-color.org).
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let ctx = Ctx {
        server: cli.server,
        ca_fingerprint: cli.ca_fingerprint,
        proxy: cli.proxy,
        state_dir: state::dir(std::env::var_os("JG_HOME"), std::env::var_os("HOME"))?,
    };
    match cli.command {
        Command::Login {
            user,
            password_file,
            totp,
        } => commands::login::login(&ctx, &user, password_file.as_deref(), totp).await?,
        Command::Whoami { json } => commands::whoami::run(&ctx.authed_client()?, json).await?,
        Command::Passwd {
            password_file,
            current_password_file,
        } => {
            commands::passwd::run(
                &ctx,
                password_file.as_deref(),
                current_password_file.as_deref(),
            )
            .await?;
        }
        Command::Mfa { command } => commands::mfa::run(&ctx.authed_client()?, command).await?,
        Command::Admin { command } => commands::admin::run(&ctx, command).await?,
        Command::Logout => commands::login::logout(&ctx).await?,
        Command::Endpoints {
            command: Some(EndpointsCommand::JumpPoint { name, state, allow }),
            ..
        } => {
            let allow = (!allow.is_empty()).then_some(allow);
            commands::targets::jump_point(&ctx.authed_client()?, &name, state == OnOff::On, allow)
                .await?;
        }
        Command::Endpoints {
            command: Some(EndpointsCommand::JumpPoints { json }),
            ..
        } => {
            commands::targets::jump_points(&ctx.authed_client()?, json).await?;
        }
        Command::Targets { command } => {
            commands::targets::run(&ctx.authed_client()?, command).await?;
        }
        Command::Access { command } => {
            commands::access::run(&ctx.authed_client()?, command).await?;
        }
        Command::Endpoints {
            command: None,
            name,
            group,
            online,
            offline,
            limit,
            json,
        } => {
            let o = commands::endpoints::Options {
                name,
                group,
                online: (online || offline).then_some(online),
                limit,
                json,
            };
            commands::endpoints::run(&ctx.authed_client()?, &o).await?
        }
        Command::Watch {
            session,
            screenshot: None,
            ..
        } => {
            return commands::sessions::watch(&ctx.authed_client()?, &session).await;
        }
        Command::Watch {
            session,
            screenshot: Some(file),
            timeout,
        } => {
            let timeout = std::time::Duration::from_secs(timeout);
            commands::desktop::watch_screenshot(&ctx.authed_client()?, &session, &file, timeout)
                .await?;
        }
        Command::Sessions {
            endpoint,
            user,
            kind,
            since,
            until,
            active,
            ended,
            before,
            limit,
            json,
        } => {
            let f = jumpgate_client::SessionFilter {
                endpoint: endpoint.as_deref(),
                user: user.as_deref(),
                kind: kind.as_deref(),
                since: since.as_deref(),
                until: until.as_deref(),
                active: (active || ended).then_some(active),
                before: before.as_deref(),
                limit,
            };
            commands::sessions::run(&ctx.authed_client()?, &f, json).await?;
        }
        Command::Audit {
            since,
            user,
            limit,
            json,
        } => {
            let client = ctx.authed_client()?;
            commands::audit::run(&client, since.as_deref(), user.as_deref(), limit, json).await?;
        }
        Command::Recordings {
            command: Some(RecordingsCommand::Export { id, output, fps }),
            ..
        } => {
            commands::recordings::export(&ctx.authed_client()?, &id, output.as_deref(), fps)
                .await?;
        }
        Command::Recordings {
            command: Some(RecordingsCommand::Search { text, limit, json }),
            ..
        } => {
            commands::recordings::search(&ctx.authed_client()?, &text, limit, json).await?;
        }
        Command::Recordings {
            command: None,
            endpoint,
            user,
            since,
            limit,
            json,
        } => {
            let f = jumpgate_client::RecordingFilter {
                endpoint: endpoint.as_deref(),
                user: user.as_deref(),
                since: since.as_deref(),
                limit,
            };
            commands::recordings::list(&ctx.authed_client()?, &f, json).await?;
        }
        Command::Play {
            id,
            speed,
            idle_limit,
        } => commands::recordings::play(&ctx.authed_client()?, &id, speed, idle_limit).await?,
        Command::Shell {
            endpoint,
            stdin,
            command,
        } => {
            return commands::shell::run(
                &ctx.authed_client()?,
                commands::shell::Target::Endpoint(&endpoint),
                command,
                stdin,
            )
            .await;
        }
        Command::Vault { command } => {
            commands::vault::run(&ctx.authed_client()?, command).await?;
        }
        Command::SshConfig { ssh_dir, print } => {
            commands::ssh_config::run(&ctx, &ctx.authed_client()?, ssh_dir, print).await?;
        }
        Command::SshCert(args) => {
            commands::ssh_cert::run(&ctx.authed_client()?, &ctx.state_dir, &args).await?;
        }
        Command::SshKeys { command } => {
            commands::ssh_keys::run(&ctx.authed_client()?, command).await?;
        }
        Command::Epm { command } => {
            commands::epm::run(&ctx.authed_client()?, command).await?;
        }
        Command::Report {
            name,
            since,
            until,
            group,
            user,
            endpoint,
            format,
        } => {
            let a = commands::report::Args {
                name,
                since,
                until,
                group,
                user,
                endpoint,
                format,
            };
            commands::report::run(&ctx.authed_client()?, a).await?;
        }
        Command::Support { command } => {
            return commands::support::run(&ctx.authed_client()?, command).await;
        }
        Command::Cp { src, dst } => commands::cp::run(&ctx, &src, &dst).await?,
        Command::Forward { endpoint, spec } => {
            commands::forward::run(ctx.authed_client()?, &endpoint, &spec).await?;
        }
        Command::Desktop {
            endpoint,
            screenshot,
            monitor,
            timeout,
        } => {
            let o = commands::desktop::Options {
                endpoint: &endpoint,
                screenshot: &screenshot,
                monitor,
                timeout: std::time::Duration::from_secs(timeout),
            };
            commands::desktop::screenshot(&ctx.authed_client()?, &o).await?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn shell_splits_the_remote_command_after_double_dash() {
        let cli =
            Cli::try_parse_from(["jg", "shell", "web-01", "--", "ls", "-la", "--server"]).unwrap();
        let Command::Shell {
            endpoint,
            stdin,
            command,
        } = cli.command
        else {
            panic!("not shell");
        };
        assert_eq!(endpoint, "web-01");
        assert!(!stdin);
        assert_eq!(command, ["ls", "-la", "--server"]);
    }

    #[test]
    fn global_options_parse_before_the_subcommand() {
        let fp = "ab".repeat(32);
        let cli = Cli::try_parse_from([
            "jg",
            "--server",
            "https://gw.example:8443",
            "--ca-fingerprint",
            &fp,
            "login",
            "--user",
            "alice",
            "--password-file",
            "-",
        ])
        .unwrap();
        assert_eq!(cli.server.unwrap().to_string(), "https://gw.example:8443");
        assert_eq!(cli.ca_fingerprint.unwrap().to_string(), fp);
        assert!(Cli::try_parse_from(["jg", "--server", "http://plain", "endpoints"]).is_err());
        assert!(Cli::try_parse_from(["jg", "forward", "h", "nope"]).is_err());
    }
}
