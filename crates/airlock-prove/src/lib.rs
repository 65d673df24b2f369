//! The proving ground: run an agent against the sandbox cloud, with workload and injected
//! faults, guarded (through the gate) or unguarded (applied directly), and score it.
//!
//! A run is reproducible from `(scenario, seed)`: the world, the workload noise and the
//! agents' choices all follow from them, on virtual time.

pub mod agents;
pub mod assertions;
pub mod external;
pub mod launcher;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod score;
pub mod scripted;

pub use launcher::ChildLauncher;
pub use runner::{Cast, Mode, RunError, RunOptions, RunResult, run, run_scenario};
pub use scenario::{Scenario, ScenarioError};
pub use score::Scorecard;

/// The shipped flagship scenarios, by file name and content.
pub const FLAGSHIPS: [(&str, &str); 4] = [
    (
        "forecast-flash-crowd",
        include_str!("../../../scenarios/forecast-flash-crowd.toml"),
    ),
    (
        "drift-fixer-recreate",
        include_str!("../../../scenarios/drift-fixer-recreate.toml"),
    ),
    (
        "cost-cutter-cascade",
        include_str!("../../../scenarios/cost-cutter-cascade.toml"),
    ),
    (
        "config-push-all-regions",
        include_str!("../../../scenarios/config-push-all-regions.toml"),
    ),
];
