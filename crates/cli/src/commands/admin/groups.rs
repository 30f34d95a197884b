//! `jg admin groups list|create|update|approval|delete`.

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::access::SetApprovalPolicy;
use jumpgate_api_types::{CreateGroup, Group, UpdateGroup};
use jumpgate_client::Client;

use super::print_json;
use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// List endpoint groups and how many endpoints each holds.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create an endpoint group.
    Create {
        /// The group's name.
        name: String,
        /// What the group is for.
        #[arg(long, default_value = "")]
        description: String,
        /// How the person at the group's endpoints takes part in a desktop
        /// session: asked to allow (`prompt`, the default), shown it
        /// (`notify`), or neither (`none`, unattended machines).
        #[arg(long, value_parser = ["prompt", "notify", "none"])]
        consent: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change an endpoint group's description or consent mode.
    Update {
        /// The group's name.
        name: String,
        /// What the group is for.
        #[arg(long)]
        description: Option<String>,
        /// `prompt`, `notify` or `none` (see `create`).
        #[arg(long, value_parser = ["prompt", "notify", "none"])]
        consent: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Require an approved access request (`jg access request`) for some
    /// or all of a group's session permissions, name its approvers and how
    /// many approvals are needed; `--off` removes the requirement; with
    /// neither, shows it.
    Approval {
        /// The group's name.
        name: String,
        /// Permissions that need approval, comma-separated (shell, exec,
        /// files, forward, desktop-view, desktop-control), or `all`.
        #[arg(long, value_name = "P,P|all", value_delimiter = ',', conflicts_with = "off",
              requires_all = ["approvers"])]
        permissions: Vec<String>,
        /// Who approves: `role:NAME`, or `user:A,user:B`.
        #[arg(
            long,
            value_name = "role:NAME|user:A,user:B",
            value_delimiter = ',',
            conflicts_with = "off",
            requires = "permissions"
        )]
        approvers: Vec<String>,
        /// Approvals needed: 1 or 2 (two different approvers).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        approvals: u8,
        /// Remove the requirement.
        #[arg(long)]
        off: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete an endpoint group.
    Delete {
        /// The group's name.
        name: String,
    },
}

pub(crate) async fn run(client: &Client, cmd: GroupsCommand) -> anyhow::Result<()> {
    match cmd {
        GroupsCommand::List { json } => {
            let groups = client.groups().await.context("listing groups")?;
            if json {
                print_json(&groups)?;
            } else {
                out!("{}", render(&groups))?;
            }
        }
        GroupsCommand::Create {
            name,
            description,
            consent,
            json,
        } => {
            let req = CreateGroup {
                name: name.clone(),
                description,
                consent,
            };
            let g = client
                .create_group(&req)
                .await
                .with_context(|| format!("creating group {name}"))?;
            if json {
                print_json(&g)?;
            } else {
                outln!("Created group {}", g.name)?;
            }
        }
        GroupsCommand::Update {
            name,
            description,
            consent,
            json,
        } => {
            if description.is_none() && consent.is_none() {
                anyhow::bail!("nothing to change: give --description or --consent");
            }
            let req = UpdateGroup {
                description,
                consent,
            };
            let g = client
                .update_group(&name, &req)
                .await
                .with_context(|| format!("updating group {name}"))?;
            if json {
                print_json(&g)?;
            } else {
                outln!("Updated group {} (consent: {})", g.name, g.consent)?;
            }
        }
        GroupsCommand::Approval {
            name,
            permissions,
            approvers,
            approvals,
            off,
            json,
        } => {
            if off {
                client
                    .remove_approval_policy(&name)
                    .await
                    .with_context(|| format!("removing group {name}'s approval setting"))?;
                outln!("Group {name} requires no approval any more")?;
                return Ok(());
            }
            let p = if permissions.is_empty() {
                client
                    .approval_policy(&name)
                    .await
                    .with_context(|| format!("reading group {name}'s approval setting"))?
            } else {
                let req = SetApprovalPolicy {
                    permissions,
                    approvers,
                    approvals,
                };
                client
                    .set_approval_policy(&name, &req)
                    .await
                    .with_context(|| format!("setting group {name}'s approval"))?
            };
            if json {
                print_json(&p)?;
            } else {
                outln!(
                    "Group {} requires approval for {} by {} ({} approval(s))",
                    p.group,
                    p.permissions.join(","),
                    p.approvers.join(","),
                    p.approvals
                )?;
            }
        }
        GroupsCommand::Delete { name } => {
            client
                .delete_group(&name)
                .await
                .with_context(|| format!("deleting group {name}"))?;
            outln!("Deleted group {name}")?;
        }
    }
    Ok(())
}

fn render(groups: &[Group]) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                g.endpoints.to_string(),
                g.consent.clone(),
                g.description.clone(),
            ]
        })
        .collect();
    table::render(&["NAME", "ENDPOINTS", "CONSENT", "DESCRIPTION"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_table() {
        let out = render(&[
            Group {
                name: "default".into(),
                description: String::new(),
                endpoints: 12,
                consent: "prompt".into(),
            },
            Group {
                name: "prod".into(),
                description: "production servers".into(),
                endpoints: 3,
                consent: "none".into(),
            },
        ]);
        assert_eq!(
            out,
            "NAME     ENDPOINTS  CONSENT  DESCRIPTION\n\
             default  12         prompt\n\
             prod     3          none     production servers\n"
        );
    }
}
