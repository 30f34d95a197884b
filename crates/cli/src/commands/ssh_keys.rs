//! `jg ssh-keys add|list|remove`: the caller's SSH public keys, with which
//! stock OpenSSH clients log in through the gateway's SSH front door
//! (`ssh alice+web-01@gateway`, `ssh -J alice@gateway web-01`).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::ssh::SshKey;
use jumpgate_client::Client;

use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum SshKeysCommand {
    /// Register a public key: FILE (e.g. ~/.ssh/id_ed25519.pub), or `-`
    /// for standard input.
    Add {
        /// The public key file (OpenSSH format, one line), or `-` for
        /// standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List your SSH keys.
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove one of your SSH keys by its id (see `jg ssh-keys list`).
    Remove {
        /// The key's id, as `jg ssh-keys list` shows it.
        #[arg(value_name = "ID")]
        id: String,
    },
}

pub(crate) async fn run(client: &Client, cmd: SshKeysCommand) -> anyhow::Result<()> {
    match cmd {
        SshKeysCommand::Add { file } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .take(64 * 1024)
                    .read_to_string(&mut s)
                    .context("reading the public key from standard input")?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let key = client
                .add_ssh_key(text.trim())
                .await
                .context("adding the SSH key")?;
            outln!("added {} {} ({})", key.id, key.fingerprint, key.algorithm)?;
        }
        SshKeysCommand::List { json } => {
            let keys = client.ssh_keys().await.context("listing SSH keys")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&keys)?)?;
            } else {
                out!("{}", render(&keys))?;
            }
        }
        SshKeysCommand::Remove { id } => {
            client
                .remove_ssh_key(&id)
                .await
                .with_context(|| format!("removing SSH key `{id}`"))?;
            outln!("removed {id}")?;
        }
    }
    Ok(())
}

fn render(keys: &[SshKey]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.fingerprint.clone(),
                k.algorithm.clone(),
                table::printable(&k.comment).into_owned(),
                table::timestamp(&k.created_at),
                k.last_used_at
                    .as_deref()
                    .map_or_else(|| "never".to_owned(), table::timestamp),
            ]
        })
        .collect();
    table::render(
        &["ID", "FINGERPRINT", "TYPE", "COMMENT", "ADDED", "LAST USED"],
        &rows,
    )
}
