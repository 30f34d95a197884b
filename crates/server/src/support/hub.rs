//! The live side of attended support: one broadcast of [`SupportEvent`]s
//! that every technician's event stream (`GET /api/v1/support/events`,
//! server-sent events) filters for its subscriber, so a queue updates in
//! the console and in `jg` as soon as something happens — no polling.
//!
//! Single node: the hub lives in this gateway's memory, and the snapshot a
//! subscriber starts from is read from the store (so it also shows what
//! another gateway wrote, up to that moment).

use std::collections::BTreeSet;

use jumpgate_api_types::support::{self as api, SupportEvent};
use tokio::sync::broadcast;

use super::SupportError;
use super::crypto;
use super::queues;
use crate::ids;
use crate::keys::Keyring;
use crate::store::{Store, sql};

/// Events a slow subscriber may fall behind by before it gets a fresh
/// snapshot instead.
const CAPACITY: usize = 1024;

/// One event and the queue it concerns (subscribers filter on it).
#[derive(Clone, Debug)]
pub(crate) struct Published {
    pub(crate) queue: String,
    /// Only these users (ids) get it; `None`: every subscriber of the queue.
    pub(crate) audience: Option<Vec<String>>,
    pub(crate) event: SupportEvent,
}

#[derive(Debug)]
pub(crate) struct Hub {
    tx: broadcast::Sender<Published>,
    /// The support sessions whose client is (or was just) connected here.
    pub(crate) live: super::live::LiveSupport,
    /// Technicians following their queues live (automatic assignment).
    pub(crate) presence: std::sync::Arc<super::assign::Presence>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            live: super::live::LiveSupport::default(),
            presence: std::sync::Arc::default(),
        }
    }
}

impl Hub {
    pub(crate) fn publish(&self, queue: &str, event: SupportEvent) {
        // No subscriber is not an error.
        let _ = self.tx.send(Published {
            queue: queue.to_owned(),
            audience: None,
            event,
        });
    }

    /// Publishes to some users of `queue`'s subscribers only (a chat line
    /// goes to those taking part).
    pub(crate) fn publish_to(&self, queue: &str, audience: Vec<String>, event: SupportEvent) {
        let _ = self.tx.send(Published {
            queue: queue.to_owned(),
            audience: Some(audience),
            event,
        });
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }
}

/// Which queues' events a subscriber gets: the queues they are a member
/// of, within their groups.
pub(crate) async fn visible_queues(
    db: &Store,
    user_id: &str,
    in_group: &(dyn Fn(&str) -> bool + Sync),
) -> Result<BTreeSet<String>, sqlx::Error> {
    Ok(queues::list(db)
        .await?
        .into_iter()
        .filter(|q| q.has_member(user_id) && in_group(&q.group))
        .map(|q| q.name)
        .collect())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    queue: String,
    state: String,
    origin: String,
    for_user: Option<String>,
    requested_at: i64,
    joined_at: Option<i64>,
    accepted_at: Option<i64>,
    ended_at: Option<i64>,
    owner_name: Option<String>,
    wrapped_key: String,
    customer_sealed: Vec<u8>,
    problem_sealed: Vec<u8>,
    end_reason: Option<String>,
}

fn view(keys: &Keyring, r: Row) -> api::SupportSession {
    let open =
        |field, sealed: &[u8]| crypto::shown_field(keys, &r.id, &r.wrapped_key, field, sealed);
    api::SupportSession {
        customer: open("customer", &r.customer_sealed),
        problem: open("problem", &r.problem_sealed),
        id: r.id.clone(),
        queue: r.queue,
        state: r.state,
        origin: r.origin,
        for_user: r.for_user,
        requested_at: ids::rfc3339(r.requested_at),
        joined_at: r.joined_at.map(ids::rfc3339),
        accepted_at: r.accepted_at.map(ids::rfc3339),
        ended_at: r.ended_at.map(ids::rfc3339),
        owner: r.owner_name,
        participants: Vec::new(),
        granted: Vec::new(),
        asked: Vec::new(),
        online: false,
        hostname: None,
        end_reason: r.end_reason,
        screens: Vec::new(),
    }
}

macro_rules! select {
    () => {
        "SELECT s.id, s.queue, s.state, s.origin, u.username AS for_user,
        s.requested_at, s.joined_at, s.accepted_at, s.ended_at, s.owner_name,
        s.wrapped_key, s.customer_sealed, s.problem_sealed, s.end_reason
   FROM support_sessions s LEFT JOIN users u ON u.id = s.bound_to"
    };
}

/// One support session as technicians see it.
pub(crate) async fn session(
    db: &Store,
    keys: &Keyring,
    id: &str,
) -> Result<Option<api::SupportSession>, SupportError> {
    let mut c = db.conn().await?;
    let q = concat!(select!(), " WHERE s.id = $1");
    let row: Option<Row> = sql!(c, |c| sqlx::query_as(q)
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(row.map(|r| view(keys, r)))
}

/// Every support session not ended in `queues` (a subscriber's snapshot),
/// oldest first (the order of the queue).
pub(crate) async fn open_sessions(
    db: &Store,
    keys: &Keyring,
    queues: &BTreeSet<String>,
) -> Result<Vec<api::SupportSession>, SupportError> {
    let mut c = db.conn().await?;
    let q = concat!(
        select!(),
        " WHERE s.state <> 'ended' ORDER BY s.requested_at, s.id"
    );
    let rows: Vec<Row> = sql!(c, |c| sqlx::query_as(q).fetch_all(&mut *c).await)?;
    Ok(rows
        .into_iter()
        .filter(|r| queues.contains(&r.queue))
        .map(|r| view(keys, r))
        .collect())
}
