//! Prometheus metrics of a monitor (`mmm_<subsystem>_<name>`, units in the name), and the HTTP
//! endpoints `/metrics`, `/healthz` and `/readyz` on the monitor's `metrics_port`.
//!
//! Gauges describing the cluster are refreshed from the Raft metrics and the replicated state by
//! [`crate::observe`]; push latencies, check durations and the writer lease are fed where the events
//! happen. `/metrics` serves OpenMetrics to clients that ask for it (Prometheus does) and the classic
//! Prometheus text format (what `promtool check metrics` reads) to the others.

pub use mmm_exposition::{openmetrics_to_text, Format};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels naming a host.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabel {
    /// Host name from the configuration.
    pub host: String,
}

/// Labels naming a host and one of its states.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostStateLabel {
    /// Host name.
    pub host: String,
    /// MMM state name.
    pub state: String,
}

/// Labels naming a host and a check.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabel {
    /// Host name.
    pub host: String,
    /// ping, mysql, rep_threads or rep_backlog.
    pub check: String,
}

/// Labels naming a role IP and its owner.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    /// Role name.
    pub role: String,
    /// Role IP.
    pub ip: String,
    /// Owning host ("" when unassigned).
    pub host: String,
}

/// Labels naming a monitor peer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabel {
    /// Monitor node name.
    pub member: String,
}

/// Labels naming an MMM mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    /// ACTIVE, MANUAL, WAIT or PASSIVE.
    pub mode: String,
}

/// Labels naming a kind of failover.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// "planned" (move_role) or "unplanned" (failure).
    pub kind: String,
}

/// Every metric a monitor exports.
pub struct MonitorMetrics {
    /// The registry the endpoint encodes.
    registry: Registry,
    /// 1 on the Raft leader, else 0.
    pub raft_is_leader: Gauge,
    /// Current Raft term.
    pub raft_term: Gauge,
    /// Last log index applied on this node.
    pub raft_applied_index: Gauge,
    /// Leader: the index a majority holds; others: the applied index (a lower bound).
    pub raft_commit_index: Gauge,
    /// Last log index on this node.
    pub raft_last_log_index: Gauge,
    /// Times the leader changed as seen by this node.
    pub raft_leader_changes_total: Counter,
    /// Entries each follower is behind the leader (leader only).
    pub raft_follower_lag_entries: Family<MemberLabel, Gauge>,
    /// 1 for the host's current state, 0 for the others.
    pub host_state: Family<HostStateLabel, Gauge>,
    /// 1 when the check passes (counted result), 0 when it fails.
    pub check_ok: Family<CheckLabel, Gauge>,
    /// Duration of each check run.
    pub check_duration_seconds: Family<CheckLabel, Histogram>,
    /// 1 for the host holding each role IP.
    pub role_owner: Family<RoleLabel, Gauge>,
    /// Writer moves completed, by kind.
    pub failovers_total: Family<KindLabel, Counter>,
    /// Duration of writer moves (start committed to promotion committed).
    pub failover_duration_seconds: Histogram,
    /// Unix time of the last completed writer move.
    pub failover_last_timestamp_seconds: Gauge,
    /// Failed pushes of a status to an agent.
    pub agent_push_errors_total: Family<HostLabel, Counter>,
    /// Latency of status pushes.
    pub agent_push_duration_seconds: Histogram,
    /// 1 when the agent's health stream is up.
    pub agent_reachable: Family<HostLabel, Gauge>,
    /// Seconds left on the writer lease last granted by this node (leader only), computed when encoded.
    pub writer_lease_seconds: Gauge<f64, AtomicU64>,
    /// When (ms since the Unix epoch) the writer lease last sent by this node runs out; 0 = none.
    writer_lease_expires_ms: AtomicU64,
    /// 1 for the cluster's current mode, 0 for the others: a cluster left PASSIVE never fails over.
    pub cluster_mode: Family<ModeLabel, Gauge>,
    /// Facts polled from the agents (see `crate::topology`), refreshed every poll period.
    pub topology: TopologyMetrics,
}

/// Replication facts as the agents report them (for dashboards and alerts; no decision reads them).
#[derive(Default)]
pub struct TopologyMetrics {
    /// 1 when the agent answered this monitor's last `GetSystemStatus` poll.
    pub agent_up: Family<HostLabel, Gauge>,
    /// Seconds_Behind_Master of each replica (absent when NULL or not a replica).
    pub lag_seconds: Family<HostLabel, Gauge>,
    /// 1 when the replica's IO thread runs (replicas only).
    pub io_running: Family<HostLabel, Gauge>,
    /// 1 when the replica's SQL thread runs (replicas only).
    pub sql_running: Family<HostLabel, Gauge>,
    /// Transactions the writer has that the host lacks (absent when unknown).
    pub transactions_behind: Family<HostLabel, Gauge>,
    /// 1 when the host carries an errant-transaction mark in the cluster state.
    pub errant: Family<HostLabel, Gauge>,
    /// 1 when semi-sync is ON on the source side of the host (absent when the server does not say).
    pub semi_sync_source_on: Family<HostLabel, Gauge>,
    /// 1 when semi-sync is ON on the replica side of the host (absent when the server does not say).
    pub semi_sync_replica_on: Family<HostLabel, Gauge>,
    /// 1 when the server is reachable with `read_only` OFF.
    pub writable: Family<HostLabel, Gauge>,
    /// Servers reachable with `read_only` OFF: more than one is a split brain in the making.
    pub servers_writable: Gauge,
    /// Hosts whose agent sees the writer role's IP on its interface: more than one is a split brain.
    pub writer_vip_holders: Gauge,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl MonitorMetrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("mmm");
        let m = MonitorMetrics {
            raft_is_leader: Gauge::default(),
            raft_term: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            raft_leader_changes_total: Counter::default(),
            raft_follower_lag_entries: Family::default(),
            host_state: Family::default(),
            check_ok: Family::default(),
            check_duration_seconds: Family::new_with_constructor(latency_histogram),
            role_owner: Family::default(),
            failovers_total: Family::default(),
            failover_duration_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            failover_last_timestamp_seconds: Gauge::default(),
            agent_push_errors_total: Family::default(),
            agent_push_duration_seconds: latency_histogram(),
            agent_reachable: Family::default(),
            writer_lease_seconds: Gauge::default(),
            writer_lease_expires_ms: AtomicU64::new(0),
            cluster_mode: Family::default(),
            topology: TopologyMetrics::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "raft_is_leader",
            "1 on the Raft leader",
            m.raft_is_leader.clone(),
        );
        r.register("raft_term", "Current Raft term", m.raft_term.clone());
        r.register(
            "raft_applied_index",
            "Last log index applied on this node",
            m.raft_applied_index.clone(),
        );
        r.register(
            "raft_commit_index",
            "Leader: highest index held by a majority; others: the applied index",
            m.raft_commit_index.clone(),
        );
        r.register(
            "raft_last_log_index",
            "Last log index on this node",
            m.raft_last_log_index.clone(),
        );
        r.register(
            "raft_leader_changes",
            "Leader changes seen by this node",
            m.raft_leader_changes_total.clone(),
        );
        r.register(
            "raft_follower_lag_entries",
            "Entries a follower is behind (leader only)",
            m.raft_follower_lag_entries.clone(),
        );
        r.register(
            "host_state",
            "1 for the host's current MMM state",
            m.host_state.clone(),
        );
        r.register("check_ok", "1 when the check passes", m.check_ok.clone());
        r.register(
            "check_duration_seconds",
            "Duration of check runs",
            m.check_duration_seconds.clone(),
        );
        r.register(
            "role_owner",
            "1 for the host holding the role IP",
            m.role_owner.clone(),
        );
        r.register(
            "failovers",
            "Completed writer moves by kind",
            m.failovers_total.clone(),
        );
        r.register(
            "failover_duration_seconds",
            "Writer move duration",
            m.failover_duration_seconds.clone(),
        );
        r.register(
            "failover_last_timestamp_seconds",
            "Unix time of the last completed writer move",
            m.failover_last_timestamp_seconds.clone(),
        );
        r.register(
            "agent_push_errors",
            "Failed status pushes to an agent",
            m.agent_push_errors_total.clone(),
        );
        r.register(
            "agent_push_duration_seconds",
            "Latency of status pushes",
            m.agent_push_duration_seconds.clone(),
        );
        r.register(
            "agent_reachable",
            "1 when the agent's health stream is up",
            m.agent_reachable.clone(),
        );
        r.register(
            "writer_lease_seconds",
            "Seconds left on the writer lease granted by this node",
            m.writer_lease_seconds.clone(),
        );
        r.register(
            "cluster_mode",
            "1 for the cluster's current MMM mode",
            m.cluster_mode.clone(),
        );
        let t = &m.topology;
        r.register(
            "agent_up",
            "1 when the agent answered this monitor's last system status poll",
            t.agent_up.clone(),
        );
        r.register(
            "replication_lag_seconds",
            "Seconds_Behind_Master as the agent reports it",
            t.lag_seconds.clone(),
        );
        r.register(
            "replication_io_running",
            "1 when the replica's IO thread runs",
            t.io_running.clone(),
        );
        r.register(
            "replication_sql_running",
            "1 when the replica's SQL thread runs",
            t.sql_running.clone(),
        );
        r.register(
            "replication_transactions_behind",
            "Transactions the writer has that the host lacks",
            t.transactions_behind.clone(),
        );
        r.register(
            "host_errant",
            "1 when the host has errant transactions",
            t.errant.clone(),
        );
        r.register(
            "semi_sync_source_on",
            "1 when semi-sync is on at the source side",
            t.semi_sync_source_on.clone(),
        );
        r.register(
            "semi_sync_replica_on",
            "1 when semi-sync is on at the replica side",
            t.semi_sync_replica_on.clone(),
        );
        r.register(
            "server_writable",
            "1 when the server is reachable with read_only OFF",
            t.writable.clone(),
        );
        r.register(
            "servers_writable",
            "Servers reachable with read_only OFF, as the agents report",
            t.servers_writable.clone(),
        );
        r.register(
            "writer_vip_holders",
            "Hosts whose agent sees the writer IP on its interface",
            t.writer_vip_holders.clone(),
        );
        let mut m = m;
        m.registry = registry;
        Arc::new(m)
    }

    /// The OpenMetrics exposition (ends with `# EOF`).
    pub fn encode(&self) -> String {
        self.refresh_lease();
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The exposition in `format`.
    pub fn encode_as(&self, format: Format) -> String {
        format.render(self.encode())
    }

    /// Records the duration of one push.
    pub fn push_took(&self, d: Duration) {
        self.agent_push_duration_seconds.observe(d.as_secs_f64());
    }

    /// Records the duration of one run of `check` on `host`.
    pub fn check_took(&self, host: &str, check: &str, d: Duration) {
        self.check_duration_seconds
            .get_or_create(&CheckLabel {
                host: host.to_string(),
                check: check.to_string(),
            })
            .observe(d.as_secs_f64());
    }

    /// Notes that this node sent the writer a lease of `lease_ms` at `sent_ms` (ms since the Unix
    /// epoch). The agent counts from receipt, so the lease it holds ends no earlier than this.
    pub fn lease_sent(&self, sent_ms: u64, lease_ms: u64) {
        self.writer_lease_expires_ms
            .fetch_max(sent_ms.saturating_add(lease_ms), Ordering::Relaxed);
    }

    /// Forgets the lease (this node is no longer the leader: another one renews it).
    pub fn lease_forgotten(&self) {
        self.writer_lease_expires_ms.store(0, Ordering::Relaxed);
    }

    /// Sets `writer_lease_seconds` from the last lease sent and the clock.
    fn refresh_lease(&self) {
        let expires = self.writer_lease_expires_ms.load(Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let left = expires.saturating_sub(now) as f64 / 1000.0;
        self.writer_lease_seconds.set(left);
    }
}

/// Readiness as the `/readyz` endpoint reports it.
pub trait Readiness: Send + Sync + 'static {
    /// `Ok(())` when part of a cluster with a leader and checks running, else why not.
    fn ready(&self) -> Result<(), String>;
}

/// The HTTP router: `/metrics`, `/healthz`, `/readyz`.
pub fn router(metrics: Arc<MonitorMetrics>, ready: Arc<dyn Readiness>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| {
                let m = Arc::clone(&metrics);
                async move {
                    let accept = headers
                        .get(axum::http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok());
                    let format = Format::negotiate(accept);
                    (
                        [(axum::http::header::CONTENT_TYPE, format.content_type())],
                        m.encode_as(format),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let r = Arc::clone(&ready);
                async move {
                    match r.ready() {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                        Err(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {why}\n"),
                        ),
                    }
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_namespaced_names_and_labels() {
        let m = MonitorMetrics::new();
        m.raft_is_leader.set(1);
        m.host_state
            .get_or_create(&HostStateLabel {
                host: "db1".into(),
                state: "ONLINE".into(),
            })
            .set(1);
        m.failovers_total
            .get_or_create(&KindLabel {
                kind: "unplanned".into(),
            })
            .inc();
        let text = m.encode();
        assert!(text.contains("mmm_raft_is_leader 1"), "{text}");
        assert!(
            text.contains("mmm_host_state{host=\"db1\",state=\"ONLINE\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("mmm_failovers_total{kind=\"unplanned\"} 1"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
        let classic = m.encode_as(Format::Text);
        assert!(
            classic.contains("# TYPE mmm_failovers_total counter"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
    }

    #[test]
    fn accept_header_chooses_the_format() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    }

    #[test]
    fn lease_seconds_count_down_from_the_last_send_and_stop_at_zero() {
        let m = MonitorMetrics::new();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        m.lease_sent(now, 3000);
        m.encode();
        let left = m.writer_lease_seconds.get();
        assert!(left > 2.0 && left <= 3.0, "{left}");
        m.lease_forgotten();
        m.encode();
        assert_eq!(m.writer_lease_seconds.get(), 0.0);
    }

    /// The classic exposition passes `promtool check metrics` (skipped when promtool is missing).
    #[test]
    fn classic_exposition_passes_promtool() {
        use std::io::Write;
        let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("promtool not installed: skipped");
            return;
        };
        let m = MonitorMetrics::new();
        m.check_took("db1", "mysql", Duration::from_millis(3));
        m.failovers_total
            .get_or_create(&KindLabel {
                kind: "planned".into(),
            })
            .inc();
        m.failover_duration_seconds.observe(1.5);
        let text = m.encode_as(Format::Text);
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).expect("write to promtool");
        }
        let out = child.wait_with_output().expect("promtool runs");
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
