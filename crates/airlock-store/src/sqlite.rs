//! The SQLite journal: one embedded file in WAL mode, fsynced on every commit.
//!
//! Writers are serialized twice: a tokio mutex inside the process, and `BEGIN IMMEDIATE`
//! across processes (it takes SQLite's write lock before reading the chain head, so two
//! appenders can never link to the same predecessor).

use crate::StoreError;
use crate::error::{from_migrate, from_sqlx};
use crate::journal::{
    AgentRecord, ChainCheck, ChangeRecord, EventQuery, Journal, StoredEvent, VerifyReport,
    validate_change, validate_event, validate_principal,
};
use crate::location::Location;
use airlock_core::event::{Event, GENESIS, NewEvent};
use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, SqlSafeStr, Sqlite, SqliteConnection, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per batch when `verify` walks the chain.
const VERIFY_BATCH: i64 = 1000;
/// Connections for a file journal: WAL lets readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 4;

const EVENT_COLUMNS: &str = "seq, ts, kind, agent, action_id, change_id, payload, prev_hash, hash";

type EventRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);
type PrincipalRow = (String, String, String, i64, bool, Option<String>);
type ChangeRow = (String, String, String, String, String, i64, i64);

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
    ])
}

/// A journal in a SQLite file (or in memory, for tests).
#[derive(Debug)]
pub struct SqliteJournal {
    pool: SqlitePool,
    /// Serializes this process's writers so they queue here rather than on SQLite's lock.
    write_lock: Mutex<()>,
    /// Appends waiting for the next group commit: whoever holds the write lock next writes
    /// every waiting append in one transaction (one fsync), then answers each.
    pending: std::sync::Mutex<Vec<PendingAppend>>,
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
        let (pool, name) = match Location::parse(location)? {
            Location::SqliteMemory => (memory_pool().await?, ":memory:".to_string()),
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
                let pool = SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(options)
                    .await
                    .map_err(|e| from_sqlx(&format!("cannot open `{name}`"), e))?;
                (pool, name)
            }
        };
        migrator()
            .run(&pool)
            .await
            .map_err(|e| from_migrate(&format!("cannot prepare `{name}`"), e))?;
        Ok(Self {
            pool,
            write_lock: Mutex::new(()),
            pending: std::sync::Mutex::new(Vec::new()),
            name,
            read_only: false,
        })
    }

    /// Opens an existing journal read-only (for verify, show, export); it is an error if the
    /// file does not exist or is not an airlock journal.
    pub async fn open_read_only(location: &str) -> Result<Self, StoreError> {
        let path = match Location::parse(location)? {
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
        Ok(Self {
            pool,
            write_lock: Mutex::new(()),
            pending: std::sync::Mutex::new(Vec::new()),
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

    /// Runs `work` inside one `BEGIN IMMEDIATE` transaction, holding this process's write lock.
    async fn write<T, F>(&self, what: &str, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, WriteError>> + Send + 'c>,
            > + Send,
        T: Send,
    {
        self.writable()?;
        let doing = self.doing(what);
        let _guard = self.write_lock.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| from_sqlx(&doing, e))?;
        let out = match work(&mut tx).await {
            Ok(out) => out,
            Err(WriteError::Db(e)) => return Err(from_sqlx(&doing, e)),
            Err(WriteError::Store(e)) => return Err(e),
        };
        tx.commit().await.map_err(|e| from_sqlx(&doing, e))?;
        Ok(out)
    }
}

/// Events to append together, and where to send the stored events.
type PendingAppend = (
    Vec<NewEvent>,
    tokio::sync::oneshot::Sender<Result<Vec<Event>, StoreError>>,
);

impl SqliteJournal {
    /// Appends `evs` in order, contiguously and atomically, durable when it returns.
    /// Concurrent callers are group-committed: one transaction and one fsync for everyone
    /// waiting, so a failure of that transaction fails every caller in it and stores nothing.
    ///
    /// Refusals are checked for the whole batch before it joins a group, so one caller's bad
    /// event never fails another caller's appends.
    pub async fn append_group(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        self.writable()?;
        evs.iter().try_for_each(validate_event)?;
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| StoreError::Unavailable("the journal's queue is poisoned".into()))?
            .push((evs, tx));
        let guard = self.write_lock.lock().await;
        if let Ok(done) = rx.try_recv() {
            return done;
        }
        let batch: Vec<PendingAppend> = std::mem::take(
            &mut *self
                .pending
                .lock()
                .map_err(|_| StoreError::Unavailable("the journal's queue is poisoned".into()))?,
        );
        let doing = self.doing("append to");
        let result: Result<Vec<Vec<Event>>, StoreError> = async {
            let mut txn = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|e| from_sqlx(&doing, e))?;
            let mut out = Vec::with_capacity(batch.len());
            for (evs, _) in &batch {
                let mut stored = Vec::with_capacity(evs.len());
                for ev in evs {
                    stored.push(
                        insert_event(&mut txn, ev.clone())
                            .await
                            .map_err(|e| from_sqlx(&doing, e))?,
                    );
                }
                out.push(stored);
            }
            txn.commit().await.map_err(|e| from_sqlx(&doing, e))?;
            Ok(out)
        }
        .await;
        drop(guard);
        match result {
            Ok(all) => {
                for ((_, reply), stored) in batch.into_iter().zip(all) {
                    let _ = reply.send(Ok(stored));
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        rx.await
            .map_err(|_| StoreError::Unavailable("the journal writer went away".into()))?
    }
}

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

/// Links `ev` to the current head and inserts it; the caller holds the write transaction.
async fn insert_event(conn: &mut SqliteConnection, ev: NewEvent) -> Result<Event, sqlx::Error> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev) = head.unwrap_or_else(|| (0, GENESIS.to_string()));
    let event = Event::link(&prev, seq + 1, ev);
    sqlx::query(
        "INSERT INTO events (seq, ts, kind, agent, action_id, change_id, payload, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(event.seq)
    .bind(event.ts)
    .bind(event.kind.as_str())
    .bind(event.agent.clone())
    .bind(event.action_id.clone())
    .bind(event.change_id.clone())
    // Exactly the text `chain_hash` hashed, so the stored row re-hashes byte for byte.
    .bind(event.payload.to_string())
    .bind(event.prev_hash.clone())
    .bind(event.hash.clone())
    .execute(&mut *conn)
    .await?;
    Ok(event)
}

fn stored(row: EventRow) -> StoredEvent {
    let (seq, ts, kind, agent, action_id, change_id, payload, prev_hash, hash) = row;
    StoredEvent {
        seq,
        ts,
        kind,
        agent,
        action_id,
        change_id,
        payload,
        prev_hash,
        hash,
    }
}

fn principal(row: PrincipalRow) -> AgentRecord {
    let (name, kind, token_hash, created_at, revoked, profile) = row;
    AgentRecord {
        name,
        kind,
        token_hash,
        created_at,
        revoked,
        profile,
    }
}

fn change(row: ChangeRow) -> Result<ChangeRecord, StoreError> {
    let (id, action_id, agent, status, record, created_at, updated_at) = row;
    let record = serde_json::from_str(&record)
        .map_err(|e| StoreError::Corrupt(format!("change `{id}` has an unreadable record: {e}")))?;
    let status = status
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("change `{id}`: {e}")))?;
    Ok(ChangeRecord {
        id,
        action_id,
        agent,
        status,
        record,
        created_at,
        updated_at,
    })
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
        sql.push(EVENT_COLUMNS).push(" FROM events WHERE 1 = 1");
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
        let doing = self.doing("verify");
        let mut check = ChainCheck::new();
        loop {
            let rows: Vec<EventRow> = sqlx::query_as(
                "SELECT seq, ts, kind, agent, action_id, change_id, payload, prev_hash, hash \
                 FROM events WHERE seq > ? ORDER BY seq ASC LIMIT ?",
            )
            .bind(check.last_seq())
            .bind(VERIFY_BATCH)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx(&doing, e))?;
            let full = rows.len() as i64 == VERIFY_BATCH;
            for row in rows {
                if !check.push(stored(row)) {
                    return Ok(check.finish());
                }
            }
            if !full {
                return Ok(check.finish());
            }
        }
    }

    async fn put_principal(&self, rec: AgentRecord, mut ev: NewEvent) -> Result<Event, StoreError> {
        validate_principal(&rec, &mut ev)?;
        self.write("record a principal in", move |conn| {
            Box::pin(async move {
                let existing: Option<(String,)> =
                    sqlx::query_as("SELECT kind FROM principals WHERE name = ?")
                        .bind(rec.name.clone())
                        .fetch_optional(&mut *conn)
                        .await?;
                if let Some((kind,)) = existing
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
                let event = insert_event(conn, ev).await?;
                sqlx::query(
                    "INSERT INTO principals (name, kind, token_hash, created_at, revoked, event_seq, profile) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, \
                     revoked = excluded.revoked, event_seq = excluded.event_seq, \
                     profile = excluded.profile",
                )
                .bind(rec.name)
                .bind(rec.kind)
                .bind(rec.token_hash)
                .bind(rec.created_at)
                .bind(rec.revoked)
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
                let existing: Option<(String, String)> =
                    sqlx::query_as("SELECT action_id, agent FROM changes WHERE id = ?")
                        .bind(rec.id.clone())
                        .fetch_optional(&mut *conn)
                        .await?;
                if let Some((action_id, agent)) = existing
                    && (action_id != rec.action_id || agent != rec.agent)
                {
                    return Err(WriteError::Store(StoreError::Conflict(format!(
                        "change `{}` belongs to action `{action_id}` of agent `{agent}`, \
                         not action `{}` of agent `{}`",
                        rec.id, rec.action_id, rec.agent
                    ))));
                }
                let event = insert_event(conn, ev).await?;
                sqlx::query(
                    "INSERT INTO changes \
                     (id, action_id, agent, status, record, created_at, updated_at, event_seq) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                     record = excluded.record, updated_at = excluded.updated_at, \
                     event_seq = excluded.event_seq",
                )
                .bind(rec.id)
                .bind(rec.action_id)
                .bind(rec.agent)
                .bind(rec.status.as_str())
                .bind(rec.record.to_string())
                .bind(rec.created_at)
                .bind(rec.updated_at)
                .bind(event.seq)
                .execute(&mut *conn)
                .await?;
                Ok(event)
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
