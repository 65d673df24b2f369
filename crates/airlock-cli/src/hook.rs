//! `airlock hook claude-code`: a PreToolUse hook that decides an agent's tool call through
//! the gate and answers in the hook protocol.

use crate::serve::{load_config, load_hook_config};
use airlock_server::hook::{HookGate, decide, output};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum HookCmd {
    /// Claude Code's PreToolUse hook: reads the event JSON on stdin, prints
    /// `{"hookSpecificOutput":{"permissionDecision":"allow|deny|ask",…}}` and exits 0. If it
    /// cannot decide, it denies with the reason.
    ClaudeCode(HookArgs),
}

#[derive(Args)]
pub struct HookArgs {
    /// The config file (default: `airlock.toml` in the current directory, if present).
    #[arg(long, env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// A running `airlock serve` to decide with (holds can then be approved there).
    #[arg(long, env = "AIRLOCK_URL")]
    url: Option<String>,
    /// The agent's token.
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Longest event accepted on stdin.
const MAX_EVENT: u64 = 1 << 20;

pub async fn hook(cmd: HookCmd) -> Result<ExitCode> {
    let HookCmd::ClaudeCode(args) = cmd;
    let answer = match run(args).await {
        Ok(v) => v,
        Err(e) => output(
            airlock_server::config::HookAnswer::Deny,
            &format!("Airlock could not decide, so it denies: {e:#}"),
        ),
    };
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}

async fn run(args: HookArgs) -> Result<serde_json::Value> {
    let mut raw = String::new();
    std::io::stdin().take(MAX_EVENT).read_to_string(&mut raw)?;
    let token = args.token.filter(|t| !t.trim().is_empty());
    match args.url {
        Some(url) => {
            // The hook's own answers (unknown commands, holds) still come from the local config:
            // none at all means the defaults, but one that does not load is a deny, never a
            // silent fall back to defaults the operator did not choose. The server has the
            // rest (policies, world), so only `[hook]` is read into settings here.
            let cfg = load_hook_config(args.config.as_deref())?;
            let gate = HookGate::Remote {
                base: url.trim_end_matches('/').to_string(),
                http: reqwest::Client::new(),
            };
            Ok(decide(&raw, &cfg, &gate, token.as_deref()).await)
        }
        None => {
            let mut config = load_config(args.config.as_deref())?;
            // One decision needs no upstream MCP servers.
            config.upstreams.clear();
            let (state, _) = airlock_server::live::build(&config)
                .await
                .with_context(|| format!("cannot open the gate on the store `{}`", config.store))?;
            let gate = HookGate::Local(state.door.clone());
            let mut answer = decide(&raw, &config.hook, &gate, token.as_deref()).await;
            // This process ends with the answer: its record is durable first.
            airlock_store::Journal::flush(state.journal.as_ref())
                .await
                .context("cannot journal the decision")?;
            // An unknown token is only worth reporting with the store that did not know it.
            let denied = answer["hookSpecificOutput"]["permissionDecision"] == "deny";
            let reason = &mut answer["hookSpecificOutput"]["permissionDecisionReason"];
            if let (true, Some(t), Some(text)) = (denied, &token, reason.as_str())
                && matches!(
                    state.door.authenticate(t).await,
                    Err(airlock_gate::GateError::Unauthenticated)
                )
            {
                *reason = format!("{text} (checked store `{}`)", config.store).into();
            }
            Ok(answer)
        }
    }
}
