//! `aws-cli`: the `aws` provider's plans for commands a coding agent runs itself.
//!
//! When the hook sees an `aws` CLI command it can map (`airlock_shell::awscli`), it asks
//! this provider, which plans against the real state exactly as `aws` does, but carries
//! nothing out: "applied" means handed back to the agent, whose own command does it. An
//! operator's approval is then a one-shot permit for that command (`hands_off`).

use crate::provider::AwsProvider;
use airlock_core::ResourceAddr;
use airlock_core::action::ActionRequest;
use airlock_core::plan::{Applied, Plan, Restored, Snapshot};
use airlock_core::provider::{Provider, ProviderError, VerbSpec};
use async_trait::async_trait;
use std::sync::Arc;

/// The hands-off twin of an `aws` provider, named `NAME-cli`.
pub struct CliMirror {
    inner: Arc<AwsProvider>,
    name: String,
}

impl CliMirror {
    pub fn new(inner: Arc<AwsProvider>) -> Self {
        let name = format!("{}-cli", inner.name());
        Self { inner, name }
    }
}

#[async_trait]
impl Provider for CliMirror {
    fn name(&self) -> &str {
        &self.name
    }
    fn verbs(&self) -> &[VerbSpec] {
        self.inner.verbs()
    }
    fn signal_key(&self, addr: &ResourceAddr) -> Option<String> {
        self.inner.signal_key(addr)
    }
    fn hands_off(&self) -> bool {
        true
    }
    async fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError> {
        let mut plan = self.inner.plan(req).await?;
        plan.provider = self.name.clone();
        // The agent's own command carries it out: nothing Airlock holds can undo it.
        plan.reversible = false;
        Ok(plan.seal())
    }
    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        let mut s = self.inner.snapshot(targets).await?;
        s.provider = self.name.clone();
        Ok(s)
    }
    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        Ok(Applied {
            provider: self.name.clone(),
            entries: plan
                .diffs
                .iter()
                .map(|d| (d.addr.clone(), d.after.clone()))
                .collect(),
        })
    }
    async fn restore(&self, snap: &Snapshot, _expect: &Applied) -> Result<Restored, ProviderError> {
        Err(ProviderError::Unsupported {
            provider: self.name.clone(),
            verb: "restore".into(),
            target: snap
                .entries
                .first()
                .map_or_else(String::new, |(a, _)| a.to_string()),
        })
    }
}
