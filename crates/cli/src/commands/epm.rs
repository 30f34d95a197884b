//! `jg epm …`: endpoint privilege management (design §6): the policy
//! (show, export, import, validate, publish), what-if tests, status,
//! events, elevation requests (list, watch, approve, deny) and offline
//! codes.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::epm::{Policy, WhatIf};
use jumpgate_client::Client;

#[derive(Debug, Subcommand)]
pub(crate) enum EpmCommand {
    /// The draft policy: show, export, import, validate, publish.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// What would happen if USER ran CMD on ENDPOINT (the draft, or with
    /// --published the last published bundle).
    Test {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        user: String,
        /// The user's local groups on the endpoint (repeat).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// The program's SHA-256, for hash-pinned applications.
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long)]
        published: bool,
        /// The program (absolute path) and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Which bundle version each endpoint runs.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The endpoints' EPM events, oldest first.
    Events {
        #[arg(long)]
        endpoint: Option<String>,
        /// Only events after this id.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Elevation requests of your groups.
    Requests {
        /// `pending` (default), `approved`, `denied`, `expired` or `all`.
        #[arg(long, default_value = "pending")]
        state: String,
        /// Follow new and changed requests as they happen.
        #[arg(long)]
        watch: bool,
    },
    /// Approve elevation request ID.
    Approve {
        /// The request's id (`er_…`).
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny elevation request ID.
    Deny {
        /// The request's id (`er_…`).
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// The response to the CHALLENGE an endpoint shows (offline elevation).
    Code {
        #[arg(long)]
        endpoint: String,
        /// The challenge the endpoint shows (`ABCD-EFGH-JK`).
        challenge: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Print the draft (YAML) with its revision.
    Show,
    /// Write the draft as YAML to standard output or FILE.
    Export {
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Replace the draft with the YAML in FILE (validated by the gateway).
    Import {
        /// The policy, as YAML.
        file: PathBuf,
    },
    /// Check the YAML in FILE without saving it.
    Validate {
        /// The policy, as YAML.
        file: PathBuf,
    },
    /// Publish the draft to every endpoint.
    Publish,
}

fn read_policy(file: &std::path::Path) -> anyhow::Result<Policy> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Policy::from_yaml(&text).map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))
}

fn print_request(r: &jumpgate_api_types::epm::ElevationRequest) -> anyhow::Result<()> {
    outln!(
        "{}  {:<8}  {}@{}  {} {}  rule {}  reason: {}",
        r.id,
        r.state,
        r.user,
        r.endpoint,
        r.program,
        r.args.join(" "),
        r.rule,
        r.reason
    )
}

pub(crate) async fn run(client: &Client, cmd: EpmCommand) -> anyhow::Result<()> {
    match cmd {
        EpmCommand::Policy { command } => policy(client, command).await?,
        EpmCommand::Test {
            endpoint,
            user,
            groups,
            sha256,
            published,
            command,
        } => {
            let a = client
                .epm_test(&WhatIf {
                    endpoint,
                    user,
                    groups,
                    command,
                    sha256,
                    published,
                })
                .await
                .context("asking the gateway")?;
            outln!(
                "{} ({}; {}; endpoint groups: {}; policy {})",
                a.action,
                a.rule.map_or_else(
                    || "no rule matched: the default".to_owned(),
                    |r| format!("rule {r}")
                ),
                a.application.map_or_else(
                    || "no application".to_owned(),
                    |x| format!("application {x}")
                ),
                a.endpoint_groups.join(", "),
                a.policy
            )?;
        }
        EpmCommand::Status { json } => {
            let list = client.epm_status().await.context("reading the status")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                for s in list {
                    outln!(
                        "{:<24} {:<7} {:>8}  dropped {}{}",
                        s.endpoint,
                        if s.online { "online" } else { "offline" },
                        s.accepted_version
                            .map_or_else(|| "-".to_owned(), |v| format!("v{v}")),
                        s.dropped_events,
                        s.last_refusal
                            .map(|r| format!("  refused: {r}"))
                            .unwrap_or_default()
                    )?;
                }
            }
        }
        EpmCommand::Events {
            endpoint,
            after,
            limit,
        } => {
            let rows = client
                .epm_events(endpoint.as_deref(), after, limit)
                .await
                .context("reading events")?;
            for r in rows {
                outln!("{} {} #{} {} {}", r.id, r.at, r.seq, r.endpoint, r.event)?;
            }
        }
        EpmCommand::Requests { state, watch } => {
            let filter = (state != "all").then_some(state.as_str());
            for r in client
                .epm_requests(filter)
                .await
                .context("listing requests")?
            {
                print_request(&r)?;
            }
            if watch {
                let mut events = client.epm_request_events().await?;
                while let Some(r) = events.next().await? {
                    print_request(&r)?;
                }
            }
        }
        EpmCommand::Approve { id, comment } => {
            let r = client.epm_decide(&id, true, &comment).await?;
            print_request(&r)?;
        }
        EpmCommand::Deny { id, comment } => {
            let r = client.epm_decide(&id, false, &comment).await?;
            print_request(&r)?;
        }
        EpmCommand::Code {
            endpoint,
            challenge,
        } => {
            let r = client.epm_code(&endpoint, &challenge).await?;
            outln!("{}", r.response)?;
        }
    }
    Ok(())
}

async fn policy(client: &Client, cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Show => {
            let doc = client.epm_policy().await.context("reading the policy")?;
            outln!(
                "# revision {}{}",
                doc.revision,
                if doc.updated_by.is_empty() {
                    String::new()
                } else {
                    format!(", by {} at {}", doc.updated_by, doc.updated_at)
                }
            )?;
            out!("{}", doc.policy.to_yaml())?;
        }
        PolicyCommand::Export { output } => {
            let yaml = client
                .epm_policy_yaml()
                .await
                .context("reading the policy")?;
            match output {
                Some(f) => {
                    std::fs::write(&f, yaml).with_context(|| format!("writing {}", f.display()))?
                }
                None => out!("{yaml}")?,
            }
        }
        PolicyCommand::Import { file } => {
            let policy = read_policy(&file)?;
            let current = client.epm_policy().await.context("reading the policy")?;
            let doc = client
                .epm_put_policy(current.revision, &policy)
                .await
                .context("saving the policy")?;
            outln!(
                "saved revision {} (publish it with `jg epm policy publish`)",
                doc.revision
            )?;
        }
        PolicyCommand::Validate { file } => {
            let policy = read_policy(&file)?;
            let p = client.epm_validate(&policy).await?;
            if p.problems.is_empty() {
                outln!("valid")?;
            } else {
                for x in &p.problems {
                    outln!("{}: {}", x.field, x.message)?;
                }
                anyhow::bail!("{} problem(s)", p.problems.len());
            }
        }
        PolicyCommand::Publish => {
            let b = client.epm_publish().await.context("publishing")?;
            outln!(
                "published v{} ({} bytes, sha256 {}, key {}); {} connected endpoint(s) told",
                b.version,
                b.size,
                b.sha256,
                b.key,
                b.notified
            )?;
        }
    }
    Ok(())
}
