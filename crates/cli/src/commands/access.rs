//! `jg access request|list|show|approve|deny|cancel`: access requests with
//! approval. A group may require an approved request for some of its
//! permissions (`jg admin groups approval`); the grant lasts the window
//! asked for, from the last approval needed. Elevation requests (an
//! endpoint user's EPM approval request, kind `elevation`) are listed and
//! decided here too, by holders of `epm-approve` (as with `jg epm approve`).

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::access::{AccessRequest, NewAccessRequest};
use jumpgate_client::Client;

use super::admin::print_json;
use crate::{args, table};

#[derive(Debug, Subcommand)]
pub(crate) enum AccessCommand {
    /// Ask for access to a group or one endpoint for a window; approvers
    /// are told (mail, outbound events) and approve or deny.
    Request {
        /// A group or an endpoint (`group:NAME` or `endpoint:NAME` when a
        /// name is both).
        target: String,
        /// How long the grant lasts once approved, e.g. 30m, 2h (at most
        /// the site's maximum).
        #[arg(long = "for", value_name = "DURATION", value_parser = args::parse_duration)]
        window: u64,
        /// Why: a ticket number or a short text (required).
        #[arg(long)]
        reason: String,
        /// Only these permissions, comma-separated (default: every one the
        /// group requires approval for that your role holds).
        #[arg(long, value_name = "P,P", value_delimiter = ',')]
        permissions: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List your requests and those you may decide (elevation requests
    /// included), newest first.
    List {
        /// Only pending requests.
        #[arg(long, conflicts_with = "state")]
        pending: bool,
        /// Only requests in STATE (`approved`: elevations).
        #[arg(long, value_parser = ["pending", "active", "approved", "expired", "denied", "cancelled"])]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one request with its decisions.
    Show {
        /// The request's id (`acc_…` or an elevation's `er_…`, from `jg
        /// access list`).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a request (not your own); the last approval needed starts
    /// the grant. An elevation request is approved at once and the
    /// endpoint runs the program.
    Approve {
        /// The request's id (`acc_…` or an elevation's `er_…`, from `jg
        /// access list`).
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Deny a request.
    Deny {
        /// The request's id (`acc_…` or an elevation's `er_…`, from `jg
        /// access list`).
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw your pending request, or end your active grant now (its
    /// sessions are closed).
    Cancel {
        /// The request's id (`acc_…`, from `jg access list`).
        id: String,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(client: &Client, cmd: AccessCommand) -> anyhow::Result<()> {
    match cmd {
        AccessCommand::Request {
            target,
            window,
            reason,
            permissions,
            json,
        } => {
            let req = NewAccessRequest {
                target: target.clone(),
                permissions: (!permissions.is_empty()).then_some(permissions),
                window_secs: window,
                reason,
            };
            let r = client
                .request_access(&req)
                .await
                .with_context(|| format!("requesting access to {target}"))?;
            if json {
                print_json(&r)?;
            } else {
                outln!(
                    "Requested access {} to {} ({}) for {}: pending, {} approval(s) needed",
                    r.id,
                    target_of(&r),
                    r.permissions.join(","),
                    window_text(r.window_secs),
                    r.approvals_required
                )?;
            }
        }
        AccessCommand::List {
            pending,
            state,
            json,
        } => {
            let state = if pending {
                Some("pending".to_owned())
            } else {
                state
            };
            let list = client
                .access_requests(state.as_deref())
                .await
                .context("listing access requests")?;
            if json {
                print_json(&list)?;
            } else {
                out!("{}", render(&list))?;
            }
        }
        AccessCommand::Show { id, json } => {
            let r = client
                .access_request(&id)
                .await
                .with_context(|| format!("reading access request {id}"))?;
            if json {
                print_json(&r)?;
            } else {
                out!("{}", render_one(&r))?;
            }
        }
        AccessCommand::Approve { id, reason, json } => {
            decided(client, &id, "approve", reason, json).await?;
        }
        AccessCommand::Deny { id, reason, json } => {
            decided(client, &id, "deny", reason, json).await?;
        }
        AccessCommand::Cancel { id, json } => {
            decided(client, &id, "cancel", None, json).await?;
        }
    }
    Ok(())
}

async fn decided(
    client: &Client,
    id: &str,
    verb: &str,
    reason: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let r = client
        .decide_access(id, verb, reason)
        .await
        .with_context(|| format!("{verb} access request {id}"))?;
    if json {
        return print_json(&r);
    }
    let approvals = r
        .decisions
        .iter()
        .filter(|d| d.decision == "approve")
        .count();
    match r.state.as_str() {
        "active" => outln!(
            "Access request {} is active until {}",
            r.id,
            r.until.as_deref().unwrap_or("?")
        )?,
        "pending" => outln!(
            "Access request {} is pending: {approvals} of {} approval(s)",
            r.id,
            r.approvals_required
        )?,
        "approved" => outln!(
            "Elevation request {} is approved: {} runs {} on {}",
            r.id,
            r.elevation.as_ref().map_or("?", |e| e.user.as_str()),
            asks(&r),
            r.endpoint.as_deref().unwrap_or("?")
        )?,
        other if r.elevation.is_some() => outln!("Elevation request {} is {other}", r.id)?,
        other => outln!("Access request {} is {other}", r.id)?,
    }
    Ok(())
}

/// What a request asks for: its permissions, or an elevation's program
/// with its arguments.
fn asks(r: &AccessRequest) -> String {
    match &r.elevation {
        Some(e) => {
            let mut s = e.program.clone();
            for a in &e.args {
                s.push(' ');
                s.push_str(a);
            }
            s
        }
        None => r.permissions.join(","),
    }
}

/// The window column: an elevation has none (it runs once).
fn window_of(r: &AccessRequest) -> String {
    if r.elevation.is_some() {
        "-".to_owned()
    } else {
        window_text(r.window_secs)
    }
}

fn target_of(r: &AccessRequest) -> String {
    match &r.endpoint {
        Some(e) => format!("endpoint {e} (group {})", r.group),
        None => format!("group {}", r.group),
    }
}

fn window_text(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn render(list: &[AccessRequest]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let approvals = r
                .decisions
                .iter()
                .filter(|d| d.decision == "approve")
                .count();
            vec![
                r.id.clone(),
                r.kind.clone(),
                r.state.clone(),
                r.requester.clone(),
                r.endpoint
                    .clone()
                    .map_or_else(|| format!("group:{}", r.group), |e| format!("endpoint:{e}")),
                asks(r),
                window_of(r),
                format!("{approvals}/{}", r.approvals_required),
                r.until.clone().unwrap_or_default(),
                r.reason.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "KIND",
            "STATE",
            "REQUESTER",
            "TARGET",
            "ASKS",
            "WINDOW",
            "APPROVALS",
            "UNTIL",
            "REASON",
        ],
        &rows,
    )
}

fn render_one(r: &AccessRequest) -> String {
    let mut out = match &r.elevation {
        Some(e) => table::fields(&[
            ("Id", r.id.clone()),
            ("Kind", r.kind.clone()),
            ("State", r.state.clone()),
            ("Requester", r.requester.clone()),
            ("User", e.user.clone()),
            ("Target", target_of(r)),
            ("Program", asks(r)),
            ("SHA-256", e.sha256.clone()),
            ("Rule", e.rule.clone()),
            ("Reason", r.reason.clone()),
            ("Requested", r.created_at.clone()),
            ("Expires", r.expires_at.clone().unwrap_or_default()),
        ]),
        None => table::fields(&[
            ("Id", r.id.clone()),
            ("Kind", r.kind.clone()),
            ("State", r.state.clone()),
            ("Requester", r.requester.clone()),
            ("Target", target_of(r)),
            ("Permissions", r.permissions.join(",")),
            ("Window", window_text(r.window_secs)),
            ("Reason", r.reason.clone()),
            ("Requested", r.created_at.clone()),
            ("Until", r.until.clone().unwrap_or_default()),
        ]),
    };
    for d in &r.decisions {
        out.push_str(&format!(
            "{}: {} at {}{}\n",
            d.approver,
            d.decision,
            d.at,
            if d.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.reason)
            }
        ));
    }
    out
}
