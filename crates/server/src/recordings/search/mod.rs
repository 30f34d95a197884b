//! Search inside terminal recordings: "which session typed or printed
//! `rm -rf /var/lib`?", answered with the sessions and the moments.
//!
//! # The index: a blind index of words
//!
//! When a terminal recording ends, a background task ([`run`]) reads it
//! (decrypting it as a player would), turns it into text ([`text`]:
//! escape sequences gone, output and typed input as two streams) and
//! stores, for each distinct **word** of that text, one row
//! `(HMAC-SHA-256(search key, word)[..16], recording id)` in
//! `recording_search_words`. The search key is a data key of its own,
//! wrapped by the `search` KEK of the key hierarchy and re-wrapped by the
//! rotation sweep like every other data key ([`SEARCH_KEY`]). Nothing of the
//! text itself, and no position, is stored: the words are keyed hashes, so
//! the database alone (a PostgreSQL dump, a stolen SQLCipher file with its
//! key) does not tell which words a session contained. What it does tell
//! (which recordings share a word, how many distinct words each has) is in
//! docs/security.md.
//!
//! `recording_search_docs` has one row per indexed recording, written in
//! the same commit as its words: it is the durable "indexed" mark. The
//! task indexes every ended terminal recording without one, oldest end
//! first, at start, when a recording ends ([`recording_ended`]), and every
//! [`POLL_EVERY`]; a crash mid-recording commits nothing and the next pass
//! does it again, and two gateways indexing one recording write it once
//! (the mark's primary key). A recording that retention removed meanwhile
//! is not indexed ([`forget_ended_before`] removes the index rows of
//! expired recordings in retention's own transaction).
//!
//! # A search
//!
//! [`search`] parses the text ([`text::Query`]), hashes its words with the
//! same key, and asks the database for the recordings, in the caller's
//! groups only, that have **all** of them (and those too rich in words to
//! list, `listed = 0`), newest first. Each candidate is then decrypted and
//! read to confirm the phrase and find its time offsets: the index narrows,
//! the recording decides. A candidate that has the words but not the phrase
//! costs one read and is not a result. At most [`SCAN_PER_PAGE`]
//! candidates are read per request; the cursor continues after the last
//! one read.

#[doc(hidden)]
pub(crate) mod bench;
mod text;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use aws_lc_rs::hmac;
use jumpgate_api_types as api;
use jumpgate_api_types::recording_search::{
    RecordingHit, RecordingSearch, SearchMatch, SearchStream,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(crate) use text::Query;
use text::{Doc, Which};

use super::{RecordingError, Row};
use crate::blobs::Blobs;
use crate::keys::stored::TableKeys;
use crate::keys::{KeyError, Keyring, Purpose, WrappedKey};
use crate::rbac::ReadScope;
use crate::store::{Engine, Exec, Store, sql};

/// The purpose whose KEK wraps the search key.
const PURPOSE: Purpose = Purpose::Search;
/// The search key's row in `recording_search_key`.
const KEY_ID: &str = "words";
/// How often the index looks for recordings it was not told about.
const POLL_EVERY: Duration = Duration::from_secs(30);
/// Recordings taken per pass of the indexer.
const PASS: i64 = 32;
/// More distinct words than this and a recording is not listed word by
/// word: every search reads it (`listed = 0`).
const MAX_WORDS: usize = 200_000;
/// Words per insert statement.
const WORDS_PER_STATEMENT: usize = 5_000;
/// Candidate recordings read per request.
pub(crate) const SCAN_PER_PAGE: usize = 200;
/// Matches listed per recording.
const MATCHES_PER_RECORDING: usize = 10;
/// Characters of context each side of a match.
const SNIPPET_AROUND: usize = 40;
/// After a recording could not be read (blob store unreachable), the
/// indexer tries it again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The search key's wrapped data key, for the rotation sweep and key
/// status.
pub(crate) const SEARCH_KEY: TableKeys = TableKeys {
    name: "recording search key",
    purpose: PURPOSE,
    count_all: "SELECT COUNT(*) FROM recording_search_key",
    count_like: "SELECT COUNT(*) FROM recording_search_key WHERE wrapped_key LIKE $1",
    stale_after: "SELECT id, wrapped_key FROM recording_search_key
          WHERE id > $1 AND wrapped_key NOT LIKE $2 ORDER BY id LIMIT $3",
    replace: "UPDATE recording_search_key SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3",
};

/// Why indexing or a search failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SearchError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("the search key vanished from the database")]
    KeyVanished,
    #[error("invalid cursor")]
    BadCursor,
}

/// Wakes the indexers of this process.
static WAKE: Notify = Notify::const_new();

/// A recording's end is committed: index it now rather than at the next
/// poll.
pub(crate) fn recording_ended() {
    WAKE.notify_waiters();
}

/// The key words are hashed with.
pub(crate) struct WordKey(hmac::Key);

impl std::fmt::Debug for WordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WordKey(..)")
    }
}

impl WordKey {
    /// A word as the index stores it: HMAC-SHA-256, first 16 bytes, hex.
    pub(crate) fn hash(&self, word: &str) -> String {
        let tag = hmac::sign(&self.0, word.as_bytes());
        let mut out = String::with_capacity(32);
        for b in &tag.as_ref()[..16] {
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        out
    }
}

/// The site's search key, made on first use (two gateways making it at
/// once agree on the one stored first).
pub(crate) async fn word_key(db: &Store, keys: &Keyring) -> Result<WordKey, SearchError> {
    let mut c = db.conn().await?;
    let stored = match read_key(&mut c).await? {
        Some(w) => w,
        None => {
            drop(c);
            let (_, wrapped) = keys.new_data_key(PURPOSE)?;
            let mut c = db.write_conn().await?;
            sql!(c, |c| sqlx::query(
                "INSERT INTO recording_search_key (id, wrapped_key, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING"
            )
            .bind(KEY_ID)
            .bind(wrapped.as_str())
            .bind(crate::ids::now_ms())
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            read_key(&mut c).await?.ok_or(SearchError::KeyVanished)?
        }
    };
    let key = keys.unwrap(PURPOSE, &WrappedKey::from(stored))?;
    Ok(WordKey(hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes())))
}

async fn read_key(e: &mut dyn Exec) -> Result<Option<String>, sqlx::Error> {
    sql!(e, |c| sqlx::query_scalar(
        "SELECT wrapped_key FROM recording_search_key WHERE id = $1"
    )
    .bind(KEY_ID)
    .fetch_optional(&mut *c)
    .await)
}

/// Where recordings are read from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Source<'a> {
    pub(crate) db: &'a Store,
    pub(crate) keys: &'a Keyring,
    pub(crate) blobs: &'a Blobs,
    pub(crate) data_dir: &'a Path,
}

/// A recording's text as far as it could be read.
struct Read {
    doc: Doc,
    /// Why reading stopped before the end (a damaged chunk).
    damaged: Option<super::ReadError>,
}

/// Reads recording `row` whole into text. A chunk that fails its check
/// ends the text there (what came before is kept).
async fn read_doc(
    src: Source<'_>,
    row: Row,
    stop: Option<&CancellationToken>,
) -> Result<Option<Read>, RecordingError> {
    let mut opened = super::open_row(src.keys, src.blobs, src.data_dir, row).await?;
    let mut doc = Doc::default();
    let damaged = loop {
        if stop.is_some_and(CancellationToken::is_cancelled) {
            return Ok(None);
        }
        match opened.next().await {
            Ok(Some(piece)) => doc.feed(&piece),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    doc.finish();
    Ok(Some(Read { doc, damaged }))
}

/// What one indexing pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pass {
    pub(crate) indexed: u64,
    /// Bytes of asciicast read, and of text kept.
    pub(crate) cast_bytes: u64,
    pub(crate) text_bytes: u64,
    /// The pass was full: more may be waiting.
    pub(crate) more: bool,
}

/// Recordings that could not be read, and when to try again.
pub(crate) type Retry = HashMap<String, tokio::time::Instant>;

/// Indexes up to [`PASS`] ended terminal recordings that have no index
/// yet (except those in `retry` whose time has not come).
pub(crate) async fn index_pending(
    src: Source<'_>,
    retry: &mut Retry,
    stop: &CancellationToken,
) -> Result<Pass, SearchError> {
    let now = tokio::time::Instant::now();
    retry.retain(|_, at| *at > now);
    let rows: Vec<Row> = {
        let mut c = src.db.conn().await?;
        sql!(c, |c| {
            sqlx::query_as(
            "SELECT r.id, r.session_id, r.username, r.endpoint_name, r.started_at, r.ended_at, r.duration_ms, r.width, r.height, r.input_recorded, r.interrupted, r.wrapped_key, r.file, r.kind
               FROM recordings r
              WHERE r.ended_at IS NOT NULL AND r.kind = 'terminal'
                AND NOT EXISTS (SELECT 1 FROM recording_search_docs d WHERE d.recording_id = r.id)
              ORDER BY r.ended_at, r.id LIMIT $1"
        )
        .bind(PASS + i64::try_from(retry.len()).unwrap_or(0))
        .fetch_all(&mut *c)
        .await
        })?
    };
    let mut pass = Pass {
        more: rows.len() as i64 >= PASS,
        ..Pass::default()
    };
    let rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| !retry.contains_key(&r.id))
        .collect();
    if rows.is_empty() {
        pass.more = false;
        return Ok(pass);
    }
    let key = word_key(src.db, src.keys).await?;
    for row in rows {
        if stop.is_cancelled() {
            break;
        }
        let id = row.id.clone();
        let doc = match read_doc(src, row, Some(stop)).await {
            // The store broke off part-way: not damage, try again.
            Ok(Some(Read {
                damaged: Some(super::ReadError::Io(e)),
                ..
            })) => {
                tracing::warn!(recording = %id, error = %e, "cannot read a recording to index it; trying again later");
                retry.insert(id, now + RETRY_AFTER);
                continue;
            }
            Ok(Some(read)) => {
                if let Some(e) = &read.damaged {
                    tracing::warn!(recording = %id, error = %e, "recording damaged: indexed up to the damage");
                }
                Some(read.doc)
            }
            Ok(None) => break,
            // Never readable again: indexed as empty, so it is not read
            // at every pass.
            Err(RecordingError::Keys(e)) => {
                tracing::warn!(recording = %id, error = %e, "recording key does not unwrap: not searchable");
                None
            }
            Err(RecordingError::Read(super::ReadError::Io(e)) | RecordingError::Io(e))
                if e.kind() == std::io::ErrorKind::NotFound =>
            {
                tracing::warn!(recording = %id, error = %e, "recording file missing: not searchable");
                None
            }
            Err(RecordingError::Read(e)) if !matches!(e, super::ReadError::Io(_)) => {
                tracing::warn!(recording = %id, error = %e, "recording unreadable: not searchable");
                None
            }
            Err(e) => {
                tracing::warn!(recording = %id, error = %e, "cannot read a recording to index it; trying again later");
                retry.insert(id, now + RETRY_AFTER);
                continue;
            }
        };
        let doc = doc.unwrap_or_default();
        if doc.cut() {
            tracing::warn!(recording = %id, max_bytes = text::MAX_TEXT, "recording text too long: only its beginning is searchable");
        }
        if write_index(src.db, &key, &id, &doc).await? {
            pass.indexed += 1;
            pass.cast_bytes += doc.cast_bytes;
            pass.text_bytes += doc.text_bytes() as u64;
        }
    }
    Ok(pass)
}

/// The distinct words of `doc`, hashed; `None` beyond [`MAX_WORDS`].
fn hashed_words(key: &WordKey, doc: &Doc) -> Option<Vec<String>> {
    let mut words = BTreeSet::new();
    for (_, s) in doc.streams() {
        for w in text::words(s.text()) {
            words.insert(w);
            if words.len() > MAX_WORDS {
                return None;
            }
        }
    }
    Some(words.iter().map(|w| key.hash(w)).collect())
}

/// Writes recording `id`'s index (its mark and its words) in one commit;
/// `false` when another gateway indexed it first or it is gone.
async fn write_index(db: &Store, key: &WordKey, id: &str, doc: &Doc) -> Result<bool, SearchError> {
    let words = hashed_words(key, doc);
    let mut w = db.write_alone().await?;
    let marked = sql!(w, |c| {
        sqlx::query(
        "INSERT INTO recording_search_docs (recording_id, indexed_at, words, text_bytes, listed)
         SELECT CAST($1 AS TEXT), CAST($2 AS BIGINT), CAST($3 AS BIGINT), CAST($4 AS BIGINT), CAST($5 AS BIGINT)
          WHERE EXISTS (SELECT 1 FROM recordings WHERE id = $1)
         ON CONFLICT (recording_id) DO NOTHING"
    )
    .bind(id)
    .bind(crate::ids::now_ms())
    .bind(words.as_ref().map_or(0, |w| w.len() as i64))
    .bind(doc.text_bytes() as i64)
    .bind(i64::from(words.is_some()))
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    if marked == 0 {
        return Ok(false);
    }
    let insert = match db.engine() {
        Engine::Sqlite => {
            "INSERT INTO recording_search_words (word, recording_id)
             SELECT value, $2 FROM json_each($1) WHERE true
             ON CONFLICT DO NOTHING"
        }
        Engine::Postgres => {
            "INSERT INTO recording_search_words (word, recording_id)
             SELECT w, CAST($2 AS TEXT) FROM json_array_elements_text(CAST($1 AS JSON)) AS w
             ON CONFLICT DO NOTHING"
        }
    };
    for batch in words
        .as_deref()
        .unwrap_or_default()
        .chunks(WORDS_PER_STATEMENT)
    {
        let json = serde_json::to_string(batch).unwrap_or_else(|_| "[]".into());
        sql!(w, |c| sqlx::query(insert)
            .bind(&json)
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    w.commit().await?;
    Ok(true)
}

/// Removes the index rows of the recordings that `recordings::expire`
/// removes (those that ended before `cutoff_ms`), inside its transaction
/// and before it deletes them.
pub(crate) async fn forget_ended_before(
    e: &mut dyn Exec,
    cutoff_ms: i64,
) -> Result<(), sqlx::Error> {
    for q in [
        "DELETE FROM recording_search_words WHERE recording_id IN
           (SELECT id FROM recordings WHERE ended_at IS NOT NULL AND ended_at < $1)",
        "DELETE FROM recording_search_docs WHERE recording_id IN
           (SELECT id FROM recordings WHERE ended_at IS NOT NULL AND ended_at < $1)",
    ] {
        sql!(e, |c| sqlx::query(q)
            .bind(cutoff_ms)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// The indexer: runs until the gateway stops.
pub(crate) async fn run(st: crate::state::AppState) {
    let stop = st.shutdown.clone();
    let mut retry = Retry::new();
    loop {
        let woken = WAKE.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let src = Source {
            db: &st.db,
            keys: &st.keys,
            blobs: &st.blobs,
            data_dir: &st.config.data_dir,
        };
        let more = match index_pending(src, &mut retry, &stop).await {
            Ok(pass) => {
                if pass.indexed > 0 {
                    tracing::debug!(
                        recordings = pass.indexed,
                        bytes = pass.cast_bytes,
                        "recordings indexed for search"
                    );
                }
                pass.more
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot index recordings for search now");
                false
            }
        };
        if more && !stop.is_cancelled() {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = &mut woken => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// Where a page of results continues: after the recording started at
/// `.0` with id `.1` (newest first, then by id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor(i64, String);

impl Cursor {
    pub(crate) fn parse(s: &str) -> Result<Self, SearchError> {
        let (at, id) = s.split_once('~').ok_or(SearchError::BadCursor)?;
        let at = at.parse().map_err(|_| SearchError::BadCursor)?;
        if !super::valid_file_name(&format!("{id}.jgrec")) {
            return Err(SearchError::BadCursor);
        }
        Ok(Self(at, id.to_owned()))
    }

    fn text(&self) -> String {
        format!("{}~{}", self.0, self.1)
    }
}

/// A search as the API asks it.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) query: &'a Query,
    pub(crate) scope: &'a ReadScope,
    /// Results wanted (recordings).
    pub(crate) limit: usize,
    pub(crate) after: Option<Cursor>,
}

/// A candidate row: the recording and its group.
#[derive(sqlx::FromRow)]
struct Candidate {
    #[sqlx(flatten)]
    row: Row,
    endpoint_group: Option<String>,
}

/// What a search found, with the groups of the recordings it found (for
/// the audit entry).
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) page: RecordingSearch,
    pub(crate) groups: BTreeSet<String>,
}

/// Runs a search (see the module doc).
pub(crate) async fn search(src: Source<'_>, req: &Request<'_>) -> Result<Found, SearchError> {
    let key = word_key(src.db, src.keys).await?;
    let hashed: Vec<String> = req.query.words.iter().map(|w| key.hash(w)).collect();
    let words_json = serde_json::to_string(&hashed).unwrap_or_else(|_| "[]".into());
    let scope = req.scope.sql_param();
    let candidates_sql = match src.db.engine() {
        Engine::Sqlite => {
            "SELECT r.id, r.session_id, r.username, r.endpoint_name, r.started_at, r.ended_at, r.duration_ms, r.width, r.height, r.input_recorded, r.interrupted, r.wrapped_key, r.file, r.kind, r.endpoint_group
               FROM recordings r
              WHERE r.kind = 'terminal'
                AND r.id IN (SELECT w.recording_id FROM recording_search_words w
                              WHERE w.word IN (SELECT value FROM json_each($1))
                              GROUP BY w.recording_id HAVING COUNT(*) = $2
                             UNION
                             SELECT d.recording_id FROM recording_search_docs d WHERE d.listed = 0)
                AND ($3 IS NULL OR r.endpoint_group IN (SELECT value FROM json_each($3)))
                AND ($4 IS NULL OR r.started_at < $4 OR (r.started_at = $4 AND r.id > $5))
              ORDER BY r.started_at DESC, r.id LIMIT $6"
        }
        Engine::Postgres => {
            "SELECT r.id, r.session_id, r.username, r.endpoint_name, r.started_at, r.ended_at, r.duration_ms, r.width, r.height, r.input_recorded, r.interrupted, r.wrapped_key, r.file, r.kind, r.endpoint_group
               FROM recordings r
              WHERE r.kind = 'terminal'
                AND r.id IN (SELECT w.recording_id FROM recording_search_words w
                              WHERE w.word IN (SELECT json_array_elements_text($1::json))
                              GROUP BY w.recording_id HAVING COUNT(*) = $2
                             UNION
                             SELECT d.recording_id FROM recording_search_docs d WHERE d.listed = 0)
                AND ($3::text IS NULL OR r.endpoint_group IN (SELECT json_array_elements_text($3::json)))
                AND ($4::bigint IS NULL OR r.started_at < $4 OR (r.started_at = $4 AND r.id > $5::text))
              ORDER BY r.started_at DESC, r.id LIMIT $6"
        }
    };
    let mut results = Vec::new();
    let mut groups = BTreeSet::new();
    let mut after = req.after.clone();
    let mut scanned = 0usize;
    let mut exhausted = false;
    'pages: while results.len() < req.limit && scanned < SCAN_PER_PAGE {
        let want = (SCAN_PER_PAGE - scanned).min(64) as i64;
        let rows: Vec<Candidate> = {
            let mut c = src.db.conn().await?;
            sql!(c, |c| sqlx::query_as(candidates_sql)
                .bind(&words_json)
                .bind(hashed.len() as i64)
                .bind(scope.as_deref())
                .bind(after.as_ref().map(|a| a.0))
                .bind(after.as_ref().map(|a| a.1.as_str()).unwrap_or(""))
                .bind(want)
                .fetch_all(&mut *c)
                .await)?
        };
        if (rows.len() as i64) < want {
            exhausted = true;
        }
        for cand in rows {
            scanned += 1;
            after = Some(Cursor(cand.row.started_at, cand.row.id.clone()));
            let info = super::to_api(&cand.row);
            let id = cand.row.id.clone();
            let read = match read_doc(src, cand.row, None).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(recording = %id, error = %e, "cannot read a recording to search it");
                    continue;
                }
            };
            if let Some(hit) = matches_in(&read.doc, req.query, info) {
                groups.extend(cand.endpoint_group);
                results.push(hit);
                if results.len() >= req.limit {
                    exhausted = false;
                    break 'pages;
                }
            }
            if scanned >= SCAN_PER_PAGE {
                break 'pages;
            }
        }
        if exhausted {
            break;
        }
    }
    let not_indexed = not_indexed(src.db, scope.as_deref()).await?;
    Ok(Found {
        page: RecordingSearch {
            results,
            next_cursor: if exhausted {
                None
            } else {
                after.map(|a| a.text())
            },
            not_indexed,
        },
        groups,
    })
}

/// The matches of `query` in `doc`, if any.
fn matches_in(doc: &Doc, query: &Query, recording: api::Recording) -> Option<RecordingHit> {
    let mut matches = Vec::new();
    for (which, s) in doc.streams() {
        for r in query.find(s.text(), MATCHES_PER_RECORDING + 1) {
            matches.push(SearchMatch {
                // The moment the last character of the match arrived: the
                // whole text is on the screen there.
                offset_secs: s.time_at(r.end.saturating_sub(1)),
                stream: match which {
                    Which::Output => SearchStream::Output,
                    Which::Input => SearchStream::Input,
                },
                snippet: text::snippet(s.text(), r, SNIPPET_AROUND),
            });
        }
    }
    if matches.is_empty() {
        return None;
    }
    matches.sort_by(|a, b| a.offset_secs.total_cmp(&b.offset_secs));
    let more = matches.len() > MATCHES_PER_RECORDING;
    matches.truncate(MATCHES_PER_RECORDING);
    Some(RecordingHit {
        recording,
        matches,
        more,
    })
}

/// Terminal recordings in `scope` not indexed yet.
async fn not_indexed(db: &Store, scope: Option<&str>) -> Result<u64, sqlx::Error> {
    let q = match db.engine() {
        Engine::Sqlite => {
            "SELECT COUNT(*) FROM recordings r
              WHERE r.kind = 'terminal'
                AND NOT EXISTS (SELECT 1 FROM recording_search_docs d WHERE d.recording_id = r.id)
                AND ($1 IS NULL OR r.endpoint_group IN (SELECT value FROM json_each($1)))"
        }
        Engine::Postgres => {
            "SELECT COUNT(*) FROM recordings r
              WHERE r.kind = 'terminal'
                AND NOT EXISTS (SELECT 1 FROM recording_search_docs d WHERE d.recording_id = r.id)
                AND ($1::text IS NULL OR r.endpoint_group IN (SELECT json_array_elements_text($1::json)))"
        }
    };
    let mut c = db.conn().await?;
    let n: i64 = sql!(c, |c| sqlx::query_scalar(q)
        .bind(scope)
        .fetch_one(&mut *c)
        .await)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests;
