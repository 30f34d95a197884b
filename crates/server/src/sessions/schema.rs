//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! A version's parts are applied in one transaction, in the registry's
//! domain order. Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `sessions`: the session event table.
pub(crate) const SESSIONS: DomainSchema = DomainSchema {
    domain: "sessions",
    sqlite: &[
        // 1: the session event table.
        Part {
            version: 1,
            sql: r"    CREATE TABLE session_events (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL,
        username      TEXT NOT NULL,
        endpoint_id   TEXT,
        endpoint_name TEXT NOT NULL,
        kind          TEXT NOT NULL,
        target        TEXT NOT NULL,
        started_at    INTEGER NOT NULL,
        ended_at      INTEGER,
        bytes_up      INTEGER NOT NULL DEFAULT 0,
        bytes_down    INTEGER NOT NULL DEFAULT 0,
        outcome       TEXT NOT NULL
    );
    CREATE INDEX session_events_started ON session_events(started_at);
    ",
        },
        // 7: a running session's progress (last activity, bytes so far), so a
        // session cut by a crash ends at its last activity, not at the restart.
        Part {
            version: 7,
            sql: r"
    ALTER TABLE session_events ADD COLUMN last_active_at INTEGER;
    ",
        },
        // 8: group scope: a session keeps the group its endpoint was in at the time; rows written before are back-filled from the endpoints as they are now (none when the endpoint is gone).
        Part {
            version: 8,
            sql: r"
    ALTER TABLE session_events ADD COLUMN endpoint_group TEXT;
    UPDATE session_events SET endpoint_group =
        (SELECT e.group_name FROM endpoints e WHERE e.id = session_events.endpoint_id);
    CREATE INDEX session_events_group ON session_events(endpoint_group, started_at);

",
        },
        // 12: attended support: a sub-session names its support session.
        Part {
            version: 12,
            sql: r"
    ALTER TABLE session_events ADD COLUMN support_id TEXT;
    CREATE INDEX session_events_support ON session_events(support_id);
    ",
        },
    ],
    postgres: &[
        // 5: the baseline (equal to SQLite schema 8).
        Part {
            version: 5,
            sql: r"
    CREATE TABLE session_events (
        id             TEXT PRIMARY KEY,
        user_id        TEXT NOT NULL,
        username       TEXT NOT NULL,
        endpoint_id    TEXT,
        endpoint_name  TEXT NOT NULL,
        kind           TEXT NOT NULL,
        target         TEXT NOT NULL,
        started_at     BIGINT NOT NULL,
        ended_at       BIGINT,
        bytes_up       BIGINT NOT NULL DEFAULT 0,
        bytes_down     BIGINT NOT NULL DEFAULT 0,
        outcome        TEXT NOT NULL,
        last_active_at BIGINT,
        endpoint_group TEXT
    );
    CREATE INDEX session_events_started ON session_events(started_at);
    CREATE INDEX session_events_group ON session_events(endpoint_group, started_at);
    ",
        },
        // 12: as SQLite's 12.
        Part {
            version: 12,
            sql: r"
    ALTER TABLE session_events ADD COLUMN support_id TEXT;
    CREATE INDEX session_events_support ON session_events(support_id);
    ",
        },
    ],
};
