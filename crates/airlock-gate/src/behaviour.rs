//! Watching the agents themselves: per-agent behaviour series derived from what the gate
//! sees (each submission, its verdict, each revert), an anomaly score between 0 and 1, and
//! the quarantine decision.
//!
//! Features are counted over a sliding window (default 30 minutes) ending now:
//! mutations, destructive mutations, distinct resources mutated, denied or held requests,
//! reversals (a resource pushed back the way it came: scaled up then down, or restarted,
//! again), capacity removed (per resource the deepest cut asked for, in percent, summed
//! over resources, so many small cuts spread wide add up) and reverts.
//!
//! Three detectors score the current window:
//! - **own history**: each feature's robust z-score against the agent's own past windows
//!   (median and median absolute deviation, with a floor per feature so a quiet history
//!   does not make every action an outlier);
//! - **changepoint**: Bayesian online changepoint detection on the agent's
//!   mutations per minute: a recent change to a higher rate;
//! - **peers**: the median-absolute-deviation outlier detector (augurs) across the
//!   current windows of every active agent.
//!
//! The score is the own-history evidence mapped onto 0..1 (z of 2 ⇒ 0, z of 6 ⇒ 1), raised
//! by 0.15 for a recent upward changepoint and by 0.1 for being a peer outlier. Deterministic:
//! time comes from the caller.

use airlock_core::{Plan, Timestamp, Verb};
use augurs::outlier::{MADDetector, OutlierDetector};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How agents' behaviour is watched (`[anomaly]` in `airlock.toml`, `[guard.anomaly]` in
/// scenarios).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Score agents at all.
    pub enabled: bool,
    /// Open the agent's breaker (quarantine) when its score reaches `threshold`.
    pub quarantine: bool,
    /// Score from which an agent is quarantined, 0 to 1.
    pub threshold: f64,
    /// The sliding window features are counted over, in seconds.
    pub window_s: u64,
    /// Fewest mutations in the window before an agent can be quarantined.
    pub min_actions: u32,
    /// How much history is kept per agent, in seconds.
    pub history_s: u64,
    /// A change of direction on a resource counts as a reversal only within this many
    /// seconds of the previous change to it: a scale-up in the morning after a scale-down
    /// at night is following demand, not flapping.
    pub reversal_window_s: u64,
    /// Consecutive scored mutations at or above `threshold` before a quarantine: one
    /// unusual step is not sustained evidence.
    pub sustain: u32,
    /// Own history an agent needs, in seconds, before it is judged against itself alone;
    /// until then it is judged against every agent's history (the population), and with
    /// no population yet, against the built-in prior of an ordinary operations agent.
    pub min_own_history_s: u64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            quarantine: true,
            threshold: 0.8,
            window_s: 1800,
            min_actions: 4,
            history_s: 24 * 3600,
            reversal_window_s: 900,
            sustain: 3,
            min_own_history_s: 6 * 3600,
        }
    }
}

impl AnomalyConfig {
    /// Every problem, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.threshold) || self.threshold.is_nan() {
            out.push("anomaly.threshold: must be within 0..1".into());
        }
        if self.window_s < 60 {
            out.push("anomaly.window_s: must be at least 60".into());
        }
        if self.history_s < self.window_s * 2 {
            out.push("anomaly.history_s: must be at least twice window_s".into());
        }
        if self.sustain == 0 {
            out.push("anomaly.sustain: must be at least 1".into());
        }
        out
    }
}

/// The features, in order.
pub const FEATURES: [&str; 7] = [
    "mutations",
    "destructive",
    "resources",
    "blocked",
    "reversals",
    "capacity_removed_pct",
    "reverts",
];

/// Per-feature floor of the deviation scale, so a flat history does not turn one extra
/// action into an outlier.
const FLOORS: [f64; 7] = [3.0, 0.5, 2.0, 3.0, 1.0, 30.0, 1.0];

/// The built-in prior: the usual 30-minute window of an ordinary operations agent (an
/// autoscaler or a release bot), used for a new agent while no population exists. A new
/// agent is compared with what agents usually do, not with silence.
const PRIOR: [f64; 7] = [4.0, 0.0, 2.0, 1.0, 1.0, 40.0, 0.0];

/// One window's features.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Features(pub [f64; 7]);

impl Features {
    /// As a name → value map.
    pub fn named(&self) -> BTreeMap<&'static str, f64> {
        FEATURES.iter().copied().zip(self.0).collect()
    }
}

#[derive(Debug, Clone)]
struct Action {
    t: Timestamp,
    resource: String,
    destructive: bool,
    capacity_removed: f64,
    reversal: bool,
}

#[derive(Debug, Clone, Default)]
struct AgentTrack {
    actions: VecDeque<Action>,
    blocked: VecDeque<Timestamp>,
    reverts: VecDeque<Timestamp>,
    /// Last direction per resource and when, for reversals.
    last_direction: BTreeMap<String, (i8, Timestamp)>,
    /// When the agent was first seen.
    born: Option<Timestamp>,
    /// The last plan hash asked for per resource, and when (to tell retries).
    last_plan: BTreeMap<String, (String, Timestamp)>,
    /// Consecutive scored mutations at or above the threshold.
    streak: u32,
    /// Features at the end of each past window slot (every `window_s / 10`).
    history: VecDeque<(Timestamp, Features)>,
    last_slot: Option<i64>,
    score: Score,
    /// The changepoint detector's work on this agent's last minutes, kept for the next call.
    rate_change: crate::rate_change::RateChange,
}

/// An agent's score and what it rests on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Score {
    /// 0 (usual) to 1 (anomalous).
    pub value: f64,
    /// The current window's features.
    pub features: BTreeMap<String, f64>,
    /// The usual value of each feature (median of the agent's past windows).
    pub usual: BTreeMap<String, f64>,
    /// The feature furthest from the agent's usual, and its robust z-score.
    pub top: Option<(String, f64)>,
    /// A recent upward changepoint in the agent's mutation rate (looked for only when the
    /// own-history evidence is above 0, else false).
    pub changepoint: bool,
    /// An outlier among the active agents right now (looked for only when the own-history
    /// evidence is above 0, else false).
    pub peer_outlier: bool,
    /// Whether the score has been at or above the threshold for `sustain` scored
    /// mutations in a row: what a quarantine needs.
    #[serde(default)]
    pub sustained: bool,
    /// When it was scored, in ms since the Unix epoch.
    #[schema(value_type = i64)]
    pub at: Timestamp,
}

impl Score {
    /// One line for a journal reason or an alert.
    pub fn explain(&self) -> String {
        let mut parts = Vec::new();
        for name in FEATURES {
            let (Some(v), Some(u)) = (self.features.get(name), self.usual.get(name)) else {
                continue;
            };
            if v > u {
                parts.push(format!("{name} {v:.0} (usual {u:.0})"));
            }
        }
        let mut s = format!("anomaly score {:.2}", self.value);
        if !parts.is_empty() {
            s.push_str(&format!(": {}", parts.join(", ")));
        }
        if self.changepoint {
            s.push_str("; its action rate changed");
        }
        if self.peer_outlier {
            s.push_str("; unlike its peers");
        }
        s
    }
}

/// The behaviour of every agent the gate has seen.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    config: AnomalyConfig,
    /// Agents whose profile judges them by other settings. The window's shape
    /// (`window_s`, `history_s`) is always the common one, so agents stay comparable.
    agent_config: BTreeMap<String, AnomalyConfig>,
    agents: BTreeMap<String, AgentTrack>,
}

/// The median (the mean of the two middle values of an even count); reorders `v`.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len();
    let (below, mid, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        *mid
    } else {
        // The largest value below the middle one is the other middle value.
        let lower = below.iter().copied().max_by(f64::total_cmp).unwrap_or(*mid);
        (lower + *mid) / 2.0
    }
}

/// What the behaviour model reads of a plan, as a verdict journals it, so a restarted
/// server or another replica scores the agent on the same history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The target's address.
    pub target: String,
    /// The plan's hash (an identical retry is not new behaviour).
    pub hash: String,
    /// Whether it changes anything at all.
    pub mutation: bool,
    /// Whether it would change nothing.
    pub noop: bool,
    /// A coding agent's workspace edit (never scored).
    pub workspace: bool,
    /// A restart (always a step down).
    pub restart: bool,
    pub destructive: bool,
    pub capacity_delta_pct: f64,
}

impl Sample {
    pub fn of(plan: &Plan) -> Self {
        Self {
            target: plan.target.to_string(),
            hash: plan.hash.clone(),
            mutation: plan.verb.is_mutation(),
            noop: plan.is_noop(),
            workspace: plan.resource.workspace,
            restart: plan.verb == Verb::Restart,
            destructive: plan.destructive,
            capacity_delta_pct: plan.blast.capacity_delta_pct,
        }
    }

    /// Up (+1), down (−1) or neither (0).
    fn direction(&self) -> i8 {
        if self.restart {
            -1
        } else if self.capacity_delta_pct > 0.0 {
            1
        } else if self.capacity_delta_pct < 0.0 || self.destructive {
            -1
        } else {
            0
        }
    }
}

impl Behaviour {
    pub fn new(config: AnomalyConfig) -> Self {
        Self {
            config,
            agent_config: BTreeMap::new(),
            agents: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &AnomalyConfig {
        &self.config
    }

    /// Sets how one agent is judged (its profile's settings), or back to the common ones.
    pub fn set_agent_config(&mut self, agent: &str, config: Option<AnomalyConfig>) {
        match config {
            Some(c) => self.agent_config.insert(agent.to_string(), c),
            None => self.agent_config.remove(agent),
        };
    }

    /// How an agent is judged: `enabled`, `quarantine`, `threshold`, `sustain`,
    /// `min_actions` and `reversal_window_s` of its profile, else the common settings.
    pub fn config_of(&self, agent: &str) -> &AnomalyConfig {
        self.agent_config.get(agent).unwrap_or(&self.config)
    }

    fn slot_ms(&self) -> i64 {
        (self.config.window_s as i64 * 1000 / 10).max(1000)
    }

    /// Records a mutation the agent submitted (before its verdict). Returns whether it is
    /// a retry: the same plan (by hash) as the agent's last request on that resource,
    /// within the window. A retry is one attempt, not new evidence: a loop that asks again
    /// every minute for what was denied is counted once.
    pub fn record(&mut self, agent: &str, plan: &Plan, now: Timestamp) -> bool {
        self.record_sample(agent, &Sample::of(plan), now)
    }

    /// [`Behaviour::record`] from what a verdict journaled of the plan (another replica's,
    /// or one read back after a restart).
    pub fn record_sample(&mut self, agent: &str, plan: &Sample, now: Timestamp) -> bool {
        if !self.config_of(agent).enabled || !plan.mutation || plan.noop || plan.workspace {
            return false;
        }
        self.roll(agent, now);
        let window = self.config.window_s as i64 * 1000;
        let within = self.config_of(agent).reversal_window_s as i64 * 1000;
        let t = self.agents.entry(agent.to_string()).or_default();
        let resource = plan.target.clone();
        let retry = t
            .last_plan
            .get(&resource)
            .is_some_and(|(hash, at)| *hash == plan.hash && now - at <= window);
        t.last_plan
            .insert(resource.clone(), (plan.hash.clone(), now));
        if retry {
            return true;
        }
        let dir = plan.direction();
        t.born.get_or_insert(now);
        let reversal = dir != 0
            && t.last_direction.get(&resource).is_some_and(|(last, at)| {
                *last != 0 && now - at <= within && (*last != dir || plan.restart)
            });
        if dir != 0 {
            t.last_direction.insert(resource.clone(), (dir, now));
        }
        t.actions.push_back(Action {
            t: now,
            resource,
            destructive: plan.destructive,
            // Never −0.0 (`max` may keep either zero): a resource not cut adds +0.0.
            capacity_removed: (-plan.capacity_delta_pct).max(0.0) + 0.0,
            reversal,
        });
        false
    }

    /// Forgets the evidence of the current window (an operator released the agent): its
    /// actions, blocks, reverts, reversals and streak, and the window slots they fell in.
    /// What is older stays the agent's usual. Without this, an unfrozen agent would be
    /// quarantined again on its next action by the very evidence an operator just reviewed.
    pub fn forgive(&mut self, agent: &str, now: Timestamp) {
        let window = self.config.window_s as i64 * 1000;
        if let Some(t) = self.agents.get_mut(agent) {
            t.actions.clear();
            t.blocked.clear();
            t.reverts.clear();
            t.last_direction.clear();
            t.last_plan.clear();
            t.streak = 0;
            t.history.retain(|(at, _)| *at <= now - window);
            t.score = Score::default();
        }
    }

    /// Records that a request of the agent was denied or held.
    pub fn blocked(&mut self, agent: &str, now: Timestamp) {
        if self.config_of(agent).enabled {
            self.agents
                .entry(agent.to_string())
                .or_default()
                .blocked
                .push_back(now);
        }
    }

    /// Records that a change of the agent was reverted.
    pub fn reverted(&mut self, agent: &str, now: Timestamp) {
        if self.config_of(agent).enabled {
            self.agents
                .entry(agent.to_string())
                .or_default()
                .reverts
                .push_back(now);
        }
    }

    fn features_at(&self, t: &AgentTrack, end: Timestamp) -> Features {
        let start = end - self.config.window_s as i64 * 1000;
        let inside = |x: Timestamp| x > start && x <= end;
        let (mut destructive, mut reversals) = (0usize, 0usize);
        // Per resource, the deepest cut asked for (retries of one cut count once), summed
        // over resources in the order of their names: many small cuts spread wide add up.
        let mut acts = 0;
        let mut deepest: foldhash::HashMap<&str, f64> = Default::default();
        for a in t.actions.iter().filter(|a| inside(a.t)) {
            acts += 1;
            destructive += usize::from(a.destructive);
            reversals += usize::from(a.reversal);
            let d = deepest.entry(a.resource.as_str()).or_insert(0.0);
            *d = d.max(a.capacity_removed);
        }
        let resources = deepest.len();
        // Only the cuts add anything: a resource cut by nothing adds +0.0, which changes
        // the sum only from the empty sum's −0.0 (cuts are never −0.0: see `record`).
        let mut cuts: Vec<(&str, f64)> = deepest.into_iter().filter(|(_, d)| *d > 0.0).collect();
        cuts.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let removed: f64 = if cuts.is_empty() && resources > 0 {
            0.0
        } else {
            cuts.iter().map(|(_, d)| d).sum()
        };
        Features([
            acts as f64,
            destructive as f64,
            resources as f64,
            t.blocked.iter().filter(|x| inside(**x)).count() as f64,
            reversals as f64,
            removed,
            t.reverts.iter().filter(|x| inside(**x)).count() as f64,
        ])
    }

    /// Keeps one history point per slot (the features of the window ending there) and
    /// drops what is older than `history_s`.
    fn roll(&mut self, agent: &str, now: Timestamp) {
        let slot_ms = self.slot_ms();
        let keep_from = now - self.config.history_s as i64 * 1000;
        let slot = now.div_euclid(slot_ms);
        let Some(track) = self.agents.get(agent) else {
            self.agents.insert(
                agent.to_string(),
                AgentTrack {
                    last_slot: Some(slot),
                    ..Default::default()
                },
            );
            return;
        };
        let last = track.last_slot.unwrap_or(slot);
        // At most a day of slots is filled in after a quiet spell.
        let first = (last + 1).max(slot - (self.config.history_s as i64 * 1000 / slot_ms));
        let points: Vec<(Timestamp, Features)> = (first..=slot)
            .map(|s| {
                let end = s * slot_ms;
                (end, self.features_at(track, end))
            })
            .collect();
        let Some(t) = self.agents.get_mut(agent) else {
            return;
        };
        t.history.extend(points);
        t.last_slot = Some(slot);
        while t.history.front().is_some_and(|(x, _)| *x < keep_from) {
            t.history.pop_front();
        }
        while t.actions.front().is_some_and(|a| a.t < keep_from) {
            t.actions.pop_front();
        }
        while t.blocked.front().is_some_and(|x| *x < keep_from) {
            t.blocked.pop_front();
        }
        while t.reverts.front().is_some_and(|x| *x < keep_from) {
            t.reverts.pop_front();
        }
        // What is older than the window can no longer make a retry or a reversal.
        let recent = now - (self.config.window_s.max(self.config.reversal_window_s)) as i64 * 1000;
        t.last_plan.retain(|_, (_, at)| *at >= recent);
        t.last_direction.retain(|_, (_, at)| *at >= recent);
    }

    /// Scores the agent now (and remembers it).
    pub fn score(&mut self, agent: &str, now: Timestamp) -> Score {
        let judge = self.config_of(agent).clone();
        if !judge.enabled {
            return Score::default();
        }
        self.roll(agent, now);
        let Some(track) = self.agents.get(agent) else {
            return Score::default();
        };
        let window_ms = self.config.window_s as i64 * 1000;
        let current = self.features_at(track, now);
        // Past windows that do not overlap the current one: the agent's own once it has
        // enough history, else every agent's (the population), else the built-in prior.
        let own_enough = track
            .born
            .is_some_and(|b| now - b >= self.config.min_own_history_s as i64 * 1000);
        let past: Vec<&Features> = if own_enough {
            track
                .history
                .iter()
                .filter(|(t, _)| *t <= now - window_ms)
                .map(|(_, f)| f)
                .collect()
        } else {
            self.agents
                .iter()
                .filter(|(name, t)| {
                    name.as_str() != agent
                        && t.born
                            .is_some_and(|b| now - b >= self.config.min_own_history_s as i64 * 1000)
                })
                .flat_map(|(_, t)| t.history.iter().filter(|(x, _)| *x <= now - window_ms))
                .map(|(_, f)| f)
                .collect()
        };
        let mut usual = [0.0; 7];
        let mut top: Option<(usize, f64)> = None;
        for k in 0..7 {
            let mut col: Vec<f64> = past.iter().map(|f| f.0[k]).collect();
            if col.is_empty() {
                col.push(PRIOR[k]);
            }
            let med = median(&mut col);
            let mut dev: Vec<f64> = col.iter().map(|v| (v - med).abs()).collect();
            let mad = median(&mut dev);
            let scale = 1.4826 * mad.max(FLOORS[k]);
            let z = (current.0[k] - med) / scale;
            usual[k] = med;
            if top.is_none_or(|(_, best)| z > best) {
                top = Some((k, z));
            }
        }
        let z = top.map_or(0.0, |(_, z)| z);
        let mut value = ((z - 2.0) / 4.0).clamp(0.0, 1.0);
        // Changepoint and peers only add to own-history evidence, so they are looked for
        // only when there is some: most mutations are ordinary and skip both detectors.
        let changepoint = value > 0.0
            && self
                .agents
                .get_mut(agent)
                .is_some_and(|t| rate_changed(t, now, self.config.window_s));
        if changepoint {
            value += 0.15;
        }
        let peer_outlier = value > 0.0 && self.peer_outlier(agent, now, current);
        if peer_outlier {
            value += 0.1;
        }
        if current.0[0] < f64::from(judge.min_actions) {
            // Too little activity to judge: never past the threshold.
            value = value.min(judge.threshold * 0.99);
        }
        let value = value.clamp(0.0, 1.0);
        let sustained = if let Some(t) = self.agents.get_mut(agent) {
            t.streak = if value >= judge.threshold {
                t.streak + 1
            } else {
                0
            };
            t.streak >= judge.sustain
        } else {
            false
        };
        let score = Score {
            value,
            sustained,
            features: FEATURES
                .iter()
                .map(|n| n.to_string())
                .zip(current.0)
                .collect(),
            usual: FEATURES.iter().map(|n| n.to_string()).zip(usual).collect(),
            top: top.map(|(k, z)| (FEATURES[k].to_string(), z)),
            changepoint,
            peer_outlier,
            at: now,
        };
        if let Some(t) = self.agents.get_mut(agent) {
            t.score = score.clone();
        }
        score
    }

    /// Whether this agent's current window is an outlier among the active agents' (needs
    /// at least three active agents).
    fn peer_outlier(&self, agent: &str, now: Timestamp, current: Features) -> bool {
        let window_ms = self.config.window_s as i64 * 1000;
        let active: Vec<&String> = self
            .agents
            .iter()
            .filter(|(_, t)| t.actions.back().is_some_and(|a| a.t > now - 6 * window_ms))
            .map(|(n, _)| n)
            .collect();
        let Some(me) = active.iter().position(|n| n.as_str() == agent) else {
            return false;
        };
        if active.len() < 3 {
            return false;
        }
        // The agent's own window is the one just scored.
        let active: Vec<(&String, Features)> = active
            .into_iter()
            .map(|n| {
                let f = if n.as_str() == agent {
                    current
                } else {
                    self.features_at(&self.agents[n], now)
                };
                (n, f)
            })
            .collect();
        let series: Vec<Vec<f64>> = active.iter().map(|(_, f)| f.0.to_vec()).collect();
        let refs: Vec<&[f64]> = series.iter().map(Vec::as_slice).collect();
        let detector = MADDetector::with_sensitivity(0.5);
        let Ok(detector) = detector else {
            return false;
        };
        detector
            .preprocess(&refs)
            .and_then(|p| detector.detect(&p))
            .is_ok_and(|out| out.series_results.get(me).is_some_and(|s| s.is_outlier))
    }

    /// The last score of every agent seen.
    pub fn scores(&self) -> BTreeMap<String, Score> {
        self.agents
            .iter()
            .map(|(n, t)| (n.clone(), t.score.clone()))
            .collect()
    }

    /// An agent's recent series: the features at each history slot over the last `span_s`,
    /// ending with the window of its last score.
    pub fn series(&self, agent: &str, span_s: u64) -> Vec<(Timestamp, BTreeMap<String, f64>)> {
        let Some(t) = self.agents.get(agent) else {
            return Vec::new();
        };
        let last = t.score.at.max(t.history.back().map_or(0, |(x, _)| *x));
        let from = last - span_s as i64 * 1000;
        let mut out: Vec<(Timestamp, BTreeMap<String, f64>)> = t
            .history
            .iter()
            .filter(|(x, _)| *x >= from && *x < t.score.at)
            .map(|(x, f)| {
                (
                    *x,
                    f.named()
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                )
            })
            .collect();
        if !t.score.features.is_empty() {
            out.push((t.score.at, t.score.features.clone()));
        }
        out
    }
}

/// A changepoint within the last window (`window_s`) to a higher rate of mutations per
/// minute, over the agent's last two hours.
fn rate_changed(track: &mut AgentTrack, now: Timestamp, window_s: u64) -> bool {
    let minutes = 120i64;
    let start = now - minutes * 60_000;
    let mut per_minute = vec![0.0; minutes as usize];
    for a in track.actions.iter().filter(|a| a.t > start && a.t <= now) {
        let i = ((a.t - start - 1) / 60_000).clamp(0, minutes - 1) as usize;
        per_minute[i] += 1.0;
    }
    let points = track.rate_change.detect(&per_minute);
    let recent = (minutes - (window_s as i64 / 60).max(1)) as usize;
    points.iter().any(|&p| {
        p + 1 >= recent && p + 1 < per_minute.len() && {
            let before: f64 = per_minute[..=p].iter().sum::<f64>() / (p + 1) as f64;
            let after: f64 =
                per_minute[p + 1..].iter().sum::<f64>() / (per_minute.len() - p - 1) as f64;
            after > before
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::{Blast, Diff, Predicted, ResourceAttrs};
    use serde_json::json;

    fn plan(verb: Verb, service: &str, delta_pct: f64) -> Plan {
        let addr: airlock_core::ResourceAddr = format!("sim:service/{service}").parse().unwrap();
        Plan {
            provider: "sim".into(),
            verb,
            target: addr.clone(),
            params: [("delta".to_string(), json!(delta_pct))]
                .into_iter()
                .collect(),
            diffs: vec![Diff {
                addr,
                before: Some(json!(1)),
                after: Some(json!(2)),
            }],
            blast: Blast {
                resources: 1,
                capacity_delta_pct: delta_pct,
                ..Default::default()
            },
            predicted: Predicted::default(),
            resource: ResourceAttrs::default(),
            contained: vec![],
            reversible: verb != Verb::Delete,
            loses: vec![],
            destructive: verb == Verb::Delete,
            rollback: false,
            min_risk: None,
            summary: String::new(),
            hash: String::new(),
        }
        .seal()
    }

    const MIN: i64 = 60_000;

    /// The median by a full sort: what [`median`] must equal, bit for bit.
    fn sorted_median(v: &[f64]) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    #[test]
    fn the_median_is_the_sorted_middle_bit_for_bit() {
        let pool = [0.0, -0.0, 1.0, 2.5, 2.5, 3.0, 1e-300, 7.0, 30.0, 0.1];
        for n in 0..40usize {
            for shift in 0..5usize {
                let v: Vec<f64> = (0..n)
                    .map(|i| pool[(i * 7 + shift * 3 + i * i) % pool.len()] * (1 + i % 3) as f64)
                    .collect();
                let mut w = v.clone();
                assert_eq!(
                    median(&mut w).to_bits(),
                    sorted_median(&v).to_bits(),
                    "{v:?}"
                );
            }
        }
    }

    /// The window's sum of deepest cuts as a sort of every action by resource name adds it
    /// up: one deepest cut per resource, in name order, from the empty sum.
    fn removed_by_sorting(t: &AgentTrack, start: Timestamp, end: Timestamp) -> f64 {
        let mut cuts: Vec<(&str, f64)> = t
            .actions
            .iter()
            .filter(|a| a.t > start && a.t <= end)
            .map(|a| (a.resource.as_str(), a.capacity_removed))
            .collect();
        cuts.sort_by(|a, b| a.0.cmp(b.0));
        cuts.chunk_by(|a, b| a.0 == b.0)
            .map(|same| same.iter().fold(0.0, |d: f64, (_, cut)| d.max(*cut)))
            .sum()
    }

    #[test]
    fn the_window_sum_of_cuts_is_the_name_ordered_sum_bit_for_bit() {
        let config = AnomalyConfig::default();
        let window = config.window_s as i64 * 1000;
        let mut b = Behaviour::new(config);
        let deltas = [
            0.0,
            -0.0,
            -12.5,
            -0.1,
            7.0,
            -33.3,
            -1e-9,
            f64::NAN,
            -100.0,
            3.0,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let t0 = 100 * 60 * MIN;
        let mut t = t0;
        for i in 0..600 {
            let r = next();
            let svc = format!("svc-{}", r % 23);
            let delta = deltas[(r >> 8) as usize % deltas.len()];
            t += (r >> 20) as i64 % (2 * MIN);
            b.record("a", &plan(Verb::Scale, &svc, delta), t);
            if i % 7 == 0 {
                let track = &b.agents["a"];
                for end in [t, t - window / 2, t + window / 3, t + 2 * window] {
                    let got = b.features_at(track, end).0[5];
                    let want = removed_by_sorting(track, end - window, end);
                    assert_eq!(got.to_bits(), want.to_bits(), "at {end}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn window_features_count_each_resource_once_and_its_deepest_cut() {
        let mut b = Behaviour::new(AnomalyConfig::default());
        let t0 = 10 * 60 * MIN;
        // Outside the window: not counted.
        b.record("a", &plan(Verb::Scale, "old", -90.0), t0 - 40 * MIN);
        let steps = [
            ("b", -10.0),
            ("a", -30.0),
            ("b", -25.0),
            ("c", 20.0),
            ("a", -5.0),
            ("d", 0.0),
            ("b", -25.0),
        ];
        for (i, (svc, delta)) in steps.iter().enumerate() {
            b.record("a", &plan(Verb::Scale, svc, *delta), t0 + i as i64 * MIN);
        }
        b.record("a", &plan(Verb::Delete, "e", -100.0), t0 + 8 * MIN);
        let f = b.features_at(&b.agents["a"], t0 + 9 * MIN);
        // Mutations, destructive, resources, blocked, reversals, capacity removed, reverts.
        // The second 25% cut of `b` is a retry of the first: one attempt.
        assert_eq!(f.0[0], 7.0, "{f:?}");
        assert_eq!(f.0[1], 1.0);
        assert_eq!(f.0[2], 5.0);
        // a: 30, b: 25, c: none, d: none, e: 100.
        assert_eq!(f.0[5], 155.0);
        // A window with nothing in it sums to what an empty sum is.
        let empty = b.features_at(&b.agents["a"], t0 + 200 * MIN);
        assert_eq!(
            empty.0[5].to_bits(),
            std::iter::empty::<f64>().sum::<f64>().to_bits()
        );
        assert_eq!(empty.0[2], 0.0);
    }

    /// A well-behaved scaler: one scale-up or -down on one of four services every 7
    /// minutes, for `hours`; returns the highest score seen.
    fn normal(b: &mut Behaviour, agent: &str, start: i64, hours: i64) -> f64 {
        let mut worst: f64 = 0.0;
        let mut t = start;
        let mut i = 0;
        while t < start + hours * 60 * MIN {
            let service = format!("svc-{}", i % 4);
            let delta = if (i / 4) % 2 == 0 { 12.0 } else { -10.0 };
            b.record(agent, &plan(Verb::Scale, &service, delta), t);
            worst = worst.max(b.score(agent, t).value);
            t += 7 * MIN;
            i += 1;
        }
        worst
    }

    #[test]
    fn forgiving_an_agent_drops_the_evidence_an_operator_reviewed() {
        let mut b = Behaviour::new(AnomalyConfig::default());
        normal(&mut b, "bot", 0, 6);
        let mut t = 6 * 60 * MIN;
        let mut sustained = false;
        for n in 0..40 {
            let delta = if n % 2 == 0 { -60.0 } else { 150.0 };
            b.record("bot", &plan(Verb::Scale, "payments", delta), t);
            sustained = b.score("bot", t).sustained;
            if sustained {
                break;
            }
            t += MIN / 2;
        }
        assert!(sustained, "the loop never sustained a score");
        b.forgive("bot", t);
        // The next action after the release is judged on its own, not on the loop.
        t += MIN / 2;
        b.record("bot", &plan(Verb::Scale, "payments", 20.0), t);
        let s = b.score("bot", t);
        assert!(!s.sustained && s.value < 0.8, "{s:?}");
    }

    #[test]
    fn workspace_changes_are_not_behaviour() {
        let mut b = Behaviour::new(AnomalyConfig::default());
        let mut edit = plan(Verb::Update, "notes", 0.0);
        edit.resource.workspace = true;
        edit.diffs[0].after = Some(serde_json::json!({"edited": true}));
        for i in 0..100 {
            assert!(!b.record("coder", &edit, i * 600));
        }
        assert_eq!(b.score("coder", 60_000).features["resources"], 0.0);
    }

    #[test]
    fn a_normal_agent_stays_below_the_threshold() {
        let mut b = Behaviour::new(AnomalyConfig::default());
        let worst = normal(&mut b, "scaler", 0, 24);
        assert!(worst < 0.8, "{worst}");
    }

    #[test]
    fn a_flapping_loop_is_anomalous_within_twenty_actions() {
        let mut b = Behaviour::new(AnomalyConfig::default());
        let start = 6 * 60 * MIN;
        normal(&mut b, "bot", 0, 6);
        let mut t = start;
        let mut caught = None;
        for n in 1..=40 {
            let (verb, delta) = match n % 3 {
                0 => (Verb::Scale, -80.0),
                1 => (Verb::Restart, 0.0),
                _ => (Verb::Scale, 300.0),
            };
            b.record("bot", &plan(verb, "payments", delta), t);
            let s = b.score("bot", t);
            if s.value >= 0.8 {
                caught = Some((n, s));
                break;
            }
            t += MIN / 2;
        }
        let (n, s) = caught.expect("the loop was never anomalous");
        assert!(n <= 20, "caught after {n} actions");
        assert!(s.explain().contains("reversals"), "{}", s.explain());
    }

    #[test]
    fn salami_deletes_are_anomalous_within_twenty_actions() {
        let mut b = Behaviour::new(AnomalyConfig::default());
        normal(&mut b, "cleaner", 0, 6);
        let mut t = 6 * 60 * MIN;
        let mut caught = None;
        for n in 1..=40 {
            b.record(
                "cleaner",
                &plan(Verb::Delete, &format!("tiny-{n}"), -100.0),
                t,
            );
            if b.score("cleaner", t).value >= 0.8 {
                caught = Some(n);
                break;
            }
            t += 2 * MIN;
        }
        let n = caught.expect("never anomalous");
        assert!(n <= 20, "caught after {n} deletes");
    }

    #[test]
    fn a_burst_below_min_actions_is_never_past_the_threshold() {
        let cfg = AnomalyConfig {
            threshold: 0.3,
            ..Default::default()
        };
        let burst = |b: &mut Behaviour, n: i64| {
            for i in 0..n {
                b.record(
                    "new",
                    &plan(Verb::Delete, &format!("s{i}"), -100.0),
                    i * 1000,
                );
            }
            b.score("new", (n - 1) * 1000).value
        };
        // Three deletes at once are far from usual, but too few to judge.
        assert!(burst(&mut Behaviour::new(cfg.clone()), 3) < 0.3);
        // A fourth makes it enough.
        assert!(burst(&mut Behaviour::new(cfg), 4) >= 0.3);
    }

    /// A scaler that cut at night and added in the morning was counted as flapping: any
    /// change of direction was a reversal, however long ago the last change was.
    #[test]
    fn a_change_of_direction_hours_later_is_not_a_reversal() {
        let mut b = Behaviour::new(AnomalyConfig::default());
        b.record("s", &plan(Verb::Scale, "web", -20.0), 0);
        b.record("s", &plan(Verb::Scale, "web", 25.0), 3 * 60 * MIN);
        assert_eq!(b.score("s", 3 * 60 * MIN).features["reversals"], 0.0);
        b.record(
            "s",
            &plan(Verb::Scale, "web", -20.0),
            3 * 60 * MIN + 2 * MIN,
        );
        assert_eq!(
            b.score("s", 3 * 60 * MIN + 2 * MIN).features["reversals"],
            1.0
        );
    }

    #[test]
    fn a_quarantine_needs_sustained_evidence_and_a_new_agent_meets_a_prior() {
        let mut b = Behaviour::new(AnomalyConfig::default());
        // A new agent doing an ordinary autoscaler's work is judged against the prior of
        // an ordinary agent, not against silence.
        let mut worst: f64 = 0.0;
        for i in 0..6 {
            let t = i * 5 * MIN;
            b.record("new", &plan(Verb::Scale, &format!("svc-{i}"), -25.0), t);
            worst = worst.max(b.score("new", t).value);
        }
        assert!(worst < 0.8, "{worst}");
        // A delete spree: anomalous at once, quarantined only once it is sustained.
        let mut sustained_at = None;
        for n in 1..=10 {
            let t = 40 * MIN + n * MIN;
            b.record("new", &plan(Verb::Delete, &format!("d{n}"), -100.0), t);
            let s = b.score("new", t);
            if s.sustained {
                sustained_at = Some(n);
                break;
            }
        }
        let n = sustained_at.expect("never sustained");
        assert!(n >= 3, "sustained after {n}");
    }

    #[test]
    fn a_retry_of_the_same_plan_is_one_attempt() {
        let mut b = Behaviour::new(AnomalyConfig::default());
        let p = plan(Verb::Scale, "web", -20.0);
        assert!(!b.record("s", &p, 0));
        for i in 1..10 {
            assert!(b.record("s", &p, i * MIN), "asked again at minute {i}");
        }
        assert_eq!(b.score("s", 10 * MIN).features["mutations"], 1.0);
        // Another plan on the same resource is a new attempt, and so is the first one
        // asked again after it.
        assert!(!b.record("s", &plan(Verb::Scale, "web", 10.0), 11 * MIN));
        assert!(!b.record("s", &p, 12 * MIN));
    }

    #[test]
    fn scores_are_deterministic() {
        let run = || {
            let mut b = Behaviour::new(AnomalyConfig::default());
            normal(&mut b, "x", 0, 3);
            serde_json::to_string(&b.score("x", 3 * 60 * MIN)).unwrap()
        };
        assert_eq!(run(), run());
    }
}
