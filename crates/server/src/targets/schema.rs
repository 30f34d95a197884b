//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! A version's parts are applied in one transaction, in the registry's
//! domain order. Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `targets`: agentless targets and the endpoints marked as jump points
/// (with the destinations each may reach).
pub(crate) const TARGETS: DomainSchema = DomainSchema {
    domain: "targets",
    sqlite: &[
        // 17: agentless targets and jump points.
        Part {
            version: 17,
            sql: r"
    CREATE TABLE jump_points (
        endpoint_id TEXT PRIMARY KEY REFERENCES endpoints(id),
        marked_at   INTEGER NOT NULL,
        marked_by   TEXT NOT NULL
    );
    CREATE TABLE targets (
        name        TEXT PRIMARY KEY,
        group_name  TEXT NOT NULL,
        -- The jump point (an endpoint's id).
        via         TEXT NOT NULL REFERENCES endpoints(id),
        kind        TEXT NOT NULL,          -- ssh | tcp
        host        TEXT NOT NULL,
        port        INTEGER NOT NULL,
        username    TEXT NOT NULL DEFAULT '',
        -- The vault secret's name (never its value).
        credential  TEXT NOT NULL DEFAULT '',
        -- Pinned host key, OpenSSH text; NULL until first use (TOFU).
        host_key    TEXT,
        tofu        INTEGER NOT NULL DEFAULT 0,
        rotate      INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL
    );
",
        },
        // 25: the destinations a jump point may reach (a JSON array of
        // rules, `10.0.0.0/8`, `db.internal:5432`); NULL: any.
        Part {
            version: 25,
            sql: r"
    ALTER TABLE jump_points ADD COLUMN allow TEXT;
",
        },
    ],
    postgres: &[
        // 17: as SQLite's 17.
        Part {
            version: 17,
            sql: r"
    CREATE TABLE jump_points (
        endpoint_id TEXT PRIMARY KEY REFERENCES endpoints(id),
        marked_at   BIGINT NOT NULL,
        marked_by   TEXT NOT NULL
    );
    CREATE TABLE targets (
        name        TEXT PRIMARY KEY,
        group_name  TEXT NOT NULL,
        via         TEXT NOT NULL REFERENCES endpoints(id),
        kind        TEXT NOT NULL,
        host        TEXT NOT NULL,
        port        BIGINT NOT NULL,
        username    TEXT NOT NULL DEFAULT '',
        credential  TEXT NOT NULL DEFAULT '',
        host_key    TEXT,
        tofu        BIGINT NOT NULL DEFAULT 0,
        rotate      BIGINT NOT NULL DEFAULT 0,
        created_at  BIGINT NOT NULL,
        created_by  TEXT NOT NULL
    );
",
        },
        // 25: as SQLite's 25.
        Part {
            version: 25,
            sql: r"
    ALTER TABLE jump_points ADD COLUMN allow TEXT;
",
        },
    ],
};
