//! Conversions between the wire's observation reports and the decision engine's input.

use mmm_proto::ObservationReport;

use crate::engine::{CheckObs, CheckStatus, HostObservation, MonitorReport};

/// The engine's view of one monitor's report, received at `received_ms`.
pub fn report_from_proto(r: &ObservationReport, received_ms: u64) -> MonitorReport {
    MonitorReport {
        received_ms,
        network_ok: r.network_ok,
        hosts: r
            .hosts
            .iter()
            .map(|h| {
                (
                    h.host.clone(),
                    HostObservation {
                        checks: h
                            .checks
                            .iter()
                            .map(|c| {
                                let status = match mmm_proto::CheckStatus::try_from(c.status) {
                                    Ok(mmm_proto::CheckStatus::Ok) => CheckStatus::Ok,
                                    Ok(mmm_proto::CheckStatus::Fail) => CheckStatus::Fail,
                                    _ => CheckStatus::Unknown,
                                };
                                (
                                    c.check.clone(),
                                    CheckObs {
                                        status,
                                        lasted_ms: c.lasted_millis,
                                        message: c.message.clone(),
                                    },
                                )
                            })
                            .collect(),
                        agent_reachable: h.agent_reachable,
                        agent_says_mysql_down: h.agent_says_mysql_down,
                        agent_detail: String::new(),
                        agent_uptime_s: (h.agent_uptime_seconds > 0)
                            .then_some(h.agent_uptime_seconds),
                    },
                )
            })
            .collect(),
    }
}

/// Converts a state host state to its wire form.
pub fn host_state_to_proto(s: mmm_consensus::HostState) -> mmm_proto::HostState {
    use mmm_consensus::HostState as S;
    use mmm_proto::HostState;
    match s {
        S::Unknown => HostState::Unknown,
        S::Online => HostState::Online,
        S::AdminOffline => HostState::AdminOffline,
        S::HardOffline => HostState::HardOffline,
        S::AwaitingRecovery => HostState::AwaitingRecovery,
        S::ReplicationDelay => HostState::ReplicationDelay,
        S::ReplicationFail => HostState::ReplicationFail,
    }
}

/// Milliseconds since the Unix epoch (the leader's clock stamps its proposals; never used for leases).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_proto::{CheckResult, HostObservation as PHost};

    #[test]
    fn statuses_and_durations_survive_the_conversion() {
        let r = ObservationReport {
            protocol_version: 1,
            monitor: "mon2".into(),
            network_ok: true,
            hosts: vec![PHost {
                host: "db1".into(),
                checks: vec![
                    CheckResult {
                        check: "mysql".into(),
                        status: mmm_proto::CheckStatus::Fail as i32,
                        message: "refused".into(),
                        lasted_millis: 2100,
                    },
                    CheckResult {
                        check: "ping".into(),
                        status: 99,
                        message: String::new(),
                        lasted_millis: 5,
                    },
                ],
                agent_reachable: true,
                agent_says_mysql_down: true,
                agent_uptime_seconds: 0,
            }],
        };
        let m = report_from_proto(&r, 1234);
        let h = &m.hosts["db1"];
        assert_eq!(m.received_ms, 1234);
        assert_eq!(h.checks["mysql"].status, CheckStatus::Fail);
        assert_eq!(h.checks["mysql"].lasted_ms, 2100);
        assert_eq!(
            h.checks["ping"].status,
            CheckStatus::Unknown,
            "an unknown wire value is Unknown"
        );
        assert!(h.agent_says_mysql_down);
        assert_eq!(h.agent_uptime_s, None);
    }
}
