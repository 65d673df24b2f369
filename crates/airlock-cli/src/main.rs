//! `airlock`: the one binary — the proving-ground demo, scenario runs, validation of
//! scenarios and policies, the journal, the server and its operator commands, the MCP
//! gateway and the coding-agent hook, shell completions and the man page.
//!
//! Exit codes: 0 success; 1 a check failed or something broke at run time; 2 bad input
//! (arguments, files that do not parse or validate).

mod bench;
mod bench_dashboard;
mod bench_hook;
mod bench_load;
mod bench_prove;
mod bench_replicas;
mod bench_sim;
mod demo;
mod hook;
mod journal;
mod mcp;
mod prove;
mod remote;
mod serve;
mod show;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The default local store, shared by every command run in the same directory (see
/// [`serve::store_location`] for the rule that picks the store).
pub const DEFAULT_STORE: &str = ".airlock/airlock.db";

/// The store of `airlock demo` and `airlock run`: simulated runs on virtual time are kept
/// apart from the live journal.
pub const DEMO_STORE: &str = ".airlock/demo.db";

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "The safety layer between AI agents and production infrastructure",
    long_about = "Airlock gates every agent action (dry-run plan, risk and blast radius, Cedar policy, \
guards, holds for a human), journals everything in a hash-chained log, bakes each change and reverts \
it when health breaks, and proves agents in a deterministic sandbox cloud before they go live.\n\n\
Exit codes: 0 success, 1 a check failed or a run broke, 2 bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every flagship scenario unguarded and guarded from the same seed and compare.
    ///
    /// Prints a side-by-side table, writes a self-contained HTML report, and journals the
    /// guarded runs in the demo's own store, `.airlock/demo.db` (never the store of
    /// `airlock serve`; `--store` picks another).
    Demo(demo::DemoArgs),
    /// Prove agents on scenario files: scenarios × modes × seeds in parallel, each with
    /// its reference and do-nothing runs; scorecards, the scenarios' assertions and pass^k
    /// (every seed passes). Exit code 1 when an assertion fails, so it gates CI.
    ///
    /// `--agent-cmd CMD` tests any program instead of the scenarios' agents: it gets the
    /// gate as an MCP server on its stdin/stdout and acts in turns (`observe`, the
    /// sandbox's tools, `next_turn`); the simulator waits while it thinks.
    Prove(prove::ProveArgs),
    /// Run one scenario file, unguarded, guarded or both.
    ///
    /// Guarded runs are journaled in the demo's own store, `.airlock/demo.db` (never the
    /// store of `airlock serve`; `--store` picks another).
    Run(demo::RunArgs),
    /// Check scenario files: every problem is reported with its line or field.
    #[command(subcommand)]
    Scenario(ScenarioCmd),
    /// Check Cedar policy files against the Airlock schema.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Verify, show, export and back up the journal.
    ///
    /// The store is `--store`, else AIRLOCK_STORE, else the config's `[store] url`, else
    /// `.airlock/airlock.db`: the same rule `airlock serve` follows.
    #[command(subcommand)]
    Journal(journal::JournalCmd),
    /// Make an ed25519 key pair for signing journal checkpoints: the private key in `--out`
    /// (mode 0600, never overwritten; keep it outside the store), the public key in
    /// `OUT.pub`, printed too. Point `[journal] signing_key` at the private key and verify
    /// with `airlock journal verify --public-key OUT.pub`.
    Keygen {
        /// Where to write the private key.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Run the gate as an HTTP service (API, approvals, events, metrics, the live sandbox cloud).
    Serve(serve::ServeArgs),
    /// Serve the MCP gateway on stdin/stdout: every tool call is decided by the gate as the
    /// agent whose token is in AIRLOCK_TOKEN. With AIRLOCK_URL, calls go to that running
    /// `airlock serve`; without it, the gate runs here on the local store and config.
    Mcp(mcp::McpArgs),
    /// Coding-agent hooks: decide each tool call an agent is about to make (a shell command
    /// classified into verbs, targets and risk; a file edit; an MCP tool) through the gate.
    #[command(subcommand)]
    Hook(hook::HookCmd),
    /// Check an `airlock.toml`, or print its JSON Schema.
    #[command(subcommand)]
    Config(serve::ConfigCmd),
    /// List the provider kinds `[[provider]]` tables can name, with what each is.
    Providers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the OpenAPI document of the HTTP API (kept in `docs/openapi.json`), generated
    /// from the handlers; `airlock serve` serves the same at `/openapi.json`.
    Openapi,
    /// Create, revoke and list agents' and operators' tokens.
    ///
    /// Without `--url` they live in the local store: `--store`, else AIRLOCK_STORE, else
    /// the config's `[store] url`, else `.airlock/airlock.db` (the rule `airlock serve`
    /// follows, so a token made here works against a server run in the same place).
    #[command(subcommand)]
    Token(serve::TokenCmd),
    /// Approve a held action (operator).
    Approve {
        /// The approval id (`apr_…`).
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Deny a held action (operator).
    Deny {
        /// The approval id (`apr_…`).
        id: String,
        /// Why (shown to the agent).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Agents' behaviour: each one's anomaly score, the feature furthest from its usual,
    /// and its breaker (open when quarantined or frozen).
    Agents {
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// List holds waiting for an operator.
    Approvals {
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Show a change's timeline: request, verdict, approvals, apply, bake judgements, breach,
    /// revert or settle, alerts. From a running server with `--url`, else the local store.
    Show(show::ShowArgs),
    /// Revert one change from its snapshot (exit 1 if it needs attention instead).
    Revert {
        /// The change id (`chg_…`).
        change: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Revert an agent's changes since a time, newest first; stops at a conflict (exit 1).
    Undo {
        /// The agent.
        #[arg(long)]
        agent: String,
        /// How far back, e.g. `30m`, `2h`.
        #[arg(long)]
        since: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Freeze an agent: its mutations are held for an operator.
    Freeze {
        agent: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Unfreeze an agent (closes its breaker).
    Unfreeze {
        agent: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Show the kill switch (no argument, or `status`), or turn it on (every mutation
    /// denied, reads still work) or off.
    Killswitch {
        #[arg(value_enum)]
        state: Option<remote::Switch>,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Benchmarks (measured on this machine, never asserted).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Follow the event stream: readable lines, or JSON lines with `--json`.
    Tail {
        /// Resume after this event sequence number.
        #[arg(long)]
        from: Option<i64>,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Print a shell completion script: `airlock completions bash > /etc/bash_completion.d/airlock`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `airlock man > airlock.1 && man ./airlock.1`.
    Man,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Allow-path submissions over HTTP with the durable journal vs a no-op handler.
    Http(bench::HttpBenchArgs),
    /// The latency a gated, journaled, proxied MCP `tools/call` adds over calling the
    /// upstream directly (p50, p99 and their ratios, measured in one run).
    Mcp(bench::McpBenchArgs),
    /// Decisions per second and p50/p99 for 1, 2, 3 … replicas sharing a PostgreSQL journal
    /// vs one server on SQLite, in one run on this machine.
    Replicas(bench_replicas::ReplicasBenchArgs),
    /// Load times of the dashboard's pages with a large journal (1,000,000 events by
    /// default) against an empty one, over loopback HTTP as a signed-in operator.
    Dashboard(bench_dashboard::DashboardBenchArgs),
    /// What a simulated day of the sandbox cloud costs (200 services, 24 h at 10 s ticks by
    /// default) against a minimal tick model of the same services, in one run.
    Sim(bench_sim::SimBenchArgs),
    /// Wall time of `airlock hook claude-code` for a typical command against a running
    /// server (process start included) vs starting the same binary to print its version.
    Hook(bench_hook::HookBenchArgs),
    /// Wall time of the proving ground over the scenario library at its default seeds
    /// (every run `airlock prove` makes) vs the same worlds with nobody acting.
    Prove(bench_prove::ProveBenchArgs),
}

#[derive(Subcommand)]
enum ScenarioCmd {
    /// Print the JSON Schema of scenario files (kept in `schema/scenario.schema.json`),
    /// for editors and linters.
    Schema,
    /// Validate scenario files; exit code 2 when any is invalid.
    Validate {
        /// Scenario files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Parse and validate a policy file against the schema; exit code 2 when invalid.
    Validate {
        /// A Cedar policy file.
        file: PathBuf,
        /// A Cedar schema file (default: the built-in Airlock schema).
        #[arg(long)]
        schema: Option<PathBuf>,
    },
}

/// An error that is the user's input, not a failure: exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs its work at info; one-shot commands only warn.
    let (json_logs, default_level) = match &cli.command {
        Command::Serve(a) => (a.log_format == serve::LogFormat::Json, "info"),
        _ => (false, "warn"),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| default_level.into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json_logs {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Writes a generated document to standard output; a reader that stops early
/// (`airlock man | head`) is not an error.
fn print_all(bytes: &[u8]) -> Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::demo(args).await,
        Command::Run(args) => demo::run(args).await,
        Command::Prove(args) => prove::prove(args).await,
        Command::Journal(cmd) => journal::journal(cmd).await,
        Command::Keygen { out } => journal::keygen(&out),
        Command::Serve(args) => serve::serve(args).await,
        Command::Config(cmd) => serve::config(cmd),
        Command::Providers { json } => {
            let registry = airlock_server::registry();
            let kinds: Vec<(&str, &str, bool)> = registry
                .kinds()
                .map(|k| (k.kind(), k.describe(), k.offers_tools()))
                .collect();
            if json {
                let items: Vec<serde_json::Value> = kinds
                    .iter()
                    .map(|(k, d, t)| serde_json::json!({"kind": k, "description": d, "mcp_tools": t}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                for (k, d, _) in &kinds {
                    println!("{k:<8} {d}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mcp(args) => mcp::mcp(args).await,
        Command::Hook(cmd) => hook::hook(cmd).await,
        Command::Token(cmd) => serve::token(cmd).await,
        Command::Approve { id, reason, remote } => remote::approve(remote, id, reason).await,
        Command::Deny { id, reason, remote } => remote::deny(remote, id, reason).await,
        Command::Approvals { remote } => remote::approvals(remote).await,
        Command::Agents { remote } => remote::agents(remote).await,
        Command::Show(args) => show::show(args).await,
        Command::Revert { change, remote } => remote::revert(remote, change).await,
        Command::Undo {
            agent,
            since,
            remote,
        } => remote::undo(remote, agent, since).await,
        Command::Freeze { agent, remote } => remote::freeze(remote, agent, true).await,
        Command::Unfreeze { agent, remote } => remote::freeze(remote, agent, false).await,
        Command::Killswitch { state, remote } => remote::killswitch(remote, state).await,
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "airlock", &mut out);
            print_all(&out)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            print_all(&out)
        }
        Command::Bench(BenchCmd::Http(args)) => bench::http(args).await,
        Command::Bench(BenchCmd::Mcp(args)) => bench::mcp(args).await,
        Command::Bench(BenchCmd::Replicas(args)) => bench_replicas::replicas(args).await,
        Command::Bench(BenchCmd::Dashboard(args)) => bench_dashboard::dashboard(args).await,
        Command::Bench(BenchCmd::Sim(args)) => bench_sim::sim(args),
        Command::Bench(BenchCmd::Hook(args)) => bench_hook::hook(args).await,
        Command::Bench(BenchCmd::Prove(args)) => bench_prove::prove(args).await,
        Command::Tail { from, remote } => remote::tail(remote, from).await,
        Command::Openapi => {
            print!("{}", airlock_server::openapi::json()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario(ScenarioCmd::Schema) => {
            print!("{}", airlock_prove::scenario::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario(ScenarioCmd::Validate { files }) => {
            let mut bad = 0;
            for f in &files {
                match demo::load_scenario(f) {
                    Ok(s) => println!("ok: {} ({})", f.display(), s.name),
                    Err(e) => {
                        bad += 1;
                        eprintln!("{e}");
                    }
                }
            }
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Policy(PolicyCmd::Validate { file, schema }) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| BadInput(format!("cannot read `{}`: {e}", file.display())))?;
            let schema_text = match schema {
                Some(p) => std::fs::read_to_string(&p)
                    .map_err(|e| BadInput(format!("cannot read `{}`: {e}", p.display())))?,
                None => airlock_core::policy::SCHEMA.to_string(),
            };
            match airlock_core::PolicyEngine::new(&text, &schema_text) {
                Ok(engine) => {
                    println!("ok: {} ({} policies)", file.display(), engine.len());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(BadInput(format!("{}: {e}", file.display())).into()),
            }
        }
    }
}
