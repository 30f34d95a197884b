//! `jumpgate agent install`: makes this machine an enrolled endpoint for
//! good (attended support's "pin as unattended", or by hand).
//!
//! 1. Checks first, changing nothing: root, systemd (unless
//!    `--no-systemd`), no agent installed already.
//! 2. Copies the running program, without a download's trailer (its
//!    session ticket has nothing to do on an endpoint), to
//!    `/usr/local/lib/jumpgate/jumpgate` (mode 0755).
//! 3. Enrolls with the one-time token (the agent's own enrollment: the
//!    identity and key land in `/var/lib/jumpgate-agent`, mode 0700).
//! 4. Writes `/etc/systemd/system/jumpgate-agent.service` and runs
//!    `systemctl enable --now jumpgate-agent`.
//!
//! Every path is under `root` (`/`, or a directory for tests). A failure
//! removes what this run created, so nothing is left half-installed; the
//! one thing that cannot be taken back here is an enrollment the gateway
//! already accepted when the service then fails to start (the error says
//! which endpoint to revoke).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jumpgate_net::dial::ServerUrl;
use jumpgate_net::tls::Fingerprint;
use jumpgate_proto::assist::Trailer;

use crate::state::StateDir;
use crate::{AgentError, AgentOptions};

/// Where the program is installed, under the root.
pub const BINARY: &str = "usr/local/lib/jumpgate/jumpgate";
/// The agent's state directory, under the root.
pub const STATE_DIR: &str = "var/lib/jumpgate-agent";
/// The systemd unit, under the root.
pub const UNIT: &str = "etc/systemd/system/jumpgate-agent.service";
/// The systemd service's name.
pub const SERVICE: &str = "jumpgate-agent";

/// What to install.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    pub server: ServerUrl,
    pub ca_fingerprint: Fingerprint,
    pub enroll_token: String,
    /// The endpoint's name [default: the host name].
    pub name: Option<String>,
    /// Where the file system starts (`/`; a directory in tests).
    pub root: PathBuf,
    /// Write and start the systemd service.
    pub systemd: bool,
    /// The program to copy (the running one: `/proc/self/exe`).
    pub program: PathBuf,
}

impl InstallOptions {
    /// Installing this program into `/` with systemd.
    pub fn new(server: ServerUrl, ca_fingerprint: Fingerprint, enroll_token: String) -> Self {
        Self {
            server,
            ca_fingerprint,
            enroll_token,
            name: None,
            root: PathBuf::from("/"),
            systemd: true,
            program: PathBuf::from("/proc/self/exe"),
        }
    }
}

/// What was installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub endpoint: String,
    pub group: String,
    pub binary: PathBuf,
    pub state_dir: PathBuf,
    /// The service was enabled and started.
    pub started: bool,
}

/// Why installing failed (nothing of this run is left on the machine).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Not running as root.
    #[error("installing the agent needs root: run it with sudo (or pkexec)")]
    NotRoot,
    /// systemd is not running (or `systemctl` is missing).
    #[error(
        "this machine does not run systemd ({0}): the agent cannot be installed as a service; \
         run `jumpgate agent` from your own service manager instead"
    )]
    NoSystemd(String),
    /// An agent is installed already.
    #[error("an agent is installed on this machine already ({0}); remove it first")]
    AlreadyInstalled(String),
    /// This program could not be read.
    #[error("reading this program {path}: {cause}")]
    Program { path: String, cause: std::io::Error },
    /// Writing a file or directory failed.
    #[error("writing {path}: {cause}")]
    Write { path: String, cause: std::io::Error },
    /// The gateway refused the enrollment (a bad, used or expired token…).
    #[error("{0}")]
    Enroll(AgentError),
    /// `systemctl` failed; the endpoint was enrolled already.
    #[error(
        "systemctl {command} failed: {message}; the endpoint `{endpoint}` was enrolled at the \
         gateway but is not installed here: an administrator should revoke it"
    )]
    Systemctl {
        command: String,
        message: String,
        endpoint: String,
    },
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |cause| InstallError::Write {
        path: path.display().to_string(),
        cause,
    }
}

/// What this run created, removed again unless [`Undo::keep`] is called.
#[derive(Debug, Default)]
struct Undo {
    /// Files and directories, in the order made.
    made: Vec<(PathBuf, bool)>,
    kept: bool,
}

impl Undo {
    /// Creates `dir` and its missing parents, remembering each.
    fn dirs(&mut self, dir: &Path, mode: u32) -> Result<(), InstallError> {
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(d) = at {
            if d.exists() {
                break;
            }
            missing.push(d.to_owned());
            at = d.parent();
        }
        for d in missing.into_iter().rev() {
            fs::create_dir(&d).map_err(write_err(&d))?;
            self.made.push((d.clone(), true));
            fs::set_permissions(&d, fs::Permissions::from_mode(mode)).map_err(write_err(&d))?;
        }
        Ok(())
    }

    fn file(&mut self, path: &Path) {
        self.made.push((path.to_owned(), false));
    }

    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for (path, dir) in self.made.iter().rev() {
            let r = if *dir {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
            if let Err(e) = r
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), "could not remove: {e}");
            }
        }
    }
}

/// The length of `program` without a download's trailer.
fn program_len(f: &mut fs::File) -> std::io::Result<u64> {
    let len = f.metadata()?.len();
    let tail_len = len.min((Trailer::MAX_JSON + 12) as u64);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    Read::by_ref(f).take(tail_len).read_to_end(&mut tail)?;
    f.seek(SeekFrom::Start(0))?;
    match Trailer::parse(&tail) {
        Ok(Some(_)) => {
            // `JSON ‖ u32 length ‖ magic`, checked by the parse.
            let n = tail.len();
            let json = u32::from_be_bytes([tail[n - 12], tail[n - 11], tail[n - 10], tail[n - 9]]);
            Ok(len - u64::from(json) - 12)
        }
        Ok(None) => Ok(len),
        Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
    }
}

/// Copies `from` (without its trailer) to `to`, mode 0755, through a
/// temporary file renamed into place.
fn copy_program(from: &Path, to: &Path, undo: &mut Undo) -> Result<(), InstallError> {
    let read_err = |cause| InstallError::Program {
        path: from.display().to_string(),
        cause,
    };
    let mut src = fs::File::open(from).map_err(read_err)?;
    let len = program_len(&mut src).map_err(read_err)?;
    let tmp = to.with_extension("installing");
    let _ = fs::remove_file(&tmp);
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&tmp)
        .map_err(write_err(&tmp))?;
    undo.file(&tmp);
    let copied = std::io::copy(&mut src.take(len), &mut out).map_err(write_err(&tmp))?;
    if copied != len {
        return Err(InstallError::Program {
            path: from.display().to_string(),
            cause: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "shorter than it was"),
        });
    }
    out.flush().map_err(write_err(&tmp))?;
    out.sync_all().map_err(write_err(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(write_err(&tmp))?;
    fs::rename(&tmp, to).map_err(write_err(to))?;
    undo.file(to);
    Ok(())
}

/// The systemd unit of the installed agent (paths as on the machine).
pub fn unit_text() -> String {
    format!(
        "[Unit]\n\
         Description=Jumpgate agent (remote access to this machine)\n\
         Documentation=https://github.com/jumpgate/jumpgate\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart=/{BINARY} agent --state-dir /{STATE_DIR}\n\
         Restart=always\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// Runs `systemctl args`; its error output when it fails.
async fn systemctl(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("systemctl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(if err.is_empty() {
            out.status.to_string()
        } else {
            err
        })
    }
}

/// Whether systemd manages this machine (`sd_booted`: `/run/systemd/system`)
/// and `systemctl` runs.
async fn check_systemd() -> Result<(), InstallError> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Err(InstallError::NoSystemd(
            "/run/systemd/system does not exist".into(),
        ));
    }
    systemctl(&["--version"])
        .await
        .map_err(InstallError::NoSystemd)
}

/// Installs the agent (see the module's text).
///
/// # Errors
/// See [`InstallError`]; on every error what this run created is removed.
pub async fn install(opts: &InstallOptions) -> Result<Installed, InstallError> {
    let is_root = rustix::process::geteuid().is_root();
    if !is_root && (opts.root == Path::new("/") || opts.systemd) {
        return Err(InstallError::NotRoot);
    }
    if opts.systemd {
        check_systemd().await?;
    }
    let binary = opts.root.join(BINARY);
    let state_dir = opts.root.join(STATE_DIR);
    let unit = opts.root.join(UNIT);
    for p in [&unit, &binary, &state_dir.join("agent.json")] {
        if p.exists() {
            return Err(InstallError::AlreadyInstalled(p.display().to_string()));
        }
    }
    let mut undo = Undo::default();
    if let Some(dir) = binary.parent() {
        undo.dirs(dir, 0o755)?;
    }
    copy_program(&opts.program, &binary, &mut undo)?;

    undo.dirs(&state_dir, 0o700)?;
    let dir = StateDir::open(&state_dir).map_err(InstallError::Enroll)?;
    let mut agent = AgentOptions::new(state_dir.clone());
    agent.server = Some(opts.server.clone());
    agent.ca_fingerprint = Some(opts.ca_fingerprint);
    agent.enroll_token = Some(opts.enroll_token.clone());
    agent.name.clone_from(&opts.name);
    let (identity, _key) = crate::enroll(&agent, &dir)
        .await
        .map_err(InstallError::Enroll)?;

    if let Some(d) = unit.parent() {
        undo.dirs(d, 0o755)?;
    }
    undo.file(&unit);
    jumpgate_net::fs::write_atomic(&unit, unit_text().as_bytes(), 0o644)
        .map_err(write_err(&unit))?;
    if opts.systemd {
        let steps: [&[&str]; 2] = [&["daemon-reload"], &["enable", "--now", SERVICE]];
        for args in steps {
            if let Err(message) = systemctl(args).await {
                let _ = systemctl(&["disable", "--now", SERVICE]).await;
                drop(undo);
                let _ = systemctl(&["daemon-reload"]).await;
                return Err(InstallError::Systemctl {
                    command: args.join(" "),
                    message,
                    endpoint: identity.endpoint,
                });
            }
        }
    }
    undo.keep();
    tracing::info!(endpoint = %identity.endpoint, group = %identity.group, "agent installed");
    Ok(Installed {
        endpoint: identity.endpoint,
        group: identity.group,
        binary,
        state_dir,
        started: opts.systemd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_has_no_trailer_and_a_plain_program_is_copied_whole() {
        let dir = tempfile::tempdir().unwrap();
        let t = Trailer {
            v: 1,
            url: "https://support.example.com".into(),
            fingerprint: "00".repeat(32),
            ticket: "jga_secret".into(),
            site: "Example".into(),
            support_id: "sup_1".into(),
            expires_at_ms: 0,
        };
        let program: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut downloaded = program.clone();
        downloaded.extend(t.encode());
        for (name, bytes) in [("downloaded", &downloaded), ("plain", &program)] {
            let from = dir.path().join(name);
            fs::write(&from, bytes).unwrap();
            let to = dir.path().join(format!("{name}.installed"));
            let mut undo = Undo::default();
            copy_program(&from, &to, &mut undo).unwrap();
            undo.keep();
            assert_eq!(fs::read(&to).unwrap(), program, "{name}");
            let mode = fs::metadata(&to).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755);
            assert!(!to.with_extension("installing").exists());
        }
    }

    #[test]
    fn an_undo_removes_what_it_made_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let before = dir.path().join("etc");
        fs::create_dir(&before).unwrap();
        fs::write(before.join("keep"), b"x").unwrap();
        {
            let mut undo = Undo::default();
            undo.dirs(&dir.path().join("etc/systemd/system"), 0o755)
                .unwrap();
            let f = dir.path().join("etc/systemd/system/x.service");
            fs::write(&f, b"[Unit]\n").unwrap();
            undo.file(&f);
        }
        assert!(!dir.path().join("etc/systemd").exists());
        assert!(before.join("keep").exists());
    }

    #[test]
    fn the_unit_runs_the_installed_agent_with_its_state() {
        let u = unit_text();
        assert!(u.contains(
            "ExecStart=/usr/local/lib/jumpgate/jumpgate agent --state-dir /var/lib/jumpgate-agent\n"
        ));
        assert!(u.contains("WantedBy=multi-user.target"));
    }
}
