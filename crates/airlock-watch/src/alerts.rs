//! Alerts to on-call: Alertmanager's v2 API and generic JSON webhooks. The sender follows
//! the journal: a revert, a breaker trip, a change that needs attention and the kill switch
//! raise alerts; a breaker reset, the kill switch turned off and a needs-attention change
//! later reverted resolve them. Active alerts are re-sent before Alertmanager would time
//! them out. Every send is journaled (`alert` events).

use airlock_core::{Clock, Event, EventKind, NewEvent};
use airlock_gate::Gate;
use airlock_gate::Notifying;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
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
        p
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
        serde_json::to_string(&self.labels).unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
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

/// Sends alerts to every receiver and keeps the active ones alive.
pub struct Alerter {
    receivers: Vec<AlertConfig>,
    http: reqwest::Client,
    journal: Arc<Notifying>,
    clock: Arc<dyn Clock>,
    active: BTreeMap<String, Alert>,
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
        }
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

    async fn send(&self, a: &Alert, resolved: bool) {
        let status = if resolved { "resolved" } else { "firing" };
        for r in &self.receivers {
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
                AlertKind::Alertmanager => {
                    format!("{}/api/v2/alerts", r.url.trim_end_matches('/'))
                }
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
            let result = match req.send().await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("{} answered {}", r.name, resp.status())),
                Err(e) => Err(format!("{} is unreachable: {e}", r.name)),
            };
            if let Err(e) = &result {
                tracing::warn!(alert = a.name(), receiver = %r.name, error = %e, "alert not delivered");
            }
            let mut ev = NewEvent::new(
                self.clock.now(),
                EventKind::Alert,
                json!({"alert": a.name(), "status": status, "receiver": r.name, "labels": a.labels,
                       "ok": result.is_ok(), "error": result.err()}),
            );
            if let Some(c) = &a.change_id {
                ev = ev.change(c);
            }
            if let Some(ag) = &a.agent {
                ev = ev.agent(ag);
            }
            if let Err(e) = airlock_store::Journal::append(self.journal.as_ref(), ev).await {
                tracing::error!(error = %e, "cannot journal an alert");
            }
        }
    }

    /// Handles one journal event.
    pub async fn handle(&mut self, ev: &Event) {
        let now = self.clock.now();
        let (raise, clear) = on_event(ev, now);
        for labels in clear {
            let key = serde_json::to_string(&labels).unwrap_or_default();
            if let Some(mut a) = self.active.remove(&key) {
                a.ends_at = Some(now);
                self.send(&a, true).await;
            }
        }
        for mut a in raise {
            a.ends_at = Some(self.firing_until(&a, now));
            self.send(&a, false).await;
            if a.name() != "AirlockChangeReverted" {
                self.active.insert(a.key(), a);
            }
        }
    }

    /// Re-sends active conditions so Alertmanager keeps them firing.
    pub async fn resend(&mut self) {
        let now = self.clock.now();
        let keys: Vec<String> = self.active.keys().cloned().collect();
        for k in keys {
            let Some(mut a) = self.active.get(&k).cloned() else {
                continue;
            };
            a.ends_at = Some(self.firing_until(&a, now));
            self.send(&a, false).await;
            self.active.insert(k, a);
        }
    }

    /// Raises alerts for conditions that already hold when the server starts.
    pub async fn restore(&mut self, gate: &Gate) {
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
        for mut a in raise {
            a.ends_at = Some(self.firing_until(&a, now));
            self.send(&a, false).await;
            self.active.insert(a.key(), a);
        }
    }
}

/// Runs the alerter until `stop` turns true.
pub async fn run(
    mut alerter: Alerter,
    gate: Arc<Gate>,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    alerter.restore(&gate).await;
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
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) if ev.kind != EventKind::Alert => alerter.handle(&ev).await,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "the alerter fell behind the journal");
                }
                Err(_) => break,
            },
            _ = every.tick() => alerter.resend().await,
            _ = stop.changed() => break,
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
