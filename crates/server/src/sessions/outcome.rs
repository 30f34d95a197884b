//! How a session ended, as stored in `session_events.outcome` and in the
//! `session-close:*` audit entries, and shown to auditors. The stored text
//! is a contract (clients and auditors read it): [`Outcome`]'s `Display`
//! writes it and `FromStr` reads it back, and the test below freezes it.

use std::fmt;
use std::str::FromStr;

/// The `outcome` column of a session still running (not an outcome).
pub(crate) const RUNNING: &str = "open";

/// Which side of a relayed session failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Technician,
    Endpoint,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Self::Technician => "technician side",
            Self::Endpoint => "endpoint side",
        }
    }
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Both sides finished: `ok`.
    Ok,
    /// The endpoint refused to open it, in its (cleaned) words:
    /// `refused: <message>`.
    Refused(String),
    /// The gateway stopped it (an administrator, revoked access, shutdown):
    /// `terminated: <reason>`.
    Terminated(String),
    /// Something failed, on one side of the relay or in the gateway
    /// (`None`): `error: [technician side: |endpoint side: ]<message>`.
    Failed(Option<Side>, String),
    /// Access was denied at open: `denied`.
    Denied,
    /// The gateway stopped uncleanly while it ran (closed at the next
    /// start, by `close_orphans`): `interrupted: gateway restarted`.
    Interrupted,
}

const INTERRUPTED: &str = "interrupted: gateway restarted";

impl Outcome {
    /// A failure not attributed to one side of the relay.
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::Failed(None, message.into())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Refused(m) => write!(f, "refused: {m}"),
            Self::Terminated(r) => write!(f, "terminated: {r}"),
            Self::Failed(None, m) => write!(f, "error: {m}"),
            Self::Failed(Some(side), m) => write!(f, "error: {}: {m}", side.as_str()),
            Self::Denied => f.write_str("denied"),
            Self::Interrupted => f.write_str(INTERRUPTED),
        }
    }
}

/// Text that is not a stored outcome ([`RUNNING`] included).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a session outcome: `{0}`")]
pub(crate) struct UnknownOutcome(String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ok" => Self::Ok,
            "denied" => Self::Denied,
            INTERRUPTED => Self::Interrupted,
            _ => {
                if let Some(m) = s.strip_prefix("refused: ") {
                    Self::Refused(m.to_owned())
                } else if let Some(r) = s.strip_prefix("terminated: ") {
                    Self::Terminated(r.to_owned())
                } else if let Some(m) = s.strip_prefix("error: ") {
                    let sided = [Side::Technician, Side::Endpoint]
                        .into_iter()
                        .find_map(|side| {
                            m.strip_prefix(side.as_str())
                                .and_then(|rest| rest.strip_prefix(": "))
                                .map(|rest| Self::Failed(Some(side), rest.to_owned()))
                        });
                    sided.unwrap_or_else(|| Self::failed(m))
                } else {
                    return Err(UnknownOutcome(s.to_owned()));
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored strings: changing one breaks what auditors and clients
    /// read. Extend the table, never edit a line.
    #[test]
    fn stored_outcomes_are_frozen_and_parse_back() {
        let table: &[(Outcome, &str)] = &[
            (Outcome::Ok, "ok"),
            (Outcome::Denied, "denied"),
            (Outcome::Interrupted, "interrupted: gateway restarted"),
            (
                Outcome::Refused("no such file".into()),
                "refused: no such file",
            ),
            (
                Outcome::Terminated("terminated by alice".into()),
                "terminated: terminated by alice",
            ),
            (
                Outcome::Terminated("access revoked: endpoint `web-1` was revoked".into()),
                "terminated: access revoked: endpoint `web-1` was revoked",
            ),
            (
                Outcome::failed("audit log unavailable"),
                "error: audit log unavailable",
            ),
            (
                Outcome::failed("recording unavailable"),
                "error: recording unavailable",
            ),
            (
                Outcome::failed("endpoint offline"),
                "error: endpoint offline",
            ),
            (
                Outcome::failed("the endpoint did not answer in time"),
                "error: the endpoint did not answer in time",
            ),
            (
                Outcome::Failed(Some(Side::Technician), "broken pipe".into()),
                "error: technician side: broken pipe",
            ),
            (
                Outcome::Failed(Some(Side::Endpoint), "connection reset".into()),
                "error: endpoint side: connection reset",
            ),
        ];
        for (outcome, stored) in table {
            assert_eq!(outcome.to_string(), *stored);
            assert_eq!(stored.parse::<Outcome>().as_ref(), Ok(outcome), "{stored}");
        }
        assert!(RUNNING.parse::<Outcome>().is_err());
        assert!("finished".parse::<Outcome>().is_err());
    }

    /// The restart's outcome is written by SQL (`close_orphans`): it must
    /// read back as [`Outcome::Interrupted`], on both engines.
    #[tokio::test]
    async fn a_session_closed_at_restart_reads_back_as_interrupted() {
        for (db, _dir) in crate::store::tests::engines("outcome_interrupted").await {
            let ev = super::super::NewEvent {
                user_id: "usr_1",
                username: "bob",
                endpoint_id: Some("ep_1"),
                endpoint_name: "web-1",
                endpoint_group: "default",
                kind: "shell",
                target: "",
                outcome: RUNNING,
                support_id: None,
            };
            super::super::record_start(&db, &ev).await.unwrap();
            assert_eq!(super::super::close_orphans(&db).await.unwrap(), 1);
            let scope = crate::rbac::ReadScope::All;
            let f = super::super::Filter {
                scope: &scope,
                endpoint: None,
                user: None,
                kind: None,
                since_ms: None,
                until_ms: None,
                active: None,
                before: None,
                limit: 10,
            };
            let rows = super::super::list(&db, &f).await.unwrap();
            assert_eq!(rows.len(), 1, "{}", db.engine());
            assert_eq!(rows[0].outcome.parse(), Ok(Outcome::Interrupted));
        }
    }
}
