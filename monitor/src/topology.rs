//! Replication facts of every host, polled from the agents (`GetSystemStatus`) by every monitor, so
//! `mmmctl show --extended`, the HTTP API, the status page and the metrics can show who replicates from
//! whom, lag, GTID positions, `read_only`, semi-sync and the VIPs each host really holds.
//!
//! Rules:
//! - one task per host polls every [`POLL_PERIOD`] with a timeout of [`POLL_TIMEOUT`]; a slow or absent
//!   agent never delays another host's poll nor any reader;
//! - readers only copy the cache ([`TopologyCache::get`]); a failed poll keeps the last answered facts
//!   and says why it failed, with the age of what is kept;
//! - these facts are for people and dashboards only: no decision of the monitor reads them (decisions
//!   come from the checks and the committed state).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mmm_proto::{HostTopology, ShowReply, SystemStatus};
use tokio::sync::watch;

use crate::agents::AgentHub;
use crate::context::MonitorContext;
use mmm_proto::gtid::transactions_behind;

/// Time between two polls of one agent: often enough that the page and `show --extended` look live,
/// rare enough that hundreds of hosts cost little (one small query batch per host per second).
pub const POLL_PERIOD: Duration = Duration::from_secs(1);
/// Longest wait for one agent's answer: below [`POLL_PERIOD`], so polls never pile up.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(800);

/// Facts older than this are not exported as metrics (the agent stopped answering): a few polls.
pub const STALE_FACTS: Duration = Duration::from_secs(5);

/// The last poll of one host.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// The last answered status (kept when a later poll fails, so the facts stay visible with their age).
    pub status: Option<SystemStatus>,
    /// When `status` arrived.
    pub answered_at: Option<Instant>,
    /// Why the latest poll failed; `None` when it was answered.
    pub error: Option<String>,
}

/// The cached facts of every host.
#[derive(Debug, Default)]
pub struct TopologyCache {
    /// Per host name; absent until the first poll ends.
    hosts: Mutex<BTreeMap<String, HostFacts>>,
}

impl TopologyCache {
    /// An empty cache.
    pub fn new() -> Arc<Self> {
        Arc::new(TopologyCache::default())
    }

    /// The facts of `host` (default when never polled).
    pub fn get(&self, host: &str) -> HostFacts {
        lock(&self.hosts).get(host).cloned().unwrap_or_default()
    }

    /// Records one poll's outcome.
    pub fn record(&self, host: &str, outcome: Result<SystemStatus, String>) {
        let mut hosts = lock(&self.hosts);
        let f = hosts.entry(host.to_string()).or_default();
        match outcome {
            Ok(s) => {
                f.status = Some(s);
                f.answered_at = Some(Instant::now());
                f.error = None;
            }
            Err(e) => f.error = Some(e),
        }
    }

    /// Polls every agent of `hub` until `shutdown` turns true.
    pub fn spawn_pollers(self: &Arc<Self>, hub: &Arc<AgentHub>, shutdown: watch::Receiver<bool>) {
        for host in hub.hosts() {
            let cache = Arc::clone(self);
            let hub = Arc::clone(hub);
            let host = host.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(POLL_PERIOD);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = shutdown.changed() => return,
                    }
                    let outcome = hub
                        .system_status(&host, POLL_TIMEOUT)
                        .await
                        .map_err(|s| s.message().to_string());
                    cache.record(&host, outcome);
                }
            });
        }
    }
}

/// Where one host's facts say it replicates from, mapped to a configured host by IP and MySQL port.
pub fn source_host_name(
    status: &SystemStatus,
    hosts: &BTreeMap<String, (IpAddr, u16)>,
) -> Option<String> {
    let r = status.replication.as_ref().filter(|r| r.configured)?;
    hosts
        .iter()
        .find(|(name, (ip, port))| {
            (r.source_host == ip.to_string() || r.source_host == **name)
                && (r.source_port == 0 || u32::from(*port) == r.source_port)
        })
        .map(|(name, _)| name.clone())
}

/// The position of a server that counts everything it has applied or written.
fn current_pos(s: &SystemStatus) -> &str {
    if s.gtid_current_pos.is_empty() {
        &s.gtid_binlog_pos
    } else {
        &s.gtid_current_pos
    }
}

/// The wire view of `host`'s facts; `writer` is the writer's facts (for the transactions behind),
/// `hosts` maps configured host names to their IP and MySQL port.
pub fn host_topology(
    facts: &HostFacts,
    writer: Option<&HostFacts>,
    hosts: &BTreeMap<String, (IpAddr, u16)>,
) -> HostTopology {
    let mut t = HostTopology {
        agent_answered: facts.error.is_none() && facts.status.is_some(),
        poll_error: facts.error.clone().unwrap_or_else(|| {
            if facts.status.is_none() {
                "not polled yet".into()
            } else {
                String::new()
            }
        }),
        age_millis: facts
            .answered_at
            .map_or(0, |t| t.elapsed().as_millis() as u64),
        seconds_behind: -1,
        transactions_behind_writer: -1,
        ..Default::default()
    };
    let Some(s) = &facts.status else {
        return t;
    };
    t.mysql_reachable = s.mysql_reachable;
    t.mysql_error = s.mysql_error.clone();
    t.read_only = s.read_only;
    t.gtid_binlog_pos = s.gtid_binlog_pos.clone();
    t.gtid_slave_pos = s.gtid_slave_pos.clone();
    t.gtid_current_pos = s.gtid_current_pos.clone();
    t.semi_sync_source = s.semi_sync_source_status.clone();
    t.semi_sync_replica = s.semi_sync_replica_status.clone();
    t.vips_present = s.vips.clone();
    t.server_version = s.server_version.clone();
    t.setting_problems = s.setting_problems.clone();
    if let Some(r) = s.replication.as_ref().filter(|r| r.configured) {
        t.replicates_from = format!("{}:{}", r.source_host, r.source_port);
        t.replicates_from_host = source_host_name(s, hosts).unwrap_or_default();
        t.io_running = r.io_running;
        t.sql_running = r.sql_running;
        t.seconds_behind = r.seconds_behind;
        t.last_io_error = r.last_io_error.clone();
        t.last_sql_error = r.last_sql_error.clone();
    }
    if let Some(w) = writer.and_then(|w| w.status.as_ref()) {
        if s.mysql_reachable && w.mysql_reachable {
            if let Some(n) = transactions_behind(current_pos(s), &w.gtid_binlog_pos) {
                t.transactions_behind_writer = i64::try_from(n).unwrap_or(i64::MAX);
            }
        }
    }
    t
}

/// What is left of the lease the writer's agent holds: its last answer less the time since, `None`
/// when it never answered or its facts are too old to say ([`STALE_FACTS`]).
pub fn writer_lease_left(facts: &HostFacts) -> Option<u64> {
    let s = facts.status.as_ref()?;
    let age = facts.answered_at?.elapsed();
    (age <= STALE_FACTS).then(|| {
        s.lease_remaining_millis
            .saturating_sub(age.as_millis() as u64)
    })
}

/// Adds every host's facts (`HostView.topology`) and the writer's lease to a `show` reply.
pub fn extend_show(ctx: &MonitorContext, reply: &mut ShowReply) {
    let hosts: BTreeMap<String, (IpAddr, u16)> = ctx
        .config
        .hosts
        .values()
        .map(|h| (h.name.clone(), (h.ip, h.mysql_port)))
        .collect();
    let writer = (!reply.active_master.is_empty()).then(|| ctx.topology.get(&reply.active_master));
    for h in &mut reply.hosts {
        let facts = ctx.topology.get(&h.name);
        h.topology = Some(host_topology(&facts, writer.as_ref(), &hosts));
    }
    reply.writer_lease_left_millis = writer
        .as_ref()
        .and_then(writer_lease_left)
        .map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
}

/// Sets the mode and replication gauges of `ctx.metrics` from the committed state and the cache.
pub fn refresh_metrics(ctx: &MonitorContext) {
    use crate::metrics::{HostLabel, ModeLabel};
    let state = ctx.consensus.state();
    let m = &ctx.metrics;
    for mode in [
        mmm_consensus::Mode::Active,
        mmm_consensus::Mode::Manual,
        mmm_consensus::Mode::Wait,
        mmm_consensus::Mode::Passive,
    ] {
        m.cluster_mode
            .get_or_create(&ModeLabel {
                mode: mode.as_mmm_str().to_string(),
            })
            .set(i64::from(state.mode == mode));
    }
    let hosts: BTreeMap<String, (IpAddr, u16)> = ctx
        .config
        .hosts
        .values()
        .map(|h| (h.name.clone(), (h.ip, h.mysql_port)))
        .collect();
    let writer = state.active_master.as_ref().map(|w| ctx.topology.get(w));
    let writer_ips: Vec<String> = ctx
        .config
        .writer_role()
        .map(|r| r.ips.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let t = &m.topology;
    let (mut writable, mut vip_holders) = (0, 0);
    for name in hosts.keys() {
        let label = HostLabel { host: name.clone() };
        let facts = ctx.topology.get(name);
        let v = host_topology(&facts, writer.as_ref(), &hosts);
        t.agent_up
            .get_or_create(&label)
            .set(i64::from(v.agent_answered));
        t.errant.get_or_create(&label).set(i64::from(
            state
                .hosts
                .get(name)
                .is_some_and(|r| r.errant_gtids.is_some()),
        ));
        // Facts too old to trust are dropped, so a dead agent's last answer does not look current.
        let known = facts.status.is_some() && v.age_millis <= STALE_FACTS.as_millis() as u64;
        let set_or_remove = |f: &prometheus_client::metrics::family::Family<
            HostLabel,
            prometheus_client::metrics::gauge::Gauge,
        >,
                             value: Option<i64>| match value {
            Some(x) => {
                f.get_or_create(&label).set(x);
            }
            None => {
                f.remove(&label);
            }
        };
        let replica = known && !v.replicates_from.is_empty();
        set_or_remove(
            &t.lag_seconds,
            (replica && v.seconds_behind >= 0).then_some(v.seconds_behind),
        );
        set_or_remove(&t.io_running, replica.then_some(i64::from(v.io_running)));
        set_or_remove(&t.sql_running, replica.then_some(i64::from(v.sql_running)));
        set_or_remove(
            &t.transactions_behind,
            (known && v.transactions_behind_writer >= 0).then_some(v.transactions_behind_writer),
        );
        let on = |s: &str| match s {
            "ON" => Some(1),
            "OFF" => Some(0),
            _ => None,
        };
        set_or_remove(
            &t.semi_sync_source_on,
            known.then(|| on(&v.semi_sync_source)).flatten(),
        );
        set_or_remove(
            &t.semi_sync_replica_on,
            known.then(|| on(&v.semi_sync_replica)).flatten(),
        );
        let is_writable = known && v.mysql_reachable && !v.read_only;
        t.writable.get_or_create(&label).set(i64::from(is_writable));
        writable += i64::from(is_writable);
        vip_holders += i64::from(known && v.vips_present.iter().any(|ip| writer_ips.contains(ip)));
    }
    t.servers_writable.set(writable);
    t.writer_vip_holders.set(vip_holders);
}

/// Refreshes the metrics every [`POLL_PERIOD`] until `shutdown` turns true.
pub async fn run_metrics(ctx: Arc<MonitorContext>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(POLL_PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => refresh_metrics(&ctx),
            _ = shutdown.changed() => return,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_proto::ReplicationStatus;

    fn hosts() -> BTreeMap<String, (IpAddr, u16)> {
        [
            ("db1".to_string(), ("10.0.0.1".parse().unwrap(), 3306)),
            ("db2".to_string(), ("10.0.0.2".parse().unwrap(), 3306)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn replica_facts_name_their_source_and_lag() {
        let writer = HostFacts {
            status: Some(SystemStatus {
                mysql_reachable: true,
                gtid_binlog_pos: "0-1-100".into(),
                ..Default::default()
            }),
            answered_at: Some(Instant::now()),
            error: None,
        };
        let replica = HostFacts {
            status: Some(SystemStatus {
                mysql_reachable: true,
                read_only: true,
                gtid_current_pos: "0-1-97".into(),
                semi_sync_replica_status: "ON".into(),
                replication: Some(ReplicationStatus {
                    configured: true,
                    source_host: "10.0.0.1".into(),
                    source_port: 3306,
                    io_running: true,
                    sql_running: false,
                    seconds_behind: 4,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            answered_at: Some(Instant::now()),
            error: Some("agent did not answer in time".into()),
        };
        let t = host_topology(&replica, Some(&writer), &hosts());
        assert_eq!(t.replicates_from, "10.0.0.1:3306");
        assert_eq!(t.replicates_from_host, "db1");
        assert!(t.io_running && !t.sql_running && t.read_only);
        assert_eq!(t.seconds_behind, 4);
        assert_eq!(t.transactions_behind_writer, 3);
        assert_eq!(t.semi_sync_replica, "ON");
        assert!(!t.agent_answered, "a failed last poll is said");
        assert_eq!(t.poll_error, "agent did not answer in time");
        let mut w = writer.clone();
        if let Some(s) = w.status.as_mut() {
            s.lease_remaining_millis = 5000;
        }
        let left = writer_lease_left(&w).expect("fresh facts");
        assert!(left <= 5000 && left > 4000, "{left}");
        w.answered_at = Some(Instant::now() - STALE_FACTS - Duration::from_millis(1));
        assert_eq!(writer_lease_left(&w), None, "too old to say");
        let never = host_topology(&HostFacts::default(), None, &hosts());
        assert!(!never.agent_answered);
        assert_eq!(never.poll_error, "not polled yet");
        assert_eq!(never.seconds_behind, -1);
        assert_eq!(never.transactions_behind_writer, -1);
    }
}
