//! `jg admin webhooks add|list|remove|rotate-secret|set-auth|deliveries|replay`:
//! outbound events to ITSM/SIEM receivers.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::webhooks::{Delivery, NewWebhook, Replay, Webhook, WebhookSecret};
use jumpgate_client::Client;

use super::print_json;
use crate::args::{list_cell, parse_duration};
use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum WebhooksCommand {
    /// List subscriptions with their queues' counts (never their secrets).
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Subscribe a receiver; its signing secret is printed once.
    Add(Box<AddArgs>),
    /// Remove a subscription and its queue.
    Remove {
        /// The subscription's name.
        name: String,
    },
    /// Give a subscription a new signing secret, printed once; the old one stops at once.
    RotateSecret {
        /// The subscription's name.
        name: String,
        /// Print the API's JSON (with the secret).
        #[arg(long)]
        json: bool,
    },
    /// Set, replace or remove the `Authorization` header every delivery
    /// carries (a new token, another account). Deliveries waiting for a
    /// retry are tried again at once.
    SetAuth {
        /// The subscription's name.
        name: String,
        /// A file holding the header's value (`Bearer …`, `Basic …`).
        /// Stored sealed, never shown back.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "none",
            conflicts_with = "none"
        )]
        auth_header_file: Option<PathBuf>,
        /// Send no `Authorization` header any more.
        #[arg(long)]
        none: bool,
    },
    /// Deliveries, newest first (at most 500).
    Deliveries {
        /// Only this subscription's.
        subscription: Option<String>,
        /// Only dead ones (retry period over).
        #[arg(long)]
        dead: bool,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Queue dead deliveries again: by id, or every dead one.
    Replay {
        /// Delivery ids (see `deliveries --dead`).
        ids: Vec<i64>,
        /// Every dead delivery (of --subscription when given).
        #[arg(long, conflicts_with = "ids")]
        all_dead: bool,
        /// Only this subscription's deliveries.
        #[arg(long)]
        subscription: Option<String>,
    },
}

// `jg admin webhooks add`, boxed in its variant: by far the largest.
#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// The receiver's URL: https://… (plain http:// only to a loopback address).
    url: String,
    /// Audit actions, comma-separated, each optionally :OUTCOME
    /// (lockout,session-open:denied), or `all`.
    #[arg(long, value_name = "LIST", value_delimiter = ',', required = true)]
    events: Vec<String>,
    /// Only entries concerning this endpoint group; repeat (or
    /// comma-separate) for several: an entry about one of them.
    #[arg(
        long = "group",
        visible_alias = "groups",
        value_name = "GROUP",
        value_delimiter = ','
    )]
    groups: Vec<String>,
    /// The subscription's name [default: wh- and random characters].
    #[arg(long)]
    name: Option<String>,
    /// The payload: json, servicenow (an incident) or jira (an issue).
    #[arg(long, default_value = "json")]
    format: String,
    /// Jira: the project key (needed with --format jira).
    #[arg(long, value_name = "KEY")]
    jira_project: Option<String>,
    /// Jira: the issue type's name [default: Task].
    #[arg(long, value_name = "NAME")]
    jira_issue_type: Option<String>,
    /// ServiceNow: the incident's category [default: security].
    #[arg(long, value_name = "NAME")]
    servicenow_category: Option<String>,
    /// A PEM file with the CA the receiver's certificate must chain to
    /// (else the system's roots).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// A file holding the `Authorization` header value sent with each
    /// delivery (`Bearer …`, `Basic …`: a ServiceNow or Jira account).
    /// Stored sealed, never shown back.
    #[arg(long, value_name = "FILE")]
    auth_header_file: Option<PathBuf>,
    /// How long a failing delivery is retried before it is dead
    /// (90s, 15m, 24h, 7d) [default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    retry_for: Option<u64>,
    /// Print the API's JSON (with the secret).
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(client: &Client, cmd: WebhooksCommand) -> anyhow::Result<()> {
    match cmd {
        WebhooksCommand::List { json } => {
            let all = client.webhooks().await.context("listing webhooks")?;
            if json {
                print_json(&all)?;
            } else {
                out!("{}", render(&all))?;
            }
        }
        WebhooksCommand::Add(args) => {
            let AddArgs {
                url,
                events,
                groups,
                name,
                format,
                jira_project,
                jira_issue_type,
                servicenow_category,
                ca_file,
                auth_header_file,
                retry_for,
                json,
            } = *args;
            let auth_header = auth_header_file.as_deref().map(read_auth).transpose()?;
            let ca_pem = match ca_file {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("reading --ca-file {}", p.display()))?,
                ),
                None => None,
            };
            let req = NewWebhook {
                name,
                url: url.clone(),
                events,
                groups,
                format: Some(format),
                jira_project,
                jira_issue_type,
                servicenow_category,
                ca_pem,
                auth_header,
                retry_for_secs: retry_for,
            };
            let s = client
                .webhook_add(&req)
                .await
                .with_context(|| format!("adding a webhook to {url}"))?;
            show_secret(&s, json)?;
        }
        WebhooksCommand::Remove { name } => {
            client
                .webhook_remove(&name)
                .await
                .with_context(|| format!("removing webhook {name}"))?;
            outln!("Removed webhook {name}")?;
        }
        WebhooksCommand::RotateSecret { name, json } => {
            let s = client
                .webhook_rotate_secret(&name)
                .await
                .with_context(|| format!("rotating the secret of webhook {name}"))?;
            show_secret(&s, json)?;
        }
        WebhooksCommand::SetAuth {
            name,
            auth_header_file,
            none,
        } => {
            let value = match (&auth_header_file, none) {
                (Some(p), false) => Some(read_auth(p)?),
                (None, true) => None,
                // clap refuses both and neither.
                _ => anyhow::bail!("give --auth-header-file FILE or --none"),
            };
            let w = client
                .webhook_set_auth(&name, value.as_deref())
                .await
                .with_context(|| format!("changing the Authorization header of webhook {name}"))?;
            if w.auth_header {
                outln!("Webhook {name}: deliveries carry the new Authorization header")?;
            } else {
                outln!("Webhook {name}: deliveries carry no Authorization header")?;
            }
        }
        WebhooksCommand::Deliveries {
            subscription,
            dead,
            json,
        } => {
            let all = client
                .webhook_deliveries(subscription.as_deref(), dead)
                .await
                .context("listing webhook deliveries")?;
            if json {
                print_json(&all)?;
            } else {
                out!("{}", render_deliveries(&all))?;
            }
        }
        WebhooksCommand::Replay {
            ids,
            all_dead,
            subscription,
        } => {
            if ids.is_empty() && !all_dead {
                anyhow::bail!("give delivery ids or --all-dead");
            }
            let r = client
                .webhook_replay(&Replay {
                    ids,
                    all_dead,
                    subscription,
                })
                .await
                .context("replaying webhook deliveries")?;
            outln!("Queued {} deliveries again", r.count)?;
        }
    }
    Ok(())
}

/// The `Authorization` header value in `path` (its line ending dropped).
fn read_auth(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --auth-header-file {}", path.display()))?;
    let v = text.trim_end_matches(['\r', '\n']);
    if v.trim().is_empty() {
        anyhow::bail!("--auth-header-file {}: the file is empty", path.display());
    }
    Ok(v.to_owned())
}

fn show_secret(s: &WebhookSecret, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(s)
    } else {
        out!(
            "{}",
            table::fields(&[
                ("name", s.webhook.name.clone()),
                ("url", s.webhook.url.clone()),
                ("secret", s.secret.clone()),
            ])
        )?;
        outln!("The secret is shown only once: give it to the receiver now (docs/webhooks.md).")?;
        Ok(())
    }
}

fn render(all: &[Webhook]) -> String {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.url.clone(),
                if w.auth_header {
                    format!("{} +authorization", w.format)
                } else {
                    w.format.clone()
                },
                list_cell(&w.events),
                list_cell(&w.groups),
                w.pending.to_string(),
                w.delivered.to_string(),
                w.dead.to_string(),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "URL",
            "FORMAT",
            "EVENTS",
            "GROUPS",
            "PENDING",
            "DELIVERED",
            "DEAD",
        ],
        &rows,
    )
}

fn render_deliveries(all: &[Delivery]) -> String {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.subscription.clone(),
                d.entry_id.to_string(),
                d.action.clone(),
                d.state.clone(),
                d.attempts.to_string(),
                d.last_error.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "SUBSCRIPTION",
            "EVENT",
            "ACTION",
            "STATE",
            "ATTEMPTS",
            "LAST ERROR",
        ],
        &rows,
    )
}
