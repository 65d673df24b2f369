//! What every adapter shares: the front door (and through it the gate and the journal),
//! metrics, limits and the shutdown signal; and reading a bearer token off HTTP headers.

use crate::metrics::Metrics;
use airlock_gate::{FrontDoor, Gate, Notifying};
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The one front door every adapter calls.
    pub door: Arc<FrontDoor>,
    /// The gate behind the door (operator endpoints).
    pub gate: Arc<Gate>,
    /// The journal, with its event feed.
    pub journal: Arc<Notifying>,
    pub metrics: Arc<Metrics>,
    pub body_limit: usize,
    /// The OpenAPI document, built once at start.
    pub openapi: Arc<utoipa::openapi::OpenApi>,
    /// Turns true when the server shuts down: open event streams end so shutdown can finish.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Sends the shutdown (kept here so tests and the server share one channel).
    pub stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// `Host` values `/mcp` accepts (DNS-rebinding protection); empty turns `/mcp` off.
    pub mcp_hosts: Vec<String>,
    /// The live simulator, whose signals `/metrics` exports.
    pub sim: Option<airlock_sim::SimHandle>,
    /// The dashboard at `/`, when it is on.
    pub dashboard: Option<Arc<crate::dashboard::Dashboard>>,
}

/// The token of `Authorization: Bearer TOKEN`, if the request has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(airlock_gate::frontdoor::bearer_token)
}
