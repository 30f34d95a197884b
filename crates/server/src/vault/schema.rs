//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! A version's parts are applied in one transaction, in the registry's
//! domain order. Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `vault`: secrets and their versions.
pub(crate) const VAULT: DomainSchema = DomainSchema {
    domain: "vault",
    sqlite: &[
        // 5: versioned, envelope-encrypted secrets with soft delete.
        Part {
            version: 5,
            sql: r"
    CREATE TABLE vault_secrets (
        name        TEXT PRIMARY KEY,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        -- Soft delete: set while the secret is recoverable.
        deleted_at  INTEGER,
        -- deleted_at + the site's retention; no purge before it when purge
        -- protection is on.
        purge_after INTEGER
    );
    CREATE TABLE vault_versions (
        name        TEXT NOT NULL REFERENCES vault_secrets(name) ON DELETE CASCADE,
        version     INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        -- The version's data key, wrapped by the vault KEK (`keys`).
        wrapped_key TEXT NOT NULL,
        -- AES-256-GCM under the data key: nonce, ciphertext and tag.
        nonce       BLOB NOT NULL,
        ciphertext  BLOB NOT NULL,
        PRIMARY KEY (name, version)
    );
",
        },
    ],
    postgres: &[
        // 8: the baseline (equal to SQLite schema 8).
        Part {
            version: 8,
            sql: r"
    CREATE TABLE vault_secrets (
        name        TEXT PRIMARY KEY,
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL,
        deleted_at  BIGINT,
        purge_after BIGINT
    );
    CREATE TABLE vault_versions (
        name        TEXT NOT NULL REFERENCES vault_secrets(name) ON DELETE CASCADE,
        version     BIGINT NOT NULL,
        created_at  BIGINT NOT NULL,
        created_by  TEXT NOT NULL,
        wrapped_key TEXT NOT NULL,
        nonce       BYTEA NOT NULL,
        ciphertext  BYTEA NOT NULL,
        PRIMARY KEY (name, version)
    );
    ",
        },
    ],
};
