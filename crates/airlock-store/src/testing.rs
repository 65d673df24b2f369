//! The `Journal` conformance suite: the checks every backend must pass, exported (behind the
//! `testing` feature) so each backend's tests run the very same cases.
//!
//! Each case is a `pub async fn` that takes a fresh, empty journal and panics when the
//! backend breaks the contract. A backend's test file runs them through a factory that makes
//! a fresh journal, plus a guard kept alive until the case ends (a temp dir, a throwaway
//! database; `()` when there is nothing to clean up):
//!
//! ```ignore
//! async fn fresh() -> (Arc<dyn Journal>, TempDir) { /* open a journal in a new temp dir */ }
//!
//! // One `#[tokio::test]` per case, named after it (needs `tokio` with `macros` and
//! // `rt-multi-thread` among the dev-dependencies):
//! airlock_store::journal_conformance!(fresh);
//!
//! // Or every case in one test; a failure names its case:
//! #[tokio::test(flavor = "multi_thread")]
//! async fn conformance() { airlock_store::testing::run_all(fresh).await }
//! ```
// A failed check is a panic with a message, as in any test.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "conformance cases are test code run by each backend's tests"
)]

use crate::{AgentRecord, ChangeRecord, EventQuery, Journal, StoreError};
use airlock_core::ChangeStatus;
use airlock_core::event::{Event, EventKind, GENESIS, NewEvent};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A case's check, run on a fresh, empty journal.
pub type CaseFn = fn(Arc<dyn Journal>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// One case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// The name of the case's function, e.g. `append_all_is_all_or_nothing`.
    pub name: &'static str,
    /// The check.
    pub run: CaseFn,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, in the order [`run_all`] runs them.
        pub const CASES: &[Case] = &[$(Case {
            name: stringify!($name),
            run: |j| Box::pin($name(j)),
        }),*];
    };
}

cases!(
    empty_journal_verifies,
    append_links_a_gapless_chain,
    append_all_keeps_a_batch_contiguous,
    append_all_is_all_or_nothing,
    read_filters_by_subject_and_kind,
    read_pages_forward_and_backward,
    concurrent_appends_lose_nothing,
    payloads_round_trip_exactly,
    principals_register_rekey_and_revoke,
    principals_are_listed_by_name,
    principal_writes_are_refused_whole,
    changes_insert_and_update,
    changes_written_together_fail_alone,
    checkpoints_sign_the_head_they_follow,
);

/// Runs every case, each on a journal from `fresh`, one after the other; the first failure
/// panics with the case's name and its message.
///
/// `fresh` makes an empty journal and a guard that is dropped when the case ends. Call it
/// from inside a tokio runtime (a multi-threaded one exercises concurrency best).
pub async fn run_all<F, Fut, G>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = (Arc<dyn Journal>, G)>,
{
    for case in CASES {
        run_case(case, &fresh).await;
    }
}

/// Runs one case on a journal from `fresh`; a failure panics with the case's name.
pub async fn run_case<F, Fut, G>(case: &Case, fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = (Arc<dyn Journal>, G)>,
{
    let (journal, guard) = fresh().await;
    let outcome = tokio::spawn((case.run)(journal)).await;
    drop(guard);
    if let Err(e) = outcome {
        let why = if e.is_panic() {
            let payload = e.into_panic();
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "it panicked".to_string())
        } else {
            e.to_string()
        };
        panic!("journal conformance case `{}` failed: {why}", case.name);
    }
}

/// Runs every case as its own `#[tokio::test]`, named after the case, each on a journal from
/// `$fresh` (an async fn returning `(Arc<dyn Journal>, guard)`), plus a test that the list
/// here covers every case of [`testing::CASES`](crate::testing::CASES).
///
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! journal_conformance {
    ($fresh:expr) => {
        $crate::journal_conformance!(@each $fresh;
            empty_journal_verifies,
            append_links_a_gapless_chain,
            append_all_keeps_a_batch_contiguous,
            append_all_is_all_or_nothing,
            read_filters_by_subject_and_kind,
            read_pages_forward_and_backward,
            concurrent_appends_lose_nothing,
            payloads_round_trip_exactly,
            principals_register_rekey_and_revoke,
            principals_are_listed_by_name,
            principal_writes_are_refused_whole,
            changes_insert_and_update,
            changes_written_together_fail_alone,
            checkpoints_sign_the_head_they_follow,
        );
    };
    (@each $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (journal, _guard) = ($fresh)().await;
                $crate::testing::$name(journal).await;
            }
        )*

        #[test]
        fn conformance_runs_every_case() {
            let here = [$(stringify!($name)),*];
            let all: ::std::vec::Vec<&str> =
                $crate::testing::CASES.iter().map(|c| c.name).collect();
            assert_eq!(here.as_slice(), all.as_slice(), "the macro's list of cases is stale");
        }
    };
}

fn ev(ts: i64, kind: EventKind, payload: serde_json::Value) -> NewEvent {
    NewEvent::new(ts, kind, payload)
}

/// An empty journal verifies, with the genesis hash as its head, and reads nothing.
pub async fn empty_journal_verifies(j: Arc<dyn Journal>) {
    let report = j.verify().await.unwrap();
    assert!(report.ok());
    assert_eq!(report.events, 0);
    assert_eq!(report.head, GENESIS);
    assert!(j.read(EventQuery::default()).await.unwrap().is_empty());
}

/// Appends get seqs 1, 2, 3… and each links to the one before; what is read back is what
/// `append` returned.
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

/// A batch from `append_all` lands contiguous and in order even while other writers append
/// concurrently; an empty batch stores nothing.
pub async fn append_all_keeps_a_batch_contiguous(j: Arc<dyn Journal>) {
    assert!(
        j.append_all(Vec::new()).await.unwrap().is_empty(),
        "an empty batch stores nothing"
    );
    // Batches of five race against single appends; no single append may land inside a batch.
    let mut tasks = Vec::new();
    for t in 0..6 {
        let j = Arc::clone(&j);
        tasks.push(tokio::spawn(async move {
            let mut batches = Vec::new();
            for b in 0..10 {
                let batch = (0..5)
                    .map(|i| {
                        ev(
                            b,
                            EventKind::Request,
                            json!({"task": t, "batch": b, "i": i}),
                        )
                        .agent(&format!("batcher-{t}"))
                    })
                    .collect();
                batches.push(j.append_all(batch).await.unwrap());
            }
            batches
        }));
    }
    for t in 0..6 {
        let j = Arc::clone(&j);
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                j.append(ev(i, EventKind::Verdict, json!({"single": t, "i": i})))
                    .await
                    .unwrap();
            }
            Vec::new()
        }));
    }
    let mut batches: Vec<Vec<Event>> = Vec::new();
    for task in tasks {
        batches.extend(task.await.unwrap());
    }
    let all = j.read(EventQuery::default()).await.unwrap();
    assert_eq!(all.len(), 6 * 10 * 5 + 6 * 25);
    for batch in &batches {
        assert_eq!(batch.len(), 5);
        let first = batch[0].seq;
        assert_eq!(
            batch.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (first..first + 5).collect::<Vec<_>>(),
            "a batch is contiguous in the chain: {:?}",
            batch[0].payload
        );
        for (i, e) in batch.iter().enumerate() {
            assert_eq!(e.payload["i"], json!(i), "a batch keeps its order");
            assert_eq!(
                &all[(e.seq - 1) as usize],
                e,
                "what is stored is what append_all returned"
            );
        }
    }
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, all.len() as u64);
}

/// A batch that fails part-way (one event is refused) stores none of its events, leaves the
/// chain verifying, and spends no seq.
pub async fn append_all_is_all_or_nothing(j: Arc<dyn Journal>) {
    let first = j
        .append(ev(1, EventKind::Request, json!({"before": true})))
        .await
        .unwrap();
    // An `agent` event is refused on its own (it belongs with its principal) ...
    let err = j
        .append(ev(2, EventKind::Agent, json!({"name": "ghost"})).agent("ghost"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    // ... so a batch holding one fails part-way: the events before it must not stay behind.
    let batch = vec![
        ev(3, EventKind::Request, json!({"n": 1})).action("act_1"),
        ev(4, EventKind::Verdict, json!({"n": 2})).action("act_1"),
        ev(5, EventKind::Agent, json!({"name": "ghost"})).agent("ghost"),
        ev(6, EventKind::Applied, json!({"n": 4})).action("act_1"),
    ];
    let err = j.append_all(batch).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");

    let stored = j.read(EventQuery::default()).await.unwrap();
    assert_eq!(
        stored,
        vec![first.clone()],
        "no event of the refused batch is stored"
    );
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 1);
    assert_eq!(report.head, first.hash);

    // The chain goes on from where it was: no seq was spent on the refused batch.
    let next = j
        .append_all(vec![
            ev(7, EventKind::Request, json!({"n": 5})),
            ev(8, EventKind::Verdict, json!({"n": 6})),
        ])
        .await
        .unwrap();
    assert_eq!(next.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(next[0].prev_hash, first.hash);
    assert!(j.verify().await.unwrap().ok());
}

/// Reads filter by agent, action, change and kind, combined with AND, in either order.
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

    let seqs = |events: Vec<Event>| events.into_iter().map(|e| e.seq).collect::<Vec<_>>();
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

/// Paging by cursor walks every event once, forward and backward.
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

/// Concurrent appends all land, gapless, each writer's events in its order.
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

/// Payloads (tricky floats, key order, escapes) read back exactly and still hash the same.
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
        profile: None,
    }
}

const TOKEN_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const TOKEN_C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

/// A principal is registered, re-keyed and revoked, each with its event; the token hash
/// never reaches the journal.
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

/// Every principal is listed by name, revoked ones included, each as last written; a
/// re-key keeps the registration time.
pub async fn principals_are_listed_by_name(j: Arc<dyn Journal>) {
    assert_eq!(j.principals().await.unwrap(), Vec::<AgentRecord>::new());
    let put = |rec: AgentRecord, ts: i64| {
        let j = j.clone();
        async move {
            let name = rec.name.clone();
            j.put_principal(rec, ev(ts, EventKind::Agent, json!({"name": name})))
                .await
                .unwrap();
        }
    };
    put(agent("zeta-bot", TOKEN_A, 100), 100).await;
    let mut alice = agent("alice", TOKEN_B, 200);
    alice.kind = "operator".into();
    put(alice.clone(), 200).await;
    put(agent("cost-bot", TOKEN_C, 300), 300).await;
    // Re-key one, revoke another.
    put(
        agent("zeta-bot", "dddddddddddddddddddddddddddddddd", 400),
        400,
    )
    .await;
    let mut revoked = agent("cost-bot", TOKEN_C, 300);
    revoked.revoked = true;
    put(revoked.clone(), 500).await;

    let listed = j.principals().await.unwrap();
    let zeta = agent("zeta-bot", "dddddddddddddddddddddddddddddddd", 100);
    assert_eq!(listed, vec![alice, revoked, zeta]);
}

/// A refused principal write stores neither the principal nor its event.
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

fn change(id: &str, status: ChangeStatus, created_at: i64, updated_at: i64) -> ChangeRecord {
    ChangeRecord {
        id: id.into(),
        action_id: format!("act_{id}"),
        agent: "cost-bot".into(),
        status,
        record: json!({"target": "sim:service/checkout", "replicas": {"before": 4, "after": 2}}),
        created_at,
        updated_at,
    }
}

/// Appends and change records written in one call land in order, each answered on its
/// own: a change that clashes with a stored one (another action's id) fails alone, and
/// the rest is stored and chained.
pub async fn changes_written_together_fail_alone(j: Arc<dyn Journal>) {
    j.put_change(
        change("c1", ChangeStatus::Baking, 10, 10),
        ev(10, EventKind::Applied, json!({})),
    )
    .await
    .unwrap();
    let mut clash = change("c1", ChangeStatus::Settled, 20, 20);
    clash.action_id = "act_other".into();
    let (appended, written) = j
        .put_changes(
            vec![
                ev(20, EventKind::Request, json!({"n": 1})),
                ev(20, EventKind::Verdict, json!({"n": 1})),
            ],
            vec![
                (
                    change("c2", ChangeStatus::Baking, 20, 20),
                    ev(20, EventKind::Applying, json!({})),
                ),
                (clash, ev(20, EventKind::Settled, json!({}))),
                (
                    change("c3", ChangeStatus::Baking, 20, 20),
                    ev(20, EventKind::Applying, json!({})),
                ),
                // Refused before anything is written: no id.
                (
                    change(" ", ChangeStatus::Baking, 20, 20),
                    ev(20, EventKind::Applying, json!({})),
                ),
            ],
        )
        .await;
    let appended = appended.unwrap();
    assert_eq!(appended.len(), 2);
    assert_eq!(
        appended[1].seq,
        appended[0].seq + 1,
        "the batch is contiguous"
    );
    assert_eq!(written.len(), 4, "one answer per change");
    assert!(
        matches!(written[3], Err(StoreError::Invalid(_))),
        "{:?}",
        written[3]
    );
    let c2 = written[0].as_ref().unwrap();
    assert!(
        matches!(written[1], Err(StoreError::Conflict(_))),
        "{:?}",
        written[1]
    );
    let c3 = written[2].as_ref().unwrap();
    assert!(appended[1].seq < c2.seq && c2.seq < c3.seq, "in order");
    assert_eq!(c3.change_id.as_deref(), Some("c3"));
    assert_eq!(
        j.change("c1").await.unwrap().unwrap().status,
        ChangeStatus::Baking,
        "the clash changed nothing"
    );
    assert!(j.change("c2").await.unwrap().is_some());
    assert!(j.change("c3").await.unwrap().is_some());
    // Nothing refused: all of it at once.
    let (appended, written) = j
        .put_changes(
            vec![ev(30, EventKind::Request, json!({"n": 2}))],
            vec![
                (
                    change("c4", ChangeStatus::Baking, 30, 30),
                    ev(30, EventKind::Applying, json!({})),
                ),
                (
                    change("c2", ChangeStatus::Settled, 30, 30),
                    ev(30, EventKind::Settled, json!({})),
                ),
            ],
        )
        .await;
    let last_append = appended.unwrap()[0].seq;
    let seqs: Vec<i64> = written.into_iter().map(|w| w.unwrap().seq).collect();
    assert_eq!(seqs, [last_append + 1, last_append + 2]);
    assert_eq!(
        j.change("c2").await.unwrap().unwrap().status,
        ChangeStatus::Settled
    );
    // One change twice in a group: the later record wins and keeps the first's
    // `created_at`; another action's record of it in the same group is refused alone.
    let mut clash = change("c5", ChangeStatus::Settled, 45, 45);
    clash.action_id = "act_other".into();
    let (_, written) = j
        .put_changes(
            Vec::new(),
            vec![
                (
                    change("c5", ChangeStatus::Applying, 40, 40),
                    ev(40, EventKind::Applying, json!({})),
                ),
                (
                    change("c5", ChangeStatus::Baking, 41, 42),
                    ev(42, EventKind::Applied, json!({})),
                ),
                (clash, ev(45, EventKind::Settled, json!({}))),
            ],
        )
        .await;
    assert!(written[0].is_ok() && written[1].is_ok(), "{written:?}");
    assert!(
        matches!(written[2], Err(StoreError::Conflict(_))),
        "{:?}",
        written[2]
    );
    let c5 = j.change("c5").await.unwrap().unwrap();
    assert_eq!(c5.status, ChangeStatus::Baking);
    assert_eq!((c5.created_at, c5.updated_at), (40, 42));
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 10, "{report:?}");
}

/// Changes are inserted and updated with their events; refusals store nothing.
pub async fn changes_insert_and_update(j: Arc<dyn Journal>) {
    let e1 = j
        .put_change(
            change("c1", ChangeStatus::Baking, 10, 10),
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
        change("c2", ChangeStatus::Baking, 20, 20),
        ev(20, EventKind::Applied, json!({})),
    )
    .await
    .unwrap();
    j.put_change(
        change("c3", ChangeStatus::Baking, 5, 5),
        ev(30, EventKind::Applied, json!({})),
    )
    .await
    .unwrap();

    let baking = j.changes_with_status(ChangeStatus::Baking).await.unwrap();
    assert_eq!(
        baking.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec!["c3", "c1", "c2"],
        "oldest first"
    );
    assert_eq!(
        j.change("c1").await.unwrap(),
        Some(change("c1", ChangeStatus::Baking, 10, 10))
    );
    assert_eq!(j.change("nope").await.unwrap(), None);

    // Update: status and record move, the origin stays.
    let mut settled = change("c1", ChangeStatus::Settled, 999, 50);
    settled.record = json!({"settled_at": 50});
    j.put_change(settled, ev(50, EventKind::Settled, json!({})).change("c1"))
        .await
        .unwrap();
    let c1 = j.change("c1").await.unwrap().unwrap();
    assert_eq!(c1.status, ChangeStatus::Settled);
    assert_eq!(c1.record, json!({"settled_at": 50}));
    assert_eq!(c1.created_at, 10);
    assert_eq!(c1.updated_at, 50);
    assert_eq!(
        j.changes_with_status(ChangeStatus::Baking)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        vec!["c3", "c2"]
    );
    assert_eq!(
        j.changes_with_status(ChangeStatus::Settled)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        j.changes_with_status(ChangeStatus::Reverted)
            .await
            .unwrap()
            .is_empty()
    );

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
            change("c1", ChangeStatus::Reverted, 1, 60),
            ev(60, EventKind::Reverted, json!({})).change("c2"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let mut hijack = change("c1", ChangeStatus::Reverted, 1, 60);
    hijack.action_id = "act_other".into();
    let err = j
        .put_change(hijack, ev(60, EventKind::Reverted, json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(j.read(EventQuery::default()).await.unwrap().len(), before);
    assert_eq!(
        j.change("c1").await.unwrap().unwrap().status,
        ChangeStatus::Settled
    );
    assert!(j.verify().await.unwrap().ok());
}

/// A checkpoint is stored only when it signs the head it directly follows, only on its own,
/// and the chain verifies with it.
pub async fn checkpoints_sign_the_head_they_follow(j: Arc<dyn Journal>) {
    let signer = crate::CheckpointSigner::from_seed(&[1; 32]);
    let empty = signer.sign(0, GENESIS, 1, "interval");
    let first = j.append(empty.to_event().unwrap()).await.unwrap();
    assert_eq!((first.seq, first.kind), (1, EventKind::Checkpoint));
    let e = j
        .append(ev(2, EventKind::Request, json!({"n": 2})))
        .await
        .unwrap();
    // Stale: it signs the head before `e`.
    let stale = signer.sign(1, &first.hash, 3, "interval");
    let err = j.append(stale.to_event().unwrap()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = j
        .append_all(vec![
            ev(3, EventKind::Request, json!({})),
            signer.sign(2, &e.hash, 3, "interval").to_event().unwrap(),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let bad = NewEvent::new(4, EventKind::Checkpoint, json!({"head_seq": 2}));
    let err = j.append(bad).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let cp = j
        .append(signer.sign(2, &e.hash, 5, "events").to_event().unwrap())
        .await
        .unwrap();
    assert_eq!(cp.seq, 3);
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 3);
}

/// The environment variable that names the throwaway PostgreSQL server the tests use, as a
/// URL of a database they may connect to (`scripts/test.sh` starts one with
/// `scripts/pg.sh` and sets it).
pub const POSTGRES_ENV: &str = "AIRLOCK_TEST_POSTGRES";

/// Creates a new, empty database on the test server named by [`POSTGRES_ENV`] and returns
/// its URL. Each call makes a database of its own, so tests never see each other's rows;
/// the server is thrown away whole when the tests end.
///
/// Panics with instructions when the variable is not set: a PostgreSQL test never passes
/// by skipping.
pub async fn postgres_database() -> String {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let admin = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_ENV} is not set: run the tests with scripts/test.sh, or start a \
             throwaway server with `scripts/pg.sh start DIR` and export {POSTGRES_ENV}=<the \
             URL it prints>"
        )
    });
    let name = format!(
        "airlock_t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let (base, _) = admin
        .split_once('?')
        .map_or((admin.as_str(), ""), |(b, q)| (b, q));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    format!("{root}/{name}")
}
