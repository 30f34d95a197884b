//! Sessions on agentless targets, on a jump point: the technician's
//! request is run on the target through SSH (`crate::target`), or, for a
//! TCP target, forwarded to its address.
//!
//! - `shell`: a PTY and the account's shell on the target;
//! - `exec`: the command line (each word quoted) with its exit status;
//! - `download`: `stat` + `cat` on the target, hashed here as it streams;
//! - `upload`: `cat` into a temporary file beside the destination, which is
//!   moved into place only once its size and SHA-256 match (else removed);
//! - `forward`: a `direct-tcpip` channel from the target to the port asked
//!   (SSH targets), or a TCP connection to the target itself (TCP targets).

use aws_lc_rs::digest;
use bytes::Bytes;
use jumpgate_net::digest::hex;
use jumpgate_proto::session::{
    Accepted, ExitStatus, FileEnd, FileResult, RefusalCode, SessionKind, SessionMsg, SessionRequest,
};
use jumpgate_proto::target::{SshLogin, TargetAddress, TargetOpen};
use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::info;

use super::wire::{self, MsgStream};
use super::{SessionContext, SessionError, SessionSummary};
use crate::target::{self, Connected, TargetError, quote};

/// Runs a target session (the gateway's `OpenTarget`) to its end.
pub(super) async fn run<R, W>(
    open: TargetOpen,
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !ctx.jump_point {
        let message = "this agent is not a jump point (start it with --jump-point)";
        return Err(super::refuse(
            &mut rx,
            &mut tx,
            ctx,
            RefusalCode::PermissionDenied,
            message,
        )
        .await);
    }
    let kind = open.request.kind();
    info!(target = %open.name, %kind, "target session opened");
    let login = match open.address {
        TargetAddress::Tcp {
            host,
            port,
            allowed,
        } => {
            return match open.request {
                SessionRequest::Forward { .. } => {
                    // Only to an address both lists allow (resolved here,
                    // connected to as resolved).
                    let checked =
                        match target::Reach::new(allowed.as_deref(), &ctx.jump_point_allow) {
                            Ok(reach) => reach.address(&host, port).await,
                            Err(e) => Err(e),
                        };
                    match checked {
                        Ok(addr) => {
                            super::forward::run(rx, tx, &addr.ip().to_string(), port, ctx).await
                        }
                        Err(e) => {
                            let message = format!("target `{}`: {e}", open.name);
                            let code = RefusalCode::PermissionDenied;
                            Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await)
                        }
                    }
                }
                _ => {
                    let message =
                        format!("target `{}` is a TCP target: only forwarding", open.name);
                    Err(
                        super::refuse(&mut rx, &mut tx, ctx, RefusalCode::Unsupported, message)
                            .await,
                    )
                }
            };
        }
        TargetAddress::Ssh(login) => login,
    };
    if let SessionRequest::Desktop { .. } = open.request {
        let message = "desktop sessions are not available on SSH targets";
        return Err(super::refuse(&mut rx, &mut tx, ctx, RefusalCode::Unsupported, message).await);
    }
    let conn = match target::connect(&login, &ctx.jump_point_allow).await {
        Ok(c) => c,
        Err(e) => {
            let code = match e {
                TargetError::HostKeyChanged { .. }
                | TargetError::LoginRefused { .. }
                | TargetError::BadList(_)
                | TargetError::Dial(jumpgate_net::allow::DialError::Outside { .. }) => {
                    RefusalCode::PermissionDenied
                }
                _ => RefusalCode::ConnectFailed,
            };
            // A changed host key's words start with `HOST_KEY_CHANGED`:
            // the gateway audits those refusals.
            let message = format!("target `{}`: {e}", open.name);
            return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
        }
    };
    let result = match open.request {
        SessionRequest::Shell {
            term,
            cols,
            rows,
            command: line,
        } => command(&conn, rx, tx, Some((term, cols, rows)), line, ctx).await,
        SessionRequest::Exec { command: argv } => {
            if argv.is_empty() || argv.iter().any(|a| a.contains('\0')) {
                let message = "empty command or a NUL byte in it";
                Err(
                    super::refuse(&mut rx, &mut tx, ctx, RefusalCode::InvalidRequest, message)
                        .await,
                )
            } else {
                let line: Vec<String> = argv.iter().map(|a| quote(a)).collect();
                command(&conn, rx, tx, None, Some(line.join(" ")), ctx).await
            }
        }
        SessionRequest::Download { path } => download(&conn, rx, tx, &path, ctx).await,
        SessionRequest::Upload {
            path,
            mode,
            size: _,
            file_name,
        } => upload(&conn, rx, tx, &path, mode, file_name.as_deref(), ctx).await,
        SessionRequest::Forward { host, port } => {
            forward(&conn, &login, rx, tx, &host, port, ctx).await
        }
        SessionRequest::Desktop { .. } => unreachable!("refused above"),
    };
    conn.close().await;
    result
}

fn ssh_error(e: russh::Error) -> SessionError {
    SessionError::Local {
        what: "the target's SSH connection",
        source: std::io::Error::other(e.to_string()),
    }
}

/// A shell (with a PTY) or a command line, relayed both ways until it
/// exits; its exit status goes to the technician.
async fn command<R, W>(
    conn: &Connected,
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    pty: Option<(String, u16, u16)>,
    line: Option<String>,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let kind = if pty.is_some() {
        SessionKind::Shell
    } else {
        SessionKind::Exec
    };
    let opened = async {
        let ch = conn.handle.channel_open_session().await?;
        if let Some((term, cols, rows)) = &pty {
            ch.request_pty(true, term, u32::from(*cols), u32::from(*rows), 0, 0, &[])
                .await?;
            // With a command line: that command in the PTY (`ssh -t`).
            if line.is_none() {
                ch.request_shell(true).await?;
            }
        }
        if let Some(line) = &line {
            ch.exec(true, line.as_str()).await?;
        }
        Ok::<_, russh::Error>(ch)
    };
    let mut ch = match opened.await {
        Ok(ch) => ch,
        Err(e) => {
            let message = format!("the target refused the {kind}: {e}");
            return Err(super::refuse(&mut rx, &mut tx, ctx, RefusalCode::Failed, message).await);
        }
    };
    tx.write_msg(&SessionMsg::Accepted(Accepted::default()))
        .await?;
    let mut summary = SessionSummary::new(kind);
    let mut status = ExitStatus::default();
    let mut tech_open = true;
    loop {
        tokio::select! {
            msg = rx.read_msg(), if tech_open => match msg? {
                Some(SessionMsg::Stdin(b)) => {
                    summary.bytes_in += b.len() as u64;
                    ch.data_bytes(b).await.map_err(ssh_error)?;
                }
                Some(SessionMsg::StdinEof) => ch.eof().await.map_err(ssh_error)?,
                Some(SessionMsg::Resize { cols, rows }) => {
                    ch.window_change(u32::from(cols), u32::from(rows), 0, 0)
                        .await
                        .map_err(ssh_error)?;
                }
                Some(SessionMsg::Signal(s)) => {
                    let sig = match s {
                        jumpgate_proto::session::SignalKind::Interrupt => russh::Sig::INT,
                        jumpgate_proto::session::SignalKind::Terminate => russh::Sig::TERM,
                        jumpgate_proto::session::SignalKind::Kill => russh::Sig::KILL,
                    };
                    let _ = ch.signal(sig).await;
                }
                Some(SessionMsg::Closed { reason }) => return Err(super::closed_by_gateway(reason)),
                Some(other) => {
                    return Err(SessionError::Unexpected { got: other.name(), during: "during a target session" });
                }
                // The technician left. A terminal hangs up, as closing it
                // would (sshd hangs up the shell when its channel closes);
                // a command only loses its input (a half-close: the output
                // may still be read).
                None if pty.is_some() => {
                    let _ = ch.close().await;
                    if tx.write_msg(&SessionMsg::Exit(status)).await.is_ok() {
                        wire::finish(&mut rx, &mut tx, ctx.linger).await;
                    }
                    return Ok(summary);
                }
                None => {
                    tech_open = false;
                    ch.eof().await.map_err(ssh_error)?;
                }
            },
            msg = ch.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    summary.bytes_out += data.len() as u64;
                    tx.write_msg(&SessionMsg::Stdout(data)).await?;
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    summary.bytes_out += data.len() as u64;
                    let msg = if pty.is_some() { SessionMsg::Stdout(data) } else { SessionMsg::Stderr(data) };
                    tx.write_msg(&msg).await?;
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    status.code = Some(i32::try_from(exit_status).unwrap_or(255));
                }
                Some(ChannelMsg::ExitSignal { .. }) => status.signal = Some(15),
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
        }
    }
    tx.write_msg(&SessionMsg::Exit(status)).await?;
    wire::finish(&mut rx, &mut tx, ctx.linger).await;
    Ok(summary)
}

/// Runs `line` on the target with `input` on its stdin; its stdout,
/// stderr and exit code.
async fn run_line(
    conn: &Connected,
    line: &str,
    input: Option<&[u8]>,
) -> Result<(Vec<u8>, String, u32), russh::Error> {
    let mut ch = conn.handle.channel_open_session().await?;
    ch.exec(true, line).await?;
    if let Some(input) = input {
        ch.data_bytes(Bytes::copy_from_slice(input)).await?;
    }
    ch.eof().await?;
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), 255);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => code = exit_status,
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let err = String::from_utf8_lossy(&err)
        .trim()
        .chars()
        .take(300)
        .collect();
    Ok((out, err, code))
}

async fn download<R, W>(
    conn: &Connected,
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    path: &str,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let p = quote(path);
    let head = format!(
        "if [ -d {p} ]; then echo {p}': is a directory' >&2; exit 2; fi; \
         if [ ! -f {p} ]; then echo {p}': not a regular file or not found' >&2; exit 1; fi; \
         stat -L -c '%s %a' -- {p}"
    );
    let (out, err, code) = run_line(conn, &head, None).await.map_err(ssh_error)?;
    let parsed = String::from_utf8_lossy(&out)
        .trim()
        .split_once(' ')
        .and_then(|(s, m)| Some((s.parse::<u64>().ok()?, u32::from_str_radix(m, 8).ok()?)));
    let (size, mode) = match (code, parsed) {
        (0, Some(sm)) => sm,
        (2, _) => {
            return Err(
                super::refuse(&mut rx, &mut tx, ctx, RefusalCode::InvalidRequest, err).await,
            );
        }
        (_, _) => {
            return Err(super::refuse(
                &mut rx,
                &mut tx,
                ctx,
                RefusalCode::NotFound,
                format!("{path}: {err}"),
            )
            .await);
        }
    };
    let mut ch = conn
        .handle
        .channel_open_session()
        .await
        .map_err(ssh_error)?;
    ch.exec(true, format!("cat -- {p}"))
        .await
        .map_err(ssh_error)?;
    tx.write_msg(&SessionMsg::Accepted(Accepted {
        size: Some(size),
        mode: Some(mode),
    }))
    .await?;
    let mut summary = SessionSummary::new(SessionKind::Download);
    let mut hasher = digest::Context::new(&digest::SHA256);
    let mut status = None;
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                hasher.update(&data);
                summary.bytes_out += data.len() as u64;
                tx.write_msg(&SessionMsg::FileData(data)).await?;
            }
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    if status != Some(0) {
        let failed = FileResult {
            ok: false,
            sha256: String::new(),
            message: "reading the file on the target failed".into(),
        };
        let _ = tx.write_msg(&SessionMsg::FileResult(failed)).await;
        wire::finish(&mut rx, &mut tx, ctx.linger).await;
        return Err(SessionError::Local {
            what: "reading the file on the target",
            source: std::io::Error::other("cat failed"),
        });
    }
    let end = FileEnd {
        size: summary.bytes_out,
        sha256: hex(hasher.finish().as_ref()),
    };
    tx.write_msg(&SessionMsg::FileEnd(end)).await?;
    wire::finish(&mut rx, &mut tx, ctx.linger).await;
    Ok(summary)
}

async fn upload<R, W>(
    conn: &Connected,
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    path: &str,
    mode: u32,
    file_name: Option<&str>,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Where it goes (inside a directory it names), and a temporary file
    // beside it that the upload fills.
    let name = file_name.unwrap_or("upload");
    let place = format!(
        "d={}; if [ -d \"$d\" ]; then d=\"${{d%/}}/\"{}; fi; t=\"$d.jgpart.$$\"; \
         : > \"$t\" || exit 1; printf '%s\\n%s' \"$d\" \"$t\"",
        quote(path),
        quote(name)
    );
    let (out, err, code) = run_line(conn, &place, None).await.map_err(ssh_error)?;
    let out = String::from_utf8_lossy(&out).into_owned();
    let Some((dest, temp)) = out.split_once('\n').filter(|_| code == 0) else {
        let message = format!("cannot write {path} on the target: {err}");
        return Err(super::refuse(
            &mut rx,
            &mut tx,
            ctx,
            RefusalCode::PermissionDenied,
            message,
        )
        .await);
    };
    let (dest, temp) = (dest.to_owned(), temp.to_owned());
    let mut ch = conn
        .handle
        .channel_open_session()
        .await
        .map_err(ssh_error)?;
    ch.exec(true, format!("cat > {}", quote(&temp)))
        .await
        .map_err(ssh_error)?;
    tx.write_msg(&SessionMsg::Accepted(Accepted::default()))
        .await?;
    let mut summary = SessionSummary::new(SessionKind::Upload);
    let mut hasher = digest::Context::new(&digest::SHA256);
    let end = loop {
        match rx.read_msg().await? {
            Some(SessionMsg::FileData(data)) => {
                summary.bytes_in += data.len() as u64;
                hasher.update(&data);
                ch.data_bytes(data).await.map_err(ssh_error)?;
            }
            Some(SessionMsg::FileEnd(end)) => break end,
            Some(SessionMsg::Closed { reason }) => {
                let _ = run_line(conn, &format!("rm -f {}", quote(&temp)), None).await;
                return Err(super::closed_by_gateway(reason));
            }
            Some(other) => {
                let _ = run_line(conn, &format!("rm -f {}", quote(&temp)), None).await;
                return Err(SessionError::Unexpected {
                    got: other.name(),
                    during: "during an upload",
                });
            }
            None => {
                let _ = run_line(conn, &format!("rm -f {}", quote(&temp)), None).await;
                return Err(SessionError::Truncated("before the end of the upload"));
            }
        }
    };
    ch.eof().await.map_err(ssh_error)?;
    let mut written = None;
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::ExitStatus { exit_status } => written = Some(exit_status),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let sha256 = hex(hasher.finish().as_ref());
    let verdict = if written != Some(0) {
        Err("writing the file on the target failed".to_owned())
    } else if end.size != summary.bytes_in {
        Err(format!(
            "size mismatch: {} bytes announced, {} received",
            end.size, summary.bytes_in
        ))
    } else if !end.sha256.eq_ignore_ascii_case(&sha256) {
        Err(format!(
            "SHA-256 mismatch: {} announced, {sha256} received",
            end.sha256
        ))
    } else {
        let line = format!(
            "chmod {:o} {t} && mv -f {t} {d}",
            mode & 0o7777,
            t = quote(&temp),
            d = quote(&dest)
        );
        match run_line(conn, &line, None).await {
            Ok((_, _, 0)) => Ok(()),
            Ok((_, err, _)) => Err(format!("saving {dest} on the target: {err}")),
            Err(e) => Err(format!("saving {dest} on the target: {e}")),
        }
    };
    if verdict.is_err() {
        let _ = run_line(conn, &format!("rm -f {}", quote(&temp)), None).await;
    }
    let result = FileResult {
        ok: verdict.is_ok(),
        sha256,
        message: verdict.as_ref().err().cloned().unwrap_or_default(),
    };
    tx.write_msg(&SessionMsg::FileResult(result)).await?;
    wire::finish(&mut rx, &mut tx, ctx.linger).await;
    verdict.map(|()| summary).map_err(SessionError::Upload)
}

/// A `direct-tcpip` channel from the target to `host:port`, raw bytes
/// both ways once accepted.
async fn forward<R, W>(
    conn: &Connected,
    login: &SshLogin,
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    host: &str,
    port: u16,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ch = match conn
        .handle
        .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
        .await
    {
        Ok(ch) => ch,
        Err(e) => {
            let message = format!(
                "the target {} cannot connect to {host}:{port}: {e}",
                login.host
            );
            return Err(
                super::refuse(&mut rx, &mut tx, ctx, RefusalCode::ConnectFailed, message).await,
            );
        }
    };
    tx.write_msg(&SessionMsg::Accepted(Accepted::default()))
        .await?;
    let (mut from_tech, early) = rx.into_parts();
    let (mut to_tech, _) = tx.into_parts();
    let stream = ch.into_stream();
    let (mut from_target, mut to_target) = tokio::io::split(stream);
    let up = async {
        if !early.is_empty() {
            to_target.write_all(&early).await?;
        }
        let n = tokio::io::copy(&mut from_tech, &mut to_target).await?;
        let _ = to_target.shutdown().await;
        Ok::<_, std::io::Error>(n + early.len() as u64)
    };
    let down = async {
        let n = tokio::io::copy(&mut from_target, &mut to_tech).await?;
        let _ = to_tech.shutdown().await;
        Ok::<_, std::io::Error>(n)
    };
    let (bytes_in, bytes_out) =
        tokio::try_join!(up, down).map_err(|source| SessionError::Local {
            what: "forwarded connection",
            source,
        })?;
    let mut summary = SessionSummary::new(SessionKind::Forward);
    summary.bytes_in = bytes_in;
    summary.bytes_out = bytes_out;
    Ok(summary)
}
