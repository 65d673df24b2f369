//! Step 8 of the flow: bake each applied change against its SLO rules and revert it on a
//! breach; manual reverts and undo use the same path, which skips the policy gate (a
//! rollback must never deadlock on its own guard) but never overwrites a resource that
//! moved on since the change (that is `needs_attention`).

use crate::engine::{BakeEntry, Gate, GateError, change_key, lock};
use airlock_core::slo::{
    BaselineEntry, Counters, Judgement, MissingData, QueryRule, Sample, SloRule, judge, rule_value,
};
use airlock_core::{
    Applied, ChangeStatus, EventKind, Landing, NewEvent, Plan, ProviderError, Snapshot, Verb,
};
use airlock_store::ChangeRecord;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// How changes are baked.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BakeConfig {
    /// How long a change is watched after apply, in seconds.
    pub window_s: u64,
    /// The judge looks at samples from the last this-many seconds.
    pub judge_window_s: u64,
    /// Requests needed in the judge window before judging.
    pub min_requests: f64,
    /// `availability >= this` for every watched service.
    pub availability: f64,
    /// `p99_latency_ms <= this` for every watched service.
    pub p99_ms: f64,
    /// What missing data means.
    pub missing: MissingData,
    /// Longest a `hold` missing-data rule may extend a bake, in seconds.
    pub max_extension_s: u64,
    /// Rules on query values (`[[slo]]`), judged besides the two above.
    pub slo: Vec<QueryRule>,
    /// How long a change stays under watch after its bake settles, in seconds (0: not
    /// at all). A breach on a watched service during that time ranks the changes that
    /// could explain it.
    pub watch_s: u64,
    /// Revert the top suspect of a regression after settling automatically when the
    /// evidence is unambiguous (the only change on the breaching service itself); off,
    /// the suspects are journaled and alerted only.
    pub watch_revert: bool,
    /// After a change is reverted for a breach, how long the judge waits before it blames
    /// another change for the same service, in seconds: it sees the revert's effect first.
    pub blame_cooldown_s: u64,
    /// How often the suspects of a regression that persists are reported again, in seconds.
    pub watch_alert_every_s: u64,
    /// Revert a capacity cut under watch when the demand expected over the coming hours
    /// no longer fits the capacity it left (when the provider can tell).
    pub capacity_watch: bool,
}

impl Default for BakeConfig {
    fn default() -> Self {
        Self {
            window_s: 300,
            judge_window_s: 30,
            min_requests: 200.0,
            availability: 0.999,
            p99_ms: 1000.0,
            missing: MissingData::Ignore,
            max_extension_s: 1800,
            slo: Vec::new(),
            watch_s: 12 * 3600,
            watch_revert: true,
            blame_cooldown_s: 120,
            watch_alert_every_s: 1800,
            capacity_watch: true,
        }
    }
}

impl BakeConfig {
    /// The rules every watched service is held to.
    pub fn rules(&self) -> Vec<SloRule> {
        vec![
            SloRule::availability(self.availability),
            SloRule::p99_latency(self.p99_ms),
        ]
    }
}

/// What happened to a change: its bake passed on data (`settled`), its window ended without
/// any rule judged on data (`unjudged`: live, never looked at), it was reverted from its
/// snapshot (`reverted`), or the revert stopped and a person must look (`needs_attention`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BakeOutcome {
    Settled {
        change_id: String,
        agent: String,
    },
    Unjudged {
        change_id: String,
        agent: String,
        /// Why nothing was judged: no signal watches the resource, or every series was
        /// missing (or too thin to judge), naming the services and rules.
        reason: String,
    },
    Reverted {
        change_id: String,
        agent: String,
        /// The service whose rule broke; empty for an operator's revert.
        service: String,
        /// The broken rule, e.g. `availability >= 0.999`; for an operator's revert,
        /// `reverted by NAME`.
        rule: String,
        /// The rule's value at the breach; `null` for missing data or an operator's revert.
        value: Option<f64>,
        /// When the breach was found, in ms since the Unix epoch.
        detected_at: i64,
        /// When the change was reverted, in ms since the Unix epoch.
        reverted_at: i64,
        /// Whether this revert opened the agent's breaker.
        breaker_opened: bool,
    },
    NeedsAttention {
        change_id: String,
        agent: String,
        /// Why the revert stopped: the resource moved on since the change (nothing was
        /// overwritten), or the provider failed.
        detail: String,
    },
}

pub(crate) struct Bake {
    pub change_id: String,
    pub action_id: String,
    pub agent: String,
    pub plan: Plan,
    pub snapshot: Snapshot,
    pub applied: Applied,
    pub baseline: Vec<BaselineEntry>,
    pub last: BTreeMap<String, Option<Counters>>,
    pub samples: BTreeMap<String, Vec<(i64, Sample)>>,
    pub started: i64,
    pub polls: u64,
    /// Each poll's judgement of each watched service, with its values (kept in the change
    /// record for the change's timeline; the newest `MAX_EVALUATIONS`).
    pub evaluations: Vec<serde_json::Value>,
    /// `[[slo]]` rules' values just before the change.
    pub query_baseline: Vec<QueryBaseline>,
    /// Polls with data so far, per service and `[[slo]]` rule.
    pub query_seen: BTreeMap<(String, String), u32>,
    /// The rules judged on data so far, as (service, rule) pairs: a bake that ends with
    /// none is `unjudged`, never `settled`.
    pub judged: BTreeSet<(String, String)>,
    /// Per service, why its rules were not judged in the polls that did not judge them.
    pub unjudged: BTreeMap<String, NotJudged>,
}

/// Why a service's rules were not judged, counted over a bake's polls.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NotJudged {
    /// Polls with every series of the service missing.
    pub missing: u32,
    /// Polls with data but fewer requests than `min_requests`; the most seen in one.
    pub too_few: u32,
    pub most_requests: f64,
}

/// One `[[slo]]` rule's value on one service just before a change.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct QueryBaseline {
    pub service: String,
    pub rule: String,
    pub value: Option<f64>,
}

/// Evaluations kept per change.
const MAX_EVALUATIONS: usize = 600;

impl Bake {
    #[expect(
        clippy::too_many_arguments,
        reason = "a bake is born from exactly these parts"
    )]
    pub fn new(
        change_id: String,
        action_id: String,
        agent: String,
        plan: Plan,
        snapshot: Snapshot,
        applied: Applied,
        baseline: Vec<BaselineEntry>,
        last: BTreeMap<String, Option<Counters>>,
        started: i64,
    ) -> Self {
        Self {
            change_id,
            action_id,
            agent,
            plan,
            snapshot,
            applied,
            baseline,
            last,
            samples: BTreeMap::new(),
            started,
            polls: 0,
            evaluations: Vec::new(),
            query_baseline: Vec::new(),
            query_seen: BTreeMap::new(),
            judged: BTreeSet::new(),
            unjudged: BTreeMap::new(),
        }
    }

    /// Why no rule of this bake was judged on data, naming the services and rules; `None`
    /// when some rule was.
    fn unjudged_reason(&self, cfg: &BakeConfig) -> Option<String> {
        if !self.judged.is_empty() {
            return None;
        }
        Some(match self.not_judged(cfg).as_slice() {
            [] => {
                let mut targets: Vec<String> = self
                    .plan
                    .diffs
                    .iter()
                    .map(|d| format!("`{}`", d.addr))
                    .collect();
                targets.dedup();
                if targets.is_empty() {
                    targets.push(format!("`{}`", self.plan.target));
                }
                format!(
                    "no signal watches {}: nothing could be judged",
                    targets.join(", ")
                )
            }
            services => format!(
                "no rule was judged on data in {} polls: {}",
                self.polls,
                services.join("; ")
            ),
        })
    }

    /// One line per watched service none of whose rules was judged on data.
    fn not_judged(&self, cfg: &BakeConfig) -> Vec<String> {
        let mut out = Vec::new();
        for service in &self.plan.blast.watch {
            if self.judged.iter().any(|(s, _)| s == service) {
                continue;
            }
            let mut rules: Vec<String> = cfg.rules().iter().map(SloRule::describe).collect();
            rules.extend(
                cfg.slo
                    .iter()
                    .filter(|r| r.applies(service))
                    .map(|r| r.name.clone()),
            );
            let n = self.unjudged.get(service).cloned().unwrap_or_default();
            let why = match (n.missing, n.too_few) {
                (0, 0) => "not polled".to_string(),
                (_, 0) => "every series missing".to_string(),
                (0, _) => format!(
                    "too few requests (at most {:.0} in a poll's window, judging from {:.0})",
                    n.most_requests, cfg.min_requests
                ),
                (m, t) => format!(
                    "series missing in {m} polls, too few requests (at most {:.0}, judging from {:.0}) in {t}",
                    n.most_requests, cfg.min_requests
                ),
            };
            out.push(format!("`{service}` ({}): {why}", rules.join(", ")));
        }
        out
    }
}

impl Bake {
    /// Rebuilds a bake from a stored change record (plan, snapshot, applied state and the
    /// baseline recorded before apply); `counters` are the signals' readings from now on.
    pub(crate) fn from_record(
        rec: &ChangeRecord,
        counters: BTreeMap<String, Option<Counters>>,
    ) -> Result<Self, String> {
        let field = |k: &str| rec.record.get(k).cloned().unwrap_or_default();
        let plan: Plan = serde_json::from_value(field("plan")).map_err(|e| format!("plan: {e}"))?;
        let snapshot: Snapshot =
            serde_json::from_value(field("snapshot")).map_err(|e| format!("snapshot: {e}"))?;
        let applied: Applied =
            serde_json::from_value(field("applied")).map_err(|e| format!("applied: {e}"))?;
        // A baseline that is not there was never recorded (no signals): nothing to judge
        // against. One that is there but does not parse would silently judge nothing and
        // settle the change: that is an error, and the change needs a person.
        let list = |k: &str| match rec.record.get(k) {
            None | Some(serde_json::Value::Null) => Ok(serde_json::Value::Array(Vec::new())),
            Some(v) => Ok::<_, String>(v.clone()),
        };
        let baseline: Vec<BaselineEntry> =
            serde_json::from_value(list("baseline")?).map_err(|e| format!("baseline: {e}"))?;
        let query_baseline: Vec<QueryBaseline> = serde_json::from_value(list("query_baseline")?)
            .map_err(|e| format!("query_baseline: {e}"))?;
        let mut bake = Bake::new(
            rec.id.clone(),
            rec.action_id.clone(),
            rec.agent.clone(),
            plan,
            snapshot,
            applied,
            baseline,
            counters,
            rec.created_at,
        );
        bake.query_baseline = query_baseline;
        Ok(bake)
    }
}

/// The `[[slo]]` rules' values on `watch`, recorded just before a change.
pub(crate) async fn query_baseline(gate: &Gate, watch: &[String]) -> Vec<QueryBaseline> {
    let mut out = Vec::new();
    for service in watch {
        for rule in gate.config.bake.slo.iter().filter(|r| r.applies(service)) {
            out.push(QueryBaseline {
                service: service.clone(),
                rule: rule.name.clone(),
                value: gate
                    .signals
                    .query(&rule.query_for(service))
                    .await
                    .ok()
                    .flatten(),
            });
        }
    }
    out
}

pub(crate) async fn baseline(gate: &Gate, watch: &[String]) -> Vec<BaselineEntry> {
    let mut out = Vec::new();
    for service in watch {
        let sample = gate
            .signals
            .recent(service, gate.config.bake.judge_window_s.max(60))
            .await
            .ok()
            .flatten();
        for rule in gate.config.bake.rules() {
            let value = sample.and_then(|s| rule_value(&rule, &[s]));
            out.push(BaselineEntry {
                service: service.clone(),
                passing: value.is_none_or(|v| rule.passes(v)),
                value,
                rule,
            });
        }
    }
    out
}

pub(crate) async fn read_counters(
    gate: &Gate,
    watch: &[String],
) -> BTreeMap<String, Option<Counters>> {
    let mut out = BTreeMap::new();
    for s in watch {
        out.insert(s.clone(), gate.signals.read(s).await.ok().flatten());
    }
    out
}

impl Gate {
    /// One poll of every baking and watched change: sample, judge, blame, settle or
    /// revert. Also expires holds past their timeout. Call it every poll interval (every
    /// tick in a scenario).
    ///
    /// Breaches are judged per service and blamed on evidence: of the changes that could
    /// explain a breach (on the breaching service itself or upstream of it, baking or
    /// still under watch after settling), only the most likely one is reverted, and the
    /// service gets a cooldown so the judge sees the effect before touching the next one.
    /// Changes that only add capacity are never blamed. A change whose revert met a
    /// conflict is retried each poll until the conflict is gone or its watch ends. A
    /// capacity cut under watch is reverted when the demand expected over the coming hours
    /// no longer fits the capacity it left.
    ///
    /// Each change is polled under its own slot, with no gate-wide lock: a signal source
    /// that hangs delays this poll, never a decision.
    pub async fn poll(&self) -> Result<Vec<BakeOutcome>, GateError> {
        let _one = self.polling.lock().await;
        self.expire_holds().await?;
        // Intents an apply or a revert left without an outcome (a failed write, a caller
        // that went away): what landed is baked from now on.
        match self.reconcile_if_needed().await {
            Ok(done) if !done.is_empty() => {
                self.resume().await?;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "reconciling open intents failed; trying again next poll")
            }
        }
        let now = self.clock.now();
        let cfg = self.config.bake.clone();
        let ids: Vec<String> = lock(&self.bakes).keys().cloned().collect();
        // Every change under judgement, checked out under its slot.
        let mut slots = Vec::new();
        let mut polled: Vec<Polled> = Vec::new();
        for id in ids {
            let slot = self.slots.take(&change_key(&id)).await;
            let Some((bake, watching, retry)) = self.check_out_entry(&id) else {
                continue;
            };
            slots.push(slot);
            polled.push(Polled {
                id,
                bake: Some(bake),
                watching,
                retry,
                breach: None,
                holding: false,
            });
        }
        let mut outcomes = Vec::new();
        // Judge: baking changes against their own baseline and samples; watched ones by
        // their services' recent health (one read per service per poll).
        let mut health: BTreeMap<String, Option<(String, Option<f64>)>> = BTreeMap::new();
        for p in &mut polled {
            let Some(bake) = p.bake.as_mut() else {
                continue;
            };
            if p.watching.is_none() {
                let (verdict, holding) = self.judge_bake(bake, now, &cfg).await;
                p.breach = verdict;
                p.holding = holding;
            } else {
                p.breach = self.watch_breach(bake, &mut health, &cfg).await;
            }
        }
        // Services whose breach is already attributed: their guilty change waits for a
        // conflict to clear, and the change in the way is not blamed for it.
        let attributed: BTreeSet<String> = polled
            .iter()
            .filter(|p| p.retry)
            .filter_map(|p| p.bake.as_ref())
            .flat_map(|b| b.plan.blast.watch.iter().cloned())
            .collect();
        // Retry reverts that met a conflict: the conflict may be gone.
        for p in polled.iter_mut().filter(|p| p.retry) {
            let Some(bake) = p.bake.take() else { continue };
            let watch = bake.plan.blast.watch.clone();
            if let Some(outcome) = self
                .revert_bake(
                    bake,
                    &p.id,
                    "retried after its conflict cleared",
                    "airlock",
                    None,
                    OnConflict::StillWaiting,
                )
                .await?
            {
                self.cool_down(&watch, now + cfg.blame_cooldown_s as i64 * 1000);
                outcomes.push(outcome);
            }
        }
        // Blame: per breaching service, the most likely change only.
        let mut breached: BTreeMap<String, (String, Option<f64>)> = BTreeMap::new();
        for p in &polled {
            if let (Some((service, rule, value)), Some(_)) = (&p.breach, &p.bake) {
                breached
                    .entry(service.clone())
                    .or_insert((rule.clone(), *value));
            }
        }
        // A breach explained upstream is not blamed on its own: when a change that reaches
        // this service changed another service that is breaching too, the cause is there.
        let explained: BTreeSet<String> = breached
            .keys()
            .filter(|service| {
                polled.iter().filter_map(|p| p.bake.as_ref()).any(|b| {
                    b.plan.blast.watch.contains(service)
                        && self.distance(&b.plan, service) > 0
                        && breached
                            .keys()
                            .any(|other| other != *service && self.distance(&b.plan, other) == 0)
                })
            })
            .cloned()
            .collect();
        for (service, (rule, value)) in breached {
            let cooling = lock(&self.blame_cooldown)
                .get(&service)
                .is_some_and(|until| now < *until);
            if cooling || attributed.contains(&service) || explained.contains(&service) {
                continue;
            }
            // Rank: baking before settled; a change that only adds capacity last (it
            // cannot cause errors or an overload, so it is blamed only when nothing else
            // could explain the breach); the service itself before its dependencies; the
            // most recent first.
            let mut candidates: Vec<(bool, bool, u8, i64, usize)> = polled
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let b = p.bake.as_ref()?;
                    let reaches = b.plan.blast.watch.contains(&service);
                    (reaches && !p.retry).then(|| {
                        (
                            p.watching.is_some(),
                            b.plan.only_adds_capacity() && value.is_some(),
                            self.distance(&b.plan, &service),
                            -b.started,
                            i,
                        )
                    })
                })
                .collect();
            candidates.sort();
            let Some(&(watching, _, distance, _, top)) = candidates.first() else {
                continue;
            };
            let cooldown = if watching {
                cfg.watch_alert_every_s
            } else {
                cfg.blame_cooldown_s
            };
            self.cool_down(std::slice::from_ref(&service), now + cooldown as i64 * 1000);
            let ranked: Vec<serde_json::Value> = candidates
                .iter()
                .filter_map(|(w, _, d, _, i)| {
                    let b = polled[*i].bake.as_ref()?;
                    Some(json!({"change_id": b.change_id, "agent": b.agent, "summary": b.plan.summary,
                                "applied_at": b.started, "same_resource": *d == 0, "settled": *w}))
                })
                .collect();
            let unambiguous = distance == 0 && candidates.iter().filter(|c| c.2 == 0).count() == 1;
            let Some(bake) = polled[top].bake.as_ref() else {
                continue;
            };
            let (agent, action_id, change_id) = (
                bake.agent.clone(),
                bake.action_id.clone(),
                bake.change_id.clone(),
            );
            if watching {
                // A regression after the bake: name the suspects; revert only on
                // unambiguous evidence, and only when configured to.
                let ev = NewEvent::new(
                    now,
                    EventKind::Suspects,
                    json!({"service": service, "rule": rule, "value": value, "suspects": ranked,
                           "unambiguous": unambiguous, "auto_revert": cfg.watch_revert && unambiguous}),
                )
                .agent(&agent)
                .action(&action_id)
                .change(&change_id);
                self.journal.append(ev).await?;
                if !(cfg.watch_revert && unambiguous) {
                    continue;
                }
            }
            let breach = NewEvent::new(
                now,
                EventKind::Breach,
                json!({"service": service, "rule": rule, "value": value, "detected_at": now,
                       "suspects": ranked, "after_settling": watching}),
            )
            .agent(&agent)
            .action(&action_id)
            .change(&change_id);
            self.journal.append(breach).await?;
            let reason = format!(
                "{} on `{service}`: {rule} (value {})",
                if watching {
                    "regression after settling"
                } else {
                    "bake breach"
                },
                value.map_or("missing".into(), |v| format!("{v:.4}"))
            );
            let Some(bake) = polled[top].bake.take() else {
                continue;
            };
            // Everything the reverted change reached waits too: its recovery shows there
            // first, and must not be blamed on another change meanwhile.
            self.cool_down(
                &bake.plan.blast.watch,
                now + cfg.blame_cooldown_s as i64 * 1000,
            );
            let id = polled[top].id.clone();
            if let Some(outcome) = self
                .revert_bake(
                    bake,
                    &id,
                    &reason,
                    "airlock",
                    Some((service.clone(), rule.clone(), value, now)),
                    OnConflict::Retry,
                )
                .await?
            {
                outcomes.push(outcome);
            }
        }
        // Capacity cuts whose premise expired: the demand expected over the coming hours
        // no longer fits. The newest cut of each resource goes first.
        if cfg.capacity_watch {
            outcomes.extend(self.capacity_watch(&mut polled, now).await?);
        }
        // Settle, keep watching, or let go.
        for p in polled {
            let Some(bake) = p.bake else { continue };
            let id = p.id;
            if let Some(until) = p.watching {
                if now >= until {
                    lock(&self.bakes).remove(&id);
                } else {
                    self.check_in(&id, bake);
                }
                continue;
            }
            let elapsed = now - bake.started;
            let window_over = elapsed >= cfg.window_s as i64 * 1000;
            let extension_over = elapsed >= (cfg.window_s + cfg.max_extension_s) as i64 * 1000;
            // A breach blamed on another change still holds this one's bake open.
            let holding = p.holding || p.breach.is_some();
            if window_over && (!holding || extension_over) {
                // Settled means judged on data and found healthy; a window that passed
                // without any rule judged is said as such, never as settled.
                let unjudged = bake.unjudged_reason(&cfg);
                let watched_until = (cfg.watch_s > 0).then(|| now + cfg.watch_s as i64 * 1000);
                let (status, ev) = match &unjudged {
                    Some(reason) => {
                        tracing::warn!(change = %id, agent = %bake.agent, %reason, "bake ended unjudged");
                        (
                            ChangeStatus::Unjudged,
                            NewEvent::new(
                                now,
                                EventKind::Unjudged,
                                json!({"polls": bake.polls, "reason": reason,
                                       "held_for_missing_data": p.holding, "watched_until": watched_until}),
                            ),
                        )
                    }
                    None => {
                        let not_judged = bake.not_judged(&cfg);
                        (
                            ChangeStatus::Settled,
                            NewEvent::new(
                                now,
                                EventKind::Settled,
                                json!({"polls": bake.polls, "held_for_missing_data": p.holding,
                                       "watched_until": watched_until,
                                       "not_judged": (!not_judged.is_empty()).then_some(not_judged)}),
                            ),
                        )
                    }
                };
                let rec = change_record(&self.config.redact, &bake, status, now);
                let ev = ev.agent(&bake.agent).action(&bake.action_id).change(&id);
                if let Err(e) = self.journal.put_change(rec, ev).await {
                    self.check_in(&id, bake);
                    return Err(e.into());
                }
                let agent = bake.agent.clone();
                if cfg.watch_s > 0 {
                    self.watch(&id, bake, now + cfg.watch_s as i64 * 1000, false);
                } else {
                    lock(&self.bakes).remove(&id);
                }
                outcomes.push(match unjudged {
                    Some(reason) => BakeOutcome::Unjudged {
                        change_id: id,
                        agent,
                        reason,
                    },
                    None => BakeOutcome::Settled {
                        change_id: id,
                        agent,
                    },
                });
            } else {
                self.check_in(&id, bake);
            }
        }
        drop(slots);
        Ok(outcomes)
    }

    /// No change is blamed for a breach of `services` until `until`.
    fn cool_down(&self, services: &[String], until: i64) {
        let mut cooldown = lock(&self.blame_cooldown);
        for s in services {
            let e = cooldown.entry(s.clone()).or_insert(until);
            *e = (*e).max(until);
        }
    }

    /// How far a plan's change is from `service`: 0 when it changed the service itself,
    /// 1 when the service is downstream of what it changed.
    fn distance(&self, plan: &Plan, service: &str) -> u8 {
        let provider = self.providers.get(&plan.provider);
        let direct = plan
            .diffs
            .iter()
            .filter(|d| d.before != d.after)
            .any(|d| provider.and_then(|p| p.signal_key(&d.addr)).as_deref() == Some(service));
        u8::from(!direct)
    }

    /// A watched (settled) change's breach: a watched service whose recent health fails a
    /// rule it passed before the change.
    async fn watch_breach(
        &self,
        bake: &Bake,
        health: &mut BTreeMap<String, Option<(String, Option<f64>)>>,
        cfg: &BakeConfig,
    ) -> Option<(String, String, Option<f64>)> {
        for service in &bake.plan.blast.watch {
            if !health.contains_key(service) {
                let sample = self
                    .signals
                    .recent(service, cfg.judge_window_s)
                    .await
                    .ok()
                    .flatten();
                let failing = sample
                    .filter(|s| s.requests.is_some_and(|r| r >= cfg.min_requests))
                    .and_then(|s| {
                        cfg.rules().into_iter().find_map(|r| {
                            let v = rule_value(&r, &[s])?;
                            (!r.passes(v)).then(|| (r.describe(), Some(v)))
                        })
                    });
                health.insert(service.clone(), failing);
            }
            let Some(Some((rule, value))) = health.get(service) else {
                continue;
            };
            // A rule already failing before the change is not this change's doing.
            let was_passing = bake
                .baseline
                .iter()
                .filter(|b| &b.service == service && b.rule.describe() == *rule)
                .all(|b| b.passing);
            if was_passing {
                return Some((service.clone(), rule.clone(), *value));
            }
        }
        None
    }

    /// Reverts the newest capacity cut of each resource whose capacity no longer covers
    /// the demand expected over the coming hours (the provider's own prediction). A cut
    /// the resource has moved on from (a later change) is no longer watched.
    async fn capacity_watch(
        &self,
        polled: &mut [Polled],
        now: i64,
    ) -> Result<Vec<BakeOutcome>, GateError> {
        let mut newest: BTreeMap<String, (i64, usize)> = BTreeMap::new();
        for (i, p) in polled.iter().enumerate() {
            let Some(b) = p.bake.as_ref() else { continue };
            if p.retry || b.plan.verb != Verb::Scale || b.plan.blast.capacity_delta_pct >= 0.0 {
                continue;
            }
            let key = b.plan.target.to_string();
            if newest.get(&key).is_none_or(|(t, _)| b.started > *t) {
                newest.insert(key, (b.started, i));
            }
        }
        let mut out = Vec::new();
        for (_, (_, i)) in newest {
            let Some(b) = polled[i].bake.as_ref() else {
                continue;
            };
            let Some(provider) = self.providers.get(&b.plan.provider).cloned() else {
                continue;
            };
            let Ok(Ok(Some((capacity, expected)))) = tokio::time::timeout(
                self.config.provider_timeout,
                provider.capacity(&b.plan.target),
            )
            .await
            else {
                continue;
            };
            if capacity >= expected {
                continue;
            }
            let reason = format!(
                "capacity watch: `{}` has {capacity:.0} rps of capacity for {expected:.0} rps of demand expected over the coming hours",
                b.plan.target
            );
            let id = polled[i].id.clone();
            let Some(bake) = polled[i].bake.take() else {
                continue;
            };
            let target = bake.plan.target.to_string();
            if let Some(o) = self
                .revert_bake(
                    bake,
                    &id,
                    &reason,
                    "airlock",
                    Some((
                        target,
                        "expected demand > capacity".into(),
                        Some(expected),
                        now,
                    )),
                    OnConflict::Superseded,
                )
                .await?
            {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// Puts a change back under watch (settled, or waiting to retry its revert).
    fn watch(&self, id: &str, bake: Bake, until: i64, retry: bool) {
        let agent = bake.agent.clone();
        let rollout = bake.plan.is_rollout();
        lock(&self.bakes).insert(
            id.to_string(),
            BakeEntry {
                agent,
                rollout,
                bake: Some(bake),
                watching: Some(until),
                retry,
            },
        );
    }

    /// Takes a change's bake out of the map with its phase (the caller holds its slot).
    fn check_out_entry(&self, id: &str) -> Option<(Bake, Option<i64>, bool)> {
        let mut bakes = lock(&self.bakes);
        let (watching, retry) = bakes.get(id).map(|e| (e.watching, e.retry))?;
        let bake = bakes.bake_mut(id)?.take()?;
        Some((bake, watching, retry))
    }

    /// Takes a baking change's bake out of the map (the caller holds its slot).
    fn check_out(&self, id: &str) -> Option<Bake> {
        lock(&self.bakes).bake_mut(id).and_then(Option::take)
    }

    /// Puts a bake back after a poll that neither settled nor reverted it.
    fn check_in(&self, id: &str, bake: Bake) {
        if let Some(slot) = lock(&self.bakes).bake_mut(id) {
            *slot = Some(bake);
        }
    }

    /// Samples and judges one change's watched services (signal I/O, no lock held).
    /// Returns the breach, if any, and whether a missing-data rule is holding the bake.
    async fn judge_bake(
        &self,
        bake: &mut Bake,
        now: i64,
        cfg: &BakeConfig,
    ) -> (Option<(String, String, Option<f64>)>, bool) {
        bake.polls += 1;
        let mut verdict: Option<(String, String, Option<f64>)> = None;
        let mut holding = false;
        for service in bake.plan.blast.watch.clone() {
            let reading = self.signals.read(&service).await.ok().flatten();
            let sample = match (reading, bake.last.get(&service).copied().flatten()) {
                (Some(now_c), Some(prev)) => now_c.since(&prev),
                (Some(_), None) => Sample {
                    requests: Some(0.0),
                    errors: Some(0.0),
                    p99_ms: None,
                },
                (None, _) => Sample {
                    requests: None,
                    errors: None,
                    p99_ms: None,
                },
            };
            if reading.is_some() {
                bake.last.insert(service.clone(), reading);
            }
            let list = bake.samples.entry(service.clone()).or_default();
            list.push((now, sample));
            let since = now - cfg.judge_window_s as i64 * 1000;
            list.retain(|(t, _)| *t > since);
            let window: Vec<Sample> = list.iter().map(|(_, s)| *s).collect();
            let judgement = judge(
                &service,
                &bake.baseline,
                &window,
                cfg.min_requests,
                cfg.missing,
            );
            let rules = cfg.rules();
            // A breach a scale-up inherited is recorded, not reverted.
            let inherited = matches!(judgement, Judgement::Breach { .. })
                && bake.plan.only_adds_capacity()
                && bake
                    .baseline
                    .iter()
                    .any(|b| b.service == service && !b.passing);
            let (name, detail) = match &judgement {
                Judgement::Breach { rule, .. } if inherited => (
                    "inherited",
                    Some(format!(
                        "{rule}: already failing before this capacity increase"
                    )),
                ),
                Judgement::Pass => ("pass", None),
                Judgement::Insufficient { detail } => ("insufficient", Some(detail.clone())),
                Judgement::Breach { rule, .. } => ("breach", Some(rule.clone())),
                Judgement::Hold { .. } => ("hold", Some("missing data".to_string())),
            };
            bake.evaluations.push(json!({
                "t": now, "service": service, "judgement": name,
                "requests": window.iter().any(|s| s.requests.is_some()).then(|| airlock_core::slo::request_count(&window)),
                "availability": rules.first().and_then(|r| rule_value(r, &window)),
                "p99_ms": rules.get(1).and_then(|r| rule_value(r, &window)),
                "detail": detail,
            }));
            if bake.evaluations.len() > MAX_EVALUATIONS {
                bake.evaluations.remove(0);
            }
            // What this poll judged on data, and why it judged nothing when it did not.
            match &judgement {
                Judgement::Pass | Judgement::Breach { .. } => {
                    for r in &rules {
                        if rule_value(r, &window).is_some() {
                            bake.judged.insert((service.clone(), r.describe()));
                        }
                    }
                }
                Judgement::Insufficient { .. } | Judgement::Hold { .. } => {
                    let n = bake.unjudged.entry(service.clone()).or_default();
                    if window.iter().any(|s| s.requests.is_some()) {
                        n.too_few += 1;
                        n.most_requests = n
                            .most_requests
                            .max(airlock_core::slo::request_count(&window));
                    } else {
                        n.missing += 1;
                    }
                }
            }
            match judgement {
                Judgement::Breach { .. } if inherited => {}
                Judgement::Breach {
                    service,
                    rule,
                    value,
                    ..
                } => {
                    verdict = Some((service, rule, value));
                    break;
                }
                Judgement::Hold { .. } => holding = true,
                Judgement::Pass | Judgement::Insufficient { .. } => {}
            }
        }
        if verdict.is_none() {
            'services: for service in bake.plan.blast.watch.clone() {
                for rule in cfg.slo.iter().filter(|r| r.applies(&service)) {
                    let value = self
                        .signals
                        .query(&rule.query_for(&service))
                        .await
                        .ok()
                        .flatten();
                    let key = (service.clone(), rule.name.clone());
                    let judgement = match value {
                        None => match rule.missing {
                            MissingData::Breach => "breach",
                            MissingData::Hold => "hold",
                            MissingData::Ignore => "insufficient",
                        },
                        Some(v) => {
                            let seen = bake.query_seen.entry(key).or_insert(0);
                            *seen += 1;
                            let base = bake
                                .query_baseline
                                .iter()
                                .find(|b| b.service == service && b.rule == rule.name)
                                .and_then(|b| b.value);
                            if *seen < rule.min_samples {
                                "insufficient"
                            } else if rule.passes(v) || !rule.blamed(v, base) {
                                "pass"
                            } else if bake.plan.only_adds_capacity()
                                && base.is_some_and(|b| !rule.passes(b))
                            {
                                "inherited"
                            } else {
                                "breach"
                            }
                        }
                    };
                    bake.evaluations.push(json!({
                        "t": now, "service": service, "rule": rule.name,
                        "value": value, "judgement": judgement,
                    }));
                    if value.is_some() && matches!(judgement, "pass" | "inherited" | "breach") {
                        bake.judged.insert((service.clone(), rule.name.clone()));
                    }
                    match judgement {
                        "breach" => {
                            let what = if value.is_none() {
                                format!("missing data: {}", rule.name)
                            } else {
                                rule.describe()
                            };
                            verdict = Some((service.clone(), what, value));
                            break 'services;
                        }
                        "hold" => holding = true,
                        _ => {}
                    }
                }
            }
            if bake.evaluations.len() > MAX_EVALUATIONS {
                let extra = bake.evaluations.len() - MAX_EVALUATIONS;
                bake.evaluations.drain(..extra);
            }
        }
        (verdict, holding)
    }

    /// Reverts a change that is still baking (or settled but remembered), by an operator.
    pub async fn revert(&self, change_id: &str, by: &str) -> Result<BakeOutcome, GateError> {
        let _slot = self.slots.take(&change_key(change_id)).await;
        let bake = match self.check_out(change_id) {
            Some(b) => b,
            None => self.revertible(change_id).await?,
        };
        self.revert_bake(
            bake,
            change_id,
            &format!("reverted by {by}"),
            by,
            None,
            OnConflict::NeedsAttention,
        )
        .await?
        .ok_or_else(|| GateError::Conflict(format!("change `{change_id}` was superseded")))
    }

    /// Restores a change's prior state and journals the outcome; the caller holds the
    /// change's slot and has taken its bake out.
    pub(crate) async fn revert_bake(
        &self,
        bake: Bake,
        change_id: &str,
        reason: &str,
        by: &str,
        breach: Option<(String, String, Option<f64>, i64)>,
        on_conflict: OnConflict,
    ) -> Result<Option<BakeOutcome>, GateError> {
        let Some(provider) = self.providers.get(&bake.plan.provider).cloned() else {
            let name = bake.plan.provider.clone();
            self.check_in(change_id, bake);
            return Err(GateError::UnknownProvider(name));
        };
        // Whatever the journal says next, the change is no longer baking here.
        let entry = lock(&self.bakes).remove(change_id);
        let watched_until = entry.as_ref().and_then(|e| e.watching);
        let retrying = entry.as_ref().is_some_and(|e| e.retry);
        // A retry, or a change a later one may have superseded, reverts only if the world is
        // still as the change left it: read first, so a change that stays in the way
        // journals nothing on each poll.
        if matches!(
            on_conflict,
            OnConflict::StillWaiting | OnConflict::Superseded
        ) && let Ok(Ok(Landing::Unknown(_))) = tokio::time::timeout(
            self.config.provider_timeout,
            provider.reconcile_restore(&bake.snapshot, &bake.applied),
        )
        .await
        {
            if on_conflict == OnConflict::StillWaiting {
                let until = watched_until.unwrap_or_else(|| self.clock.now());
                self.watch(change_id, bake, until, true);
            }
            return Ok(None);
        }
        // The intent, durable before the provider is called: a crash from here on leaves a
        // `reverting` change that is reconciled on start. Claimed first, so the reconciler
        // never takes it for one a crash left behind.
        let _in_flight = self.in_flight(change_id);
        let started = self.clock.now();
        let was = match self.journal.change(change_id).await {
            // A revert carried out after a restart: where it stood before that one began.
            Ok(Some(rec)) if rec.status.in_flight() => rec
                .record
                .get("reverting_from")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or(ChangeStatus::Baking),
            Ok(Some(rec)) => rec.status,
            _ => ChangeStatus::Baking,
        };
        let mut intent =
            change_record(&self.config.redact, &bake, ChangeStatus::Reverting, started);
        intent.record["reverting_from"] = json!(was);
        let ev = NewEvent::new(
            started,
            EventKind::Reverting,
            json!({"reason": reason, "by": by, "from": was}),
        )
        .agent(&bake.agent)
        .action(&bake.action_id)
        .change(change_id);
        if let Err(e) = self.journal.put_change(intent, ev).await {
            // Nothing was restored: the change stays as it was, under watch, and the revert
            // is tried again once the journal can be written.
            let until = watched_until.unwrap_or(started);
            match entry {
                Some(BakeEntry { watching: None, .. }) | None => {
                    let agent = bake.agent.clone();
                    let rollout = bake.plan.is_rollout();
                    lock(&self.bakes).insert(
                        change_id.to_string(),
                        BakeEntry {
                            agent,
                            rollout,
                            bake: Some(bake),
                            watching: None,
                            retry: false,
                        },
                    );
                }
                Some(_) => self.watch(change_id, bake, until, retrying),
            }
            return Err(e.into());
        }
        let mut result = match airlock_core::failpoint::provider_fault("gate.before_restore") {
            Some(e) => Err(e),
            None => match tokio::time::timeout(
                self.config.provider_timeout,
                provider.restore(&bake.snapshot, &bake.applied),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(ProviderError::Unavailable(
                    "the provider did not answer in time".into(),
                )),
            },
        };
        if let Some(e) = airlock_core::failpoint::provider_fault("gate.after_restore") {
            result = Err(e);
        }
        if let Err(e) = &result
            && !crate::engine::nothing_changed(e)
        {
            // The restore may have landed anyway: the world says.
            result = match tokio::time::timeout(
                self.config.provider_timeout,
                provider.reconcile_restore(&bake.snapshot, &bake.applied),
            )
            .await
            {
                Ok(Ok(Landing::Landed(entries))) => Ok(airlock_core::Restored {
                    provider: bake.plan.provider.clone(),
                    entries,
                }),
                Ok(Ok(Landing::Unknown(why))) => Err(ProviderError::Conflict {
                    addr: bake.plan.target.to_string(),
                    detail: format!(
                        "the restore failed ({e}) and the resource matches neither the change nor the state before it: {why}"
                    ),
                }),
                _ => result,
            };
        }
        let now = self.clock.now();
        match result {
            Ok(restored) => {
                let rec = change_record(&self.config.redact, &bake, ChangeStatus::Reverted, now);
                let ev = NewEvent::new(
                    now,
                    EventKind::Reverted,
                    json!({"reason": reason, "by": by, "restored": restored, "detected_at": breach.as_ref().map(|b| b.3), "reverted_at": now}),
                )
                .agent(&bake.agent)
                .action(&bake.action_id)
                .change(change_id);
                self.journal.put_change(rec, ev).await?;
                lock(&self.behaviour).reverted(&bake.agent, now);
                let (tripped, why) = {
                    let mut guards = lock(&self.guards);
                    let tripped = guards.record_revert(&bake.agent, now);
                    (
                        tripped,
                        guards.breaker(&bake.agent).unwrap_or("reverts").to_string(),
                    )
                };
                if tripped {
                    self.journal
                        .append(
                            NewEvent::new(
                                now,
                                EventKind::Breaker,
                                json!({"state": "open", "reason": why}),
                            )
                            .agent(&bake.agent),
                        )
                        .await?;
                }
                let (service, rule, value, detected_at) =
                    breach.unwrap_or((String::new(), reason.to_string(), None, now));
                Ok(Some(BakeOutcome::Reverted {
                    change_id: change_id.to_string(),
                    agent: bake.agent,
                    service,
                    rule,
                    value,
                    detected_at,
                    reverted_at: now,
                    breaker_opened: tripped,
                }))
            }
            Err(e) => {
                let conflict = matches!(e, ProviderError::Conflict { .. });
                let rec = change_record(
                    &self.config.redact,
                    &bake,
                    ChangeStatus::NeedsAttention,
                    now,
                );
                let kind = if conflict {
                    EventKind::NeedsAttention
                } else {
                    EventKind::RevertFailed
                };
                let ev =
                    NewEvent::new(now, kind, json!({"reason": reason, "error": e.to_string()}))
                        .agent(&bake.agent)
                        .action(&bake.action_id)
                        .change(change_id);
                self.journal.put_change(rec, ev).await?;
                let agent = bake.agent.clone();
                if conflict && matches!(on_conflict, OnConflict::Retry | OnConflict::StillWaiting) {
                    // Retried each poll until the conflict is gone or the watch ends.
                    let until = watched_until.unwrap_or(
                        now + (self.config.bake.watch_s.max(self.config.bake.window_s)) as i64
                            * 1000,
                    );
                    self.watch(change_id, bake, until, true);
                }
                Ok(Some(BakeOutcome::NeedsAttention {
                    change_id: change_id.to_string(),
                    agent,
                    detail: e.to_string(),
                }))
            }
        }
    }

    /// What reverting a change would do now, checked with its provider without changing
    /// anything: whether its resources are still as the change left them.
    pub async fn revert_check(&self, change_id: &str) -> Result<RevertCheck, GateError> {
        match self.revertible(change_id).await {
            Ok(bake) => self.check_restore(&bake.snapshot, &bake.applied).await,
            Err(GateError::Conflict(detail)) => Ok(RevertCheck::NotRevertible { detail }),
            Err(e) => Err(e),
        }
    }

    /// The bake of a change that can be reverted, from its record: `NotFound` for an unknown
    /// change, `Conflict` for one that is not `baking`, `settled` or `unjudged`.
    async fn revertible(&self, change_id: &str) -> Result<Bake, GateError> {
        let rec = self
            .journal
            .change(change_id)
            .await?
            .ok_or_else(|| GateError::NotFound("change", change_id.to_string()))?;
        if !rec.status.revertible() {
            return Err(GateError::Conflict(format!(
                "change `{change_id}` is {}; only applied changes can be reverted",
                rec.status
            )));
        }
        Bake::from_record(&rec, BTreeMap::new()).map_err(GateError::Invalid)
    }

    /// Whether restoring `snapshot` over resources expected as `applied` would land cleanly.
    async fn check_restore(
        &self,
        snapshot: &Snapshot,
        applied: &Applied,
    ) -> Result<RevertCheck, GateError> {
        if snapshot.entries.is_empty() {
            return Ok(RevertCheck::Clean {
                detail: "nothing left to check: the resources above are restored first".into(),
            });
        }
        let provider = self
            .providers
            .get(&snapshot.provider)
            .cloned()
            .ok_or_else(|| GateError::UnknownProvider(snapshot.provider.clone()))?;
        let answer = tokio::time::timeout(
            self.config.provider_timeout,
            provider.reconcile_restore(snapshot, applied),
        )
        .await;
        Ok(match answer {
            Ok(Ok(Landing::NotLanded)) => RevertCheck::Clean {
                detail: "its resources are as the change left them: the snapshot is restored"
                    .into(),
            },
            Ok(Ok(Landing::Landed(_))) => RevertCheck::Clean {
                detail: "its resources are already as they were before the change".into(),
            },
            Ok(Ok(Landing::Unknown(why))) => RevertCheck::Conflict {
                detail: format!("its resources moved on since the change: {why}"),
            },
            Ok(Err(e)) => RevertCheck::Conflict {
                detail: format!("the provider cannot tell: {e}"),
            },
            Err(_) => RevertCheck::Conflict {
                detail: "the provider did not answer in time".into(),
            },
        })
    }

    /// The changes [`Gate::undo`] would take on, newest first, each with what its revert
    /// would meet, changing nothing. A change on a resource that a newer change in the list
    /// also changed is checked against the state that newer change's revert restores (its
    /// snapshot), as the undo reverts newest first. Items after the first conflict are not
    /// reached: the undo stops there.
    pub async fn undo_preview(&self, agent: &str, since: i64) -> Result<Vec<UndoItem>, GateError> {
        let mut out = Vec::new();
        // What each resource will be once the newer changes above are reverted.
        let mut restored: BTreeMap<String, Option<serde_json::Value>> = BTreeMap::new();
        let mut stopped = false;
        for rec in self.undo_candidates(agent, since).await? {
            let bake = Bake::from_record(&rec, BTreeMap::new()).map_err(GateError::Invalid)?;
            let mut clash = None;
            let covered = |addr: &airlock_core::ResourceAddr| restored.get(&addr.to_string());
            for (addr, state) in &bake.applied.entries {
                if let Some(after) = covered(addr)
                    && after != state
                {
                    clash = Some(format!(
                        "{addr} will not be as this change left it once the newer changes are reverted"
                    ));
                }
            }
            let check = match clash {
                Some(detail) => RevertCheck::Conflict { detail },
                None => {
                    let open =
                        |entries: &[(airlock_core::ResourceAddr, Option<serde_json::Value>)]| {
                            entries
                                .iter()
                                .filter(|(a, _)| covered(a).is_none())
                                .cloned()
                                .collect::<Vec<_>>()
                        };
                    let snapshot = Snapshot {
                        provider: bake.snapshot.provider.clone(),
                        entries: open(&bake.snapshot.entries),
                    };
                    let applied = Applied {
                        provider: bake.applied.provider.clone(),
                        entries: open(&bake.applied.entries),
                    };
                    self.check_restore(&snapshot, &applied).await?
                }
            };
            let conflict = matches!(check, RevertCheck::Conflict { .. });
            if !stopped && !conflict {
                for (addr, state) in &bake.snapshot.entries {
                    restored.insert(addr.to_string(), state.clone());
                }
            }
            out.push(UndoItem {
                change_id: rec.id.clone(),
                action_id: rec.action_id.clone(),
                summary: bake.plan.summary.clone(),
                target: bake.plan.target.to_string(),
                applied_at: rec.created_at,
                status: rec.status,
                reached: !stopped,
                check,
            });
            stopped |= conflict;
        }
        Ok(out)
    }

    /// An agent's revertible changes applied since `since`, newest first.
    async fn undo_candidates(
        &self,
        agent: &str,
        since: i64,
    ) -> Result<Vec<ChangeRecord>, GateError> {
        let mut out = Vec::new();
        let mut after = None;
        // Newest first, page by page, until the events are older than `since`.
        'pages: loop {
            let page = self
                .journal
                .read(airlock_store::EventQuery {
                    kind: Some(EventKind::Applied),
                    agent: Some(agent.to_string()),
                    descending: true,
                    after_seq: after,
                    limit: Some(500),
                    ..Default::default()
                })
                .await?;
            let full = page.len() == 500;
            after = page.last().map(|e| e.seq);
            for ev in page {
                if ev.ts < since {
                    break 'pages;
                }
                let Some(cid) = ev.change_id else { continue };
                if let Some(rec) = self.journal.change(&cid).await?
                    && rec.status.revertible()
                {
                    out.push(rec);
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Reverts an agent's changes applied since `since`, newest first; stops at the first
    /// conflict and reports it. Nothing is overwritten.
    pub async fn undo(
        &self,
        agent: &str,
        since: i64,
        by: &str,
    ) -> Result<Vec<BakeOutcome>, GateError> {
        let mut out = Vec::new();
        for rec in self.undo_candidates(agent, since).await? {
            let cid = rec.id;
            let outcome = self.revert(&cid, by).await?;
            let stop = matches!(outcome, BakeOutcome::NeedsAttention { .. });
            out.push(outcome);
            if stop {
                break;
            }
        }
        Ok(out)
    }

    /// Picks up the changes the journal says are still baking (after a restart): each is
    /// watched again from now until the end of its window, against the baseline recorded
    /// before it was applied. Returns how many were resumed.
    pub async fn resume(&self) -> Result<usize, GateError> {
        // Intents a crash left without an outcome first: what landed is baked below.
        self.reconcile().await?;
        let records = self
            .journal
            .changes_with_status(ChangeStatus::Baking)
            .await?;
        let mut resumed = 0;
        for rec in records {
            // Another live replica's bake is its own to judge (see `adopt`).
            if lock(&self.bakes).contains_key(&rec.id) || !self.owns(&rec) {
                continue;
            }
            let mut bake = match Bake::from_record(&rec, BTreeMap::new()) {
                Ok(b) => b,
                Err(why) => {
                    tracing::error!(change = %rec.id, error = %why, "a baking change's record does not parse; marking it needs_attention");
                    let now = self.clock.now();
                    let mut failed = rec.clone();
                    failed.status = ChangeStatus::NeedsAttention;
                    failed.updated_at = now;
                    let ev = NewEvent::new(
                    now,
                    EventKind::NeedsAttention,
                    json!({"reason": format!("the change's record could not be read after a restart ({why}): it was never judged")}),
                )
                .agent(&rec.agent)
                .action(&rec.action_id)
                .change(&rec.id);
                    self.journal.put_change(failed, ev).await?;
                    continue;
                }
            };
            bake.last = read_counters(self, &bake.plan.blast.watch).await;
            let plan = bake.plan.clone();
            {
                let mut bakes = lock(&self.bakes);
                if bakes.contains_key(&rec.id) {
                    continue;
                }
                bakes.insert(
                    rec.id.clone(),
                    BakeEntry {
                        agent: rec.agent.clone(),
                        rollout: plan.is_rollout(),
                        bake: Some(bake),
                        watching: None,
                        retry: false,
                    },
                );
            }
            lock(&self.guards).record_applied(&rec.agent, &plan, rec.created_at);
            resumed += 1;
        }
        Ok(resumed)
    }

    /// Restores what an operator set before a restart — the kill switch and open breakers —
    /// and closes holds that nobody can answer any more (those `restore_holds` did not put
    /// back: older than every hold timeout): each is journaled as expired, so its action
    /// does not stay held forever.
    /// Returns (breakers reopened, holds expired).
    pub async fn restore_controls(&self) -> Result<(usize, usize), GateError> {
        use airlock_store::EventQuery;
        let now = self.clock.now();
        let last_switch = self
            .journal
            .read(EventQuery {
                kind: Some(EventKind::Killswitch),
                limit: Some(1),
                descending: true,
                ..Default::default()
            })
            .await?;
        let switch_on = last_switch
            .first()
            .and_then(|e| e.payload.get("on"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let breakers = self
            .journal
            .read(EventQuery {
                kind: Some(EventKind::Breaker),
                ..Default::default()
            })
            .await?;
        let mut open: BTreeMap<String, Option<String>> = BTreeMap::new();
        for ev in &breakers {
            let Some(agent) = &ev.agent else { continue };
            let reason = ev
                .payload
                .get("reason")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("breaker")
                .to_string();
            let state = ev.payload.get("state").and_then(serde_json::Value::as_str);
            open.insert(agent.clone(), (state == Some("open")).then_some(reason));
        }
        let verdicts = self
            .journal
            .read(EventQuery {
                kind: Some(EventKind::Verdict),
                ..Default::default()
            })
            .await?;
        let approvals = self
            .journal
            .read(EventQuery {
                kind: Some(EventKind::Approval),
                ..Default::default()
            })
            .await?;
        let answered: std::collections::BTreeSet<String> = approvals
            .iter()
            .filter(|e| {
                e.payload
                    .get("outcome")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|o| !o.starts_with("recorded"))
            })
            .filter_map(|e| {
                e.payload
                    .get("approval_id")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        let mut reopened = 0;
        {
            let mut guards = lock(&self.guards);
            guards.set_killswitch(switch_on);
            for (agent, why) in open {
                if let Some(why) = why {
                    guards.open_breaker(&agent, &why);
                    reopened += 1;
                }
            }
        }
        let mut expired = 0;
        for v in &verdicts {
            let Some(aid) = v
                .payload
                .get("approval_id")
                .and_then(serde_json::Value::as_str)
            else {
                continue;
            };
            if answered.contains(aid) || lock(&self.approvals).contains_key(aid) {
                continue;
            }
            let mut ev = NewEvent::new(
                now,
                EventKind::Approval,
                json!({"approval_id": aid, "decision": "deny", "by": "restart", "outcome": "expired", "reason": "the server restarted; submit the action again"}),
            );
            ev.agent = v.agent.clone();
            ev.action_id = v.action_id.clone();
            self.journal.append(ev).await?;
            expired += 1;
        }
        Ok((reopened, expired))
    }

    /// Changes currently baking (not those settled and still under watch).
    pub async fn baking(&self) -> usize {
        lock(&self.bakes)
            .values()
            .filter(|e| e.watching.is_none())
            .count()
    }

    /// Changes settled and still under watch, or waiting to retry a conflicted revert.
    pub async fn watched(&self) -> usize {
        lock(&self.bakes)
            .values()
            .filter(|e| e.watching.is_some())
            .count()
    }
}

/// One change under judgement in a poll.
struct Polled {
    id: String,
    /// `None` once reverted in this poll.
    bake: Option<Bake>,
    /// Until when a settled change stays under watch; `None` while it bakes.
    watching: Option<i64>,
    /// Its revert met a conflict and is retried.
    retry: bool,
    breach: Option<(String, String, Option<f64>)>,
    holding: bool,
}

/// What reverting a change would meet now.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RevertCheck {
    /// The revert would restore the snapshot (or find it already restored).
    Clean { detail: String },
    /// The resources moved on since the change, or the provider cannot tell: the revert
    /// would stop and mark the change `needs_attention`, overwriting nothing.
    Conflict { detail: String },
    /// The change is not `baking`, `settled` or `unjudged`.
    NotRevertible { detail: String },
}

impl RevertCheck {
    /// The line for people.
    pub fn detail(&self) -> &str {
        match self {
            RevertCheck::Clean { detail }
            | RevertCheck::Conflict { detail }
            | RevertCheck::NotRevertible { detail } => detail,
        }
    }
}

/// One change an undo would take on.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UndoItem {
    pub change_id: String,
    pub action_id: String,
    /// The change's plan, in one line.
    pub summary: String,
    /// The change's target address.
    pub target: String,
    /// When it was applied, in ms since the Unix epoch.
    pub applied_at: i64,
    pub status: ChangeStatus,
    /// Whether the undo gets to it: it stops at the first conflict.
    pub reached: bool,
    /// What its revert would meet.
    pub check: RevertCheck,
}

/// What a revert does when the resource moved on since the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// Journal `needs_attention` and stop.
    NeedsAttention,
    /// Journal `needs_attention` and retry each poll until the conflict is gone.
    Retry,
    /// The change was superseded: stop watching it, journal nothing.
    Superseded,
    /// A retry of a revert that met a conflict before: if it still fails, keep waiting
    /// quietly (its `needs_attention` is already journaled).
    StillWaiting,
}

fn change_record(
    redactor: &crate::Redactor,
    bake: &Bake,
    status: ChangeStatus,
    now: i64,
) -> ChangeRecord {
    ChangeRecord {
        id: bake.change_id.clone(),
        action_id: bake.action_id.clone(),
        agent: bake.agent.clone(),
        status,
        record: redactor.redact(
            &json!({"plan": bake.plan, "snapshot": bake.snapshot, "applied": bake.applied, "baseline": bake.baseline,
                    "query_baseline": bake.query_baseline, "evaluations": bake.evaluations}),
        ),
        created_at: bake.started,
        updated_at: now,
    }
}
