//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! Never edit a released part: add a version.
//!
//! - `epm_policy`: one row (`id = 1`), the draft policy as JSON, its
//!   revision (optimistic concurrency of `PUT /policy`).
//! - `epm_bundles`: every published bundle (the bytes are in the blob
//!   store under `blob_key`).
//! - `epm_signing_keys`: Ed25519 keys; the PKCS#8 document sealed under a
//!   data key wrapped by purpose `policy` (`wrapped_key`, swept on KEK
//!   rotation).
//! - `epm_site_keys`: the site's offline-code key and the key of the
//!   gateway's signed bundle route, each a data key wrapped by purpose
//!   `policy`.
//! - `epm_events`: what endpoints reported, once per `(agent_id, seq)`.
//! - `epm_agents`: per agent: the version it accepted, its last refusal,
//!   the events its journal dropped.
//! - `epm_requests`: approval requests and their decisions.

use crate::store::migrations::{DomainSchema, Part};

/// `epm`: endpoint privilege management.
pub(crate) const EPM: DomainSchema = DomainSchema {
    domain: "epm",
    sqlite: &[Part {
        version: 13,
        sql: r"
    CREATE TABLE epm_policy (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
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
        agent_id  TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        at        TEXT NOT NULL,
        kind      TEXT NOT NULL,
        body      TEXT NOT NULL,
        stored_at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, seq)
    );
    CREATE INDEX epm_events_stored ON epm_events(stored_at);
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
    }],
    postgres: &[Part {
        version: 13,
        sql: r"
    CREATE TABLE epm_policy (
        id          BIGINT PRIMARY KEY CHECK (id = 1),
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
        agent_id  TEXT NOT NULL,
        seq       BIGINT NOT NULL,
        at        TEXT NOT NULL,
        kind      TEXT NOT NULL,
        body      TEXT NOT NULL,
        stored_at BIGINT NOT NULL,
        PRIMARY KEY (agent_id, seq)
    );
    CREATE INDEX epm_events_stored ON epm_events(stored_at);
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
    }],
};
