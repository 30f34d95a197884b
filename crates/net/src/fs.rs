//! Private files on disk: state directories and the secrets in them (keys,
//! tokens, certificates) are created readable by their owner only, and
//! replaced atomically, so a crash leaves the old file or the new one,
//! never a torn or briefly world-readable one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) and makes it readable by its owner only
/// (also when it already existed).
///
/// # Errors
/// The directory cannot be created or its permissions set.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Replaces `path` atomically with `data`, mode 0600 from the start.
///
/// # Errors
/// See [`write_atomic`].
pub fn write_private_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_atomic(path, data, 0o600)
}

/// Replaces `path` atomically with `data`: a temporary file beside it
/// created with `mode` (a stale one is removed first), written, fsynced,
/// renamed over `path`, and the directory fsynced so that the rename
/// lasts. On failure the temporary file is removed and `path` is untouched.
///
/// # Errors
/// Any step failed.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = temporary(path);
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// fsyncs the directory holding `path`, so that a create or rename in it
/// survives a crash.
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::File::open(dir)?.sync_all(),
        _ => fs::File::open(".")?.sync_all(),
    }
}

/// The temporary file beside `path`: hidden, and named after the process,
/// so that two processes writing the same file do not collide.
fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_and_directories_are_the_owners_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // An existing, open directory is closed down too.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let file = dir.join("key");
        write_private_atomic(&file, b"one").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"one");
        assert_eq!(mode(&file), 0o600);
        // A stale temporary file (a crash) neither blocks nor leaks into
        // the result.
        fs::write(temporary(&file), b"stale").unwrap();
        write_private_atomic(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(mode(&file), 0o600);
        write_atomic(&dir.join("cert"), b"public", 0o644).unwrap();
        assert_eq!(mode(&dir.join("cert")), 0o644);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("key");
        write_private_atomic(&file, b"old").unwrap();
        // The rename cannot replace a directory.
        let blocked = root.path().join("dir");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_private_atomic(&blocked, b"new").is_err());
        assert_eq!(fs::read(&file).unwrap(), b"old");
        assert!(!temporary(&blocked).exists());
    }
}
