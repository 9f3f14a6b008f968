//! Malformed requests to a monitor: arbitrary bytes decoded as every request a monitor takes from
//! the network (observation reports, control commands) and then handled. Nothing panics.

use mmm_consensus::{ClusterState, Command, Epoch, HostState, Request};
use mmm_monitor::convert::report_from_proto;
use mmm_monitor::reports::ReportStore;
use mmm_proto::{ChecksRequest, HostRequest, MoveRoleRequest, ObservationReport, SetIpRequest};
use proptest::prelude::*;
use prost::Message;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_observation_reports_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let store = ReportStore::new(vec!["mon1".into(), "mon2".into()]);
        if let Ok(report) = ObservationReport::decode(bytes.as_slice()) {
            let _ = report_from_proto(&report, 0);
            if let Err(status) = store.record(report) {
                prop_assert!(!status.message().is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_control_requests_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = HostRequest::decode(bytes.as_slice());
        let _ = ChecksRequest::decode(bytes.as_slice());
        let _ = MoveRoleRequest::decode(bytes.as_slice());
        let _ = SetIpRequest::decode(bytes.as_slice());
    }

    #[test]
    fn commands_naming_anything_are_refused_without_panic(host in ".{0,10}", ip in ".{0,16}") {
        let mut state = ClusterState::default();
        let reg = Request { time_ms: 1, reason: "test".into(), command: Command::Register { hosts: vec!["db1".into()], role_ips: vec![("writer".into(), "10.0.0.1".into())], cluster_id: None } };
        state.apply(Epoch { term: 1, index: 1 }, &reg);
        for (i, command) in [
            Command::SetHostState { host: host.clone(), state: HostState::Online },
            Command::SetRoleOwner { ip: ip.clone(), owner: Some(host.clone()) },
            Command::SetActiveMaster { host: Some(host.clone()) },
            Command::FailoverStep { step: mmm_consensus::FailoverStep::Promote },
        ].into_iter().enumerate() {
            let before = state.clone();
            let r = state.apply(Epoch { term: 1, index: 2 + i as u64 }, &Request { time_ms: 2, reason: "fuzz".into(), command });
            if r.error.is_some() {
                prop_assert_eq!(&state.hosts, &before.hosts, "a refused command changes nothing");
                prop_assert_eq!(&state.role_ips, &before.role_ips);
            }
        }
    }
}
