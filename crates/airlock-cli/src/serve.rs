//! `airlock serve`, `airlock config validate` and `airlock token create|revoke`.

use crate::{BadInput, DEFAULT_STORE};
use airlock_gate::PrincipalKind2;
use airlock_server::{Config, RawConfig};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The config file `airlock serve` reads when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "airlock.toml";

#[derive(Args)]
pub struct ServeArgs {
    /// The config file (default: `airlock.toml` in the current directory, if present).
    #[arg(long, env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Listen on this address instead of the config's.
    #[arg(long)]
    listen: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Check an `airlock.toml`: every problem is reported at once, with its field (exit 2).
    Validate {
        /// The config file.
        file: PathBuf,
    },
    /// Print the JSON Schema of `airlock.toml` (kept in `schema/airlock.schema.json`), for
    /// editors and linters.
    Schema,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a principal's bearer token (shown once; stored hashed). Re-running re-keys it.
    Create {
        /// Create an agent's token.
        #[arg(
            long,
            conflicts_with = "operator",
            required_unless_present = "operator"
        )]
        agent: Option<String>,
        /// Create an operator's token.
        #[arg(long)]
        operator: Option<String>,
        #[command(flatten)]
        target: TokenTarget,
    },
    /// Revoke a principal's token: it stops authenticating at once.
    Revoke {
        /// The agent or operator name.
        name: String,
        #[command(flatten)]
        target: TokenTarget,
    },
}

#[derive(Args)]
pub struct TokenTarget {
    /// Talk to a running server (with an operator token) instead of the local store.
    #[arg(long, env = "AIRLOCK_URL")]
    url: Option<String>,
    /// Operator token for `--url`.
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The local store (without `--url`): a path or `sqlite://PATH`.
    #[arg(long, env = "AIRLOCK_STORE", default_value = DEFAULT_STORE)]
    store: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Loads a config file, or the defaults when there is none.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    let (raw, base) = match path {
        Some(p) => RawConfig::load(p).map_err(|e| BadInput(e.to_string()))?,
        None if Path::new(DEFAULT_CONFIG).exists() => {
            RawConfig::load(Path::new(DEFAULT_CONFIG)).map_err(|e| BadInput(e.to_string()))?
        }
        None => (RawConfig::default(), PathBuf::from(".")),
    };
    raw.validate(&base)
        .map_err(|e| BadInput(e.to_string()).into())
}

pub async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut config = load_config(args.config.as_deref())?;
    if let Some(l) = &args.listen {
        config.listen = l.parse().map_err(|_| {
            BadInput(format!(
                "--listen: `{l}` is not an address like 127.0.0.1:7070"
            ))
        })?;
    }
    eprintln!(
        "airlock: listening on http://{}  (journal `{}`, {} policies{})",
        config.listen,
        config.store,
        config.policy_count,
        config.sim.as_ref().map_or(String::new(), |s| format!(
            ", sandbox cloud live at {}x",
            s.time_factor
        ))
    );
    eprintln!(
        "  create tokens:  airlock token create --operator alice   |   airlock token create --agent my-agent"
    );
    eprintln!(
        "  submit:         curl -H 'Authorization: Bearer TOKEN' -d '{{\"provider\":\"sim\",\"verb\":\"read\",\"target\":\"sim:service/checkout\"}}' http://{}/v1/actions",
        config.listen
    );
    airlock_server::run(config, shutdown_signal())
        .await
        .context("the server stopped")?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

pub fn config(cmd: ConfigCmd) -> Result<ExitCode> {
    match cmd {
        ConfigCmd::Validate { file } => {
            let c = load_config(Some(&file))?;
            println!(
                "ok: {} (listen {}, store {}, {} policies)",
                file.display(),
                c.listen,
                c.store,
                c.policy_count
            );
            Ok(ExitCode::SUCCESS)
        }
        ConfigCmd::Schema => {
            print!("{}", airlock_server::config_schema::json_schema());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Token records carry the wall-clock time they were made.
fn now_ms() -> i64 {
    airlock_core::Clock::now(&airlock_server::live::SystemClock)
}

pub async fn token(cmd: TokenCmd) -> Result<ExitCode> {
    match cmd {
        TokenCmd::Create {
            agent,
            operator,
            target,
        } => {
            let (name, kind) = match (agent, operator) {
                (Some(a), None) => (a, PrincipalKind2::Agent),
                (None, Some(o)) => (o, PrincipalKind2::Operator),
                _ => {
                    return Err(BadInput(
                        "give exactly one of --agent NAME or --operator NAME".into(),
                    )
                    .into());
                }
            };
            let kind_s = if kind == PrincipalKind2::Agent {
                "agent"
            } else {
                "operator"
            };
            let token = match &target.url {
                Some(url) => {
                    let client = crate::remote::Client::new(url, target.token.clone())?;
                    let v = client
                        .post("/v1/tokens", &json!({"name": name, "kind": kind_s}))
                        .await?;
                    v["token"].as_str().unwrap_or_default().to_string()
                }
                None => {
                    let journal = airlock_store::open(&target.store)
                        .await
                        .with_context(|| format!("cannot open the store `{}`", target.store))?;
                    airlock_gate::issue_token(journal.as_ref(), now_ms(), &name, kind)
                        .await
                        .map_err(|e| match e {
                            airlock_gate::GateError::Invalid(m)
                            | airlock_gate::GateError::Conflict(m) => {
                                anyhow::Error::new(BadInput(m))
                            }
                            other => anyhow::Error::new(other),
                        })?
                }
            };
            if target.json {
                println!("{}", json!({"name": name, "kind": kind_s, "token": token}));
            } else {
                println!("{token}");
                eprintln!(
                    "{kind_s} `{name}`: token above, shown once (stored hashed). Use it as `Authorization: Bearer TOKEN`."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::Revoke { name, target } => {
            match &target.url {
                Some(url) => {
                    let client = crate::remote::Client::new(url, target.token.clone())?;
                    client
                        .post(&format!("/v1/tokens/{name}/revoke"), &json!({}))
                        .await?;
                }
                None => {
                    let journal = airlock_store::open(&target.store)
                        .await
                        .with_context(|| format!("cannot open the store `{}`", target.store))?;
                    airlock_gate::revoke_token(journal.as_ref(), now_ms(), &name, "cli")
                        .await
                        .map_err(|e| match e {
                            airlock_gate::GateError::NotFound(..) => {
                                anyhow::Error::new(BadInput(e.to_string()))
                            }
                            other => anyhow::Error::new(other),
                        })?;
                }
            }
            if target.json {
                println!("{}", json!({"name": name, "revoked": true}));
            } else {
                println!("revoked: {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
