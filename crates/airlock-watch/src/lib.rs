//! Watching the world: health signal sources the gate judges changes on (Prometheus, HTTP
//! probes), and alert delivery to Alertmanager and webhooks for what the gate journals.
//!
//! The bake judge itself is pure and lives in `airlock-core` (`slo`); the gate runs it.
//! This crate does the I/O around it, so neither the core nor the server carries it.

pub mod alerts;
pub mod cloudwatch;
pub mod probe;
pub mod prometheus;

pub use alerts::{AlertConfig, Alerter};
pub use probe::{ProbeConfig, Probed};
pub use prometheus::{PromSignals, SourceKind, WatchConfig, slo_problems};
