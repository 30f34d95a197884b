//! The schema registry: every table's DDL, for each engine, in the order
//! it is applied.
//!
//! Each engine keeps its own `schema_version` (one row per applied step)
//! and applies the steps it has not seen yet in one transaction.
//!
//! - **SQLite** keeps the history it grew through (steps 1–8 below, written
//!   before the store was split by domain, so each step touches several
//!   domains); existing sites upgrade through them.
//! - **PostgreSQL** starts from a baseline equal to SQLite's step 8, one
//!   step per domain (the table owners of `ARCHITECTURE.md`).
//!
//! A later schema change is one new step per engine, added at the end of
//! both lists and tagged with the domain that owns the table.
//!
//! Column types are chosen so one Rust type reads both engines: integers
//! are `BIGINT` on PostgreSQL (SQLite's INTEGER is 64-bit; sqlx decodes
//! `i64` from nothing narrower), flags are integers 0/1 on both, bytes are
//! `BYTEA`/`BLOB`, and JSON arrays are text on both (parsed by the domain).

/// One step of a schema: the domain owning the tables it creates or
/// changes, and its SQL.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) domain: &'static str,
    pub(crate) sql: &'static str,
}

/// SQLite: the history, step `i` is schema version `i + 1`.
pub(crate) const SQLITE: &[&str] = &[
    // 1: users, login tokens, enrollment tokens, endpoints, session events.
    r"
    CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE auth_tokens (
        token_hash BLOB PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX auth_tokens_user ON auth_tokens(user_id);
    CREATE TABLE enroll_tokens (
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
    CREATE TABLE session_events (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL,
        username      TEXT NOT NULL,
        endpoint_id   TEXT,
        endpoint_name TEXT NOT NULL,
        kind          TEXT NOT NULL,
        target        TEXT NOT NULL,
        started_at    INTEGER NOT NULL,
        ended_at      INTEGER,
        bytes_up      INTEGER NOT NULL DEFAULT 0,
        bytes_down    INTEGER NOT NULL DEFAULT 0,
        outcome       TEXT NOT NULL
    );
    CREATE INDEX session_events_started ON session_events(started_at);
    ",
    // 2: identity and access — roles, endpoint groups, password policy state,
    // lockout, MFA, API clients, site settings, security events.
    r#"
    CREATE TABLE roles (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        permissions TEXT NOT NULL,          -- JSON array of permission names
        builtin     INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO roles (name, description, permissions, builtin) VALUES
        ('admin', 'Full control of the site',
         '["view","shell","exec","files","forward","manage-users","manage-endpoints","view-audit"]', 1),
        ('technician', 'Remote access to endpoints in the user''s groups',
         '["view","shell","exec","files","forward"]', 1),
        ('auditor', 'Reads endpoints in the user''s groups and the session log',
         '["view","view-audit"]', 1);

    CREATE TABLE groups (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL
    );
    INSERT INTO groups (name, description, created_at)
        SELECT DISTINCT group_name, '', 0 FROM endpoints;
    INSERT OR IGNORE INTO groups (name, description, created_at)
        VALUES ('default', 'Endpoints enrolled without a group', 0);

    ALTER TABLE users ADD COLUMN email TEXT;
    -- JSON array of endpoint groups; ["*"] is every group.
    ALTER TABLE users ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE users ADD COLUMN password_changed_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN locked_until INTEGER;
    ALTER TABLE users ADD COLUMN totp_secret BLOB;
    ALTER TABLE users ADD COLUMN totp_pending BLOB;
    ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
    -- Accounts created before groups existed keep the access they had.
    UPDATE users SET groups = '["*"]', password_changed_at = created_at;

    CREATE TABLE password_history (
        user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        password_hash TEXT NOT NULL,
        changed_at    INTEGER NOT NULL
    );
    CREATE INDEX password_history_user ON password_history(user_id, changed_at);
    INSERT INTO password_history (user_id, password_hash, changed_at)
        SELECT id, password_hash, created_at FROM users;

    CREATE TABLE recovery_codes (
        user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code_hash BLOB NOT NULL,
        used_at   INTEGER,
        PRIMARY KEY (user_id, code_hash)
    );

    -- Unused since schema 2's code: a session's restriction is decided on
    -- every request from the account and the site policy.
    ALTER TABLE auth_tokens ADD COLUMN restricted TEXT;

    CREATE TABLE api_clients (
        client_id         TEXT PRIMARY KEY,
        name              TEXT NOT NULL UNIQUE,
        secret_hash       TEXT NOT NULL,
        scopes            TEXT NOT NULL,   -- JSON array: read, write
        role              TEXT NOT NULL,
        groups            TEXT NOT NULL,   -- JSON array
        created_at        INTEGER NOT NULL,
        secret_rotated_at INTEGER NOT NULL
    );
    CREATE TABLE client_tokens (
        token_hash BLOB PRIMARY KEY,
        client_id  TEXT NOT NULL REFERENCES api_clients(client_id) ON DELETE CASCADE,
        scopes     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );

    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL            -- JSON
    );

    -- Security events (logins, denials, account and role changes). The
    -- audit work turns this into a hash-chained, verifiable log.
    CREATE TABLE events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_at ON events(at);
    "#,
    // 3: the security events become a hash chain (see `events`).
    r"
    ALTER TABLE events ADD COLUMN prev_hash BLOB;
    ALTER TABLE events ADD COLUMN hash BLOB;
    ",
    // 4: shell session recordings (see `recordings`), and the checkpoints
    // that keep the audit chain verifiable after retention removes its
    // oldest entries.
    r"
    CREATE TABLE recordings (
        id             TEXT PRIMARY KEY,
        session_id     TEXT NOT NULL,
        username       TEXT NOT NULL,
        endpoint_name  TEXT NOT NULL,
        started_at     INTEGER NOT NULL,
        ended_at       INTEGER,
        duration_ms    INTEGER NOT NULL DEFAULT 0,
        width          INTEGER NOT NULL,
        height         INTEGER NOT NULL,
        input_recorded INTEGER NOT NULL,
        -- 1 when the recording stopped without its final chunk (a gateway
        -- crash, a write failure): it plays up to its last sealed chunk.
        interrupted    INTEGER NOT NULL DEFAULT 0,
        -- The recording's data key, wrapped by the recordings KEK (`keys`).
        wrapped_key    TEXT NOT NULL,
        -- File name under <data dir>/recordings/.
        file           TEXT NOT NULL
    );
    CREATE INDEX recordings_started ON recordings(started_at);
    CREATE TABLE audit_checkpoints (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        -- The first entry kept; entries before it were expired.
        first_id    INTEGER NOT NULL,
        -- The hash of the last expired entry, which `first_id` chains to.
        anchor_hash BLOB NOT NULL
    );
    ",
    // 5: data at rest — the vault (versioned, envelope-encrypted secrets
    // with soft delete) and the progress of key rotation sweeps.
    r#"
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
    CREATE TABLE key_rotations (
        purpose     TEXT NOT NULL,
        version     INTEGER NOT NULL,
        started_at  INTEGER NOT NULL,
        -- When every stored key was re-wrapped and older versions retired.
        finished_at INTEGER,
        rewrapped   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (purpose, version)
    );
    UPDATE roles SET permissions = json_insert(permissions,
            '$[#]', 'vault-read', '$[#]', 'vault-write', '$[#]', 'vault-purge')
        WHERE name = 'admin' AND builtin = 1;
    "#,
    // 6: cloned agent identities — refused second connections of one
    // endpoint (see `agents`), and enrollment tokens bound to an existing
    // endpoint (re-enrollment: a new key for the same endpoint).
    r"
    ALTER TABLE endpoints ADD COLUMN conflict_at INTEGER;
    ALTER TABLE endpoints ADD COLUMN conflict_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE endpoints ADD COLUMN conflict_peer TEXT;
    ALTER TABLE enroll_tokens ADD COLUMN endpoint_id TEXT;
    ",
    // 7: a running session's progress (last activity, bytes so far), so a
    // session cut by a crash ends at its last activity, not at the restart.
    r"
    ALTER TABLE session_events ADD COLUMN last_active_at INTEGER;
    ",
    // 8: group scope and user names.
    //
    // Sessions, recordings and endpoint-related audit entries carry the
    // group their endpoint was in when they happened, so reads can be
    // limited to the caller's groups (`rbac::ReadScope`). The rule: a row
    // stays with the group of its time — moving an endpoint to another
    // group later does not move its history, and deleting (revoking) it
    // keeps its rows where they were. Rows written before this schema are
    // back-filled from the endpoints as they are now; rows whose endpoint
    // no longer exists stay without a group (NULL), which only holders of
    // every group may read. Audit entries hold a JSON array (an endpoint's
    // move names both groups); NULL marks a site-wide entry.
    //
    // User names become unique regardless of case. Accounts that already
    // clash (`alice` and `Alice`) are kept, not renamed or refused: the
    // oldest of each set keeps the name, the younger ones are flagged
    // `name_clash` (the gateway names them in a warning at every start,
    // they can still log in with their exact name, and an administrator
    // deletes or re-creates them); no new clash can be made.
    r#"
    ALTER TABLE session_events ADD COLUMN endpoint_group TEXT;
    UPDATE session_events SET endpoint_group =
        (SELECT e.group_name FROM endpoints e WHERE e.id = session_events.endpoint_id);
    CREATE INDEX session_events_group ON session_events(endpoint_group, started_at);

    ALTER TABLE recordings ADD COLUMN endpoint_group TEXT;
    UPDATE recordings SET endpoint_group =
        (SELECT s.endpoint_group FROM session_events s WHERE s.id = recordings.session_id);

    ALTER TABLE events ADD COLUMN groups TEXT;
    -- Entries naming an endpoint: the live endpoint of that name, else the
    -- most recently enrolled one.
    UPDATE events SET groups = (
        SELECT json_array(e.group_name) FROM endpoints e WHERE e.name = events.target
        ORDER BY e.revoked_at IS NOT NULL, e.enrolled_at DESC LIMIT 1)
    WHERE action LIKE 'session-open:%' OR action LIKE 'session-close:%'
       OR action LIKE 'open-session:%' OR action IN ('enroll', 'endpoint-revoke', 'endpoint-group');
    UPDATE events SET groups = (
        SELECT json_array(s.endpoint_group) FROM session_events s
        WHERE s.id = events.target AND s.endpoint_group IS NOT NULL)
    WHERE action = 'session-terminate';
    UPDATE events SET groups = (
        SELECT json_array(r.endpoint_group) FROM recordings r
        WHERE r.id = events.target AND r.endpoint_group IS NOT NULL)
    WHERE action = 'recording-view';
    UPDATE events SET groups = json_array(target)
    WHERE action IN ('group-create', 'group-delete', 'enroll-token-create');

    ALTER TABLE users ADD COLUMN name_clash INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET name_clash = 1 WHERE EXISTS (
        SELECT 1 FROM users o WHERE lower(o.username) = lower(users.username)
          AND (o.created_at < users.created_at
               OR (o.created_at = users.created_at AND o.id < users.id)));
    CREATE UNIQUE INDEX users_name_nocase ON users(lower(username)) WHERE name_clash = 0;
    "#,
    // 9: API client secret hashes as lowercase hex text on both engines
    // (earlier versions kept the raw SHA-256 bytes in the text column).
    r"
    UPDATE api_clients SET secret_hash = lower(hex(secret_hash))
    WHERE typeof(secret_hash) = 'blob';
    ",
];

/// PostgreSQL: the baseline (equal to SQLite's step 8), per domain.
pub(crate) const POSTGRES: &[Step] = &[
    Step {
        domain: "identity",
        sql: r#"
    CREATE TABLE users (
        id                  TEXT PRIMARY KEY,
        username            TEXT NOT NULL UNIQUE,
        password_hash       TEXT NOT NULL,
        role                TEXT NOT NULL,
        created_at          BIGINT NOT NULL,
        email               TEXT,
        groups              TEXT NOT NULL DEFAULT '[]',
        password_changed_at BIGINT NOT NULL DEFAULT 0,
        failed_logins       BIGINT NOT NULL DEFAULT 0,
        locked_until        BIGINT,
        totp_secret         BYTEA,
        totp_pending        BYTEA,
        totp_last_step      BIGINT,
        name_clash          BIGINT NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX users_name_nocase ON users(lower(username)) WHERE name_clash = 0;
    CREATE TABLE auth_tokens (
        token_hash BYTEA PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        restricted TEXT
    );
    CREATE INDEX auth_tokens_user ON auth_tokens(user_id);
    CREATE TABLE password_history (
        user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        password_hash TEXT NOT NULL,
        changed_at    BIGINT NOT NULL
    );
    CREATE INDEX password_history_user ON password_history(user_id, changed_at);
    CREATE TABLE recovery_codes (
        user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code_hash BYTEA NOT NULL,
        used_at   BIGINT,
        PRIMARY KEY (user_id, code_hash)
    );
    CREATE TABLE api_clients (
        client_id         TEXT PRIMARY KEY,
        name              TEXT NOT NULL UNIQUE,
        secret_hash       TEXT NOT NULL,
        scopes            TEXT NOT NULL,
        role              TEXT NOT NULL,
        groups            TEXT NOT NULL,
        created_at        BIGINT NOT NULL,
        secret_rotated_at BIGINT NOT NULL
    );
    CREATE TABLE client_tokens (
        token_hash BYTEA PRIMARY KEY,
        client_id  TEXT NOT NULL REFERENCES api_clients(client_id) ON DELETE CASCADE,
        scopes     TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE TABLE roles (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        permissions TEXT NOT NULL,
        builtin     BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO roles (name, description, permissions, builtin) VALUES
        ('admin', 'Full control of the site',
         '["view","shell","exec","files","forward","manage-users","manage-endpoints","view-audit","vault-read","vault-write","vault-purge"]', 1),
        ('technician', 'Remote access to endpoints in the user''s groups',
         '["view","shell","exec","files","forward"]', 1),
        ('auditor', 'Reads endpoints in the user''s groups and the session log',
         '["view","view-audit"]', 1);
    "#,
    },
    Step {
        domain: "settings",
        sql: r"
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ",
    },
    Step {
        domain: "groups",
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
    Step {
        domain: "agents",
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
    Step {
        domain: "sessions",
        sql: r"
    CREATE TABLE session_events (
        id             TEXT PRIMARY KEY,
        user_id        TEXT NOT NULL,
        username       TEXT NOT NULL,
        endpoint_id    TEXT,
        endpoint_name  TEXT NOT NULL,
        kind           TEXT NOT NULL,
        target         TEXT NOT NULL,
        started_at     BIGINT NOT NULL,
        ended_at       BIGINT,
        bytes_up       BIGINT NOT NULL DEFAULT 0,
        bytes_down     BIGINT NOT NULL DEFAULT 0,
        outcome        TEXT NOT NULL,
        last_active_at BIGINT,
        endpoint_group TEXT
    );
    CREATE INDEX session_events_started ON session_events(started_at);
    CREATE INDEX session_events_group ON session_events(endpoint_group, started_at);
    ",
    },
    Step {
        domain: "recordings",
        sql: r"
    CREATE TABLE recordings (
        id             TEXT PRIMARY KEY,
        session_id     TEXT NOT NULL,
        username       TEXT NOT NULL,
        endpoint_name  TEXT NOT NULL,
        started_at     BIGINT NOT NULL,
        ended_at       BIGINT,
        duration_ms    BIGINT NOT NULL DEFAULT 0,
        width          BIGINT NOT NULL,
        height         BIGINT NOT NULL,
        input_recorded BIGINT NOT NULL,
        interrupted    BIGINT NOT NULL DEFAULT 0,
        wrapped_key    TEXT NOT NULL,
        file           TEXT NOT NULL,
        endpoint_group TEXT
    );
    CREATE INDEX recordings_started ON recordings(started_at);
    ",
    },
    Step {
        domain: "events",
        sql: r"
    CREATE TABLE events (
        id        BIGINT PRIMARY KEY,
        at        BIGINT NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        target    TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        detail    TEXT NOT NULL DEFAULT '',
        prev_hash BYTEA,
        hash      BYTEA,
        groups    TEXT
    );
    CREATE INDEX events_at ON events(at);
    CREATE TABLE audit_checkpoints (
        id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        at          BIGINT NOT NULL,
        first_id    BIGINT NOT NULL,
        anchor_hash BYTEA NOT NULL
    );
    ",
    },
    Step {
        domain: "vault",
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
    Step {
        domain: "keys",
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
];
