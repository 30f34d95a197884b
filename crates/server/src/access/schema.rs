//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! Never edit a released part: add a version.
//!
//! - `access_policies`: groups' approval settings.
//! - `access_requests`: every request, of kind `access` (a technician's
//!   grant) or, since 24, `elevation` (an endpoint user's EPM approval
//!   request, the same id as its `epm_requests` row; `requester_id` is
//!   `endpoint:AGENT_ID`, never a user's; `elevation` holds what is asked
//!   to run; `expires_at` when the caller stops waiting).
//! - `access_approvals`: each approver's decision.

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
        // 24: EPM approval requests are access requests of kind
        // `elevation`; the existing ones are copied in with their decision.
        Part {
            version: 24,
            sql: r"
    ALTER TABLE access_requests ADD COLUMN expires_at INTEGER;  -- a pending request's end, when it has its own
    ALTER TABLE access_requests ADD COLUMN elevation TEXT;      -- kind elevation: JSON {user, program, args, sha256, rule}
    CREATE INDEX access_requests_expires ON access_requests (state, expires_at);
    INSERT INTO access_requests (id, kind, requester_id, requester, group_name, endpoint_id,
            endpoint_name, permissions, window_secs, reason, state, approvals_required,
            created_at, decided_at, until_at, ended_at, expires_at, elevation)
        SELECT r.id, 'elevation', 'endpoint:' || r.agent_id, r.username || '@' || e.name,
               e.group_name, e.id, e.name, '[]', 0, r.reason, r.state, 1, r.created_at,
               r.decided_at, NULL,
               CASE WHEN r.state = 'denied' THEN r.decided_at
                    WHEN r.state = 'expired' THEN r.expires_at END,
               r.expires_at,
               json_object('user', r.username, 'program', r.program, 'args', json(r.args),
                           'sha256', r.sha256, 'rule', r.rule)
          FROM epm_requests r JOIN endpoints e ON e.id = r.agent_id
         WHERE NOT EXISTS (SELECT 1 FROM access_requests a WHERE a.id = r.id);
    INSERT INTO access_approvals (request_id, approver_id, approver, decision, reason, at)
        SELECT r.id, COALESCE(u.id, 'user:' || r.decided_by), r.decided_by,
               CASE WHEN r.state = 'approved' THEN 'approve' ELSE 'deny' END,
               COALESCE(r.comment, ''), r.decided_at
          FROM epm_requests r JOIN access_requests a ON a.id = r.id
               LEFT JOIN users u ON u.username = r.decided_by
         WHERE r.decided_by IS NOT NULL AND r.decided_at IS NOT NULL;
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
        // 24: as SQLite's 24.
        Part {
            version: 24,
            sql: r"
    ALTER TABLE access_requests ADD COLUMN expires_at BIGINT;
    ALTER TABLE access_requests ADD COLUMN elevation TEXT;
    CREATE INDEX access_requests_expires ON access_requests (state, expires_at);
    INSERT INTO access_requests (id, kind, requester_id, requester, group_name, endpoint_id,
            endpoint_name, permissions, window_secs, reason, state, approvals_required,
            created_at, decided_at, until_at, ended_at, expires_at, elevation)
        SELECT r.id, 'elevation', 'endpoint:' || r.agent_id, r.username || '@' || e.name,
               e.group_name, e.id, e.name, '[]', 0, r.reason, r.state, 1, r.created_at,
               r.decided_at, NULL,
               CASE WHEN r.state = 'denied' THEN r.decided_at
                    WHEN r.state = 'expired' THEN r.expires_at END,
               r.expires_at,
               json_build_object('user', r.username, 'program', r.program, 'args', r.args::json,
                                 'sha256', r.sha256, 'rule', r.rule)::text
          FROM epm_requests r JOIN endpoints e ON e.id = r.agent_id
         WHERE NOT EXISTS (SELECT 1 FROM access_requests a WHERE a.id = r.id);
    INSERT INTO access_approvals (request_id, approver_id, approver, decision, reason, at)
        SELECT r.id, COALESCE(u.id, 'user:' || r.decided_by), r.decided_by,
               CASE WHEN r.state = 'approved' THEN 'approve' ELSE 'deny' END,
               COALESCE(r.comment, ''), r.decided_at
          FROM epm_requests r JOIN access_requests a ON a.id = r.id
               LEFT JOIN users u ON u.username = r.decided_by
         WHERE r.decided_by IS NOT NULL AND r.decided_at IS NOT NULL;
    ",
        },
    ],
};
