//! Running dpkg and dpkg-query, on the system (`--package-root /`) or on a
//! private root (`--root DIR`, its database under `DIR/var/lib/dpkg`):
//! tests and benchmarks use a private root so that they never change this
//! machine's dpkg database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jumpgate_proto::packages::{InstalledPackage, bound_output};
use tokio::process::Command;

/// Longest an installer may run.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// What a command printed and whether it succeeded.
#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    /// stdout then stderr, bounded.
    pub output: String,
}

/// dpkg on one root.
#[derive(Clone, Debug)]
pub struct Dpkg {
    root: PathBuf,
}

/// An installed package's (name, architecture) → version.
pub type Installed = BTreeMap<(String, String), String>;

impl Dpkg {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn is_system(&self) -> bool {
        self.root == Path::new("/")
    }

    /// dpkg's database directory.
    pub fn admindir(&self) -> PathBuf {
        self.root.join("var/lib/dpkg")
    }

    /// The status file whose changes mean the inventory changed.
    pub fn status_file(&self) -> PathBuf {
        self.admindir().join("status")
    }

    /// Makes an empty database under a private root (nothing to do for `/`).
    ///
    /// # Errors
    /// The directories or files cannot be made.
    pub fn prepare(&self) -> std::io::Result<()> {
        if self.is_system() {
            return Ok(());
        }
        let admin = self.admindir();
        for d in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(admin.join(d))?;
        }
        for f in ["status", "available"] {
            let p = admin.join(f);
            if !p.exists() {
                std::fs::write(p, b"")?;
            }
        }
        Ok(())
    }

    fn dpkg(&self) -> Command {
        let mut c = Command::new("dpkg");
        if !self.is_system() {
            c.arg(format!("--root={}", self.root.display()));
        }
        c.env("LANG", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        c
    }

    async fn run(mut cmd: Command) -> Ran {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match tokio::time::timeout(INSTALL_TIMEOUT, cmd.output()).await {
            Ok(Ok(out)) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                let err = String::from_utf8_lossy(&out.stderr);
                if !err.is_empty() {
                    if !text.is_empty() && !text.ends_with('\n') {
                        text.push('\n');
                    }
                    text.push_str(&err);
                }
                Ran {
                    ok: out.status.success(),
                    output: bound_output(&text),
                }
            }
            Ok(Err(e)) => Ran {
                ok: false,
                output: format!("cannot run the installer: {e}"),
            },
            Err(_) => Ran {
                ok: false,
                output: format!("the installer ran longer than {INSTALL_TIMEOUT:?}; stopped"),
            },
        }
    }

    /// Installs a local `.deb`: `apt-get install ./FILE` on the system
    /// when apt is there (it brings dependencies from the configured
    /// repositories), else `dpkg -i FILE`.
    pub async fn install(&self, file: &Path) -> Ran {
        if self.is_system() && Path::new("/usr/bin/apt-get").exists() {
            let mut c = Command::new("apt-get");
            c.args(["install", "-y", "--no-install-recommends"])
                .arg(file)
                .env("LANG", "C.UTF-8")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null());
            return Self::run(c).await;
        }
        let mut c = self.dpkg();
        c.arg("-i").arg(file);
        Self::run(c).await
    }

    /// `dpkg -r NAME`.
    pub async fn remove(&self, name: &str) -> Ran {
        let mut c = self.dpkg();
        c.args(["-r", "--", name]);
        Self::run(c).await
    }

    /// This machine's dpkg architecture (`amd64`).
    pub async fn architecture(&self) -> Option<String> {
        let out = Command::new("dpkg")
            .arg("--print-architecture")
            .stdin(Stdio::null())
            .output()
            .await
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Every installed package (`dpkg-query -W`); packages only unpacked
    /// or half-installed are not installed.
    ///
    /// # Errors
    /// dpkg-query cannot run or failed.
    pub async fn installed(&self) -> Result<Installed, String> {
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", self.admindir().display()))
            .args([
                "-W",
                "-f=${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Abbrev}\\n",
            ])
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run dpkg-query: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "dpkg-query failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(parse_query(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The installed version of `name` (any architecture).
    pub async fn version_of(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self
            .installed()
            .await?
            .into_iter()
            .find(|((n, _), _)| n == name)
            .map(|(_, v)| v))
    }
}

/// Lines of `PACKAGE\tARCH\tVERSION\tSTATUS-ABBREV`: the installed ones
/// (the abbreviation's second letter is the state, `i` = installed).
pub fn parse_query(text: &str) -> Installed {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (name, arch, version, status) = (f.next()?, f.next()?, f.next()?, f.next()?);
            (status.as_bytes().get(1) == Some(&b'i') && !name.is_empty())
                .then(|| ((name.to_owned(), arch.to_owned()), version.to_owned()))
        })
        .collect()
}

/// The inventory as the wire carries it.
pub fn as_list(m: &Installed) -> Vec<InstalledPackage> {
    m.iter()
        .map(|((name, architecture), version)| InstalledPackage {
            name: name.clone(),
            version: version.clone(),
            architecture: architecture.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_installed_packages_are_listed() {
        let m = parse_query(
            "libc6\tamd64\t2.36-9+deb12u4\tii \njg-x\tall\t1.0\tiU \nold\tall\t0.1\trc \nheld\tamd64\t3\thi \n",
        );
        let names: Vec<&str> = m.keys().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["held", "libc6"]);
        assert_eq!(m[&("libc6".into(), "amd64".into())], "2.36-9+deb12u4");
    }
}
