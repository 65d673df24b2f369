//! The MCP gateway: Airlock as an MCP server whose every tool call goes through the gate,
//! in front of Airlock's own providers and of upstream MCP servers it proxies.

pub mod gateway;
pub mod upstream;

pub use airlock_gate::frontdoor::{CallError, Catalog, Route, ToolDef};
pub use gateway::{Backend, Gateway, Local, Remote};
pub use upstream::{UpstreamConfig, UpstreamProvider};

use crate::state::{AppState, bearer};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;

/// The streamable-HTTP service mounted at `/mcp`.
///
/// Served without sessions, each call answered with a JSON body: the gateway keeps nothing
/// per session (who calls comes from the token on every request) and never sends a
/// message of its own, so a session's stream only cost time on every call (about 0.7 ms
/// of a proxied read's p50, `airlock bench mcp`). A handler that did send one before its
/// answer would get an event stream instead, so nothing is lost.
pub fn http_service(
    state: AppState,
    allowed_hosts: Vec<String>,
) -> StreamableHttpService<Gateway, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts);
    config.legacy_session_mode = false;
    config.json_response = true;
    let ct = config.cancellation_token.clone();
    let mut down = state.shutdown.clone();
    tokio::spawn(async move {
        let _ = down.wait_for(|stopping| *stopping).await;
        ct.cancel();
    });
    let backend: Arc<dyn Backend> = Arc::new(Local(state.door.clone()));
    StreamableHttpService::new(
        move || Ok(Gateway::new(backend.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// `/mcp` answers only callers with a valid token; the tools see who they are. A body
/// that is not a JSON-RPC message gets a JSON-RPC error, not plain text.
pub async fn auth(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let unauthenticated = |message: String| {
        let mut resp = (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": {"code": "unauthenticated", "message": message}})),
        )
            .into_response();
        resp.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        resp
    };
    let Some(token) = bearer(req.headers()) else {
        return unauthenticated("missing bearer token: send `Authorization: Bearer TOKEN`".into());
    };
    if let Err(e) = s.door.authenticate(token).await {
        return match e {
            airlock_gate::GateError::Unauthenticated => unauthenticated(e.to_string()),
            other => {
                tracing::error!(error = %other, "cannot authenticate an MCP caller");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({"error": {"code": "unavailable", "message": "the server cannot complete this now; see its log"}})),
                )
                    .into_response()
            }
        };
    }
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, s.body_limit).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": format!("cannot read the request body: {e}")}})),
            )
                .into_response();
        }
    };
    if let Some(err) = malformed(&String::from_utf8_lossy(&bytes)) {
        return (StatusCode::BAD_REQUEST, Json(err)).into_response();
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// What to answer a line that is not a JSON-RPC message, if anything: a parse error for
/// text that is not JSON, an invalid-request error for JSON that is not a message.
pub fn malformed(line: &str) -> Option<serde_json::Value> {
    use serde_json::{Value, json};
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return Some(json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32700, "message": format!("parse error: {e}")}}));
        }
    };
    let ok = |m: &Value| {
        m.get("jsonrpc") == Some(&json!("2.0"))
            && (m.get("method").is_some_and(Value::is_string)
                || m.get("result").is_some()
                || m.get("error").is_some())
    };
    let valid = match &v {
        Value::Object(_) => ok(&v),
        Value::Array(items) => !items.is_empty() && items.iter().all(ok),
        _ => false,
    };
    (!valid).then(|| {
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32600,
            "message": "invalid request: expected a JSON-RPC 2.0 message with `jsonrpc: \"2.0\"` and a `method`"}})
    })
}

/// [`malformed`] for a line read as bytes: text that is not UTF-8 is a parse error.
fn malformed_bytes(raw: &[u8], line: &str) -> Option<serde_json::Value> {
    match std::str::from_utf8(raw) {
        Ok(_) => malformed(line),
        Err(e) => Some(serde_json::json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": -32700, "message": format!("parse error: the line is not UTF-8 ({e})")}})),
    }
}

/// The longest JSON-RPC line a stdio session reads (4 MiB); a longer one is refused with
/// an error answer and skipped, and the session goes on.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Serves MCP on stdin/stdout until the client closes it. Lines that are not JSON-RPC get
/// an error answer here (the session goes on); the rest go to the MCP service.
pub async fn serve_stdio(backend: Arc<dyn Backend>, token: Option<String>) -> Result<(), String> {
    serve_lines(backend, token, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Serves MCP as newline-delimited JSON-RPC read from `input` and written to `output`,
/// until `input` ends: what [`serve_stdio`] does on stdin/stdout.
pub async fn serve_lines<R, W>(
    backend: Arc<dyn Backend>,
    token: Option<String>,
    input: R,
    output: W,
) -> Result<(), String>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (mut to_service, service_in) = tokio::io::duplex(1 << 16);
    let (service_out, from_service) = tokio::io::duplex(1 << 16);
    let (errors_tx, mut errors_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut input = BufReader::new(input);
        let mut raw = Vec::new();
        'lines: loop {
            raw.clear();
            // Bounded: a line with no end cannot grow memory without limit.
            match (&mut input)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut raw)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if raw.len() > MAX_LINE_BYTES && raw.last() != Some(&b'\n') {
                // Skip the rest of it, then answer it like any other bad line.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    match (&mut input)
                        .take(1 << 16)
                        .read_until(b'\n', &mut rest)
                        .await
                    {
                        Ok(0) | Err(_) => break 'lines,
                        Ok(_) if rest.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                    }
                }
                let err = serde_json::json!({"jsonrpc": "2.0", "id": null,
                    "error": {"code": -32600, "message": format!("invalid request: the line is longer than {MAX_LINE_BYTES} bytes")}});
                let _ = errors_tx.send(err.to_string());
                continue;
            }
            // A line that is not UTF-8 is not JSON either: it gets a parse error like any
            // other, and the session goes on.
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            match malformed_bytes(&raw, line) {
                Some(err) => {
                    let _ = errors_tx.send(err.to_string());
                }
                None => {
                    if to_service
                        .write_all(format!("{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping the pipe tells the service the client is gone.
    });
    let writer = tokio::spawn(async move {
        let mut out = output;
        let mut answers = BufReader::new(from_service).lines();
        let mut errors_open = true;
        loop {
            // Refusals first: a refused line was read before any request that follows
            // it, so its answer should not come after theirs.
            let line = tokio::select! {
                biased;
                e = errors_rx.recv(), if errors_open => match e {
                    Some(e) => e,
                    None => { errors_open = false; continue; }
                },
                l = answers.next_line() => match l {
                    Ok(Some(l)) => l,
                    _ => break,
                },
            };
            if out.write_all(format!("{line}\n").as_bytes()).await.is_err()
                || out.flush().await.is_err()
            {
                break;
            }
        }
    });
    let served = async {
        let running = Gateway::new(backend, token)
            .serve((service_in, service_out))
            .await
            .map_err(|e| e.to_string())?;
        running.waiting().await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    }
    .await;
    reader.abort();
    let _ = writer.await;
    served
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_that_are_not_json_rpc_get_an_error() {
        assert_eq!(
            super::malformed("{not json").unwrap()["error"]["code"],
            -32700
        );
        let e = super::malformed(r#"{"id": 4, "hello": 1}"#).unwrap();
        assert_eq!(
            (e["error"]["code"].clone(), e["id"].clone()),
            (serde_json::json!(-32600), serde_json::json!(4))
        );
        assert!(super::malformed(r#"[]"#).is_some());
        assert!(super::malformed(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).is_none());
        assert!(
            super::malformed(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).is_none()
        );
    }
}
