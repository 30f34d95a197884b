//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! A version's parts are applied in one transaction, in the registry's
//! domain order. Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `recordings`: the recordings' metadata and wrapped data keys.
pub(crate) const RECORDINGS: DomainSchema = DomainSchema {
    domain: "recordings",
    sqlite: &[
        // 4: shell session recordings.
        Part {
            version: 4,
            sql: r"
    CREATE TABLE recordings (
        id             TEXT PRIMARY KEY,
        session_id     TEXT NOT NULL,
        username       TEXT NOT NULL,
        endpoint_name  TEXT NOT NULL,
        started_at     INTEGER NOT NULL,
        ended_at       INTEGER,
        duration_ms    INTEGER NOT NULL DEFAULT 0,
        width          INTEGER NOT NULL,
        height         INTEGER NOT NULL,
        input_recorded INTEGER NOT NULL,
        -- 1 when the recording stopped without its final chunk (a gateway
        -- crash, a write failure): it plays up to its last sealed chunk.
        interrupted    INTEGER NOT NULL DEFAULT 0,
        -- The recording's data key, wrapped by the recordings KEK (`keys`).
        wrapped_key    TEXT NOT NULL,
        -- File name under <data dir>/recordings/.
        file           TEXT NOT NULL
    );
    CREATE INDEX recordings_started ON recordings(started_at);
",
        },
        // 8: group scope, from the recording's session (after `sessions`' part).
        Part {
            version: 8,
            sql: r"    ALTER TABLE recordings ADD COLUMN endpoint_group TEXT;
    UPDATE recordings SET endpoint_group =
        (SELECT s.endpoint_group FROM session_events s WHERE s.id = recordings.session_id);

",
        },
        // 10: desktop recordings (JSON lines of screen updates) beside
        // terminal ones (asciicast).
        Part {
            version: 10,
            sql: r"    ALTER TABLE recordings ADD COLUMN kind TEXT NOT NULL DEFAULT 'terminal';
    ",
        },
        // 15: search inside terminal recordings (`recordings::search`).
        Part {
            version: 15,
            sql: SEARCH_SQLITE,
        },
    ],
    postgres: &[
        // 6: the baseline (equal to SQLite schema 8).
        Part {
            version: 6,
            sql: r"
    CREATE TABLE recordings (
        id             TEXT PRIMARY KEY,
        session_id     TEXT NOT NULL,
        username       TEXT NOT NULL,
        endpoint_name  TEXT NOT NULL,
        started_at     BIGINT NOT NULL,
        ended_at       BIGINT,
        duration_ms    BIGINT NOT NULL DEFAULT 0,
        width          BIGINT NOT NULL,
        height         BIGINT NOT NULL,
        input_recorded BIGINT NOT NULL,
        interrupted    BIGINT NOT NULL DEFAULT 0,
        wrapped_key    TEXT NOT NULL,
        file           TEXT NOT NULL,
        endpoint_group TEXT
    );
    CREATE INDEX recordings_started ON recordings(started_at);
    ",
        },
        // 10: as SQLite's 10.
        Part {
            version: 10,
            sql: r"    ALTER TABLE recordings ADD COLUMN kind TEXT NOT NULL DEFAULT 'terminal';
    ",
        },
        // 15: as SQLite's 15.
        Part {
            version: 15,
            sql: SEARCH_POSTGRES,
        },
    ],
};

/// Version 15 on SQLite: the blind index of recordings' words. Its words
/// are keyed hashes (HMAC under the `search` key); nothing of a recording's
/// text is stored (see `recordings::search` and docs/security.md).
const SEARCH_SQLITE: &str = r"
    -- The key of the index's words: one data key, wrapped by the search KEK.
    CREATE TABLE recording_search_key (
        id          TEXT PRIMARY KEY,
        wrapped_key TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    -- One row per indexed recording (written with its words, in one
    -- commit): the durable mark of what is indexed.
    CREATE TABLE recording_search_docs (
        recording_id TEXT PRIMARY KEY,
        indexed_at   INTEGER NOT NULL,
        -- Distinct words, and bytes of text read (escape sequences gone).
        words        INTEGER NOT NULL,
        text_bytes   INTEGER NOT NULL,
        -- 1: its words are in recording_search_words; 0: too many words to
        -- list, so every search reads it.
        listed       INTEGER NOT NULL
    );
    -- Which recording has which word: the word as HMAC-SHA-256 under the
    -- search key, first 16 bytes, hex.
    CREATE TABLE recording_search_words (
        word         TEXT NOT NULL,
        recording_id TEXT NOT NULL,
        PRIMARY KEY (word, recording_id)
    ) WITHOUT ROWID;
    CREATE INDEX recording_search_words_recording ON recording_search_words(recording_id);
";

/// Version 15 on PostgreSQL: as SQLite's.
const SEARCH_POSTGRES: &str = r"
    CREATE TABLE recording_search_key (
        id          TEXT PRIMARY KEY,
        wrapped_key TEXT NOT NULL,
        created_at  BIGINT NOT NULL
    );
    CREATE TABLE recording_search_docs (
        recording_id TEXT PRIMARY KEY,
        indexed_at   BIGINT NOT NULL,
        words        BIGINT NOT NULL,
        text_bytes   BIGINT NOT NULL,
        listed       BIGINT NOT NULL
    );
    CREATE TABLE recording_search_words (
        word         TEXT NOT NULL,
        recording_id TEXT NOT NULL,
        PRIMARY KEY (word, recording_id)
    );
    CREATE INDEX recording_search_words_recording ON recording_search_words(recording_id);
";
