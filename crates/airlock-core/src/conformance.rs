//! The contract every provider meets, as checks its tests run against a real instance.
//!
//! The gate's crash safety rests on it: `plan` and `snapshot` change nothing; an error that
//! says nothing changed (`Conflict`) really changed nothing; and after a crash the provider
//! can tell whether a change or a revert is in the world (`reconcile_apply`,
//! `reconcile_restore`) by reading its resources back, not by remembering.
//!
//! A provider's test calls [`check`] with two different mutations of the same resource.

use crate::action::ActionRequest;
use crate::plan::{Applied, Snapshot};
use crate::provider::{Landing, Provider, ProviderError};

/// Two different mutations of one resource: `change` is what the checks apply and revert;
/// `other` stands for someone else's change made in between.
pub struct Fixture {
    pub change: ActionRequest,
    pub other: ActionRequest,
}

fn fail(check: &str, why: impl std::fmt::Display) -> String {
    format!("{check}: {why}")
}

async fn state(p: &dyn Provider, snap: &Snapshot) -> Result<Snapshot, String> {
    let targets: Vec<_> = snap.entries.iter().map(|(a, _)| a.clone()).collect();
    p.snapshot(&targets)
        .await
        .map_err(|e| format!("snapshot: {e}"))
}

/// Runs every check in order; returns the names of those that passed, or the first
/// failure. The provider's resources end as they began when every check passes.
pub async fn check(p: &dyn Provider, f: &Fixture) -> Result<Vec<&'static str>, String> {
    let mut passed = Vec::new();

    let check = "plan changes nothing";
    let plan = p.plan(&f.change).await.map_err(|e| fail(check, e))?;
    let targets: Vec<_> = plan.diffs.iter().map(|d| d.addr.clone()).collect();
    if targets.is_empty() {
        return Err(fail(check, "the fixture's change has no diff"));
    }
    let before = p.snapshot(&targets).await.map_err(|e| fail(check, e))?;
    p.plan(&f.change).await.map_err(|e| fail(check, e))?;
    if state(p, &before).await? != before {
        return Err(fail(check, "the resources changed"));
    }
    passed.push(check);

    let check = "reconcile before apply: not landed";
    match p.reconcile_apply(&plan, &before).await {
        Ok(Landing::NotLanded) => passed.push(check),
        other => return Err(fail(check, format!("{other:?}"))),
    }

    let check = "apply, then reconcile: landed, as apply reported";
    let applied = p.apply(&plan).await.map_err(|e| fail(check, e))?;
    match p.reconcile_apply(&plan, &before).await {
        Ok(Landing::Landed(entries)) if entries == applied.entries => passed.push(check),
        other => return Err(fail(check, format!("{other:?} after {applied:?}"))),
    }

    let check = "reconcile a revert before it: not landed";
    match p.reconcile_restore(&before, &applied).await {
        Ok(Landing::NotLanded) => passed.push(check),
        other => return Err(fail(check, format!("{other:?}"))),
    }

    let check = "a stale plan conflicts and changes nothing";
    match p.apply(&plan).await {
        Err(ProviderError::Conflict { .. })
            if state(p, &before).await?.entries == applied.entries =>
        {
            passed.push(check)
        }
        Err(ProviderError::Conflict { .. }) => return Err(fail(check, "the resources changed")),
        // A plan whose `after` equals the state it lands on may be applied again: no harm.
        Ok(again) if again.entries == applied.entries => passed.push(check),
        other => return Err(fail(check, format!("{other:?}"))),
    }

    let check = "restore, then reconcile: landed";
    p.restore(&before, &applied)
        .await
        .map_err(|e| fail(check, e))?;
    match p.reconcile_restore(&before, &applied).await {
        Ok(Landing::Landed(_)) => passed.push(check),
        other => return Err(fail(check, format!("{other:?}"))),
    }
    let check = "after the revert, the change is not landed";
    match p.reconcile_apply(&plan, &before).await {
        Ok(Landing::NotLanded) => passed.push(check),
        other => return Err(fail(check, format!("{other:?}"))),
    }

    let check = "someone else's change: neither landed nor not, and restore refuses";
    let plan = p.plan(&f.change).await.map_err(|e| fail(check, e))?;
    let applied: Applied = p.apply(&plan).await.map_err(|e| fail(check, e))?;
    let other = p.plan(&f.other).await.map_err(|e| fail(check, e))?;
    let theirs = p.apply(&other).await.map_err(|e| fail(check, e))?;
    match p.reconcile_restore(&before, &applied).await {
        Ok(Landing::Unknown(_)) => {}
        other => return Err(fail(check, format!("{other:?}"))),
    }
    match p.reconcile_apply(&plan, &before).await {
        Ok(Landing::Unknown(_)) => {}
        other => return Err(fail(check, format!("apply: {other:?}"))),
    }
    match p.restore(&before, &applied).await {
        Err(ProviderError::Conflict { .. }) => {}
        other => return Err(fail(check, format!("restore: {other:?}"))),
    }
    if state(p, &before).await?.entries != theirs.entries {
        return Err(fail(check, "the refused restore changed the resources"));
    }
    passed.push(check);

    // Leave the resources as they began.
    p.restore(&before, &theirs)
        .await
        .map_err(|e| fail("clean up", e))?;
    Ok(passed)
}
