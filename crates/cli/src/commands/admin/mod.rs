//! `jg admin ...`: site administration through the gateway's API (the
//! gateway checks the caller's permissions; nothing is decided here).

use clap::Subcommand;
use serde::Serialize;

use super::Ctx;
use crate::state;

pub(crate) mod alerts;
pub(crate) mod api_clients;
pub(crate) mod endpoints;
pub(crate) mod groups;
pub(crate) mod queues;
pub(crate) mod roles;
pub(crate) mod settings;
pub(crate) mod users;
pub(crate) mod webhooks;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// User accounts: create, change, lock out, reset.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Roles: named sets of permissions.
    Roles {
        #[command(subcommand)]
        command: roles::RolesCommand,
    },
    /// Endpoint groups.
    Groups {
        #[command(subcommand)]
        command: groups::GroupsCommand,
    },
    /// Support queues: teams of technicians for attended support.
    Queues {
        #[command(subcommand)]
        command: queues::QueuesCommand,
    },
    /// Endpoints: move between groups, revoke; enrollment tokens.
    Endpoints {
        #[command(subcommand)]
        command: endpoints::EndpointsCommand,
    },
    /// OAuth2 clients for automation (client-credentials grant).
    ApiClients {
        #[command(subcommand)]
        command: api_clients::ApiClientsCommand,
    },
    /// Site security settings: password policy, lockout, required MFA.
    Settings {
        #[command(subcommand)]
        command: settings::SettingsCommand,
    },
    /// Mail alert rules: audit events that send mail.
    Alerts {
        #[command(subcommand)]
        command: alerts::AlertsCommand,
    },
    /// The gateway's mail server (`[smtp]`).
    Smtp {
        #[command(subcommand)]
        command: alerts::SmtpCommand,
    },
    /// Outbound events: signed webhooks to ITSM/SIEM receivers.
    Webhooks {
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
}

pub(crate) async fn run(ctx: &Ctx, cmd: AdminCommand) -> anyhow::Result<()> {
    let client = ctx.authed_client()?;
    match cmd {
        AdminCommand::Users { command } => users::run(ctx, &client, command).await,
        AdminCommand::Roles { command } => roles::run(&client, command).await,
        AdminCommand::Groups { command } => groups::run(&client, command).await,
        AdminCommand::Queues { command } => queues::run(&client, command).await,
        AdminCommand::Endpoints { command } => endpoints::run(&client, command).await,
        AdminCommand::ApiClients { command } => api_clients::run(&client, command).await,
        AdminCommand::Settings { command } => settings::run(&client, command).await,
        AdminCommand::Alerts { command } => alerts::run(&client, command).await,
        AdminCommand::Smtp { command } => alerts::smtp(&client, command).await,
        AdminCommand::Webhooks { command } => webhooks::run(&client, command).await,
    }
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// After an action that ends `name`'s sessions: if that is the logged-in
/// user, the saved session is dead too, so forget it and say so.
pub(crate) fn forget_if_self(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let me = state::load(&ctx.state_dir).ok().flatten();
    if me.is_some_and(|s| s.username == name) {
        state::remove(&ctx.state_dir)?;
        outln!("That was your own account: log in again")?;
    }
    Ok(())
}
