//! The HTTP API: routes, authentication, error mapping and handlers. Each handler carries
//! its `#[utoipa::path]` and each body its schema: `crate::openapi` assembles the document
//! from them.

use crate::metrics::{AgentLabels, DecisionLabels, Metrics, StatusLabels};
use crate::openapi::{
    BadRequest, Forbidden, PayloadTooLarge, RevertConflict, Unauthorized, Unavailable,
};
pub use crate::state::AppState;
use crate::state::bearer;
use crate::timeline::Timeline;
use airlock_core::{ActionRequest, ActionStatus, Event, EventKind};
use airlock_gate::behaviour::Score;
use airlock_gate::frontdoor::{ActionView, CallError, Catalog};
use airlock_gate::{
    ApprovalView, BakeOutcome, Decision, GateError, Observer, Principal, PrincipalKind2,
};
use airlock_store::{ChangeRecord, EventQuery, Journal};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// Declares the route table once: [`routes`] serves it and [`ROUTES`] lists it, so the
/// OpenAPI test can check that every route is documented with its method.
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:ident,)*) => {
        /// Every route [`routes`] serves, as (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)*];

        /// The `/v1` API and the operational endpoints, as routes over the shared state.
        pub fn routes() -> Router<AppState> {
            Router::new()$(.route($path, axum::routing::$method($handler)))*
        }
    };
}

route_table! {
    get "/healthz" => healthz,
    get "/readyz" => readyz,
    get "/metrics" => metrics,
    get "/openapi.json" => openapi,
    post "/v1/actions" => submit,
    post "/v1/actions/ran" => report_ran,
    get "/v1/actions" => list_actions,
    get "/v1/actions/{id}" => get_action,
    get "/v1/approvals" => list_approvals,
    post "/v1/approvals/{id}" => resolve_approval,
    get "/v1/changes/{id}" => get_change,
    post "/v1/changes/{id}/revert" => revert_change,
    get "/v1/changes/{id}/timeline" => change_timeline,
    post "/v1/undo" => undo,
    get "/v1/agents" => list_agents,
    get "/v1/agents/{id}" => get_agent,
    post "/v1/agents/{id}/freeze" => freeze,
    post "/v1/agents/{id}/unfreeze" => unfreeze,
    post "/v1/killswitch" => killswitch,
    get "/v1/killswitch" => killswitch_state,
    post "/v1/tokens" => create_token,
    post "/v1/tokens/{name}/revoke" => revoke_token,
    get "/v1/events" => events,
    get "/v1/journal" => journal,
    get "/v1/tools" => list_tools,
    get "/v1/whoami" => whoami,
    post "/v1/tools/{name}" => call_tool,
}

fn missing_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthenticated,
        "missing bearer token: send `Authorization: Bearer TOKEN`",
    )
}

/// Who a token is
///
/// Any authenticated caller: the principal its token names (`kind` `agent` or `operator`).
/// Lets a client check its token without asking for anything.
#[utoipa::path(get, path = "/v1/whoami", tag = "tokens", operation_id = "whoami",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller.", body = airlock_gate::Principal,
            example = json!({"name": "coder", "kind": "agent"})),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    ))]
async fn whoami(caller: Caller) -> Json<Principal> {
    Json(caller.0)
}

/// The MCP gateway's tools
///
/// Any authenticated caller. What `tools/list` on `/mcp` shows, with each tool's route
/// (`airlock mcp` with `AIRLOCK_URL` lists these).
#[utoipa::path(get, path = "/v1/tools", tag = "mcp", operation_id = "listTools",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tools.", body = Catalog),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    ))]
async fn list_tools(State(s): State<AppState>, _caller: Caller) -> Json<Catalog> {
    Json(s.door.tools().as_ref().clone())
}

/// A tool call over plain HTTP.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"arguments": {"target": "checkout", "replicas": 6}}))]
pub struct ToolCall {
    /// The tool's arguments, checked against its input schema.
    #[serde(default)]
    #[schema(value_type = Object)]
    arguments: serde_json::Map<String, Value>,
}

/// Call a tool through the gate
///
/// Agents only. The same path as `tools/call` on `/mcp`: the arguments are checked against
/// the tool's schema, mapped onto an action request and submitted as the calling agent.
/// `airlock mcp` with `AIRLOCK_URL` uses it.
#[utoipa::path(post, path = "/v1/tools/{name}", tag = "mcp", operation_id = "callTool",
    params(("name" = String, Path, description = "The tool's name.")),
    request_body = ToolCall,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Decided: allowed (and applied), or denied.", body = ActionView),
        (status = 202, description = "Held for an operator's approval.", body = ActionView),
        (status = 400, description = "Bad input (`bad_request`), or arguments that do not fit \
            the tool's schema (`invalid_arguments`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No tool of that name (`unknown_tool`).", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    ))]
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
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::UnknownTool, e.to_string())
            }
            CallError::InvalidArguments { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArguments,
                e.to_string(),
            ),
            CallError::Unauthenticated(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                e.to_string(),
            ),
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

/// What kind of error an answer is; each has its own HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: bad input.
    BadRequest,
    /// 400: tool arguments that do not fit the tool's schema.
    InvalidArguments,
    /// 401: no token, or an unknown or revoked one.
    Unauthenticated,
    /// 403: the caller may not do this.
    Forbidden,
    /// 404: an unknown id or name.
    NotFound,
    /// 404: an unknown tool.
    UnknownTool,
    /// 409: the request conflicts with the current state.
    Conflict,
    /// 413: the body is over `server.body_limit_bytes`.
    PayloadTooLarge,
    /// 503: the journal cannot be read or written; the detail is in the server's log.
    Unavailable,
}

/// Every error the API answers with. `code` follows the status: 400 `bad_request` or
/// `invalid_arguments`, 401 `unauthenticated`, 403 `forbidden`, 404 `not_found` or
/// `unknown_tool`, 409 `conflict`, 413 `payload_too_large`, 503 `unavailable`. Messages are
/// safe to show; internal details go to the server's log only.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error, example = json!({"error": {"code": "forbidden",
    "message": "agent `cost-bot`: agents never approve"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error's kind and a message naming the problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// An API error: its status and a message safe to show.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }
    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the server cannot complete this now; see its log",
        )
    }
}

impl From<GateError> for ApiError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                e.to_string(),
            ),
            GateError::Forbidden(_) => Self::forbidden(e.to_string()),
            GateError::UnknownProvider(_) | GateError::Invalid(_) => {
                Self::bad_request(e.to_string())
            }
            GateError::NotFound(..) => Self::not_found(e.to_string()),
            GateError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, e.to_string())
            }
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
                ErrorCode::PayloadTooLarge,
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
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
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
            PrincipalKind2::Operator | PrincipalKind2::Admin => Ok(&self.0.name),
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

/// Whether the process serves HTTP.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness
///
/// Answers while the process serves HTTP. No token needed.
#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz",
    responses((status = 200, description = "Alive.", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Whether the server can serve: `ready`, or `journal unavailable`.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    #[schema(example = "ready")]
    pub status: &'static str,
}

/// Readiness
///
/// Ready when the journal can be read. No token needed.
#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready.", body = Ready),
        (status = 503, description = "The journal cannot be read, or its last write failed \
            (until a write succeeds again).", body = Ready,
            example = json!({"status": "journal unavailable"})),
    ))]
async fn readyz(State(s): State<AppState>) -> Response {
    if let Err(e) = s.gate.journal_health() {
        tracing::warn!(error = %e, "not ready: journal writes fail");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Ready {
                status: "journal writes fail",
            }),
        )
            .into_response();
    }
    match s
        .journal
        .read(EventQuery {
            limit: Some(1),
            descending: true,
            ..Default::default()
        })
        .await
    {
        Ok(_) => Json(Ready { status: "ready" }).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: journal unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Ready {
                    status: "journal unavailable",
                }),
            )
                .into_response()
        }
    }
}

/// Prometheus metrics
///
/// OpenMetrics text: `airlock_decisions_total{verdict,agent}`, `airlock_decision_seconds`
/// (histogram), `airlock_changes_total{status}`, `airlock_reverts_total`,
/// `airlock_pending_holds`, `airlock_breaker_open{agent}`,
/// `airlock_agent_anomaly_score{agent}`, `airlock_killswitch`, `airlock_journal_writable`,
/// `airlock_journal_write_failures`, `airlock_alert_deliveries_total{receiver,outcome}`, and
/// with the live sandbox cloud its services' `airlock_sim_*` signals. No token needed.
#[utoipa::path(get, path = "/metrics", tag = "health", operation_id = "metrics",
    responses((status = 200, description = "The exposition text.", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn metrics(State(s): State<AppState>) -> Response {
    s.metrics
        .pending_holds
        .set(s.gate.approvals().await.len() as i64);
    s.metrics
        .killswitch
        .set(i64::from(s.gate.killswitch().await));
    s.metrics
        .journal_writable
        .set(i64::from(s.gate.journal_health().is_ok()));
    s.metrics
        .journal_write_failures
        .set(i64::try_from(s.gate.journal_write_failures()).unwrap_or(i64::MAX));
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

/// This document
///
/// The OpenAPI document, generated from the handlers and their types when the server
/// starts. No token needed.
#[utoipa::path(get, path = "/openapi.json", tag = "health", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)))]
async fn openapi(State(s): State<AppState>) -> Response {
    Json(s.openapi.as_ref()).into_response()
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SubmitQuery {
    /// Block until the action reaches an end, or `timeout_s` passes. Must be `true` or
    /// `false`.
    #[serde(default)]
    #[param(default = false)]
    wait: bool,
    /// Longest to wait with `wait=true`, in seconds; capped at `server.max_wait_s` (600 by
    /// default).
    #[param(default = 60)]
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
            BakeOutcome::Unjudged { .. } => "unjudged",
        };
        self.changes
            .get_or_create(&StatusLabels {
                status: status.into(),
            })
            .inc();
    }
}

/// Submit an action
///
/// Agents only. Plans the request with its provider, assesses risk and blast radius,
/// evaluates policy and guards, journals the verdict and, when allowed, applies a mutation
/// and starts baking it (or runs a read and returns its result).
///
/// Without `wait`: `200` for `allow` and `deny`, `202` for `hold` (an operator must approve
/// `approval_id`).
///
/// With `wait=true`: a `deny`, a `read` and an allowed action that failed to apply answer at
/// once as above, since there is nothing to wait for. A hold or an applied change blocks the
/// call until the action reaches an end (its change settled, unjudged, reverted or needs
/// attention; the hold denied, expired or refused because the plan changed) or `timeout_s`
/// runs out, and then answers `200` with `waited` set.
#[utoipa::path(post, path = "/v1/actions", tag = "actions", operation_id = "submitAction",
    params(SubmitQuery),
    request_body = ActionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Decided (`allow` or `deny`), or with `wait=true` for a \
            hold or an applied change, where the action ended up, with `waited`.",
            body = ActionView),
        (status = 202, description = "Held for an operator: `approval_id` is set.",
            body = ActionView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "The target resource does not exist (`not_found`).",
            body = ErrorBody),
        (status = 409, description = "The provider refused the plan as a conflict, e.g. \
            scaling a deleted service (`conflict`).", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    ))]
async fn submit(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<SubmitQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let agent = caller.0.require_agent()?;
    let Query(q) = q?;
    let req: ActionRequest = body(bytes)?;
    let wait = q
        .wait
        .then(|| Duration::from_secs(q.timeout_s.unwrap_or(60)));
    let view = s.door.submit_and_wait(&agent, req, wait).await?;
    let status = if view.waited.is_some() {
        StatusCode::OK
    } else {
        answer_status(&view)
    };
    let mut resp = (status, Json(view.clone())).into_response();
    // A rate-limited agent is told when the same request fits again.
    if let Some(after) = view.retry_after_s
        && let Ok(v) = axum::http::HeaderValue::from_str(&after.to_string())
    {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    Ok(resp)
}

/// What a coding agent reports after running a tool call it was handed back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RanBody {
    /// The request as it was submitted (the hook maps the tool call the same way).
    request: ActionRequest,
    /// Whether it succeeded, when the agent knows.
    #[serde(default)]
    succeeded: Option<bool>,
}

/// Report that an action ran
///
/// Agents only, for actions they carry out themselves (the hook's `shell` and `tool`
/// providers): the journal records that it ran (a `ran` event, linked to the action that
/// allowed it). A hold of the same plan that no operator answered is closed as answered at
/// the agent's prompt and leaves the queue.
#[utoipa::path(post, path = "/v1/actions/ran", tag = "actions", operation_id = "reportRan",
    request_body = RanBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recorded.", body = airlock_gate::RanReport),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    ))]
async fn report_ran(
    State(s): State<AppState>,
    caller: Caller,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<airlock_gate::RanReport>> {
    let agent = caller.0.require_agent()?;
    let b: RanBody = body(bytes)?;
    Ok(Json(s.door.ran(&agent, b.request, b.succeeded).await?))
}

/// Get an action
///
/// Operators see every action; an agent sees only its own.
#[utoipa::path(get, path = "/v1/actions/{id}", tag = "actions", operation_id = "getAction",
    params(("id" = String, Path, description = "The action id (`act_…`).")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The action.", body = ActionView),
        (status = 401, response = Unauthorized),
        (status = 403, description = "An agent asked for another agent's action \
            (`forbidden`).", body = ErrorBody),
        (status = 404, description = "Unknown action (`not_found`).", body = ErrorBody),
        (status = 503, response = Unavailable),
    ))]
async fn get_action(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ActionView>> {
    match s.door.action(&caller.0, &id).await {
        Err(GateError::NotFound(..)) => Err(ApiError::not_found(format!("unknown action `{id}`"))),
        other => Ok(Json(other?)),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this agent's actions (operators; an agent may name only itself).
    agent: Option<String>,
    /// Only actions with this status.
    status: Option<ActionStatus>,
    /// Only actions submitted at or after this time, in ms since the epoch.
    since: Option<i64>,
    /// Cursor: the `next` of the previous page.
    after: Option<i64>,
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<u32>,
}

/// A page of actions, newest first.
#[derive(Serialize, ToSchema)]
pub struct ActionList {
    pub items: Vec<ActionView>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<i64>,
}

/// List actions
///
/// Newest first, paged by the journal sequence of each action's request. Agents see only
/// their own actions. `status` is filtered within the page, so a page may hold fewer than
/// `limit` items while `next` is set.
#[utoipa::path(get, path = "/v1/actions", tag = "actions", operation_id = "listActions",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of actions.", body = ActionList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "An agent asked for another agent's actions \
            (`forbidden`).", body = ErrorBody),
        (status = 503, response = Unavailable),
    ))]
async fn list_actions(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<ActionList>> {
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
        PrincipalKind2::Operator | PrincipalKind2::Admin => q.agent.clone(),
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
    Ok(Json(ActionList { items, next }))
}

/// The pending holds, oldest first.
#[derive(Serialize, ToSchema)]
pub struct ApprovalList {
    pub items: Vec<ApprovalView>,
}

/// List pending holds
///
/// Operators only. Oldest first.
#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", operation_id = "listApprovals",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Pending holds.", body = ApprovalList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ))]
async fn list_approvals(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ApprovalList>> {
    caller.operator()?;
    Ok(Json(ApprovalList {
        items: s.gate.approvals().await,
    }))
}

/// An operator's answer to a hold.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"decision": "approve", "reason": "checked with the owning team"}))]
pub struct Resolution {
    decision: DecisionWord,
    /// Why; journaled with the decision.
    #[serde(default)]
    reason: String,
}

/// Approve or deny.
#[derive(Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionWord {
    Approve,
    Deny,
}

/// Approve or deny a hold
///
/// Operators only; agents never approve, and nobody approves their own request. An approval
/// is bound to the plan hash the operator saw: the request is planned again and, if the plan
/// changed, the approval is refused and the request is decided afresh under a new action id
/// (the answer is that new decision). With `approvals.two_person_critical`, a `critical` hold
/// needs two distinct operators: the first approval answers `hold` with `approved_by`
/// recorded. A denial answers `deny` with reason `operator-denied`. An approved action is
/// decided again with the approval in hand: a guard's deny (such as the kill switch) still
/// wins.
#[utoipa::path(post, path = "/v1/approvals/{id}", tag = "approvals",
    operation_id = "resolveApproval",
    params(("id" = String, Path, description = "The approval id (`apr_…`).")),
    request_body = Resolution,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The decision after this resolution.", body = ActionView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "Unknown or already resolved approval, or the re-planned \
            target no longer exists (`not_found`).", body = ErrorBody),
        (status = 409, description = "Re-planning the request hit a conflict (`conflict`).",
            body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    ))]
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

/// Get a change
///
/// Operators see every change; an agent sees only its own.
#[utoipa::path(get, path = "/v1/changes/{id}", tag = "changes", operation_id = "getChange",
    params(("id" = String, Path, description = "The change id (`chg_…`).")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The change.", body = ChangeRecord),
        (status = 401, response = Unauthorized),
        (status = 403, description = "An agent asked for another agent's change \
            (`forbidden`).", body = ErrorBody),
        (status = 404, description = "Unknown change (`not_found`).", body = ErrorBody),
        (status = 503, response = Unavailable),
    ))]
async fn get_change(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeRecord>> {
    let rec = s
        .journal
        .change(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown change `{id}`")))?;
    caller.own(Some(&rec.agent), "changes")?;
    Ok(Json(rec))
}

/// A change's timeline
///
/// The change's story in time order: the journal events of its action (request, verdict,
/// approvals) and of the change (applied, breach, reverted, settled, unjudged, needs_attention,
/// revert_failed, apply_failed, alert), the breaker event its revert tripped, and the bake's
/// per-poll evaluations its record holds. Operators see every change; an agent sees only its
/// own.
#[utoipa::path(get, path = "/v1/changes/{id}/timeline", tag = "changes",
    operation_id = "getChangeTimeline",
    params(("id" = String, Path, description = "The change id (`chg_…`).")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The timeline.", body = Timeline),
        (status = 401, response = Unauthorized),
        (status = 403, description = "An agent asked for another agent's change \
            (`forbidden`).", body = ErrorBody),
        (status = 404, description = "Unknown change (`not_found`).", body = ErrorBody),
        (status = 503, response = Unavailable),
    ))]
async fn change_timeline(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Timeline>> {
    let timeline = crate::timeline::timeline(s.journal.as_ref(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown change `{id}`")))?;
    caller.own(Some(&timeline.agent), "changes")?;
    Ok(Json(timeline))
}

/// Revert a change
///
/// Operators only. Restores the change's snapshot, skipping the policy gate (a rollback
/// never deadlocks on its own guard), but never overwrites a resource that moved on since
/// the change: that answers `409` with a `needs_attention` outcome and changes nothing.
/// Counts towards the agent's breaker.
#[utoipa::path(post, path = "/v1/changes/{id}/revert", tag = "changes",
    operation_id = "revertChange",
    params(("id" = String, Path, description = "The change id (`chg_…`).")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Reverted.", body = BakeOutcome),
        (status = 400, description = "The change's provider is not configured, or its record \
            cannot be read (`bad_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "Unknown change (`not_found`).", body = ErrorBody),
        (status = 409, description = "Either the revert stopped because the resource moved on \
            or the provider failed (a `needs_attention` outcome; the change is now \
            `needs_attention`), or the change is not `baking`, `settled` or `unjudged` (an \
            error, `conflict`).", body = RevertConflict),
        (status = 503, response = Unavailable),
    ))]
async fn revert_change(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let by = caller.operator()?.to_string();
    let o = s.door.revert(&id, &by).await?;
    let status = if matches!(o, BakeOutcome::NeedsAttention { .. }) {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    Ok((status, Json(o)).into_response())
}

/// Which agent's changes to undo, back to when.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agent": "cost-bot", "since": "30m"}))]
pub struct UndoBody {
    /// Whose changes to revert.
    agent: String,
    /// A duration before now (`30m`, `2h`, `1h30m`, `90s`, `1d`; a bare number in a string is
    /// seconds) or a timestamp in ms since the epoch.
    #[schema(value_type = Since)]
    since: Value,
}

/// A duration before now, or a timestamp in ms since the epoch.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Since {
    #[schema(example = "30m")]
    Duration(String),
    Timestamp(i64),
}

/// What an undo reverted.
#[derive(Serialize, ToSchema)]
pub struct UndoResult {
    /// How many changes were reverted.
    pub reverted: usize,
    /// Whether the undo stopped at a change it could not revert (the last item,
    /// `needs_attention`).
    pub stopped_on_conflict: bool,
    /// One per change tried, newest first.
    pub items: Vec<BakeOutcome>,
}

/// Undo an agent's recent changes
///
/// Operators only. Reverts every `baking`, `settled` or `unjudged` change the agent applied
/// since `since`, newest first, and stops at the first one it cannot revert
/// (`stopped_on_conflict`). Nothing is overwritten.
#[utoipa::path(post, path = "/v1/undo", tag = "changes", operation_id = "undo",
    request_body = UndoBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was reverted.", body = UndoResult),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    ))]
async fn undo(
    State(s): State<AppState>,
    caller: Caller,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<UndoResult>> {
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
    let items = s.door.undo(&b.agent, since, &by).await?;
    Ok(Json(UndoResult {
        reverted: items
            .iter()
            .filter(|o| matches!(o, BakeOutcome::Reverted { .. }))
            .count(),
        stopped_on_conflict: items
            .iter()
            .any(|o| matches!(o, BakeOutcome::NeedsAttention { .. })),
        items,
    }))
}

/// One agent as the gate scores it.
#[derive(Serialize, ToSchema)]
pub struct AgentSummary {
    pub agent: String,
    /// Its last anomaly score.
    pub anomaly: Score,
    /// Why its breaker is open; `null` when it is closed.
    pub breaker: Option<String>,
}

/// Every agent the gate has scored.
#[derive(Serialize, ToSchema)]
pub struct AgentList {
    pub items: Vec<AgentSummary>,
}

/// Agents' behaviour
///
/// Operators only. Every agent the gate has scored: its last anomaly score (0 usual to 1
/// anomalous) with the features of its current window, their usual values and the furthest
/// one, and why its breaker is open (null when closed). See docs/anomaly.md.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", operation_id = "listAgents",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The agents.", body = AgentList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ))]
async fn list_agents(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<AgentList>> {
    caller.operator()?;
    let breakers: BTreeMap<String, String> = s.gate.open_breakers().await.into_iter().collect();
    let items = s
        .gate
        .anomaly_scores()
        .await
        .into_iter()
        .map(|(agent, anomaly)| AgentSummary {
            breaker: breakers.get(&agent).cloned(),
            agent,
            anomaly,
        })
        .collect();
    Ok(Json(AgentList { items }))
}

/// The features of an agent's window ending at one slot.
#[derive(Serialize, ToSchema)]
pub struct BehaviourSlot {
    /// The end of the window, in ms since the Unix epoch.
    pub t: i64,
    /// Each feature's value over the window.
    pub features: BTreeMap<String, f64>,
}

/// One agent's behaviour.
#[derive(Serialize, ToSchema)]
pub struct AgentDetail {
    pub agent: String,
    /// Its last anomaly score; `null` before it is first scored.
    pub anomaly: Option<Score>,
    /// Why its breaker is open; `null` when it is closed.
    pub breaker: Option<String>,
    /// The last hour, oldest first, then the current window.
    pub series: Vec<BehaviourSlot>,
}

/// One agent's behaviour
///
/// Operators only. The agent's behaviour series over the last hour (the features of the
/// window ending at each slot, then its current window), its last anomaly score and its
/// breaker. 404 for an agent the gate has not seen act.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", operation_id = "getAgent",
    params(("id" = String, Path, description = "The agent's name.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The agent.", body = AgentDetail),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "The gate has not seen this agent act (`not_found`).",
            body = ErrorBody),
        (status = 503, response = Unavailable),
    ))]
async fn get_agent(
    State(s): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> ApiResult<Json<AgentDetail>> {
    caller.operator()?;
    let (series, anomaly) = s.gate.behaviour_of(&agent).await;
    let breaker = s.gate.breaker(&agent).await;
    if anomaly.is_none() && breaker.is_none() {
        return Err(GateError::NotFound("agent", agent).into());
    }
    let series = series
        .into_iter()
        .map(|(t, features)| BehaviourSlot { t, features })
        .collect();
    Ok(Json(AgentDetail {
        agent,
        anomaly,
        breaker,
        series,
    }))
}

/// Whether an agent is frozen now.
#[derive(Serialize, ToSchema)]
pub struct FreezeState {
    pub agent: String,
    pub frozen: bool,
}

/// Freeze an agent
///
/// Operators only. Opens the agent's breaker by hand: every mutation it submits is held
/// (`breaker-open`) until it is unfrozen. Journaled. No body.
#[utoipa::path(post, path = "/v1/agents/{id}/freeze", tag = "agents",
    operation_id = "freezeAgent",
    params(("id" = String, Path, description = "The agent's name.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Frozen.", body = FreezeState,
            example = json!({"agent": "cost-bot", "frozen": true})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ))]
async fn freeze(
    State(s): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> ApiResult<Json<FreezeState>> {
    let by = caller.operator()?.to_string();
    s.gate.freeze(&agent, &by).await?;
    Ok(Json(FreezeState {
        agent,
        frozen: true,
    }))
}

/// Unfreeze an agent
///
/// Operators only. Closes the agent's breaker, whether a freeze or its reverts opened it,
/// and forgets the reverts that opened it. Journaled. No body.
#[utoipa::path(post, path = "/v1/agents/{id}/unfreeze", tag = "agents",
    operation_id = "unfreezeAgent",
    params(("id" = String, Path, description = "The agent's name.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unfrozen.", body = FreezeState,
            example = json!({"agent": "cost-bot", "frozen": false})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ))]
async fn unfreeze(
    State(s): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> ApiResult<Json<FreezeState>> {
    let by = caller.operator()?.to_string();
    s.gate.reset_breaker(&agent, &by).await?;
    Ok(Json(FreezeState {
        agent,
        frozen: false,
    }))
}

/// The kill switch's position.
#[derive(Deserialize, Serialize, PartialEq, Eq, Clone, Copy, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

impl From<bool> for OnOff {
    fn from(on: bool) -> Self {
        if on { OnOff::On } else { OnOff::Off }
    }
}

/// Where to put the kill switch.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"state": "on"}))]
pub struct KillBody {
    state: OnOff,
}

/// The kill switch's state.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"killswitch": "off"}))]
pub struct KillswitchState {
    pub killswitch: OnOff,
}

/// Turn the kill switch on or off
///
/// Operators only. While on, every mutation of every agent is denied (`killswitch`); reads,
/// reverts and undo still work. Journaled.
#[utoipa::path(post, path = "/v1/killswitch", tag = "killswitch",
    operation_id = "setKillswitch",
    request_body = KillBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The kill switch's new state.", body = KillswitchState),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    ))]
async fn killswitch(
    State(s): State<AppState>,
    caller: Caller,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<KillswitchState>> {
    let by = caller.operator()?.to_string();
    let b: KillBody = body(bytes)?;
    s.gate.set_killswitch(b.state == OnOff::On, &by).await?;
    Ok(Json(KillswitchState {
        killswitch: b.state,
    }))
}

/// Kill switch state
///
/// Any authenticated caller.
#[utoipa::path(get, path = "/v1/killswitch", tag = "killswitch",
    operation_id = "getKillswitch",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The kill switch's state.", body = KillswitchState),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    ))]
async fn killswitch_state(State(s): State<AppState>, _caller: Caller) -> Json<KillswitchState> {
    Json(KillswitchState {
        killswitch: s.gate.killswitch().await.into(),
    })
}

/// Who to issue a token for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "cost-bot", "kind": "agent"}))]
pub struct TokenBody {
    /// The principal's name; an existing name of the same kind is re-keyed (its old token
    /// stops working).
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    name: String,
    kind: TokenKind,
    /// An agent's guard profile (`[profile.NAME]`: its budgets, rate limits and anomaly
    /// settings), e.g. `coding` for a coding agent behind the hook. A re-keyed agent keeps
    /// its profile unless one is given.
    #[serde(default)]
    profile: Option<String>,
}

/// An agent acts; an operator approves, reverts, freezes and issues agents' tokens; an
/// admin is an operator who also issues and revokes operators' and admins' tokens.
#[derive(Deserialize, Serialize, PartialEq, Eq, Clone, Copy, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Agent,
    Operator,
    Admin,
}

/// A new bearer token.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "cost-bot", "kind": "agent", "token": "alk_…"}))]
pub struct TokenCreated {
    pub name: String,
    pub kind: TokenKind,
    /// The bearer token (`alk_` and 64 hex digits). Shown only here: the server stores its
    /// hash.
    pub token: String,
}

/// A revoked token.
#[derive(Serialize, ToSchema)]
pub struct TokenRevoked {
    pub name: String,
    /// Always `true`.
    pub revoked: bool,
}

/// Create or re-key a token
///
/// Operators issue agents' tokens; only an admin issues operators' and admins' (`403`
/// otherwise), so one operator can never make a second approver. Registers a principal, or
/// re-keys an existing one of the same kind (its old token stops working, a revoked one is
/// restored). Journaled with the issuer. The token is shown once; the server stores only
/// its hash.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", operation_id = "createToken",
    request_body = TokenBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new token.", body = TokenCreated),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "The name is registered as the other kind (`conflict`).",
            body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    ))]
async fn create_token(
    State(s): State<AppState>,
    caller: Caller,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<TokenCreated>> {
    caller.operator()?;
    let b: TokenBody = body(bytes)?;
    let kind = match b.kind {
        TokenKind::Agent => PrincipalKind2::Agent,
        TokenKind::Operator => PrincipalKind2::Operator,
        TokenKind::Admin => PrincipalKind2::Admin,
    };
    let token = s
        .gate
        .issue_token_by(&b.name, kind, b.profile.as_deref(), &caller.0)
        .await?;
    Ok(Json(TokenCreated {
        name: b.name,
        kind: b.kind,
        token,
    }))
}

/// Revoke a token
///
/// Operators revoke agents' tokens; only an admin revokes operators' and admins'. The
/// principal's token no longer authenticates, and its earlier approvals of pending holds no
/// longer count. Journaled with who revoked it. No body.
#[utoipa::path(post, path = "/v1/tokens/{name}/revoke", tag = "tokens",
    operation_id = "revokeToken",
    params(("name" = String, Path, description = "The agent's or operator's name.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked.", body = TokenRevoked,
            example = json!({"name": "cost-bot", "revoked": true})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "Unknown principal (`not_found`).", body = ErrorBody),
        (status = 503, response = Unavailable),
    ))]
async fn revoke_token(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<TokenRevoked>> {
    caller.operator()?;
    s.gate.revoke_by(&name, &caller.0).await?;
    Ok(Json(TokenRevoked {
        name,
        revoked: true,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct JournalQuery {
    /// Only events with a greater `seq`: the `next` of the previous page.
    after: Option<i64>,
    /// Page size, 1 to 1000.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
    /// Only events about this agent.
    agent: Option<String>,
    /// Only events of this kind; an unknown kind is a 400 `bad_request`.
    #[param(value_type = Option<EventKind>)]
    kind: Option<String>,
}

/// A page of journal events, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub items: Vec<Event>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<i64>,
}

/// Read the journal
///
/// Operators only. Events oldest first, paged by `seq`.
#[utoipa::path(get, path = "/v1/journal", tag = "journal", operation_id = "readJournal",
    params(JournalQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of events.", body = EventList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ))]
async fn journal(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<JournalQuery>, QueryRejection>,
) -> ApiResult<Json<EventList>> {
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
    Ok(Json(EventList { items, next }))
}

fn sse_event(e: &Event) -> SseEvent {
    SseEvent::default()
        .id(e.seq.to_string())
        .event(e.kind.as_str())
        .data(serde_json::to_string(e).unwrap_or_default())
}

/// Stream journal events
///
/// Operators only. Server-Sent Events: one SSE event per journal event as it is stored, with
/// `id` = the event's `seq`, `event` = its kind and `data` = the event as JSON (the `Event`
/// schema). A keep-alive comment is sent every 15 s. Without `Last-Event-ID` the stream
/// starts with the next event stored; with it, it first replays every event after that seq,
/// then continues live with nothing lost or repeated in between. A client that falls more
/// than 4,096 events behind skips events; a gap in `seq` shows it, and reconnecting with
/// `Last-Event-ID` fills it.
#[utoipa::path(get, path = "/v1/events", tag = "journal", operation_id = "streamEvents",
    params(("Last-Event-ID" = Option<i64>, Header, minimum = 0,
        description = "Resume after this event `seq`: the `id` of the last event the client \
            saw. `0` replays from the start.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An endless `text/event-stream` of SSE frames whose \
            `data` is an `Event` as JSON.", body = String, content_type = "text/event-stream",
            example = json!("id: 42\nevent: verdict\ndata: {\"seq\":42,\"ts\":1767618900000,\
\"kind\":\"verdict\",\"agent\":\"cost-bot\",\"action_id\":\"act_1f2e3d4c000001\",\"change_id\":null,\
\"payload\":{\"verdict\":\"hold\",\"reasons\":[\"capacity-step-budget\"]},\"prev_hash\":\"…\",\
\"hash\":\"…\"}\n\n")),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ))]
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
    let events = journal_stream(&s, last).await?;
    Ok(Sse::new(events.map(|e| Ok::<_, Infallible>(sse_event(&e))))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The journal's events as they are stored, in seq order without gaps, ending when the
/// server shuts down: after `last` (replaying what came since), or from the next event
/// stored. `GET /v1/events` and the dashboard's live views both read it.
pub(crate) async fn journal_stream(
    s: &AppState,
    last: Option<i64>,
) -> Result<impl Stream<Item = Event> + Send + use<>, airlock_store::StoreError> {
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
    // Without Last-Event-ID the stream starts after what was stored (and published) when
    // it subscribed.
    let sent = match last {
        Some(l) => backlog.last().map_or(l, |e| e.seq),
        None => s.journal.published_head().await?,
    };
    // In seq order and without gaps: an event that arrives ahead of ones not seen yet (stored
    // by another replica or process and published later, or pushed out of a lagging feed)
    // is preceded by those, read from the journal.
    let sent = std::sync::Arc::new(tokio::sync::Mutex::new(sent));
    let journal = s.journal.clone();
    let live = tokio_stream::wrappers::BroadcastStream::new(rx)
        .then(move |r| {
            let (sent, journal) = (sent.clone(), journal.clone());
            async move {
                let Ok(e) = r else { return Vec::new() };
                let mut sent = sent.lock().await;
                if e.seq <= *sent {
                    return Vec::new();
                }
                let mut out = Vec::new();
                let mut after = *sent;
                while after + 1 < e.seq {
                    let page = journal
                        .read(EventQuery {
                            after_seq: Some(after),
                            limit: Some(1000),
                            ..Default::default()
                        })
                        .await
                        .unwrap_or_default();
                    let Some(tail) = page.last().map(|t| t.seq) else {
                        break;
                    };
                    out.extend(page.into_iter().filter(|g| g.seq < e.seq));
                    after = tail;
                }
                out.push(e);
                *sent = out.last().map_or(*sent, |l| l.seq);
                out
            }
        })
        .flat_map(stream::iter);
    let head = stream::iter(backlog);
    Ok(head.chain(live).take_until({
        let mut down = s.shutdown.clone();
        async move {
            let _ = down.wait_for(|stopping| *stopping).await;
        }
    }))
}
