//! Session recordings: every shell and exec session is written, while it
//! runs, as an asciicast v2 stream (terminal output, resizes, and keystrokes
//! when the site records them) sealed chunk by chunk under the recording's
//! own data key (see [`file`]). Desktop sessions are written the same way
//! (same sealed file, same writer) as JSON lines: a header object, then
//! `[t, code, data]` events like asciicast's (`kind` = `desktop`; the
//! format is in `docs/recordings.md` and `api::DESKTOP_RECORDING_CONTENT_TYPE`).
//!
//! The relay hands events to a [`Recorder`]; a writer task batches them and
//! seals one chunk per second of activity (or per 256 KiB), each made
//! durable before the next, so a gateway crash loses at most the last
//! second. The recording's row holds its wrapped data key; the plaintext key
//! exists only in the writer and in readers.
//!
//! Files: written to a spool file under the data dir while the session
//! runs, then published to the blob store (`[blobs]`; with the default
//! local store the spool file is already the blob), see [`file`].
//!
//! Search: ended terminal recordings are indexed (a blind index of their
//! words) and searched for a phrase, see [`search`].

mod file;
#[cfg(feature = "fuzzing")]
pub(crate) use file::fuzzing;
pub(crate) mod http;
pub(crate) mod schema;
pub(crate) mod search;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use jumpgate_api_types as api;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::blobs::Blobs;
use crate::ids::{self, RecordingId, SessionId};
use crate::keys::stored;
use crate::keys::{Keyring, Purpose, WrappedKey};
use crate::sessions::StopHandle;
use crate::store::{AuditAction, AuditEvent, Engine, Exec, Store, sql};

pub(crate) use file::{ReadError, spooled};

/// Plaintext gathered before a chunk is sealed regardless of the clock.
const CHUNK_TARGET: usize = 256 * 1024;
/// How often buffered events are sealed and made durable.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Events in flight between the relay and the writer.
const QUEUE: usize = 256;
/// Bytes in flight between the relay and the writer: beyond them the relay
/// waits (back-pressure on the session), so a fast endpoint and a slow disk
/// cost bounded memory.
const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Why a recording could not be started or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordingError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("recording file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// The directory of recording spool files (and, with the local blob store,
/// of the recordings themselves).
pub(crate) fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

/// What a recording is of.
#[derive(Debug)]
pub(crate) struct Meta<'a> {
    pub(crate) session_id: &'a SessionId,
    pub(crate) username: &'a str,
    pub(crate) endpoint: &'a str,
    /// The endpoint's group now: the recording stays with it.
    pub(crate) endpoint_group: &'a str,
    pub(crate) width: u16,
    pub(crate) height: u16,
    pub(crate) term: &'a str,
    pub(crate) command: &'a str,
}

/// Which terminal stream output came on (each keeps its own partial
/// UTF-8 sequence).
#[derive(Clone, Copy, Debug)]
enum Stream {
    Stdout,
    Stderr,
    Stdin,
}

#[derive(Debug)]
enum Event {
    Data(Instant, Stream, Bytes, OwnedSemaphorePermit),
    Resize(Instant, u16, u16),
    /// One event line of a desktop recording: its code and its data,
    /// already JSON.
    Line(Instant, &'static str, String, OwnedSemaphorePermit),
    /// The recording's screen size is known (its row is updated).
    Size(u32, u32),
}

/// The relay's side of a running recording. Dropping it ends the recording.
#[derive(Debug)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<Event>,
    /// Bytes in flight to the writer: the relay waits beyond [`QUEUE_BYTES`].
    budget: Arc<Semaphore>,
    keystrokes: bool,
    /// Taken by a session that writes the recording's end with its own.
    end: Option<EndWait>,
}

/// A recording about to start: its key made and its row ready to write
/// ([`Prepared::insert`], in the transaction that records the session, so
/// that the session, its `session-open` entry and its recording's row are
/// one durable commit); [`Prepared::begin`] then creates its file.
pub(crate) struct Prepared {
    id: RecordingId,
    key: crate::keys::DataKey,
    wrapped: WrappedKey,
    file_name: String,
    started: Instant,
    started_ms: i64,
    keystrokes: bool,
    session_id: SessionId,
    username: String,
    endpoint: String,
    endpoint_group: String,
    width: u16,
    height: u16,
    kind: api::RecordingKind,
    /// The header line (asciicast, or a desktop recording's).
    header: String,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("id", &self.id)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Makes the recording's key and everything its row and file need.
    ///
    /// # Errors
    /// The keyring cannot make or wrap a key.
    pub(crate) fn new(
        keys: &Keyring,
        keystrokes: bool,
        meta: &Meta<'_>,
    ) -> Result<Self, RecordingError> {
        let id = RecordingId::generate();
        let (key, wrapped) = keys.new_data_key(Purpose::Recordings)?;
        let started_ms = ids::now_ms();
        let header = serde_json::json!({
            "version": 2,
            "width": meta.width,
            "height": meta.height,
            "timestamp": started_ms / 1000,
            "title": format!("{}@{}", meta.username, meta.endpoint),
            "command": meta.command,
            "env": { "TERM": meta.term },
        });
        let mut header = header.to_string();
        header.push('\n');
        Ok(Self {
            file_name: file_name(&id),
            id,
            key,
            wrapped,
            started: Instant::now(),
            started_ms,
            keystrokes,
            session_id: meta.session_id.clone(),
            username: meta.username.to_owned(),
            endpoint: meta.endpoint.to_owned(),
            endpoint_group: meta.endpoint_group.to_owned(),
            width: meta.width,
            height: meta.height,
            kind: api::RecordingKind::Terminal,
            header,
        })
    }

    /// A desktop session's recording: JSON lines, its header first
    /// (`{"jumpgate":"desktop","version":1,…}`; the size is 0×0 there and
    /// in the row until the first screen size is known, see
    /// [`Recorder::desktop_size`]). Technician input is never recorded.
    ///
    /// # Errors
    /// The keyring cannot make or wrap a key.
    pub(crate) fn desktop(keys: &Keyring, meta: &Meta<'_>) -> Result<Self, RecordingError> {
        let mut p = Self::new(keys, false, meta)?;
        let header = serde_json::json!({
            "jumpgate": "desktop",
            "version": 1,
            "width": meta.width,
            "height": meta.height,
            "timestamp": p.started_ms / 1000,
            "title": format!("{}@{}", meta.username, meta.endpoint),
        });
        p.header = header.to_string();
        p.header.push('\n');
        p.kind = api::RecordingKind::Desktop;
        Ok(p)
    }

    /// Writes the recording's row inside `e` (after its session's row).
    /// The row comes first: a crash before the file exists leaves a row
    /// that the next start closes (it plays as empty), never a file nothing
    /// knows about.
    ///
    /// # Errors
    /// The row could not be written.
    pub(crate) async fn insert(&self, e: &mut dyn Exec) -> Result<(), sqlx::Error> {
        sql!(e, |c| {
            sqlx::query(
            "INSERT INTO recordings (id, session_id, username, endpoint_name, endpoint_group, started_at, width, height, input_recorded, wrapped_key, file, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(self.id.as_str())
        .bind(self.session_id.as_str())
        .bind(&self.username)
        .bind(&self.endpoint)
        .bind(&self.endpoint_group)
        .bind(self.started_ms)
        .bind(i64::from(self.width))
        .bind(i64::from(self.height))
        .bind(i64::from(self.keystrokes))
        .bind(self.wrapped.as_str())
        .bind(&self.file_name)
        .bind(self.kind.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Creates the recording's file (its row committed) with the header in
    /// it and starts its writer. The file's data is in the OS when this
    /// returns, so it outlives the process; the writer makes it, and its
    /// directory entry, durable in the background at its first flush (a
    /// second in, or the recording's end if sooner: a crash before leaves
    /// a row whose file is missing or short, which the next start closes),
    /// off the session's path. A session that takes [`Recorder::take_end`]
    /// writes the recording's end in its own closing commit. When the file
    /// cannot be made, the row is removed again.
    ///
    /// # Errors
    /// The file could not be created or written.
    pub(crate) async fn begin(
        self,
        db: &Store,
        files: Files,
        stop: StopHandle,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Result<Recorder, RecordingError> {
        let Self {
            id,
            key,
            file_name,
            started,
            keystrokes,
            header,
            ..
        } = self;
        let dir = dir(&files.data_dir);
        let created = async {
            crate::site::create_private_dir(&dir)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            file::Writer::create_with(&dir.join(&file_name), &key, id.as_str(), header.as_bytes())
                .await
        }
        .await;
        drop(key);
        let writer = match created {
            Ok(w) => w,
            Err(e) => {
                let removed = async {
                    let mut c = db.write_conn().await?;
                    sql!(c, |c| sqlx::query("DELETE FROM recordings WHERE id = $1")
                        .bind(id.as_str())
                        .execute(&mut *c)
                        .await
                        .map(|r| r.rows_affected()))
                }
                .await;
                if let Err(e) = removed {
                    tracing::warn!(recording = %id, error = %e, "cannot remove the row of a recording that could not start");
                }
                return Err(e.into());
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let (ended, end) = oneshot::channel();
        let published = Publish {
            files,
            file: file_name,
            dir,
        };
        tasks.spawn(write_loop(
            db.clone(),
            id,
            writer,
            rx,
            stop,
            started,
            published,
            ended,
        ));
        Ok(Recorder {
            tx,
            budget: Arc::new(Semaphore::new(QUEUE_BYTES)),
            keystrokes,
            end: Some(EndWait(end)),
        })
    }
}

impl Recorder {
    /// Starts recording on its own: the row (its own commit), then the file
    /// (see [`Prepared`]; a session writes the row with its own).
    #[cfg(test)]
    pub(crate) async fn start(
        db: &Store,
        keys: &Keyring,
        files: Files,
        keystrokes: bool,
        meta: &Meta<'_>,
        stop: StopHandle,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Result<Self, RecordingError> {
        let prepared = Prepared::new(keys, keystrokes, meta)?;
        let mut c = db.conn().await?;
        prepared.insert(&mut c).await?;
        drop(c);
        prepared.begin(db, files, stop, tasks).await
    }

    /// Where to wait for the recording's end, so that its row's end is
    /// written in the session's closing commit (one durable write, not
    /// two). Whoever takes it must, once the recorder is dropped, wait for
    /// [`EndWait::ended`], write the [`Ended`] and answer on its sender (or
    /// drop it to leave the write to the recording).
    pub(crate) fn take_end(&mut self) -> Option<EndWait> {
        self.end.take()
    }

    /// Waits until `len` more bytes may be in flight to the writer; `None`
    /// once the writer is gone (then nothing more is recorded).
    async fn room_for(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        let cost = len.clamp(1, QUEUE_BYTES) as u32;
        Arc::clone(&self.budget).acquire_many_owned(cost).await.ok()
    }

    async fn send_data(&self, stream: Stream, data: Bytes) {
        let Some(permit) = self.room_for(data.len()).await else {
            return;
        };
        let _ = self
            .tx
            .send(Event::Data(Instant::now(), stream, data, permit))
            .await;
    }

    /// Terminal output from the endpoint.
    pub(crate) async fn output(&self, data: Bytes, stderr: bool) {
        let stream = if stderr {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        self.send_data(stream, data).await;
    }

    /// Whether [`Self::input`] records keystrokes (the site's setting).
    pub(crate) fn records_input(&self) -> bool {
        self.keystrokes
    }

    /// Keystrokes from the technician (ignored unless the site records them).
    pub(crate) async fn input(&self, data: Bytes) {
        if self.keystrokes {
            self.send_data(Stream::Stdin, data).await;
        }
    }

    pub(crate) async fn resize(&self, cols: u16, rows: u16) {
        let _ = self
            .tx
            .send(Event::Resize(Instant::now(), cols, rows))
            .await;
    }

    /// One event of a desktop recording: `[t, code, data]`, `data` being
    /// JSON already. Counts against the same in-flight budget as terminal
    /// output (the relay waits beyond it).
    pub(crate) async fn desktop_event(&self, code: &'static str, data: String) {
        let Some(permit) = self.room_for(data.len()).await else {
            return;
        };
        let _ = self
            .tx
            .send(Event::Line(Instant::now(), code, data, permit))
            .await;
    }

    /// The desktop's first screen size: the recording's row gets it.
    pub(crate) async fn desktop_size(&self, width: u32, height: u32) {
        let _ = self.tx.send(Event::Size(width, height)).await;
    }
}

/// The file of a recording: derived from its id, never taken from input.
fn file_name(id: &RecordingId) -> String {
    format!("{id}.jgrec")
}

/// Whether a stored file name is one this module made (so a tampered row
/// cannot point outside the recordings directory).
fn valid_file_name(name: &str) -> bool {
    name.strip_suffix(".jgrec").is_some_and(|stem| {
        stem.starts_with("rec_")
            && stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// Makes a new directory entry durable.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

/// Turns terminal bytes into asciicast text, carrying an incomplete UTF-8
/// sequence at the end over to the next piece (terminal output is split
/// anywhere); invalid bytes become U+FFFD.
#[derive(Debug, Default)]
struct Utf8Carry(Vec<u8>);

impl Utf8Carry {
    /// Appends `data` to `out` as a JSON string.
    fn json(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let joined;
        let bytes = if self.0.is_empty() {
            data
        } else {
            self.0.extend_from_slice(data);
            joined = std::mem::take(&mut self.0);
            &joined[..]
        };
        let keep = incomplete_tail(bytes);
        let (text, rest) = bytes.split_at(bytes.len() - keep);
        let text = String::from_utf8_lossy(text);
        // Serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &*text);
        self.0.extend_from_slice(rest);
    }

    /// Whether a partial sequence is held.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Length of a UTF-8 sequence cut off at the end of `b` (0 if none).
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let c = b[b.len() - back];
        if c & 0xC0 == 0x80 {
            continue; // continuation byte: look further back
        }
        let need = match c {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

/// Appends one event line to `buf`.
fn event_line(buf: &mut Vec<u8>, at: f64, code: &str, data: impl FnOnce(&mut Vec<u8>)) {
    use std::io::Write as _;
    let _ = write!(buf, "[{at:.6}, \"{code}\", ");
    data(buf);
    buf.extend_from_slice(b"]\n");
}

/// Where recordings are written (the spool under the data dir) and
/// published (the blob store).
#[derive(Clone, Debug)]
pub(crate) struct Files {
    pub(crate) blobs: Blobs,
    pub(crate) data_dir: PathBuf,
}

/// Where a finished recording goes.
#[derive(Debug)]
struct Publish {
    files: Files,
    file: String,
    /// The spool directory (synced with the file's first flush).
    dir: PathBuf,
}

/// A recording's end, once its last chunk is durable: for its row.
#[derive(Clone, Debug)]
pub(crate) struct Ended {
    id: RecordingId,
    ended_at: i64,
    duration_ms: i64,
    interrupted: bool,
}

impl Ended {
    /// Writes the end into the recording's row, inside `e`.
    ///
    /// # Errors
    /// The row could not be written.
    pub(crate) async fn write(&self, e: &mut dyn Exec) -> Result<(), sqlx::Error> {
        sql!(e, |c| sqlx::query(
            "UPDATE recordings SET ended_at = $1, duration_ms = $2, interrupted = $3 WHERE id = $4",
        )
        .bind(self.ended_at)
        .bind(self.duration_ms)
        .bind(i64::from(self.interrupted))
        .bind(self.id.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

/// What the recording's writer hands over when it is done: the end for its
/// row, and the sender to call once that is written (dropped unsent, the
/// writer writes the end itself).
pub(crate) type Ending = (Ended, oneshot::Sender<()>);

/// Where a session waits for its recording's end ([`Recorder::take_end`]).
#[derive(Debug)]
pub(crate) struct EndWait(oneshot::Receiver<Ending>);

impl EndWait {
    /// Waits until the recording's last chunk is durable (its relay side
    /// dropped first); `None` if the writer is gone without one.
    pub(crate) async fn ended(self) -> Option<Ending> {
        self.0.await.ok()
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_loop(
    db: Store,
    id: RecordingId,
    mut writer: file::Writer,
    mut rx: mpsc::Receiver<Event>,
    stop: StopHandle,
    start: Instant,
    publish: Publish,
    ended: oneshot::Sender<Ending>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_TARGET + 64 * 1024);
    // One partial UTF-8 sequence per stream.
    let mut carries: [Utf8Carry; 3] = Default::default();
    let mut last_at = 0.0f64;
    // Chunks written since the last fsync: the magic and the header at
    // first, synced with the directory entry at the first tick (a second
    // in) or at the end, whichever comes first: a short session's file
    // costs the disk one flush, not two, while sessions are opening.
    let mut unsynced = true;
    let mut dir_unsynced = true;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let failed: Option<std::io::Error> = loop {
        // (write the buffer as a chunk, also fsync, this was the last event)
        let (write, sync, done) = tokio::select! {
            ev = rx.recv() => match ev {
                Some(Event::Data(at, stream, d, _permit)) => {
                    last_at = at.saturating_duration_since(start).as_secs_f64();
                    let (code, carry) = match stream {
                        Stream::Stdout => ("o", &mut carries[0]),
                        Stream::Stderr => ("o", &mut carries[1]),
                        Stream::Stdin => ("i", &mut carries[2]),
                    };
                    event_line(&mut buf, last_at, code, |b| carry.json(&d, b));
                    (buf.len() >= CHUNK_TARGET, false, false)
                }
                Some(Event::Resize(at, c, r)) => {
                    last_at = at.saturating_duration_since(start).as_secs_f64();
                    event_line(&mut buf, last_at, "r", |b| {
                        let _ = serde_json::to_writer(b, &format!("{c}x{r}"));
                    });
                    (buf.len() >= CHUNK_TARGET, false, false)
                }
                Some(Event::Line(at, code, data, _permit)) => {
                    last_at = at.saturating_duration_since(start).as_secs_f64();
                    event_line(&mut buf, last_at, code, |b| b.extend_from_slice(data.as_bytes()));
                    (buf.len() >= CHUNK_TARGET, false, false)
                }
                Some(Event::Size(w, h)) => {
                    set_size(&db, &id, w, h).await;
                    (false, false, false)
                }
                None => {
                    // Bytes of a sequence the session never finished.
                    for (i, carry) in carries.iter_mut().enumerate() {
                        if !carry.is_empty() {
                            let code = if i == 2 { "i" } else { "o" };
                            event_line(&mut buf, last_at, code, |b| {
                                let _ = serde_json::to_writer(b, "\u{FFFD}");
                            });
                            *carry = Utf8Carry::default();
                        }
                    }
                    (true, true, true)
                }
            },
            // Once a second, whatever arrived is sealed and made durable.
            _ = tick.tick() => (!buf.is_empty(), !buf.is_empty() || unsynced, false),
        };
        if write {
            if let Err(e) = writer.append(&buf, done).await {
                break Some(e);
            }
            buf.clear();
            unsynced = true;
        }
        if sync {
            if let Err(e) = writer.sync().await {
                break Some(e);
            }
            unsynced = false;
            if dir_unsynced {
                if let Err(e) = sync_dir(&publish.dir).await {
                    break Some(e);
                }
                dir_unsynced = false;
            }
        }
        if done {
            break None;
        }
    };
    let duration_ms = (last_at * 1000.0) as i64;
    if let Some(e) = &failed {
        tracing::error!(recording = %id, error = %e, "cannot write the session recording; ending the session");
        stop.stop("the gateway could not record the session");
        // The relay may be waiting for room in the queue: drain it.
        rx.close();
        while rx.recv().await.is_some() {}
    }
    let end = Ended {
        id: id.clone(),
        ended_at: ids::now_ms(),
        duration_ms,
        interrupted: failed.is_some(),
    };
    // The session writes the end with its own (one commit); when it does
    // not (no session waits for it, or its write failed), it is written
    // here, alone.
    let (written, was_written) = oneshot::channel();
    let by_session = match ended.send((end.clone(), written)) {
        Ok(()) => was_written.await.is_ok(),
        Err(_) => false,
    };
    if !by_session {
        let r = async {
            let mut c = db.write_conn().await?;
            end.write(&mut c).await
        }
        .await;
        if let Err(e) = r {
            tracing::error!(recording = %id, error = %e, "cannot record the end of a recording");
        }
    }
    // Its end is committed: it can be indexed for search.
    search::recording_ended();
    drop(writer);
    let Files { blobs, data_dir } = &publish.files;
    if let Err(e) = file::publish(blobs, data_dir, &publish.file).await {
        tracing::error!(
            recording = %id,
            store = blobs.location(),
            error = %e,
            "cannot move a finished recording to the blob store; it stays in the local spool and is moved at the next start"
        );
    }
}

/// Records a desktop recording's screen size in its row (a failure is
/// logged: the recording itself has the size in its `i` events).
async fn set_size(db: &Store, id: &RecordingId, width: u32, height: u32) {
    let r = async {
        let mut c = db.write_conn().await?;
        sql!(c, |c| sqlx::query(
            "UPDATE recordings SET width = $1, height = $2 WHERE id = $3"
        )
        .bind(i64::from(width))
        .bind(i64::from(height))
        .bind(id.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
    }
    .await;
    if let Err(e) = r {
        tracing::warn!(recording = %id, error = %e, "cannot record a desktop recording's size");
    }
}

/// Filters for [`list`].
#[derive(Debug, Default)]
pub(crate) struct Filter<'a> {
    /// The caller's groups: other groups' recordings are not listed.
    pub(crate) scope: Option<&'a crate::rbac::ReadScope>,
    pub(crate) endpoint: Option<&'a str>,
    pub(crate) user: Option<&'a str>,
    pub(crate) since_ms: Option<i64>,
    pub(crate) limit: i64,
}

/// A `recordings` row as [`list`] and [`open`] select it.
#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    session_id: String,
    username: String,
    endpoint_name: String,
    started_at: i64,
    ended_at: Option<i64>,
    duration_ms: i64,
    width: i64,
    height: i64,
    input_recorded: i64,
    interrupted: i64,
    wrapped_key: String,
    file: String,
    kind: String,
}

fn to_api(r: &Row) -> api::Recording {
    api::Recording {
        id: r.id.clone(),
        session_id: r.session_id.clone(),
        username: r.username.clone(),
        endpoint: r.endpoint_name.clone(),
        started_at: ids::rfc3339(r.started_at),
        ended_at: r.ended_at.map(ids::rfc3339),
        duration_secs: r.duration_ms as f64 / 1000.0,
        width: u16::try_from(r.width).unwrap_or(0),
        height: u16::try_from(r.height).unwrap_or(0),
        input_recorded: r.input_recorded != 0,
        interrupted: r.interrupted != 0,
        kind: match r.kind.as_str() {
            "desktop" => api::RecordingKind::Desktop,
            _ => api::RecordingKind::Terminal,
        },
    }
}

pub(crate) async fn list(db: &Store, f: &Filter<'_>) -> Result<Vec<api::Recording>, sqlx::Error> {
    let q = match db.engine() {
        Engine::Sqlite => {
            "SELECT id, session_id, username, endpoint_name, started_at, ended_at, duration_ms, width, height, input_recorded, interrupted, wrapped_key, file, kind
               FROM recordings
              WHERE ($1 IS NULL OR endpoint_name = $1) AND ($2 IS NULL OR username = $2)
                AND ($3 IS NULL OR started_at >= $3)
                AND ($5 IS NULL OR endpoint_group IN (SELECT value FROM json_each($5)))
              ORDER BY started_at DESC, id LIMIT $4"
        }
        Engine::Postgres => {
            "SELECT id, session_id, username, endpoint_name, started_at, ended_at, duration_ms, width, height, input_recorded, interrupted, wrapped_key, file, kind
               FROM recordings
              WHERE ($1::text IS NULL OR endpoint_name = $1) AND ($2::text IS NULL OR username = $2)
                AND ($3::bigint IS NULL OR started_at >= $3)
                AND ($5::text IS NULL OR endpoint_group IN (SELECT json_array_elements_text($5::json)))
              ORDER BY started_at DESC, id LIMIT $4"
        }
    };
    let mut c = db.conn().await?;
    let rows: Vec<Row> = sql!(c, |c| sqlx::query_as(q)
        .bind(f.endpoint)
        .bind(f.user)
        .bind(f.since_ms)
        .bind(f.limit)
        .bind(f.scope.and_then(crate::rbac::ReadScope::sql_param))
        .fetch_all(&mut *c)
        .await)?;
    Ok(rows.iter().map(to_api).collect())
}

/// A recording opened for reading.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) info: api::Recording,
    reader: file::Reader<crate::blobs::BlobRead>,
}

impl Opened {
    /// The next piece of the plain asciicast text.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        self.reader.next().await
    }

    /// After the last piece: whether the recording ended cleanly. A
    /// recording whose row says it ended but whose final chunk is missing
    /// was cut short after the fact.
    pub(crate) fn check_end(&self) -> Result<(), ReadError> {
        if self.info.ended_at.is_some() && !self.info.interrupted && !self.reader.ended() {
            return Err(ReadError::Truncated);
        }
        Ok(())
    }
}

/// The endpoint group recording `id` was made under (`None`: no such
/// recording; `Some(None)`: its group is unknown).
pub(crate) async fn group_of(db: &Store, id: &str) -> Result<Option<Option<String>>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_scalar(
        "SELECT endpoint_group FROM recordings WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

/// Opens recording `id` for reading; `None` if there is no such recording.
pub(crate) async fn open(
    db: &Store,
    keys: &Keyring,
    blobs: &Blobs,
    data_dir: &Path,
    id: &str,
) -> Result<Option<Opened>, RecordingError> {
    let mut c = db.conn().await?;
    let row: Option<Row> = sql!(c, |c| {
        sqlx::query_as(
        "SELECT id, session_id, username, endpoint_name, started_at, ended_at, duration_ms, width, height, input_recorded, interrupted, wrapped_key, file, kind
           FROM recordings WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await
    })?;
    drop(c);
    let Some(row) = row else {
        return Ok(None);
    };
    open_row(keys, blobs, data_dir, row).await.map(Some)
}

/// Opens the recording of `row` (as [`open`] selects it) for reading.
async fn open_row(
    keys: &Keyring,
    blobs: &Blobs,
    data_dir: &Path,
    row: Row,
) -> Result<Opened, RecordingError> {
    let wrapped = WrappedKey::from(row.wrapped_key.clone());
    let key = keys.unwrap(Purpose::Recordings, &wrapped)?;
    let file = &row.file;
    if !valid_file_name(file) {
        return Err(ReadError::NotARecording.into());
    }
    let reader = file::open_reader(blobs, data_dir, file, &key, &row.id).await?;
    Ok(Opened {
        info: to_api(&row),
        reader,
    })
}

/// The time (seconds) of the last event in a piece of asciicast text.
fn last_event_secs(text: &[u8]) -> Option<f64> {
    text.split(|&b| b == b'\n')
        .rev()
        .filter(|l| l.first() == Some(&b'['))
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).ok()?;
            v.get(0)?.as_f64()
        })
}

/// Recordings a crash left open end at their last sealed second; they are
/// marked interrupted.
pub(crate) async fn close_orphans(
    db: &Store,
    keys: &Keyring,
    blobs: &Blobs,
    data_dir: &Path,
) -> Result<u64, sqlx::Error> {
    let open: Vec<(String, i64)> = {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_as(
            "SELECT id, started_at FROM recordings WHERE ended_at IS NULL"
        )
        .fetch_all(&mut *c)
        .await)?
    };
    for (id, started_at) in &open {
        let mut last = 0.0f64;
        match self::open(db, keys, blobs, data_dir, id).await {
            Ok(Some(mut rec)) => loop {
                match rec.next().await {
                    Ok(Some(chunk)) => last = last_event_secs(&chunk).unwrap_or(last),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(recording = %id, error = %e, "recording damaged after its last good part");
                        break;
                    }
                }
            },
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(recording = %id, error = %e, "cannot read an interrupted recording")
            }
        }
        let duration_ms = (last * 1000.0) as i64;
        let mut c = db.write_conn().await?;
        sql!(c, |c| sqlx::query(
            "UPDATE recordings SET ended_at = $1, duration_ms = $2, interrupted = 1 WHERE id = $3",
        )
        .bind(started_at + duration_ms)
        .bind(duration_ms)
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(open.len() as u64)
}

/// Publishes spool files left by an earlier run (a crash, a store that was
/// unreachable when their session ended, or a site that moved from the
/// local store to S3/Azure) to the blob store. `files` were listed before
/// any session of this run started ([`file::spooled`]); each recording's
/// end is recorded already ([`close_orphans`]). A spool file no recording
/// knows is left alone (it has no key, so nothing can read it). Returns
/// how many were published.
pub(crate) async fn publish_spooled(
    db: &Store,
    blobs: &Blobs,
    data_dir: &Path,
    files: &[String],
) -> u64 {
    let mut done = 0;
    for file in files {
        let Some(id) = file.strip_suffix(".jgrec") else {
            continue;
        };
        match group_of(db, id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(file = %file, "a recording spool file that no recording knows is left in place");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish spooled recordings now");
                return done;
            }
        }
        match file::publish(blobs, data_dir, file).await {
            Ok(()) => {
                done += 1;
                // Retention may have removed the recording meanwhile (its
                // pass runs at start too): then the blob goes as well.
                if let Ok(None) = group_of(db, id).await
                    && let Err(e) = file::remove(blobs, data_dir, file).await
                {
                    tracing::warn!(recording = %id, error = %e, "cannot remove an expired recording's file");
                }
            }
            Err(e) => {
                tracing::error!(
                    recording = %id,
                    store = blobs.location(),
                    error = %e,
                    "cannot move a recording to the blob store; it stays in the local spool until the next start"
                );
            }
        }
    }
    done
}

/// Deletes recordings that ended before `cutoff_ms`: the rows and the
/// audit entry saying so commit together, then the files go (a file that
/// cannot be removed is logged and skipped; it no longer has a key row, so
/// it cannot be read). Returns how many were removed.
pub(crate) async fn expire(
    db: &Store,
    blobs: &Blobs,
    data_dir: &Path,
    cutoff_ms: i64,
) -> Result<u64, RecordingError> {
    let mut w = db.write().await?;
    let old: Vec<(String, String)> = sql!(w, |c| sqlx::query_as(
        "SELECT id, file FROM recordings WHERE ended_at IS NOT NULL AND ended_at < $1",
    )
    .bind(cutoff_ms)
    .fetch_all(&mut *c)
    .await)?;
    if old.is_empty() {
        return Ok(0);
    }
    // Their search index goes with them (before them: it names them).
    search::forget_ended_before(&mut w, cutoff_ms).await?;
    sql!(w, |c| sqlx::query(
        "DELETE FROM recordings WHERE ended_at IS NOT NULL AND ended_at < $1"
    )
    .bind(cutoff_ms)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new("jumpgate", AuditAction::RecordingsExpire, "recordings").detail(format!(
            "removed={} ended_before={}",
            old.len(),
            ids::rfc3339(cutoff_ms)
        )),
    )
    .await?;
    w.commit().await?;
    for (id, file) in &old {
        if !valid_file_name(file) {
            tracing::error!(recording = %id, "refusing to delete a recording file with an unexpected name");
            continue;
        }
        if let Err(e) = file::remove(blobs, data_dir, file).await {
            tracing::warn!(recording = %id, error = %e, "cannot remove an expired recording's file")
        }
    }
    Ok(old.len() as u64)
}

/// The recordings' wrapped data keys (one per recording, by recording
/// id), for the key sweep and key status (`keys::stored`).
pub(crate) const STORED_KEYS: stored::TableKeys = stored::TableKeys {
    name: "recordings",
    purpose: Purpose::Recordings,
    count_all: "SELECT COUNT(*) FROM recordings",
    count_like: "SELECT COUNT(*) FROM recordings WHERE wrapped_key LIKE $1",
    stale_after: "SELECT id, wrapped_key FROM recordings
          WHERE id > $1 AND wrapped_key NOT LIKE $2 ORDER BY id LIMIT $3",
    replace: "UPDATE recordings SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3",
};

#[cfg(test)]
mod tests;
