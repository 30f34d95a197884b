//! Automatic assignment: a queue with `auto_assign` hands each waiting
//! customer to the next available member, round robin.
//!
//! A member is *available* while they follow the queue live: the console's
//! Support page or `jg support queue --watch` holds a technicians' event
//! stream open, and each open stream counts them present ([`Presence`]).
//! Assignment runs when a customer starts waiting (their client connected,
//! or the session was transferred to the queue), and when a member becomes
//! available (so customers who waited while nobody was there are taken as
//! soon as someone is). An assigned session is an accepted one: the same
//! compare-and-set, participant row and `support-accept` entry as a
//! technician's own Accept, with `assigned=auto` in its detail.
//!
//! Single node, like the rest of the hub: presence is this gateway's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::rbac::{self, Action, Decision, Resource, Subject};
use crate::state::AppState;

use super::{SupportError, queues, session};

/// Who is available, and whom each queue assigned last.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    inner: Mutex<Inner>,
    /// One assignment pass at a time (two passes would offer the same
    /// customer twice; the accept's compare-and-set would refuse the second,
    /// but the round robin would have moved on for nothing).
    turn: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By user id: the subject their newest stream authenticated as, and
    /// how many streams they hold open.
    here: HashMap<String, (Subject, usize)>,
    /// By queue: the user name assigned last.
    last: HashMap<String, String>,
}

/// Held by an open event stream; its user is available until it drops.
#[derive(Debug)]
pub(crate) struct Here {
    presence: Arc<Presence>,
    user_id: String,
}

impl Drop for Here {
    fn drop(&mut self) {
        let mut inner = self.presence.lock();
        if let Some((_, n)) = inner.here.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                inner.here.remove(&self.user_id);
            }
        }
    }
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `who` opened an event stream: available until the guard drops.
    /// `None` for API clients (they never take sessions).
    pub(crate) fn arrive(self: &Arc<Self>, who: &Subject) -> Option<Here> {
        let user_id = who.user_id()?.as_str().to_owned();
        let mut inner = self.lock();
        let entry = inner
            .here
            .entry(user_id.clone())
            .or_insert_with(|| (who.clone(), 0));
        entry.0 = who.clone();
        entry.1 += 1;
        Some(Here {
            presence: Arc::clone(self),
            user_id,
        })
    }

    /// The members of `q` available to take its sessions, by name.
    pub(crate) fn available_in(&self, q: &queues::Queue) -> Vec<String> {
        let mut names: Vec<String> = self
            .candidates(&self.lock(), q)
            .into_iter()
            .map(|w| w.name.clone())
            .collect();
        names.sort();
        names
    }

    fn candidates<'a>(&self, inner: &'a Inner, q: &queues::Queue) -> Vec<&'a Subject> {
        inner
            .here
            .iter()
            .filter(|(user_id, (who, _))| {
                q.has_member(user_id)
                    && who.groups.contains(&q.group)
                    && rbac::authorize(who, Action::HandleSupport, Resource::Site)
                        == Decision::Allow
            })
            .map(|(_, (who, _))| who)
            .collect()
    }

    /// The next available member of `q` after the one assigned last
    /// (by user name, wrapping round), who may handle support in its group.
    fn next(&self, q: &queues::Queue) -> Option<Subject> {
        let mut inner = self.lock();
        let mut candidates = self.candidates(&inner, q);
        candidates.sort_by(|a, b| a.name.cmp(&b.name));
        let last = inner.last.get(&q.name);
        let pick = candidates
            .iter()
            .find(|who| last.is_none_or(|l| who.name > *l))
            .or_else(|| candidates.first())
            .map(|who| (*who).clone())?;
        inner.last.insert(q.name.clone(), pick.name.clone());
        Some(pick)
    }

    /// Who is available, by name.
    #[cfg(test)]
    fn available(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .lock()
            .here
            .values()
            .map(|(w, _)| w.name.clone())
            .collect();
        names.sort();
        names
    }
}

/// Assigns `queue`'s waiting customers (oldest first) to its available
/// members in turn, when the queue assigns automatically. Failures are
/// logged: the customers keep waiting for a technician's Accept.
pub(crate) async fn run(st: &AppState, queue: &str) {
    let presence = &st.support_hub.presence;
    let _turn = presence.turn.lock().await;
    let q = match queues::get(&st.db, queue).await {
        Ok(Some(q)) if q.auto_assign => q,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(queue, error = %e, "automatic assignment: cannot read the queue");
            return;
        }
    };
    for id in st.support_hub.live.waiting_in(queue) {
        let Some(who) = presence.next(&q) else {
            return;
        };
        match session::accept_as(st, &id, &who, session::Taken::Assigned).await {
            Ok(()) => {
                tracing::info!(support = %id, queue, technician = %who.name, "assigned automatically");
            }
            // Someone accepted it meanwhile, or it ended.
            Err(SupportError::AlreadyTaken(_) | SupportError::UnknownSession(_)) => {}
            Err(e) => {
                tracing::warn!(support = %id, queue, error = %e, "automatic assignment failed");
            }
        }
    }
}

/// Runs [`run`] for every queue `who` is a member of (they just became
/// available).
pub(crate) async fn arrived(st: &AppState, who: &Subject) {
    let Some(user_id) = who.user_id() else {
        return;
    };
    let queues = match queues::list(&st.db).await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "automatic assignment: cannot list the queues");
            return;
        }
    };
    for q in queues
        .iter()
        .filter(|q| q.auto_assign && q.has_member(user_id.as_str()))
    {
        run(st, &q.name).await;
    }
}

/// Runs [`run`] in the background (callers are request handlers and the
/// client's connection, which should not wait for it).
pub(crate) fn spawn(st: &AppState, queue: String) {
    let st2 = st.clone();
    st.tasks
        .clone()
        .spawn(async move { run(&st2, &queue).await });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::rbac::{Groups, Permission, Restriction, Scopes, SubjectKind};

    fn tech(name: &str, perms: &[Permission], groups: &[&str]) -> Subject {
        Subject {
            name: name.into(),
            kind: SubjectKind::User(UserId(format!("usr_{name}"))),
            role: "technician".into(),
            permissions: perms.iter().copied().collect(),
            groups: Groups::from_list(&groups.iter().map(|g| (*g).to_owned()).collect::<Vec<_>>()),
            scopes: Scopes::FULL,
            restriction: Restriction::None,
            approvals: Default::default(),
        }
    }

    fn queue(members: &[&str]) -> queues::Queue {
        queues::Queue {
            name: "helpdesk".into(),
            description: String::new(),
            group: "desk".into(),
            public: true,
            auto_assign: true,
            max_waiting: 200,
            members: members
                .iter()
                .map(|m| (format!("usr_{m}"), (*m).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn available_members_take_turns_in_name_order_and_leave_when_their_streams_close() {
        let presence = Arc::new(Presence::default());
        let q = queue(&["alice", "bob", "carol", "dave"]);
        let ok = [Permission::Support];
        let alice = presence.arrive(&tech("alice", &ok, &["desk"]));
        let bob = presence.arrive(&tech("bob", &ok, &["desk"]));
        // A second stream of bob's: he stays available until both close.
        let bob_again = presence.arrive(&tech("bob", &ok, &["desk"]));
        let _carol = presence.arrive(&tech("carol", &ok, &["desk"]));
        // Present but not allowed: outside the queue's group, without the
        // permission, and not a member.
        let _dave = presence.arrive(&tech("dave", &ok, &["other"]));
        let _erin = presence.arrive(&tech("erin", &ok, &["desk"]));
        let next = |p: &Presence| p.next(&q).map(|w| w.name);
        assert_eq!(
            presence.available(),
            ["alice", "bob", "carol", "dave", "erin"]
        );

        let turns: Vec<_> = (0..4).map(|_| next(&presence)).collect();
        let names = |v: &[&str]| v.iter().map(|n| Some((*n).to_owned())).collect::<Vec<_>>();
        assert_eq!(turns, names(&["alice", "bob", "carol", "alice"]));

        drop(bob);
        assert_eq!(next(&presence).as_deref(), Some("bob"));
        drop(bob_again);
        // Bob is gone: after carol, alice; then carol again.
        assert_eq!(next(&presence).as_deref(), Some("carol"));
        assert_eq!(next(&presence).as_deref(), Some("alice"));
        assert_eq!(next(&presence).as_deref(), Some("carol"));
        drop(alice);
        assert_eq!(next(&presence).as_deref(), Some("carol"));
        assert!(!presence.available().contains(&"bob".to_owned()));
    }

    #[test]
    fn nobody_available_assigns_nobody_and_api_clients_are_never_present() {
        let presence = Arc::new(Presence::default());
        let q = queue(&["alice"]);
        assert!(presence.next(&q).is_none());
        let mut client = tech("reports", &[Permission::Support], &["desk"]);
        client.kind = SubjectKind::ApiClient {
            client_id: "cli_1".into(),
        };
        assert!(presence.arrive(&client).is_none());
        let no_permission = presence.arrive(&tech("alice", &[Permission::View], &["desk"]));
        assert!(no_permission.is_some());
        assert!(presence.next(&q).is_none());
    }
}
