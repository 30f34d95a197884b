//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `ssh`: the gateway's SSH host key, users' SSH public keys, the user CA
/// and the certificates it issued.
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
        // 21: the SSH user CA and the certificates it issued.
        Part {
            version: 21,
            sql: r"
    -- The SSH user CA (issue #16): an Ed25519 key whose seed is sealed like
    -- the host key's, under a data key wrapped by the `ssh` KEK.
    CREATE TABLE ssh_user_cas (
        id          TEXT PRIMARY KEY,
        public_key  TEXT NOT NULL,
        wrapped_key TEXT NOT NULL,
        sealed      BLOB NOT NULL,
        created_at  INTEGER NOT NULL
    );
    -- Short-lived user certificates the CA issued (`jg login`): each names
    -- the login token (by its hash) whose life bounds it, so that ending
    -- that login refuses the certificate at the front door.
    CREATE TABLE ssh_user_certs (
        serial       TEXT PRIMARY KEY,
        user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_hash   BLOB NOT NULL,
        fingerprint  TEXT NOT NULL,
        valid_before INTEGER NOT NULL,
        created_at   INTEGER NOT NULL
    );
    CREATE INDEX ssh_user_certs_user ON ssh_user_certs(user_id, fingerprint);
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
        // 21: as SQLite's 21.
        Part {
            version: 21,
            sql: r"
    CREATE TABLE ssh_user_cas (
        id          TEXT PRIMARY KEY,
        public_key  TEXT NOT NULL,
        wrapped_key TEXT NOT NULL,
        sealed      BYTEA NOT NULL,
        created_at  BIGINT NOT NULL
    );
    CREATE TABLE ssh_user_certs (
        serial       TEXT PRIMARY KEY,
        user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_hash   BYTEA NOT NULL,
        fingerprint  TEXT NOT NULL,
        valid_before BIGINT NOT NULL,
        created_at   BIGINT NOT NULL
    );
    CREATE INDEX ssh_user_certs_user ON ssh_user_certs(user_id, fingerprint);
    ",
        },
    ],
};
