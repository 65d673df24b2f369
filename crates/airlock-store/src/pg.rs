//! The PostgreSQL journal: one database shared by every `airlock serve` replica.
//!
//! Writers are serialized twice, as in the SQLite journal: a tokio mutex inside the process
//! (so this process's appends are group-committed), and a transaction-scoped advisory lock
//! across processes, taken before the chain head is read, so two replicas can never link to
//! the same predecessor. The schema backs that up: `seq` is the primary key and `prev_hash`
//! is unique, so a fork or a reused seq is refused by the database even if the lock were
//! bypassed. Under READ COMMITTED each statement sees what was committed before it started,
//! so the head read after the lock is the latest one.
//!
//! Every commit is durable when it returns (`synchronous_commit` is left at its default,
//! `on`). When the database cannot be reached, every call fails with
//! [`StoreError::Unavailable`] within the pool's acquire timeout, and the gate fails closed.

use crate::StoreError;
use crate::audit::{
    AuditSource, ChangeCheckRow, ChangeColumns, Pointed, PointedRow, PrincipalCheckRow,
    PrincipalColumns, Table, change_columns, last_recording_sql, missing_rows_sql, pointed,
    principal_columns,
};
use crate::checkpoint::Checkpoint;
use crate::error::{from_migrate, from_pg};
use crate::export::ExportLine;
use crate::group::GroupCommit;
use crate::journal::{
    AgentRecord, Audit, AuditOptions, ChangeRecord, ChangesWritten, EventQuery, Journal,
    StoredEvent, VerifyReport, change_row, principal_digest, validate_batch, validate_change,
    validate_principal,
};
use crate::rows::{ChangeRow, EventRow, PrincipalRow, change, principal, stored};
use airlock_core::event::{Event, EventKind, FORMAT, GENESIS, NewEvent};
use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, SqlSafeStr};
use std::str::FromStr;
use std::time::Duration;

/// The advisory lock every writer of the chain takes for the length of its transaction
/// ("AIRLOCK" and a 1, as a 64-bit key).
const CHAIN_LOCK: i64 = 0x4149_524C_4F43_4B01;
/// How long a call waits for a connection before the journal counts as unreachable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per process.
const MAX_CONNECTIONS: u32 = 8;
/// Connections per process for shared locks; the gate takes each lock once per process
/// (its waiters queue in the process), so a few suffice.
const LOCK_CONNECTIONS: u32 = 4;

const EVENT_COLUMNS: &str =
    "seq, ts, kind, agent, action_id, change_id, payload, prev_hash, hash, format, row_digest";
const PRINCIPAL_COLUMNS: &str =
    "name, kind, token_hash, created_at, revoked <> 0 AS revoked, profile";
const CHANGE_COLUMNS: &str = "id, action_id, agent, status, record, created_at, updated_at";

/// The schema, embedded in the binary.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "journal".into(),
        MigrationType::Simple,
        include_str!("../migrations/postgres/0001_journal.sql").into_sql_str(),
        false,
    )])
}

/// A journal in a PostgreSQL database.
#[derive(Debug)]
pub struct PgJournal {
    pool: PgPool,
    /// Connections that hold shared locks (each lock holds one while it is held).
    locks: PgPool,
    /// This process's write lock, and the appends waiting to be group-committed.
    group: GroupCommit,
    /// The location as shown in messages, password hidden.
    name: String,
    read_only: bool,
}

impl PgJournal {
    /// Connects to `postgres://…` and migrates the schema to the current version (every
    /// replica may do so at once: the migrator takes a lock of its own).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, false).await
    }

    /// Connects to an existing journal without writing to it (for verify, show, export):
    /// every session is read-only, and the schema is checked, not migrated.
    pub async fn open_read_only(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, true).await
    }

    async fn connect(url: &str, read_only: bool) -> Result<Self, StoreError> {
        let name = crate::location::redact(url);
        let doing = format!("cannot open `{name}`");
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("{doing}: {}", redacted(&e, url))))?
            .application_name("airlock");
        if read_only {
            options = options.options([("default_transaction_read_only", "on")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| from_pg(&doing, e))?;
        let locks = PgPoolOptions::new()
            .max_connections(LOCK_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(pool.connect_options().as_ref().clone());
        if read_only {
            check_schema(&pool, &name).await?;
        } else {
            migrator()
                .run(&pool)
                .await
                .map_err(|e| from_migrate(&format!("cannot prepare `{name}`"), e, from_pg))?;
        }
        Ok(Self {
            pool,
            locks,
            group: GroupCommit::default(),
            name,
            read_only,
        })
    }

    fn doing(&self, what: &str) -> String {
        format!("cannot {what} `{}`", self.name)
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::Unavailable(format!(
                "`{}` is open read-only: open it for writing to record anything",
                self.name
            )));
        }
        Ok(())
    }

    /// Runs `work` in one transaction holding the chain lock, and this process's write lock.
    async fn write<T, F>(&self, what: &str, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
                &'c mut PgConnection,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, WriteError>> + Send + 'c>,
            > + Send,
        T: Send,
    {
        self.writable()?;
        let doing = self.doing(what);
        let _guard = self.group.lock().await;
        self.transaction(&doing, work).await
    }

    /// Runs `work` in one transaction that first takes the chain lock; the caller holds the
    /// process's write lock. On any failure the transaction is rolled back (or the
    /// connection closed) before this returns.
    async fn transaction<T, F>(&self, doing: &str, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
                &'c mut PgConnection,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, WriteError>> + Send + 'c>,
            > + Send,
        T: Send,
    {
        let mut conn = self.pool.acquire().await.map_err(|e| from_pg(doing, e))?;
        if let Err(e) = sqlx::query("BEGIN").execute(&mut *conn).await {
            abandon(conn).await;
            return Err(from_pg(doing, e));
        }
        let locked = sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CHAIN_LOCK)
            .execute(&mut *conn)
            .await;
        if let Err(e) = locked {
            abandon(conn).await;
            return Err(from_pg(doing, e));
        }
        let out = match work(&mut conn).await {
            Ok(out) => out,
            Err(e) => {
                abandon(conn).await;
                return Err(match e {
                    WriteError::Db(e) => from_pg(doing, e),
                    WriteError::Store(e) => e,
                });
            }
        };
        if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
            abandon(conn).await;
            return Err(from_pg(doing, e));
        }
        Ok(out)
    }

    /// Appends `evs` in order, contiguously and atomically, durable when it returns;
    /// concurrent callers of this process share one transaction (see `GroupCommit`).
    async fn append_group(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        self.writable()?;
        validate_batch(&evs)?;
        if let [ev] = evs.as_slice()
            && ev.kind == EventKind::Checkpoint
        {
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
                        let mut out = Vec::with_capacity(all.len());
                        for evs in all {
                            let mut stored = Vec::with_capacity(evs.len());
                            for ev in evs {
                                stored.push(insert_event(conn, ev, None).await?);
                            }
                            out.push(stored);
                        }
                        Ok(out)
                    })
                })
            })
            .await
    }
}

/// Ends whatever transaction a failed write left open; if even that fails, the connection
/// is closed rather than returned to the pool.
async fn abandon(mut conn: PoolConnection<Postgres>) {
    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
        conn.close_on_drop();
    }
}

/// A driver error's text with the URL's password hidden, should the driver echo it.
fn redacted(e: &sqlx::Error, url: &str) -> String {
    let text = e.to_string();
    match url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
    {
        Some((userinfo, _)) => match userinfo.split_once(':') {
            Some((_, password)) if !password.is_empty() => text.replace(password, "***"),
            _ => text,
        },
        None => text,
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

/// Makes sure a database opened read-only holds an airlock journal this version can read.
async fn check_schema(pool: &PgPool, name: &str) -> Result<(), StoreError> {
    let doing = format!("cannot read `{name}`");
    let (events, migrations): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('events') IS NOT NULL, to_regclass('_sqlx_migrations') IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| from_pg(&doing, e))?;
    if !events {
        return Err(StoreError::NotFound(format!(
            "`{name}` holds no airlock journal (one is created the first time airlock writes \
             to it)"
        )));
    }
    if migrations {
        let (newest,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
                .fetch_one(pool)
                .await
                .map_err(|e| from_pg(&doing, e))?;
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

/// The current head `(seq, hash)`; `(0, GENESIS)` for an empty journal.
async fn head(conn: &mut PgConnection) -> Result<(i64, String), sqlx::Error> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(head.unwrap_or_else(|| (0, GENESIS.to_string())))
}

/// Appends a checkpoint if it signs the current head; the caller holds the chain lock.
async fn insert_checkpoint(conn: &mut PgConnection, ev: NewEvent) -> Result<Event, WriteError> {
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

/// Inserts or updates a change row and its event, inside the caller's transaction.
async fn write_change(
    conn: &mut PgConnection,
    rec: ChangeRecord,
    ev: NewEvent,
) -> Result<Event, WriteError> {
    let existing: Option<(String, String, i64)> =
        sqlx::query_as("SELECT action_id, agent, created_at FROM changes WHERE id = $1")
            .bind(rec.id.clone())
            .fetch_optional(&mut *conn)
            .await?;
    let (created_at, record, digest) = change_row(
        &rec,
        existing
            .as_ref()
            .map(|(a, g, c)| (a.as_str(), g.as_str(), *c)),
    )
    .map_err(WriteError::Store)?;
    let event = insert_event(conn, ev, Some(digest)).await?;
    sqlx::query(
        "INSERT INTO changes \
         (id, action_id, agent, status, record, created_at, updated_at, event_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
         record = excluded.record, created_at = excluded.created_at, \
         updated_at = excluded.updated_at, event_seq = excluded.event_seq",
    )
    .bind(rec.id)
    .bind(rec.action_id)
    .bind(rec.agent)
    .bind(rec.status.as_str())
    .bind(record)
    .bind(created_at)
    .bind(rec.updated_at)
    .bind(event.seq)
    .execute(&mut *conn)
    .await?;
    Ok(event)
}

/// Links `ev` to the current head and inserts it; the caller holds the chain lock.
async fn insert_event(
    conn: &mut PgConnection,
    ev: NewEvent,
    row_digest: Option<String>,
) -> Result<Event, sqlx::Error> {
    let (seq, prev) = head(conn).await?;
    let event = Event::link_with(&prev, seq + 1, ev, row_digest.as_deref());
    sqlx::query(
        "INSERT INTO events (seq, ts, kind, agent, action_id, change_id, payload, prev_hash, \
         hash, format, row_digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(event.seq)
    .bind(event.ts)
    .bind(event.kind.as_str())
    .bind(event.agent.clone())
    .bind(event.action_id.clone())
    .bind(event.change_id.clone())
    // Exactly the text the hash covers, so the stored row re-hashes byte for byte.
    .bind(event.payload.to_string())
    .bind(event.prev_hash.clone())
    .bind(event.hash.clone())
    .bind(FORMAT)
    .bind(row_digest)
    .execute(&mut *conn)
    .await?;
    Ok(event)
}

#[async_trait]
impl AuditSource for PgJournal {
    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq ASC LIMIT $2"
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_pg(&self.doing("read"), e))?;
        Ok(rows.into_iter().map(stored).collect())
    }

    async fn principal_rows(&self) -> Result<Vec<PrincipalColumns>, StoreError> {
        let rows: Vec<PrincipalCheckRow> = sqlx::query_as(
            "SELECT name, kind, token_hash, created_at, revoked, event_seq, profile \
             FROM principals ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_pg(&self.doing("verify the rows of"), e))?;
        Ok(rows.into_iter().map(principal_columns).collect())
    }

    async fn change_rows(&self, after: &str, limit: i64) -> Result<Vec<ChangeColumns>, StoreError> {
        let rows: Vec<ChangeCheckRow> = sqlx::query_as(
            "SELECT id, action_id, agent, status, record, created_at, updated_at, event_seq \
             FROM changes WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_pg(&self.doing("verify the rows of"), e))?;
        Ok(rows.into_iter().map(change_columns).collect())
    }

    async fn pointed(&self, seq: i64) -> Result<Option<Pointed>, StoreError> {
        let row: Option<PointedRow> = sqlx::query_as(
            "SELECT kind, agent, change_id, format, row_digest FROM events WHERE seq = $1",
        )
        .bind(seq)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| from_pg(&self.doing("verify the rows of"), e))?;
        Ok(row.map(pointed))
    }

    async fn last_recording(
        &self,
        table: Table,
        key: &str,
        end: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (seq,): (Option<i64>,) = sqlx::query_as(last_recording_sql(table))
            .bind(key.to_string())
            .bind(end)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| from_pg(&self.doing("verify the rows of"), e))?;
        Ok(seq)
    }

    async fn missing_rows(&self, table: Table) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as(missing_rows_sql(table))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_pg(&self.doing("verify the rows of"), e))
    }
}

/// A session advisory lock on a connection of its own.
struct PgLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i64,
}

#[async_trait]
impl crate::SharedLock for PgLock {
    async fn release(mut self: Box<Self>) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked: Result<(bool,), _> = sqlx::query_as("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .fetch_one(&mut *conn)
                .await;
            if !matches!(unlocked, Ok((true,))) {
                // Closing the session releases whatever it holds.
                conn.close_on_drop();
            }
        }
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Not released (its holder was cancelled): close the session, which releases it.
            conn.close_on_drop();
        }
    }
}

/// The 64-bit advisory lock key of a lock name.
fn lock_key(name: &str) -> i64 {
    let hash = blake3::hash(format!("airlock-lock\0{name}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    i64::from_le_bytes(bytes)
}

#[async_trait]
impl Journal for PgJournal {
    async fn lock_is_held(&self, key: &str) -> Result<Option<bool>, StoreError> {
        let doing = self.doing(&format!("look at the lock `{key}` in"));
        let mut conn = self.locks.acquire().await.map_err(|e| from_pg(&doing, e))?;
        let key = lock_key(key);
        let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| from_pg(&doing, e))?;
        if got {
            let unlocked: Result<(bool,), _> = sqlx::query_as("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await;
            if !matches!(unlocked, Ok((true,))) {
                conn.close_on_drop();
            }
        }
        Ok(Some(!got))
    }

    async fn lock_shared(
        &self,
        key: &str,
    ) -> Result<Option<Box<dyn crate::SharedLock>>, StoreError> {
        let doing = self.doing(&format!("take the lock `{key}` in"));
        let mut conn = self.locks.acquire().await.map_err(|e| from_pg(&doing, e))?;
        let key = lock_key(key);
        if let Err(e) = sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await
        {
            conn.close_on_drop();
            return Err(from_pg(&doing, e));
        }
        Ok(Some(Box::new(PgLock {
            conn: Some(conn),
            key,
        })))
    }

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
        let mut sql = QueryBuilder::<Postgres>::new("SELECT ");
        sql.push(EVENT_COLUMNS).push(" FROM events WHERE TRUE");
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
            .map_err(|e| from_pg(&self.doing("read"), e))?;
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
                    sqlx::query_as("SELECT kind, created_at FROM principals WHERE name = $1")
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
                    "SELECT name FROM principals WHERE token_hash = $1 AND name <> $2",
                )
                .bind(rec.token_hash.clone())
                .bind(rec.name.clone())
                .fetch_optional(&mut *conn)
                .await?;
                if let Some((other,)) = holder {
                    return Err(WriteError::Store(StoreError::Conflict(format!(
                        "the token for `{}` is already held by principal `{other}`: issue a new \
                         token",
                        rec.name
                    ))));
                }
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
                    "INSERT INTO principals \
                     (name, kind, token_hash, created_at, revoked, event_seq, profile) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
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
        let row: Option<PrincipalRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE token_hash = $1"
        )))
        .bind(token_hash.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| from_pg(&self.doing("read principals from"), e))?;
        Ok(row.map(principal))
    }

    async fn principal(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        let row: Option<PrincipalRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE name = $1"
        )))
        .bind(name.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| from_pg(&self.doing("read principals from"), e))?;
        Ok(row.map(principal))
    }

    async fn principals(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let rows: Vec<PrincipalRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_pg(&self.doing("read principals from"), e))?;
        Ok(rows.into_iter().map(principal).collect())
    }

    async fn put_change(&self, rec: ChangeRecord, mut ev: NewEvent) -> Result<Event, StoreError> {
        validate_change(&rec, &mut ev)?;
        self.write("record a change in", move |conn| {
            Box::pin(async move { write_change(conn, rec, ev).await })
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
                Box::pin(async move {
                    let mut appended = Vec::with_capacity(appends.len());
                    for ev in appends {
                        appended.push(insert_event(conn, ev, None).await?);
                    }
                    let mut written = Vec::with_capacity(good.len());
                    for (rec, ev) in good {
                        written.push(write_change(conn, rec, ev).await?);
                    }
                    Ok((appended, written))
                })
            })
        })
        .await
    }

    async fn change(&self, id: &str) -> Result<Option<ChangeRecord>, StoreError> {
        let row: Option<ChangeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM changes WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| from_pg(&self.doing("read changes from"), e))?;
        row.map(change).transpose()
    }

    async fn changes_with_status(
        &self,
        status: airlock_core::ChangeStatus,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let rows: Vec<ChangeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM changes WHERE status = $1 \
             ORDER BY created_at ASC, id ASC"
        )))
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_pg(&self.doing("read changes from"), e))?;
        rows.into_iter().map(change).collect()
    }
}
