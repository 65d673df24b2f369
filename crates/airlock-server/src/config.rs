//! `airlock.toml`: the raw file as a user writes it, and the validated configuration the
//! server runs with. Validation collects every problem before failing.

use airlock_core::GuardConfig;
use airlock_gate::BakeConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// The config file as written. Every table and field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub journal: RawJournal,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub guards: GuardConfig,
    #[serde(default)]
    pub bake: BakeConfig,
    #[serde(default)]
    pub anomaly: airlock_gate::AnomalyConfig,
    /// `[profile.NAME]`: guards and anomaly settings for a class of agents (set when an
    /// agent's token is created), each field over the top-level `[guards]` and `[anomaly]`.
    /// `coding` and `infra` exist unless redefined.
    #[serde(default)]
    pub profile: BTreeMap<String, RawProfile>,
    #[serde(default)]
    pub approvals: RawApprovals,
    #[serde(default)]
    pub dashboard: RawDashboard,
    #[serde(default)]
    pub sim: RawSim,
    #[serde(default)]
    pub mcp: RawMcp,
    #[serde(default)]
    pub redact: airlock_gate::Redactor,
    #[serde(default)]
    pub upstream: Vec<crate::mcp::UpstreamConfig>,
    #[serde(default)]
    pub hook: RawHook,
    #[serde(default)]
    pub watch: airlock_watch::prometheus::WatchConfig,
    #[serde(default)]
    pub alert: Vec<airlock_watch::alerts::AlertConfig>,
    #[serde(default)]
    pub slo: Vec<airlock_core::slo::QueryRule>,
    #[serde(default)]
    pub probe: Vec<airlock_watch::probe::ProbeConfig>,
    /// `[[provider]]`: providers built by their registered kind.
    #[serde(default)]
    pub provider: Vec<airlock_core::registry::ProviderTable>,
}

/// `[profile.NAME]`: only the fields that differ from the top-level tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawProfile {
    /// Fields of `[guards]` (rate limits, budgets, breaker) for these agents.
    pub guards: serde_json::Map<String, serde_json::Value>,
    /// Fields of `[anomaly]` for these agents: `enabled`, `quarantine`, `threshold`,
    /// `sustain`, `min_actions`, `reversal_window_s` (the window's shape is common).
    pub anomaly: serde_json::Map<String, serde_json::Value>,
}

/// The profiles every config has unless it redefines them: `coding` for coding agents
/// behind the hook (many small commands; their edits and builds in the project are not
/// counted at all) and `infra` for agents that operate infrastructure (the top-level
/// settings as they are).
fn builtin_profiles() -> BTreeMap<String, RawProfile> {
    let coding = RawProfile {
        guards: serde_json::json!({"mutations_per_minute": 120, "max_destructive": 3})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        anomaly: serde_json::json!({"min_actions": 40})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    BTreeMap::from([
        ("coding".to_string(), coding),
        ("infra".to_string(), RawProfile::default()),
    ])
}

/// `base` with `over`'s fields on top, read back as `T` (unknown fields refused).
fn overlay<T: Serialize + serde::de::DeserializeOwned>(
    base: &T,
    over: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, String> {
    let mut v = serde_json::to_value(base).map_err(|e| e.to_string())?;
    if let Some(m) = v.as_object_mut() {
        for (k, x) in over {
            m.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// `[mcp]`
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawMcp {
    /// Serve the MCP gateway at `/mcp` on `airlock serve`.
    pub enabled: bool,
    /// Seconds a held tool call waits for an operator before it answers `held` (0: answer at once).
    pub hold_wait_s: u64,
    /// `Host` header values `/mcp` accepts, besides loopback names and the listen address.
    pub allowed_hosts: Vec<String>,
}

impl Default for RawMcp {
    fn default() -> Self {
        Self {
            enabled: true,
            hold_wait_s: 0,
            allowed_hosts: Vec::new(),
        }
    }
}

/// What the hook does when the gate cannot say (`[hook]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookAnswer {
    Allow,
    Ask,
    Deny,
}

/// `[hook]`
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawHook {
    /// Environment assumed for commands and files that do not show one. `unknown` (the
    /// default) is treated by the default policy pack like `prod`: destructive work is held.
    pub default_env: String,
    /// Answer for a command Airlock does not recognize (outside `prod`; in `prod` it is always `deny`).
    pub unknown: HookAnswer,
    /// Answer when the gate holds an action: `ask` hands it to the person at the agent's
    /// prompt, `deny` makes the agent stop until an operator approves it in Airlock.
    pub on_hold: HookAnswer,
    /// Seconds a hook's hold stays in the operators' queue before it expires (with a
    /// journal entry): the person at the agent's prompt usually answers it there.
    pub hold_timeout_s: u64,
}

impl RawHook {
    /// What is wrong with these settings, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.hold_timeout_s == 0 {
            problems.push("hook.hold_timeout_s: must be above 0".into());
        }
        if self.default_env.trim().is_empty() {
            problems.push("hook.default_env: must not be empty".into());
        }
        if self.on_hold == HookAnswer::Allow {
            problems.push(
                "hook.on_hold: `allow` would let held actions through: use `ask` or `deny`".into(),
            );
        }
        problems
    }
}

impl RawConfig {
    /// Only the `[hook]` settings, validated: what a hook that asks a running server needs
    /// (the server has the rest). The whole file must still parse.
    pub fn hook_only(self) -> Result<RawHook, ConfigError> {
        let problems = self.hook.problems();
        if problems.is_empty() {
            Ok(self.hook)
        } else {
            Err(ConfigError(problems))
        }
    }
}

impl Default for RawHook {
    fn default() -> Self {
        Self {
            default_env: "unknown".into(),
            unknown: HookAnswer::Ask,
            on_hold: HookAnswer::Ask,
            hold_timeout_s: 900,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address to listen on.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest a provider call may take, in milliseconds.
    pub provider_timeout_ms: u64,
    /// How often baking changes are judged, in milliseconds.
    pub poll_interval_ms: u64,
    /// Longest `?wait=true` may block, in seconds.
    pub max_wait_s: u64,
    /// How long a resolved bearer token is trusted before it is read again, in
    /// milliseconds; `0` reads it on every request. A token revoked through this server
    /// stops working at once; one revoked by another process (`airlock token revoke` on
    /// the same file, another replica) within this time.
    pub token_cache_ms: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".into(),
            body_limit_bytes: 64 * 1024,
            provider_timeout_ms: 10_000,
            poll_interval_ms: 1000,
            max_wait_s: 600,
            token_cache_ms: 1000,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// A path or `sqlite://PATH` (one server), or `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// (several replicas sharing one database; see docs/operations.md).
    pub url: String,
    /// How the record of a decision that changes nothing (a read, allowed or denied) is
    /// journaled: `deferred` answers first and writes it with the next group, at once
    /// (a crash can lose at most `read_audit_max_queued` such records, never a mutation's);
    /// `sync` answers only once it is durable, like every mutation.
    pub read_audit: ReadAudit,
    /// With `read_audit = "deferred"`, the most read records waiting to be written at
    /// once; past it, reads wait for their own record.
    pub read_audit_max_queued: usize,
}

/// `[store] read_audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadAudit {
    Deferred,
    Sync,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            url: ".airlock/airlock.db".into(),
            read_audit: ReadAudit::Deferred,
            read_audit_max_queued: 1024,
        }
    }
}

/// `[journal]`: signed checkpoints of the journal's head.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawJournal {
    /// A private key file from `airlock keygen --out PATH`, kept outside the store. When
    /// set, the server appends a signed `checkpoint` event every `checkpoint_every` events,
    /// every `checkpoint_interval_s` seconds (when there is anything new) and on shutdown;
    /// `airlock journal verify --public-key PATH.pub` checks them.
    pub signing_key: Option<PathBuf>,
    /// Sign a checkpoint once this many events were appended since the last one.
    pub checkpoint_every: u64,
    /// Sign a checkpoint at least this often, in seconds, while events keep coming.
    pub checkpoint_interval_s: u64,
    /// A file outside the store (another disk, a path shipped elsewhere) that every signed
    /// checkpoint is appended to, as an exported line: `airlock journal verify --checkpoints
    /// FILE` then shows a journal cut short or rewritten since, even with its newest
    /// checkpoints deleted. Needs `signing_key`.
    pub witness: Option<PathBuf>,
}

impl Default for RawJournal {
    fn default() -> Self {
        Self {
            signing_key: None,
            checkpoint_every: 1000,
            checkpoint_interval_s: 60,
            witness: None,
        }
    }
}

/// The validated `[journal]`: the key's path (the key itself is read when the server
/// starts, never kept in the configuration).
#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub signing_key: Option<PathBuf>,
    pub checkpoint_every: u64,
    pub checkpoint_interval_s: u64,
    pub witness: Option<PathBuf>,
}

/// `[policy]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    /// Cedar policy files; empty means the default pack.
    pub files: Vec<PathBuf>,
}

/// `[approvals]`
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawApprovals {
    /// Holds of `critical` risk need two distinct operators.
    pub two_person_critical: bool,
    /// Seconds a hold waits before it expires as a deny.
    pub hold_timeout_s: u64,
    /// Seconds an approval of an action the agent carries out itself (a hook's command or
    /// edit) stays usable: the agent's next identical request (same plan hash) within it is
    /// allowed once, without spending budgets again.
    pub permit_ttl_s: u64,
}

impl Default for RawApprovals {
    fn default() -> Self {
        Self {
            two_person_critical: false,
            hold_timeout_s: 3600,
            permit_ttl_s: 600,
        }
    }
}

/// `[dashboard]`: the operators' pages at `/`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawDashboard {
    /// Serve the dashboard at `/` (the API stays under `/v1`).
    pub enabled: bool,
    /// Seconds a sign-in lasts; the operator's token is checked again on every request.
    pub session_ttl_s: u64,
    /// A directory of proving-ground reports (`airlock prove --report DIR/NAME.html`) the
    /// dashboard lists and shows; relative to the config file.
    pub reports_dir: Option<PathBuf>,
}

impl Default for RawDashboard {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl_s: 12 * 3600,
            reports_dir: None,
        }
    }
}

/// `[sim]`
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawSim {
    /// Run the sandbox cloud live as the `sim` provider.
    pub enabled: bool,
    /// A scenario file whose world (regions, services, versions, events, faults) to run;
    /// empty means the built-in `cost-cutter-cascade` world.
    pub world: Option<PathBuf>,
    /// Simulated seconds per real second.
    pub time_factor: f64,
    /// Seconds of simulated time per tick.
    pub tick_s: u64,
    /// Seed of the simulated world's randomness.
    pub seed: u64,
}

impl Default for RawSim {
    fn default() -> Self {
        Self {
            enabled: true,
            world: None,
            time_factor: 1.0,
            tick_s: 1,
            seed: 1,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub body_limit_bytes: usize,
    pub provider_timeout_ms: u64,
    pub poll_interval_ms: u64,
    pub max_wait_s: u64,
    pub token_cache_ms: u64,
    pub store: String,
    /// Deferred read records that may wait at once (`0`: reads are journaled before they
    /// are answered).
    pub read_audit_max_queued: usize,
    /// `[journal]`: checkpoint signing.
    pub journal: JournalConfig,
    /// Cedar text of the policy pack.
    pub policy_text: String,
    pub policy_count: usize,
    pub guards: GuardConfig,
    pub bake: BakeConfig,
    pub anomaly: airlock_gate::AnomalyConfig,
    /// Guard profiles by name, each resolved over the top-level settings.
    pub profiles: BTreeMap<String, airlock_gate::Profile>,
    pub two_person_critical: bool,
    pub hold_timeout_s: u64,
    pub permit_ttl_s: u64,
    /// `[dashboard]`, with `reports_dir` resolved against the config's directory.
    pub dashboard: RawDashboard,
    pub sim: Option<SimConfig>,
    /// `/mcp` is served.
    pub mcp_enabled: bool,
    pub mcp_hold_wait_s: u64,
    pub mcp_allowed_hosts: Vec<String>,
    pub redact: airlock_gate::Redactor,
    pub upstreams: Vec<crate::mcp::UpstreamConfig>,
    pub hook: RawHook,
    pub watch: airlock_watch::prometheus::WatchConfig,
    pub alerts: Vec<airlock_watch::alerts::AlertConfig>,
    pub probes: Vec<airlock_watch::probe::ProbeConfig>,
    /// Providers the registry builds: the `[[provider]]` tables, plus `shell` and `tool`
    /// (the hook's) unless a table names them.
    pub providers: Vec<airlock_core::registry::ProviderTable>,
    /// The kinds the tables were checked against, which build them.
    pub registry: airlock_core::registry::Registry,
}

/// The live sandbox cloud's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub world: airlock_sim::WorldSpec,
    pub time_factor: f64,
    pub tick_s: u64,
    pub seed: u64,
}

/// Every problem with a config, each naming its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl RawConfig {
    /// Parses TOML; syntax errors name the line.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|sp| {
                text.as_bytes()[..sp.start.min(text.len())]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1
            });
            ConfigError(vec![format!(
                "{origin}{}: {}",
                line.map_or(String::new(), |l| format!(":{l}")),
                e.message()
            )])
        })
    }

    /// Reads a config file (relative paths inside it resolve against its folder).
    pub fn load(path: &Path) -> Result<(Self, PathBuf), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("cannot read `{}`: {e}", path.display())]))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((Self::parse(&text, &path.display().to_string())?, base))
    }

    /// Validates into a [`Config`] against the server's own provider kinds, collecting
    /// every problem. `base` resolves relative paths.
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        self.validate_with(base, crate::registry())
    }

    /// Validates into a [`Config`] whose `[[provider]]` tables are checked against (and
    /// will be built by) `registry`.
    pub fn validate_with(
        self,
        base: &Path,
        registry: airlock_core::registry::Registry,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let listen = match resolve_listen(&self.server.listen) {
            Ok(a) => Some(a),
            Err(e) => {
                problems.push(format!("server.listen: {e}"));
                None
            }
        };
        if self.server.body_limit_bytes < 1024 {
            problems.push("server.body_limit_bytes: must be at least 1024".into());
        }
        problems.extend(self.anomaly.problems());
        let mut profiles = BTreeMap::new();
        let mut raw_profiles = builtin_profiles();
        raw_profiles.extend(self.profile.clone());
        for (name, p) in &raw_profiles {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                problems.push(format!(
                    "profile.{name}: a profile name is letters, digits, `-` and `_`"
                ));
                continue;
            }
            let guards = overlay(&self.guards, &p.guards)
                .map_err(|e| problems.push(format!("profile.{name}.guards: {e}")));
            let anomaly = overlay(&self.anomaly, &p.anomaly)
                .map_err(|e| problems.push(format!("profile.{name}.anomaly: {e}")));
            for k in p.anomaly.keys() {
                if ["window_s", "history_s", "slot_s"].contains(&k.as_str()) {
                    problems.push(format!(
                        "profile.{name}.anomaly.{k}: the window's shape is common to every agent; set it in [anomaly]"
                    ));
                }
            }
            if let (Ok(guards), Ok(anomaly)) = (guards, anomaly) {
                problems.extend(
                    anomaly
                        .problems()
                        .into_iter()
                        .map(|e| format!("profile.{name}: {e}")),
                );
                profiles.insert(name.clone(), airlock_gate::Profile { guards, anomaly });
            }
        }
        if self.server.provider_timeout_ms == 0 {
            problems.push("server.provider_timeout_ms: must be above 0".into());
        }
        if !(10..=60_000).contains(&self.server.poll_interval_ms) {
            problems.push("server.poll_interval_ms: must be within 10..60000".into());
        }
        if self.server.token_cache_ms > 60_000 {
            problems.push("server.token_cache_ms: must be within 0..60000".into());
        }
        if self.store.url.trim().is_empty() {
            problems.push("store.url: must not be empty".into());
        }
        let journal = JournalConfig {
            signing_key: self.journal.signing_key.as_ref().map(|p| base.join(p)),
            checkpoint_every: self.journal.checkpoint_every,
            checkpoint_interval_s: self.journal.checkpoint_interval_s,
            witness: self.journal.witness.as_ref().map(|p| base.join(p)),
        };
        if journal.witness.is_some() && journal.signing_key.is_none() {
            problems.push(
                "journal.witness: needs journal.signing_key (only signed checkpoints are witnessed)"
                    .into(),
            );
        }
        if journal.checkpoint_every == 0 {
            problems.push("journal.checkpoint_every: must be above 0".into());
        }
        if !(1..=86_400).contains(&journal.checkpoint_interval_s) {
            problems.push("journal.checkpoint_interval_s: must be within 1..86400".into());
        }
        if let Some(key) = &journal.signing_key
            && let Err(e) = airlock_store::CheckpointSigner::from_file(key)
        {
            problems.push(format!("journal.signing_key: {e}"));
        }
        let mut policy_text = String::new();
        for f in &self.policy.files {
            let p = base.join(f);
            match std::fs::read_to_string(&p) {
                Ok(t) => {
                    policy_text.push_str(&t);
                    policy_text.push('\n');
                }
                Err(e) => {
                    problems.push(format!("policy.files: cannot read `{}`: {e}", p.display()))
                }
            }
        }
        if self.policy.files.is_empty() {
            policy_text = airlock_core::policy::DEFAULT_POLICIES.to_string();
        }
        let policy_count =
            match airlock_core::PolicyEngine::new(&policy_text, airlock_core::policy::SCHEMA) {
                Ok(e) => e.len(),
                Err(e) if problems.iter().all(|p| !p.starts_with("policy.files")) => {
                    problems.push(format!("policy.files: {e}"));
                    0
                }
                Err(_) => 0,
            };
        let g = &self.guards;
        if g.mutations_per_minute == 0 {
            problems.push("guards.mutations_per_minute: must be above 0".into());
        }
        if !(0.0..=100.0).contains(&g.max_capacity_cut_pct) {
            problems.push("guards.max_capacity_cut_pct: must be within 0..100".into());
        }
        if g.breaker_reverts == 0 {
            problems.push("guards.breaker_reverts: must be above 0".into());
        }
        let b = &self.bake;
        if !(0.0..=1.0).contains(&b.availability) {
            problems.push("bake.availability: must be within 0..1".into());
        }
        if b.judge_window_s == 0 {
            problems.push("bake.judge_window_s: must be above 0".into());
        }
        if self.approvals.hold_timeout_s == 0 {
            problems.push("approvals.hold_timeout_s: must be above 0".into());
        }
        if self.approvals.permit_ttl_s == 0 {
            problems.push("approvals.permit_ttl_s: must be above 0".into());
        }
        if self.dashboard.session_ttl_s == 0 || self.dashboard.session_ttl_s > 30 * 86_400 {
            problems.push("dashboard.session_ttl_s: must be from 1 s to 30 days".into());
        }
        if self.store.read_audit == ReadAudit::Deferred
            && !(1..=1_000_000).contains(&self.store.read_audit_max_queued)
        {
            problems.push("store.read_audit_max_queued: must be within 1..1000000".into());
        }
        problems.extend(self.hook.problems());
        let sim = if self.sim.enabled {
            if !(self.sim.time_factor > 0.0 && self.sim.time_factor <= 1000.0) {
                problems.push("sim.time_factor: must be above 0 and at most 1000".into());
            }
            if self.sim.tick_s == 0 || self.sim.tick_s > 60 {
                problems.push("sim.tick_s: must be within 1..60".into());
            }
            let world = match &self.sim.world {
                None => {
                    airlock_prove::Scenario::from_toml(airlock_prove::FLAGSHIPS[2].1, "built-in")
                        .map(|s| s.world())
                        .ok()
                }
                Some(f) => {
                    let p = base.join(f);
                    match std::fs::read_to_string(&p) {
                        Ok(t) => {
                            match airlock_prove::Scenario::from_toml(&t, &p.display().to_string()) {
                                Ok(s) => Some(s.world()),
                                Err(e) => {
                                    problems.push(format!("sim.world: {e}"));
                                    None
                                }
                            }
                        }
                        Err(e) => {
                            problems.push(format!("sim.world: cannot read `{}`: {e}", p.display()));
                            None
                        }
                    }
                }
            };
            world.map(|world| SimConfig {
                world,
                time_factor: self.sim.time_factor,
                tick_s: self.sim.tick_s,
                seed: self.sim.seed,
            })
        } else {
            None
        };
        if self.mcp.hold_wait_s > self.server.max_wait_s {
            problems.push(format!(
                "mcp.hold_wait_s: must be at most server.max_wait_s ({})",
                self.server.max_wait_s
            ));
        }
        for (i, u) in self.upstream.iter().enumerate() {
            problems.extend(u.problems(i));
            if self.upstream[..i].iter().any(|o| o.name == u.name) {
                problems.push(format!("upstream[{i}].name: `{}` is used twice", u.name));
            }
        }
        problems.extend(self.watch.problems());
        // `[[slo]]` at the top, or `[[bake.slo]]`: the same rules.
        let mut slo = self.bake.slo.clone();
        slo.extend(self.slo.iter().cloned());
        problems.extend(airlock_watch::prometheus::slo_problems(&slo, &self.watch));
        for (i, a) in self.alert.iter().enumerate() {
            problems.extend(a.problems(i));
        }
        for (i, p) in self.probe.iter().enumerate() {
            problems.extend(p.problems(i));
            if self.probe[..i].iter().any(|o| o.service == p.service) {
                problems.push(format!(
                    "probe[{i}].service: `{}` has two probes",
                    p.service
                ));
            }
        }
        let mut taken: Vec<&str> = self.upstream.iter().map(|u| u.name.as_str()).collect();
        if self.sim.enabled {
            taken.push("sim");
        }
        problems.extend(registry.check(&self.provider, &taken));
        let mut providers = self.provider.clone();
        for hook in ["shell", "tool"] {
            if !providers.iter().any(|t| t.name() == hook) {
                providers.push(airlock_core::registry::ProviderTable::of(hook));
            }
        }
        let mut mcp_hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(l) = listen {
            mcp_hosts.push(l.ip().to_string());
        }
        mcp_hosts.extend(self.mcp.allowed_hosts.iter().cloned());
        match (problems.is_empty(), listen) {
            (true, Some(listen)) => Ok(Config {
                listen,
                body_limit_bytes: self.server.body_limit_bytes,
                provider_timeout_ms: self.server.provider_timeout_ms,
                poll_interval_ms: self.server.poll_interval_ms,
                max_wait_s: self.server.max_wait_s,
                token_cache_ms: self.server.token_cache_ms,
                store: self.store.url,
                read_audit_max_queued: match self.store.read_audit {
                    ReadAudit::Deferred => self.store.read_audit_max_queued,
                    ReadAudit::Sync => 0,
                },
                journal,
                policy_text,
                policy_count,
                guards: self.guards,
                bake: airlock_gate::BakeConfig { slo, ..self.bake },
                anomaly: self.anomaly,
                profiles,
                two_person_critical: self.approvals.two_person_critical,
                hold_timeout_s: self.approvals.hold_timeout_s,
                permit_ttl_s: self.approvals.permit_ttl_s,
                dashboard: RawDashboard {
                    reports_dir: self.dashboard.reports_dir.as_ref().map(|d| base.join(d)),
                    ..self.dashboard
                },
                sim,
                mcp_enabled: self.mcp.enabled,
                mcp_hold_wait_s: self.mcp.hold_wait_s,
                mcp_allowed_hosts: mcp_hosts,
                redact: self.redact,
                upstreams: self.upstream,
                hook: self.hook,
                watch: self.watch,
                alerts: self.alert,
                probes: self.probe,
                providers,
                registry,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

/// An address to listen on: `IP:PORT`, or `HOST:PORT` with the host resolved (an IPv4
/// address first, as `localhost` means 127.0.0.1 to most clients).
pub fn resolve_listen(text: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let like = "an address like 127.0.0.1:7070 or localhost:7070";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("`{text}` has no port: use {like}"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(format!("`{text}` is not {like}"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{text}`: `{port}` is not a port (0 to 65535)"))?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("`{text}`: cannot resolve `{host}`: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{text}`: `{host}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_config_is_the_documented_default() {
        let c = RawConfig::default().validate(Path::new(".")).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(c.store, ".airlock/airlock.db");
        assert!(c.sim.is_some());
        assert!(c.policy_count >= 5);
    }

    #[test]
    fn the_journal_section_is_checked_and_its_key_read() {
        let c = RawConfig::default().validate(Path::new(".")).unwrap();
        assert!(c.journal.signing_key.is_none());
        assert_eq!(
            (c.journal.checkpoint_every, c.journal.checkpoint_interval_s),
            (1000, 60)
        );
        let dir = std::env::temp_dir().join(format!("airlock-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bad.key"), "not a key").unwrap();
        let raw = RawConfig::parse(
            "[journal]\nsigning_key = \"bad.key\"\ncheckpoint_every = 0\ncheckpoint_interval_s = 0\n",
            "a.toml",
        )
        .unwrap();
        let err = raw.validate(&dir).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "journal.checkpoint_every",
                "journal.checkpoint_interval_s",
                "journal.signing_key"
            ],
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_host_name_listen_address_is_resolved() {
        let raw = RawConfig::parse("[server]\nlisten = \"localhost:7071\"\n", "a.toml").unwrap();
        let c = raw.validate(Path::new(".")).unwrap();
        assert!(
            c.listen.ip().is_loopback() && c.listen.port() == 7071,
            "{}",
            c.listen
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_field() {
        let raw = RawConfig::parse(
            "[server]\nlisten = \"nowhere\"\npoll_interval_ms = 1\n[bake]\navailability = 2.0\n[sim]\ntime_factor = 0\n",
            "a.toml",
        )
        .unwrap();
        let err = raw.validate(Path::new(".")).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "server.listen",
                "server.poll_interval_ms",
                "bake.availability",
                "sim.time_factor"
            ],
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_name_the_line() {
        let err = RawConfig::parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", "a.toml")
            .unwrap_err();
        assert!(
            err.0[0].starts_with("a.toml:3: unknown field `lisen`"),
            "{err}"
        );
    }

    #[test]
    fn provider_tables_are_checked_against_the_registry() {
        let text = "[[provider]]\nkind = \"cloud\"\n\n[[provider]]\nkind = \"shell\"\ncolour = \"red\"\n\n[[provider]]\nkind = \"tool\"\nname = \"sim\"\n";
        let err = RawConfig::parse(text, "a.toml")
            .unwrap()
            .validate(Path::new("."))
            .unwrap_err();
        let all = err.0.join("\n");
        assert!(
            all.contains(
                "provider[0].kind: unknown provider kind `cloud`; known kinds: aws, shell, tool"
            ),
            "{all}"
        );
        assert!(
            all.contains("provider[1].`colour`: unknown setting"),
            "{all}"
        );
        assert!(
            all.contains("provider[2].name: `sim` is used twice"),
            "{all}"
        );
    }

    #[test]
    fn the_hook_providers_come_from_the_registry_unless_a_table_names_them() {
        let c = RawConfig::default().validate(Path::new(".")).unwrap();
        let names: Vec<&str> = c.providers.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["shell", "tool"]);
        let text = "[[provider]]\nkind = \"shell\"\ndefault_env = \"prod\"\n";
        let c = RawConfig::parse(text, "a.toml")
            .unwrap()
            .validate(Path::new("."))
            .unwrap();
        assert_eq!(c.providers.len(), 2);
        assert_eq!(c.providers[0].settings["default_env"], "prod");
    }
}
