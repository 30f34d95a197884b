//! One module per subcommand, and what they share: the gateway client built
//! from the command line and the login state.

use std::path::PathBuf;

use anyhow::Context;
use jumpgate_client::Client;
use jumpgate_net::dial::{HttpProxy, ServerUrl};
use jumpgate_net::tls::{Fingerprint, Trust};

use crate::errors::NotLoggedIn;
use crate::state::{self, State};

pub(crate) mod access;
pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod cp;
pub(crate) mod desktop;
pub(crate) mod endpoints;
pub(crate) mod epm;
pub(crate) mod forward;
pub(crate) mod login;
pub(crate) mod mfa;
pub(crate) mod packages;
pub(crate) mod passwd;
pub(crate) mod recordings;
pub(crate) mod report;
pub(crate) mod sessions;
pub(crate) mod shell;
pub(crate) mod ssh_cert;
pub(crate) mod ssh_config;
pub(crate) mod ssh_keys;
pub(crate) mod support;
pub(crate) mod support_pin;
pub(crate) mod targets;
pub(crate) mod vault;
pub(crate) mod whoami;

/// Global options and where the state lives.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) server: Option<ServerUrl>,
    pub(crate) ca_fingerprint: Option<Fingerprint>,
    pub(crate) proxy: Option<HttpProxy>,
    pub(crate) state_dir: PathBuf,
}

impl Ctx {
    fn trust(fp: Option<Fingerprint>) -> Trust {
        fp.map_or(Trust::SystemRoots, Trust::Pinned)
    }

    fn client(&self, server: ServerUrl, fp: Option<Fingerprint>) -> anyhow::Result<Client> {
        Client::new(server, &Self::trust(fp), self.proxy.clone())
            .context("setting up the gateway client")
    }

    /// The gateway and pin for `st`, command-line options first.
    fn target(&self, st: &State) -> anyhow::Result<(ServerUrl, Option<Fingerprint>)> {
        let server = match &self.server {
            Some(s) => s.clone(),
            None => st.server.parse().with_context(|| {
                format!("the saved server `{}` is invalid; run jg login", st.server)
            })?,
        };
        let fp = match (self.ca_fingerprint, &st.ca_fingerprint) {
            (Some(fp), _) => Some(fp),
            (None, Some(saved)) => Some(
                saved
                    .parse()
                    .context("the saved CA fingerprint is invalid; run jg login")?,
            ),
            (None, None) => None,
        };
        Ok((server, fp))
    }

    /// A client carrying the saved token.
    pub(crate) fn authed_client(&self) -> anyhow::Result<Client> {
        let st = state::load(&self.state_dir)?.ok_or(NotLoggedIn)?;
        let (server, fp) = self.target(&st)?;
        Ok(self.client(server, fp)?.with_token(st.token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> State {
        State {
            server: "https://saved.example:8443".into(),
            ca_fingerprint: Some("11".repeat(32)),
            username: "alice".into(),
            token: "t".into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
            role: "admin".into(),
        }
    }

    fn ctx(server: Option<&str>, fp: Option<&str>) -> Ctx {
        Ctx {
            server: server.map(|s| s.parse().unwrap()),
            ca_fingerprint: fp.map(|f| f.parse().unwrap()),
            proxy: None,
            state_dir: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn command_line_wins_over_the_state_file() {
        let (server, fp) = ctx(None, None).target(&saved()).unwrap();
        assert_eq!(server.to_string(), "https://saved.example:8443");
        assert_eq!(fp.unwrap().to_string(), "11".repeat(32));

        let other_fp = "22".repeat(32);
        let (server, fp) = ctx(Some("https://cli.example:9443"), Some(&other_fp))
            .target(&saved())
            .unwrap();
        assert_eq!(server.to_string(), "https://cli.example:9443");
        assert_eq!(fp.unwrap().to_string(), other_fp);
    }

    #[test]
    fn missing_state_is_not_logged_in() {
        let dir = tempfile::tempdir().unwrap();
        let c = Ctx {
            state_dir: dir.path().to_path_buf(),
            ..ctx(Some("https://gw:1"), None)
        };
        let err = c.authed_client().unwrap_err();
        assert!(err.is::<NotLoggedIn>(), "{err:#}");
    }
}
