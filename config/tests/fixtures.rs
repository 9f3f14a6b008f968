//! The shipped example configurations load (MMM 2.2.1's samples, the seed walkthrough once its
//! typo is fixed, the 3-monitor cluster of DESIGN.md), and the seed as written is refused clearly.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use common::{fixtures, line_numbers, private_copy};
use mmm_config::{Config, HostMode, ModeSetting, Program, RoleMode};

#[test]
fn seed_with_duplicate_writer_role_is_refused_with_a_clear_message() {
    let dir = private_copy("seed");
    let common = dir.path().join("mmm_common.conf");
    let text = std::fs::read_to_string(&common).unwrap();
    let lines = line_numbers(&text, "<role writer>");
    assert_eq!(lines.len(), 2, "the fixture must keep the seed's typo");
    let expected = format!(
        "{c}:{second}: role 'writer' is defined twice with different contents (first at {c}:{first}); \
         did you mean another role name?",
        c = common.display(),
        first = lines[0],
        second = lines[1]
    );
    for (file, program) in [
        ("mmm_mon.conf", Program::Monitor),
        ("mmm_agent.conf", Program::Agent),
        ("mmm_mon.conf", Program::Control),
    ] {
        let err = Config::from_file(&dir.path().join(file), program).unwrap_err();
        assert!(
            err.iter().any(|e| e.to_string() == expected),
            "{program:?}: expected\n{expected}\nin\n{err}"
        );
    }
}

#[test]
fn corrected_seed_loads_for_every_program() {
    let dir = private_copy("seed-fixed");
    let mon = Config::from_file(&dir.path().join("mmm_mon.conf"), Program::Monitor)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mon.hosts.len(), 4);
    assert_eq!(mon.hosts["db1"].mode, HostMode::Master);
    assert_eq!(mon.hosts["db1"].peer.as_deref(), Some("db2"));
    assert_eq!(mon.hosts["db3"].agent_password.expose(), "123456");
    assert_eq!(mon.hosts["db4"].monitor_user, "mmm_monitor");
    assert_eq!(mon.hosts["db4"].cluster_interface, "eth0");
    // The walkthrough has no active_master_role: the only exclusive role is the writer.
    assert_eq!(mon.writer_role().map(|r| r.name.as_str()), Some("writer"));
    assert!(mon
        .warnings
        .iter()
        .any(|w| w.message.contains("active_master_role is not set")));
    let reader = &mon.roles["reader"];
    assert_eq!(reader.mode, RoleMode::Balanced);
    assert_eq!(reader.hosts, vec!["db3", "db4"]);
    assert_eq!(
        reader.ips,
        vec![
            Ipv4Addr::new(192, 168, 17, 12),
            Ipv4Addr::new(192, 168, 17, 13)
        ]
    );
    assert_eq!(mon.monitor.auto_set_online, Duration::from_secs(10));
    assert_eq!(mon.monitor.ping_ips.len(), 4);
    // MMM's single monitor: a one-node cluster, with a warning.
    assert!(mon.single_monitor);
    assert_eq!(mon.monitor_nodes.len(), 1);
    assert_eq!(
        mon.this_monitor_node().map(|n| n.name.as_str()),
        Some("monitor")
    );
    assert!(mon
        .warnings
        .iter()
        .any(|w| w.message.contains("no redundancy")));

    let agent = Config::from_file(&dir.path().join("mmm_agent.conf"), Program::Agent)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        agent.this_host().map(|h| h.ip),
        Some(IpAddr::from([192, 168, 17, 1]))
    );
    assert_eq!(
        agent.agent_state_dir(),
        Path::new("/var/lib/mysql-mmm/agent-db1")
    );

    let ctl = Config::from_file(&dir.path().join("mmm_mon.conf"), Program::Control)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ctl.monitor_nodes["monitor"].port, 9988);
}

#[test]
fn mmm_2_2_1_samples_load_unchanged() {
    let dir = private_copy("mmm-2.2.1");
    let mon = Config::from_file(&dir.path().join("mmm_mon.conf"), Program::Monitor)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mon.active_master_role.as_deref(), Some("writer"));
    assert_eq!(mon.monitor.ip, Some(IpAddr::from([127, 0, 0, 1])));
    assert_eq!(mon.monitor.auto_set_online, Duration::from_secs(60));
    assert_eq!(mon.monitor.mode, ModeSetting::Active);
    assert_eq!(
        mon.monitor.status_path.as_deref(),
        Some(Path::new("/var/lib/mysql-mmm/mmm_mond.status"))
    );
    // status_path is refused with its reason (a warning naming its line), not silently dropped.
    assert!(
        mon.warnings.iter().any(|w| w.line.is_some()
            && w.message
                .starts_with("status_path is not used: mmm-rs keeps host states")),
        "{:?}",
        mon.warnings
    );
    assert_eq!(mon.hosts["db2"].monitor_password.expose(), "RepMonitor");
    assert_eq!(mon.hosts["db3"].agent_port, 9989);
    assert_eq!(mon.hosts["db3"].mysql_port, 3306);
    assert_eq!(mon.roles["reader"].ips.len(), 3);
    assert_eq!(
        mon.role_of_ip(Ipv4Addr::new(192, 168, 0, 50))
            .map(|r| r.name.as_str()),
        Some("writer")
    );
    assert!(mon.role_of_ip(Ipv4Addr::new(192, 168, 0, 99)).is_none());
    assert!(!mon.debug);
    // Our check timing defaults (a config that sets them keeps its values: see cluster3).
    assert_eq!(mon.checks.mysql.check_period, Duration::from_secs(1));
    assert_eq!(mon.checks.ping.trap_period, Duration::from_secs(2));
    assert_eq!(mon.checks.rep_threads.timeout, Duration::from_secs(1));
    assert_eq!(mon.checks.rep_backlog.max_backlog, Duration::from_secs(60));
    assert_eq!(mon.checks.mysql.restart_after, 10_000);
    assert_eq!(mon.monitor.writer_lease, Duration::from_secs(2));
    assert_eq!(mon.monitor.hook_timeout, Duration::from_secs(10));
    assert_eq!(mon.max_kill_retries, 10);
    assert_eq!(
        mon.monitor_data_dir(),
        Path::new("/var/lib/mysql-mmm/monitor")
    );

    let agent = Config::from_file(&dir.path().join("mmm_agent.conf"), Program::Agent)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(agent.this.as_deref(), Some("db1"));
    assert_eq!(
        agent.this_host().map(|h| h.replication_user.as_str()),
        Some("replication")
    );
}

#[test]
fn three_monitor_cluster_from_design_loads() {
    let dir = private_copy("cluster3");
    let mon = Config::from_file(&dir.path().join("mmm_mon.conf"), Program::Monitor)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!mon.single_monitor);
    assert_eq!(
        mon.monitor_nodes
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        vec!["mon1", "mon2", "mon3"]
    );
    let me = mon.this_monitor_node().expect("this monitor");
    assert_eq!(me.name, "mon1");
    assert_eq!(me.ip, IpAddr::from([10, 0, 0, 21]));
    assert_eq!((me.port, me.metrics_port), (9988, 9990));
    assert_eq!(mon.monitor_data_dir(), Path::new("/var/lib/mysql-mmm/mon1"));
    assert_eq!(mon.roles["writer"].prefer.as_deref(), Some("db1"));
    // <check default> fills every check; a check's own key wins.
    for name in mmm_config::Checks::NAMES {
        let c = mon.checks.get(name).unwrap();
        assert_eq!(c.check_period, Duration::from_millis(500), "{name}");
        assert_eq!(c.trap_period, Duration::from_secs(2), "{name}");
    }
    assert_eq!(mon.checks.rep_backlog.max_backlog, Duration::from_secs(30));
    assert!(mon
        .warnings
        .iter()
        .all(|w| !w.message.contains("no redundancy")));

    let agent = Config::from_file(&dir.path().join("mmm_agent.conf"), Program::Agent)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(agent.this_host().map(|h| h.name.as_str()), Some("db1"));
    assert_eq!(agent.monitor_nodes.len(), 3);
    assert!(agent.this_monitor_node().is_none());
}

#[test]
fn fixtures_load_through_from_str_for_tests_without_copying() {
    let file = fixtures().join("cluster3/mmm_mon.conf");
    let text = std::fs::read_to_string(&file).unwrap();
    let c = Config::from_str_for_tests(&text, file.to_str().unwrap(), Program::Monitor)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.this.as_deref(), Some("mon1"));
    assert_eq!(c.hosts.len(), 3);
}
