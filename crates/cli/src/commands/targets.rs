//! `jg targets add|list|show|remove`: agentless targets reached through a
//! jump point, and `jg endpoints jump-point NAME on|off`.
//!
//! A target's credential is named, never given: it is a vault secret that
//! the gateway hands to the jump point for each connection.

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::targets::{NewTarget, Target};
use jumpgate_client::Client;

use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum TargetsCommand {
    /// Add a target: an SSH server (shell, exec, cp, forward through it)
    /// or a TCP service (forward), reached through jump point AGENT.
    Add {
        /// The target's name (sessions open it like an endpoint).
        name: String,
        /// The jump point: an endpoint marked with `jg endpoints jump-point`.
        #[arg(long, value_name = "AGENT")]
        via: String,
        /// An SSH server, HOST[:PORT] (port 22 by default).
        #[arg(
            long,
            value_name = "HOST[:PORT]",
            conflicts_with = "tcp",
            required_unless_present = "tcp"
        )]
        ssh: Option<String>,
        /// A TCP service, HOST:PORT (forwarding only).
        #[arg(long, value_name = "HOST:PORT")]
        tcp: Option<String>,
        /// SSH: the account to log in as.
        #[arg(long, value_name = "U", requires = "ssh")]
        user: Option<String>,
        /// SSH: the vault secret holding the account's password or private
        /// key (injected by the gateway; never shown to technicians).
        #[arg(long, value_name = "VAULT_NAME", requires = "ssh")]
        credential: Option<String>,
        /// SSH: the host key to pin, OpenSSH text (`ssh-ed25519 AAAA…`).
        #[arg(long, value_name = "KEY", conflicts_with = "trust_on_first_use")]
        host_key: Option<String>,
        /// SSH: trust the key the host offers the first time (stored and
        /// audited; a different key later is refused).
        #[arg(long)]
        trust_on_first_use: bool,
        /// SSH: after each session, set a new random password on the
        /// account and store it as the secret's next version.
        #[arg(long)]
        rotate_after_use: bool,
        /// The endpoint group it belongs to [default: default].
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
    },
    /// List the targets you can see.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one target.
    Show {
        /// The target's name.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-pin an SSH target's host key (the host was rebuilt or its key
    /// changed), or go back to trusting the key offered on next use.
    SetHostKey {
        /// The target's name.
        name: String,
        /// The host key to pin, OpenSSH text (`ssh-ed25519 AAAA…`).
        #[arg(
            value_name = "KEY",
            conflicts_with = "trust_on_first_use",
            required_unless_present = "trust_on_first_use"
        )]
        key: Option<String>,
        /// Forget the pinned key; trust the one offered on next use.
        #[arg(long)]
        trust_on_first_use: bool,
    },
    /// Remove a target (live sessions on it end).
    Remove {
        /// The target's name.
        name: String,
    },
}

pub(crate) async fn run(client: &Client, cmd: TargetsCommand) -> anyhow::Result<()> {
    match cmd {
        TargetsCommand::Add {
            name,
            via,
            ssh,
            tcp,
            user,
            credential,
            host_key,
            trust_on_first_use,
            rotate_after_use,
            group,
        } => {
            let new = NewTarget {
                name,
                group,
                via,
                ssh,
                tcp,
                user,
                credential,
                host_key,
                trust_on_first_use,
                rotate_after_use,
            };
            let t = client.target_add(&new).await.context("adding the target")?;
            outln!("added target {}", t.name)?;
            out!("{}", details(&t))?;
        }
        TargetsCommand::List { json } => {
            let all = client.targets().await.context("listing targets")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&all)?)?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.group.clone(),
                            t.kind.clone(),
                            address(t),
                            t.via.clone(),
                            t.user.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table::render(&["NAME", "GROUP", "KIND", "ADDRESS", "VIA", "USER"], &rows)
                )?;
            }
        }
        TargetsCommand::Show { name, json } => {
            let t = client.target(&name).await.context("reading the target")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&t)?)?;
            } else {
                out!("{}", details(&t))?;
            }
        }
        TargetsCommand::SetHostKey {
            name,
            key,
            trust_on_first_use,
        } => {
            let req = jumpgate_api_types::targets::SetHostKey {
                host_key: key,
                trust_on_first_use,
            };
            let t = client
                .target_set_host_key(&name, &req)
                .await
                .context("setting the target's host key")?;
            outln!(
                "target {}: host key {}",
                t.name,
                t.host_key_fingerprint
                    .as_deref()
                    .unwrap_or("trusted on first use")
            )?;
        }
        TargetsCommand::Remove { name } => {
            client
                .target_remove(&name)
                .await
                .context("removing the target")?;
            outln!("removed target {name}")?;
        }
    }
    Ok(())
}

/// A jump point's list as shown: the rules, or `any`.
fn allowed(allow: Option<&[String]>) -> String {
    allow.map_or_else(|| "any".to_owned(), |a| a.join(", "))
}

/// `jg endpoints jump-point NAME on|off [--allow DEST]…`.
pub(crate) async fn jump_point(
    client: &Client,
    name: &str,
    on: bool,
    allow: Option<Vec<String>>,
) -> anyhow::Result<()> {
    if !on && allow.is_some() {
        anyhow::bail!("--allow goes with `on`");
    }
    let state = client
        .set_jump_point(name, on, allow)
        .await
        .context("marking the jump point")?;
    if !state.on {
        outln!("endpoint {} is no longer a jump point", state.endpoint)?;
        return Ok(());
    }
    outln!(
        "endpoint {} is now a jump point; allowed destinations: {}",
        state.endpoint,
        allowed(state.allow.as_deref())
    )?;
    if !state.outside.is_empty() {
        eprintln!(
            "jg: warning: these targets through it are outside the list now, and their sessions are refused: {}",
            state.outside.join(", ")
        );
    }
    Ok(())
}

/// `jg endpoints jump-points [--json]`.
pub(crate) async fn jump_points(client: &Client, json: bool) -> anyhow::Result<()> {
    let all = client.jump_points().await.context("listing jump points")?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&all)?)?;
        return Ok(());
    }
    if all.is_empty() {
        outln!("no jump points")?;
    }
    for j in &all {
        outln!(
            "{}  allowed destinations: {}",
            j.endpoint,
            allowed(j.allow.as_deref())
        )?;
    }
    Ok(())
}

pub(crate) fn address(t: &Target) -> String {
    if t.host.contains(':') {
        format!("[{}]:{}", t.host, t.port)
    } else {
        format!("{}:{}", t.host, t.port)
    }
}

fn details(t: &Target) -> String {
    let mut rows = vec![
        ("name", t.name.clone()),
        ("group", t.group.clone()),
        ("kind", t.kind.clone()),
        ("address", address(t)),
        ("via", t.via.clone()),
    ];
    if t.kind == "ssh" {
        rows.push(("user", t.user.clone().unwrap_or_default()));
        rows.push(("credential", t.credential.clone().unwrap_or_default()));
        rows.push((
            "host key",
            t.host_key_fingerprint
                .clone()
                .unwrap_or_else(|| "(trust on first use: not seen yet)".into()),
        ));
        rows.push((
            "rotate after use",
            if t.rotate_after_use { "yes" } else { "no" }.into(),
        ));
    }
    rows.push(("created", table::timestamp(&t.created_at)));
    table::fields(&rows)
}
