//! The store on both engines: SQLite always, PostgreSQL when
//! `JUMPGATE_TEST_POSTGRES` names a server (`./scripts/test` starts one).

use super::*;

/// A fresh store of each available engine (the temp dir keeps the SQLite
/// file alive).
pub(crate) async fn engines(test: &str) -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let lite = Store::sqlite(sqlite::open(&dir.path().join("s.db")).await.unwrap());
    let mut out = vec![(lite, Some(dir))];
    if let Some(url) = postgres::testdb::fresh(test).await {
        let pool = postgres::open(&url, 40, crate::schema::SCHEMA)
            .await
            .unwrap();
        out.push((Store::postgres(pool), None));
    }
    out
}

#[tokio::test]
async fn postgres_migrations_apply_once_and_reopen_cleanly() {
    let Some(url) = postgres::testdb::fresh("postgres_migrations").await else {
        return;
    };
    let pool = postgres::open(&url, 4, crate::schema::SCHEMA)
        .await
        .unwrap();
    let v: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(v, crate::schema::SCHEMA.latest(Engine::Postgres));
    pool.close().await;
    // Twice at once (two gateways starting): the lock serialises them.
    let (a, b) = tokio::join!(
        postgres::open(&url, 2, crate::schema::SCHEMA),
        postgres::open(&url, 2, crate::schema::SCHEMA)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_version")
        .fetch_one(&a)
        .await
        .unwrap();
    assert_eq!(n, crate::schema::SCHEMA.latest(Engine::Postgres));
    let roles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles WHERE builtin = 1")
        .fetch_one(&b)
        .await
        .unwrap();
    assert_eq!(roles, 3);
}

/// Both engines end with the same tables and columns (names and kinds), so
/// every domain's SQL runs on either.
#[tokio::test]
async fn both_engines_have_the_same_schema() {
    let Some(url) = postgres::testdb::fresh("same_schema").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite::open(&dir.path().join("s.db")).await.unwrap();
    let pg = postgres::open(&url, 2, crate::schema::SCHEMA)
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name <> 'schema_version' ORDER BY name",
    )
    .fetch_all(&lite)
    .await
    .unwrap();
    let pg_tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = 'public' AND table_name <> 'schema_version' ORDER BY table_name",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    assert_eq!(tables, pg_tables);
    for t in &tables {
        let lite_cols: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name, type FROM pragma_table_info('{t}') ORDER BY name"
        )))
        .fetch_all(&lite)
        .await
        .unwrap();
        let pg_cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
              WHERE table_schema = 'public' AND table_name = $1 ORDER BY column_name",
        )
        .bind(t)
        .fetch_all(&pg)
        .await
        .unwrap();
        let kind = |ty: &str| match ty.to_ascii_lowercase().as_str() {
            "integer" | "bigint" => "int",
            "text" => "text",
            "blob" | "bytea" => "bytes",
            other => panic!("unexpected column type {other} in {t}"),
        };
        let lite_cols: Vec<_> = lite_cols
            .iter()
            .map(|(n, ty)| (n.clone(), kind(ty)))
            .collect();
        let pg_cols: Vec<_> = pg_cols
            .iter()
            .map(|(n, ty)| (n.clone(), kind(ty)))
            .collect();
        assert_eq!(lite_cols, pg_cols, "table {t}");
    }
}

/// Many writers at once, each appending audit entries in its own
/// transaction: the chain stays one total order and verifies.
#[tokio::test]
async fn concurrent_audited_writers_keep_one_chain() {
    for (store, _dir) in engines("concurrent_audit").await {
        let mut tasks = Vec::new();
        for w in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let mut tx = store.write().await?;
                    tx.audit(
                        AuditEvent::new(format!("writer{w}"), AuditAction::SettingsChange, "site")
                            .detail(format!("n={i}")),
                    )
                    .await?;
                    tx.commit().await?;
                }
                Ok::<_, sqlx::Error>(())
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let intact = crate::events::verify(&store, None)
            .await
            .unwrap()
            .unwrap_or_else(|b| panic!("{}: {b}", store.engine()));
        assert_eq!(intact.entries, 400, "{}", store.engine());
    }
}

/// A write transaction dropped without commit leaves neither its changes
/// nor its audit entry; `audit_now` writes even so.
#[tokio::test]
async fn an_uncommitted_action_leaves_no_audit_entry() {
    for (store, _dir) in engines("uncommitted").await {
        {
            let mut tx = store.write().await.unwrap();
            sql!(tx, |c| sqlx::query(
                "INSERT INTO groups (name, description, created_at) VALUES ($1, '', 0)"
            )
            .bind("ghost")
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
            tx.audit(AuditEvent::new("alice", AuditAction::GroupCreate, "ghost"))
                .await
                .unwrap();
        }
        store
            .audit_now(
                AuditEvent::new("alice", AuditAction::GroupCreate, "ghost")
                    .outcome("failed")
                    .detail("refused"),
            )
            .await
            .unwrap();
        let mut c = store.conn().await.unwrap();
        let groups: i64 = sql!(c, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM groups WHERE name = 'ghost'"
        )
        .fetch_one(&mut *c)
        .await)
        .unwrap();
        let entries: Vec<(String, String)> = sql!(c, |c| sqlx::query_as(
            "SELECT action, outcome FROM events ORDER BY id"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        assert_eq!(groups, 0, "{}", store.engine());
        assert_eq!(
            entries,
            vec![("group-create".to_owned(), "failed".to_owned())]
        );
    }
}

#[test]
fn database_urls_are_checked_and_shown_without_passwords() {
    assert!(postgres::check_url("postgres://jg@db.example:5432/jumpgate").is_ok());
    assert!(
        postgres::check_url("mysql://jg@db/x")
            .unwrap_err()
            .contains("only PostgreSQL")
    );
    assert!(
        postgres::check_url("postgres://jg@db:5432/")
            .unwrap_err()
            .contains("no database")
    );
    assert!(postgres::check_url("not a url").is_err());
    let shown =
        postgres::redacted("postgres://jg:s3cret@db:5432/j?sslmode=verify-full&password=other");
    assert!(
        !shown.contains("s3cret") && !shown.contains("other"),
        "{shown}"
    );
    assert!(shown.contains("sslmode=verify-full"), "{shown}");
}
