//! `jg cp SRC DST`: one side is `ENDPOINT:/abs/path`, the other local.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jumpgate_proto::session::SessionKind;

use super::Ctx;
use crate::errors::Interrupted;
use crate::term;
use crate::transfer::{self, LocalFile, Outcome};

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    Local(PathBuf),
    Remote { endpoint: String, path: String },
}

/// A colon before any `/` makes an argument remote, as with scp; `./a:b`
/// names a local file.
pub(crate) fn parse_location(arg: &str) -> anyhow::Result<Location> {
    let colon = arg.find(':');
    let slash = arg.find('/');
    match colon {
        Some(c) if slash.is_none_or(|s| c < s) => {
            let (endpoint, path) = (&arg[..c], &arg[c + 1..]);
            if endpoint.is_empty() {
                bail!("`{arg}`: missing endpoint name before `:`");
            }
            if !path.starts_with('/') {
                bail!(
                    "`{arg}`: the remote path must be absolute (ENDPOINT:/path); \
                     write ./{arg} for a local file"
                );
            }
            Ok(Location::Remote {
                endpoint: endpoint.to_owned(),
                path: path.to_owned(),
            })
        }
        _ if arg.is_empty() => bail!("empty path"),
        _ => Ok(Location::Local(PathBuf::from(arg))),
    }
}

/// What a `cp` invocation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Copy {
    Upload {
        local: PathBuf,
        endpoint: String,
        remote: String,
    },
    Download {
        endpoint: String,
        remote: String,
        local: PathBuf,
    },
}

pub(crate) fn parse(src: &str, dst: &str) -> anyhow::Result<Copy> {
    match (parse_location(src)?, parse_location(dst)?) {
        (Location::Local(local), Location::Remote { endpoint, path }) => Ok(Copy::Upload {
            local,
            endpoint,
            remote: path,
        }),
        (Location::Remote { endpoint, path }, Location::Local(local)) => Ok(Copy::Download {
            endpoint,
            remote: path,
            local,
        }),
        (Location::Remote { .. }, Location::Remote { .. }) => {
            bail!("both SRC and DST are remote: one side must be a local path")
        }
        (Location::Local(_), Location::Local(_)) => {
            bail!("neither SRC nor DST is remote: write the remote side as ENDPOINT:/path")
        }
    }
}

fn progress_bar(len: u64) -> ProgressBar {
    if !term::stderr_is_tty() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bytes:>10}/{total_bytes:<10} [{bar:30}] {bytes_per_sec:>12} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub(crate) async fn run(ctx: &Ctx, src: &str, dst: &str) -> anyhow::Result<()> {
    // Local mistakes are reported before anything touches the network.
    let op = parse(src, dst)?;
    let started = Instant::now();
    let (verb, outcome) = match &op {
        Copy::Upload {
            local,
            endpoint,
            remote,
        } => {
            let file = LocalFile::open(local).await?;
            let client = ctx.authed_client()?;
            let what = format!("cannot upload to {endpoint}:{remote}");
            let io = client
                .connect(endpoint, SessionKind::Upload)
                .await
                .with_context(|| what.clone())?;
            let bar = progress_bar(file.size());
            let r = interruptible(transfer::upload(io, file, remote, &bar)).await;
            bar.finish_and_clear();
            ("uploaded", r.context(what)?)
        }
        Copy::Download {
            endpoint,
            remote,
            local,
        } => {
            let dest = transfer::download_target(local, remote)?;
            let client = ctx.authed_client()?;
            let what = format!("cannot download {endpoint}:{remote}");
            let io = client
                .connect(endpoint, SessionKind::Download)
                .await
                .with_context(|| what.clone())?;
            let bar = progress_bar(0);
            let r = interruptible(transfer::download(io, remote, &dest, &bar)).await;
            bar.finish_and_clear();
            ("downloaded", r.context(what)?)
        }
    };
    outln!("{}", summary(verb, &op, &outcome, started.elapsed()))?;
    Ok(())
}

/// Runs a transfer until Ctrl-C or SIGTERM. Returning (rather than dying on
/// the signal) drops the transfer, which deletes a partial download.
async fn interruptible<T>(fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    tokio::select! {
        r = fut => r,
        _ = tokio::signal::ctrl_c() => Err(Interrupted.into()),
        _ = term.recv() => Err(Interrupted.into()),
    }
}

fn summary(verb: &str, op: &Copy, o: &Outcome, took: Duration) -> String {
    let (from, to) = match op {
        Copy::Upload {
            local,
            endpoint,
            remote,
        } => (local.display().to_string(), format!("{endpoint}:{remote}")),
        Copy::Download {
            endpoint,
            remote,
            local,
        } => (format!("{endpoint}:{remote}"), local.display().to_string()),
    };
    let secs = took.as_secs_f64();
    let rate = if secs > 0.0 {
        crate::table::human_bytes((o.bytes as f64 / secs) as u64)
    } else {
        "-".to_owned()
    };
    format!(
        "{verb} {} bytes {from} -> {to} in {secs:.2}s ({rate}/s) sha256 {}",
        o.bytes, o.sha256
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(endpoint: &str, path: &str) -> Location {
        Location::Remote {
            endpoint: endpoint.into(),
            path: path.into(),
        }
    }

    #[test]
    fn colon_before_slash_means_remote() {
        assert_eq!(
            parse_location("web-01:/etc/hosts").unwrap(),
            remote("web-01", "/etc/hosts")
        );
        assert_eq!(parse_location("h:/a:b/c").unwrap(), remote("h", "/a:b/c"));
        assert_eq!(
            parse_location("./a:b").unwrap(),
            Location::Local(PathBuf::from("./a:b"))
        );
        assert_eq!(
            parse_location("/tmp/x:y").unwrap(),
            Location::Local(PathBuf::from("/tmp/x:y"))
        );
        assert_eq!(
            parse_location("report.txt").unwrap(),
            Location::Local(PathBuf::from("report.txt"))
        );
    }

    #[test]
    fn bad_remote_specs_are_errors() {
        assert!(parse_location(":/etc/hosts").is_err());
        assert!(parse_location("web-01:").is_err());
        assert!(parse_location("web-01:relative/path").is_err());
        assert!(parse_location("").is_err());
    }

    #[test]
    fn exactly_one_side_is_remote() {
        assert_eq!(
            parse("a.txt", "web:/tmp/").unwrap(),
            Copy::Upload {
                local: "a.txt".into(),
                endpoint: "web".into(),
                remote: "/tmp/".into()
            }
        );
        assert_eq!(
            parse("web:/var/log/syslog", ".").unwrap(),
            Copy::Download {
                endpoint: "web".into(),
                remote: "/var/log/syslog".into(),
                local: ".".into()
            }
        );
        let both = parse("a:/x", "b:/y").unwrap_err().to_string();
        assert!(both.contains("both"), "{both}");
        let neither = parse("x", "y").unwrap_err().to_string();
        assert!(neither.contains("neither"), "{neither}");
    }

    #[test]
    fn summary_names_bytes_and_hash() {
        let op = parse("a.txt", "web:/tmp/a.txt").unwrap();
        let o = Outcome {
            bytes: 2048,
            sha256: "ab".repeat(32),
        };
        let line = summary("uploaded", &op, &o, Duration::from_secs(2));
        assert_eq!(
            line,
            format!(
                "uploaded 2048 bytes a.txt -> web:/tmp/a.txt in 2.00s (1.0 KiB/s) sha256 {}",
                "ab".repeat(32)
            )
        );
    }
}
