//! Session keys (short codes a technician reads out over the phone) and the
//! portal's request form: both make a support session that waits for its
//! customer to download and run the client.
//!
//! A key is only stored as `HMAC-SHA256(pepper, digits)`; it is single use
//! (one `UPDATE … WHERE used_at IS NULL AND expires_at > now`, whose row
//! count is the guarantee on both engines) and answers the same for
//! unknown, used and expired keys, after the same work.

use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::SupportError;
use super::crypto::{self, field_aad};
use super::queues::{self, Queue};
use crate::ids::{self, SupportId};
use crate::keys::Keyring;
use crate::store::{AuditAction, AuditEvent, Exec, Store, WriteTx, sql};

/// Digits in a session key.
pub(crate) const KEY_DIGITS: usize = 10;
/// A key's lifetime when none is asked for.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
pub(crate) const MIN_TTL: Duration = Duration::from_secs(5);
pub(crate) const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long, and how often, a portal download link works.
pub(crate) const DOWNLOAD_TTL: Duration = Duration::from_secs(10 * 60);
pub(crate) const DOWNLOADS: i64 = 3;
/// Longest customer name and problem text kept (characters).
pub(crate) const NAME_MAX: usize = 64;
pub(crate) const PROBLEM_MAX: usize = 2000;
/// The customer's name when they gave none (a key redeemed).
pub(crate) const ANONYMOUS: &str = "Customer";

/// `n` uniformly random decimal digits.
fn random_digits(n: usize) -> Result<String, SupportError> {
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut b = [0u8; 16];
        rng.fill(&mut b).map_err(|_| SupportError::Random)?;
        // 250 = 25 × 10: rejecting 250..=255 keeps every digit equally likely.
        out.extend(
            b.iter()
                .filter(|&&x| x < 250)
                .map(|&x| char::from(b'0' + x % 10)),
        );
    }
    out.truncate(n);
    Ok(out)
}

/// The digits grouped for reading aloud: `123 456 7890`.
pub(crate) fn grouped(digits: &str) -> String {
    let (a, rest) = digits.split_at(digits.len().min(3));
    let (b, c) = rest.split_at(rest.len().min(3));
    [a, b, c]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a person typed, as digits (spaces, dashes and dots ignored);
/// anything else is no key.
pub(crate) fn normalise(input: &str) -> Option<String> {
    let mut out = String::new();
    for c in input.chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '-' | '.' | '\u{a0}' => {}
            _ => return None,
        }
        if out.len() > KEY_DIGITS {
            return None;
        }
    }
    (out.len() == KEY_DIGITS).then_some(out)
}

fn key_hash(pepper: &crate::keys::DataKey, digits: &str) -> Vec<u8> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, pepper.as_bytes());
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(b"jumpgate-support-key/1:");
    ctx.update(digits.as_bytes());
    ctx.sign().as_ref().to_vec()
}

/// Parses a key lifetime: `90s`, `15m`, `2h` (or plain seconds).
pub(crate) fn parse_ttl(s: &str) -> Result<Duration, SupportError> {
    let bad = || {
        SupportError::Invalid(format!(
            "ttl: `{s}` is not a duration between 5s and 24h (such as 90s, 15m or 2h)"
        ))
    };
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    let d = Duration::from_secs(secs);
    if (MIN_TTL..=MAX_TTL).contains(&d) {
        Ok(d)
    } else {
        Err(bad())
    }
}

/// Who creates a key.
pub(crate) struct Creator<'a> {
    pub(crate) user_id: &'a str,
    pub(crate) name: &'a str,
    /// Whether the creator's groups include `group`.
    pub(crate) in_group: &'a (dyn Fn(&str) -> bool + Sync),
}

/// A new key, in clear (shown once).
#[derive(Debug)]
pub(crate) struct NewKey {
    pub(crate) key: String,
    pub(crate) expires_at_ms: i64,
    pub(crate) queue: String,
}

/// The queue a key of `creator` lands in: the one named (a member's, in
/// their groups), else the first queue they are a member of.
async fn queue_for(
    db: &Store,
    creator: &Creator<'_>,
    named: Option<&str>,
) -> Result<Queue, SupportError> {
    let all = queues::list(db).await?;
    let usable = |q: &Queue| q.has_member(creator.user_id) && (creator.in_group)(&q.group);
    match named {
        Some(n) => match all.into_iter().find(|q| q.name == n) {
            Some(q) if usable(&q) => Ok(q),
            Some(q) if (creator.in_group)(&q.group) => Err(SupportError::Forbidden(format!(
                "you are not a member of queue `{n}`"
            ))),
            _ => Err(SupportError::UnknownQueue(n.to_owned())),
        },
        None => all.into_iter().find(usable).ok_or_else(|| {
            SupportError::Invalid(
                "you are a member of no support queue: name one with --queue, or ask an administrator to add you to one".into(),
            )
        }),
    }
}

/// Makes a session key (`support-key-create`: the queue and lifetime,
/// never the key). The session it starts goes straight to its creator.
///
/// # Errors
/// An unknown queue, one the creator is not a member of, a bad lifetime,
/// or the store failed.
pub(crate) async fn create_key(
    db: &Store,
    keys: &Keyring,
    creator: &Creator<'_>,
    queue: Option<&str>,
    ttl: Duration,
) -> Result<NewKey, SupportError> {
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(SupportError::Invalid(
            "ttl: must be between 5s and 24h".into(),
        ));
    }
    let q = queue_for(db, creator, queue).await?;
    let digits = random_digits(KEY_DIGITS)?;
    let now = ids::now_ms();
    let expires_at_ms = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let mut w = db.write().await?;
    let pepper = crypto::pepper(&mut w, keys).await?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO support_keys
             (key_hash, created_by, created_by_name, queue, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(key_hash(&pepper, &digits))
    .bind(creator.user_id)
    .bind(creator.name)
    .bind(&q.name)
    .bind(now)
    .bind(expires_at_ms)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new(creator.name, AuditAction::SupportKeyCreate, &q.name)
            .detail(format!("queue={} ttl={}s", q.name, ttl.as_secs()))
            .group(&q.group),
    )
    .await?;
    w.commit().await?;
    Ok(NewKey {
        key: grouped(&digits),
        expires_at_ms,
        queue: q.name,
    })
}

/// A support session made by the portal: where its client downloads.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) id: SupportId,
    /// The bearer token of `/portal/download/{token}`.
    pub(crate) download: String,
    pub(crate) expires_at_ms: i64,
}

/// What a new pending session is.
struct NewSession<'a> {
    queue: &'a Queue,
    origin: &'static str,
    bound_to: Option<&'a str>,
    customer: &'a str,
    problem: &'a str,
    peer: &'a str,
}

async fn insert_pending(
    w: &mut WriteTx,
    keys: &Keyring,
    s: &NewSession<'_>,
    now: i64,
) -> Result<Pending, SupportError> {
    let id = SupportId::generate();
    let (key, wrapped) = keys.new_data_key(crypto::SESSION_KEY_PURPOSE)?;
    let customer = crypto::seal(
        &key,
        &field_aad(id.as_str(), "customer"),
        s.customer.as_bytes(),
    )?;
    let problem = crypto::seal(
        &key,
        &field_aad(id.as_str(), "problem"),
        s.problem.as_bytes(),
    )?;
    let download = ids::random_token("jgd");
    let expires_at_ms = now + DOWNLOAD_TTL.as_millis() as i64;
    sql!(w, |c| sqlx::query(
        "INSERT INTO support_sessions
             (id, queue, group_name, origin, bound_to, state, requested_at,
              download_hash, download_left, download_expires_at, peer,
              wrapped_key, customer_sealed, problem_sealed)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, $11, $12, $13)"
    )
    .bind(id.as_str())
    .bind(&s.queue.name)
    .bind(&s.queue.group)
    .bind(s.origin)
    .bind(s.bound_to)
    .bind(now)
    .bind(ids::token_hash(&download))
    .bind(DOWNLOADS)
    .bind(expires_at_ms)
    .bind(s.peer)
    .bind(wrapped.as_str())
    .bind(&customer)
    .bind(&problem)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new(
            format!("customer:{}", s.customer),
            AuditAction::SupportRequest,
            id.as_str(),
        )
        .detail(format!("origin={} queue={}", s.origin, s.queue.name))
        .group(&s.queue.group),
    )
    .await?;
    Ok(Pending {
        id,
        download,
        expires_at_ms,
    })
}

/// Redeems a key typed at the portal: one answer, [`SupportError::InvalidKey`],
/// for a key that is malformed, unknown, used or expired; the HMAC and the
/// `UPDATE` run in every case, so the time taken tells nothing either.
///
/// # Errors
/// [`SupportError::InvalidKey`], or the store failed.
pub(crate) async fn redeem(
    db: &Store,
    keys: &Keyring,
    input: &str,
    peer: &str,
) -> Result<Pending, SupportError> {
    let digits = normalise(input);
    let now = ids::now_ms();
    let mut w = db.write().await?;
    let pepper = crypto::pepper(&mut w, keys).await?;
    // A malformed key is hashed too (as something no key equals).
    let hash = key_hash(&pepper, digits.as_deref().unwrap_or("-"));
    let found: Option<(String, String)> = sql!(w, |c| sqlx::query_as(
        "UPDATE support_keys SET used_at = $1
          WHERE key_hash = $2 AND used_at IS NULL AND expires_at > $1
         RETURNING created_by, queue"
    )
    .bind(now)
    .bind(&hash)
    .fetch_optional(&mut *c)
    .await)?;
    let Some((creator, queue)) = found.filter(|_| digits.is_some()) else {
        return Err(SupportError::InvalidKey);
    };
    let Some(q) = queues::get_in(&mut w, &queue).await? else {
        // The queue was deleted after the key was made.
        return Err(SupportError::InvalidKey);
    };
    let pending = insert_pending(
        &mut w,
        keys,
        &NewSession {
            queue: &q,
            origin: "key",
            bound_to: Some(&creator),
            customer: ANONYMOUS,
            problem: "",
            peer,
        },
        now,
    )
    .await?;
    sql!(w, |c| sqlx::query(
        "UPDATE support_keys SET support_id = $1 WHERE key_hash = $2"
    )
    .bind(pending.id.as_str())
    .bind(&hash)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.commit().await?;
    Ok(pending)
}

/// Records a failed key attempt (the caller has rate-limited it).
pub(crate) async fn audit_failure(db: &Store, peer: &str) -> Result<(), sqlx::Error> {
    db.audit_now(
        AuditEvent::new("customer", AuditAction::SupportKeyFailed, "portal")
            .outcome("failed")
            .detail(format!("addr={peer}")),
    )
    .await
}

/// The portal's request form: a waiting session in a public queue.
///
/// # Errors
/// An empty or overlong name or problem, an unknown or private queue
/// (the same answer), a full queue, or the store failed.
pub(crate) async fn request_help(
    db: &Store,
    keys: &Keyring,
    name: &str,
    problem: &str,
    queue: &str,
    peer: &str,
) -> Result<Pending, SupportError> {
    let name = crate::agents::reported::text(name.trim(), NAME_MAX);
    let problem = crate::agents::reported::text(problem.trim(), PROBLEM_MAX);
    if name.is_empty() {
        return Err(SupportError::Invalid("name: tell us your name".into()));
    }
    if problem.is_empty() {
        return Err(SupportError::Invalid(
            "problem: describe what you need help with".into(),
        ));
    }
    let now = ids::now_ms();
    let mut w = db.write().await?;
    let q = match queues::get_in(&mut w, queue).await? {
        Some(q) if q.public => q,
        _ => return Err(SupportError::UnknownQueue(queue.to_owned())),
    };
    let waiting = open_in_queue(&mut w, &q.name).await?;
    if waiting >= i64::from(q.max_waiting) {
        return Err(SupportError::QueueFull);
    }
    let pending = insert_pending(
        &mut w,
        keys,
        &NewSession {
            queue: &q,
            origin: "form",
            bound_to: None,
            customer: &name,
            problem: &problem,
            peer,
        },
        now,
    )
    .await?;
    w.commit().await?;
    Ok(pending)
}

/// Sessions of `queue` not accepted yet (pending downloads whose link still
/// works, and customers waiting).
async fn open_in_queue(e: &mut dyn Exec, queue: &str) -> Result<i64, sqlx::Error> {
    sql!(e, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM support_sessions
          WHERE queue = $1 AND (state = 'waiting'
             OR (state = 'pending' AND download_expires_at > $2))"
    )
    .bind(queue)
    .bind(ids::now_ms())
    .fetch_one(&mut *c)
    .await)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn keys_are_ten_digits_read_in_three_groups() {
        let d = random_digits(KEY_DIGITS).unwrap();
        assert_eq!(d.len(), 10);
        assert!(d.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(grouped("1234567890"), "123 456 7890");
        assert_eq!(normalise("123 456-7890").as_deref(), Some("1234567890"));
        assert_eq!(normalise("123 456 789"), None);
        assert_eq!(normalise("12345678901"), None);
        assert_eq!(normalise("12345x7890"), None);
        assert_ne!(random_digits(KEY_DIGITS).unwrap(), d);
    }

    #[test]
    fn lifetimes_parse_within_their_bounds() {
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_ttl("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        for bad in ["4s", "25h", "", "m", "1d", "-5m", "99999999999999999999h"] {
            let e = parse_ttl(bad).unwrap_err().to_string();
            assert!(e.contains("ttl"), "{bad}: {e}");
        }
    }
}
