//! Deferred read records (`Notifying::writer`): answered before they are durable,
//! written at once in the background or with the next write, in order, read back by this
//! process; a failed write makes the next records wait (and fail) until one is written.
#![cfg(test)]

use airlock_core::{Event, EventKind, NewEvent};
use airlock_gate::Notifying;
use airlock_store::{
    AgentRecord, ChangeRecord, ChangesWritten, EventQuery, Journal, SqliteJournal, StoreError,
    VerifyReport,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The real store behind a disk whose writes fail while `down` is set, counting the
/// writes it is asked for.
struct Disk {
    inner: Arc<SqliteJournal>,
    down: AtomicBool,
    writes: AtomicUsize,
}

impl Disk {
    fn check(&self) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("disk I/O error".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Journal for Disk {
    async fn append(&self, ev: NewEvent) -> Result<Event, StoreError> {
        self.check()?;
        self.inner.append(ev).await
    }
    async fn append_all(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        self.check()?;
        self.inner.append_all(evs).await
    }
    async fn read(&self, q: EventQuery) -> Result<Vec<Event>, StoreError> {
        self.inner.read(q).await
    }
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.inner.verify().await
    }
    async fn put_principal(&self, rec: AgentRecord, ev: NewEvent) -> Result<Event, StoreError> {
        self.check()?;
        self.inner.put_principal(rec, ev).await
    }
    async fn principal_by_token_hash(&self, h: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.inner.principal_by_token_hash(h).await
    }
    async fn principal(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.inner.principal(name).await
    }
    async fn put_change(&self, rec: ChangeRecord, ev: NewEvent) -> Result<Event, StoreError> {
        self.check()?;
        self.inner.put_change(rec, ev).await
    }
    async fn put_changes(
        &self,
        before: Vec<NewEvent>,
        changes: Vec<(ChangeRecord, NewEvent)>,
    ) -> ChangesWritten {
        if let Err(e) = self.check() {
            return (Err(e.clone()), vec![Err(e); changes.len()]);
        }
        self.inner.put_changes(before, changes).await
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

struct Setup {
    _dir: tempfile::TempDir,
    disk: Arc<Disk>,
    journal: Arc<Notifying>,
}

async fn setup(max_queued: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let disk = Arc::new(Disk {
        inner: Arc::new(SqliteJournal::open(path.to_str().unwrap()).await.unwrap()),
        down: AtomicBool::new(false),
        writes: AtomicUsize::new(0),
    });
    let mut journal = Notifying::new(disk.clone());
    let writer = journal.writer(max_queued);
    let journal = Arc::new(journal);
    writer.spawn(Arc::downgrade(&journal)).unwrap();
    Setup {
        _dir: dir,
        disk,
        journal,
    }
}

/// A read's two records, tagged `n`.
fn read_records(n: usize) -> Vec<NewEvent> {
    vec![
        NewEvent::new(1, EventKind::Request, json!({"n": n})).action(&format!("act_{n}")),
        NewEvent::new(1, EventKind::Verdict, json!({"n": n})).action(&format!("act_{n}")),
    ]
}

fn tags(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.payload["n"].as_u64().unwrap())
        .collect()
}

/// The events in the store itself, bypassing this process's journal.
async fn on_disk(s: &Setup) -> Vec<Event> {
    s.disk.inner.read(EventQuery::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deferred_records_are_written_in_the_background_each_batch_contiguous() {
    let s = setup(1024).await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let j = s.journal.clone();
        tasks.push(tokio::spawn(async move {
            j.append_audit(read_records(n)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // Nobody else writes: the background writer does, without being asked.
    let mut stored = Vec::new();
    for _ in 0..200 {
        stored = on_disk(&s).await;
        if stored.len() == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored.len(), 100, "every record reached the disk");
    for pair in stored.chunks(2) {
        assert_eq!(pair[0].kind, EventKind::Request);
        assert_eq!(pair[1].kind, EventKind::Verdict);
        assert_eq!(
            pair[0].payload["n"], pair[1].payload["n"],
            "a read's records stay together"
        );
    }
    assert!(s.journal.verify().await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn this_process_reads_what_it_answered_and_later_writes_come_after_it() {
    let s = setup(1024).await;
    s.journal.append_audit(read_records(1)).await.unwrap();
    // A write that must be durable takes the deferred records with it, first.
    let stored = s.journal.append_all(read_records(2)).await.unwrap();
    assert_eq!(tags(&stored), [2, 2], "only its own events are returned");
    s.journal.append_audit(read_records(3)).await.unwrap();
    let all = s.journal.read(EventQuery::default()).await.unwrap();
    assert_eq!(tags(&all), [1, 1, 2, 2, 3, 3]);
    s.journal.flush().await.unwrap();
    assert_eq!(tags(&on_disk(&s).await), [1, 1, 2, 2, 3, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_deferred_write_makes_the_next_reads_wait_and_fail_until_the_disk_is_back() {
    let s = setup(1024).await;
    s.disk.down.store(true, Ordering::SeqCst);
    // The first answer may come before the failure is known; within moments every record
    // waits for the disk and is refused while it is down.
    let mut refused = None;
    for n in 0..200 {
        if let Err(e) = s.journal.append_audit(read_records(n)).await {
            refused = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let e = refused.expect("a read record was refused while the disk failed");
    assert!(e.to_string().contains("disk I/O error"), "{e}");
    assert!(s.journal.append_audit(read_records(900)).await.is_err());
    assert!(s.journal.flush().await.is_err(), "a flush reports the loss");
    s.disk.down.store(false, Ordering::SeqCst);
    // Back: the next record is written before it is answered, then deferring resumes.
    s.journal.append_audit(read_records(901)).await.unwrap();
    assert_eq!(tags(&on_disk(&s).await), [901, 901]);
    s.journal.append_audit(read_records(902)).await.unwrap();
    s.journal.flush().await.unwrap();
    assert_eq!(tags(&on_disk(&s).await), [901, 901, 902, 902]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_deferral_a_read_record_is_durable_before_the_answer() {
    let s = setup(0).await;
    s.journal.append_audit(read_records(7)).await.unwrap();
    assert_eq!(tags(&on_disk(&s).await), [7, 7]);
    s.disk.down.store(true, Ordering::SeqCst);
    assert!(s.journal.append_audit(read_records(8)).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_bound_a_read_waits_for_its_record() {
    // A bound of one batch: a second record queued behind an unwritten first is written
    // before it is answered, so at most one batch is ever at risk.
    let s = setup(2).await;
    s.disk.down.store(true, Ordering::SeqCst);
    let first = s.journal.append_audit(read_records(1)).await;
    let second = s.journal.append_audit(read_records(2)).await;
    assert!(
        first.is_err() || second.is_err(),
        "at most the bound is answered unwritten"
    );
}

/// Appends and change records from many requests at once, through the writer thread,
/// deferred reads among them: each is answered (none waits forever for a wake-up the
/// writer missed), each batch is contiguous, and every change row is what its last record
/// said.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_writer_answers_every_append_and_change_record_sent_at_once() {
    let s = setup(1024).await;
    let mut tasks = Vec::new();
    for n in 0..60usize {
        let j = s.journal.clone();
        tasks.push(tokio::spawn(async move {
            match n % 3 {
                0 => j.append_audit(read_records(n)).await,
                1 => j.append_all(read_records(n)).await.map(drop),
                _ => {
                    let id = format!("chg_{n}");
                    let action = format!("act_{n}");
                    for (at, status) in [
                        (1, airlock_core::ChangeStatus::Applying),
                        (2, airlock_core::ChangeStatus::Baking),
                    ] {
                        let rec = ChangeRecord {
                            id: id.clone(),
                            action_id: action.clone(),
                            agent: "bot".into(),
                            status,
                            record: json!({"n": n}),
                            created_at: 1,
                            updated_at: at,
                        };
                        let ev = NewEvent::new(at, EventKind::Applying, json!({"n": n}))
                            .agent("bot")
                            .action(&action)
                            .change(&id);
                        j.put_change(rec, ev).await?;
                    }
                    Ok(())
                }
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("every request is answered");
    s.journal.flush().await.unwrap();
    let stored = on_disk(&s).await;
    // 20 reads deferred and 20 written at once, two events each; 20 changes, two each.
    assert_eq!(stored.len(), 120);
    let batches: Vec<&Event> = stored
        .iter()
        .filter(|e| e.kind != EventKind::Applying)
        .collect();
    for pair in batches.chunks(2) {
        assert_eq!(pair[0].payload["n"], pair[1].payload["n"]);
        assert_eq!(pair[1].seq, pair[0].seq + 1, "a batch stays contiguous");
    }
    for n in (2..60).step_by(3) {
        let rec = s
            .journal
            .change(&format!("chg_{n}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.status, airlock_core::ChangeStatus::Baking);
        assert_eq!(rec.created_at, 1);
    }
    assert!(s.journal.verify().await.unwrap().ok());
}

/// Change `id` of action `act_{n}` as `applying`, with its event.
fn intent(n: usize, id: &str) -> (ChangeRecord, NewEvent) {
    let action = format!("act_{n}");
    let rec = ChangeRecord {
        id: id.to_string(),
        action_id: action.clone(),
        agent: "bot".into(),
        status: airlock_core::ChangeStatus::Applying,
        record: json!({"n": n}),
        created_at: 1,
        updated_at: 1,
    };
    let ev = NewEvent::new(1, EventKind::Applying, json!({"n": n}))
        .agent("bot")
        .action(&action)
        .change(id);
    (rec, ev)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_and_the_change_it_goes_with_reach_the_store_in_one_write_batch_first() {
    let s = setup(0).await;
    let writes = s.disk.writes.load(Ordering::SeqCst);
    let (appended, changed) = s
        .journal
        .put_changes(read_records(7), vec![intent(7, "chg_7")])
        .await;
    assert_eq!(appended.unwrap().len(), 2);
    let applying = changed.into_iter().next().unwrap().unwrap();
    assert_eq!(
        s.disk.writes.load(Ordering::SeqCst) - writes,
        1,
        "one write to the store for the batch and its change"
    );
    let stored = on_disk(&s).await;
    let kinds: Vec<EventKind> = stored.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Request, EventKind::Verdict, EventKind::Applying]
    );
    assert_eq!(stored[2].seq, stored[0].seq + 2);
    assert_eq!(applying.seq, stored[2].seq);
    let rec = s.journal.change("chg_7").await.unwrap().unwrap();
    assert_eq!(rec.status, airlock_core::ChangeStatus::Applying);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_change_fails_alone_and_a_refused_batch_writes_nothing() {
    let s = setup(0).await;
    // The event names another change than its record: refused, the batch is written.
    let (rec, ev) = intent(8, "chg_8");
    let (appended, changed) = s
        .journal
        .put_changes(read_records(8), vec![(rec, ev.change("chg_other"))])
        .await;
    assert_eq!(appended.unwrap().len(), 2);
    assert!(matches!(changed[0], Err(StoreError::Invalid(_))));
    assert!(s.journal.change("chg_8").await.unwrap().is_none());
    // A principal's event cannot be appended: neither the batch nor its change is written.
    let mut bad = read_records(9);
    bad.push(NewEvent::new(1, EventKind::Agent, json!({"n": 9})));
    let (appended, changed) = s.journal.put_changes(bad, vec![intent(9, "chg_9")]).await;
    assert!(appended.is_err());
    assert!(changed[0].is_err());
    assert!(s.journal.change("chg_9").await.unwrap().is_none());
    assert_eq!(on_disk(&s).await.len(), 2);
}
