//! The story of one change, as `GET /v1/changes/{id}/timeline` and `airlock show` tell it:
//! the journal events of its action and of the change itself, and the bake's per-poll
//! evaluations from its record, in time order, each with one readable line.
//!
//! Reading the journal happens in [`timeline`]; shaping the answer is the pure [`build`].

use airlock_core::{ChangeStatus, Event, EventKind};
use airlock_store::{ChangeRecord, EventQuery, Journal, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The longest summary line; longer ones (a long command line, a long intent) are cut.
const MAX_SUMMARY: usize = 200;

/// A change's story, entries sorted by `ts`, then `seq` (an evaluation after the events of
/// the same millisecond).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timeline {
    /// The change id (`chg_…`).
    pub change_id: String,
    pub action_id: String,
    pub agent: String,
    pub status: ChangeStatus,
    /// When the change was applied, in ms since the epoch; `null` if it never was.
    pub applied_at: Option<i64>,
    /// When its bake found a breach (the `breach` event's time), or `null`.
    pub detected_at: Option<i64>,
    /// When it was reverted, or `null`.
    pub reverted_at: Option<i64>,
    /// When its bake passed, judged on data, or `null`.
    pub settled_at: Option<i64>,
    /// When its bake window ended without any rule judged on data (`unjudged`), or `null`.
    pub unjudged_at: Option<i64>,
    /// `reverted_at` − `applied_at`, or `null`.
    pub time_to_mitigate_ms: Option<i64>,
    pub entries: Vec<TimelineEntry>,
}

/// One moment of a change's story: a journal event, or one bake evaluation of one watched
/// service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// In ms since the Unix epoch.
    pub ts: i64,
    /// The event's journal seq; `null` for an evaluation.
    pub seq: Option<i64>,
    /// The event's kind (see `EventKind`), or `evaluation`.
    pub kind: String,
    /// One line for people, e.g. `breach on web: availability >= 0.999 (value 0.71)`.
    pub summary: String,
    /// The event's payload, or the evaluation: `{t, service, judgement (pass, insufficient,
    /// breach, hold), requests, availability, p99_ms, detail}`.
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// The timeline of change `change_id`, or `None` when there is no such change; see
/// [`build`].
pub async fn timeline(
    journal: &dyn Journal,
    change_id: &str,
) -> Result<Option<Timeline>, StoreError> {
    let Some(rec) = journal.change(change_id).await? else {
        return Ok(None);
    };
    let mut events = journal
        .read(EventQuery {
            action_id: Some(rec.action_id.clone()),
            ..Default::default()
        })
        .await?;
    events.extend(
        journal
            .read(EventQuery {
                change_id: Some(rec.id.clone()),
                ..Default::default()
            })
            .await?,
    );
    events.sort_by_key(|e| e.seq);
    events.dedup_by_key(|e| e.seq);
    // A revert that trips the agent's breaker is followed at once by the breaker event,
    // which names only the agent: it belongs to this story too.
    if let Some(rev) = events
        .iter()
        .rfind(|e| e.kind == EventKind::Reverted)
        .cloned()
    {
        let next = journal
            .read(EventQuery {
                agent: Some(rec.agent.clone()),
                after_seq: Some(rev.seq),
                limit: Some(1),
                ..Default::default()
            })
            .await?;
        if let Some(b) = next.into_iter().next()
            && b.kind == EventKind::Breaker
            && b.ts == rev.ts
            && b.payload.get("state").and_then(Value::as_str) == Some("open")
            && b.payload.get("by").is_none()
        {
            events.push(b);
        }
    }
    Ok(Some(build(&rec, &events)))
}

/// Shapes a change and its events into the timeline.
///
/// Entries are one per event (`detail` is its payload) and one per bake evaluation in the
/// record's optional `evaluations` (kind `evaluation`, `seq` null, `detail` the evaluation).
/// They are sorted by time, then by seq, an evaluation after the events of the same
/// millisecond.
pub fn build(rec: &ChangeRecord, events: &[Event]) -> Timeline {
    let first = |kind: EventKind| events.iter().find(|e| e.kind == kind).map(|e| e.ts);
    let last = |kind: EventKind| events.iter().rfind(|e| e.kind == kind).map(|e| e.ts);
    let applied_at = first(EventKind::Applied);
    let detected_at = first(EventKind::Breach);
    let reverted_at = last(EventKind::Reverted);
    let settled_at = last(EventKind::Settled);
    let unjudged_at = last(EventKind::Unjudged);
    let time_to_mitigate_ms = applied_at.zip(reverted_at).map(|(a, r)| r - a);

    // (ts, 0 for an event and 1 for an evaluation, seq, entry)
    let mut entries: Vec<(i64, u8, i64, TimelineEntry)> = events
        .iter()
        .map(|e| {
            let entry = TimelineEntry {
                ts: e.ts,
                seq: Some(e.seq),
                kind: e.kind.as_str().to_string(),
                summary: summarize(e.kind.as_str(), e.agent.as_deref(), &e.payload),
                detail: e.payload.clone(),
            };
            (e.ts, 0, e.seq, entry)
        })
        .collect();
    let evaluations = rec
        .record
        .get("evaluations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for ev in evaluations {
        let Some(t) = ev.get("t").and_then(Value::as_i64) else {
            continue;
        };
        let entry = TimelineEntry {
            ts: t,
            seq: None,
            kind: "evaluation".to_string(),
            summary: summarize_evaluation(ev),
            detail: ev.clone(),
        };
        entries.push((t, 1, 0, entry));
    }
    // Stable: evaluations of the same millisecond keep the record's order.
    entries.sort_by_key(|(ts, rank, seq, _)| (*ts, *rank, *seq));

    Timeline {
        change_id: rec.id.clone(),
        action_id: rec.action_id.clone(),
        agent: rec.agent.clone(),
        status: rec.status,
        applied_at,
        detected_at,
        reverted_at,
        settled_at,
        unjudged_at,
        time_to_mitigate_ms,
        entries: entries.into_iter().map(|(.., e)| e).collect(),
    }
}

/// One line saying what an event of `kind` with this payload means.
pub fn summarize(kind: &str, agent: Option<&str>, p: &Value) -> String {
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
    let line = match kind {
        "request" => {
            let req = p.get("request").unwrap_or(&Value::Null);
            let field = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or_default();
            let who = agent.map(|a| format!(" by {a}")).unwrap_or_default();
            let what = format!("{} {}", field("verb"), field("target"));
            if let Some(e) = p.get("error").and_then(Value::as_str) {
                format!("request{who}: {what}, refused by the provider: {e}")
            } else {
                let plan = p
                    .get("plan")
                    .and_then(|pl| pl.get("summary"))
                    .and_then(Value::as_str)
                    .unwrap_or(&what);
                let mut line = format!("request{who}: {plan}");
                if let Some(risk) = p.get("risk").and_then(Value::as_str) {
                    line.push_str(&format!(" (risk {risk})"));
                }
                let intent = field("intent");
                if !intent.is_empty() {
                    line.push_str(&format!(", intent: {intent}"));
                }
                line
            }
        }
        "verdict" => {
            let mut why = strings(p.get("reasons"));
            if let Some(by) = p.get("approved_by").and_then(Value::as_str) {
                // `operator:approval_id`; names never hold a colon.
                let name = by.split(':').next().unwrap_or(by);
                why.push(format!("approved by {name}"));
            }
            if why.is_empty() {
                format!("verdict: {}", s("verdict"))
            } else {
                format!("verdict: {} ({})", s("verdict"), why.join(", "))
            }
        }
        "approval" => {
            let mut line = format!("approval by {}: {}", s("by"), s("decision"));
            let outcome = s("outcome");
            if !matches!(outcome, "" | "approved" | "denied") {
                line.push_str(&format!(", {outcome}"));
            }
            if !s("reason").is_empty() {
                line.push_str(&format!(" ({})", s("reason")));
            }
            line
        }
        "applied" => {
            let mut line = format!("applied: {}", s("summary"));
            let watch = strings(p.get("watch"));
            if let Some(bake) = p.get("bake_s").and_then(Value::as_u64) {
                line.push_str(&format!("; baking {bake} s"));
                if !watch.is_empty() {
                    line.push_str(&format!(" watching {}", watch.join(", ")));
                }
            }
            line
        }
        "applying" => format!("applying: {}", s("summary")),
        "reverting" => {
            let mut line = format!("reverting: {}", s("reason"));
            if !s("by").is_empty() && !s("reason").contains(s("by")) {
                line.push_str(&format!(" (by {})", s("by")));
            }
            line
        }
        "apply_failed" => format!("apply failed at {}: {}", s("stage"), s("error")),
        "breach" => format!(
            "breach on {}: {} (value {})",
            s("service"),
            s("rule"),
            p.get("value")
                .and_then(Value::as_f64)
                .map_or("missing".to_string(), number)
        ),
        "reverted" => {
            let by = s("by");
            let reason = s("reason");
            if reason.is_empty() || reason == format!("reverted by {by}") {
                format!("reverted by {by}")
            } else {
                format!("reverted by {by}: {reason}")
            }
        }
        "settled" => {
            let mut line = format!(
                "settled after {} polls",
                p.get("polls").unwrap_or(&json!(0))
            );
            if p.get("held_for_missing_data").and_then(Value::as_bool) == Some(true) {
                line.push_str(", held open for missing data");
            }
            let not_judged = strings(p.get("not_judged"));
            if !not_judged.is_empty() {
                line.push_str(&format!("; not judged: {}", not_judged.join("; ")));
            }
            line
        }
        "unjudged" => format!(
            "unjudged after {} polls, not settled: {}",
            p.get("polls").unwrap_or(&json!(0)),
            s("reason")
        ),
        "needs_attention" => {
            let mut line = format!("needs attention: {}", s("reason"));
            if !s("error").is_empty() {
                line.push_str(&format!(": {}", s("error")));
            }
            line
        }
        "revert_failed" => format!("revert failed: {}: {}", s("reason"), s("error")),
        "alert" => {
            let mut line = format!("alert {} {} → {}", s("alert"), s("status"), s("receiver"));
            let attempts = p.get("attempts").and_then(Value::as_u64).unwrap_or(0);
            match s("delivery") {
                "queued" => line.push_str(": queued"),
                "delivered" => line.push_str(&format!(": delivered (attempt {attempts})")),
                "retrying" => line.push_str(&format!(
                    ": attempt {attempts} failed: {}; retrying in {} s",
                    s("error"),
                    number(p.get("retry_in_ms").and_then(Value::as_f64).unwrap_or(0.0) / 1000.0)
                )),
                "given_up" => line.push_str(&format!(
                    ": NOT DELIVERED, given up after {attempts} attempts: {}",
                    s("error")
                )),
                "superseded" => line.push_str(": not sent, a newer re-send follows"),
                _ => {
                    if p.get("ok").and_then(Value::as_bool) == Some(false) {
                        line.push_str(&format!(", not delivered: {}", s("error")));
                    }
                }
            }
            line
        }
        "breaker" => {
            let who = agent.unwrap_or("the agent");
            match s("state") {
                "open" => format!("breaker opened for {who}: {}", s("reason")),
                other => format!("breaker {other} for {who}"),
            }
        }
        other => format!("{other}: {p}"),
    };
    one_line(&line)
}

/// One line for one bake evaluation: `judge web: pass (availability 0.9991, p99 120 ms,
/// 532 requests)`.
pub fn summarize_evaluation(ev: &Value) -> String {
    let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or_default();
    let n = |k: &str| ev.get(k).and_then(Value::as_f64);
    let mut facts = Vec::new();
    if let Some(a) = n("availability") {
        facts.push(format!("availability {}", number(a)));
    }
    if let Some(p) = n("p99_ms") {
        facts.push(format!("p99 {} ms", number(p)));
    }
    if let Some(r) = n("requests") {
        facts.push(format!("{} requests", number(r)));
    }
    let mut line = format!("judge {}: {}", s("service"), s("judgement"));
    if !facts.is_empty() {
        line.push_str(&format!(" ({})", facts.join(", ")));
    }
    if !s("detail").is_empty() {
        line.push_str(&format!(": {}", s("detail")));
    }
    one_line(&line)
}

/// A number with at most four decimals and no trailing zeros: `0.71`, `532`, `0.9991`.
fn number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Folds line breaks (a command line may hold some) and cuts an overlong line.
fn one_line(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > MAX_SUMMARY {
        format!(
            "{}…",
            flat.chars().take(MAX_SUMMARY - 1).collect::<String>()
        )
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::NewEvent;

    /// A journal holding one change that was held, approved, applied, judged, breached,
    /// reverted (tripping the breaker), plus another agent's unrelated change.
    async fn journal() -> std::sync::Arc<dyn Journal> {
        let j = airlock_store::open("sqlite::memory:").await.unwrap();
        let ev = |ts, kind, payload| {
            NewEvent::new(ts, kind, payload)
                .agent("bot")
                .action("act_1")
        };
        j.append_all(vec![
            ev(1_000, EventKind::Request, json!({
                "request": {"provider": "sim", "verb": "delete", "target": "sim:service/scratch", "intent": "clean\nup"},
                "plan": {"summary": "delete sim:service/scratch: 1 service(s) change"}, "risk": "high"})),
            ev(1_000, EventKind::Verdict, json!({"verdict": "hold", "reasons": ["prod-destructive-needs-approval"], "approval_id": "apr_1", "approved_by": null})),
            ev(4_000, EventKind::Approval, json!({"approval_id": "apr_1", "decision": "approve", "by": "alice", "reason": "", "outcome": "approved"})),
            ev(4_000, EventKind::Verdict, json!({"verdict": "allow", "reasons": [], "approved_by": "alice:apr_1"})),
        ])
        .await
        .unwrap();
        let change = |status: airlock_core::ChangeStatus, evaluations: Value| ChangeRecord {
            id: "chg_1".into(),
            action_id: "act_1".into(),
            agent: "bot".into(),
            status,
            record: json!({"plan": {}, "evaluations": evaluations}),
            created_at: 4_000,
            updated_at: 4_000,
        };
        j.put_change(
            change(airlock_core::ChangeStatus::Baking, json!([])),
            ev(4_000, EventKind::Applied, json!({"plan_hash": "h", "summary": "delete sim:service/scratch", "watch": ["scratch"], "bake_s": 300})),
        )
        .await
        .unwrap();
        // Someone else's change in between must not show.
        j.put_change(
            ChangeRecord {
                id: "chg_2".into(),
                action_id: "act_2".into(),
                agent: "other".into(),
                status: airlock_core::ChangeStatus::Baking,
                record: json!({}),
                created_at: 4_500,
                updated_at: 4_500,
            },
            NewEvent::new(4_500, EventKind::Applied, json!({"summary": "x"}))
                .agent("other")
                .action("act_2"),
        )
        .await
        .unwrap();
        j.append(
            ev(5_400, EventKind::Breach, json!({"service": "scratch", "rule": "availability >= 0.999", "value": 0.71, "detected_at": 5_400}))
                .change("chg_1"),
        )
        .await
        .unwrap();
        let evaluations = json!([
            {"t": 5_400, "service": "scratch", "judgement": "breach", "requests": 120.0, "availability": 0.71, "p99_ms": 40.0, "detail": "availability >= 0.999"},
            {"t": 4_200, "service": "scratch", "judgement": "insufficient", "requests": 3.0, "availability": null, "p99_ms": null, "detail": "3 requests, fewer than 200"},
            {"t": 4_400, "service": "scratch", "judgement": "pass", "requests": 532.0, "availability": 0.9991, "p99_ms": 120.0, "detail": null},
        ]);
        j.put_change(
            change(airlock_core::ChangeStatus::Reverted, evaluations),
            ev(5_450, EventKind::Reverted, json!({"reason": "bake breach on `scratch`: availability >= 0.999 (value 0.7100)", "by": "airlock", "restored": [], "detected_at": 5_400, "reverted_at": 5_450})),
        )
        .await
        .unwrap();
        j.append(
            NewEvent::new(
                5_450,
                EventKind::Breaker,
                json!({"state": "open", "reason": "3 reverts in 1h"}),
            )
            .agent("bot"),
        )
        .await
        .unwrap();
        j
    }

    #[tokio::test]
    async fn a_reverted_change_tells_its_story_in_order() {
        let j = journal().await;
        let t =
            serde_json::to_value(timeline(j.as_ref(), "chg_1").await.unwrap().unwrap()).unwrap();
        assert_eq!(t["change_id"], "chg_1");
        assert_eq!(t["action_id"], "act_1");
        assert_eq!(t["agent"], "bot");
        assert_eq!(t["status"], "reverted");
        assert_eq!(t["applied_at"], 4_000);
        assert_eq!(t["detected_at"], 5_400);
        assert_eq!(t["reverted_at"], 5_450);
        assert_eq!(t["settled_at"], Value::Null);
        assert_eq!(t["unjudged_at"], Value::Null);
        assert_eq!(t["time_to_mitigate_ms"], 1_450);
        let rows: Vec<(i64, &str, &str)> = t["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["ts"].as_i64().unwrap(),
                    e["kind"].as_str().unwrap(),
                    e["summary"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    1_000,
                    "request",
                    "request by bot: delete sim:service/scratch: 1 service(s) change (risk high), intent: clean up"
                ),
                (
                    1_000,
                    "verdict",
                    "verdict: hold (prod-destructive-needs-approval)"
                ),
                (4_000, "approval", "approval by alice: approve"),
                (4_000, "verdict", "verdict: allow (approved by alice)"),
                (
                    4_000,
                    "applied",
                    "applied: delete sim:service/scratch; baking 300 s watching scratch"
                ),
                (
                    4_200,
                    "evaluation",
                    "judge scratch: insufficient (3 requests): 3 requests, fewer than 200"
                ),
                (
                    4_400,
                    "evaluation",
                    "judge scratch: pass (availability 0.9991, p99 120 ms, 532 requests)"
                ),
                (
                    5_400,
                    "breach",
                    "breach on scratch: availability >= 0.999 (value 0.71)"
                ),
                (
                    5_400,
                    "evaluation",
                    "judge scratch: breach (availability 0.71, p99 40 ms, 120 requests): availability >= 0.999"
                ),
                (
                    5_450,
                    "reverted",
                    "reverted by airlock: bake breach on `scratch`: availability >= 0.999 (value 0.7100)"
                ),
                (5_450, "breaker", "breaker opened for bot: 3 reverts in 1h"),
            ]
        );
        let e = &t["entries"][0];
        assert_eq!(e["seq"], 1);
        assert_eq!(e["detail"]["risk"], "high");
        let e = &t["entries"][5];
        assert_eq!(e["seq"], Value::Null);
        assert_eq!(e["detail"]["judgement"], "insufficient");
    }

    #[tokio::test]
    async fn an_unknown_change_has_no_timeline() {
        let j = journal().await;
        assert_eq!(timeline(j.as_ref(), "chg_nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_record_without_evaluations_and_a_change_still_baking() {
        let j = journal().await;
        let t =
            serde_json::to_value(timeline(j.as_ref(), "chg_2").await.unwrap().unwrap()).unwrap();
        assert_eq!(t["status"], "baking");
        assert_eq!(t["applied_at"], 4_500);
        assert_eq!(t["reverted_at"], Value::Null);
        assert_eq!(t["time_to_mitigate_ms"], Value::Null);
        assert_eq!(t["entries"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_unjudged_change_is_shown_unjudged_and_never_settled() {
        let j = airlock_store::open("sqlite::memory:").await.unwrap();
        let rec = |status| ChangeRecord {
            id: "chg_u".into(),
            action_id: "act_u".into(),
            agent: "bot".into(),
            status,
            record: json!({"plan": {}}),
            created_at: 1_000,
            updated_at: 1_000,
        };
        let ev = |ts, kind, payload| {
            NewEvent::new(ts, kind, payload)
                .agent("bot")
                .action("act_u")
        };
        j.put_change(
            rec(airlock_core::ChangeStatus::Baking),
            ev(
                1_000,
                EventKind::Applied,
                json!({"summary": "create sim:bucket/logs"}),
            ),
        )
        .await
        .unwrap();
        j.put_change(
            rec(airlock_core::ChangeStatus::Unjudged),
            ev(61_000, EventKind::Unjudged, json!({"polls": 6, "reason": "no signal watches `sim:bucket/logs`: nothing could be judged"})),
        )
        .await
        .unwrap();
        let t =
            serde_json::to_value(timeline(j.as_ref(), "chg_u").await.unwrap().unwrap()).unwrap();
        assert_eq!(t["status"], "unjudged");
        assert_eq!(t["unjudged_at"], 61_000);
        assert_eq!(t["settled_at"], Value::Null);
        assert_eq!(t["entries"][1]["kind"], "unjudged");
    }

    #[test]
    fn the_other_kinds_read_as_one_line() {
        let line = |kind, p| summarize(kind, Some("bot"), &p);
        assert_eq!(
            line(
                "alert",
                json!({"alert": "AirlockChangeReverted", "status": "firing", "receiver": "alertmanager", "ok": true, "error": null})
            ),
            "alert AirlockChangeReverted firing → alertmanager"
        );
        assert_eq!(
            line(
                "alert",
                json!({"alert": "AirlockChangeReverted", "status": "resolved", "receiver": "pager", "ok": false, "error": "connection refused"})
            ),
            "alert AirlockChangeReverted resolved → pager, not delivered: connection refused"
        );
        assert_eq!(
            line(
                "alert",
                json!({"alert": "AirlockChangeReverted", "status": "firing", "receiver": "pager", "delivery": "queued"})
            ),
            "alert AirlockChangeReverted firing → pager: queued"
        );
        assert_eq!(
            line(
                "alert",
                json!({"alert": "AirlockChangeReverted", "status": "firing", "receiver": "pager", "delivery": "retrying", "attempts": 2, "ok": false, "error": "pager answered 503", "retry_in_ms": 1500})
            ),
            "alert AirlockChangeReverted firing → pager: attempt 2 failed: pager answered 503; retrying in 1.5 s"
        );
        assert_eq!(
            line(
                "alert",
                json!({"alert": "AirlockChangeReverted", "status": "firing", "receiver": "pager", "delivery": "delivered", "attempts": 3, "ok": true})
            ),
            "alert AirlockChangeReverted firing → pager: delivered (attempt 3)"
        );
        assert_eq!(
            line(
                "alert",
                json!({"alert": "AirlockChangeReverted", "status": "firing", "receiver": "pager", "delivery": "given_up", "attempts": 12, "ok": false, "error": "refused"})
            ),
            "alert AirlockChangeReverted firing → pager: NOT DELIVERED, given up after 12 attempts: refused"
        );
        assert_eq!(
            line("reverted", json!({"reason": "reverted by op", "by": "op"})),
            "reverted by op"
        );
        assert_eq!(
            line(
                "unjudged",
                json!({"polls": 6, "reason": "no signal watches `sim:bucket/logs`: nothing could be judged"})
            ),
            "unjudged after 6 polls, not settled: no signal watches `sim:bucket/logs`: nothing could be judged"
        );
        assert_eq!(
            line(
                "settled",
                json!({"polls": 6, "not_judged": ["`db` (availability >= 0.999): every series missing"]})
            ),
            "settled after 6 polls; not judged: `db` (availability >= 0.999): every series missing"
        );
        assert_eq!(
            line(
                "settled",
                json!({"polls": 12, "held_for_missing_data": false})
            ),
            "settled after 12 polls"
        );
        assert_eq!(
            line(
                "breach",
                json!({"service": "db", "rule": "missing data", "value": null})
            ),
            "breach on db: missing data (value missing)"
        );
        assert_eq!(
            line(
                "approval",
                json!({"decision": "deny", "by": "timeout", "outcome": "expired"})
            ),
            "approval by timeout: deny, expired"
        );
        assert_eq!(
            line(
                "request",
                json!({"request": {"verb": "scale", "target": "sim:service/nope"}, "error": "unknown service `nope`"})
            ),
            "request by bot: scale sim:service/nope, refused by the provider: unknown service `nope`"
        );
        assert_eq!(
            line(
                "needs_attention",
                json!({"reason": "reverted by op", "error": "conflict: replicas moved on"})
            ),
            "needs attention: reverted by op: conflict: replicas moved on"
        );
        let long = line(
            "apply_failed",
            json!({"stage": "apply", "error": "x".repeat(500)}),
        );
        assert_eq!(long.chars().count(), MAX_SUMMARY);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn numbers_lose_their_trailing_zeros() {
        assert_eq!(number(0.71), "0.71");
        assert_eq!(number(532.0), "532");
        assert_eq!(number(0.99912), "0.9991");
        assert_eq!(number(-0.00001), "0");
    }
}
