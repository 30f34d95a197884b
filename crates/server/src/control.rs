//! A Unix socket in the data directory through which `jumpgate admin`
//! tells a running gateway to act at once (e.g. cut a revoked agent).
//!
//! One line per request, one line per answer. The socket is reachable only
//! by the data directory's owner (the directory is mode 0700).

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::ids::AgentId;
use crate::state::AppState;

pub(crate) fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Binds the control socket, refusing if another gateway already serves this
/// data directory.
pub(crate) async fn bind(data_dir: &Path) -> io::Result<UnixListener> {
    let path = socket_path(data_dir);
    if UnixStream::connect(&path).await.is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another gateway is already running with data dir {}",
                data_dir.display()
            ),
        ));
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    // Whoever can connect administers the site: the owner only, whatever
    // the data directory's permissions or the umask.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(listener)
}

pub(crate) async fn serve(listener: UnixListener, st: AppState, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    continue;
                }
            },
        };
        let st = st.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(r).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = handle(&st, line.trim()).await;
            let _ = w.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

/// Rotates the root key in the running gateway, which holds the KEKs and
/// writes the keyring: `rotate-root-key [NEW-KEY-FILE]`.
async fn rotate_root(st: &AppState, new_key_file: Option<&str>) -> String {
    let new = match new_key_file {
        Some(path) => match crate::keys::LocalRoot::from_new_key_file(Path::new(path)) {
            Ok(k) => Some(k),
            Err(e) => return format!("error {e}"),
        },
        None => None,
    };
    let from_file = st.keys.root_is_key_file();
    match crate::keys::sweep::rotate_root(&st.db, &st.keys, new, "(admin cli)").await {
        Ok(generation) => format!("ok {generation} {}", if from_file { "file" } else { "env" }),
        Err(e) => {
            tracing::error!(error = %e, "root key rotation failed");
            format!("error {e}")
        }
    }
}

async fn handle(st: &AppState, line: &str) -> String {
    if line == "rotate-root-key" {
        return rotate_root(st, None).await;
    }
    match line.split_once(' ') {
        Some(("rotate-root-key", path)) => rotate_root(st, Some(path)).await,
        Some(("rotate-keys", list)) => {
            let purposes: Result<Vec<crate::keys::Purpose>, _> =
                list.split(',').map(str::parse).collect();
            let purposes = match purposes {
                Ok(p) if !p.is_empty() => p,
                Ok(_) => return "error no purpose".to_owned(),
                Err(e) => return format!("error {e}"),
            };
            match crate::keys::sweep::rotate(&st.db, &st.keys, &purposes, "(admin cli)").await {
                Ok(rotated) => {
                    st.key_sweep.notify_one();
                    let list: Vec<String> = rotated
                        .iter()
                        .map(|(p, v)| format!("{}:v{v}", p.as_str()))
                        .collect();
                    format!("ok {}", list.join(" "))
                }
                Err(e) => {
                    tracing::error!(error = %e, "key rotation failed");
                    format!("error {e}")
                }
            }
        }
        Some(("endpoint-facts", name)) => endpoint_facts(st, name).await,
        Some(("system-echo", args)) => system_echo(st, args).await,
        Some(("revoke", id)) => {
            // Its sessions end with the reason before the connection goes.
            crate::sessions::recheck::recheck(st).await;
            let cut = st.agents.cut_revoked(&AgentId(id.to_owned()));
            tracing::info!(
                endpoint_id = id,
                live_connection_cut = cut,
                "endpoint revoked"
            );
            if cut { "ok disconnected" } else { "ok offline" }.to_owned()
        }
        _ => "error unknown command".to_owned(),
    }
}

/// Asks the endpoint's agent for fresh details over a system stream and
/// stores them: `endpoint-facts NAME` → `ok {details…, "changed": bool}`.
async fn endpoint_facts(st: &AppState, name: &str) -> String {
    match crate::agents::system::refresh_facts(&st.db, &*st.agents, name).await {
        Ok(f) => {
            let mut v = serde_json::to_value(&f.details).unwrap_or_default();
            v["changed"] = f.changed.into();
            format!("ok {v}")
        }
        Err(e) => format!("error {e}"),
    }
}

/// Byte `i` of the payload `system-echo` sends (the tests compute it too).
pub(crate) fn echo_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// A round trip of the system channel, for tests: `system-echo NAME BYTES`
/// sends BYTES bytes ([`echo_byte`]) on the `echo` topic (answered only by
/// agents started for it) → `ok BYTES-BACK SHA256-OF-REPLY`.
async fn system_echo(st: &AppState, args: &str) -> String {
    let Some((name, bytes)) = args.split_once(' ') else {
        return "error usage: system-echo NAME BYTES".to_owned();
    };
    let Ok(bytes) = bytes.parse::<usize>() else {
        return "error BYTES must be a number".to_owned();
    };
    let endpoint = match crate::agents::find_by_name(&st.db, name).await {
        Ok(Some(e)) => e,
        Ok(None) => return format!("error no enrolled endpoint named `{name}`"),
        Err(e) => return format!("error {e}"),
    };
    let payload: bytes::Bytes = (0..bytes).map(echo_byte).collect::<Vec<u8>>().into();
    let reply = crate::agents::system::send(
        &*st.agents,
        &endpoint.id,
        jumpgate_proto::system::Topic::Echo,
        payload,
        crate::agents::system::TIMEOUT,
    )
    .await
    .and_then(crate::agents::system::SystemReply::ok);
    match reply {
        Ok(body) => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            format!("ok {} {hex}", body.len())
        }
        Err(e) => format!("error {e}"),
    }
}

/// Sends a request to the running gateway, if there is one (`Ok(None)`: none).
///
/// # Errors
/// The gateway is running but the exchange failed.
pub(crate) async fn request(data_dir: &Path, line: &str) -> io::Result<Option<String>> {
    let Ok(stream) = UnixStream::connect(socket_path(data_dir)).await else {
        return Ok(None);
    };
    let (r, mut w) = stream.into_split();
    w.write_all(format!("{line}\n").as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(r).read_line(&mut answer).await?;
    Ok(Some(answer.trim().to_owned()))
}
