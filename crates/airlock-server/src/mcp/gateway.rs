//! The MCP server: tools/list from the catalog, tools/call through the gate as the calling
//! agent. One handler serves stdio (`airlock mcp`) and streamable HTTP (`/mcp`); behind it
//! is either this process's gate or, with `AIRLOCK_URL`, a running `airlock serve`.

use crate::state::bearer;
use airlock_gate::FrontDoor;
use airlock_gate::frontdoor::mcp::{refused_result, rpc_error, to_tool, tool_result_with};
use airlock_gate::frontdoor::{ActionView, CallError, Catalog, HoldNotice, Route};
use async_trait::async_trait;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Where tool calls go.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The tools on offer.
    async fn catalog(&self, token: Option<&str>) -> Result<Arc<Catalog>, CallError>;
    /// Decides (and, if allowed, applies) a call; returns the answer and the route.
    async fn call(
        &self,
        token: &str,
        name: &str,
        args: Option<Map<String, Value>>,
    ) -> Result<(ActionView, Route), CallError>;
    /// Who can approve the holds behind this backend, as a held call's answer tells the agent.
    fn hold_notice(&self) -> HoldNotice {
        HoldNotice::Operators
    }
}

/// This process's gate, through its front door.
pub struct Local(pub Arc<FrontDoor>);

#[async_trait]
impl Backend for Local {
    async fn catalog(&self, _token: Option<&str>) -> Result<Arc<Catalog>, CallError> {
        Ok(self.0.tools().clone())
    }
    async fn call(
        &self,
        token: &str,
        name: &str,
        args: Option<Map<String, Value>>,
    ) -> Result<(ActionView, Route), CallError> {
        self.0.call_tool(token, name, args).await
    }
}

/// A running `airlock serve`, over its HTTP API.
pub struct Remote {
    base: String,
    http: reqwest::Client,
    /// The server's tools, fetched once (they are fixed while it runs).
    tools: tokio::sync::Mutex<Option<Arc<Catalog>>>,
}

impl Remote {
    /// The server at `base` (`http://host:port`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            tools: tokio::sync::Mutex::new(None),
        }
    }
}

impl Remote {
    async fn send(&self, req: reqwest::RequestBuilder, token: &str) -> Result<Value, CallError> {
        let resp = req
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| CallError::Unavailable(format!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = body["error"]["code"].as_str().unwrap_or("").to_string();
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("the server gave no reason")
            .to_string();
        Err(match (status.as_u16(), code.as_str()) {
            (401, _) => CallError::Unauthenticated(message),
            (403, _) => CallError::Forbidden(message),
            (_, "unknown_tool") => CallError::UnknownTool(message),
            (400 | 404 | 409 | 422, _) => CallError::InvalidArguments {
                tool: String::new(),
                problems: vec![message],
            },
            _ => CallError::Unavailable(format!("{status}: {message}")),
        })
    }
}

#[async_trait]
impl Backend for Remote {
    async fn catalog(&self, token: Option<&str>) -> Result<Arc<Catalog>, CallError> {
        let mut cached = self.tools.lock().await;
        if let Some(c) = cached.as_ref() {
            return Ok(c.clone());
        }
        let v = self
            .send(
                self.http.get(format!("{}/v1/tools", self.base)),
                token.unwrap_or(""),
            )
            .await?;
        let c: Arc<Catalog> = serde_json::from_value(v).map(Arc::new).map_err(|e| {
            CallError::Unavailable(format!("the server's tool list does not parse: {e}"))
        })?;
        *cached = Some(c.clone());
        Ok(c)
    }
    async fn call(
        &self,
        token: &str,
        name: &str,
        args: Option<Map<String, Value>>,
    ) -> Result<(ActionView, Route), CallError> {
        let catalog = self.catalog(Some(token)).await?;
        let route = catalog
            .get(name)
            .map(|t| t.route.clone())
            .ok_or_else(|| CallError::UnknownTool(name.to_string()))?;
        let url = format!("{}/v1/tools/{name}", self.base);
        let v = self
            .send(
                self.http
                    .post(url)
                    .json(&json!({"arguments": args.unwrap_or_default()})),
                token,
            )
            .await?;
        let view: ActionView = serde_json::from_value(v).map_err(|e| {
            CallError::Unavailable(format!("the server's answer does not parse: {e}"))
        })?;
        Ok((view, route))
    }
}

/// The MCP server handler.
#[derive(Clone)]
pub struct Gateway {
    backend: Arc<dyn Backend>,
    /// The agent's token for stdio (`AIRLOCK_TOKEN`); over HTTP it comes with each request.
    token: Option<String>,
}

impl Gateway {
    pub fn new(backend: Arc<dyn Backend>, token: Option<String>) -> Self {
        Self { backend, token }
    }

    fn token_of(&self, ctx: &RequestContext<RoleServer>) -> Option<String> {
        if let Some(t) = &self.token {
            return Some(t.clone());
        }
        let parts = ctx.extensions.get::<axum::http::request::Parts>()?;
        bearer(&parts.headers).map(str::to_string)
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Airlock gates every tool call: each is planned, assessed and decided by policy \
                 before anything is applied. A denied call returns an error with its reasons; a \
                 held call waits for an operator and returns its approval id.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let token = self.token_of(&ctx);
        let catalog = self
            .backend
            .catalog(token.as_deref())
            .await
            .map_err(|e| rpc_error(&e))?;
        Ok(ListToolsResult::with_all_items(
            catalog.tools.iter().map(to_tool).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let token = self.token_of(&ctx).ok_or_else(|| {
            McpError::invalid_request(
                "no agent token: set AIRLOCK_TOKEN (stdio) or send `Authorization: Bearer TOKEN`",
                None,
            )
        })?;
        let name = request.name.to_string();
        let (view, route) = match self
            .backend
            .call(&token, &request.name, request.arguments)
            .await
        {
            Ok(answer) => answer,
            // Arguments the model can correct are a tool error it reads, not a protocol one.
            Err(e @ CallError::InvalidArguments { .. }) => {
                return Ok(refused_result(&name, &e).into());
            }
            Err(e) => return Err(rpc_error(&e)),
        };
        // An upstream that is gone (crashed, unreachable) is a server error, not a tool's.
        if let Some(err) = &view.error
            && matches!(route, Route::Upstream { .. })
            && err.contains("provider unavailable")
        {
            return Err(McpError::internal_error(
                format!("{err}; the call did not complete and Airlock recorded it as failed"),
                serde_json::to_value(&view).ok(),
            ));
        }
        Ok(tool_result_with(&view, &route, self.backend.hold_notice()).into())
    }
}
