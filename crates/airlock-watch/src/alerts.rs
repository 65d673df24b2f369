//! Alerts to on-call: Alertmanager's v2 API and generic JSON webhooks. The sender follows
//! the journal: a revert, a breaker trip, a change that needs attention and the kill switch
//! raise alerts; a breaker reset, the kill switch turned off and a needs-attention change
//! later reverted resolve them. Active alerts are re-sent before Alertmanager would time
//! them out.
//!
//! Delivery goes through a durable outbox that lives in the journal (`alert` events, their
//! `delivery` field saying how far each one got): an alert is journaled `queued`, for every
//! receiver, before any delivery is attempted; each receiver's sender delivers its queue in
//! order, retrying with exponential backoff and seeded jitter, and journals every failed
//! attempt (`retrying`) and the final outcome (`delivered`, or `given_up` after
//! `max_attempts` or `max_age_s`, which is logged as an error and counted). The sender reads
//! what to do from the journal, not from a channel, so it never drops an event when it falls
//! behind, holds at most a page of deliveries in memory, and after a restart sends again
//! what was queued and never delivered.

use airlock_core::{Clock, Event, EventKind, NewEvent};
use airlock_gate::Gate;
use airlock_gate::{FeedStart, Notifying};
use airlock_store::{EventQuery, Journal, StoreError};
use backon::{BackoffBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// A receiver's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// Alertmanager's `POST /api/v2/alerts`; `url` is its base URL.
    Alertmanager,
    /// A JSON `POST` of each alert to `url`.
    Webhook,
}

/// One `[[alert]]` receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The receiver's name, in journal `alert` events.
    pub name: String,
    pub kind: AlertKind,
    /// Alertmanager's base URL, or the webhook's URL.
    pub url: String,
    /// HTTP headers for every send (for example an `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest one send may take, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// How long a revert's alert stays firing (it is an event, not a condition), seconds.
    #[serde(default = "default_revert_alert")]
    pub revert_alert_s: u64,
    /// How often active alerts are re-sent, seconds.
    #[serde(default = "default_resend")]
    pub resend_s: u64,
    /// Delay before the first retry of a failed delivery, in milliseconds; it doubles with
    /// each attempt (plus up to as much again of jitter), up to `retry_max_ms`.
    #[serde(default = "default_retry_min")]
    pub retry_min_ms: u64,
    /// Longest delay between two attempts of one delivery, in milliseconds (before jitter).
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// Attempts of one delivery before it is given up (journaled `given_up`, logged as an
    /// error, counted in `airlock_alert_deliveries_total{outcome="given_up"}`).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Oldest a queued alert may be and still be sent, in seconds; an older one is given up
    /// the same loud way.
    #[serde(default = "default_max_age")]
    pub max_age_s: u64,
}

fn default_timeout() -> u64 {
    2000
}
fn default_revert_alert() -> u64 {
    3600
}
fn default_resend() -> u64 {
    60
}
fn default_retry_min() -> u64 {
    1000
}
fn default_retry_max() -> u64 {
    60_000
}
fn default_max_attempts() -> u32 {
    10
}
fn default_max_age() -> u64 {
    3600
}

impl AlertConfig {
    /// Problems, each naming its field.
    pub fn problems(&self, i: usize) -> Vec<String> {
        let at = format!("alert[{i}]");
        let mut p = Vec::new();
        if self.name.trim().is_empty() {
            p.push(format!("{at}.name: must not be empty"));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            p.push(format!("{at}.url: `{}` is not an http(s) URL", self.url));
        }
        if self.timeout_ms == 0 {
            p.push(format!("{at}.timeout_ms: must be above 0"));
        }
        if self.resend_s == 0 {
            p.push(format!("{at}.resend_s: must be above 0"));
        }
        if self.retry_min_ms == 0 {
            p.push(format!("{at}.retry_min_ms: must be above 0"));
        }
        if self.retry_max_ms < self.retry_min_ms {
            p.push(format!(
                "{at}.retry_max_ms: must be at least retry_min_ms ({})",
                self.retry_min_ms
            ));
        }
        if self.max_attempts == 0 {
            p.push(format!("{at}.max_attempts: must be at least 1"));
        }
        if self.max_age_s == 0 {
            p.push(format!("{at}.max_age_s: must be above 0"));
        }
        p
    }

    /// The backoff between attempts of the delivery queued at `seq`: exponential, with
    /// jitter seeded by the delivery and the receiver, so a run can be replayed.
    fn backoff(&self, seq: i64) -> impl Iterator<Item = Duration> + use<> {
        let mut h = blake3::Hasher::new();
        h.update(&seq.to_le_bytes());
        h.update(self.name.as_bytes());
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&h.finalize().as_bytes()[..8]);
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.retry_min_ms))
            .with_max_delay(Duration::from_millis(
                self.retry_max_ms.max(self.retry_min_ms),
            ))
            .with_factor(2.0)
            .with_jitter()
            .with_jitter_seed(u64::from_le_bytes(seed))
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .build()
    }
}

/// One alert: its identity is its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    /// Firing until then; in the past means resolved.
    pub ends_at: Option<i64>,
    /// The change it is about, for the journal.
    pub change_id: Option<String>,
    pub agent: Option<String>,
}

impl Alert {
    fn new(name: &str, summary: String, now: i64) -> Self {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".into(), name.to_string());
        labels.insert("source".into(), "airlock".into());
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".into(), summary);
        Self {
            labels,
            annotations,
            starts_at: now,
            ends_at: None,
            change_id: None,
            agent: None,
        }
    }
    fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
    fn key(&self) -> String {
        key_of(&self.labels)
    }
    fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// An alert's identity: its labels, as one string.
fn key_of(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// What one journal event means for alerts: alerts to raise, label sets to resolve.
pub fn on_event(ev: &Event, now: i64) -> (Vec<Alert>, Vec<BTreeMap<String, String>>) {
    let p = &ev.payload;
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let agent = ev.agent.clone().unwrap_or_default();
    let change = ev.change_id.clone().unwrap_or_default();
    let attention = |change: &str| {
        Alert::new("AirlockChangeNeedsAttention", String::new(), now)
            .label("change_id", change)
            .label("severity", "critical")
            .labels
    };
    match ev.kind {
        EventKind::Reverted => {
            let mut a = Alert::new(
                "AirlockChangeReverted",
                format!("change {change} by {agent} was reverted: {}", s("reason")),
                ev.ts,
            )
            .label("change_id", &change)
            .label("agent", &agent)
            .label("severity", "warning");
            a.change_id = Some(change.clone());
            a.agent = Some(agent);
            // A revert of a change that needed attention clears that alert.
            (vec![a], vec![attention(&change)])
        }
        EventKind::NeedsAttention => {
            let mut a = Alert::new(
                "AirlockChangeNeedsAttention",
                format!(
                    "change {change} by {agent} could not be reverted: {}",
                    s("reason")
                ),
                ev.ts,
            )
            .label("change_id", &change)
            .label("severity", "critical");
            a.change_id = Some(change);
            a.agent = Some(agent);
            (vec![a], vec![])
        }
        EventKind::Suspects => {
            let mut a = Alert::new(
                "AirlockRegressionSuspects",
                format!(
                    "`{}` regressed after its changes settled ({}); top suspect: change {change} by {agent}",
                    s("service"),
                    s("rule")
                ),
                ev.ts,
            )
            .label("service", &s("service"))
            .label("change_id", &change)
            .label("severity", "warning");
            a.change_id = Some(change);
            a.agent = Some(agent);
            (vec![a], vec![])
        }
        EventKind::Breaker => {
            let a = Alert::new(
                "AirlockBreakerOpen",
                format!("the breaker of agent {agent} is open: {}", s("reason")),
                ev.ts,
            )
            .label("agent", &agent)
            .label("severity", "warning");
            if s("state") == "open" {
                let mut a = a;
                a.agent = Some(agent);
                (vec![a], vec![])
            } else {
                (vec![], vec![a.labels])
            }
        }
        EventKind::Killswitch => {
            let a = Alert::new(
                "AirlockKillSwitchOn",
                format!(
                    "the kill switch is on (by {}): every mutation is denied",
                    s("by")
                ),
                ev.ts,
            )
            .label("severity", "critical");
            if p.get("on") == Some(&json!(true)) {
                (vec![a], vec![])
            } else {
                (vec![], vec![a.labels])
            }
        }
        _ => (vec![], vec![]),
    }
}

/// What became of one attempt or of one delivery, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver accepted the alert.
    Delivered,
    /// An attempt failed; another follows after a backoff.
    Retried,
    /// The delivery was given up: `max_attempts` failed, or it got older than `max_age_s`.
    GivenUp,
    /// A re-send of an active alert that waited so long that a newer one follows it.
    Superseded,
}

impl DeliveryOutcome {
    /// `delivered`, `retried`, `given_up` or `superseded`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retried => "retried",
            DeliveryOutcome::GivenUp => "given_up",
            DeliveryOutcome::Superseded => "superseded",
        }
    }
}

/// Told of every delivery outcome, with the receiver's name (the server counts them).
pub type OutcomeHook = Arc<dyn Fn(&str, DeliveryOutcome) + Send + Sync>;

/// Deliveries a sender holds in memory at once; the rest wait in the journal.
const PAGE: u32 = 64;
/// Journal events read per page while following the journal.
const FOLLOW_PAGE: u32 = 256;
/// How long a sender or the follower waits before trying the journal again after it failed.
const JOURNAL_RETRY: Duration = Duration::from_secs(1);

/// Turns journal events into alerts, queues them in the journal for every receiver, and
/// keeps the active ones alive; one sender per receiver delivers them (see [`run`]).
pub struct Alerter {
    receivers: Vec<AlertConfig>,
    http: reqwest::Client,
    journal: Arc<Notifying>,
    clock: Arc<dyn Clock>,
    active: BTreeMap<String, Alert>,
    on_outcome: Option<OutcomeHook>,
    /// Wakes the receivers' senders when something was queued.
    wake: Arc<tokio::sync::Notify>,
}

impl Alerter {
    pub fn new(
        receivers: Vec<AlertConfig>,
        journal: Arc<Notifying>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            receivers,
            http: reqwest::Client::new(),
            journal,
            clock,
            active: BTreeMap::new(),
            on_outcome: None,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Calls `hook` with every delivery outcome (the server counts them in `/metrics`).
    pub fn on_outcome(
        mut self,
        hook: impl Fn(&str, DeliveryOutcome) + Send + Sync + 'static,
    ) -> Self {
        self.on_outcome = Some(Arc::new(hook));
        self
    }

    fn firing_until(&self, a: &Alert, now: i64) -> i64 {
        let resend = self
            .receivers
            .iter()
            .map(|r| r.resend_s)
            .min()
            .unwrap_or(60) as i64;
        match a.name() {
            "AirlockChangeReverted" => {
                let hold = self
                    .receivers
                    .iter()
                    .map(|r| r.revert_alert_s)
                    .max()
                    .unwrap_or(3600) as i64;
                a.starts_at + hold * 1000
            }
            // Conditions: firing a few re-sends ahead, renewed while they hold.
            _ => now + resend * 3000,
        }
    }

    /// The `queued` events of one alert, one per receiver.
    fn queue(
        &self,
        a: &Alert,
        resolved: bool,
        source_seq: Option<i64>,
        resend: bool,
        now: i64,
    ) -> Vec<NewEvent> {
        let status = if resolved { "resolved" } else { "firing" };
        self.receivers
            .iter()
            .map(|r| {
                let ev = NewEvent::new(
                    now,
                    EventKind::Alert,
                    json!({"alert": a.name(), "status": status, "receiver": r.name,
                           "labels": a.labels, "annotations": a.annotations,
                           "starts_at": a.starts_at, "ends_at": a.ends_at,
                           "delivery": "queued", "source_seq": source_seq, "resend": resend}),
                );
                about(ev, a.change_id.as_deref(), a.agent.as_deref())
            })
            .collect()
    }

    /// Journals queued deliveries, all or none, and wakes the senders.
    async fn enqueue(&self, batch: Vec<NewEvent>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        Journal::append_all(self.journal.as_ref(), batch).await?;
        self.wake.notify_waiters();
        Ok(())
    }

    /// Handles one journal event: the alerts it raises and resolves are queued for every
    /// receiver before this returns. An error means nothing was queued for it.
    pub async fn handle(&mut self, ev: &Event) -> Result<(), StoreError> {
        let now = self.clock.now();
        let (raise, clear) = on_event(ev, now);
        let mut batch = Vec::new();
        let mut resolved = Vec::new();
        for labels in clear {
            let key = key_of(&labels);
            if let Some(mut a) = self.active.get(&key).cloned() {
                a.ends_at = Some(now);
                batch.extend(self.queue(&a, true, Some(ev.seq), false, now));
                resolved.push(key);
            }
        }
        let mut raised = Vec::new();
        for mut a in raise {
            a.ends_at = Some(self.firing_until(&a, now));
            batch.extend(self.queue(&a, false, Some(ev.seq), false, now));
            if a.name() != "AirlockChangeReverted" {
                raised.push(a);
            }
        }
        self.enqueue(batch).await?;
        for key in resolved {
            self.active.remove(&key);
        }
        for a in raised {
            self.active.insert(a.key(), a);
        }
        Ok(())
    }

    /// Re-sends active conditions so Alertmanager keeps them firing.
    pub async fn resend(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut batch = Vec::new();
        let mut renewed = Vec::new();
        for a in self.active.values() {
            let mut a = a.clone();
            a.ends_at = Some(self.firing_until(&a, now));
            batch.extend(self.queue(&a, false, None, true, now));
            renewed.push(a);
        }
        self.enqueue(batch).await?;
        for a in renewed {
            self.active.insert(a.key(), a);
        }
        Ok(())
    }

    /// Raises alerts for conditions that already hold when the server starts.
    pub async fn restore(&mut self, gate: &Gate) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut raise = Vec::new();
        if gate.killswitch().await {
            raise.push(
                Alert::new(
                    "AirlockKillSwitchOn",
                    "the kill switch is on: every mutation is denied".into(),
                    now,
                )
                .label("severity", "critical"),
            );
        }
        for (agent, why) in gate.open_breakers().await {
            let mut a = Alert::new(
                "AirlockBreakerOpen",
                format!("the breaker of agent {agent} is open: {why}"),
                now,
            )
            .label("agent", &agent)
            .label("severity", "warning");
            a.agent = Some(agent);
            raise.push(a);
        }
        let mut batch = Vec::new();
        for a in &mut raise {
            a.ends_at = Some(self.firing_until(a, now));
            batch.extend(self.queue(a, false, None, false, now));
        }
        self.enqueue(batch).await?;
        for a in raise {
            self.active.insert(a.key(), a);
        }
        Ok(())
    }

    /// The oldest event an alert is still raised for, in ms since the epoch.
    fn oldest(&self, now: i64) -> i64 {
        let max_age = self
            .receivers
            .iter()
            .map(|r| r.max_age_s)
            .max()
            .unwrap_or(3600);
        now - max_age as i64 * 1000
    }

    /// Handles one event the follower reached; events older than every receiver's
    /// `max_age_s` (met when catching up after a long stop) are not alerted on, loudly.
    async fn follow(&mut self, ev: &Event) -> Result<(), StoreError> {
        if ev.kind == EventKind::Alert {
            return Ok(());
        }
        if ev.ts < self.oldest(self.clock.now()) {
            let (raise, clear) = on_event(ev, ev.ts);
            if !raise.is_empty() || !clear.is_empty() {
                tracing::error!(seq = ev.seq, kind = %ev.kind, "an event older than every receiver's max_age_s was never alerted on; it is not sent now");
            }
            return Ok(());
        }
        self.handle(ev).await
    }

    /// Reads and handles the journal's events after `cursor`, moving it past each one
    /// handled; stops at the first that cannot be queued (it is tried again later).
    async fn catch_up(&mut self, cursor: &mut i64) -> Result<(), StoreError> {
        loop {
            let page = Journal::read(
                self.journal.as_ref(),
                EventQuery {
                    after_seq: Some(*cursor),
                    limit: Some(FOLLOW_PAGE),
                    ..Default::default()
                },
            )
            .await?;
            if page.is_empty() {
                return Ok(());
            }
            for ev in &page {
                self.follow(ev).await?;
                *cursor = ev.seq;
            }
        }
    }

    /// Where following the journal starts: after the last event an alert was queued for,
    /// or at the journal's head when none ever was (nothing from before is sent; `true`).
    async fn start_cursor(&self) -> Result<(i64, bool), StoreError> {
        let mut after = None;
        loop {
            let page = Journal::read(
                self.journal.as_ref(),
                EventQuery {
                    kind: Some(EventKind::Alert),
                    after_seq: after,
                    limit: Some(FOLLOW_PAGE),
                    descending: true,
                    ..Default::default()
                },
            )
            .await?;
            let Some(last) = page.last() else { break };
            if let Some(seq) = page
                .iter()
                .find_map(|e| e.payload.get("source_seq").and_then(Value::as_i64))
            {
                return Ok((seq, false));
            }
            after = Some(last.seq);
        }
        // The head as published: an event stored but not yet published when the head is read
        // would count as old here and be skipped when it arrives on the feed.
        Ok((self.journal.published_head().await?, true))
    }

    fn senders(&self) -> Vec<Sender> {
        self.receivers
            .iter()
            .map(|r| Sender {
                receiver: r.clone(),
                http: self.http.clone(),
                journal: self.journal.clone(),
                clock: self.clock.clone(),
                on_outcome: self.on_outcome.clone(),
                wake: self.wake.clone(),
            })
            .collect()
    }
}

/// Sets the subject ids of an alert event.
fn about(mut ev: NewEvent, change: Option<&str>, agent: Option<&str>) -> NewEvent {
    if let Some(c) = change {
        ev = ev.change(c);
    }
    if let Some(a) = agent {
        ev = ev.agent(a);
    }
    ev
}

/// One alert queued for one receiver, read back from its `queued` event.
#[derive(Debug, Clone)]
struct Queued {
    /// The `queued` event's seq: the delivery's identity.
    seq: i64,
    /// When it was queued.
    ts: i64,
    resolved: bool,
    resend: bool,
    alert: Alert,
}

impl Queued {
    /// The delivery a `queued` alert event of `receiver` holds; `None` for any other event.
    fn of(ev: &Event, receiver: &str) -> Option<Result<Self, String>> {
        let p = &ev.payload;
        let s = |k: &str| p.get(k).and_then(Value::as_str);
        if ev.kind != EventKind::Alert
            || s("delivery") != Some("queued")
            || s("receiver") != Some(receiver)
        {
            return None;
        }
        let map = |k: &str| {
            serde_json::from_value::<BTreeMap<String, String>>(
                p.get(k).cloned().unwrap_or(Value::Null),
            )
            .map_err(|e| format!("the queued alert's {k} cannot be read: {e}"))
        };
        Some((|| {
            Ok(Self {
                seq: ev.seq,
                ts: ev.ts,
                resolved: s("status") == Some("resolved"),
                resend: p.get("resend").and_then(Value::as_bool) == Some(true),
                alert: Alert {
                    labels: map("labels")?,
                    annotations: map("annotations")?,
                    starts_at: p.get("starts_at").and_then(Value::as_i64).unwrap_or(ev.ts),
                    ends_at: p.get("ends_at").and_then(Value::as_i64),
                    change_id: ev.change_id.clone(),
                    agent: ev.agent.clone(),
                },
            })
        })())
    }
}

/// The seq of the `queued` event a final `alert` event (delivered, given up, superseded)
/// closes, for `receiver`.
fn closes(ev: &Event, receiver: &str) -> Option<i64> {
    let p = &ev.payload;
    let s = |k: &str| p.get(k).and_then(Value::as_str);
    let last = matches!(s("delivery"), Some("delivered" | "given_up" | "superseded"));
    (ev.kind == EventKind::Alert && last && s("receiver") == Some(receiver))
        .then(|| p.get("queued_seq").and_then(Value::as_i64))
        .flatten()
}

/// One receiver's sender: delivers its queue in order, with retries.
struct Sender {
    receiver: AlertConfig,
    http: reqwest::Client,
    journal: Arc<Notifying>,
    clock: Arc<dyn Clock>,
    on_outcome: Option<OutcomeHook>,
    wake: Arc<tokio::sync::Notify>,
}

/// Waits `d`, or until `stop`; false when stopped.
async fn pause(d: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.changed() => false,
    }
}

impl Sender {
    fn name(&self) -> &str {
        &self.receiver.name
    }

    fn counted(&self, outcome: DeliveryOutcome) {
        if let Some(hook) = &self.on_outcome {
            hook(self.name(), outcome);
        }
    }

    /// Delivers until `stop`: first what an earlier run queued and never finished, then
    /// what is queued from now on, read from the journal a page at a time.
    async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let (mut queue, mut cursor) = loop {
            match self.pending().await {
                Ok(found) => break found,
                Err(e) => {
                    tracing::error!(receiver = %self.name(), error = %e, "cannot read the alert outbox from the journal");
                    if !pause(JOURNAL_RETRY, &mut stop).await {
                        return;
                    }
                }
            }
        };
        if !queue.is_empty() {
            tracing::info!(receiver = %self.name(), pending = queue.len(), "sending alerts queued before the restart");
        }
        loop {
            if *stop.borrow() {
                return;
            }
            // Registered before reading, so a wake between the read and the wait counts.
            let woken = self.wake.notified();
            if queue.is_empty() {
                match self.next_page(&mut cursor).await {
                    Ok(page) => queue = page,
                    Err(e) => {
                        tracing::error!(receiver = %self.name(), error = %e, "cannot read the alert outbox from the journal");
                        if !pause(JOURNAL_RETRY, &mut stop).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let Some(next) = queue.pop_front() else {
                tokio::select! {
                    _ = woken => continue,
                    _ = stop.changed() => return,
                }
            };
            if !self.deliver(next, &mut stop).await {
                return;
            }
        }
    }

    /// The deliveries queued for this receiver and not finished, oldest first, and the seq
    /// of the last `alert` event read.
    async fn pending(&self) -> Result<(VecDeque<Result<Queued, (i64, String)>>, i64), StoreError> {
        let mut open: BTreeMap<i64, Result<Queued, (i64, String)>> = BTreeMap::new();
        let mut cursor = 0;
        loop {
            let page = self.alert_events(cursor, FOLLOW_PAGE).await?;
            let Some(last) = page.last() else { break };
            cursor = last.seq;
            for ev in &page {
                if let Some(q) = Queued::of(ev, self.name()) {
                    open.insert(ev.seq, q.map_err(|e| (ev.seq, e)));
                } else if let Some(seq) = closes(ev, self.name()) {
                    open.remove(&seq);
                }
            }
        }
        Ok((open.into_values().collect(), cursor))
    }

    /// The next deliveries queued for this receiver after `cursor` (at most a page).
    async fn next_page(
        &self,
        cursor: &mut i64,
    ) -> Result<VecDeque<Result<Queued, (i64, String)>>, StoreError> {
        let mut out = VecDeque::new();
        while out.is_empty() {
            let page = self.alert_events(*cursor, PAGE).await?;
            let Some(last) = page.last() else { break };
            *cursor = last.seq;
            out.extend(
                page.iter().filter_map(|ev| {
                    Queued::of(ev, self.name()).map(|q| q.map_err(|e| (ev.seq, e)))
                }),
            );
        }
        Ok(out)
    }

    async fn alert_events(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        Journal::read(
            self.journal.as_ref(),
            EventQuery {
                kind: Some(EventKind::Alert),
                after_seq: Some(after),
                limit: Some(limit),
                ..Default::default()
            },
        )
        .await
    }

    /// Journals `ev`, trying again until it is stored or `stop`; false when stopped (the
    /// delivery stays open in the journal and is finished after a restart).
    async fn record(&self, ev: NewEvent, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
        loop {
            match Journal::append(self.journal.as_ref(), ev.clone()).await {
                Ok(_) => return true,
                Err(e) => {
                    tracing::error!(receiver = %self.name(), error = %e, "cannot journal an alert delivery");
                    if !pause(JOURNAL_RETRY, stop).await {
                        return false;
                    }
                }
            }
        }
    }

    /// An `alert` event about delivery `q` in state `delivery`.
    fn outcome_event(
        &self,
        q: &Queued,
        delivery: &str,
        attempts: u32,
        error: Option<&str>,
        extra: Value,
    ) -> NewEvent {
        let mut payload = json!({
            "alert": q.alert.name(),
            "status": if q.resolved { "resolved" } else { "firing" },
            "receiver": self.name(),
            "labels": q.alert.labels,
            "delivery": delivery,
            "queued_seq": q.seq,
            "attempts": attempts,
            "ok": delivery == "delivered",
            "error": error,
        });
        if let (Some(p), Value::Object(more)) = (payload.as_object_mut(), extra) {
            p.extend(more);
        }
        about(
            NewEvent::new(self.clock.now(), EventKind::Alert, payload),
            q.alert.change_id.as_deref(),
            q.alert.agent.as_deref(),
        )
    }

    /// Delivers one queued alert: attempts with backoff until it is delivered or given up,
    /// journaling each failed attempt and the outcome. False when stopped first.
    async fn deliver(
        &self,
        q: Result<Queued, (i64, String)>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        let q = match q {
            Ok(q) => q,
            Err((seq, why)) => {
                tracing::error!(receiver = %self.name(), queued_seq = seq, error = %why, "a queued alert cannot be read; giving it up");
                self.counted(DeliveryOutcome::GivenUp);
                let ev = NewEvent::new(
                    self.clock.now(),
                    EventKind::Alert,
                    json!({"receiver": self.name(), "delivery": "given_up", "queued_seq": seq,
                           "attempts": 0, "ok": false, "error": why}),
                );
                return self.record(ev, stop).await;
            }
        };
        let r = &self.receiver;
        if q.resend && self.clock.now() - q.ts > r.resend_s as i64 * 1000 {
            // A re-send that waited longer than the re-send period: a newer one (or the
            // resolve) is queued behind it.
            self.counted(DeliveryOutcome::Superseded);
            let ev = self.outcome_event(&q, "superseded", 0, None, json!({}));
            return self.record(ev, stop).await;
        }
        let mut backoff = r.backoff(q.seq);
        let mut attempts = 0u32;
        let mut last_error: Option<String> = None;
        loop {
            let age_ms = self.clock.now() - q.ts;
            if age_ms > r.max_age_s as i64 * 1000 {
                let why = format!(
                    "queued {} s ago, longer than max_age_s ({}){}",
                    age_ms / 1000,
                    r.max_age_s,
                    last_error
                        .as_deref()
                        .map(|e| format!("; last error: {e}"))
                        .unwrap_or_default()
                );
                return self.give_up(&q, attempts, &why, stop).await;
            }
            attempts += 1;
            match self.post(&q).await {
                Ok(()) => {
                    self.counted(DeliveryOutcome::Delivered);
                    let ev = self.outcome_event(&q, "delivered", attempts, None, json!({}));
                    return self.record(ev, stop).await;
                }
                Err(e) => match backoff.next() {
                    None => {
                        let why = format!("{attempts} attempts failed; last error: {e}");
                        return self.give_up(&q, attempts, &why, stop).await;
                    }
                    Some(delay) => {
                        tracing::warn!(alert = q.alert.name(), receiver = %self.name(), attempt = attempts, error = %e, retry_in_ms = delay.as_millis() as u64, "alert not delivered; retrying");
                        self.counted(DeliveryOutcome::Retried);
                        let ev = self.outcome_event(
                            &q,
                            "retrying",
                            attempts,
                            Some(&e),
                            json!({"retry_in_ms": delay.as_millis() as u64}),
                        );
                        if !self.record(ev, stop).await || !pause(delay, stop).await {
                            return false;
                        }
                        last_error = Some(e);
                    }
                },
            }
        }
    }

    /// Gives a delivery up, loudly: an error in the log, a count, a `given_up` event.
    async fn give_up(
        &self,
        q: &Queued,
        attempts: u32,
        why: &str,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        tracing::error!(alert = q.alert.name(), receiver = %self.name(), attempts, error = %why, "ALERT NOT DELIVERED: giving up");
        self.counted(DeliveryOutcome::GivenUp);
        let ev = self.outcome_event(q, "given_up", attempts, Some(why), json!({}));
        self.record(ev, stop).await
    }

    /// One attempt to hand the alert to the receiver.
    async fn post(&self, q: &Queued) -> Result<(), String> {
        let r = &self.receiver;
        let a = &q.alert;
        let status = if q.resolved { "resolved" } else { "firing" };
        let body = match r.kind {
            AlertKind::Alertmanager => json!([{
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": a.ends_at.map(rfc3339),
            }]),
            AlertKind::Webhook => json!({
                "status": status,
                "alert": a.name(),
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": a.ends_at.map(rfc3339),
            }),
        };
        let url = match r.kind {
            AlertKind::Alertmanager => format!("{}/api/v2/alerts", r.url.trim_end_matches('/')),
            AlertKind::Webhook => r.url.clone(),
        };
        let mut req = self
            .http
            .post(url)
            .timeout(Duration::from_millis(r.timeout_ms))
            .json(&body);
        for (k, v) in &r.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if airlock_core::failpoint::hit("alerts.send").is_some() {
            return Err(format!(
                "{} is unreachable: failpoint `alerts.send` fired",
                r.name
            ));
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("{} answered {}", r.name, resp.status())),
            Err(e) => Err(format!("{} is unreachable: {e}", r.name)),
        }
    }
}

/// Runs the alerter until `stop` turns true: one sender per receiver delivers the outbox,
/// and the alerter follows the journal from where it left off, queueing the alerts each
/// event raises or resolves. `events` only wakes it: it reads the journal itself, so a
/// burst that overflows the channel loses nothing.
pub async fn run(
    mut alerter: Alerter,
    gate: Arc<Gate>,
    feed: (tokio::sync::broadcast::Receiver<Event>, FeedStart),
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (mut events, start) = feed;
    let senders: Vec<_> = alerter
        .senders()
        .into_iter()
        .map(|s| tokio::spawn(s.run(stop.clone())))
        .collect();
    let mut cursor = loop {
        match alerter.start_cursor().await {
            Ok((c, true)) => {
                // Started at the head: what was published since subscribing is alerted on
                // too, even where the head already counts it.
                break match start {
                    FeedStart::After(seq) => seq.min(c),
                    FeedStart::Beginning => alerter
                        .journal
                        .first_published()
                        .map_or(c, |first| c.min(first - 1)),
                };
            }
            Ok((c, false)) => break c,
            Err(e) => {
                tracing::error!(error = %e, "the alerter cannot read the journal");
                if !pause(JOURNAL_RETRY, &mut stop).await {
                    return;
                }
            }
        }
    };
    if let Err(e) = alerter.restore(&gate).await {
        tracing::error!(error = %e, "cannot queue the alerts of conditions that hold at start");
    }
    let period = Duration::from_secs(
        alerter
            .receivers
            .iter()
            .map(|r| r.resend_s)
            .min()
            .unwrap_or(60),
    );
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    every.tick().await;
    // Behind the journal: catch up by reading it (at start, after a lag, after a failure).
    let mut behind = true;
    loop {
        if behind {
            match alerter.catch_up(&mut cursor).await {
                Ok(()) => behind = false,
                Err(e) => tracing::error!(error = %e, "cannot queue alerts; trying again"),
            }
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) if ev.seq <= cursor => {}
                Ok(ev) if ev.seq == cursor + 1 && !behind => match alerter.follow(&ev).await {
                    Ok(()) => cursor = ev.seq,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot queue alerts; trying again");
                        behind = true;
                    }
                },
                Ok(_) => behind = true,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(missed = n, "the alerter fell behind the journal's feed; reading the journal");
                    behind = true;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = every.tick() => {
                if let Err(e) = alerter.resend().await {
                    tracing::error!(error = %e, "cannot queue the re-send of active alerts");
                }
            }
            _ = tokio::time::sleep(JOURNAL_RETRY), if behind => {}
            _ = stop.changed() => break,
        }
    }
    for s in senders {
        if let Err(e) = s.await {
            tracing::error!(error = %e, "an alert sender failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, payload: Value) -> Event {
        Event {
            seq: 1,
            ts: 1_000,
            kind,
            agent: Some("bot".into()),
            action_id: Some("act_1".into()),
            change_id: Some("chg_1".into()),
            payload,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn pager() -> AlertConfig {
        AlertConfig {
            name: "pager".into(),
            kind: AlertKind::Webhook,
            url: "http://127.0.0.1:1/hook".into(),
            headers: BTreeMap::new(),
            timeout_ms: 2000,
            revert_alert_s: 3600,
            resend_s: 60,
            retry_min_ms: 1000,
            retry_max_ms: 8000,
            max_attempts: 6,
            max_age_s: 3600,
        }
    }

    #[test]
    fn retries_back_off_exponentially_with_seeded_jitter() {
        let r = pager();
        let delays: Vec<Duration> = r.backoff(42).collect();
        // Six attempts: five waits between them.
        assert_eq!(delays.len(), 5, "{delays:?}");
        for (d, base) in delays.iter().zip([1000, 2000, 4000, 8000, 8000]) {
            let base = Duration::from_millis(base);
            assert!(*d >= base && *d <= base * 2, "{delays:?}");
        }
        assert_eq!(
            delays,
            r.backoff(42).collect::<Vec<_>>(),
            "the same seed, the same waits"
        );
        assert_ne!(
            delays,
            r.backoff(43).collect::<Vec<_>>(),
            "another delivery, other jitter"
        );
    }

    #[test]
    fn retry_settings_are_checked() {
        let bad = AlertConfig {
            retry_min_ms: 0,
            max_attempts: 0,
            max_age_s: 0,
            ..pager()
        };
        let p = bad.problems(2);
        assert!(
            p.contains(&"alert[2].retry_min_ms: must be above 0".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"alert[2].max_attempts: must be at least 1".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"alert[2].max_age_s: must be above 0".to_string()),
            "{p:?}"
        );
        let p = AlertConfig {
            retry_max_ms: 10,
            ..pager()
        }
        .problems(0);
        assert_eq!(
            p,
            ["alert[0].retry_max_ms: must be at least retry_min_ms (1000)"]
        );
        assert!(pager().problems(0).is_empty());
    }

    #[test]
    fn conditions_raise_and_clear_alerts() {
        let (r, c) = on_event(
            &ev(EventKind::Killswitch, json!({"on": true, "by": "op"})),
            5,
        );
        assert_eq!((r.len(), c.len()), (1, 0));
        assert_eq!(r[0].name(), "AirlockKillSwitchOn");
        let (r2, c2) = on_event(
            &ev(EventKind::Killswitch, json!({"on": false, "by": "op"})),
            6,
        );
        assert_eq!((r2.len(), c2.len()), (0, 1));
        assert_eq!(c2[0], r[0].labels, "the resolve matches the alert");
        let (r, _) = on_event(&ev(EventKind::Reverted, json!({"reason": "breach"})), 7);
        assert_eq!(r[0].labels["change_id"], "chg_1");
        let (r, c) = on_event(&ev(EventKind::Breaker, json!({"state": "reset"})), 8);
        assert!(r.is_empty() && c.len() == 1);
        assert!(on_event(&ev(EventKind::Applied, json!({})), 9).0.is_empty());
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
