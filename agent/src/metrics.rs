//! Prometheus metrics (`mmm_agent_*`): the gauges the agent updates and their exposition. OpenMetrics
//! for clients that ask for it (Prometheus does), the classic Prometheus text format (what
//! `promtool check metrics` reads) for the others. Served by [`crate::http`].

pub use mmm_exposition::{openmetrics_to_text, Format};
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

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
    /// Times the agent killed a local mysqld it could not verify read-only after a lease ended.
    pub stalled_mysqld_kills: Counter,
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
            stalled_mysqld_kills: Counter::default(),
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
        registry.register(
            "stalled_mysqld_kills",
            "Times the agent killed the local mysqld because it could not verify it read-only after the writer lease ended (a stalled server)",
            m.stalled_mysqld_kills.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The OpenMetrics exposition of every metric (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut s, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        s
    }

    /// The exposition in the format the `Accept` header asks for, and its content type:
    /// OpenMetrics when it names `application/openmetrics-text`, else the classic text format.
    pub fn render_for(&self, accept: Option<&str>) -> (&'static str, String) {
        let format = Format::negotiate(accept);
        (format.content_type(), format.render(self.render()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_format_unless_openmetrics_is_asked_for() {
        let m = Metrics::default();
        m.vips_held.set(2);
        m.lease_remaining.set(1.5);
        m.stalled_mysqld_kills.inc();
        let (ct, text) = m.render_for(None);
        assert!(ct.starts_with("text/plain"), "{ct}");
        assert!(text.contains("mmm_agent_vips_held 2"), "{text}");
        assert!(
            text.contains("mmm_agent_lease_remaining_seconds 1.5"),
            "{text}"
        );
        assert!(
            text.contains("mmm_agent_stalled_mysqld_kills_total 1"),
            "{text}"
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        let (ct, om) = m.render_for(Some("application/openmetrics-text;version=1.0.0"));
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        assert!(om.trim_end().ends_with("# EOF"), "{om}");
    }

    #[test]
    fn counters_take_their_total_name_in_the_classic_format() {
        let om = "# HELP mmm_x Things.\n# TYPE mmm_x counter\nmmm_x_total 3\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP mmm_x_total Things.\n# TYPE mmm_x_total counter\nmmm_x_total 3\n"
        );
    }
}
