//! Sends this monitor's observations (its checks and what the agents' health streams say) to the
//! leader, every round and at once on a change. On the leader the report goes straight into the store.

use std::sync::Arc;
use std::time::Duration;

use mmm_proto::monitor_peer_client::MonitorPeerClient;
use std::collections::BTreeMap;

use mmm_proto::{HostObservation, MysqlHealth, ObservationReport, PROTOCOL_VERSION};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use crate::checks::wire::host_observations;
use crate::context::MonitorContext;

/// Shortest time between two reports: a burst of check changes (hundreds of hosts judged at once)
/// becomes one report, not one per change.
const REPORT_MIN_GAP: Duration = Duration::from_millis(20);

/// Builds this monitor's report from its checks and the agents' health streams.
pub fn own_report(ctx: &MonitorContext) -> ObservationReport {
    let mut by_host: BTreeMap<String, HostObservation> = host_observations(&ctx.checker.snapshot())
        .into_iter()
        .map(|h| (h.host.clone(), h))
        .collect();
    let hosts = ctx
        .config
        .hosts
        .keys()
        .map(|host| {
            let health = ctx.agents.health(host);
            let mut obs = by_host.remove(host).unwrap_or_else(|| HostObservation {
                host: host.clone(),
                ..Default::default()
            });
            obs.agent_reachable = health.reachable;
            obs.agent_says_mysql_down = health.reachable && health.mysql == MysqlHealth::Down;
            obs.agent_uptime_seconds = health.uptime_s.unwrap_or(0);
            obs
        })
        .collect();
    ObservationReport {
        protocol_version: PROTOCOL_VERSION,
        monitor: ctx.name.clone(),
        network_ok: ctx.checker.network_ok(),
        hosts,
    }
}

/// Runs until shutdown: report every `period` and whenever the checks or agents change.
pub async fn run(ctx: Arc<MonitorContext>, mut stop: watch::Receiver<bool>) {
    let period = (ctx.config.checks.mysql.check_period / 2).max(Duration::from_millis(100));
    let mut checks = ctx.checker.changes();
    let mut agents = ctx.agents.changes();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut client: Option<(String, MonitorPeerClient<Channel>)> = None;
    let mut last_report: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = checks.changed() => if r.is_err() { return },
            r = agents.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        // A change right after a report waits for the gap; what changes meanwhile goes with it.
        if let Some(wait) = last_report.map(|t| REPORT_MIN_GAP.saturating_sub(t.elapsed())) {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
        last_report = Some(std::time::Instant::now());
        let report = own_report(&ctx);
        if ctx.consensus.is_leader() {
            if let Err(e) = ctx.reports.record(report) {
                tracing::error!(error = %e, "own report refused");
            }
            continue;
        }
        let Some((_, leader)) = ctx.consensus.leader() else {
            continue;
        };
        if client.as_ref().is_none_or(|(addr, _)| addr != &leader.addr) {
            let Ok(ep) = Endpoint::from_shared(format!("http://{}", leader.addr)) else {
                tracing::error!(addr = %leader.addr, "leader address is not a valid URI");
                continue;
            };
            let ep = ep
                .connect_timeout(Duration::from_millis(300))
                .timeout(Duration::from_millis(800))
                .tcp_nodelay(true);
            client = Some((
                leader.addr.clone(),
                MonitorPeerClient::new(mmm_tls::channel_for(
                    &ep,
                    ctx.tls.as_ref(),
                    Some(&leader.name),
                )),
            ));
        }
        if let Some((_, c)) = client.as_mut() {
            let mut req = tonic::Request::new(report);
            req.set_timeout(Duration::from_millis(800));
            match c.report_observations(req).await {
                Ok(ack) if ack.get_ref().accepted => ctx.leader_contact.answered(&leader.name),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(leader = %leader.name, error = %e, "report to leader failed")
                }
            }
        }
    }
}
