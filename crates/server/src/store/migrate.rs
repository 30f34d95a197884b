//! Moving a site from the embedded SQLite store to PostgreSQL
//! (`jumpgate admin migrate-store --to postgres://…`).
//!
//! The copy reads the source inside a SQLite write transaction that is
//! never committed (so no other process writes while it reads, and the
//! source is left exactly as it was) and writes the target inside one
//! PostgreSQL transaction that holds the store's write lock: the target
//! ends with the whole site or with nothing.
//!
//! - The target must be empty: a new database with no tables, or one whose
//!   only tables are Jumpgate's with nothing in them but the rows the
//!   schema itself seeds (built-in roles, the `default` group). Anything
//!   else is refused before a row is written.
//! - Tables are copied in the registry's order (a table after the tables
//!   it references), in batches, each value bound with the target
//!   column's type (read from `information_schema`: BIGINT ↔ i64, BYTEA ↔
//!   bytes, TEXT ↔ text, NULL kept). Source and target must have the same
//!   tables and columns, or nothing is copied.
//! - Sequences behind identity columns continue after the copied rows.
//! - Before the commit, every table's row count and content digest (an
//!   order-independent SHA-256 sum over its rows) are compared between the
//!   source and what the target holds. After it, the caller verifies the
//!   audit chain on the target (`admin::migrate_store`, with `events`):
//!   the store layer imports no domain.

use std::collections::BTreeSet;
use std::str::FromStr;

use futures_util::TryStreamExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use super::migrations::Schema;
use super::postgres::redacted;
use super::{Store, StoreError, WriteKind, WriteTx};

/// Rows per INSERT (bounded by PostgreSQL's 65,535 parameters).
const BATCH_ROWS: usize = 500;

/// One table as copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    /// Rows in the source (and, verified, in the target).
    pub rows: u64,
}

/// What a copy did.
#[derive(Debug)]
pub struct Copied {
    /// Per table, in the order copied.
    pub tables: Vec<TableCopy>,
    /// The target, its password hidden.
    pub target: String,
}

/// Why a migration did not happen (or did not check out).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the source is not the embedded SQLite database")]
    SourceNotSqlite,
    #[error(
        "the target database {target} is not empty ({what}); migrate-store only copies into a new, empty database (createdb NAME), so nothing there is overwritten"
    )]
    NotEmpty { target: String, what: String },
    #[error("the source and target schemas differ: {0}; nothing was copied")]
    Schema(String),
    #[error(
        "table {table}, column {column}: a stored value is not a {expected} ({cause}); nothing was copied"
    )]
    Value {
        table: String,
        column: String,
        expected: &'static str,
        cause: sqlx::Error,
    },
    #[error(
        "table {table}: the target holds {target_rows} rows after the copy, the source {source_rows}; nothing was committed"
    )]
    Count {
        table: String,
        source_rows: u64,
        target_rows: u64,
    },
    #[error(
        "table {table}: the rows in the target differ from the source's; nothing was committed"
    )]
    Content { table: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
}

/// The kind of a column, as the target declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bytes,
    Text,
}

impl Kind {
    fn of_postgres(data_type: &str) -> Option<Self> {
        match data_type {
            "bigint" | "integer" | "smallint" => Some(Self::Int),
            "bytea" => Some(Self::Bytes),
            "text" | "character varying" => Some(Self::Text),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Int => "64-bit integer",
            Self::Bytes => "byte string",
            Self::Text => "text",
        }
    }
}

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
}

impl Value {
    /// Appends the value's unambiguous encoding (kind, length, content).
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            Value::Int(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Bytes(b) => {
                out.push(2);
                out.extend_from_slice(&(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
            Value::Text(t) => {
                out.push(3);
                out.extend_from_slice(&(t.len() as u64).to_be_bytes());
                out.extend_from_slice(t.as_bytes());
            }
        }
    }
}

/// An order-independent digest of a table's rows: the sum (mod 2^256,
/// little-endian limbs) of each row's SHA-256, with the row count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Digest {
    rows: u64,
    sum: [u64; 4],
}

impl Digest {
    fn add(&mut self, row: &[Value]) {
        let mut buf = Vec::new();
        for v in row {
            v.encode(&mut buf);
        }
        let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &buf);
        let mut carry = 0u128;
        for (i, limb) in h.as_ref().chunks_exact(8).enumerate() {
            let x = u64::from_le_bytes(limb.try_into().unwrap_or([0; 8]));
            let s = u128::from(self.sum[i]) + u128::from(x) + carry;
            self.sum[i] = s as u64;
            carry = s >> 64;
        }
        self.rows += 1;
    }
}

/// A table of the target: its name and columns (name, kind) in the
/// target's order.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) name: String,
    columns: Vec<(String, Kind)>,
}

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn select(&self) -> String {
        format!("SELECT {} FROM {}", self.column_list(), quote(&self.name))
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Copies the SQLite store `source` into the empty PostgreSQL database at
/// `target_url`, checks the copy, and returns what was copied. The source
/// is not changed. The audit chain on the committed copy is the caller's
/// to verify.
///
/// # Errors
/// See [`MigrateError`]: a refused target, differing schemas, a value of
/// the wrong type, or a failed check (nothing is committed).
pub(crate) async fn copy_to_postgres(
    source: &Store,
    target_url: &str,
    schema: Schema,
) -> Result<Copied, MigrateError> {
    if source.engine() != super::Engine::Sqlite {
        return Err(MigrateError::SourceNotSqlite);
    }
    let shown = redacted(target_url);
    let order = schema.tables();
    refuse_foreign_tables(target_url, &order).await?;
    let target = Store::postgres(super::postgres::open(target_url, 4, schema).await?);
    let result = copy_tables(source, &target, &order, &shown).await;
    target.close().await;
    Ok(Copied {
        tables: result?,
        target: shown,
    })
}

/// Before anything is created in it: the target holds no table that is not
/// Jumpgate's (an unrelated application's database is refused outright).
async fn refuse_foreign_tables(url: &str, ours: &[String]) -> Result<(), MigrateError> {
    super::postgres::check_url(url).map_err(StoreError::Url)?;
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Url(format!("`{}`: {e}", redacted(url))))?
        .disable_statement_logging()
        .application_name("jumpgate migrate-store");
    let mut c = sqlx::PgConnection::connect_with(&opts)
        .await
        .map_err(|cause| StoreError::Connect {
            target: redacted(url),
            cause,
        })?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
          WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
            AND table_schema NOT LIKE 'pg_toast%' AND table_schema NOT LIKE 'pg_temp%'
          ORDER BY 1, 2",
    )
    .fetch_all(&mut c)
    .await?;
    let _ = c.close().await;
    let foreign: Vec<String> = tables
        .iter()
        .filter(|(schema, name)| {
            schema != "public" || !(name == "schema_version" || ours.contains(name))
        })
        .map(|(schema, name)| format!("{schema}.{name}"))
        .collect();
    if !foreign.is_empty() {
        return Err(MigrateError::NotEmpty {
            target: redacted(url),
            what: format!(
                "it has tables that are not Jumpgate's: {}",
                foreign.join(", ")
            ),
        });
    }
    Ok(())
}

/// The target's tables in `order`, with their columns as the target
/// declares them; the source must have the same tables and columns.
async fn tables_of(
    w: &mut WriteTx,
    src: &mut sqlx::SqliteConnection,
    order: &[String],
) -> Result<Vec<Table>, MigrateError> {
    let WriteKind::Own(t) = &mut w.tx else {
        return Err(MigrateError::SourceNotSqlite);
    };
    let target_tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = 'public' AND table_name <> 'schema_version'",
    )
    .fetch_all(&mut **t)
    .await?
    .into_iter()
    .collect();
    let source_tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name <> 'schema_version'",
    )
    .fetch_all(&mut *src)
    .await?
    .into_iter()
    .collect();
    let registry: BTreeSet<String> = order.iter().cloned().collect();
    if source_tables != target_tables || target_tables != registry {
        let only_source: Vec<_> = source_tables.difference(&target_tables).collect();
        let only_target: Vec<_> = target_tables.difference(&source_tables).collect();
        return Err(MigrateError::Schema(format!(
            "tables only in the source: {only_source:?}; only in the target: {only_target:?} \
             (is the source site of another Jumpgate version? start and stop this version's gateway on it once)"
        )));
    }
    let mut out = Vec::new();
    for name in order {
        let cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
              WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(name)
        .fetch_all(&mut **t)
        .await?;
        let mut columns = Vec::new();
        for (c, ty) in cols {
            let kind = Kind::of_postgres(&ty).ok_or_else(|| {
                MigrateError::Schema(format!(
                    "{name}.{c} has the type {ty}, which no Jumpgate table uses"
                ))
            })?;
            columns.push((c, kind));
        }
        let source_cols: BTreeSet<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{}')",
            name.replace('\'', "''")
        )))
        .fetch_all(&mut *src)
        .await?
        .into_iter()
        .collect();
        let target_cols: BTreeSet<String> = columns.iter().map(|(c, _)| c.clone()).collect();
        if source_cols != target_cols {
            return Err(MigrateError::Schema(format!(
                "table {name}: columns only in the source: {:?}; only in the target: {:?}",
                source_cols.difference(&target_cols).collect::<Vec<_>>(),
                target_cols.difference(&source_cols).collect::<Vec<_>>()
            )));
        }
        out.push(Table {
            name: name.clone(),
            columns,
        });
    }
    Ok(out)
}

/// Reads one row's values with the table's kinds.
fn sqlite_values(table: &Table, row: &sqlx::sqlite::SqliteRow) -> Result<Vec<Value>, MigrateError> {
    let mut out = Vec::with_capacity(table.columns.len());
    for (i, (col, kind)) in table.columns.iter().enumerate() {
        let bad = |cause| MigrateError::Value {
            table: table.name.clone(),
            column: col.clone(),
            expected: kind.name(),
            cause,
        };
        let v = match kind {
            Kind::Int => row
                .try_get::<Option<i64>, _>(i)
                .map_err(bad)?
                .map(Value::Int),
            Kind::Bytes => row
                .try_get::<Option<Vec<u8>>, _>(i)
                .map_err(bad)?
                .map(Value::Bytes),
            Kind::Text => row
                .try_get::<Option<String>, _>(i)
                .map_err(bad)?
                .map(Value::Text),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

fn pg_values(table: &Table, row: &sqlx::postgres::PgRow) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::with_capacity(table.columns.len());
    for (i, (_, kind)) in table.columns.iter().enumerate() {
        let v = match kind {
            Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            Kind::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Bytes),
            Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

async fn insert_batch(
    t: &mut sqlx::PgConnection,
    table: &Table,
    batch: &mut Vec<Vec<Value>>,
) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "INSERT INTO {} ({}) ",
        quote(&table.name),
        table.column_list()
    ));
    qb.push_values(batch.drain(..), |mut b, row| {
        for (v, (_, kind)) in row.into_iter().zip(&table.columns) {
            match (v, kind) {
                (Value::Null, Kind::Int) => b.push_bind(None::<i64>),
                (Value::Null, Kind::Bytes) => b.push_bind(None::<Vec<u8>>),
                (Value::Null, Kind::Text) => b.push_bind(None::<String>),
                (Value::Int(i), _) => b.push_bind(i),
                (Value::Bytes(x), _) => b.push_bind(x),
                (Value::Text(s), _) => b.push_bind(s),
            };
        }
    });
    qb.build().execute(&mut *t).await?;
    Ok(())
}

/// Rows a fresh schema seeds (built-in roles, the `default` group, the
/// endpoint list's revision counters at zero): they do not make a target
/// non-empty, and are replaced by the source's.
const SEEDED: &[(&str, &str)] = &[
    (
        "roles",
        "builtin = 1 AND name IN ('admin', 'technician', 'auditor', 'supervisor')",
    ),
    ("groups", "name = 'default' AND created_at = 0"),
    ("endpoint_revisions", "rev = 0"),
];

async fn copy_tables(
    source: &Store,
    target: &Store,
    order: &[String],
    shown: &str,
) -> Result<Vec<TableCopy>, MigrateError> {
    // The source: a write transaction (no other writer meanwhile, one
    // consistent state), never committed.
    let mut r = source.write_alone().await?;
    // The target: one transaction of its own holding the store's write lock.
    let mut w = target.write_alone().await?;
    let WriteKind::Writer(turn) = &mut r.tx else {
        return Err(MigrateError::SourceNotSqlite);
    };
    let src = turn.conn();
    let tables = tables_of(&mut w, src, order).await?;
    let WriteKind::Own(dst) = &mut w.tx else {
        return Err(MigrateError::SourceNotSqlite);
    };
    // Empty, but for the schema's own seeds.
    for t in &tables {
        let extra = SEEDED
            .iter()
            .find(|(name, _)| *name == t.name)
            .map(|(_, seeded)| format!(" WHERE NOT ({seeded})"))
            .unwrap_or_default();
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}{extra}",
            quote(&t.name)
        )))
        .fetch_one(&mut **dst)
        .await?;
        if n > 0 {
            return Err(MigrateError::NotEmpty {
                target: shown.to_owned(),
                what: format!("table {} holds {n} rows", t.name),
            });
        }
    }
    for t in tables.iter().rev() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {}",
            quote(&t.name)
        )))
        .execute(&mut **dst)
        .await?;
    }
    let mut copied = Vec::new();
    for t in &tables {
        let mut digest = Digest::default();
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let select = t.select();
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(select.as_str())).fetch(&mut *src);
        while let Some(row) = rows.try_next().await? {
            let values = sqlite_values(t, &row)?;
            digest.add(&values);
            batch.push(values);
            if batch.len() == BATCH_ROWS {
                insert_batch(dst, t, &mut batch).await?;
            }
        }
        drop(rows);
        insert_batch(dst, t, &mut batch).await?;
        // What the target now holds, read back.
        let mut back = Digest::default();
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(select.as_str())).fetch(&mut **dst);
        while let Some(row) = rows.try_next().await? {
            back.add(&pg_values(t, &row)?);
        }
        drop(rows);
        if back.rows != digest.rows {
            return Err(MigrateError::Count {
                table: t.name.clone(),
                source_rows: digest.rows,
                target_rows: back.rows,
            });
        }
        if back != digest {
            return Err(MigrateError::Content {
                table: t.name.clone(),
            });
        }
        reset_sequences(dst, t).await?;
        copied.push(TableCopy {
            table: t.name.clone(),
            rows: digest.rows,
        });
    }
    w.commit().await?;
    // Nothing was written to the source: its transaction ends unchanged.
    drop(r);
    Ok(copied)
}

/// Identity and serial columns continue after the largest copied value.
async fn reset_sequences(t: &mut sqlx::PgConnection, table: &Table) -> Result<(), sqlx::Error> {
    for (col, kind) in &table.columns {
        if *kind != Kind::Int {
            continue;
        }
        let seq: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
            .bind(quote(&table.name))
            .bind(col)
            .fetch_one(&mut *t)
            .await?;
        let Some(seq) = seq else { continue };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval($1, COALESCE(MAX({c}), 1), MAX({c}) IS NOT NULL) FROM {t}",
            c = quote(col),
            t = quote(&table.name)
        )))
        .bind(seq)
        .execute(&mut *t)
        .await?;
    }
    Ok(())
}

/// Every table's rows, sorted (tests compare a source with its copy).
#[cfg(test)]
pub(crate) async fn dump(store: &Store) -> Vec<(String, Vec<Vec<Value>>)> {
    let order = crate::schema::SCHEMA.tables();
    let mut out = Vec::new();
    for name in order {
        let mut c = store.conn().await.unwrap();
        let cols: Vec<String> = match &mut c {
            super::PoolConn::Sqlite(c) => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{name}') ORDER BY name"
            )))
            .fetch_all(&mut **c)
            .await
            .unwrap(),
            super::PoolConn::Postgres(c) => sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns
                  WHERE table_schema = 'public' AND table_name = $1 ORDER BY column_name",
            )
            .bind(&name)
            .fetch_all(&mut **c)
            .await
            .unwrap(),
        };
        let select = format!(
            "SELECT {} FROM {}",
            cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
            quote(&name)
        );
        let mut rows: Vec<Vec<Value>> = match &mut c {
            super::PoolConn::Sqlite(c) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(select))
                    .fetch_all(&mut **c)
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| any_values_sqlite(r, cols.len()))
                    .collect()
            }
            super::PoolConn::Postgres(c) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(select))
                    .fetch_all(&mut **c)
                    .await
                    .unwrap();
                rows.iter().map(|r| any_values_pg(r, cols.len())).collect()
            }
        };
        rows.sort();
        out.push((name, rows));
    }
    out
}

#[cfg(test)]
fn any_values_sqlite(r: &sqlx::sqlite::SqliteRow, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                v.map_or(Value::Null, Value::Int)
            } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                v.map_or(Value::Null, Value::Text)
            } else {
                r.try_get::<Option<Vec<u8>>, _>(i)
                    .unwrap()
                    .map_or(Value::Null, Value::Bytes)
            }
        })
        .collect()
}

#[cfg(test)]
fn any_values_pg(r: &sqlx::postgres::PgRow, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                v.map_or(Value::Null, Value::Int)
            } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                v.map_or(Value::Null, Value::Text)
            } else {
                r.try_get::<Option<Vec<u8>>, _>(i)
                    .unwrap()
                    .map_or(Value::Null, Value::Bytes)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
