//! Debian version numbers (`[epoch:]upstream[-revision]`) and their order,
//! exactly as dpkg compares them (`dpkg --compare-versions`, dpkg's
//! `verrevcmp`): letters sort before non-letters, `~` before everything,
//! even the end of the string (so `1.0~rc1 < 1.0`), digit runs compare as
//! numbers, and an absent revision equals `0`.

use std::cmp::Ordering;

/// Why a version string is not a Debian version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("the version is empty")]
    Empty,
    #[error("version `{0}`: the epoch (before `:`) must be a number")]
    BadEpoch(String),
    #[error("version `{0}`: the upstream version must start with a digit")]
    NoLeadingDigit(String),
    #[error("version `{version}`: `{ch}` is not allowed in a version")]
    BadChar { version: String, ch: char },
    #[error("version `{0}`: the revision (after the last `-`) is empty")]
    EmptyRevision(String),
}

/// A parsed Debian version. Equality and order are dpkg's (so `1.0` ==
/// `1.0-0` == `0:1.0`); [`Display`](std::fmt::Display) gives the text it
/// was parsed from.
#[derive(Clone, Debug)]
pub struct DebVersion {
    text: String,
    epoch: u32,
    upstream: String,
    revision: String,
}

fn bad_char(version: &str, ch: char) -> VersionError {
    VersionError::BadChar {
        version: version.to_owned(),
        ch,
    }
}

impl DebVersion {
    /// Parses a version as dpkg does (leading and trailing blanks
    /// ignored).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let (epoch, rest) = match text.split_once(':') {
            Some((e, rest)) => {
                let epoch = if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) {
                    e.parse::<u32>()
                        .map_err(|_| VersionError::BadEpoch(text.to_owned()))?
                } else {
                    return Err(VersionError::BadEpoch(text.to_owned()));
                };
                (epoch, rest)
            }
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => {
                if r.is_empty() {
                    return Err(VersionError::EmptyRevision(text.to_owned()));
                }
                (u, r)
            }
            None => (rest, ""),
        };
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(VersionError::NoLeadingDigit(text.to_owned()));
        }
        if let Some(ch) = upstream
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-' | ':')))
        {
            return Err(bad_char(text, ch));
        }
        if let Some(ch) = revision
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~')))
        {
            return Err(bad_char(text, ch));
        }
        Ok(Self {
            text: text.to_owned(),
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
        })
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision (empty when there is none).
    pub fn revision(&self) -> &str {
        &self.revision
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for DebVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for DebVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// dpkg's weight of one character of a non-digit run (`None`: the end).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp` of two upstream versions or two revisions.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let at = |s: &[u8], k: usize| s.get(k).copied();
    let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        // The non-digit prefix, character by character.
        while (i < a.len() && !digit(at(a, i))) || (j < b.len() && !digit(at(b, j))) {
            let (ac, bc) = (order(at(a, i)), order(at(b, j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // The digit run, as a number: leading zeros do not count, then
        // the longer run is larger, else the first differing digit.
        while at(a, i) == Some(b'0') {
            i += 1;
        }
        while at(b, j) == Some(b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(at(a, i)) && digit(at(b, j)) {
            if first_diff == Ordering::Equal {
                first_diff = at(a, i).cmp(&at(b, j));
            }
            i += 1;
            j += 1;
        }
        if digit(at(a, i)) {
            return Ordering::Greater;
        }
        if digit(at(b, j)) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebVersion {}

/// Compares two version strings as dpkg does.
///
/// # Errors
/// Either is not a version.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(DebVersion::parse(a)?.cmp(&DebVersion::parse(b)?))
}

/// A relation of a [`Constraint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Less => "<<",
            Self::LessOrEqual => "<=",
            Self::Equal => "=",
            Self::GreaterOrEqual => ">=",
            Self::Greater => ">>",
        }
    }
}

/// `RELATION VERSION`, e.g. `< 3.0.11`: which versions a query matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub relation: Relation,
    pub version: DebVersion,
}

/// Why a constraint does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("`{0}`: start with one of <<, <, <=, =, >=, >, >> and then a version, e.g. `< 3.0.11`")]
    NoRelation(String),
    #[error(transparent)]
    Version(#[from] VersionError),
}

impl Constraint {
    /// Parses `<< V`, `< V`, `<= V`, `= V`, `>= V`, `> V`, `>> V` (blanks
    /// optional). `<` and `>` are strict here, like `<<` and `>>` (dpkg's
    /// obsolete single `<` meant `<=`; a query reading "older than" must
    /// not include the version itself).
    ///
    /// # Errors
    /// No relation, or a bad version.
    pub fn parse(s: &str) -> Result<Self, ConstraintError> {
        let t = s.trim();
        let ops: [(&str, Relation); 7] = [
            ("<<", Relation::Less),
            ("<=", Relation::LessOrEqual),
            (">>", Relation::Greater),
            (">=", Relation::GreaterOrEqual),
            ("<", Relation::Less),
            (">", Relation::Greater),
            ("=", Relation::Equal),
        ];
        let Some((rest, relation)) = ops
            .iter()
            .find_map(|(op, r)| t.strip_prefix(op).map(|rest| (rest, *r)))
        else {
            return Err(ConstraintError::NoRelation(s.to_owned()));
        };
        Ok(Self {
            relation,
            version: DebVersion::parse(rest)?,
        })
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &DebVersion) -> bool {
        let o = v.cmp(&self.version);
        match self.relation {
            Relation::Less => o == Ordering::Less,
            Relation::LessOrEqual => o != Ordering::Greater,
            Relation::Equal => o == Ordering::Equal,
            Relation::GreaterOrEqual => o != Ordering::Less,
            Relation::Greater => o == Ordering::Greater,
        }
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.relation.as_str(), self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        compare(a, b).unwrap_or_else(|e| panic!("{a} / {b}: {e}"))
    }

    /// Pairs in increasing order, each checked both ways; the expectations
    /// are dpkg's (`dpkg --compare-versions A lt B`, checked against dpkg
    /// 1.21 by `versions_agree_with_dpkg` below when it is installed).
    const ASCENDING: &[(&str, &str)] = &[
        ("1.0", "1.1"),
        ("1.0~rc1", "1.0"),
        ("1.0~~", "1.0~"),
        ("1.0~", "1.0"),
        ("1.0", "1.0+b1"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0b"),
        ("1.0z", "1.0+"),
        ("1.0", "1.0.1"),
        ("1.9", "1.10"),
        ("1.0-1", "1.0-2"),
        ("1.0-2", "1.0-10"),
        ("1.0-1", "1.0.1-1"),
        ("2.0", "1:0.1"),
        ("1:1.0", "2:0.1"),
        ("3.0.2-0ubuntu1", "3.0.11"),
        ("3.0.10", "3.0.11"),
        ("3.0.11-1~deb12u1", "3.0.11-1"),
        ("3.0.11-1", "3.0.11-1+deb12u2"),
        ("1.2.3", "1.2.3-0.1"),
        ("9", "10"),
        ("1.0-0ubuntu0.1", "1.0-0ubuntu1"),
        ("2.36-9", "2.36-9+deb12u4"),
        ("1.002", "1.3"),
    ];

    #[test]
    fn versions_order_as_dpkg_orders_them() {
        for (a, b) in ASCENDING {
            assert_eq!(cmp(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(cmp(b, a), Ordering::Greater, "{b} > {a}");
            assert_eq!(cmp(a, a), Ordering::Equal, "{a} = {a}");
        }
        // Equal without being the same text.
        for (a, b) in [
            ("1.0", "1.0-0"),
            ("0:1.0", "1.0"),
            ("1.01", "1.1"),
            ("1.0-00", "1.0"),
        ] {
            assert_eq!(cmp(a, b), Ordering::Equal, "{a} = {b}");
        }
    }

    #[test]
    fn bad_versions_name_what_is_wrong() {
        assert_eq!(DebVersion::parse(" "), Err(VersionError::Empty));
        assert!(matches!(
            DebVersion::parse("a:1.0"),
            Err(VersionError::BadEpoch(_))
        ));
        assert!(matches!(
            DebVersion::parse("abc"),
            Err(VersionError::NoLeadingDigit(_))
        ));
        assert!(matches!(
            DebVersion::parse("1.0 beta"),
            Err(VersionError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            DebVersion::parse("1.0-"),
            Err(VersionError::EmptyRevision(_))
        ));
        assert!(matches!(
            DebVersion::parse("1.0-a_b"),
            Err(VersionError::BadChar { ch: '_', .. })
        ));
        // A hyphen in the upstream part is allowed when there is a revision.
        let v = DebVersion::parse("1:2.0-rc1-3").unwrap();
        assert_eq!((v.epoch(), v.upstream(), v.revision()), (1, "2.0-rc1", "3"));
    }

    #[test]
    fn constraints_match_strictly() {
        let c = Constraint::parse("< 3.0.11").unwrap();
        assert_eq!(c.to_string(), "<< 3.0.11");
        let v = |s: &str| DebVersion::parse(s).unwrap();
        assert!(c.matches(&v("3.0.10")));
        assert!(c.matches(&v("3.0.11~rc1")));
        assert!(!c.matches(&v("3.0.11")));
        assert!(!c.matches(&v("3.0.11-1")));
        assert!(
            Constraint::parse("<=3.0.11")
                .unwrap()
                .matches(&v("3.0.11-0"))
        );
        assert!(Constraint::parse(">> 1").unwrap().matches(&v("1.0.1")));
        assert!(Constraint::parse("= 1.0").unwrap().matches(&v("1.0-0")));
        assert!(!Constraint::parse(">= 2").unwrap().matches(&v("1.9")));
        assert!(matches!(
            Constraint::parse("3.0.11"),
            Err(ConstraintError::NoRelation(_))
        ));
        assert!(matches!(
            Constraint::parse("< x"),
            Err(ConstraintError::Version(_))
        ));
    }

    /// The same pairs through the real `dpkg --compare-versions` (skipped
    /// where dpkg is not installed).
    #[test]
    fn versions_agree_with_dpkg() {
        let Ok(probe) = std::process::Command::new("dpkg").arg("--version").output() else {
            crate::package::skip("dpkg is not installed");
            return;
        };
        assert!(probe.status.success());
        for (a, b) in ASCENDING {
            let out = std::process::Command::new("dpkg")
                .args(["--compare-versions", a, "lt", b])
                .output()
                .unwrap();
            assert!(out.status.success(), "dpkg says {a} is not < {b}");
        }
    }
}
