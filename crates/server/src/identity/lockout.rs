//! Brute-force protection: a per-account lock after repeated failed logins,
//! and a per-source-address rate limit on login attempts.
//!
//! The account lock is pure state kept in the users row; the rate limiter is
//! in memory and shared by all requests. Time is always passed in, so tests
//! control it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Lockout settings (stored as site settings by the caller).
///
/// Missing fields deserialize to their defaults so that settings saved before
/// a field existed still load.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct LockoutPolicy {
    /// Failed logins in a row that lock the account.
    pub(crate) threshold: u32,
    /// How long the lock lasts.
    pub(crate) duration_secs: u64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            duration_secs: 900,
        }
    }
}

impl LockoutPolicy {
    /// Checks that the settings are within sane ranges.
    ///
    /// # Errors
    /// A message naming the setting out of range and the accepted range.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.threshold) {
            return Err(format!(
                "threshold must be between 1 and 100 failed logins (got {})",
                self.threshold
            ));
        }
        if !(1..=86_400).contains(&self.duration_secs) {
            return Err(format!(
                "duration_secs must be between 1 and 86400 seconds (got {})",
                self.duration_secs
            ));
        }
        Ok(())
    }

    fn duration_ms(&self) -> i64 {
        // Validated settings are at most a day; saturate rather than wrap if not.
        i64::try_from(self.duration_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// Per-account state as stored in the users row (`failed_logins INTEGER`,
/// `locked_until INTEGER` unix ms, NULL when not locked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AccountLock {
    pub(crate) failed: u32,
    pub(crate) locked_until_ms: Option<i64>,
}

impl AccountLock {
    /// Locked until `locked_until_ms`, exclusive: at that instant the account
    /// is open again.
    pub(crate) fn is_locked(&self, now_ms: i64) -> bool {
        self.locked_until_ms.is_some_and(|until| now_ms < until)
    }

    /// After a failed attempt: counts it; at the threshold locks for the
    /// policy's duration and resets the count, so that counting starts afresh
    /// once the lock ends.
    ///
    /// Attempts while locked are not counted and do not extend the lock:
    /// otherwise anyone who knows a user name could keep that account locked
    /// forever with one request per lock period. (The login route should not
    /// even check the password of a locked account.)
    pub(crate) fn after_failure(self, policy: &LockoutPolicy, now_ms: i64) -> Self {
        if self.is_locked(now_ms) {
            return self;
        }
        let failed = self.failed.saturating_add(1);
        if failed >= policy.threshold {
            Self {
                failed: 0,
                locked_until_ms: Some(now_ms.saturating_add(policy.duration_ms())),
            }
        } else {
            // A lock that has run out is dropped, so the row shows no stale time.
            Self {
                failed,
                locked_until_ms: None,
            }
        }
    }

    /// After a successful login: no failures, no lock.
    pub(crate) fn after_success(self) -> Self {
        Self::default()
    }
}

/// Default bound on the number of tracked source addresses. About 50 bytes
/// each, so a few megabytes at most.
const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Per-source-address rate limit for login attempts (in memory, shared by all
/// requests): a token bucket per address holding up to `burst` attempts,
/// refilled at `per_minute` per minute.
///
/// Implemented as GCRA (the "virtual scheduling" form of a token bucket): each
/// address stores only the instant its bucket will be full again. Whole
/// durations instead of fractional tokens keep it exact, so waiting the
/// returned `retry_after` always suffices.
///
/// IPv6 addresses share a bucket per /64, since one subscriber usually gets a
/// whole /64 and could otherwise rotate through addresses for free.
///
/// Memory is bounded: when the map is full, buckets that have refilled
/// completely (they hold no information) are dropped first, then the fullest
/// ones (dropping those forgives the least).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Time to earn one attempt back.
    interval: Duration,
    /// How far ahead of now a bucket's "full again" instant may be and still
    /// allow an attempt: `interval * (burst - 1)`.
    tolerance: Duration,
    max_entries: usize,
    /// Per bucket, the instant it is full again (GCRA's theoretical arrival
    /// time): at or before now means full.
    full_at: Mutex<HashMap<IpAddr, Instant>>,
}

impl RateLimiter {
    /// `burst` attempts at once, refilled at `per_minute` attempts a minute.
    /// Zeros are raised to 1: a limiter that never allows, or never refills,
    /// would lock everyone out for good.
    pub(crate) fn new(burst: u32, per_minute: u32) -> Self {
        Self::with_max_entries(burst, per_minute, DEFAULT_MAX_ENTRIES)
    }

    /// As [`RateLimiter::new`], tracking at most `max_entries` addresses.
    pub(crate) fn with_max_entries(burst: u32, per_minute: u32, max_entries: usize) -> Self {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(burst.max(1) - 1),
            max_entries: max_entries.max(1),
            full_at: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `ip` at `now`.
    ///
    /// # Errors
    /// When limited: how long until the next attempt will be allowed. A
    /// refused attempt costs nothing, so retrying after exactly that long
    /// succeeds.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = bucket_key(ip);
        // Updates are single stores, so a panic elsewhere cannot leave an
        // entry half-written: a poisoned map is still sound to use.
        let mut map = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(&key) && map.len() >= self.max_entries {
            self.evict(&mut map, now);
        }
        let full_at = map.entry(key).or_insert(now);
        // A bucket full in the past is simply full: start from now.
        let from = (*full_at).max(now);
        let debt = from - now;
        if debt > self.tolerance {
            return Err(debt - self.tolerance);
        }
        *full_at = from + self.interval;
        Ok(())
    }

    /// Gives back an attempt [`Self::check`] took for `ip` (one that turned
    /// out not to count, such as a right answer under a limit of wrong
    /// ones). Taking first and giving back after holds under concurrency:
    /// looking first and taking after would let every concurrent attempt
    /// through the same last token.
    pub(crate) fn refund(&self, ip: IpAddr) {
        let key = bucket_key(ip);
        let mut map = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(full_at) = map.get_mut(&key) {
            *full_at = full_at.checked_sub(self.interval).unwrap_or(*full_at);
        }
    }

    /// Makes room for at least a tenth of the capacity, so the O(n) sweep runs
    /// once per many insertions even under a flood of new addresses.
    fn evict(&self, map: &mut HashMap<IpAddr, Instant>, now: Instant) {
        map.retain(|_, full_at| *full_at > now);
        let target = self.max_entries - self.max_entries.div_ceil(10);
        if map.len() <= target {
            return;
        }
        let excess = map.len() - target;
        let mut by_fullness: Vec<(Instant, IpAddr)> = map.iter().map(|(k, t)| (*t, *k)).collect();
        // Earliest "full again" first: those have the most attempts left.
        by_fullness.select_nth_unstable(excess - 1);
        for (_, key) in &by_fullness[..excess] {
            map.remove(key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.full_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The bucket an address counts against: IPv4 as is (also when it arrives
/// IPv4-mapped on a dual-stack socket, which would otherwise put every IPv4
/// client in the one `::ffff:0:0` /64), IPv6 by its /64 prefix.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
    }
}

#[cfg(test)]
mod tests;
