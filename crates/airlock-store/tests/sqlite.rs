//! The SQLite journal: the conformance suite, plus what only a file can show — tampering,
//! permissions, read-only opening, several handles on one file.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use airlock_core::event::{Event, EventKind, NewEvent};
use airlock_store::{
    AgentRecord, ChangeRecord, EventQuery, Journal, SqliteJournal, StoreError, VerifyReport,
    testing,
};
use serde_json::json;
use sqlx::{Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

async fn fresh() -> (Arc<dyn Journal>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let journal = airlock_store::open(&format!(
        "sqlite://{}",
        dir.path().join("journal.db").display()
    ))
    .await
    .unwrap();
    (journal, dir)
}

async fn fresh_in_memory() -> (Arc<dyn Journal>, ()) {
    (airlock_store::open("sqlite::memory:").await.unwrap(), ())
}

airlock_store::journal_conformance!(fresh);

mod in_memory {
    use super::*;
    airlock_store::journal_conformance!(fresh_in_memory);
}

fn ev(i: i64) -> NewEvent {
    NewEvent::new(1_000 + i, EventKind::Request, json!({"n": i}))
}

async fn journal_with(path: &Path, n: i64) -> SqliteJournal {
    let j = SqliteJournal::open(path.to_str().unwrap()).await.unwrap();
    for i in 1..=n {
        j.append(ev(i)).await.unwrap();
    }
    j
}

/// A raw connection, as someone with file access (not the store) would have.
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_edited_payload_is_named_as_the_first_broken_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = journal_with(&path, 10).await;
    assert!(j.verify().await.unwrap().ok());

    let mut conn = raw(&path).await;
    sqlx::query("DROP TRIGGER events_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(r#"UPDATE events SET payload = '{"n":999}' WHERE seq = 4"#)
        .execute(&mut conn)
        .await
        .unwrap();

    let report = j.verify().await.unwrap();
    assert!(!report.ok());
    let broken = report.first_broken.unwrap();
    assert_eq!(broken.seq, 4);
    assert_eq!(broken.reason, "hash does not match content");
    assert_eq!(report.events, 3, "the three events before it still hold");
}

#[tokio::test]
async fn a_rehashed_edit_breaks_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = journal_with(&path, 6).await;
    // A tamperer who also recomputes the edited row's own hash.
    let mut edited = j.read(EventQuery::default()).await.unwrap()[2].clone();
    edited.payload = json!({"n": 999});
    let rehash = edited.recompute();
    let mut conn = raw(&path).await;
    sqlx::query("DROP TRIGGER events_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE events SET payload = ?, hash = ? WHERE seq = 3")
        .bind(edited.payload.to_string())
        .bind(rehash)
        .execute(&mut conn)
        .await
        .unwrap();
    let broken = j.verify().await.unwrap().first_broken.unwrap();
    assert_eq!(broken.seq, 4);
    assert_eq!(broken.reason, "prev_hash does not match previous event");
}

#[tokio::test]
async fn a_deleted_event_is_reported_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = journal_with(&path, 10).await;
    let mut conn = raw(&path).await;
    sqlx::query("DROP TRIGGER events_no_delete")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM events WHERE seq = 4")
        .execute(&mut conn)
        .await
        .unwrap();

    let broken = j.verify().await.unwrap().first_broken.unwrap();
    assert_eq!(broken.seq, 5);
    assert_eq!(broken.reason, "sequence gap: expected 4");
}

#[tokio::test]
async fn events_cannot_be_rewritten_through_sql_by_accident() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = journal_with(&path, 3).await;
    let mut conn = raw(&path).await;
    let update = sqlx::query("UPDATE events SET payload = '{}' WHERE seq = 2")
        .execute(&mut conn)
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM events").execute(&mut conn).await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    assert!(j.verify().await.unwrap().ok());
}

#[tokio::test]
async fn verify_walks_past_batch_boundaries() {
    let j = SqliteJournal::open("sqlite::memory:").await.unwrap();
    for i in 1..=2_345 {
        j.append(ev(i)).await.unwrap();
    }
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 2_345);
    let last = j
        .read(EventQuery {
            descending: true,
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(report.head, last[0].hash);
}

#[tokio::test]
async fn a_file_journal_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let _j = journal_with(&path, 1).await;
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut raw(&path).await)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_reopened_journal_continues_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/journal.db");
    {
        let j = journal_with(&path, 3).await;
        drop(j);
    }
    let j = SqliteJournal::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let e = j.append(ev(4)).await.unwrap();
    assert_eq!(e.seq, 4);
    assert_eq!(j.verify().await.unwrap().events, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_interleave_without_forking_the_chain() {
    // Two handles stand in for two processes: each has its own in-process lock, so only
    // SQLite's write lock (BEGIN IMMEDIATE) keeps them apart.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let a = Arc::new(SqliteJournal::open(path.to_str().unwrap()).await.unwrap());
    let b = Arc::new(SqliteJournal::open(path.to_str().unwrap()).await.unwrap());
    let mut tasks = Vec::new();
    for (k, j) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                j.append(ev(k as i64 * 100 + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = a.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 100);
}

/// A location whose directory cannot be written. Under root, permission bits do not stop
/// writes, so fall back to a directory that cannot exist (its parent is a regular file).
fn unwritable_location(dir: &TempDir) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = locked.join("probe");
    if std::fs::write(&probe, b"").is_err() {
        return locked.join("journal.db");
    }
    std::fs::remove_file(&probe).unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    file.join("journal.db")
}

#[tokio::test]
async fn an_unwritable_location_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = unwritable_location(&dir);
    let err = SqliteJournal::open(path.to_str().unwrap())
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{msg}");
    assert!(msg.starts_with("journal unavailable: cannot "), "{msg}");
    let parent = path.parent().unwrap().display().to_string();
    assert!(
        msg.contains(&format!("`{parent}")),
        "the message names the location: {msg}"
    );
    // Restore permissions so the temp dir can be removed.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(
        dir.path().join("locked"),
        std::fs::Permissions::from_mode(0o755),
    );
}

#[tokio::test]
async fn opening_a_missing_journal_read_only_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let err = SqliteJournal::open_read_only(path.to_str().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("no journal at `{}`", path.display())),
        "{err}"
    );
    assert!(!path.exists(), "a read-only open creates nothing");
}

#[tokio::test]
async fn a_read_only_journal_reads_and_verifies_but_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let writer = journal_with(&path, 5).await;
    let reader = SqliteJournal::open_read_only(path.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(reader.read(EventQuery::default()).await.unwrap().len(), 5);
    assert!(reader.verify().await.unwrap().ok());
    let err = reader.append(ev(6)).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    // The writer is unaffected and the reader sees its new events.
    writer.append(ev(6)).await.unwrap();
    assert_eq!(reader.verify().await.unwrap().events, 6);
}

#[tokio::test]
async fn a_file_that_is_not_a_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    let content = "hello, this is not a database at all, just some text";
    std::fs::write(&text, content).unwrap();
    let err = SqliteJournal::open_read_only(text.to_str().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(_) | StoreError::Invalid(_)),
        "{err}"
    );
    let err = SqliteJournal::open(text.to_str().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(_) | StoreError::Invalid(_)),
        "{err}"
    );
    eprintln!("{err}");
    assert_eq!(
        std::fs::read_to_string(&text).unwrap(),
        content,
        "left untouched"
    );
}

#[tokio::test]
async fn unsupported_store_urls_are_refused() {
    let err = airlock_store::open("mongodb://u:secret@localhost/airlock")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Invalid(_)));
    let msg = err.to_string();
    assert!(
        msg.starts_with("unsupported store URL `mongodb://***@localhost"),
        "{msg}"
    );
    assert!(!msg.contains("secret"), "{msg}");
}

#[tokio::test]
async fn a_batch_that_fails_inside_its_transaction_leaves_nothing_behind() {
    // The store refuses bad events before writing; this failure comes from SQLite itself,
    // mid-transaction, after the batch's first event was inserted.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = journal_with(&path, 2).await;
    sqlx::query(
        "CREATE TRIGGER events_no_boom BEFORE INSERT ON events \
         WHEN NEW.payload LIKE '%boom%' BEGIN SELECT RAISE(ABORT, 'boom refused'); END",
    )
    .execute(&mut raw(&path).await)
    .await
    .unwrap();

    let batch = vec![
        ev(3),
        NewEvent::new(1_004, EventKind::Request, json!({"boom": true})),
        ev(5),
    ];
    let err = j.append_all(batch).await.unwrap_err();
    assert!(err.to_string().contains("boom refused"), "{err}");

    let stored = j.read(EventQuery::default()).await.unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|e| e.payload["n"].as_i64())
            .collect::<Vec<_>>(),
        vec![Some(1), Some(2)],
        "the batch's first event was rolled back"
    );
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 2);
    assert_eq!(j.append(ev(6)).await.unwrap().seq, 3);
}

/// A journal whose `append_all` appends one event at a time: what the trait's old default
/// did. The conformance suite must reject it.
struct OneByOne(SqliteJournal);

#[async_trait::async_trait]
impl Journal for OneByOne {
    async fn append(&self, ev: NewEvent) -> Result<Event, StoreError> {
        self.0.append(ev).await
    }
    async fn append_all(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for ev in evs {
            out.push(self.0.append(ev).await?);
        }
        Ok(out)
    }
    async fn read(&self, q: EventQuery) -> Result<Vec<Event>, StoreError> {
        self.0.read(q).await
    }
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.0.verify().await
    }
    async fn put_principal(&self, rec: AgentRecord, ev: NewEvent) -> Result<Event, StoreError> {
        self.0.put_principal(rec, ev).await
    }
    async fn principal_by_token_hash(&self, hash: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.0.principal_by_token_hash(hash).await
    }
    async fn principal(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.0.principal(name).await
    }
    async fn put_change(&self, rec: ChangeRecord, ev: NewEvent) -> Result<Event, StoreError> {
        self.0.put_change(rec, ev).await
    }
    async fn change(&self, id: &str) -> Result<Option<ChangeRecord>, StoreError> {
        self.0.change(id).await
    }
    async fn changes_with_status(
        &self,
        status: airlock_core::ChangeStatus,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        self.0.changes_with_status(status).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_fails_a_journal_that_appends_a_batch_one_by_one() {
    let fresh = || async {
        let j = SqliteJournal::open("sqlite::memory:").await.unwrap();
        (Arc::new(OneByOne(j)) as Arc<dyn Journal>, ())
    };
    let case = testing::CASES
        .iter()
        .find(|c| c.name == "append_all_is_all_or_nothing")
        .unwrap();
    let outcome = tokio::spawn(async move { testing::run_case(case, fresh).await }).await;
    let panic = outcome.unwrap_err().into_panic();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(
        msg.starts_with("journal conformance case `append_all_is_all_or_nothing` failed: "),
        "{msg}"
    );
    assert!(
        msg.contains("no event of the refused batch is stored"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_passes_on_sqlite_in_memory() {
    testing::run_all(fresh_in_memory).await;
}
