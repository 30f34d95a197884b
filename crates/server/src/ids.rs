//! Identifier newtypes and random token generation.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `n` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system RNG failing is not recoverable and never happens on a
    // supported platform.
    SystemRandom::new()
        .fill(&mut out)
        .expect("operating system random number generator failed");
    out
}

/// A random identifier with a type prefix, e.g. `ep_3k9...`.
pub(crate) fn random_id(prefix: &str) -> String {
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(random_bytes::<12>()))
}

/// A random secret token with a type prefix (256 bits of entropy).
pub(crate) fn random_token(prefix: &str) -> String {
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// SHA-256 of a token: tokens are stored only as hashes.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) struct $name(pub String);

        impl $name {
            pub(crate) fn generate() -> Self {
                Self(random_id($prefix))
            }
            pub(crate) fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A technician or administrator account.
    UserId, "usr"
);
id_type!(
    /// An enrolled endpoint (and the agent that speaks for it).
    AgentId, "ep"
);
id_type!(
    /// One technician session (shell, exec, file transfer, forward).
    SessionId, "ses"
);
id_type!(
    /// The recording of one shell or exec session.
    RecordingId, "rec"
);
id_type!(
    /// One attended-support session (a customer, their client, its
    /// technicians, chat and sub-sessions).
    SupportId, "sup"
);
id_type!(
    /// One running gateway: random per start (see `state::Inner::gateway`).
    GatewayId, "gw"
);

/// Parses an RFC 3339 time into milliseconds since the Unix epoch.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The answer to a query parameter that is not an RFC 3339 time.
pub(crate) fn bad_time(key: &str, s: &str) -> String {
    format!("{key}: `{s}` is not an RFC 3339 time such as 2026-11-23T10:00:00Z")
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 (UTC, seconds) for API answers.
pub(crate) fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Validates a user, endpoint or group name: 1-64 of `[A-Za-z0-9._-]`,
/// starting with a letter or digit. Names appear in URLs, logs and tables.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {}: use 1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
            echo(name)
        ))
    }
}

/// Rejected input as an error message shows it: quoted, with at most its
/// first 64 characters (control characters escaped), and its length when
/// longer, so an error never repeats a huge or hostile input whole.
pub(crate) fn echo(input: &str) -> String {
    let n = input.chars().count();
    let head: String = input
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect();
    if n > 64 {
        format!("`{head}…` ({n} characters)")
    } else {
        format!("`{head}`")
    }
}

/// Longest description (of a role, a group) accepted.
pub(crate) const MAX_DESCRIPTION: usize = 500;

/// Validates a free-text description: at most [`MAX_DESCRIPTION`]
/// characters and no control characters (it is shown in tables and pages).
pub(crate) fn validate_description(what: &str, text: &str) -> Result<(), String> {
    let n = text.chars().count();
    if n > MAX_DESCRIPTION {
        return Err(format!(
            "the {what} description is {n} characters long; at most {MAX_DESCRIPTION} are allowed"
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "the {what} description may not contain control characters (line breaks, escapes)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_are_unique_and_prefixed() {
        let a = AgentId::generate();
        assert!(a.as_str().starts_with("ep_"));
        assert_ne!(a, AgentId::generate());
        let t = random_token("jge");
        assert!(t.starts_with("jge_") && t.len() > 40);
        assert_eq!(token_hash(&t), token_hash(&t));
        assert_ne!(token_hash(&t), token_hash("jge_other"));
    }

    #[test]
    fn names_are_validated() {
        for ok in ["web-01", "db.prod", "A_1"] {
            assert!(validate_name("endpoint", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65), "ü"] {
            assert!(validate_name("endpoint", bad).is_err(), "{bad}");
        }
        // Errors name the rule and echo at most the start of the input.
        let err = validate_name("vault secret", &"v".repeat(5000)).unwrap_err();
        assert!(err.len() < 300 && err.contains("5000 characters"), "{err}");
        assert!(validate_description("role", &"d".repeat(MAX_DESCRIPTION)).is_ok());
        let err = validate_description("role", &"d".repeat(5000)).unwrap_err();
        assert!(err.contains("5000 characters") && err.len() < 200, "{err}");
        assert!(validate_description("group", "Web servers, Paris").is_ok());
        assert!(validate_description("group", "line\nbreak").is_err());
        assert!(validate_description("group", "clear\u{1b}[2J").is_err());
    }

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }
}
