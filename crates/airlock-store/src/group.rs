//! Group commit: appends that arrive while another write holds the process's write lock
//! wait together, and whoever takes the lock next writes all of them in one transaction
//! (one fsync), then answers each. Both backends use it in front of their own transaction.

use crate::StoreError;
use airlock_core::event::{Event, NewEvent};
use std::future::Future;
use tokio::sync::{Mutex, MutexGuard};

/// Events to append together, and where to send the stored events.
type PendingAppend = (
    Vec<NewEvent>,
    tokio::sync::oneshot::Sender<Result<Vec<Event>, StoreError>>,
);

/// A process's write lock and the appends waiting for it.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    /// Serializes this process's writers so they queue here rather than in the database.
    lock: Mutex<()>,
    /// Appends waiting for the next group.
    pending: std::sync::Mutex<Vec<PendingAppend>>,
}

impl GroupCommit {
    /// Takes the write lock for a write of another kind.
    pub async fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// Appends `evs` in order, contiguously and atomically, with whatever else is waiting:
    /// `commit` writes every waiting batch in one transaction and returns the stored events
    /// batch by batch, or fails them all.
    pub async fn append<F, Fut>(
        &self,
        evs: Vec<NewEvent>,
        commit: F,
    ) -> Result<Vec<Event>, StoreError>
    where
        F: FnOnce(Vec<Vec<NewEvent>>) -> Fut,
        Fut: Future<Output = Result<Vec<Vec<Event>>, StoreError>>,
    {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.queue()?.push((evs, tx));
        let guard = self.lock.lock().await;
        if let Ok(done) = rx.try_recv() {
            return done;
        }
        let batch: Vec<PendingAppend> = std::mem::take(&mut *self.queue()?);
        let all: Vec<Vec<NewEvent>> = batch.iter().map(|(evs, _)| evs.clone()).collect();
        let result = commit(all).await;
        drop(guard);
        match result {
            Ok(all) if all.len() == batch.len() => {
                for ((_, reply), stored) in batch.into_iter().zip(all) {
                    let _ = reply.send(Ok(stored));
                }
            }
            Ok(_) => {
                let e = StoreError::Unavailable("the journal stored a partial group".into());
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
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

    fn queue(&self) -> Result<std::sync::MutexGuard<'_, Vec<PendingAppend>>, StoreError> {
        self.pending
            .lock()
            .map_err(|_| StoreError::Unavailable("the journal's queue is poisoned".into()))
    }
}
