//! TOTP as an authenticator app computes it (RFC 6238), to type codes
//! into `jg`.

/// TOTP time step length (RFC 6238 default, what the gateway uses).
pub const TOTP_STEP_SECS: u64 = 30;

/// RFC 4648 base32 (no padding), ignoring spaces and case.
pub fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("not base32: {s:?}")) as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 6238 TOTP (HMAC-SHA1, 6 digits) for one time step.
pub fn totp(secret: &[u8], step: u64) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let h = tag.as_ref();
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// The current TOTP time step.
pub fn totp_step_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / TOTP_STEP_SECS
}
