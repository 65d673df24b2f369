//! A journal decorator that remembers whether writes succeed: every failed write is logged
//! loudly (also the ones written on a failure path, where the caller has nothing better to
//! do than go on), counted, and reported by [`Tracked::write_health`] until a write
//! succeeds again, so readiness can say "not ready" while the journal cannot be written.

use airlock_core::{Event, NewEvent};
use airlock_store::{AgentRecord, ChangeRecord, EventQuery, Journal, StoreError, VerifyReport};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A journal whose write failures are remembered.
pub struct Tracked {
    inner: Arc<dyn Journal>,
    /// The last write error, until a write succeeds.
    failing: Mutex<Option<String>>,
    failures: AtomicU64,
    /// The replica whose changes these are: stamped on every change record written here.
    owner: std::sync::OnceLock<String>,
    /// Principal writes made through this journal (issued, re-keyed, revoked tokens), counted
    /// once each has ended: what a token resolved before the count moved may be stale.
    principal_writes: AtomicU64,
}

impl Tracked {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Journal>) -> Self {
        Self {
            inner,
            failing: Mutex::new(None),
            failures: AtomicU64::new(0),
            owner: std::sync::OnceLock::new(),
            principal_writes: AtomicU64::new(0),
        }
    }

    /// How many principal writes through this journal have ended; it moves after each one
    /// (stored or not), so a lookup made before it moved may have read the old row.
    pub fn principal_writes(&self) -> u64 {
        self.principal_writes.load(Ordering::SeqCst)
    }

    /// `Err(why)` while the last write failed; `Ok` once one succeeds again.
    pub fn write_health(&self) -> Result<(), String> {
        match &*self.failing.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Stamps `owner` on every change record written from now on: the replica that
    /// judges the change (see `Gate::follow`).
    pub fn set_owner(&self, owner: &str) {
        let _ = self.owner.set(owner.to_string());
    }

    /// Writes that failed since start.
    pub fn write_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn note<T>(&self, what: &str, r: Result<T, StoreError>) -> Result<T, StoreError> {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match &r {
            Ok(_) => {
                if failing.take().is_some() {
                    tracing::warn!("journal writes succeed again");
                }
            }
            // The store could not write (disk, permissions, locks, corruption): loud.
            Err(e @ (StoreError::Unavailable(_) | StoreError::Corrupt(_))) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, what, "journal write failed");
                *failing = Some(e.to_string());
            }
            // A write refused for what it says (a conflict, bad input) was not a failure to
            // write: the journal works.
            Err(_) => {}
        }
        r
    }
}

#[async_trait]
impl Journal for Tracked {
    async fn append(&self, ev: NewEvent) -> Result<Event, StoreError> {
        let kind = ev.kind;
        let r = self.inner.append(ev).await;
        self.note(kind.as_str(), r)
    }
    async fn append_all(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        let r = self.inner.append_all(evs).await;
        self.note("events", r)
    }
    async fn append_audit(&self, evs: Vec<NewEvent>) -> Result<(), StoreError> {
        let r = self.inner.append_audit(evs).await;
        self.note("events", r)
    }
    async fn flush(&self) -> Result<(), StoreError> {
        let r = self.inner.flush().await;
        self.note("events", r)
    }
    async fn read(&self, q: EventQuery) -> Result<Vec<Event>, StoreError> {
        self.inner.read(q).await
    }
    async fn lock_shared(
        &self,
        key: &str,
    ) -> Result<Option<Box<dyn airlock_store::SharedLock>>, StoreError> {
        self.inner.lock_shared(key).await
    }
    async fn lock_is_held(&self, key: &str) -> Result<Option<bool>, StoreError> {
        self.inner.lock_is_held(key).await
    }
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.inner.verify().await
    }
    async fn audit(
        &self,
        opts: airlock_store::AuditOptions,
    ) -> Result<airlock_store::Audit, StoreError> {
        self.inner.audit(opts).await
    }
    async fn export_rows(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<airlock_store::ExportLine>, StoreError> {
        self.inner.export_rows(after_seq, limit).await
    }
    async fn put_principal(&self, rec: AgentRecord, ev: NewEvent) -> Result<Event, StoreError> {
        let r = self.inner.put_principal(rec, ev).await;
        self.principal_writes.fetch_add(1, Ordering::SeqCst);
        self.note("principal", r)
    }
    async fn principal_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        self.inner.principal_by_token_hash(token_hash).await
    }
    async fn principal(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.inner.principal(name).await
    }
    async fn principals(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.inner.principals().await
    }
    async fn put_change(&self, mut rec: ChangeRecord, ev: NewEvent) -> Result<Event, StoreError> {
        if let (Some(owner), Some(record)) = (self.owner.get(), rec.record.as_object_mut()) {
            record.insert("owner".into(), owner.clone().into());
        }
        let r = self.inner.put_change(rec, ev).await;
        self.note("change", r)
    }
    async fn change(&self, id: &str) -> Result<Option<ChangeRecord>, StoreError> {
        self.inner.change(id).await
    }
    async fn changes_with_status(
        &self,
        status: airlock_core::ChangeStatus,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        self.inner.changes_with_status(status).await
    }
}
