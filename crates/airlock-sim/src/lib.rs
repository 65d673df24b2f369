//! The sandbox cloud: regions and zones, services with replicas, dependencies, workload,
//! faults and health signals, on virtual time and deterministic from a seed.
//!
//! [`Sim`] is the world; [`SimProvider`] exposes it to the gate as the `sim` provider.

pub mod provider;
pub mod spec;
pub mod synthetic;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod world;

/// Durations live in the core; re-exported so scenario code keeps writing `airlock_sim::Secs`.
pub use airlock_core::Secs;
pub use provider::{SimHandle, SimProvider};
pub use spec::{
    DemandSpec, EventSpec, FaultKind, FaultSpec, RegionSpec, ServiceSpec, Tier, VersionSpec,
    WorldSpec,
};
pub use synthetic::synthetic;
pub use world::{Desired, Observation, ServiceView, Signals, Sim, SimError};
