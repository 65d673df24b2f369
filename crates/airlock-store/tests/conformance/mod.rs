//! The `Journal` conformance suite: every backend must pass each of these functions.
//!
//! Each takes a fresh, empty journal. A backend's test file calls them all (see `sqlite.rs`).

use airlock_core::event::{EventKind, GENESIS, NewEvent};
use airlock_store::{AgentRecord, ChangeRecord, EventQuery, Journal, StoreError};
use serde_json::json;
use std::sync::Arc;

fn ev(ts: i64, kind: EventKind, payload: serde_json::Value) -> NewEvent {
    NewEvent::new(ts, kind, payload)
}

/// Runs every check in the suite, each on a journal from `fresh`.
macro_rules! conformance_tests {
    ($fresh:path) => {
        conformance_tests!(@each $fresh;
            empty_journal_verifies,
            append_links_a_gapless_chain,
            read_filters_by_subject_and_kind,
            read_pages_forward_and_backward,
            concurrent_appends_lose_nothing,
            payloads_round_trip_exactly,
            principals_register_rekey_and_revoke,
            principal_writes_are_refused_whole,
            changes_insert_and_update,
        );
    };
    (@each $fresh:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (journal, _guard) = $fresh().await;
                conformance::$name(journal).await;
            }
        )*
    };
}

pub async fn empty_journal_verifies(j: Arc<dyn Journal>) {
    let report = j.verify().await.unwrap();
    assert!(report.ok());
    assert_eq!(report.events, 0);
    assert_eq!(report.head, GENESIS);
    assert!(j.read(EventQuery::default()).await.unwrap().is_empty());
}

pub async fn append_links_a_gapless_chain(j: Arc<dyn Journal>) {
    let mut appended = Vec::new();
    for i in 0..5 {
        let e = j
            .append(ev(1_000 + i, EventKind::Request, json!({"i": i})).agent("cost-bot"))
            .await
            .unwrap();
        appended.push(e);
    }
    assert_eq!(
        appended.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(appended[0].prev_hash, GENESIS);
    for pair in appended.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for e in &appended {
        assert_eq!(e.recompute(), e.hash);
    }
    let read = j.read(EventQuery::default()).await.unwrap();
    assert_eq!(
        read, appended,
        "what is read back is exactly what append returned"
    );
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 5);
    assert_eq!(report.head, appended[4].hash);
}

pub async fn read_filters_by_subject_and_kind(j: Arc<dyn Journal>) {
    j.append(
        ev(1, EventKind::Request, json!({}))
            .agent("a")
            .action("act_1"),
    )
    .await
    .unwrap();
    j.append(
        ev(2, EventKind::Verdict, json!({}))
            .agent("a")
            .action("act_1"),
    )
    .await
    .unwrap();
    j.append(
        ev(3, EventKind::Request, json!({}))
            .agent("b")
            .action("act_2"),
    )
    .await
    .unwrap();
    j.append(
        ev(4, EventKind::Applied, json!({}))
            .agent("a")
            .action("act_1")
            .change("chg_1"),
    )
    .await
    .unwrap();
    j.append(ev(5, EventKind::Killswitch, json!({"on": true})))
        .await
        .unwrap();

    let seqs = |events: Vec<airlock_core::event::Event>| {
        events.into_iter().map(|e| e.seq).collect::<Vec<_>>()
    };
    let q = |f: fn(&mut EventQuery)| {
        let mut q = EventQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        seqs(j.read(q(|q| q.agent = Some("a".into()))).await.unwrap()),
        vec![1, 2, 4]
    );
    assert_eq!(
        seqs(j.read(q(|q| q.agent = Some("zed".into()))).await.unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(
        seqs(
            j.read(q(|q| q.kind = Some(EventKind::Request)))
                .await
                .unwrap()
        ),
        vec![1, 3]
    );
    assert_eq!(
        seqs(
            j.read(q(|q| q.action_id = Some("act_1".into())))
                .await
                .unwrap()
        ),
        vec![1, 2, 4]
    );
    assert_eq!(
        seqs(
            j.read(q(|q| q.change_id = Some("chg_1".into())))
                .await
                .unwrap()
        ),
        vec![4]
    );
    assert_eq!(
        seqs(
            j.read(q(|q| {
                q.agent = Some("a".into());
                q.kind = Some(EventKind::Request);
            }))
            .await
            .unwrap()
        ),
        vec![1],
        "filters combine with AND"
    );
    assert_eq!(
        seqs(j.read(q(|q| q.descending = true)).await.unwrap()),
        vec![5, 4, 3, 2, 1]
    );
    assert_eq!(
        seqs(j.read(q(|q| q.limit = Some(0))).await.unwrap()),
        Vec::<i64>::new()
    );
}

pub async fn read_pages_forward_and_backward(j: Arc<dyn Journal>) {
    for i in 0..25 {
        j.append(ev(i, EventKind::Request, json!({"i": i})))
            .await
            .unwrap();
    }
    // Forward: the cursor is the last seq of the previous page.
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = j
            .read(EventQuery {
                after_seq: cursor,
                limit: Some(10),
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|e| e.seq);
        pages.push(page.iter().map(|e| e.seq).collect::<Vec<_>>());
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0], (1..=10).collect::<Vec<_>>());
    assert_eq!(pages[2], (21..=25).collect::<Vec<_>>());

    // Backward: newest first, and the cursor moves towards older events.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = j
            .read(EventQuery {
                after_seq: cursor,
                limit: Some(10),
                descending: true,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|e| e.seq);
        seen.extend(page.iter().map(|e| e.seq));
    }
    assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());

    // A tail read: what came after seq 20.
    let tail = j
        .read(EventQuery {
            after_seq: Some(20),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![21, 22, 23, 24, 25]
    );
}

pub async fn concurrent_appends_lose_nothing(j: Arc<dyn Journal>) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let j = Arc::clone(&j);
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                j.append(
                    ev(i, EventKind::Request, json!({"task": t, "i": i}))
                        .agent(&format!("agent-{t}")),
                )
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = j.read(EventQuery::default()).await.unwrap();
    assert_eq!(all.len(), 400);
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=400).collect::<Vec<_>>()
    );
    for t in 0..8 {
        let mine = j
            .read(EventQuery {
                agent: Some(format!("agent-{t}")),
                ..Default::default()
            })
            .await
            .unwrap();
        let is: Vec<i64> = mine
            .iter()
            .map(|e| e.payload["i"].as_i64().unwrap())
            .collect();
        assert_eq!(
            is,
            (0..50).collect::<Vec<_>>(),
            "task {t}'s events are all there, in order"
        );
    }
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 400);
}

pub async fn payloads_round_trip_exactly(j: Arc<dyn Journal>) {
    // Floats whose shortest decimal form is tricky to parse back, plus a deterministic spray
    // of arbitrary bit patterns.
    let mut floats = vec![
        0.1,
        1e-7,
        -0.0,
        1e300,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        2.638344616030823e-256,
        0.30000000000000004,
        9007199254740993.0,
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while floats.len() < 200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = f64::from_bits(x);
        if f.is_finite() {
            floats.push(f);
        }
    }
    let payload = json!({
        "zeta": 1,
        "alpha": {"nested": [1, 2, {"b": 2, "a": 1}]},
        "floats": floats,
        "big": u64::MAX,
        "small": i64::MIN,
        "text": "naïve \"quoted\" \\ line\nbreak \u{1f680} \u{0007}",
        "null": null,
        "empty": {},
    });
    let appended = j
        .append(ev(1, EventKind::Verdict, payload.clone()))
        .await
        .unwrap();
    let read = j.read(EventQuery::default()).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].payload, payload);
    assert_eq!(
        read[0].payload.to_string(),
        payload.to_string(),
        "key order and numbers kept"
    );
    assert_eq!(read[0].recompute(), appended.hash);
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
}

fn agent(name: &str, token_hash: &str, created_at: i64) -> AgentRecord {
    AgentRecord {
        name: name.into(),
        kind: "agent".into(),
        token_hash: token_hash.into(),
        created_at,
        revoked: false,
    }
}

const TOKEN_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const TOKEN_C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

pub async fn principals_register_rekey_and_revoke(j: Arc<dyn Journal>) {
    let e = j
        .put_principal(
            agent("cost-bot", TOKEN_A, 100),
            ev(
                100,
                EventKind::Agent,
                json!({"name": "cost-bot", "kind": "agent"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(e.kind, EventKind::Agent);
    assert_eq!(
        e.agent.as_deref(),
        Some("cost-bot"),
        "the event is about the principal"
    );
    assert!(!e.payload.to_string().contains(TOKEN_A));

    let found = j.principal_by_token_hash(TOKEN_A).await.unwrap().unwrap();
    assert_eq!(found, agent("cost-bot", TOKEN_A, 100));
    assert_eq!(j.principal("cost-bot").await.unwrap(), Some(found));
    assert_eq!(j.principal_by_token_hash(TOKEN_B).await.unwrap(), None);
    assert_eq!(j.principal("nobody").await.unwrap(), None);

    // Re-key: the old token stops resolving, the registration time stays.
    j.put_principal(
        agent("cost-bot", TOKEN_B, 200),
        ev(
            200,
            EventKind::Agent,
            json!({"name": "cost-bot", "rekeyed": true}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(j.principal_by_token_hash(TOKEN_A).await.unwrap(), None);
    let rekeyed = j.principal_by_token_hash(TOKEN_B).await.unwrap().unwrap();
    assert_eq!(rekeyed.created_at, 100);

    // Revoke.
    let mut revoked = rekeyed.clone();
    revoked.revoked = true;
    j.put_principal(
        revoked,
        ev(
            300,
            EventKind::Agent,
            json!({"name": "cost-bot", "revoked": true}),
        ),
    )
    .await
    .unwrap();
    assert!(j.principal("cost-bot").await.unwrap().unwrap().revoked);

    // An operator is a principal too.
    let mut op = agent("alice", TOKEN_C, 400);
    op.kind = "operator".into();
    j.put_principal(
        op,
        ev(
            400,
            EventKind::Agent,
            json!({"name": "alice", "kind": "operator"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        j.principal_by_token_hash(TOKEN_C)
            .await
            .unwrap()
            .unwrap()
            .kind,
        "operator"
    );

    let events = j
        .read(EventQuery {
            kind: Some(EventKind::Agent),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 4);
    assert!(j.verify().await.unwrap().ok());
}

pub async fn principal_writes_are_refused_whole(j: Arc<dyn Journal>) {
    j.put_principal(
        agent("cost-bot", TOKEN_A, 1),
        ev(1, EventKind::Agent, json!({})),
    )
    .await
    .unwrap();

    let cases: Vec<(AgentRecord, NewEvent, &str)> = vec![
        (
            agent("leaky", TOKEN_B, 2),
            ev(2, EventKind::Agent, json!({"token_hash": TOKEN_B})),
            "invalid",
        ),
        (
            agent("wrong-kind", TOKEN_B, 2),
            ev(2, EventKind::Request, json!({})),
            "invalid",
        ),
        (
            AgentRecord {
                kind: "root".into(),
                ..agent("x", TOKEN_B, 2)
            },
            ev(2, EventKind::Agent, json!({})),
            "invalid",
        ),
        (
            agent("thief", TOKEN_A, 2),
            ev(2, EventKind::Agent, json!({})),
            "conflict",
        ),
        (
            AgentRecord {
                kind: "operator".into(),
                ..agent("cost-bot", TOKEN_B, 2)
            },
            ev(2, EventKind::Agent, json!({})),
            "conflict",
        ),
    ];
    for (rec, event, want) in cases {
        let name = rec.name.clone();
        let err = j.put_principal(rec, event).await.unwrap_err();
        let got = match err {
            StoreError::Invalid(_) => "invalid",
            StoreError::Conflict(_) => "conflict",
            _ => "other",
        };
        assert_eq!(got, want, "`{name}`: {err}");
    }
    // Nothing of the refused writes reached the journal or the principals.
    assert_eq!(j.read(EventQuery::default()).await.unwrap().len(), 1);
    assert_eq!(j.principal("thief").await.unwrap(), None);
    assert_eq!(
        j.principal("cost-bot").await.unwrap().unwrap().kind,
        "agent"
    );
    assert_eq!(
        j.principal_by_token_hash(TOKEN_A)
            .await
            .unwrap()
            .unwrap()
            .name,
        "cost-bot"
    );
}

fn change(id: &str, status: &str, created_at: i64, updated_at: i64) -> ChangeRecord {
    ChangeRecord {
        id: id.into(),
        action_id: format!("act_{id}"),
        agent: "cost-bot".into(),
        status: status.into(),
        record: json!({"target": "sim:service/checkout", "replicas": {"before": 4, "after": 2}}),
        created_at,
        updated_at,
    }
}

pub async fn changes_insert_and_update(j: Arc<dyn Journal>) {
    let e1 = j
        .put_change(
            change("c1", "baking", 10, 10),
            ev(10, EventKind::Applied, json!({"change": "c1"})).agent("cost-bot"),
        )
        .await
        .unwrap();
    assert_eq!(
        e1.change_id.as_deref(),
        Some("c1"),
        "the event is filed under its change"
    );
    j.put_change(
        change("c2", "baking", 20, 20),
        ev(20, EventKind::Applied, json!({})),
    )
    .await
    .unwrap();
    j.put_change(
        change("c3", "baking", 5, 5),
        ev(30, EventKind::Applied, json!({})),
    )
    .await
    .unwrap();

    let baking = j.changes_with_status("baking").await.unwrap();
    assert_eq!(
        baking.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec!["c3", "c1", "c2"],
        "oldest first"
    );
    assert_eq!(
        j.change("c1").await.unwrap(),
        Some(change("c1", "baking", 10, 10))
    );
    assert_eq!(j.change("nope").await.unwrap(), None);

    // Update: status and record move, the origin stays.
    let mut settled = change("c1", "settled", 999, 50);
    settled.record = json!({"settled_at": 50});
    j.put_change(settled, ev(50, EventKind::Settled, json!({})).change("c1"))
        .await
        .unwrap();
    let c1 = j.change("c1").await.unwrap().unwrap();
    assert_eq!(c1.status, "settled");
    assert_eq!(c1.record, json!({"settled_at": 50}));
    assert_eq!(c1.created_at, 10);
    assert_eq!(c1.updated_at, 50);
    assert_eq!(
        j.changes_with_status("baking")
            .await
            .unwrap()
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        vec!["c3", "c2"]
    );
    assert_eq!(j.changes_with_status("settled").await.unwrap().len(), 1);
    assert!(j.changes_with_status("reverted").await.unwrap().is_empty());

    let history = j
        .read(EventQuery {
            change_id: Some("c1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Applied, EventKind::Settled]
    );

    // Refusals append nothing.
    let before = j.read(EventQuery::default()).await.unwrap().len();
    let err = j
        .put_change(
            change("c1", "reverted", 1, 60),
            ev(60, EventKind::Reverted, json!({})).change("c2"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let mut hijack = change("c1", "reverted", 1, 60);
    hijack.action_id = "act_other".into();
    let err = j
        .put_change(hijack, ev(60, EventKind::Reverted, json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(j.read(EventQuery::default()).await.unwrap().len(), before);
    assert_eq!(j.change("c1").await.unwrap().unwrap().status, "settled");
    assert!(j.verify().await.unwrap().ok());
}
