//! Replicas: several gates sharing one store. Each keeps its state in memory for speed and
//! follows what the others journal ([`Gate::sync`]): the kill switch, breakers and freezes,
//! what each verdict spent of the guards, holds and their answers. A decision that must see
//! every other one (the last of a budget, a switch just turned on) runs under the store's
//! shared lock after catching up ([`Gate::exclusive`]), so it is exact across replicas.
//! With an embedded store there is one process, and none of this runs.

use crate::engine::{Gate, GateError, lock};
use crate::feed::Notifying;
use airlock_core::{ChangeStatus, Event, EventKind, NewEvent, Spend};
use airlock_store::{ChangeRecord, SharedLock};
use serde_json::json;
use std::sync::Arc;

/// The shared lock every decision and approval answer runs under.
const DECIDE_LOCK: &str = "gate:decide";

/// The shared lock that is a replica's lease: held while it lives.
fn lease_key(name: &str) -> String {
    format!("gate:replica:{name}")
}

/// A decision's hold on the shared lock: this process's turn, then the store's lock.
pub(crate) struct Exclusive {
    _local: tokio::sync::OwnedMutexGuard<()>,
    remote: Option<Box<dyn SharedLock>>,
}

impl Exclusive {
    /// Lets the next decision in, here and on the other replicas.
    pub(crate) async fn release(mut self) {
        if let Some(remote) = self.remote.take() {
            remote.release().await;
        }
    }
}

/// What a foreign verdict spent, kept until its change lands or fails.
#[derive(Debug, Clone)]
pub(crate) struct ForeignSpend {
    agent: String,
    spend: Spend,
    at: i64,
}

impl Gate {
    /// Follows `feed`, a journal that other replicas write too: from now on
    /// [`Gate::sync`] reads their events, and decisions run under the shared lock.
    ///
    /// The replica takes a name and a lease on it (a shared lock held while the process
    /// lives): every change it applies is stamped with its name, and another replica takes
    /// a change over only once that lease is gone ([`Gate::adopt`]).
    pub async fn follow(&self, feed: Arc<Notifying>) -> Result<(), GateError> {
        feed.start_following().await?;
        let name = format!("rep_{}", self.new_id("r"));
        if let Some(lease) = self.journal.lock_shared(&lease_key(&name)).await? {
            *lock(&self.lease) = Some((name.clone(), lease));
            self.tracked.set_owner(&name);
            tracing::info!(replica = %name, "holding this replica's lease");
        }
        let _ = self.follower.set(feed);
        Ok(())
    }

    /// This replica's name, when it follows a shared store.
    pub fn replica_name(&self) -> Option<String> {
        lock(&self.lease).as_ref().map(|(n, _)| n.clone())
    }

    /// Whether `rec` is this process's to judge: always without replicas; with them, when
    /// it carries this replica's name or none.
    pub(crate) fn owns(&self, rec: &ChangeRecord) -> bool {
        match (self.replica_name(), rec.record["owner"].as_str()) {
            (Some(me), Some(owner)) => owner == me,
            _ => true,
        }
    }

    /// Takes over the changes of replicas that stopped: each baking change or unfinished
    /// apply or revert whose replica's lease is gone is stamped with this replica's name
    /// under the shared lock (so exactly one replica takes it, journaled as `takeover`),
    /// then resumed here like after a restart: its bake goes on, its intent is reconciled.
    /// Returns how many it took.
    pub async fn adopt(&self) -> Result<usize, GateError> {
        let Some(me) = self.replica_name() else {
            return Ok(0);
        };
        let mut orphans = Vec::new();
        let mut alive: std::collections::BTreeMap<String, bool> = Default::default();
        for status in [
            ChangeStatus::Baking,
            ChangeStatus::Applying,
            ChangeStatus::Reverting,
        ] {
            for rec in self.journal.changes_with_status(status).await? {
                let Some(owner) = rec.record["owner"].as_str().map(str::to_string) else {
                    continue;
                };
                if owner == me {
                    continue;
                }
                let live = match alive.get(&owner) {
                    Some(l) => *l,
                    None => {
                        let l = self
                            .journal
                            .lock_is_held(&lease_key(&owner))
                            .await?
                            .unwrap_or(true);
                        alive.insert(owner.clone(), l);
                        l
                    }
                };
                if !live {
                    orphans.push((rec.id, owner));
                }
            }
        }
        if orphans.is_empty() {
            return Ok(0);
        }
        let mut taken = 0;
        for (id, from) in orphans {
            let Some(held) = self.exclusive().await? else {
                return Ok(taken);
            };
            // Read again under the lock: another replica may have taken it meanwhile.
            let current = self.journal.change(&id).await;
            let result = match current {
                Ok(Some(rec))
                    if rec.record["owner"].as_str() == Some(from.as_str())
                        && matches!(
                            rec.status,
                            ChangeStatus::Baking | ChangeStatus::Applying | ChangeStatus::Reverting
                        ) =>
                {
                    let now = self.clock.now();
                    let ev = NewEvent::new(
                        now,
                        EventKind::Takeover,
                        json!({"owner": me, "from": from, "status": rec.status.as_str(),
                               "reason": format!("replica {from} stopped: its lease is gone")}),
                    )
                    .agent(&rec.agent)
                    .action(&rec.action_id)
                    .change(&rec.id);
                    let mut next = rec;
                    next.updated_at = now;
                    self.journal.put_change(next, ev).await.map(|_| true)
                }
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            held.release().await;
            if result? {
                tracing::warn!(change = %id, from = %from, "took over a change of a replica that stopped");
                taken += 1;
            }
        }
        if taken > 0 {
            self.intents_to_check
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.resume().await?;
        }
        Ok(taken)
    }

    /// Whether this gate shares its store with other replicas.
    pub fn is_replica(&self) -> bool {
        self.follower.get().is_some()
    }

    /// Reads what the other replicas journaled since the last call and brings this gate's
    /// state up to it; returns how many of their events it read. Nothing to do for a gate
    /// that follows no shared store.
    pub async fn sync(&self) -> Result<usize, GateError> {
        let Some(feed) = self.follower.get() else {
            return Ok(0);
        };
        let _one = self.syncing.lock().await;
        let events = feed.catch_up().await?;
        let mut holds_changed = false;
        for ev in &events {
            holds_changed |= self.apply_foreign(ev);
        }
        if holds_changed {
            self.read_back_holds(false).await?;
        }
        Ok(events.len())
    }

    /// Takes the shared lock (when replicas share the store) and catches up with the
    /// others, so what is decided next sees everything decided before it anywhere.
    pub(crate) async fn exclusive(&self) -> Result<Option<Exclusive>, GateError> {
        if !self.is_replica() {
            return Ok(None);
        }
        let local = self.exclusive.clone().lock_owned().await;
        let remote = self.journal.lock_shared(DECIDE_LOCK).await?;
        let held = Exclusive {
            _local: local,
            remote,
        };
        if let Err(e) = self.sync().await {
            held.release().await;
            return Err(e);
        }
        Ok(Some(held))
    }

    /// Reads back the anomaly model's history from the journal (after a restart): every
    /// mutation it scored, every block, revert and release within its history, in order.
    /// Returns how many events it replayed.
    pub async fn restore_behaviour(&self) -> Result<usize, GateError> {
        let cfg = lock(&self.behaviour).config().clone();
        if !cfg.enabled {
            return Ok(0);
        }
        let horizon = (cfg.history_s + cfg.window_s) as i64 * 1000;
        let since = self.clock.now() - horizon;
        let mut events = Vec::new();
        for kind in [EventKind::Verdict, EventKind::Reverted, EventKind::Breaker] {
            events.extend(self.recent(kind, since).await?);
        }
        events.sort_by_key(|e| e.seq);
        for ev in &events {
            self.apply_behaviour(ev);
        }
        Ok(events.len())
    }

    /// What an event tells the anomaly model: a scored mutation and whether it was
    /// blocked (`verdict`), a revert, an operator's release (a breaker reset).
    fn apply_behaviour(&self, ev: &Event) {
        let Some(agent) = ev.agent.as_deref() else {
            return;
        };
        let p = &ev.payload;
        let mut behaviour = lock(&self.behaviour);
        match ev.kind {
            EventKind::Verdict => {
                if let Ok(sample) =
                    serde_json::from_value::<crate::behaviour::Sample>(p["behaviour"].clone())
                {
                    behaviour.record_sample(agent, &sample, ev.ts);
                    behaviour.score(agent, ev.ts);
                }
                if p["blocked"].as_bool().unwrap_or(false) {
                    behaviour.blocked(agent, ev.ts);
                }
            }
            EventKind::Reverted => behaviour.reverted(agent, ev.ts),
            EventKind::Breaker if p["state"] == "reset" => behaviour.forgive(agent, ev.ts),
            _ => {}
        }
    }

    /// Applies one event another replica journaled; returns whether holds may have
    /// changed (a new one to read back).
    fn apply_foreign(&self, ev: &Event) -> bool {
        self.apply_behaviour(ev);
        let p = &ev.payload;
        let agent = ev.agent.as_deref();
        match ev.kind {
            EventKind::Killswitch => {
                let on = p["on"].as_bool().unwrap_or(false);
                lock(&self.guards).set_killswitch(on);
            }
            EventKind::Breaker => {
                if let Some(agent) = agent {
                    let mut guards = lock(&self.guards);
                    if p["state"] == "open" {
                        let why = p["reason"].as_str().unwrap_or("breaker");
                        guards.open_breaker(agent, why);
                    } else {
                        guards.reset_breaker(agent);
                    }
                }
            }
            EventKind::Verdict => {
                if let (Some(agent), Ok(spend)) =
                    (agent, serde_json::from_value::<Spend>(p["spend"].clone()))
                {
                    let mut guards = lock(&self.guards);
                    if p["counted"].as_bool().unwrap_or(false) {
                        guards.record_submission_of(agent, &spend, ev.ts);
                    }
                    if p["spent"].as_bool().unwrap_or(false) {
                        guards.record_applied_of(agent, &spend, ev.ts);
                        if let Some(action) = &ev.action_id {
                            let mut spends = lock(&self.foreign_spends);
                            let window = i64::try_from(guards.config_of(agent).budget_window_s)
                                .unwrap_or(i64::MAX / 2000)
                                * 1000;
                            spends.retain(|_, s| s.at >= ev.ts - window);
                            spends.insert(
                                action.clone(),
                                ForeignSpend {
                                    agent: agent.to_string(),
                                    spend,
                                    at: ev.ts,
                                },
                            );
                        }
                    }
                }
                return p["verdict"] == "hold";
            }
            EventKind::ApplyFailed => {
                let spent = ev
                    .action_id
                    .as_ref()
                    .and_then(|a| lock(&self.foreign_spends).remove(a));
                if let Some(s) = spent {
                    lock(&self.guards).release_applied_of(&s.agent, &s.spend, s.at);
                }
            }
            EventKind::Reverted => {
                if let Some(agent) = agent {
                    lock(&self.guards).record_revert(agent, ev.ts);
                }
            }
            EventKind::Approval => {
                let Some(id) = p["approval_id"].as_str() else {
                    return false;
                };
                let outcome = p["outcome"].as_str().unwrap_or_default();
                let mut approvals = lock(&self.approvals);
                if outcome.starts_with("recorded:") {
                    if let (Some(pending), Some(by)) = (approvals.get_mut(id), p["by"].as_str())
                        && !pending.approvers.iter().any(|a| a == by)
                    {
                        pending.approvers.push(by.to_string());
                    }
                } else {
                    approvals.remove(id);
                }
            }
            _ => {}
        }
        false
    }
}
