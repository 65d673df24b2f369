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
//! - **changepoint**: Bayesian online changepoint detection (augurs) on the agent's
//!   mutations per minute: a recent change to a higher rate;
//! - **peers**: the median-absolute-deviation outlier detector (augurs) across the
//!   current windows of every active agent.
//!
//! The score is the own-history evidence mapped onto 0..1 (z of 2 ⇒ 0, z of 6 ⇒ 1), raised
//! by 0.15 for a recent upward changepoint and by 0.1 for being a peer outlier. Deterministic:
//! time comes from the caller.

use airlock_core::{Plan, Timestamp, Verb};
use augurs::changepoint::{Detector, NormalGammaDetector};
use augurs::outlier::{MADDetector, OutlierDetector};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// Last direction per resource, for reversals.
    last_direction: BTreeMap<String, i8>,
    /// Features at the end of each past window slot (every `window_s / 10`).
    history: VecDeque<(Timestamp, Features)>,
    last_slot: Option<i64>,
    score: Score,
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
    /// A recent upward changepoint in the agent's mutation rate.
    pub changepoint: bool,
    /// An outlier among the active agents right now.
    pub peer_outlier: bool,
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
    agents: BTreeMap<String, AgentTrack>,
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn direction(plan: &Plan) -> i8 {
    match plan.verb {
        Verb::Restart => -1,
        _ if plan.blast.capacity_delta_pct > 0.0 => 1,
        _ if plan.blast.capacity_delta_pct < 0.0 || plan.destructive => -1,
        _ => 0,
    }
}

impl Behaviour {
    pub fn new(config: AnomalyConfig) -> Self {
        Self {
            config,
            agents: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &AnomalyConfig {
        &self.config
    }

    fn slot_ms(&self) -> i64 {
        (self.config.window_s as i64 * 1000 / 10).max(1000)
    }

    /// Records a mutation the agent submitted (before its verdict).
    pub fn record(&mut self, agent: &str, plan: &Plan, now: Timestamp) {
        if !self.config.enabled || !plan.verb.is_mutation() || plan.is_noop() {
            return;
        }
        self.roll(agent, now);
        let t = self.agents.entry(agent.to_string()).or_default();
        let resource = plan.target.to_string();
        let dir = direction(plan);
        let reversal = dir != 0
            && t.last_direction
                .get(&resource)
                .is_some_and(|last| *last != 0 && (*last != dir || plan.verb == Verb::Restart));
        if dir != 0 {
            t.last_direction.insert(resource.clone(), dir);
        }
        t.actions.push_back(Action {
            t: now,
            resource,
            destructive: plan.destructive,
            capacity_removed: (-plan.blast.capacity_delta_pct).max(0.0),
            reversal,
        });
    }

    /// Records that a request of the agent was denied or held.
    pub fn blocked(&mut self, agent: &str, now: Timestamp) {
        if self.config.enabled {
            self.agents
                .entry(agent.to_string())
                .or_default()
                .blocked
                .push_back(now);
        }
    }

    /// Records that a change of the agent was reverted.
    pub fn reverted(&mut self, agent: &str, now: Timestamp) {
        if self.config.enabled {
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
        let acts: Vec<&Action> = t.actions.iter().filter(|a| inside(a.t)).collect();
        let resources: BTreeSet<&str> = acts.iter().map(|a| a.resource.as_str()).collect();
        Features([
            acts.len() as f64,
            acts.iter().filter(|a| a.destructive).count() as f64,
            resources.len() as f64,
            t.blocked.iter().filter(|x| inside(**x)).count() as f64,
            acts.iter().filter(|a| a.reversal).count() as f64,
            // Per resource, the deepest cut asked for (retries of one cut count once), summed
            // over resources: many small cuts spread wide add up.
            {
                let mut deepest: BTreeMap<&str, f64> = BTreeMap::new();
                for a in &acts {
                    let d = deepest.entry(a.resource.as_str()).or_default();
                    *d = d.max(a.capacity_removed);
                }
                deepest.values().sum()
            },
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
    }

    /// Scores the agent now (and remembers it).
    pub fn score(&mut self, agent: &str, now: Timestamp) -> Score {
        if !self.config.enabled {
            return Score::default();
        }
        self.roll(agent, now);
        let Some(track) = self.agents.get(agent) else {
            return Score::default();
        };
        let window_ms = self.config.window_s as i64 * 1000;
        let current = self.features_at(track, now);
        // Past windows that do not overlap the current one.
        let past: Vec<&Features> = track
            .history
            .iter()
            .filter(|(t, _)| *t <= now - window_ms)
            .map(|(_, f)| f)
            .collect();
        let mut usual = [0.0; 7];
        let mut top: Option<(usize, f64)> = None;
        for k in 0..7 {
            let mut col: Vec<f64> = past.iter().map(|f| f.0[k]).collect();
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
        let changepoint = self.rate_changed(track, now);
        if changepoint && value > 0.0 {
            value += 0.15;
        }
        let peer_outlier = self.peer_outlier(agent, now);
        if peer_outlier && value > 0.0 {
            value += 0.1;
        }
        if current.0[0] < f64::from(self.config.min_actions) {
            // Too little activity to judge: never past the threshold.
            value = value.min(self.config.threshold * 0.99);
        }
        let score = Score {
            value: value.clamp(0.0, 1.0),
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

    /// A changepoint within the last window to a higher rate of mutations per minute.
    fn rate_changed(&self, track: &AgentTrack, now: Timestamp) -> bool {
        let minutes = 120i64;
        let start = now - minutes * 60_000;
        let mut per_minute = vec![0.0; minutes as usize];
        for a in track.actions.iter().filter(|a| a.t > start && a.t <= now) {
            let i = ((a.t - start - 1) / 60_000).clamp(0, minutes - 1) as usize;
            per_minute[i] += 1.0;
        }
        let mut detector = NormalGammaDetector::default();
        let points = detector.detect_changepoints(&per_minute);
        let recent = (minutes - (self.config.window_s as i64 / 60).max(1)) as usize;
        points.iter().any(|&p| {
            p + 1 >= recent && p + 1 < per_minute.len() && {
                let before: f64 = per_minute[..=p].iter().sum::<f64>() / (p + 1) as f64;
                let after: f64 =
                    per_minute[p + 1..].iter().sum::<f64>() / (per_minute.len() - p - 1) as f64;
                after > before
            }
        })
    }

    /// Whether this agent's current window is an outlier among the active agents' (needs
    /// at least three active agents).
    fn peer_outlier(&self, agent: &str, now: Timestamp) -> bool {
        let window_ms = self.config.window_s as i64 * 1000;
        let active: Vec<(&String, Features)> = self
            .agents
            .iter()
            .filter(|(_, t)| t.actions.back().is_some_and(|a| a.t > now - 6 * window_ms))
            .map(|(n, t)| (n, self.features_at(t, now)))
            .collect();
        let Some(me) = active.iter().position(|(n, _)| n.as_str() == agent) else {
            return false;
        };
        if active.len() < 3 {
            return false;
        }
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
            params: Default::default(),
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
            reversible: verb != Verb::Delete,
            destructive: verb == Verb::Delete,
            rollback: false,
            min_risk: None,
            summary: String::new(),
            hash: String::new(),
        }
    }

    const MIN: i64 = 60_000;

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
