//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! Never edit a released part: add a version.
//!
//! - `support_queues`, `support_queue_members`: teams and the endpoint
//!   group that scopes their sessions (`group_name`, like
//!   `session_events.endpoint_group`, so `rbac::ReadScope` filters them).
//! - `support_keys`: session keys, by their peppered HMAC only.
//! - `support_sessions`: one per customer; the customer's name, problem and
//!   comment sealed under the session's data key (`wrapped_key`, purpose
//!   `Recordings`), the download and ticket by their hashes only.
//! - `support_participants`, `support_grants`: who took part and every
//!   right asked, allowed, denied, revoked or reset (history; the live fold
//!   is in the hub).
//! - `support_messages`: chat, each line sealed under the session's key.
//! - `support_pepper`: the HMAC key of session keys (purpose `Vault`).

use crate::store::migrations::{DomainSchema, Part};

/// `support`: attended support.
pub(crate) const SUPPORT: DomainSchema = DomainSchema {
    domain: "support",
    sqlite: &[Part {
        version: 12,
        sql: r"
    CREATE TABLE support_queues (
        name         TEXT PRIMARY KEY,
        description  TEXT NOT NULL DEFAULT '',
        group_name   TEXT NOT NULL,
        public       INTEGER NOT NULL DEFAULT 1,
        auto_assign  INTEGER NOT NULL DEFAULT 0,
        max_waiting  INTEGER NOT NULL DEFAULT 200,
        created_at   INTEGER NOT NULL
    );
    CREATE TABLE support_queue_members (
        queue     TEXT NOT NULL REFERENCES support_queues(name) ON DELETE CASCADE,
        user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        added_at  INTEGER NOT NULL,
        PRIMARY KEY (queue, user_id)
    );
    CREATE INDEX support_queue_members_user ON support_queue_members(user_id);
    CREATE TABLE support_keys (
        key_hash         BLOB PRIMARY KEY,
        created_by       TEXT NOT NULL,
        created_by_name  TEXT NOT NULL,
        queue            TEXT,
        created_at       INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        used_at          INTEGER,
        support_id       TEXT
    );
    CREATE TABLE support_sessions (
        id                 TEXT PRIMARY KEY,
        queue              TEXT NOT NULL,
        group_name         TEXT NOT NULL,
        origin             TEXT NOT NULL,
        bound_to           TEXT,
        state              TEXT NOT NULL,
        requested_at       INTEGER NOT NULL,
        joined_at          INTEGER,
        accepted_at        INTEGER,
        ended_at           INTEGER,
        owner_id           TEXT,
        owner_name         TEXT,
        download_hash      BLOB UNIQUE,
        download_left      INTEGER NOT NULL DEFAULT 0,
        download_expires_at INTEGER,
        ticket_hash        BLOB UNIQUE,
        ticket_expires_at  INTEGER,
        client_key         BLOB,
        client_info        TEXT,
        peer               TEXT,
        wrapped_key        TEXT NOT NULL,
        customer_sealed    BLOB NOT NULL,
        problem_sealed     BLOB NOT NULL,
        comment_sealed     BLOB,
        rating             INTEGER,
        rights_used        TEXT NOT NULL DEFAULT '[]',
        end_reason         TEXT
    );
    CREATE INDEX support_sessions_group ON support_sessions(group_name, requested_at);
    CREATE INDEX support_sessions_state ON support_sessions(state);
    CREATE TABLE support_participants (
        support_id   TEXT NOT NULL REFERENCES support_sessions(id) ON DELETE CASCADE,
        user_id      TEXT NOT NULL,
        joined_at    INTEGER NOT NULL,
        username     TEXT NOT NULL,
        role         TEXT NOT NULL,
        left_at      INTEGER,
        left_reason  TEXT,
        PRIMARY KEY (support_id, user_id, joined_at)
    );
    CREATE TABLE support_grants (
        support_id  TEXT NOT NULL REFERENCES support_sessions(id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        right_name  TEXT NOT NULL,
        event       TEXT NOT NULL,
        by_name     TEXT NOT NULL,
        at          INTEGER NOT NULL,
        PRIMARY KEY (support_id, seq)
    );
    CREATE TABLE support_messages (
        support_id   TEXT NOT NULL REFERENCES support_sessions(id) ON DELETE CASCADE,
        seq          INTEGER NOT NULL,
        at           INTEGER NOT NULL,
        sender_kind  TEXT NOT NULL,
        sender       TEXT NOT NULL,
        sealed       BLOB NOT NULL,
        PRIMARY KEY (support_id, seq)
    );
    CREATE TABLE support_pepper (
        name         TEXT PRIMARY KEY,
        wrapped_key  TEXT NOT NULL
    );
    ",
    }],
    postgres: &[Part {
        version: 12,
        sql: r"
    CREATE TABLE support_queues (
        name         TEXT PRIMARY KEY,
        description  TEXT NOT NULL DEFAULT '',
        group_name   TEXT NOT NULL,
        public       BIGINT NOT NULL DEFAULT 1,
        auto_assign  BIGINT NOT NULL DEFAULT 0,
        max_waiting  BIGINT NOT NULL DEFAULT 200,
        created_at   BIGINT NOT NULL
    );
    CREATE TABLE support_queue_members (
        queue     TEXT NOT NULL REFERENCES support_queues(name) ON DELETE CASCADE,
        user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        added_at  BIGINT NOT NULL,
        PRIMARY KEY (queue, user_id)
    );
    CREATE INDEX support_queue_members_user ON support_queue_members(user_id);
    CREATE TABLE support_keys (
        key_hash         BYTEA PRIMARY KEY,
        created_by       TEXT NOT NULL,
        created_by_name  TEXT NOT NULL,
        queue            TEXT,
        created_at       BIGINT NOT NULL,
        expires_at       BIGINT NOT NULL,
        used_at          BIGINT,
        support_id       TEXT
    );
    CREATE TABLE support_sessions (
        id                 TEXT PRIMARY KEY,
        queue              TEXT NOT NULL,
        group_name         TEXT NOT NULL,
        origin             TEXT NOT NULL,
        bound_to           TEXT,
        state              TEXT NOT NULL,
        requested_at       BIGINT NOT NULL,
        joined_at          BIGINT,
        accepted_at        BIGINT,
        ended_at           BIGINT,
        owner_id           TEXT,
        owner_name         TEXT,
        download_hash      BYTEA UNIQUE,
        download_left      BIGINT NOT NULL DEFAULT 0,
        download_expires_at BIGINT,
        ticket_hash        BYTEA UNIQUE,
        ticket_expires_at  BIGINT,
        client_key         BYTEA,
        client_info        TEXT,
        peer               TEXT,
        wrapped_key        TEXT NOT NULL,
        customer_sealed    BYTEA NOT NULL,
        problem_sealed     BYTEA NOT NULL,
        comment_sealed     BYTEA,
        rating             BIGINT,
        rights_used        TEXT NOT NULL DEFAULT '[]',
        end_reason         TEXT
    );
    CREATE INDEX support_sessions_group ON support_sessions(group_name, requested_at);
    CREATE INDEX support_sessions_state ON support_sessions(state);
    CREATE TABLE support_participants (
        support_id   TEXT NOT NULL REFERENCES support_sessions(id) ON DELETE CASCADE,
        user_id      TEXT NOT NULL,
        joined_at    BIGINT NOT NULL,
        username     TEXT NOT NULL,
        role         TEXT NOT NULL,
        left_at      BIGINT,
        left_reason  TEXT,
        PRIMARY KEY (support_id, user_id, joined_at)
    );
    CREATE TABLE support_grants (
        support_id  TEXT NOT NULL REFERENCES support_sessions(id) ON DELETE CASCADE,
        seq         BIGINT NOT NULL,
        right_name  TEXT NOT NULL,
        event       TEXT NOT NULL,
        by_name     TEXT NOT NULL,
        at          BIGINT NOT NULL,
        PRIMARY KEY (support_id, seq)
    );
    CREATE TABLE support_messages (
        support_id   TEXT NOT NULL REFERENCES support_sessions(id) ON DELETE CASCADE,
        seq          BIGINT NOT NULL,
        at           BIGINT NOT NULL,
        sender_kind  TEXT NOT NULL,
        sender       TEXT NOT NULL,
        sealed       BYTEA NOT NULL,
        PRIMARY KEY (support_id, seq)
    );
    CREATE TABLE support_pepper (
        name         TEXT PRIMARY KEY,
        wrapped_key  TEXT NOT NULL
    );
    ",
    }],
};
