//! `airlock serve`, `airlock config validate`, `airlock token create|revoke|list`, and the
//! one rule for where the local store is, which every command that opens it follows.

use crate::{BadInput, DEFAULT_STORE};
use airlock_gate::PrincipalKind2;
use airlock_server::{Config, RawConfig};
use airlock_store::{Journal, StoreError};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
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
    /// Listen on this address instead of the config's: `IP:PORT` or `HOST:PORT`
    /// (`localhost:7070`; a host name is resolved, IPv4 first).
    #[arg(long)]
    listen: Option<String>,
    /// The store (journal, tokens, approvals): a path or `sqlite://PATH` [default:
    /// $AIRLOCK_STORE, else the config's `[store] url`, else `.airlock/airlock.db`].
    #[arg(long, value_name = "STORE")]
    store: Option<String>,
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
            conflicts_with_all = ["operator", "admin"],
            required_unless_present_any = ["operator", "admin"]
        )]
        agent: Option<String>,
        /// Create an operator's token (over `--url`, only an admin may).
        #[arg(long, conflicts_with = "admin")]
        operator: Option<String>,
        /// Create an admin's token: an operator who also issues and revokes operators' and
        /// admins' tokens. The first one is made locally, on the store.
        #[arg(long)]
        admin: Option<String>,
        /// The agent's guard profile (`[profile.NAME]` in the config: its rate limits,
        /// budgets and anomaly settings), e.g. `coding` for a coding agent behind the hook.
        /// `coding` and `infra` always exist. A re-keyed agent keeps its profile.
        #[arg(long, requires = "agent", value_name = "NAME")]
        profile: Option<String>,
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
    /// List the agents and operators of the local store: name, kind, when created, whether
    /// revoked. Tokens are never shown (only their hashes are stored).
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON: `[{"name", "kind", "profile", "created_at", "revoked"}]` (`created_at` in ms
        /// since the epoch).
        #[arg(long)]
        json: bool,
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
    /// Without `--url`: the local store.
    #[command(flatten)]
    store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The variable that names the local store.
pub const STORE_ENV: &str = "AIRLOCK_STORE";

/// Where the local store is, by the one rule every command that opens it follows (`serve`,
/// `token`, `journal`, `show`, `hook`, and `mcp` without a server): `--store`, else
/// `AIRLOCK_STORE`, else the config file's `[store] url`, else `.airlock/airlock.db`.
///
/// `configured` answers the config's `[store] url` (the default when there is no config);
/// it is asked only when neither the flag nor the variable names a store, so a broken
/// config file never stands in the way of an explicit store.
pub fn store_location(
    flag: Option<&str>,
    configured: impl FnOnce() -> Result<String>,
) -> Result<String> {
    let env = std::env::var(STORE_ENV).ok();
    pick_store(flag, env.as_deref(), configured)
}

/// [`store_location`] with the variable's value passed in.
fn pick_store(
    flag: Option<&str>,
    env: Option<&str>,
    configured: impl FnOnce() -> Result<String>,
) -> Result<String> {
    let named = |s: &&str| !s.trim().is_empty();
    match flag.filter(named).or(env.filter(named)) {
        Some(s) => Ok(s.to_string()),
        None => configured(),
    }
}

/// `--store` and `--config` for commands that open the local store without running the
/// gate (`token`, `journal`, `show`).
#[derive(Args, Clone, Debug, Default)]
pub struct StoreArgs {
    /// The store: a path or `sqlite://PATH` [default: $AIRLOCK_STORE, else the config's
    /// `[store] url`, else `.airlock/airlock.db`].
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// The config file whose `[store] url` names the store when neither `--store` nor
    /// AIRLOCK_STORE does (default: `airlock.toml` in the current directory, if present).
    #[arg(long, env = "AIRLOCK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl StoreArgs {
    /// The store these arguments name, by [`store_location`].
    pub fn location(&self) -> Result<String> {
        store_location(self.store.as_deref(), || {
            configured_store(self.config.as_deref())
        })
    }
}

/// The `[store] url` of the config file (`path`, else `airlock.toml` if present), or the
/// default store when there is no config file.
fn configured_store(path: Option<&Path>) -> Result<String> {
    let file = match path {
        Some(p) => p,
        None if Path::new(DEFAULT_CONFIG).exists() => Path::new(DEFAULT_CONFIG),
        None => return Ok(DEFAULT_STORE.to_string()),
    };
    let (raw, _) = RawConfig::load(file).map_err(|e| BadInput(e.to_string()))?;
    Ok(raw.store.url)
}

/// Reads and validates a config file (or the defaults when there is none) as written:
/// the store is the file's.
fn read_config(path: Option<&Path>) -> Result<Config> {
    let (raw, base) = read_raw(path)?;
    raw.validate(&base)
        .map_err(|e| BadInput(e.to_string()).into())
}

/// The config file as written (or the defaults when there is none), and its directory.
fn read_raw(path: Option<&Path>) -> Result<(RawConfig, PathBuf)> {
    Ok(match path {
        Some(p) => RawConfig::load(p).map_err(|e| BadInput(e.to_string()))?,
        None if Path::new(DEFAULT_CONFIG).exists() => {
            RawConfig::load(Path::new(DEFAULT_CONFIG)).map_err(|e| BadInput(e.to_string()))?
        }
        None => (RawConfig::default(), PathBuf::from(".")),
    })
}

/// Only the `[hook]` settings of the config, validated (the file must still parse): for a
/// hook that asks a running server, which has the rest.
pub fn load_hook_config(path: Option<&Path>) -> Result<airlock_server::config::RawHook> {
    let (raw, _) = read_raw(path)?;
    raw.hook_only().map_err(|e| BadInput(e.to_string()).into())
}

/// Loads the config a command runs the gate with (or the defaults when there is none),
/// its store chosen by [`store_location`] without a `--store` flag.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    load_config_with(path, None)
}

/// [`load_config`], with the command's `--store`.
pub fn load_config_with(path: Option<&Path>, store: Option<&str>) -> Result<Config> {
    let mut config = read_config(path)?;
    let configured = config.store.clone();
    config.store = store_location(store, || Ok(configured))?;
    Ok(config)
}

pub use airlock_server::config::resolve_listen;

pub async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut config = load_config_with(args.config.as_deref(), args.store.as_deref())?;
    if let Some(l) = &args.listen {
        config.listen = resolve_listen(l).map_err(|e| BadInput(format!("--listen: {e}")))?;
        // `/mcp` checks the Host header: the name typed here, and what it resolved to.
        if let Some((host, _)) = l.rsplit_once(':') {
            for h in [
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                config.listen.ip().to_string(),
            ] {
                if !config.mcp_allowed_hosts.contains(&h) {
                    config.mcp_allowed_hosts.push(h);
                }
            }
        }
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
            let c = read_config(Some(&file))?;
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

/// Opens the local store to write tokens; every error names it.
async fn open_for_tokens(store: &str) -> Result<std::sync::Arc<dyn Journal>> {
    airlock_store::open(store)
        .await
        .with_context(|| format!("cannot open the store `{store}`"))
}

/// A gate error about tokens, naming the store it came from: the user's mistakes are bad
/// input.
fn token_error(e: airlock_gate::GateError, store: &str) -> anyhow::Error {
    match e {
        airlock_gate::GateError::Invalid(m) | airlock_gate::GateError::Conflict(m) => {
            BadInput(format!("{m} (store `{store}`)")).into()
        }
        airlock_gate::GateError::NotFound(..) => {
            BadInput(format!("{e} in the store `{store}`")).into()
        }
        other => anyhow::Error::new(other).context(format!("store `{store}`")),
    }
}

pub async fn token(cmd: TokenCmd) -> Result<ExitCode> {
    match cmd {
        TokenCmd::Create {
            agent,
            operator,
            admin,
            profile,
            target,
        } => {
            let (name, kind) = match (agent, operator, admin) {
                (Some(a), None, None) => (a, PrincipalKind2::Agent),
                (None, Some(o), None) => (o, PrincipalKind2::Operator),
                (None, None, Some(a)) => (a, PrincipalKind2::Admin),
                _ => {
                    return Err(BadInput(
                        "give exactly one of --agent NAME, --operator NAME or --admin NAME".into(),
                    )
                    .into());
                }
            };
            let kind_s = kind.as_str();
            let (token, held_by) = match &target.url {
                Some(url) => {
                    let client = crate::remote::Client::new(url, target.token.clone())?;
                    let mut body = json!({"name": name, "kind": kind_s});
                    if let Some(p) = &profile {
                        body["profile"] = json!(p);
                    }
                    let v = client.post("/v1/tokens", &body).await?;
                    let token = v["token"]
                        .as_str()
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| {
                            anyhow::anyhow!("the server at {url} answered without a token")
                        })?
                        .to_string();
                    (token, format!("the server at {url}"))
                }
                None => {
                    let store = target.store.location()?;
                    if let Some(p) = &profile {
                        // The profile must be one the config defines.
                        let config = load_config(target.store.config.as_deref())?;
                        if !config.profiles.contains_key(p) {
                            return Err(BadInput(format!(
                                "--profile: unknown profile `{p}`; the config defines {}",
                                config
                                    .profiles
                                    .keys()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                            .into());
                        }
                    }
                    let journal = open_for_tokens(&store).await?;
                    let token = airlock_gate::issue_token_with_profile(
                        journal.as_ref(),
                        now_ms(),
                        &name,
                        kind,
                        profile.as_deref(),
                    )
                    .await
                    .map_err(|e| token_error(e, &store))?;
                    (token, format!("the store `{store}`"))
                }
            };
            if target.json {
                println!("{}", json!({"name": name, "kind": kind_s, "token": token}));
            } else {
                println!("{token}");
                eprintln!(
                    "{kind_s} `{name}`: token above, shown once (stored hashed in {held_by}). Use it as `Authorization: Bearer TOKEN` with a server on that store."
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
                    let store = target.store.location()?;
                    let journal = open_for_tokens(&store).await?;
                    airlock_gate::revoke_token(journal.as_ref(), now_ms(), &name, "cli")
                        .await
                        .map_err(|e| token_error(e, &store))?;
                }
            }
            if target.json {
                println!("{}", json!({"name": name, "revoked": true}));
            } else {
                println!("revoked: {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::List { store, json } => {
            let store = store.location()?;
            // Read-only: it works beside a running server and never creates a store.
            let journal = airlock_store::open_read_only(&store)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) | StoreError::Invalid(_) => {
                        anyhow::Error::new(BadInput(e.to_string()))
                    }
                    other => anyhow::Error::new(other),
                })?;
            let principals = journal
                .principals()
                .await
                .with_context(|| format!("store `{store}`"))?;
            if json {
                // Never the token hash: a listing is for reading, not for authenticating.
                let items: Vec<serde_json::Value> = principals
                    .iter()
                    .map(|p| {
                        json!({"name": p.name, "kind": p.kind, "profile": p.profile, "created_at": p.created_at, "revoked": p.revoked})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(ExitCode::SUCCESS);
            }
            if principals.is_empty() {
                println!(
                    "no agents or operators in the store `{store}`: create one with `airlock token create`"
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED).set_header([
                "name",
                "kind",
                "profile",
                "created (UTC)",
                "revoked",
            ]);
            for p in &principals {
                t.add_row([
                    p.name.clone(),
                    p.kind.clone(),
                    p.profile.clone().unwrap_or_else(|| "-".into()),
                    crate::journal::format_ts(p.created_at),
                    if p.revoked { "yes" } else { "no" }.to_string(),
                ]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_variable_then_the_config() {
        let config = || Ok("from-config.db".to_string());
        let pick = |flag, env| pick_store(flag, env, config).unwrap();
        assert_eq!(pick(Some("flag.db"), Some("env.db")), "flag.db");
        assert_eq!(pick(None, Some("env.db")), "env.db");
        assert_eq!(pick(None, None), "from-config.db");
        // An empty value names nothing.
        assert_eq!(pick(Some(""), Some("  ")), "from-config.db");
        // The config is not even read when a store is named.
        let broken = || Err(anyhow::anyhow!("broken config"));
        assert_eq!(pick_store(None, Some("env.db"), broken).unwrap(), "env.db");
        assert!(pick_store(None, None, broken).is_err());
    }

    #[test]
    fn listen_takes_addresses_and_host_names_and_refuses_garbage() {
        assert_eq!(
            resolve_listen("127.0.0.1:7070").unwrap().to_string(),
            "127.0.0.1:7070"
        );
        assert_eq!(
            resolve_listen("[::1]:7070").unwrap().to_string(),
            "[::1]:7070"
        );
        let local = resolve_listen("localhost:7071").unwrap();
        assert!(local.ip().is_loopback(), "{local}");
        assert_eq!(local.port(), 7071);
        let err = resolve_listen("localhost").unwrap_err();
        assert!(err.contains("has no port"), "{err}");
        let err = resolve_listen("localhost:http").unwrap_err();
        assert!(err.contains("`http` is not a port"), "{err}");
        let err = resolve_listen("not an address:80").unwrap_err();
        assert!(err.contains("is not an address like"), "{err}");
        let err = resolve_listen(":7070").unwrap_err();
        assert!(err.contains("is not an address like"), "{err}");
    }
}
