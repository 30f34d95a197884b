//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `ssh`: the gateway's SSH host key and users' SSH public keys.
pub(crate) const SSH: DomainSchema = DomainSchema {
    domain: "ssh",
    sqlite: &[
        // 16: the SSH front door.
        Part {
            version: 16,
            sql: r"
    -- The gateway's SSH host key: the OpenSSH private key sealed (AES-256-GCM,
    -- bound to its id) under a data key wrapped by the `ssh` KEK.
    CREATE TABLE ssh_host_keys (
        id          TEXT PRIMARY KEY,
        public_key  TEXT NOT NULL,
        wrapped_key TEXT NOT NULL,
        sealed      BLOB NOT NULL,
        created_at  INTEGER NOT NULL
    );
    -- Users' public keys for the SSH front door (OpenSSH one-line form),
    -- found by their SHA-256 fingerprint.
    CREATE TABLE ssh_user_keys (
        id          TEXT PRIMARY KEY,
        user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        fingerprint TEXT NOT NULL,
        public_key  TEXT NOT NULL,
        comment     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        last_used_at INTEGER,
        UNIQUE (user_id, fingerprint)
    );
    CREATE INDEX ssh_user_keys_fingerprint ON ssh_user_keys(fingerprint);
    ",
        },
    ],
    postgres: &[
        // 16: as SQLite's 16.
        Part {
            version: 16,
            sql: r"
    CREATE TABLE ssh_host_keys (
        id          TEXT PRIMARY KEY,
        public_key  TEXT NOT NULL,
        wrapped_key TEXT NOT NULL,
        sealed      BYTEA NOT NULL,
        created_at  BIGINT NOT NULL
    );
    CREATE TABLE ssh_user_keys (
        id          TEXT PRIMARY KEY,
        user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        fingerprint TEXT NOT NULL,
        public_key  TEXT NOT NULL,
        comment     TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        last_used_at BIGINT,
        UNIQUE (user_id, fingerprint)
    );
    CREATE INDEX ssh_user_keys_fingerprint ON ssh_user_keys(fingerprint);
    ",
        },
    ],
};
