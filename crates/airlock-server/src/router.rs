//! The whole router: the HTTP API and, when enabled, the MCP gateway at `/mcp`, each a
//! separate adapter over the shared state; neither imports the other.

use crate::state::AppState;
use axum::Router;

/// The router. Tests call `app(state).oneshot(request)` without a socket.
pub fn app(state: AppState) -> Router {
    let limit = state.body_limit;
    let router = crate::api::routes().merge(crate::dashboard::routes(&state));
    let router = if state.mcp_hosts.is_empty() {
        router
    } else {
        let mcp = crate::mcp::http_service(state.clone(), state.mcp_hosts.clone());
        router.nest_service(
            "/mcp",
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    crate::mcp::auth,
                ))
                .service(mcp),
        )
    };
    router
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}
