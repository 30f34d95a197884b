//! `jg ssh-config`: a block at the top of `~/.ssh/config` so that plain
//! `ssh ENDPOINT` (and `scp`, `sftp`) goes through the gateway's SSH front
//! door, for the endpoints and agentless SSH targets you may see (the
//! gateway answers for a target as for an endpoint, and logs in to it with
//! the credential it injects: plain `ssh db-01` needs no password of yours).
//!
//! Each name takes the one-step route: `ssh web-01` connects straight to
//! the front door as `alice+web-01`, one SSH connection and one login. A
//! user name typed on the command line (`ssh root@web-01`, `scp f
//! root@web-01:`) would replace that one, so a `Match` on any other user
//! name sends those through `ProxyJump` instead (the gateway's inner
//! server, which takes any name), as `ssh -J` does. `ssh -G NAME` shows
//! which route a command line takes.
//!
//! The gateway's host key goes to a known-hosts file of its own
//! (`~/.ssh/jumpgate_known_hosts`, under one `HostKeyAlias`: the gateway
//! answers as every endpoint with the same key). Every entry logs in with
//! jg's key and the short-lived certificate `jg login` got for it
//! (`IdentityFile`, `CertificateFile`), when there. Running it again
//! replaces the block (new endpoints, a new port).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use jumpgate_client::Client;

use super::Ctx;
use crate::state;

/// The markers around the block this command owns.
const BEGIN: &str = "# >>> jumpgate (jg ssh-config) >>>";
const END: &str = "# <<< jumpgate (jg ssh-config) <<<";

/// At most this many names on one `Host` line of the block.
const HOST_LINE_NAMES: usize = 50;

pub(crate) async fn run(
    ctx: &Ctx,
    client: &Client,
    ssh_dir: Option<PathBuf>,
    print: bool,
) -> anyhow::Result<()> {
    let st = state::load(&ctx.state_dir)?.context("not logged in: run `jg login` first")?;
    let info = client
        .ssh_host_key()
        .await
        .context("reading the gateway's SSH host key")?;
    let Some(port) = info.port else {
        bail!("the gateway's SSH front door is off (`[ssh] listen` in its configuration)");
    };
    let host = gateway_host(&st.server)?;
    let usable = |n: &String| {
        n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let mut names: Vec<String> = client
        .endpoints()
        .await
        .context("listing endpoints")?
        .into_iter()
        .map(|e| e.name)
        .filter(usable)
        .collect();
    let endpoints = names.len();
    // SSH targets (a TCP target has no shell to log in to); a gateway
    // without targets answers 404: none then.
    let targets: Vec<String> = match client.targets().await {
        Ok(t) => t
            .into_iter()
            .filter(|t| t.kind == "ssh")
            .map(|t| t.name)
            .filter(usable)
            .collect(),
        Err(jumpgate_client::ClientError::Api { status: 404, .. }) => Vec::new(),
        Err(e) => return Err(e).context("listing targets"),
    };
    let target_count = targets.len();
    names.extend(targets);
    names.sort();
    names.dedup();
    let dir = match ssh_dir {
        Some(d) => d,
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".ssh"),
    };
    let known = dir.join("jumpgate_known_hosts");
    // jg's own key and the certificate `jg login` got for it, when there.
    let identity = super::ssh_cert::key_file(&ctx.state_dir);
    let identity = identity
        .exists()
        .then(|| (identity.clone(), super::ssh_cert::cert_file(&ctx.state_dir)));
    let block = block(
        &host,
        port,
        &st.username,
        &names,
        &known,
        identity.as_ref().map(|(k, c)| (k.as_path(), c.as_path())),
    );
    let alias = alias(&host);
    if print {
        outln!("{block}")?;
        outln!("# {}: {alias} {}", known.display(), info.public_key)?;
        return Ok(());
    }
    jumpgate_net::fs::create_private_dir(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    jumpgate_net::fs::write_atomic(
        &known,
        format!("{alias} {}\n", info.public_key).as_bytes(),
        0o600,
    )
    .with_context(|| format!("writing {}", known.display()))?;
    let config = dir.join("config");
    let old = match std::fs::read_to_string(&config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", config.display())),
    };
    jumpgate_net::fs::write_atomic(&config, replace_block(&old, &block).as_bytes(), 0o600)
        .with_context(|| format!("writing {}", config.display()))?;
    outln!(
        "wrote {} (gateway {host}:{port}, {endpoints} endpoint(s), {target_count} SSH target(s)) and {}; host key {}",
        config.display(),
        known.display(),
        info.fingerprint
    )?;
    Ok(())
}

/// The host part of `https://HOST[:PORT]`.
fn gateway_host(server: &str) -> anyhow::Result<String> {
    let rest = server
        .strip_prefix("https://")
        .context("the saved server is not an https:// URL")?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
        None => hostport
            .rsplit_once(':')
            .map_or(hostport, |(h, _)| h)
            .to_owned(),
    };
    if host.is_empty() {
        bail!("no host in the saved server URL `{server}`");
    }
    Ok(host)
}

fn alias(host: &str) -> String {
    format!("jumpgate-{host}")
}

/// The config block: the gateway, then the endpoints through it.
/// `identity`: jg's key and certificate files (every entry logs in with
/// them).
fn block(
    host: &str,
    port: u16,
    user: &str,
    endpoints: &[String],
    known: &Path,
    identity: Option<(&Path, &Path)>,
) -> String {
    let alias = alias(host);
    let mut common = format!(
        "  HostKeyAlias {alias}\n  UserKnownHostsFile \"{}\"\n",
        known.display()
    );
    if let Some((key, cert)) = identity {
        common.push_str(&format!(
            "  IdentityFile \"{}\"\n  CertificateFile \"{}\"\n",
            key.display(),
            cert.display()
        ));
    }
    let mut b =
        format!("{BEGIN}\nHost {alias}\n  HostName {host}\n  Port {port}\n  User {user}\n{common}");
    if !endpoints.is_empty() {
        // ssh keeps the first value it reads for each option, and a user
        // name from the command line comes before them all. So: this
        // name's one-step user unless one was typed; then, for any other
        // user name, the ProxyJump route (its HostName and Port coming
        // first); then the front door's address for the one-step route.
        for e in endpoints {
            b.push_str(&format!(
                "Host {e}\n  User {user}+{e}\n\
                 Match originalhost {e} user *,!{user}+{e}\n  \
                 HostName {e}\n  Port 22\n  ProxyJump {alias}\n"
            ));
        }
        // One `Host` line with thousands of names costs ssh more to read
        // than the same names on short lines: `ssh -G` reads a 5,000-name
        // block in 84 ms with one line, in 31 ms with lines of 50
        // (docs/benchmarks.md).
        for names in endpoints.chunks(HOST_LINE_NAMES) {
            b.push_str(&format!(
                "Host {}\n  HostName {host}\n  Port {port}\n{common}",
                names.join(" ")
            ));
        }
    }
    b.push_str(END);
    b
}

/// `config` with its jumpgate block replaced by `block`, or `block` put
/// first (ssh takes the first value it finds for each option).
fn replace_block(config: &str, block: &str) -> String {
    if let (Some(start), Some(end)) = (config.find(BEGIN), config.find(END))
        && start < end
    {
        let after = &config[end + END.len()..];
        return format!("{}{block}{after}", &config[..start]);
    }
    if config.is_empty() {
        format!("{block}\n")
    } else {
        format!("{block}\n\n{config}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_goes_first_and_is_replaced_in_place() {
        let known = Path::new("/home/a/.ssh/jumpgate_known_hosts");
        let b1 = block("gw.example", 22, "alice", &["web-01".into()], known, None);
        assert!(
            b1.contains("Host jumpgate-gw.example\n  HostName gw.example\n  Port 22\n  User alice")
        );
        // One step unless another user name was typed, then ProxyJump.
        assert!(b1.contains(
            "Host web-01\n  User alice+web-01\n\
             Match originalhost web-01 user *,!alice+web-01\n  \
             HostName web-01\n  Port 22\n  ProxyJump jumpgate-gw.example\n\
             Host web-01\n  HostName gw.example\n  Port 22\n"
        ));
        let mine = "Host *\n  ServerAliveInterval 30\n";
        let once = replace_block(mine, &b1);
        assert!(once.starts_with(BEGIN) && once.ends_with(mine), "{once}");
        let b2 = block(
            "gw.example",
            2222,
            "alice",
            &["db-02".into(), "web-01".into()],
            known,
            Some((Path::new("/h/k"), Path::new("/h/k-cert.pub"))),
        );
        let twice = replace_block(&once, &b2);
        assert_eq!(twice.matches(BEGIN).count(), 1, "{twice}");
        assert_eq!(twice.matches("  Port 2222\n").count(), 2, "{twice}");
        assert!(!twice.contains("Port 22\n  User alice\n"), "{twice}");
        assert!(twice.contains("User alice+db-02\n") && twice.contains("User alice+web-01\n"));
        assert!(twice.contains("Host db-02 web-01\n  HostName gw.example\n  Port 2222\n"));
        assert!(twice.ends_with(mine));
        // The gateway's entry and the endpoints' log in with jg's certificate.
        assert_eq!(
            twice.matches("CertificateFile \"/h/k-cert.pub\"").count(),
            2
        );
        assert_eq!(twice.matches("IdentityFile \"/h/k\"").count(), 2);
        assert!(!once.contains("CertificateFile"));
    }

    #[test]
    fn many_names_are_spread_over_short_host_lines() {
        let names: Vec<String> = (0..HOST_LINE_NAMES * 2 + 1)
            .map(|i| format!("h{i}"))
            .collect();
        let b = block("gw", 22, "a", &names, Path::new("/k"), None);
        let address_lines: Vec<Vec<&str>> = b
            .split("Host ")
            .filter(|entry| entry.contains("\n  HostName gw\n"))
            .map(|entry| entry.lines().next().unwrap().split(' ').collect())
            .filter(|line: &Vec<&str>| line[0] != "jumpgate-gw")
            .collect();
        assert_eq!(
            address_lines.iter().map(Vec::len).collect::<Vec<_>>(),
            [HOST_LINE_NAMES, HOST_LINE_NAMES, 1],
            "{b}"
        );
        // Every name once, in order.
        assert_eq!(address_lines.concat(), names);
    }

    #[test]
    fn the_gateway_host_comes_from_the_saved_url() {
        assert_eq!(
            gateway_host("https://gw.example:8443").unwrap(),
            "gw.example"
        );
        assert_eq!(gateway_host("https://127.0.0.1:443/").unwrap(), "127.0.0.1");
        assert_eq!(gateway_host("https://[::1]:443").unwrap(), "::1");
        assert!(gateway_host("http://x").is_err());
    }
}
