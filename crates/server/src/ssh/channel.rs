//! One SSH channel as one Jumpgate session, run by
//! [`SessionService::open`] in the channel's own task: a session channel is
//! the technician's side speaking the session's messages
//! ([`ChannelIo`] maps SSH's channel messages to them and back, as `jg`'s
//! upgraded connection and the console's WebSocket carry them); a
//! `direct-tcpip` channel is the forward's raw stream. Either way the
//! session is authorized, recorded, audited, re-checked and can be
//! terminated like theirs.
//!
//! | SSH                                   | session                                         |
//! |---------------------------------------|-------------------------------------------------|
//! | `pty-req` + `shell`                   | `shell` (PTY; `window-change` → `Resize`)       |
//! | `shell` without a PTY (`ssh -T`)      | `exec` of `sh` (commands on stdin)              |
//! | `exec CMD` (`ssh host CMD`, `scp -O`) | `exec` of `sh -c CMD`, stdin and EOF carried    |
//! | `pty-req` + `exec CMD` (`ssh -t`)     | `shell` running `sh -c CMD` in the PTY          |
//! | `subsystem sftp` (`sftp`, `scp`)      | `exec` of the endpoint's `sftp-server`; needs the `files` right too |
//! | `direct-tcpip HOST:PORT` (`ssh -L`)   | `forward` to HOST:PORT from the endpoint        |
//!
//! A certificate's rules apply (`certs::Rules`): without `permit-pty` a
//! PTY request is ignored here (refused to the client by the handler);
//! with `force-command` every session channel runs that command instead
//! of what was asked (the asked command in `SSH_ORIGINAL_COMMAND`), in a
//! PTY if one was granted.
//!
//! Exit statuses reach the client (`exit-status`); a session ended by
//! the gateway (terminated, access revoked, shutdown) tells the client why
//! on stderr and closes the channel.

use std::sync::Arc;

use jumpgate_net::session::MsgStream;
use jumpgate_proto::session::{SessionKind, SessionRequest};
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelWriteHalf};
use tracing::Instrument;

use super::certs::Rules;
use super::channel_io::{self, ChannelIo};
use super::server::Login;
use crate::rbac::{self, Action, Decision, Resource};
use crate::sessions::open::{NotAuthorized, SessionService, Technician, Ticket};
use crate::state::AppState;

/// The SFTP subsystem's name.
pub(super) const SFTP: &str = "sftp";

/// How an endpoint runs its SFTP server: the first of the usual places
/// (Debian, Red Hat, Arch, others).
const SFTP_SERVER: &str = "for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server \
     /usr/lib/ssh/sftp-server /usr/libexec/sftp-server /usr/lib/sftp-server; do \
     [ -x \"$p\" ] && exec \"$p\"; done; \
     echo 'jumpgate: no sftp-server on this endpoint' >&2; exit 127";

/// What a channel's session needs of its connection.
pub(super) struct Ctx {
    pub(super) st: AppState,
    pub(super) login: Arc<Login>,
    /// The endpoint the connection is for (`alice+web-01`, or a jump's).
    pub(super) endpoint: Option<String>,
    /// What the login permits.
    pub(super) rules: Rules,
}

/// What the client asked a session channel for.
enum Asked {
    Shell,
    Exec(String),
    Sftp,
}

/// Runs a session channel: waits for its request (shell, exec, sftp),
/// opens the session, then carries it until either side ends.
pub(super) async fn session(ctx: Ctx, channel: Channel<Msg>) {
    let (mut rd, wr) = channel.split();
    let mut pty: Option<(String, u16, u16)> = None;
    let asked = loop {
        match rd.wait().await {
            Some(ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                ..
            }) if ctx.rules.pty => pty = Some((term, size(col_width, 80), size(row_height, 24))),
            Some(ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            }) => {
                if let Some(p) = pty.as_mut() {
                    p.1 = size(col_width, p.1);
                    p.2 = size(row_height, p.2);
                }
            }
            Some(ChannelMsg::RequestShell { .. }) => break Asked::Shell,
            Some(ChannelMsg::Exec { command, .. }) => {
                break Asked::Exec(String::from_utf8_lossy(&command).into_owned());
            }
            Some(ChannelMsg::RequestSubsystem { name, .. }) if name == SFTP => break Asked::Sftp,
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    };
    let Some(endpoint) = ctx.endpoint.clone() else {
        let msg = format!(
            "name an endpoint: ssh {user}+ENDPOINT@gateway, or ssh -J {user}@gateway ENDPOINT",
            user = ctx.login.username
        );
        fail(&wr, &msg).await;
        return;
    };
    let sh = |script: &str| SessionRequest::Exec {
        command: vec!["sh".into(), "-c".into(), script.into()],
    };
    let asked = match &ctx.rules.force_command {
        Some(forced) => Asked::Exec(forced_line(forced, &asked)),
        None => asked,
    };
    let (request, files) = match asked {
        Asked::Shell => match pty {
            Some((term, cols, rows)) => (
                SessionRequest::Shell {
                    term,
                    cols,
                    rows,
                    command: None,
                },
                false,
            ),
            None => (
                SessionRequest::Exec {
                    command: vec!["sh".into()],
                },
                false,
            ),
        },
        // `ssh -t host CMD`: the command in a PTY (a shell session).
        Asked::Exec(cmd) => match pty {
            Some((term, cols, rows)) => (
                SessionRequest::Shell {
                    term,
                    cols,
                    rows,
                    command: Some(cmd),
                },
                false,
            ),
            None => (sh(&cmd), false),
        },
        Asked::Sftp => (sh(SFTP_SERVER), true),
    };
    let (service, ticket) = match authorize(&ctx, &endpoint, &request, files).await {
        Ok(t) => t,
        Err(msg) => {
            fail(&wr, &msg).await;
            return;
        }
    };
    let kind = request.kind();
    let span = tracing::info_span!("session", endpoint = %endpoint, %kind, via = "ssh");
    let io = ChannelIo::new(rd, wr);
    service
        .open(ticket, request, Technician::Framed(MsgStream::new(io)))
        .instrument(span)
        .await;
}

/// `ssh -L`: a `direct-tcpip` channel as a forward session from the
/// endpoint to `host:port`. The channel itself is the session's
/// technician side (raw bytes, no in-memory pipe in between: that pipe
/// cost a write and a read of every byte and a task hop each way).
/// Refused channels are closed at once (the reason goes to the gateway's
/// log and audit; SSH has no words for it here).
pub(super) async fn forward(ctx: Ctx, channel: Channel<Msg>, host: String, port: u16) {
    let Some(endpoint) = ctx.endpoint.clone() else {
        let _ = channel.close().await;
        return;
    };
    let request = SessionRequest::Forward { host, port };
    let (service, ticket) = match authorize(&ctx, &endpoint, &request, false).await {
        Ok(t) => t,
        Err(msg) => {
            tracing::info!(%endpoint, reason = %msg, "SSH port forward refused");
            let _ = channel.close().await;
            return;
        }
    };
    let span = tracing::info_span!("session", endpoint = %endpoint, kind = "forward", via = "ssh");
    let ssh = channel.into_stream();
    service
        .open(ticket, request, Technician::Raw(ssh))
        .instrument(span)
        .await;
}

/// Authorizes a session of `request` on `name` for the connection's user:
/// the service to open it with, and its ticket. `files`: the session moves
/// files (SFTP), so the `files` right is needed too. Err: what to tell the
/// client (the refusal is recorded and audited by then).
async fn authorize(
    ctx: &Ctx,
    name: &str,
    request: &SessionRequest,
    files: bool,
) -> Result<(SessionService, Ticket), String> {
    let st = &ctx.st;
    let credential = &ctx.login.credential;
    let subject = crate::identity::authenticate_credential(&st.db, credential)
        .await
        .map_err(|_| "your login has ended: connect again".to_owned())?;
    let unknown = || format!("no endpoint named `{name}`");
    // An endpoint, or an agentless target reached through its jump point:
    // the service's one lookup, so both take the same path below.
    let service = SessionService::new(st.clone());
    let endpoint = service
        .lookup(name)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot look up an endpoint for SSH");
            "the gateway cannot look up the endpoint now".to_owned()
        })?
        .ok_or_else(unknown)?;
    let kind = request.kind();
    // Endpoints the user may not even see do not exist for them.
    let refused = |why: rbac::Denial, what: &str| {
        if subject.can_view(&endpoint.group) {
            format!("{what} on `{name}` refused: {why}")
        } else {
            unknown()
        }
    };
    if files {
        let upload = Action::OpenSession(SessionKind::Upload);
        let resource = Resource::OneEndpoint {
            group: &endpoint.group,
            id: endpoint.id.as_str(),
        };
        if let Decision::Forbid(why) = rbac::authorize(&subject, upload, resource) {
            let group = Some(endpoint.group.as_str());
            rbac::http::record_denial(&st.db, &subject, upload, &endpoint.name, group, why).await;
            return Err(refused(why, "file transfer (sftp/scp)"));
        }
    }
    let ticket = match service
        .authorize(&subject, &endpoint, kind, credential.clone())
        .await
    {
        Ok(t) => t,
        Err(NotAuthorized::Denied(why)) => {
            let action = Action::OpenSession(kind);
            let group = Some(endpoint.group.as_str());
            rbac::http::record_denial(&st.db, &subject, action, &endpoint.name, group, why).await;
            return Err(refused(why, &format!("a {kind} session")));
        }
        Err(NotAuthorized::Db(e)) => {
            tracing::error!(error = %e, "cannot record a denied SSH session");
            return Err("the gateway could not record the session".to_owned());
        }
    };
    if st.agents.locate(&endpoint.id).local().is_none() {
        return Err(format!("endpoint `{name}` is offline"));
    }
    if st.shutdown.is_cancelled() {
        return Err("the gateway is shutting down".to_owned());
    }
    Ok((service, ticket))
}

/// Tells the client why nothing runs (on stderr, exit status 1) and
/// closes the channel.
async fn fail(wr: &ChannelWriteHalf<Msg>, msg: &str) {
    let _ = wr.extended_data_bytes(1, channel_io::refusal(msg)).await;
    let _ = wr.exit_status(1).await;
    let _ = wr.eof().await;
    let _ = wr.close().await;
}

/// The command line a certificate's `force-command` runs, with the
/// command asked (if any) in `SSH_ORIGINAL_COMMAND`, as `sshd` sets it.
fn forced_line(forced: &str, asked: &Asked) -> String {
    let original = match asked {
        Asked::Exec(cmd) => cmd.as_str(),
        Asked::Sftp => SFTP,
        Asked::Shell => return forced.to_owned(),
    };
    let quoted = format!("'{}'", original.replace('\'', r"'\''"));
    format!("SSH_ORIGINAL_COMMAND={quoted}; export SSH_ORIGINAL_COMMAND; {forced}")
}

/// A terminal dimension from SSH (0 or absurd: `fallback`).
pub(super) fn size(v: u32, fallback: u16) -> u16 {
    u16::try_from(v)
        .ok()
        .filter(|n| (1..=4096).contains(n))
        .unwrap_or(fallback)
}
