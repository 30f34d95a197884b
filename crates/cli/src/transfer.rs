//! File transfers over an open session stream, independent of how the stream
//! was obtained (tests play the agent over `tokio::io::duplex`).
//!
//! Both directions stream: memory use is a few chunks whatever the file size.

use std::fs::Permissions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::BytesMut;
use indicatif::ProgressBar;
use jumpgate_net::digest::Sha256;
use jumpgate_net::session::MsgStream;
use jumpgate_proto::session::{CHUNK, FileEnd, SessionMsg, SessionRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

use crate::session_io::{expect, open, recv};

/// File bytes read (upload) or buffered (download) per disk operation: fewer,
/// larger blocking calls than one per `CHUNK`.
const DISK_BATCH: usize = 8 * CHUNK;
/// How long to wait for the agent's side of the story once the exchange has
/// gone wrong or ended early.
const ANSWER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a finished transfer moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

/// A local file opened for upload, checked before any connection is made.
#[derive(Debug)]
pub(crate) struct LocalFile {
    file: tokio::fs::File,
    size: u64,
    mode: u32,
    name: Option<String>,
}

impl LocalFile {
    pub(crate) async fn open(path: &Path) -> anyhow::Result<Self> {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        let meta = file
            .metadata()
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            bail!(
                "{} is a directory: only files can be copied",
                path.display()
            );
        }
        if !meta.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        Ok(Self {
            file,
            size: meta.len(),
            // Permission bits only: setuid/setgid/sticky do not travel.
            mode: meta.permissions().mode() & 0o777,
            name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        })
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

/// Sends `src` to `remote_path` on the agent at the other end of `io`.
/// Succeeds only if the agent reports the same SHA-256 as computed here.
pub(crate) async fn upload<S>(
    io: S,
    mut src: LocalFile,
    remote_path: &str,
    progress: &ProgressBar,
) -> anyhow::Result<Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = MsgStream::new(io);
    open(
        &mut io,
        SessionRequest::Upload {
            path: remote_path.to_owned(),
            mode: src.mode,
            size: src.size,
            file_name: src.name.clone(),
        },
    )
    .await?;
    let (mut rd, mut wr) = io.split();

    let declared = src.size;
    // Set when sending (not reading the local file) failed: only then is the
    // agent likely to have said why.
    let network_failed = std::cell::Cell::new(false);
    let send = async {
        let mut hash = Sha256::new();
        let mut total = 0u64;
        let mut data = BytesMut::with_capacity(DISK_BATCH);
        loop {
            data.clear();
            // Reclaims the allocation the previous batch's messages shared.
            data.reserve(DISK_BATCH);
            let n = (&mut src.file)
                .take(DISK_BATCH as u64)
                .read_buf(&mut data)
                .await
                .context("reading the local file")?;
            if n == 0 {
                break;
            }
            hash.update(&data);
            total += n as u64;
            if total > declared {
                bail!("the local file grew while it was being copied");
            }
            let mut chunks = data.split().freeze();
            while !chunks.is_empty() {
                let piece = chunks.split_to(chunks.len().min(CHUNK));
                wr.queue(&SessionMsg::FileData(piece));
            }
            if let Err(e) = wr.flush().await {
                network_failed.set(true);
                return Err(anyhow::Error::new(e).context("sending file data"));
            }
            progress.inc(n as u64);
        }
        if total != declared {
            bail!("the local file shrank while it was being copied");
        }
        let sha256 = hash.hex();
        let end = SessionMsg::FileEnd(FileEnd {
            size: total,
            sha256: sha256.clone(),
        });
        if let Err(e) = wr.write_msg(&end).await {
            network_failed.set(true);
            return Err(anyhow::Error::new(e).context("sending the end of the file"));
        }
        anyhow::Ok(Outcome {
            bytes: total,
            sha256,
        })
    };
    tokio::pin!(send);

    // The agent may give up midway (disk full...): listen while sending, so
    // its reason is reported rather than a bare broken pipe.
    let early = tokio::select! {
        biased;
        r = &mut send => Ok(r),
        m = recv(&mut rd) => Err(m),
    };
    let (sent, answer) = match early {
        Ok(Ok(sent)) => {
            let answer = expect(&mut rd)
                .await
                .context("waiting for the endpoint's verdict")?;
            (sent, answer)
        }
        Ok(Err(e)) => {
            // A write failure is usually the other end hanging up: prefer
            // its words (the agent's refusal, or the gateway's reason for
            // ending the session, e.g. access revoked).
            // (`early_answer` turns both into their errors.)
            if network_failed.get()
                && let Ok(Ok(msg @ Some(_))) =
                    tokio::time::timeout(ANSWER_GRACE, recv(&mut rd)).await
            {
                early_answer(msg)?;
            }
            return Err(e);
        }
        Err(m) => {
            let answer = early_answer(m?)?;
            // A positive answer can only follow our `FileEnd`: the send is
            // finishing, or the agent is broken.
            let sent = tokio::time::timeout(ANSWER_GRACE, &mut send)
                .await
                .map_err(|_| {
                    anyhow::anyhow!("the endpoint answered before the whole file was sent")
                })??;
            (sent, answer)
        }
    };
    match answer {
        SessionMsg::FileResult(r) if !r.ok => {
            bail!("the endpoint rejected the upload: {}", r.message)
        }
        SessionMsg::FileResult(r) if !r.sha256.eq_ignore_ascii_case(&sent.sha256) => bail!(
            "hash mismatch: sent sha256 {}, the endpoint wrote {}",
            sent.sha256,
            if r.sha256.is_empty() {
                "(none)"
            } else {
                &r.sha256
            }
        ),
        SessionMsg::FileResult(_) => Ok(sent),
        other => bail!(
            "unexpected {} message instead of the upload result",
            other.name()
        ),
    }
}

/// A message that arrived while the file was still being sent.
fn early_answer(msg: Option<SessionMsg>) -> anyhow::Result<SessionMsg> {
    match msg {
        Some(SessionMsg::FileResult(r)) if !r.ok => {
            bail!("the endpoint rejected the upload: {}", r.message)
        }
        Some(SessionMsg::Closed { reason }) => Err(crate::errors::GatewayClosed { reason }.into()),
        Some(m) => Ok(m),
        None => bail!("the connection to the gateway was lost during the upload"),
    }
}

/// A temporary file that is deleted unless [`TempFile::persist`] succeeds:
/// every failure path, cancellation included, leaves nothing behind.
#[derive(Debug)]
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn persist(mut self, to: &Path) -> std::io::Result<()> {
        if let Some(p) = &self.path {
            std::fs::rename(p, to)?;
        }
        self.path = None;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Where a download of `remote_path` to `dst` lands: `dst` itself, or
/// `dst/basename` when `dst` is an existing directory.
pub(crate) fn download_target(dst: &Path, remote_path: &str) -> anyhow::Result<PathBuf> {
    if dst.is_dir() {
        let base = remote_path.rsplit('/').next().unwrap_or_default();
        if base.is_empty() || base == "." || base == ".." {
            bail!("remote path {remote_path} does not name a file");
        }
        return Ok(dst.join(base));
    }
    if dst.as_os_str().to_string_lossy().ends_with('/') {
        bail!("no such directory: {}", dst.display());
    }
    // The download is renamed into place: that would replace a device or a
    // pipe (say /dev/null) with a regular file. Only regular files are
    // replaced, as the agent does for uploads.
    if let Ok(m) = std::fs::metadata(dst)
        && !m.is_file()
    {
        bail!(
            "{} is not a regular file; jg cp writes regular files (to discard or pipe a \
             remote file, use `jg shell ENDPOINT -- cat PATH`)",
            dst.display()
        );
    }
    Ok(dst.to_path_buf())
}

/// Receives `remote_path` from the agent at the other end of `io` into
/// `dest` (a file path, see [`download_target`]). The file appears only once
/// complete and verified.
pub(crate) async fn download<S>(
    io: S,
    remote_path: &str,
    dest: &Path,
    progress: &ProgressBar,
) -> anyhow::Result<Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = MsgStream::new(io);
    let accepted = open(
        &mut io,
        SessionRequest::Download {
            path: remote_path.to_owned(),
        },
    )
    .await?;
    if let Some(size) = accepted.size {
        progress.set_length(size);
    }

    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".to_owned());
    let tmp_path = dir.join(format!(".{base}.jg-{}.part", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp_path)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let tmp = TempFile {
        path: Some(tmp_path.clone()),
    };
    let mut out = BufWriter::with_capacity(DISK_BATCH, tokio::fs::File::from_std(file));

    let mut hash = Sha256::new();
    let mut total = 0u64;
    let end = loop {
        match expect(&mut io).await.context("receiving the file")? {
            SessionMsg::FileData(data) => {
                total += data.len() as u64;
                if accepted.size.is_some_and(|s| total > s) {
                    bail!(
                        "the endpoint sent more than the announced {} bytes",
                        accepted.size.unwrap_or_default()
                    );
                }
                hash.update(&data);
                out.write_all(&data)
                    .await
                    .with_context(|| format!("writing {}", tmp_path.display()))?;
                progress.inc(data.len() as u64);
            }
            SessionMsg::FileEnd(end) => break end,
            // The endpoint could not finish reading the file.
            SessionMsg::FileResult(r) if !r.ok => {
                bail!("the endpoint could not send the file: {}", r.message)
            }
            SessionMsg::Closed { reason } => {
                return Err(crate::errors::GatewayClosed { reason }.into());
            }
            other => bail!("unexpected {} message during the download", other.name()),
        }
    };
    let sha256 = hash.hex();
    if end.size != total || accepted.size.is_some_and(|s| s != total) {
        bail!(
            "size mismatch: received {total} bytes, the endpoint announced {}",
            accepted.size.unwrap_or(end.size)
        );
    }
    if !end.sha256.eq_ignore_ascii_case(&sha256) {
        bail!(
            "hash mismatch: the endpoint sent sha256 {}, received data hashes to {sha256}",
            end.sha256
        );
    }
    out.flush()
        .await
        .with_context(|| format!("writing {}", tmp_path.display()))?;
    let file = out.into_inner();
    let mode = accepted.mode.map_or(0o644, |m| m & 0o777);
    file.set_permissions(Permissions::from_mode(mode))
        .await
        .with_context(|| format!("setting the mode of {}", tmp_path.display()))?;
    file.sync_all()
        .await
        .with_context(|| format!("writing {}", tmp_path.display()))?;
    drop(file);
    tmp.persist(dest)
        .with_context(|| format!("cannot create {}", dest.display()))?;
    Ok(Outcome {
        bytes: total,
        sha256,
    })
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
