//! `jg support key|sessions`: attended support from the technician's side.

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::support::{CreateSupportKey, SupportSessionRow};
use jumpgate_client::Client;

use super::admin::print_json;
use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum SupportCommand {
    /// Make a session key to read out to a customer: they type it at the
    /// support portal, and the session comes straight to you.
    Key {
        /// The queue the session belongs to (default: your first queue).
        #[arg(long)]
        queue: Option<String>,
        /// How long the key works: 90s, 15m, 2h (5s to 24h; default 15m).
        #[arg(long)]
        ttl: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Support sessions in your groups, newest first.
    Sessions {
        /// Only this queue's.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many (1 to 1000; default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(client: &Client, cmd: SupportCommand) -> anyhow::Result<()> {
    match cmd {
        SupportCommand::Key { queue, ttl, json } => {
            let k = client
                .create_support_key(&CreateSupportKey { queue, ttl })
                .await
                .context("making a session key")?;
            if json {
                print_json(&k)?;
            } else {
                outln!("Session key: {}", k.key)?;
                outln!(
                    "Valid until {} (once), queue {}",
                    k.expires_at,
                    k.queue.as_deref().unwrap_or("-")
                )?;
            }
        }
        SupportCommand::Sessions { queue, limit, json } => {
            let rows = client
                .support_sessions(queue.as_deref(), limit)
                .await
                .context("listing support sessions")?;
            if json {
                print_json(&rows)?;
            } else {
                out!("{}", render(&rows))?;
            }
        }
    }
    Ok(())
}

fn secs(s: Option<u64>) -> String {
    s.map_or_else(
        || "-".to_owned(),
        |s| {
            if s >= 60 {
                format!("{}m{:02}s", s / 60, s % 60)
            } else {
                format!("{s}s")
            }
        },
    )
}

fn render(rows: &[SupportSessionRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.requested_at
                    .replace('T', " ")
                    .trim_end_matches('Z')
                    .to_owned(),
                r.queue.clone(),
                r.customer.clone(),
                r.state.clone(),
                secs(r.wait_secs),
                secs(r.duration_secs),
                if r.technicians.is_empty() {
                    "-".to_owned()
                } else {
                    r.technicians.join(",")
                },
                if r.rights_used.is_empty() {
                    "-".to_owned()
                } else {
                    r.rights_used.join(",")
                },
                r.rating
                    .map_or_else(|| "-".to_owned(), |n| format!("{n}/5")),
                r.id.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "REQUESTED",
            "QUEUE",
            "CUSTOMER",
            "STATE",
            "WAIT",
            "DURATION",
            "TECHNICIANS",
            "RIGHTS",
            "RATING",
            "ID",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_table() {
        let row = SupportSessionRow {
            id: "sup_1".into(),
            queue: "helpdesk".into(),
            state: "ended".into(),
            origin: "form".into(),
            customer: "Jo".into(),
            requested_at: "2026-12-01T10:00:00Z".into(),
            wait_secs: Some(75),
            duration_secs: Some(9),
            technicians: vec!["alice".into(), "bob".into()],
            rights_used: vec!["view".into(), "control".into()],
            rating: Some(5),
            end_reason: None,
        };
        let out = render(&[row]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("REQUESTED"), "{out}");
        for cell in [
            "2026-12-01 10:00:00",
            "helpdesk",
            "Jo",
            "1m15s",
            "9s",
            "alice,bob",
            "view,control",
            "5/5",
            "sup_1",
        ] {
            assert!(lines[1].contains(cell), "{cell}: {out}");
        }
    }
}
