//! Second factor: TOTP (RFC 6238) and one-time recovery codes.
//!
//! Pure functions only: storage of secrets, of the last used step and of
//! recovery code hashes, and the login flow, live with the callers.
//!
//! TOTP is HOTP (RFC 4226) over the Unix time divided into 30 s steps, with
//! the parameters every authenticator app supports (SHA-1, 6 digits, 30 s).
//! SHA-1 is fine here: HMAC-SHA1 is still a sound PRF, and it is what the
//! apps implement.

use std::fmt::Write as _;

use aws_lc_rs::hmac;

use crate::ids;

/// TOTP parameters of RFC 6238 as used by every authenticator app: SHA-1, 6 digits, 30 s steps.
pub(crate) const DIGITS: u32 = 6;
pub(crate) const STEP_SECS: u64 = 30;

/// Secret length: 160 bits, the HMAC-SHA1 output size RFC 4226 recommends.
const SECRET_LEN: usize = 20;

/// A TOTP shared secret (160 bits). `Debug` prints it masked, so it cannot
/// leak through logs or error messages.
#[derive(Clone)]
pub(crate) struct TotpSecret([u8; SECRET_LEN]);

impl TotpSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub(crate) fn generate() -> Self {
        Self(ids::random_bytes::<SECRET_LEN>())
    }

    /// A secret as stored; `None` unless exactly 20 bytes.
    pub(crate) fn from_bytes(b: &[u8]) -> Option<Self> {
        <[u8; SECRET_LEN]>::try_from(b).ok().map(Self)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32, uppercase, no padding: what authenticator apps expect
    /// for manual entry (20 bytes give 32 characters, so padding never occurs).
    pub(crate) fn base32(&self) -> String {
        base32(&self.0)
    }

    /// The Key URI (`otpauth://totp/...`) authenticator apps read from a QR
    /// code. The issuer appears both as label prefix and as parameter, as the
    /// format recommends; an empty issuer leaves both out.
    pub(crate) fn otpauth_url(&self, issuer: &str, account: &str) -> String {
        let secret = self.base32();
        let tail = format!("algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}");
        if issuer.is_empty() {
            return format!(
                "otpauth://totp/{}?secret={secret}&{tail}",
                percent_encode(account)
            );
        }
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{}?secret={secret}&issuer={issuer}&{tail}",
            percent_encode(account)
        )
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(MASKED)")
    }
}

/// RFC 4648 base32 (uppercase, no padding).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    // Bits accumulate MSB-first; every full 5-bit group becomes a character.
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        // The last partial group is padded with zero bits on the right.
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so that
/// `:`, `@`, `?`, `&`, `#` and spaces in names cannot change the URI's
/// structure. Spaces become `%20` (apps do not all decode `+`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hmac_key(secret: &TotpSecret) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes())
}

/// HOTP (RFC 4226 §5.3): HMAC-SHA1 of the big-endian counter, dynamic
/// truncation to 31 bits, reduced to `DIGITS` decimal digits.
fn hotp(key: &hmac::Key, counter: u64) -> u32 {
    let tag = hmac::sign(key, &counter.to_be_bytes());
    let h = tag.as_ref();
    // The low nibble of the last byte picks 4 bytes; the offset is at most
    // 15, so `off + 3` stays within the 20-byte SHA-1 tag.
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    bin % 10u32.pow(DIGITS)
}

fn format_code(value: u32) -> String {
    format!("{value:0width$}", width = DIGITS as usize)
}

/// The code for a Unix time (seconds). Zero-padded 6 digits.
#[cfg(test)]
pub(crate) fn code_at(secret: &TotpSecret, unix_secs: u64) -> String {
    format_code(hotp(&hmac_key(secret), unix_secs / STEP_SECS))
}

/// Parses a submitted code: exactly `DIGITS` ASCII digits once spaces are
/// removed (apps display "123 456", and users copy that). Anything else is
/// refused before any HMAC is computed.
fn parse_code(code: &str) -> Option<[u8; DIGITS as usize]> {
    // Bound the work on hostile input; a real code is a handful of bytes.
    if code.len() > 32 {
        return None;
    }
    let mut out = [0u8; DIGITS as usize];
    let mut n = 0;
    for b in code.trim().bytes().filter(|&b| b != b' ') {
        if !b.is_ascii_digit() || n == out.len() {
            return None;
        }
        out[n] = b;
        n += 1;
    }
    (n == out.len()).then_some(out)
}

/// Verifies `code` at `unix_secs`, accepting the previous, current and next
/// step (clock skew), compared in constant time.
///
/// Replay protection: a step <= `last_used_step` is rejected. Returns the
/// matched step, to be stored as the new `last_used_step`. Codes that are not
/// exactly 6 ASCII digits (spaces aside) are rejected without computing
/// anything.
pub(crate) fn verify(
    secret: &TotpSecret,
    code: &str,
    unix_secs: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    let submitted = parse_code(code)?;
    let key = hmac_key(secret);
    let current = unix_secs / STEP_SECS;
    let mut matched = None;
    // Every candidate is computed and compared (no early exit), so timing
    // does not reveal which step matched. If two steps share the code (a
    // one-in-a-million coincidence), the latest wins: returning an earlier
    // one would let the same code be replayed against the later step.
    for step in [
        current.checked_sub(1),
        Some(current),
        current.checked_add(1),
    ]
    .into_iter()
    .flatten()
    {
        let expected = format_code(hotp(&key, step));
        let equal =
            aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), &submitted)
                .is_ok();
        let fresh = last_used_step.is_none_or(|last| step > last);
        if equal && fresh {
            matched = Some(step);
        }
    }
    matched
}

/// An SVG QR code of `data` (the otpauth URL), for the web console's
/// enrollment page: dark modules black on white, the 4-module quiet zone the
/// QR specification requires, and a `viewBox` in module units (no fixed
/// size) so the page's CSS scales it.
///
/// Data too long for any QR code (about 2.3 KB, far beyond any otpauth URL)
/// yields an SVG that says so instead of a code; the page also shows the
/// base32 secret for manual entry.
pub(crate) fn qr_svg(data: &str) -> String {
    const QUIET: usize = 4;
    let Ok(code) = qrcode::QrCode::new(data.as_bytes()) else {
        return concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 20" role="img">"#,
            r#"<text x="0" y="15">QR code unavailable: data too long</text></svg>"#
        )
        .to_owned();
    };
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET;
    let mut svg = format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}""#,
            r#" shape-rendering="crispEdges" role="img" aria-label="QR code">"#,
            r##"<rect width="{size}" height="{size}" fill="#fff"/><path fill="#000" d=""##
        ),
        size = size
    );
    // One rectangle per horizontal run of dark modules keeps the path small.
    for (y, row) in colors.chunks(width).enumerate() {
        let mut x = 0;
        while x < width {
            if row[x] == qrcode::Color::Dark {
                let start = x;
                while x < width && row[x] == qrcode::Color::Dark {
                    x += 1;
                }
                let run = x - start;
                let _ = write!(svg, "M{} {}h{run}v1h-{run}z", start + QUIET, y + QUIET);
            } else {
                x += 1;
            }
        }
    }
    svg.push_str(r#""/></svg>"#);
    svg
}

/// One-time recovery codes handed out at enrollment.
pub(crate) const RECOVERY_CODES: usize = 10;

/// Crockford's base32 alphabet: no I, L, O (read as 1, 1, 0) and no U.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 12 characters of 5 bits: 60 bits, beyond guessing at any login rate.
const RECOVERY_CHARS: usize = 12;
const RECOVERY_GROUP: usize = 4;

/// `RECOVERY_CODES` distinct codes like `7KQ2-M9XW-3FHD`.
pub(crate) fn generate_recovery_codes() -> Vec<String> {
    distinct_codes(|| recovery_code_from_bits(u64::from_be_bytes(ids::random_bytes::<8>())))
}

/// Draws codes until `RECOVERY_CODES` distinct ones are found. A repeat has
/// probability ~2^-54, but the list promises that many usable codes.
fn distinct_codes(mut draw: impl FnMut() -> String) -> Vec<String> {
    let mut codes: Vec<String> = Vec::with_capacity(RECOVERY_CODES);
    while codes.len() < RECOVERY_CODES {
        let code = draw();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// The low 60 bits of `bits` as 12 characters (most significant first) in
/// groups of 4.
fn recovery_code_from_bits(bits: u64) -> String {
    let mut out = String::with_capacity(RECOVERY_CHARS + 2);
    for i in 0..RECOVERY_CHARS {
        if i > 0 && i % RECOVERY_GROUP == 0 {
            out.push('-');
        }
        let shift = 5 * (RECOVERY_CHARS - 1 - i);
        out.push(char::from(
            RECOVERY_ALPHABET[((bits >> shift) & 31) as usize],
        ));
    }
    out
}

/// Canonical form for hashing/comparison: uppercase, dashes and whitespace
/// removed (codes get pasted with line breaks), and the look-alikes that
/// Crockford's alphabet leaves out mapped to what they were mistaken for
/// (O→0, I/L→1). Other characters are kept, so an invalid code normalizes to
/// something no stored hash matches.
pub(crate) fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|&c| c != '-' && !c.is_whitespace())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

/// SHA-256 of the normalized code: how codes are stored. They carry 60
/// random bits, so a fast hash suffices (no Argon2 needed).
pub(crate) fn recovery_code_hash(code: &str) -> Vec<u8> {
    ids::token_hash(&normalize_recovery_code(code))
}

/// Whether `input` looks like a recovery code (12 alphabet characters once
/// normalized) rather than a 6-digit TOTP code, so login can accept either in
/// one field.
pub(crate) fn looks_like_recovery_code(input: &str) -> bool {
    let n = normalize_recovery_code(input);
    n.len() == RECOVERY_CHARS && n.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests;
