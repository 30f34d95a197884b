//! The download's trailer at the end of this executable.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use jumpgate_proto::assist::Trailer;

use super::AssistError;

/// Reads the trailer of `path` (only its last [`Trailer::MAX_JSON`] + 12
/// bytes).
///
/// # Errors
/// The file cannot be read, or it ends in a trailer that is invalid.
pub fn read(path: &Path) -> Result<Option<Trailer>, AssistError> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let tail_len = len.min((Trailer::MAX_JSON + 12) as u64);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    f.take(tail_len).read_to_end(&mut tail)?;
    Trailer::parse(&tail).map_err(|e| AssistError::BadSession(e.to_string()))
}

/// The trailer of the running executable, with the file's path.
///
/// # Errors
/// See [`read`].
pub fn read_own() -> Result<Option<(Trailer, PathBuf)>, AssistError> {
    // The running image, even if its name changed since.
    let t = read(Path::new("/proc/self/exe"))?;
    match t {
        Some(t) => Ok(Some((t, std::env::current_exe()?))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailer_is_read_from_the_end_of_a_large_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jumpgate-assist");
        let t = Trailer {
            v: 1,
            url: "https://support.example.com:8443".into(),
            fingerprint: "00".repeat(32),
            ticket: "jga_secret".into(),
            site: "Example".into(),
            support_id: "sup_1".into(),
            expires_at_ms: 0,
        };
        let mut body = vec![0x7fu8; 100_000];
        body.extend(t.encode());
        std::fs::write(&path, &body).unwrap();
        assert_eq!(read(&path).unwrap(), Some(t));
        std::fs::write(&path, b"\x7fELF plain").unwrap();
        assert_eq!(read(&path).unwrap(), None);
    }
}
