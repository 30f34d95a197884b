//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! A version's parts are applied in one transaction, in the registry's
//! domain order. Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `keys`: the progress of key rotations.
pub(crate) const KEYS: DomainSchema = DomainSchema {
    domain: "keys",
    sqlite: &[
        // 5: the progress of key rotation sweeps.
        Part {
            version: 5,
            sql: r"    CREATE TABLE key_rotations (
        purpose     TEXT NOT NULL,
        version     INTEGER NOT NULL,
        started_at  INTEGER NOT NULL,
        -- When every stored key was re-wrapped and older versions retired.
        finished_at INTEGER,
        rewrapped   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (purpose, version)
    );
",
        },
    ],
    postgres: &[
        // 9: the baseline (equal to SQLite schema 8).
        Part {
            version: 9,
            sql: r"
    CREATE TABLE key_rotations (
        purpose     TEXT NOT NULL,
        version     BIGINT NOT NULL,
        started_at  BIGINT NOT NULL,
        finished_at BIGINT,
        rewrapped   BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (purpose, version)
    );
    ",
        },
    ],
};
