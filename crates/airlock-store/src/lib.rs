//! Airlock's storage: the append-only, hash-chained [`Journal`] and the state that changes
//! together with it (principals, changes), behind one trait with a SQLite backend.
//!
//! Every event links to the one before it by a BLAKE3 hash (see `airlock_core::event`), so
//! [`Journal::verify`] finds any row that was altered, removed or reordered after the fact.
//! Driver errors are mapped to [`StoreError`]; nothing from `sqlx` leaks out of this crate.
//!
//! With the `testing` feature, `testing` holds the conformance suite every backend runs.

mod error;
mod journal;
mod location;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::StoreError;
pub use journal::{AgentRecord, BrokenLink, ChangeRecord, EventQuery, Journal, VerifyReport};
pub use sqlite::SqliteJournal;

use std::sync::Arc;

/// Opens (creating if needed) a store by URL or path: `sqlite://PATH`, a plain path, or
/// `sqlite::memory:` for a private in-memory journal.
pub async fn open(location: &str) -> Result<Arc<dyn Journal>, StoreError> {
    Ok(Arc::new(SqliteJournal::open(location).await?))
}
