//! The pure core of Airlock: domain types and resource addresses, risk assessment, Cedar
//! policy evaluation, guards, the verdict rule, the bake judge and the provider contract.
//!
//! Nothing in this crate opens a socket, a file or a database, and nothing reads the
//! wall clock: time comes from a [`Clock`], and engines wire the core to the world.

pub mod action;
pub mod addr;
pub mod clock;
pub mod conformance;
pub mod duration;
pub mod event;
pub mod failpoint;
pub mod guard;
pub mod plan;
pub mod policy;
pub mod provider;
pub mod registry;
pub mod risk;
pub mod slo;
pub mod status;
pub mod verdict;

pub use action::{ActionRequest, Verb};
pub use addr::{AddrError, ResourceAddr, addr_name};
pub use clock::{Clock, ManualClock, Timestamp};
pub use duration::Secs;
pub use event::{Event, EventKind, NewEvent};
pub use guard::{GuardConfig, Guards, Spend};
pub use plan::{
    Applied, Blast, Contained, Diff, Plan, Predicted, ResourceAttrs, Restored, Snapshot,
};
pub use policy::{PolicyEngine, PolicyError, PolicyInput, PolicyOutcome};
pub use provider::{Landing, Provider, ProviderError, VerbSpec};
pub use risk::{AgentStats, Assessment, HealthStatus, Risk};
pub use status::{ActionStatus, ChangeStatus, VerdictKind};
pub use verdict::Verdict;
