//! Persistence. sea-orm entities live in `entities` and stay here; the
//! functions in the sibling modules take a connection or a transaction and
//! return domain or view types.

pub mod api_keys;
pub mod assets;
pub mod audit;
pub mod connectors;
mod entities;
pub mod events;
pub mod feedback;
pub mod outbox;
pub mod redecide_jobs;
pub mod rules;
pub mod sandbox;
pub mod suppressions;
pub mod timers;
pub mod work_orders;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use sea_orm::{DatabaseTransaction, TransactionTrait};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Db(#[from] DbErr),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is not what this version expects: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A deadlock or serialization failure: the transaction may simply be retried.
    pub fn is_contention(&self) -> bool {
        use sea_orm::RuntimeErr;
        match self {
            Self::Db(DbErr::Exec(RuntimeErr::SqlxError(se)) | DbErr::Query(RuntimeErr::SqlxError(se))) => {
                se.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40P01" || c == "40001")
            }
            _ => false,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Db(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))))
    }
}

/// Parameter `n` (from 1) in the backend's placeholder style.
fn placeholder(backend: sea_orm::DbBackend, n: usize) -> String {
    match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

/// `(p), (p), …`: a VALUES list of `rows` one-column rows whose parameters
/// start at `first`.
fn values_rows(backend: sea_orm::DbBackend, first: usize, rows: usize) -> String {
    (first..first + rows).map(|n| format!("({})", placeholder(backend, n))).collect::<Vec<_>>().join(", ")
}

/// A model as a row to insert: every column set.
pub(crate) fn new_row<A: sea_orm::ActiveModelTrait, M: sea_orm::IntoActiveModel<A>>(model: M) -> A {
    model.into_active_model().reset_all()
}

/// Inserts rows, skipping those that conflict on `unique` (when given);
/// returns how many were written.
///
/// On PostgreSQL all rows go in one statement that takes one array per
/// column (`unnest`), bound in PostgreSQL's binary format: its text is the
/// same whatever the number of rows, so it is prepared once, and nothing is
/// parsed but the JSON columns, once each. (The rows as one JSON document
/// for `json_populate_recordset` cost PostgreSQL about twice as much: it
/// lexed the document and then each JSON column again. Multi-row VALUES
/// cost more still, in binding and planning.)
/// SQLite takes multi-row VALUES, within its limit of bound parameters.
pub(crate) async fn insert_rows<E, C>(
    conn: &C,
    rows: Vec<E::Model>,
    unique: Option<&[E::Column]>,
) -> Result<u64, StoreError>
where
    E: EntityTrait,
    E::Model: sea_orm::IntoActiveModel<E::ActiveModel>,
    C: ConnectionTrait,
{
    use sea_orm::Iterable;
    if rows.is_empty() {
        return Ok(0);
    }
    let backend = conn.get_database_backend();
    if backend == sea_orm::DbBackend::Postgres {
        let statement = unnest_insert::<E>(rows, unique)?;
        return Ok(conn.execute_raw(statement).await?.rows_affected());
    }
    // SQLite binds at most 32,766 parameters a statement.
    let per_statement = (30_000 / E::Column::iter().count().max(1)).max(1);
    let mut written = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk = rows.by_ref().take(per_statement).map(new_row);
        let insert = E::insert_many(chunk);
        written += match unique {
            Some(cols) => {
                let conflict = sea_orm::sea_query::OnConflict::columns(cols.iter().copied()).do_nothing().to_owned();
                insert.on_conflict(conflict).exec_without_returning(conn).await?
            }
            None => insert.exec_without_returning(conn).await?,
        };
    }
    Ok(written)
}

/// PostgreSQL: `INSERT … SELECT … FROM unnest($1::text[], …)`, one array
/// per column. Arrays bound through sea-query cannot hold NULL, so a
/// nullable column also gets a mask (`bool[]`) and a placeholder where the
/// value is NULL.
fn unnest_insert<E>(rows: Vec<E::Model>, unique: Option<&[E::Column]>) -> Result<sea_orm::Statement, StoreError>
where
    E: EntityTrait,
    E::Model: sea_orm::IntoActiveModel<E::ActiveModel>,
{
    use sea_orm::sea_query::{ArrayType, Value};
    use sea_orm::{ActiveModelTrait, ColumnTrait, ColumnType, IdenStatic, Iterable};

    let table = E::default().table_name();
    // Taken out of active models, the values move: reading them off the
    // models would copy every JSON document.
    let mut rows: Vec<E::ActiveModel> = rows.into_iter().map(sea_orm::IntoActiveModel::into_active_model).collect();
    let mut params: Vec<Value> = Vec::new();
    let mut unnest = Vec::new();
    let mut aliases = Vec::new();
    let mut select = Vec::new();
    let mut names = Vec::new();
    for column in E::Column::iter() {
        let name = column.as_str();
        let def = column.def();
        let values: Vec<Value> = rows
            .iter_mut()
            .map(|r| r.take(column).into_value())
            .collect::<Option<_>>()
            .ok_or_else(|| StoreError::Corrupt(format!("{table}.{name}: a row without a value")))?;
        // The array's element type, what stands in for NULL, and how the
        // selected element becomes the column's value.
        let (array, sql_type, cast, placeholder): (ArrayType, &str, &str, Value) = match def.get_column_type() {
            ColumnType::Json => (ArrayType::String, "text", "::json", Value::from("null")),
            ColumnType::JsonBinary => (ArrayType::String, "text", "::jsonb", Value::from("null")),
            _ => match values.first() {
                Some(Value::String(_)) | None => (ArrayType::String, "text", "", Value::from(String::new())),
                Some(Value::Int(_)) => (ArrayType::Int, "int4", "", Value::from(0i32)),
                Some(Value::BigInt(_)) => (ArrayType::BigInt, "int8", "", Value::from(0i64)),
                Some(Value::Bool(_)) => (ArrayType::Bool, "bool", "", Value::from(false)),
                Some(Value::ChronoDateTimeUtc(_)) => (
                    ArrayType::ChronoDateTimeUtc,
                    "timestamptz",
                    "",
                    Value::from(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH),
                ),
                // A type none of the inserted tables has yet: the tests,
                // which run every insert on PostgreSQL, would say so.
                Some(other) => {
                    return Err(StoreError::Corrupt(format!("{table}.{name}: no array type for {other:?}")));
                }
            },
        };
        let nullable = def.is_null();
        let mut nulls = Vec::with_capacity(if nullable { rows.len() } else { 0 });
        let mut elements = Vec::with_capacity(rows.len());
        for value in values {
            let value = match value {
                // Straight to bytes: `Display` writes through a formatter.
                Value::Json(Some(json)) => Value::from(
                    serde_json::to_string(&json).map_err(|e| StoreError::Corrupt(format!("{table}.{name}: {e}")))?,
                ),
                other => other,
            };
            let null = value_is_null(&value);
            if nullable {
                nulls.push(Value::from(null));
            }
            elements.push(if null { placeholder.clone() } else { value });
        }
        params.push(Value::Array(array, Some(Box::new(elements))));
        unnest.push(format!("${}::{sql_type}[]", params.len()));
        aliases.push(format!("v_{name}"));
        if nullable {
            params.push(Value::Array(ArrayType::Bool, Some(Box::new(nulls))));
            unnest.push(format!("${}::bool[]", params.len()));
            aliases.push(format!("n_{name}"));
            select.push(format!("CASE WHEN n_{name} THEN NULL ELSE v_{name}{cast} END"));
        } else {
            select.push(format!("v_{name}{cast}"));
        }
        names.push(name);
    }
    let on_conflict = match unique {
        Some(cols) => {
            let cols: Vec<&str> = cols.iter().map(|c| c.as_str()).collect();
            format!(" ON CONFLICT ({}) DO NOTHING", cols.join(", "))
        }
        None => String::new(),
    };
    let sql = format!(
        "INSERT INTO {table} ({}) SELECT {} FROM unnest({}) AS u({}){on_conflict}",
        names.join(", "),
        select.join(", "),
        unnest.join(", "),
        aliases.join(", "),
    );
    Ok(sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, params))
}

fn value_is_null(value: &sea_orm::sea_query::Value) -> bool {
    use sea_orm::sea_query::Value;
    matches!(
        value,
        Value::String(None)
            | Value::Int(None)
            | Value::BigInt(None)
            | Value::Bool(None)
            | Value::ChronoDateTimeUtc(None)
            | Value::Json(None)
    )
}

#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite file: read-only connections for reads that need not see the
    /// writer's open transaction (WAL readers never block it), so that a
    /// batch can be read and evaluated while the previous one is written.
    reader: Option<DatabaseConnection>,
}

impl Store {
    /// Connects (creating an SQLite file when the URL asks for it).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        // SQLite allows one writer at a time, and a deferred transaction that
        // read first fails at once (SQLITE_BUSY_SNAPSHOT) when it tries to
        // write after another commit. One connection serialises all access,
        // which is what the embedded single-replica default needs.
        let sqlite = url.starts_with("sqlite:");
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(if sqlite { 1 } else { max_connections })
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings a pooled connection before every hand-out by
            // default: a round trip (on SQLite, two thread hand-offs) before
            // each statement outside a transaction. A connection that broke
            // fails its statement instead, which every caller retries.
            .test_before_acquire(false)
            .sqlx_logging(false)
            // WAL lets the HTTP side read while the consumer writes; the busy
            // timeout turns writer contention into waiting instead of errors.
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        let db = Database::connect(opts).await?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let reader = if sqlite && !in_memory {
            let mut opts = ConnectOptions::new(url.to_owned());
            opts.max_connections(2)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(10))
                .test_before_acquire(false)
                .sqlx_logging(false)
                .map_sqlx_sqlite_opts(|o| {
                    o.read_only(true).create_if_missing(false).busy_timeout(Duration::from_secs(10))
                });
            Some(Database::connect(opts).await?)
        } else {
            None
        };
        Ok(Self { db, reader })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        use migrations::MigratorTrait;
        migrations::Migrator::up(&self.db, None).await?;
        Ok(())
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// For reads that may miss what a transaction in progress writes: on an
    /// SQLite file, a read-only connection beside the writer; otherwise the
    /// pool.
    pub fn reads(&self) -> &DatabaseConnection {
        self.reader.as_ref().unwrap_or(&self.db)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    pub async fn begin(&self) -> Result<DatabaseTransaction, StoreError> {
        Ok(self.db.begin().await?)
    }

    pub async fn close(self) {
        if let Some(reader) = self.reader {
            let _ = reader.close().await;
        }
        let _ = self.db.close().await;
    }
}

/// `limit`/`offset` pagination of list endpoints.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// Items per page (1 to 500, default 50); outside that range the request
    /// is refused (422).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// Items to skip (0 to 1,000,000,000, default 0).
    #[param(minimum = 0, maximum = 1_000_000_000)]
    pub offset: Option<u64>,
}

impl PageRequest {
    /// The API refuses a limit outside 1 to 500 (`api::extract::check_query`);
    /// the bounds here hold for callers inside the crate too.
    pub fn limit(&self) -> u64 {
        self.limit.unwrap_or(50).clamp(1, 500)
    }
    /// Bounded: the databases take signed 64-bit offsets.
    pub fn offset(&self) -> u64 {
        self.offset.unwrap_or(0).min(1_000_000_000)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// All items that match the filters.
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

/// Narrows `q` to rows whose columns equal the given values (`None` is no
/// filter) and whose `time` lies in `[since, until)`.
fn filtered<E: EntityTrait>(
    mut q: Select<E>,
    equal: &[(E::Column, &Option<String>)],
    time: E::Column,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Select<E> {
    for (col, val) in equal {
        if let Some(v) = val {
            q = q.filter(col.eq(v.as_str()));
        }
    }
    if let Some(since) = since {
        q = q.filter(time.gte(since));
    }
    if let Some(until) = until {
        q = q.filter(time.lt(until));
    }
    q
}

/// One page of `q`, newest first by `order`, with the total count.
async fn paged<E, C, T>(
    conn: &C,
    q: Select<E>,
    order: &[E::Column],
    page: PageRequest,
    view: impl FnMut(E::Model) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError>
where
    E: EntityTrait,
    E::Model: Sync,
    C: ConnectionTrait,
{
    paged_in(conn, q, order, sea_orm::Order::Desc, page, view).await
}

/// `paged`, in the direction given.
async fn paged_in<E, C, T>(
    conn: &C,
    q: Select<E>,
    order: &[E::Column],
    direction: sea_orm::Order,
    page: PageRequest,
    view: impl FnMut(E::Model) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError>
where
    E: EntityTrait,
    E::Model: Sync,
    C: ConnectionTrait,
{
    let total = q.clone().count(conn).await?;
    let mut q = q;
    for col in order {
        q = q.order_by(*col, direction.clone());
    }
    let items =
        q.limit(page.limit()).offset(page.offset()).all(conn).await?.into_iter().map(view).collect::<Result<_, _>>()?;
    Ok(Page { items, total, limit: page.limit(), offset: page.offset() })
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {value:?}"))
}

/// New ids: UUID v7, time-ordered so that ids sort roughly by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl StoreError {
    /// A lost or unreachable database (worth a retry once it is back), as
    /// opposed to an error of the statement itself.
    pub fn is_connection_error(&self) -> bool {
        let e = self;
        use sea_orm::{DbErr, RuntimeErr};
        match e {
            StoreError::Db(DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) => true,
            StoreError::Db(DbErr::Exec(RuntimeErr::SqlxError(se)) | DbErr::Query(RuntimeErr::SqlxError(se))) => {
                matches!(
                    se.as_ref(),
                    sea_orm::sqlx::Error::Io(_)
                        | sea_orm::sqlx::Error::PoolTimedOut
                        | sea_orm::sqlx::Error::PoolClosed
                        | sea_orm::sqlx::Error::WorkerCrashed
                ) || se.as_database_error().is_some_and(|d| {
                    // 57P01 admin shutdown, 08xxx connection exceptions.
                    d.code().is_some_and(|c| c.starts_with("08") || c == "57P01" || c == "57P03")
                })
            }
            _ => false,
        }
    }
}
