//! The dashboard's pages: feed, approvals, actions, changes, agents, kill switch, journal
//! and reports. Each reads what it shows through the gate or one page of the journal.

use super::chart::{self, BakeSeries};
use super::{
    Chrome, CsrfForm, CsrfToken, Nav, Operator, Posted, error_page, layout, respond, urlencode,
};
use crate::state::AppState;
use crate::timeline::{self, Timeline};
use airlock_core::{Event, EventKind};
use airlock_gate::{ApprovalView, BakeOutcome, GateError, RevertCheck};
use airlock_store::{EventQuery, Journal};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::stream::{Stream, StreamExt};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use std::convert::Infallible;
use std::time::Duration;

/// Rows on one page of the feed, the changes and the journal.
const PAGE: u32 = 50;
/// The most journal events one page of the feed or the changes reads to fill itself when
/// a filter is selective: a page never scans more than this.
const SCAN: usize = 2_000;

/// The kinds the feed shows: decisions, approvals, what changes did, breakers and the kill
/// switch. Requests are shown with their verdicts; write-ahead intents and checkpoints are
/// in the journal view.
const FEED_KINDS: &[EventKind] = &[
    EventKind::Verdict,
    EventKind::Approval,
    EventKind::Applied,
    EventKind::ApplyFailed,
    EventKind::Breach,
    EventKind::Reverted,
    EventKind::Settled,
    EventKind::Unjudged,
    EventKind::NeedsAttention,
    EventKind::RevertFailed,
    EventKind::Breaker,
    EventKind::Killswitch,
    EventKind::Suspects,
    EventKind::Takeover,
];

fn gate_error(e: impl std::fmt::Display) -> Response {
    error_page(&e.to_string(), StatusCode::SERVICE_UNAVAILABLE)
}

/// One page of the journal, newest first from `before`, and the cursor of the next page.
async fn newest(
    s: &AppState,
    kind: Option<EventKind>,
    agent: Option<String>,
    before: Option<i64>,
) -> Result<(Vec<Event>, Option<i64>), Response> {
    let events = s
        .journal
        .read(EventQuery {
            after_seq: before,
            kind,
            agent,
            limit: Some(PAGE),
            descending: true,
            ..Default::default()
        })
        .await
        .map_err(gate_error)?;
    let next = (events.len() as u32 == PAGE)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok((events, next))
}

/// `2026-12-07 10:04:05Z`.
pub fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn time(ms: i64) -> Markup {
    let iso = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    html! { time datetime=(iso) { (ts(ms)) } }
}

fn badge(word: &str) -> Markup {
    html! { span class=(format!("badge b-{}", word.replace(['_', ' '], "-"))) { (word) } }
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The feed

/// The feed's filters (also the live stream's).
#[derive(Deserialize, Default, Clone)]
pub struct FeedQuery {
    #[serde(default)]
    agent: String,
    /// A part of the resource address.
    #[serde(default)]
    resource: String,
    /// `allow`, `deny` or `hold`: only verdicts of that kind.
    #[serde(default)]
    verdict: String,
    /// Cursor: show events older than this seq.
    before: Option<i64>,
}

impl FeedQuery {
    fn agent(&self) -> Option<String> {
        let a = self.agent.trim();
        (!a.is_empty()).then(|| a.to_string())
    }

    fn matches(&self, e: &Event, target: &str) -> bool {
        let verdict = self.verdict.trim();
        let resource = self.resource.trim();
        FEED_KINDS.contains(&e.kind)
            && self
                .agent()
                .is_none_or(|a| e.agent.as_deref() == Some(a.as_str()))
            && (verdict.is_empty()
                || (e.kind == EventKind::Verdict && str_of(&e.payload, "verdict") == verdict))
            && (resource.is_empty() || target.contains(resource))
    }

    fn query_string(&self) -> String {
        format!(
            "agent={}&resource={}&verdict={}",
            urlencode(self.agent.trim()),
            urlencode(self.resource.trim()),
            urlencode(self.verdict.trim())
        )
    }
}

/// What an event's action does (`verb target`), from its request, read once and remembered.
async fn target_of(s: &AppState, e: &Event) -> String {
    let Some(action) = &e.action_id else {
        return String::new();
    };
    let Some(d) = super::of(s) else {
        return String::new();
    };
    if let Some(t) = d.target(action) {
        return t;
    }
    let found = s
        .journal
        .read(EventQuery {
            kind: Some(EventKind::Request),
            action_id: Some(action.clone()),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .ok()
        .and_then(|v| v.into_iter().next())
        .map(|r| {
            let req = r.payload.get("request").cloned().unwrap_or(Value::Null);
            format!("{} {}", str_of(&req, "verb"), str_of(&req, "target"))
        })
        .unwrap_or_default();
    d.remember(action, &found);
    found
}

/// One row of the feed.
fn feed_row(e: &Event, target: &str) -> Markup {
    let summary = timeline::summarize(e.kind.as_str(), e.agent.as_deref(), &e.payload);
    let verdict = str_of(&e.payload, "verdict");
    html! {
        tr data-seq=(e.seq) data-kind=(e.kind.as_str()) data-agent=[e.agent.as_deref()] data-verdict=(verdict) {
            td { (time(e.ts)) }
            td { (badge(if e.kind == EventKind::Verdict { verdict } else { e.kind.as_str() })) }
            td { @if let Some(a) = &e.agent { a href=(format!("/agents/{}", urlencode(a))) { (a) } } }
            td.target { (target) }
            td { (summary) }
            td.links {
                @if let Some(a) = &e.action_id { a href=(format!("/actions/{a}")) { "action" } " " }
                @if let Some(c) = &e.change_id { a href=(format!("/changes/{c}")) { "change" } }
            }
        }
    }
}

/// Reads the feed newest first from `before`, keeping what matches, until a page is full or
/// `SCAN` events were read. Returns the rows and the cursor of the next page.
async fn feed_rows(
    s: &AppState,
    q: &FeedQuery,
) -> Result<(Vec<(Event, String)>, Option<i64>), airlock_store::StoreError> {
    let mut rows = Vec::new();
    let mut after = q.before;
    let mut scanned = 0;
    loop {
        let page = s
            .journal
            .read(EventQuery {
                after_seq: after,
                agent: q.agent(),
                kind: (!q.verdict.trim().is_empty()).then_some(EventKind::Verdict),
                limit: Some(200),
                descending: true,
                ..Default::default()
            })
            .await?;
        scanned += page.len();
        let full = page.len() == 200;
        for e in page {
            after = Some(e.seq);
            if !FEED_KINDS.contains(&e.kind) {
                continue;
            }
            let target = target_of(s, &e).await;
            if q.matches(&e, &target) {
                rows.push((e, target));
                if rows.len() as u32 == PAGE {
                    return Ok((rows, after));
                }
            }
        }
        if !full {
            return Ok((rows, None));
        }
        if scanned >= SCAN {
            return Ok((rows, after));
        }
    }
}

pub async fn feed(State(s): State<AppState>, op: Operator, Query(q): Query<FeedQuery>) -> Response {
    let (rows, next) = match feed_rows(&s, &q).await {
        Ok(r) => r,
        Err(e) => return gate_error(e),
    };
    let chrome = Chrome::of(&s, &op).await;
    let live = q.before.is_none();
    let body = html! {
        form.filters method="get" action="/" role="search" {
            label { "Agent " input name="agent" value=(q.agent) size="14"; }
            label { "Resource " input name="resource" value=(q.resource) size="24" placeholder="e.g. service/web"; }
            label { "Verdict "
                select name="verdict" {
                    @for v in ["", "allow", "hold", "deny"] {
                        option value=(v) selected[q.verdict == v] { (if v.is_empty() { "any" } else { v }) }
                    }
                }
            }
            button type="submit" { "Filter" }
            @if live {
                span #live-status.live role="status" aria-live="polite" { "connecting…" }
            }
        }
        table.feed {
            caption { "Actions, verdicts and what changes did, newest first" }
            thead { tr {
                th scope="col" { "Time" } th scope="col" { "What" } th scope="col" { "Agent" }
                th scope="col" { "Resource" } th scope="col" { "Summary" } th scope="col" { "Links" }
            } }
            tbody #feed data-live=[live.then(|| format!("/live?{}", q.query_string()))] {
                @for (e, t) in &rows { (feed_row(e, t)) }
            }
        }
        @if rows.is_empty() { p.empty { "Nothing yet" @if live { ": new events appear here as they happen" } "." } }
        @if let Some(n) = next {
            p { a.more href=(format!("/?{}&before={n}", q.query_string())) { "Older →" } }
        }
    };
    respond(StatusCode::OK, layout("Feed", Nav::Feed, &chrome, body))
}

/// The live stream of the dashboard: for each journal event stored from now on, a `tick`
/// (its kind, agent, action and change: pages refresh what it touches) and, when it passes
/// the feed's filters, a `row` with the feed row's HTML.
pub async fn live(
    State(s): State<AppState>,
    _op: Operator,
    Query(q): Query<FeedQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Response> {
    let events = crate::api::journal_stream(&s, None)
        .await
        .map_err(gate_error)?;
    let stream = events
        .then(move |e| {
            let (s, q) = (s.clone(), q.clone());
            async move {
                let tick = serde_json::json!({
                    "kind": e.kind.as_str(), "agent": e.agent, "action": e.action_id,
                    "change": e.change_id, "seq": e.seq,
                });
                let mut out = vec![SseEvent::default().event("tick").data(tick.to_string())];
                if FEED_KINDS.contains(&e.kind) {
                    let target = target_of(&s, &e).await;
                    if q.matches(&e, &target) {
                        let html = feed_row(&e, &target).into_string().replace('\n', " ");
                        out.push(
                            SseEvent::default()
                                .event("row")
                                .id(e.seq.to_string())
                                .data(html),
                        );
                    }
                }
                futures_util::stream::iter(out.into_iter().map(Ok))
            }
        })
        .flatten();
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

// ---------------------------------------------------------------------------------------
// Approvals

#[derive(Deserialize, Default)]
pub struct Partial {
    #[serde(default)]
    partial: bool,
}

fn request_line(a: &ApprovalView) -> String {
    format!("{} {}", a.request.verb, a.request.target)
}

fn holds_table(holds: &[ApprovalView], now: i64) -> Markup {
    html! {
        @if holds.is_empty() {
            p.empty { "No request is waiting for an operator. New holds appear here as they happen." }
        } @else {
            table.holds {
                caption { "Requests held for an operator, oldest first" }
                thead { tr {
                    th scope="col" { "Held since" } th scope="col" { "Agent" } th scope="col" { "Request" }
                    th scope="col" { "Risk" } th scope="col" { "Why" } th scope="col" { "Approvals" }
                } }
                tbody {
                    @for a in holds {
                        tr data-approval=(a.id) {
                            td { (time(a.held_since)) " " span.muted { "(" ((now - a.held_since) / 1000) " s)" } }
                            td { (a.agent) }
                            td { a href=(format!("/approvals/{}", a.id)) { (request_line(a)) } }
                            td { (badge(a.risk.as_str())) }
                            td { (a.reasons.join(", ")) }
                            td { (a.approved_by.len()) " of " (a.approvals_needed) }
                        }
                    }
                }
            }
        }
    }
}

pub async fn approvals(
    State(s): State<AppState>,
    op: Operator,
    Query(q): Query<Partial>,
) -> Response {
    let holds = s.gate.approvals().await;
    let list = holds_table(&holds, s.gate.now());
    if q.partial {
        return respond(StatusCode::OK, list);
    }
    let chrome = Chrome::counted(&s, &op, holds.len()).await;
    let body = html! {
        div #holds data-refresh="/approvals?partial=true" data-on="verdict approval applied apply_failed" { (list) }
    };
    respond(
        StatusCode::OK,
        layout("Approvals", Nav::Approvals, &chrome, body),
    )
}

/// The before → after of each field that differs, for one diff.
fn field_changes(before: Option<&Value>, after: Option<&Value>) -> Vec<(String, String, String)> {
    let show = |v: Option<&Value>| {
        v.map_or("—".to_string(), |v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| b.get(*k) != a.get(*k))
                .map(|k| (k.clone(), show(b.get(k)), show(a.get(k))))
                .collect()
        }
        (b, a) => vec![(
            "(whole resource)".into(),
            b.map_or("does not exist".into(), |v| {
                if v.is_null() {
                    "does not exist".into()
                } else {
                    show(Some(v))
                }
            }),
            a.map_or("does not exist".into(), |v| {
                if v.is_null() {
                    "does not exist".into()
                } else {
                    show(Some(v))
                }
            }),
        )],
    }
}

fn plan_section(plan: &airlock_gate::PlanView) -> Markup {
    let b = &plan.blast;
    html! {
        section.card aria-labelledby="plan-h" {
            h2 #plan-h { "The plan (dry run)" }
            p { (plan.summary) }
            p.flags {
                (badge(if plan.reversible { "reversible" } else { "irreversible" }))
                @if plan.destructive { " " (badge("destructive")) }
            }
            @for d in &plan.diffs {
                table.diff {
                    caption { (d.addr.to_string()) }
                    thead { tr { th scope="col" { "Field" } th scope="col" { "Now" } th scope="col" { "After" } } }
                    tbody {
                        @for (k, before, after) in field_changes(d.before.as_ref(), d.after.as_ref()) {
                            tr { th scope="row" { (k) } td.before { (before) } td.after { (after) } }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="blast-h" {
            h2 #blast-h { "Blast radius" }
            dl.facts {
                dt { "Resources changed" } dd { (b.resources) }
                dt { "Regions" } dd { (b.regions) }
                dt { "Live dependents" } dd { (b.dependents)
                    @if !b.dependent_names.is_empty() { " (" (b.dependent_names.join(", ")) ")" } }
                dt { "Capacity change" } dd { (chart::fmt(b.capacity_delta_pct)) " %" }
                dt { "Headroom after" } dd { (plan.headroom.map_or("not known".into(), chart::fmt)) }
                dt { "Headroom after losing a zone" } dd { (plan.headroom_after_az_loss.map_or("not known".into(), chart::fmt)) }
                dt { "Watched after" } dd { (if b.watch.is_empty() { "nothing".into() } else { b.watch.join(", ") }) }
            }
            @if !plan.az_capacity_rps.is_empty() {
                table.az {
                    caption { "Capacity per availability zone after the change" }
                    thead { tr { th scope="col" { "Zone" } th scope="col" { "Requests/s" } } }
                    tbody { @for (z, c) in &plan.az_capacity_rps { tr { th scope="row" { (z) } td { (chart::fmt(*c)) } } } }
                }
            }
            @if !plan.contained.is_empty() {
                table.contained {
                    caption { "Reached through the target (" (plan.contained.len()) ")" }
                    thead { tr { th scope="col" { "Resource" } th scope="col" { "Dependents" } th scope="col" { "Capacity change" } th scope="col" { "Data" } } }
                    tbody {
                        @for c in &plan.contained {
                            tr {
                                th scope="row" { (c.addr.to_string()) }
                                td { (c.dependents) }
                                td { (chart::fmt(c.capacity_delta_pct)) " %" }
                                td { @if c.loses_data { span.bad { "lost for good" } } @else { "kept" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn behaviour_section(
    agent: &str,
    series: &[(i64, std::collections::BTreeMap<String, f64>)],
    score: Option<&airlock_gate::Score>,
    breaker: Option<&str>,
) -> Markup {
    html! {
        section.card aria-labelledby="beh-h" {
            h2 #beh-h { "The agent: " a href=(format!("/agents/{}", urlencode(agent))) { (agent) } }
            @match score {
                Some(sc) => {
                    p { "Anomaly score " strong.score { (format!("{:.2}", sc.value)) }
                        @if let Some((f, z)) = sc.top.as_ref().filter(|t| t.1 > 0.0) { " — furthest from usual: " strong { (f) } " (z " (format!("{z:.1}")) ")" } }
                    p.muted { (sc.explain()) }
                }
                None => { p.muted { "Not scored yet: it has made no mutation the gate counted." } }
            }
            p { "Breaker: " @match breaker { Some(why) => { span.bad { "open — " (why) } } None => { "closed" } } }
            @if !series.is_empty() {
                p { "Mutations over the last hour " (chart::sparkline(&series.iter().map(|(_, f)| f.get("mutations").copied().unwrap_or(0.0)).collect::<Vec<_>>(), "mutations")) }
            }
        }
    }
}

pub async fn approval(State(s): State<AppState>, op: Operator, Path(id): Path<String>) -> Response {
    let holds = s.gate.approvals().await;
    let chrome = Chrome::counted(&s, &op, holds.len()).await;
    let Some(a) = holds.into_iter().find(|a| a.id == id) else {
        let body = html! {
            p { "Approval " code { (id) } " is not pending: it was answered, expired or never existed." }
            p { a href="/approvals" { "Back to the approvals" } }
        };
        return respond(
            StatusCode::NOT_FOUND,
            layout("Not pending", Nav::Approvals, &chrome, body),
        );
    };
    let view = airlock_gate::frontdoor::action_view(s.journal.as_ref(), &a.action_id)
        .await
        .ok()
        .flatten();
    let (series, score) = s.gate.behaviour_of(&a.agent).await;
    let breaker = s.gate.breaker(&a.agent).await;
    let still = (a.approvals_needed as usize).saturating_sub(a.approved_by.len());
    // Why this operator may not approve, if so.
    let blocked = if a.agent == op.name {
        Some("You submitted this request: nobody approves their own request.".to_string())
    } else if a.approved_by.contains(&op.name) {
        Some(format!(
            "You approved already: the two-person rule needs {still} more distinct operator{}.",
            if still == 1 { "" } else { "s" }
        ))
    } else {
        None
    };
    let body = html! {
        section.card.summary aria-labelledby="req-h" {
            h2 #req-h { (a.agent) " asks to " (request_line(&a)) }
            p { "Risk " (badge(a.risk.as_str())) " · held since " (time(a.held_since))
                " · action " a href=(format!("/actions/{}", a.action_id)) { code { (a.action_id) } } }
            @if !a.request.intent.is_empty() { p { "Intent: " q { (a.request.intent) } } }
            @if !a.request.params.is_empty() {
                p { "Parameters: " code { (Value::Object(a.request.params.clone()).to_string()) } }
            }
        }
        section.card aria-labelledby="why-h" {
            h2 #why-h { "Why it is held" }
            ul.reasons { @for r in &a.reasons { li { code { (r) } } } }
            @if !a.details.is_empty() {
                h3 { "What the policies say" }
                ul.details { @for d in &a.details { li { (d) } } }
            }
            @if let Some(c) = view.as_ref().and_then(|v| v.counter_offer.as_ref()) {
                p.offer { strong { "Counter-offer: " } (c.summary) }
            }
        }
        (plan_section(&a.plan))
        (behaviour_section(&a.agent, &series, score.as_ref(), breaker.as_deref()))
        section.card aria-labelledby="decide-h" {
            h2 #decide-h { "Decide" }
            p.two-person {
                @if a.approvals_needed > 1 { "Two-person rule: " }
                (a.approvals_needed) " approval" @if a.approvals_needed > 1 { "s" } " needed"
                @if !a.approved_by.is_empty() { "; approved by " strong { (a.approved_by.join(", ")) } }
                @if still > 0 { "; " (still) " more needed." }
            }
            form.decide method="post" action=(format!("/approvals/{}", a.id)) {
                input type="hidden" name="_csrf" value=(op.csrf);
                label for="reason" { "Reason (journaled with your decision)" }
                textarea #reason name="reason" rows="2" {}
                div.buttons {
                    button.primary type="submit" name="decision" value="approve" disabled[blocked.is_some()]
                        aria-describedby=[blocked.as_ref().map(|_| "why-disabled")] { "Approve" }
                    button.danger type="submit" name="decision" value="deny" { "Deny" }
                }
                @if let Some(why) = &blocked { p #why-disabled.note { (why) } }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout(&format!("Hold {}", a.id), Nav::Approvals, &chrome, body),
    )
}

#[derive(Deserialize)]
pub struct ResolveForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    decision: Option<String>,
    #[serde(default)]
    reason: String,
}

impl CsrfToken for ResolveForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

pub async fn resolve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Posted(op, f): Posted<ResolveForm>,
) -> Response {
    let approve = match f.decision.as_deref() {
        Some("approve") => true,
        Some("deny") => false,
        _ => return error_page("Choose approve or deny.", StatusCode::BAD_REQUEST),
    };
    let me = airlock_gate::Principal {
        name: op.name.clone(),
        kind: op.kind,
    };
    match s.door.resolve(&id, &me, approve, &f.reason).await {
        Ok(d) => Redirect::to(&format!("/actions/{}", d.id)).into_response(),
        Err(e @ (GateError::Forbidden(_) | GateError::NotFound(..) | GateError::Conflict(_))) => {
            error_page(&e.to_string(), StatusCode::CONFLICT)
        }
        Err(e) => gate_error(e),
    }
}

// ---------------------------------------------------------------------------------------
// Actions

pub async fn action(State(s): State<AppState>, op: Operator, Path(id): Path<String>) -> Response {
    let chrome = Chrome::of(&s, &op).await;
    let me = airlock_gate::Principal {
        name: op.name.clone(),
        kind: op.kind,
    };
    let v = match s.door.action(&me, &id).await {
        Ok(v) => v,
        Err(GateError::NotFound(..)) => {
            return error_page(&format!("No action `{id}`."), StatusCode::NOT_FOUND);
        }
        Err(e) => return gate_error(e),
    };
    let events = s
        .journal
        .read(EventQuery {
            action_id: Some(id.clone()),
            limit: Some(200),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let status = v.status.as_str();
    let body = html! {
        section.card #action data-refresh-page="1" data-action=(id) {
            p { "Agent " a href=(format!("/agents/{}", urlencode(&v.agent))) { (v.agent) }
                " · status " (badge(status))
                @if let Some(r) = v.risk { " · risk " (badge(r.as_str())) } }
            @if let Some(p) = v.plan.as_ref().and_then(|p| p.get("summary")).and_then(Value::as_str) { p { (p) } }
            @if !v.reasons.is_empty() { p { "Reasons: " (v.reasons.join(", ")) } }
            @if !v.details.is_empty() { ul.details { @for d in &v.details { li { (d) } } } }
            @if let Some(c) = &v.counter_offer { p.offer { strong { "Counter-offer: " } (c.summary) } }
            @if let Some(e) = &v.error { p.bad { (e) } }
            @if let Some(a) = &v.approval_id { @if status == "held" { p { a href=(format!("/approvals/{a}")) { "Open the hold →" } } } }
            @if let Some(c) = &v.change_id { p { a href=(format!("/changes/{c}")) { "The change " code { (c) } " →" } } }
        }
        table.events {
            caption { "Its journal events" }
            thead { tr { th scope="col" { "Seq" } th scope="col" { "Time" } th scope="col" { "Kind" } th scope="col" { "Summary" } } }
            tbody { @for e in &events { tr {
                td { (e.seq) } td { (time(e.ts)) } td { (badge(e.kind.as_str())) }
                td { (timeline::summarize(e.kind.as_str(), e.agent.as_deref(), &e.payload)) }
            } } }
        }
    };
    respond(
        StatusCode::OK,
        layout(&format!("Action {id}"), Nav::Feed, &chrome, body),
    )
}

// ---------------------------------------------------------------------------------------
// Changes

#[derive(Deserialize, Default)]
pub struct ChangesQuery {
    before: Option<i64>,
    #[serde(default)]
    agent: String,
}

pub async fn changes(
    State(s): State<AppState>,
    op: Operator,
    Query(q): Query<ChangesQuery>,
) -> Response {
    let agent = (!q.agent.trim().is_empty()).then(|| q.agent.trim().to_string());
    let (applied, next) = match newest(&s, Some(EventKind::Applied), agent, q.before).await {
        Ok(page) => page,
        Err(r) => return r,
    };
    let mut rows = Vec::new();
    for e in &applied {
        let Some(cid) = &e.change_id else { continue };
        let rec = s.journal.change(cid).await.ok().flatten();
        rows.push((e, cid.clone(), rec));
    }
    let chrome = Chrome::of(&s, &op).await;
    let body = html! {
        form.filters method="get" action="/changes" role="search" {
            label { "Agent " input name="agent" value=(q.agent) size="14"; }
            button type="submit" { "Filter" }
        }
        table.changes {
            caption { "Applied changes, newest first" }
            thead { tr {
                th scope="col" { "Applied" } th scope="col" { "Change" } th scope="col" { "Agent" }
                th scope="col" { "What" } th scope="col" { "Status" }
            } }
            tbody {
                @for (e, cid, rec) in &rows { tr {
                    td { (time(e.ts)) }
                    td { a href=(format!("/changes/{cid}")) { code { (cid) } } }
                    td { (e.agent.as_deref().unwrap_or("")) }
                    td { (str_of(&e.payload, "summary")) }
                    td { @if let Some(r) = rec { (badge(r.status.as_str())) } }
                } }
            }
        }
        @if rows.is_empty() { p.empty { "No change was applied yet." } }
        @if let Some(n) = next { p { a.more href=(format!("/changes?agent={}&before={n}", urlencode(q.agent.trim()))) { "Older →" } } }
    };
    respond(
        StatusCode::OK,
        layout("Changes", Nav::Changes, &chrome, body),
    )
}

/// The bake's signals of a change: each watched service and rule, its polls, threshold and
/// baseline.
fn bake_series(record: &Value, t: &Timeline) -> Vec<BakeSeries> {
    let mut out: Vec<BakeSeries> = Vec::new();
    let baseline = record
        .get("baseline")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for b in &baseline {
        let service = str_of(b, "service").to_string();
        let rule = b.get("rule").cloned().unwrap_or(Value::Null);
        let signal = str_of(&rule, "signal").to_string();
        let field = if signal.contains("latency") || signal.contains("p99") {
            "p99_ms"
        } else {
            "availability"
        };
        let comparator = match str_of(&rule, "comparator") {
            "ge" | ">=" => ">=",
            "le" | "<=" => "<=",
            other => other,
        }
        .to_string();
        let points = t
            .entries
            .iter()
            .filter(|e| e.kind == "evaluation" && str_of(&e.detail, "service") == service)
            .filter_map(|e| {
                e.detail
                    .get(field)
                    .and_then(Value::as_f64)
                    .map(|v| (e.ts, v, str_of(&e.detail, "judgement").to_string()))
            })
            .collect();
        out.push(BakeSeries {
            service,
            signal: field.replace("p99_ms", "p99 latency (ms)"),
            comparator,
            threshold: rule.get("threshold").and_then(Value::as_f64).unwrap_or(0.0),
            baseline: b.get("value").and_then(Value::as_f64),
            points,
        });
    }
    out
}

pub async fn change(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    Query(q): Query<Partial>,
) -> Response {
    let rec = match s.journal.change(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error_page(&format!("No change `{id}`."), StatusCode::NOT_FOUND),
        Err(e) => return gate_error(e),
    };
    let t = match timeline::timeline(s.journal.as_ref(), &id).await {
        Ok(Some(t)) => t,
        Ok(None) => return error_page(&format!("No change `{id}`."), StatusCode::NOT_FOUND),
        Err(e) => return gate_error(e),
    };
    let check = if rec.status.revertible() {
        Some(s.gate.revert_check(&id).await)
    } else {
        None
    };
    let series = bake_series(&rec.record, &t);
    let content = html! {
        section.card {
            p { "Agent " a href=(format!("/agents/{}", urlencode(&t.agent))) { (t.agent) }
                " · status " (badge(t.status.as_str()))
                " · action " a href=(format!("/actions/{}", t.action_id)) { code { (t.action_id) } } }
            @if let Some(p) = rec.record.get("plan").and_then(|p| p.get("summary")).and_then(Value::as_str) { p { (p) } }
            @if let Some(ms) = t.time_to_mitigate_ms { p { "Reverted " (ms / 1000) " s after it was applied." } }
        }
        @if !series.is_empty() {
            section.card aria-labelledby="bake-h" {
                h2 #bake-h { "Bake: the signals against the SLO" }
                @for sr in &series { (chart::bake(sr)) }
            }
        }
        section.card aria-labelledby="tl-h" {
            h2 #tl-h { "Timeline" }
            ol.timeline {
                @for e in &t.entries {
                    li class=(format!("k-{}", e.kind)) { (time(e.ts)) " " (badge(&e.kind)) " " (e.summary) }
                }
            }
        }
        @if let Some(check) = &check {
            section.card aria-labelledby="rv-h" {
                h2 #rv-h { "Revert" }
                @match check {
                    Ok(RevertCheck::Clean { detail }) => { p.ok #revert-check { "Conflict check: none — " (detail) "." } }
                    Ok(RevertCheck::Conflict { detail }) => { p.bad #revert-check { "Conflict check: " (detail) ". A revert would stop and mark the change needs_attention, overwriting nothing." } }
                    Ok(RevertCheck::NotRevertible { detail }) => { p #revert-check { (detail) } }
                    Err(e) => { p.bad #revert-check { "The conflict check failed: " (e.to_string()) } }
                }
                form method="post" action=(format!("/changes/{id}/revert")) {
                    input type="hidden" name="_csrf" value=(op.csrf);
                    button.danger type="submit" { "Revert this change" }
                }
            }
        }
    };
    if q.partial {
        return respond(StatusCode::OK, content);
    }
    let chrome = Chrome::of(&s, &op).await;
    let body = html! {
        div #change data-refresh=(format!("/changes/{id}?partial=true")) data-on="breach reverted settled unjudged needs_attention revert_failed applied takeover" data-change=(id) { (content) }
    };
    respond(
        StatusCode::OK,
        layout(&format!("Change {id}"), Nav::Changes, &chrome, body),
    )
}

pub async fn revert(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Posted(op, _): Posted<CsrfForm>,
) -> Response {
    match s.door.revert(&id, &op.name).await {
        Ok(_) => Redirect::to(&format!("/changes/{id}")).into_response(),
        Err(e @ (GateError::NotFound(..) | GateError::Conflict(_))) => {
            error_page(&e.to_string(), StatusCode::CONFLICT)
        }
        Err(e) => gate_error(e),
    }
}

// ---------------------------------------------------------------------------------------
// Agents

pub async fn agents(State(s): State<AppState>, op: Operator) -> Response {
    let mut names: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    if let Ok(all) = s.journal.principals().await {
        names.extend(
            all.into_iter()
                .filter(|p| p.kind == "agent" && !p.revoked)
                .map(|p| p.name),
        );
    }
    let scores = s.gate.anomaly_scores().await;
    let breakers: std::collections::BTreeMap<String, String> =
        s.gate.open_breakers().await.into_iter().collect();
    names.extend(scores.keys().cloned());
    names.extend(breakers.keys().cloned());
    let mut rows = Vec::new();
    for n in &names {
        let (series, _) = s.gate.behaviour_of(n).await;
        let muts: Vec<f64> = series
            .iter()
            .map(|(_, f)| f.get("mutations").copied().unwrap_or(0.0))
            .collect();
        rows.push((n, muts));
    }
    let chrome = Chrome::of(&s, &op).await;
    let body = html! {
        table.agents {
            caption { "Agents: behaviour over the last hour, anomaly score and breaker" }
            thead { tr {
                th scope="col" { "Agent" } th scope="col" { "Mutations (1 h)" } th scope="col" { "Anomaly" }
                th scope="col" { "Furthest from usual" } th scope="col" { "Breaker" }
            } }
            tbody {
                @for (n, muts) in &rows {
                    tr {
                        th scope="row" { a href=(format!("/agents/{}", urlencode(n))) { (n) } }
                        td { @if muts.is_empty() { span.muted { "no activity" } } @else { (chart::sparkline(muts, "mutations")) } }
                        td { @if let Some(sc) = scores.get(*n) { (format!("{:.2}", sc.value)) } @else { span.muted { "—" } } }
                        td { @if let Some((f, _)) = scores.get(*n).and_then(|sc| sc.top.as_ref()) { (f) } }
                        td { @match breakers.get(*n) {
                            Some(why) => { span.bad { (if why.starts_with("quarantined") { "quarantined" } else { "open" }) } " " span.muted { (why) } }
                            None => { "closed" }
                        } }
                    }
                }
            }
        }
        @if rows.is_empty() { p.empty { "No agent is registered yet." } }
    };
    respond(StatusCode::OK, layout("Agents", Nav::Agents, &chrome, body))
}

pub async fn agent(State(s): State<AppState>, op: Operator, Path(name): Path<String>) -> Response {
    let (series, score) = s.gate.behaviour_of(&name).await;
    let breaker = s.gate.breaker(&name).await;
    let features: Vec<&str> = airlock_gate::behaviour::FEATURES.to_vec();
    let chrome = Chrome::of(&s, &op).await;
    let body = html! {
        (behaviour_section(&name, &series, score.as_ref(), breaker.as_deref()))
        @if !series.is_empty() {
            section.card aria-labelledby="feat-h" {
                h2 #feat-h { "Behaviour over the last hour" }
                table.features {
                    thead { tr { th scope="col" { "Feature" } th scope="col" { "Per window" } th scope="col" { "Now" } th scope="col" { "Usual" } } }
                    tbody {
                        @for f in &features {
                            @let vals: Vec<f64> = series.iter().map(|(_, m)| m.get(*f).copied().unwrap_or(0.0)).collect();
                            tr {
                                th scope="row" { (f) }
                                td { (chart::sparkline(&vals, f)) }
                                td { (chart::fmt(vals.last().copied().unwrap_or(0.0))) }
                                td { @if let Some(u) = score.as_ref().and_then(|sc| sc.usual.get(*f)) { (chart::fmt(*u)) } }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="ctl-h" {
            h2 #ctl-h { "Controls" }
            @if breaker.is_some() {
                form method="post" action=(format!("/agents/{}/unfreeze", urlencode(&name))) {
                    input type="hidden" name="_csrf" value=(op.csrf);
                    p { "Unfreezing closes the breaker and forgets the reverts that opened it." }
                    button.primary type="submit" { "Unfreeze " (name) }
                }
            } @else {
                form method="post" action=(format!("/agents/{}/freeze", urlencode(&name))) {
                    input type="hidden" name="_csrf" value=(op.csrf);
                    p { "Freezing holds every mutation it submits until an operator unfreezes it." }
                    button.danger type="submit" { "Freeze " (name) }
                }
            }
            form method="get" action=(format!("/agents/{}/undo", urlencode(&name))) {
                label for="since" { "Undo its changes since (e.g. 30m, 2h, 1d)" }
                input #since name="since" value="1h" size="6" required;
                button type="submit" { "Preview the undo" }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout(&format!("Agent {name}"), Nav::Agents, &chrome, body),
    )
}

async fn set_freeze(s: AppState, op: Operator, name: String, freeze: bool) -> Response {
    let done = if freeze {
        s.gate.freeze(&name, &op.name).await
    } else {
        s.gate.reset_breaker(&name, &op.name).await
    };
    match done {
        Ok(()) => Redirect::to(&format!("/agents/{}", urlencode(&name))).into_response(),
        Err(e) => gate_error(e),
    }
}

pub async fn freeze(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Posted(op, _): Posted<CsrfForm>,
) -> Response {
    set_freeze(s, op, name, true).await
}

pub async fn unfreeze(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Posted(op, _): Posted<CsrfForm>,
) -> Response {
    set_freeze(s, op, name, false).await
}

#[derive(Deserialize)]
pub struct UndoQuery {
    #[serde(default)]
    since: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

impl CsrfToken for UndoQuery {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// `since` as ms since the epoch: a duration before now, or a timestamp.
fn since_ms(since: &str, now: i64) -> Result<i64, String> {
    let t = since.trim();
    if let Ok(ms) = t.parse::<i64>()
        && ms > 1_000_000_000_000
    {
        return Ok(ms);
    }
    airlock_core::Secs::parse(t)
        .map(|d| now - d.ms())
        .map_err(|e| format!("`{t}` is not a duration like 30m, 2h or 1d: {e}"))
}

pub async fn undo_preview(
    State(s): State<AppState>,
    op: Operator,
    Path(name): Path<String>,
    Query(q): Query<UndoQuery>,
) -> Response {
    let since = match since_ms(&q.since, s.gate.now()) {
        Ok(t) => t,
        Err(e) => return error_page(&e, StatusCode::BAD_REQUEST),
    };
    let items = match s.gate.undo_preview(&name, since).await {
        Ok(i) => i,
        Err(e) => return gate_error(e),
    };
    let reverts = items
        .iter()
        .filter(|i| i.reached && matches!(i.check, RevertCheck::Clean { .. }))
        .count();
    let conflict = items
        .iter()
        .find(|i| matches!(i.check, RevertCheck::Conflict { .. }));
    let chrome = Chrome::of(&s, &op).await;
    let body = html! {
        p { "Undoing " strong { (name) } "'s changes since " (time(since)) " reverts them newest first and stops at the first it cannot revert. Nothing is overwritten. Nothing has changed yet." }
        @if items.is_empty() {
            p.empty { "It has no change to revert since then." }
        } @else {
            table.undo {
                caption { (reverts) " would be reverted" @if conflict.is_some() { ", then the undo stops at a conflict" } }
                thead { tr { th scope="col" { "Applied" } th scope="col" { "Change" } th scope="col" { "What" } th scope="col" { "Status" } th scope="col" { "Would" } } }
                tbody {
                    @for i in &items {
                        tr {
                            td { (time(i.applied_at)) }
                            td { a href=(format!("/changes/{}", i.change_id)) { code { (i.change_id) } } }
                            td { (i.summary) }
                            td { (badge(i.status.as_str())) }
                            td { @match (&i.check, i.reached) {
                                (_, false) => { span.muted { "not reached (the undo stops at the conflict above)" } }
                                (RevertCheck::Clean { detail }, true) => { span.ok { "revert" } " — " (detail) }
                                (RevertCheck::Conflict { detail }, true) => { span.bad { "conflict" } " — " (detail) }
                                (RevertCheck::NotRevertible { detail }, true) => { (detail) }
                            } }
                        }
                    }
                }
            }
            form method="post" action=(format!("/agents/{}/undo", urlencode(&name))) {
                input type="hidden" name="_csrf" value=(op.csrf);
                input type="hidden" name="since" value=(since);
                button.danger type="submit" { "Undo: revert " (reverts) " change" @if reverts != 1 { "s" } }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout(&format!("Undo {name}"), Nav::Agents, &chrome, body),
    )
}

pub async fn undo(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Posted(op, f): Posted<UndoQuery>,
) -> Response {
    let since = match since_ms(&f.since, s.gate.now()) {
        Ok(t) => t,
        Err(e) => return error_page(&e, StatusCode::BAD_REQUEST),
    };
    let outcomes = match s.door.undo(&name, since, &op.name).await {
        Ok(o) => o,
        Err(e) => return gate_error(e),
    };
    let chrome = Chrome::of(&s, &op).await;
    let reverted = outcomes
        .iter()
        .filter(|o| matches!(o, BakeOutcome::Reverted { .. }))
        .count();
    let body = html! {
        p role="status" #undo-result { "Reverted " (reverted) " change" @if reverted != 1 { "s" } "."
            @if outcomes.iter().any(|o| matches!(o, BakeOutcome::NeedsAttention { .. })) { " Stopped at a conflict: that change needs attention." } }
        ul { @for o in &outcomes { li { code { (serde_json::to_string(o).unwrap_or_default()) } } } }
        p { a href=(format!("/agents/{}", urlencode(&name))) { "Back to " (name) } }
    };
    respond(
        StatusCode::OK,
        layout(&format!("Undone: {name}"), Nav::Agents, &chrome, body),
    )
}

// ---------------------------------------------------------------------------------------
// Kill switch

pub async fn killswitch(State(s): State<AppState>, op: Operator) -> Response {
    let chrome = Chrome::of(&s, &op).await;
    let on = chrome.killswitch;
    let body = html! {
        section.card {
            p #kill-state { "The kill switch is " strong { (if on { "ON: every mutation of every agent is denied." } else { "off." }) } }
            p { "Reads, reverts and undo keep working while it is on. Turning it on or off is journaled with your name." }
            form method="post" action="/killswitch" {
                input type="hidden" name="_csrf" value=(op.csrf);
                @if on {
                    input type="hidden" name="state" value="off";
                    button.primary type="submit" { "Turn the kill switch off" }
                } @else {
                    input type="hidden" name="state" value="on";
                    p { label { input type="checkbox" name="confirm" value="yes" required; " I understand: every agent's mutations will be denied until it is turned off." } }
                    button.danger type="submit" { "Turn the kill switch on" }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout("Kill switch", Nav::Killswitch, &chrome, body),
    )
}

#[derive(Deserialize)]
pub struct KillForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    state: Option<String>,
    confirm: Option<String>,
}

impl CsrfToken for KillForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

pub async fn set_killswitch(
    State(s): State<AppState>,
    Posted(op, f): Posted<KillForm>,
) -> Response {
    let on = match f.state.as_deref() {
        Some("on") if f.confirm.as_deref() == Some("yes") => true,
        Some("on") => {
            return error_page(
                "Confirm that every agent's mutations will be denied: tick the box.",
                StatusCode::BAD_REQUEST,
            );
        }
        Some("off") => false,
        _ => return error_page("Say on or off.", StatusCode::BAD_REQUEST),
    };
    match s.gate.set_killswitch(on, &op.name).await {
        Ok(()) => Redirect::to("/killswitch").into_response(),
        Err(e) => gate_error(e),
    }
}

// ---------------------------------------------------------------------------------------
// Journal

#[derive(Deserialize, Default)]
pub struct JournalQuery {
    before: Option<i64>,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    agent: String,
}

fn journal_body(
    q: &JournalQuery,
    events: &[Event],
    next: Option<i64>,
    op: &Operator,
    verified: Option<Markup>,
) -> Markup {
    html! {
        section.card aria-labelledby="ver-h" {
            h2 #ver-h { "Integrity" }
            @if let Some(v) = verified { (v) } @else {
                p { "Verifying recomputes every event's hash from the first: it reads the whole journal." }
            }
            form method="post" action="/journal/verify" {
                input type="hidden" name="_csrf" value=(op.csrf);
                button type="submit" { "Verify the chain now" }
            }
        }
        form.filters method="get" action="/journal" role="search" {
            label { "Kind " input name="kind" value=(q.kind) size="12" placeholder="e.g. verdict"; }
            label { "Agent " input name="agent" value=(q.agent) size="14"; }
            button type="submit" { "Filter" }
        }
        table.journal {
            caption { "Journal events, newest first" }
            thead { tr { th scope="col" { "Seq" } th scope="col" { "Time" } th scope="col" { "Kind" } th scope="col" { "Agent" } th scope="col" { "Summary" } th scope="col" { "Hash" } } }
            tbody { @for e in events { tr {
                td { (e.seq) } td { (time(e.ts)) } td { (badge(e.kind.as_str())) }
                td { (e.agent.as_deref().unwrap_or("")) }
                td { (timeline::summarize(e.kind.as_str(), e.agent.as_deref(), &e.payload)) }
                td { code title=(e.hash) { (e.hash.get(..12).unwrap_or(&e.hash)) } }
            } } }
        }
        @if let Some(n) = next {
            p { a.more href=(format!("/journal?kind={}&agent={}&before={n}", urlencode(q.kind.trim()), urlencode(q.agent.trim()))) { "Older →" } }
        }
    }
}

pub async fn journal(
    State(s): State<AppState>,
    op: Operator,
    Query(q): Query<JournalQuery>,
) -> Response {
    let kind = match q.kind.trim() {
        "" => None,
        k => match EventKind::parse(k) {
            Some(k) => Some(k),
            None => {
                return error_page(
                    &format!("Unknown event kind `{k}`."),
                    StatusCode::BAD_REQUEST,
                );
            }
        },
    };
    let agent = (!q.agent.trim().is_empty()).then(|| q.agent.trim().to_string());
    let (events, next) = match newest(&s, kind, agent, q.before).await {
        Ok(page) => page,
        Err(r) => return r,
    };
    let chrome = Chrome::of(&s, &op).await;
    respond(
        StatusCode::OK,
        layout(
            "Journal",
            Nav::Journal,
            &chrome,
            journal_body(&q, &events, next, &op, None),
        ),
    )
}

pub async fn verify(State(s): State<AppState>, Posted(op, _): Posted<CsrfForm>) -> Response {
    let report = s.journal.verify().await;
    let verified = match &report {
        Ok(r) if r.ok() => {
            html! { p.ok #verify-result role="status" { "Verified: the chain of " (r.events) " events holds; head " code { (r.head.get(..16).unwrap_or(&r.head)) } "." } }
        }
        Ok(r) => {
            html! { p.bad #verify-result role="alert" { "BROKEN: " (r.events) " events intact, then " (serde_json::to_string(&r.first_broken).unwrap_or_default()) } }
        }
        Err(e) => {
            html! { p.bad #verify-result role="alert" { "Could not verify: " (e.to_string()) } }
        }
    };
    let q = JournalQuery::default();
    let (events, next) = newest(&s, None, None, None).await.unwrap_or_default();
    let chrome = Chrome::of(&s, &op).await;
    let status = if matches!(&report, Ok(r) if r.ok()) {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    respond(
        status,
        layout(
            "Journal",
            Nav::Journal,
            &chrome,
            journal_body(&q, &events, next, &op, Some(verified)),
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Reports

/// A report's file name: letters, digits, `.`, `-`, `_`, ending in `.html`, no path.
fn report_name(name: &str) -> bool {
    name.ends_with(".html")
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

pub async fn reports(State(s): State<AppState>, op: Operator) -> Response {
    let dir = super::of(&s).and_then(|d| d.reports.clone());
    let mut files: Vec<(String, u64)> = Vec::new();
    if let Some(dir) = &dir
        && let Ok(rd) = std::fs::read_dir(dir)
    {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if report_name(&name) {
                files.push((name, e.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
    }
    files.sort();
    let chrome = Chrome::of(&s, &op).await;
    let body = html! {
        @match &dir {
            None => { p.empty { "No reports directory is configured: set " code { "[dashboard] reports_dir" } " to where " code { "airlock prove --report" } " writes." } }
            Some(d) => {
                p { "Proving-ground reports in " code { (d.display().to_string()) } "." }
                @if files.is_empty() { p.empty { "None yet: " code { "airlock prove --mode both --report " (d.display().to_string()) "/run.html" } } }
                ul.reports { @for (f, size) in &files { li { a href=(format!("/reports/{f}")) { (f) } " " span.muted { "(" (size / 1024) " KiB)" } } } }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout("Reports", Nav::Reports, &chrome, body),
    )
}

pub async fn report(
    State(s): State<AppState>,
    _op: Operator,
    Path(file): Path<String>,
) -> Response {
    let Some(dir) = super::of(&s).and_then(|d| d.reports.clone()) else {
        return error_page("No reports directory is configured.", StatusCode::NOT_FOUND);
    };
    if !report_name(&file) {
        return error_page("Not a report's name.", StatusCode::BAD_REQUEST);
    }
    match tokio::fs::read(dir.join(&file)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                // The report runs in a sandbox of its own origin: it cannot read the
                // dashboard's cookies or pages, nor post anything.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "sandbox allow-scripts; default-src 'none'; img-src data:; \
                     style-src 'unsafe-inline'; script-src 'unsafe-inline'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => error_page(&format!("No report `{file}`."), StatusCode::NOT_FOUND),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_changes_show_only_what_differs() {
        let b = serde_json::json!({"replicas": 4, "version": "v1"});
        let a = serde_json::json!({"replicas": 8, "version": "v1"});
        assert_eq!(
            field_changes(Some(&b), Some(&a)),
            vec![("replicas".into(), "4".into(), "8".into())]
        );
        let gone = field_changes(Some(&b), Some(&Value::Null));
        assert_eq!(gone[0].2, "does not exist");
    }

    #[test]
    fn report_names_never_leave_the_directory() {
        assert!(report_name("run-1.html"));
        for bad in [
            "../x.html",
            "a/b.html",
            ".hidden.html",
            "x.htm",
            "x.html/..",
            "%2e.html",
        ] {
            assert!(!report_name(bad), "{bad}");
        }
    }

    #[test]
    fn since_takes_a_duration_or_a_timestamp() {
        assert_eq!(since_ms("30m", 10_000_000), Ok(10_000_000 - 1_800_000));
        assert_eq!(since_ms("1767618900000", 0), Ok(1_767_618_900_000));
        assert!(since_ms("soon", 0).is_err());
    }
}
