//! The HTTP API: routes, authentication, error mapping and handlers.

use crate::metrics::{AgentLabels, DecisionLabels, Metrics, StatusLabels};
pub use crate::state::AppState;
use crate::state::bearer;
use airlock_core::{ActionRequest, ActionStatus, Event, EventKind};
use airlock_gate::frontdoor::{ActionView, CallError};
use airlock_gate::{BakeOutcome, Decision, GateError, Observer, Principal, PrincipalKind2};
use airlock_store::{EventQuery, Journal};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::Duration;

/// The `/v1` API and the operational endpoints, as routes over the shared state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/actions", post(submit).get(list_actions))
        .route("/v1/actions/{id}", get(get_action))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", post(resolve_approval))
        .route("/v1/changes/{id}", get(get_change))
        .route("/v1/changes/{id}/revert", post(revert_change))
        .route("/v1/changes/{id}/timeline", get(change_timeline))
        .route("/v1/undo", post(undo))
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/{id}", get(get_agent))
        .route("/v1/agents/{id}/freeze", post(freeze))
        .route("/v1/agents/{id}/unfreeze", post(unfreeze))
        .route("/v1/killswitch", post(killswitch).get(killswitch_state))
        .route("/v1/tokens", post(create_token))
        .route("/v1/tokens/{name}/revoke", post(revoke_token))
        .route("/v1/events", get(events))
        .route("/v1/journal", get(journal))
        .route("/v1/tools", get(list_tools))
        .route("/v1/tools/{name}", post(call_tool))
}

fn missing_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "missing bearer token: send `Authorization: Bearer TOKEN`",
    )
}

async fn list_tools(State(s): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(serde_json::to_value(s.door.tools().as_ref()).unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolCall {
    #[serde(default)]
    arguments: serde_json::Map<String, Value>,
}

/// A tool call over plain HTTP (what `airlock mcp` uses with `AIRLOCK_URL`): the answer.
async fn call_tool(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let token = bearer(&headers).ok_or_else(missing_token)?;
    let call: ToolCall = body(bytes)?;
    match s.door.call_tool(token, &name, Some(call.arguments)).await {
        Ok((view, _)) => Ok((answer_status(&view), Json(view)).into_response()),
        Err(e) => Err(match &e {
            CallError::UnknownTool(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_tool", e.to_string())
            }
            CallError::InvalidArguments { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_arguments", e.to_string())
            }
            CallError::Unauthenticated(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            CallError::Forbidden(_) => ApiError::forbidden(e.to_string()),
            CallError::Unavailable(_) => ApiError::internal(&e),
        }),
    }
}

/// 202 while an action is held for an operator, 200 otherwise.
fn answer_status(view: &ActionView) -> StatusCode {
    if view.status == ActionStatus::Held {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

/// An API error: its status and a message safe to show.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server cannot complete this now; see its log",
        )
    }
}

impl From<GateError> for ApiError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Unauthenticated => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            GateError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
            GateError::UnknownProvider(_) | GateError::Invalid(_) => {
                Self::bad_request(e.to_string())
            }
            GateError::NotFound(..) => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            GateError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            GateError::Journal(inner) => Self::internal(inner),
        }
    }
}

impl From<airlock_store::StoreError> for ApiError {
    fn from(e: airlock_store::StoreError) -> Self {
        Self::internal(e)
    }
}

// axum's own rejections answer in plain text; every API error is the JSON envelope.
impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is over the limit set by `server.body_limit_bytes`",
            )
        } else {
            Self::bad_request(format!("cannot read the request body: {}", e.body_text()))
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        let text = e.body_text();
        let detail = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        Self::bad_request(format!("invalid query string: {detail}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The authenticated caller, from `Authorization: Bearer TOKEN`.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(missing_token)?;
        Ok(Caller(state.door.authenticate(token).await?))
    }
}

impl Caller {
    /// Operators see everything; agents see only what is theirs (as in `list_actions`).
    fn own(&self, owner: Option<&str>, what: &str) -> ApiResult<()> {
        match self.0.kind {
            PrincipalKind2::Agent if owner != Some(self.0.name.as_str()) => Err(
                ApiError::forbidden(format!("agents may see only their own {what}")),
            ),
            _ => Ok(()),
        }
    }

    fn operator(&self) -> ApiResult<&str> {
        match self.0.kind {
            PrincipalKind2::Operator => Ok(&self.0.name),
            PrincipalKind2::Agent => Err(ApiError::forbidden(format!(
                "agent `{}` cannot use operator endpoints",
                self.0.name
            ))),
        }
    }
}

/// Parses a JSON body strictly: malformed JSON or an unknown field is a 400 naming it.
fn body<T: DeserializeOwned>(bytes: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    serde_json::from_slice(&bytes?)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s
        .journal
        .read(EventQuery {
            limit: Some(1),
            descending: true,
            ..Default::default()
        })
        .await
    {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: journal unreadable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "journal unavailable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    s.metrics
        .pending_holds
        .set(s.gate.approvals().await.len() as i64);
    s.metrics
        .killswitch
        .set(i64::from(s.gate.killswitch().await));
    s.metrics.anomaly.clear();
    for (agent, score) in s.gate.anomaly_scores().await {
        s.metrics
            .anomaly
            .get_or_create(&AgentLabels { agent })
            .set(score.value);
    }
    s.metrics.breaker_open.clear();
    for (agent, _) in s.gate.open_breakers().await {
        s.metrics
            .breaker_open
            .get_or_create(&AgentLabels { agent })
            .set(1);
    }
    let sim: Vec<(String, airlock_core::slo::Counters)> = match &s.sim {
        Some(handle) => match handle.lock() {
            Ok(sim) => sim
                .spec()
                .services
                .iter()
                .filter_map(|svc| sim.counters(&svc.name).map(|c| (svc.name.clone(), c)))
                .collect(),
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode_with(&sim),
    )
        .into_response()
}

async fn openapi(State(s): State<AppState>) -> Json<Value> {
    Json((*s.openapi).clone())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitQuery {
    #[serde(default)]
    wait: bool,
    timeout_s: Option<u64>,
}

/// Counts decisions, their latency and the changes they start or finish.
impl Observer for Metrics {
    fn decided(&self, d: &Decision, elapsed: Duration) {
        self.decision_seconds.observe(elapsed.as_secs_f64());
        self.decisions
            .get_or_create(&DecisionLabels {
                verdict: d.verdict.to_string(),
                agent: d.agent.clone(),
            })
            .inc();
        if d.applied() {
            self.changes
                .get_or_create(&StatusLabels {
                    status: ActionStatus::Baking.to_string(),
                })
                .inc();
        }
    }

    fn baked(&self, o: &BakeOutcome) {
        let status = match o {
            BakeOutcome::Reverted { .. } => {
                self.reverts.inc();
                "reverted"
            }
            BakeOutcome::NeedsAttention { .. } => "needs_attention",
            BakeOutcome::Settled { .. } => "settled",
        };
        self.changes
            .get_or_create(&StatusLabels {
                status: status.into(),
            })
            .inc();
    }
}

async fn submit(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<SubmitQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    if caller.0.kind != PrincipalKind2::Agent {
        return Err(ApiError::forbidden(format!(
            "operator `{}`: actions are submitted by agents",
            caller.0.name
        )));
    }
    let Query(q) = q?;
    let req: ActionRequest = body(bytes)?;
    let wait = q
        .wait
        .then(|| Duration::from_secs(q.timeout_s.unwrap_or(60)));
    let view = s.door.submit_and_wait(&caller.0, req, wait).await?;
    let status = if view.waited.is_some() {
        StatusCode::OK
    } else {
        answer_status(&view)
    };
    Ok((status, Json(view)).into_response())
}

async fn get_action(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ActionView>> {
    match s.door.action(&caller.0, &id).await {
        Err(GateError::NotFound(..)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("unknown action `{id}`"),
        )),
        other => Ok(Json(other?)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    agent: Option<String>,
    status: Option<ActionStatus>,
    /// Only actions submitted at or after this time (ms since the epoch).
    since: Option<i64>,
    /// Cursor: the `next` value of the previous page.
    after: Option<i64>,
    limit: Option<u32>,
}

async fn list_actions(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    // Agents see their own actions only.
    let agent = match caller.0.kind {
        PrincipalKind2::Agent => {
            if q.agent.as_ref().is_some_and(|a| a != &caller.0.name) {
                return Err(ApiError::forbidden(
                    "agents may list only their own actions",
                ));
            }
            Some(caller.0.name.clone())
        }
        PrincipalKind2::Operator => q.agent.clone(),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let requests = s
        .journal
        .read(EventQuery {
            kind: Some(EventKind::Request),
            agent,
            after_seq: q.after,
            limit: Some(limit),
            descending: true,
            ..Default::default()
        })
        .await?;
    let next = if requests.len() as u32 == limit {
        requests.last().map(|e| e.seq)
    } else {
        None
    };
    let mut items = Vec::new();
    for r in requests
        .iter()
        .filter(|r| q.since.is_none_or(|t| r.ts >= t))
    {
        let Some(id) = &r.action_id else { continue };
        if let Some(v) = airlock_gate::frontdoor::action_view(s.journal.as_ref(), id).await?
            && q.status.is_none_or(|st| v.status == st)
        {
            items.push(v);
        }
    }
    Ok(Json(json!({"items": items, "next": next})))
}

async fn list_approvals(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.operator()?;
    Ok(Json(json!({"items": s.gate.approvals().await})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolution {
    decision: DecisionWord,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DecisionWord {
    Approve,
    Deny,
}

async fn resolve_approval(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ActionView>> {
    if caller.0.kind == PrincipalKind2::Agent {
        return Err(ApiError::forbidden(format!(
            "agent `{}`: agents never approve",
            caller.0.name
        )));
    }
    let r: Resolution = body(bytes)?;
    let d = s
        .door
        .resolve(
            &id,
            &caller.0,
            r.decision == DecisionWord::Approve,
            &r.reason,
        )
        .await?;
    Ok(Json(ActionView::from(&d)))
}

async fn get_change(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rec = s.journal.change(&id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("unknown change `{id}`"),
        )
    })?;
    caller.own(Some(&rec.agent), "changes")?;
    Ok(Json(serde_json::to_value(rec).unwrap_or_default()))
}

/// The change's story: its action's and its own events and the bake's evaluations.
async fn change_timeline(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let timeline = crate::timeline::timeline(s.journal.as_ref(), &id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("unknown change `{id}`"),
            )
        })?;
    caller.own(timeline["agent"].as_str(), "changes")?;
    Ok(Json(timeline))
}

async fn revert_change(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let by = caller.operator()?.to_string();
    let o = s.door.revert(&id, &by).await?;
    let conflict = matches!(o, BakeOutcome::NeedsAttention { .. });
    let body = serde_json::to_value(&o).unwrap_or_default();
    Ok((
        if conflict {
            StatusCode::CONFLICT
        } else {
            StatusCode::OK
        },
        Json(body),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UndoBody {
    agent: String,
    /// `30m`, `2h`, … before now, or a timestamp in ms since the epoch.
    since: Value,
}

async fn undo(
    State(s): State<AppState>,
    caller: Caller,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let by = caller.operator()?.to_string();
    let b: UndoBody = body(bytes)?;
    let since = match &b.since {
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            ApiError::bad_request("`since` must be an integer timestamp or a duration")
        })?,
        Value::String(d) => {
            let secs = airlock_core::Secs::parse(d).map_err(ApiError::bad_request)?;
            s.gate.now() - secs.ms()
        }
        _ => {
            return Err(ApiError::bad_request(
                "`since` must be a duration like `30m` or a timestamp in ms",
            ));
        }
    };
    let outcomes = s.door.undo(&b.agent, since, &by).await?;
    let stopped = outcomes
        .iter()
        .any(|o| matches!(o, BakeOutcome::NeedsAttention { .. }));
    let items: Vec<Value> = outcomes
        .iter()
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect();
    Ok(Json(
        json!({"reverted": items.iter().filter(|i| i["outcome"] == "reverted").count(), "stopped_on_conflict": stopped, "items": items}),
    ))
}

/// Every agent the gate has scored: its anomaly score, what it rests on, its breaker.
async fn list_agents(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.operator()?;
    let breakers: std::collections::BTreeMap<String, String> =
        s.gate.open_breakers().await.into_iter().collect();
    let items: Vec<Value> = s
        .gate
        .anomaly_scores()
        .await
        .into_iter()
        .map(|(agent, score)| {
            json!({"agent": agent, "anomaly": score, "breaker": breakers.get(&agent)})
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

/// One agent's recent behaviour series (the features at each slot of the last hour), its
/// anomaly score and its breaker.
async fn get_agent(
    State(s): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.operator()?;
    let (series, score) = s.gate.behaviour_of(&agent).await;
    let breaker = s.gate.breaker(&agent).await;
    if score.is_none() && breaker.is_none() {
        return Err(GateError::NotFound("agent", agent).into());
    }
    let series: Vec<Value> = series
        .into_iter()
        .map(|(t, f)| json!({"t": t, "features": f}))
        .collect();
    Ok(Json(
        json!({"agent": agent, "anomaly": score, "breaker": breaker, "series": series}),
    ))
}

async fn freeze(
    State(s): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> ApiResult<Json<Value>> {
    let by = caller.operator()?.to_string();
    s.gate.freeze(&agent, &by).await?;
    Ok(Json(json!({"agent": agent, "frozen": true})))
}

async fn unfreeze(
    State(s): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> ApiResult<Json<Value>> {
    let by = caller.operator()?.to_string();
    s.gate.reset_breaker(&agent, &by).await?;
    Ok(Json(json!({"agent": agent, "frozen": false})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillBody {
    state: OnOff,
}

#[derive(Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum OnOff {
    On,
    Off,
}

async fn killswitch(
    State(s): State<AppState>,
    caller: Caller,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let by = caller.operator()?.to_string();
    let b: KillBody = body(bytes)?;
    s.gate.set_killswitch(b.state == OnOff::On, &by).await?;
    Ok(Json(
        json!({"killswitch": if b.state == OnOff::On { "on" } else { "off" }}),
    ))
}

async fn killswitch_state(State(s): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(json!({"killswitch": if s.gate.killswitch().await { "on" } else { "off" }}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    kind: TokenKind,
}

#[derive(Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum TokenKind {
    Agent,
    Operator,
}

async fn create_token(
    State(s): State<AppState>,
    caller: Caller,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    caller.operator()?;
    let b: TokenBody = body(bytes)?;
    let kind = if b.kind == TokenKind::Agent {
        PrincipalKind2::Agent
    } else {
        PrincipalKind2::Operator
    };
    let token = s.gate.issue_token(&b.name, kind).await?;
    Ok(Json(
        json!({"name": b.name, "kind": if b.kind == TokenKind::Agent { "agent" } else { "operator" }, "token": token}),
    ))
}

async fn revoke_token(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let by = caller.operator()?.to_string();
    s.gate.revoke(&name, &by).await?;
    Ok(Json(json!({"name": name, "revoked": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalQuery {
    after: Option<i64>,
    limit: Option<u32>,
    agent: Option<String>,
    kind: Option<String>,
}

async fn journal(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<JournalQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.operator()?;
    let Query(q) = q?;
    let kind = match &q.kind {
        Some(k) => Some(
            EventKind::parse(k)
                .ok_or_else(|| ApiError::bad_request(format!("unknown event kind `{k}`")))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = s
        .journal
        .read(EventQuery {
            after_seq: q.after,
            limit: Some(limit),
            agent: q.agent,
            kind,
            ..Default::default()
        })
        .await?;
    let next = if items.len() as u32 == limit {
        items.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(json!({"items": items, "next": next})))
}

fn sse_event(e: &Event) -> SseEvent {
    SseEvent::default()
        .id(e.seq.to_string())
        .event(e.kind.as_str())
        .data(serde_json::to_string(e).unwrap_or_default())
}

async fn events(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    caller.operator()?;
    let last: Option<i64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    // Subscribe first, then read the backlog, so nothing falls between the two.
    let rx = s.journal.subscribe();
    let mut backlog = Vec::new();
    if let Some(mut after) = last {
        // The whole backlog, page by page.
        loop {
            let page = s
                .journal
                .read(EventQuery {
                    after_seq: Some(after),
                    limit: Some(1000),
                    ..Default::default()
                })
                .await?;
            let Some(tail) = page.last() else { break };
            after = tail.seq;
            let full = page.len() == 1000;
            backlog.extend(page);
            if !full {
                break;
            }
        }
    }
    let mut sent = backlog.last().map(|e| e.seq).or(last).unwrap_or(0);
    let live = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |r| {
        let out = match r {
            Ok(e) if e.seq > sent => {
                sent = e.seq;
                Some(Ok(sse_event(&e)))
            }
            _ => None,
        };
        async move { out }
    });
    let head = stream::iter(backlog.into_iter().map(|e| Ok(sse_event(&e))));
    Ok(Sse::new(head.chain(live).take_until({
        let mut down = s.shutdown.clone();
        async move {
            let _ = down.wait_for(|stopping| *stopping).await;
        }
    }))
    .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
