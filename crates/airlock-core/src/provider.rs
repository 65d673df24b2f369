//! The contract every adapter to a system that holds resources fulfils.

use crate::action::{ActionRequest, Verb};
use crate::addr::ResourceAddr;
use crate::plan::{Applied, Plan, Restored, Snapshot};
use async_trait::async_trait;
use serde::Serialize;

/// What the world shows for a change or a revert whose outcome the journal does not know:
/// the gate journaled its intent, called the provider, and then crashed, timed out or got an
/// error that does not prove nothing changed. The provider reads the resources back and
/// compares them with the state before and the state asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Landing {
    /// It is in the world: the resources are as it left them (their state now).
    Landed(Vec<(ResourceAddr, Option<serde_json::Value>)>),
    /// None of it is in the world: the resources are as they were before.
    NotLanded,
    /// The resources match neither (partly applied, or changed by someone since): a
    /// person must look.
    Unknown(String),
}

/// What a provider says about one of its verbs.
#[derive(Debug, Clone, Serialize)]
pub struct VerbSpec {
    pub verb: Verb,
    /// JSON Schema of the params object.
    pub params: serde_json::Value,
    pub destructive: bool,
    pub read_only: bool,
    pub description: &'static str,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("unknown resource `{0}`")]
    NotFound(String),
    #[error("provider `{provider}` does not support verb `{verb}` on `{target}`")]
    Unsupported {
        provider: String,
        verb: String,
        target: String,
    },
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    #[error("conflict on `{addr}`: {detail}")]
    Conflict { addr: String, detail: String },
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider could not be reached at all: nothing was sent, so nothing changed (an
    /// `Unavailable` may come after the request left, and then the world must be read back).
    #[error("provider unreachable, nothing was sent: {0}")]
    Unreachable(String),
    /// The system answered and refused the request (access denied, throttled, a rule of
    /// its own): it was not carried out, so nothing changed.
    #[error("refused: {0}")]
    Refused(String),
}

/// An adapter to a system that holds resources. `plan` is a pure dry run; `apply` and
/// `restore` mutate.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name, the first part of its addresses (`sim`).
    fn name(&self) -> &str;
    /// The verbs the provider supports.
    fn verbs(&self) -> &[VerbSpec];
    /// The health series that watches `addr`, by the key signal sources know it by (a
    /// service name), or `None` when no signal watches this provider's resources: the gate
    /// reads health only for resources that have one.
    fn signal_key(&self, addr: &ResourceAddr) -> Option<String> {
        let _ = addr;
        None
    }
    /// A resource's capacity now and the demand expected over the coming hours, both in
    /// requests per second, or `None` when the provider cannot tell: what the gate's
    /// capacity watch compares. Changes nothing.
    async fn capacity(&self, addr: &ResourceAddr) -> Result<Option<(f64, f64)>, ProviderError> {
        let _ = addr;
        Ok(None)
    }
    /// Whether `apply` only hands the action back to its caller to carry out (a coding
    /// agent's own commands and edits, decided by the hook): an operator's approval of such
    /// an action is then a one-shot permit for the caller's next identical request, since
    /// nobody but the caller can carry it out.
    fn hands_off(&self) -> bool {
        false
    }
    /// Dry run: diffs, blast radius, predicted facts, reversibility. Changes nothing.
    async fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError>;
    /// Records the prior state of `targets`.
    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError>;
    /// Applies a plan; fails with `Conflict` if the world no longer matches the plan's `before`.
    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError>;
    /// Puts a snapshot back; fails with `Conflict` if the state moved on since `expect`.
    async fn restore(&self, snap: &Snapshot, expect: &Applied) -> Result<Restored, ProviderError>;
    /// Whether `plan`, applied over the state recorded in `before`, is in the world now.
    /// Changes nothing. This is how the gate recovers a change whose outcome it could not
    /// journal; a provider that cannot read its resources back fails with `Unsupported`,
    /// and such a change is journaled `needs_attention` rather than guessed.
    async fn reconcile_apply(
        &self,
        plan: &Plan,
        before: &Snapshot,
    ) -> Result<Landing, ProviderError> {
        let _ = before;
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            verb: "reconcile".into(),
            target: plan.target.to_string(),
        })
    }
    /// Whether restoring `snap` over the state `applied` left is in the world now
    /// (`Landed`), not yet (`NotLanded`: the resources are as the change left them), or
    /// neither. Changes nothing; `Unsupported` when the provider cannot tell.
    async fn reconcile_restore(
        &self,
        snap: &Snapshot,
        applied: &Applied,
    ) -> Result<Landing, ProviderError> {
        let _ = applied;
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            verb: "reconcile".into(),
            target: snap
                .entries
                .first()
                .map_or_else(String::new, |(a, _)| a.to_string()),
        })
    }
}
