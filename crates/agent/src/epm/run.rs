//! Running what was decided: the caller's identity from the local user
//! database, the program resolved and opened once (what was hashed is what
//! runs: `/proc/self/fd/N` of the opened file), a cleaned environment like
//! sudo's `env_reset`, the caller's standard fds, signals passed on, and
//! the exit code (128 + signal when killed).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The sudo-like secure `PATH` of an elevated program.
pub const SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A local user, from `/etc/passwd` and `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    /// Names of the primary and supplementary groups.
    pub groups: Vec<String>,
}

/// The user with `uid` (and primary group `gid` when unknown to
/// `/etc/passwd`), read from `etc` (`/etc` outside tests).
pub fn local_user(etc: &Path, uid: u32, gid: u32) -> LocalUser {
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap_or_default();
    let mut user = LocalUser {
        name: uid.to_string(),
        uid,
        gid,
        home: "/".into(),
        shell: "/bin/sh".into(),
        groups: Vec::new(),
    };
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid) {
            user.name = f[0].to_owned();
            user.gid = f[3].parse().unwrap_or(gid);
            user.home = f[5].to_owned();
            if !f[6].is_empty() {
                user.shell = f[6].to_owned();
            }
            break;
        }
    }
    let group = std::fs::read_to_string(etc.join("group")).unwrap_or_default();
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let primary = f[2].parse::<u32>().ok() == Some(user.gid);
        let member = f[3].split(',').any(|m| m == user.name);
        if (primary || member) && !user.groups.iter().any(|g| g == f[0]) {
            user.groups.push(f[0].to_owned());
        }
    }
    user
}

/// Why a program could not be resolved, opened or started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("command not found: {0}")]
    NotFound(String),
    #[error("{0}: not a relative path the caller's PATH resolves; give an absolute path")]
    Relative(String),
    #[error("{path}: {cause}")]
    Open {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("{0}: not an executable file")]
    NotExecutable(String),
    #[error(
        "{0}: writable by users other than root, so it could change between its check and its start"
    )]
    Writable(String),
    #[error("could not start {path}: {cause}")]
    Spawn {
        path: String,
        #[source]
        cause: std::io::Error,
    },
}

/// The program, resolved the way the caller's shell would (`PATH` of the
/// caller; a name with a `/` as given, relative to the caller's directory),
/// then made canonical (symlinks resolved: policies name real files).
///
/// # Errors
/// Not found, or relative with no absolute meaning.
pub fn resolve(name: &str, caller_path: &str, cwd: &str) -> Result<PathBuf, RunError> {
    let candidate = if name.contains('/') {
        let p = Path::new(name);
        if p.is_absolute() {
            p.to_owned()
        } else if Path::new(cwd).is_absolute() {
            Path::new(cwd).join(p)
        } else {
            return Err(RunError::Relative(name.to_owned()));
        }
    } else {
        caller_path
            .split(':')
            // Relative PATH entries (`.`, empty) are refused: they mean
            // whatever directory the caller is in.
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(name))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| RunError::NotFound(name.to_owned()))?
    };
    std::fs::canonicalize(&candidate).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RunError::NotFound(name.to_owned()),
        _ => RunError::Open {
            path: candidate.display().to_string(),
            cause: e,
        },
    })
}

/// A program opened once: what was hashed is what runs.
#[derive(Debug)]
pub struct Opened {
    pub path: PathBuf,
    pub file: File,
    pub sha256: String,
    /// Whether users other than root could change it in place.
    pub writable_by_others: bool,
}

/// Opens and hashes `path`.
///
/// # Errors
/// Unreadable, or not an executable regular file.
pub fn open(path: &Path) -> Result<Opened, RunError> {
    let err = |cause| RunError::Open {
        path: path.display().to_string(),
        cause,
    };
    let mut file = File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(RunError::NotExecutable(path.display().to_string()));
    }
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let sha256 = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Opened {
        path: path.to_owned(),
        file,
        sha256,
        writable_by_others: meta.uid() != 0 || meta.mode() & 0o022 != 0,
    })
}

/// As whom and how a program runs.
#[derive(Debug)]
pub struct Spec<'a> {
    pub program: &'a Opened,
    /// `argv[0]` as the program sees it.
    pub argv0: String,
    pub args: Vec<String>,
    pub cwd: String,
    pub caller: &'a LocalUser,
    /// Root (`true`) or the caller.
    pub as_root: bool,
    pub term: Option<String>,
    pub lang: Vec<(String, String)>,
    /// The caller's stdin, stdout, stderr.
    pub fds: [OwnedFd; 3],
}

/// Starts the program in a process group of its own.
///
/// # Errors
/// It could not be started.
pub fn spawn(spec: Spec<'_>) -> Result<tokio::process::Child, RunError> {
    let fd = spec.program.file.as_raw_fd();
    let exe = format!("/proc/self/fd/{fd}");
    // A script's interpreter opens the file by that path after the exec:
    // the descriptor must survive it. A binary is loaded by the exec
    // itself, so its descriptor stays close-on-exec.
    let script = is_script(&spec.program.file);
    if script {
        let _ = rustix::io::fcntl_setfd(&spec.program.file, rustix::io::FdFlags::empty());
    }
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg0(&spec.argv0).args(&spec.args).env_clear();
    let (home, user) = if spec.as_root {
        ("/root".to_owned(), "root".to_owned())
    } else {
        (spec.caller.home.clone(), spec.caller.name.clone())
    };
    cmd.env("PATH", SECURE_PATH)
        .env("HOME", home)
        .env("USER", &user)
        .env("LOGNAME", &user)
        .env("JUMPGATE_ELEVATE_USER", &spec.caller.name)
        .env("JUMPGATE_ELEVATE_UID", spec.caller.uid.to_string());
    if let Some(t) = spec.term.as_ref().filter(|t| safe_env_value(t)) {
        cmd.env("TERM", t);
    }
    for (k, v) in &spec.lang {
        if (k == "LANG" || k == "LANGUAGE" || k.starts_with("LC_")) && safe_env_value(v) {
            cmd.env(k, v);
        }
    }
    let cwd = Path::new(&spec.cwd);
    cmd.current_dir(if cwd.is_absolute() && cwd.is_dir() {
        cwd
    } else {
        Path::new("/")
    });
    if !spec.as_root {
        // std drops the supplementary groups with the uid change.
        cmd.uid(spec.caller.uid).gid(spec.caller.gid);
    }
    let [stdin, stdout, stderr] = spec.fds;
    cmd.stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .process_group(0);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    let child = cmd.spawn();
    if script {
        let _ = rustix::io::fcntl_setfd(&spec.program.file, rustix::io::FdFlags::CLOEXEC);
    }
    child.map_err(|cause| RunError::Spawn {
        path: spec.program.path.display().to_string(),
        cause,
    })
}

/// Whether a caller's `TERM`/`LANG`/`LC_*` value may pass to a root
/// program: like sudo's `env_check`, no `/` or `%` (a locale or terminfo
/// name must not become a path to the caller's own files), short, printable.
fn safe_env_value(v: &str) -> bool {
    v.len() <= 128 && !v.contains(['/', '%']) && !v.chars().any(char::is_control)
}

fn is_script(file: &File) -> bool {
    let mut head = [0u8; 2];
    matches!(rustix::io::pread(file, &mut head, 0), Ok(2)) && &head == b"#!"
}

/// The exit code of a finished program: its own, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Sends `signal` (a number) to the process group `pgid`.
pub fn signal_group(pgid: u32, signal: i32) {
    let Some(pid) = rustix::process::Pid::from_raw(pgid as i32) else {
        return;
    };
    let Some(sig) = rustix::process::Signal::from_named_raw(signal) else {
        return;
    };
    let _ = rustix::process::kill_process_group(pid, sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_their_groups_come_from_the_local_files() {
        let etc = tempfile::tempdir().unwrap();
        std::fs::write(
            etc.path().join("passwd"),
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/zsh\n",
        )
        .unwrap();
        std::fs::write(
            etc.path().join("group"),
            "root:x:0:\nalice:x:1000:\nstaff:x:50:bob,alice\nadm:x:4:bob\n",
        )
        .unwrap();
        let a = local_user(etc.path(), 1000, 1000);
        assert_eq!(a.name, "alice");
        assert_eq!(a.home, "/home/alice");
        assert_eq!(a.shell, "/bin/zsh");
        assert_eq!(a.groups, ["alice", "staff"]);
        let unknown = local_user(etc.path(), 4242, 4242);
        assert_eq!(unknown.name, "4242");
        assert!(unknown.groups.is_empty());
    }

    #[test]
    fn caller_locale_and_terminal_values_are_checked_like_sudo() {
        assert!(safe_env_value("en_US.UTF-8") && safe_env_value("xterm-256color"));
        assert!(!safe_env_value("../../tmp/evil") && !safe_env_value("C%n"));
        assert!(!safe_env_value("a\nb") && !safe_env_value(&"x".repeat(200)));
    }

    #[test]
    fn programs_resolve_through_absolute_path_entries_only() {
        let sh = resolve("sh", "relative:/usr/bin:/bin", "/").unwrap();
        assert!(sh.is_absolute());
        assert!(matches!(
            resolve("sh", ".:relative", "/"),
            Err(RunError::NotFound(_))
        ));
        assert!(matches!(
            resolve("./x", "/bin", "not-absolute"),
            Err(RunError::Relative(_))
        ));
        let opened = open(&sh).unwrap();
        assert_eq!(opened.sha256.len(), 64);
    }
}
