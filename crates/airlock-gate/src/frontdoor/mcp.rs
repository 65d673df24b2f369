//! The front door's answers in MCP's terms: tool definitions as MCP tools (with their
//! annotations), answers as tool results, refusals as JSON-RPC errors. Shared by every MCP
//! server Airlock runs (the gateway, the proving ground's sessions for external agents).

use super::{ActionView, CallError, HoldNotice, Route, ToolDef, answer_with};
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock, Tool, ToolAnnotations};
use serde_json::json;
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

/// The MCP result of an answer: what [`answer`](super::answer) says, as content blocks.
pub fn tool_result(view: &ActionView, route: &Route) -> CallToolResult {
    tool_result_with(view, route, HoldNotice::Operators)
}

/// A call whose arguments the tool or the gate refused (a schema violation, a target that
/// does not exist, a plan the provider cannot make): a tool error the model can read and
/// correct, not a protocol error (MCP's SEP-1303). Nothing was applied.
pub fn refused_result(tool: &str, e: &CallError) -> CallToolResult {
    let text = format!(
        "Airlock could not run `{tool}` with these arguments, so nothing was applied: {e}. \
         Check them against the tool's input schema (tools/list) and the resource's name \
         (a describe tool lists what exists), then call it again."
    );
    let content = serde_json::from_value(json!({"type": "text", "text": text}))
        .map(|c| vec![c])
        .unwrap_or_default();
    let mut result = CallToolResult::error(content);
    result.structured_content = Some(json!({"error": e.to_string(), "tool": tool}));
    result
}

/// [`tool_result`], telling a held call who can approve it.
pub fn tool_result_with(view: &ActionView, route: &Route, notice: HoldNotice) -> CallToolResult {
    let a = answer_with(view, route, notice);
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
