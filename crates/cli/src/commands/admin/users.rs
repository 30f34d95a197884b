//! `jg admin users ...`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use jumpgate_api_types::{CreateUser, UpdateUser, User};
use jumpgate_client::Client;

use super::{forget_if_self, print_json};
use crate::args::{Groups, YesNo, list_cell};
use crate::commands::Ctx;
use crate::{input, table};

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// List user accounts.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one user account.
    Show {
        /// The user's name.
        name: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a user account (password from --password-file, else asked
    /// for twice).
    Create {
        /// The new account's user name (what it logs in with).
        name: String,
        /// Role name (see jg admin roles list).
        #[arg(long)]
        role: String,
        /// Endpoint groups, comma-separated; '*' means all groups (quote it).
        #[arg(long, value_name = "LIST")]
        groups: Option<Groups>,
        /// E-mail address.
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        /// Read the password from the first line of FILE (`-`: stdin).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role, groups or e-mail address.
    Update {
        /// The user's name.
        name: String,
        #[command(flatten)]
        changes: UserChanges,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a user account.
    Delete {
        /// The user's name.
        name: String,
    },
    /// Set a user's password; their sessions are revoked.
    SetPassword {
        /// The user's name.
        name: String,
        /// Read the password from the first line of FILE (`-`: stdin).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Log a user out everywhere.
    RevokeSessions {
        /// The user's name.
        name: String,
    },
    /// Lift the lock left by repeated failed logins.
    Unlock {
        /// The user's name.
        name: String,
    },
    /// Remove a user's MFA (lost device); they enroll again if required.
    ResetMfa {
        /// The user's name.
        name: String,
    },
}

/// At least one of these must be given.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub(crate) struct UserChanges {
    /// New role name.
    #[arg(long)]
    pub(crate) role: Option<String>,
    /// Endpoint groups, comma-separated; '*' means all groups (quote it).
    #[arg(long, value_name = "LIST")]
    pub(crate) groups: Option<Groups>,
    /// New address; '' removes it.
    #[arg(long, value_name = "ADDRESS")]
    pub(crate) email: Option<String>,
}

impl From<UserChanges> for UpdateUser {
    fn from(c: UserChanges) -> Self {
        Self {
            role: c.role,
            groups: c.groups.map(|g| g.0),
            email: c.email,
        }
    }
}

pub(crate) async fn run(ctx: &Ctx, client: &Client, cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::List { json } => {
            let users = client.users().await.context("listing users")?;
            if json {
                print_json(&users)?;
            } else {
                out!("{}", render_list(&users))?;
            }
        }
        UsersCommand::Show { name, json } => {
            let u = client
                .user(&name)
                .await
                .with_context(|| format!("reading user {name}"))?;
            show(&u, json)?;
        }
        UsersCommand::Create {
            name,
            role,
            groups,
            email,
            password_file,
            json,
        } => {
            let prompt = format!("Password for {name}: ");
            let password = input::new_password(password_file.as_deref(), &prompt).await?;
            let req = CreateUser {
                username: name.clone(),
                password,
                role,
                groups: groups.map(|g| g.0).unwrap_or_default(),
                email,
            };
            let u = client
                .create_user(&req)
                .await
                .with_context(|| format!("creating user {name}"))?;
            if json {
                print_json(&u)?;
            } else {
                outln!("Created user {} ({})", u.username, u.role)?;
            }
        }
        UsersCommand::Update {
            name,
            changes,
            json,
        } => {
            let u = client
                .update_user(&name, &changes.into())
                .await
                .with_context(|| format!("updating user {name}"))?;
            show(&u, json)?;
        }
        UsersCommand::Delete { name } => {
            client
                .delete_user(&name)
                .await
                .with_context(|| format!("deleting user {name}"))?;
            outln!("Deleted user {name}")?;
            forget_if_self(ctx, &name)?;
        }
        UsersCommand::SetPassword {
            name,
            password_file,
        } => {
            let prompt = format!("New password for {name}: ");
            let pw = input::new_password(password_file.as_deref(), &prompt).await?;
            client
                .set_user_password(&name, &pw)
                .await
                .with_context(|| format!("setting the password of {name}"))?;
            outln!("Password of {name} set; their sessions were revoked")?;
            forget_if_self(ctx, &name)?;
        }
        UsersCommand::RevokeSessions { name } => {
            client
                .revoke_user_sessions(&name)
                .await
                .with_context(|| format!("revoking the sessions of {name}"))?;
            outln!("Revoked all sessions of {name}")?;
            forget_if_self(ctx, &name)?;
        }
        UsersCommand::Unlock { name } => {
            client
                .unlock_user(&name)
                .await
                .with_context(|| format!("unlocking {name}"))?;
            outln!("Unlocked {name}")?;
        }
        UsersCommand::ResetMfa { name } => {
            client
                .reset_user_mfa(&name)
                .await
                .with_context(|| format!("resetting the MFA of {name}"))?;
            outln!("MFA of {name} removed; they must enroll again if their role requires it")?;
        }
    }
    Ok(())
}

fn show(u: &User, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(u)
    } else {
        out!("{}", render_one(u))?;
        Ok(())
    }
}

fn email(u: &User) -> Option<&str> {
    u.email.as_deref().filter(|e| !e.is_empty())
}

fn status(u: &User) -> String {
    match &u.locked_until {
        Some(t) => format!("locked until {}", table::timestamp(t)),
        None => "active".to_owned(),
    }
}

fn render_list(users: &[User]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.username.clone(),
                u.role.clone(),
                list_cell(&u.groups),
                YesNo(u.mfa_enabled).to_string(),
                status(u),
                email(u).unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    table::render(&["USER", "ROLE", "GROUPS", "MFA", "STATUS", "EMAIL"], &rows)
}

fn render_one(u: &User) -> String {
    table::fields(&[
        ("User", u.username.clone()),
        ("Email", email(u).unwrap_or("-").to_owned()),
        ("Role", u.role.clone()),
        ("Groups", list_cell(&u.groups)),
        ("MFA", YesNo(u.mfa_enabled).to_string()),
        ("Status", status(u)),
        ("Created", table::timestamp(&u.created_at)),
        ("Password set", table::timestamp(&u.password_changed_at)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            username: name.into(),
            email: None,
            role: "technician".into(),
            groups: vec!["prod".into(), "lab".into()],
            mfa_enabled: false,
            locked_until: None,
            created_at: "2025-01-02T03:04:05Z".into(),
            password_changed_at: "2025-02-03T04:05:06Z".into(),
        }
    }

    #[test]
    fn users_table() {
        let mut locked = user("bob");
        locked.locked_until = Some("2025-05-01T10:15:00Z".into());
        locked.mfa_enabled = true;
        locked.groups = vec!["*".into()];
        locked.email = Some("bob@example.com".into());
        let out = render_list(&[user("alice"), locked]);
        assert_eq!(
            out,
            "USER   ROLE        GROUPS    MFA  STATUS                            EMAIL\n\
             alice  technician  prod,lab  no   active\n\
             bob    technician  *         yes  locked until 2025-05-01 10:15:00  bob@example.com\n"
        );
    }

    #[test]
    fn one_user() {
        let mut alice = user("alice");
        alice.email = Some(String::new());
        let out = render_one(&alice);
        assert!(
            out.starts_with("User:          alice\nEmail:         -\n"),
            "{out}"
        );
        assert!(out.contains("Groups:        prod,lab\n"), "{out}");
        assert!(
            out.contains("Password set:  2025-02-03 04:05:06\n"),
            "{out}"
        );
    }

    #[test]
    fn changes_become_a_partial_update() {
        let c = UserChanges {
            role: None,
            groups: Some(Groups(vec!["a".into()])),
            email: Some(String::new()),
        };
        let body = serde_json::to_value(UpdateUser::from(c)).unwrap();
        assert_eq!(body, serde_json::json!({"groups": ["a"], "email": ""}));
    }
}
