//! The alert outbox against a real receiver on loopback: a receiver that fails the first
//! deliveries gets the alert exactly once after retries, each attempt journaled; a receiver
//! down during a burst gets every alert once it is back; a burst bigger than the journal's
//! feed loses none; alerts queued and never delivered before a restart are delivered after
//! it; a delivery that keeps failing is given up loudly. Backoffs are a few milliseconds.
//!
//! Regression tests for "alert delivery has no retry and drops alerts when it falls
//! behind" (an outside review of alerting).
#![cfg(test)]

use airlock_core::slo::NoSignals;
use airlock_core::{Event, EventKind, ManualClock, NewEvent, PolicyEngine};
use airlock_gate::{Gate, GateConfig, Notifying};
use airlock_store::{EventQuery, Journal, SqliteJournal};
use airlock_watch::alerts::{AlertConfig, AlertKind, Alerter, DeliveryOutcome, run};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600_000;

/// A webhook receiver that refuses (503) its first `fail_first` posts and every post while
/// `down`, and keeps the bodies it accepted.
#[derive(Default)]
struct Receiver {
    fail_first: usize,
    down: AtomicBool,
    posts: AtomicUsize,
    accepted: Mutex<Vec<Value>>,
}

impl Receiver {
    async fn start(self) -> (Arc<Self>, String) {
        let me = Arc::new(self);
        let state = me.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
                let state = state.clone();
                async move {
                    let n = state.posts.fetch_add(1, Ordering::SeqCst);
                    if n < state.fail_first || state.down.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    state.accepted.lock().unwrap().push(v);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (me, url)
    }

    /// The `change_id` label of every alert accepted, in order.
    fn changes(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["labels"]["change_id"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn receiver(url: &str, max_attempts: u32) -> AlertConfig {
    AlertConfig {
        name: "pager".into(),
        kind: AlertKind::Webhook,
        url: url.to_string(),
        headers: BTreeMap::new(),
        timeout_ms: 2000,
        revert_alert_s: 3600,
        // No re-sends during a test: only the alerts the events raise.
        resend_s: 3600,
        retry_min_ms: 5,
        retry_max_ms: 40,
        max_attempts,
        max_age_s: 3600,
    }
}

struct Outbox {
    _dir: tempfile::TempDir,
    journal: Arc<Notifying>,
    gate: Arc<Gate>,
    clock: ManualClock,
}

impl Outbox {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let store: Arc<dyn Journal> =
            Arc::new(SqliteJournal::open(path.to_str().unwrap()).await.unwrap());
        let journal = Arc::new(Notifying::new(store));
        let clock = ManualClock::new(START);
        let gate = Arc::new(Gate::new(
            journal.clone() as Arc<dyn Journal>,
            Vec::new(),
            // No signals: the gate is here for its kill switch and breakers only.
            Arc::new(NoSignals),
            Arc::new(PolicyEngine::default_pack().unwrap()),
            Arc::new(clock.clone()),
            GateConfig::default(),
        ));
        Self {
            _dir: dir,
            journal,
            gate,
            clock,
        }
    }

    /// Starts an alerter over the journal; stop it with the returned sender.
    fn start(
        &self,
        config: AlertConfig,
        counted: Arc<Mutex<Vec<DeliveryOutcome>>>,
    ) -> (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let alerter = Alerter::new(
            vec![config],
            self.journal.clone(),
            Arc::new(self.clock.clone()),
        )
        .on_outcome(move |_, o| counted.lock().unwrap().push(o));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(
            alerter,
            self.gate.clone(),
            self.journal.subscribe_at(),
            stopped,
        ));
        (stop, task)
    }

    /// A revert of change `chg_{i}`: each raises its own alert.
    fn revert(i: usize) -> NewEvent {
        NewEvent::new(
            START,
            EventKind::Reverted,
            json!({"reason": "bake breach", "by": "airlock"}),
        )
        .agent("bot")
        .change(&format!("chg_{i}"))
    }

    async fn alerts(&self) -> Vec<Event> {
        self.journal
            .read(EventQuery {
                kind: Some(EventKind::Alert),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// The alert events in delivery state `state`.
    async fn in_state(&self, state: &str) -> Vec<Event> {
        self.alerts()
            .await
            .into_iter()
            .filter(|e| e.payload["delivery"] == state)
            .collect()
    }

    /// Waits (polling the journal) until `n` alert events are in `state`.
    async fn until(&self, state: &str, n: usize) {
        for _ in 0..1000 {
            if self.in_state(state).await.len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all: Vec<Value> = self.alerts().await.into_iter().map(|e| e.payload).collect();
        panic!("never {n} `{state}` alert events: {all:#?}");
    }
}

async fn stop(
    (stop, task): (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
) {
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_receiver_failing_the_first_deliveries_gets_the_alert_once_after_retries() {
    let o = Outbox::new().await;
    let (rx, url) = Receiver {
        fail_first: 3,
        ..Default::default()
    }
    .start()
    .await;
    let counted = Arc::new(Mutex::new(Vec::new()));
    let alerter = o.start(receiver(&url, 10), counted.clone());
    o.journal.append(Outbox::revert(1)).await.unwrap();
    o.until("delivered", 1).await;
    stop(alerter).await;

    assert_eq!(rx.changes(), ["chg_1"], "delivered exactly once");
    assert_eq!(
        rx.posts.load(Ordering::SeqCst),
        4,
        "three refusals, then one"
    );
    // The story of the delivery, on the change: queued before the first attempt, each
    // failed attempt, the outcome.
    let story: Vec<(String, Value, Value)> = o
        .alerts()
        .await
        .iter()
        .filter(|e| e.change_id.as_deref() == Some("chg_1"))
        .map(|e| {
            (
                e.payload["delivery"].as_str().unwrap().to_string(),
                e.payload["attempts"].clone(),
                e.payload["ok"].clone(),
            )
        })
        .collect();
    let want = [
        ("queued", Value::Null, Value::Null),
        ("retrying", json!(1), json!(false)),
        ("retrying", json!(2), json!(false)),
        ("retrying", json!(3), json!(false)),
        ("delivered", json!(4), json!(true)),
    ];
    assert_eq!(
        story,
        want.map(|(d, a, ok)| (d.to_string(), a, ok)),
        "{story:#?}"
    );
    let queued = &o.in_state("queued").await[0];
    let retry = &o.in_state("retrying").await[0];
    assert_eq!(retry.payload["queued_seq"], queued.seq);
    assert_eq!(
        retry.payload["error"],
        "pager answered 503 Service Unavailable"
    );
    assert!(
        retry.payload["retry_in_ms"]
            .as_u64()
            .is_some_and(|ms| (5..=10).contains(&ms))
    );
    assert_eq!(
        *counted.lock().unwrap(),
        [
            DeliveryOutcome::Retried,
            DeliveryOutcome::Retried,
            DeliveryOutcome::Retried,
            DeliveryOutcome::Delivered
        ]
    );
}

#[tokio::test]
async fn a_receiver_down_during_a_burst_gets_every_alert_once_it_is_back() {
    let o = Outbox::new().await;
    let (rx, url) = Receiver::default().start().await;
    rx.down.store(true, Ordering::SeqCst);
    let alerter = o.start(receiver(&url, 1000), Arc::default());
    for i in 0..20 {
        o.journal.append(Outbox::revert(i)).await.unwrap();
    }
    o.until("queued", 20).await;
    o.until("retrying", 3).await;
    assert!(rx.changes().is_empty());
    rx.down.store(false, Ordering::SeqCst);
    o.until("delivered", 20).await;
    stop(alerter).await;
    let want: Vec<String> = (0..20).map(|i| format!("chg_{i}")).collect();
    assert_eq!(rx.changes(), want, "every alert once, in order");
    assert!(o.in_state("given_up").await.is_empty());
}

#[tokio::test]
async fn a_burst_bigger_than_the_journal_feed_loses_no_alert() {
    let o = Outbox::new().await;
    let (rx, url) = Receiver::default().start().await;
    let alerter = o.start(receiver(&url, 10), Arc::default());
    // Three reverts, then more events than the feed holds, stored and published at once:
    // the alerter's feed overflows and drops the oldest, the reverts.
    let mut burst: Vec<NewEvent> = (0..3).map(Outbox::revert).collect();
    burst.extend(
        (0..4200).map(|i| NewEvent::new(START, EventKind::Applied, json!({"n": i})).agent("bot")),
    );
    o.journal.append_all(burst).await.unwrap();
    o.until("delivered", 3).await;
    stop(alerter).await;
    assert_eq!(rx.changes(), ["chg_0", "chg_1", "chg_2"]);
}

#[tokio::test]
async fn alerts_queued_but_not_delivered_before_a_restart_are_delivered_after_it() {
    let o = Outbox::new().await;
    let (rx, url) = Receiver::default().start().await;
    rx.down.store(true, Ordering::SeqCst);
    let first = o.start(receiver(&url, 1000), Arc::default());
    for i in 0..3 {
        o.journal.append(Outbox::revert(i)).await.unwrap();
    }
    o.until("queued", 3).await;
    o.until("retrying", 1).await;
    stop(first).await;
    assert!(rx.changes().is_empty());

    // The receiver is back; a new alerter over the same journal picks up the outbox.
    rx.down.store(false, Ordering::SeqCst);
    let second = o.start(receiver(&url, 1000), Arc::default());
    o.until("delivered", 3).await;
    // One more alert after the restart goes through as usual.
    o.journal.append(Outbox::revert(3)).await.unwrap();
    o.until("delivered", 4).await;
    stop(second).await;
    assert_eq!(rx.changes(), ["chg_0", "chg_1", "chg_2", "chg_3"]);
    assert_eq!(
        o.in_state("queued").await.len(),
        4,
        "the restart queued nothing twice"
    );
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_is_given_up_loudly() {
    let o = Outbox::new().await;
    let (rx, url) = Receiver::default().start().await;
    rx.down.store(true, Ordering::SeqCst);
    let counted = Arc::new(Mutex::new(Vec::new()));
    let alerter = o.start(receiver(&url, 3), counted.clone());
    o.journal.append(Outbox::revert(7)).await.unwrap();
    o.until("given_up", 1).await;
    stop(alerter).await;
    let given_up = &o.in_state("given_up").await[0];
    assert_eq!(given_up.payload["attempts"], 3, "{given_up:?}");
    assert_eq!(given_up.payload["ok"], false);
    assert_eq!(given_up.change_id.as_deref(), Some("chg_7"));
    assert!(
        given_up.payload["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("3 attempts failed; last error: pager answered 503")),
        "{given_up:?}"
    );
    assert_eq!(rx.posts.load(Ordering::SeqCst), 3);
    assert_eq!(
        *counted.lock().unwrap(),
        [
            DeliveryOutcome::Retried,
            DeliveryOutcome::Retried,
            DeliveryOutcome::GivenUp
        ]
    );
}
