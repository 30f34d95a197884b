//! `jg admin alerts list|add|remove` (mail alert rules) and `jg admin smtp
//! test ADDRESS`.

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::alerts::{AlertRule, NewAlertRule};
use jumpgate_client::Client;

use super::print_json;
use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum AlertsCommand {
    /// List alert rules with their mail counts.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add an alert rule: audit actions that send mail, and to whom.
    Add(Box<AddRule>),
    /// Remove an alert rule (mail it queued is still sent).
    Remove {
        /// The rule's name.
        name: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct AddRule {
    /// The rule's name.
    name: String,
    /// An audit action (`lockout`, `open-session:*` for a prefix);
    /// repeat for several.
    #[arg(long = "event", value_name = "ACTION", required = true)]
    events: Vec<String>,
    /// Only entries with this outcome (`denied`, `failed`, …).
    #[arg(long)]
    outcome: Option<String>,
    /// Only entries concerning this endpoint group (a session on one of
    /// its endpoints, …); repeat for several: an entry about one of them.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// A user whose email gets the mail (repeat).
    #[arg(long = "user", value_name = "USER")]
    users: Vec<String>,
    /// A role whose members' emails get the mail (repeat).
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// An address that gets the mail (repeat).
    #[arg(long = "to", value_name = "ADDRESS")]
    addresses: Vec<String>,
    /// The approvers of an access request's group (with
    /// `--event access-request` and the other `access-*` events); for an
    /// elevation request, the holders of `epm-approve` on its group.
    #[arg(long)]
    approvers: bool,
    /// One digest mail per window (`15m`, `1h`) instead of one per event.
    #[arg(long, value_name = "DURATION")]
    digest: Option<String>,
    /// At most this many mails (digest entries) per hour [default: 60].
    #[arg(long)]
    max_per_hour: Option<u32>,
    /// Subject template (`{action}`, `{actor}`, `{target}`, `{outcome}`,
    /// `{at}`, `{groups}`, `{detail}`, `{id}`, `{rule}`).
    #[arg(long)]
    subject: Option<String>,
    /// Body template (the same placeholders).
    #[arg(long)]
    body: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SmtpCommand {
    /// Send a test mail through the gateway's mail server now.
    Test {
        /// Where to send it.
        address: String,
    },
}

pub(crate) async fn run(client: &Client, cmd: AlertsCommand) -> anyhow::Result<()> {
    match cmd {
        AlertsCommand::List { json } => {
            let rules = client.alert_rules().await.context("listing alert rules")?;
            if json {
                print_json(&rules)?;
            } else {
                out!("{}", render(&rules))?;
            }
        }
        AlertsCommand::Add(add) => {
            let AddRule {
                name,
                events,
                outcome,
                groups,
                users,
                roles,
                addresses,
                approvers,
                digest,
                max_per_hour,
                subject,
                body,
                json,
            } = *add;
            let req = NewAlertRule {
                name: name.clone(),
                events,
                outcome,
                groups,
                users,
                roles,
                addresses,
                approvers,
                digest_every: digest,
                max_per_hour,
                subject,
                body,
            };
            let r = client
                .alert_rule_add(&req)
                .await
                .with_context(|| format!("adding alert rule {name}"))?;
            if json {
                print_json(&r)?;
            } else {
                outln!("Added alert rule {} ({})", r.name, r.events.join(", "))?;
            }
        }
        AlertsCommand::Remove { name } => {
            client
                .alert_rule_remove(&name)
                .await
                .with_context(|| format!("removing alert rule {name}"))?;
            outln!("Removed alert rule {name}")?;
        }
    }
    Ok(())
}

pub(crate) async fn smtp(client: &Client, cmd: SmtpCommand) -> anyhow::Result<()> {
    match cmd {
        SmtpCommand::Test { address } => {
            let sent = client
                .smtp_test(&address)
                .await
                .with_context(|| format!("sending a test mail to {address}"))?;
            outln!("Sent a test mail to {} (server: {})", sent.to, sent.reply)?;
        }
    }
    Ok(())
}

fn render(rules: &[AlertRule]) -> String {
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            let mut to: Vec<String> = Vec::new();
            to.extend(r.users.iter().map(|u| format!("user:{u}")));
            to.extend(r.roles.iter().map(|u| format!("role:{u}")));
            to.extend(r.addresses.iter().cloned());
            if r.approvers {
                to.push("approvers".into());
            }
            vec![
                r.name.clone(),
                r.events.join(","),
                r.outcome.clone().unwrap_or_else(|| "-".into()),
                if r.groups.is_empty() {
                    "any".into()
                } else {
                    r.groups.join(",")
                },
                to.join(","),
                if r.mode == "digest" {
                    format!("digest {}s", r.digest_every_secs)
                } else {
                    "each".into()
                },
                format!("{}/h", r.max_per_hour),
                r.sent.to_string(),
                r.waiting.to_string(),
                r.limited.to_string(),
                r.dead.to_string(),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME", "EVENTS", "OUTCOME", "GROUPS", "TO", "MODE", "LIMIT", "SENT", "WAITING",
            "LIMITED", "DEAD",
        ],
        &rows,
    )
}
