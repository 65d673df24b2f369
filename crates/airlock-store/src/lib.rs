//! Airlock's storage: the append-only, hash-chained [`Journal`] and the state that changes
//! together with it (principals, changes), behind one trait with a SQLite backend.
//!
//! Every event links to the one before it by a BLAKE3 hash over its exact stored bytes (see
//! `airlock_core::event`), and each `principals` and `changes` row matches a digest recorded
//! by its event, so [`Journal::verify`] finds any row that was altered, removed or reordered
//! after the fact. Signed checkpoints (`checkpoint`) make a recomputed chain show too.
//! Driver errors are mapped to [`StoreError`]; nothing from `sqlx` leaks out of this crate.
//!
//! With the `testing` feature, `testing` holds the conformance suite every backend runs.

pub mod checkpoint;
mod error;
pub mod export;
mod journal;
mod location;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use checkpoint::{Checkpoint, CheckpointSigner, KeyError, PublicKey};
pub use error::StoreError;
pub use export::{ExportLine, audit_export, checkpoints_in_export, witness_line};
pub use journal::{
    AgentRecord, Audit, AuditOptions, BrokenLink, ChangeRecord, EventQuery, Journal, Problem,
    SignedHead, VerifyReport,
};
pub use sqlite::SqliteJournal;

use std::sync::Arc;

/// Opens (creating if needed) a store by URL or path: `sqlite://PATH`, a plain path, or
/// `sqlite::memory:` for a private in-memory journal.
pub async fn open(location: &str) -> Result<Arc<dyn Journal>, StoreError> {
    Ok(Arc::new(SqliteJournal::open(location).await?))
}
