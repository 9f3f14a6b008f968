//! Observations from every monitor, gathered at the leader.
//!
//! Every monitor checks every host. Followers send their latest results to the leader
//! ([`MonitorPeer::report_observations`]) every round and at once on a change; the leader keeps the
//! latest report of each monitor (its own included) with the time it arrived, and the decision engine
//! counts a failure only when a majority of fresh reports agree.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mmm_proto::monitor_peer_server::MonitorPeer;
use mmm_proto::{ObservationReport, ReportAck};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

/// The latest report of one monitor.
#[derive(Clone, Debug)]
pub struct ReceivedReport {
    /// When it arrived here (monotonic: ages are what matter, not wall time).
    pub received: Instant,
    /// What the monitor saw.
    pub report: ObservationReport,
}

/// Latest observation report per monitor name.
pub struct ReportStore {
    /// Names of the configured monitors; reports from anyone else are refused.
    members: Vec<String>,
    /// Latest report per monitor.
    latest: Mutex<BTreeMap<String, ReceivedReport>>,
    /// Bumped on every report that differs from the previous one of its monitor.
    changed: watch::Sender<u64>,
}

impl ReportStore {
    /// A store accepting reports from `members`.
    pub fn new(members: Vec<String>) -> Self {
        ReportStore {
            members,
            latest: Mutex::new(BTreeMap::new()),
            changed: watch::channel(0).0,
        }
    }

    /// Records a report. Returns an error naming the sender when it is not a configured monitor.
    pub fn record(&self, report: ObservationReport) -> Result<(), Status> {
        if !self.members.contains(&report.monitor) {
            return Err(Status::permission_denied(format!(
                "'{}' is not a monitor of this cluster",
                report.monitor
            )));
        }
        let differs = {
            let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            let differs = latest
                .get(&report.monitor)
                .is_none_or(|prev| !same_verdicts(&prev.report, &report));
            latest.insert(
                report.monitor.clone(),
                ReceivedReport {
                    received: Instant::now(),
                    report,
                },
            );
            differs
        };
        if differs {
            self.changed.send_modify(|v| *v += 1);
        }
        Ok(())
    }

    /// Reports received within `ttl`.
    pub fn fresh(&self, ttl: Duration) -> BTreeMap<String, ReceivedReport> {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest
            .iter()
            .filter(|(_, r)| r.received.elapsed() <= ttl)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Wakes when a report changes what some monitor sees.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Two reports say the same thing when every check status, reachability and definite evidence match
/// (durations aside).
/// What a report says of one host: name, agent reachable, agent says mysqld down, check statuses.
type HostVerdict = (String, bool, bool, Vec<(String, i32)>);

fn same_verdicts(a: &ObservationReport, b: &ObservationReport) -> bool {
    let key = |r: &ObservationReport| {
        let mut v: Vec<HostVerdict> = r
            .hosts
            .iter()
            .map(|h| {
                (
                    h.host.clone(),
                    h.agent_reachable,
                    h.agent_says_mysql_down,
                    h.checks
                        .iter()
                        .map(|c| (c.check.clone(), c.status))
                        .collect(),
                )
            })
            .collect();
        v.sort();
        (r.network_ok, v)
    };
    key(a) == key(b)
}

/// The gRPC face of the store, served by every monitor (only the leader's store is read).
pub struct PeerService {
    /// Where reports go.
    pub store: std::sync::Arc<ReportStore>,
    /// Returns the leader's name, for the ack (followers forward nothing: the sender retries at the leader).
    pub leader_name: Box<dyn Fn() -> Option<String> + Send + Sync>,
}

#[tonic::async_trait]
impl MonitorPeer for PeerService {
    async fn report_observations(
        &self,
        request: Request<ObservationReport>,
    ) -> Result<Response<ReportAck>, Status> {
        let report = request.into_inner();
        if report.protocol_version != mmm_proto::PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "observation report protocol version {} is not {}",
                report.protocol_version,
                mmm_proto::PROTOCOL_VERSION
            )));
        }
        self.store.record(report)?;
        Ok(Response::new(ReportAck {
            accepted: true,
            leader: (self.leader_name)().unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_proto::{CheckResult, CheckStatus, HostObservation};

    fn report(monitor: &str, status: CheckStatus) -> ObservationReport {
        ObservationReport {
            protocol_version: mmm_proto::PROTOCOL_VERSION,
            monitor: monitor.into(),
            network_ok: true,
            hosts: vec![HostObservation {
                host: "db1".into(),
                checks: vec![CheckResult {
                    check: "mysql".into(),
                    status: status as i32,
                    message: String::new(),
                    lasted_millis: 10,
                }],
                agent_reachable: true,
                agent_says_mysql_down: false,
                agent_uptime_seconds: 5,
            }],
        }
    }

    #[test]
    fn refuses_strangers_and_signals_only_real_changes() {
        let store = ReportStore::new(vec!["mon1".into(), "mon2".into()]);
        let rx = store.changes();
        assert!(store.record(report("intruder", CheckStatus::Ok)).is_err());
        store.record(report("mon1", CheckStatus::Ok)).unwrap();
        assert_eq!(*rx.borrow(), 1);
        // Same verdicts, other durations: no wake-up.
        let mut again = report("mon1", CheckStatus::Ok);
        again.hosts[0].checks[0].lasted_millis = 999;
        store.record(again).unwrap();
        assert_eq!(*rx.borrow(), 1);
        store.record(report("mon1", CheckStatus::Fail)).unwrap();
        assert_eq!(*rx.borrow(), 2);
        assert_eq!(store.fresh(Duration::from_secs(5)).len(), 1);
    }
}
