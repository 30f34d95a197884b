//! `jg admin groups list|create|delete`.

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::{CreateGroup, Group};
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
        /// Print the API's JSON.
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
            json,
        } => {
            let req = CreateGroup {
                name: name.clone(),
                description,
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
                g.description.clone(),
            ]
        })
        .collect();
    table::render(&["NAME", "ENDPOINTS", "DESCRIPTION"], &rows)
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
            },
            Group {
                name: "prod".into(),
                description: "production servers".into(),
                endpoints: 3,
            },
        ]);
        assert_eq!(
            out,
            "NAME     ENDPOINTS  DESCRIPTION\n\
             default  12\n\
             prod     3          production servers\n"
        );
    }
}
