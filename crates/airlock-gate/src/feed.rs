//! Fan-out of journal events: a journal decorator that publishes every event it stores,
//! so waits and event streams (SSE) see each one as it lands.

use airlock_core::{Event, EventKind, NewEvent};
use airlock_store::{
    AgentRecord, ChangeRecord, EventQuery, GroupCommit, Journal, StoreError, Stored, VerifyReport,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{broadcast, mpsc};

/// A journal that publishes each stored event to subscribers.
///
/// Appends that arrive while another is being written wait together and are written as one
/// group (one transaction, one fsync), each batch still contiguous; writes and their
/// publication happen under the group's lock, so subscribers see events in sequence order.
///
/// With [`Notifying::writer`], the groups are written by a thread of their own, and the
/// records of decisions that change nothing may be answered before they are durable: see
/// [`Journal::append_audit`] here.
pub struct Notifying {
    inner: Arc<dyn Journal>,
    tx: broadcast::Sender<Event>,
    /// This process's writers and the appends waiting to be written together.
    group: GroupCommit,
    /// The writer's queue, when it has one: what is queued for it to write, with the
    /// deferred read records to account for. And how many of those are not written yet.
    writer: Option<mpsc::UnboundedSender<Queued>>,
    queued: Arc<AtomicUsize>,
    /// The most deferred records that may wait at once; past it, reads wait for theirs.
    max_queued: usize,
    /// A deferred write failed: reads wait for their record until one is written again.
    failing: Arc<AtomicBool>,
    /// The seqs of the first and the last event published here, set as each is published
    /// (under this lock, so a subscription can learn where it starts).
    published: std::sync::Mutex<Option<(i64, i64)>>,
    /// Following a store other processes write too: the seqs this process stored and the
    /// follower has not reached yet, so it publishes only the others' events.
    own: std::sync::Mutex<Option<std::collections::BTreeSet<i64>>>,
    /// How far the follower has read (`None` until following starts).
    followed: tokio::sync::Mutex<Option<i64>>,
    /// Change records waiting to be written with the next group, each with its waiter.
    changes: std::sync::Mutex<Vec<PendingChange>>,
}

/// What the writer is told: something is queued for it (an append or a change record), or
/// a deferred read's records are, to count until they are written.
enum Queued {
    Write,
    Read(usize, Stored),
}

type PendingChange = (
    ChangeRecord,
    NewEvent,
    tokio::sync::oneshot::Sender<Result<Event, StoreError>>,
);

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
            group: GroupCommit::default(),
            writer: None,
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued: 0,
            failing: Arc::new(AtomicBool::new(false)),
            published: std::sync::Mutex::new(None),
            own: std::sync::Mutex::new(None),
            followed: tokio::sync::Mutex::new(None),
            changes: std::sync::Mutex::new(Vec::new()),
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
        let _order = self.group.lock().await;
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
        let _order = self.group.drain(|all| self.write_group(all)).await;
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

    /// Gives this journal a writer of its own ([`Writer`], to be started): appends and
    /// change records are queued for it, and it writes whatever is queued as one group
    /// after another, so no request's task has to take the lock, write for the others and
    /// hand the lock on.
    ///
    /// With `max_queued_reads` above 0 it also answers reads before their records are
    /// durable: each is queued for the writer's next group, at most `max_queued_reads`
    /// events waiting at a time. A crash loses at most those; a failed write is logged and
    /// makes reads wait for their record again (so, with the journal down, they are
    /// denied) until one is written. Call once, before sharing it.
    pub fn writer(&mut self, max_queued_reads: usize) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        self.writer = Some(tx);
        self.max_queued = max_queued_reads;
        Writer { rx }
    }

    /// Tells the writer something is queued; false if there is no writer (or it is gone),
    /// and the caller must see it written itself.
    fn wake_writer(&self) -> bool {
        self.writer
            .as_ref()
            .is_some_and(|w| w.send(Queued::Write).is_ok())
    }

    /// Writes the queued batches `all` as one append to the store and publishes each event,
    /// in order; called with the group's lock held.
    async fn write_group(&self, all: Vec<Vec<NewEvent>>) -> Result<Vec<Vec<Event>>, StoreError> {
        let sizes: Vec<usize> = all.iter().map(Vec::len).collect();
        let stored = self
            .inner
            .append_all(all.into_iter().flatten().collect())
            .await?;
        Ok(self.publish_batches(stored, sizes))
    }

    /// Publishes a group's stored events and splits them back into its batches.
    fn publish_batches(&self, stored: Vec<Event>, sizes: Vec<usize>) -> Vec<Vec<Event>> {
        for e in &stored {
            self.publish(e);
        }
        let mut rest = stored.into_iter();
        sizes
            .into_iter()
            .map(|n| rest.by_ref().take(n).collect())
            .collect()
    }

    /// With the group's lock held: writes every queued append and change record, the appends
    /// first, in one store call (one transaction where the store can), and answers each.
    async fn write_changes(&self, held: &tokio::sync::MutexGuard<'_, ()>) {
        let waiting = match self.changes.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            // A poisoned queue answers nobody; its senders dropping tell the waiters.
            Err(_) => Vec::new(),
        };
        if waiting.is_empty() {
            self.group
                .drain_held(held, |all| self.write_group(all))
                .await;
            return;
        }
        let (changes, replies): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .map(|(rec, ev, reply)| ((rec, ev), reply))
            .unzip();
        // The appends' commit runs only when some are queued; it takes the changes along.
        let pending = std::sync::Mutex::new(Some(changes));
        let written = std::sync::Mutex::new(None);
        let take = || pending.lock().ok().and_then(|mut p| p.take());
        self.group
            .drain_held(held, |all| async {
                let sizes: Vec<usize> = all.iter().map(Vec::len).collect();
                let (appended, changed) = self
                    .inner
                    .put_changes(
                        all.into_iter().flatten().collect(),
                        take().unwrap_or_default(),
                    )
                    .await;
                if let Ok(mut w) = written.lock() {
                    *w = Some(changed);
                }
                Ok(self.publish_batches(appended?, sizes))
            })
            .await;
        let changed = match written.lock().ok().and_then(|mut w| w.take()) {
            Some(changed) => changed,
            None => {
                self.inner
                    .put_changes(Vec::new(), take().unwrap_or_default())
                    .await
                    .1
            }
        };
        for (result, reply) in changed.into_iter().zip(replies) {
            if let Ok(e) = &result {
                self.publish(e);
            }
            let _ = reply.send(result);
        }
    }

    /// Writes every queued append now (deferred reads included), and waits for a write
    /// in progress: the background writer may have taken a record off the queue and not
    /// stored it yet, and it holds the group's lock until it has.
    async fn settle(&self) {
        drop(self.group.drain(|all| self.write_group(all)).await);
    }
}

/// How long the writer waits to gather more read records into a group when nothing else
/// is queued: at most this much more of them is lost to a crash (and never more than the
/// most that may wait), and nobody waits for them.
const READ_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// The writer of a [`Notifying`] journal ([`Notifying::writer`]): start it with
/// [`Writer::spawn`] (a thread of its own) or run it as a task with [`Writer::run`].
pub struct Writer {
    rx: mpsc::UnboundedReceiver<Queued>,
}

impl Writer {
    /// Runs the writer on a thread of its own, in the current Tokio runtime's context,
    /// until the journal is dropped.
    ///
    /// A group is written while the lock is held, and each of its statements waits for the
    /// database: a thread that does nothing else is woken as soon as each is answered and
    /// starts the next group as soon as one is written, where a task would wait its turn
    /// behind every request's work on a busy runtime each time, and every write queued
    /// behind it with it. Needs a Tokio runtime.
    pub fn spawn(self, journal: std::sync::Weak<Notifying>) -> std::io::Result<()> {
        let rt = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("airlock-journal".into())
            .spawn(move || rt.block_on(self.run(journal)))
            .map(drop)
    }

    /// Writes what is queued, a group at a time, until the journal is dropped.
    pub async fn run(mut self, journal: std::sync::Weak<Notifying>) {
        while let Some(first) = self.rx.recv().await {
            let (mut reads, mut waited_for) = (Vec::new(), false);
            let note = |q, reads: &mut Vec<_>, waited_for: &mut bool| match q {
                Queued::Read(n, stored) => reads.push((n, stored)),
                Queued::Write => *waited_for = true,
            };
            note(first, &mut reads, &mut waited_for);
            while let Ok(more) = self.rx.try_recv() {
                note(more, &mut reads, &mut waited_for);
            }
            // Only read records, which nobody waits for: a little longer gathers more of
            // them into the group, for the same one commit. Anything somebody waits for
            // ends the wait at once.
            let until = tokio::time::Instant::now() + READ_LINGER;
            while !waited_for {
                match tokio::time::timeout_at(until, self.rx.recv()).await {
                    Ok(Some(q)) => note(q, &mut reads, &mut waited_for),
                    Ok(None) | Err(_) => break,
                }
            }
            let Some(j) = journal.upgrade() else {
                return;
            };
            {
                let held = j.group.lock().await;
                j.write_changes(&held).await;
            }
            let (mut lost, mut why) = (0, None);
            for (n, stored) in reads {
                match stored.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        lost += n;
                        why = Some(e.to_string());
                    }
                    Err(_) => {
                        lost += n;
                        why = Some("the journal writer went away".into());
                    }
                }
                j.queued.fetch_sub(n, Ordering::SeqCst);
            }
            if let Some(why) = why {
                j.failing.store(true, Ordering::SeqCst);
                tracing::error!(
                    lost,
                    "read decisions were answered but their records could not be journaled: {why}; reads now wait for their record"
                );
            }
        }
    }
}

#[async_trait]
impl Journal for Notifying {
    async fn append(&self, ev: NewEvent) -> Result<Event, StoreError> {
        self.append_all(vec![ev])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Unavailable("the journal stored nothing".into()))
    }
    async fn append_all(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        // Refused on its own, never with the others of its group.
        airlock_store::validate_batch(&evs)?;
        if evs.iter().any(|e| e.kind == EventKind::Checkpoint) {
            // Signed against the head inside its own write: never in a group.
            let _order = self.group.drain(|all| self.write_group(all)).await;
            let stored = self.inner.append_all(evs).await?;
            for e in &stored {
                self.publish(e);
            }
            return Ok(stored);
        }
        let rx = self.group.enqueue(evs)?;
        if self.wake_writer() {
            return GroupCommit::answered(rx.await);
        }
        self.group.finish(rx, |all| self.write_group(all)).await
    }
    async fn append_audit(&self, evs: Vec<NewEvent>) -> Result<(), StoreError> {
        let n = evs.len();
        let deferrable = self.writer.as_ref().filter(|_| {
            self.max_queued > 0
                && !self.failing.load(Ordering::SeqCst)
                && self.queued.load(Ordering::SeqCst) + n <= self.max_queued
                && evs.iter().all(|e| e.kind != EventKind::Checkpoint)
        });
        let Some(tx) = deferrable else {
            self.append_all(evs).await?;
            self.failing.store(false, Ordering::SeqCst);
            return Ok(());
        };
        airlock_store::validate_batch(&evs)?;
        let stored = self.group.enqueue(evs)?;
        self.queued.fetch_add(n, Ordering::SeqCst);
        if tx.send(Queued::Read(n, stored)).is_err() {
            // The writer is gone: this record is written now, before the answer.
            self.queued.fetch_sub(n, Ordering::SeqCst);
            self.flush().await?;
        }
        Ok(())
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.settle().await;
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "deferred read records could not be journaled".into(),
            ));
        }
        Ok(())
    }
    async fn read(&self, q: EventQuery) -> Result<Vec<Event>, StoreError> {
        // What this process answered is in what it reads.
        self.settle().await;
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
        self.settle().await;
        self.inner.verify().await
    }
    async fn audit(
        &self,
        opts: airlock_store::AuditOptions,
    ) -> Result<airlock_store::Audit, StoreError> {
        self.settle().await;
        self.inner.audit(opts).await
    }
    async fn export_rows(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<airlock_store::ExportLine>, StoreError> {
        self.settle().await;
        self.inner.export_rows(after_seq, limit).await
    }
    async fn put_principal(&self, rec: AgentRecord, ev: NewEvent) -> Result<Event, StoreError> {
        let _order = self.group.drain(|all| self.write_group(all)).await;
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
        // Queued, then written by whoever holds the lock next, with the appends queued and
        // the other change records waiting then: one write for the lot.
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.changes
            .lock()
            .map_err(|_| StoreError::Unavailable("the journal's queue is poisoned".into()))?
            .push((rec, ev, tx));
        let answered = GroupCommit::answered;
        if self.wake_writer() {
            return answered(rx.await);
        }
        // Written by whoever holds the lock, or here: those answered never queue for it.
        let held = tokio::select! {
            biased;
            done = &mut rx => return answered(done),
            held = self.group.lock() => held,
        };
        if let Ok(done) = rx.try_recv() {
            return done;
        }
        self.write_changes(&held).await;
        drop(held);
        answered(rx.await)
    }
    async fn put_changes(
        &self,
        before: Vec<NewEvent>,
        changes: Vec<(ChangeRecord, NewEvent)>,
    ) -> airlock_store::ChangesWritten {
        let refused = |e: StoreError, n: usize| (Err(e.clone()), vec![Err(e); n]);
        let checkpoint = before.iter().any(|e| e.kind == EventKind::Checkpoint);
        if self.writer.is_none() || checkpoint {
            // After every append queued before it, in one store call.
            let _order = self.group.drain(|all| self.write_group(all)).await;
            let (appended, changed) = self.inner.put_changes(before, changes).await;
            for e in appended.iter().flatten().chain(changed.iter().flatten()) {
                self.publish(e);
            }
            return (appended, changed);
        }
        // Refused on its own, never with the others of its group.
        if let Err(e) = airlock_store::validate_batch(&before) {
            return refused(e, changes.len());
        }
        // The batch is queued before its changes: the writer takes the changes first and
        // then the appends, so a change it takes always has its batch in the same group
        // (written first), or in one before it.
        let appended = match self.group.enqueue(before) {
            Ok(rx) => rx,
            Err(e) => return refused(e, changes.len()),
        };
        let n = changes.len();
        let mut replies = Vec::with_capacity(n);
        let queued = self
            .changes
            .lock()
            .map(|mut q| {
                for (rec, ev) in changes {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    q.push((rec, ev, tx));
                    replies.push(rx);
                }
            })
            .is_ok();
        if !queued {
            // The batch is written by the next group; its changes are not.
            let e = StoreError::Unavailable("the journal's queue is poisoned".into());
            return (GroupCommit::answered(appended.await), vec![Err(e); n]);
        }
        if !self.wake_writer() {
            let held = self.group.lock().await;
            self.write_changes(&held).await;
        }
        let appended = GroupCommit::answered(appended.await);
        let mut changed = Vec::with_capacity(replies.len());
        for rx in replies {
            changed.push(GroupCommit::answered(rx.await));
        }
        (appended, changed)
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
