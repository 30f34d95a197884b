//! `jg admin roles list|create|update|delete`.

use anyhow::Context;
use clap::{Args, Subcommand};
use jumpgate_api_types::{CreateRole, Role, UpdateRole};
use jumpgate_client::Client;

use super::print_json;
use crate::args::{Permissions, YesNo, list_cell};
use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum RolesCommand {
    /// List roles and their permissions.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a role.
    Create {
        /// The role's name.
        name: String,
        /// Comma-separated: view, shell, exec, files, forward (on the
        /// holder's groups); manage-users, manage-endpoints, view-audit.
        #[arg(long, value_name = "LIST")]
        permissions: Permissions,
        /// What the role is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a role's permissions or description.
    Update {
        /// The role's name.
        name: String,
        #[command(flatten)]
        changes: RoleChanges,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a role (not a built-in one).
    Delete {
        /// The role's name.
        name: String,
    },
}

/// At least one of these must be given.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub(crate) struct RoleChanges {
    /// The new, complete permission list, comma-separated.
    #[arg(long, value_name = "LIST")]
    pub(crate) permissions: Option<Permissions>,
    #[arg(long)]
    pub(crate) description: Option<String>,
}

impl From<RoleChanges> for UpdateRole {
    fn from(c: RoleChanges) -> Self {
        Self {
            description: c.description,
            permissions: c.permissions.map(|p| p.0),
        }
    }
}

pub(crate) async fn run(client: &Client, cmd: RolesCommand) -> anyhow::Result<()> {
    match cmd {
        RolesCommand::List { json } => {
            let roles = client.roles().await.context("listing roles")?;
            if json {
                print_json(&roles)?;
            } else {
                out!("{}", render(&roles))?;
            }
        }
        RolesCommand::Create {
            name,
            permissions,
            description,
            json,
        } => {
            let req = CreateRole {
                name: name.clone(),
                description,
                permissions: permissions.0,
            };
            let r = client
                .create_role(&req)
                .await
                .with_context(|| format!("creating role {name}"))?;
            if json {
                print_json(&r)?;
            } else {
                outln!("Created role {}: {}", r.name, list_cell(&r.permissions))?;
            }
        }
        RolesCommand::Update {
            name,
            changes,
            json,
        } => {
            let r = client
                .update_role(&name, &changes.into())
                .await
                .with_context(|| format!("updating role {name}"))?;
            if json {
                print_json(&r)?;
            } else {
                outln!("Updated role {}: {}", r.name, list_cell(&r.permissions))?;
            }
        }
        RolesCommand::Delete { name } => {
            client
                .delete_role(&name)
                .await
                .with_context(|| format!("deleting role {name}"))?;
            outln!("Deleted role {name}")?;
        }
    }
    Ok(())
}

fn render(roles: &[Role]) -> String {
    let rows: Vec<Vec<String>> = roles
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                YesNo(r.builtin).to_string(),
                list_cell(&r.permissions),
                r.description.clone(),
            ]
        })
        .collect();
    table::render(&["NAME", "BUILT-IN", "PERMISSIONS", "DESCRIPTION"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_table() {
        let out = render(&[
            Role {
                name: "admin".into(),
                description: "everything".into(),
                permissions: vec!["manage-users".into(), "view".into()],
                builtin: true,
            },
            Role {
                name: "helpdesk".into(),
                description: String::new(),
                permissions: vec![],
                builtin: false,
            },
        ]);
        assert_eq!(
            out,
            "NAME      BUILT-IN  PERMISSIONS        DESCRIPTION\n\
             admin     yes       manage-users,view  everything\n\
             helpdesk  no        -\n"
        );
    }

    #[test]
    fn changes_become_a_partial_update() {
        let c = RoleChanges {
            permissions: None,
            description: Some("d".into()),
        };
        let body = serde_json::to_value(UpdateRole::from(c)).unwrap();
        assert_eq!(body, serde_json::json!({"description": "d"}));
    }
}
