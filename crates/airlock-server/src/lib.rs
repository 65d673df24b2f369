//! `airlock serve`: the gate as a service. An axum router over shared state — the gate,
//! the journal (with event fan-out), metrics and the live sandbox cloud — plus the
//! background tasks that tick the simulator and bake changes.

pub mod api;
pub mod config;
pub mod hook;
pub mod live;
pub mod mcp;
pub mod metrics;
pub mod router;
pub mod state;
pub mod timeline;

pub use config::{Config, ConfigError, RawConfig};
pub use live::{ServeError, run};
pub use router::app;
pub use state::AppState;
