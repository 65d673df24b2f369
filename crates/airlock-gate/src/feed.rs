//! Fan-out of journal events: a journal decorator that publishes every event it stores,
//! so waits and event streams (SSE) see each one as it lands.

use airlock_core::{Event, NewEvent};
use airlock_store::{AgentRecord, ChangeRecord, EventQuery, Journal, StoreError, VerifyReport};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::broadcast;

/// A journal that publishes each stored event to subscribers.
pub struct Notifying {
    inner: Arc<dyn Journal>,
    tx: broadcast::Sender<Event>,
    /// Writes and their publication happen under this lock, so subscribers see events in
    /// sequence order (the store serializes writes anyway).
    order: tokio::sync::Mutex<()>,
    /// The seqs of the first and the last event published here, set as each is published
    /// (under this lock, so a subscription can learn where it starts).
    published: std::sync::Mutex<Option<(i64, i64)>>,
    /// Following a store other processes write too: the seqs this process stored and the
    /// follower has not reached yet, so it publishes only the others' events.
    own: std::sync::Mutex<Option<std::collections::BTreeSet<i64>>>,
    /// How far the follower has read (`None` until following starts).
    followed: tokio::sync::Mutex<Option<i64>>,
}

/// Where a subscription starts in the journal, for a follower that must neither skip nor
/// repeat an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStart {
    /// Events up to this seq were published before the subscription: it receives those
    /// after it.
    After(i64),
    /// Nothing was published here before the subscription: everything this wrapper
    /// publishes reaches it. What is in the journal before the first event published here
    /// ([`Notifying::first_published`]) was stored before.
    Beginning,
}

impl Notifying {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Journal>) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            inner,
            tx,
            order: tokio::sync::Mutex::new(()),
            published: std::sync::Mutex::new(None),
            own: std::sync::Mutex::new(None),
            followed: tokio::sync::Mutex::new(None),
        }
    }
    /// A receiver of every event stored from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
    /// A receiver of every event stored from now on, and where it starts.
    pub fn subscribe_at(&self) -> (broadcast::Receiver<Event>, FeedStart) {
        let published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        let start = published.map_or(FeedStart::Beginning, |(_, last)| FeedStart::After(last));
        (rx, start)
    }

    /// The seq of the newest stored event (0 for an empty journal), read while no write is
    /// between storing an event and publishing it: every event up to it stored here has been
    /// published.
    pub async fn published_head(&self) -> Result<i64, StoreError> {
        self.published_head_locked().await
    }

    /// The seq of the first event published here, if any was.
    pub fn first_published(&self) -> Option<i64> {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(first, _)| first)
    }

    /// Starts following what other processes store in the same journal, from its head now:
    /// each [`Notifying::catch_up`] then publishes their events to the subscribers here.
    pub async fn start_following(&self) -> Result<(), StoreError> {
        let mut followed = self.followed.lock().await;
        let head = self.published_head_locked().await?;
        *self.own.lock().unwrap_or_else(|e| e.into_inner()) = Some(Default::default());
        *followed = Some(head);
        Ok(())
    }

    /// Reads what other processes stored since the last call, publishes it to the
    /// subscribers here and returns it, oldest first; nothing before following starts.
    pub async fn catch_up(&self) -> Result<Vec<Event>, StoreError> {
        const PAGE: u32 = 500;
        let mut followed = self.followed.lock().await;
        let Some(mut cursor) = *followed else {
            return Ok(Vec::new());
        };
        // No write of this process is between storing and publishing while this reads, so
        // each of its events is known as its own.
        let _order = self.order.lock().await;
        let mut foreign = Vec::new();
        loop {
            let page = self
                .inner
                .read(EventQuery {
                    after_seq: Some(cursor),
                    limit: Some(PAGE),
                    ..Default::default()
                })
                .await?;
            let full = page.len() == PAGE as usize;
            {
                let mut own = self.own.lock().unwrap_or_else(|e| e.into_inner());
                for ev in page {
                    cursor = ev.seq;
                    let mine = own.as_mut().is_some_and(|o| o.remove(&ev.seq));
                    if !mine {
                        foreign.push(ev);
                    }
                }
                if let Some(o) = own.as_mut() {
                    o.retain(|s| *s > cursor);
                }
            }
            if !full {
                break;
            }
        }
        *followed = Some(cursor);
        for ev in &foreign {
            let _ = self.tx.send(ev.clone());
        }
        Ok(foreign)
    }

    async fn published_head_locked(&self) -> Result<i64, StoreError> {
        let _order = self.order.lock().await;
        let head = self
            .inner
            .read(EventQuery {
                limit: Some(1),
                descending: true,
                ..Default::default()
            })
            .await?;
        Ok(head.first().map_or(0, |e| e.seq))
    }

    fn publish(&self, ev: &Event) {
        if let Some(own) = self.own.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            own.insert(ev.seq);
        }
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        *published = Some(published.map_or((ev.seq, ev.seq), |(first, _)| (first, ev.seq)));
        // No subscriber is fine.
        let _ = self.tx.send(ev.clone());
    }
}

#[async_trait]
impl Journal for Notifying {
    async fn append(&self, ev: NewEvent) -> Result<Event, StoreError> {
        let _order = self.order.lock().await;
        let e = self.inner.append(ev).await?;
        self.publish(&e);
        Ok(e)
    }
    async fn append_all(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        let _order = self.order.lock().await;
        let stored = self.inner.append_all(evs).await?;
        for e in &stored {
            self.publish(e);
        }
        Ok(stored)
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
        let _order = self.order.lock().await;
        let e = self.inner.put_principal(rec, ev).await?;
        self.publish(&e);
        Ok(e)
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
    async fn put_change(&self, rec: ChangeRecord, ev: NewEvent) -> Result<Event, StoreError> {
        let _order = self.order.lock().await;
        let e = self.inner.put_change(rec, ev).await?;
        self.publish(&e);
        Ok(e)
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
