//! Submitting, deciding, approving and applying: steps 1 to 7 of the flow.

use crate::bake::{Bake, BakeConfig};
use crate::redact::Redactor;
use airlock_core::failpoint::provider_fault;
use airlock_core::guard::{GuardConfig, GuardFinding, Guards};
use airlock_core::policy::PrincipalKind;
use airlock_core::risk::{AgentStats, Assessment, HealthStatus, assess_risk};
use airlock_core::slo::SignalSource;
use airlock_core::verdict::combine;
use airlock_core::{
    ActionRequest, ActionStatus, Blast, ChangeStatus, Clock, Diff, EventKind, Landing, NewEvent,
    Plan, PolicyEngine, Provider, ProviderError, Risk, Timestamp, Verdict, VerdictKind,
};
use airlock_store::{AgentRecord, ChangeRecord, Journal, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Gate settings.
#[derive(Debug, Clone)]
pub struct GateConfig {
    pub guards: GuardConfig,
    pub bake: BakeConfig,
    /// Longest a provider call may take before it counts as failed.
    pub provider_timeout: Duration,
    /// How long a hold waits for an operator before it expires as a deny, in seconds.
    pub hold_timeout_s: u64,
    /// How long a hold of an action the caller carries out itself (a hook's, answered at the
    /// agent's own prompt) stays in the operators' queue, in seconds.
    pub handoff_hold_timeout_s: u64,
    /// How long an approval of such an action stays usable as a one-shot permit for the
    /// agent's next identical request, in seconds.
    pub permit_ttl_s: u64,
    /// Whether holds of `critical` risk need two distinct operators' approvals.
    pub two_person_critical: bool,
    /// What is redacted before anything reaches the journal.
    pub redact: Redactor,
    /// How agents' own behaviour is scored, and when an agent is quarantined.
    pub anomaly: crate::behaviour::AnomalyConfig,
    /// Guard profiles by name: the limits and anomaly settings of agents whose token was
    /// created with that profile (`[profile.NAME]`).
    pub profiles: BTreeMap<String, Profile>,
    /// How long a resolved token is trusted without reading it again, in milliseconds (`0`:
    /// every request reads it). A token issued, re-keyed or revoked through this gate is
    /// read again at once; one revoked by another process (the CLI on the same file,
    /// another replica) stops working within this time.
    pub token_cache_ms: u64,
}

/// One agent class's guards (`[profile.NAME]`): what `guards` and `anomaly` are for the
/// agents created with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub guards: GuardConfig,
    pub anomaly: crate::behaviour::AnomalyConfig,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            guards: GuardConfig::default(),
            bake: BakeConfig::default(),
            provider_timeout: Duration::from_secs(10),
            hold_timeout_s: 3600,
            handoff_hold_timeout_s: 900,
            permit_ttl_s: 600,
            two_person_critical: false,
            redact: Redactor::default(),
            anomaly: crate::behaviour::AnomalyConfig::default(),
            profiles: BTreeMap::new(),
            token_cache_ms: 0,
        }
    }
}

/// Why the gate refused to even decide.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("unknown or revoked token: authenticate with a token from `airlock token create`")]
    Unauthenticated,
    #[error("`{0}` is not allowed to do this")]
    Forbidden(String),
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("unknown {0} `{1}`")]
    NotFound(&'static str, String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("journal unavailable: {0}")]
    Journal(#[from] StoreError),
}

/// An authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Principal {
    pub name: String,
    pub kind: PrincipalKind2,
}

/// Agent or operator (serializable mirror of the policy's principal kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind2 {
    Agent,
    Operator,
    /// An operator who also issues and revokes operators' and admins' tokens: one operator
    /// can never mint a second identity to satisfy the two-person rule alone.
    Admin,
}

impl PrincipalKind2 {
    /// `agent`, `operator` or `admin`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind2::Agent => "agent",
            PrincipalKind2::Operator => "operator",
            PrincipalKind2::Admin => "admin",
        }
    }
    /// Whether it approves, reverts and freezes (an operator or an admin).
    pub fn is_operator(self) -> bool {
        matches!(self, PrincipalKind2::Operator | PrincipalKind2::Admin)
    }
    /// The stored kind read back; anything unknown is an agent, the least powerful.
    fn parse(s: &str) -> Self {
        match s {
            "operator" => PrincipalKind2::Operator,
            "admin" => PrincipalKind2::Admin,
            _ => PrincipalKind2::Agent,
        }
    }
}

impl Principal {
    /// This principal, if it is an agent: operators approve, they never act. The one agent
    /// check every door and the gate use.
    pub fn require_agent(self) -> Result<Self, GateError> {
        match self.kind {
            PrincipalKind2::Agent => Ok(self),
            PrincipalKind2::Operator | PrincipalKind2::Admin => Err(GateError::Forbidden(format!(
                "{} `{}`: actions are submitted by agents and tools are called by agents; operators approve",
                self.kind.as_str(),
                self.name
            ))),
        }
    }
}

/// The part of the provider's dry-run plan agents and operators see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanView {
    /// One line for people.
    pub summary: String,
    pub diffs: Vec<Diff>,
    pub blast: Blast,
    /// Predicted capacity divided by recent p95 demand; `null` when not applicable.
    pub headroom: Option<f64>,
    /// Whether a snapshot can undo the change.
    pub reversible: bool,
    /// Whether the verb destroys something.
    pub destructive: bool,
    /// blake3 of the plan's content (provider, verb, target, params, diffs); approvals are
    /// bound to it.
    pub hash: String,
    /// What the action reaches through its target (the services of a deleted environment),
    /// each decided as if targeted directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contained: Vec<ContainedView>,
    /// Serving capacity per availability zone after the change, in requests per second.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub az_capacity_rps: BTreeMap<String, f64>,
    /// Capacity left after losing the worst zone, divided by the expected demand, after the
    /// change; `null` when not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headroom_after_az_loss: Option<f64>,
}

/// A resource an action reaches through its target, as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContainedView {
    /// Its address.
    #[schema(value_type = String)]
    pub addr: airlock_core::ResourceAddr,
    /// Live resources depending on it that the action does not change.
    pub dependents: u32,
    /// Change of its serving capacity, in percent.
    pub capacity_delta_pct: f64,
    /// Whether the action destroys its data for good.
    #[serde(default)]
    pub loses_data: bool,
}

impl From<&Plan> for PlanView {
    fn from(p: &Plan) -> Self {
        Self {
            summary: p.summary.clone(),
            diffs: p.diffs.clone(),
            blast: p.blast.clone(),
            headroom: p.predicted.headroom,
            reversible: p.reversible,
            destructive: p.destructive,
            hash: p.hash.clone(),
            contained: p
                .contained
                .iter()
                .map(|c| ContainedView {
                    addr: c.addr.clone(),
                    dependents: c.dependents,
                    capacity_delta_pct: c.capacity_delta_pct,
                    loses_data: c.loses_data,
                })
                .collect(),
            az_capacity_rps: p.predicted.az_capacity_rps.clone(),
            headroom_after_az_loss: p.predicted.headroom_after_az_loss,
        }
    }
}

/// The gate's answer to one submission.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub id: String,
    pub agent: String,
    pub verdict: VerdictKind,
    pub reasons: Vec<String>,
    /// Human explanations of the reasons (hold texts, guard details).
    pub details: Vec<String>,
    pub risk: Risk,
    pub plan: Option<PlanView>,
    pub approval_id: Option<String>,
    pub change_id: Option<String>,
    /// What a read returned.
    pub result: Option<serde_json::Value>,
    /// Set when an allowed action failed to apply.
    pub error: Option<String>,
    /// For a denied or held request with numeric parameters: the nearest values the gate
    /// would allow now, as a request the agent can send instead.
    pub counter_offer: Option<CounterOffer>,
    /// For a rate-limited request: when the same request would pass the limit again.
    pub retry_after_s: Option<u64>,
}

/// The nearest version of a refused request that the gate would allow now.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CounterOffer {
    /// The request's params with the changed value (send them instead).
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// One line for people: "`replicas` = 14 would be allowed; 10 would not".
    pub summary: String,
}

/// How long an allowed hand-off is remembered for a report that it ran (an hour).
const HANDOFF_MEMORY_MS: i64 = 3_600_000;

/// What the gate made of an agent's report that a tool call ran.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RanReport {
    /// The action that allowed it, when the gate allowed it within the last hour.
    pub action_id: Option<String>,
    /// The hold it answered, when it was held and the person at the agent's prompt let it
    /// run: that hold has left the operators' queue.
    pub answered_hold: Option<String>,
}

/// How far from the asked value a counter-offer is searched, in each direction.
const COUNTER_OFFER_REACH: u64 = 24;

impl Decision {
    /// The verdict with its reasons, as the core type.
    pub fn full_verdict(&self) -> Verdict {
        match self.verdict {
            VerdictKind::Allow => Verdict::Allow,
            VerdictKind::Hold => Verdict::Hold(self.reasons.clone()),
            VerdictKind::Deny => Verdict::Deny(self.reasons.clone()),
        }
    }
    /// Whether a change was applied.
    pub fn applied(&self) -> bool {
        self.change_id.is_some()
    }
    /// Where the action stands right after this decision.
    pub fn status(&self) -> ActionStatus {
        match self.verdict {
            VerdictKind::Deny => ActionStatus::Denied,
            VerdictKind::Hold => ActionStatus::Held,
            // Applied, or possibly applied and left to a person (an error with a change).
            VerdictKind::Allow if self.applied() && self.error.is_some() => {
                ActionStatus::NeedsAttention
            }
            VerdictKind::Allow if self.applied() => ActionStatus::Baking,
            VerdictKind::Allow if self.error.is_some() => ActionStatus::Failed,
            VerdictKind::Allow => ActionStatus::Done,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PendingApproval {
    pub id: String,
    pub action_id: String,
    pub agent: String,
    pub request: ActionRequest,
    pub plan_hash: String,
    pub created_at: i64,
    pub risk: Risk,
    pub reasons: Vec<String>,
    pub details: Vec<String>,
    pub plan: PlanView,
    /// Operators who approved so far (the two-person rule needs two).
    pub approvers: Vec<String>,
}

/// An operator's approval of a hands-off action: the agent's next request with the same
/// plan hash, before `expires_at`, is allowed once, without spending budgets again or
/// counting as anomalous.
#[derive(Debug, Clone)]
pub(crate) struct Permit {
    pub approval_id: String,
    /// `operator:apr_…`, as journaled.
    pub by: String,
    pub expires_at: i64,
    /// Set when the gate carried the approved action out itself: (action, change). The
    /// agent's identical retry is then answered with that outcome, not applied again.
    pub applied: Option<(String, String)>,
}

/// The guards a permit lifts: those that count what an agent spends. The kill switch and
/// policy denials still apply.
const SPENDING_GUARDS: [&str; 3] = [
    "rate-limit",
    "blast-budget-destructive",
    "blast-budget-capacity",
];

/// A pending hold as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApprovalView {
    /// The approval id (`apr_…`).
    pub id: String,
    pub action_id: String,
    pub agent: String,
    pub request: ActionRequest,
    pub risk: Risk,
    pub reasons: Vec<String>,
    pub details: Vec<String>,
    pub plan: PlanView,
    /// When the hold began, in ms since the Unix epoch.
    pub held_since: i64,
    /// Approvals still needed (2 under the two-person rule for critical risk).
    pub approvals_needed: u32,
    /// Operators who approved so far.
    pub approved_by: Vec<String>,
}

/// A decision made but not yet journaled or applied.
pub(crate) struct Decided {
    decision: Decision,
    plan: Plan,
    provider: Arc<dyn Provider>,
    verdict: Verdict,
    events: Vec<NewEvent>,
    pending: Option<PendingApproval>,
    /// When the guards counted this allowed mutation against its budgets (given back if it
    /// never lands).
    spent_at: Option<Timestamp>,
}

/// An allowed mutation ready for its intent to be written ([`Gate::prepare`]).
struct Prepared {
    now: Timestamp,
    change_id: String,
    snapshot: airlock_core::Snapshot,
    baseline: Vec<airlock_core::slo::BaselineEntry>,
    query_baseline: Vec<crate::bake::QueryBaseline>,
    /// The change's record as `applying`, redacted.
    intent: ChangeRecord,
    /// The `applying` event that goes with it.
    event: NewEvent,
}

/// A baking change: its agent (for counting), and the bake itself, `None` while a poll or
/// a revert has it out (they hold the change's slot meanwhile).
pub(crate) struct BakeEntry {
    pub agent: String,
    /// Whether the change is a rollout (a deploy), which `one-rollout-at-a-time` counts.
    pub rollout: bool,
    /// Until when a settled change stays under watch; `None` while it bakes.
    pub watching: Option<i64>,
    /// Its revert met a conflict; retried each poll.
    pub retry: bool,
    pub bake: Option<Bake>,
}

/// The changes under watch by id, and how many of each agent's are still baking (not yet
/// settled), kept as entries come and go: a decision reads the count, and walking every
/// change under watch for it cost each decision more the more the agent had changed.
#[derive(Default)]
pub(crate) struct Bakes {
    entries: BTreeMap<String, BakeEntry>,
    /// Per agent: its baking changes, and how many of them are rollouts.
    baking: std::collections::HashMap<String, (u32, u32)>,
}

impl std::ops::Deref for Bakes {
    type Target = BTreeMap<String, BakeEntry>;
    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

impl Bakes {
    pub fn insert(&mut self, id: String, entry: BakeEntry) -> Option<BakeEntry> {
        self.count(&entry, true);
        let old = self.entries.insert(id, entry);
        if let Some(old) = &old {
            self.count(old, false);
        }
        old
    }

    pub fn remove(&mut self, id: &str) -> Option<BakeEntry> {
        let old = self.entries.remove(id);
        if let Some(old) = &old {
            self.count(old, false);
        }
        old
    }

    /// The slot of a change's bake, to take it out or put it back (nothing else of an
    /// entry changes in place).
    pub fn bake_mut(&mut self, id: &str) -> Option<&mut Option<Bake>> {
        self.entries.get_mut(id).map(|e| &mut e.bake)
    }

    /// How many of the agent's changes are baking, and how many of them are rollouts.
    pub fn baking_of(&self, agent: &str) -> (u32, u32) {
        self.baking.get(agent).copied().unwrap_or((0, 0))
    }

    fn count(&mut self, e: &BakeEntry, add: bool) {
        if e.watching.is_some() {
            return;
        }
        let n = self.baking.entry(e.agent.clone()).or_default();
        if add {
            n.0 += 1;
            n.1 += u32::from(e.rollout);
        } else {
            n.0 = n.0.saturating_sub(1);
            n.1 = n.1.saturating_sub(u32::from(e.rollout));
        }
        if n.0 == 0 {
            self.baking.remove(&e.agent);
        }
    }
}

/// Takes a short state lock. A panic elsewhere cannot leave these maps half-changed (every
/// critical section is a few plain inserts and removes), so a poisoned lock is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The slot key of a resource: one change in flight per resource.
pub(crate) fn resource_key(addr: &airlock_core::ResourceAddr) -> String {
    format!("res:{addr}")
}

/// The slot key of a change: one poll or revert at a time.
pub(crate) fn change_key(id: &str) -> String {
    format!("chg:{id}")
}

/// The slot key of a pending approval: one resolution at a time.
fn approval_key(id: &str) -> String {
    format!("apr:{id}")
}

/// The gate.
pub struct Gate {
    pub(crate) journal: Arc<dyn Journal>,
    /// The same journal, with its write failures remembered (for readiness).
    pub(crate) tracked: Arc<crate::tracked::Tracked>,
    pub(crate) providers: BTreeMap<String, Arc<dyn Provider>>,
    pub(crate) signals: Arc<dyn SignalSource>,
    pub(crate) policy: Arc<PolicyEngine>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: GateConfig,
    // The state, split by what must be exact together. Each part has its own short,
    // synchronous lock, never held across an `.await`: no provider, signal or journal call
    // ever runs under one, so a slow Prometheus or upstream stalls only its own caller.
    /// Budgets, rate windows, breakers and the kill switch: checked and spent in one step.
    pub(crate) guards: Mutex<Guards>,
    pub(crate) approvals: Mutex<BTreeMap<String, PendingApproval>>,
    /// One-shot permits from approvals of hands-off actions, by (agent, plan hash).
    pub(crate) permits: Mutex<BTreeMap<(String, String), Permit>>,
    /// Allowed hand-offs by (agent, plan hash): the action that allowed each and when, so a
    /// report that it ran is journaled with that action.
    handoffs: Mutex<BTreeMap<(String, String), (String, i64)>>,
    /// The profile each authenticated agent's guards were last set from.
    agent_profiles: Mutex<BTreeMap<String, Option<String>>>,
    /// Tokens resolved lately, by hash (`GateConfig::token_cache_ms`).
    tokens: Mutex<HashMap<String, KnownToken>>,
    pub(crate) bakes: Mutex<Bakes>,
    /// Changes this process is applying or reverting right now: their intents are not
    /// open for the reconciler.
    pub(crate) in_flight: Mutex<std::collections::BTreeSet<String>>,
    /// Set whenever an apply or a revert ends (normally, with an error, or cancelled with
    /// its caller): the next poll looks for intents left without an outcome.
    pub(crate) intents_to_check: std::sync::atomic::AtomicBool,
    pub(crate) behaviour: Mutex<crate::behaviour::Behaviour>,
    /// Per service, until when the judge blames no further change for its breach.
    pub(crate) blame_cooldown: Mutex<BTreeMap<String, i64>>,
    /// One change in flight per resource, one resolution per approval, one poll or revert
    /// per change: waits that concern one key only.
    pub(crate) slots: crate::slots::Slots,
    /// One bake poll at a time.
    pub(crate) polling: tokio::sync::Mutex<()>,
    ids: AtomicU64,
    id_prefix: String,
    /// The journal other replicas write too, when the store is shared (see `sync`).
    pub(crate) follower: std::sync::OnceLock<Arc<crate::feed::Notifying>>,
    /// This process's turn at the shared decision lock.
    pub(crate) exclusive: Arc<tokio::sync::Mutex<()>>,
    /// This replica's name and the lease that shows it is alive (held as long as the
    /// process runs; released by the database when it dies).
    pub(crate) lease: std::sync::Mutex<Option<(String, Box<dyn airlock_store::SharedLock>)>>,
    /// One sync at a time: a caller that finds one running waits until its events are
    /// applied, holds read back included.
    pub(crate) syncing: tokio::sync::Mutex<()>,
    /// Budgets other replicas' verdicts spent, by action, until their change fails or ages out.
    pub(crate) foreign_spends: Mutex<BTreeMap<String, crate::sync::ForeignSpend>>,
}

/// A token the gate resolved: to whom, when, and after how many principal writes.
#[derive(Clone)]
struct KnownToken {
    name: String,
    kind: String,
    profile: Option<String>,
    at: Timestamp,
    writes: u64,
}

/// Past this many remembered tokens the gate forgets them all and reads each again.
const TOKENS_KEPT: usize = 4096;

/// How a quarantine's breaker reason begins (an operator's freeze says `frozen by`).
pub const QUARANTINE: &str = "quarantined";

/// Whether a service needs the capacity a plan adds: it is degraded, or its headroom
/// before the change is under the floor the default pack keeps (1.2).
fn needs_capacity(plan: &Plan, health: HealthStatus) -> bool {
    let factor = 1.0 + plan.blast.capacity_delta_pct / 100.0;
    let before = plan.predicted.headroom.map(|h| h / factor.max(1e-9));
    health == HealthStatus::Degraded || before.is_some_and(|h| h < 1.2)
}

/// The stored hash of a bearer token.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

impl Gate {
    /// A gate over a journal, providers, a signal source, a policy pack and a clock.
    pub fn new(
        journal: Arc<dyn Journal>,
        providers: Vec<Arc<dyn Provider>>,
        signals: Arc<dyn SignalSource>,
        policy: Arc<PolicyEngine>,
        clock: Arc<dyn Clock>,
        config: GateConfig,
    ) -> Self {
        let id_prefix = format!("{:08x}", rand::random::<u32>());
        let tracked = Arc::new(crate::tracked::Tracked::new(journal));
        Self {
            journal: tracked.clone(),
            tracked,
            providers: providers
                .into_iter()
                .map(|p| (p.name().to_string(), p))
                .collect(),
            signals,
            policy,
            clock,
            guards: Mutex::new(Guards::new(config.guards.clone())),
            approvals: Mutex::new(BTreeMap::new()),
            permits: Mutex::new(BTreeMap::new()),
            agent_profiles: Mutex::new(BTreeMap::new()),
            tokens: Mutex::new(HashMap::new()),
            handoffs: Mutex::new(BTreeMap::new()),
            bakes: Mutex::new(Bakes::default()),
            in_flight: Mutex::new(std::collections::BTreeSet::new()),
            // A previous process may have left some: `resume` looks first.
            intents_to_check: std::sync::atomic::AtomicBool::new(true),
            behaviour: Mutex::new(crate::behaviour::Behaviour::new(config.anomaly.clone())),
            blame_cooldown: Mutex::new(BTreeMap::new()),
            slots: crate::slots::Slots::default(),
            polling: tokio::sync::Mutex::new(()),
            config,
            ids: AtomicU64::new(1),
            id_prefix,
            follower: std::sync::OnceLock::new(),
            exclusive: Arc::new(tokio::sync::Mutex::new(())),
            syncing: tokio::sync::Mutex::new(()),
            lease: std::sync::Mutex::new(None),
            foreign_spends: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn new_id(&self, kind: &str) -> String {
        format!(
            "{kind}_{}{:06}",
            self.id_prefix,
            self.ids.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// `Err(why)` while the journal cannot be written (the last write failed); `Ok` once a
    /// write succeeds again.
    pub fn journal_health(&self) -> Result<(), String> {
        self.tracked.write_health()
    }

    /// Journal writes that failed since start.
    pub fn journal_write_failures(&self) -> u64 {
        self.tracked.write_failures()
    }

    /// The clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Registers (or re-keys) an agent or operator and returns its new bearer token, shown once.
    pub async fn issue_token(&self, name: &str, kind: PrincipalKind2) -> Result<String, GateError> {
        issue_token(self.journal.as_ref(), self.clock.now(), name, kind).await
    }

    /// Revokes a principal's token: it no longer authenticates. Journaled.
    pub async fn revoke(&self, name: &str, by: &str) -> Result<(), GateError> {
        revoke_token(self.journal.as_ref(), self.clock.now(), name, by).await
    }

    /// Resolves a bearer token to a principal. A token resolved less than
    /// `token_cache_ms` ago, with no principal written through this gate since, is not
    /// read again.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, GateError> {
        let hash = token_hash(token);
        let ttl = self.config.token_cache_ms as i64;
        // Read before the lookup: a write that ends after it makes this lookup's answer stale.
        let writes = self.tracked.principal_writes();
        // Also when it was read: the row is no newer than this.
        let now = self.clock.now();
        if ttl > 0 {
            let known = lock(&self.tokens)
                .get(&hash)
                .filter(|k| k.writes == writes && (k.at..k.at + ttl).contains(&now))
                .cloned();
            if let Some(k) = known {
                return Ok(self.principal(k.name, &k.kind, k.profile.as_deref()));
            }
        }
        match self.journal.principal_by_token_hash(&hash).await? {
            Some(p) if !p.revoked => {
                if ttl > 0 {
                    let mut tokens = lock(&self.tokens);
                    if tokens.len() >= TOKENS_KEPT {
                        tokens.clear();
                    }
                    tokens.insert(
                        hash,
                        KnownToken {
                            name: p.name.clone(),
                            kind: p.kind.clone(),
                            profile: p.profile.clone(),
                            at: now,
                            writes,
                        },
                    );
                }
                Ok(self.principal(p.name, &p.kind, p.profile.as_deref()))
            }
            _ => Err(GateError::Unauthenticated),
        }
    }

    /// The principal a token resolved to; an agent's guards follow its profile.
    fn principal(&self, name: String, kind: &str, profile: Option<&str>) -> Principal {
        let kind = PrincipalKind2::parse(kind);
        if kind == PrincipalKind2::Agent {
            self.use_profile(&name, profile);
        }
        Principal { name, kind }
    }

    /// Applies an agent's profile to its guards and anomaly settings (the common ones when
    /// it has none, or one the config no longer defines).
    fn use_profile(&self, agent: &str, profile: Option<&str>) {
        let wanted = profile.and_then(|p| self.config.profiles.get(p).map(|c| (p, c)));
        let name = wanted.map(|(p, _)| p.to_string());
        {
            let mut current = lock(&self.agent_profiles);
            if current.get(agent) == Some(&name) {
                return;
            }
            current.insert(agent.to_string(), name);
        }
        let cfg = wanted.map(|(_, c)| c);
        lock(&self.guards).set_agent_config(agent, cfg.map(|c| c.guards.clone()));
        lock(&self.behaviour).set_agent_config(agent, cfg.map(|c| c.anomaly.clone()));
    }

    /// Registers (or re-keys) an agent with a guard profile and returns its new token.
    pub async fn issue_token_with_profile(
        &self,
        name: &str,
        kind: PrincipalKind2,
        profile: Option<&str>,
    ) -> Result<String, GateError> {
        self.check_profile(profile)?;
        issue_token_with_profile(self.journal.as_ref(), self.clock.now(), name, kind, profile).await
    }

    /// A profile the config defines (or none).
    fn check_profile(&self, profile: Option<&str>) -> Result<(), GateError> {
        match profile {
            Some(p) if !self.config.profiles.contains_key(p) => Err(GateError::Invalid(format!(
                "unknown profile `{p}`; known: {}",
                self.config
                    .profiles
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// Issues a token on behalf of `by`, who must be allowed to: an admin issues any token,
    /// an operator only agents' (so nobody mints a second operator to approve alone).
    /// Journaled with the issuer.
    pub async fn issue_token_by(
        &self,
        name: &str,
        kind: PrincipalKind2,
        profile: Option<&str>,
        by: &Principal,
    ) -> Result<String, GateError> {
        may_manage(by, kind)?;
        self.check_profile(profile)?;
        issue_token_by(
            self.journal.as_ref(),
            self.clock.now(),
            name,
            kind,
            profile,
            &by.name,
        )
        .await
    }

    /// Revokes a token on behalf of `by`, under the same rule as issuing it.
    pub async fn revoke_by(&self, name: &str, by: &Principal) -> Result<(), GateError> {
        let target = self
            .journal
            .principal(name)
            .await?
            .ok_or_else(|| GateError::NotFound("principal", name.to_string()))?;
        may_manage(by, PrincipalKind2::parse(&target.kind))?;
        revoke_token(self.journal.as_ref(), self.clock.now(), name, &by.name).await
    }

    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        match tokio::time::timeout(self.config.provider_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ProviderError::Unavailable(format!(
                "the provider did not answer within {} ms",
                self.config.provider_timeout.as_millis()
            ))),
        }
    }

    fn provider(&self, name: &str) -> Result<Arc<dyn Provider>, GateError> {
        self.providers
            .get(name)
            .cloned()
            .ok_or_else(|| GateError::UnknownProvider(name.to_string()))
    }

    /// Submits an agent's request with its bearer token: the whole flow, steps 1 to 7.
    pub async fn submit(&self, token: &str, req: ActionRequest) -> Result<Decision, GateError> {
        let who = self.authenticate(token).await?.require_agent()?;
        self.submit_as(&who.name, req).await
    }

    /// Submits a request for an already authenticated agent.
    pub async fn submit_as(&self, agent: &str, req: ActionRequest) -> Result<Decision, GateError> {
        let id = self.new_id("act");
        // One change in flight per resource: a second mutation of the same target waits and
        // is planned against the world the first one left. Other resources never wait.
        let _slot = if req.verb.is_mutation() {
            Some(self.slots.take(&resource_key(&req.target)).await)
        } else {
            None
        };
        self.decide_and_run(&id, agent, req, None).await
    }

    /// How many of the agent's changes are baking now, and how many of them are rollouts.
    fn baking_of(&self, agent: &str) -> (u32, u32) {
        lock(&self.bakes).baking_of(agent)
    }

    /// Gives back a budget spent on a change that never landed.
    fn give_back(&self, agent: &str, plan: &Plan, spent_at: Option<Timestamp>) {
        if let Some(at) = spent_at {
            lock(&self.guards).release_applied(agent, plan, at);
        }
    }

    async fn health_of(&self, provider: &dyn Provider, plan: &Plan) -> HealthStatus {
        // Only resources a signal watches have a health to read; the provider says which.
        // What the action reaches through its target (a stack's fleets) counts too.
        let mut services: Vec<String> = plan
            .diffs
            .iter()
            .filter(|d| d.before != d.after)
            .map(|d| &d.addr)
            .chain(plan.contained.iter().map(|c| &c.addr))
            .filter_map(|a| provider.signal_key(a))
            .collect();
        services.dedup();
        if services.is_empty() {
            return HealthStatus::Healthy;
        }
        let mut status = HealthStatus::Healthy;
        for s in services {
            match self
                .signals
                .recent(&s, self.config.bake.judge_window_s)
                .await
            {
                Ok(Some(sample)) => {
                    let ok = self.config.bake.rules().iter().all(|r| {
                        airlock_core::slo::rule_value(r, &[sample]).is_none_or(|v| r.passes(v))
                    });
                    if !ok {
                        return HealthStatus::Degraded;
                    }
                }
                _ => status = HealthStatus::Unknown,
            }
        }
        status
    }

    /// Plans, assesses, decides and journals; applies when allowed. `approval` is the id of
    /// an approval an operator gave for this exact plan hash. A mutation's caller holds the
    /// target's slot.
    pub(crate) async fn decide_and_run(
        &self,
        id: &str,
        agent: &str,
        req: ActionRequest,
        approval: Option<(&str, &str)>,
    ) -> Result<Decision, GateError> {
        if approval.is_none()
            && req.verb.is_mutation()
            && let Some(d) = self.replay_approved(id, agent, &req).await?
        {
            return Ok(d);
        }
        // A mutation is decided under the replicas' shared lock, after catching up with
        // them, and journaled before the lock is let go.
        let held = if req.verb.is_mutation() {
            self.exclusive().await?
        } else {
            None
        };
        let decided = match self.decide(id, agent, req, approval).await {
            Ok(d) => d,
            Err(e) => {
                if let Some(h) = held {
                    h.release().await;
                }
                return Err(e);
            }
        };
        Ok(self.commit(decided, held).await)
    }

    /// An agent asking again for an action an operator approved and the gate already
    /// carried out: answered once with that outcome (journaled), never applied twice.
    async fn replay_approved(
        &self,
        id: &str,
        agent: &str,
        req: &ActionRequest,
    ) -> Result<Option<Decision>, GateError> {
        let now = self.clock.now();
        let any = lock(&self.permits)
            .iter()
            .any(|((a, _), p)| a == agent && p.applied.is_some() && p.expires_at > now);
        if !any {
            return Ok(None);
        }
        let provider = self.provider(&req.provider)?;
        let Ok(plan) = self.call(provider.plan(req)).await else {
            return Ok(None);
        };
        let key = (agent.to_string(), plan.hash.clone());
        let permit = {
            let mut permits = lock(&self.permits);
            match permits.get(&key) {
                Some(p) if p.applied.is_some() && p.expires_at > now => permits.remove(&key),
                _ => None,
            }
        };
        let Some(Permit {
            approval_id,
            by,
            applied: Some((action_id, change_id)),
            ..
        }) = permit
        else {
            return Ok(None);
        };
        let details = vec![format!(
            "already done: {approval_id} was approved ({by}) and applied as {change_id} by action {action_id}; this identical request is answered with that outcome, not carried out again"
        )];
        let req_json = self
            .config
            .redact
            .redact(&serde_json::to_value(req).unwrap_or_default());
        self.journal
            .append_all(vec![
                NewEvent::new(now, EventKind::Request, json!({"request": req_json}))
                    .agent(agent)
                    .action(id),
                NewEvent::new(
                    now,
                    EventKind::Verdict,
                    json!({"verdict": VerdictKind::Allow, "reasons": [], "details": details,
                           "plan_hash": plan.hash, "replay_of": action_id, "change_id": change_id}),
                )
                .agent(agent)
                .action(id),
            ])
            .await?;
        Ok(Some(Decision {
            id: id.to_string(),
            agent: agent.to_string(),
            verdict: VerdictKind::Allow,
            reasons: Vec::new(),
            details,
            risk: assess_risk(&plan),
            plan: Some(PlanView::from(&plan)),
            approval_id: Some(approval_id),
            change_id: Some(change_id),
            result: None,
            error: None,
            counter_offer: None,
            retry_after_s: None,
        }))
    }

    /// Steps 2 to 4: plan, assess, decide. Nothing is journaled or applied yet.
    async fn decide(
        &self,
        id: &str,
        agent: &str,
        req: ActionRequest,
        approval: Option<(&str, &str)>,
    ) -> Result<Decided, GateError> {
        let now = self.clock.now();
        let provider = self.provider(&req.provider)?;
        let req_json = self
            .config
            .redact
            .redact(&serde_json::to_value(&req).unwrap_or_default());
        let plan = match self.call(provider.plan(&req)).await {
            Ok(p) => p,
            Err(e) => {
                let ev = NewEvent::new(
                    now,
                    EventKind::Request,
                    json!({"request": req_json, "error": e.to_string()}),
                )
                .agent(agent)
                .action(id);
                // Invalid requests are recorded, but the answer is the error either way.
                self.record_failure(ev).await;
                return Err(match e {
                    ProviderError::NotFound(what) => GateError::NotFound("resource", what),
                    ProviderError::Conflict { .. } => GateError::Conflict(e.to_string()),
                    other => GateError::Invalid(other.to_string()),
                });
            }
        };
        let risk = assess_risk(&plan);
        let mutation = plan.verb.is_mutation();
        // An operator approved this exact plan for this agent before: its retry goes through
        // once (given back below if something else stops it).
        let permit = if approval.is_none() && mutation {
            self.take_permit(agent, &plan.hash, now)
        } else {
            None
        };
        let approval: Option<(&str, &str)> = approval.or_else(|| {
            permit
                .as_ref()
                .map(|p| (p.approval_id.as_str(), p.by.as_str()))
        });
        // Health is read before any lock is taken: a slow signal source delays only this
        // request.
        let health = self.health_of(provider.as_ref(), &plan).await;
        let (baking, rollouts_baking) = self.baking_of(agent);
        let mut retry = false;
        // This submission's place in the agent's last minute, for the rate limit.
        let mut place = None;
        let (anomaly, quarantine, actions_5m, reverts_1h) = {
            let mut guards = lock(&self.guards);
            let mut behaviour = lock(&self.behaviour);
            // An approved retry is the operator's decision, not the agent's behaviour: it is
            // neither counted against the rate limit nor scored.
            if permit.is_none() {
                place = guards.record_submission(agent, &plan, now);
            }
            let mut quarantine = None;
            let anomaly = if mutation && permit.is_none() {
                retry = behaviour.record(agent, &plan, now);
                let score = behaviour.score(agent, now);
                let cfg = behaviour.config_of(agent);
                if cfg.quarantine && score.sustained && guards.breaker(agent).is_none() {
                    // Quarantine: the breaker opens before this request is decided, so it is
                    // held with the rest; the journal keeps the values that tripped it.
                    let why = format!("{QUARANTINE}: {}", score.explain());
                    guards.open_breaker(agent, &why);
                    quarantine = Some(
                        NewEvent::new(
                            now,
                            EventKind::Breaker,
                            json!({"state": "open", "reason": why, "anomaly": score}),
                        )
                        .agent(agent),
                    );
                }
                score.value
            } else {
                0.0
            };
            (
                anomaly,
                quarantine,
                guards.actions_5m(agent, now),
                guards.reverts_1h(agent, now),
            )
        };
        if let Some(ev) = quarantine {
            self.journal.append(ev).await?;
        }
        let assessment = Assessment {
            risk,
            health,
            agent: AgentStats {
                actions_5m,
                reverts_1h,
                anomaly,
                baking,
                rollouts_baking,
            },
        };
        // The target and everything it contains, each decided as if targeted directly.
        let outcome = self.policy.evaluate_plan(
            PrincipalKind::Agent,
            agent,
            &plan,
            &assessment,
            approval.is_some(),
            now,
        );
        // The guards are checked and, for an allowed mutation, spent in one step: two
        // concurrent decisions can never both spend the last of a budget.
        let (verdict, findings, spent_at) = {
            let mut guards = lock(&self.guards);
            let mut findings: Vec<GuardFinding> = guards.check_submission(agent, &plan, now, place);
            // A quarantined agent's pure capacity additions to a service that needs them
            // go through: holding them during a demand ramp is a harm of its own.
            if plan.only_adds_capacity()
                && needs_capacity(&plan, health)
                && guards
                    .breaker(agent)
                    .is_some_and(|why| why.starts_with(QUARANTINE))
            {
                findings.retain(|f| f.id != "breaker-open");
            }
            if permit.is_some() {
                findings.retain(|f| !SPENDING_GUARDS.contains(&f.id));
            }
            let verdict = combine(outcome, &findings, approval.is_some());
            let spend = mutation && permit.is_none() && matches!(verdict, Verdict::Allow);
            if spend {
                guards.record_applied(agent, &plan, now);
            }
            (verdict, findings, spend.then_some(now))
        };
        if mutation && !retry && permit.is_none() && !matches!(verdict, Verdict::Allow) {
            lock(&self.behaviour).blocked(agent, now);
        }
        if mutation && matches!(verdict, Verdict::Allow) && provider.hands_off() {
            let mut handoffs = lock(&self.handoffs);
            handoffs.retain(|_, (_, at)| now - *at <= HANDOFF_MEMORY_MS);
            handoffs.insert(
                (agent.to_string(), plan.hash.clone()),
                (id.to_string(), now),
            );
        }
        if let Some(p) = permit
            .as_ref()
            .filter(|_| !matches!(verdict, Verdict::Allow))
        {
            lock(&self.permits).insert((agent.to_string(), plan.hash.clone()), p.clone());
        }
        // Each reason explained with this decision's values, and what would pass.
        let mut details: Vec<String> = verdict
            .reasons()
            .iter()
            .filter_map(|r| {
                self.policy
                    .explain(r, &plan, &assessment, approval.is_some(), now)
                    .map(|h| format!("{r}: {h}"))
            })
            .collect();
        details.extend(findings.iter().map(|f| format!("{}: {}", f.id, f.detail)));
        // A refusal a different number would avoid comes with the nearest number that
        // passes; one no number can avoid (kill switch, breaker, budgets of deletes) does not.
        let numeric_fix_possible = findings.iter().all(|f| {
            !matches!(
                f.id,
                "killswitch" | "breaker-open" | "rate-limit" | "blast-budget-destructive"
            )
        });
        let counter_offer = if mutation
            && approval.is_none()
            && numeric_fix_possible
            && !matches!(verdict, Verdict::Allow)
        {
            self.counter_offer(agent, provider.as_ref(), &req, &plan, &assessment, now)
                .await
        } else {
            None
        };
        if let Some(c) = &counter_offer {
            details.push(format!("counter-offer: {}", c.summary));
        }
        let retry_after_s = findings.iter().filter_map(|f| f.retry_after_s).max();
        let approval_id = matches!(verdict, Verdict::Hold(_)).then(|| self.new_id("apr"));
        let plan_view = PlanView::from(&plan);
        let decision = Decision {
            id: id.to_string(),
            agent: agent.to_string(),
            verdict: verdict.kind(),
            reasons: verdict.reasons().to_vec(),
            details: details.clone(),
            risk,
            plan: Some(plan_view.clone()),
            approval_id: approval_id.clone(),
            change_id: None,
            result: None,
            error: None,
            counter_offer: counter_offer.clone(),
            retry_after_s,
        };
        // Step 5: the verdict is durable before anything is applied; if not, deny.
        let request_ev = NewEvent::new(
            now,
            EventKind::Request,
            json!({"request": req_json, "plan": self.config.redact.redact(&serde_json::to_value(&plan_view).unwrap_or_default()), "risk": risk, "assessment": assessment}),
        )
        .agent(agent)
        .action(id);
        let verdict_ev = NewEvent::new(
            now,
            EventKind::Verdict,
            json!({"verdict": verdict.kind(), "reasons": verdict.reasons(), "details": details, "risk": risk,
                   "plan_hash": plan.hash, "approval_id": approval_id, "approved_by": approval.map(|a| a.1),
                   "permit": permit.as_ref().map(|p| &p.approval_id),
                   "counter_offer": counter_offer, "retry_after_s": retry_after_s,
                   // What the guards counted, so every replica sharing the journal counts it.
                   "spend": mutation.then(|| airlock_core::Spend::of(&plan)),
                   "counted": permit.is_none(), "spent": spent_at.is_some(),
                   // What the anomaly model scored, so it scores the same after a restart
                   // and on every replica.
                   "behaviour": (mutation && permit.is_none()).then(|| crate::behaviour::Sample::of(&plan)),
                   "blocked": mutation && !retry && permit.is_none() && !matches!(verdict, Verdict::Allow)}),
        )
        .agent(agent)
        .action(id);
        let events = if approval.is_none() || permit.is_some() {
            vec![request_ev, verdict_ev]
        } else {
            vec![verdict_ev]
        };
        let pending = approval_id.map(|aid| PendingApproval {
            id: aid,
            action_id: id.to_string(),
            agent: agent.to_string(),
            request: req,
            plan_hash: plan.hash.clone(),
            created_at: now,
            risk,
            reasons: decision.reasons.clone(),
            details: decision.details.clone(),
            plan: plan_view,
            approvers: Vec::new(),
        });
        Ok(Decided {
            decision,
            plan,
            provider,
            verdict,
            events,
            pending,
            spent_at,
        })
    }

    /// Steps 5 to 7: journal the verdict (durable before anything is applied; if the journal
    /// cannot be written the action is denied), then hold or apply.
    async fn commit(&self, decided: Decided, held: Option<crate::sync::Exclusive>) -> Decision {
        let Decided {
            mut decision,
            plan,
            provider,
            verdict,
            events,
            pending,
            spent_at,
        } = decided;
        // An allowed mutation's verdict and its intent are written in one transaction
        // when no other process shares the journal (with replicas, the verdict is written
        // under their shared lock, and the snapshot is not taken while holding it).
        if held.is_none()
            && matches!(verdict, Verdict::Allow)
            && plan.verb.is_mutation()
            && !provider.hands_off()
        {
            return self
                .journal_and_apply(decision, provider, &plan, events, spent_at)
                .await;
        }
        // A decision that changes nothing may be answered before its record is durable
        // (`Journal::append_audit`); a hold, and every mutation, never.
        let stored = if plan.verb.is_mutation() || matches!(verdict, Verdict::Hold(_)) {
            self.journal.append_all(events).await.map(drop)
        } else {
            self.journal.append_audit(events).await
        };
        if let Some(h) = held {
            h.release().await;
        }
        if let Err(e) = stored {
            self.give_back(&decision.agent, &plan, spent_at);
            return journal_down(decision, &e);
        }
        match verdict {
            Verdict::Deny(_) => decision,
            Verdict::Hold(_) => {
                if let Some(p) = pending {
                    lock(&self.approvals).insert(p.id.clone(), p);
                }
                decision
            }
            Verdict::Allow if !plan.verb.is_mutation() => {
                match self.call(provider.apply(&plan)).await {
                    Ok(applied) => {
                        decision.result = Some(json!(
                            applied
                                .entries
                                .into_iter()
                                .map(|(_, v)| v)
                                .collect::<Vec<_>>()
                        ));
                    }
                    Err(e) => decision.error = Some(e.to_string()),
                }
                decision
            }
            Verdict::Allow => {
                let landed = self.apply(&mut decision, provider, &plan).await;
                if !landed {
                    self.give_back(&decision.agent, &plan, spent_at);
                }
                decision
            }
        }
    }

    /// Steps 5 and 7 together for an allowed mutation: snapshot and baseline, then the
    /// verdict and the change's intent in one write (one commit, one fsync), then apply.
    /// If that write fails the action is denied and nothing is applied.
    async fn journal_and_apply(
        &self,
        mut decision: Decision,
        provider: Arc<dyn Provider>,
        plan: &Plan,
        mut events: Vec<NewEvent>,
        spent_at: Option<Timestamp>,
    ) -> Decision {
        let prepared = match self.prepare(&decision, &provider, plan).await {
            Ok(p) => p,
            Err((error, failed)) => {
                // The verdict, then why nothing was applied, in one write.
                events.push(failed);
                let stored = self.journal.append_all(events).await;
                self.give_back(&decision.agent, plan, spent_at);
                if let Err(e) = stored {
                    return journal_down(decision, &e);
                }
                decision.error = Some(error);
                return decision;
            }
        };
        // Claimed before the intent is written, so the reconciler never takes it for one a
        // crash left behind.
        let _in_flight = self.in_flight(&prepared.change_id);
        let (appended, mut changed) = self
            .journal
            .put_changes(
                events,
                vec![(prepared.intent.clone(), prepared.event.clone())],
            )
            .await;
        let intent = changed.pop().unwrap_or_else(|| {
            Err(StoreError::Unavailable(
                "the journal answered no change record".into(),
            ))
        });
        // Without its verdict nothing is applied (an intent stored alone is read back by
        // the reconciler, which finds nothing changed).
        if let Err(e) = appended.map(drop).and(intent.map(drop)) {
            self.give_back(&decision.agent, plan, spent_at);
            return journal_down(decision, &e);
        }
        if !self
            .carry_out(&mut decision, provider, plan, prepared)
            .await
        {
            self.give_back(&decision.agent, plan, spent_at);
        }
        decision
    }

    /// What an allowed mutation needs before its intent is written: the prior state of its
    /// targets and the signals' baselines. On a failed snapshot, the error for the caller
    /// and the event that journals it.
    async fn prepare(
        &self,
        decision: &Decision,
        provider: &Arc<dyn Provider>,
        plan: &Plan,
    ) -> Result<Prepared, (String, NewEvent)> {
        let now = self.clock.now();
        let agent = &decision.agent;
        let targets: Vec<_> = plan.diffs.iter().map(|d| d.addr.clone()).collect();
        let snapshot = match self.call(provider.snapshot(&targets)).await {
            Ok(s) => s,
            Err(e) => {
                let ev = NewEvent::new(
                    now,
                    EventKind::ApplyFailed,
                    json!({"stage": "snapshot", "error": e.to_string()}),
                )
                .agent(agent)
                .action(&decision.id);
                return Err((format!("snapshot failed, nothing applied: {e}"), ev));
            }
        };
        // The baseline is taken before apply so a rule that was already failing is not blamed.
        let baseline = crate::bake::baseline(self, &plan.blast.watch).await;
        let query_baseline = crate::bake::query_baseline(self, &plan.blast.watch).await;
        let change_id = self.new_id("chg");
        let record = self.config.redact.redact(&json!({"plan": plan, "snapshot": snapshot, "baseline": baseline, "query_baseline": query_baseline, "bake_until": now + self.config.bake.window_s as i64 * 1000}));
        let intent = ChangeRecord {
            id: change_id.clone(),
            action_id: decision.id.clone(),
            agent: agent.clone(),
            status: ChangeStatus::Applying,
            record,
            created_at: now,
            updated_at: now,
        };
        let event = NewEvent::new(
            now,
            EventKind::Applying,
            json!({"plan_hash": plan.hash, "summary": plan.summary}),
        )
        .agent(agent)
        .action(&decision.id)
        .change(&change_id);
        Ok(Prepared {
            now,
            change_id,
            snapshot,
            baseline,
            query_baseline,
            intent,
            event,
        })
    }

    /// Step 7 for an allowed mutation, its verdict journaled already: snapshot, baseline,
    /// journal the intent, apply, journal the outcome, start the bake. Returns whether the
    /// change landed (and stays).
    ///
    /// The intent (`applying`) is durable before the provider is called, so a crash at any
    /// point leaves a change the journal knows: on start, `reconcile` reads the resource
    /// back and journals what actually happened.
    async fn apply(
        &self,
        decision: &mut Decision,
        provider: Arc<dyn Provider>,
        plan: &Plan,
    ) -> bool {
        let prepared = match self.prepare(decision, &provider, plan).await {
            Ok(p) => p,
            Err((error, failed)) => {
                decision.error = Some(error);
                self.record_failure(failed).await;
                return false;
            }
        };
        let _in_flight = self.in_flight(&prepared.change_id);
        // A hands-off provider's apply changes nothing in the world (the caller carries the
        // action out after the answer, which is sent only once the outcome is journaled):
        // there is nothing for an intent to protect.
        if !provider.hands_off()
            && let Err(e) = self
                .journal
                .put_change(prepared.intent.clone(), prepared.event.clone())
                .await
        {
            *decision = journal_down(decision.clone(), &e);
            return false;
        }
        self.carry_out(decision, provider, plan, prepared).await
    }

    /// Applies a mutation whose intent is durable (or needs none), journals the outcome
    /// and starts the bake. Returns whether the change landed (and stays).
    async fn carry_out(
        &self,
        decision: &mut Decision,
        provider: Arc<dyn Provider>,
        plan: &Plan,
        prepared: Prepared,
    ) -> bool {
        let Prepared {
            now,
            change_id,
            snapshot,
            baseline,
            query_baseline,
            intent,
            ..
        } = prepared;
        let agent = decision.agent.clone();
        let record = intent.record;
        let mut applied = match provider_fault("gate.before_apply") {
            Some(e) => Err(e),
            None => self.call(provider.apply(plan)).await,
        };
        if let Some(e) = provider_fault("gate.after_apply") {
            // The provider acted but its answer is lost: as after a timeout.
            applied = Err(e);
        }
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                match self
                    .apply_failed(decision, &provider, plan, &change_id, &snapshot, e)
                    .await
                {
                    Some(landed) => landed,
                    None => return decision.change_id.is_some(),
                }
            }
        };
        // What the change left behind (the new state, or what a proxied tool answered).
        decision.result = Some(json!(
            applied.entries.iter().map(|(_, v)| v).collect::<Vec<_>>()
        ));
        // The record is redacted already; what the change left behind, as the rest was.
        let mut record = record;
        record["applied"] = self.config.redact.redact_field("applied", &json!(applied));
        let rec = ChangeRecord {
            id: change_id.clone(),
            action_id: decision.id.clone(),
            agent: agent.clone(),
            status: ChangeStatus::Baking,
            record,
            created_at: now,
            updated_at: self.clock.now(),
        };
        let ev = NewEvent::new(
            now,
            EventKind::Applied,
            json!({"plan_hash": plan.hash, "summary": plan.summary, "watch": plan.blast.watch, "bake_s": self.config.bake.window_s}),
        )
        .agent(&agent)
        .action(&decision.id)
        .change(&change_id);
        if let Err(e) = self.journal.put_change(rec, ev).await {
            // Applied but the outcome not recorded: undo at once rather than leave a change
            // the journal only knows as an intent. Whatever happens, the intent stays open
            // and is reconciled against the world once the journal can be written again.
            let undo = self.call(provider.restore(&snapshot, &applied)).await;
            decision.error = Some(format!(
                "the journal failed after apply ({e}); the change was {}",
                if undo.is_ok() {
                    "rolled back"
                } else {
                    "NOT rolled back: check the resource"
                }
            ));
            // Budgets stay spent when the change may still be live.
            return undo.is_err();
        }
        decision.change_id = Some(change_id.clone());
        let counters = crate::bake::read_counters(self, &plan.blast.watch).await;
        let mut bake = Bake::new(
            change_id.clone(),
            decision.id.clone(),
            agent,
            plan.clone(),
            snapshot,
            applied,
            baseline,
            counters,
            now,
        );
        bake.query_baseline = query_baseline;
        let agent = bake.agent.clone();
        lock(&self.bakes).insert(
            change_id,
            BakeEntry {
                agent,
                rollout: plan.is_rollout(),
                bake: Some(bake),
                watching: None,
                retry: false,
            },
        );
        true
    }

    /// The provider's apply failed. An error that proves nothing changed (a conflict, bad
    /// parameters, an unknown resource) is journaled as `apply_failed`; any other (a
    /// timeout, an unavailable provider, a lost answer) may have left the change done or
    /// half-done, so the resource is read back and the journal says what actually happened:
    /// `Some(state)` when the change is in the world after all (the caller records it as
    /// applied and bakes it), `None` when the failure is journaled (`apply_failed`, or
    /// `needs_attention` with the change id set when the world cannot be told).
    async fn apply_failed(
        &self,
        decision: &mut Decision,
        provider: &Arc<dyn Provider>,
        plan: &Plan,
        change_id: &str,
        snapshot: &airlock_core::Snapshot,
        e: ProviderError,
    ) -> Option<airlock_core::Applied> {
        let now = self.clock.now();
        let landing = if nothing_changed(&e) {
            Ok(Landing::NotLanded)
        } else {
            self.call(provider.reconcile_apply(plan, snapshot)).await
        };
        let (status, kind, payload) = match landing {
            Ok(Landing::Landed(entries)) => {
                tracing::warn!(change = %change_id, error = %e, "the provider reported an error but the change landed; recording it as applied");
                return Some(airlock_core::Applied {
                    provider: plan.provider.clone(),
                    entries,
                });
            }
            Ok(Landing::NotLanded) => (
                ChangeStatus::Failed,
                EventKind::ApplyFailed,
                json!({"stage": "apply", "error": e.to_string()}),
            ),
            Ok(Landing::Unknown(why)) => (
                ChangeStatus::NeedsAttention,
                EventKind::NeedsAttention,
                json!({"reason": format!("apply failed and the resource matches neither the state before nor the change: {why}"), "error": e.to_string()}),
            ),
            Err(re) => (
                ChangeStatus::NeedsAttention,
                EventKind::NeedsAttention,
                json!({"reason": format!("apply failed and whether it landed cannot be read back ({re})"), "error": e.to_string()}),
            ),
        };
        decision.error = Some(match status {
            ChangeStatus::Failed => format!("apply failed: {e}"),
            _ => format!(
                "apply failed ({e}) and the change may be partly in the world: it needs a person (change {change_id})"
            ),
        });
        let rec = ChangeRecord {
            id: change_id.to_string(),
            action_id: decision.id.clone(),
            agent: decision.agent.clone(),
            status,
            record: self
                .config
                .redact
                .redact(&json!({"plan": plan, "snapshot": snapshot, "error": e.to_string()})),
            created_at: now,
            updated_at: now,
        };
        let ev = NewEvent::new(now, kind, payload)
            .agent(&decision.agent)
            .action(&decision.id)
            .change(change_id);
        if status == ChangeStatus::NeedsAttention {
            decision.change_id = Some(change_id.to_string());
        }
        self.record_change_failure(rec, ev).await;
        None
    }

    /// Journals a failure; a failure to journal it is loud (logged here, counted and
    /// reported not-ready by the journal's tracker).
    pub(crate) async fn record_failure(&self, ev: NewEvent) {
        if let Err(e) = self.journal.append(ev.clone()).await {
            tracing::error!(error = %e, kind = %ev.kind, action = ?ev.action_id, "could not journal a failure");
        }
    }

    /// Journals a change's failure with its record; loud when that fails (an open intent
    /// stays behind and is reconciled once the journal can be written again).
    pub(crate) async fn record_change_failure(&self, rec: ChangeRecord, ev: NewEvent) {
        let id = rec.id.clone();
        if let Err(e) = self.journal.put_change(rec, ev).await {
            tracing::error!(error = %e, change = %id, "could not journal a change's failure; its intent stays open until it is reconciled");
        }
    }

    /// Marks a change as being applied or reverted by this process until the guard drops:
    /// the reconciler leaves such intents alone.
    pub(crate) fn in_flight(&self, change_id: &str) -> InFlight<'_> {
        lock(&self.in_flight).insert(change_id.to_string());
        InFlight {
            set: &self.in_flight,
            check: &self.intents_to_check,
            id: change_id.to_string(),
        }
    }

    /// Resolves a hold. `approver` must be an operator other than the requester. An
    /// approval is bound to the plan hash the operator saw: if the plan changed, it is
    /// refused and the request is planned (and decided) again.
    pub async fn resolve(
        &self,
        approval_id: &str,
        approver: &Principal,
        approve: bool,
        reason: &str,
    ) -> Result<Decision, GateError> {
        if !approver.kind.is_operator() {
            return Err(GateError::Forbidden(format!(
                "agent {}: agents never approve",
                approver.name
            )));
        }
        let now = self.clock.now();
        // One resolution of this approval at a time (two operators answering at once).
        let _apr = self.slots.take(&approval_key(approval_id)).await;
        // The approved action is a mutation of its target: it takes the target's slot, before
        // the shared lock (a submission holding the slot may be waiting for that lock).
        self.sync().await?;
        let target = lock(&self.approvals)
            .get(approval_id)
            .map(|p| p.request.target.clone());
        let _slot = match &target {
            Some(t) => Some(self.slots.take(&resource_key(t)).await),
            None => None,
        };
        // Across replicas too: the answer is journaled under the shared lock, after reading
        // the other replicas' answers (and holds). Early refusals let it go as they return.
        let held = self.exclusive().await?;
        let release = |held: Option<crate::sync::Exclusive>| async move {
            if let Some(h) = held {
                h.release().await;
            }
        };
        let pending = lock(&self.approvals).get(approval_id).cloned();
        let Some(pending) = pending else {
            release(held).await;
            return Err(self.answered(approval_id).await);
        };
        if pending.agent == approver.name {
            return Err(GateError::Forbidden(format!(
                "{}: nobody approves their own request",
                approver.name
            )));
        }
        let provider = self.provider(&pending.request.provider)?;
        let ev = |outcome: &str| {
            NewEvent::new(
                now,
                EventKind::Approval,
                json!({"approval_id": approval_id, "decision": if approve {"approve"} else {"deny"}, "by": approver.name, "reason": reason, "outcome": outcome}),
            )
            .agent(&pending.agent)
            .action(&pending.action_id)
        };
        if !approve {
            let stored = self.journal.append(ev("denied")).await;
            release(held).await;
            stored?;
            lock(&self.approvals).remove(approval_id);
            return Ok(Decision {
                id: pending.action_id.clone(),
                agent: pending.agent.clone(),
                verdict: VerdictKind::Deny,
                reasons: vec!["operator-denied".into()],
                details: vec![format!("denied by {}: {reason}", approver.name)],
                risk: Risk::Low,
                plan: None,
                approval_id: Some(approval_id.to_string()),
                change_id: None,
                result: None,
                error: None,
                counter_offer: None,
                retry_after_s: None,
            });
        }
        let needed = self.approvals_needed(pending.risk);
        // An approval from an operator whose token was revoked since no longer counts.
        let mut approvers = Vec::new();
        for a in &pending.approvers {
            if self.journal.principal(a).await?.is_some_and(|p| !p.revoked) {
                approvers.push(a.clone());
            }
        }
        if !approvers.contains(&approver.name) {
            approvers.push(approver.name.clone());
        }
        if (approvers.len() as u32) < needed {
            let stored = self
                .journal
                .append(ev(&format!(
                    "recorded: {} of {needed} approvals",
                    approvers.len()
                )))
                .await;
            release(held).await;
            stored?;
            if let Some(p) = lock(&self.approvals).get_mut(approval_id) {
                p.approvers = approvers;
            }
            return Ok(Decision {
                id: pending.action_id.clone(),
                agent: pending.agent.clone(),
                verdict: VerdictKind::Hold,
                reasons: pending.reasons.clone(),
                details: vec![format!(
                    "critical risk: {needed} distinct operators must approve; {} has",
                    approver.name
                )],
                risk: pending.risk,
                plan: Some(pending.plan.clone()),
                approval_id: Some(approval_id.to_string()),
                change_id: None,
                result: None,
                error: None,
                counter_offer: None,
                retry_after_s: None,
            });
        }
        let replanned = self.call(provider.plan(&pending.request)).await;
        let same = replanned
            .as_ref()
            .is_ok_and(|p| p.hash == pending.plan_hash);
        lock(&self.approvals).remove(approval_id);
        if !same {
            let stored = self
                .journal
                .append(ev(
                    "refused: the plan changed since it was held; planned again",
                ))
                .await;
            release(held).await;
            stored?;
            let id = self.new_id("act");
            return self
                .decide_and_run(&id, &pending.agent, pending.request.clone(), None)
                .await;
        }
        let by = format!("{}:{}", approver.name, approval_id);
        if provider.hands_off() {
            // Only the agent can carry this out: the approval is a permit for its retry.
            let ttl = self.config.permit_ttl_s;
            let stored = self
                .journal
                .append(ev(&format!(
                    "approved: the agent's next identical request within {ttl} s is allowed once"
                )))
                .await;
            release(held).await;
            stored?;
            lock(&self.permits).insert(
                (pending.agent.clone(), pending.plan_hash.clone()),
                Permit {
                    approval_id: approval_id.to_string(),
                    by,
                    expires_at: now + ttl as i64 * 1000,
                    applied: None,
                },
            );
            return Ok(Decision {
                id: pending.action_id.clone(),
                agent: pending.agent.clone(),
                verdict: VerdictKind::Allow,
                reasons: Vec::new(),
                details: vec![format!(
                    "approved by {}: {} runs it itself; its next identical request within {ttl} s is allowed once",
                    approver.name, pending.agent
                )],
                risk: pending.risk,
                plan: Some(pending.plan.clone()),
                approval_id: Some(approval_id.to_string()),
                change_id: None,
                result: Some(
                    json!({"permit": {"agent": pending.agent, "plan_hash": pending.plan_hash, "ttl_s": ttl}}),
                ),
                error: None,
                counter_offer: None,
                retry_after_s: None,
            });
        }
        let stored = self.journal.append(ev("approved")).await;
        release(held).await;
        stored?;
        let d = self
            .decide_and_run(
                &pending.action_id,
                &pending.agent,
                pending.request.clone(),
                Some((approval_id, &by)),
            )
            .await?;
        // The agent may ask again for what it was told is held: that identical request is
        // answered once with this outcome instead of being carried out a second time.
        if let Some(change) = &d.change_id {
            lock(&self.permits).insert(
                (pending.agent.clone(), pending.plan_hash.clone()),
                Permit {
                    approval_id: approval_id.to_string(),
                    by,
                    expires_at: now + self.config.permit_ttl_s as i64 * 1000,
                    applied: Some((pending.action_id.clone(), change.clone())),
                },
            );
        }
        Ok(d)
    }

    fn approvals_needed(&self, risk: Risk) -> u32 {
        if self.config.two_person_critical && risk == Risk::Critical {
            2
        } else {
            1
        }
    }

    /// Pending holds as operators see them, oldest first.
    pub async fn approvals(&self) -> Vec<ApprovalView> {
        // A replica lists the holds the others made too, as of now.
        if let Err(e) = self.sync().await {
            tracing::warn!(error = %e, "cannot read the other replicas' holds");
        }
        let mut v: Vec<ApprovalView> = lock(&self.approvals)
            .values()
            .map(|p| ApprovalView {
                id: p.id.clone(),
                action_id: p.action_id.clone(),
                agent: p.agent.clone(),
                request: p.request.clone(),
                risk: p.risk,
                reasons: p.reasons.clone(),
                details: p.details.clone(),
                plan: p.plan.clone(),
                held_since: p.created_at,
                approvals_needed: self.approvals_needed(p.risk),
                approved_by: p.approvers.clone(),
            })
            .collect();
        v.sort_by(|a, b| {
            a.held_since
                .cmp(&b.held_since)
                .then_with(|| a.id.cmp(&b.id))
        });
        v
    }

    /// Opens an agent's breaker by an operator's hand: its mutations are held until unfrozen.
    pub async fn freeze(&self, agent: &str, by: &str) -> Result<(), GateError> {
        self.journal
            .append(
                NewEvent::new(
                    self.clock.now(),
                    EventKind::Breaker,
                    json!({"state": "open", "reason": format!("frozen by {by}"), "by": by}),
                )
                .agent(agent),
            )
            .await?;
        lock(&self.guards).open_breaker(agent, &format!("frozen by {by}"));
        Ok(())
    }

    /// Whether the kill switch is on.
    pub async fn killswitch(&self) -> bool {
        lock(&self.guards).killswitch()
    }

    /// Agents whose breaker is open, with why.
    pub async fn open_breakers(&self) -> Vec<(String, String)> {
        lock(&self.guards).open_breakers()
    }

    /// Why an approval id is not pending: the journal's answer to it (approved, denied,
    /// expired), or `NotFound` when it never was one.
    async fn answered(&self, approval_id: &str) -> GateError {
        let query = airlock_store::EventQuery {
            kind: Some(EventKind::Approval),
            descending: true,
            limit: Some(5000),
            ..Default::default()
        };
        let events = match self.journal.read(query).await {
            Ok(events) => events,
            Err(e) => return GateError::Journal(e),
        };
        let answer = events.iter().find(|e| {
            e.payload["approval_id"] == approval_id
                && !e.payload["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("recorded"))
        });
        match answer {
            Some(e) => GateError::Conflict(format!(
                "approval `{approval_id}` was already answered: {} by {} ({})",
                e.payload["decision"].as_str().unwrap_or("?"),
                e.payload["by"].as_str().unwrap_or("?"),
                e.payload["outcome"].as_str().unwrap_or("?"),
            )),
            None => GateError::NotFound("approval", approval_id.to_string()),
        }
    }

    /// The nearest version of `req` the gate would allow now: each integer parameter moved
    /// one step at a time away from the asked value, each candidate planned and decided by
    /// the same policy and guards without spending anything. A capacity change is only
    /// made smaller (a refused cut is offered a smaller cut, never an increase; the search
    /// stops where the change would be none); other numbers are tried both ways, nearest
    /// first. At most `COUNTER_OFFER_REACH` steps. `None` when no such value exists.
    async fn counter_offer(
        &self,
        agent: &str,
        provider: &dyn Provider,
        req: &ActionRequest,
        plan: &Plan,
        assessment: &Assessment,
        now: Timestamp,
    ) -> Option<CounterOffer> {
        let toward_none: Option<i64> = match plan.blast.capacity_delta_pct {
            d if d < 0.0 => Some(1),
            d if d > 0.0 => Some(-1),
            _ => None,
        };
        let numeric: Vec<(String, i64)> = req
            .params
            .iter()
            .filter_map(|(k, v)| v.as_i64().map(|n| (k.clone(), n)))
            .collect();
        for (key, asked) in numeric {
            'steps: for step in 1..=COUNTER_OFFER_REACH as i64 {
                let candidates = match toward_none {
                    Some(dir) => vec![asked + dir * step],
                    None => vec![asked + step, asked - step],
                };
                for candidate in candidates {
                    if candidate < 0 {
                        continue;
                    }
                    let mut alt = req.clone();
                    alt.params.insert(key.clone(), json!(candidate));
                    let Ok(plan) = self.call(provider.plan(&alt)).await else {
                        continue;
                    };
                    if plan.is_noop() {
                        // Past here the change would turn the other way.
                        if toward_none.is_some() {
                            break 'steps;
                        }
                        continue;
                    }
                    let mut a = assessment.clone();
                    a.risk = assess_risk(&plan);
                    let outcome = self.policy.evaluate_plan(
                        PrincipalKind::Agent,
                        agent,
                        &plan,
                        &a,
                        false,
                        now,
                    );
                    let findings = lock(&self.guards).check(agent, &plan, now);
                    if matches!(combine(outcome, &findings, false), Verdict::Allow) {
                        return Some(CounterOffer {
                            params: alt.params,
                            summary: format!(
                                "`{key}` = {candidate} would be allowed now; {asked} would not"
                            ),
                        });
                    }
                }
            }
        }
        None
    }

    /// Records that an action the agent carries out itself (a hook's) actually ran, as the
    /// agent reports after the fact: the journal then knows what happened, not only what
    /// was asked. A hold of the same plan that nobody here answered is closed as answered
    /// at the agent's prompt.
    pub async fn ran(
        &self,
        agent: &str,
        req: ActionRequest,
        succeeded: Option<bool>,
    ) -> Result<RanReport, GateError> {
        let provider = self.provider(&req.provider)?;
        if !provider.hands_off() {
            return Err(GateError::Invalid(format!(
                "`{}` actions are carried out by the gate; only what an agent runs itself is reported",
                req.provider
            )));
        }
        let plan = self
            .call(provider.plan(&req))
            .await
            .map_err(|e| GateError::Invalid(e.to_string()))?;
        let now = self.clock.now();
        let key = (agent.to_string(), plan.hash.clone());
        let allowed = lock(&self.handoffs)
            .get(&key)
            .filter(|(_, at)| now - *at <= HANDOFF_MEMORY_MS)
            .map(|(id, _)| id.clone());
        let held = lock(&self.approvals)
            .values()
            .filter(|p| p.agent == agent && p.plan_hash == plan.hash)
            .map(|p| p.id.clone())
            .next();
        let mut answered = None;
        if let Some(apr) = held {
            let _slot = self.slots.take(&approval_key(&apr)).await;
            if let Some(p) = lock(&self.approvals).remove(&apr) {
                answered = Some(p);
            }
        }
        let req_json = self
            .config
            .redact
            .redact(&serde_json::to_value(&req).unwrap_or_default());
        let mut events = Vec::new();
        if let Some(p) = &answered {
            events.push(
                NewEvent::new(
                    now,
                    EventKind::Approval,
                    json!({"approval_id": p.id, "decision": "ran", "by": "the agent's prompt",
                           "outcome": "answered at the agent's prompt: it ran"}),
                )
                .agent(agent)
                .action(&p.action_id),
            );
        }
        let action = answered
            .as_ref()
            .map(|p| p.action_id.clone())
            .or(allowed.clone());
        let mut ran = NewEvent::new(
            now,
            EventKind::Ran,
            json!({"request": req_json, "plan_hash": plan.hash, "succeeded": succeeded,
                   "allowed_by": allowed, "answered_hold": answered.as_ref().map(|p| &p.id)}),
        )
        .agent(agent);
        if let Some(a) = &action {
            ran = ran.action(a);
        }
        events.push(ran);
        if let Err(e) = self.journal.append_all(events).await {
            // The hold stays open: nothing was recorded.
            if let Some(p) = answered {
                lock(&self.approvals).insert(p.id.clone(), p);
            }
            return Err(e.into());
        }
        Ok(RanReport {
            action_id: action,
            answered_hold: answered.map(|p| p.id),
        })
    }

    /// Takes the agent's unexpired permit for this plan hash, if there is one.
    fn take_permit(&self, agent: &str, hash: &str, now: i64) -> Option<Permit> {
        let mut permits = lock(&self.permits);
        permits.retain(|_, p| p.expires_at > now);
        let key = (agent.to_string(), hash.to_string());
        match permits.get(&key) {
            Some(p) if p.applied.is_none() => permits.remove(&key),
            _ => None,
        }
    }

    /// Whether a hold is of an action its caller carries out itself (a hook's).
    fn handed_off(&self, p: &PendingApproval) -> bool {
        self.providers
            .get(&p.request.provider)
            .is_some_and(|pr| pr.hands_off())
    }

    /// Expires holds older than their timeout as denies; returns the expired ids. A hold of
    /// an action the agent carries out itself (a hook's) is answered at the agent's own
    /// prompt, so it leaves the operators' queue sooner (`handoff_hold_timeout_s`).
    pub async fn expire_holds(&self) -> Result<Vec<String>, GateError> {
        let now = self.clock.now();
        let limit = |p: &PendingApproval| {
            let s = if self.handed_off(p) {
                self.config.handoff_hold_timeout_s
            } else {
                self.config.hold_timeout_s
            };
            s as i64 * 1000
        };
        lock(&self.permits).retain(|_, p| p.expires_at > now);
        let due: Vec<String> = lock(&self.approvals)
            .values()
            .filter(|p| now - p.created_at >= limit(p))
            .map(|p| p.id.clone())
            .collect();
        let mut expired = Vec::new();
        for id in due {
            // An operator may be answering it right now: wait for that, then look again.
            let _apr = self.slots.take(&approval_key(&id)).await;
            let Some(p) = lock(&self.approvals).get(&id).cloned() else {
                continue;
            };
            let outcome = if self.handed_off(&p) {
                "expired: nobody approved it here; the person at the agent's prompt answers a hook's hold"
            } else {
                "expired"
            };
            self.journal
                .append(
                    NewEvent::new(now, EventKind::Approval, json!({"approval_id": p.id, "decision": "deny", "by": "timeout", "outcome": outcome}))
                        .agent(&p.agent)
                        .action(&p.action_id),
                )
                .await?;
            lock(&self.approvals).remove(&p.id);
            expired.push(p.id);
        }
        Ok(expired)
    }

    /// Turns the kill switch on or off, journaled.
    pub async fn set_killswitch(&self, on: bool, by: &str) -> Result<(), GateError> {
        self.journal
            .append(NewEvent::new(
                self.clock.now(),
                EventKind::Killswitch,
                json!({"on": on, "by": by}),
            ))
            .await?;
        lock(&self.guards).set_killswitch(on);
        Ok(())
    }

    /// Every agent's last anomaly score.
    pub async fn anomaly_scores(&self) -> BTreeMap<String, crate::behaviour::Score> {
        lock(&self.behaviour).scores()
    }

    /// An agent's behaviour series over the last `span_s` seconds, and its last score.
    pub async fn behaviour_of(
        &self,
        agent: &str,
    ) -> (
        Vec<(Timestamp, BTreeMap<String, f64>)>,
        Option<crate::behaviour::Score>,
    ) {
        let behaviour = lock(&self.behaviour);
        (
            behaviour.series(agent, 3600),
            behaviour.scores().remove(agent),
        )
    }

    /// Why an agent's breaker is open, if it is.
    pub async fn breaker(&self, agent: &str) -> Option<String> {
        lock(&self.guards).breaker(agent).map(str::to_string)
    }

    /// Closes an agent's breaker, journaled.
    pub async fn reset_breaker(&self, agent: &str, by: &str) -> Result<(), GateError> {
        self.journal
            .append(
                NewEvent::new(
                    self.clock.now(),
                    EventKind::Breaker,
                    json!({"state": "reset", "by": by}),
                )
                .agent(agent),
            )
            .await?;
        lock(&self.guards).reset_breaker(agent);
        // The operator reviewed what tripped it: that evidence no longer counts.
        lock(&self.behaviour).forgive(agent, self.clock.now());
        Ok(())
    }
}

/// Whether `by` may issue or revoke a token of `kind`: an admin any, an operator only an
/// agent's, an agent none.
fn may_manage(by: &Principal, kind: PrincipalKind2) -> Result<(), GateError> {
    match (by.kind, kind) {
        (PrincipalKind2::Admin, _) | (PrincipalKind2::Operator, PrincipalKind2::Agent) => Ok(()),
        (PrincipalKind2::Operator, _) => Err(GateError::Forbidden(format!(
            "operator `{}`: only an admin issues or revokes {} tokens (one operator must never be able to make a second approver)",
            by.name,
            kind.as_str()
        ))),
        (PrincipalKind2::Agent, _) => Err(GateError::Forbidden(format!(
            "agent `{}`: agents never manage tokens",
            by.name
        ))),
    }
}

/// Registers (or re-keys) an agent or operator in a journal and returns its new bearer
/// token, shown once; only its hash is stored. A re-keyed agent keeps its profile.
pub async fn issue_token(
    journal: &dyn Journal,
    now: i64,
    name: &str,
    kind: PrincipalKind2,
) -> Result<String, GateError> {
    issue_token_with_profile(journal, now, name, kind, None).await
}

/// [`issue_token`] that also sets an agent's guard profile (`[profile.NAME]`: its budgets,
/// rate limits and anomaly settings). `None` keeps the profile it has.
pub async fn issue_token_with_profile(
    journal: &dyn Journal,
    now: i64,
    name: &str,
    kind: PrincipalKind2,
    profile: Option<&str>,
) -> Result<String, GateError> {
    issue_token_by(journal, now, name, kind, profile, "the local store").await
}

/// [`issue_token_with_profile`], journaling who issued it (`by`).
pub async fn issue_token_by(
    journal: &dyn Journal,
    now: i64,
    name: &str,
    kind: PrincipalKind2,
    profile: Option<&str>,
    issued_by: &str,
) -> Result<String, GateError> {
    if profile.is_some() && kind != PrincipalKind2::Agent {
        return Err(GateError::Invalid(
            "a profile sets an agent's guards; operators have none".into(),
        ));
    }
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(GateError::Invalid(format!(
            "principal name `{name}` must be 1 to 64 of a-z, 0-9, `-`, `_`, `.`, `@`"
        )));
    }
    let token = format!("alk_{}", blake3::hash(&rand::random::<[u8; 32]>()).to_hex());
    let kind_s = kind.as_str();
    let existing = journal.principal(name).await?;
    if let Some(existing) = &existing
        && existing.kind != kind_s
    {
        return Err(GateError::Conflict(format!(
            "`{name}` is already registered as an {}",
            existing.kind
        )));
    }
    let profile = profile
        .map(String::from)
        .or_else(|| existing.and_then(|e| e.profile));
    let rec = AgentRecord {
        name: name.into(),
        kind: kind_s.into(),
        token_hash: token_hash(&token),
        created_at: now,
        revoked: false,
        profile: profile.clone(),
    };
    journal
        .put_principal(
            rec,
            NewEvent::new(
                now,
                EventKind::Agent,
                json!({"name": name, "kind": kind_s, "action": "token_issued", "profile": profile, "by": issued_by}),
            )
            .agent(name),
        )
        .await?;
    Ok(token)
}

/// Revokes a principal's token in a journal: it no longer authenticates. Journaled.
pub async fn revoke_token(
    journal: &dyn Journal,
    now: i64,
    name: &str,
    by: &str,
) -> Result<(), GateError> {
    let mut rec = journal
        .principal(name)
        .await?
        .ok_or_else(|| GateError::NotFound("principal", name.to_string()))?;
    rec.revoked = true;
    let ev = NewEvent::new(
        now,
        EventKind::Agent,
        json!({"name": name, "kind": rec.kind, "action": "token_revoked", "by": by}),
    )
    .agent(name);
    journal.put_principal(rec, ev).await?;
    Ok(())
}

/// A change this process is applying or reverting right now (see `Gate::in_flight`).
pub(crate) struct InFlight<'a> {
    set: &'a Mutex<std::collections::BTreeSet<String>>,
    check: &'a std::sync::atomic::AtomicBool,
    id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.id);
        // Its outcome may not be journaled (a failed write, a cancelled caller).
        self.check.store(true, Ordering::SeqCst);
    }
}

/// Whether a provider's error proves the world was not changed: it refused before acting.
pub(crate) fn nothing_changed(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Conflict { .. }
            | ProviderError::InvalidParams(_)
            | ProviderError::NotFound(_)
            | ProviderError::Unsupported { .. }
            | ProviderError::Unreachable(_)
            | ProviderError::Refused(_)
    )
}

fn journal_down(mut d: Decision, e: &StoreError) -> Decision {
    tracing::error!(error = %e, action = %d.id, "journal append failed; denying");
    d.verdict = VerdictKind::Deny;
    d.reasons = vec!["journal-unavailable".into()];
    d.details = vec![format!(
        "the journal could not be written ({e}); nothing was applied"
    )];
    d.approval_id = None;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(agent: &str, rollout: bool, watching: Option<i64>) -> BakeEntry {
        BakeEntry {
            agent: agent.into(),
            rollout,
            watching,
            retry: false,
            bake: None,
        }
    }

    /// What walking every entry counts.
    fn recount(b: &Bakes, agent: &str) -> (u32, u32) {
        b.values()
            .filter(|e| e.agent == agent && e.watching.is_none())
            .fold((0, 0), |(n, r), e| (n + 1, r + u32::from(e.rollout)))
    }

    #[test]
    fn baking_counts_follow_every_insert_replace_and_remove() {
        let mut b = Bakes::default();
        let agents = ["a", "b", "c"];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let id = format!("chg_{}", state % 40);
            let agent = agents[(state >> 8) as usize % agents.len()];
            match (state >> 16) % 4 {
                0 => {
                    b.remove(&id);
                }
                1 => {
                    // Settled: put back under watch.
                    b.insert(id, entry(agent, state & 1 == 0, Some(step)));
                }
                _ => {
                    b.insert(id, entry(agent, (state >> 24) & 1 == 0, None));
                }
            }
            for a in agents {
                assert_eq!(b.baking_of(a), recount(&b, a), "step {step}, agent {a}");
            }
        }
        assert!(b.baking.values().all(|(n, _)| *n > 0));
    }
}
