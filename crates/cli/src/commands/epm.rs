//! `jg epm …`: endpoint privilege management — the policy (show, export,
//! import, validate, publish), what-if, events, approval requests, offline
//! codes and the signing keys.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use jumpgate_api_types::epm::{self as api, Policy};
use jumpgate_client::{Client, EpmEventFilter};

use crate::table::{self, printable};

#[derive(Debug, Subcommand)]
pub(crate) enum EpmCommand {
    /// The draft policy: show, export, import, validate, publish.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// What would happen if USER ran CMD on ENDPOINT (nothing is run).
    Test {
        /// The endpoint's name.
        #[arg(long)]
        endpoint: String,
        /// The local user on the endpoint.
        #[arg(long)]
        user: String,
        /// A local group of the user (repeat for more).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// The program's SHA-256, for rules pinned to a hash.
        #[arg(long)]
        sha256: Option<String>,
        /// Ask the last published policy instead of the draft.
        #[arg(long)]
        published: bool,
        #[arg(long)]
        json: bool,
        /// The program (absolute path) and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Publish the draft: sign it as the next bundle and tell the endpoints.
    Publish,
    /// Published bundles, newest first.
    Bundles {
        #[arg(long)]
        json: bool,
    },
    /// Which policy version each endpoint runs.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Elevation decisions and policy events reported by endpoints.
    Events {
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<String>,
        /// Keep printing new events as they arrive.
        #[arg(long, short = 'f')]
        follow: bool,
        /// At most this many (the newest first page is the oldest first).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Approval requests (pending ones by default).
    Requests {
        /// pending, approved, denied, expired or all.
        #[arg(long, default_value = "pending")]
        state: String,
        /// Keep printing requests as they appear and change.
        #[arg(long)]
        watch: bool,
        #[arg(long)]
        json: bool,
    },
    /// Approve a waiting elevation request.
    Approve {
        /// The request's id (er_…).
        id: String,
        /// Why (kept with the request and audited).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny a waiting elevation request.
    Deny {
        /// The request's id (er_…).
        id: String,
        /// Why (kept with the request and audited).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// The response code for an endpoint's offline challenge.
    Code {
        /// The endpoint that shows the challenge.
        #[arg(long)]
        endpoint: String,
        /// The challenge as the endpoint shows it (ABCD-EFGH-JK).
        challenge: String,
    },
    /// The policy-signing keys; `--rotate` makes a new current key.
    SigningKeys {
        #[arg(long)]
        rotate: bool,
        #[arg(long)]
        json: bool,
    },
    /// The Package Manager: upload, list, assign packages; see what
    /// endpoints did.
    Packages {
        #[command(subcommand)]
        command: super::packages::PackagesCommand,
    },
    /// Which endpoints run which packages (e.g. `--package openssl
    /// --version-lt 3.0.11`).
    Inventory(super::packages::InventoryArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Print the draft policy as YAML.
    Show,
    /// Write the draft policy as YAML to FILE (or standard output).
    Export {
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Replace the draft with the policy in FILE (YAML or JSON; `-` for
    /// standard input). It is validated first; nothing is saved if any
    /// field is bad.
    Import {
        /// The policy file (YAML or JSON; `-` for standard input).
        file: PathBuf,
        /// Fail if the draft changed since this revision (see `show`).
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Check the policy in FILE without saving it.
    Validate {
        /// The policy file (YAML or JSON; `-` for standard input).
        file: PathBuf,
    },
}

fn read_policy_file(file: &PathBuf) -> anyhow::Result<Policy> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    Policy::from_yaml(&text).map_err(|p| {
        let lines: Vec<String> = p.0.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!(
            "{} is not a valid policy:\n{}",
            file.display(),
            lines.join("\n")
        )
    })
}

pub(crate) async fn run(client: &Client, cmd: EpmCommand) -> anyhow::Result<()> {
    match cmd {
        EpmCommand::Policy { command } => policy(client, command).await?,
        EpmCommand::Packages { command } => super::packages::run(client, command).await?,
        EpmCommand::Inventory(args) => super::packages::inventory(client, args).await?,
        EpmCommand::Test {
            endpoint,
            user,
            groups,
            sha256,
            published,
            json,
            command,
        } => {
            let q = api::WhatIf {
                endpoint,
                user,
                groups,
                command,
                sha256,
                published,
            };
            let a = client.epm_test(&q).await.context("asking the gateway")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&a)?)?;
            } else {
                let rule = match &a.rule {
                    Some(r) => format!(
                        "{} (application {})",
                        printable(r),
                        printable(a.application.as_deref().unwrap_or("-"))
                    ),
                    None => "none matched: the default applies".into(),
                };
                out!(
                    "{}",
                    table::fields(&[
                        ("decision", a.action.clone()),
                        ("rule", rule),
                        ("policy", a.policy.clone()),
                        ("endpoint groups", a.endpoint_groups.join(", ")),
                    ])
                )?;
            }
        }
        EpmCommand::Publish => {
            let b = client.epm_publish().await.context("publishing")?;
            outln!(
                "published version {} ({} bytes, sha256 {}, signed by {}); {} connected endpoint(s) told",
                b.version,
                b.size,
                b.sha256,
                b.key,
                b.notified
            )?;
        }
        EpmCommand::Bundles { json } => {
            let list = client.epm_bundles().await.context("listing bundles")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|b| {
                        vec![
                            b.version.to_string(),
                            table::timestamp(&b.published_at),
                            printable(&b.published_by).into_owned(),
                            b.key.clone(),
                            b.sha256.chars().take(16).collect(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table::render(&["VERSION", "PUBLISHED", "BY", "KEY", "SHA256"], &rows)
                )?;
            }
        }
        EpmCommand::Status { json } => {
            let list = client.epm_status().await.context("reading the status")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        vec![
                            printable(&s.endpoint).into_owned(),
                            if s.online { "yes" } else { "no" }.into(),
                            s.accepted_version.map_or("-".into(), |v| v.to_string()),
                            s.dropped_events.to_string(),
                            printable(s.last_refusal.as_deref().unwrap_or("")).into_owned(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table::render(
                        &["ENDPOINT", "ONLINE", "VERSION", "DROPPED", "LAST REFUSAL"],
                        &rows
                    )
                )?;
            }
        }
        EpmCommand::Events {
            endpoint,
            follow,
            limit,
            json,
        } => events(client, endpoint.as_deref(), follow, limit, json).await?,
        EpmCommand::Requests { state, watch, json } => {
            requests(client, &state, watch, json).await?;
        }
        EpmCommand::Approve { id, comment } => {
            let r = client
                .epm_decide(&id, true, &comment)
                .await
                .with_context(|| format!("approving {id}"))?;
            outln!(
                "approved {} ({} on {}: {})",
                r.id,
                printable(&r.user),
                printable(&r.endpoint),
                printable(&r.program)
            )?;
        }
        EpmCommand::Deny { id, comment } => {
            let r = client
                .epm_decide(&id, false, &comment)
                .await
                .with_context(|| format!("denying {id}"))?;
            outln!(
                "denied {} ({} on {}: {})",
                r.id,
                printable(&r.user),
                printable(&r.endpoint),
                printable(&r.program)
            )?;
        }
        EpmCommand::Code {
            endpoint,
            challenge,
        } => {
            if jumpgate_epm::code::normalize_challenge(&challenge).is_err() {
                bail!(
                    "`{challenge}` is not a challenge: ten letters and digits, like ABCD-EFGH-JK"
                );
            }
            let r = client
                .epm_code(&endpoint, &challenge)
                .await
                .with_context(|| format!("asking for the response to {challenge}"))?;
            outln!("{}", jumpgate_epm::code::format_response(&r.response))?;
        }
        EpmCommand::SigningKeys { rotate, json } => {
            if rotate {
                let k = client
                    .epm_rotate_signing_key()
                    .await
                    .context("rotating the signing key")?;
                outln!("new signing key {} (used from the next publish)", k.id)?;
                return Ok(());
            }
            let list = client.epm_signing_keys().await.context("listing keys")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.clone(),
                            k.state.clone(),
                            table::timestamp(&k.created_at),
                            k.public_key.clone(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table::render(&["ID", "STATE", "CREATED", "PUBLIC KEY"], &rows)
                )?;
            }
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
                    format!(
                        ", saved by {} at {}",
                        printable(&doc.updated_by),
                        doc.updated_at
                    )
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
                Some(f) if f.as_os_str() != "-" => {
                    std::fs::write(&f, &yaml)
                        .with_context(|| format!("writing {}", f.display()))?;
                }
                _ => out!("{yaml}")?,
            }
        }
        PolicyCommand::Import { file, revision } => {
            let policy = read_policy_file(&file)?;
            let revision = match revision {
                Some(r) => r,
                None => {
                    client
                        .epm_policy()
                        .await
                        .context("reading the policy")?
                        .revision
                }
            };
            let doc = api::PolicyDoc {
                revision,
                policy,
                updated_by: String::new(),
                updated_at: String::new(),
            };
            let saved = client
                .epm_put_policy(&doc)
                .await
                .context("saving the policy")?;
            outln!(
                "saved revision {} ({} applications, {} rules); publish it with `jg epm publish`",
                saved.revision,
                saved.policy.applications.len(),
                saved.policy.rules.len()
            )?;
        }
        PolicyCommand::Validate { file } => {
            let policy = read_policy_file(&file)?;
            let p = client.epm_validate(&policy).await.context("validating")?;
            if !p.problems.is_empty() {
                let lines: Vec<String> = p
                    .problems
                    .iter()
                    .map(|p| format!("  {}: {}", p.field, p.message))
                    .collect();
                bail!("the gateway refuses the policy:\n{}", lines.join("\n"));
            }
            outln!(
                "valid: {} applications, {} rules, default {}",
                policy.applications.len(),
                policy.rules.len(),
                policy.default
            )?;
        }
    }
    Ok(())
}

fn event_line(e: &api::EpmEventRow) -> String {
    let kind = e.event.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
    let field = |k: &str| {
        e.event
            .get(k)
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let what = match kind {
        "decision" => format!(
            "{} {} {} by {} → {} ({}){}",
            field("outcome"),
            field("program"),
            e.event
                .get("args")
                .and_then(|a| a.as_array())
                .map(|a| a
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(" "))
                .unwrap_or_default(),
            field("user"),
            field("action"),
            match field("rule").as_str() {
                "" => "default".to_owned(),
                r => format!("rule {r}"),
            },
            match field("reason").as_str() {
                "" => String::new(),
                r => format!(", reason: {r}"),
            }
        ),
        "approval-requested" => format!(
            "approval requested {} for {} {} (rule {})",
            field("request"),
            field("user"),
            field("program"),
            field("rule")
        ),
        "exited" => format!(
            "{} by {} ended with exit code {}",
            field("program"),
            field("user"),
            field("exit_code")
        ),
        "bundle-accepted" => format!("policy version {} in force", field("version")),
        "bundle-refused" => format!(
            "policy version {} refused: {}",
            field("version"),
            field("why")
        ),
        "admin-session" => format!(
            "admin session {} for {} ({} min)",
            if field("ended") == "true" {
                "ended"
            } else {
                "started"
            },
            field("user"),
            field("minutes")
        ),
        other => other.to_owned(),
    };
    format!(
        "{}  {}  {}",
        table::timestamp(&e.at),
        printable(&e.endpoint),
        printable(&what)
    )
}

async fn events(
    client: &Client,
    endpoint: Option<&str>,
    follow: bool,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let f = EpmEventFilter {
            endpoint,
            after,
            limit: Some(limit),
        };
        let list = client.epm_events(&f).await.context("reading events")?;
        for e in &list {
            if json {
                outln!("{}", serde_json::to_string(e)?)?;
            } else {
                outln!("{}", event_line(e))?;
            }
        }
        if let Some(last) = list.last() {
            after = Some(last.id);
        }
        if !follow {
            return Ok(());
        }
        if list.len() < limit as usize {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn request_line(r: &api::ElevationRequest) -> Vec<String> {
    vec![
        r.id.clone(),
        r.state.clone(),
        printable(&r.endpoint).into_owned(),
        printable(&r.user).into_owned(),
        printable(&format!("{} {}", r.program, r.args.join(" "))).into_owned(),
        printable(&r.rule).into_owned(),
        printable(&r.reason).into_owned(),
        table::timestamp(&r.created_at),
    ]
}

const REQUEST_HEADERS: [&str; 8] = [
    "ID", "STATE", "ENDPOINT", "USER", "COMMAND", "RULE", "REASON", "ASKED",
];

async fn requests(client: &Client, state: &str, watch: bool, json: bool) -> anyhow::Result<()> {
    if watch {
        let mut feed = client
            .epm_request_events()
            .await
            .context("following approval requests")?;
        while let Some(r) = feed.next().await.context("following approval requests")? {
            if json {
                outln!("{}", serde_json::to_string(&r)?)?;
            } else {
                outln!("{}", request_line(&r).join("  "))?;
            }
        }
        return Ok(());
    }
    let filter = (state != "all").then_some(state);
    let list = client
        .epm_requests(filter)
        .await
        .context("listing approval requests")?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&list)?)?;
    } else {
        let rows: Vec<Vec<String>> = list.iter().map(request_line).collect();
        out!("{}", table::render(&REQUEST_HEADERS, &rows))?;
    }
    Ok(())
}
