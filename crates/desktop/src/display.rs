//! Which X display to use, and connecting to it.
//!
//! Given `--display` (and optionally `--xauthority`), that display is used.
//! Otherwise the display is found the way remote-support agents running as
//! a service do: the agent's own `DISPLAY`, then the `DISPLAY`/`XAUTHORITY`
//! in the environment of running processes (with `$HOME/.Xauthority` when a
//! process has `DISPLAY` but no `XAUTHORITY`), then every socket in
//! `/tmp/.X11-unix` without a cookie. Processes are ranked by the login
//! sessions systemd-logind keeps in `/run/systemd/sessions` (the records
//! `sd_session_get_display` reads): the display of the seat's *active*
//! local session, in that session user's processes, comes first (with
//! several users logged in, the one at the screen), then that display in
//! other processes, then other sessions' displays, then the rest (other
//! users' first: an agent runs as root, the logged-in user does not; then
//! the display most processes use). Without logind (no such directory) only
//! that last order applies. Each candidate is tried by connecting; the first
//! that accepts wins, and when none does the error lists them all.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use x11rb::reexports::x11rb_protocol::{parse_display, xauth};
use x11rb::rust_connection::{DefaultStream, RustConnection};

use crate::{Error, Result};

/// How the agent was told to reach the display (its `--display` and
/// `--xauthority` options); both `None` means "find it".
#[derive(Debug, Clone, Default)]
pub struct DisplayOptions {
    /// An X display name such as `:0` or `:1.0`.
    pub display: Option<String>,
    /// The Xauthority file holding the display's cookie.
    pub xauthority: Option<PathBuf>,
}

/// Where a display came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSource {
    /// `--display`.
    Options,
    /// This process's own `DISPLAY`.
    OwnEnvironment,
    /// The environment of process `pid` (owned by `uid`).
    Process { pid: u32, uid: u32 },
    /// A socket in the X socket directory, connected without a cookie.
    Socket,
}

/// A display to connect to.
#[derive(Debug, Clone)]
pub struct DisplayTarget {
    pub display: String,
    pub xauthority: Option<PathBuf>,
    pub source: TargetSource,
}

impl DisplayTarget {
    /// Opens a new connection to this display (each part of the crate has
    /// its own); returns it with the screen number.
    pub fn connect(&self) -> Result<(RustConnection, usize)> {
        connect(&self.display, self.xauthority.as_deref())
    }
}

impl DisplayOptions {
    /// The display to use: the one given, or the first found that accepts
    /// a connection.
    pub fn resolve(&self) -> Result<DisplayTarget> {
        if let Some(display) = &self.display {
            let t = DisplayTarget {
                display: display.clone(),
                xauthority: self.xauthority.clone(),
                source: TargetSource::Options,
            };
            t.connect()?;
            return Ok(t);
        }
        let own = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
        let own_auth = self
            .xauthority
            .clone()
            .or_else(|| std::env::var_os("XAUTHORITY").map(PathBuf::from));
        discover(
            own.map(|d| (d, own_auth)),
            Path::new("/proc"),
            Path::new("/tmp/.X11-unix"),
            Path::new(LOGIND_SESSIONS),
        )
    }
}

/// Where systemd-logind keeps one record per login session.
const LOGIND_SESSIONS: &str = "/run/systemd/sessions";

/// Discovery over the given roots (tests point them at their own trees).
pub(crate) fn discover(
    own: Option<(String, Option<PathBuf>)>,
    proc_root: &Path,
    socket_dir: &Path,
    sessions_dir: &Path,
) -> Result<DisplayTarget> {
    let mut candidates: Vec<DisplayTarget> = Vec::new();
    if let Some((display, xauthority)) = own {
        candidates.push(DisplayTarget {
            display,
            xauthority,
            source: TargetSource::OwnEnvironment,
        });
    }
    let sessions = login_sessions(sessions_dir);
    let mut found = from_processes(proc_root);
    // Stable: within a rank, the order `from_processes` chose.
    found.sort_by_key(|t| session_rank(t, &sessions));
    candidates.extend(found);
    for n in sockets(socket_dir) {
        candidates.push(DisplayTarget {
            display: format!(":{n}"),
            xauthority: None,
            source: TargetSource::Socket,
        });
    }
    let mut tried = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for c in candidates {
        if !seen.insert((c.display.clone(), c.xauthority.clone())) {
            continue;
        }
        let what = match &c.source {
            TargetSource::Options => format!("{} (options)", c.display),
            TargetSource::OwnEnvironment => format!("{} (own DISPLAY)", c.display),
            TargetSource::Process { pid, uid } => {
                format!("{} (from process {pid}, uid {uid})", c.display)
            }
            TargetSource::Socket => format!("{} (socket {})", c.display, socket_dir.display()),
        };
        let what = match &c.xauthority {
            Some(p) => format!("{what} with {}", p.display()),
            None => what,
        };
        match c.connect() {
            Ok(_) => return Ok(c),
            Err(e) => tried.push(format!("{what}: {e}")),
        }
    }
    Err(Error::NoDisplay { tried })
}

/// A local graphical login session, as systemd-logind records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoginSession {
    /// The X display number of its `DISPLAY`.
    display: u32,
    uid: u32,
    /// The session in front on its seat (`ACTIVE=1`).
    active: bool,
}

/// The local sessions with an X display in logind's records (`KEY=value`
/// lines; remote and closing sessions left out). None without logind.
fn login_sessions(dir: &Path) -> Vec<LoginSession> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_str()
            .is_none_or(|n| n.starts_with('.'))
        {
            continue;
        }
        let mut text = String::new();
        // Bounded: a record is a few hundred bytes.
        let Ok(f) = fs::File::open(entry.path()) else {
            continue;
        };
        if f.take(64 * 1024).read_to_string(&mut text).is_err() {
            continue;
        }
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        if field("REMOTE") == Some("1") || field("STATE") == Some("closing") {
            continue;
        }
        let (Some(display), Some(uid)) = (
            field("DISPLAY").and_then(display_number),
            field("UID").and_then(|u| u.parse().ok()),
        ) else {
            continue;
        };
        out.push(LoginSession {
            display,
            uid,
            active: field("ACTIVE") == Some("1"),
        });
    }
    out
}

/// The number of a local display name (`:N` or `:N.S`).
fn display_number(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(':')?;
    rest.split_once('.').map_or(rest, |(n, _)| n).parse().ok()
}

/// How well a candidate matches the login sessions (lower is better): the
/// active session's display in its user's processes, that display in other
/// processes, another session's display, anything else.
fn session_rank(t: &DisplayTarget, sessions: &[LoginSession]) -> u8 {
    let Some(n) = display_number(&t.display) else {
        return 3;
    };
    let uid = match t.source {
        TargetSource::Process { uid, .. } => Some(uid),
        _ => None,
    };
    let on = |s: &&LoginSession| s.display == n;
    if sessions
        .iter()
        .filter(on)
        .any(|s| s.active && Some(s.uid) == uid)
    {
        0
    } else if sessions.iter().filter(on).any(|s| s.active) {
        1
    } else if sessions.iter().any(|s| on(&s)) {
        2
    } else {
        3
    }
}

/// Display numbers with a socket `X<n>` in `dir`, ascending.
fn sockets(dir: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix('X')?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

/// `DISPLAY` (local displays only) and `XAUTHORITY` from every readable
/// process environment; non-root users' processes first, then the display
/// most processes use.
fn from_processes(proc_root: &Path) -> Vec<DisplayTarget> {
    // (display, xauthority) -> (processes, non-root, first pid, uid)
    type Key = (String, Option<PathBuf>);
    let mut seen: BTreeMap<Key, (usize, bool, u32, u32)> = BTreeMap::new();
    for entry in fs::read_dir(proc_root).into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let mut raw = Vec::new();
        // Bounded: an environment is at most a few hundred KiB.
        let Ok(f) = fs::File::open(entry.path().join("environ")) else {
            continue;
        };
        if f.take(1 << 20).read_to_end(&mut raw).is_err() {
            continue;
        }
        let uid = uid_of(&entry.path()).unwrap_or(0);
        let mut display = None;
        let mut xauthority = None;
        let mut home = None;
        for var in raw.split(|b| *b == 0) {
            let Ok(var) = std::str::from_utf8(var) else {
                continue;
            };
            if let Some(v) = var.strip_prefix("DISPLAY=") {
                display = Some(v.to_owned());
            } else if let Some(v) = var.strip_prefix("XAUTHORITY=") {
                xauthority = Some(PathBuf::from(v));
            } else if let Some(v) = var.strip_prefix("HOME=") {
                home = Some(PathBuf::from(v));
            }
        }
        // Only local displays: the agent shares the screen it runs beside.
        let Some(display) = display.filter(|d| d.starts_with(':')) else {
            continue;
        };
        let xauthority =
            xauthority.or_else(|| home.map(|h| h.join(".Xauthority")).filter(|p| p.exists()));
        let e = seen
            .entry((display, xauthority))
            .or_insert((0, uid != 0, pid, uid));
        e.0 += 1;
    }
    let mut list: Vec<_> = seen.into_iter().collect();
    list.sort_by_key(|(_, (count, non_root, ..))| std::cmp::Reverse((*non_root, *count)));
    list.into_iter()
        .map(|((display, xauthority), (_, _, pid, uid))| DisplayTarget {
            display,
            xauthority,
            source: TargetSource::Process { pid, uid },
        })
        .collect()
}

fn uid_of(proc_dir: &Path) -> Option<u32> {
    let status = fs::read_to_string(proc_dir.join("status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Connects to `display` with the cookie from `xauthority` (or, when
/// `None`, from `$XAUTHORITY` / `~/.Xauthority` as Xlib does).
/// The largest X display number (TCP port 6000 + n must be a port).
pub const MAX_DISPLAY: u16 = u16::MAX - 6000;

pub(crate) fn connect(display: &str, xauthority: Option<&Path>) -> Result<(RustConnection, usize)> {
    let parsed = parse_display::parse_display(Some(display))
        .map_err(|e| Error::connect(display, e.into()))?;
    // X over TCP listens on 6000 + the display number (a u16): larger
    // numbers name no display.
    if parsed.display > MAX_DISPLAY {
        return Err(Error::Connect {
            display: display.to_owned(),
            reason: format!("display numbers go up to {MAX_DISPLAY}"),
        });
    }
    let screen = usize::from(parsed.screen);
    let mut last = None;
    for addr in parsed.connect_instruction() {
        let (stream, (family, address)) = match DefaultStream::connect(&addr) {
            Ok(s) => s,
            Err(e) => {
                last = Some(e.to_string());
                continue;
            }
        };
        let (name, data) = match xauthority {
            Some(path) => cookie_from(path, family, &address, parsed.display)?,
            None => xauth::get_auth(family, &address, parsed.display)
                .ok()
                .flatten(),
        }
        .unwrap_or_default();
        return RustConnection::connect_to_stream_with_auth_info(stream, screen, name, data)
            .map(|c| (c, screen))
            .map_err(|e| Error::connect(display, e));
    }
    Err(Error::Connect {
        display: display.to_owned(),
        reason: last.unwrap_or_else(|| "no address to connect to".into()),
    })
}

/// The MIT-MAGIC-COOKIE-1 entry of an Xauthority file for this display.
fn cookie_from(
    path: &Path,
    family: xauth::Family,
    address: &[u8],
    display: u16,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let bytes = fs::read(path).map_err(|source| Error::Xauthority {
        path: path.display().to_string(),
        source,
    })?;
    let number = display.to_string();
    let mut rest = &bytes[..];
    while let Some(entry) = AuthEntry::read(&mut rest) {
        // FamilyWild matches every address; otherwise family and address
        // (for a local connection: this host's name) must both match.
        let family_ok = entry.family == 65535
            || (xauth::Family::from(entry.family) == family && entry.address == address);
        if family_ok
            && (entry.number.is_empty() || entry.number == number.as_bytes())
            && entry.name == b"MIT-MAGIC-COOKIE-1"
        {
            return Ok(Some((entry.name, entry.data)));
        }
    }
    Ok(None)
}

struct AuthEntry {
    family: u16,
    address: Vec<u8>,
    number: Vec<u8>,
    name: Vec<u8>,
    data: Vec<u8>,
}

impl AuthEntry {
    fn read(buf: &mut &[u8]) -> Option<Self> {
        fn u16_at(buf: &mut &[u8]) -> Option<u16> {
            let (v, rest) = buf.split_first_chunk::<2>()?;
            *buf = rest;
            Some(u16::from_be_bytes(*v))
        }
        fn bytes(buf: &mut &[u8]) -> Option<Vec<u8>> {
            let n = usize::from(u16_at(buf)?);
            if buf.len() < n {
                return None;
            }
            let (v, rest) = buf.split_at(n);
            *buf = rest;
            Some(v.to_vec())
        }
        Some(Self {
            family: u16_at(buf)?,
            address: bytes(buf)?,
            number: bytes(buf)?,
            name: bytes(buf)?,
            data: bytes(buf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(family: u16, address: &[u8], number: &[u8], name: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = family.to_be_bytes().to_vec();
        for f in [address, number, name, data] {
            v.extend_from_slice(&(f.len() as u16).to_be_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    #[test]
    fn xauthority_entry_for_the_display_is_picked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth");
        let mut file = entry(
            256,
            b"otherhost",
            b"3",
            b"MIT-MAGIC-COOKIE-1",
            b"wrong-host",
        );
        file.extend(entry(
            256,
            b"here",
            b"4",
            b"MIT-MAGIC-COOKIE-1",
            b"wrong-number",
        ));
        file.extend(entry(256, b"here", b"3", b"MIT-MAGIC-COOKIE-1", b"right"));
        fs::write(&path, &file).unwrap();
        let got = cookie_from(&path, xauth::Family::LOCAL, b"here", 3)
            .unwrap()
            .unwrap();
        assert_eq!(got.1, b"right");
        // FamilyWild matches any address.
        fs::write(
            &path,
            entry(65535, b"", b"7", b"MIT-MAGIC-COOKIE-1", b"wild"),
        )
        .unwrap();
        assert_eq!(
            cookie_from(&path, xauth::Family::LOCAL, b"here", 7)
                .unwrap()
                .unwrap()
                .1,
            b"wild"
        );
        assert!(
            cookie_from(&path, xauth::Family::LOCAL, b"here", 8)
                .unwrap()
                .is_none()
        );
        // A truncated file ends the walk without a panic.
        fs::write(&path, &file[..file.len() - 3]).unwrap();
        assert_eq!(
            cookie_from(&path, xauth::Family::LOCAL, b"here", 3).unwrap(),
            None
        );
        // A missing file is a typed error naming it.
        let err =
            cookie_from(&dir.path().join("nope"), xauth::Family::LOCAL, b"here", 3).unwrap_err();
        assert!(
            matches!(err, Error::Xauthority { ref path, .. } if path.ends_with("nope")),
            "{err}"
        );
    }

    /// A logind directory that does not exist (a system without logind).
    fn no_logind() -> PathBuf {
        PathBuf::from("/nonexistent/jumpgate-test/no-logind")
    }

    /// A fake process: its environment and its owner.
    fn process(root: &Path, pid: u32, uid: u32, env: &str) {
        let p = root.join(pid.to_string());
        fs::create_dir(&p).unwrap();
        fs::write(p.join("environ"), env.replace(' ', "\0")).unwrap();
        fs::write(
            p.join("status"),
            format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        )
        .unwrap();
    }

    #[test]
    fn logind_records_are_read_and_rank_the_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let record = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
        record(
            "2",
            "# This is private data. Do not parse.\nUID=1000\nUSER=alice\nACTIVE=1\nSTATE=active\nREMOTE=0\nTYPE=x11\nDISPLAY=:3.0\n",
        );
        record(
            "5",
            "UID=1001\nACTIVE=0\nSTATE=online\nTYPE=x11\nDISPLAY=:4\n",
        );
        // Remote, closing, without a display, or a remote display: not ours.
        record("7", "UID=1002\nACTIVE=1\nREMOTE=1\nDISPLAY=:9\n");
        record("8", "UID=1003\nACTIVE=1\nSTATE=closing\nDISPLAY=:8\n");
        record("9", "UID=1004\nACTIVE=1\nTYPE=tty\n");
        record("10", "UID=1005\nACTIVE=1\nDISPLAY=host:2\n");
        record(".#2abc", "UID=1006\nACTIVE=1\nDISPLAY=:6\n");
        let mut got = login_sessions(dir.path());
        got.sort_by_key(|s| s.display);
        assert_eq!(
            got,
            [
                LoginSession {
                    display: 3,
                    uid: 1000,
                    active: true
                },
                LoginSession {
                    display: 4,
                    uid: 1001,
                    active: false
                },
            ]
        );
        assert!(login_sessions(&no_logind()).is_empty());
        let t = |display: &str, uid: u32| DisplayTarget {
            display: display.into(),
            xauthority: None,
            source: TargetSource::Process { pid: 1, uid },
        };
        assert_eq!(session_rank(&t(":3", 1000), &got), 0);
        assert_eq!(session_rank(&t(":3.0", 0), &got), 1);
        assert_eq!(session_rank(&t(":4", 1001), &got), 2);
        assert_eq!(session_rank(&t(":5", 1000), &got), 3);
        assert_eq!(session_rank(&t(":3", 1000), &[]), 3);
    }

    /// An Xvfb of this test's own (the display number it picked), with a
    /// cookie file when `auth` is given; killed by the caller.
    fn private_xvfb(screen: &str, auth: Option<&Path>) -> (std::process::Child, String) {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new("Xvfb");
        cmd.args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            // Without it the server resets when its last client leaves, and
            // a probe that arrives during the reset is dropped (seen in CI).
            "-noreset",
            "-screen",
            "0",
            screen,
        ]);
        if let Some(auth) = auth {
            cmd.arg("-auth").arg(auth);
        }
        let mut x = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(x.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (x, format!(":{}", line.trim()))
    }

    /// Two real displays; a second user's session has more processes (what
    /// ranked first before logind was asked), the active session is the
    /// other one: the active one is chosen. Without logind's records the
    /// busier display is (the positive control).
    #[test]
    fn the_active_login_sessions_display_is_preferred() {
        if !Path::new("/usr/bin/Xvfb").exists() {
            println!("skipped: Xvfb is not installed (scripts/test installs it)");
            return;
        }
        let (mut xa, busy) = private_xvfb("64x64x24", None);
        let (mut xb, active) = private_xvfb("64x64x24", None);
        let proc_root = tempfile::tempdir().unwrap();
        let sockets = tempfile::tempdir().unwrap();
        let logind = tempfile::tempdir().unwrap();
        for pid in [100, 101, 102] {
            process(proc_root.path(), pid, 1001, &format!("DISPLAY={busy}"));
        }
        process(proc_root.path(), 200, 1000, &format!("DISPLAY={active}"));
        fs::write(
            logind.path().join("1"),
            format!("UID=1001\nACTIVE=0\nSTATE=online\nTYPE=x11\nDISPLAY={busy}\n"),
        )
        .unwrap();
        fs::write(
            logind.path().join("2"),
            format!("UID=1000\nACTIVE=1\nSTATE=active\nTYPE=x11\nDISPLAY={active}\n"),
        )
        .unwrap();
        let with_logind = discover(None, proc_root.path(), sockets.path(), logind.path());
        let without = discover(None, proc_root.path(), sockets.path(), &no_logind());
        for x in [&mut xa, &mut xb] {
            let _ = x.kill();
            let _ = x.wait();
        }
        let chosen = with_logind.unwrap();
        assert_eq!(
            (chosen.display.as_str(), chosen.source),
            (
                active.as_str(),
                TargetSource::Process {
                    pid: 200,
                    uid: 1000
                }
            )
        );
        assert_eq!(without.unwrap().display, busy);
    }

    #[test]
    fn nothing_found_names_what_was_tried() {
        let proc_root = tempfile::tempdir().unwrap();
        let sockets = tempfile::tempdir().unwrap();
        let p = proc_root.path().join("4242");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("environ"), b"HOME=/nonexistent\0DISPLAY=:987654\0").unwrap();
        fs::write(p.join("status"), "Name:\tx\nUid:\t1000\t1000\t1000\t1000\n").unwrap();
        // A remote display in some process is not a candidate.
        let q = proc_root.path().join("4243");
        fs::create_dir(&q).unwrap();
        fs::write(q.join("environ"), b"DISPLAY=remote:0\0").unwrap();
        let err = discover(None, proc_root.path(), sockets.path(), &no_logind()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::NoDisplay { ref tried } if tried.len() == 1),
            "{msg}"
        );
        assert!(
            msg.contains(":987654 (from process 4242, uid 1000)"),
            "{msg}"
        );
        assert!(!msg.contains("remote"), "{msg}");
        let empty = tempfile::tempdir().unwrap();
        let msg = discover(None, empty.path(), sockets.path(), &no_logind())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("no X socket and no process with DISPLAY"),
            "{msg}"
        );
    }

    /// A real cookie-protected Xvfb found from a (fake) process table: its
    /// DISPLAY and XAUTHORITY, and `$HOME/.Xauthority` when XAUTHORITY is unset.
    #[test]
    fn a_session_display_is_found_from_a_process_environment() {
        if !Path::new("/usr/bin/Xvfb").exists() {
            println!("skipped: Xvfb is not installed (scripts/test installs it)");
            return;
        }
        let home = tempfile::tempdir().unwrap();
        let auth = home.path().join(".Xauthority");
        fs::write(
            &auth,
            entry(65535, b"", b"", b"MIT-MAGIC-COOKIE-1", b"0123456789abcdef"),
        )
        .unwrap();
        let (mut xvfb, display) = private_xvfb("320x240x24", Some(&auth));
        let proc_root = tempfile::tempdir().unwrap();
        let sockets = tempfile::tempdir().unwrap();
        let p = proc_root.path().join("777");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("status"), "Uid:\t1000\t1000\t1000\t1000\n").unwrap();
        fs::write(
            p.join("environ"),
            format!("DISPLAY={display}\0XAUTHORITY={}\0", auth.display()),
        )
        .unwrap();
        let found = discover(None, proc_root.path(), sockets.path(), &no_logind());
        fs::write(
            p.join("environ"),
            format!("HOME={}\0DISPLAY={display}\0", home.path().display()),
        )
        .unwrap();
        let from_home = discover(None, proc_root.path(), sockets.path(), &no_logind());
        // Negative control: the same display without the cookie is refused.
        fs::write(
            p.join("environ"),
            format!("DISPLAY={display}\0XAUTHORITY=/nonexistent\0"),
        )
        .unwrap();
        let refused = discover(None, proc_root.path(), sockets.path(), &no_logind());
        let _ = xvfb.kill();
        let _ = xvfb.wait();
        let found = found.unwrap();
        assert_eq!(
            (found.display.as_str(), found.source),
            (
                display.as_str(),
                TargetSource::Process {
                    pid: 777,
                    uid: 1000
                }
            )
        );
        assert_eq!(found.xauthority.as_deref(), Some(auth.as_path()));
        assert_eq!(
            from_home.unwrap().xauthority.as_deref(),
            Some(auth.as_path())
        );
        let msg = refused.unwrap_err().to_string();
        assert!(
            msg.contains(&format!(
                "{display} (from process 777, uid 1000) with /nonexistent"
            )),
            "{msg}"
        );
    }
}
