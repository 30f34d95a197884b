//! The schema registry's contents: every domain's tables (its
//! `schema.rs`), in the one order their parts of a version are applied.
//! Assembled here, above the domains, and handed to the store when it opens
//! a database (`store::open_site`): the store orders and applies them and
//! imports no domain (`store::migrations`).

use crate::store::migrations::Schema;

/// Every domain's schema. A table comes after the tables it references,
/// and within a version a part after the parts it reads (SQLite's version
/// 8 back-fills recordings from sessions, audit entries from both).
pub(crate) const SCHEMA: Schema = Schema(&[
    &crate::identity::schema::IDENTITY,
    &crate::rbac::schema::ROLES,
    &crate::identity::schema::SETTINGS,
    &crate::agents::schema::GROUPS,
    &crate::agents::schema::AGENTS,
    &crate::sessions::schema::SESSIONS,
    &crate::recordings::schema::RECORDINGS,
    &crate::support::schema::SUPPORT,
    &crate::events::schema::EVENTS,
    &crate::vault::schema::VAULT,
    &crate::keys::schema::KEYS,
    &crate::epm::schema::EPM,
    &crate::packages::schema::PACKAGES,
    &crate::ssh::schema::SSH,
    &crate::targets::schema::TARGETS,
    &crate::notify::schema::NOTIFY,
    &crate::access::schema::ACCESS,
    &crate::notify::alerts::schema::ALERTS,
    &crate::notify::webhooks::schema::WEBHOOKS,
]);

#[cfg(test)]
mod tests {
    use super::SCHEMA;
    use crate::store::Engine;

    /// Every version of each engine has parts (no gap), each domain lists
    /// its parts in version order, and SQLite's history and PostgreSQL's
    /// baseline are where existing databases expect them.
    #[test]
    fn the_registry_has_every_version_in_order() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            for v in SCHEMA.versions(engine) {
                assert!(
                    !v.sql.is_empty(),
                    "{engine}: version {} has no part",
                    v.number
                );
            }
            for d in SCHEMA.0 {
                let parts = match engine {
                    Engine::Sqlite => d.sqlite,
                    Engine::Postgres => d.postgres,
                };
                assert!(
                    parts.windows(2).all(|w| w[0].version < w[1].version),
                    "{}: parts out of order",
                    d.domain
                );
            }
        }
        assert_eq!(SCHEMA.latest(Engine::Sqlite), 25);
        assert_eq!(SCHEMA.latest(Engine::Postgres), 25);
        let pg: Vec<String> = SCHEMA
            .versions(Engine::Postgres)
            .into_iter()
            .map(|v| v.domains)
            .collect();
        assert_eq!(
            pg,
            [
                "identity,rbac",
                "settings",
                "groups",
                "agents",
                "sessions",
                "recordings",
                "events",
                "vault",
                "keys",
                "rbac,groups,recordings",
                "agents",
                "rbac,sessions,support",
                "rbac,epm",
                "packages",
                "recordings",
                "ssh",
                "rbac,targets",
                "packages",
                "notify",
                "access",
                "ssh",
                "rbac,alerts",
                "webhooks",
                // 24: another branch's.
                "targets"
            ]
        );
    }

    /// What SQLite says a database is: every table, index and its SQL,
    /// the versions it went through, and the built-in rows the schema
    /// seeds.
    async fn describe(pool: &sqlx::SqlitePool) -> Vec<String> {
        let mut out: Vec<String> = sqlx::query_as::<_, (String, String, Option<String>)>(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, n, sql)| format!("{t} {n}: {}", sql.unwrap_or_default()))
        .collect();
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_version ORDER BY version")
                .fetch_all(pool)
                .await
                .unwrap();
        out.push(format!("versions {versions:?}"));
        let roles: Vec<(String, String)> =
            sqlx::query_as("SELECT name, permissions FROM roles ORDER BY name")
                .fetch_all(pool)
                .await
                .unwrap();
        out.push(format!("roles {roles:?}"));
        let groups: Vec<String> = sqlx::query_scalar("SELECT name FROM groups ORDER BY name")
            .fetch_all(pool)
            .await
            .unwrap();
        out.push(format!("groups {groups:?}"));
        out
    }

    /// An existing SQLite database at any earlier version, with an account
    /// and an enrolled endpoint in it, upgrades to exactly the schema a new
    /// database gets (same tables, columns, indexes, their SQL, versions and
    /// seeded rows), keeping its rows.
    #[tokio::test]
    async fn a_sqlite_database_of_every_past_version_upgrades_to_the_same_schema() {
        use crate::keys::DataKey;
        use crate::store::sqlite::open_with_key;
        let key = DataKey::for_tests(5);
        let dir = tempfile::tempdir().unwrap();
        let fresh = open_with_key(&dir.path().join("fresh.db"), &key, SCHEMA)
            .await
            .unwrap();
        let want = describe(&fresh).await;
        fresh.close().await;
        let latest = SCHEMA.latest(Engine::Sqlite);
        for old in 1..latest {
            let path = dir.path().join(format!("v{old}.db"));
            let pool = open_with_key(&path, &key, SCHEMA.until(old)).await.unwrap();
            let v: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(v, old);
            sqlx::raw_sql(
                "INSERT INTO users (id, username, password_hash, role, created_at)
                     VALUES ('u1', 'alice', 'h', 'admin', 5);
                 INSERT INTO endpoints (id, name, group_name, public_key, hostname, os, arch, agent_version, enrolled_at)
                     VALUES ('e1', 'web-1', 'web', x'00', '', '', '', '', 1);",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
            let pool = open_with_key(&path, &key, SCHEMA).await.unwrap();
            let mut got = describe(&pool).await;
            // The endpoint's group exists once the table does (version 2
            // makes one per group endpoints were enrolled in).
            let groups = got.pop().unwrap();
            let mut want = want.clone();
            want.pop();
            assert_eq!(got, want, "upgraded from version {old}");
            if old == 1 {
                assert_eq!(groups, r#"groups ["default", "web"]"#);
            } else {
                assert_eq!(groups, r#"groups ["default"]"#);
            }
            let user: String = sqlx::query_scalar("SELECT username FROM users WHERE id = 'u1'")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(user, "alice", "from version {old}");
            pool.close().await;
        }
    }
}
