//! The offline challenge/response code: it unlocks exactly one elevation
//! on an endpoint that cannot reach the gateway.
//!
//! The endpoint shows a **challenge**, ten random Crockford base32
//! characters (50 bits) as `ABCD-EFGH-JK`, and keeps it with the waiting
//! request. The person reads it to a technician, who asks the gateway for
//! the **response**: ten digits, HMAC-SHA256 under the endpoint's secret.
//! The endpoint's secret is derived on the gateway from a site key and the
//! endpoint's id ([`endpoint_secret`]) and sent to the endpoint over its
//! authenticated connection only. A response is worth nothing for another
//! challenge or another endpoint, and the endpoint forgets a challenge once
//! answered.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Crockford's base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a challenge.
pub const CHALLENGE_LEN: usize = 10;
/// Digits in a response.
pub const RESPONSE_DIGITS: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a challenge has {CHALLENGE_LEN} letters and digits (like ABCD-EFGH-JK)")]
    BadChallenge,
    #[error("the system's random source failed")]
    Random,
}

/// A fresh challenge, formatted for reading aloud.
///
/// # Errors
/// The system's random source failed.
pub fn new_challenge() -> Result<String, CodeError> {
    let mut raw = [0u8; CHALLENGE_LEN];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| CodeError::Random)?;
    let chars: String = raw
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    Ok(format_challenge(&chars))
}

fn format_challenge(c: &str) -> String {
    let (a, rest) = c.split_at(4);
    let (b, d) = rest.split_at(4);
    format!("{a}-{b}-{d}")
}

/// The challenge as the endpoint made it: upper case, no separators, and
/// Crockford's look-alikes (O → 0, I and L → 1) folded.
///
/// # Errors
/// Not ten base32 characters.
pub fn normalize_challenge(typed: &str) -> Result<String, CodeError> {
    let mut out = String::with_capacity(CHALLENGE_LEN);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' | '\t' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if ALPHABET.contains(&(c as u8)) && c.is_ascii() => c,
            _ => return Err(CodeError::BadChallenge),
        };
        out.push(c);
    }
    if out.len() == CHALLENGE_LEN {
        Ok(out)
    } else {
        Err(CodeError::BadChallenge)
    }
}

/// The endpoint's secret: HMAC-SHA256 of its id under the site's code key.
pub fn endpoint_secret(site_key: &[u8], agent_id: &str) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, site_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"jumpgate-epm-endpoint/1\0");
    ctx.update(agent_id.as_bytes());
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The response to `challenge` for the endpoint holding `secret`: ten
/// digits.
///
/// # Errors
/// The challenge is malformed.
pub fn response(secret: &[u8], challenge: &str) -> Result<String, CodeError> {
    let c = normalize_challenge(challenge)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"jumpgate-epm-code/1\0");
    ctx.update(c.as_bytes());
    let tag = ctx.sign();
    let mut first = [0u8; 8];
    first.copy_from_slice(&tag.as_ref()[..8]);
    let n = u64::from_be_bytes(first) % 10_000_000_000;
    Ok(format!("{n:010}"))
}

/// `12345-67890` for reading aloud.
pub fn format_response(digits: &str) -> String {
    if digits.len() == RESPONSE_DIGITS && digits.is_ascii() {
        format!("{}-{}", &digits[..5], &digits[5..])
    } else {
        digits.to_owned()
    }
}

/// Whether `typed` (spaces and dashes ignored) is the response to
/// `challenge`; compared in constant time.
pub fn check(secret: &[u8], challenge: &str, typed: &str) -> bool {
    let Ok(expected) = response(secret, challenge) else {
        return false;
    };
    let digits: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    digits.len() == RESPONSE_DIGITS
        && aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), digits.as_bytes())
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_unlocks_its_challenge_on_its_endpoint_only() {
        let site = [7u8; 32];
        let a = endpoint_secret(&site, "ag_a");
        let b = endpoint_secret(&site, "ag_b");
        let ch = new_challenge().unwrap();
        assert_eq!(ch.len(), 12, "{ch}");
        assert_eq!(normalize_challenge(&ch).unwrap().len(), CHALLENGE_LEN);
        let r = response(&a, &ch).unwrap();
        assert_eq!(r.len(), 10);
        assert!(check(&a, &ch, &r));
        assert!(check(&a, &ch.to_lowercase(), &format_response(&r)));
        assert!(!check(&b, &ch, &r));
        let other = new_challenge().unwrap();
        assert_ne!(other, ch);
        assert!(!check(&a, &other, &r));
        assert!(!check(&a, &ch, "0000000000"));
        assert!(!check(&a, &ch, ""));
        // Look-alikes fold: O→0, I/L→1.
        assert_eq!(normalize_challenge("abcd-efgh-jo").unwrap(), "ABCDEFGHJ0");
        assert_eq!(
            normalize_challenge("ABCD-EFGH-JU"),
            Err(CodeError::BadChallenge)
        );
        assert_eq!(normalize_challenge("ABC"), Err(CodeError::BadChallenge));
        // Fixed vector: the gateway and endpoints of different builds agree.
        assert_eq!(
            response(&[1u8; 32], "0000-0000-00").unwrap(),
            response(&[1u8; 32], "00000 00000").unwrap()
        );
    }
}
