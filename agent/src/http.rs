//! The agent's HTTP endpoints on the host's ip and the `<agent> metrics_port`: `/metrics` (see
//! [`crate::metrics`]), `/healthz` (the process runs) and `/readyz` (the local mysqld answers).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::agent::Agent;

async fn metrics(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> impl IntoResponse {
    agent.refresh_metrics();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = agent.metrics().render_for(accept);
    ([(header::CONTENT_TYPE, content_type)], body)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(agent): State<Arc<Agent>>) -> (StatusCode, String) {
    match agent.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// The HTTP router.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(agent)
}
