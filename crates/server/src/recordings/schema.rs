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
    ],
};
