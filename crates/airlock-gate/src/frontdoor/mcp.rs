//! The front door's answers in MCP's terms: tool definitions as MCP tools (with their
//! annotations), answers as tool results, refusals as JSON-RPC errors. Shared by every MCP
//! server Airlock runs (the gateway, the proving ground's sessions for external agents).

use super::{ActionView, CallError, Route, ToolDef, answer};
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock, Tool, ToolAnnotations};
use std::sync::Arc;

/// The JSON-RPC error for a call that could not reach the gate.
pub fn rpc_error(e: &CallError) -> McpError {
    match e {
        CallError::UnknownTool(_) | CallError::InvalidArguments { .. } => {
            McpError::invalid_params(e.to_string(), None)
        }
        CallError::Unauthenticated(_) | CallError::Forbidden(_) => {
            McpError::invalid_request(e.to_string(), None)
        }
        CallError::Unavailable(_) => McpError::internal_error(e.to_string(), None),
    }
}

/// A tool definition as an MCP tool, with its read-only, destructive and idempotent hints.
pub fn to_tool(t: &ToolDef) -> Tool {
    let schema = t.input_schema.as_object().cloned().unwrap_or_default();
    let mut a = ToolAnnotations::new()
        .read_only(t.read_only)
        .destructive(t.destructive)
        .idempotent(t.idempotent);
    a.open_world_hint = Some(false);
    Tool::new(t.name.clone(), t.description.clone(), Arc::new(schema)).with_annotations(a)
}

/// The MCP result of an answer: what [`answer`] says, as content blocks.
pub fn tool_result(view: &ActionView, route: &Route) -> CallToolResult {
    let a = answer(view, route);
    let content: Vec<ContentBlock> = a
        .content
        .into_iter()
        .filter_map(|c| serde_json::from_value(c).ok())
        .collect();
    let mut result = if a.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    result.structured_content = a.structured;
    result
}
