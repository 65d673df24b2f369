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

/// Where one queued append's stored events (or the group's error) arrive.
pub type Stored = tokio::sync::oneshot::Receiver<Result<Vec<Event>, StoreError>>;

/// A process's write lock and the appends waiting for it.
#[derive(Debug, Default)]
pub struct GroupCommit {
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
        let rx = self.enqueue(evs)?;
        self.finish(rx, commit).await
    }

    /// Waits for an append already queued (with [`GroupCommit::enqueue`]) to be written,
    /// writing it, with whatever else is waiting, if nobody else does.
    pub async fn finish<F, Fut>(&self, mut rx: Stored, commit: F) -> Result<Vec<Event>, StoreError>
    where
        F: FnOnce(Vec<Vec<NewEvent>>) -> Fut,
        Fut: Future<Output = Result<Vec<Vec<Event>>, StoreError>>,
    {
        // Whoever holds the lock may write this append in its group: then the answer comes
        // without the lock, so those answered never queue for it, one after another, only
        // to find they have nothing left to write.
        let guard = tokio::select! {
            biased;
            done = &mut rx => return Self::answered(done),
            guard = self.lock.lock() => guard,
        };
        if let Ok(done) = rx.try_recv() {
            return done;
        }
        self.write_queued(commit).await;
        drop(guard);
        Self::answered(rx.await)
    }

    /// What a queued write's receiver answered: what was stored, or why not.
    pub fn answered<T>(
        done: Result<Result<T, StoreError>, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<T, StoreError> {
        done.map_err(|_| StoreError::Unavailable("the journal writer went away".into()))?
    }

    /// Queues `evs` for the next group without writing them: whoever writes next (an
    /// [`GroupCommit::append`] or a [`GroupCommit::drain`]) writes them too. The receiver
    /// answers once they are stored; dropping it is fine.
    pub fn enqueue(&self, evs: Vec<NewEvent>) -> Result<Stored, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue()?.push((evs, tx));
        Ok(rx)
    }

    /// Takes the write lock and writes what is queued (if anything) with `commit`, answering
    /// each; returns the lock still held, so a write of another kind that follows comes
    /// after every append queued before it.
    pub async fn drain<F, Fut>(&self, commit: F) -> MutexGuard<'_, ()>
    where
        F: FnOnce(Vec<Vec<NewEvent>>) -> Fut,
        Fut: Future<Output = Result<Vec<Vec<Event>>, StoreError>>,
    {
        let guard = self.lock.lock().await;
        self.write_queued(commit).await;
        guard
    }

    /// Writes what is queued (if anything) with `commit`, answering each, for a caller that
    /// already holds the write lock (taken with [`GroupCommit::lock`]).
    pub async fn drain_held<F, Fut>(&self, _held: &MutexGuard<'_, ()>, commit: F)
    where
        F: FnOnce(Vec<Vec<NewEvent>>) -> Fut,
        Fut: Future<Output = Result<Vec<Vec<Event>>, StoreError>>,
    {
        self.write_queued(commit).await;
    }

    /// With the write lock held: writes every queued batch in one `commit`, answers each.
    async fn write_queued<F, Fut>(&self, commit: F)
    where
        F: FnOnce(Vec<Vec<NewEvent>>) -> Fut,
        Fut: Future<Output = Result<Vec<Vec<Event>>, StoreError>>,
    {
        let batch: Vec<PendingAppend> = match self.queue() {
            Ok(mut q) => std::mem::take(&mut *q),
            // A poisoned queue answers nobody; its senders dropping tell the waiters.
            Err(_) => return,
        };
        if batch.is_empty() {
            return;
        }
        let all: Vec<Vec<NewEvent>> = batch.iter().map(|(evs, _)| evs.clone()).collect();
        let result = commit(all).await;
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
    }

    fn queue(&self) -> Result<std::sync::MutexGuard<'_, Vec<PendingAppend>>, StoreError> {
        self.pending
            .lock()
            .map_err(|_| StoreError::Unavailable("the journal's queue is poisoned".into()))
    }
}
