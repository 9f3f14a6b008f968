//! The checks as the wire carries them: the `CheckResult`s of a follower's observation report.

use mmm_proto::{CheckResult, HostObservation};

use super::{CheckSnapshot, CheckStatus};

/// The wire's check status.
pub fn proto_status(s: CheckStatus) -> mmm_proto::CheckStatus {
    match s {
        CheckStatus::Ok => mmm_proto::CheckStatus::Ok,
        CheckStatus::Fail => mmm_proto::CheckStatus::Fail,
        CheckStatus::Unknown => mmm_proto::CheckStatus::Unknown,
    }
}

/// One check's latest result, with how long its status has lasted (the leader applies `trap_period`).
pub fn check_result(s: &CheckSnapshot) -> CheckResult {
    CheckResult {
        check: s.check.clone(),
        status: proto_status(s.status) as i32,
        message: s.message.clone(),
        lasted_millis: u64::try_from(s.lasted.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Every host's checks from a snapshot (sorted by host, as the snapshot is). The agent fields are
/// left at "not known" for the caller to fill in from the agent links.
pub fn host_observations(snapshot: &[CheckSnapshot]) -> Vec<HostObservation> {
    let mut out: Vec<HostObservation> = Vec::new();
    for s in snapshot {
        match out.last_mut() {
            Some(h) if h.host == s.host => h.checks.push(check_result(s)),
            _ => out.push(HostObservation {
                host: s.host.clone(),
                checks: vec![check_result(s)],
                ..Default::default()
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn snap(host: &str, check: &str, status: CheckStatus, lasted_ms: u64) -> CheckSnapshot {
        CheckSnapshot {
            host: host.into(),
            check: check.into(),
            status,
            lasted: Duration::from_millis(lasted_ms),
            last_change_unix: 0,
            message: format!("{host} {check}"),
            counted_ok: status == CheckStatus::Ok,
        }
    }

    #[test]
    fn groups_by_host_and_keeps_status_and_lasted() {
        let obs = host_observations(&[
            snap("db1", "ping", CheckStatus::Ok, 10),
            snap("db1", "mysql", CheckStatus::Fail, 2100),
            snap("db2", "ping", CheckStatus::Unknown, 5),
        ]);
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[0].host, "db1");
        assert_eq!(obs[0].checks.len(), 2);
        assert_eq!(obs[0].checks[1].status, mmm_proto::CheckStatus::Fail as i32);
        assert_eq!(obs[0].checks[1].lasted_millis, 2100);
        assert_eq!(obs[0].checks[1].message, "db1 mysql");
        assert_eq!(
            obs[1].checks[0].status,
            mmm_proto::CheckStatus::Unknown as i32
        );
    }
}
