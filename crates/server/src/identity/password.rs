//! The site password policy: static rules (length, character classes, common
//! passwords, the user name), reuse of recent passwords, and expiry.
//!
//! Everything here is pure except [`reused`], which runs Argon2 on a blocking
//! thread. Storage of the policy and of password history belongs to callers.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;

/// Upper bound on a password's size. Argon2 hashes the whole input, so an
/// unbounded password would let anyone make the server do unbounded work.
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;

/// A user name shorter than this is not looked for inside the password: "al"
/// would reject half of all passphrases without making any of them weaker.
const MIN_USERNAME_CHARS_CHECKED: usize = 3;

/// How many trailing digits/symbols are peeled off one at a time when looking
/// for a common password ("1234567890" + "12"). Appending a few characters is
/// the classic trivial variant; a long random tail adds real entropy, and
/// peeling it would flag strong all-digit strings that merely start with a
/// year.
const MAX_PEELED_CHARS: usize = 4;

const MS_PER_DAY: i64 = 86_400_000;

/// Site password policy (stored as site settings by the caller).
///
/// Missing fields deserialize to their defaults so that settings saved by an
/// older version, before a field existed, still load.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct PasswordPolicy {
    /// Minimum length in characters (Unicode scalar values), not bytes.
    pub(crate) min_length: usize,
    /// How many of the four classes (lowercase, uppercase, digits, symbols) a
    /// password must use, 0..=4.
    pub(crate) min_classes: u8,
    /// The new password may not equal any of the last `history` passwords.
    pub(crate) history: u32,
    /// Passwords expire this many days after they were set; `None`: never.
    pub(crate) max_age_days: Option<u32>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            // NIST SP 800-63B asks for at least 8; privileged access warrants more.
            min_length: 12,
            min_classes: 2,
            history: 5,
            // NIST SP 800-63B advises against periodic expiry; sites opt in.
            max_age_days: None,
        }
    }
}

impl PasswordPolicy {
    /// Checks that the settings are within sane ranges.
    ///
    /// # Errors
    /// A message naming the first setting out of range and the accepted range.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(8..=128).contains(&self.min_length) {
            return Err(format!(
                "min_length must be between 8 and 128 characters (got {})",
                self.min_length
            ));
        }
        if self.min_classes > 4 {
            return Err(format!(
                "min_classes must be between 0 and 4 (got {})",
                self.min_classes
            ));
        }
        if self.history > 24 {
            return Err(format!(
                "history must be between 0 and 24 passwords (got {})",
                self.history
            ));
        }
        if let Some(days) = self.max_age_days
            && !(1..=3650).contains(&days)
        {
            return Err(format!(
                "max_age_days must be between 1 and 3650 days, or unset for no expiry (got {days})"
            ));
        }
        Ok(())
    }
}

/// One rule a password breaks. `Display` names the rule in plain words, for
/// the person choosing the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    TooShort { min: usize },
    TooLong,
    TooFewClasses { min: u8, found: u8 },
    Common,
    ContainsUsername,
    Reused { history: u32 },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { min } => write!(f, "shorter than {min} characters"),
            Self::TooLong => write!(f, "longer than {MAX_PASSWORD_BYTES} bytes"),
            Self::TooFewClasses { min, found } => write!(
                f,
                "uses {found} of the 4 character classes (lowercase, uppercase, digits, symbols); at least {min} required"
            ),
            Self::Common => f.write_str("is a commonly used password"),
            Self::ContainsUsername => f.write_str("contains the user name"),
            Self::Reused { history: 1 } => f.write_str("was used recently (last password)"),
            Self::Reused { history } => {
                write!(f, "was used recently (last {history} passwords)")
            }
        }
    }
}

/// Checks every static rule (all but reuse, which needs the stored hashes:
/// see [`reused`]) and returns all violations, in the order of [`Violation`]'s
/// variants, so that a person fixing their password sees everything at once.
pub(crate) fn check(policy: &PasswordPolicy, username: &str, password: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    if password.chars().count() < policy.min_length {
        violations.push(Violation::TooShort {
            min: policy.min_length,
        });
    }
    if password.len() > MAX_PASSWORD_BYTES {
        violations.push(Violation::TooLong);
    }
    let found = character_classes(password);
    if found < policy.min_classes {
        violations.push(Violation::TooFewClasses {
            min: policy.min_classes,
            found,
        });
    }
    if is_common(password) {
        violations.push(Violation::Common);
    }
    if contains_username(username, password) {
        violations.push(Violation::ContainsUsername);
    }
    violations
}

/// Joins violations into one message:
/// `"password rejected: shorter than 12 characters; is a commonly used password"`.
/// An empty slice gives `"password rejected"` (callers should not ask).
pub(crate) fn describe(violations: &[Violation]) -> String {
    let mut out = String::from("password rejected");
    for (i, v) in violations.iter().enumerate() {
        out.push_str(if i == 0 { ": " } else { "; " });
        out.push_str(&v.to_string());
    }
    out
}

/// Counts the classes used: lowercase, uppercase, digits, and everything else
/// (symbols, spaces, and letters of scripts without case).
fn character_classes(password: &str) -> u8 {
    let (mut lower, mut upper, mut digit, mut other) = (false, false, false, false);
    for c in password.chars() {
        if c.is_lowercase() {
            lower = true;
        } else if c.is_uppercase() {
            upper = true;
        } else if c.is_numeric() {
            digit = true;
        } else {
            other = true;
        }
    }
    [lower, upper, digit, other].into_iter().map(u8::from).sum()
}

fn contains_username(username: &str, password: &str) -> bool {
    if username.chars().count() < MIN_USERNAME_CHARS_CHECKED {
        return false;
    }
    password
        .to_lowercase()
        .contains(username.to_lowercase().as_str())
}

/// The shipped list, parsed once.
struct CommonList {
    words: HashSet<&'static str>,
    /// No candidate longer than this can be on the list; skipping those bounds
    /// the work per password whatever its size.
    max_len: usize,
}

static COMMON: LazyLock<CommonList> = LazyLock::new(|| {
    let words: HashSet<&'static str> = include_str!("common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let max_len = words.iter().map(|w| w.len()).max().unwrap_or(0);
    CommonList { words, max_len }
});

/// Whether `password` is on the shipped common-password list, ignoring case
/// and trivial variants: the whole trailing run of digits and symbols removed
/// ("Password123!" → "password"), or up to a few trailing digits/symbols
/// removed one at a time ("123456789012" → "1234567890").
pub(crate) fn is_common(password: &str) -> bool {
    let list = &*COMMON;
    let lower = password.to_lowercase();
    let hit = |candidate: &str| {
        !candidate.is_empty() && candidate.len() <= list.max_len && list.words.contains(candidate)
    };
    if hit(&lower) {
        return true;
    }
    // Everything after the last letter is the "decoration" run.
    let base_end = lower
        .char_indices()
        .rfind(|(_, c)| c.is_alphabetic())
        .map_or(0, |(i, c)| i + c.len_utf8());
    if hit(&lower[..base_end]) {
        return true;
    }
    lower[base_end..]
        .char_indices()
        .rev()
        .take(MAX_PEELED_CHARS)
        .any(|(i, _)| hit(&lower[..base_end + i]))
}

/// Whether `password` equals one of the first `policy.history` entries of
/// `previous_hashes` (PHC strings, newest first). Unparseable hashes never
/// match. Argon2 is deliberately slow, so this runs on a blocking thread.
pub(crate) async fn reused(
    policy: &PasswordPolicy,
    password: &str,
    mut previous_hashes: Vec<String>,
) -> bool {
    let depth = usize::try_from(policy.history).unwrap_or(usize::MAX);
    previous_hashes.truncate(depth);
    if previous_hashes.is_empty() {
        return false;
    }
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let argon2 = Argon2::default();
        // The parameters come from each stored hash, so hashes made with older
        // settings still verify.
        previous_hashes.iter().any(|phc| {
            PasswordHash::new(phc)
                .is_ok_and(|h| argon2.verify_password(password.as_bytes(), &h).is_ok())
        })
    })
    .await
    // The task only panics if Argon2 does; there is no answer to give then,
    // and refusing every password change over it would lock users out.
    .unwrap_or(false)
}

/// Whether a password set at `changed_at_ms` (unix ms) has expired at
/// `now_ms`: from the instant `max_age_days` have fully elapsed. A change time
/// in the future (clock skew) counts as fresh.
pub(crate) fn expired(policy: &PasswordPolicy, changed_at_ms: i64, now_ms: i64) -> bool {
    let Some(days) = policy.max_age_days else {
        return false;
    };
    // i128: neither the difference nor the product can overflow.
    let age = i128::from(now_ms) - i128::from(changed_at_ms);
    age >= i128::from(days) * i128::from(MS_PER_DAY)
}

#[cfg(test)]
mod tests;
