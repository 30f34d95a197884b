//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! Never edit a released part: add a version.
//!
//! - `notify_cursors` (version 19): per consumer of the audit chain (mail
//!   alerts, webhooks), the id of the last entry it took. Advanced in the
//!   same transaction as the queue rows the consumer wrote for the entries
//!   before it, so each entry is taken exactly once across restarts.

use crate::store::migrations::{DomainSchema, Part};

/// `notify`: the readers of the audit chain that tell the outside world.
pub(crate) const NOTIFY: DomainSchema = DomainSchema {
    domain: "notify",
    sqlite: &[Part {
        version: 19,
        sql: r"
    CREATE TABLE notify_cursors (
        consumer  TEXT PRIMARY KEY,
        last_id   INTEGER NOT NULL
    );
",
    }],
    postgres: &[Part {
        version: 19,
        sql: r"
    CREATE TABLE notify_cursors (
        consumer  TEXT PRIMARY KEY,
        last_id   BIGINT NOT NULL
    );
",
    }],
};
