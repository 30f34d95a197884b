//! What the endpoint side of `jumpgate` runs, shared by the full binary
//! and the lean customer client `jumpgate-assist` (which has no gateway in
//! it): the agent (`agent`, with `agent install` and the consent window's
//! child), the attended-support client (`assist`), and their logging and
//! signal handling.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

/// Whether this executable is a customer's download run without arguments
/// (a trailer at its end): it is then the support client.
pub(crate) fn downloaded() -> bool {
    std::env::args_os().len() == 1
        && matches!(
            jumpgate_agent::assist::trailer::read(Path::new("/proc/self/exe")),
            Ok(Some(_))
        )
}

#[derive(Args, Debug)]
pub(crate) struct AssistArgs {
    #[command(subcommand)]
    command: Option<AssistCommand>,
    /// Development: the site to dial instead of the download's (https://host[:port]).
    #[arg(long, requires_all = ["ca_fingerprint", "ticket"])]
    server: Option<String>,
    /// Development: the site CA's SHA-256 fingerprint to pin.
    #[arg(long, requires_all = ["server", "ticket"])]
    ca_fingerprint: Option<String>,
    /// Development: the assist ticket.
    #[arg(long, env = "JUMPGATE_ASSIST_TICKET", hide_env_values = true, requires_all = ["server", "ca_fingerprint"])]
    ticket: Option<String>,
    /// Keep the downloaded file when the session ends (it removes itself
    /// otherwise).
    #[arg(long)]
    keep: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum AssistCommand {
    /// The support window: a child process the client starts itself (JSON
    /// lines on stdin/stdout).
    #[command(hide = true)]
    Ui,
}

#[derive(Args, Debug)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub(crate) struct AgentArgs {
    #[command(subcommand)]
    command: Option<AgentCommand>,
    /// The gateway, e.g. https://support.example.com (remembered after enrollment).
    #[arg(long, env = "JUMPGATE_SERVER")]
    server: Option<String>,
    /// SHA-256 fingerprint printed by `jumpgate server` (remembered after enrollment).
    #[arg(long, env = "JUMPGATE_CA_FINGERPRINT")]
    ca_fingerprint: Option<String>,
    /// One-time enrollment token (first run only; or, with --reenroll, a
    /// re-enrollment token). Prefer --enroll-token-file or the environment
    /// variable: a command line is visible to every user of the machine (`ps`).
    #[arg(long, env = "JUMPGATE_ENROLL_TOKEN", hide_env_values = true)]
    enroll_token: Option<String>,
    /// File holding the one-time enrollment token (`-` for standard input).
    #[arg(long, conflicts_with = "enroll_token")]
    enroll_token_file: Option<PathBuf>,
    /// Give this already enrolled endpoint a new key, with the token from
    /// `jg admin endpoints reenroll NAME` (in --enroll-token-file,
    /// --enroll-token or JUMPGATE_ENROLL_TOKEN). The old key, and every copy
    /// of it, stops working.
    #[arg(long)]
    reenroll: bool,
    /// Where the agent keeps its identity and key.
    #[arg(long, env = "JUMPGATE_STATE_DIR", required = true)]
    state_dir: Option<PathBuf>,
    /// Endpoint name to enroll as [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// HTTP proxy to reach the gateway through (CONNECT), e.g. http://proxy:3128.
    #[arg(long, env = "JUMPGATE_PROXY")]
    proxy: Option<String>,
    /// Answer the gateway's `echo` system topic (tests of the system channel).
    #[arg(long, hide = true)]
    serve_echo_topic: bool,
    /// Agree to be a jump point: reach agentless targets (SSH and TCP
    /// hosts in this network) for the gateway. The gateway's administrator
    /// must mark this endpoint too (`jg endpoints jump-point NAME on`);
    /// without this flag target sessions are refused here.
    #[arg(long, env = "JUMPGATE_JUMP_POINT")]
    jump_point: bool,
    /// As a jump point, reach only these destinations, whatever the
    /// gateway allows (defence in depth): an address range 10.0.0.0/8, a
    /// host db.internal or *.corp.example, each with an optional :PORT;
    /// repeated or comma-separated. Names are resolved here and only the
    /// allowed addresses connected to. [default: any]
    #[arg(
        long,
        env = "JUMPGATE_JUMP_POINT_ALLOW",
        value_name = "DEST",
        value_delimiter = ',',
        requires = "jump_point"
    )]
    jump_point_allow: Vec<String>,
    /// The X display desktop sessions share, e.g. :0 [default: found from
    /// the logged-in session].
    #[arg(long, env = "JUMPGATE_DISPLAY", value_parser = parse_display)]
    display: Option<String>,
    /// The Xauthority file (cookie) of that display.
    #[arg(long, env = "JUMPGATE_XAUTHORITY", value_name = "PATH")]
    xauthority: Option<PathBuf>,
    /// The elevation socket `jumpgate elevate` talks to (served only when
    /// the agent runs as root).
    #[arg(
        long,
        env = "JUMPGATE_ELEVATE_SOCKET",
        value_name = "PATH",
        default_value = jumpgate_agent::epm::DEFAULT_SOCKET
    )]
    elevate_socket: PathBuf,
    /// Serve no elevation socket (endpoint privilege management off on
    /// this machine; policies are still received).
    #[arg(long)]
    no_elevate: bool,
    /// A private CA (PEM) trusted for policy downloads from blob storage,
    /// besides the system's roots.
    #[arg(long, value_name = "FILE")]
    blob_ca: Option<PathBuf>,
    /// The root dpkg installs assigned packages under (`dpkg --root`):
    /// `/` on a real endpoint; a private directory keeps this machine's
    /// packages untouched (tests, benchmarks).
    #[arg(long, value_name = "DIR", default_value = "/")]
    package_root: PathBuf,
    /// How often dpkg's status file is checked for changes (the inventory
    /// is reported when it changed).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    package_poll: std::time::Duration,
}

#[derive(Args, Debug)]
pub(crate) struct ElevateArgs {
    /// Why you need it (asked for when the rule wants one and this is
    /// not given).
    #[arg(long)]
    reason: Option<String>,
    /// A root shell for this long (e.g. 15m), when a policy's admin-session
    /// rule allows it (it may shorten it).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "command")]
    admin_session: Option<std::time::Duration>,
    /// The agent's elevation socket.
    #[arg(
        long,
        env = "JUMPGATE_ELEVATE_SOCKET",
        value_name = "PATH",
        default_value = jumpgate_agent::epm::DEFAULT_SOCKET
    )]
    socket: PathBuf,
    /// The command and its arguments (after `--`).
    #[arg(
        last = true,
        value_name = "CMD",
        required_unless_present = "admin_session"
    )]
    command: Vec<String>,
}

/// `jumpgate elevate`: the command's exit code.
// `jumpgate-assist` includes this file and has no `elevate` command.
#[allow(dead_code)]
pub(crate) async fn elevate(args: ElevateArgs) -> Result<std::process::ExitCode> {
    let admin_minutes = args.admin_session.map(|d| {
        u32::try_from(d.as_secs().div_ceil(60))
            .unwrap_or(u32::MAX)
            .max(1)
    });
    let code = jumpgate_agent::epm::client::elevate(jumpgate_agent::epm::client::ElevateRequest {
        socket: args.socket,
        reason: args.reason,
        admin_minutes,
        argv: args.command,
    })
    .await?;
    Ok(std::process::ExitCode::from(
        u8::try_from(code).unwrap_or(255),
    ))
}

#[derive(Subcommand, Debug)]
pub(crate) enum AgentCommand {
    /// The consent prompt and session indicator on the user's display: a
    /// child process the agent starts itself (JSON lines on stdin/stdout).
    #[command(hide = true)]
    ConsentUi,
    /// Install this program as the endpoint agent of this machine, for
    /// good: copy it to /usr/local/lib/jumpgate/jumpgate, enroll it (state
    /// in /var/lib/jumpgate-agent) and run it as the systemd service
    /// jumpgate-agent. Needs root.
    Install(InstallArgs),
}

#[derive(Args, Debug)]
pub(crate) struct InstallArgs {
    /// The gateway, e.g. https://support.example.com.
    #[arg(long, env = "JUMPGATE_SERVER")]
    server: String,
    /// SHA-256 fingerprint of the site's CA.
    #[arg(long, env = "JUMPGATE_CA_FINGERPRINT")]
    ca_fingerprint: String,
    /// One-time enrollment token; prefer --enroll-token-file (a command
    /// line is visible to every user of the machine).
    #[arg(
        long,
        env = "JUMPGATE_ENROLL_TOKEN",
        hide_env_values = true,
        required_unless_present = "enroll_token_file"
    )]
    enroll_token: Option<String>,
    /// File holding the one-time enrollment token (`-` for standard input).
    #[arg(long, conflicts_with = "enroll_token")]
    enroll_token_file: Option<PathBuf>,
    /// Endpoint name to enroll as [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// Tests: install under this directory instead of `/`.
    #[arg(long, hide = true)]
    root: Option<PathBuf>,
    /// Tests: run no systemctl (the unit file is still written).
    #[arg(long, hide = true)]
    no_systemd: bool,
}

/// `jumpgate agent install` (see `jumpgate_agent::install`).
pub(crate) async fn agent_install(args: InstallArgs) -> Result<()> {
    let token = match args.enroll_token_file {
        Some(path) => read_token(&path)?,
        None => args.enroll_token.context("--enroll-token is required")?,
    };
    let mut opts = jumpgate_agent::install::InstallOptions::new(
        args.server.parse().context("--server")?,
        args.ca_fingerprint.parse().context("--ca-fingerprint")?,
        token,
    );
    opts.name = args.name;
    if let Some(root) = args.root {
        opts.root = root;
    }
    opts.systemd = !args.no_systemd;
    let done = jumpgate_agent::install::install(&opts).await?;
    println!(
        "installed: this computer is endpoint `{}` in group `{}`{}",
        done.endpoint,
        done.group,
        if done.started {
            " (service jumpgate-agent started)"
        } else {
            " (service not started: --no-systemd)"
        }
    );
    Ok(())
}

pub(crate) fn parse_display(s: &str) -> Result<String, String> {
    jumpgate_agent::sessions::desktop::check_display_name(s).map(|()| s.to_owned())
}

pub(crate) fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a terminal (log files and journald get plain text),
    // and never with `NO_COLOR` set (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed
/// when this is called, not when the future is first polled: a gateway
/// told to stop right after it announced its address (the listen-address
/// file) stops cleanly instead of dying of the signal.
pub(crate) fn termination() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Ok(mut one), Err(_)) | (Err(_), Ok(mut one)) => {
                one.recv().await;
            }
            (Err(_), Err(_)) => std::future::pending().await,
        }
    }
}

/// The enrollment token in `path` (`-`: standard input), surrounding
/// whitespace removed.
pub(crate) fn read_token(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the enrollment token from standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the enrollment token file {}", path.display()))?;
    }
    let token = text.trim();
    if token.is_empty() {
        bail!("the enrollment token file {} is empty", path.display());
    }
    Ok(token.to_owned())
}

pub(crate) async fn agent(args: AgentArgs) -> Result<()> {
    if let Some(AgentCommand::Install(install)) = args.command {
        return agent_install(install).await;
    }
    if let Some(AgentCommand::ConsentUi) = args.command {
        // Blocking line I/O on stdin/stdout until the agent closes it.
        return tokio::task::spawn_blocking(jumpgate_agent::sessions::desktop::run_consent_ui)
            .await?
            .context("consent UI");
    }
    let state_dir = args.state_dir.context("--state-dir is required")?;
    let mut opts = jumpgate_agent::AgentOptions::new(state_dir);
    if let Some(path) = &args.xauthority {
        std::fs::File::open(path)
            .with_context(|| format!("--xauthority {}: cannot read it", path.display()))?;
    }
    opts.sessions.desktop.display = args.display;
    opts.sessions.desktop.xauthority = args.xauthority;
    if let Some(server) = &args.server {
        let site = server.trim_start_matches("https://").trim_end_matches('/');
        opts.sessions.desktop.site = site.to_owned();
    }
    opts.server = args
        .server
        .map(|s| s.parse())
        .transpose()
        .context("--server")?;
    opts.ca_fingerprint = args
        .ca_fingerprint
        .map(|s| s.parse())
        .transpose()
        .context("--ca-fingerprint")?;
    opts.proxy = args
        .proxy
        .map(|s| s.parse())
        .transpose()
        .context("--proxy")?;
    opts.name = args.name;
    opts.enroll_token = match args.enroll_token_file {
        Some(path) => Some(read_token(&path)?),
        None => args.enroll_token,
    };
    opts.reenroll = args.reenroll;
    opts.system.echo = args.serve_echo_topic;
    opts.system.jump_point = args.jump_point;
    opts.sessions.jump_point = args.jump_point;
    let allow = (!args.jump_point_allow.is_empty()).then_some(args.jump_point_allow.as_slice());
    let allow = jumpgate_agent::AllowList::parse(allow)
        .map_err(|e| anyhow::anyhow!("--jump-point-allow: {e}"))?;
    opts.system.jump_point_allow = allow.clone();
    opts.sessions.jump_point_allow = allow;
    opts.epm.socket = (!args.no_elevate).then_some(args.elevate_socket);
    opts.epm.blob_ca = args.blob_ca;
    opts.packages.root = args.package_root;
    opts.packages.poll = args.package_poll;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        termination().await;
        trigger.cancel();
    });
    jumpgate_agent::run(opts, shutdown).await?;
    Ok(())
}

/// `jumpgate assist`: the customer client (see `jumpgate_agent::assist`).
pub(crate) async fn assist(args: AssistArgs) -> Result<()> {
    if let Some(AssistCommand::Ui) = args.command {
        return tokio::task::spawn_blocking(jumpgate_agent::assist::run_ui)
            .await?
            .context("support window");
    }
    let flags = jumpgate_agent::assist::AssistFlags {
        server: args.server,
        ca_fingerprint: args.ca_fingerprint,
        ticket: args.ticket,
        keep: args.keep,
    };
    let opts = jumpgate_agent::assist::options(&flags)?;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        termination().await;
        trigger.cancel();
    });
    jumpgate_agent::assist::run(opts, shutdown).await?;
    Ok(())
}
