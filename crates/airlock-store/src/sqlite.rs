//! The SQLite journal: one embedded file in WAL mode, fsynced on every commit.
//!
//! Writers are serialized twice: a tokio mutex inside the process, and `BEGIN IMMEDIATE`
//! across processes (it takes SQLite's write lock before reading the chain head, so two
//! appenders can never link to the same predecessor).
//!
//! Writes go through one connection of their own. A write that fails part way (a full
//! disk, an I/O error) is rolled back on that connection before the lock is released (or
//! the connection is dropped if even that fails), so the next write starts clean and
//! succeeds as soon as the cause is gone.

use crate::StoreError;
use crate::audit::{
    AuditSource, ChangeCheckRow, ChangeColumns, Pointed, PointedRow, PrincipalCheckRow,
    PrincipalColumns, Table, change_columns, last_recording_sql, missing_rows_sql, pointed,
    principal_columns,
};
use crate::checkpoint::Checkpoint;
use crate::error::{from_migrate, from_sqlx};
use crate::export::ExportLine;
use crate::group::GroupCommit;
use crate::journal::{
    AgentRecord, Audit, AuditOptions, ChangeRecord, ChangesWritten, EventQuery, Journal,
    StoredEvent, VerifyReport, change_row, principal_digest, validate_batch, validate_change,
    validate_principal,
};
use crate::location::Location;
use crate::rows::{ChangeRow, EventRow, PrincipalRow, change, principal, stored};
use airlock_core::event::{Event, EventKind, FORMAT, GENESIS, NewEvent};
use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, SqlSafeStr, Sqlite, SqliteConnection, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections for a file journal: WAL lets readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 4;

/// The event columns every reader selects; journals written before format 2 have no
/// `format` and `row_digest` columns and read as format 1 (see [`SqliteJournal::columns`]).
const EVENT_COLUMNS: &str =
    "seq, ts, kind, agent, action_id, change_id, payload, prev_hash, hash, format, row_digest";
const LEGACY_EVENT_COLUMNS: &str = "seq, ts, kind, agent, action_id, change_id, payload, \
     prev_hash, hash, 1 AS format, NULL AS row_digest";

/// The schema, embedded in the binary. File names follow sqlx-cli's `VERSION_DESCRIPTION.sql`.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "journal".into(),
            MigrationType::Simple,
            include_str!("../migrations/0001_journal.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "principals".into(),
            MigrationType::Simple,
            include_str!("../migrations/0002_principals.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "exact rows".into(),
            MigrationType::Simple,
            include_str!("../migrations/0003_exact_rows.sql").into_sql_str(),
            false,
        ),
    ])
}

/// A journal in a SQLite file (or in memory, for tests).
#[derive(Debug)]
pub struct SqliteJournal {
    /// Readers.
    pool: SqlitePool,
    /// The one writer connection (the same pool as `pool` for an in-memory journal, whose
    /// database lives in its only connection).
    writer: SqlitePool,
    /// Whether the writer connection may be dropped and reopened when a failed write
    /// cannot be rolled back (not for an in-memory journal: that would lose it).
    reopenable: bool,
    /// A file journal's writer connection, taken from `writer` once and kept: handing it
    /// back to its pool after each write is a task for the runtime, and the next write
    /// would wait for that task's turn. Closed (and another opened) after a failure that
    /// could not be rolled back. Always empty for an in-memory journal.
    held: tokio::sync::Mutex<Option<SqliteConnection>>,
    /// Whether the events table has the format-2 columns (a journal opened read-only may
    /// predate them).
    format2: bool,
    /// This process's write lock, and the appends waiting to be group-committed.
    group: GroupCommit,
    /// The location as shown in messages.
    name: String,
    read_only: bool,
}

impl SqliteJournal {
    /// Opens (creating if needed, including the parent directory) a SQLite journal at a path
    /// or `sqlite://PATH` URL (`sqlite::memory:` for a private in-memory journal).
    ///
    /// The file is put in WAL mode with `synchronous=FULL`, so an append is on disk when it
    /// returns; the schema is migrated to the current version.
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        let (pool, writer, name) = match Location::parse(location)? {
            Location::Postgres(_) => return Err(not_sqlite()),
            Location::SqliteMemory => {
                let pool = memory_pool().await?;
                (pool.clone(), pool, ":memory:".to_string())
            }
            Location::SqliteFile(path) => {
                let name = path.display().to_string();
                create_parent(&path).await?;
                let options = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true);
                // The writer first: it creates the file and sets WAL mode.
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options.clone())
                    .await
                    .map_err(|e| from_sqlx(&format!("cannot open `{name}`"), e))?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(options)
                    .await
                    .map_err(|e| from_sqlx(&format!("cannot open `{name}`"), e))?;
                (pool, writer, name)
            }
        };
        let reopenable = name != ":memory:";
        migrator()
            .run(&writer)
            .await
            .map_err(|e| from_migrate(&format!("cannot prepare `{name}`"), e, from_sqlx))?;
        Ok(Self {
            pool,
            writer,
            reopenable,
            held: Default::default(),
            format2: true,
            group: GroupCommit::default(),
            name,
            read_only: false,
        })
    }

    /// Opens an existing journal read-only (for verify, show, export); it is an error if the
    /// file does not exist or is not an airlock journal.
    pub async fn open_read_only(location: &str) -> Result<Self, StoreError> {
        let path = match Location::parse(location)? {
            Location::Postgres(_) => return Err(not_sqlite()),
            Location::SqliteMemory => {
                return Err(StoreError::Invalid(
                    "an in-memory journal starts empty, so there is nothing to open read-only"
                        .into(),
                ));
            }
            Location::SqliteFile(path) => path,
        };
        let name = path.display().to_string();
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_dir() => {
                return Err(StoreError::Invalid(format!(
                    "`{name}` is a directory: name the journal file inside it"
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(format!(
                    "no journal at `{name}`: check the path (a journal is created the first \
                     time airlock writes to it)"
                )));
            }
            Err(e) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot open `{name}`: {e}"
                )));
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| from_sqlx(&format!("cannot open `{name}`"), e))?;
        check_schema(&pool, &name).await?;
        let format2 = has_format2(&pool, &name).await?;
        Ok(Self {
            writer: pool.clone(),
            pool,
            reopenable: false,
            held: Default::default(),
            format2,
            group: GroupCommit::default(),
            name,
            read_only: true,
        })
    }

    /// Refuses writes on a read-only journal before touching SQLite.
    fn writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::Unavailable(format!(
                "`{}` is open read-only: open it for writing to record anything",
                self.name
            )));
        }
        Ok(())
    }

    fn doing(&self, what: &str) -> String {
        format!("cannot {what} `{}`", self.name)
    }

    /// The columns to select for an event row.
    fn columns(&self) -> &'static str {
        if self.format2 {
            EVENT_COLUMNS
        } else {
            LEGACY_EVENT_COLUMNS
        }
    }

    /// Runs `work` inside one `BEGIN IMMEDIATE` transaction, holding this process's write lock.
    async fn write<T, F>(&self, what: &str, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T> + Send,
        T: Send,
    {
        self.writable()?;
        let doing = self.doing(what);
        let _guard = self.group.lock().await;
        self.transaction(&doing, work).await
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction on the writer connection; the caller
    /// holds the write lock. On any failure the transaction is rolled back before this
    /// returns, so the connection is never left inside a transaction.
    async fn transaction<T, F>(&self, doing: &str, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T> + Send,
        T: Send,
    {
        if !self.reopenable {
            // An in-memory journal's one connection is also its readers'.
            let mut conn = self
                .writer
                .acquire()
                .await
                .map_err(|e| from_sqlx(doing, e))?;
            return Self::in_transaction(&mut conn, doing, work)
                .await
                .map_err(|(e, _)| e);
        }
        let mut held = self.held.lock().await;
        let mut conn = match held.take() {
            Some(conn) => conn,
            None => self
                .writer
                .acquire()
                .await
                .map_err(|e| from_sqlx(doing, e))?
                .detach(),
        };
        let out = Self::in_transaction(&mut conn, doing, work).await;
        if !matches!(out, Err((_, true))) {
            *held = Some(conn);
        }
        out.map_err(|(e, _)| e)
    }

    /// The transaction itself, on `conn`; a failure says whether the connection must be
    /// closed: the transaction could not be ended, so the next write must not find it open.
    async fn in_transaction<T, F>(
        conn: &mut SqliteConnection,
        doing: &str,
        work: F,
    ) -> Result<T, (StoreError, bool)>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T> + Send,
        T: Send,
    {
        // Plain statements rather than the driver's transaction object: the driver keeps
        // its own count of open transactions, which goes wrong when SQLite rolls one back
        // by itself (as it may on a full disk), and then refuses every later write.
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            return Err((from_sqlx(doing, e), !Self::abandon(conn).await));
        }
        let out = match work(&mut *conn).await {
            Ok(out) => out,
            Err(e) => {
                let e = match e {
                    WriteError::Db(e) => from_sqlx(doing, e),
                    WriteError::Store(e) => e,
                };
                return Err((e, !Self::abandon(conn).await));
            }
        };
        if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
            return Err((from_sqlx(doing, e), !Self::abandon(conn).await));
        }
        Ok(out)
    }

    /// Ends whatever transaction a failed write left open on the writer connection; false
    /// if that failed too. SQLite may already have rolled it back itself (a full disk, an
    /// I/O error): then there is nothing to end. A connection that could not end it is
    /// closed and the next write opens a new one (a file journal only; an in-memory
    /// database lives in its connection).
    async fn abandon(conn: &mut SqliteConnection) -> bool {
        match sqlx::query("ROLLBACK").execute(conn).await {
            Ok(_) => true,
            Err(sqlx::Error::Database(db)) => db.message().contains("no transaction is active"),
            Err(_) => false,
        }
    }

    /// Runs `work` on the writer connection outside a transaction, holding the write lock.
    #[cfg(feature = "testing")]
    async fn on_writer<T>(
        &self,
        doing: &str,
        work: impl for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'c>,
        >,
    ) -> Result<T, StoreError> {
        let _guard = self.group.lock().await;
        let mut held = self.held.lock().await;
        if let Some(conn) = held.as_mut() {
            return work(conn).await.map_err(|e| from_sqlx(doing, e));
        }
        let mut conn = self
            .writer
            .acquire()
            .await
            .map_err(|e| from_sqlx(doing, e))?;
        work(&mut conn).await.map_err(|e| from_sqlx(doing, e))
    }

    /// Caps the writer connection's database size at `pages` pages (`PRAGMA
    /// max_page_count`), so writes fail as on a full disk; returns the cap now in force
    /// (SQLite never sets it below the current size). For tests of running out of space.
    #[cfg(feature = "testing")]
    pub async fn set_max_page_count(&self, pages: u64) -> Result<u64, StoreError> {
        let (now,): (i64,) = self
            .on_writer("cannot set max_page_count", |conn| {
                Box::pin(
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "PRAGMA max_page_count = {pages}"
                    )))
                    .fetch_one(conn),
                )
            })
            .await?;
        Ok(now as u64)
    }

    /// The database's size in pages as the writer connection sees it. For tests.
    #[cfg(feature = "testing")]
    pub async fn page_count(&self) -> Result<u64, StoreError> {
        let (n,): (i64,) = self
            .on_writer("cannot read page_count", |conn| {
                Box::pin(sqlx::query_as("PRAGMA page_count").fetch_one(conn))
            })
            .await?;
        Ok(n as u64)
    }
}

impl SqliteJournal {
    /// Appends `evs` in order, contiguously and atomically, durable when it returns.
    /// Concurrent callers are group-committed: one transaction and one fsync for everyone
    /// waiting, so a failure of that transaction fails every caller in it and stores nothing.
    ///
    /// Refusals are checked for the whole batch before it joins a group, so one caller's bad
    /// event never fails another caller's appends.
    pub async fn append_group(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        self.writable()?;
        validate_batch(&evs)?;
        if let [ev] = evs.as_slice()
            && ev.kind == EventKind::Checkpoint
        {
            // Checked against the head inside its own write, so it never joins a group
            // whose other events would move the head it signed.
            let ev = ev.clone();
            return self
                .write("sign a checkpoint in", move |conn| {
                    Box::pin(async move { Ok(vec![insert_checkpoint(conn, ev).await?]) })
                })
                .await;
        }
        let doing = self.doing("append to");
        self.group
            .append(evs, |all| {
                self.transaction(&doing, move |conn| {
                    Box::pin(async move {
                        let sizes: Vec<usize> = all.iter().map(Vec::len).collect();
                        let evs = all.into_iter().flatten().map(|ev| (ev, None)).collect();
                        let mut stored = insert_events(conn, evs).await?.into_iter();
                        Ok(sizes
                            .into_iter()
                            .map(|n| stored.by_ref().take(n).collect())
                            .collect())
                    })
                })
            })
            .await
    }
}

/// Inserts or updates change rows, after the events `before` (appended first), each with
/// its event, in order, inside the caller's transaction; returns the events of `before`
/// and those of the changes. A few statements whatever the number of rows: the write
/// transaction is held while each statement goes to SQLite and back.
async fn write_changes(
    conn: &mut SqliteConnection,
    before: Vec<NewEvent>,
    changes: Vec<(ChangeRecord, NewEvent)>,
) -> Result<(Vec<Event>, Vec<Event>), WriteError> {
    // What each change already is: its owner and first `created_at`.
    let mut known: std::collections::HashMap<String, (String, String, i64)> =
        std::collections::HashMap::new();
    let mut ids: Vec<&str> = changes.iter().map(|(rec, _)| rec.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, action_id, agent, created_at FROM changes WHERE id IN (",
        );
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(id.to_string());
        }
        q.push(")");
        let rows: Vec<(String, String, String, i64)> = q
            .build_query_as()
            .persistent(chunk.len() <= CACHED_ROWS)
            .fetch_all(&mut *conn)
            .await?;
        known.extend(rows.into_iter().map(|(id, a, g, c)| (id, (a, g, c))));
    }
    let appended = before.len();
    let mut evs: Vec<(NewEvent, Option<String>)> =
        before.into_iter().map(|ev| (ev, None)).collect();
    let mut rows = Vec::with_capacity(changes.len());
    for (rec, ev) in changes {
        // A later record of the same change in this group sees this one.
        let (created_at, record, digest) = change_row(
            &rec,
            known
                .get(&rec.id)
                .map(|(a, g, c)| (a.as_str(), g.as_str(), *c)),
        )
        .map_err(WriteError::Store)?;
        known.insert(
            rec.id.clone(),
            (rec.action_id.clone(), rec.agent.clone(), created_at),
        );
        evs.push((ev, Some(digest)));
        rows.push((rec, record, created_at));
    }
    let mut events = insert_events(conn, evs).await?;
    let changed = events.split_off(appended);
    let rows: Vec<_> = rows.into_iter().zip(&changed).collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO changes \
             (id, action_id, agent, status, record, created_at, updated_at, event_seq) ",
        );
        q.push_values(chunk, |mut row, ((rec, record, created_at), event)| {
            row.push_bind(rec.id.clone())
                .push_bind(rec.action_id.clone())
                .push_bind(rec.agent.clone())
                .push_bind(rec.status.as_str())
                .push_bind(record.clone())
                .push_bind(*created_at)
                .push_bind(rec.updated_at)
                .push_bind(event.seq);
        });
        q.push(
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             record = excluded.record, created_at = excluded.created_at, \
             updated_at = excluded.updated_at, event_seq = excluded.event_seq",
        );
        q.build()
            .persistent(chunk.len() <= CACHED_ROWS)
            .execute(&mut *conn)
            .await?;
    }
    Ok((events, changed))
}

/// What a write does inside its transaction, on the writer connection.
type Work<'c, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, WriteError>> + Send + 'c>>;

/// A failure inside a write transaction: a driver error still to be mapped, or a refusal.
enum WriteError {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        WriteError::Db(e)
    }
}

/// A pool over one private in-memory database; a single connection that never expires,
/// because the database lives exactly as long as its connection.
async fn memory_pool() -> Result<SqlitePool, StoreError> {
    let doing = "cannot open an in-memory journal";
    let options = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(|e| from_sqlx(doing, e))?
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(|e| from_sqlx(doing, e))
}

fn not_sqlite() -> StoreError {
    StoreError::Invalid(
        "a postgres:// URL names a PostgreSQL journal, not a SQLite file: open it with \
         `airlock_store::open`"
            .into(),
    )
}

async fn create_parent(path: &Path) -> Result<(), StoreError> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() {
        return Ok(());
    }
    match tokio::fs::metadata(parent).await {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(StoreError::Unavailable(format!(
                "cannot put the journal in `{}`: it is a file, not a directory",
                parent.display()
            )));
        }
        Err(_) => {}
    }
    tokio::fs::create_dir_all(parent).await.map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot create directory `{}` for the journal: {e}",
            parent.display()
        ))
    })
}

/// Makes sure a file opened read-only is an airlock journal this version can read.
async fn check_schema(pool: &SqlitePool, name: &str) -> Result<(), StoreError> {
    let doing = format!("cannot read `{name}`");
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name IN ('events', '_sqlx_migrations')",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| from_sqlx(&doing, e))?;
    if !tables.iter().any(|(t,)| t == "events") {
        return Err(StoreError::Invalid(format!(
            "`{name}` is not an airlock journal"
        )));
    }
    if tables.iter().any(|(t,)| t == "_sqlx_migrations") {
        let (newest,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
                .fetch_one(pool)
                .await
                .map_err(|e| from_sqlx(&doing, e))?;
        let known = migrator().iter().map(|m| m.version).max().unwrap_or(0);
        if newest > known {
            return Err(StoreError::Unavailable(format!(
                "{doing}: it was written by a newer airlock (schema version {newest}); \
                 upgrade airlock"
            )));
        }
    }
    Ok(())
}

/// Makes sure a file opened read-only has the format-2 columns, or reads it as format 1.
async fn has_format2(pool: &SqlitePool, name: &str) -> Result<bool, StoreError> {
    let cols: Vec<(String,)> = sqlx::query_as("SELECT name FROM pragma_table_info('events')")
        .fetch_all(pool)
        .await
        .map_err(|e| from_sqlx(&format!("cannot read `{name}`"), e))?;
    Ok(cols.iter().any(|(c,)| c == "format") && cols.iter().any(|(c,)| c == "row_digest"))
}

/// The current head `(seq, hash)`; `(0, GENESIS)` for an empty journal.
async fn head(conn: &mut SqliteConnection) -> Result<(i64, String), sqlx::Error> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(head.unwrap_or_else(|| (0, GENESIS.to_string())))
}

/// Appends a checkpoint if it signs the current head; the caller holds the write transaction.
async fn insert_checkpoint(conn: &mut SqliteConnection, ev: NewEvent) -> Result<Event, WriteError> {
    let cp = Checkpoint::from_payload(&ev.payload)
        .map_err(|e| WriteError::Store(StoreError::Invalid(e)))?;
    let (seq, hash) = head(conn).await?;
    if cp.head_seq != seq || cp.head_hash != hash {
        return Err(WriteError::Store(StoreError::Conflict(format!(
            "the checkpoint signs event {} but the journal's head is event {seq}: sign the \
             current head",
            cp.head_seq
        ))));
    }
    Ok(insert_event(conn, ev, None).await?)
}

/// Rows per multi-row statement: 11 parameters a row stays far below SQLite's limit.
const ROWS_PER_STATEMENT: usize = 500;
/// Statements of up to this many rows are kept prepared (the usual groups); longer ones are
/// prepared each time rather than push the usual ones out of the connection's cache.
const CACHED_ROWS: usize = 8;

/// Links `ev` to the current head and inserts it in the current format, with the digest of
/// the row written in the same transaction, if any; the caller holds the write transaction.
async fn insert_event(
    conn: &mut SqliteConnection,
    ev: NewEvent,
    row_digest: Option<String>,
) -> Result<Event, sqlx::Error> {
    let mut events = insert_events(conn, vec![(ev, row_digest)]).await?;
    events
        .pop()
        .ok_or_else(|| sqlx::Error::Protocol("no event was inserted".into()))
}

/// Links `evs` to the current head in order, each with the digest of the row written with
/// it, if any, and inserts them in the current format, one statement per
/// [`ROWS_PER_STATEMENT`]; the caller holds the write transaction.
async fn insert_events(
    conn: &mut SqliteConnection,
    evs: Vec<(NewEvent, Option<String>)>,
) -> Result<Vec<Event>, sqlx::Error> {
    if evs.is_empty() {
        return Ok(Vec::new());
    }
    let (mut seq, mut prev) = head(conn).await?;
    let mut linked = Vec::with_capacity(evs.len());
    for (ev, digest) in evs {
        seq += 1;
        let event = Event::link_with(&prev, seq, ev, digest.as_deref());
        prev.clone_from(&event.hash);
        linked.push((event, digest));
    }
    for chunk in linked.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (seq, ts, kind, agent, action_id, change_id, payload, prev_hash, \
             hash, format, row_digest) ",
        );
        q.push_values(chunk, |mut row, (event, digest)| {
            row.push_bind(event.seq)
                .push_bind(event.ts)
                .push_bind(event.kind.as_str())
                .push_bind(event.agent.clone())
                .push_bind(event.action_id.clone())
                .push_bind(event.change_id.clone())
                // Exactly the text `chain_hash` hashed, so the stored row re-hashes byte
                // for byte.
                .push_bind(event.payload.to_string())
                .push_bind(event.prev_hash.clone())
                .push_bind(event.hash.clone())
                .push_bind(FORMAT)
                .push_bind(digest.clone());
        });
        q.build()
            .persistent(chunk.len() <= CACHED_ROWS)
            .execute(&mut *conn)
            .await?;
    }
    Ok(linked.into_iter().map(|(event, _)| event).collect())
}

#[async_trait]
impl AuditSource for SqliteJournal {
    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM events WHERE seq > ? ORDER BY seq ASC LIMIT ?",
            self.columns()
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_sqlx(&self.doing("verify"), e))?;
        Ok(rows.into_iter().map(stored).collect())
    }

    async fn principal_rows(&self) -> Result<Vec<PrincipalColumns>, StoreError> {
        let rows: Vec<PrincipalCheckRow> = sqlx::query_as(
            "SELECT name, kind, token_hash, created_at, revoked, event_seq, profile \
             FROM principals ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_sqlx(&self.doing("verify the rows of"), e))?;
        Ok(rows.into_iter().map(principal_columns).collect())
    }

    async fn change_rows(&self, after: &str, limit: i64) -> Result<Vec<ChangeColumns>, StoreError> {
        let rows: Vec<ChangeCheckRow> = sqlx::query_as(
            "SELECT id, action_id, agent, status, record, created_at, updated_at, event_seq \
             FROM changes WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_sqlx(&self.doing("verify the rows of"), e))?;
        Ok(rows.into_iter().map(change_columns).collect())
    }

    async fn pointed(&self, seq: i64) -> Result<Option<Pointed>, StoreError> {
        let row: Option<PointedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT kind, agent, change_id, format, row_digest FROM ({}) WHERE seq = ?",
            self.event_source()
        )))
        .bind(seq)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| from_sqlx(&self.doing("verify the rows of"), e))?;
        Ok(row.map(pointed))
    }

    async fn last_recording(
        &self,
        table: Table,
        key: &str,
        end: i64,
    ) -> Result<Option<i64>, StoreError> {
        if !self.format2 {
            return Ok(None);
        }
        let (seq,): (Option<i64>,) = sqlx::query_as(last_recording_sql(table))
            .bind(key.to_string())
            .bind(end)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| from_sqlx(&self.doing("verify the rows of"), e))?;
        Ok(seq)
    }

    async fn missing_rows(&self, table: Table) -> Result<Vec<(String, i64)>, StoreError> {
        if !self.format2 {
            return Ok(Vec::new());
        }
        sqlx::query_as(missing_rows_sql(table))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx(&self.doing("verify the rows of"), e))
    }
}

impl SqliteJournal {
    /// The events table as rows of every column (format-1 journals read as such).
    fn event_source(&self) -> String {
        format!("SELECT {} FROM events", self.columns())
    }
}

#[async_trait]
impl Journal for SqliteJournal {
    async fn append(&self, ev: NewEvent) -> Result<Event, StoreError> {
        self.append_group(vec![ev])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Unavailable("the journal stored nothing".into()))
    }

    async fn append_all(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        self.append_group(evs).await
    }

    async fn read(&self, q: EventQuery) -> Result<Vec<Event>, StoreError> {
        if q.limit == Some(0) {
            return Ok(Vec::new());
        }
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT ");
        sql.push(self.columns()).push(" FROM events WHERE 1 = 1");
        if let Some(after) = q.after_seq {
            sql.push(if q.descending {
                " AND seq < "
            } else {
                " AND seq > "
            })
            .push_bind(after);
        }
        if let Some(kind) = q.kind {
            sql.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(agent) = q.agent {
            sql.push(" AND agent = ").push_bind(agent);
        }
        if let Some(action_id) = q.action_id {
            sql.push(" AND action_id = ").push_bind(action_id);
        }
        if let Some(change_id) = q.change_id {
            sql.push(" AND change_id = ").push_bind(change_id);
        }
        sql.push(if q.descending {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq ASC"
        });
        if let Some(limit) = q.limit {
            sql.push(" LIMIT ").push_bind(i64::from(limit));
        }
        let rows: Vec<EventRow> = sql
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx(&self.doing("read"), e))?;
        rows.into_iter()
            .map(|row| {
                let seq = row.0;
                stored(row).decode().map_err(|why| {
                    StoreError::Corrupt(format!(
                        "event {seq} in `{}` is unreadable: {why}",
                        self.name
                    ))
                })
            })
            .collect()
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        Ok(self.audit(AuditOptions::default()).await?.into_report())
    }

    async fn audit(&self, opts: AuditOptions) -> Result<Audit, StoreError> {
        crate::audit::audit(self, opts).await
    }

    async fn export_rows(&self, after_seq: i64, limit: u32) -> Result<Vec<ExportLine>, StoreError> {
        self.events_after(after_seq, i64::from(limit))
            .await?
            .into_iter()
            .map(ExportLine::from_stored)
            .collect()
    }

    async fn put_principal(&self, rec: AgentRecord, mut ev: NewEvent) -> Result<Event, StoreError> {
        validate_principal(&rec, &mut ev)?;
        self.write("record a principal in", move |conn| {
            Box::pin(async move {
                let existing: Option<(String, i64)> =
                    sqlx::query_as("SELECT kind, created_at FROM principals WHERE name = ?")
                        .bind(rec.name.clone())
                        .fetch_optional(&mut *conn)
                        .await?;
                // A re-keyed principal keeps its registration time.
                let created_at = existing.as_ref().map_or(rec.created_at, |(_, c)| *c);
                if let Some((kind, _)) = existing
                    && kind != rec.kind
                {
                    return Err(WriteError::Store(StoreError::Conflict(format!(
                        "principal `{}` is registered as an {kind}; a principal's kind never \
                         changes, so register the {} under another name",
                        rec.name, rec.kind
                    ))));
                }
                let holder: Option<(String,)> = sqlx::query_as(
                    "SELECT name FROM principals WHERE token_hash = ? AND name <> ?",
                )
                .bind(rec.token_hash.clone())
                .bind(rec.name.clone())
                .fetch_optional(&mut *conn)
                .await?;
                if let Some((other,)) = holder {
                    return Err(WriteError::Store(StoreError::Conflict(format!(
                        "the token for `{}` is already held by principal `{other}`: issue a new token",
                        rec.name
                    ))));
                }
                // The event records the digest of the row exactly as it is written.
                let revoked = i64::from(rec.revoked);
                let digest = principal_digest(
                    &rec.name,
                    &rec.kind,
                    &rec.token_hash,
                    created_at,
                    revoked,
                    rec.profile.as_deref(),
                );
                let event = insert_event(conn, ev, Some(digest)).await?;
                sqlx::query(
                    "INSERT INTO principals (name, kind, token_hash, created_at, revoked, event_seq, profile) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
                     token_hash = excluded.token_hash, created_at = excluded.created_at, \
                     revoked = excluded.revoked, event_seq = excluded.event_seq, \
                     profile = excluded.profile",
                )
                .bind(rec.name)
                .bind(rec.kind)
                .bind(rec.token_hash)
                .bind(created_at)
                .bind(revoked)
                .bind(event.seq)
                .bind(rec.profile)
                .execute(&mut *conn)
                .await?;
                Ok(event)
            })
        })
        .await
    }

    async fn principal_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let row: Option<PrincipalRow> = sqlx::query_as(
            "SELECT name, kind, token_hash, created_at, revoked, profile FROM principals \
             WHERE token_hash = ?",
        )
        .bind(token_hash.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| from_sqlx(&self.doing("read principals from"), e))?;
        Ok(row.map(principal))
    }

    async fn principal(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        let row: Option<PrincipalRow> = sqlx::query_as(
            "SELECT name, kind, token_hash, created_at, revoked, profile FROM principals WHERE name = ?",
        )
        .bind(name.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| from_sqlx(&self.doing("read principals from"), e))?;
        Ok(row.map(principal))
    }

    async fn principals(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let rows: Vec<PrincipalRow> = sqlx::query_as(
            "SELECT name, kind, token_hash, created_at, revoked, profile FROM principals ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_sqlx(&self.doing("read principals from"), e))?;
        Ok(rows.into_iter().map(principal).collect())
    }

    async fn put_change(&self, rec: ChangeRecord, mut ev: NewEvent) -> Result<Event, StoreError> {
        validate_change(&rec, &mut ev)?;
        self.write("record a change in", move |conn| {
            Box::pin(async move {
                let (_, mut written) = write_changes(conn, Vec::new(), vec![(rec, ev)]).await?;
                written.pop().ok_or_else(|| {
                    WriteError::Store(StoreError::Unavailable(
                        "the journal stored no change record".into(),
                    ))
                })
            })
        })
        .await
    }

    async fn put_changes(
        &self,
        before: Vec<NewEvent>,
        changes: Vec<(ChangeRecord, NewEvent)>,
    ) -> ChangesWritten {
        crate::journal::together(self, before, changes, |appends, good| {
            self.write("record changes in", move |conn| {
                Box::pin(async move { write_changes(conn, appends, good).await })
            })
        })
        .await
    }

    async fn change(&self, id: &str) -> Result<Option<ChangeRecord>, StoreError> {
        let row: Option<ChangeRow> = sqlx::query_as(
            "SELECT id, action_id, agent, status, record, created_at, updated_at FROM changes \
             WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| from_sqlx(&self.doing("read changes from"), e))?;
        row.map(change).transpose()
    }

    async fn changes_with_status(
        &self,
        status: airlock_core::ChangeStatus,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let rows: Vec<ChangeRow> = sqlx::query_as(
            "SELECT id, action_id, agent, status, record, created_at, updated_at FROM changes \
             WHERE status = ? ORDER BY created_at ASC, id ASC",
        )
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_sqlx(&self.doing("read changes from"), e))?;
        rows.into_iter().map(change).collect()
    }
}
