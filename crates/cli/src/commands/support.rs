//! `jg support …`: attended support from the technician's side: session
//! keys, the queue (live with `--watch`), accepting, chat, rights, a
//! shell on the customer's machine, ending, and the history.

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::support::{
    CreateSupportKey, SupportEvent, SupportSession, SupportSessionRow,
};
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
    /// Customers in your queues: who waits, since when, and why; with
    /// `--watch`, every change as it happens (until interrupted).
    Queue {
        /// Only this queue's.
        #[arg(long)]
        queue: Option<String>,
        /// Keep following the queue: print each change.
        #[arg(long)]
        watch: bool,
        /// Print the events' JSON (one per line).
        #[arg(long)]
        json: bool,
    },
    /// Take a waiting customer.
    Accept {
        /// The support session's id (`sup_…`, from `jg support queue`).
        id: String,
    },
    /// Write to the customer (the words after the id).
    /// Write to the customer. With words: send them as one line. Without:
    /// a conversation — each line typed (standard input) is sent, and what
    /// the customer and teammates write is printed as it arrives, until the
    /// session ends or input ends (Ctrl-D).
    Chat {
        /// The support session's id (`sup_…`, from `jg support queue`).
        id: String,
        /// The words to send (one line); none for a conversation.
        text: Vec<String>,
    },
    /// Ask the customer for a right: view, control, clipboard, shell or
    /// files. They answer in their window.
    Ask {
        /// The support session's id (`sup_…`, from `jg support queue`).
        id: String,
        /// view, control, clipboard, shell or files.
        right: String,
    },
    /// A shell (or, with a command after `--`, that command) on the
    /// customer's machine, as the customer's user; needs their `shell` right.
    Shell {
        /// The support session's id (`sup_…`, from `jg support queue`).
        id: String,
        /// Send standard input to the command even when it is not a
        /// terminal.
        #[arg(long)]
        stdin: bool,
        /// The command and its arguments (none: an interactive shell).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Hand a support session to another technician, or back to a queue
    /// (the customer allows rights again for the new person).
    Transfer {
        /// The support session's id (`sup_…`, from `jg support queue`).
        id: String,
        /// The technician who takes it.
        #[arg(long, conflicts_with = "queue", required_unless_present = "queue")]
        to: Option<String>,
        /// The queue it waits in again.
        #[arg(long)]
        queue: Option<String>,
    },
    /// Invite a technician to a support session (the customer sees them).
    Invite {
        /// The support session's id (`sup_…`, from `jg support queue`).
        id: String,
        /// The technician to invite.
        user: String,
        /// Read along only.
        #[arg(long)]
        observer: bool,
    },
    /// Remove a technician from a support session (or leave it: your own
    /// name).
    Remove {
        /// The support session's id (`sup_…`, from `jg support queue`).
        id: String,
        /// The technician to remove (your own name: leave).
        user: String,
    },
    /// End a support session.
    End {
        /// The support session's id (`sup_…`, from `jg support queue`).
        id: String,
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
    /// Offer to make the customer's machine an endpoint of GROUP for good
    /// (an agent service); they allow it in their window and give an
    /// administrator's password. Needs `manage-endpoints` and GROUP among
    /// your groups.
    Pin {
        /// The support session's id (`sup_…`, from `jg support queue`).
        id: String,
        /// The endpoint group the machine joins.
        #[arg(long)]
        group: String,
        /// Wait for the outcome (the customer's answer and the install).
        #[arg(long)]
        wait: bool,
    },
}

pub(crate) async fn run(client: &Client, cmd: SupportCommand) -> anyhow::Result<i32> {
    match cmd {
        SupportCommand::Pin { id, group, wait } => {
            return super::support_pin::run(client, &id, &group, wait).await;
        }
        SupportCommand::Queue { queue, watch, json } => {
            follow(client, queue.as_deref(), watch, json).await?;
        }
        SupportCommand::Accept { id } => {
            let s = client
                .accept_support(&id)
                .await
                .with_context(|| format!("accepting {id}"))?;
            outln!("You have {} ({}) from queue {}.", s.customer, s.id, s.queue)?;
        }
        SupportCommand::Chat { id, text } if text.is_empty() => {
            converse(client, &id).await?;
        }
        SupportCommand::Chat { id, text } => {
            client
                .support_chat(&id, &text.join(" "))
                .await
                .with_context(|| format!("writing to {id}"))?;
        }
        SupportCommand::Ask { id, right } => {
            client
                .ask_support_right(&id, &right)
                .await
                .with_context(|| format!("asking {id} for {right}"))?;
            outln!("Asked; the customer answers in their window.")?;
        }
        SupportCommand::Shell { id, stdin, command } => {
            return super::shell::run(client, super::shell::Target::Support(&id), command, stdin)
                .await;
        }
        SupportCommand::Transfer { id, to, queue } => {
            let s = client
                .transfer_support(
                    &id,
                    &jumpgate_api_types::support::TransferSupport { user: to, queue },
                )
                .await
                .with_context(|| format!("transferring {id}"))?;
            match &s.owner {
                Some(o) => outln!("{} now belongs to {o}.", s.id)?,
                None => outln!("{} waits in queue {} again.", s.id, s.queue)?,
            }
        }
        SupportCommand::Invite { id, user, observer } => {
            let role = if observer { "observer" } else { "participant" };
            client
                .invite_support(&id, &user, role)
                .await
                .with_context(|| format!("inviting {user} to {id}"))?;
            outln!("{user} takes part in {id} as {role}.")?;
        }
        SupportCommand::Remove { id, user } => {
            client
                .remove_support_participant(&id, &user)
                .await
                .with_context(|| format!("removing {user} from {id}"))?;
        }
        SupportCommand::End { id } => {
            client
                .end_support(&id)
                .await
                .with_context(|| format!("ending {id}"))?;
        }
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
    Ok(0)
}

/// `jg support chat ID` without words: lines from standard input go to
/// the customer; the session's chat (the customer, teammates, the system's
/// notes) is printed as it arrives. Ends with the session or with input.
async fn converse(client: &Client, id: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let session = client
        .support_session(id)
        .await
        .with_context(|| format!("reading support session {id}"))?;
    if session.state == "ended" {
        anyhow::bail!("support session {id} has ended");
    }
    let mut events = client
        .support_events()
        .await
        .context("following the support session")?;
    outln!(
        "Chat with {} ({}). Type a line and Enter to send; Ctrl-D to stop.",
        session.customer,
        session.queue
    )?;
    // What this side types is on the screen already: its echo is not
    // printed again.
    let me = client.me().await.context("reading who you are")?.username;
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = input.next_line() => match line.context("reading standard input")? {
                Some(text) if text.trim().is_empty() => {}
                Some(text) => {
                    client
                        .support_chat(id, &text)
                        .await
                        .with_context(|| format!("writing to {id}"))?;
                }
                None => return Ok(()),
            },
            e = events.next() => match e.context("following the support session")? {
                Some(SupportEvent::Chat { id: of, line }) if of == id => match line.from_kind.as_str() {
                    "system" => outln!("* {}", line.text)?,
                    "technician" if line.from == me => {}
                    _ => outln!("{}: {}", line.from, line.text)?,
                },
                Some(SupportEvent::Left { id: of, reason }) if of == id => {
                    outln!("* the session ended: {reason}")?;
                    return Ok(());
                }
                Some(_) => {}
                None => anyhow::bail!("the gateway closed the event stream"),
            },
        }
    }
}

/// Prints the queue (the snapshot), then with `watch` each change.
async fn follow(
    client: &Client,
    queue: Option<&str>,
    watch: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut events = client
        .support_events()
        .await
        .context("following the support queues")?;
    let mine = |s: &SupportSession| queue.is_none_or(|q| s.queue == q);
    while let Some(e) = events
        .next()
        .await
        .context("following the support queues")?
    {
        if json {
            let keep = match &e {
                SupportEvent::Snapshot { .. } | SupportEvent::Left { .. } => true,
                SupportEvent::Session { session } => mine(session),
                SupportEvent::Chat { .. } | SupportEvent::Invite { .. } => true,
            };
            if keep {
                outln!("{}", serde_json::to_string(&e)?)?;
            }
        } else {
            match &e {
                SupportEvent::Snapshot { sessions } => {
                    let shown: Vec<&SupportSession> = sessions.iter().filter(|s| mine(s)).collect();
                    out!("{}", render_queue(&shown))?;
                }
                SupportEvent::Session { session } if mine(session) => {
                    outln!("{}", line(session))?;
                }
                SupportEvent::Session { .. } => {}
                SupportEvent::Left { id, reason } => outln!("{id}  left: {reason}")?,
                SupportEvent::Chat { id, line } => {
                    outln!("{id}  {}: {}", line.from, line.text)?;
                }
                SupportEvent::Invite { id, by, role } => {
                    outln!("{id}  {by} invites you as {role}")?;
                }
            }
        }
        if !watch {
            break;
        }
    }
    Ok(())
}

/// How long ago `at` (RFC 3339) was, as `2m05s`.
fn since(at: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(at, &Rfc3339) else {
        return "-".into();
    };
    let s = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    secs(Some(s as u64))
}

fn line(s: &SupportSession) -> String {
    format!(
        "{}  {}  {}  {}{}  {}",
        s.id,
        s.queue,
        s.state,
        s.customer,
        if s.online { "" } else { " (offline)" },
        if s.granted.is_empty() {
            String::new()
        } else {
            format!("granted: {}", s.granted.join(","))
        }
    )
}

fn render_queue(rows: &[&SupportSession]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.queue.clone(),
                s.state.clone(),
                s.joined_at.as_deref().map_or_else(|| "-".to_owned(), since),
                s.customer.clone(),
                s.problem.chars().take(40).collect(),
                s.owner.clone().unwrap_or_else(|| "-".into()),
                if s.online { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    table::render(
        &[
            "ID", "QUEUE", "STATE", "WAITING", "CUSTOMER", "PROBLEM", "OWNER", "ONLINE",
        ],
        &cells,
    )
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
