//! What `verify` proves about a SQLite journal beyond the plain chain: the exact stored
//! bytes of every event, every `principals` and `changes` row, signed checkpoints, journals
//! written before format 2, and recovery after the disk fills up.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use airlock_core::ChangeStatus;
use airlock_core::event::{EventKind, NewEvent, chain_hash};
use airlock_store::{
    AgentRecord, AuditOptions, ChangeRecord, CheckpointSigner, EventQuery, Journal, SqliteJournal,
    StoreError, audit_export,
};
use serde_json::json;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Connection, SqlSafeStr, SqliteConnection};
use std::path::Path;

fn ev(i: i64) -> NewEvent {
    NewEvent::new(1_000 + i, EventKind::Request, json!({"n": i, "note": "x"}))
}

async fn raw(path: &Path) -> SqliteConnection {
    let mut c = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for t in ["events_no_update", "events_no_delete"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER IF EXISTS {t}")))
            .execute(&mut c)
            .await
            .unwrap();
    }
    c
}

async fn exec(path: &Path, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut raw(path).await)
        .await
        .unwrap();
}

async fn journal_with(path: &Path, n: i64) -> SqliteJournal {
    let j = SqliteJournal::open(path.to_str().unwrap()).await.unwrap();
    for i in 1..=n {
        j.append(ev(i)).await.unwrap();
    }
    j
}

fn agent(name: &str, token_hash: &str) -> AgentRecord {
    AgentRecord {
        name: name.into(),
        kind: "agent".into(),
        token_hash: token_hash.into(),
        created_at: 5,
        revoked: false,
        profile: None,
    }
}

/// Each edit keeps the payload's JSON meaning, so the old rule (canonical JSON) let it
/// through while SQL readers saw the edited text. Reported by an outside review.
#[tokio::test]
async fn edits_that_keep_the_json_meaning_are_detected() {
    let edits = [
        // A duplicate key: `json_extract` reads the first, serde the last.
        r#"UPDATE events SET payload = '{"n":3,"n":3,"note":"x"}' WHERE seq = 3"#,
        r#"UPDATE events SET payload = '{"n":3, "note":"x"}' WHERE seq = 3"#,
        r#"UPDATE events SET payload = '{"n":3,"note":"x"} ' WHERE seq = 3"#,
        r#"UPDATE events SET payload = '{"n":3,"note":"\u0078"}' WHERE seq = 3"#,
        r#"UPDATE events SET payload = '{"n":3.0,"note":"x"}' WHERE seq = 3"#,
    ];
    for sql in edits {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let j = journal_with(&path, 5).await;
        assert!(j.verify().await.unwrap().ok());
        exec(&path, sql).await;
        let report = j.verify().await.unwrap();
        let broken = report.first_broken.expect(sql);
        assert_eq!(broken.seq, 3, "{sql}");
        assert_eq!(broken.reason, "hash does not match content", "{sql}");
    }
}

/// Every column of an events row is covered: a one-byte change anywhere is found.
#[tokio::test]
async fn a_one_byte_edit_of_any_column_is_detected() {
    let edits = [
        "UPDATE events SET ts = ts + 1 WHERE seq = 2",
        "UPDATE events SET kind = 'verdict' WHERE seq = 2",
        "UPDATE events SET agent = 'bot' WHERE seq = 2",
        "UPDATE events SET agent = '' WHERE seq = 2",
        "UPDATE events SET action_id = 'act_1' WHERE seq = 2",
        "UPDATE events SET change_id = 'chg_1' WHERE seq = 2",
        "UPDATE events SET row_digest = 'change:00' WHERE seq = 2",
        "UPDATE events SET format = 1 WHERE seq = 2",
        "UPDATE events SET format = 3 WHERE seq = 2",
        "UPDATE events SET hash = upper(hash) WHERE seq = 2",
        "UPDATE events SET prev_hash = upper(prev_hash) WHERE seq = 2",
        "UPDATE events SET seq = 9 WHERE seq = 2",
    ];
    for sql in edits {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let j = journal_with(&path, 3).await;
        exec(&path, sql).await;
        let report = j.verify().await.unwrap();
        let broken = report.first_broken.unwrap_or_else(|| panic!("{sql}"));
        assert!(broken.seq == 2 || broken.seq == 3, "{sql}: {broken:?}");
    }
}

async fn with_principals_and_changes(path: &Path) -> SqliteJournal {
    let j = journal_with(path, 2).await;
    j.put_principal(
        agent("bot", "aaaaaaaaaaaaaaaaaaaaaaaa"),
        NewEvent::new(
            10,
            EventKind::Agent,
            json!({"name": "bot", "kind": "agent"}),
        ),
    )
    .await
    .unwrap();
    let mut op = agent("alice", "bbbbbbbbbbbbbbbbbbbbbbbb");
    op.kind = "operator".into();
    j.put_principal(
        op,
        NewEvent::new(11, EventKind::Agent, json!({"name": "alice"})),
    )
    .await
    .unwrap();
    let change = ChangeRecord {
        id: "chg_1".into(),
        action_id: "act_1".into(),
        agent: "bot".into(),
        status: ChangeStatus::Baking,
        record: json!({"replicas": {"before": 4, "after": 2}}),
        created_at: 12,
        updated_at: 12,
    };
    j.put_change(
        change.clone(),
        NewEvent::new(12, EventKind::Applied, json!({})).agent("bot"),
    )
    .await
    .unwrap();
    j.put_change(
        ChangeRecord {
            status: ChangeStatus::Settled,
            updated_at: 13,
            ..change
        },
        NewEvent::new(13, EventKind::Settled, json!({})),
    )
    .await
    .unwrap();
    j
}

/// An agent made an operator in the table, a change's status or record edited, a revoked
/// principal restored: each passed `verify` before rows were checked against the chain.
/// Reported by an outside review.
#[tokio::test]
async fn every_principal_and_change_row_is_checked_against_the_chain() {
    let edits = [
        (
            "UPDATE principals SET kind = 'operator' WHERE name = 'bot'",
            "principal `bot`",
        ),
        (
            "UPDATE principals SET revoked = 1 WHERE name = 'bot'",
            "principal `bot`",
        ),
        (
            "UPDATE principals SET token_hash = 'cccccccccccccccccccccccc' WHERE name = 'bot'",
            "principal `bot`",
        ),
        (
            "UPDATE principals SET profile = 'coding' WHERE name = 'bot'",
            "principal `bot`",
        ),
        (
            "UPDATE principals SET event_seq = 4 WHERE name = 'bot'",
            "principal `bot`",
        ),
        (
            "DELETE FROM principals WHERE name = 'alice'",
            "principal `alice`",
        ),
        (
            "INSERT INTO principals (name, kind, token_hash, created_at, revoked, event_seq) \
             VALUES ('mallory', 'admin', 'dddddddddddddddddddddddd', 1, 0, 3)",
            "principal `mallory`",
        ),
        (
            "UPDATE changes SET status = 'baking' WHERE id = 'chg_1'",
            "change `chg_1`",
        ),
        (
            r#"UPDATE changes SET record = '{"replicas": {"before":4,"after":2}}' WHERE id = 'chg_1'"#,
            "change `chg_1`",
        ),
        (
            "UPDATE changes SET updated_at = 99 WHERE id = 'chg_1'",
            "change `chg_1`",
        ),
        (
            "UPDATE changes SET agent = 'alice' WHERE id = 'chg_1'",
            "change `chg_1`",
        ),
        // Rolled back to its first recorded state, row and pointer together.
        (
            r#"UPDATE changes SET status = 'baking', updated_at = 12, event_seq = 5 WHERE id = 'chg_1'"#,
            "change `chg_1`",
        ),
        ("DELETE FROM changes WHERE id = 'chg_1'", "change `chg_1`"),
    ];
    for (sql, who) in edits {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let j = with_principals_and_changes(&path).await;
        let clean = j.audit(AuditOptions::default()).await.unwrap();
        assert!(clean.ok(), "{clean:?}");
        assert_eq!(clean.rows_checked, 3);
        assert_eq!(clean.rows_unproven, 0);
        exec(&path, sql).await;
        let audit = j.audit(AuditOptions::default()).await.unwrap();
        assert!(audit.chain.ok(), "the events themselves are intact: {sql}");
        assert!(!audit.ok(), "{sql} passed");
        assert!(
            audit.problems[0].reason.starts_with(who),
            "{sql}: {:?}",
            audit.problems
        );
        let report = j.verify().await.unwrap();
        assert!(!report.ok(), "the trait's verify fails too: {sql}");
    }
}

#[tokio::test]
async fn a_principal_event_carries_a_digest_never_the_token_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let _j = with_principals_and_changes(&path).await;
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT payload, row_digest FROM events WHERE kind = 'agent'")
            .fetch_all(&mut raw(&path).await)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    for (payload, digest) in rows {
        let digest = digest.unwrap();
        assert!(digest.starts_with("principal:"), "{digest}");
        for secret in ["aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"] {
            assert!(!payload.contains(secret), "{payload}");
            assert!(!digest.contains(secret), "{digest}");
        }
    }
}

/// A journal written by the previous version (format 1, migrations 1 and 2) still opens
/// and verifies; new events are format 2; an old row cannot be flipped or downgraded.
#[tokio::test]
async fn a_journal_from_before_format_2_opens_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut c = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        let old = Migrator::with_migrations(vec![
            Migration::new(
                1,
                "journal".into(),
                MigrationType::Simple,
                include_str!("../migrations/0001_journal.sql").into_sql_str(),
                false,
            ),
            Migration::new(
                2,
                "principals".into(),
                MigrationType::Simple,
                include_str!("../migrations/0002_principals.sql").into_sql_str(),
                false,
            ),
        ]);
        old.run_direct(None, &mut c, false).await.unwrap();
        let mut prev = airlock_core::event::GENESIS.to_string();
        for seq in 1..=3 {
            // The third event registers the principal below.
            let (kind, agent) = if seq == 3 {
                (EventKind::Agent, Some("old-bot".to_string()))
            } else {
                (EventKind::Request, None)
            };
            let mut e = NewEvent::new(seq, kind, json!({"old": seq}));
            e.agent = agent.clone();
            let hash = chain_hash(&prev, seq, &e);
            sqlx::query(
                "INSERT INTO events (seq, ts, kind, agent, payload, prev_hash, hash) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(seq)
            .bind(seq)
            .bind(kind.as_str())
            .bind(agent)
            .bind(e.payload.to_string())
            .bind(&prev)
            .bind(&hash)
            .execute(&mut c)
            .await
            .unwrap();
            prev = hash;
        }
        sqlx::query(
            "INSERT INTO principals (name, kind, token_hash, created_at, event_seq) \
             VALUES ('old-bot', 'agent', 'eeeeeeeeeeeeeeeeeeeeeeee', 1, 3)",
        )
        .execute(&mut c)
        .await
        .unwrap();
    }
    // Read-only, before any migration: the old rule, nothing new assumed.
    let ro = SqliteJournal::open_read_only(path.to_str().unwrap())
        .await
        .unwrap();
    let audit = ro.audit(AuditOptions::default()).await.unwrap();
    assert_eq!(audit.legacy_events, 3);
    assert!(audit.chain.ok(), "{audit:?}");
    drop(ro);

    let j = SqliteJournal::open(path.to_str().unwrap()).await.unwrap();
    let e = j.append(ev(4)).await.unwrap();
    assert_eq!(e.seq, 4);
    let audit = j.audit(AuditOptions::default()).await.unwrap();
    assert!(audit.chain.ok(), "{audit:?}");
    assert_eq!(audit.chain.events, 4);
    assert_eq!(audit.legacy_events, 3, "the old rows keep the old rule");
    assert_eq!(audit.rows_unproven, 1, "the old principal cannot be proven");
    assert!(audit.ok(), "{audit:?}");
    // A new row cannot be passed off as an old one, nor can an old one change meaning.
    exec(&path, "UPDATE events SET format = 1 WHERE seq = 4").await;
    let broken = j.verify().await.unwrap().first_broken.unwrap();
    assert_eq!(broken.seq, 4);
    exec(&path, "UPDATE events SET format = 2 WHERE seq = 4").await;
    assert!(j.verify().await.unwrap().ok());
    exec(
        &path,
        r#"UPDATE events SET payload = '{"old":9}' WHERE seq = 2"#,
    )
    .await;
    let broken = j.verify().await.unwrap().first_broken.unwrap();
    assert_eq!(
        (broken.seq, broken.reason.as_str()),
        (2, "hash does not match content")
    );
}

/// A checkpoint is appended only when it signs the head it follows; `audit` checks its
/// signature under the given key, and a chain recomputed after an edit no longer matches.
#[tokio::test]
async fn checkpoints_sign_the_head_and_a_recomputed_chain_fails_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = journal_with(&path, 4).await;
    let signer = CheckpointSigner::from_seed(&[3; 32]);
    let key = signer.public_key();
    let head = j.verify().await.unwrap();
    // A stale head is refused.
    let stale = signer.sign(3, "00", 50, "interval");
    let err = j.append(stale.to_event().unwrap()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let cp = signer.sign(head.events as i64, &head.head, 50, "interval");
    let stored = j.append(cp.to_event().unwrap()).await.unwrap();
    assert_eq!(stored.seq, 5);
    // In a batch it is refused.
    let err = j
        .append_all(vec![ev(6), cp.to_event().unwrap()])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    j.append(ev(6)).await.unwrap();

    let opts = AuditOptions {
        keys: vec![key.clone()],
        external: vec![],
    };
    let audit = j.audit(opts.clone()).await.unwrap();
    assert!(audit.ok(), "{audit:?}");
    assert_eq!((audit.checkpoints, audit.signed), (1, 1));
    assert_eq!(audit.last_signed.as_ref().unwrap().head_seq, 4);
    // Another key's checkpoints do not count.
    let other = CheckpointSigner::from_seed(&[4; 32]).public_key();
    let audit = j
        .audit(AuditOptions {
            keys: vec![other],
            external: vec![],
        })
        .await
        .unwrap();
    assert!(!audit.ok());

    // Rewrite: edit event 2 and recompute every hash after it, checkpoint included.
    let mut conn = raw(&path).await;
    let rows = j.export_rows(0, 100).await.unwrap();
    let mut prev = rows[0].hash.clone();
    for r in &rows[1..] {
        let payload = if r.seq == 2 {
            r#"{"n":200,"note":"x"}"#.to_string()
        } else {
            r.payload.get().to_string()
        };
        let hash = airlock_core::event::row_hash(&airlock_core::event::RowBytes {
            seq: r.seq,
            ts: r.ts,
            kind: &r.kind,
            agent: r.agent.as_deref(),
            action_id: r.action_id.as_deref(),
            change_id: r.change_id.as_deref(),
            row_digest: r.row_digest.as_deref(),
            payload: &payload,
            prev_hash: &prev,
        });
        sqlx::query("UPDATE events SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?")
            .bind(&payload)
            .bind(&prev)
            .bind(&hash)
            .bind(r.seq)
            .execute(&mut conn)
            .await
            .unwrap();
        prev = hash;
    }
    let report = j.verify().await.unwrap();
    assert!(
        !report.ok(),
        "a checkpoint whose head no longer matches is a broken link"
    );
    // Even re-pointing the checkpoint's head (without the key) cannot make it verify.
    let (cp_payload,): (String,) = sqlx::query_as("SELECT payload FROM events WHERE seq = 5")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mut forged: airlock_store::Checkpoint = serde_json::from_str(&cp_payload).unwrap();
    let (h4,): (String,) = sqlx::query_as("SELECT hash FROM events WHERE seq = 4")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    forged.head_hash = h4;
    let forged_text = serde_json::to_string(&forged).unwrap();
    sqlx::query("UPDATE events SET payload = ? WHERE seq = 5")
        .bind(&forged_text)
        .execute(&mut conn)
        .await
        .unwrap();
    // Recompute 5 and 6 once more.
    let rows = j.export_rows(3, 100).await.unwrap();
    let mut prev = rows[0].hash.clone();
    for r in &rows[1..] {
        let hash = airlock_core::event::row_hash(&airlock_core::event::RowBytes {
            seq: r.seq,
            ts: r.ts,
            kind: &r.kind,
            agent: r.agent.as_deref(),
            action_id: r.action_id.as_deref(),
            change_id: r.change_id.as_deref(),
            row_digest: r.row_digest.as_deref(),
            payload: r.payload.get(),
            prev_hash: &prev,
        });
        sqlx::query("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?")
            .bind(&prev)
            .bind(&hash)
            .bind(r.seq)
            .execute(&mut conn)
            .await
            .unwrap();
        prev = hash;
    }
    assert!(
        j.verify().await.unwrap().ok(),
        "without the key the rewritten chain is consistent"
    );
    let audit = j.audit(opts).await.unwrap();
    assert!(!audit.ok(), "with the key it is not: {audit:?}");
    assert!(
        audit
            .problems
            .iter()
            .any(|p| p.reason.contains("does not verify")),
        "{:?}",
        audit.problems
    );
}

/// An export carries every row byte for byte, checkpoints included, and verifies offline;
/// a whitespace edit of the exported text is found, and a truncated journal fails against
/// the checkpoints of an earlier export.
#[tokio::test]
async fn an_export_verifies_offline_and_exposes_a_deleted_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = with_principals_and_changes(&path).await;
    let signer = CheckpointSigner::from_seed(&[5; 32]);
    let head = j.verify().await.unwrap();
    let cp = signer.sign(head.events as i64, &head.head, 77, "shutdown");
    j.append(cp.to_event().unwrap()).await.unwrap();
    let lines: Vec<String> = j
        .export_rows(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect();
    let text = lines.join("\n") + "\n";
    let opts = AuditOptions {
        keys: vec![signer.public_key()],
        external: vec![],
    };
    let audit = audit_export(text.as_bytes(), opts.clone()).unwrap();
    assert!(audit.ok(), "{audit:?}");
    assert_eq!(audit.signed, 1);
    // One added space inside a payload.
    let edited = text.replacen(r#""note":"x""#, r#""note": "x""#, 1);
    assert_ne!(edited, text);
    let audit = audit_export(edited.as_bytes(), opts.clone()).unwrap();
    assert!(!audit.chain.ok(), "{audit:?}");

    // The journal loses its tail (the checkpoint with it).
    exec(&path, "DELETE FROM changes").await;
    exec(&path, "DELETE FROM events WHERE seq >= 6").await;
    let external = airlock_store::checkpoints_in_export(text.as_bytes()).unwrap();
    let audit = j
        .audit(AuditOptions {
            keys: vec![signer.public_key()],
            external,
        })
        .await
        .unwrap();
    assert!(!audit.ok());
    assert!(
        audit
            .problems
            .iter()
            .any(|p| p.reason.contains("events were removed from its end")),
        "{:?}",
        audit.problems
    );
}

/// After SQLite reports a full disk, writes succeed again as soon as there is space: the
/// failed transaction is rolled back on the writer connection instead of staying open
/// ("attempted to call begin_with at non-zero transaction depth"). Reported by an outside
/// review.
#[tokio::test]
async fn the_journal_recovers_after_the_disk_fills_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = journal_with(&path, 3).await;
    let pages = j.page_count().await.unwrap();
    j.set_max_page_count(pages).await.unwrap();
    let big = "x".repeat(10_000);
    let mut stored = 3;
    let err = loop {
        match j
            .append(NewEvent::new(0, EventKind::Request, json!({"fill": big})))
            .await
        {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 10_000, "the page limit never bit");
    };
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("full"), "{err}");
    // Still full: the same error again, not a stuck transaction.
    for kind in ["append", "principal", "change"] {
        let err = match kind {
            "append" => j
                .append(NewEvent::new(0, EventKind::Request, json!({"fill": big})))
                .await
                .unwrap_err(),
            "principal" => j
                .put_principal(
                    agent("bot", &"f".repeat(10_000)),
                    NewEvent::new(0, EventKind::Agent, json!({})),
                )
                .await
                .unwrap_err(),
            _ => j
                .put_change(
                    ChangeRecord {
                        id: "chg_full".into(),
                        action_id: "a".into(),
                        agent: "bot".into(),
                        status: ChangeStatus::Baking,
                        record: json!({"fill": big}),
                        created_at: 0,
                        updated_at: 0,
                    },
                    NewEvent::new(0, EventKind::Applied, json!({})),
                )
                .await
                .unwrap_err(),
        };
        assert!(err.to_string().contains("full"), "{kind}: {err}");
        assert!(!err.to_string().contains("transaction depth"), "{err}");
    }
    // Space returns.
    j.set_max_page_count(1 << 30).await.unwrap();
    let e = j.append(ev(100)).await.unwrap();
    assert_eq!(e.seq, stored + 1, "no seq was spent on the failed writes");
    j.put_principal(
        agent("bot", "abcdefabcdefabcdefabcdef"),
        NewEvent::new(0, EventKind::Agent, json!({})),
    )
    .await
    .unwrap();
    let audit = j.audit(AuditOptions::default()).await.unwrap();
    assert!(audit.ok(), "{audit:?}");
    assert_eq!(audit.chain.events as i64, stored + 2);
    let all = j.read(EventQuery::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=stored + 2).collect::<Vec<_>>()
    );
    assert!(
        j.change("chg_full").await.unwrap().is_none(),
        "nothing half-written"
    );
}
