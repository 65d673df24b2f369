//! `airlock serve`: the gate as a service. An axum router over shared state — the gate,
//! the journal (with event fan-out), metrics and the live sandbox cloud — plus the
//! background tasks that tick the simulator and bake changes.

pub mod api;
pub mod config;
pub mod config_schema;
pub mod dashboard;
pub mod hook;
pub mod live;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod router;
pub mod state;
pub mod timeline;

pub use config::{Config, ConfigError, RawConfig};
pub use live::{ServeError, run};

/// The provider kinds the server knows by itself: the coding-agent hook's `shell` and
/// `tool`. The binary adds the kinds of other provider crates with `Registry::with`.
pub fn registry() -> airlock_core::registry::Registry {
    airlock_core::registry::Registry::default()
        .with(airlock_shell::hook::HookKind("shell"))
        .with(airlock_shell::hook::HookKind("tool"))
        .with(airlock_provider_aws::AwsKind)
}
pub use router::app;
pub use state::AppState;
