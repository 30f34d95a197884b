//! Admission of connections on the TLS port.
//!
//! Every connection counts against `max_connections`. Until it is
//! *authenticated* (an HTTP request on it presented a valid token, or an
//! agent's hello was verified) it also counts as unauthenticated: at most
//! `max_unauthenticated` site-wide and `max_unauthenticated_per_address` per
//! source address. A newcomer beyond its address's share is refused; a
//! newcomer finding the site-wide share full closes the oldest
//! unauthenticated connection of the address holding the most, so a flood of
//! anonymous connections (from however many addresses) cannot keep agents
//! and logged-in users out: they only pass through the unauthenticated
//! state for the milliseconds of a handshake and a first request. Those
//! still within [`GRACE`] of their arrival are the last to go: a client
//! that opens several connections at once (an agent enrolling and
//! connecting while its technician lists endpoints from the same address)
//! is not made the biggest holder by its own handshakes while older,
//! lingering connections of other addresses stay.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How long a new connection has to authenticate before it is exposed to
/// evictions like any lingering one (a TLS handshake and a first request
/// take milliseconds; a loaded machine may take a second).
pub(crate) const GRACE: Duration = Duration::from_secs(3);

/// The admission limits and the live counts.
#[derive(Debug)]
pub(crate) struct Gate {
    max_total: usize,
    max_unauthenticated: usize,
    max_per_address: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    unauthenticated: usize,
    next_id: u64,
    /// Unauthenticated connections per address, oldest first, with the
    /// time each arrived.
    by_address: HashMap<IpAddr, VecDeque<(u64, Instant, CancellationToken)>>,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its address already holds its share of unauthenticated connections.
    PerAddress,
    /// Every connection is authenticated and the total is reached.
    Full,
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    id: u64,
    address: IpAddr,
    evicted: CancellationToken,
}

impl Gate {
    pub(crate) fn new(
        max_total: usize,
        max_unauthenticated: usize,
        max_per_address: usize,
    ) -> Self {
        Self {
            max_total,
            max_unauthenticated,
            max_per_address,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a new, unauthenticated connection from `address`, closing an
    /// older unauthenticated one if the site-wide share is full.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Ticket, Refused> {
        self.admit_at(address, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, address: IpAddr, now: Instant) -> Result<Ticket, Refused> {
        let address = address.to_canonical();
        let mut st = self.lock();
        if st
            .by_address
            .get(&address)
            .is_some_and(|q| q.len() >= self.max_per_address)
        {
            return Err(Refused::PerAddress);
        }
        if st.unauthenticated >= self.max_unauthenticated || st.total >= self.max_total {
            // The evicted connection's task ends at once; until it has, the
            // total may exceed its limit by the connections being closed.
            if !st.evict_one(now) {
                return Err(Refused::Full);
            }
        }
        st.total += 1;
        st.unauthenticated += 1;
        st.next_id += 1;
        let id = st.next_id;
        let evicted = CancellationToken::new();
        st.by_address
            .entry(address)
            .or_default()
            .push_back((id, now, evicted.clone()));
        Ok(Ticket {
            gate: Arc::clone(self),
            id,
            address,
            evicted,
        })
    }

    /// (all connections, unauthenticated ones) right now.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.total, st.unauthenticated)
    }
}

impl State {
    /// Closes the oldest unauthenticated connection of the address holding
    /// the most (ties: the one holding the oldest), counting first only
    /// connections past their [`GRACE`]; only when there are none, any.
    /// False if there is none at all.
    fn evict_one(&mut self, now: Instant) -> bool {
        let lingering = |at: &Instant| now.saturating_duration_since(*at) >= GRACE;
        let pick = |st: &Self, only_lingering: bool| {
            st.by_address
                .iter()
                .map(|(a, q)| {
                    let held = if only_lingering {
                        q.iter().filter(|(_, at, _)| lingering(at)).count()
                    } else {
                        q.len()
                    };
                    (a, held, q.front().map(|(id, _, _)| *id))
                })
                .filter(|(_, held, _)| *held > 0)
                // Among the biggest holders, the one with the oldest
                // connection: a newcomer still in its handshake is the last
                // to go.
                .max_by_key(|(_, held, oldest)| (*held, std::cmp::Reverse(*oldest)))
                .map(|(a, _, _)| *a)
        };
        let Some(address) = pick(self, true).or_else(|| pick(self, false)) else {
            return false;
        };
        let victim = self
            .by_address
            .get_mut(&address)
            .and_then(VecDeque::pop_front);
        self.forget_if_empty(address);
        match victim {
            Some((_, _, token)) => {
                self.unauthenticated -= 1;
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Removes connection `id` from the unauthenticated ones; false if it is
    /// not among them (authenticated or evicted already).
    fn remove(&mut self, address: IpAddr, id: u64) -> bool {
        let Some(q) = self.by_address.get_mut(&address) else {
            return false;
        };
        let Some(i) = q.iter().position(|(x, _, _)| *x == id) else {
            return false;
        };
        q.remove(i);
        self.forget_if_empty(address);
        self.unauthenticated -= 1;
        true
    }

    fn forget_if_empty(&mut self, address: IpAddr) {
        if self
            .by_address
            .get(&address)
            .is_some_and(VecDeque::is_empty)
        {
            self.by_address.remove(&address);
        }
    }
}

impl Ticket {
    /// The connection proved who it is: it no longer counts as
    /// unauthenticated and can no longer be evicted.
    pub(crate) fn authenticated(&self) {
        self.gate.lock().remove(self.address, self.id);
    }

    /// Completes when a newcomer evicted this (unauthenticated) connection.
    pub(crate) fn evicted(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.evicted.cancelled()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.remove(self.address, self.id);
        st.total -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_gets_only_its_share() {
        let gate = Arc::new(Gate::new(100, 10, 2));
        let a1 = gate.admit(ip(1)).unwrap();
        let _a2 = gate.admit(ip(1)).unwrap();
        assert_eq!(gate.admit(ip(1)).unwrap_err(), Refused::PerAddress);
        // Another address is unaffected.
        let _b = gate.admit(ip(2)).unwrap();
        // An authenticated connection frees its address's share.
        a1.authenticated();
        let _a3 = gate.admit(ip(1)).unwrap();
        assert_eq!(gate.admit(ip(1)).unwrap_err(), Refused::PerAddress);
        // IPv4-mapped IPv6 is the same address.
        assert_eq!(
            gate.admit("::ffff:127.0.0.1".parse().unwrap()).unwrap_err(),
            Refused::PerAddress
        );
    }

    #[test]
    fn a_full_unauthenticated_share_evicts_the_biggest_holder_oldest_first() {
        let gate = Arc::new(Gate::new(100, 4, 3));
        let flood: Vec<Ticket> = [1, 1, 1, 2]
            .into_iter()
            .map(|a| gate.admit(ip(a)).unwrap())
            .collect();
        assert_eq!(gate.counts(), (4, 4));
        let newcomer = gate.admit(ip(9)).unwrap();
        assert!(flood[0].evicted.is_cancelled(), "the oldest of 127.0.0.1");
        assert!(flood[1..].iter().all(|t| !t.evicted.is_cancelled()));
        assert_eq!(gate.counts(), (5, 4));
        // The newcomer authenticates: it is out of reach of evictions.
        newcomer.authenticated();
        drop(flood);
        assert_eq!(gate.counts(), (1, 0));
        let more: Vec<Ticket> = (10..14).map(|a| gate.admit(ip(a)).unwrap()).collect();
        let _next = gate.admit(ip(20)).unwrap();
        assert!(!newcomer.evicted.is_cancelled());
        assert_eq!(more.iter().filter(|t| t.evicted.is_cancelled()).count(), 1);
        drop(more);
        drop(newcomer);
        assert_eq!(gate.counts(), (1, 1));
    }

    #[test]
    fn connections_within_their_grace_go_after_lingering_ones() {
        let gate = Arc::new(Gate::new(100, 4, 4));
        let t0 = Instant::now();
        // Lingering connections, one from each of three addresses.
        let flood: Vec<Ticket> = (10..13)
            .map(|a| gate.admit_at(ip(a), t0).unwrap())
            .collect();
        // Later, one client opens connections in a burst from its address.
        let later = t0 + GRACE * 2;
        let own1 = gate.admit_at(ip(1), later).unwrap();
        let own2 = gate.admit_at(ip(1), later).unwrap();
        assert!(
            flood[0].evicted.is_cancelled(),
            "a lingering one goes first"
        );
        let own3 = gate.admit_at(ip(1), later).unwrap();
        // 127.0.0.1 holds the most, but all of them are within their grace.
        assert!(flood[1].evicted.is_cancelled());
        assert!(!own1.evicted.is_cancelled() && !own2.evicted.is_cancelled());
        let _own4 = gate.admit_at(ip(1), later).unwrap();
        assert!(flood[2].evicted.is_cancelled());
        assert!(
            ![&own1, &own2, &own3]
                .iter()
                .any(|t| t.evicted.is_cancelled())
        );
        // With nothing lingering left, the biggest holder's oldest goes.
        let _other = gate.admit_at(ip(2), later).unwrap();
        assert!(own1.evicted.is_cancelled());
        // Once past its grace, a connection counts as lingering again.
        let much_later = later + GRACE;
        let _x = gate.admit_at(ip(3), much_later).unwrap();
        assert!(own2.evicted.is_cancelled());
    }

    #[test]
    fn a_total_of_authenticated_connections_refuses_newcomers() {
        let gate = Arc::new(Gate::new(2, 2, 2));
        let a = gate.admit(ip(1)).unwrap();
        let b = gate.admit(ip(2)).unwrap();
        a.authenticated();
        b.authenticated();
        assert_eq!(gate.admit(ip(3)).unwrap_err(), Refused::Full);
        drop(a);
        let _c = gate.admit(ip(3)).unwrap();
    }
}
