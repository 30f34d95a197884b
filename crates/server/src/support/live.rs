//! What this gateway knows of each support session that is not over: its
//! customer's client connection, who takes part, the rights granted and
//! asked, and the chat's sequence. The store has the history; this is the
//! fold the live views, the checks of technicians' sub-sessions and the
//! messages to the client are made from.
//!
//! Single node: the customer's client is connected to one gateway, which
//! holds its session here (like `agents::Registry` holds agents).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use jumpgate_api_types::support as api;
use jumpgate_net::mux::MuxHandle;
use jumpgate_proto::assist::{
    AssistMsg, Participant, ParticipantRole, Right, Rights, SupportState,
};
use jumpgate_proto::control::Control;

use crate::ids::{self, AgentId};

/// A technician taking part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Person {
    pub(crate) user_id: String,
    pub(crate) name: String,
    pub(crate) role: ParticipantRole,
    pub(crate) joined_at_ms: i64,
}

/// One support session that is not over.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) queue: String,
    pub(crate) group: String,
    pub(crate) hostname: Option<String>,
    pub(crate) state: SupportState,
    /// When the client first connected (the order of the queue).
    pub(crate) joined_at_ms: i64,
    /// The place in the queue the customer was last told.
    pub(crate) told_position: Option<u32>,
    /// Everyone on the technicians' side; the owner first.
    pub(crate) people: Vec<Person>,
    /// What the customer's client enforces now (its last `Granted`, or
    /// the fold of answers and revocations until then).
    pub(crate) granted: Rights,
    /// Rights asked and not answered yet, by ask number.
    pub(crate) asked: BTreeMap<u64, Right>,
    next_ask: u64,
    /// The last chat line's number (the store's, read when the session
    /// came live).
    pub(crate) chat_seq: u64,
    /// The last grant event's number.
    pub(crate) grant_seq: u64,
    /// Rights allowed at some point (the history's "rights used").
    pub(crate) used: Rights,
    /// The client's connection, while it is connected.
    client: Option<(u64, MuxHandle)>,
    next_conn: u64,
    /// Chat lines the customer sent in the current second (rate limit).
    chat_window: (i64, u32),
    /// Supervisors watching a sub-session, by user id: how many watches
    /// each holds open (they are listed while at least one is).
    supervising: BTreeMap<String, u32>,
}

impl Live {
    pub(crate) fn role_of(&self, user_id: &str) -> Option<ParticipantRole> {
        self.people
            .iter()
            .find(|p| p.user_id == user_id)
            .map(|p| p.role)
    }

    pub(crate) fn online(&self) -> bool {
        self.client.as_ref().is_some_and(|(_, h)| !h.is_closed())
    }

    /// Sends to the customer's client (dropped while it is away: it gets
    /// the state again when it reconnects).
    pub(crate) fn send(&self, msg: AssistMsg) {
        if let Some((_, h)) = &self.client {
            h.send_control(&Control::Assist(msg));
        }
    }

    /// The participants' list as the customer's window shows it.
    pub(crate) fn participants_msg(&self) -> AssistMsg {
        AssistMsg::Participants {
            list: self
                .people
                .iter()
                .map(|p| Participant {
                    name: p.name.clone(),
                    role: p.role,
                })
                .collect(),
        }
    }

    /// A supervisor started (`true`) or stopped watching one of this
    /// session's sub-sessions; `true` when the list of people changed (they
    /// are listed, as supervisor, from their first watch to their last).
    pub(crate) fn supervise(&mut self, user_id: &str, name: &str, watching: bool) -> bool {
        if watching {
            let n = self.supervising.entry(user_id.to_owned()).or_default();
            *n += 1;
            if *n > 1 || self.role_of(user_id).is_some() {
                return false;
            }
            self.people.push(Person {
                user_id: user_id.to_owned(),
                name: name.to_owned(),
                role: ParticipantRole::Supervisor,
                joined_at_ms: ids::now_ms(),
            });
            return true;
        }
        match self.supervising.get_mut(user_id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.supervising.remove(user_id);
                let before = self.people.len();
                self.people
                    .retain(|p| !(p.user_id == user_id && p.role == ParticipantRole::Supervisor));
                self.people.len() != before
            }
            None => false,
        }
    }

    /// A new ask's number.
    pub(crate) fn ask(&mut self, right: Right) -> u64 {
        self.next_ask += 1;
        self.asked.insert(self.next_ask, right);
        self.next_ask
    }

    /// Counts a chat line from the customer: `false` over
    /// [`jumpgate_proto::assist::CHAT_PER_SECOND`].
    pub(crate) fn customer_may_chat(&mut self) -> bool {
        let sec = ids::now_ms() / 1000;
        if self.chat_window.0 != sec {
            self.chat_window = (sec, 0);
        }
        self.chat_window.1 += 1;
        self.chat_window.1 <= jumpgate_proto::assist::CHAT_PER_SECOND
    }

    /// Fills the live parts of a technicians' view.
    pub(crate) fn fill(&self, v: &mut api::SupportSession) {
        v.participants = self
            .people
            .iter()
            .map(|p| api::SupportParticipant {
                username: p.name.clone(),
                role: p.role.as_str().to_owned(),
                joined_at: ids::rfc3339(p.joined_at_ms),
            })
            .collect();
        v.granted = self.granted.iter().map(|r| r.as_str().to_owned()).collect();
        let mut asked: Vec<String> = self.asked.values().map(|r| r.as_str().to_owned()).collect();
        asked.dedup();
        v.asked = asked;
        v.online = self.online();
        v.hostname.clone_from(&self.hostname);
    }
}

/// What a live session starts from (read from the store when the client
/// connects).
#[derive(Debug)]
pub(crate) struct Init {
    pub(crate) queue: String,
    pub(crate) group: String,
    pub(crate) hostname: Option<String>,
    pub(crate) state: SupportState,
    pub(crate) joined_at_ms: i64,
    pub(crate) people: Vec<Person>,
    pub(crate) chat_seq: u64,
    pub(crate) grant_seq: u64,
    pub(crate) used: Rights,
}

/// The live support sessions of this gateway, by support session id.
#[derive(Debug, Default)]
pub(crate) struct LiveSupport {
    inner: Mutex<HashMap<String, Live>>,
}

impl LiveSupport {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client of `id` connected: a new live session (its rights start
    /// empty: a client that reconnects tells what it enforces with
    /// `Granted`), or the known one with its new connection. Returns the
    /// connection's number, for [`Self::detach`].
    pub(crate) fn attach(&self, id: &str, init: Init, handle: MuxHandle) -> u64 {
        let mut all = self.lock();
        let live = all.entry(id.to_owned()).or_insert_with(|| Live {
            queue: init.queue,
            group: init.group,
            hostname: None,
            state: init.state,
            joined_at_ms: init.joined_at_ms,
            told_position: None,
            people: init.people,
            granted: Rights::NONE,
            asked: BTreeMap::new(),
            next_ask: 0,
            chat_seq: init.chat_seq,
            grant_seq: init.grant_seq,
            used: init.used,
            client: None,
            next_conn: 0,
            chat_window: (0, 0),
            supervising: BTreeMap::new(),
        });
        live.hostname = init.hostname.or(live.hostname.take());
        live.next_conn += 1;
        live.client = Some((live.next_conn, handle));
        live.next_conn
    }

    /// The client's connection `conn` ended (a newer one may have replaced
    /// it already). `true` when the session is now without its client.
    pub(crate) fn detach(&self, id: &str, conn: u64) -> bool {
        let mut all = self.lock();
        let Some(live) = all.get_mut(id) else {
            return false;
        };
        if live.client.as_ref().is_some_and(|(c, _)| *c == conn) {
            live.client = None;
            // Nothing is granted to a client that is not there; asks die
            // with the connection.
            live.granted = Rights::NONE;
            live.asked.clear();
            return true;
        }
        false
    }

    /// Forgets an ended session; its client's connection is returned for
    /// the caller to close once the last words are sent.
    pub(crate) fn remove(&self, id: &str) -> Option<Live> {
        self.lock().remove(id)
    }

    /// Runs `f` on the live session `id`.
    pub(crate) fn with<R>(&self, id: &str, f: impl FnOnce(&mut Live) -> R) -> Option<R> {
        self.lock().get_mut(id).map(f)
    }

    /// Whether `user_id` may still run a `right` sub-session of `id`: the
    /// reason when not (a sub-session's re-check).
    pub(crate) fn still_allowed(&self, id: &str, user_id: &str, right: Right) -> Option<String> {
        let all = self.lock();
        let Some(live) = all.get(id) else {
            return Some("the support session ended".into());
        };
        match live.role_of(user_id) {
            Some(ParticipantRole::Owner | ParticipantRole::Participant) => {}
            _ => return Some("you no longer take part in the support session".into()),
        }
        if !live.online() {
            return Some("the customer's client disconnected".into());
        }
        if !live.granted.contains(right) {
            return Some(format!("the customer took back \"{}\"", right.label()));
        }
        None
    }

    /// The agent id the client's streams are opened on.
    pub(crate) fn agent_id(id: &str) -> AgentId {
        AgentId(id.to_owned())
    }

    /// The sessions of `queue` waiting with their client connected, the
    /// longest waiting first.
    pub(crate) fn waiting_in(&self, queue: &str) -> Vec<String> {
        let all = self.lock();
        let mut waiting: Vec<(i64, &String)> = all
            .iter()
            .filter(|(_, l)| l.queue == queue && l.state == SupportState::Waiting && l.online())
            .map(|(id, l)| (l.joined_at_ms, id))
            .collect();
        waiting.sort();
        waiting.into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// Sends each waiting customer of `queue` their place in it (1 = next),
    /// when it changed since they were last told.
    pub(crate) fn tell_positions(&self, queue: &str) {
        let mut all = self.lock();
        let mut waiting: Vec<&mut Live> = all
            .values_mut()
            .filter(|l| l.queue == queue && l.state == SupportState::Waiting)
            .collect();
        waiting.sort_by_key(|l| l.joined_at_ms);
        for (n, l) in waiting.into_iter().enumerate() {
            let position = u32::try_from(n + 1).ok();
            if l.told_position != position {
                l.told_position = position;
                l.send(AssistMsg::Status {
                    state: SupportState::Waiting,
                    queue: l.queue.clone(),
                    position,
                });
            }
        }
    }
}
