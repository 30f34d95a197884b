//! Address ranges (`10.0.0.0/8`, `::1`) and destination allow lists
//! (`10.0.0.0/8`, `db.internal:5432`, `*.corp.example:22`): an SSH
//! certificate's `source-address`, and the destinations a jump point may
//! connect to (the administrator's list, sent by the gateway, and the
//! agent's own `--jump-point-allow`).
//!
//! A list is checked against what is really connected to: [`connect`]
//! resolves the name, keeps the addresses every list allows (a name rule
//! allows whatever that name resolves to; an address rule allows the
//! addresses inside it, whatever name led there) and connects to one of
//! those, so a DNS name cannot smuggle an address outside the lists.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use tokio::net::TcpStream;

/// An address range: an address and a prefix length (a bare address is
/// the range of that one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the range (an IPv4-mapped IPv6 address
    /// counts as its IPv4 address).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{}` is not an address or ADDRESS/PREFIX", clip(s));
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix =
            match prefix {
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    format!("`{}`: the prefix length must be 0 to {max}", clip(s))
                })?,
                None => max,
            };
        // Host bits are cleared: `10.1.2.3/8` is `10.0.0.0/8`.
        let net = match net {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Ok(Self { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.net.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.prefix)
        }
    }
}

/// A comma-separated list of ranges (a certificate's `source-address`).
///
/// # Errors
/// An empty list, or an entry that is not a range.
pub fn parse_cidrs(s: &str) -> Result<Vec<Cidr>, String> {
    let list: Vec<Cidr> = s
        .split(',')
        .map(str::trim)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err("an empty address list".into());
    }
    Ok(list)
}

/// What a [`Rule`] matches of a destination's host.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    /// Addresses inside a range, whatever name led to them.
    Net(Cidr),
    /// That host name (lower case), whatever it resolves to.
    Name(String),
    /// Names ending in `.SUFFIX` (`*.corp.example`).
    Suffix(String),
}

/// One allowed destination: `CIDR`, `NAME` or `*.SUFFIX`, with an
/// optional `:PORT` (`[v6/prefix]:PORT` for IPv6 with a port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    host: Host,
    port: Option<u16>,
}

/// The most rules one list holds.
pub const MAX_RULES: usize = 64;

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = |why: &str| format!("allowed destination `{}`: {why}", clip(s));
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("a `[` without its `]`"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("expected `]:PORT`")),
            }
        } else if s.matches(':').count() == 1 {
            let (h, p) = s.split_once(':').unwrap_or((s, ""));
            (h, Some(p))
        } else {
            // No port, or a bare IPv6 range.
            (s, None)
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port must be 1 to 65535"))
            })
            .transpose()?;
        let looks_ip = host.contains(':')
            || host.contains('/')
            || host
                .split('.')
                .all(|p| p.chars().all(|c| c.is_ascii_digit()));
        let host = if looks_ip {
            Host::Net(host.parse::<Cidr>().map_err(|e| bad(&e))?)
        } else {
            let name = host.to_ascii_lowercase();
            let (wild, base) = match name.strip_prefix("*.") {
                Some(b) => (true, b.to_owned()),
                None => (false, name),
            };
            let valid_label = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            };
            if base.len() > 253 || !base.split('.').all(valid_label) {
                return Err(bad("not an address range or a host name"));
            }
            if wild {
                Host::Suffix(base)
            } else {
                Host::Name(base)
            }
        };
        Ok(Self { host, port })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            Host::Net(c) => c.to_string(),
            Host::Name(n) => n.clone(),
            Host::Suffix(s) => format!("*.{s}"),
        };
        match (self.port, &self.host) {
            (Some(p), Host::Net(c)) if c.net.is_ipv6() => write!(f, "[{host}]:{p}"),
            (Some(p), _) => write!(f, "{host}:{p}"),
            (None, _) => f.write_str(&host),
        }
    }
}

impl Rule {
    fn port_ok(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    fn name_ok(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match &self.host {
            Host::Net(_) => false,
            Host::Name(n) => *n == name,
            Host::Suffix(s) => name
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }

    fn addr_ok(&self, ip: IpAddr) -> bool {
        matches!(&self.host, Host::Net(c) if c.contains(ip))
    }
}

/// Destinations allowed: any (no list), or those a rule matches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList(Option<Vec<Rule>>);

/// What a list says of a host and port before anything is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed whatever it resolves to (a name rule, or an address inside
    /// a range).
    Allowed,
    /// A name only address rules could allow: decided by the addresses it
    /// resolves to where it is connected from.
    DependsOnAddresses,
    /// No rule can allow it.
    Refused,
}

impl AllowList {
    /// Every destination.
    #[must_use]
    pub fn any() -> Self {
        Self(None)
    }

    /// No destination at all (what an unreadable stored list means).
    #[must_use]
    pub fn nothing() -> Self {
        Self(Some(Vec::new()))
    }

    /// A list of rules (`None`: any destination).
    ///
    /// # Errors
    /// A rule that does not parse, an empty list, or more than
    /// [`MAX_RULES`].
    pub fn parse<I, S>(rules: Option<I>) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let Some(rules) = rules else {
            return Ok(Self(None));
        };
        let rules: Vec<S> = rules.into_iter().collect();
        if rules.is_empty() {
            return Err("an empty list of allowed destinations (leave it out to allow any)".into());
        }
        if rules.len() > MAX_RULES {
            return Err(format!("at most {MAX_RULES} allowed destinations"));
        }
        let rules = rules
            .iter()
            .map(|r| r.as_ref().parse::<Rule>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(Some(rules)))
    }

    /// Whether every destination is allowed.
    #[must_use]
    pub fn is_any(&self) -> bool {
        self.0.is_none()
    }

    /// The rules in their canonical form (`None`: any).
    #[must_use]
    pub fn rules(&self) -> Option<Vec<String>> {
        self.0
            .as_ref()
            .map(|r| r.iter().map(ToString::to_string).collect())
    }

    /// Whether connecting to `ip`, reached by the name `host`, on `port`
    /// is allowed.
    #[must_use]
    pub fn allows(&self, host: &str, ip: IpAddr, port: u16) -> bool {
        let Some(rules) = &self.0 else {
            return true;
        };
        rules
            .iter()
            .filter(|r| r.port_ok(port))
            .any(|r| r.addr_ok(ip) || r.name_ok(host))
    }

    /// What the list says of `host:port` before resolving it.
    #[must_use]
    pub fn verdict(&self, host: &str, port: u16) -> Verdict {
        let Some(rules) = &self.0 else {
            return Verdict::Allowed;
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return if self.allows(bare, ip, port) {
                Verdict::Allowed
            } else {
                Verdict::Refused
            };
        }
        let on_port = || rules.iter().filter(|r| r.port_ok(port));
        if on_port().any(|r| r.name_ok(host)) {
            Verdict::Allowed
        } else if on_port().any(|r| matches!(r.host, Host::Net(_))) {
            Verdict::DependsOnAddresses
        } else {
            Verdict::Refused
        }
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rules() {
            None => f.write_str("any"),
            Some(r) if r.is_empty() => f.write_str("none"),
            Some(r) => f.write_str(&r.join(", ")),
        }
    }
}

/// Why [`connect`] did not connect.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, #[source] std::io::Error),
    #[error("{dest} is outside this jump point's allowed destinations ({why})")]
    Outside { dest: String, why: String },
    #[error("cannot reach {0}: {1}")]
    Connect(String, #[source] std::io::Error),
    #[error("{0}: timed out")]
    Timeout(String),
}

fn dest_text(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The addresses of `host` that every list in `lists` (each named, for
/// the error) allows connecting to on `port`, in resolver order.
///
/// # Errors
/// Not resolved, or no address allowed (the error names the addresses
/// and the lists that refused).
pub async fn allowed_addrs(
    host: &str,
    port: u16,
    lists: &[(&str, &AllowList)],
) -> Result<Vec<SocketAddr>, DialError> {
    let dest = dest_text(host, port);
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| DialError::Resolve(dest.clone(), e))?
        .collect();
    let mut refused_by: Vec<&str> = Vec::new();
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| {
            for (who, list) in lists {
                if !list.allows(bare, a.ip(), port) {
                    if !refused_by.contains(who) {
                        refused_by.push(*who);
                    }
                    return false;
                }
            }
            true
        })
        .collect();
    if allowed.is_empty() {
        let seen: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        let resolved = if bare.parse::<IpAddr>().is_ok() {
            String::new()
        } else {
            format!("it resolves to {}; ", seen.join(", "))
        };
        let why = refused_by
            .iter()
            .filter_map(|who| lists.iter().find(|(w, _)| w == who))
            .map(|(who, list)| format!("{who}: {list}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(DialError::Outside {
            dest,
            why: format!("{resolved}{why}"),
        });
    }
    Ok(allowed)
}

/// Resolves `host` and connects to the first of its addresses that every
/// list in `lists` allows ([`allowed_addrs`]), within `timeout` in all.
///
/// # Errors
/// Not resolved, no address allowed, or none reached.
pub async fn connect(
    host: &str,
    port: u16,
    lists: &[(&str, &AllowList)],
    timeout: Duration,
) -> Result<TcpStream, DialError> {
    let dest = dest_text(host, port);
    let work = async {
        let mut last = None;
        for a in allowed_addrs(host, port, lists).await? {
            match TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(DialError::Connect(
            dest.clone(),
            last.unwrap_or_else(|| std::io::Error::other("no address")),
        ))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| DialError::Timeout(format!("connecting to {dest}")))?
}

fn clip(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_their_addresses_only() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.1.1")), "IPv4-mapped counts");
        assert!(!c.contains(ip("fd00::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert_eq!(one.to_string(), "127.0.0.1");
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        // Host bits are cleared; /0 is everything of its family.
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "db",
            "10.0.0/8",
            "",
            "1.2.3.4/",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(parse_cidrs("127.0.0.1/32, ::1").unwrap().len(), 2);
        assert!(parse_cidrs("127.0.0.1,nope").is_err());
    }

    #[test]
    fn rules_parse_and_print_canonically() {
        for (given, shown) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.0.0.0/8:22", "10.0.0.0/8:22"),
            ("DB.Internal:5432", "db.internal:5432"),
            ("*.corp.example", "*.corp.example"),
            ("fd00::/8", "fd00::/8"),
            ("[fd00::/8]:22", "[fd00::/8]:22"),
            ("[::1]", "::1"),
            ("192.0.2.7", "192.0.2.7"),
        ] {
            assert_eq!(given.parse::<Rule>().unwrap().to_string(), shown, "{given}");
        }
        for bad in [
            "",
            "db:0",
            "db:x",
            "a b",
            "10.0.0.0/40",
            "[::1",
            "*.",
            "db..x",
            "1.2.3",
        ] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_allow_names_ranges_and_ports() {
        let l = AllowList::parse(Some(&[
            "10.0.0.0/8",
            "db.internal:5432",
            "*.corp.example:22",
        ]))
        .unwrap();
        assert!(l.allows("10.1.2.3", ip("10.1.2.3"), 22));
        assert!(
            l.allows("anything", ip("10.1.2.3"), 9999),
            "a range allows any name"
        );
        assert!(
            l.allows("db.internal", ip("8.8.8.8"), 5432),
            "a name allows its addresses"
        );
        assert!(
            !l.allows("db.internal", ip("8.8.8.8"), 22),
            "not on another port"
        );
        assert!(l.allows("web.corp.example", ip("8.8.8.8"), 22));
        assert!(!l.allows("corp.example", ip("8.8.8.8"), 22));
        assert!(!l.allows("evilcorp.example", ip("8.8.8.8"), 22));
        assert!(!l.allows("outside.example", ip("8.8.8.8"), 22));
        assert_eq!(l.verdict("10.9.9.9", 22), Verdict::Allowed);
        assert_eq!(l.verdict("8.8.8.8", 22), Verdict::Refused);
        assert_eq!(l.verdict("db.internal", 5432), Verdict::Allowed);
        assert_eq!(l.verdict("other.internal", 22), Verdict::DependsOnAddresses);
        let names = AllowList::parse(Some(&["db.internal:5432"])).unwrap();
        assert_eq!(names.verdict("other.internal", 22), Verdict::Refused);
        assert_eq!(names.verdict("db.internal", 22), Verdict::Refused);
        assert!(AllowList::any().allows("x", ip("8.8.8.8"), 1));
        assert_eq!(AllowList::any().to_string(), "any");
        assert_eq!(
            l.to_string(),
            "10.0.0.0/8, db.internal:5432, *.corp.example:22"
        );
        assert!(AllowList::parse(Some(Vec::<String>::new())).is_err());
        assert!(!AllowList::nothing().allows("x", ip("10.0.0.1"), 1));
        assert_eq!(AllowList::nothing().verdict("x", 1), Verdict::Refused);
        assert!(AllowList::parse(Some(&["nope nope"])).is_err());
    }

    #[tokio::test]
    async fn connect_checks_the_addresses_a_name_resolves_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = Duration::from_secs(5);
        let loopback = AllowList::parse(Some(&["127.0.0.0/8"])).unwrap();
        let elsewhere = AllowList::parse(Some(&["10.0.0.0/8"])).unwrap();
        // Positive control: allowed by address, reached by name.
        connect("localhost", port, &[("gateway", &loopback)], t)
            .await
            .unwrap();
        // `localhost` is not named by the list and resolves outside it.
        let err = connect("localhost", port, &[("gateway", &elsewhere)], t)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("outside") && err.contains("127.0.0.1"),
            "{err}"
        );
        // Both lists must allow it.
        let err = connect(
            "127.0.0.1",
            port,
            &[("gateway", &loopback), ("--jump-point-allow", &elsewhere)],
            t,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("--jump-point-allow: 10.0.0.0/8"), "{err}");
    }
}
