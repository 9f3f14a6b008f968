//! Prometheus metrics (`mmm_agent_*`) and the HTTP endpoints `/metrics`, `/healthz` and `/readyz` (axum),
//! served on the host's ip and the `<agent> metrics_port`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::agent::Agent;

/// The agent's gauges and the registry that renders them.
pub struct Metrics {
    /// Registry holding every metric below.
    registry: Registry,
    /// Configured role IPs present on the interface.
    pub vips_held: Gauge,
    /// 1 when the agent holds the writer role with a valid lease and writes are allowed.
    pub writable: Gauge,
    /// Term of the highest accepted epoch.
    pub epoch_term: Gauge,
    /// Index of the highest accepted epoch.
    pub epoch_index: Gauge,
    /// Seconds left on the writer lease.
    pub lease_remaining: Gauge<f64, AtomicU64>,
    /// 1 when the local mysqld answers.
    pub mysqld_up: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mmm_agent");
        let m = Metrics {
            vips_held: Gauge::default(),
            writable: Gauge::default(),
            epoch_term: Gauge::default(),
            epoch_index: Gauge::default(),
            lease_remaining: Gauge::default(),
            mysqld_up: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "vips_held",
            "Configured role IPs present on the cluster interface",
            m.vips_held.clone(),
        );
        registry.register(
            "writable",
            "1 when this host holds the writer role with a valid lease",
            m.writable.clone(),
        );
        registry.register(
            "epoch_accepted_term",
            "Term of the highest accepted epoch",
            m.epoch_term.clone(),
        );
        registry.register(
            "epoch_accepted_index",
            "Index of the highest accepted epoch",
            m.epoch_index.clone(),
        );
        registry.register_with_unit(
            "lease_remaining",
            "Time left on the writer lease",
            Unit::Seconds,
            m.lease_remaining.clone(),
        );
        registry.register(
            "mysqld_up",
            "1 when the local mysqld answers queries",
            m.mysqld_up.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut s, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        s
    }
}

async fn metrics(State(agent): State<Arc<Agent>>) -> impl IntoResponse {
    agent.refresh_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        agent.metrics().render(),
    )
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
