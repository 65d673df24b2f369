//! Airlock's storage: the append-only, hash-chained [`Journal`] and the state that changes
//! together with it (principals, changes), behind one trait with two backends: SQLite
//! (embedded, the default) and PostgreSQL (shared by several replicas).
//!
//! Every event links to the one before it by a BLAKE3 hash over its exact stored bytes (see
//! `airlock_core::event`), and each `principals` and `changes` row matches a digest recorded
//! by its event, so [`Journal::verify`] finds any row that was altered, removed or reordered
//! after the fact. Signed checkpoints (`checkpoint`) make a recomputed chain show too.
//! Driver errors are mapped to [`StoreError`]; nothing from `sqlx` leaks out of this crate.
//!
//! With the `testing` feature, `testing` holds the conformance suite every backend runs.

mod audit;
pub mod checkpoint;
mod error;
pub mod export;
mod group;
mod journal;
mod location;
mod pg;
mod rows;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use checkpoint::{Checkpoint, CheckpointSigner, KeyError, PublicKey};
pub use error::StoreError;
pub use export::{ExportLine, audit_export, checkpoints_in_export, witness_line};
pub use group::{GroupCommit, Stored};
pub use journal::{
    AgentRecord, Audit, AuditOptions, BrokenLink, ChangeRecord, ChangesWritten, EventQuery,
    Journal, Problem, SharedLock, SignedHead, VerifyReport, validate_batch,
};
pub use pg::PgJournal;
pub use sqlite::SqliteJournal;

use location::Location;
use std::sync::Arc;

/// Opens (creating if needed) a store by URL or path: `sqlite://PATH`, a plain path,
/// `sqlite::memory:` for a private in-memory journal, or `postgres://…` for a journal that
/// several replicas share (its schema is migrated on open).
pub async fn open(location: &str) -> Result<Arc<dyn Journal>, StoreError> {
    Ok(match Location::parse(location)? {
        Location::Postgres(url) => Arc::new(PgJournal::open(&url).await?),
        _ => Arc::new(SqliteJournal::open(location).await?),
    })
}

/// Opens an existing store without writing to it (for verify, show, export): it is an
/// error if there is no journal there.
pub async fn open_read_only(location: &str) -> Result<Arc<dyn Journal>, StoreError> {
    Ok(match Location::parse(location)? {
        Location::Postgres(url) => Arc::new(PgJournal::open_read_only(&url).await?),
        _ => Arc::new(SqliteJournal::open_read_only(location).await?),
    })
}

/// Whether `location` names a store that several processes may share as replicas
/// (PostgreSQL), rather than one process's embedded file.
pub fn is_shared(location: &str) -> bool {
    matches!(Location::parse(location), Ok(Location::Postgres(_)))
}
