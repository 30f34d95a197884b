//! `jg admin api-clients list|create|rotate|delete`.

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::{ApiClient, ApiClientSecret, CreateApiClient};
use jumpgate_client::Client;

use super::print_json;
use crate::args::{Groups, Scopes, list_cell};
use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum ApiClientsCommand {
    /// List API clients (never their secrets).
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create an API client; its secret is printed once.
    Create {
        /// The API client's name.
        name: String,
        /// read, write or read,write.
        #[arg(long, value_name = "LIST")]
        scopes: Scopes,
        /// The role whose permissions the client holds (within its scopes).
        #[arg(long)]
        role: String,
        /// Endpoint groups, comma-separated; '*' means all groups (quote it).
        #[arg(long, value_name = "LIST")]
        groups: Option<Groups>,
        /// Print the API's JSON (with the secret).
        #[arg(long)]
        json: bool,
    },
    /// Give an API client a new secret, printed once; the old one stops working.
    Rotate {
        /// The API client's name.
        name: String,
        /// Print the API's JSON (with the secret).
        #[arg(long)]
        json: bool,
    },
    /// Delete an API client.
    Delete {
        /// The API client's name.
        name: String,
    },
}

pub(crate) async fn run(client: &Client, cmd: ApiClientsCommand) -> anyhow::Result<()> {
    match cmd {
        ApiClientsCommand::List { json } => {
            let clients = client.api_clients().await.context("listing API clients")?;
            if json {
                print_json(&clients)?;
            } else {
                out!("{}", render(&clients))?;
            }
        }
        ApiClientsCommand::Create {
            name,
            scopes,
            role,
            groups,
            json,
        } => {
            let req = CreateApiClient {
                name: name.clone(),
                scopes: scopes.0,
                role,
                groups: groups.map(|g| g.0).unwrap_or_default(),
            };
            let s = client
                .create_api_client(&req)
                .await
                .with_context(|| format!("creating API client {name}"))?;
            show_secret(&s, json)?;
        }
        ApiClientsCommand::Rotate { name, json } => {
            let s = client
                .rotate_api_client(&name)
                .await
                .with_context(|| format!("rotating the secret of API client {name}"))?;
            show_secret(&s, json)?;
        }
        ApiClientsCommand::Delete { name } => {
            client
                .delete_api_client(&name)
                .await
                .with_context(|| format!("deleting API client {name}"))?;
            outln!("Deleted API client {name}")?;
        }
    }
    Ok(())
}

fn show_secret(s: &ApiClientSecret, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(s)
    } else {
        out!("{}", render_secret(s))?;
        Ok(())
    }
}

fn render_secret(s: &ApiClientSecret) -> String {
    let mut out = table::fields(&[
        ("client_id", s.client_id.clone()),
        ("client_secret", s.client_secret.clone()),
    ]);
    out.push_str("The client secret is shown only once: store it now.\n");
    out
}

fn render(clients: &[ApiClient]) -> String {
    let rows: Vec<Vec<String>> = clients
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.client_id.clone(),
                list_cell(&c.scopes),
                c.role.clone(),
                list_cell(&c.groups),
                table::timestamp(&c.created_at),
                table::timestamp(&c.secret_rotated_at),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "CLIENT ID",
            "SCOPES",
            "ROLE",
            "GROUPS",
            "CREATED",
            "SECRET ROTATED",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_clients_table() {
        let out = render(&[ApiClient {
            client_id: "jgc_01".into(),
            name: "ci".into(),
            scopes: vec!["read".into(), "write".into()],
            role: "auditor".into(),
            groups: vec![],
            created_at: "2025-01-01T00:00:00Z".into(),
            secret_rotated_at: "2025-03-01T12:00:00Z".into(),
        }]);
        assert_eq!(
            out,
            "NAME  CLIENT ID  SCOPES      ROLE     GROUPS  CREATED              SECRET ROTATED\n\
             ci    jgc_01     read,write  auditor  -       2025-01-01 00:00:00  2025-03-01 12:00:00\n"
        );
    }

    #[test]
    fn secrets_are_printed_once_with_a_warning() {
        let s = ApiClientSecret {
            client_id: "jgc_01".into(),
            client_secret: "jgs_very_secret".into(),
        };
        assert_eq!(
            render_secret(&s),
            "client_id:      jgc_01\n\
             client_secret:  jgs_very_secret\n\
             The client secret is shown only once: store it now.\n"
        );
    }
}
