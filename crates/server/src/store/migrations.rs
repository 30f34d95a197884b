//! The schema registry: how every domain's tables are created and changed,
//! on each engine, in one order.
//!
//! Each domain owns its part of the schema (`identity::schema`,
//! `agents::schema`, …: a [`DomainSchema`], one [`Part`] per schema version
//! it takes part in, for each engine). The list of every domain, in order,
//! is assembled above the store (`crate::schema`) and handed to the store
//! when it opens a database: the store orders and applies the parts and
//! imports no domain.
//!
//! Each engine keeps its own `schema_version` (one row per applied
//! version) and applies the versions it has not seen yet, in one
//! transaction; a version is its domains' parts in the registry's domain
//! order.
//!
//! - **SQLite** keeps the history it grew through (versions 1–9, written
//!   before the store was split by domain: most touch several domains);
//!   existing sites upgrade through them exactly as before.
//! - **PostgreSQL** starts from a baseline equal to SQLite's version 8,
//!   one version per domain (the table owners of `ARCHITECTURE.md`); the
//!   rbac's roles come with `identity`'s version 1.
//!
//! A later schema change is one new version per engine: a part added at
//! the end of the owning domain's lists.
//!
//! Column types are chosen so one Rust type reads both engines: integers
//! are `BIGINT` on PostgreSQL (SQLite's INTEGER is 64-bit; sqlx decodes
//! `i64` from nothing narrower), flags are integers 0/1 on both, bytes are
//! `BYTEA`/`BLOB`, and JSON arrays are text on both (parsed by the domain).

use super::Engine;

/// A domain's part of one schema version: SQL (several statements) run in
/// that version's transaction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Part {
    pub(crate) version: i64,
    pub(crate) sql: &'static str,
}

/// One domain's schema: its parts, in version order, for each engine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DomainSchema {
    /// The owner's name (recorded with PostgreSQL's versions).
    pub(crate) domain: &'static str,
    pub(crate) sqlite: &'static [Part],
    pub(crate) postgres: &'static [Part],
}

impl DomainSchema {
    fn parts(&self, engine: Engine) -> &'static [Part] {
        match engine {
            Engine::Sqlite => self.sqlite,
            Engine::Postgres => self.postgres,
        }
    }
}

/// Every domain's schema, in the order a version's parts are applied (a
/// table after the tables it references).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schema(pub(crate) &'static [&'static DomainSchema]);

/// One schema version as applied.
#[derive(Debug)]
pub(crate) struct Version {
    pub(crate) number: i64,
    /// The domains taking part, in order (`identity,rbac`).
    pub(crate) domains: String,
    /// Their parts, in order.
    pub(crate) sql: Vec<&'static str>,
}

impl Schema {
    /// Versions 1, 2, … of `engine`, each with its parts in the registry's
    /// order.
    pub(crate) fn versions(self, engine: Engine) -> Vec<Version> {
        let latest = self.latest(engine);
        (1..=latest)
            .map(|number| {
                let mut domains = Vec::new();
                let mut sql = Vec::new();
                for d in self.0 {
                    for p in d.parts(engine).iter().filter(|p| p.version == number) {
                        if !domains.contains(&d.domain) {
                            domains.push(d.domain);
                        }
                        sql.push(p.sql);
                    }
                }
                Version {
                    number,
                    domains: domains.join(","),
                    sql,
                }
            })
            .collect()
    }

    /// This registry as it was at `version` (tests build databases of
    /// earlier versions with it).
    #[cfg(test)]
    pub(crate) fn until(self, version: i64) -> Self {
        let domains: Vec<&'static DomainSchema> = self
            .0
            .iter()
            .map(|d| {
                let keep = |parts: &'static [Part]| -> &'static [Part] {
                    Box::leak(
                        parts
                            .iter()
                            .copied()
                            .filter(|p| p.version <= version)
                            .collect::<Vec<_>>()
                            .into_boxed_slice(),
                    )
                };
                &*Box::leak(Box::new(DomainSchema {
                    domain: d.domain,
                    sqlite: keep(d.sqlite),
                    postgres: keep(d.postgres),
                }))
            })
            .collect();
        Self(Box::leak(domains.into_boxed_slice()))
    }

    /// The newest version of `engine` this build knows.
    pub(crate) fn latest(self, engine: Engine) -> i64 {
        self.0
            .iter()
            .flat_map(|d| d.parts(engine))
            .map(|p| p.version)
            .max()
            .unwrap_or(0)
    }

    /// Every table PostgreSQL's schema creates, in creation order (a table
    /// after the tables it references): the order `migrate-store` copies
    /// in.
    pub(crate) fn tables(self) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.versions(Engine::Postgres) {
            for sql in v.sql {
                let mut rest = sql;
                while let Some(i) = rest.to_ascii_uppercase().find("CREATE TABLE") {
                    rest = &rest[i + "CREATE TABLE".len()..];
                    let mut words = rest.split_whitespace();
                    let mut name = words.next().unwrap_or("");
                    if name.eq_ignore_ascii_case("IF") {
                        // IF NOT EXISTS name
                        name = words.nth(2).unwrap_or("");
                    }
                    let name: String = name
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
        out
    }
}
