//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `access`: groups' approval settings, access requests and their
/// approvals.
pub(crate) const ACCESS: DomainSchema = DomainSchema {
    domain: "access",
    sqlite: &[
        // 20: access requests with approval (issue #17).
        Part {
            version: 20,
            sql: r"
    CREATE TABLE access_policies (
        group_name  TEXT PRIMARY KEY,
        permissions TEXT NOT NULL,          -- JSON array of permission names
        approvers   TEXT NOT NULL,          -- JSON array: role:NAME, user:NAME
        approvals   INTEGER NOT NULL,       -- 1 or 2
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE access_requests (
        id            TEXT PRIMARY KEY,
        kind          TEXT NOT NULL,        -- access
        requester_id  TEXT NOT NULL,
        requester     TEXT NOT NULL,
        group_name    TEXT NOT NULL,
        endpoint_id   TEXT,                 -- NULL: the whole group
        endpoint_name TEXT,
        permissions   TEXT NOT NULL,        -- JSON array of permission names
        window_secs   INTEGER NOT NULL,
        reason        TEXT NOT NULL,
        state         TEXT NOT NULL,        -- pending, active, expired, denied, cancelled
        approvals_required INTEGER NOT NULL,
        created_at    INTEGER NOT NULL,
        decided_at    INTEGER,
        until_at      INTEGER,
        ended_at      INTEGER
    );
    CREATE INDEX access_requests_state ON access_requests (state, until_at);
    CREATE INDEX access_requests_requester ON access_requests (requester_id, state);
    CREATE TABLE access_approvals (
        request_id  TEXT NOT NULL REFERENCES access_requests(id) ON DELETE CASCADE,
        approver_id TEXT NOT NULL,
        approver    TEXT NOT NULL,
        decision    TEXT NOT NULL,          -- approve, deny
        reason      TEXT NOT NULL DEFAULT '',
        at          INTEGER NOT NULL,
        PRIMARY KEY (request_id, approver_id)
    );
",
        },
    ],
    postgres: &[
        // 20: as SQLite's 20.
        Part {
            version: 20,
            sql: r"    CREATE TABLE access_policies (
        group_name  TEXT PRIMARY KEY,
        permissions TEXT NOT NULL,
        approvers   TEXT NOT NULL,
        approvals   BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
    );
    CREATE TABLE access_requests (
        id            TEXT PRIMARY KEY,
        kind          TEXT NOT NULL,
        requester_id  TEXT NOT NULL,
        requester     TEXT NOT NULL,
        group_name    TEXT NOT NULL,
        endpoint_id   TEXT,
        endpoint_name TEXT,
        permissions   TEXT NOT NULL,
        window_secs   BIGINT NOT NULL,
        reason        TEXT NOT NULL,
        state         TEXT NOT NULL,
        approvals_required BIGINT NOT NULL,
        created_at    BIGINT NOT NULL,
        decided_at    BIGINT,
        until_at      BIGINT,
        ended_at      BIGINT
    );
    CREATE INDEX access_requests_state ON access_requests (state, until_at);
    CREATE INDEX access_requests_requester ON access_requests (requester_id, state);
    CREATE TABLE access_approvals (
        request_id  TEXT NOT NULL REFERENCES access_requests(id) ON DELETE CASCADE,
        approver_id TEXT NOT NULL,
        approver    TEXT NOT NULL,
        decision    TEXT NOT NULL,
        reason      TEXT NOT NULL DEFAULT '',
        at          BIGINT NOT NULL,
        PRIMARY KEY (request_id, approver_id)
    );
    ",
        },
    ],
};
