//! `upload` and `download` sessions.
//!
//! An upload is written to a temporary file in the destination's directory
//! (created before the session is accepted, so a missing directory or a
//! permission problem is refused before any data flows), hashed as it
//! streams, and renamed over the destination only once its size and
//! SHA-256 match what the technician announced: the destination never holds
//! a partial file, and a failed upload leaves nothing behind.

use std::ffi::{OsStr, OsString};
use std::fs::{Metadata, Permissions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use bytes::BytesMut;
use jumpgate_proto::session::{
    Accepted, CHUNK, FileEnd, FileResult, RefusalCode, SessionKind, SessionMsg,
};
use tokio::fs::{self, File, OpenOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

use super::wire::{self, MsgStream};
use super::{SessionContext, SessionError, SessionSummary, refusal_code};
use jumpgate_net::digest::hex;

/// Bytes of the destination's name kept in its temporary file's name, so
/// that the decorated name stays within NAME_MAX (255).
const TEMP_NAME_KEEP: usize = 200;
/// Permission bits an upload may set and a download reports.
const PERMISSION_BITS: u32 = 0o7777;

type Refusal = (RefusalCode, String);

pub(super) async fn upload<R, W>(
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    path: &str,
    mode: u32,
    size: u64,
    file_name: Option<&str>,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let dest = match destination(path, file_name).await {
        Ok(dest) => dest,
        Err((code, message)) => {
            return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
        }
    };
    debug!(path = %dest.path.display(), "upload destination");
    let mut part = match PartFile::create(&dest.dir, &dest.name).await {
        Ok(part) => part,
        Err(e) => {
            let message = format!("cannot write in {}: {e}", dest.dir.display());
            return Err(super::refuse(&mut rx, &mut tx, ctx, refusal_code(&e), message).await);
        }
    };
    if let Some(available) = available_space(&part.file)
        && available < size
    {
        drop(part);
        let message = format!(
            "not enough space in {}: {size} bytes needed, {available} available",
            dest.dir.display()
        );
        return Err(super::refuse(&mut rx, &mut tx, ctx, RefusalCode::Failed, message).await);
    }
    tx.write_msg(&SessionMsg::Accepted(Accepted::default()))
        .await?;

    let mut summary = SessionSummary::new(SessionKind::Upload);
    let mut hasher = digest::Context::new(&digest::SHA256);
    let mut received = 0u64;
    let end = loop {
        match rx.read_msg().await? {
            Some(SessionMsg::FileData(data)) => {
                summary.bytes_in += data.len() as u64;
                received += data.len() as u64;
                hasher.update(&data);
                if let Err(e) = part.file.write_all(&data).await {
                    drop(part);
                    let message = format!("writing {}: {e}", dest.path.display());
                    return Err(abandon(&mut rx, &mut tx, ctx, &mut summary, message).await);
                }
            }
            Some(SessionMsg::FileEnd(end)) => break end,
            Some(SessionMsg::Closed { reason }) => return Err(super::closed_by_gateway(reason)),
            Some(other) => {
                drop(part);
                let got = other.name();
                let result = FileResult {
                    ok: false,
                    sha256: String::new(),
                    message: format!("unexpected {got} message during an upload"),
                };
                let _ = tx.write_msg(&SessionMsg::FileResult(result)).await;
                return Err(SessionError::Unexpected {
                    got,
                    during: "during an upload",
                });
            }
            None => return Err(SessionError::Truncated("before the end of the upload")),
        }
    };

    let sha256 = hex(hasher.finish().as_ref());
    let verdict = if end.size != received {
        drop(part);
        Err(format!(
            "size mismatch: {} bytes announced, {received} received",
            end.size
        ))
    } else if !end.sha256.eq_ignore_ascii_case(&sha256) {
        drop(part);
        Err(format!(
            "SHA-256 mismatch: {} announced, {sha256} received",
            end.sha256
        ))
    } else {
        commit(part, &dest, mode)
            .await
            .map_err(|e| format!("saving {}: {e}", dest.path.display()))
    };
    let result = FileResult {
        ok: verdict.is_ok(),
        sha256,
        message: verdict.as_ref().err().cloned().unwrap_or_default(),
    };
    tx.write_msg(&SessionMsg::FileResult(result)).await?;
    wire::finish(&mut rx, &mut tx, ctx.linger).await;
    verdict.map(|()| summary).map_err(SessionError::Upload)
}

/// Ends an upload that failed mid-transfer: the technician learns at once,
/// and what it still sends up to its `FileEnd` is read and dropped so that
/// the stream ends cleanly.
async fn abandon<R, W>(
    rx: &mut MsgStream<R>,
    tx: &mut MsgStream<W>,
    ctx: &SessionContext,
    summary: &mut SessionSummary,
    message: String,
) -> SessionError
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    warn!(message, "upload failed");
    let result = FileResult {
        ok: false,
        sha256: String::new(),
        message: message.clone(),
    };
    if tx.write_msg(&SessionMsg::FileResult(result)).await.is_ok() {
        while let Ok(Some(SessionMsg::FileData(data))) = rx.read_msg().await {
            summary.bytes_in += data.len() as u64;
        }
        wire::finish(rx, tx, ctx.linger).await;
    }
    SessionError::Upload(message)
}

/// Where an upload goes.
#[derive(Debug)]
struct Destination {
    path: PathBuf,
    dir: PathBuf,
    name: OsString,
    /// The file being replaced, if any.
    existing: Option<Metadata>,
}

async fn destination(path: &str, file_name: Option<&str>) -> Result<Destination, Refusal> {
    let requested = absolute(path)?;
    let target = match fs::metadata(requested).await {
        Ok(m) if m.is_dir() => requested.join(plain_name(file_name)?),
        Ok(_) => requested.to_path_buf(),
        Err(e) if e.kind() == io::ErrorKind::NotFound && path.ends_with('/') => {
            return Err((RefusalCode::NotFound, format!("{path}: no such directory")));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => requested.to_path_buf(),
        Err(e) => return Err((refusal_code(&e), format!("{path}: {e}"))),
    };
    // Renaming over a symlink would replace the link itself: what it points
    // to is replaced instead, as writing through it would.
    let target = match fs::symlink_metadata(&target).await {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(&target)
            .await
            .map_err(|e| (refusal_code(&e), format!("{}: {e}", target.display())))?,
        _ => target,
    };
    let existing = match fs::metadata(&target).await {
        Ok(m) if m.is_dir() => {
            let message = format!("{}: is a directory", target.display());
            return Err((RefusalCode::InvalidRequest, message));
        }
        Ok(m) if !m.is_file() => {
            let message = format!("{}: not a regular file", target.display());
            return Err((RefusalCode::InvalidRequest, message));
        }
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err((refusal_code(&e), format!("{}: {e}", target.display()))),
    };
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err((
            RefusalCode::InvalidRequest,
            format!("{path}: not a file path"),
        ));
    };
    Ok(Destination {
        dir: dir.to_path_buf(),
        name: name.to_os_string(),
        path: target,
        existing,
    })
}

fn absolute(path: &str) -> Result<&Path, Refusal> {
    let p = Path::new(path);
    if path.contains('\0') {
        return Err((
            RefusalCode::InvalidRequest,
            "path contains a NUL byte".into(),
        ));
    }
    if !p.is_absolute() {
        let message = format!("path must be absolute: {path:?}");
        return Err((RefusalCode::InvalidRequest, message));
    }
    Ok(p)
}

/// The name of a file uploaded into a directory: one plain component.
fn plain_name(name: Option<&str>) -> Result<&str, Refusal> {
    match name {
        None | Some("") => Err((
            RefusalCode::InvalidRequest,
            "the destination is a directory and no file name was given".into(),
        )),
        Some(n) if n == "." || n == ".." || n.contains(['/', '\0']) => Err((
            RefusalCode::InvalidRequest,
            format!("invalid file name: {n:?}"),
        )),
        Some(n) => Ok(n),
    }
}

/// Bytes the agent may still write on the file system holding `file`.
fn available_space(file: &File) -> Option<u64> {
    let st = rustix::fs::fstatvfs(file).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Sets the uploaded file's mode and owner, makes it durable, and renames
/// it over the destination.
async fn commit(mut part: PartFile, dest: &Destination, mode: u32) -> io::Result<()> {
    // Surfaces the error of a write still in flight.
    part.file.flush().await?;
    if let Some(old) = &dest.existing {
        // A replaced file keeps its owner, as writing into it would have. Only
        // root may give files away; for anyone else this is a no-op or fails.
        if let Err(e) = std::os::unix::fs::fchown(&part.file, Some(old.uid()), Some(old.gid())) {
            debug!("cannot keep the owner of {}: {e}", dest.path.display());
        }
    }
    // After chown, which clears set-id bits.
    let permissions = Permissions::from_mode(mode & PERMISSION_BITS);
    part.file.set_permissions(permissions).await?;
    part.file.sync_all().await?;
    fs::rename(&part.path, &dest.path).await?;
    part.renamed = true;
    // The rename itself is durable only once the directory is.
    match File::open(&dest.dir).await {
        Ok(dir) => {
            if let Err(e) = dir.sync_all().await {
                debug!("cannot sync {}: {e}", dest.dir.display());
            }
        }
        Err(e) => debug!("cannot sync {}: {e}", dest.dir.display()),
    }
    Ok(())
}

/// The temporary file an upload is written to. Removed when dropped, unless
/// it was renamed into place: whatever way an upload ends (mismatch, error,
/// reset, the session future dropped), no partial file remains.
struct PartFile {
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl PartFile {
    async fn create(dir: &Path, name: &OsStr) -> io::Result<Self> {
        let kept = &name.as_bytes()[..name.len().min(TEMP_NAME_KEEP)];
        let mut last_error = None;
        for _ in 0..4 {
            let mut temp = Vec::with_capacity(kept.len() + 24);
            temp.push(b'.');
            temp.extend_from_slice(kept);
            temp.extend_from_slice(b".jgpart-");
            temp.extend_from_slice(random_suffix().as_bytes());
            let path = dir.join(OsString::from_vec(temp));
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .await;
            match opened {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        renamed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free temporary file name")))
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.renamed {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Uniqueness is still enforced by create_new; this only spreads names.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        bytes[..4].copy_from_slice(&nanos.to_le_bytes());
    }
    hex(&bytes)
}

pub(super) async fn download<R, W>(
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    path: &str,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let opened = match absolute(path) {
        // Non-blocking: opening a FIFO must not wait for a writer (it is
        // refused below anyway). Reads of regular files are unaffected.
        Ok(p) => OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(p)
            .await
            .map_err(|e| (refusal_code(&e), format!("{path}: {e}"))),
        Err(refusal) => Err(refusal),
    };
    let metadata = match opened {
        Ok(file) => match file.metadata().await {
            Ok(m) if m.is_dir() => Err((
                RefusalCode::InvalidRequest,
                format!("{path}: is a directory"),
            )),
            Ok(m) if !m.is_file() => Err((
                RefusalCode::InvalidRequest,
                format!("{path}: not a regular file"),
            )),
            Ok(m) => Ok((file, m)),
            Err(e) => Err((RefusalCode::Failed, format!("{path}: {e}"))),
        },
        Err(refusal) => Err(refusal),
    };
    let (mut file, metadata) = match metadata {
        Ok(opened) => opened,
        Err((code, message)) => {
            return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
        }
    };
    let accepted = Accepted {
        size: Some(metadata.len()),
        mode: Some(metadata.permissions().mode() & PERMISSION_BITS),
    };
    tx.write_msg(&SessionMsg::Accepted(accepted)).await?;

    let mut summary = SessionSummary::new(SessionKind::Download);
    let mut hasher = digest::Context::new(&digest::SHA256);
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(CHUNK);
        // On a read error the technician is told why, and never sees a
        // `FileEnd` for a partial file.
        let n = match (&mut file).take(CHUNK as u64).read_buf(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let failed = FileResult {
                    ok: false,
                    sha256: String::new(),
                    message: format!("reading the file on the endpoint failed: {e}"),
                };
                let _ = tx.write_msg(&SessionMsg::FileResult(failed)).await;
                wire::finish(&mut rx, &mut tx, ctx.linger).await;
                return Err(SessionError::local("reading the file")(e));
            }
        };
        if n == 0 {
            break;
        }
        let data = buf.split().freeze();
        hasher.update(&data);
        summary.bytes_out += n as u64;
        tx.write_msg(&SessionMsg::FileData(data)).await?;
    }
    let end = FileEnd {
        size: summary.bytes_out,
        sha256: hex(hasher.finish().as_ref()),
    };
    tx.write_msg(&SessionMsg::FileEnd(end)).await?;
    wire::finish(&mut rx, &mut tx, ctx.linger).await;
    Ok(summary)
}
