//! The durable EPM event queue (design §0 "Events"): an append-only
//! journal in `epm/events/`, one file per segment (`{first seq:020}.seg`),
//! each record `u32 LE length ‖ u32 LE CRC32 ‖ JSON` of an
//! [`EpmEvent`]. A record is fsynced before [`Journal::append`] returns, so
//! the decision it reports is on disk before it is acted on.
//!
//! Sequence numbers start at 1 and are never reused: the highest one
//! acknowledged or dropped is kept in `epm/events/meta.json`, and the next
//! one is past both it and the last record on disk. A torn last record (a
//! kill -9 in the middle of a write) fails its length or CRC check and is
//! cut off when the journal opens.
//!
//! Events are sent in order ([`Journal::batch_after`]) and forgotten when
//! the gateway acknowledges them ([`Journal::ack`]); a segment is deleted
//! once all of it is acknowledged. Beyond the size cap the oldest segment
//! is dropped whole and what it held unacknowledged is counted
//! (`dropped`, reported with every batch).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use jumpgate_proto::epm::{EpmEvent, EpmEventBatch, EpmEventKind, MAX_EVENTS_PAYLOAD};
use serde::{Deserialize, Serialize};

/// Total size of the journal beyond which the oldest segment is dropped.
pub const DEFAULT_CAP: u64 = 64 * 1024 * 1024;
/// A segment is closed (a new one started) past this size.
const SEGMENT_SIZE: u64 = 4 * 1024 * 1024;
/// Largest record accepted when reading back (anything larger is damage).
const MAX_RECORD: u32 = 1024 * 1024;
/// What a batch's envelope (`{"type":"epm_events","events":[…],"dropped":N}`)
/// adds to its events, rounded up.
const ENVELOPE: usize = 96;

/// Why the journal could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("EPM journal {path}: {cause}")]
    Io {
        path: String,
        #[source]
        cause: io::Error,
    },
    #[error("EPM journal {path}: {reason}")]
    Corrupt { path: String, reason: String },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |cause| JournalError::Io {
        path: path.display().to_string(),
        cause,
    }
}

/// What survives besides the records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    /// Every event up to here is acknowledged.
    acked: u64,
    /// Events dropped unacknowledged because the journal was full.
    dropped: u64,
    /// The highest sequence number ever handed out that may no longer be
    /// on disk (acknowledged or dropped).
    floor: u64,
}

#[derive(Debug)]
struct Segment {
    first: u64,
    path: PathBuf,
    size: u64,
    /// Sequence number of its last record (0: empty).
    last: u64,
}

/// The journal. Not thread-safe by itself: the agent keeps it behind a
/// mutex and calls it from blocking tasks (it fsyncs).
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    cap: u64,
    meta: Meta,
    segments: Vec<Segment>,
    /// The unacknowledged events, in order, with their encoded size.
    pending: VecDeque<(EpmEvent, usize)>,
    next: u64,
    /// The open tail segment.
    tail: Option<File>,
}

impl Journal {
    /// Opens (creating) the journal in `dir` with the default cap.
    ///
    /// # Errors
    /// The directory or a segment cannot be read or repaired.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        Self::open_with_cap(dir, DEFAULT_CAP)
    }

    /// [`Journal::open`] with a size cap of `cap` bytes.
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn open_with_cap(dir: &Path, cap: u64) -> Result<Self, JournalError> {
        let meta_path = dir.join("meta.json");
        let meta = match fs::read(&meta_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| JournalError::Corrupt {
                path: meta_path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Meta::default(),
            Err(e) => return Err(io_at(&meta_path)(e)),
        };
        let mut firsts = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e.collect::<Vec<_>>(),
            // Created with the first event.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_at(dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_at(dir))?;
            let name = entry.file_name();
            let Some(first) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            firsts.push(first);
        }
        firsts.sort_unstable();
        let mut j = Self {
            dir: dir.to_owned(),
            cap,
            meta,
            segments: Vec::new(),
            pending: VecDeque::new(),
            next: 1,
            tail: None,
        };
        for first in firsts {
            let path = j.segment_path(first);
            let (records, good) = read_segment(&path)?;
            let size = fs::metadata(&path).map_err(io_at(&path))?.len();
            if good < size {
                // A torn or damaged end: only the last segment may have
                // one (a crash while appending); cut it off so appends
                // follow valid records.
                tracing::warn!(
                    segment = %path.display(),
                    kept = good,
                    cut = size - good,
                    "EPM journal: damaged end of a segment removed"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_at(&path))?;
                f.set_len(good).map_err(io_at(&path))?;
                f.sync_all().map_err(io_at(&path))?;
            }
            let mut last = 0;
            for (event, len) in records {
                last = event.seq;
                if event.seq > j.meta.acked {
                    j.pending.push_back((event, len));
                }
            }
            j.segments.push(Segment {
                first,
                path,
                size: good,
                last,
            });
        }
        let last_on_disk = j.segments.iter().map(|s| s.last).max().unwrap_or(0);
        j.next = last_on_disk.max(j.meta.floor).max(j.meta.acked) + 1;
        j.collect()?;
        Ok(j)
    }

    /// The journal's directory and its parent (`epm/`), owner only.
    fn create_dirs(&self) -> Result<(), JournalError> {
        if let Some(parent) = self.dir.parent() {
            jumpgate_net::fs::create_private_dir(parent).map_err(io_at(parent))?;
        }
        jumpgate_net::fs::create_private_dir(&self.dir).map_err(io_at(&self.dir))
    }

    fn segment_path(&self, first: u64) -> PathBuf {
        self.dir.join(format!("{first:020}.seg"))
    }

    /// Appends an event stamped `at`, fsynced; its sequence number.
    ///
    /// # Errors
    /// The record could not be written and synced (the caller must not act
    /// on the decision it reports).
    pub fn append(&mut self, at: String, kind: EpmEventKind) -> Result<u64, JournalError> {
        let seq = self.next;
        let event = EpmEvent { seq, at, kind };
        // Serializing a plain struct cannot fail.
        let json = serde_json::to_vec(&event).unwrap_or_default();
        let needs_new = match self.segments.last() {
            None => true,
            Some(s) => s.size >= SEGMENT_SIZE,
        };
        if needs_new || self.tail.is_none() {
            if needs_new {
                self.create_dirs()?;
                let path = self.segment_path(seq);
                self.segments.push(Segment {
                    first: seq,
                    path,
                    size: 0,
                    last: 0,
                });
            }
            let path = &self
                .segments
                .last()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(io_at(path))?;
            if needs_new {
                jumpgate_net::fs::sync_parent(path).map_err(io_at(path))?;
            }
            self.tail = Some(f);
        }
        let mut record = Vec::with_capacity(8 + json.len());
        record.extend_from_slice(&(json.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        record.extend_from_slice(&json);
        let seg = self
            .segments
            .last_mut()
            .ok_or_else(|| JournalError::Corrupt {
                path: self.dir.display().to_string(),
                reason: "no segment".into(),
            })?;
        let write = (|| {
            let f = self.tail.as_mut().ok_or(io::ErrorKind::NotConnected)?;
            f.write_all(&record)?;
            f.sync_data()
        })();
        if let Err(e) = write {
            // Whatever part of the record reached the file is cut off
            // when the journal next opens; start a fresh handle.
            self.tail = None;
            return Err(io_at(&seg.path)(e));
        }
        seg.size += record.len() as u64;
        seg.last = seq;
        self.next = seq + 1;
        self.pending.push_back((event, json.len()));
        self.collect()?;
        Ok(seq)
    }

    /// The events not yet acknowledged, in order.
    pub fn pending(&self) -> impl Iterator<Item = &EpmEvent> {
        self.pending.iter().map(|(e, _)| e)
    }

    /// The highest acknowledged sequence number.
    pub fn acked(&self) -> u64 {
        self.meta.acked
    }

    /// Events dropped unacknowledged so far (the journal was full).
    pub fn dropped(&self) -> u64 {
        self.meta.dropped
    }

    /// The next batch to send: the unacknowledged events after `after`, in
    /// order, as many as fit [`MAX_EVENTS_PAYLOAD`] (at least one).
    /// `None` when there is nothing after `after`.
    pub fn batch_after(&self, after: u64) -> Option<EpmEventBatch> {
        let mut size = ENVELOPE;
        let mut events = Vec::new();
        for (e, len) in self.pending.iter().filter(|(e, _)| e.seq > after) {
            if !events.is_empty() && size + len + 1 > MAX_EVENTS_PAYLOAD {
                break;
            }
            size += len + 1;
            events.push(e.clone());
        }
        if events.is_empty() {
            return None;
        }
        Some(EpmEventBatch {
            events,
            dropped: self.meta.dropped,
        })
    }

    /// The gateway stored every event up to `through`: forget them (and
    /// delete segments that hold nothing else). An ack beyond what was
    /// handed out counts only up to it.
    ///
    /// # Errors
    /// The acknowledgement could not be saved.
    pub fn ack(&mut self, through: u64) -> Result<(), JournalError> {
        let through = through.min(self.next - 1);
        if through <= self.meta.acked {
            return Ok(());
        }
        while self.pending.front().is_some_and(|(e, _)| e.seq <= through) {
            self.pending.pop_front();
        }
        self.meta.acked = through;
        self.meta.floor = self.meta.floor.max(through);
        self.save_meta()?;
        self.collect()
    }

    fn save_meta(&self) -> Result<(), JournalError> {
        self.create_dirs()?;
        let path = self.dir.join("meta.json");
        let bytes = serde_json::to_vec(&self.meta).unwrap_or_default();
        jumpgate_net::fs::write_private_atomic(&path, &bytes).map_err(io_at(&path))
    }

    /// Deletes fully acknowledged segments (never the tail) and drops the
    /// oldest ones beyond the cap.
    fn collect(&mut self) -> Result<(), JournalError> {
        let mut changed = false;
        while self.segments.len() > 1 {
            let total: u64 = self.segments.iter().map(|s| s.size).sum();
            let oldest = &self.segments[0];
            let next_first = self.segments[1].first;
            let acked_whole = next_first <= self.meta.acked + 1;
            if !acked_whole && total <= self.cap {
                break;
            }
            if !acked_whole {
                let lost = self
                    .pending
                    .iter()
                    .take_while(|(e, _)| e.seq < next_first)
                    .count() as u64;
                for _ in 0..lost {
                    self.pending.pop_front();
                }
                self.meta.dropped += lost;
                self.meta.floor = self.meta.floor.max(next_first - 1);
                // Saved before the file goes, so its numbers are never
                // handed out again.
                self.save_meta()?;
                tracing::warn!(lost, "EPM journal full: dropped its oldest segment");
            }
            let path = oldest.path.clone();
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
            self.segments.remove(0);
            changed = true;
        }
        // The tail alone, wholly acknowledged and big: start afresh.
        if let [only] = self.segments.as_slice()
            && only.last != 0
            && only.last <= self.meta.acked
            && only.size >= SEGMENT_SIZE
        {
            let path = only.path.clone();
            self.tail = None;
            let _ = fs::remove_file(&path);
            self.segments.clear();
            changed = true;
        }
        if changed {
            jumpgate_net::fs::sync_parent(&self.dir.join("meta.json")).map_err(io_at(&self.dir))?;
        }
        Ok(())
    }
}

/// The valid records of a segment and the length of its valid prefix.
fn read_segment(path: &Path) -> Result<(Vec<(EpmEvent, usize)>, u64), JournalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_at(path))?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if len > MAX_RECORD || bytes.len() - at - 8 < len as usize {
            break;
        }
        let body = &bytes[at + 8..at + 8 + len as usize];
        if crc32fast::hash(body) != crc {
            break;
        }
        let Ok(event) = serde_json::from_slice::<EpmEvent>(body) else {
            break;
        };
        out.push((event, len as usize));
        at += 8 + len as usize;
    }
    Ok((out, at as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(n: u64) -> EpmEventKind {
        EpmEventKind::BundleAccepted { version: n }
    }

    fn seqs(j: &Journal) -> Vec<u64> {
        j.pending().map(|e| e.seq).collect()
    }

    #[test]
    fn appends_survive_a_reopen_in_order_and_acks_forget_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        let mut j = Journal::open(&path).unwrap();
        for i in 1..=5 {
            assert_eq!(j.append("t".into(), kind(i)).unwrap(), i);
        }
        drop(j);
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(seqs(&j), [1, 2, 3, 4, 5]);
        j.ack(3).unwrap();
        assert_eq!(seqs(&j), [4, 5]);
        drop(j);
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(seqs(&j), [4, 5]);
        assert_eq!(j.acked(), 3);
        // An ack past what exists counts only to the last one.
        j.ack(99).unwrap();
        assert_eq!(j.acked(), 5);
        assert!(j.batch_after(0).is_none());
        drop(j);
        // Numbers are never reused, even with everything acknowledged.
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.append("t".into(), kind(6)).unwrap(), 6);
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        let mut j = Journal::open(&path).unwrap();
        for i in 1..=3 {
            j.append("t".into(), kind(i)).unwrap();
        }
        drop(j);
        let seg = path.join(format!("{:020}.seg", 1));
        let full = fs::read(&seg).unwrap();
        // A kill -9 in the middle of the fourth record's write.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        let json = br#"{"seq":4,"at":"t","kind":"bundle-accepted","version":4}"#;
        f.write_all(&(json.len() as u32).to_le_bytes()).unwrap();
        f.write_all(&crc32fast::hash(json).to_le_bytes()).unwrap();
        f.write_all(&json[..10]).unwrap();
        drop(f);
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(seqs(&j), [1, 2, 3]);
        assert_eq!(fs::read(&seg).unwrap(), full, "the torn end is cut off");
        assert_eq!(j.append("t".into(), kind(4)).unwrap(), 4);
        drop(j);
        // A flipped byte in the last record: it fails its CRC.
        let mut bytes = fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x20;
        fs::write(&seg, &bytes).unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(seqs(&j), [1, 2, 3]);
    }

    #[test]
    fn batches_are_in_order_and_within_the_payload_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("events")).unwrap();
        for i in 1..=1000 {
            j.append(
                "2026-12-02T05:00:00Z".into(),
                EpmEventKind::BundleRefused {
                    version: i,
                    why: "x".repeat(200),
                },
            )
            .unwrap();
        }
        let mut after = 0;
        let mut seen = Vec::new();
        while let Some(batch) = j.batch_after(after) {
            let bytes = jumpgate_proto::control::Control::EpmEvents(batch.clone()).to_bytes();
            assert!(bytes.len() <= MAX_EVENTS_PAYLOAD, "{}", bytes.len());
            assert!(batch.events.len() > 10);
            after = batch.events.last().unwrap().seq;
            seen.extend(batch.events.iter().map(|e| e.seq));
        }
        assert_eq!(seen, (1..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn beyond_the_cap_the_oldest_segment_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        // Small cap: segments are 4 MiB, so write records of ~64 KiB.
        let mut j = Journal::open_with_cap(&path, 6 * 1024 * 1024).unwrap();
        let why = "y".repeat(64 * 1024);
        let mut n = 0;
        while j.dropped() == 0 {
            n += 1;
            j.append(
                "t".into(),
                EpmEventKind::BundleRefused {
                    version: n,
                    why: why.clone(),
                },
            )
            .unwrap();
            assert!(n < 1000);
        }
        let dropped = j.dropped();
        let first = j.pending().next().unwrap().seq;
        assert_eq!(first, dropped + 1, "the oldest went, in order");
        let last = j.pending().last().unwrap().seq;
        assert_eq!(last, n);
        drop(j);
        let mut j = Journal::open_with_cap(&path, 6 * 1024 * 1024).unwrap();
        assert_eq!(j.dropped(), dropped);
        assert_eq!(j.pending().next().unwrap().seq, first);
        assert_eq!(j.append("t".into(), kind(0)).unwrap(), n + 1);
        assert_eq!(j.batch_after(0).unwrap().dropped, dropped);
    }
}
