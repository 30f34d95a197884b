//! Stopping a session wherever it runs. Today every session runs on this
//! gateway, so [`LiveSessions`] is the implementation; with several
//! gateways a new implementation asks the gateway holding the session.
//! The terminate route and the access re-check stop sessions only through
//! this trait (`AppState::session_control`).

use std::future::Future;
use std::pin::Pin;

use super::LiveSessions;

/// What [`SessionControl`]'s methods return: a remote implementation waits
/// for another gateway.
pub(crate) type ControlFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Finds and stops live sessions.
pub(crate) trait SessionControl: Send + Sync {
    /// Whether session `id` is being relayed (possibly already stopping).
    fn is_live<'a>(&'a self, id: &'a str) -> ControlFuture<'a, bool>;

    /// Stops session `id`, telling its technician `reason` (a session
    /// stopped twice keeps its first reason). `false`: no such live
    /// session.
    fn stop<'a>(&'a self, id: &'a str, reason: &'a str) -> ControlFuture<'a, bool>;
}

/// Single gateway: the sessions this process relays.
impl SessionControl for LiveSessions {
    fn is_live<'a>(&'a self, id: &'a str) -> ControlFuture<'a, bool> {
        let live = self.get(id).is_some();
        Box::pin(std::future::ready(live))
    }

    fn stop<'a>(&'a self, id: &'a str, reason: &'a str) -> ControlFuture<'a, bool> {
        let stopped = self.get(id).map(|h| h.stop(reason)).is_some();
        Box::pin(std::future::ready(stopped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AgentId, SessionId};
    use crate::rbac::SubjectKind;
    use jumpgate_proto::session::SessionKind;

    fn grant() -> super::super::Grant {
        super::super::Grant {
            credential: crate::identity::Credential::of("jgs_test"),
            subject: SubjectKind::User(crate::ids::UserId("usr_1".into())),
            subject_name: "bob".into(),
            endpoint_id: AgentId("ep_1".into()),
            endpoint_name: "srv".into(),
            kind: SessionKind::Shell,
            expires_at: None,
            support: None,
            target: None,
            access_request: None,
        }
    }

    #[tokio::test]
    async fn a_live_session_is_stopped_once_with_its_first_reason() {
        let live = LiveSessions::default();
        let id = SessionId::generate();
        let handle = live.register(id.clone(), grant());
        let control: &dyn SessionControl = &live;
        assert!(control.is_live(id.as_str()).await);
        assert!(!control.is_live("ses_unknown").await);
        assert!(!control.stop("ses_unknown", "terminated by alice").await);
        assert!(
            !handle.token.is_cancelled(),
            "another session's stop touched this one"
        );

        assert!(control.stop(id.as_str(), "terminated by alice").await);
        assert!(handle.token.is_cancelled());
        assert!(control.stop(id.as_str(), "access revoked: later").await);
        assert_eq!(handle.reason(), "terminated by alice");

        live.remove(&id);
        assert!(!control.is_live(id.as_str()).await);
        assert!(!control.stop(id.as_str(), "again").await);
    }
}
