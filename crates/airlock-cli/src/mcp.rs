//! `airlock mcp`: the MCP gateway over stdio, for agents that launch their MCP servers.
//!
//! With a server (`--url`) every call goes there and its holds wait for operators. Without
//! one the gate runs in this process on the local store: nobody can approve its holds, and
//! every answer says so (and errors name the store or server they came from).

use crate::serve::load_config_with;
use airlock_gate::frontdoor::{ActionView, CallError, Catalog, HoldNotice, Route};
use airlock_server::mcp::{Backend, Local, Remote, serve_stdio};
use anyhow::{Context, Result};
use async_trait::async_trait;
use clap::Args;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct McpArgs {
    /// The config file (default: `airlock.toml` in the current directory, if present); not
    /// read with `--url`.
    #[arg(long, env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// A running `airlock serve` to send every call to, instead of running the gate here.
    /// Without it nobody can approve a held call: holds need a server.
    #[arg(long, env = "AIRLOCK_URL")]
    url: Option<String>,
    /// The agent's token: every call is decided as this agent.
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Without `--url`: the store the gate runs on [default: $AIRLOCK_STORE, else the
    /// config's `[store] url`, else `.airlock/airlock.db`].
    #[arg(long, value_name = "STORE")]
    store: Option<String>,
}

/// A backend whose refusals say where they were decided: "unknown token" is only useful
/// with the store or server that did not know it.
struct Located<B> {
    inner: B,
    /// `store `X`` or `server X`.
    place: String,
    notice: HoldNotice,
}

impl<B> Located<B> {
    fn locate(&self, e: CallError) -> CallError {
        let at = |m: String| format!("{m} (checked {})", self.place);
        match e {
            CallError::Unauthenticated(m) => CallError::Unauthenticated(at(m)),
            CallError::Forbidden(m) => CallError::Forbidden(at(m)),
            CallError::Unavailable(m) => CallError::Unavailable(at(m)),
            other => other,
        }
    }
}

#[async_trait]
impl<B: Backend> Backend for Located<B> {
    async fn catalog(&self, token: Option<&str>) -> Result<Arc<Catalog>, CallError> {
        self.inner.catalog(token).await.map_err(|e| self.locate(e))
    }
    async fn call(
        &self,
        token: &str,
        name: &str,
        args: Option<Map<String, Value>>,
    ) -> Result<(ActionView, Route), CallError> {
        self.inner
            .call(token, name, args)
            .await
            .map_err(|e| self.locate(e))
    }
    fn hold_notice(&self) -> HoldNotice {
        self.notice
    }
}

pub async fn mcp(args: McpArgs) -> Result<ExitCode> {
    let token = args.token.filter(|t| !t.trim().is_empty());
    if token.is_none() {
        tracing::warn!("no AIRLOCK_TOKEN: tools can be listed but every call will be refused");
    }
    match args.url {
        Some(url) => {
            let backend: Arc<dyn Backend> = Arc::new(Located {
                inner: Remote::new(&url),
                place: format!("server {url}"),
                notice: HoldNotice::Operators,
            });
            serve_stdio(backend, token)
                .await
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("the MCP session with the server {url} failed"))?;
        }
        None => {
            let config = load_config_with(args.config.as_deref(), args.store.as_deref())?;
            let store = config.store.clone();
            tracing::warn!(
                store = %store,
                "no AIRLOCK_URL: the gate runs in this process and nobody can approve its holds; \
                 run `airlock serve` and set AIRLOCK_URL for approvals"
            );
            let started = airlock_server::live::start(&config)
                .await
                .with_context(|| format!("cannot start the gate on the store `{store}`"))?;
            let backend: Arc<dyn Backend> = Arc::new(Located {
                inner: Local(started.state.door.clone()),
                place: format!("store `{store}`"),
                notice: HoldNotice::Unreachable,
            });
            let served = serve_stdio(backend, token).await;
            started.stop().await;
            served
                .map_err(anyhow::Error::msg)
                .context("the MCP session failed")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
