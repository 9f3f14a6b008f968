//! Malformed SetStatus requests: arbitrary bytes and mutated valid messages go through protobuf
//! decoding and the agent's validation. Nothing panics; every refusal names what is wrong.

use mmm_agent::topology::Topology;
use mmm_agent::validate::validate_set_status;
use mmm_config::{Config, Program};
use mmm_proto::{Epoch, HostState, RoleIp, SetStatusRequest, PROTOCOL_VERSION};
use proptest::prelude::*;
use prost::Message;

fn topology() -> Topology {
    let text = "active_master_role writer\n\
        <host default>\n    cluster_interface eth0\n    agent_user a\n    agent_password p\n    \
        replication_user r\n    replication_password p\n    monitor_user m\n    monitor_password p\n</host>\n\
        <host db1>\n    ip 192.0.2.11\n    mode master\n    peer db2\n</host>\n\
        <host db2>\n    ip 192.0.2.12\n    mode master\n    peer db1\n</host>\n\
        <role writer>\n    hosts db1, db2\n    ips 192.0.2.100\n    mode exclusive\n</role>\n\
        <role reader>\n    hosts db1, db2\n    ips 192.0.2.101\n    mode balanced\n</role>\n\
        this db1\n";
    let config =
        Config::from_str_for_tests(text, "mmm_agent.conf", Program::Agent).expect("config");
    Topology::from_config(&config)
}

fn valid() -> SetStatusRequest {
    SetStatusRequest {
        protocol_version: PROTOCOL_VERSION,
        host: "db1".into(),
        epoch: Some(Epoch { term: 2, index: 7 }),
        state: HostState::Online as i32,
        roles: vec![
            RoleIp {
                role: "writer".into(),
                ip: "192.0.2.100".into(),
            },
            RoleIp {
                role: "reader".into(),
                ip: "192.0.2.101".into(),
            },
        ],
        active_master: "db1".into(),
        lease_millis: 3000,
        monitor: "mon1".into(),
        catchup_timeout_millis: 1000,
        hold_writes: false,
        cluster_id: "0123456789abcdef0123456789abcdef".into(),
        ..Default::default()
    }
}

#[test]
fn the_valid_request_is_accepted() {
    assert!(validate_set_status(&topology(), &valid()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let topo = topology();
        if let Ok(req) = SetStatusRequest::decode(bytes.as_slice()) {
            if let Err(status) = validate_set_status(&topo, &req) {
                prop_assert!(!status.message().is_empty());
            }
        }
    }

    #[test]
    fn mutated_valid_requests_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let topo = topology();
        let mut bytes = valid().encode_to_vec();
        for (i, b) in flips {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        if let Ok(req) = SetStatusRequest::decode(bytes.as_slice()) {
            match validate_set_status(&topo, &req) {
                Ok(_) => {}
                Err(status) => prop_assert!(!status.message().is_empty()),
            }
        }
    }

    #[test]
    fn any_strings_in_fields_are_refused_with_the_field_named(host in ".{0,12}", role in ".{0,12}", ip in ".{0,20}", am in ".{0,8}") {
        let topo = topology();
        let mut req = valid();
        req.host = host.clone();
        req.roles = vec![RoleIp { role: role.clone(), ip: ip.clone() }];
        req.active_master = am;
        if let Err(status) = validate_set_status(&topo, &req) {
            let m = status.message();
            prop_assert!(
                ["host", "roles", "active_master", "lease", "epoch", "state", "protocol"].iter().any(|f| m.contains(f)),
                "the refusal names a field: {}", m
            );
        }
    }
}
