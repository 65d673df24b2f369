//! The PostgreSQL journal: the conformance suite, plus what only a shared server can show —
//! several handles (replicas) appending at once, tampering by someone with database access,
//! read-only opening, an unreachable server.
#![cfg(test)]

use airlock_core::event::{EventKind, NewEvent};
use airlock_store::{EventQuery, Journal, PgJournal, StoreError, testing};
use serde_json::json;
use sqlx::Connection;
use std::sync::Arc;

async fn fresh() -> (Arc<dyn Journal>, ()) {
    let url = testing::postgres_database().await;
    (airlock_store::open(&url).await.unwrap(), ())
}

airlock_store::journal_conformance!(fresh);

fn ev(i: i64) -> NewEvent {
    NewEvent::new(1_000 + i, EventKind::Request, json!({"n": i}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_appending_at_once_keep_one_gapless_chain() {
    let url = testing::postgres_database().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Arc::new(PgJournal::open(&url).await.unwrap()));
    }
    let mut tasks = Vec::new();
    for (r, j) in replicas.iter().enumerate() {
        for t in 0..8 {
            let j = Arc::clone(j);
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    let n = (r * 1000 + t * 100 + i) as i64;
                    if i % 3 == 0 {
                        j.append_all(vec![ev(n), ev(n + 50)]).await.unwrap();
                    } else {
                        j.append(ev(n)).await.unwrap();
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 3 replicas × 8 writers × (10 appends + 4 two-event batches' second events).
    let expected = 3 * 8 * (10 + 4);
    let report = replicas[1].verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, expected);
    let all = replicas[2].read(EventQuery::default()).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=expected as i64).collect::<Vec<_>>());
    // Each batch stayed contiguous: every `n + 50` directly follows its `n`.
    for pair in all.windows(2) {
        let n = pair[1].payload["n"].as_i64().unwrap();
        if n % 100 >= 50 {
            assert_eq!(pair[0].payload["n"].as_i64().unwrap(), n - 50);
        }
    }
}

#[tokio::test]
async fn an_edited_payload_is_named_as_the_first_broken_link() {
    let url = testing::postgres_database().await;
    let j = PgJournal::open(&url).await.unwrap();
    for i in 1..=5 {
        j.append(ev(i)).await.unwrap();
    }
    let mut raw = sqlx::PgConnection::connect(&url).await.unwrap();
    // The append-only trigger stops an accidental edit …
    let refused = sqlx::query("UPDATE events SET payload = '{\"n\":99}' WHERE seq = 3")
        .execute(&mut raw)
        .await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("journal events are append-only")
    );
    // … and `verify` finds a deliberate one.
    sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
        .execute(&mut raw)
        .await
        .unwrap();
    sqlx::query("UPDATE events SET payload = '{\"n\":99}' WHERE seq = 3")
        .execute(&mut raw)
        .await
        .unwrap();
    let report = j.verify().await.unwrap();
    assert_eq!(report.events, 2);
    let broken = report.first_broken.unwrap();
    assert_eq!(broken.seq, 3);
    assert_eq!(broken.reason, "hash does not match content");
}

#[tokio::test]
async fn a_deleted_change_row_is_found_by_the_audit() {
    let url = testing::postgres_database().await;
    let j = PgJournal::open(&url).await.unwrap();
    let rec = airlock_store::ChangeRecord {
        id: "chg_1".into(),
        action_id: "act_1".into(),
        agent: "bot".into(),
        status: airlock_core::ChangeStatus::Baking,
        record: json!({"k": 1}),
        created_at: 5,
        updated_at: 5,
    };
    j.put_change(rec, NewEvent::new(5, EventKind::Applied, json!({})))
        .await
        .unwrap();
    let clean = j.audit(Default::default()).await.unwrap();
    assert!(clean.ok(), "{clean:?}");
    assert_eq!(clean.rows_checked, 1);
    let mut raw = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM changes")
        .execute(&mut raw)
        .await
        .unwrap();
    let audit = j.audit(Default::default()).await.unwrap();
    assert!(!audit.ok());
    assert!(
        audit.problems[0]
            .reason
            .contains("change `chg_1` is recorded at event 1"),
        "{:?}",
        audit.problems
    );
}

#[tokio::test]
async fn a_read_only_handle_reads_but_never_writes() {
    let url = testing::postgres_database().await;
    let Err(missing) = airlock_store::open_read_only(&url).await else {
        panic!("an empty database opened as a journal")
    };
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
    let j = PgJournal::open(&url).await.unwrap();
    j.append(ev(1)).await.unwrap();
    let reader = airlock_store::open_read_only(&url).await.unwrap();
    assert_eq!(reader.read(EventQuery::default()).await.unwrap().len(), 1);
    let err = reader.append(ev(2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert_eq!(j.verify().await.unwrap().events, 1);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_hides_the_password() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://airlock:hunter2@127.0.0.1:{port}/airlock");
    let Err(err) = airlock_store::open(&url).await else {
        panic!("a closed port opened as a journal")
    };
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let msg = err.to_string();
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("postgres://***@127.0.0.1"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_lock_excludes_other_processes_until_released_or_its_holder_is_gone() {
    let url = testing::postgres_database().await;
    let a = PgJournal::open(&url).await.unwrap();
    let b = Arc::new(PgJournal::open(&url).await.unwrap());
    assert_eq!(b.lock_is_held("k").await.unwrap(), Some(false));
    let held = a
        .lock_shared("k")
        .await
        .unwrap()
        .expect("a shared store locks");
    assert_eq!(b.lock_is_held("k").await.unwrap(), Some(true));
    assert_eq!(b.lock_is_held("other").await.unwrap(), Some(false));
    // B waits for it …
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.lock_shared("k").await.unwrap().unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "B took a lock A holds");
    // … and gets it once A lets go.
    held.release().await;
    let b_held = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("B got the lock after A released it")
        .unwrap();
    assert_eq!(a.lock_is_held("k").await.unwrap(), Some(true));
    // A holder that goes away without releasing (a dead process) frees it too.
    drop(b_held);
    let mut freed = false;
    for _ in 0..50 {
        if a.lock_is_held("k").await.unwrap() == Some(false) {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "a dropped lock stayed held");
    // An embedded store has one process: no shared locks.
    let sqlite = airlock_store::open("sqlite::memory:").await.unwrap();
    assert!(sqlite.lock_shared("k").await.unwrap().is_none());
    assert_eq!(sqlite.lock_is_held("k").await.unwrap(), None);
}
