//! The encrypted recording file: a magic line, then sealed chunks appended
//! as the session runs.
//!
//! ```text
//! "JGREC/1\n"
//! chunk*: len: u32 BE (ciphertext + tag) | flags: u8 | ciphertext ‖ tag
//! ```
//!
//! Each chunk is AES-256-GCM under the recording's own data key. The nonce
//! is the chunk's index (never reused: one key per recording), and the
//! associated data binds the recording id, the index and the flags, so
//! chunks cannot be reordered, moved between recordings, or have their
//! "last" flag forged. A crash leaves at most one partial chunk at the end,
//! which the reader ignores; a recording that ended cleanly has a chunk
//! flagged [`LAST`], so removing chunks from its end is detected.
//!
//! Where the file lives: while its session runs, a recording is a **spool
//! file** in `<data dir>/recordings/`, each chunk written and made durable
//! there before the session goes on (as before blob storage). When the
//! session ends, the file is **published** to the blob store under
//! `recordings/<file>` ([`blob_key`]) and the spool file is removed. With
//! the local store (the default) the spool file *is* the blob (the store's
//! root is the data dir), so nothing moves and sites from before blob
//! storage read their recordings where they are. A spool file whose
//! publishing failed or was cut short by a crash is published at the next
//! start ([`spooled`]). Readers take the spool file when there is one (a
//! live or not yet published recording), else the blob.

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::blobs::{BlobError, BlobKey, BlobRead, Blobs};
use crate::keys::DataKey;

const MAGIC: &[u8; 8] = b"JGREC/1\n";
/// Flag of the final chunk.
const LAST: u8 = 1;
/// Largest plaintext of one chunk.
pub(crate) const MAX_CHUNK: usize = 1024 * 1024;
const TAG_LEN: usize = 16;

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("recording file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the recording file is not a Jumpgate recording")]
    NotARecording,
    #[error("chunk {0} of the recording was altered or does not belong to it")]
    Altered(u64),
    #[error("the recording ended cleanly, but its final part is missing from the file")]
    Truncated,
}

fn cipher(key: &DataKey) -> LessSafeKey {
    // A 32-byte key always fits AES-256.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.as_bytes()).expect("AES-256 key length"))
}

fn nonce(index: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[NONCE_LEN - 8..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(id: &str, index: u64, flags: u8) -> Vec<u8> {
    let mut a = Vec::with_capacity(id.len() + 9);
    a.extend_from_slice(id.as_bytes());
    a.extend_from_slice(&index.to_be_bytes());
    a.push(flags);
    a
}

/// Appends sealed chunks to a new recording file.
pub(crate) struct Writer {
    file: tokio::fs::File,
    key: LessSafeKey,
    id: String,
    index: u64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("id", &self.id)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Creates the file (mode 0600; it must not exist yet) with its magic
    /// written to the OS ([`Writer::sync`] makes it durable).
    #[cfg(test)]
    pub(crate) async fn create(
        path: &std::path::Path,
        key: &DataKey,
        id: &str,
    ) -> std::io::Result<Self> {
        Self::create_sealed(path, cipher(key), id, MAGIC.to_vec(), 0).await
    }

    /// [`Writer::create`] followed by [`Writer::append`] of `first`, the
    /// file made and written in one trip to a blocking thread (not one per
    /// step: a session waits for this before it starts).
    pub(crate) async fn create_with(
        path: &std::path::Path,
        key: &DataKey,
        id: &str,
        first: &[u8],
    ) -> std::io::Result<Self> {
        let key = cipher(key);
        let mut bytes = MAGIC.to_vec();
        let mut index = 0;
        for piece in pieces(first) {
            bytes.extend_from_slice(&seal_chunk(&key, id, index, piece, false)?);
            index += 1;
        }
        Self::create_sealed(path, key, id, bytes, index).await
    }

    /// Creates the file with `bytes` (the magic and `index` sealed chunks).
    async fn create_sealed(
        path: &std::path::Path,
        key: LessSafeKey,
        id: &str,
        bytes: Vec<u8>,
        index: u64,
    ) -> std::io::Result<Self> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = path.to_owned();
        let file = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(&bytes)?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            key,
            id: id.to_owned(),
            index,
        })
    }

    /// Seals `plain` as the next chunk and writes it (to the OS: it
    /// survives the process; [`Writer::sync`] makes it survive the machine).
    /// Longer text is split over several chunks (readers concatenate).
    pub(crate) async fn append(&mut self, plain: &[u8], last: bool) -> std::io::Result<()> {
        let mut pieces = pieces(plain).peekable();
        while let Some(piece) = pieces.next() {
            self.append_one(piece, last && pieces.peek().is_none())
                .await?;
        }
        Ok(())
    }

    async fn append_one(&mut self, plain: &[u8], last: bool) -> std::io::Result<()> {
        let buf = seal_chunk(&self.key, &self.id, self.index, plain, last)?;
        self.file.write_all(&buf).await?;
        // tokio hands writes to a blocking thread: wait until this one has
        // reached the OS, so the chunk outlives the process from here on.
        self.file.flush().await?;
        self.index += 1;
        Ok(())
    }

    /// Makes every chunk written so far durable.
    pub(crate) async fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data().await
    }
}

/// The chunks `plain` is stored in: pieces of at most [`MAX_CHUNK`] bytes,
/// and one empty chunk for empty text.
fn pieces(plain: &[u8]) -> impl Iterator<Item = &[u8]> {
    let n = plain.len().div_ceil(MAX_CHUNK).max(1);
    (0..n).map(move |i| &plain[i * MAX_CHUNK..((i + 1) * MAX_CHUNK).min(plain.len())])
}

/// One sealed chunk as it is stored: `len | flags | ciphertext ‖ tag`.
fn seal_chunk(
    key: &LessSafeKey,
    id: &str,
    index: u64,
    plain: &[u8],
    last: bool,
) -> std::io::Result<Vec<u8>> {
    let flags = if last { LAST } else { 0 };
    let mut buf = Vec::with_capacity(5 + plain.len() + TAG_LEN);
    buf.extend_from_slice(&((plain.len() + TAG_LEN) as u32).to_be_bytes());
    buf.push(flags);
    let mut sealed = plain.to_vec();
    key.seal_in_place_append_tag(nonce(index), Aad::from(aad(id, index, flags)), &mut sealed)
        .map_err(|_| std::io::Error::other("sealing a recording chunk failed"))?;
    buf.extend_from_slice(&sealed);
    Ok(buf)
}

/// Reads a recording file chunk by chunk (any byte source in tests and
/// fuzzing; the file in production).
pub(crate) struct Reader<R = tokio::fs::File> {
    file: BufReader<R>,
    key: LessSafeKey,
    id: String,
    index: u64,
    /// The final chunk was read.
    ended: bool,
}

impl<R> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("id", &self.id)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl Reader {
    pub(crate) async fn open(
        path: &std::path::Path,
        key: &DataKey,
        id: &str,
    ) -> Result<Self, ReadError> {
        Reader::from_source(tokio::fs::File::open(path).await?, key, id).await
    }
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads the recording `id` from `source` (the bytes of its file).
    pub(crate) async fn from_source(source: R, key: &DataKey, id: &str) -> Result<Self, ReadError> {
        let mut file = BufReader::new(source);
        let mut magic = [0u8; MAGIC.len()];
        match file.read_exact(&mut magic).await {
            Ok(_) if &magic == MAGIC => {}
            Ok(_) => return Err(ReadError::NotARecording),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(ReadError::NotARecording);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Self {
            file,
            key: cipher(key),
            id: id.to_owned(),
            index: 0,
            ended: false,
        })
    }

    /// The next chunk's plaintext; `None` at the end of what was written
    /// (a partial chunk left by a crash counts as the end).
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        if self.ended {
            return Ok(None);
        }
        let mut head = [0u8; 5];
        if !read_full(&mut self.file, &mut head).await? {
            return Ok(None);
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let flags = head[4];
        if !(TAG_LEN..=MAX_CHUNK + TAG_LEN).contains(&len) || flags & !LAST != 0 {
            return Err(ReadError::Altered(self.index));
        }
        let mut sealed = vec![0u8; len];
        if !read_full(&mut self.file, &mut sealed).await? {
            return Ok(None);
        }
        let plain = self
            .key
            .open_in_place(
                nonce(self.index),
                Aad::from(aad(&self.id, self.index, flags)),
                &mut sealed,
            )
            .map_err(|_| ReadError::Altered(self.index))?;
        let n = plain.len();
        sealed.truncate(n);
        self.index += 1;
        self.ended = flags & LAST != 0;
        Ok(Some(sealed))
    }

    /// Whether the final chunk was read (the recording ended cleanly).
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }
}

/// Where a recording's spool file is (`file`: its row's `file`, checked by
/// the caller).
pub(crate) fn spool_path(data_dir: &Path, file: &str) -> PathBuf {
    super::dir(data_dir).join(file)
}

/// The blob a recording is published as: its row's `file` under
/// `recordings/`.
pub(crate) fn blob_key(file: &str) -> Result<BlobKey, BlobError> {
    BlobKey::new(format!("recordings/{file}"))
}

/// Opens recording `id` (row's `file`) for reading: the spool file if there
/// is one, else the blob.
pub(crate) async fn open_reader(
    blobs: &Blobs,
    data_dir: &Path,
    file: &str,
    key: &DataKey,
    id: &str,
) -> Result<Reader<BlobRead>, ReadError> {
    match tokio::fs::File::open(spool_path(data_dir, file)).await {
        Ok(f) => return Reader::from_source(Box::new(f) as BlobRead, key, id).await,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let source = blobs
        .get(&blob_key(file).map_err(|_| ReadError::NotARecording)?)
        .await
        .map_err(|e| match e {
            BlobError::Io(e) => ReadError::Io(e),
            other => ReadError::Io(std::io::Error::other(other.to_string())),
        })?
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{file} is missing from the blob store"),
            )
        })?;
    Reader::from_source(source, key, id).await
}

/// Whether the spool file is where the store keeps the blob (the local
/// store): then publishing moves nothing.
async fn spool_is_blob(blobs: &Blobs, spool: &Path, key: &BlobKey) -> bool {
    let Some(at) = blobs.local_path(key) else {
        return false;
    };
    tokio::fs::canonicalize(spool).await.ok().as_deref() == Some(at.as_path())
}

/// Publishes a finished recording's spool file to the blob store, then
/// removes the spool file (the blob is durable first). Nothing to do with
/// the local store, or when there is no spool file (already published).
pub(crate) async fn publish(blobs: &Blobs, data_dir: &Path, file: &str) -> Result<(), BlobError> {
    let key = blob_key(file)?;
    let spool = spool_path(data_dir, file);
    if spool_is_blob(blobs, &spool, &key).await {
        return Ok(());
    }
    match tokio::fs::metadata(&spool).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    blobs.put_file(&key, &spool).await?;
    tokio::fs::remove_file(&spool).await?;
    Ok(())
}

/// Removes a recording's file: its blob and any spool file.
pub(crate) async fn remove(blobs: &Blobs, data_dir: &Path, file: &str) -> Result<(), BlobError> {
    let key = blob_key(file)?;
    match tokio::fs::remove_file(spool_path(data_dir, file)).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    blobs.delete(&key).await
}

/// The spool files waiting to be published (none with the local store,
/// whose spool files are its blobs): names as the rows hold them.
pub(crate) async fn spooled(blobs: &Blobs, data_dir: &Path) -> std::io::Result<Vec<String>> {
    let dir = super::dir(data_dir);
    let probe = blob_key("rec_probe.jgrec").map_err(std::io::Error::other)?;
    if let Some(at) = blobs.local_path(&probe)
        && at.parent() == dir.canonicalize().ok().as_deref()
    {
        return Ok(Vec::new());
    }
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        if let Some(name) = entry.file_name().to_str()
            && super::valid_file_name(name)
        {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Fills `buf`; `false` if the file ends first (a partial read at the end of
/// a file a crash cut short).
async fn read_full(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let n = r.read(&mut buf[got..]).await?;
        if n == 0 {
            return Ok(false);
        }
        got += n;
    }
    Ok(true)
}

/// What the fuzz targets in `fuzz/` drive (cargo feature `fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use super::*;

    const ID: &str = "rec_fuzz";

    /// Runs a future over in-memory bytes, which never waits.
    fn ready<T>(fut: impl Future<Output = T>) -> T {
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::pin!(fut).poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => unreachable!("reading from memory never waits"),
        }
    }

    fn read_all(bytes: &[u8], key: &DataKey) -> Result<(Vec<Vec<u8>>, bool), ReadError> {
        ready(async {
            let mut r = Reader::from_source(bytes, key, ID).await?;
            let mut chunks = Vec::new();
            while let Some(c) = r.next().await? {
                chunks.push(c);
            }
            Ok((chunks, r.ended()))
        })
    }

    /// Reads `bytes` as a recording file; each chunk's text goes through
    /// what reads it after a crash.
    pub(crate) fn read(bytes: &[u8]) {
        if let Ok((chunks, _)) = read_all(bytes, &DataKey::for_tests(7)) {
            for c in chunks {
                let _ = super::super::last_event_secs(&c);
            }
        }
    }

    /// Writes `pieces` as a recording, cuts the file at `cut` (a crash) and
    /// reads it back: every whole chunk before the cut, nothing else, no
    /// error, and "ended" only for the whole file of a finished recording.
    pub(crate) fn round_trip(pieces: &[&[u8]], last: bool, cut: usize) {
        let key = DataKey::for_tests(7);
        let k = cipher(&key);
        let mut file = MAGIC.to_vec();
        let mut ends = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let is_last = last && i + 1 == pieces.len();
            file.extend(seal_chunk(&k, ID, i as u64, p, is_last).expect("sealing"));
            ends.push(file.len());
        }
        let cut = cut % (file.len() + 1);
        let got = read_all(&file[..cut], &key);
        if cut < MAGIC.len() {
            assert!(matches!(got, Err(ReadError::NotARecording)), "{got:?}");
            return;
        }
        let (chunks, ended) = got.expect("a recording cut short reads up to the cut");
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        assert_eq!(chunks.len(), whole);
        for (c, p) in chunks.iter().zip(pieces) {
            assert_eq!(c, p);
        }
        assert_eq!(ended, last && whole == pieces.len() && !pieces.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Keyring, Purpose};

    async fn read_all(r: &mut Reader) -> Result<Vec<Vec<u8>>, ReadError> {
        let mut out = Vec::new();
        while let Some(c) = r.next().await? {
            out.push(c);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn chunks_round_trip_and_the_file_holds_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path()).unwrap();
        let (key, _) = ring.new_data_key(Purpose::Recordings).unwrap();
        let path = dir.path().join("r.jgrec");
        let mut w = Writer::create(&path, &key, "rec_1").await.unwrap();
        w.append(b"[0.1, \"o\", \"secret-output\"]\n", false)
            .await
            .unwrap();
        w.append(b"[0.2, \"o\", \"more\"]\n", true).await.unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(13).any(|w| w == b"secret-output"));
        let mut r = Reader::open(&path, &key, "rec_1").await.unwrap();
        let chunks = read_all(&mut r).await.unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1], b"[0.2, \"o\", \"more\"]\n");
        assert!(r.ended());
        // Another recording's id (or key) does not open it.
        let mut other = Reader::open(&path, &key, "rec_2").await.unwrap();
        assert!(matches!(other.next().await, Err(ReadError::Altered(0))));
    }

    /// A file made with its first chunk in one step reads like one made
    /// step by step, refuses to replace a file, and is private.
    #[tokio::test]
    async fn a_file_created_with_its_first_chunk_reads_back_in_order() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path()).unwrap();
        let (key, _) = ring.new_data_key(Purpose::Recordings).unwrap();
        let path = dir.path().join("r.jgrec");
        let mut w = Writer::create_with(&path, &key, "rec_1", b"header\n")
            .await
            .unwrap();
        w.append(b"body\n", true).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut r = Reader::open(&path, &key, "rec_1").await.unwrap();
        let chunks = read_all(&mut r).await.unwrap();
        assert_eq!(chunks, [b"header\n".to_vec(), b"body\n".to_vec()]);
        assert!(r.ended());
        let again = Writer::create_with(&path, &key, "rec_1", b"x").await;
        assert_eq!(
            again.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::AlreadyExists)
        );
    }

    #[tokio::test]
    async fn a_crash_mid_chunk_keeps_every_whole_chunk_and_cutting_the_end_shows() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path()).unwrap();
        let (key, _) = ring.new_data_key(Purpose::Recordings).unwrap();
        let path = dir.path().join("r.jgrec");
        let mut w = Writer::create(&path, &key, "rec_1").await.unwrap();
        w.append(b"one\n", false).await.unwrap();
        w.append(b"two\n", false).await.unwrap();
        w.append(b"three\n", true).await.unwrap();
        let full = std::fs::read(&path).unwrap();
        // Cut inside the last chunk, as a crash during a write would.
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let mut r = Reader::open(&path, &key, "rec_1").await.unwrap();
        assert_eq!(
            read_all(&mut r).await.unwrap(),
            vec![b"one\n".to_vec(), b"two\n".to_vec()]
        );
        assert!(
            !r.ended(),
            "the final chunk is gone, and the reader says so"
        );

        // A flipped byte inside a chunk is refused, naming the chunk.
        let mut bad = full.clone();
        let at = MAGIC.len() + 5 + 1;
        bad[at] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let mut r = Reader::open(&path, &key, "rec_1").await.unwrap();
        assert!(matches!(read_all(&mut r).await, Err(ReadError::Altered(0))));

        // Clearing the "last" flag of the final chunk is detected too.
        let mut unflagged = full;
        let last_head = MAGIC.len() + 2 * (5 + 4 + TAG_LEN);
        assert_eq!(unflagged[last_head + 4], LAST);
        unflagged[last_head + 4] = 0;
        std::fs::write(&path, &unflagged).unwrap();
        let mut r = Reader::open(&path, &key, "rec_1").await.unwrap();
        assert!(matches!(read_all(&mut r).await, Err(ReadError::Altered(2))));
    }

    #[tokio::test]
    async fn text_longer_than_a_chunk_is_split_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path()).unwrap();
        let (key, _) = ring.new_data_key(Purpose::Recordings).unwrap();
        let path = dir.path().join("r.jgrec");
        let mut w = Writer::create(&path, &key, "rec_1").await.unwrap();
        let big: Vec<u8> = (0..MAX_CHUNK * 2 + 17)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        w.append(&big, true).await.unwrap();
        let mut r = Reader::open(&path, &key, "rec_1").await.unwrap();
        let chunks = read_all(&mut r).await.unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), big);
        assert!(r.ended());
        // The same text as a new file's first chunks.
        let path = dir.path().join("r2.jgrec");
        let mut w = Writer::create_with(&path, &key, "rec_2", &big)
            .await
            .unwrap();
        w.append(b"", true).await.unwrap();
        let mut r = Reader::open(&path, &key, "rec_2").await.unwrap();
        let chunks = read_all(&mut r).await.unwrap();
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks.concat(), big);
        assert!(r.ended());
    }
}
