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
    assert_eq!(roles, 4);
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

/// SQLite's writers queue in the store ([`WriteGate`]): one waiting for its
/// turn starts when the writer before it commits, and a writer that can
/// never have its turn (nested inside another) fails after the wait instead
/// of hanging.
#[tokio::test]
async fn sqlite_writers_take_turns_and_a_nested_writer_fails_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite::open(&dir.path().join("s.db")).await.unwrap();
    let store = Store::sqlite_with_gate(pool, std::time::Duration::from_millis(300));
    let mut first = store.write().await.unwrap();
    first
        .audit(AuditEvent::new(
            "first",
            AuditAction::SettingsChange,
            "site",
        ))
        .await
        .unwrap();
    // Nested: both kinds of writer are refused with the pool's time-out.
    assert!(matches!(
        store.write().await.err(),
        Some(sqlx::Error::PoolTimedOut)
    ));
    assert!(matches!(
        store.write_conn().await.err(),
        Some(sqlx::Error::PoolTimedOut)
    ));
    // A writer queued behind `first` goes on once it commits.
    let second = tokio::spawn({
        let store = store.clone();
        async move {
            let mut w = store.write().await?;
            w.audit(AuditEvent::new(
                "second",
                AuditAction::SettingsChange,
                "site",
            ))
            .await?;
            w.commit().await
        }
    });
    first.commit().await.unwrap();
    second.await.unwrap().unwrap();
    let mut c = store.conn().await.unwrap();
    let actors: Vec<String> = sql!(c, |c| sqlx::query_scalar(
        "SELECT actor FROM events ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)
    .unwrap();
    assert_eq!(actors, ["first", "second"]);
    let intact = crate::events::verify(&store, None).await.unwrap().unwrap();
    assert_eq!(intact.entries, 2);
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

/// Waits until `n` writers have joined the gathering batch (PostgreSQL's
/// group commit; SQLite has no batches: nothing to wait for).
async fn batch_gathered(store: &Store, n: usize) {
    if store.engine() == Engine::Sqlite {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.batch_members() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} writers never joined one batch (now {})",
            store.batch_members()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn new_group(w: &mut WriteTx, name: &str) -> Result<(), sqlx::Error> {
    sql!(w, |c| sqlx::query(
        "INSERT INTO groups (name, description, created_at) VALUES ($1, '', 0)"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(AuditEvent::new("alice", AuditAction::GroupCreate, name))
        .await
}

async fn audited_targets(store: &Store) -> Vec<String> {
    let mut c = store.conn().await.unwrap();
    sql!(c, |c| sqlx::query_scalar(
        "SELECT target FROM events ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)
    .unwrap()
}

async fn group_exists(store: &Store, name: &str) -> bool {
    let mut c = store.conn().await.unwrap();
    let n: i64 = sql!(c, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM groups WHERE name = $1"
    )
    .bind(name)
    .fetch_one(&mut *c)
    .await)
    .unwrap();
    n == 1
}

/// Three writers in one batch (on PostgreSQL): the second one's statement
/// fails (the first one's row is already there, in the same batch); the
/// first and third commit with their audit entries, the second leaves
/// nothing, and the chain verifies.
#[tokio::test]
async fn a_writer_failing_inside_a_batch_loses_only_its_own_writes() {
    for (store, _dir) in engines("batch_member_fails").await {
        let engine = store.engine();
        let mut a = store.write().await.unwrap();
        new_group(&mut a, "alpha").await.unwrap();
        let b = tokio::spawn({
            let store = store.clone();
            async move {
                let mut w = store.write().await?;
                // The name the first writer took: a unique violation.
                new_group(&mut w, "alpha").await?;
                w.commit().await
            }
        });
        batch_gathered(&store, 2).await;
        let c = tokio::spawn({
            let store = store.clone();
            async move {
                let mut w = store.write().await?;
                new_group(&mut w, "gamma").await?;
                w.commit().await
            }
        });
        batch_gathered(&store, 3).await;
        a.commit().await.unwrap();
        let b = b.await.unwrap().expect_err("a duplicate group");
        assert!(
            b.as_database_error()
                .is_some_and(|d| d.is_unique_violation()),
            "{engine}: {b}"
        );
        c.await.unwrap().unwrap();
        assert!(group_exists(&store, "alpha").await, "{engine}");
        assert!(group_exists(&store, "gamma").await, "{engine}");
        assert_eq!(
            audited_targets(&store).await,
            ["alpha", "gamma"],
            "{engine}"
        );
        let intact = crate::events::verify(&store, None)
            .await
            .unwrap()
            .unwrap_or_else(|b| panic!("{engine}: {b}"));
        assert_eq!(intact.entries, 2, "{engine}");
    }
}

/// A batch whose COMMIT fails (a deferred constraint one writer broke) is
/// an error for every writer in it, and none of their writes (nor audit
/// entries) remain; the next write works and the chain verifies.
#[tokio::test]
async fn a_failed_batch_commit_is_an_error_for_each_of_its_writers() {
    for (store, _dir) in engines("batch_commit_fails").await {
        let engine = store.engine();
        store
            .execute_unchecked("CREATE TABLE poison_parent (id BIGINT PRIMARY KEY)")
            .await
            .unwrap();
        store
            .execute_unchecked(
                "CREATE TABLE poison (parent BIGINT REFERENCES poison_parent (id) \
                 DEFERRABLE INITIALLY DEFERRED)",
            )
            .await
            .unwrap();
        let mut a = store.write().await.unwrap();
        new_group(&mut a, "innocent").await.unwrap();
        let b = tokio::spawn({
            let store = store.clone();
            async move {
                let mut w = store.write().await?;
                new_group(&mut w, "guilty").await?;
                // Checked only at COMMIT.
                sql!(w, |c| sqlx::query("INSERT INTO poison (parent) VALUES (1)")
                    .execute(&mut *c)
                    .await
                    .map(|r| r.rows_affected()))?;
                w.commit().await
            }
        });
        batch_gathered(&store, 2).await;
        let a = a.commit().await;
        let b = b.await.unwrap();
        assert!(b.is_err(), "{engine}: {b:?}");
        match engine {
            // One batch: the innocent writer's commit failed with it.
            Engine::Postgres => {
                let e = a.expect_err("the batch failed");
                assert!(e.to_string().contains("batch"), "{e}");
                assert!(!group_exists(&store, "innocent").await);
            }
            // One writer at a time: only the guilty one failed.
            Engine::Sqlite => {
                a.unwrap();
                assert!(group_exists(&store, "innocent").await);
            }
        }
        assert!(!group_exists(&store, "guilty").await, "{engine}");
        let mut w = store.write().await.unwrap();
        new_group(&mut w, "after").await.unwrap();
        w.commit().await.unwrap();
        let expected: &[&str] = match engine {
            Engine::Postgres => &["after"],
            Engine::Sqlite => &["innocent", "after"],
        };
        assert_eq!(audited_targets(&store).await, expected, "{engine}");
        crate::events::verify(&store, None)
            .await
            .unwrap()
            .unwrap_or_else(|b| panic!("{engine}: {b}"));
    }
}

/// Many writers at once, some failing a statement, some dropping their
/// transaction after writing its audit entry: exactly the committed ones
/// remain, in one chain that verifies.
#[tokio::test]
async fn concurrent_writers_with_failures_keep_one_chain() {
    for (store, _dir) in engines("concurrent_failing").await {
        let engine = store.engine();
        let mut w = store.write().await.unwrap();
        new_group(&mut w, "taken").await.unwrap();
        w.commit().await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut committed = 0;
                for i in 0..20 {
                    let mut w = store.write().await?;
                    match i % 4 {
                        0 => {
                            let e = new_group(&mut w, "taken").await.expect_err("duplicate");
                            assert!(e.as_database_error().is_some(), "{e}");
                        }
                        1 => new_group(&mut w, &format!("dropped-{t}-{i}")).await?,
                        _ => {
                            new_group(&mut w, &format!("w-{t}-{i}")).await?;
                            w.commit().await?;
                            committed += 1;
                        }
                    }
                }
                Ok::<_, sqlx::Error>(committed)
            }));
        }
        let mut committed = 0;
        for t in tasks {
            committed += t.await.unwrap().unwrap();
        }
        assert_eq!(committed, 16 * 10);
        let targets = audited_targets(&store).await;
        assert_eq!(targets.len(), 1 + committed, "{engine}");
        assert!(
            targets.iter().skip(1).all(|t| t.starts_with("w-")),
            "{engine}: {targets:?}"
        );
        let mut c = store.conn().await.unwrap();
        let groups: i64 = sql!(c, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM groups WHERE name LIKE 'w-%' OR name LIKE 'dropped-%'"
        )
        .fetch_one(&mut *c)
        .await)
        .unwrap();
        assert_eq!(groups, committed as i64, "{engine}");
        let intact = crate::events::verify(&store, None)
            .await
            .unwrap()
            .unwrap_or_else(|b| panic!("{engine}: {b}"));
        assert_eq!(intact.entries, 1 + committed as u64, "{engine}");
    }
}

/// A writer given up while it waits for its turn (its future dropped, as
/// when a client goes away) does not keep the others' batch from
/// committing.
#[tokio::test]
async fn a_writer_dropped_while_waiting_does_not_hold_up_the_batch() {
    for (store, _dir) in engines("batch_member_cancelled").await {
        let engine = store.engine();
        let mut a = store.write().await.unwrap();
        new_group(&mut a, "kept").await.unwrap();
        let waiting = tokio::spawn({
            let store = store.clone();
            async move {
                let _w = store.write().await;
                unreachable!("the first writer holds the store until it commits");
            }
        });
        batch_gathered(&store, 2).await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        tokio::time::timeout(std::time::Duration::from_secs(30), a.commit())
            .await
            .unwrap_or_else(|_| panic!("{engine}: the commit never completed"))
            .unwrap();
        assert!(group_exists(&store, "kept").await, "{engine}");
        assert_eq!(audited_targets(&store).await, ["kept"], "{engine}");
    }
}
