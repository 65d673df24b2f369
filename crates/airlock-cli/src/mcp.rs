//! `airlock mcp`: the MCP gateway over stdio, for agents that launch their MCP servers.

use crate::serve::load_config;
use airlock_server::mcp::{Backend, Local, Remote, serve_stdio};
use anyhow::{Context, Result};
use clap::Args;
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
    #[arg(long, env = "AIRLOCK_URL")]
    url: Option<String>,
    /// The agent's token: every call is decided as this agent.
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub async fn mcp(args: McpArgs) -> Result<ExitCode> {
    let token = args.token.filter(|t| !t.trim().is_empty());
    if token.is_none() {
        tracing::warn!("no AIRLOCK_TOKEN: tools can be listed but every call will be refused");
    }
    match args.url {
        Some(url) => {
            let backend: Arc<dyn Backend> = Arc::new(Remote::new(&url));
            serve_stdio(backend, token)
                .await
                .map_err(anyhow::Error::msg)
                .context("the MCP session failed")?;
        }
        None => {
            let config = load_config(args.config.as_deref())?;
            let started = airlock_server::live::start(&config)
                .await
                .context("cannot start the gate")?;
            let backend: Arc<dyn Backend> = Arc::new(Local(started.state.door.clone()));
            let served = serve_stdio(backend, token).await;
            started.stop().await;
            served
                .map_err(anyhow::Error::msg)
                .context("the MCP session failed")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
