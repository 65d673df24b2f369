//! Running the server: open the store, start the live sandbox cloud and the bake poller,
//! resume bakes left by a previous run, serve HTTP, and shut down gracefully.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::router::app;
use crate::state::AppState;
use airlock_core::registry::BuildContext;
use airlock_core::slo::{Counters, Sample, SignalSource};
use airlock_core::{
    ActionRequest, Applied, Clock, Landing, Plan, PolicyEngine, Provider, ProviderError,
    ResourceAddr, Restored, Snapshot, VerbSpec,
};
use airlock_gate::{DoorConfig, FrontDoor, Notifying};
use airlock_gate::{Gate, GateConfig};
use airlock_sim::{Desired, Sim, SimHandle, SimProvider};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why the server could not start or stopped with an error.
///
/// A wrapped error is the `source`, not part of the message: `airlock serve` prints the
/// whole chain, which showed every detail twice when the message repeated it.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("journal")]
    Store(#[from] airlock_store::StoreError),
    #[error("policy")]
    Policy(#[from] airlock_core::PolicyError),
    #[error("simulator: {0}")]
    Sim(String),
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Provider(String),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server")]
    Io(#[from] std::io::Error),
    #[error("gate")]
    Gate(#[from] airlock_gate::GateError),
}

/// The wall clock, for the server only (core and simulator never read it).
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "the server runs on real time")]
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The live simulator as a provider that saves its desired state after every change, so a
/// restarted server finds the world as its journal left it.
///
/// Changes are saved in groups: a change is made in memory, then waits until a save that
/// covers it is on disk. One save writes the whole world once for every change made
/// before it, so concurrent changes share one write and one `fsync` (as the journal's
/// group commit does). A change returns only once it is saved; a save that fails puts the
/// world back as last saved and fails every change it would have covered, along with any
/// change made on top of them meanwhile, so nothing is live that a restart would not find.
pub struct PersistentSim {
    inner: SimProvider,
    saver: Arc<Saver>,
}

/// The group saver's shared part: what the save task needs after its caller is gone.
struct Saver {
    sim: SimHandle,
    path: PathBuf,
    state: std::sync::Mutex<Pending>,
    /// One save at a time: saves share the temporary file, and each writes everything
    /// made before it.
    io: tokio::sync::Mutex<()>,
}

/// Changes made in memory and how far they are saved.
struct Pending {
    /// Changes made so far, numbered from 1.
    made: u64,
    /// Every change up to this number is settled: saved, or put back by a failed save.
    settled: u64,
    /// The world as last saved: what a failed save puts back.
    saved: BTreeMap<String, Desired>,
    /// A fault injected between a change and its save: the save covering it fails.
    doomed: Option<String>,
    /// Changes put back by a failed save, as inclusive ranges with the reason.
    failed: Vec<(u64, u64, String)>,
    /// Changes whose callers have not had their answer yet (bounds `failed`).
    waiting: std::collections::BTreeSet<u64>,
}

fn poisoned() -> ProviderError {
    ProviderError::Unavailable("the simulator's state is poisoned".into())
}

impl Saver {
    /// Every service's desired state, as a save writes it.
    fn desired_all(&self) -> Result<BTreeMap<String, Desired>, ProviderError> {
        let sim = self.sim.lock().map_err(|_| poisoned())?;
        Ok(sim
            .spec()
            .services
            .iter()
            .filter_map(|s| sim.desired(&s.name).ok().map(|d| (s.name.clone(), d)))
            .collect())
    }

    /// Puts the world back to `prior` in memory: a change that could not be saved is not
    /// left live (it would vanish on restart while the journal says it failed).
    fn put_back(&self, prior: &BTreeMap<String, Desired>) {
        let Ok(mut sim) = self.sim.lock() else {
            tracing::error!(
                "the simulator's state is poisoned; a change that was not saved may still be live"
            );
            return;
        };
        for (name, d) in prior {
            if let Err(e) = sim.restore_desired(name, d) {
                tracing::error!(service = %name, error = %e, "could not put a service back after a failed save");
            }
        }
    }

    /// Writes the state file (blocking: the caller runs it off the runtime's workers).
    fn write(path: &std::path::Path, state: &BTreeMap<String, Desired>) -> Result<(), String> {
        if airlock_core::failpoint::hit("sim.save").is_some() {
            return Err(format!(
                "cannot save the simulator's state to `{}`: failpoint `sim.save` fired",
                path.display()
            ));
        }
        let text = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        write_durably(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                format!(
                    "cannot save the simulator's state to `{}`: {e}",
                    path.display()
                )
            })
    }

    /// Change `n`'s fate once settled: `None` while it is still unsaved.
    fn settled(p: &Pending, n: u64) -> Option<Result<(), ProviderError>> {
        if let Some((_, _, why)) = p.failed.iter().find(|(lo, hi, _)| (*lo..=*hi).contains(&n)) {
            return Some(Err(ProviderError::Unavailable(why.clone())));
        }
        (n <= p.settled).then_some(Ok(()))
    }

    /// Returns once change `n` is saved, or put back by a failed save. Whoever finds it
    /// unsaved when its turn comes saves everything made so far.
    async fn durable(self: Arc<Self>, n: u64) -> Result<(), ProviderError> {
        let out = self.save_through(n).await;
        if let Ok(mut p) = self.state.lock() {
            p.waiting.remove(&n);
            let oldest = p.waiting.first().copied().unwrap_or(u64::MAX);
            p.failed.retain(|(_, hi, _)| *hi >= oldest);
        }
        out
    }

    async fn save_through(&self, n: u64) -> Result<(), ProviderError> {
        let _io = self.io.lock().await;
        let (world, upto, doomed) = {
            let mut p = self.state.lock().map_err(|_| poisoned())?;
            if let Some(fate) = Self::settled(&p, n) {
                return fate;
            }
            (self.desired_all()?, p.made, p.doomed.take())
        };
        let written = match doomed {
            Some(why) => Err(why),
            None => {
                let path = self.path.clone();
                tokio::task::spawn_blocking(move || Self::write(&path, &world).map(|()| world))
                    .await
                    .unwrap_or_else(|e| Err(format!("the save task failed: {e}")))
            }
        };
        let mut p = self.state.lock().map_err(|_| poisoned())?;
        match written {
            Ok(world) => {
                p.settled = upto;
                p.saved = world;
            }
            Err(why) => {
                // Changes made on top of the failed ones since are put back with them.
                self.put_back(&p.saved);
                let range = (p.settled + 1, p.made, why);
                p.settled = p.made;
                p.doomed = None;
                p.failed.push(range);
            }
        }
        Self::settled(&p, n).unwrap_or_else(|| Err(poisoned()))
    }
}

impl PersistentSim {
    /// The live simulator, saving to `path`; the world as it is now counts as saved.
    fn new(inner: SimProvider, path: PathBuf) -> Result<Self, ProviderError> {
        let mut saver = Saver {
            sim: inner.handle(),
            path,
            state: std::sync::Mutex::new(Pending {
                made: 0,
                settled: 0,
                saved: BTreeMap::new(),
                doomed: None,
                failed: Vec::new(),
                waiting: Default::default(),
            }),
            io: tokio::sync::Mutex::new(()),
        };
        let now = saver.desired_all()?;
        saver.state.get_mut().map_err(|_| poisoned())?.saved = now;
        Ok(Self {
            inner,
            saver: Arc::new(saver),
        })
    }

    /// Runs a change in memory, then waits for a save that covers it; a failed save (or a
    /// fault injected between the two) puts the world back, so the change is either live
    /// and saved or not live at all. The save runs in its own task: a caller that goes
    /// away does not leave its change live and unsaved.
    async fn saved<T>(
        &self,
        point: &str,
        change: impl FnOnce() -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let (out, n) = {
            let mut p = self.saver.state.lock().map_err(|_| poisoned())?;
            let out = change()?;
            p.made += 1;
            let n = p.made;
            p.waiting.insert(n);
            if airlock_core::failpoint::hit(point).is_some() {
                p.doomed = Some(format!("failpoint `{point}` fired"));
            }
            (out, n)
        };
        tokio::spawn(self.saver.clone().durable(n))
            .await
            .unwrap_or_else(|e| {
                Err(ProviderError::Unavailable(format!(
                    "the save task failed: {e}"
                )))
            })?;
        Ok(out)
    }
}

/// Writes a file and flushes it to disk before it replaces anything.
fn write_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[async_trait]
impl Provider for PersistentSim {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn verbs(&self) -> &[VerbSpec] {
        self.inner.verbs()
    }
    fn signal_key(&self, addr: &ResourceAddr) -> Option<String> {
        self.inner.signal_key(addr)
    }
    async fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError> {
        self.inner.plan(req).await
    }
    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        self.inner.snapshot(targets).await
    }
    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        if !plan.verb.is_mutation() {
            return self.inner.apply(plan).await;
        }
        if let Some(e) = airlock_core::failpoint::provider_fault("sim.apply") {
            return Err(e);
        }
        let inner = &self.inner;
        self.saved("sim.apply.unsaved", || inner.apply_now(plan))
            .await
    }
    async fn restore(&self, snap: &Snapshot, expect: &Applied) -> Result<Restored, ProviderError> {
        if let Some(e) = airlock_core::failpoint::provider_fault("sim.restore") {
            return Err(e);
        }
        let inner = &self.inner;
        self.saved("sim.restore.unsaved", || inner.restore_now(snap, expect))
            .await
    }
    async fn reconcile_apply(
        &self,
        plan: &Plan,
        before: &Snapshot,
    ) -> Result<Landing, ProviderError> {
        self.inner.reconcile_apply(plan, before).await
    }
    async fn reconcile_restore(
        &self,
        snap: &Snapshot,
        applied: &Applied,
    ) -> Result<Landing, ProviderError> {
        self.inner.reconcile_restore(snap, applied).await
    }
}

#[async_trait]
impl SignalSource for PersistentSim {
    async fn read(&self, service: &str) -> Result<Option<Counters>, String> {
        if airlock_core::failpoint::hit("signals.read").is_some() {
            return Err("failpoint `signals.read` fired".into());
        }
        SignalSource::read(&self.inner, service).await
    }
    async fn recent(&self, service: &str, window_s: u64) -> Result<Option<Sample>, String> {
        if airlock_core::failpoint::hit("signals.read").is_some() {
            return Err("failpoint `signals.read` fired".into());
        }
        self.inner.recent(service, window_s).await
    }
}

/// Signals when no simulator runs: every service's data is missing.
struct NoSignals;

#[async_trait]
impl SignalSource for NoSignals {
    async fn read(&self, _service: &str) -> Result<Option<Counters>, String> {
        Ok(None)
    }
    async fn recent(&self, _service: &str, _window_s: u64) -> Result<Option<Sample>, String> {
        Ok(None)
    }
}

/// Providers, the signal source and the live world's handle, as the server wires them.
type Wiring = (
    Vec<Arc<dyn Provider>>,
    Arc<dyn SignalSource>,
    Option<SimHandle>,
);

/// Builds the state the router and the background tasks share (no socket, no tasks).
pub async fn build(config: &Config) -> Result<(AppState, Option<SimHandle>), ServeError> {
    let points = airlock_core::failpoint::from_env().map_err(ServeError::Provider)?;
    if points > 0 {
        tracing::warn!(
            points,
            "{} is set: faults will be injected on purpose",
            airlock_core::failpoint::ENV
        );
    }
    let store = airlock_store::open(&config.store).await?;
    let mut journal = Notifying::new(store);
    let writer = journal.writer(config.read_audit_max_queued);
    let journal = Arc::new(journal);
    writer
        .spawn(Arc::downgrade(&journal))
        .map_err(ServeError::Io)?;
    let policy = Arc::new(PolicyEngine::new(
        &config.policy_text,
        airlock_core::policy::SCHEMA,
    )?);
    let clock = Arc::new(SystemClock);
    let (providers, signals, handle): Wiring = match &config.sim {
        Some(sc) => {
            let mut sim = Sim::new(sc.world.clone(), sc.seed, clock.now(), sc.tick_s)
                .map_err(|e| ServeError::Sim(e.to_string()))?;
            let path = sim_state_path(&config.store);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let saved: BTreeMap<String, Desired> =
                    serde_json::from_str(&text).map_err(|e| {
                        ServeError::Sim(format!("`{}` does not parse: {e}", path.display()))
                    })?;
                for (name, d) in saved {
                    sim.restore_desired(&name, &d)
                        .map_err(|e| ServeError::Sim(e.to_string()))?;
                }
            }
            sim.tick();
            let handle: SimHandle = Arc::new(std::sync::Mutex::new(sim));
            let p = Arc::new(
                PersistentSim::new(SimProvider::new(handle.clone()), path)
                    .map_err(|e| ServeError::Sim(e.to_string()))?,
            );
            (
                vec![p.clone() as Arc<dyn Provider>],
                p as Arc<dyn SignalSource>,
                Some(handle),
            )
        }
        None => (
            Vec::new(),
            Arc::new(NoSignals) as Arc<dyn SignalSource>,
            None,
        ),
    };
    // With `[watch] source = "prometheus"`, changes are judged on what Prometheus scraped.
    let signals: Arc<dyn SignalSource> = match config.watch.source {
        airlock_watch::prometheus::SourceKind::Prometheus => Arc::new(
            airlock_watch::prometheus::PromSignals::new(config.watch.clone()),
        ),
        airlock_watch::prometheus::SourceKind::Sim => signals,
        // CloudWatch is read with the `aws` provider's connection and credentials (the
        // first `[[provider]] kind = "aws"`, or the standard chain without one).
        airlock_watch::prometheus::SourceKind::Cloudwatch => {
            let settings = config
                .providers
                .iter()
                .find(|t| t.kind == "aws")
                .map(|t| airlock_provider_aws::Settings::from_table(&t.settings))
                .unwrap_or_default();
            Arc::new(
                airlock_provider_aws::cloudwatch::CloudWatchSignals::connect(
                    &settings.connection,
                    config.watch.cloudwatch.clone(),
                )
                .await,
            )
        }
    };
    // Services with a `[[probe]]` are measured by probing them.
    let signals: Arc<dyn SignalSource> = if config.probes.is_empty() {
        signals
    } else {
        Arc::new(airlock_watch::probe::Probed::new(
            signals,
            config.probes.clone(),
        ))
    };
    let mut tools = airlock_gate::frontdoor::Catalog::native(&providers);
    let mut providers = providers;
    // Providers built by their registered kind (the hook's `shell` and `tool` among them).
    for table in &config.providers {
        let kind = config.registry.get(&table.kind).ok_or_else(|| {
            ServeError::Provider(format!("unknown provider kind `{}`", table.kind))
        })?;
        let built = kind
            .build_all(BuildContext {
                name: table.name().to_string(),
                settings: table.settings.clone(),
                default_env: config.hook.default_env.clone(),
            })
            .await
            .map_err(|e| ServeError::Provider(format!("provider `{}`: {e}", table.name())))?;
        if kind.offers_tools() {
            tools.extend(
                airlock_gate::frontdoor::Catalog::native(&built[..built.len().min(1)]).tools,
            );
        }
        providers.extend(built);
    }
    for u in &config.upstreams {
        let up = crate::mcp::UpstreamProvider::connect(u.clone())
            .await
            .map_err(|e| ServeError::Upstream(e.to_string()))?;
        let defs = up.tool_defs();
        tracing::info!(upstream = %u.name, tools = defs.len(), "upstream MCP server connected");
        tools.extend(defs);
        providers.push(Arc::new(up));
    }
    let gate = Arc::new(Gate::new(
        journal.clone(),
        providers,
        signals,
        policy,
        clock,
        GateConfig {
            guards: config.guards.clone(),
            bake: config.bake.clone(),
            provider_timeout: Duration::from_millis(config.provider_timeout_ms),
            hold_timeout_s: config.hold_timeout_s,
            handoff_hold_timeout_s: config.hook.hold_timeout_s,
            permit_ttl_s: config.permit_ttl_s,
            two_person_critical: config.two_person_critical,
            redact: config.redact.clone(),
            anomaly: config.anomaly.clone(),
            profiles: config.profiles.clone(),
            token_cache_ms: config.token_cache_ms,
        },
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let door = Arc::new(FrontDoor::new(
        gate.clone(),
        journal.clone(),
        Arc::new(tools),
        metrics.clone(),
        DoorConfig {
            max_wait: Duration::from_secs(config.max_wait_s),
            tool_hold_wait: Duration::from_secs(config.mcp_hold_wait_s),
        },
    ));
    let state = AppState {
        door,
        gate,
        journal,
        metrics,
        body_limit: config.body_limit_bytes,
        openapi: Arc::new(crate::openapi::openapi()),
        shutdown,
        stop: Arc::new(stop),
        sim: handle.clone(),
        dashboard: config.dashboard.enabled.then(|| {
            Arc::new(crate::dashboard::Dashboard::new(
                config.dashboard.session_ttl_s as i64 * 1000,
                config.dashboard.reports_dir.clone(),
            ))
        }),
        mcp_hosts: if config.mcp_enabled {
            config.mcp_allowed_hosts.clone()
        } else {
            Vec::new()
        },
    };
    Ok((state, handle))
}

fn sim_state_path(store: &str) -> PathBuf {
    // A shared store has no directory of its own: each replica keeps its world where it runs.
    if airlock_store::is_shared(store) {
        return PathBuf::from("sim-state.json");
    }
    let path = store
        .strip_prefix("sqlite://")
        .or_else(|| store.strip_prefix("sqlite:"))
        .unwrap_or(store);
    let p = PathBuf::from(path);
    match p.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("sim-state.json"),
        _ => PathBuf::from("sim-state.json"),
    }
}

/// A started gate without its HTTP listener: the shared state and the background tasks
/// (simulator ticks, bake polling). `airlock serve` and a local `airlock mcp` both run one.
pub struct Started {
    pub state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The checkpoint signer (with `[journal] signing_key`): stopped last, so its final
    /// checkpoint covers everything the other tasks wrote.
    checkpoints: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Started {
    /// Stops the background tasks and waits for them; then signs a last checkpoint.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.state.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // Deferred read records are written before the last checkpoint and the exit.
        if let Err(e) = airlock_store::Journal::flush(self.state.journal.as_ref()).await {
            tracing::error!("the journal could not be flushed on stop: {e}");
        }
        if let Some((stop, task)) = self.checkpoints {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}

/// Signs a checkpoint of the journal's head every `every` events, every `interval` while
/// anything new was written, and once more when stopped.
async fn sign_checkpoints(
    signer: airlock_store::CheckpointSigner,
    witness: Option<PathBuf>,
    journal: Arc<dyn airlock_store::Journal>,
    mut feed: tokio::sync::broadcast::Receiver<airlock_core::Event>,
    every: u64,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let clock = SystemClock;
    let sign = async |reason: &str| match airlock_store::checkpoint::sign_head(
        journal.as_ref(),
        &signer,
        clock.now(),
        reason,
    )
    .await
    {
        Ok(Some(e)) => {
            tracing::info!(
                seq = e.seq,
                head_seq = e.payload["head_seq"].as_i64(),
                head_hash = e.payload["head_hash"].as_str(),
                key_id = signer.key_id(),
                signature = e.payload["signature"].as_str(),
                reason,
                "journal checkpoint signed"
            );
            if let Some(path) = &witness
                && let Err(why) = witness_append(path, &e)
            {
                tracing::error!(path = %path.display(), error = %why, "cannot append a checkpoint to the witness file");
            }
        }
        Ok(None) => {}
        // Loud, and the journal's write health (readiness) shows it until a write succeeds.
        Err(e) => tracing::error!(error = %e, reason, "cannot sign a journal checkpoint"),
    };
    let mut since = 0u64;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reason = tokio::select! {
            _ = tick.tick() => "interval",
            got = feed.recv() => {
                match got {
                    Ok(e) if e.kind == airlock_core::EventKind::Checkpoint => {
                        since = 0;
                        continue;
                    }
                    Ok(_) => since += 1,
                    Err(RecvError::Lagged(n)) => since += n,
                    // No more events will come: sign what there is when stopped.
                    Err(RecvError::Closed) => {
                        let _ = stop.changed().await;
                        break;
                    }
                }
                if since < every {
                    continue;
                }
                "events"
            }
            _ = stop.changed() => break,
        };
        sign(reason).await;
        since = 0;
    }
    sign("shutdown").await;
}

/// Appends a signed checkpoint to the witness file and flushes it to disk.
fn witness_append(path: &std::path::Path, e: &airlock_core::Event) -> Result<(), String> {
    use std::io::Write;
    let line = airlock_store::witness_line(e).map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| e.to_string())
}

/// How often a replica reads what the others journaled when it decides nothing itself.
const REPLICA_SYNC: Duration = Duration::from_millis(200);
/// Every how many syncs a replica looks for changes of replicas that stopped.
const ADOPT_EVERY: u64 = 5;

/// Builds the state, restores operator controls and baking changes from the journal, and
/// starts the background tasks.
pub async fn start(config: &Config) -> Result<Started, ServeError> {
    let (state, handle) = build(config).await?;
    // Replicas sharing a store follow what the others journal from here on; what came
    // before is read back below like after a restart.
    if airlock_store::is_shared(&config.store) {
        state.gate.follow(state.journal.clone()).await?;
        tracing::info!("following the shared store: this server is one of several replicas");
    }
    // Holds an operator has not answered yet, from the journal: approvable after a restart.
    // (Older ones, past every hold timeout, are expired by `restore_controls`.)
    let holds = state.gate.restore_holds().await?;
    // Approvals of commands agents run themselves, not yet used: still allowed once.
    let permits = state.gate.restore_permits().await?;
    let (reopened, expired) = state.gate.restore_controls().await?;
    // The anomaly model's history: agents are scored on what they did before the restart.
    let replayed = state.gate.restore_behaviour().await?;
    if replayed > 0 {
        tracing::info!(
            events = replayed,
            "anomaly history read back from the journal"
        );
    }
    if reopened > 0 || expired > 0 {
        tracing::info!(
            breakers = reopened,
            holds_expired = expired,
            "restored operator controls from the journal"
        );
    }
    if holds > 0 || permits > 0 {
        tracing::info!(
            holds,
            permits,
            "pending approvals and unused permits read back from the journal"
        );
    }
    let resumed = state.gate.resume().await?;
    if resumed > 0 {
        tracing::info!(resumed, "resumed baking changes from the journal");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    if state.gate.is_replica() {
        // What the other replicas journal reaches this one's state and event streams within
        // a sync period even when nothing is decided here.
        let gate = state.gate.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(REPLICA_SYNC);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut ticks: u64 = 0;
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        if let Err(e) = gate.sync().await {
                            tracing::warn!(error = %e, "cannot read the other replicas' events");
                        }
                        // The changes of replicas that stopped, taken over within a second.
                        ticks += 1;
                        if ticks.is_multiple_of(ADOPT_EVERY)
                            && let Err(e) = gate.adopt().await
                        {
                            tracing::warn!(error = %e, "cannot take over the changes of stopped replicas");
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        }));
    }
    if let (Some(handle), Some(sc)) = (handle, &config.sim) {
        let period = Duration::from_secs_f64(sc.tick_s as f64 / sc.time_factor);
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        if let Ok(mut sim) = handle.lock() { sim.tick(); }
                    }
                    _ = stop.changed() => break,
                }
            }
        }));
    }
    {
        let door = state.door.clone();
        let period = Duration::from_millis(config.poll_interval_ms);
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = every.tick() => match door.poll().await {
                        Ok(outcomes) => for o in &outcomes {
                            tracing::info!(outcome = ?o, "bake");
                        },
                        Err(e) => tracing::error!(error = %e, "bake poll failed"),
                    },
                    _ = stop.changed() => break,
                }
            }
        }));
    }
    if !config.alerts.is_empty() {
        let deliveries = state.metrics.alert_deliveries.clone();
        let alerter = airlock_watch::alerts::Alerter::new(
            config.alerts.clone(),
            state.journal.clone(),
            Arc::new(SystemClock),
        )
        .on_outcome(move |receiver, outcome| {
            let labels = crate::metrics::AlertLabels {
                receiver: receiver.to_string(),
                outcome: outcome.as_str().to_string(),
            };
            deliveries.get_or_create(&labels).inc();
        });
        tasks.push(tokio::spawn(airlock_watch::alerts::run(
            alerter,
            state.gate.clone(),
            state.journal.subscribe_at(),
            stop_rx.clone(),
        )));
    }
    let checkpoints = match &config.journal.signing_key {
        Some(path) => {
            let signer = airlock_store::CheckpointSigner::from_file(path).map_err(|e| {
                airlock_store::StoreError::Invalid(format!("journal.signing_key: {e}"))
            })?;
            tracing::info!(key_id = signer.key_id(), "signing journal checkpoints");
            let (tx, rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(sign_checkpoints(
                signer,
                config.journal.witness.clone(),
                state.gate.journal().clone(),
                state.journal.subscribe(),
                config.journal.checkpoint_every,
                Duration::from_secs(config.journal.checkpoint_interval_s),
                rx,
            ));
            Some((tx, task))
        }
        None => None,
    };
    Ok(Started {
        state,
        stop: stop_tx,
        tasks,
        checkpoints,
    })
}

/// Runs the server until `shutdown` resolves; in-flight requests finish first.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let started = start(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    tracing::info!(addr = %config.listen, "airlock listening");
    let stop_streams = started.state.stop.clone();
    let router = app(started.state.clone());
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // End open event streams and MCP sessions, or graceful shutdown would wait for them.
            let _ = stop_streams.send(true);
        })
        .await;
    started.stop().await;
    served.map_err(ServeError::Io)
}
