//! `jg vault put|get|list|delete|recover|purge|versions|settings|protect`:
//! the gateway's vault. Values are read from standard input or a file,
//! never from the command line (where `ps` and shell history would see
//! them).

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::{SecretInfo, SecretVersion};
use jumpgate_client::Client;

use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {
    /// Store a new version of secret NAME; the value comes from standard
    /// input, or from FILE with --file.
    Put {
        /// The secret's name.
        name: String,
        /// Read the value from FILE instead of standard input.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Keep a trailing newline (by default one is dropped, as `echo`
        /// and editors add it).
        #[arg(long)]
        exact: bool,
    },
    /// Print the value of secret NAME (every read is audited).
    Get {
        /// The secret's name.
        name: String,
        /// An older version instead of the latest.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
    },
    /// List secrets (names and versions, never values).
    List {
        /// The soft-deleted secrets (recoverable) instead.
        #[arg(long)]
        deleted: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the versions of secret NAME.
    Versions {
        /// The secret's name.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete secret NAME; it stays recoverable for the site's retention.
    Delete {
        /// The secret's name.
        name: String,
    },
    /// Bring back a deleted secret, with all its versions.
    Recover {
        /// The secret's name.
        name: String,
    },
    /// Remove a deleted secret for good (refused before its retention
    /// ends when purge protection is on).
    Purge {
        /// The secret's name.
        name: String,
    },
    /// Show the vault's retention and purge protection.
    Settings,
    /// Enable purge protection. This cannot be undone.
    Protect,
}

pub(crate) async fn run(client: &Client, cmd: VaultCommand) -> anyhow::Result<()> {
    match cmd {
        VaultCommand::Put { name, file, exact } => {
            let value = read_value(file.as_deref(), exact)?;
            let v = client
                .vault_put(&name, &value)
                .await
                .with_context(|| format!("storing secret `{name}`"))?;
            outln!("stored {} version {}", v.name, v.version)?;
        }
        VaultCommand::Get { name, version } => {
            let (_, value) = client
                .vault_get(&name, version)
                .await
                .with_context(|| format!("reading secret `{name}`"))?;
            crate::out::bytes(&value)?;
            if std::io::stdout().is_terminal() {
                crate::out::bytes(b"\n")?;
            }
        }
        VaultCommand::List { deleted, json } => {
            let list = client
                .vault_list(deleted)
                .await
                .context("listing secrets")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                out!("{}", render_list(&list, deleted))?;
            }
        }
        VaultCommand::Versions { name, json } => {
            let v = client
                .vault_versions(&name)
                .await
                .with_context(|| format!("listing versions of `{name}`"))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                out!("{}", render_versions(&v))?;
            }
        }
        VaultCommand::Delete { name } => {
            let s = client
                .vault_delete(&name)
                .await
                .with_context(|| format!("deleting secret `{name}`"))?;
            outln!(
                "deleted {name}; recoverable until {} (jg vault recover {name})",
                s.purge_after.unwrap_or_default()
            )?;
        }
        VaultCommand::Recover { name } => {
            let s = client
                .vault_recover(&name)
                .await
                .with_context(|| format!("recovering secret `{name}`"))?;
            outln!("recovered {name} (version {})", s.latest_version)?;
        }
        VaultCommand::Purge { name } => {
            client
                .vault_purge(&name)
                .await
                .with_context(|| format!("purging secret `{name}`"))?;
            outln!("purged {name}")?;
        }
        VaultCommand::Settings => {
            let s = client
                .vault_settings()
                .await
                .context("reading vault settings")?;
            out!(
                "{}",
                table::fields(&[
                    ("Retention", format!("{} days", s.retention_days)),
                    (
                        "Purge protection",
                        if s.purge_protection { "on" } else { "off" }.to_owned()
                    ),
                ])
            )?;
        }
        VaultCommand::Protect => {
            client
                .vault_enable_purge_protection()
                .await
                .context("enabling purge protection")?;
            outln!("purge protection is on; it cannot be turned off")?;
        }
    }
    Ok(())
}

/// The value from `file` or standard input; one trailing newline dropped
/// unless `exact`.
fn read_value(file: Option<&Path>, exact: bool) -> anyhow::Result<Vec<u8>> {
    let mut value = Vec::new();
    match file {
        Some(p) if p != Path::new("-") => {
            value = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        }
        _ => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("Secret value (end with Ctrl-D):");
            }
            stdin
                .read_to_end(&mut value)
                .context("reading the value from standard input")?;
        }
    }
    if !exact {
        if value.ends_with(b"\r\n") {
            value.truncate(value.len() - 2);
        } else if value.ends_with(b"\n") {
            value.pop();
        }
    }
    anyhow::ensure!(!value.is_empty(), "the secret value is empty");
    Ok(value)
}

fn render_list(list: &[SecretInfo], deleted: bool) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let mut r = vec![s.name.clone(), s.latest_version.to_string()];
            if deleted {
                r.push(table::timestamp(s.deleted_at.as_deref().unwrap_or("")));
                r.push(table::timestamp(s.purge_after.as_deref().unwrap_or("")));
            } else {
                r.push(table::timestamp(&s.updated_at));
            }
            r
        })
        .collect();
    if deleted {
        table::render(&["NAME", "VERSION", "DELETED", "PURGE AFTER"], &rows)
    } else {
        table::render(&["NAME", "VERSION", "UPDATED"], &rows)
    }
}

fn render_versions(v: &[SecretVersion]) -> String {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                table::timestamp(&v.created_at),
                v.created_by.clone(),
            ]
        })
        .collect();
    table::render(&["VERSION", "CREATED", "BY"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_dropped_unless_exact() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v");
        std::fs::write(&f, b"s3cret\n\n").unwrap();
        assert_eq!(read_value(Some(&f), false).unwrap(), b"s3cret\n");
        assert_eq!(read_value(Some(&f), true).unwrap(), b"s3cret\n\n");
        std::fs::write(&f, b"\n").unwrap();
        assert!(read_value(Some(&f), false).is_err());
    }
}
