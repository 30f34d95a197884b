//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! A version's parts are applied in one transaction, in the registry's
//! domain order. Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `identity`: users and their passwords, login tokens, recovery codes, API clients and their tokens.
pub(crate) const IDENTITY: DomainSchema = DomainSchema {
    domain: "identity",
    sqlite: &[
        // 1: users and their login tokens.
        Part {
            version: 1,
            sql: r"
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
",
        },
        // 2: password policy state, lockout, MFA, recovery codes, API clients; accounts made before groups existed keep the access they had.
        Part {
            version: 2,
            sql: r#"    ALTER TABLE users ADD COLUMN email TEXT;
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

"#,
        },
        // 8: user names unique regardless of case; accounts that already clash are kept, the younger flagged `name_clash` (named in a warning at every start), and no new clash can be made.
        Part {
            version: 8,
            sql: r"    ALTER TABLE users ADD COLUMN name_clash INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET name_clash = 1 WHERE EXISTS (
        SELECT 1 FROM users o WHERE lower(o.username) = lower(users.username)
          AND (o.created_at < users.created_at
               OR (o.created_at = users.created_at AND o.id < users.id)));
    CREATE UNIQUE INDEX users_name_nocase ON users(lower(username)) WHERE name_clash = 0;
    ",
        },
        // 9: API client secret hashes as lowercase hex text on both engines
        // (earlier versions kept the raw SHA-256 bytes in the text column).
        Part {
            version: 9,
            sql: r"
    UPDATE api_clients SET secret_hash = lower(hex(secret_hash))
    WHERE typeof(secret_hash) = 'blob';
    ",
        },
    ],
    postgres: &[
        // 1: the baseline (equal to SQLite schema 8).
        Part {
            version: 1,
            sql: r"
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
",
        },
    ],
};

/// `identity`'s site settings (`identity/settings.rs`).
pub(crate) const SETTINGS: DomainSchema = DomainSchema {
    domain: "settings",
    sqlite: &[
        // 2: site settings.
        Part {
            version: 2,
            sql: r"    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL            -- JSON
    );

",
        },
    ],
    postgres: &[
        // 2: the baseline (equal to SQLite schema 8).
        Part {
            version: 2,
            sql: r"
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ",
        },
    ],
};
