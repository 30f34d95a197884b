//! `jg admin settings show|set`.

use anyhow::Context;
use clap::{Args, Subcommand};
use jumpgate_api_types::SecuritySettings;
use jumpgate_client::Client;

use super::print_json;
use crate::args::{MaxAge, RoleList, format_duration, parse_duration};
use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum SettingsCommand {
    /// Show the security settings.
    Show {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change some security settings; the others keep their values.
    Set {
        #[command(flatten)]
        changes: SettingsChanges,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// At least one of these must be given.
#[derive(Debug, Default, Args)]
#[group(required = true, multiple = true)]
pub(crate) struct SettingsChanges {
    /// Minimum password length in characters.
    #[arg(long, value_name = "N")]
    pub(crate) password_min_length: Option<u32>,
    /// How many of lowercase, uppercase, digits and symbols a password uses.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=4))]
    pub(crate) password_min_classes: Option<u8>,
    /// How many earlier passwords may not be reused.
    #[arg(long, value_name = "N")]
    pub(crate) password_history: Option<u32>,
    /// Days until a password must be changed, or `never`.
    #[arg(long, value_name = "N|never")]
    pub(crate) password_max_age_days: Option<MaxAge>,
    /// Failed logins in a row that lock an account.
    #[arg(long, value_name = "N")]
    pub(crate) lockout_threshold: Option<u32>,
    /// How long a lock lasts, e.g. 15m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) lockout_duration: Option<u64>,
    /// Roles whose users must use MFA, comma-separated, or `none`.
    #[arg(long, value_name = "ROLES|none")]
    pub(crate) mfa_required_roles: Option<RoleList>,
}

pub(crate) async fn run(client: &Client, cmd: SettingsCommand) -> anyhow::Result<()> {
    let settings = match cmd {
        SettingsCommand::Show { json } => {
            let s = client
                .security_settings()
                .await
                .context("reading the security settings")?;
            (s, json)
        }
        SettingsCommand::Set { changes, json } => {
            let current = client
                .security_settings()
                .await
                .context("reading the security settings")?;
            let s = client
                .set_security_settings(&apply(current, &changes))
                .await
                .context("saving the security settings")?;
            (s, json)
        }
    };
    match settings {
        (s, true) => print_json(&s)?,
        (s, false) => out!("{}", render(&s))?,
    }
    Ok(())
}

/// `current` with the given changes applied.
fn apply(current: SecuritySettings, c: &SettingsChanges) -> SecuritySettings {
    SecuritySettings {
        password_min_length: c.password_min_length.unwrap_or(current.password_min_length),
        password_min_classes: c
            .password_min_classes
            .unwrap_or(current.password_min_classes),
        password_history: c.password_history.unwrap_or(current.password_history),
        password_max_age_days: match c.password_max_age_days {
            Some(m) => m.days(),
            None => current.password_max_age_days,
        },
        lockout_threshold: c.lockout_threshold.unwrap_or(current.lockout_threshold),
        lockout_duration_secs: c.lockout_duration.unwrap_or(current.lockout_duration_secs),
        mfa_required_roles: match &c.mfa_required_roles {
            Some(r) => r.0.clone(),
            None => current.mfa_required_roles,
        },
    }
}

fn render(s: &SecuritySettings) -> String {
    let max_age = match s.password_max_age_days {
        Some(d) => format!("{d} days"),
        None => "never".to_owned(),
    };
    let mfa = if s.mfa_required_roles.is_empty() {
        "none".to_owned()
    } else {
        s.mfa_required_roles.join(",")
    };
    table::fields(&[
        ("Password minimum length", s.password_min_length.to_string()),
        (
            "Password minimum classes",
            format!("{} of 4", s.password_min_classes),
        ),
        ("Password history", s.password_history.to_string()),
        ("Password maximum age", max_age),
        (
            "Lockout threshold",
            format!("{} failed logins", s.lockout_threshold),
        ),
        ("Lockout duration", format_duration(s.lockout_duration_secs)),
        ("MFA required for roles", mfa),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> SecuritySettings {
        SecuritySettings {
            password_min_length: 12,
            password_min_classes: 2,
            password_history: 5,
            password_max_age_days: Some(90),
            lockout_threshold: 5,
            lockout_duration_secs: 900,
            mfa_required_roles: vec!["admin".into()],
        }
    }

    #[test]
    fn no_changes_keep_everything() {
        assert_eq!(apply(current(), &SettingsChanges::default()), current());
    }

    #[test]
    fn each_change_replaces_one_field() {
        let c = SettingsChanges {
            password_max_age_days: Some(MaxAge::Never),
            lockout_duration: Some(1800),
            mfa_required_roles: Some(RoleList(vec![])),
            ..Default::default()
        };
        let new = apply(current(), &c);
        assert_eq!(
            new,
            SecuritySettings {
                password_max_age_days: None,
                lockout_duration_secs: 1800,
                mfa_required_roles: vec![],
                ..current()
            }
        );
        let c = SettingsChanges {
            password_min_length: Some(16),
            password_min_classes: Some(3),
            password_history: Some(0),
            password_max_age_days: Some(MaxAge::Days(30)),
            lockout_threshold: Some(10),
            lockout_duration: None,
            mfa_required_roles: Some(RoleList(vec!["admin".into(), "technician".into()])),
        };
        let new = apply(current(), &c);
        assert_eq!(
            new,
            SecuritySettings {
                password_min_length: 16,
                password_min_classes: 3,
                password_history: 0,
                password_max_age_days: Some(30),
                lockout_threshold: 10,
                lockout_duration_secs: 900,
                mfa_required_roles: vec!["admin".into(), "technician".into()],
            }
        );
    }

    #[test]
    fn settings_are_shown_in_words() {
        assert_eq!(
            render(&current()),
            "Password minimum length:   12\n\
             Password minimum classes:  2 of 4\n\
             Password history:          5\n\
             Password maximum age:      90 days\n\
             Lockout threshold:         5 failed logins\n\
             Lockout duration:          15m\n\
             MFA required for roles:    admin\n"
        );
        let none = SecuritySettings {
            password_max_age_days: None,
            mfa_required_roles: vec![],
            ..current()
        };
        let out = render(&none);
        assert!(out.contains("Password maximum age:      never\n"), "{out}");
        assert!(out.contains("MFA required for roles:    none\n"), "{out}");
    }
}
