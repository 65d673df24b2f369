//! Recovery of write-ahead intents, the way databases recover their logs.
//!
//! Before a provider is called to apply or to restore, the gate journals the intent (a
//! change `applying` or `reverting`). A crash, a lost answer or a journal outage can leave
//! an intent without its outcome. Reconciling reads each such resource back through its
//! provider and journals what actually happened: the change landed (it is recorded as
//! applied and baked like any other), it did not (`apply_failed`), the revert landed
//! (`reverted`), it did not (the revert is carried out now, as intended), or the world
//! matches neither and a person must look (`needs_attention`). Nothing is guessed.

use crate::bake::{Bake, OnConflict};
use crate::engine::{Gate, GateError, lock};
use airlock_core::{Applied, ChangeStatus, EventKind, Landing, NewEvent, Plan, Snapshot};
use airlock_store::ChangeRecord;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// What reconciling one open intent found and journaled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reconciled {
    pub change_id: String,
    pub agent: String,
    /// The intent: `applying` or `reverting`.
    pub intent: ChangeStatus,
    /// Where the change stands now.
    pub status: ChangeStatus,
    /// One line for people.
    pub detail: String,
}

impl Gate {
    /// Journals what actually happened to every change whose intent has no outcome and
    /// that this process is not carrying out right now. Called on start (before bakes are
    /// resumed) and by each poll, so an intent left by a journal outage is closed once the
    /// journal can be written again.
    pub async fn reconcile(&self) -> Result<Vec<Reconciled>, GateError> {
        self.intents_to_check.store(false, Ordering::SeqCst);
        let found = self.reconcile_open().await;
        if found.is_err() {
            // Try again at the next poll.
            self.intents_to_check.store(true, Ordering::SeqCst);
        }
        found
    }

    /// `reconcile`, only when an apply or a revert ended since the last look (or a look
    /// failed): what each poll calls, so a quiet gate reads nothing.
    pub(crate) async fn reconcile_if_needed(&self) -> Result<Vec<Reconciled>, GateError> {
        if self.intents_to_check.load(Ordering::SeqCst) {
            self.reconcile().await
        } else {
            Ok(Vec::new())
        }
    }

    async fn reconcile_open(&self) -> Result<Vec<Reconciled>, GateError> {
        let mut open = self
            .journal
            .changes_with_status(ChangeStatus::Applying)
            .await?;
        open.extend(
            self.journal
                .changes_with_status(ChangeStatus::Reverting)
                .await?,
        );
        let mut out = Vec::new();
        for candidate in open {
            // Another live replica's intent is its own to finish (see `adopt`).
            if !self.owns(&candidate) {
                continue;
            }
            // Claim it; one that is in flight here belongs to its apply or revert.
            {
                let mut in_flight = lock(&self.in_flight);
                if !in_flight.insert(candidate.id.clone()) {
                    continue;
                }
            }
            let result = self.reconcile_one(&candidate.id).await;
            lock(&self.in_flight).remove(&candidate.id);
            if let Some(r) = result? {
                tracing::warn!(change = %r.change_id, intent = %r.intent, status = %r.status, detail = %r.detail, "reconciled an intent without an outcome");
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn reconcile_one(&self, id: &str) -> Result<Option<Reconciled>, GateError> {
        // Read again under the claim: it may have been closed since it was listed.
        let Some(rec) = self.journal.change(id).await? else {
            return Ok(None);
        };
        match rec.status {
            ChangeStatus::Applying => self.reconcile_apply(rec).await.map(Some),
            ChangeStatus::Reverting => self.reconcile_revert(rec).await,
            _ => Ok(None),
        }
    }

    async fn reconcile_apply(&self, mut rec: ChangeRecord) -> Result<Reconciled, GateError> {
        let now = self.clock.now();
        let field = |k: &str| rec.record.get(k).cloned().unwrap_or_default();
        let parsed = serde_json::from_value::<Plan>(field("plan"))
            .map_err(|e| format!("the intent's plan does not parse: {e}"))
            .and_then(|plan| {
                serde_json::from_value::<Snapshot>(field("snapshot"))
                    .map(|snap| (plan, snap))
                    .map_err(|e| format!("the intent's snapshot does not parse: {e}"))
            });
        let landing = match &parsed {
            Err(why) => Err(why.clone()),
            Ok((plan, snap)) => match self.providers.get(&plan.provider) {
                None => Err(format!("provider `{}` is not configured", plan.provider)),
                Some(p) => match tokio::time::timeout(
                    self.config.provider_timeout,
                    p.reconcile_apply(plan, snap),
                )
                .await
                {
                    Ok(Ok(l)) => Ok(l),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("the provider did not answer in time".into()),
                },
            },
        };
        let intent = ChangeStatus::Applying;
        let (status, kind, payload, detail) = match landing {
            Ok(Landing::Landed(entries)) => {
                let Ok((plan, _)) = &parsed else {
                    unreachable!("a landing needs a parsed plan")
                };
                rec.record["applied"] = json!(Applied {
                    provider: plan.provider.clone(),
                    entries,
                });
                let detail = "the change is in the world: recorded as applied and baked from now";
                (
                    ChangeStatus::Baking,
                    EventKind::Applied,
                    json!({"plan_hash": plan.hash, "summary": plan.summary, "watch": plan.blast.watch,
                           "bake_s": self.config.bake.window_s, "reconciled": true}),
                    detail.to_string(),
                )
            }
            Ok(Landing::NotLanded) => {
                let detail = "the change never reached the world: the resource is as before";
                (
                    ChangeStatus::Failed,
                    EventKind::ApplyFailed,
                    json!({"stage": "apply", "error": detail, "reconciled": true}),
                    detail.to_string(),
                )
            }
            Ok(Landing::Unknown(why)) => {
                let detail = format!(
                    "whether the change landed is unclear, the resource matches neither the state before nor the change: {why}"
                );
                (
                    ChangeStatus::NeedsAttention,
                    EventKind::NeedsAttention,
                    json!({"reason": detail, "reconciled": true}),
                    detail,
                )
            }
            Err(why) => {
                let detail = format!(
                    "whether the change landed cannot be read back: {why}; check the resource"
                );
                (
                    ChangeStatus::NeedsAttention,
                    EventKind::NeedsAttention,
                    json!({"reason": detail, "reconciled": true}),
                    detail,
                )
            }
        };
        let done = Reconciled {
            change_id: rec.id.clone(),
            agent: rec.agent.clone(),
            intent,
            status,
            detail,
        };
        let ev = NewEvent::new(now, kind, payload)
            .agent(&rec.agent)
            .action(&rec.action_id)
            .change(&rec.id);
        rec.status = status;
        rec.updated_at = now;
        self.journal.put_change(rec, ev).await?;
        Ok(done)
    }

    async fn reconcile_revert(&self, rec: ChangeRecord) -> Result<Option<Reconciled>, GateError> {
        let now = self.clock.now();
        let intent = ChangeStatus::Reverting;
        let bake = match Bake::from_record(&rec, BTreeMap::new()) {
            Ok(b) => b,
            Err(why) => {
                let detail = format!(
                    "a revert was under way and its record does not parse ({why}); check the resource"
                );
                return self
                    .close_as_needs_attention(rec, intent, detail, now)
                    .await
                    .map(Some);
            }
        };
        let landing = match self.providers.get(&bake.plan.provider) {
            None => Err(format!(
                "provider `{}` is not configured",
                bake.plan.provider
            )),
            Some(p) => match tokio::time::timeout(
                self.config.provider_timeout,
                p.reconcile_restore(&bake.snapshot, &bake.applied),
            )
            .await
            {
                Ok(Ok(l)) => Ok(l),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the provider did not answer in time".into()),
            },
        };
        match landing {
            Ok(Landing::Landed(entries)) => {
                let detail = "the revert had landed: the resource is as before the change";
                let mut done = rec.clone();
                done.status = ChangeStatus::Reverted;
                done.updated_at = now;
                let ev = NewEvent::new(
                    now,
                    EventKind::Reverted,
                    json!({"reason": format!("{detail} (reconciled)"), "by": "airlock",
                           "restored": {"provider": bake.plan.provider, "entries": entries},
                           "reverted_at": now, "reconciled": true}),
                )
                .agent(&rec.agent)
                .action(&rec.action_id)
                .change(&rec.id);
                self.journal.put_change(done, ev).await?;
                lock(&self.behaviour).reverted(&rec.agent, now);
                Ok(Some(Reconciled {
                    change_id: rec.id,
                    agent: rec.agent,
                    intent,
                    status: ChangeStatus::Reverted,
                    detail: detail.into(),
                }))
            }
            Ok(Landing::NotLanded) => {
                // The revert was decided and never happened: carry it out now, as intended.
                let id = rec.id.clone();
                let agent = rec.agent.clone();
                let outcome = self
                    .revert_bake(
                        bake,
                        &id,
                        "a revert interrupted by a restart, carried out after it",
                        "airlock",
                        None,
                        OnConflict::NeedsAttention,
                    )
                    .await?;
                let status = match outcome {
                    Some(crate::BakeOutcome::Reverted { .. }) => ChangeStatus::Reverted,
                    _ => ChangeStatus::NeedsAttention,
                };
                Ok(Some(Reconciled {
                    change_id: id,
                    agent,
                    intent,
                    status,
                    detail: "the revert had not landed: carried out now".into(),
                }))
            }
            Ok(Landing::Unknown(why)) => {
                let detail = format!(
                    "a revert was under way and the resource matches neither the change nor the state before it: {why}"
                );
                self.close_as_needs_attention(rec, intent, detail, now)
                    .await
                    .map(Some)
            }
            Err(why) => {
                let detail = format!(
                    "a revert was under way and whether it landed cannot be read back: {why}; check the resource"
                );
                self.close_as_needs_attention(rec, intent, detail, now)
                    .await
                    .map(Some)
            }
        }
    }

    async fn close_as_needs_attention(
        &self,
        mut rec: ChangeRecord,
        intent: ChangeStatus,
        detail: String,
        now: i64,
    ) -> Result<Reconciled, GateError> {
        let ev = NewEvent::new(
            now,
            EventKind::NeedsAttention,
            json!({"reason": detail, "reconciled": true}),
        )
        .agent(&rec.agent)
        .action(&rec.action_id)
        .change(&rec.id);
        rec.status = ChangeStatus::NeedsAttention;
        rec.updated_at = now;
        let done = Reconciled {
            change_id: rec.id.clone(),
            agent: rec.agent.clone(),
            intent,
            status: ChangeStatus::NeedsAttention,
            detail,
        };
        self.journal.put_change(rec, ev).await?;
        Ok(done)
    }
}
