//! Guards: checks outside the policy language that need memory of what happened —
//! the kill switch, per-agent rate limits, cumulative blast budgets and the breaker.
//!
//! The state is plain data driven by timestamps the caller passes in, so the same
//! sequence of calls always gives the same answers.

use crate::clock::Timestamp;
use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Guard limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Mutating submissions allowed per agent per minute.
    pub mutations_per_minute: u32,
    /// Window of the blast budget, in seconds.
    pub budget_window_s: u64,
    /// Largest cumulative capacity cut per service per agent per window, in percent.
    pub max_capacity_cut_pct: f64,
    /// Largest cumulative capacity increase per service per agent per window, in percent.
    pub max_capacity_add_pct: f64,
    /// Destructive actions allowed per agent per window.
    pub max_destructive: u32,
    /// Reverts within the breaker window that open the agent's breaker.
    pub breaker_reverts: u32,
    /// Window of the breaker, in seconds.
    pub breaker_window_s: u64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            mutations_per_minute: 12,
            budget_window_s: 3600,
            max_capacity_cut_pct: 50.0,
            max_capacity_add_pct: 300.0,
            max_destructive: 1,
            breaker_reverts: 2,
            breaker_window_s: 3600,
        }
    }
}

/// Whether a guard finding blocks or holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardEffect {
    Deny,
    Hold,
}

/// One guard that objects, with its id (the verdict's reason) and a detail for humans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardFinding {
    pub id: &'static str,
    pub effect: GuardEffect,
    pub detail: String,
    /// When the same request would pass this guard again, in seconds (rate limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AgentState {
    mutations: VecDeque<Timestamp>,
    /// (time, service, capacity factor applied: new/old).
    capacity: VecDeque<(Timestamp, String, f64)>,
    destructive: VecDeque<Timestamp>,
    reverts: VecDeque<Timestamp>,
    breaker: Option<String>,
}

/// What a plan counts against the guards, as a verdict event records it, so another
/// replica reading the journal counts it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    /// The service whose capacity budget it draws on.
    pub service: String,
    /// Whether it changes anything (counted by the rate limit).
    pub mutation: bool,
    /// Whether it is a coding agent's workspace edit (never counted).
    pub workspace: bool,
    /// Whether it counts against the destructive-action budget.
    pub destructive: bool,
    /// New capacity over old (1.0 when capacity does not change).
    pub capacity_factor: f64,
}

impl Spend {
    /// What `plan` counts against the guards.
    pub fn of(plan: &Plan) -> Self {
        Self {
            service: plan.resource.service.clone(),
            mutation: plan.verb.is_mutation(),
            workspace: plan.resource.workspace,
            destructive: plan.destructive,
            capacity_factor: 1.0 + plan.blast.capacity_delta_pct / 100.0,
        }
    }
}

/// Guard state for every agent plus the global kill switch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Guards {
    pub config: GuardConfig,
    /// Agents whose profile sets other limits than `config`.
    #[serde(default)]
    agent_config: BTreeMap<String, GuardConfig>,
    killswitch: bool,
    agents: BTreeMap<String, AgentState>,
}

fn prune(q: &mut VecDeque<Timestamp>, since: Timestamp) {
    while q.front().is_some_and(|t| *t < since) {
        q.pop_front();
    }
}

impl Guards {
    /// Guards with the given limits, kill switch off, every breaker closed.
    pub fn new(config: GuardConfig) -> Self {
        Self {
            config,
            agent_config: BTreeMap::new(),
            killswitch: false,
            agents: BTreeMap::new(),
        }
    }

    /// Sets the limits of one agent (its profile's), or back to the common ones with `None`.
    pub fn set_agent_config(&mut self, agent: &str, config: Option<GuardConfig>) {
        match config {
            Some(c) => self.agent_config.insert(agent.to_string(), c),
            None => self.agent_config.remove(agent),
        };
    }

    /// The limits that apply to an agent.
    pub fn config_of(&self, agent: &str) -> &GuardConfig {
        self.agent_config.get(agent).unwrap_or(&self.config)
    }

    /// Turns the kill switch on or off. While on, every mutation is denied.
    pub fn set_killswitch(&mut self, on: bool) {
        self.killswitch = on;
    }

    /// Whether the kill switch is on.
    pub fn killswitch(&self) -> bool {
        self.killswitch
    }

    /// Why the agent's breaker is open, if it is.
    pub fn breaker(&self, agent: &str) -> Option<&str> {
        self.agents.get(agent).and_then(|a| a.breaker.as_deref())
    }

    /// Opens an agent's breaker (an operator's freeze, or a detector's quarantine).
    pub fn open_breaker(&mut self, agent: &str, why: &str) {
        self.agents.entry(agent.to_string()).or_default().breaker = Some(why.to_string());
    }

    /// Every agent whose breaker is open, with why.
    pub fn open_breakers(&self) -> Vec<(String, String)> {
        self.agents
            .iter()
            .filter_map(|(name, a)| a.breaker.as_ref().map(|why| (name.clone(), why.clone())))
            .collect()
    }

    /// Closes an agent's breaker and forgets the reverts that opened it.
    pub fn reset_breaker(&mut self, agent: &str) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.breaker = None;
            a.reverts.clear();
        }
    }

    /// Mutations the agent submitted in the last five minutes.
    pub fn actions_5m(&mut self, agent: &str, now: Timestamp) -> u32 {
        let a = self.agents.entry(agent.to_string()).or_default();
        a.mutations.iter().filter(|t| **t >= now - 300_000).count() as u32
    }

    /// Reverts of the agent's changes in the last hour.
    pub fn reverts_1h(&mut self, agent: &str, now: Timestamp) -> u32 {
        let a = self.agents.entry(agent.to_string()).or_default();
        a.reverts.iter().filter(|t| **t >= now - 3_600_000).count() as u32
    }

    /// Counts a submission against the rate limit. Call once per submission, before
    /// `check_submission`. Returns its place in the agent's last minute (1 for the only
    /// one) when it counts: what the rate limit judges it by, whatever arrives after it.
    pub fn record_submission(&mut self, agent: &str, plan: &Plan, now: Timestamp) -> Option<u32> {
        self.record_submission_of(agent, &Spend::of(plan), now)
    }

    /// [`Guards::record_submission`] from what a plan spends (as journaled).
    pub fn record_submission_of(
        &mut self,
        agent: &str,
        spend: &Spend,
        now: Timestamp,
    ) -> Option<u32> {
        if !spend.mutation || spend.workspace {
            return None;
        }
        let a = self.agents.entry(agent.to_string()).or_default();
        prune(&mut a.mutations, now - 300_000);
        a.mutations.push_back(now);
        Some(a.mutations.iter().filter(|t| **t > now - 60_000).count() as u32)
    }

    /// What the guards say about this plan now, counting every submission of the agent's
    /// last minute. Reads are never blocked.
    pub fn check(&mut self, agent: &str, plan: &Plan, now: Timestamp) -> Vec<GuardFinding> {
        self.check_submission(agent, plan, now, None)
    }

    /// What the guards say about a submission that [`Guards::record_submission`] placed
    /// `place`-th in the agent's last minute: the rate limit judges it by that place, so
    /// submissions recorded after it (decided concurrently) do not push it over the limit.
    /// With `None`, every submission of the last minute counts, as in [`Guards::check`].
    pub fn check_submission(
        &mut self,
        agent: &str,
        plan: &Plan,
        now: Timestamp,
        place: Option<u32>,
    ) -> Vec<GuardFinding> {
        let mut findings = Vec::new();
        if !plan.verb.is_mutation() {
            return findings;
        }
        let cfg = self.config_of(agent).clone();
        if self.killswitch {
            findings.push(GuardFinding {
                id: "killswitch",
                effect: GuardEffect::Deny,
                detail: "the kill switch is on: every mutation is denied".into(),
                retry_after_s: None,
            });
        }
        let a = self.agents.entry(agent.to_string()).or_default();
        if let Some(why) = &a.breaker {
            findings.push(GuardFinding {
                id: "breaker-open",
                effect: GuardEffect::Hold,
                detail: format!(
                    "the agent's breaker is open ({why}): mutations wait for an operator"
                ),
                retry_after_s: None,
            });
        }
        // A change inside the agent's own workspace spends no budget: only the kill switch
        // and the breaker apply to it.
        if plan.resource.workspace {
            return findings;
        }
        let recent: Vec<Timestamp> = a
            .mutations
            .iter()
            .copied()
            .filter(|t| *t > now - 60_000)
            .collect();
        let last_minute = place.unwrap_or(recent.len() as u32);
        if last_minute > cfg.mutations_per_minute {
            // When enough of the last minute's submissions have aged out that one more
            // fits under the limit.
            let k = (last_minute - cfg.mutations_per_minute) as usize;
            let free_at = recent.get(k).map_or(now, |t| t + 60_000);
            let retry_after = ((free_at - now).max(0) as u64).div_ceil(1000).max(1);
            findings.push(GuardFinding {
                id: "rate-limit",
                effect: GuardEffect::Deny,
                detail: format!(
                    "{last_minute} mutations in the last minute; the limit is {}: retry after {retry_after} s",
                    cfg.mutations_per_minute
                ),
                retry_after_s: Some(retry_after),
            });
        }
        let window_start = now - (cfg.budget_window_s as i64) * 1000;
        prune(&mut a.destructive, window_start);
        if plan.destructive && a.destructive.len() as u32 >= cfg.max_destructive {
            findings.push(GuardFinding {
                id: "blast-budget-destructive",
                effect: GuardEffect::Deny,
                detail: format!(
                    "{} destructive actions already in this window; the budget is {}",
                    a.destructive.len(),
                    cfg.max_destructive
                ),
                retry_after_s: None,
            });
        }
        while a
            .capacity
            .front()
            .is_some_and(|(t, _, _)| *t < window_start)
        {
            a.capacity.pop_front();
        }
        let factor = 1.0 + plan.blast.capacity_delta_pct / 100.0;
        if (factor - 1.0).abs() > 1e-9 {
            let service = &plan.resource.service;
            let (mut cut, mut add) = (1.0_f64, 1.0_f64);
            for (_, s, f) in &a.capacity {
                if s == service {
                    if *f < 1.0 {
                        cut *= f;
                    } else {
                        add *= f;
                    }
                }
            }
            if factor < 1.0 {
                cut *= factor;
            } else {
                add *= factor;
            }
            let cut_pct = (1.0 - cut) * 100.0;
            let add_pct = (add - 1.0) * 100.0;
            // A single step over the limit is the policy's business; the budget is about sums.
            let single_over = plan.blast.capacity_delta_pct < -cfg.max_capacity_cut_pct
                || plan.blast.capacity_delta_pct > cfg.max_capacity_add_pct;
            if !single_over
                && (cut_pct > cfg.max_capacity_cut_pct + 1e-9
                    || add_pct > cfg.max_capacity_add_pct + 1e-9)
            {
                findings.push(GuardFinding {
                    id: "blast-budget-capacity",
                    effect: GuardEffect::Hold,
                    detail: format!(
                        "steps in this window would cut {cut_pct:.0}% / add {add_pct:.0}% of `{service}` capacity; the budget is {:.0}% / {:.0}%",
                        cfg.max_capacity_cut_pct, cfg.max_capacity_add_pct
                    ),
                    retry_after_s: None,
                });
            }
        }
        findings
    }

    /// Counts an applied plan against the agent's budgets.
    pub fn record_applied(&mut self, agent: &str, plan: &Plan, now: Timestamp) {
        self.record_applied_of(agent, &Spend::of(plan), now);
    }

    /// [`Guards::record_applied`] from what a plan spends (as journaled).
    pub fn record_applied_of(&mut self, agent: &str, spend: &Spend, now: Timestamp) {
        if spend.workspace {
            return;
        }
        let a = self.agents.entry(agent.to_string()).or_default();
        if spend.destructive {
            a.destructive.push_back(now);
        }
        let factor = spend.capacity_factor;
        if (factor - 1.0).abs() > 1e-9 {
            a.capacity
                .push_back((now, spend.service.clone(), factor.max(0.0)));
        }
    }

    /// Gives back what [`Guards::record_applied`] counted for `plan` at `at`, when the
    /// change it was spent on never landed (the journal or the provider failed).
    pub fn release_applied(&mut self, agent: &str, plan: &Plan, at: Timestamp) {
        self.release_applied_of(agent, &Spend::of(plan), at);
    }

    /// [`Guards::release_applied`] from what a plan spends (as journaled).
    pub fn release_applied_of(&mut self, agent: &str, spend: &Spend, at: Timestamp) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if spend.destructive
            && let Some(i) = a.destructive.iter().rposition(|t| *t == at)
        {
            a.destructive.remove(i);
        }
        let factor = spend.capacity_factor;
        if (factor - 1.0).abs() > 1e-9
            && let Some(i) = a.capacity.iter().rposition(|(t, s, f)| {
                *t == at && *s == spend.service && (*f - factor.max(0.0)).abs() < 1e-12
            })
        {
            a.capacity.remove(i);
        }
    }

    /// Counts a revert of the agent's change; returns true when this trips the breaker.
    pub fn record_revert(&mut self, agent: &str, now: Timestamp) -> bool {
        let cfg = self.config_of(agent);
        let window = (cfg.breaker_window_s as i64) * 1000;
        let threshold = cfg.breaker_reverts;
        let a = self.agents.entry(agent.to_string()).or_default();
        prune(&mut a.reverts, now - window);
        a.reverts.push_back(now);
        if a.breaker.is_none() && a.reverts.len() as u32 >= threshold {
            a.breaker = Some(format!(
                "{} reverts within {} s",
                a.reverts.len(),
                window / 1000
            ));
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Verb;
    use crate::plan::{Blast, Predicted, ResourceAttrs};

    fn scale(delta: f64) -> Plan {
        Plan {
            provider: "sim".into(),
            verb: Verb::Scale,
            target: "sim:service/web".parse().unwrap(),
            params: Default::default(),
            diffs: vec![],
            blast: Blast {
                capacity_delta_pct: delta,
                ..Default::default()
            },
            predicted: Predicted::default(),
            resource: ResourceAttrs {
                service: "web".into(),
                ..Default::default()
            },
            contained: vec![],
            reversible: true,
            loses: vec![],
            destructive: false,
            rollback: false,
            min_risk: None,
            summary: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn salami_slices_add_up_to_the_budget() {
        let mut g = Guards::new(GuardConfig::default());
        let mut t = 0;
        let mut held_at = None;
        for step in 0..10 {
            let p = scale(-15.0);
            g.record_submission("bot", &p, t);
            let f = g.check("bot", &p, t);
            if f.iter().any(|f| f.id == "blast-budget-capacity") {
                held_at = Some(step);
                break;
            }
            g.record_applied("bot", &p, t);
            t += 120_000;
        }
        // 0.85^4 = 0.52 remains after four steps; the fifth would leave 0.44 (56% cut).
        assert_eq!(held_at, Some(4));
    }

    #[test]
    fn workspace_changes_spend_nothing_but_the_killswitch_still_stops_them() {
        let mut g = Guards::new(GuardConfig::default());
        let mut edit = scale(0.0);
        edit.verb = Verb::Update;
        edit.resource.workspace = true;
        let mut wipe = edit.clone();
        wipe.verb = Verb::Delete;
        wipe.destructive = true;
        // A hundred edits and a few deletes of build output in one minute.
        for i in 0..100 {
            let p = if i % 25 == 0 { &wipe } else { &edit };
            g.record_submission("coder", p, i * 500);
            assert!(g.check("coder", p, i * 500).is_empty(), "step {i}");
            g.record_applied("coder", p, i * 500);
        }
        assert_eq!(g.actions_5m("coder", 50_000), 0);
        // Infrastructure budgets are untouched: one destructive action is still allowed.
        let mut delete = scale(0.0);
        delete.verb = Verb::Delete;
        delete.destructive = true;
        assert!(g.check("coder", &delete, 50_000).is_empty());
        g.set_killswitch(true);
        assert_eq!(g.check("coder", &edit, 50_000)[0].id, "killswitch");
    }

    #[test]
    fn a_released_spend_is_given_back() {
        let mut g = Guards::new(GuardConfig::default());
        let mut p = scale(0.0);
        p.verb = Verb::Delete;
        p.destructive = true;
        g.record_applied("a", &p, 1000);
        let spent = g.check("a", &p, 2000);
        assert_eq!(
            spent[0].id, "blast-budget-destructive",
            "the budget is spent"
        );
        g.release_applied("a", &p, 1000);
        assert!(g.check("a", &p, 2000).is_empty(), "and given back");
    }

    #[test]
    fn killswitch_denies_mutations_not_reads() {
        let mut g = Guards::new(GuardConfig::default());
        g.set_killswitch(true);
        assert_eq!(g.check("bot", &scale(10.0), 0)[0].id, "killswitch");
        let mut read = scale(0.0);
        read.verb = Verb::Read;
        assert!(g.check("bot", &read, 0).is_empty());
    }

    #[test]
    fn breaker_opens_after_repeated_reverts_and_resets() {
        let mut g = Guards::new(GuardConfig::default());
        assert!(!g.record_revert("bot", 0));
        assert!(g.record_revert("bot", 1000));
        assert!(
            g.check("bot", &scale(5.0), 2000)
                .iter()
                .any(|f| f.id == "breaker-open")
        );
        g.reset_breaker("bot");
        assert!(g.check("bot", &scale(5.0), 3000).is_empty());
    }

    #[test]
    fn rate_limit_counts_mutations_per_minute() {
        let mut g = Guards::new(GuardConfig {
            mutations_per_minute: 3,
            ..Default::default()
        });
        let p = scale(1.0);
        let mut last = vec![];
        for i in 0..5 {
            g.record_submission("bot", &p, i * 1000);
            last = g.check("bot", &p, i * 1000);
        }
        assert!(last.iter().any(|f| f.id == "rate-limit"));
        g.record_submission("bot", &p, 120_000);
        assert!(g.check("bot", &p, 120_000).is_empty());
    }

    #[test]
    fn a_submission_is_judged_by_its_place_not_by_later_ones() {
        let mut g = Guards::new(GuardConfig {
            mutations_per_minute: 2,
            ..Default::default()
        });
        let p = scale(1.0);
        // Three submissions recorded before any is checked (decided concurrently).
        let places: Vec<Option<u32>> = (0..3)
            .map(|i| g.record_submission("bot", &p, 1000 + i))
            .collect();
        assert_eq!(places, [Some(1), Some(2), Some(3)]);
        let limited = |f: &[GuardFinding]| f.iter().any(|f| f.id == "rate-limit");
        assert!(!limited(&g.check_submission("bot", &p, 1000, places[0])));
        assert!(!limited(&g.check_submission("bot", &p, 1001, places[1])));
        assert!(limited(&g.check_submission("bot", &p, 1002, places[2])));
        // Counting every submission of the minute, the first would have been over too.
        assert!(limited(&g.check("bot", &p, 1000)));
        // A read or a workspace edit takes no place.
        let mut read = scale(1.0);
        read.verb = Verb::Read;
        assert_eq!(g.record_submission("bot", &read, 1003), None);
    }
}
