//! `jg forward ENDPOINT [BIND:]LOCAL_PORT:TARGET_HOST:TARGET_PORT`: a local
//! listener whose every connection becomes a `forward` session.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use jumpgate_client::Client;
use jumpgate_net::session::MsgStream;
use jumpgate_proto::session::{SessionKind, SessionRequest};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

use crate::errors::{Refused, chain_text};
use crate::session_io;

/// Copy buffer per direction and connection. Large buffers mean fewer, larger
/// TLS records and syscalls; this path is benchmarked for throughput.
const COPY_BUF: usize = 256 * 1024;

/// A parsed forward specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) bind: String,
    pub(crate) local_port: u16,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Splits on `:` outside `[...]`, so IPv6 addresses can be bracketed.
fn fields(s: &str) -> anyhow::Result<Vec<&str>> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1).context("unbalanced `]`")?,
            ':' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        bail!("unbalanced `[`");
    }
    out.push(&s[start..]);
    Ok(out)
}

fn host(s: &str, what: &str) -> anyhow::Result<String> {
    let h = s
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(s);
    if h.is_empty() || h.contains(['[', ']']) {
        bail!("invalid {what} `{s}`");
    }
    Ok(h.to_owned())
}

fn port(s: &str, what: &str, allow_zero: bool) -> anyhow::Result<u16> {
    match s.parse::<u16>() {
        Ok(0) if !allow_zero => bail!("{what} must be 1-65535, not 0"),
        Ok(p) => Ok(p),
        Err(_) => bail!("{what} `{s}` is not a number 0-65535"),
    }
}

impl std::str::FromStr for Spec {
    /// The whole cause chain as one line: clap prints only `Display`.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parse = || -> anyhow::Result<Self> {
            let f = fields(s)?;
            let (bind, rest) = match f.len() {
                3 => ("127.0.0.1".to_owned(), &f[..]),
                4 => (host(f[0], "bind address")?, &f[1..]),
                _ => bail!("expected [BIND:]LOCAL_PORT:TARGET_HOST:TARGET_PORT"),
            };
            Ok(Self {
                bind,
                local_port: port(rest[0], "local port", true)?,
                host: host(rest[1], "target host")?,
                port: port(rest[2], "target port", false)?,
            })
        };
        parse().map_err(|e| format!("invalid forward `{s}`: {e:#}"))
    }
}

fn fmt_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(crate) async fn run(client: Client, endpoint: &str, spec: &Spec) -> anyhow::Result<()> {
    // Fail now, not at the first connection, when the login is stale or the
    // endpoint is not one this user may see (as `jg shell` does).
    let f = jumpgate_client::EndpointFilter {
        name: Some(endpoint),
        ..Default::default()
    };
    let listed = client
        .endpoints_page(&f)
        .await
        .context("checking the login")?;
    // An agentless target is not in the endpoint list: asked for by name
    // (a gateway without targets answers 404, the same "no such name").
    if !listed.iter().any(|e| e.name == endpoint) && client.target(endpoint).await.is_err() {
        bail!("no endpoint named `{endpoint}` (see jg endpoints)");
    }

    let bind_host = spec.bind.as_str();
    let listener = TcpListener::bind((bind_host, spec.local_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}",
                fmt_host_port(bind_host, spec.local_port)
            )
        })?;
    let local = listener
        .local_addr()
        .context("reading the listening address")?;
    // Registered once, before the banner and the loop: whoever reacts to the
    // banner with a signal gets a clean exit, and no signal falls between two
    // `select!`s.
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    eprintln!("{}", banner(local, endpoint, spec));

    let shared = Arc::new((client, endpoint.to_owned(), spec.clone()));
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: keep serving.
                    eprintln!("jg: forward: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = int.recv() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let (client, endpoint, spec) = &*shared;
            if let Err(e) = relay(client, endpoint, spec, sock).await {
                eprintln!("jg: forward: connection from {peer}: {}", chain_text(&e));
            }
        });
    }
}

async fn relay(
    client: &Client,
    endpoint: &str,
    spec: &Spec,
    mut sock: TcpStream,
) -> anyhow::Result<()> {
    sock.set_nodelay(true).context("setting TCP_NODELAY")?;
    let target = fmt_host_port(&spec.host, spec.port);
    let mut io = MsgStream::new(
        client
            .connect(endpoint, SessionKind::Forward)
            .await
            .with_context(|| format!("cannot open a forward to {target} via {endpoint}"))?,
    );
    let req = SessionRequest::Forward {
        host: spec.host.clone(),
        port: spec.port,
    };
    match session_io::open(&mut io, req).await {
        Ok(_) => {}
        Err(e) if e.is::<Refused>() => {
            bail!("{endpoint} refused the forward to {target}: {e}")
        }
        Err(e) => return Err(e.context(format!("forward to {target} via {endpoint}"))),
    }
    // The target may have spoken first (SSH banners...), in the same read as
    // `Accepted`.
    let (mut io, buf) = io.into_parts();
    if !buf.is_empty() {
        sock.write_all(&buf)
            .await
            .context("writing to the local connection")?;
    }
    drop(buf);
    match tokio::io::copy_bidirectional_with_sizes(&mut sock, &mut io, COPY_BUF, COPY_BUF).await {
        Ok((up, down)) => {
            tracing::debug!(up, down, "forwarded connection closed");
            Ok(())
        }
        Err(e) => {
            // Resets are how many TCP conversations end; not worth a line.
            tracing::debug!(error = %e, "forwarded connection ended with an error");
            Ok(())
        }
    }
}

/// The line announcing the listener; tests and benchmarks parse the port
/// from it, so its format is fixed.
fn banner(local: SocketAddr, endpoint: &str, spec: &Spec) -> String {
    format!(
        "jg: forwarding {local} -> {endpoint} -> {}",
        fmt_host_port(&spec.host, spec.port)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(bind: &str, local_port: u16, host: &str, port: u16) -> Spec {
        Spec {
            bind: bind.into(),
            local_port,
            host: host.into(),
            port,
        }
    }

    #[test]
    fn specs_with_and_without_bind_address() {
        assert_eq!(
            "8080:localhost:80".parse::<Spec>().unwrap(),
            spec("127.0.0.1", 8080, "localhost", 80)
        );
        assert_eq!(
            "0.0.0.0:0:10.0.0.5:5432".parse::<Spec>().unwrap(),
            spec("0.0.0.0", 0, "10.0.0.5", 5432)
        );
        assert_eq!(
            "[::1]:2222:[fe80::1]:22".parse::<Spec>().unwrap(),
            spec("::1", 2222, "fe80::1", 22)
        );
    }

    #[test]
    fn bad_specs_are_rejected() {
        for bad in [
            "8080",
            "8080:host",
            "a:b:c:d:e",
            "70000:host:80",
            "-1:host:80",
            "x:host:80",
            "8080:host:0",
            "8080:host:65536",
            "8080::80",
            "[::1:2222:h:22",
            "8080:h]:22",
        ] {
            assert!(bad.parse::<Spec>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn banner_has_the_parsable_format() {
        let s = spec("127.0.0.1", 0, "db", 5432);
        let addr: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(
            banner(addr, "web-01", &s),
            "jg: forwarding 127.0.0.1:40123 -> web-01 -> db:5432"
        );
        let v6 = spec("::1", 0, "::1", 22);
        let addr: SocketAddr = "[::1]:40123".parse().unwrap();
        assert_eq!(
            banner(addr, "h", &v6),
            "jg: forwarding [::1]:40123 -> h -> [::1]:22"
        );
    }
}
