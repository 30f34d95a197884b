use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

const T0: i64 = 1_700_000_000_000;

fn fail_n(mut lock: AccountLock, policy: &LockoutPolicy, n: u32, now_ms: i64) -> AccountLock {
    for _ in 0..n {
        lock = lock.after_failure(policy, now_ms);
    }
    lock
}

#[test]
fn threshold_failures_lock_for_exactly_the_duration() {
    let p = LockoutPolicy::default();
    assert_eq!((p.threshold, p.duration_secs), (5, 900));
    let four = fail_n(AccountLock::default(), &p, 4, T0);
    assert_eq!(
        four,
        AccountLock {
            failed: 4,
            locked_until_ms: None
        }
    );
    assert!(!four.is_locked(T0));
    let locked = four.after_failure(&p, T0 + 10);
    let until = T0 + 10 + 900_000;
    assert_eq!(
        locked,
        AccountLock {
            failed: 0,
            locked_until_ms: Some(until)
        }
    );
    assert!(locked.is_locked(T0 + 10));
    assert!(locked.is_locked(until - 1));
    assert!(!locked.is_locked(until));
}

#[test]
fn failures_while_locked_neither_count_nor_extend() {
    let p = LockoutPolicy::default();
    let locked = fail_n(AccountLock::default(), &p, 5, T0);
    let until = locked.locked_until_ms;
    assert_eq!(fail_n(locked, &p, 20, T0 + 1_000), locked);
    assert_eq!(
        locked.after_failure(&p, T0 + 899_999).locked_until_ms,
        until
    );
}

#[test]
fn counting_restarts_after_a_lock() {
    let p = LockoutPolicy {
        threshold: 3,
        duration_secs: 60,
    };
    let locked = fail_n(AccountLock::default(), &p, 3, T0);
    assert!(locked.is_locked(T0));
    let after = T0 + 60_000;
    // First failure after the lock: count 1, the stale lock time is dropped.
    let one = locked.after_failure(&p, after);
    assert_eq!(
        one,
        AccountLock {
            failed: 1,
            locked_until_ms: None
        }
    );
    let two = one.after_failure(&p, after);
    assert!(!two.is_locked(after));
    let again = two.after_failure(&p, after);
    assert_eq!(again.locked_until_ms, Some(after + 60_000));
}

#[test]
fn success_clears() {
    let p = LockoutPolicy::default();
    let some = fail_n(AccountLock::default(), &p, 3, T0);
    assert_eq!(some.after_success(), AccountLock::default());
    let locked = fail_n(AccountLock::default(), &p, 5, T0);
    assert_eq!(locked.after_success(), AccountLock::default());
    // After a success the full threshold is needed again.
    let cleared = fail_n(some.after_success(), &p, 4, T0);
    assert!(!cleared.is_locked(T0));
}

#[test]
fn threshold_of_one_locks_at_once() {
    let p = LockoutPolicy {
        threshold: 1,
        duration_secs: 1,
    };
    let l = AccountLock::default().after_failure(&p, T0);
    assert_eq!(l.locked_until_ms, Some(T0 + 1_000));
}

#[test]
fn lockout_policy_ranges() {
    let ok = |threshold, duration_secs| {
        LockoutPolicy {
            threshold,
            duration_secs,
        }
        .validate()
        .is_ok()
    };
    assert!(ok(1, 1) && ok(100, 86_400) && ok(5, 900));
    assert!(!ok(0, 900) && !ok(101, 900) && !ok(5, 0) && !ok(5, 86_401));
    let err = LockoutPolicy {
        threshold: 0,
        duration_secs: 900,
    }
    .validate()
    .unwrap_err();
    assert!(err.contains("threshold") && err.contains("got 0"), "{err}");
    let partial: LockoutPolicy = serde_json::from_str(r#"{"threshold":3}"#).expect("parses");
    assert_eq!(
        partial,
        LockoutPolicy {
            threshold: 3,
            duration_secs: 900
        }
    );
}

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from_bits(n))
}

fn v6(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

#[test]
fn burst_then_limited_with_retry_after() {
    let rl = RateLimiter::new(10, 20);
    let now = Instant::now();
    let ip = v4(0x0a00_0001);
    for i in 0..10 {
        assert_eq!(rl.check(ip, now), Ok(()), "attempt {i}");
    }
    // 20 a minute: one attempt every 3 s.
    assert_eq!(rl.check(ip, now), Err(Duration::from_secs(3)));
    assert_eq!(
        rl.check(ip, now + Duration::from_secs(1)),
        Err(Duration::from_secs(2))
    );
    // Refused attempts cost nothing: exactly retry_after later, one is allowed.
    assert_eq!(rl.check(ip, now + Duration::from_secs(3)), Ok(()));
    assert_eq!(
        rl.check(ip, now + Duration::from_secs(3)),
        Err(Duration::from_secs(3))
    );
}

#[test]
fn buckets_refill_over_time_up_to_burst() {
    let rl = RateLimiter::new(10, 20);
    let t = Instant::now();
    let ip = v4(0x0a00_0002);
    for _ in 0..10 {
        assert!(rl.check(ip, t).is_ok());
    }
    assert!(rl.check(ip, t).is_err());
    // 9 s later three attempts are back, not more.
    let later = t + Duration::from_secs(9);
    for _ in 0..3 {
        assert!(rl.check(ip, later).is_ok());
    }
    assert!(rl.check(ip, later).is_err());
    // After a long pause the bucket holds `burst`, not the whole idle time.
    let much_later = later + Duration::from_secs(3_600);
    for _ in 0..10 {
        assert!(rl.check(ip, much_later).is_ok());
    }
    assert!(rl.check(ip, much_later).is_err());
}

#[test]
fn addresses_are_independent() {
    let rl = RateLimiter::new(2, 20);
    let t = Instant::now();
    let (a, b) = (v4(0x0a00_0001), v4(0x0a00_0002));
    assert!(rl.check(a, t).is_ok() && rl.check(a, t).is_ok());
    assert!(rl.check(a, t).is_err());
    assert!(rl.check(b, t).is_ok() && rl.check(b, t).is_ok());
    assert!(rl.check(b, t).is_err());
    // A different /64 is a different bucket.
    assert!(rl.check(v6("2001:db8:0:1::1"), t).is_ok());
    assert!(rl.check(v6("2001:db8:0:2::1"), t).is_ok());
    assert!(rl.check(v6("2001:db8:0:2::1"), t).is_ok());
    assert!(rl.check(v6("2001:db8:0:1::1"), t).is_ok());
}

#[test]
fn ipv6_addresses_in_one_64_share_a_bucket() {
    let rl = RateLimiter::new(2, 20);
    let t = Instant::now();
    assert!(rl.check(v6("2001:db8:1:2::1"), t).is_ok());
    assert!(rl.check(v6("2001:db8:1:2:ffff:ffff:ffff:fffe"), t).is_ok());
    assert!(rl.check(v6("2001:db8:1:2:abcd::9"), t).is_err());
    assert_eq!(bucket_key(v6("2001:db8:1:2:3:4:5:6")), v6("2001:db8:1:2::"));
}

#[test]
fn ipv4_mapped_addresses_count_as_ipv4() {
    let rl = RateLimiter::new(1, 20);
    let t = Instant::now();
    // Same client seen over a dual-stack socket and over IPv4.
    assert!(rl.check(v6("::ffff:192.0.2.7"), t).is_ok());
    assert!(rl.check(v4(0xc000_0207), t).is_err());
    // Different IPv4 clients do not share the mapped range's /64.
    assert!(rl.check(v6("::ffff:192.0.2.8"), t).is_ok());
}

#[test]
fn map_stays_bounded_under_a_flood_of_addresses() {
    let rl = RateLimiter::new(10, 20);
    let t = Instant::now();
    let victim = v4(0x0a00_0001);
    for _ in 0..10 {
        assert!(rl.check(victim, t).is_ok());
    }
    for i in 0..200_000_u32 {
        // Distinct /64s, so every one is a new bucket.
        let ip = IpAddr::V6(Ipv6Addr::from_bits(
            (0x2001_0db8_u128 << 96) | (u128::from(i) << 64),
        ));
        assert!(rl.check(ip, t).is_ok());
        assert!(rl.len() <= DEFAULT_MAX_ENTRIES);
    }
    assert!(rl.len() > DEFAULT_MAX_ENTRIES / 2, "{}", rl.len());
    // Buckets with attempts left went first; the exhausted one was kept.
    assert!(rl.check(victim, t).is_err());
}

#[test]
fn idle_buckets_are_evicted_before_busy_ones() {
    let rl = RateLimiter::with_max_entries(2, 60, 10);
    let t = Instant::now();
    // One exhausted bucket, then nine that refill within a second.
    let busy = v4(1);
    assert!(rl.check(busy, t).is_ok() && rl.check(busy, t).is_ok());
    for i in 2..=10 {
        assert!(rl.check(v4(i), t).is_ok());
    }
    assert_eq!(rl.len(), 10);
    // 1.5 s later the nine are full again, the busy one is not.
    let later = t + Duration::from_millis(1_500);
    assert!(rl.check(v4(11), later).is_ok());
    assert_eq!(rl.len(), 2);
    assert!(rl.check(busy, later).is_ok());
    assert!(rl.check(busy, later).is_err());
}

#[test]
fn zero_settings_are_raised_to_one() {
    let rl = RateLimiter::new(0, 0);
    let t = Instant::now();
    let ip = v4(7);
    assert!(rl.check(ip, t).is_ok());
    assert_eq!(rl.check(ip, t), Err(Duration::from_secs(60)));
    assert!(rl.check(ip, t + Duration::from_secs(60)).is_ok());
}

#[test]
fn a_refund_gives_back_the_attempt_taken() {
    let l = RateLimiter::new(2, 60);
    let now = Instant::now();
    let ip = v4(7);
    l.check(ip, now).unwrap();
    l.check(ip, now).unwrap();
    let wait = l.check(ip, now).unwrap_err();
    l.refund(ip);
    l.check(ip, now).unwrap();
    assert_eq!(l.check(ip, now), Err(wait));
    // Nothing taken, nothing to give back.
    l.refund(v4(8));
    l.check(v4(8), now).unwrap();
}
