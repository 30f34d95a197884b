//! `jg admin endpoints set-group|revoke|enroll-token|reenroll`.

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::{CreateEnrollToken, CreateReenrollToken, EnrollToken, ReenrollToken};
use jumpgate_client::Client;

use super::print_json;
use crate::args::parse_duration;

#[derive(Debug, Subcommand)]
pub(crate) enum EndpointsCommand {
    /// Move an endpoint to another group.
    SetGroup {
        /// The endpoint's name (see `jg endpoints`).
        endpoint: String,
        /// The group to move it to (see `jg admin groups list`).
        group: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an endpoint: its agent is refused from now on and its live
    /// connection is cut at once.
    Revoke {
        /// The endpoint's name (see `jg endpoints`).
        endpoint: String,
    },
    /// Give an endpoint a new key, e.g. after its agent's state directory
    /// was copied (`conflict` in `jg endpoints`) or its key stolen: prints a
    /// one-time token bound to that endpoint (token on stdout, details on
    /// stderr). Start the legitimate agent with `--reenroll` and this token;
    /// it gets a new key, and the old key — every copy of it — is refused
    /// from then on.
    Reenroll {
        /// The endpoint's name (see `jg endpoints`).
        endpoint: String,
        /// How long the token stays valid, e.g. 30m, 1h [gateway default: 1h].
        #[arg(long, value_name = "DURATION", value_parser = ttl)]
        ttl: Option<String>,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Print a one-time enrollment token for a new endpoint (the token on
    /// stdout, the details on stderr).
    EnrollToken {
        /// Group the enrolled endpoint joins [gateway default: default].
        #[arg(long)]
        group: Option<String>,
        /// How long the token stays valid, e.g. 30m, 1h, 7d [gateway default: 1h].
        #[arg(long, value_name = "DURATION", value_parser = ttl)]
        ttl: Option<String>,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
}

/// Checked here for a clear message; sent as typed.
fn ttl(s: &str) -> Result<String, String> {
    parse_duration(s).map(|_| s.trim().to_owned())
}

pub(crate) async fn run(client: &Client, cmd: EndpointsCommand) -> anyhow::Result<()> {
    match cmd {
        EndpointsCommand::SetGroup {
            endpoint,
            group,
            json,
        } => {
            let e = client
                .set_endpoint_group(&endpoint, &group)
                .await
                .with_context(|| format!("moving {endpoint} to group {group}"))?;
            if json {
                print_json(&e)?;
            } else {
                outln!("Endpoint {} is now in group {}", e.name, e.group)?;
            }
        }
        EndpointsCommand::Revoke { endpoint } => {
            client
                .revoke_endpoint(&endpoint)
                .await
                .with_context(|| format!("revoking {endpoint}"))?;
            outln!("Revoked endpoint {endpoint}: its agent is cut off and refused from now on")?;
        }
        EndpointsCommand::Reenroll {
            endpoint,
            ttl,
            json,
        } => {
            let t = client
                .create_reenroll_token(&endpoint, &CreateReenrollToken { ttl })
                .await
                .with_context(|| format!("creating a re-enrollment token for {endpoint}"))?;
            if json {
                print_json(&t)?;
            } else {
                eprintln!("{}", reenroll_details(&t));
                outln!("{}", t.token)?;
            }
        }
        EndpointsCommand::EnrollToken { group, ttl, json } => {
            let t = client
                .create_enroll_token(&CreateEnrollToken { group, ttl })
                .await
                .context("creating an enrollment token")?;
            if json {
                print_json(&t)?;
            } else {
                eprintln!("{}", token_details(&t));
                outln!("{}", t.token)?;
            }
        }
    }
    Ok(())
}

/// The stderr line of `jumpgate admin enroll-token`.
fn token_details(t: &EnrollToken) -> String {
    format!(
        "1 one-time enrollment token for group `{}`, valid until {}:",
        t.group, t.expires_at
    )
}

/// The stderr lines of `jg admin endpoints reenroll`.
fn reenroll_details(t: &ReenrollToken) -> String {
    format!(
        "one-time re-enrollment token for endpoint `{e}`, valid until {}.\n\
         On the endpoint, stop its agent and run: jumpgate agent --state-dir DIR --reenroll \
         (token in JUMPGATE_ENROLL_TOKEN or --enroll-token); the old key stops working then.",
        t.expires_at,
        e = t.endpoint,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_checked_but_sent_as_typed() {
        assert_eq!(ttl(" 1h30m").unwrap(), "1h30m");
        assert!(ttl("soon").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn token_details_match_the_server_cli() {
        let t = EnrollToken {
            token: "jge_secret".into(),
            group: "prod".into(),
            expires_at: "2025-01-01T01:00:00Z".into(),
        };
        let line = token_details(&t);
        assert_eq!(
            line,
            "1 one-time enrollment token for group `prod`, valid until 2025-01-01T01:00:00Z:"
        );
        assert!(!line.contains("jge_secret"));
    }
}
