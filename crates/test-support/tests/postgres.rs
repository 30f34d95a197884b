//! The test databases on `JUMPGATE_TEST_POSTGRES` (the server
//! `./scripts/test` starts): each is fresh, usable, and gone once dropped.

use jumpgate_test_support::{Engine, PgDatabase, for_each_engine, postgres_server};
use sqlx::Connection;

async fn exists(server: &str, name: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
    sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_test_database_is_fresh_and_dropped_with_its_value_even_while_in_use() {
    let Some(server) = postgres_server() else {
        println!("skipped: JUMPGATE_TEST_POSTGRES unset");
        return;
    };
    let a = PgDatabase::create_on(&server).await;
    let b = PgDatabase::create_on(&server).await;
    assert_ne!(a.name, b.name);
    assert!(a.name.starts_with("jg_"), "{}", a.name);
    assert_eq!(a.table_count().await, 0);
    let mut conn = sqlx::PgConnection::connect(&a.url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (x integer)")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(a.table_count().await, 1);
    assert_eq!(b.table_count().await, 0, "databases are separate");
    let name = a.name.clone();
    assert!(exists(&server, &name).await);
    // Dropped although `conn` (like a gateway just killed) still holds it.
    drop(a);
    assert!(!exists(&server, &name).await);
    assert!(conn.ping().await.is_err(), "its connections are ended");
}

#[tokio::test]
async fn for_each_engine_runs_sqlite_then_postgres_when_a_server_is_given() {
    let ran = std::sync::Mutex::new(Vec::new());
    for_each_engine(async |engine| ran.lock().unwrap().push(engine)).await;
    let expected = if postgres_server().is_some() {
        vec![Engine::Sqlite, Engine::Postgres]
    } else {
        vec![Engine::Sqlite]
    };
    assert_eq!(*ran.lock().unwrap(), expected);
}
