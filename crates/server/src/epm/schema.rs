//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! Never edit a released part: add a version.
//!
//! - `epm_policy`: one row (`id = 1`, the only one the domain writes), the draft policy as JSON, its
//!   revision (optimistic concurrency of `PUT /policy`).
//! - `epm_bundles`: every published bundle (the bytes are in the blob
//!   store under `blob_key`).
//! - `epm_signing_keys`: Ed25519 keys; the PKCS#8 document sealed under a
//!   data key wrapped by purpose `policy` (`wrapped_key`, swept on KEK
//!   rotation).
//! - `epm_site_keys`: the site's offline-code key and the key of the
//!   gateway's signed bundle route, each a data key wrapped by purpose
//!   `policy`.
//! - `epm_events`: what endpoints reported, once per `(agent_id, seq)`;
//!   `id` is the gateway-wide cursor of `GET /events`.
//! - `epm_agents`: per agent: the version it accepted, its last refusal,
//!   the events its journal dropped.
//! - `epm_requests`: approval requests and their decisions. Since
//!   version 24 each is also an access request of kind `elevation` (same
//!   id, `access_requests`), kept in step with it (`access` owns the list,
//!   the decisions' record and the expiry).
//! - `epm_blocked` (24): the `epm-blocked` audit entries' folding, one row
//!   per (endpoint, program, rule) hashed into `key`: when the last entry
//!   was written and how many blocked launches were folded since.

use crate::store::migrations::{DomainSchema, Part};

/// `epm`: endpoint privilege management.
pub(crate) const EPM: DomainSchema = DomainSchema {
    domain: "epm",
    sqlite: &[
        Part {
            version: 13,
            sql: r"
    CREATE TABLE epm_policy (
        id          INTEGER PRIMARY KEY,
        policy      TEXT NOT NULL,
        revision    INTEGER NOT NULL,
        updated_by  TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE epm_bundles (
        version       INTEGER PRIMARY KEY,
        sha256        TEXT NOT NULL,
        size          INTEGER NOT NULL,
        blob_key      TEXT NOT NULL,
        key_id        TEXT NOT NULL,
        published_by  TEXT NOT NULL,
        published_at  INTEGER NOT NULL
    );
    CREATE TABLE epm_signing_keys (
        id           TEXT PRIMARY KEY,
        public_key   TEXT NOT NULL,
        wrapped_key  TEXT NOT NULL,
        sealed       BLOB NOT NULL,
        created_at   INTEGER NOT NULL,
        retired_at   INTEGER
    );
    CREATE TABLE epm_site_keys (
        name         TEXT PRIMARY KEY,
        wrapped_key  TEXT NOT NULL
    );
    CREATE TABLE epm_events (
        id        INTEGER PRIMARY KEY,
        agent_id  TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        at        TEXT NOT NULL,
        kind      TEXT NOT NULL,
        body      TEXT NOT NULL,
        stored_at INTEGER NOT NULL,
        UNIQUE (agent_id, seq)
    );
    CREATE TABLE epm_agents (
        agent_id          TEXT PRIMARY KEY,
        accepted_version  INTEGER,
        last_refusal      TEXT,
        dropped           INTEGER NOT NULL DEFAULT 0,
        updated_at        INTEGER NOT NULL
    );
    CREATE TABLE epm_requests (
        id          TEXT PRIMARY KEY,
        agent_id    TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        username    TEXT NOT NULL,
        program     TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        args        TEXT NOT NULL,
        reason      TEXT NOT NULL,
        rule        TEXT NOT NULL,
        state       TEXT NOT NULL,
        decided_by  TEXT,
        decided_at  INTEGER,
        comment     TEXT,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    );
    CREATE INDEX epm_requests_state ON epm_requests(state, created_at);
    ",
        },
        // 24: the folding of `epm-blocked` audit entries.
        Part {
            version: 24,
            sql: r"
    CREATE TABLE epm_blocked (
        key            TEXT PRIMARY KEY,     -- hex SHA-256 of agent, program, rule
        last_entry_at  INTEGER NOT NULL,     -- the last epm-blocked entry's time
        folded         INTEGER NOT NULL      -- blocked launches since, without an entry
    );
    CREATE INDEX epm_blocked_at ON epm_blocked(last_entry_at);
    ",
        },
    ],
    postgres: &[
        Part {
            version: 13,
            sql: r"
    CREATE TABLE epm_policy (
        id          BIGINT PRIMARY KEY,
        policy      TEXT NOT NULL,
        revision    BIGINT NOT NULL,
        updated_by  TEXT NOT NULL,
        updated_at  BIGINT NOT NULL
    );
    CREATE TABLE epm_bundles (
        version       BIGINT PRIMARY KEY,
        sha256        TEXT NOT NULL,
        size          BIGINT NOT NULL,
        blob_key      TEXT NOT NULL,
        key_id        TEXT NOT NULL,
        published_by  TEXT NOT NULL,
        published_at  BIGINT NOT NULL
    );
    CREATE TABLE epm_signing_keys (
        id           TEXT PRIMARY KEY,
        public_key   TEXT NOT NULL,
        wrapped_key  TEXT NOT NULL,
        sealed       BYTEA NOT NULL,
        created_at   BIGINT NOT NULL,
        retired_at   BIGINT
    );
    CREATE TABLE epm_site_keys (
        name         TEXT PRIMARY KEY,
        wrapped_key  TEXT NOT NULL
    );
    CREATE TABLE epm_events (
        id        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        agent_id  TEXT NOT NULL,
        seq       BIGINT NOT NULL,
        at        TEXT NOT NULL,
        kind      TEXT NOT NULL,
        body      TEXT NOT NULL,
        stored_at BIGINT NOT NULL,
        UNIQUE (agent_id, seq)
    );
    CREATE TABLE epm_agents (
        agent_id          TEXT PRIMARY KEY,
        accepted_version  BIGINT,
        last_refusal      TEXT,
        dropped           BIGINT NOT NULL DEFAULT 0,
        updated_at        BIGINT NOT NULL
    );
    CREATE TABLE epm_requests (
        id          TEXT PRIMARY KEY,
        agent_id    TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        username    TEXT NOT NULL,
        program     TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        args        TEXT NOT NULL,
        reason      TEXT NOT NULL,
        rule        TEXT NOT NULL,
        state       TEXT NOT NULL,
        decided_by  TEXT,
        decided_at  BIGINT,
        comment     TEXT,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL
    );
    CREATE INDEX epm_requests_state ON epm_requests(state, created_at);
    ",
        },
        // 24: as SQLite's 24.
        Part {
            version: 24,
            sql: r"
    CREATE TABLE epm_blocked (
        key            TEXT PRIMARY KEY,
        last_entry_at  BIGINT NOT NULL,
        folded         BIGINT NOT NULL
    );
    CREATE INDEX epm_blocked_at ON epm_blocked(last_entry_at);
    ",
        },
    ],
};
