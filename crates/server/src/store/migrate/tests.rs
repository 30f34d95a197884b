//! `migrate-store`: a SQLite store with rows in every table moves to
//! PostgreSQL whole; a non-empty target or a bad value is refused with
//! nothing written.

use super::*;
use crate::store::{AuditAction, AuditEvent, postgres, sqlite};

/// Real audit entries (a chain with a retention checkpoint in it), and
/// rows of every other table, of every column kind, NULLs included, each
/// reference pointing at a row of the table it names.
async fn fill(store: &Store) {
    for i in 0..4 {
        store
            .audit_now(
                AuditEvent::new("alice", AuditAction::SettingsChange, "site")
                    .detail(format!("old n={i}")),
            )
            .await
            .unwrap();
    }
    // Retention: a checkpoint row, and a chain that starts after #1.
    let removed = crate::events::expire(store, crate::ids::now_ms() + 1, None)
        .await
        .unwrap();
    assert!(removed > 0);
    for i in 0..6 {
        store
            .audit_now(
                AuditEvent::new("bób ✓", AuditAction::UserCreate, format!("user{i}"))
                    .detail("quote ' and \"double\" and \n newline")
                    .group("g1"),
            )
            .await
            .unwrap();
    }
    let pool = store.sqlite_pool().unwrap();
    for table in crate::schema::SCHEMA.tables() {
        if table == "events" || table == "audit_checkpoints" {
            continue;
        }
        // (name, type, nullable: neither NOT NULL nor in the primary key)
        let cols: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name, type, \"notnull\" = 0 AND pk = 0 FROM pragma_table_info('{table}') ORDER BY cid"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        let fks: Vec<(String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list('{table}')"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        for k in 0..3i64 {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                // (OR REPLACE: a seeded row may hold the first key, as
                // the endpoint list's revision counters do)
                "INSERT OR REPLACE INTO {table} ({}) ",
                cols.iter()
                    .map(|c| format!("\"{}\"", c.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let mut values = Vec::new();
            for (ci, (name, ty, nullable)) in cols.iter().enumerate() {
                let v = if let Some((_, other, to)) = fks.iter().find(|f| &f.0 == name) {
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT COUNT(*) FROM {other}"
                    )))
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT {to} FROM {other} ORDER BY {to} LIMIT 1 OFFSET {}",
                        k % n
                    )))
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    Value::Text(v)
                } else if *nullable == 1 && k == 2 {
                    Value::Null
                } else if ty.eq_ignore_ascii_case("INTEGER") {
                    Value::Int(match k {
                        1 => i64::MAX - ci as i64,
                        2 => i64::MIN + ci as i64,
                        _ => ci as i64,
                    })
                } else if ty.eq_ignore_ascii_case("BLOB") {
                    let mut b = vec![k as u8, 0, 255, ci as u8];
                    b.extend(std::iter::repeat_n(0xa5, 300 * k as usize));
                    Value::Bytes(b)
                } else {
                    Value::Text(format!("{table}.{name} #{k} ✓ '\"end"))
                };
                values.push(v);
            }
            q.push_values([values], |mut b, row| {
                for v in row {
                    match v {
                        Value::Null => b.push_bind(None::<String>),
                        Value::Int(i) => b.push_bind(i),
                        Value::Bytes(x) => b.push_bind(x),
                        Value::Text(s) => b.push_bind(s),
                    };
                }
            });
            q.build()
                .execute(pool)
                .await
                .unwrap_or_else(|e| panic!("{table} #{k}: {e}"));
        }
    }
}

async fn filled_source() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::sqlite(sqlite::open(&dir.path().join("s.db")).await.unwrap());
    fill(&store).await;
    (store, dir)
}

/// The registry names every table the SQLite store has (a table missing
/// from it would not be copied); runs without PostgreSQL too.
#[tokio::test]
async fn the_registry_lists_every_table_of_the_embedded_store() {
    let (src, _dir) = filled_source().await;
    let dump = dump(&src).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name <> 'schema_version' ORDER BY name",
    )
    .fetch_all(src.sqlite_pool().unwrap())
    .await
    .unwrap();
    let mut registry = crate::schema::SCHEMA.tables();
    registry.sort();
    assert_eq!(tables, registry);
    for (table, rows) in &dump {
        assert!(!rows.is_empty(), "the fill left {table} empty");
    }
    // A referencing table comes after the table it references.
    let order = crate::schema::SCHEMA.tables();
    let pos = |t: &str| order.iter().position(|x| x == t).unwrap();
    assert!(pos("users") < pos("auth_tokens"));
    assert!(pos("api_clients") < pos("client_tokens"));
    assert!(pos("vault_secrets") < pos("vault_versions"));
}

#[tokio::test]
async fn a_filled_store_moves_to_postgres_whole_and_the_source_is_unchanged() {
    let (src, _dir) = filled_source().await;
    let Some(url) = postgres::testdb::fresh("migrate_whole").await else {
        return;
    };
    let before = dump(&src).await;
    let events = before
        .iter()
        .find(|(t, _)| t == "events")
        .map(|(_, r)| r.len())
        .unwrap();
    let m = copy_to_postgres(&src, &url, crate::schema::SCHEMA)
        .await
        .unwrap();
    assert_eq!(m.tables.len(), before.len());
    for (copy, (table, rows)) in m.tables.iter().zip(&before) {
        assert_eq!(&copy.table, table);
        assert_eq!(copy.rows, rows.len() as u64, "{table}");
    }
    let dst = Store::postgres(
        postgres::open(&url, 4, crate::schema::SCHEMA)
            .await
            .unwrap(),
    );
    let copied = crate::events::verify(&dst, None).await.unwrap().unwrap();
    assert_eq!(copied.entries, events as u64);
    let after = dump(&dst).await;
    for ((t1, r1), (t2, r2)) in before.iter().zip(&after) {
        assert_eq!(t1, t2);
        assert_eq!(r1, r2, "table {t1} differs after the copy");
    }
    assert_eq!(dump(&src).await, before, "the source changed");
    // The target carries on: identity sequences continue after the copied
    // rows (a second checkpoint), and the chain extends and verifies.
    dst.audit_now(AuditEvent::new(
        "carol",
        AuditAction::SettingsChange,
        "site",
    ))
    .await
    .unwrap();
    crate::events::expire(&dst, crate::ids::now_ms() + 1, None)
        .await
        .unwrap();
    dst.audit_now(AuditEvent::new(
        "carol",
        AuditAction::SettingsChange,
        "site",
    ))
    .await
    .unwrap();
    let intact = crate::events::verify(&dst, None).await.unwrap().unwrap();
    assert_eq!(intact.entries, 3);
    dst.close().await;
}

#[tokio::test]
async fn a_target_that_is_not_empty_is_refused_and_left_as_it_was() {
    let (src, _dir) = filled_source().await;
    let Some(url) = postgres::testdb::fresh("migrate_refuse").await else {
        return;
    };
    // A database where a gateway started once (schema and seeds only) is
    // empty enough; after the copy it is not.
    postgres::open(&url, 2, crate::schema::SCHEMA)
        .await
        .unwrap()
        .close()
        .await;
    copy_to_postgres(&src, &url, crate::schema::SCHEMA)
        .await
        .unwrap();
    let dst = Store::postgres(
        postgres::open(&url, 2, crate::schema::SCHEMA)
            .await
            .unwrap(),
    );
    let copied = dump(&dst).await;
    let err = copy_to_postgres(&src, &url, crate::schema::SCHEMA)
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::NotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(dump(&dst).await, copied, "the refused target changed");
    dst.close().await;

    // Another application's tables: refused before anything is created.
    let Some(other) = postgres::testdb::fresh("migrate_refuse_other").await else {
        return;
    };
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&other)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE invoices (id BIGINT PRIMARY KEY)")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO invoices VALUES (1)")
        .execute(&mut c)
        .await
        .unwrap();
    let err = copy_to_postgres(&src, &other, crate::schema::SCHEMA)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("public.invoices"), "{err}");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(tables, vec!["invoices".to_owned()]);
}

/// SQLite lets a column hold a value of another type; such a value is
/// named, not converted or dropped, and the target keeps nothing.
#[tokio::test]
async fn a_value_of_the_wrong_type_stops_the_copy_with_nothing_committed() {
    let (src, _dir) = filled_source().await;
    let Some(url) = postgres::testdb::fresh("migrate_bad_value").await else {
        return;
    };
    sqlx::query(
        "UPDATE users SET failed_logins = 'many' WHERE rowid = (SELECT MIN(rowid) FROM users)",
    )
    .execute(src.sqlite_pool().unwrap())
    .await
    .unwrap();
    let err = copy_to_postgres(&src, &url, crate::schema::SCHEMA)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("users") && text.contains("failed_logins"),
        "{text}"
    );
    let dst = Store::postgres(
        postgres::open(&url, 2, crate::schema::SCHEMA)
            .await
            .unwrap(),
    );
    let users = dump(&dst)
        .await
        .into_iter()
        .find(|(t, _)| t == "users")
        .unwrap()
        .1;
    assert!(users.is_empty());
    // Fixed, the same target is accepted.
    sqlx::query("UPDATE users SET failed_logins = 0 WHERE failed_logins = 'many'")
        .execute(src.sqlite_pool().unwrap())
        .await
        .unwrap();
    copy_to_postgres(&src, &url, crate::schema::SCHEMA)
        .await
        .unwrap();
    dst.close().await;
}
