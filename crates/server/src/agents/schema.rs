//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! A version's parts are applied in one transaction, in the registry's
//! domain order. Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `agents`: endpoints and enrollment tokens.
pub(crate) const AGENTS: DomainSchema = DomainSchema {
    domain: "agents",
    sqlite: &[
        // 1: endpoints and enrollment tokens.
        Part {
            version: 1,
            sql: r"    CREATE TABLE enroll_tokens (
        token_hash BLOB PRIMARY KEY,
        group_name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER,
        used_by    TEXT
    );
    CREATE TABLE endpoints (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        group_name    TEXT NOT NULL,
        public_key    BLOB NOT NULL,
        hostname      TEXT NOT NULL,
        os            TEXT NOT NULL,
        arch          TEXT NOT NULL,
        agent_version TEXT NOT NULL,
        enrolled_at   INTEGER NOT NULL,
        last_seen     INTEGER,
        revoked_at    INTEGER
    );
    -- A revoked endpoint's name may be enrolled again.
    CREATE UNIQUE INDEX endpoints_live_name ON endpoints(name) WHERE revoked_at IS NULL;
",
        },
        // 6: cloned agent identities — refused second connections of one
        // endpoint (see `agents`), and enrollment tokens bound to an existing
        // endpoint (re-enrollment: a new key for the same endpoint).
        Part {
            version: 6,
            sql: r"
    ALTER TABLE endpoints ADD COLUMN conflict_at INTEGER;
    ALTER TABLE endpoints ADD COLUMN conflict_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE endpoints ADD COLUMN conflict_peer TEXT;
    ALTER TABLE enroll_tokens ADD COLUMN endpoint_id TEXT;
    ",
        },
        // 11: the endpoint list's revision — every change to `endpoints`
        // bumps it in the same transaction, so a gateway's in-memory copy of
        // the list (`agents::listing`) knows when it is stale. Sixteen
        // counters on both engines (PostgreSQL's writers spread over them;
        // SQLite's writers are one at a time and bump the first).
        Part {
            version: 11,
            sql: r"
    CREATE TABLE endpoint_revisions (
        shard INTEGER PRIMARY KEY,
        rev   INTEGER NOT NULL
    );
    INSERT INTO endpoint_revisions (shard, rev)
        VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0),
               (8, 0), (9, 0), (10, 0), (11, 0), (12, 0), (13, 0), (14, 0), (15, 0);
    CREATE TRIGGER endpoints_revision_insert AFTER INSERT ON endpoints
    BEGIN UPDATE endpoint_revisions SET rev = rev + 1 WHERE shard = 0; END;
    CREATE TRIGGER endpoints_revision_update AFTER UPDATE ON endpoints
    BEGIN UPDATE endpoint_revisions SET rev = rev + 1 WHERE shard = 0; END;
    CREATE TRIGGER endpoints_revision_delete AFTER DELETE ON endpoints
    BEGIN UPDATE endpoint_revisions SET rev = rev + 1 WHERE shard = 0; END;
    ",
        },
        // 27: endpoints reported offline (`agents::watch`), so each offline
        // spell is reported once, and its end once.
        Part {
            version: 27,
            sql: r"
    CREATE TABLE endpoint_offline_reports (
        endpoint_id TEXT PRIMARY KEY,
        last_seen   INTEGER NOT NULL,       -- the spell reported
        reported_at INTEGER NOT NULL
    );
    ",
        },
    ],
    postgres: &[
        // 4: the baseline (equal to SQLite schema 8).
        Part {
            version: 4,
            sql: r"
    CREATE TABLE enroll_tokens (
        token_hash  BYTEA PRIMARY KEY,
        group_name  TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL,
        used_at     BIGINT,
        used_by     TEXT,
        endpoint_id TEXT
    );
    CREATE TABLE endpoints (
        id             TEXT PRIMARY KEY,
        name           TEXT NOT NULL,
        group_name     TEXT NOT NULL,
        public_key     BYTEA NOT NULL,
        hostname       TEXT NOT NULL,
        os             TEXT NOT NULL,
        arch           TEXT NOT NULL,
        agent_version  TEXT NOT NULL,
        enrolled_at    BIGINT NOT NULL,
        last_seen      BIGINT,
        revoked_at     BIGINT,
        conflict_at    BIGINT,
        conflict_count BIGINT NOT NULL DEFAULT 0,
        conflict_peer  TEXT
    );
    CREATE UNIQUE INDEX endpoints_live_name ON endpoints(name) WHERE revoked_at IS NULL;
    ",
        },
        // 11: as SQLite's 11. A writer holds its counter's row lock until
        // it commits, so a reader never sees a revision without the rows
        // it counts; the shard is a hash of the endpoint's id, so writers
        // of different endpoints rarely wait for each other.
        Part {
            version: 11,
            sql: r"
    CREATE TABLE endpoint_revisions (
        shard BIGINT PRIMARY KEY,
        rev   BIGINT NOT NULL
    );
    INSERT INTO endpoint_revisions (shard, rev)
        SELECT s, 0 FROM generate_series(0, 15) AS s;
    CREATE FUNCTION endpoints_bump_revision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE endpoint_revisions SET rev = rev + 1
         WHERE shard = (hashtext(COALESCE(NEW.id, OLD.id)) & 15);
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER endpoints_revision AFTER INSERT OR UPDATE OR DELETE ON endpoints
        FOR EACH ROW EXECUTE FUNCTION endpoints_bump_revision();
    ",
        },
        // 27: as SQLite's 27.
        Part {
            version: 27,
            sql: r"
    CREATE TABLE endpoint_offline_reports (
        endpoint_id TEXT PRIMARY KEY,
        last_seen   BIGINT NOT NULL,
        reported_at BIGINT NOT NULL
    );
    ",
        },
    ],
};

/// `agents::groups`: endpoint groups.
pub(crate) const GROUPS: DomainSchema = DomainSchema {
    domain: "groups",
    sqlite: &[
        // 2: endpoint groups, one per group endpoints were enrolled in, and `default`.
        Part {
            version: 2,
            sql: r"    CREATE TABLE groups (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL
    );
    INSERT INTO groups (name, description, created_at)
        SELECT DISTINCT group_name, '', 0 FROM endpoints;
    INSERT OR IGNORE INTO groups (name, description, created_at)
        VALUES ('default', 'Endpoints enrolled without a group', 0);

",
        },
        // 10: how the person at an endpoint takes part in a desktop session.
        Part {
            version: 10,
            sql: r"    ALTER TABLE groups ADD COLUMN consent TEXT NOT NULL DEFAULT 'prompt';
    ",
        },
    ],
    postgres: &[
        // 3: the baseline (equal to SQLite schema 8).
        Part {
            version: 3,
            sql: r"
    CREATE TABLE groups (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        created_at  BIGINT NOT NULL
    );
    INSERT INTO groups (name, description, created_at)
        VALUES ('default', 'Endpoints enrolled without a group', 0);
    ",
        },
        // 10: as SQLite's 10.
        Part {
            version: 10,
            sql: r"    ALTER TABLE groups ADD COLUMN consent TEXT NOT NULL DEFAULT 'prompt';
    ",
        },
    ],
};
