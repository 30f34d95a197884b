//! Values parsed from the command line beyond plain strings and numbers:
//! comma lists, scopes, durations, "never"/"none". Each parser's error is a
//! sentence clap prints after `invalid value '...' for '--flag'`.
//!
//! Names themselves (groups, roles, permissions) are checked by the gateway;
//! here only what is certainly wrong (an empty list or item, an unknown
//! scope) is refused.

use std::fmt;
use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Splits `a, b,c` into trimmed items; refuses an empty list or an empty
/// item (`a,,b`, a trailing comma); drops repeats, keeping the first.
pub(crate) fn comma_list(s: &str, what: &str) -> Result<Vec<String>, String> {
    if s.trim().is_empty() {
        return Err(format!("the {what} list is empty"));
    }
    let mut out: Vec<String> = Vec::new();
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("empty {what} name in `{s}`"));
        }
        if !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    Ok(out)
}

/// A TOTP or recovery code given on the command line; `Debug` hides it (a
/// recovery code is a long-lived secret).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Code(pub(crate) String);

impl FromStr for Code {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(MASKED)")
    }
}

/// `--groups a,b`: endpoint groups; `*` alone means all groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Groups(pub(crate) Vec<String>);

impl FromStr for Groups {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let list = comma_list(s, "group")?;
        if list.len() > 1 && list.iter().any(|g| g == "*") {
            return Err("`*` (all groups) cannot be combined with other groups".into());
        }
        Ok(Self(list))
    }
}

/// `--permissions p,q`: passed to the gateway as given (it knows the names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Permissions(pub(crate) Vec<String>);

impl FromStr for Permissions {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        comma_list(s, "permission").map(Self)
    }
}

/// The scopes an API client may be granted.
pub(crate) const SCOPES: [&str; 2] = ["read", "write"];

/// `--scopes read[,write]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scopes(pub(crate) Vec<String>);

impl FromStr for Scopes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let list = comma_list(s, "scope")?;
        if let Some(bad) = list.iter().find(|x| !SCOPES.contains(&x.as_str())) {
            return Err(format!(
                "unknown scope `{bad}`: the scopes are read and write"
            ));
        }
        Ok(Self(list))
    }
}

/// `--mfa-required-roles admin,technician`, or `none` for no role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoleList(pub(crate) Vec<String>);

impl FromStr for RoleList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "none" {
            return Ok(Self(Vec::new()));
        }
        comma_list(s, "role")
            .map(Self)
            .map_err(|e| format!("{e} (use `none` for no role)"))
    }
}

/// `--password-max-age-days N`, or `never`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MaxAge {
    Never,
    Days(u32),
}

impl MaxAge {
    pub(crate) fn days(self) -> Option<u32> {
        match self {
            Self::Never => None,
            Self::Days(d) => Some(d),
        }
    }
}

impl FromStr for MaxAge {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "never" => Ok(Self::Never),
            d => d
                .parse()
                .map(Self::Days)
                .map_err(|_| "expected a number of days or `never`".to_owned()),
        }
    }
}

/// A duration such as `90s`, `15m`, `1h30m`, `7d`, in seconds.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a duration such as 90s, 15m, 1h30m or 7d");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// `--since`: an RFC 3339 time, or a duration meaning "that long ago";
/// answers the time as RFC 3339 UTC.
pub(crate) fn parse_since(s: &str) -> Result<String, String> {
    since_at(s, OffsetDateTime::now_utc())
}

/// [`parse_since`] with `now` given.
pub(crate) fn since_at(s: &str, now: OffsetDateTime) -> Result<String, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "`{s}` is neither an RFC 3339 time (2026-11-23T10:00:00Z) \
             nor a duration ago such as 30m, 2h or 7d"
        )
    };
    let at = match OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            let secs = parse_duration(s).map_err(|_| bad())?;
            i64::try_from(secs)
                .ok()
                .and_then(|secs| now.checked_sub(time::Duration::seconds(secs)))
                .ok_or_else(|| format!("`{s}` ago is too far in the past"))?
        }
    };
    at.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|_| format!("`{s}` is out of the range of RFC 3339 times"))
}

/// Seconds as the shortest [`parse_duration`] input: `900` → `15m`.
pub(crate) fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

/// A list as one table cell: `a,b`, or `-` when empty.
pub(crate) fn list_cell(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

/// A lowercase word for a yes/no cell.
pub(crate) struct YesNo(pub(crate) bool);

impl fmt::Display for YesNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "yes" } else { "no" })
    }
}

/// `--speed`: a positive factor up to 64.
pub(crate) fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 64.0 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a speed between 0 and 64 (e.g. 2 or 0.5)"
        )),
    }
}

/// `--idle-limit`: seconds, more than zero.
pub(crate) fn parse_idle_limit(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds above 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_lists_are_trimmed_and_deduplicated() {
        assert_eq!(comma_list("a, b ,c", "group").unwrap(), ["a", "b", "c"]);
        assert_eq!(comma_list("a,b,a", "group").unwrap(), ["a", "b"]);
        assert_eq!(comma_list("prod", "group").unwrap(), ["prod"]);
        assert_eq!(
            comma_list("", "group").unwrap_err(),
            "the group list is empty"
        );
        assert_eq!(
            comma_list("  ", "role").unwrap_err(),
            "the role list is empty"
        );
        assert!(
            comma_list("a,,b", "group")
                .unwrap_err()
                .contains("empty group")
        );
        assert!(comma_list("a,", "group").is_err());
    }

    #[test]
    fn groups_allow_star_only_alone() {
        assert_eq!("*".parse::<Groups>().unwrap().0, ["*"]);
        assert!("*,prod".parse::<Groups>().is_err());
        assert!("".parse::<Groups>().is_err());
    }

    #[test]
    fn unknown_permissions_pass_but_unknown_scopes_do_not() {
        assert_eq!(
            "view,fly".parse::<Permissions>().unwrap().0,
            ["view", "fly"]
        );
        assert_eq!("read,write".parse::<Scopes>().unwrap().0, ["read", "write"]);
        let err = "read,admin".parse::<Scopes>().unwrap_err();
        assert_eq!(err, "unknown scope `admin`: the scopes are read and write");
        assert!("".parse::<Scopes>().is_err());
    }

    #[test]
    fn role_lists_accept_none() {
        assert!("none".parse::<RoleList>().unwrap().0.is_empty());
        assert_eq!(
            "admin,technician".parse::<RoleList>().unwrap().0,
            ["admin", "technician"]
        );
        assert!("".parse::<RoleList>().unwrap_err().contains("use `none`"));
    }

    #[test]
    fn max_age_is_days_or_never() {
        assert_eq!("never".parse::<MaxAge>().unwrap().days(), None);
        assert_eq!("90".parse::<MaxAge>().unwrap().days(), Some(90));
        assert!("90d".parse::<MaxAge>().is_err());
        assert!("-1".parse::<MaxAge>().is_err());
    }

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("90s"), Ok(90));
        for bad in ["", "15", "m", "1x", "1h 2m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(900), "15m");
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(86_461), "1d1m1s");
        assert_eq!(format_duration(0), "0s");
        for secs in [1, 59, 60, 3599, 3600, 86_400, 90_061] {
            assert_eq!(parse_duration(&format_duration(secs)), Ok(secs));
        }
    }

    #[test]
    fn codes_are_masked_in_debug() {
        let c: Code = "7KQ2-M9XW-3FHD".parse().unwrap();
        assert_eq!(c.0, "7KQ2-M9XW-3FHD");
        assert_eq!(format!("{:?}", Some(c)), "Some(Code(MASKED))");
    }

    #[test]
    fn cells() {
        assert_eq!(list_cell(&[]), "-");
        assert_eq!(list_cell(&["a".into(), "b".into()]), "a,b");
        assert_eq!(YesNo(true).to_string(), "yes");
    }

    #[test]
    fn since_is_rfc3339_or_a_duration_ago() {
        let now = time::macros::datetime!(2026-11-23 12:00:00 UTC);
        assert_eq!(since_at("30m", now).unwrap(), "2026-11-23T11:30:00Z");
        assert_eq!(since_at("2h", now).unwrap(), "2026-11-23T10:00:00Z");
        assert_eq!(since_at("7d", now).unwrap(), "2026-11-16T12:00:00Z");
        assert_eq!(since_at("1h30m", now).unwrap(), "2026-11-23T10:30:00Z");
        // Absolute times are passed on in UTC, whatever `now` is.
        assert_eq!(
            since_at("2026-11-20T10:00:00Z", now).unwrap(),
            "2026-11-20T10:00:00Z"
        );
        assert_eq!(
            since_at("2026-11-20T10:00:00+02:00", now).unwrap(),
            "2026-11-20T08:00:00Z"
        );
        for bad in ["", "yesterday", "30", "2026-11-20", "2026-11-20 10:00:00"] {
            let err = since_at(bad, now).unwrap_err();
            assert!(err.contains("neither an RFC 3339 time"), "{bad}: {err}");
        }
        assert!(
            since_at("999999999d", now)
                .unwrap_err()
                .contains("too far in the past")
        );
    }
}
