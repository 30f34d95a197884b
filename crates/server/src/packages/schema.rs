//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! Never edit a released part: add a version.
//!
//! - `packages`: every uploaded `.deb` (the file and its signed manifest
//!   are in the blob store under `blob_key` and `manifest_key`); one row
//!   per name, version and architecture.
//! - `package_publishers`: trusted publisher keys (minisign), by name.
//! - `package_assignments`: per endpoint group and package name, what
//!   endpoints should have (`install` [a pinned `version`], `remove`).
//! - `package_results`: per agent and package, what it last did and the
//!   installer's output (bounded).
//! - `package_inventory`: per agent, every installed package as it last
//!   reported; `package_inventory_agents` the revision that list is at.
//! - `package_events` (version 18): append-only, what each endpoint was
//!   told (`pending`, when a notice is sent) and what it answered (each
//!   result), by row id: the analytics shipper's third source.
//!
//! The setting `require_signature` is a row of `settings` (key
//! `packages`).

use crate::store::migrations::{DomainSchema, Part};

/// `packages`: the Package Manager.
pub(crate) const PACKAGES: DomainSchema = DomainSchema {
    domain: "packages",
    sqlite: &[
        Part {
            version: 14,
            sql: r"
    CREATE TABLE packages (
        id               TEXT PRIMARY KEY,
        name             TEXT NOT NULL,
        version          TEXT NOT NULL,
        architecture     TEXT NOT NULL,
        sha256           TEXT NOT NULL,
        size             INTEGER NOT NULL,
        publisher        TEXT,
        description      TEXT NOT NULL,
        depends          TEXT NOT NULL,
        blob_key         TEXT NOT NULL,
        manifest_key     TEXT NOT NULL,
        manifest_sha256  TEXT NOT NULL,
        key_id           TEXT NOT NULL,
        uploaded_by      TEXT NOT NULL,
        uploaded_at      INTEGER NOT NULL,
        UNIQUE (name, version, architecture)
    );
    CREATE TABLE package_publishers (
        name        TEXT PRIMARY KEY,
        key_id      TEXT NOT NULL UNIQUE,
        public_key  TEXT NOT NULL,
        added_by    TEXT NOT NULL,
        added_at    INTEGER NOT NULL
    );
    CREATE TABLE package_assignments (
        group_name  TEXT NOT NULL,
        package     TEXT NOT NULL,
        action      TEXT NOT NULL,
        version     TEXT,
        updated_by  TEXT NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (group_name, package)
    );
    CREATE TABLE package_results (
        agent_id    TEXT NOT NULL,
        package     TEXT NOT NULL,
        action      TEXT NOT NULL,
        version     TEXT,
        outcome     TEXT NOT NULL,
        message     TEXT NOT NULL,
        output      TEXT NOT NULL,
        attempts    INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (agent_id, package)
    );
    CREATE TABLE package_inventory (
        agent_id      TEXT NOT NULL,
        package       TEXT NOT NULL,
        architecture  TEXT NOT NULL,
        version       TEXT NOT NULL,
        PRIMARY KEY (agent_id, package, architecture)
    );
    CREATE INDEX package_inventory_package ON package_inventory(package);
    CREATE TABLE package_inventory_agents (
        agent_id     TEXT PRIMARY KEY,
        revision     INTEGER NOT NULL,
        reported_at  INTEGER NOT NULL
    );
    ",
        },
        Part {
            version: 18,
            sql: r"
    CREATE TABLE package_events (
        id        INTEGER PRIMARY KEY,
        agent_id  TEXT NOT NULL,
        package   TEXT NOT NULL,
        action    TEXT NOT NULL,
        version   TEXT,
        outcome   TEXT NOT NULL,
        message   TEXT NOT NULL,
        at        INTEGER NOT NULL
    );
    ",
        },
    ],
    postgres: &[
        Part {
            version: 14,
            sql: r"
    CREATE TABLE packages (
        id               TEXT PRIMARY KEY,
        name             TEXT NOT NULL,
        version          TEXT NOT NULL,
        architecture     TEXT NOT NULL,
        sha256           TEXT NOT NULL,
        size             BIGINT NOT NULL,
        publisher        TEXT,
        description      TEXT NOT NULL,
        depends          TEXT NOT NULL,
        blob_key         TEXT NOT NULL,
        manifest_key     TEXT NOT NULL,
        manifest_sha256  TEXT NOT NULL,
        key_id           TEXT NOT NULL,
        uploaded_by      TEXT NOT NULL,
        uploaded_at      BIGINT NOT NULL,
        UNIQUE (name, version, architecture)
    );
    CREATE TABLE package_publishers (
        name        TEXT PRIMARY KEY,
        key_id      TEXT NOT NULL UNIQUE,
        public_key  TEXT NOT NULL,
        added_by    TEXT NOT NULL,
        added_at    BIGINT NOT NULL
    );
    CREATE TABLE package_assignments (
        group_name  TEXT NOT NULL,
        package     TEXT NOT NULL,
        action      TEXT NOT NULL,
        version     TEXT,
        updated_by  TEXT NOT NULL,
        updated_at  BIGINT NOT NULL,
        PRIMARY KEY (group_name, package)
    );
    CREATE TABLE package_results (
        agent_id    TEXT NOT NULL,
        package     TEXT NOT NULL,
        action      TEXT NOT NULL,
        version     TEXT,
        outcome     TEXT NOT NULL,
        message     TEXT NOT NULL,
        output      TEXT NOT NULL,
        attempts    BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL,
        PRIMARY KEY (agent_id, package)
    );
    CREATE TABLE package_inventory (
        agent_id      TEXT NOT NULL,
        package       TEXT NOT NULL,
        architecture  TEXT NOT NULL,
        version       TEXT NOT NULL,
        PRIMARY KEY (agent_id, package, architecture)
    );
    CREATE INDEX package_inventory_package ON package_inventory(package);
    CREATE TABLE package_inventory_agents (
        agent_id     TEXT PRIMARY KEY,
        revision     BIGINT NOT NULL,
        reported_at  BIGINT NOT NULL
    );
    ",
        },
        Part {
            version: 18,
            sql: r"
    CREATE TABLE package_events (
        id        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        agent_id  TEXT NOT NULL,
        package   TEXT NOT NULL,
        action    TEXT NOT NULL,
        version   TEXT,
        outcome   TEXT NOT NULL,
        message   TEXT NOT NULL,
        at        BIGINT NOT NULL
    );
    ",
        },
    ],
};
