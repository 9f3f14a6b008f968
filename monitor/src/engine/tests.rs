//! Table-driven tests of the decision engine: no sockets, sleeps or databases.

// Table rows are tuples, one per case; naming each tuple type would only add noise.
#![allow(clippy::type_complexity)]

use std::collections::BTreeMap;

use mmm_consensus::{ClusterState, Command, Epoch, FailoverStep, HostState, Mode, Request};

use super::*;

const NOW: u64 = 10_000_000;
const MONS: [&str; 3] = ["mon1", "mon2", "mon3"];
const WIP: &str = "10.0.0.100";
const R1: &str = "10.0.0.101";
const R2: &str = "10.0.0.102";

fn cfg() -> EngineConfig {
    let mut c = EngineConfig::default();
    let host = |kind, peer: Option<&str>| EngineHost {
        kind,
        peer: peer.map(str::to_string),
    };
    c.hosts
        .insert("db1".into(), host(HostKind::Master, Some("db2")));
    c.hosts
        .insert("db2".into(), host(HostKind::Master, Some("db1")));
    c.hosts.insert("db3".into(), host(HostKind::Slave, None));
    c.hosts.insert("db4".into(), host(HostKind::Slave, None));
    c.roles.insert(
        "writer".into(),
        EngineRole {
            exclusive: true,
            hosts: vec!["db1".into(), "db2".into()],
            ips: vec![WIP.into()],
            prefer: None,
        },
    );
    c.roles.insert(
        "reader".into(),
        EngineRole {
            exclusive: false,
            hosts: vec!["db3".into(), "db4".into()],
            ips: vec![R1.into(), R2.into()],
            prefer: None,
        },
    );
    c.writer_role = Some("writer".into());
    c
}

fn req(command: Command) -> Request {
    Request {
        time_ms: 0,
        reason: "test setup".into(),
        command,
    }
}

/// Every host ONLINE since 0, db1 the active master, readers on db3 and db4.
fn base_state(c: &EngineConfig) -> ClusterState {
    let mut s = ClusterState::default();
    let hosts: Vec<String> = c.hosts.keys().cloned().collect();
    let role_ips = c
        .roles
        .iter()
        .flat_map(|(n, r)| r.ips.iter().map(move |ip| (n.clone(), ip.clone())))
        .collect();
    let mut cmds = vec![Command::Register {
        hosts: hosts.clone(),
        role_ips,
        cluster_id: None,
    }];
    for h in &hosts {
        cmds.push(Command::SetHostState {
            host: h.clone(),
            state: HostState::Online,
        });
    }
    cmds.push(Command::SetActiveMaster {
        host: Some("db1".into()),
    });
    for (ip, h) in [(WIP, "db1"), (R1, "db3"), (R2, "db4")] {
        cmds.push(Command::SetRoleOwner {
            ip: ip.into(),
            owner: Some(h.into()),
        });
    }
    let r = s.apply(Epoch { term: 1, index: 10 }, &req(Command::Batch(cmds)));
    assert_eq!(r.error, None);
    s
}

fn set_state(s: &mut ClusterState, host: &str, st: HostState, since_ms: u64) {
    let rec = s.hosts.get_mut(host).expect("host");
    rec.state = st;
    rec.since_ms = since_ms;
}

fn ok_check() -> CheckObs {
    CheckObs {
        status: CheckStatus::Ok,
        lasted_ms: 60_000,
        message: String::new(),
    }
}

fn healthy_obs() -> HostObservation {
    HostObservation {
        checks: CHECK_NAMES
            .iter()
            .map(|c| (c.to_string(), ok_check()))
            .collect(),
        agent_reachable: true,
        agent_says_mysql_down: false,
        agent_detail: String::new(),
        agent_uptime_s: Some(5_000),
    }
}

/// Three fresh reports seeing every host healthy; every agent reachable and up to date.
fn healthy_input(c: &EngineConfig, s: &ClusterState, now: u64) -> Input {
    let hosts: BTreeMap<String, HostObservation> =
        c.hosts.keys().map(|h| (h.clone(), healthy_obs())).collect();
    let reports = MONS
        .iter()
        .map(|m| {
            let r = MonitorReport {
                received_ms: now,
                network_ok: true,
                hosts: hosts.clone(),
            };
            (m.to_string(), r)
        })
        .collect();
    let agents = c
        .hosts
        .keys()
        .map(|h| {
            let writer = s.active_master.as_deref() == Some(h.as_str());
            let f = AgentFacts {
                reachable: true,
                acked_epoch: Some(s.last_epoch),
                demotion_acked_epoch: (!writer).then_some(s.last_epoch),
                writable: writer,
                holds_writer_vip: writer,
                ..Default::default()
            };
            (h.clone(), f)
        })
        .collect();
    Input {
        now_ms: now,
        leader: "mon1".into(),
        monitors_total: 3,
        reports,
        agents,
        startup: None,
    }
}

fn set_check(
    input: &mut Input,
    mons: &[&str],
    host: &str,
    check: &str,
    status: CheckStatus,
    lasted_ms: u64,
) {
    for m in mons {
        let obs = input
            .reports
            .get_mut(*m)
            .and_then(|r| r.hosts.get_mut(host))
            .expect("observation");
        obs.checks.insert(
            check.into(),
            CheckObs {
                status,
                lasted_ms,
                message: format!("{check} broken"),
            },
        );
    }
}

fn fail(input: &mut Input, host: &str, check: &str) {
    set_check(input, &MONS, host, check, CheckStatus::Fail, 2_100);
}

fn flatten(cmd: &Command, out: &mut Vec<Command>) {
    match cmd {
        Command::Batch(cs) => cs.iter().for_each(|c| flatten(c, out)),
        c => out.push(c.clone()),
    }
}

fn commands(out: &Output) -> Vec<Command> {
    let mut v = Vec::new();
    out.proposals
        .iter()
        .for_each(|p| flatten(&p.command, &mut v));
    v
}

fn state_changes(out: &Output) -> Vec<(String, HostState)> {
    commands(out)
        .into_iter()
        .filter_map(|c| match c {
            Command::SetHostState { host, state } => Some((host, state)),
            _ => None,
        })
        .collect()
}

fn owner_changes(out: &Output) -> Vec<(String, Option<String>)> {
    commands(out)
        .into_iter()
        .filter_map(|c| match c {
            Command::SetRoleOwner { ip, owner } => Some((ip, owner)),
            _ => None,
        })
        .collect()
}

/// Commits the proposals the way the leader does.
fn commit(s: &ClusterState, out: &Output) -> ClusterState {
    let mut s = s.clone();
    for p in &out.proposals {
        let e = Epoch {
            term: s.last_epoch.term,
            index: s.last_epoch.index + 1,
        };
        let r = s.apply(e, p);
        assert_eq!(r.error, None, "proposal refused: {p:?}");
    }
    s
}

fn reasons(out: &Output) -> String {
    out.proposals
        .iter()
        .map(|p| p.reason.clone())
        .collect::<Vec<_>>()
        .join(" | ")
}

// ---------------------------------------------------------------- evidence

#[test]
fn evidence_needs_a_majority_of_fresh_reports_for_a_trap_period() {
    let c = cfg();
    // (failing monitors, lasted ms, stale monitors, network-down monitors, expected)
    type Row = (
        &'static [&'static str],
        u64,
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
    );
    let rows: &[Row] = &[
        (&["mon1", "mon2"], 2_100, &[], &[], "failed"),
        (&["mon1", "mon2", "mon3"], 2_000, &[], &[], "failed"),
        (&["mon1"], 9_000, &[], &[], "ok"),
        (&["mon1"], 9_000, &["mon2"], &[], "unknown"),
        (&["mon1", "mon2"], 1_999, &[], &[], "unknown"),
        (&["mon1", "mon2"], 5_000, &["mon2"], &[], "unknown"),
        (&["mon1", "mon2"], 5_000, &[], &["mon1"], "unknown"),
        (&[], 0, &[], &[], "ok"),
        (&[], 0, &["mon1", "mon2"], &[], "unknown"),
    ];
    for (i, (failing, lasted, stale, netdown, expect)) in rows.iter().enumerate() {
        let s = base_state(&c);
        let mut input = healthy_input(&c, &s, NOW);
        set_check(
            &mut input,
            failing,
            "db3",
            "mysql",
            CheckStatus::Fail,
            *lasted,
        );
        for m in *stale {
            input.reports.get_mut(*m).expect("report").received_ms = NOW - c.report_ttl_ms - 1;
        }
        for m in *netdown {
            input.reports.get_mut(*m).expect("report").network_ok = false;
        }
        let v = host_evidence(&input, &c, "db3").mysql;
        let got = match v {
            Verdict::Ok => "ok",
            Verdict::Failed(_) => "failed",
            Verdict::Unknown => "unknown",
        };
        assert_eq!(got, *expect, "row {i}: {failing:?} lasted {lasted}");
    }
}

#[test]
fn evidence_reason_names_monitors_and_duration() {
    let c = cfg();
    let s = base_state(&c);
    let mut input = healthy_input(&c, &s, NOW);
    set_check(
        &mut input,
        &["mon1"],
        "db3",
        "mysql",
        CheckStatus::Fail,
        2_500,
    );
    set_check(
        &mut input,
        &["mon2"],
        "db3",
        "mysql",
        CheckStatus::Fail,
        2_100,
    );
    let v = host_evidence(&input, &c, "db3").mysql;
    assert_eq!(
        v.reason(),
        Some("mysql check failed on 2/3 monitors for 2.1 s (mysql broken)")
    );
}

#[test]
fn definite_agent_evidence_fails_mysql_at_once() {
    let c = cfg();
    let s = base_state(&c);
    let mut input = healthy_input(&c, &s, NOW);
    let obs = input
        .reports
        .get_mut("mon2")
        .and_then(|r| r.hosts.get_mut("db3"))
        .expect("obs");
    obs.agent_says_mysql_down = true;
    obs.agent_detail = "connection refused".into();
    let out = decide(&s, &input, &c);
    assert_eq!(
        state_changes(&out),
        vec![("db3".to_string(), HostState::HardOffline)]
    );
    assert!(
        reasons(&out).contains("agent on db3 reports mysqld down: connection refused"),
        "{}",
        reasons(&out)
    );
}

#[test]
fn unknown_check_results_never_change_state() {
    let c = cfg();
    let states = [
        HostState::Unknown,
        HostState::Online,
        HostState::HardOffline,
        HostState::AwaitingRecovery,
        HostState::ReplicationFail,
        HostState::ReplicationDelay,
        HostState::AdminOffline,
    ];
    for st in states {
        let mut s = base_state(&c);
        set_state(&mut s, "db3", st, 0);
        let mut input = healthy_input(&c, &s, NOW);
        for check in CHECK_NAMES {
            set_check(
                &mut input,
                &MONS,
                "db3",
                check,
                CheckStatus::Unknown,
                99_000,
            );
        }
        let ev = all_evidence(&input, &c);
        assert_eq!(
            next_state(&s, &c, &ev, "db3", NOW),
            None,
            "{st} moved on unknown results"
        );
    }
}

#[test]
fn leader_with_bad_or_stale_network_decides_nothing() {
    let c = cfg();
    let s = base_state(&c);
    for case in 0..3 {
        let mut input = healthy_input(&c, &s, NOW);
        fail(&mut input, "db1", "mysql");
        match case {
            0 => input.reports.get_mut("mon1").expect("own").network_ok = false,
            1 => {
                input.reports.remove("mon1");
            }
            _ => input.reports.get_mut("mon1").expect("own").received_ms = 0,
        }
        assert_eq!(decide(&s, &input, &c), Output::default(), "case {case}");
    }
}

// ---------------------------------------------------------------- state machine

struct Row {
    name: &'static str,
    from: HostState,
    /// (check, status) overrides on every monitor for db3 (a slave; its peer is the active master db1).
    checks: &'static [(&'static str, CheckStatus)],
    /// db1 (the peer) ONLINE since (ms before NOW); None = db1 HARD_OFFLINE.
    peer_online_for: Option<u64>,
    expect: Option<HostState>,
}

#[test]
fn mmm_state_machine_table() {
    use CheckStatus::{Fail, Ok as Good};
    use HostState::*;
    let rows = [
        Row {
            name: "online ping fails",
            from: Online,
            checks: &[("ping", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(HardOffline),
        },
        Row {
            name: "online mysql fails",
            from: Online,
            checks: &[("mysql", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(HardOffline),
        },
        Row {
            name: "online rep_threads, peer settled",
            from: Online,
            checks: &[("rep_threads", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(ReplicationFail),
        },
        Row {
            name: "online rep_backlog, peer settled",
            from: Online,
            checks: &[("rep_backlog", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(ReplicationDelay),
        },
        Row {
            name: "online rep_threads, peer online < 60 s",
            from: Online,
            checks: &[("rep_threads", Fail)],
            peer_online_for: Some(30_000),
            expect: None,
        },
        Row {
            name: "online rep_threads, peer down",
            from: Online,
            checks: &[("rep_threads", Fail)],
            peer_online_for: None,
            expect: None,
        },
        Row {
            name: "hard_offline back, replication fine",
            from: HardOffline,
            checks: &[],
            peer_online_for: Some(120_000),
            expect: Some(AwaitingRecovery),
        },
        Row {
            name: "hard_offline back, rep_threads bad",
            from: HardOffline,
            checks: &[("rep_threads", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(ReplicationFail),
        },
        Row {
            name: "hard_offline back, backlog bad",
            from: HardOffline,
            checks: &[("rep_backlog", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(ReplicationDelay),
        },
        Row {
            name: "hard_offline still down",
            from: HardOffline,
            checks: &[("mysql", Fail)],
            peer_online_for: Some(120_000),
            expect: None,
        },
        Row {
            name: "replication_fail recovers",
            from: ReplicationFail,
            checks: &[],
            peer_online_for: Some(120_000),
            expect: Some(Online),
        },
        Row {
            name: "replication_delay recovers",
            from: ReplicationDelay,
            checks: &[],
            peer_online_for: Some(120_000),
            expect: Some(Online),
        },
        Row {
            name: "replication_fail, peer not online",
            from: ReplicationFail,
            checks: &[("rep_threads", Fail)],
            peer_online_for: None,
            expect: Some(Online),
        },
        Row {
            name: "replication_fail -> delay",
            from: ReplicationFail,
            checks: &[("rep_backlog", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(ReplicationDelay),
        },
        Row {
            name: "replication_delay -> fail",
            from: ReplicationDelay,
            checks: &[("rep_threads", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(ReplicationFail),
        },
        Row {
            name: "replication_fail, mysql down",
            from: ReplicationFail,
            checks: &[("mysql", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(HardOffline),
        },
        Row {
            name: "awaiting_recovery, mysql down",
            from: AwaitingRecovery,
            checks: &[("mysql", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(HardOffline),
        },
        Row {
            name: "awaiting_recovery, long outage, auto off",
            from: AwaitingRecovery,
            checks: &[],
            peer_online_for: Some(120_000),
            expect: None,
        },
        Row {
            name: "admin_offline ignores failures",
            from: AdminOffline,
            checks: &[("mysql", Fail)],
            peer_online_for: Some(120_000),
            expect: None,
        },
        Row {
            name: "admin_offline ignores recovery",
            from: AdminOffline,
            checks: &[("ping", Good)],
            peer_online_for: Some(120_000),
            expect: None,
        },
        Row {
            name: "unknown judged online",
            from: Unknown,
            checks: &[],
            peer_online_for: Some(120_000),
            expect: Some(Online),
        },
        Row {
            name: "unknown judged down",
            from: Unknown,
            checks: &[("ping", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(HardOffline),
        },
        Row {
            name: "unknown with broken replication",
            from: Unknown,
            checks: &[("rep_threads", Fail)],
            peer_online_for: Some(120_000),
            expect: Some(ReplicationFail),
        },
        Row {
            name: "unknown, broken replication, peer unsettled",
            from: Unknown,
            checks: &[("rep_threads", Fail)],
            peer_online_for: Some(1_000),
            expect: Some(Online),
        },
    ];
    let c = cfg();
    for row in rows {
        let mut s = base_state(&c);
        set_state(&mut s, "db3", row.from, NOW - 1_000);
        match row.peer_online_for {
            Some(t) => set_state(&mut s, "db1", Online, NOW - t),
            None => set_state(&mut s, "db1", HardOffline, NOW - 1_000),
        }
        let mut input = healthy_input(&c, &s, NOW);
        for (check, status) in row.checks {
            set_check(&mut input, &MONS, "db3", check, *status, 2_100);
        }
        if row.peer_online_for.is_none() {
            fail(&mut input, "db1", "ping");
        }
        let ev = all_evidence(&input, &c);
        let got = next_state(&s, &c, &ev, "db3", NOW).map(|t| t.to);
        assert_eq!(got, row.expect, "{}", row.name);
    }
}

#[test]
fn active_master_never_drops_for_replication_problems() {
    let c = cfg();
    let mut s = base_state(&c);
    set_state(&mut s, "db2", HostState::Online, NOW - 600_000);
    let mut input = healthy_input(&c, &s, NOW);
    fail(&mut input, "db1", "rep_threads");
    let ev = all_evidence(&input, &c);
    assert_eq!(next_state(&s, &c, &ev, "db1", NOW), None);
    // db2 (not the active master) with its peer db1 settled does drop.
    fail(&mut input, "db2", "rep_threads");
    let ev = all_evidence(&input, &c);
    assert_eq!(
        next_state(&s, &c, &ev, "db2", NOW).map(|t| t.to),
        Some(HostState::ReplicationFail)
    );
}

#[test]
fn awaiting_recovery_short_outage_reboot_and_auto_set_online() {
    // (recorded uptime at drop, uptime now, auto_set_online ms, in state for ms, expected)
    let rows: &[(Option<u64>, Option<u64>, u64, u64, Option<HostState>)] = &[
        (Some(5_000), Some(5_020), 0, 1_000, Some(HostState::Online)),
        (Some(5_000), Some(5_070), 0, 1_000, None),
        (Some(5_000), Some(10), 0, 1_000, None),
        (None, Some(5_020), 0, 1_000, None),
        (Some(5_000), Some(10), 10_000, 9_000, None),
        (
            Some(5_000),
            Some(10),
            10_000,
            10_000,
            Some(HostState::Online),
        ),
    ];
    let mut c = cfg();
    for (i, (then, now_up, auto, waited, expect)) in rows.iter().enumerate() {
        c.auto_set_online_ms = *auto;
        let mut s = base_state(&c);
        set_state(&mut s, "db3", HostState::AwaitingRecovery, NOW - waited);
        s.hosts.get_mut("db3").expect("db3").agent_uptime_s = *then;
        let mut input = healthy_input(&c, &s, NOW);
        for r in input.reports.values_mut() {
            r.hosts.get_mut("db3").expect("obs").agent_uptime_s = *now_up;
        }
        let ev = all_evidence(&input, &c);
        let got = next_state(&s, &c, &ev, "db3", NOW).map(|t| t.to);
        assert_eq!(got, *expect, "row {i}");
    }
}

#[test]
fn awaiting_recovery_needs_all_checks_ok() {
    let mut c = cfg();
    c.auto_set_online_ms = 1_000;
    let mut s = base_state(&c);
    set_state(&mut s, "db3", HostState::AwaitingRecovery, NOW - 60_000);
    let mut input = healthy_input(&c, &s, NOW);
    set_check(
        &mut input,
        &MONS,
        "db3",
        "rep_backlog",
        CheckStatus::Fail,
        100,
    );
    let ev = all_evidence(&input, &c);
    assert_eq!(next_state(&s, &c, &ev, "db3", NOW), None);
}

#[test]
fn flapping_host_is_marked_and_held_in_awaiting_recovery() {
    let mut c = cfg();
    c.flap_count = 2;
    c.flap_duration_ms = 600_000;
    let mut s = base_state(&c);
    // Two earlier drops inside the window, one outside.
    s.hosts.get_mut("db3").expect("db3").online_drops_ms =
        vec![NOW - 900_000, NOW - 300_000, NOW - 100_000];
    let mut input = healthy_input(&c, &s, NOW);
    fail(&mut input, "db3", "ping");
    let out = decide(&s, &input, &c);
    assert!(
        commands(&out).contains(&Command::MarkFlapping { host: "db3".into() }),
        "{:?}",
        commands(&out)
    );
    assert!(
        reasons(&out).contains("flapping: 3 drops"),
        "{}",
        reasons(&out)
    );
    // With one earlier drop inside the window it is not flapping yet.
    s.hosts.get_mut("db3").expect("db3").online_drops_ms = vec![NOW - 300_000];
    let out = decide(&s, &input, &c);
    assert!(!commands(&out).contains(&Command::MarkFlapping { host: "db3".into() }));

    // REPLICATION_FAIL -> AWAITING_RECOVERY when flapping.
    let mut s = base_state(&c);
    set_state(&mut s, "db3", HostState::ReplicationFail, NOW - 1_000);
    s.hosts.get_mut("db3").expect("db3").flapping = true;
    let ev = all_evidence(&healthy_input(&c, &s, NOW), &c);
    assert_eq!(
        next_state(&s, &c, &ev, "db3", NOW).map(|t| t.to),
        Some(HostState::AwaitingRecovery)
    );

    // AWAITING_RECOVERY: a flapping host waits for flap_duration without drops, even with a short outage.
    c.auto_set_online_ms = 1_000;
    for (last_drop_ago, expect) in [(100_000, None), (600_000, Some(HostState::Online))] {
        let mut s = base_state(&c);
        set_state(&mut s, "db3", HostState::AwaitingRecovery, NOW - 50_000);
        let rec = s.hosts.get_mut("db3").expect("db3");
        rec.flapping = true;
        rec.online_drops_ms = vec![NOW - last_drop_ago];
        rec.agent_uptime_s = Some(4_990);
        let ev = all_evidence(&healthy_input(&c, &s, NOW), &c);
        let t = next_state(&s, &c, &ev, "db3", NOW);
        assert_eq!(
            t.as_ref().map(|t| t.to),
            expect,
            "last drop {last_drop_ago} ms ago"
        );
        if let Some(t) = t {
            assert!(t.clear_flapping);
        }
    }
}

#[test]
fn drop_records_agent_uptime_for_the_short_outage_rule() {
    let c = cfg();
    let s = base_state(&c);
    let mut input = healthy_input(&c, &s, NOW);
    fail(&mut input, "db3", "mysql");
    let out = decide(&s, &input, &c);
    assert!(commands(&out).contains(&Command::SetAgentUptime {
        host: "db3".into(),
        uptime_s: Some(5_000)
    }));
}

// ---------------------------------------------------------------- modes and placement

#[test]
fn failed_reader_loses_roles_in_active_mode_only() {
    let c = cfg();
    for (mode, expect_moved) in [
        (Mode::Active, true),
        (Mode::Manual, false),
        (Mode::Wait, false),
        (Mode::Passive, false),
    ] {
        let mut s = base_state(&c);
        s.mode = mode;
        // Keep wait mode waiting: db2 is out, db1 came up just now.
        set_state(&mut s, "db2", HostState::AdminOffline, NOW);
        set_state(&mut s, "db1", HostState::Online, NOW - 1_000);
        let mut input = healthy_input(&c, &s, NOW);
        fail(&mut input, "db3", "mysql");
        let out = decide(&s, &input, &c);
        // The state change is recorded in every mode.
        assert_eq!(
            state_changes(&out),
            vec![("db3".to_string(), HostState::HardOffline)],
            "{mode}"
        );
        let moved = owner_changes(&out);
        if expect_moved {
            assert_eq!(
                moved,
                vec![(R1.to_string(), Some("db4".to_string()))],
                "{mode}"
            );
            assert!(
                reasons(&out).contains("db3 is HARD_OFFLINE; reader(10.0.0.101) moves to db4"),
                "{}",
                reasons(&out)
            );
        } else {
            assert!(moved.is_empty(), "{mode}: {moved:?}");
        }
    }
}

#[test]
fn passive_mode_sends_only_the_writers_lease_renewal() {
    let c = cfg();
    let mut s = base_state(&c);
    s.mode = Mode::Passive;
    let input = healthy_input(&c, &s, NOW);
    let out = decide(&s, &input, &c);
    let pushes: Vec<&Action> = out
        .actions
        .iter()
        .filter(|a| matches!(a, Action::PushStatus { .. }))
        .collect();
    assert_eq!(pushes, vec![&Action::PushStatus { host: "db1".into() }]);
    // Active mode pushes every host.
    s.mode = Mode::Active;
    let out = decide(&s, &input, &c);
    let n = out
        .actions
        .iter()
        .filter(|a| matches!(a, Action::PushStatus { .. }))
        .count();
    assert_eq!(n, 4);
    assert!(
        out.proposals.is_empty(),
        "steady state proposes nothing: {}",
        reasons(&out)
    );
}

#[test]
fn orphan_placement_prefer_then_least_loaded_with_writer_half() {
    let mut c = cfg();
    // One balanced role over all hosts, to see the writer's half weight.
    c.roles.get_mut("reader").expect("reader").hosts =
        vec!["db1".into(), "db2".into(), "db3".into(), "db4".into()];
    let cases: Vec<(Option<&str>, [Option<&str>; 2], [&str; 2])> = vec![
        // no prefer: db2, db3, db4 hold nothing, db1 holds the writer (0.5) → db2 then db3.
        (None, [None, None], ["db2", "db3"]),
        // db2 already holds one → the other goes to db3 (db1 has 0.5, db3 0, ties by name).
        (None, [Some("db2"), None], ["db2", "db3"]),
    ];
    for (prefer, owners, expect) in cases {
        c.roles.get_mut("reader").expect("reader").prefer = prefer.map(str::to_string);
        let mut s = base_state(&c);
        for (ip, o) in [R1, R2].iter().zip(owners) {
            s.role_ips.get_mut(*ip).expect("ip").owner = o.map(str::to_string);
        }
        let out = decide(&s, &healthy_input(&c, &s, NOW), &c);
        let s2 = commit(&s, &out);
        let got = [R1, R2].map(|ip| s2.role_ips[ip].owner.clone().unwrap_or_default());
        assert_eq!(got, expect.map(str::to_string), "owners {owners:?}");
    }
    // An exclusive role goes to its preferred host when eligible, else to the least loaded.
    let mut c = cfg();
    c.roles.insert(
        "backup".into(),
        EngineRole {
            exclusive: true,
            hosts: vec!["db3".into(), "db4".into()],
            ips: vec!["10.0.0.110".into()],
            prefer: Some("db4".into()),
        },
    );
    for (db4_state, expect) in [(HostState::Online, "db4"), (HostState::HardOffline, "db3")] {
        let mut s = base_state(&c);
        let mut input = healthy_input(&c, &s, NOW);
        set_state(&mut s, "db4", db4_state, 0);
        if db4_state != HostState::Online {
            fail(&mut input, "db4", "ping");
        }
        s.role_ips.get_mut(R2).expect("ip").owner = None;
        s.role_ips.insert(
            "10.0.0.110".into(),
            mmm_consensus::RoleIpRecord {
                role: "backup".into(),
                owner: None,
                epoch: Epoch::default(),
            },
        );
        let out = decide(&s, &input, &c);
        let s2 = commit(&s, &out);
        assert_eq!(
            s2.role_ips["10.0.0.110"].owner.as_deref(),
            Some(expect),
            "db4 {db4_state}"
        );
    }
}

#[test]
fn balanced_role_is_evened_out() {
    let mut c = cfg();
    let ips: Vec<String> = (101..=105).map(|i| format!("10.0.0.{i}")).collect();
    c.roles.get_mut("reader").expect("reader").ips = ips.clone();
    let mut s = base_state(&c);
    for ip in &ips {
        s.role_ips.insert(
            ip.clone(),
            mmm_consensus::RoleIpRecord {
                role: "reader".into(),
                owner: Some("db3".into()),
                epoch: Epoch::default(),
            },
        );
    }
    let out = decide(&s, &healthy_input(&c, &s, NOW), &c);
    let s2 = commit(&s, &out);
    let count = |h: &str| {
        s2.role_ips
            .values()
            .filter(|r| r.role == "reader" && r.owner.as_deref() == Some(h))
            .count()
    };
    assert_eq!((count("db3"), count("db4")), (3, 2));
    assert!(reasons(&out).contains("balancing reader"));
    // A second round changes nothing.
    let out = decide(&s2, &healthy_input(&c, &s2, NOW), &c);
    assert!(owner_changes(&out).is_empty());
}

#[test]
fn active_mode_moves_exclusive_role_back_to_preferred_host() {
    let mut c = cfg();
    c.roles.insert(
        "backup".into(),
        EngineRole {
            exclusive: true,
            hosts: vec!["db3".into(), "db4".into()],
            ips: vec!["10.0.0.110".into()],
            prefer: Some("db4".into()),
        },
    );
    for (mode, moved) in [(Mode::Active, true), (Mode::Manual, false)] {
        let mut s = base_state(&c);
        s.mode = mode;
        s.role_ips.insert(
            "10.0.0.110".into(),
            mmm_consensus::RoleIpRecord {
                role: "backup".into(),
                owner: Some("db3".into()),
                epoch: Epoch::default(),
            },
        );
        let out = decide(&s, &healthy_input(&c, &s, NOW), &c);
        let expect = if moved {
            vec![("10.0.0.110".to_string(), Some("db4".to_string()))]
        } else {
            vec![]
        };
        assert_eq!(owner_changes(&out), expect, "{mode}");
    }
}

#[test]
fn wait_mode_switches_to_active_when_masters_are_up() {
    let mut c = cfg();
    c.wait_for_other_master_ms = 120_000;
    // (db1 state, online for, db2 state, online for, switches)
    let rows = [
        (HostState::Online, 1_000, HostState::Online, 1_000, true),
        (HostState::Online, 119_000, HostState::HardOffline, 0, false),
        (HostState::Online, 120_000, HostState::HardOffline, 0, true),
    ];
    for (i, (s1, t1, s2, t2, switches)) in rows.into_iter().enumerate() {
        let mut s = base_state(&c);
        s.mode = Mode::Wait;
        set_state(&mut s, "db1", s1, NOW - t1);
        set_state(&mut s, "db2", s2, NOW - t2);
        let mut input = healthy_input(&c, &s, NOW);
        if s2 != HostState::Online {
            fail(&mut input, "db2", "ping");
        }
        let out = decide(&s, &input, &c);
        let got = commands(&out).contains(&Command::SetMode {
            mode: Mode::Active,
            cause: None,
        });
        assert_eq!(got, switches, "row {i}");
    }
}

#[test]
fn errant_hosts_are_not_eligible() {
    let c = cfg();
    let mut s = base_state(&c);
    s.role_ips.get_mut(R1).expect("ip").owner = None;
    s.role_ips.get_mut(R2).expect("ip").owner = None;
    s.hosts.get_mut("db3").expect("db3").errant_gtids = Some("0-1-9".into());
    let out = decide(&s, &healthy_input(&c, &s, NOW), &c);
    let s2 = commit(&s, &out);
    assert_eq!(s2.role_ips[R1].owner.as_deref(), Some("db4"));
    assert_eq!(s2.role_ips[R2].owner.as_deref(), Some("db4"));
}

#[test]
fn a_host_missing_required_settings_is_not_made_the_writer() {
    let c = cfg();
    let s0 = base_state(&c);
    let mut input = healthy_input(&c, &s0, NOW);
    fail(&mut input, "db1", "mysql");
    facts(&mut input, "db2").writer_settings_missing =
        Some("gtid_strict_mode (required): is OFF; set it ON".into());
    let out = decide(&s0, &input, &c);
    assert!(
        !commands(&out)
            .iter()
            .any(|c| matches!(c, Command::BeginFailover { .. })),
        "db2 misses a required setting: no failover to it: {:?}",
        commands(&out)
    );
    assert!(
        format!("{:?}", out.actions).contains("missing settings: db2: gtid_strict_mode"),
        "the log names the host and the setting: {:?}",
        out.actions
    );
    // With the setting fixed, db2 takes over.
    facts(&mut input, "db2").writer_settings_missing = None;
    let out = decide(&s0, &input, &c);
    assert!(commands(&out).contains(&Command::BeginFailover {
        role: "writer".into(),
        from: Some("db1".into()),
        to: "db2".into(),
        planned: false
    }));
}

#[test]
fn a_failover_away_from_an_asynchronous_writer_says_so_or_waits() {
    let mut c = cfg();
    let s0 = base_state(&c);
    let mut input = healthy_input(&c, &s0, NOW);
    fail(&mut input, "db1", "mysql");
    facts(&mut input, "db1").writer_async = true;
    // Default (async_failover 1): the failover goes ahead and its history entry says what may be lost.
    let out = decide(&s0, &input, &c);
    assert!(commands(&out).contains(&Command::BeginFailover {
        role: "writer".into(),
        from: Some("db1".into()),
        to: "db2".into(),
        planned: false
    }));
    assert!(
        reasons(&out).contains("without semi-synchronous acknowledgements"),
        "{}",
        reasons(&out)
    );
    // async_failover 0: no failover; PASSIVE with the cause.
    c.async_failover = false;
    let out = decide(&s0, &input, &c);
    assert!(
        !commands(&out)
            .iter()
            .any(|c| matches!(c, Command::BeginFailover { .. })),
        "{:?}",
        commands(&out)
    );
    let s1 = commit(&s0, &out);
    assert_eq!(s1.mode, Mode::Passive);
    assert!(s1
        .passive_cause
        .as_deref()
        .is_some_and(|c| c.contains("async_failover 0")));
    // A writer that ran with semi-sync is failed over as always, whatever the policy.
    facts(&mut input, "db1").writer_async = false;
    let out = decide(&s0, &input, &c);
    assert!(commands(&out)
        .iter()
        .any(|c| matches!(c, Command::BeginFailover { .. })));
}

// ---------------------------------------------------------------- startup

fn new_cluster(c: &EngineConfig) -> ClusterState {
    let mut s = ClusterState::default();
    let input = healthy_input(c, &s, NOW);
    let out = decide(&s, &input, c);
    assert!(matches!(
        out.proposals[0].command,
        Command::Batch(_) | Command::Register { .. }
    ));
    s = commit(&s, &out);
    s
}

#[test]
fn new_cluster_registers_and_takes_configured_mode() {
    let mut c = cfg();
    c.initial_mode = Mode::Manual;
    let s = new_cluster(&c);
    assert_eq!(s.hosts.len(), 4);
    assert_eq!(s.role_ips.len(), 3);
    assert_eq!(s.mode, Mode::Manual);
}

#[test]
fn the_writer_is_told_to_isolate_every_unverified_host() {
    let c = cfg();
    let mut s = base_state(&c);
    // db1 is the active master in the base state; everybody ONLINE: nothing isolated.
    assert!(agent_status_for(&s, "db1", &c).isolate_from.is_empty());
    set_state(&mut s, "db2", HostState::AwaitingRecovery, NOW);
    set_state(&mut s, "db4", HostState::HardOffline, NOW);
    s.hosts.get_mut("db3").expect("db3").errant_gtids = Some("0-3-9".into());
    assert_eq!(
        agent_status_for(&s, "db1", &c).isolate_from,
        vec!["db2".to_string(), "db3".to_string(), "db4".to_string()]
    );
    // Of those, the HARD_OFFLINE ones are named too (a source among them gets less time to answer).
    assert_eq!(
        agent_status_for(&s, "db1", &c).hard_offline,
        vec!["db4".to_string()]
    );
    assert!(agent_status_for(&s, "db4", &c).hard_offline.is_empty());
    // Every host is told (a replica may still follow a host that failed).
    assert_eq!(
        agent_status_for(&s, "db3", &c).isolate_from,
        vec!["db2".to_string(), "db4".to_string()]
    );
    // A host never judged yet (a new cluster's first start) is not isolated, unless found errant.
    set_state(&mut s, "db2", HostState::Unknown, NOW);
    assert_eq!(
        agent_status_for(&s, "db1", &c).isolate_from,
        vec!["db3".to_string(), "db4".to_string()]
    );
    s.hosts.get_mut("db2").expect("db2").errant_gtids = Some("0-2-9".into());
    assert!(agent_status_for(&s, "db1", &c)
        .isolate_from
        .contains(&"db2".to_string()));
}

#[test]
fn the_cluster_id_is_made_once_and_pushed_in_every_status() {
    let id = "00112233445566778899aabbccddeeff";
    let mut c = cfg();
    c.new_cluster_id = id.into();
    let s = new_cluster(&c);
    assert_eq!(s.cluster_id, id, "a new cluster takes the leader's id");
    assert_eq!(agent_status_for(&s, "db1", &c).cluster_id, id);
    // A later leader draws another id: it is not proposed, the committed one stays.
    c.new_cluster_id = "ffeeddccbbaa99887766554433221100".into();
    let out = decide(&s, &healthy_input(&c, &s, NOW), &c);
    assert!(
        !commands(&out)
            .iter()
            .any(|cmd| matches!(cmd, Command::Register { .. })),
        "{:?}",
        commands(&out)
    );
    assert_eq!(commit(&s, &out).cluster_id, id);
    // A state from before cluster ids (hosts registered, no id) gets the leader's id.
    let old = base_state(&c);
    assert_eq!(old.cluster_id, "");
    assert_eq!(agent_status_for(&old, "db1", &c).cluster_id, "");
    let out = decide(&old, &healthy_input(&c, &old, NOW), &c);
    let registers: Vec<Command> = commands(&out)
        .into_iter()
        .filter(|cmd| matches!(cmd, Command::Register { .. }))
        .collect();
    assert_eq!(
        registers,
        vec![Command::Register {
            hosts: vec![],
            role_ips: vec![],
            cluster_id: Some(c.new_cluster_id.clone()),
        }]
    );
    assert_eq!(commit(&old, &out).cluster_id, c.new_cluster_id);
    // Without a candidate (the engine's default) nothing is proposed.
    c.new_cluster_id.clear();
    let out = decide(&old, &healthy_input(&c, &old, NOW), &c);
    assert!(!commands(&out)
        .iter()
        .any(|cmd| matches!(cmd, Command::Register { .. })));
}

#[test]
fn startup_adopts_the_existing_writer() {
    // (writable, holds VIP, careful, expect active master, expect passive)
    type Row = (
        &'static [&'static str],
        &'static [&'static str],
        bool,
        Option<&'static str>,
        bool,
    );
    let rows: &[Row] = &[
        (&["db2"], &["db2"], true, Some("db2"), false),
        (&[], &["db2"], true, Some("db2"), false),
        (&["db1", "db2"], &["db2"], true, None, true),
        (&["db1", "db2"], &["db2"], false, Some("db2"), false),
        (&["db1", "db2"], &[], false, Some("db1"), false),
        // Nobody is a writer: a new one is chosen through a failover from nobody.
        (&[], &[], true, None, false),
    ];
    for (i, (writable, vip, careful, expect_am, expect_passive)) in rows.iter().enumerate() {
        let mut c = cfg();
        c.careful_startup = *careful;
        let s = ClusterState::default();
        let mut input = healthy_input(&c, &s, NOW);
        input.startup = Some(StartupEvidence {
            writable: writable.iter().map(|h| h.to_string()).collect(),
            holds_writer_vip: vip.iter().map(|h| h.to_string()).collect(),
            complete: true,
        });
        let out = decide(&s, &input, &c);
        let s2 = commit(&s, &out);
        assert_eq!(
            s2.active_master.as_deref(),
            *expect_am,
            "row {i}: {}",
            reasons(&out)
        );
        if let Some(am) = expect_am {
            assert_eq!(s2.role_ips[WIP].owner.as_deref(), Some(*am), "row {i}");
        }
        assert_eq!(s2.mode == Mode::Passive, *expect_passive, "row {i}");
        if *expect_passive {
            let cause = s2.passive_cause.clone().unwrap_or_default();
            assert!(
                cause.contains("db1 (writable)")
                    && cause.contains("db2 (writable, holds the writer VIP)"),
                "{cause}"
            );
        }
        if writable.is_empty() && vip.is_empty() {
            let f = s2.failover.clone().expect("failover from nobody");
            assert_eq!((f.from, f.to.as_str()), (None, "db1"));
        }
    }
}

#[test]
fn careful_startup_waits_for_every_writer_host() {
    let c = cfg();
    let s = ClusterState::default();
    let mut input = healthy_input(&c, &s, NOW);
    input.agents.get_mut("db2").expect("db2").reachable = false;
    let out = decide(&s, &input, &c);
    let s2 = commit(&s, &out);
    assert_eq!(s2.active_master, None);
    assert!(s2.failover.is_none());
}

// ---------------------------------------------------------------- failover

fn facts<'a>(input: &'a mut Input, host: &str) -> &'a mut AgentFacts {
    input.agents.get_mut(host).expect("agent")
}

#[test]
fn writer_failover_runs_through_committed_steps() {
    let mut c = cfg();
    c.kill_host_configured = true;
    let s0 = base_state(&c);

    // Round 1: db1's mysqld is gone (definite evidence) → HARD_OFFLINE and failover to its peer db2.
    let mut input = healthy_input(&c, &s0, NOW);
    fail(&mut input, "db1", "mysql");
    let out = decide(&s0, &input, &c);
    assert_eq!(
        state_changes(&out),
        vec![("db1".to_string(), HostState::HardOffline)]
    );
    assert!(commands(&out).contains(&Command::BeginFailover {
        role: "writer".into(),
        from: Some("db1".into()),
        to: "db2".into(),
        planned: false
    }));
    assert!(owner_changes(&out).contains(&(WIP.to_string(), None)));
    let s1 = commit(&s0, &out);
    let started = s1.failover.as_ref().expect("failover").started_epoch;
    assert!(!agent_status_for(&s1, "db1", &c).writer);
    assert!(!agent_status_for(&s1, "db2", &c).writer);
    assert!(
        !agent_status_for(&s1, "db1", &c).hold_writes,
        "an unplanned failover refuses writes on the old writer, it does not hold them"
    );

    // Round 2: db1 unreachable, lease not yet expired → wait, run kill_host.
    let mut input = healthy_input(&c, &s0, NOW + 500);
    fail(&mut input, "db1", "mysql");
    facts(&mut input, "db1").reachable = false;
    let out = decide(&s1, &input, &c);
    assert!(out.proposals.is_empty(), "{}", reasons(&out));
    assert!(out.actions.contains(&Action::RunKillHost {
        host: "db1".into(),
        epoch: started
    }));

    // Round 3: lease certainly expired → CatchUp, candidate told to catch up.
    let t3 = NOW + c.writer_lease_ms + c.lease_margin_ms;
    let mut input = healthy_input(&c, &s0, t3);
    fail(&mut input, "db1", "mysql");
    facts(&mut input, "db1").reachable = false;
    let out = decide(&s1, &input, &c);
    assert_eq!(
        commands(&out),
        vec![Command::FailoverStep {
            step: FailoverStep::CatchUp
        }]
    );
    assert!(reasons(&out).contains("lease of db1 has certainly expired"));
    assert!(out.actions.contains(&Action::WaitCatchUp {
        host: "db2".into(),
        epoch: started
    }));
    let s3 = commit(&s1, &out);

    // Round 4: caught up → Repoint → Promote in one round: db3 and db4 are told to follow db2
    // (db1 is down) and the promotion does not wait for their acknowledgements.
    facts(&mut input, "db2").caught_up_for = Some(started);
    input.now_ms = t3 + 100;
    let out = decide(&s3, &input, &c);
    let cmds = commands(&out);
    assert_eq!(
        cmds[0],
        Command::FailoverStep {
            step: FailoverStep::Repoint
        }
    );
    assert_eq!(
        cmds[1],
        Command::FailoverStep {
            step: FailoverStep::Promote
        }
    );
    let repoints: Vec<&Action> = out
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Repoint { .. }))
        .collect();
    assert_eq!(
        repoints,
        vec![
            &Action::Repoint {
                host: "db3".into(),
                master: "db2".into(),
                epoch: started
            },
            &Action::Repoint {
                host: "db4".into(),
                master: "db2".into(),
                epoch: started
            },
        ]
    );
    let s5 = commit(&s3, &out);
    assert_eq!(
        agent_status_for(&s5, "db3", &c).active_master.as_deref(),
        Some("db2")
    );
    assert!(s5.failover.is_none());
    assert_eq!(s5.active_master.as_deref(), Some("db2"));
    assert_eq!(s5.role_ips[WIP].owner.as_deref(), Some("db2"));
    assert!(agent_status_for(&s5, "db2", &c).writer);
    assert_eq!(s5.history.iter().filter(|d| d.to == "completed").count(), 1);
}

#[test]
fn demotion_evidence_table() {
    let c = cfg();
    let mut s = base_state(&c);
    set_state(&mut s, "db1", HostState::HardOffline, NOW);
    s.apply(
        Epoch { term: 2, index: 20 },
        &Request {
            time_ms: NOW,
            reason: "test".into(),
            command: Command::BeginFailover {
                role: "writer".into(),
                from: Some("db1".into()),
                to: "db2".into(),
                planned: false,
            },
        },
    );
    let started = Epoch { term: 2, index: 20 };
    // (acked demotion epoch, kill ok at, leader's lease estimate, now offset, advances)
    let rows: Vec<(Option<Epoch>, Option<Epoch>, Option<u64>, u64, bool)> = vec![
        (Some(started), None, None, 10, true),
        // A writer status acknowledged at the failover's epoch (a renewal) is no demotion: see below.
        (Some(Epoch { term: 2, index: 19 }), None, None, 10, false),
        (None, Some(started), None, 10, true),
        (None, Some(Epoch { term: 1, index: 5 }), None, 10, false),
        (None, None, None, 3_999, false),
        (None, None, None, 4_000, true),
        // The leader renewed later than the failover began (its estimate wins when later).
        (None, None, Some(NOW + 6_000), 5_000, false),
        (None, None, Some(NOW + 6_000), 6_000, true),
        // The leader stopped renewing before the failover began: its estimate, not the start, counts.
        (None, None, Some(NOW + 1_500), 1_499, false),
        (None, None, Some(NOW + 1_500), 1_500, true),
    ];
    for (i, (ack, kill, lease, dt, advances)) in rows.into_iter().enumerate() {
        let mut input = healthy_input(&c, &s, NOW + dt);
        fail(&mut input, "db1", "mysql");
        let f = facts(&mut input, "db1");
        f.reachable = ack.is_some();
        f.acked_epoch = ack;
        f.demotion_acked_epoch = ack;
        f.kill_host_ok_at = kill;
        f.lease_expires_ms = lease;
        let out = decide(&s, &input, &c);
        let got = commands(&out).contains(&Command::FailoverStep {
            step: FailoverStep::CatchUp,
        });
        assert_eq!(got, advances, "row {i}: {}", reasons(&out));
    }
    // The old writer acknowledged a status at the failover's epoch, but it was a lease renewal (a
    // writer status read before the failover was committed): not a demotion, the failover waits.
    let mut input = healthy_input(&c, &s, NOW + 10);
    fail(&mut input, "db1", "mysql");
    let f = facts(&mut input, "db1");
    f.acked_epoch = Some(started);
    f.demotion_acked_epoch = None;
    let out = decide(&s, &input, &c);
    assert!(
        !commands(&out).contains(&Command::FailoverStep {
            step: FailoverStep::CatchUp
        }),
        "a renewal is no demotion: {}",
        reasons(&out)
    );
}

fn failover_at(c: &EngineConfig, step: FailoverStep, step_since: u64) -> (ClusterState, Epoch) {
    let mut s = base_state(c);
    set_state(&mut s, "db1", HostState::HardOffline, NOW);
    let started = Epoch { term: 2, index: 20 };
    let r = s.apply(
        started,
        &Request {
            time_ms: NOW,
            reason: "test".into(),
            command: Command::Batch(vec![
                Command::BeginFailover {
                    role: "writer".into(),
                    from: Some("db1".into()),
                    to: "db2".into(),
                    planned: false,
                },
                Command::SetRoleOwner {
                    ip: WIP.into(),
                    owner: None,
                },
            ]),
        },
    );
    assert_eq!(r.error, None);
    let r = s.apply(
        Epoch { term: 2, index: 21 },
        &Request {
            time_ms: step_since,
            reason: "test".into(),
            command: Command::FailoverStep { step },
        },
    );
    assert_eq!(r.error, None);
    (s, started)
}

#[test]
fn new_leader_resumes_a_half_done_failover() {
    let c = cfg();
    let (s, started) = failover_at(&c, FailoverStep::CatchUp, NOW + 100);
    let mut input = healthy_input(&c, &s, NOW + 200);
    fail(&mut input, "db1", "mysql");
    let out = decide(&s, &input, &c);
    assert!(out.proposals.is_empty(), "{}", reasons(&out));
    assert!(out.actions.contains(&Action::WaitCatchUp {
        host: "db2".into(),
        epoch: started
    }));
    // Already caught up and every replica following: runs to the end in one round.
    facts(&mut input, "db2").caught_up_for = Some(started);
    facts(&mut input, "db3").repointed_to = Some("db2".into());
    facts(&mut input, "db4").repointed_to = Some("db2".into());
    let out = decide(&s, &input, &c);
    let s2 = commit(&s, &out);
    assert_eq!(s2.active_master.as_deref(), Some("db2"));
    assert!(s2.failover.is_none());
}

#[test]
fn candidate_that_cannot_catch_up_is_not_promoted() {
    let c = cfg();
    let (s, _) = failover_at(&c, FailoverStep::CatchUp, NOW);
    let mut input = healthy_input(&c, &s, NOW + c.catch_up_timeout_ms);
    fail(&mut input, "db1", "mysql");
    let out = decide(&s, &input, &c);
    let s2 = commit(&s, &out);
    assert!(s2.failover.is_none());
    assert_eq!(s2.mode, Mode::Passive);
    assert_eq!(s2.active_master.as_deref(), Some("db1"));
    assert_eq!(s2.role_ips[WIP].owner, None);
    assert!(s2
        .passive_cause
        .unwrap_or_default()
        .contains("did not apply its relay log"));
    assert!(out.actions.iter().any(|a| matches!(
        a,
        Action::Log {
            level: LogLevel::Error,
            ..
        }
    )));
}

#[test]
fn promotion_does_not_wait_for_replicas_but_tells_the_pending_ones() {
    let c = cfg();
    let (s, _) = failover_at(&c, FailoverStep::Repoint, NOW);
    for db3_acked in [false, true] {
        let mut input = healthy_input(&c, &s, NOW + 100);
        fail(&mut input, "db1", "mysql");
        facts(&mut input, "db4").repointed_to = Some("db2".into());
        if db3_acked {
            facts(&mut input, "db3").repointed_to = Some("db2".into());
        }
        let out = decide(&s, &input, &c);
        assert!(
            commands(&out).contains(&Command::EndFailover { completed: true }),
            "db3 acked {db3_acked}: {}",
            reasons(&out)
        );
        let told_db3 = out
            .actions
            .iter()
            .any(|a| matches!(a, Action::Repoint { host, .. } if host == "db3"));
        assert_eq!(
            told_db3, !db3_acked,
            "only pending replicas are told: {:?}",
            out.actions
        );
        if !db3_acked {
            assert!(reasons(&out).contains("db3 told to follow db2"));
        }
    }
}

#[test]
fn candidate_dropping_out_abandons_the_failover() {
    let c = cfg();
    let (s, _) = failover_at(&c, FailoverStep::CatchUp, NOW);
    let mut input = healthy_input(&c, &s, NOW + 100);
    fail(&mut input, "db1", "mysql");
    fail(&mut input, "db2", "ping");
    let out = decide(&s, &input, &c);
    let s2 = commit(&s, &out);
    assert!(s2.failover.is_none());
    assert_eq!(s2.mode, Mode::Active);
    assert!(reasons(&out).contains("candidate db2 is HARD_OFFLINE"));
    // Nobody left to take over: the next round says so and starts nothing.
    let out = decide(&s2, &input, &c);
    let s3 = commit(&s2, &out);
    assert!(s3.failover.is_none());
    assert!(out.actions.iter().any(|a| matches!(a, Action::Log { level: LogLevel::Error, message, .. } if message.contains("no ONLINE host"))));
}

#[test]
fn manual_mode_keeps_the_writer_on_a_failed_master() {
    let c = cfg();
    let mut s = base_state(&c);
    s.mode = Mode::Manual;
    let mut input = healthy_input(&c, &s, NOW);
    fail(&mut input, "db1", "mysql");
    let out = decide(&s, &input, &c);
    let s2 = commit(&s, &out);
    assert_eq!(s2.hosts["db1"].state, HostState::HardOffline);
    assert!(s2.failover.is_none());
    assert_eq!(s2.role_ips[WIP].owner.as_deref(), Some("db1"));
}

#[test]
fn writer_moves_back_to_preferred_master_in_active_mode() {
    let mut c = cfg();
    c.roles.get_mut("writer").expect("writer").prefer = Some("db1".into());
    for (mode, planned_move) in [(Mode::Active, true), (Mode::Manual, false)] {
        let mut s = base_state(&c);
        s.mode = mode;
        s.active_master = Some("db2".into());
        s.role_ips.get_mut(WIP).expect("wip").owner = Some("db2".into());
        let out = decide(&s, &healthy_input(&c, &s, NOW), &c);
        let begun = commands(&out).contains(&Command::BeginFailover {
            role: "writer".into(),
            from: Some("db2".into()),
            to: "db1".into(),
            planned: true,
        });
        assert_eq!(begun, planned_move, "{mode}");
    }
}

#[test]
fn active_master_regains_writer_ip_after_an_abandoned_move() {
    let c = cfg();
    let mut s = base_state(&c);
    s.role_ips.get_mut(WIP).expect("wip").owner = None;
    let out = decide(&s, &healthy_input(&c, &s, NOW), &c);
    assert_eq!(
        owner_changes(&out),
        vec![(WIP.to_string(), Some("db1".to_string()))]
    );
}

// ---------------------------------------------------------------- errant transactions

#[test]
fn old_master_with_errant_transactions_stays_out_until_operator() {
    let mut c = cfg();
    c.auto_set_online_ms = 1_000;
    let mut s = base_state(&c);
    s.active_master = Some("db2".into());
    s.role_ips.get_mut(WIP).expect("wip").owner = Some("db2".into());
    set_state(&mut s, "db1", HostState::AwaitingRecovery, NOW - 60_000);
    let mut input = healthy_input(&c, &s, NOW);
    facts(&mut input, "db1").gtid_errant = Some("0-1-1001".into());
    let out = decide(&s, &input, &c);
    assert!(commands(&out).contains(&Command::SetErrant {
        host: "db1".into(),
        gtids: Some("0-1-1001".into())
    }));
    assert!(
        state_changes(&out).is_empty(),
        "errant host must not go ONLINE"
    );
    let s2 = commit(&s, &out);
    // Next rounds keep it out, even with every check OK and auto_set_online passed.
    let out = decide(&s2, &input, &c);
    assert!(state_changes(&out).is_empty());
    // The operator cannot set it online while it is errant …
    let e = set_online(&s2, &c, "db1", true, true, Some("0-1-1001"), NOW).expect_err("refused");
    assert!(e
        .to_string()
        .starts_with("ERROR: Host 'db1' has errant transactions (0-1-1001)"));
    // … and can once the agent reports it clean; the mark is cleared.
    let plan = set_online(&s2, &c, "db1", true, true, None, NOW).expect("accepted");
    let s3 = commit(
        &s2,
        &Output {
            proposals: plan.proposals,
            actions: vec![],
        },
    );
    assert_eq!(s3.hosts["db1"].state, HostState::Online);
    assert_eq!(s3.hosts["db1"].errant_gtids, None);
}

#[test]
fn an_errant_old_master_is_rejoined_only_when_opted_in_and_never_acknowledged() {
    let mut c = cfg();
    let mut s = base_state(&c);
    s.active_master = Some("db2".into());
    s.role_ips.get_mut(WIP).expect("wip").owner = Some("db2".into());
    set_state(&mut s, "db1", HostState::AwaitingRecovery, NOW - 60_000);
    s.hosts.get_mut("db1").expect("db1").errant_gtids = Some("0-1-1001".into());
    let mut input = healthy_input(&c, &s, NOW);
    facts(&mut input, "db1").gtid_errant = Some("0-1-1001".into());
    let asked = |out: &Output| {
        commands(out).contains(&Command::SetRejoin {
            host: "db1".into(),
            gtids: Some("0-1-1001".into()),
        })
    };
    // Off by default: the host waits for an operator.
    assert!(!asked(&decide(&s, &input, &c)));
    c.auto_rejoin_errant = true;
    let out = decide(&s, &input, &c);
    assert!(asked(&out), "{:?}", commands(&out));
    assert!(
        reasons(&out).contains("never acknowledged"),
        "{}",
        reasons(&out)
    );
    let s2 = commit(&s, &out);
    assert_eq!(s2.hosts["db1"].rejoin.as_deref(), Some("0-1-1001"));
    assert_eq!(
        agent_status_for(&s2, "db1", &c).rejoin.as_deref(),
        Some("0-1-1001"),
        "the agent is told"
    );
    // Asked once; nothing more until the agent reports it done.
    let out = decide(&s2, &input, &c);
    assert!(!asked(&out));
    assert!(!commands(&out)
        .iter()
        .any(|c| matches!(c, Command::SetErrant { .. })));
    // A report for other transactions does not clear these.
    facts(&mut input, "db1").rejoined = Some(("0-1-999".into(), "/f".into()));
    assert!(!commands(&decide(&s2, &input, &c))
        .iter()
        .any(|c| matches!(c, Command::SetErrant { .. })));
    // Done: the mark is cleared with the saved file named, and the rejoin request with it.
    facts(&mut input, "db1").rejoined = Some(("0-1-1001".into(), "/var/lib/mmm/errant.txt".into()));
    facts(&mut input, "db1").gtid_errant = None;
    let out = decide(&s2, &input, &c);
    assert!(commands(&out).contains(&Command::SetErrant {
        host: "db1".into(),
        gtids: None
    }));
    assert!(
        reasons(&out).contains("/var/lib/mmm/errant.txt"),
        "{}",
        reasons(&out)
    );
    let s3 = commit(&s2, &out);
    assert_eq!(s3.hosts["db1"].errant_gtids, None);
    assert_eq!(s3.hosts["db1"].rejoin, None);
    // A host failed over while it ran asynchronously is never rejoined automatically.
    let mut s4 = s.clone();
    s4.hosts.get_mut("db1").expect("db1").acked_alone = true;
    assert!(!asked(&decide(&s4, &input_with_errant(&c, &s4), &c)));
    // Nor during a failover, nor without an active master.
    let mut s5 = s.clone();
    s5.active_master = None;
    assert!(!asked(&decide(&s5, &input_with_errant(&c, &s5), &c)));
}

fn input_with_errant(c: &EngineConfig, s: &ClusterState) -> Input {
    let mut input = healthy_input(c, s, NOW);
    facts(&mut input, "db1").gtid_errant = Some("0-1-1001".into());
    input
}

#[test]
fn a_failover_away_from_an_asynchronous_writer_marks_it_acked_alone() {
    let c = cfg();
    let s0 = base_state(&c);
    let mut input = healthy_input(&c, &s0, NOW);
    fail(&mut input, "db1", "mysql");
    facts(&mut input, "db1").writer_async = true;
    let out = decide(&s0, &input, &c);
    assert!(commands(&out).contains(&Command::SetAckedAlone { host: "db1".into() }));
    assert!(commit(&s0, &out).hosts["db1"].acked_alone);
    // With semi-sync, no mark.
    facts(&mut input, "db1").writer_async = false;
    let out = decide(&s0, &input, &c);
    assert!(!commands(&out)
        .iter()
        .any(|c| matches!(c, Command::SetAckedAlone { .. })));
}

#[test]
fn returning_host_goes_online_only_after_an_errant_check_cleared_it() {
    let mut c = cfg();
    c.auto_set_online_ms = 1_000;
    let mut s = base_state(&c);
    s.active_master = Some("db2".into());
    s.role_ips.get_mut(WIP).expect("wip").owner = Some("db2".into());
    set_state(&mut s, "db1", HostState::AwaitingRecovery, NOW - 60_000);
    let mut input = healthy_input(&c, &s, NOW);
    // Every check OK, auto_set_online passed, but no check has cleared it since it came back.
    facts(&mut input, "db1").errant_unchecked = true;
    let out = decide(&s, &input, &c);
    assert!(
        state_changes(&out).is_empty(),
        "an unchecked returning host must not go ONLINE: {:?}",
        state_changes(&out)
    );
    // The same from REPLICATION_FAIL whose peer is not ONLINE (MMM's shortcut back to ONLINE).
    let mut s_rep = s.clone();
    set_state(&mut s_rep, "db1", HostState::ReplicationFail, NOW - 60_000);
    set_state(&mut s_rep, "db2", HostState::HardOffline, NOW - 60_000);
    let out = decide(&s_rep, &input, &c);
    assert!(!state_changes(&out)
        .iter()
        .any(|(h, st)| h == "db1" && *st == HostState::Online));
    // Once a check cleared it, it goes ONLINE.
    facts(&mut input, "db1").errant_unchecked = false;
    let out = decide(&s, &input, &c);
    let s2 = commit(&s, &out);
    assert_eq!(s2.hosts["db1"].state, HostState::Online);
}

#[test]
fn online_host_turning_errant_leaves_rotation() {
    let c = cfg();
    let s = base_state(&c);
    let mut input = healthy_input(&c, &s, NOW);
    facts(&mut input, "db3").gtid_errant = Some("0-3-7".into());
    // The active master's own transactions are never errant.
    facts(&mut input, "db1").gtid_errant = Some("0-1-99".into());
    let out = decide(&s, &input, &c);
    let s2 = commit(&s, &out);
    assert_eq!(s2.hosts["db3"].state, HostState::AwaitingRecovery);
    assert_eq!(s2.hosts["db1"].errant_gtids, None);
    assert_eq!(s2.role_ips[R1].owner.as_deref(), Some("db4"));
}

// ---------------------------------------------------------------- operator commands

#[test]
fn set_online_and_set_offline_texts() {
    let c = cfg();
    use HostState::*;
    // (state, checks ok, agent reachable, expected text)
    let rows: Vec<(&str, HostState, bool, bool, &str)> = vec![
        ("db3", AdminOffline, true, true, "OK: State of 'db3' changed to ONLINE. Now you can wait some time and check its new roles!"),
        ("db3", AwaitingRecovery, true, true, "OK: State of 'db3' changed to ONLINE. Now you can wait some time and check its new roles!"),
        ("db3", Online, true, true, "OK: This host is already ONLINE. Skipping command."),
        ("db3", HardOffline, true, true, "ERROR: Host 'db3' is 'HARD_OFFLINE' at the moment. It can't be switched to ONLINE."),
        ("db3", ReplicationFail, true, true, "ERROR: Host 'db3' is 'REPLICATION_FAIL' at the moment. It can't be switched to ONLINE."),
        ("db3", AdminOffline, true, false, "ERROR: Can't reach agent daemon on 'db3'! Can't switch its state!"),
        ("db3", AdminOffline, false, true, "ERROR: Checks ping and/or mysql are not ok for host 'db3'. It can't be switched to ONLINE."),
        ("dbx", Online, true, true, "ERROR: Unknown host name 'dbx'!"),
    ];
    for (host, st, checks, agent, text) in rows {
        let mut s = base_state(&c);
        set_state(&mut s, "db3", st, 0);
        s.hosts.get_mut("db3").expect("db3").flapping = true;
        let got = match set_online(&s, &c, host, checks, agent, None, NOW) {
            Ok(p) => {
                if st != Online {
                    let s2 = commit(
                        &s,
                        &Output {
                            proposals: p.proposals.clone(),
                            actions: vec![],
                        },
                    );
                    assert_eq!(s2.hosts["db3"].state, Online);
                    assert!(!s2.hosts["db3"].flapping);
                }
                p.message
            }
            Err(e) => e.to_string(),
        };
        assert_eq!(got, text, "{host} {st}");
    }
    let rows: Vec<(HostState, bool, &str)> = vec![
        (Online, true, "OK: State of 'db3' changed to ADMIN_OFFLINE. Now you can wait some time and check all roles!"),
        (ReplicationDelay, true, "OK: State of 'db3' changed to ADMIN_OFFLINE. Now you can wait some time and check all roles!"),
        (AdminOffline, true, "OK: This host is already ADMIN_OFFLINE. Skipping command."),
        (HardOffline, true, "ERROR: Host 'db3' is 'HARD_OFFLINE' at the moment. It can't be switched to ADMIN_OFFLINE."),
        (Online, false, "ERROR: Can't reach agent daemon on 'db3'! Can't switch its state!"),
    ];
    for (st, agent, text) in rows {
        let mut s = base_state(&c);
        set_state(&mut s, "db3", st, 0);
        let got = match set_offline(&s, &c, "db3", agent, NOW) {
            Ok(p) => {
                if st != AdminOffline {
                    let s2 = commit(
                        &s,
                        &Output {
                            proposals: p.proposals.clone(),
                            actions: vec![],
                        },
                    );
                    assert_eq!(s2.hosts["db3"].state, AdminOffline);
                    assert_eq!(s2.role_ips[R1].owner, None, "roles removed");
                }
                p.message
            }
            Err(e) => e.to_string(),
        };
        assert_eq!(got, text, "{st}");
    }
}

#[test]
fn admin_offline_active_master_is_failed_over_even_in_manual_mode() {
    let c = cfg();
    let mut s = base_state(&c);
    s.mode = Mode::Manual;
    let plan = set_offline(&s, &c, "db1", true, NOW).expect("accepted");
    s = commit(
        &s,
        &Output {
            proposals: plan.proposals,
            actions: vec![],
        },
    );
    let out = decide(&s, &healthy_input(&c, &s, NOW), &c);
    let s2 = commit(&s, &out);
    assert_eq!(s2.failover.as_ref().map(|f| f.to.as_str()), Some("db2"));
}

#[test]
fn set_mode_texts() {
    let c = cfg();
    let s = base_state(&c);
    let p = set_mode(&s, &c, Mode::Active, NOW).expect("ok");
    assert_eq!(
        (p.message.as_str(), p.proposals.len()),
        ("OK: Already in active mode.", 0)
    );
    let p = set_mode(&s, &c, Mode::Passive, NOW).expect("ok");
    assert_eq!(p.message, "OK: Switched into passive mode.");
    let s2 = commit(
        &s,
        &Output {
            proposals: p.proposals,
            actions: vec![],
        },
    );
    assert_eq!(s2.mode, Mode::Passive);
    assert!(s2.passive_cause.is_some());
    let p = set_mode(&s2, &c, Mode::Manual, NOW).expect("ok");
    assert_eq!(p.message, "OK: Switched into manual mode.");
}

#[test]
fn set_ip_only_in_passive_mode() {
    let c = cfg();
    let mut s = base_state(&c);
    assert_eq!(
        set_ip(&s, &c, WIP, "db2", NOW)
            .expect_err("active")
            .to_string(),
        "ERROR: This command is only allowed in passive mode"
    );
    s.mode = Mode::Passive;
    assert_eq!(
        set_ip(&s, &c, "10.9.9.9", "db2", NOW)
            .expect_err("ip")
            .to_string(),
        "ERROR: Unknown ip '10.9.9.9'!"
    );
    assert_eq!(
        set_ip(&s, &c, WIP, "dbx", NOW)
            .expect_err("host")
            .to_string(),
        "ERROR: Unknown host name 'dbx'!"
    );
    assert_eq!(
        set_ip(&s, &c, WIP, "db3", NOW)
            .expect_err("role")
            .to_string(),
        "ERROR: Host 'db3' can't handle role 'writer'. Only following hosts could: db1, db2"
    );
    let p = set_ip(&s, &c, WIP, "db2", NOW).expect("ok");
    assert_eq!(
        p.message,
        "OK: Set role 'writer(10.0.0.100)' to host 'db2'."
    );
    let s2 = commit(
        &s,
        &Output {
            proposals: p.proposals,
            actions: vec![],
        },
    );
    // The writer IP is only planned for db2: db1 stays the writer (and keeps its lease) while passive.
    assert_eq!(s2.planned_writer.as_deref(), Some("db2"));
    assert_eq!(s2.role_ips[WIP].owner.as_deref(), Some("db1"));
    assert_eq!(s2.active_master.as_deref(), Some("db1"));
    assert!(agent_status_for(&s2, "db1", &c).writer);
    assert!(!agent_status_for(&s2, "db2", &c).writer);
    assert_eq!(
        pushes(&decide(&s2, &healthy_input(&c, &s, NOW), &c)),
        ["db1"]
    );
    // A reader IP gets its planned owner in the state at once (pushed when passive mode ends).
    let p = set_ip(&s2, &c, R1, "db4", NOW).expect("ok");
    assert_eq!(
        p.message,
        "OK: Set role 'reader(10.0.0.101)' to host 'db4'."
    );
    let s3 = commit(
        &s2,
        &Output {
            proposals: p.proposals,
            actions: vec![],
        },
    );
    assert_eq!(s3.role_ips[R1].owner.as_deref(), Some("db4"));
    assert_eq!(
        pushes(&decide(&s3, &healthy_input(&c, &s, NOW), &c)),
        ["db1"]
    );
    // set_ip of the writer IP back to the active master cancels the plan.
    let p = set_ip(&s3, &c, WIP, "db1", NOW).expect("ok");
    let s4 = commit(
        &s3,
        &Output {
            proposals: p.proposals,
            actions: vec![],
        },
    );
    assert_eq!(s4.planned_writer, None);
    assert_eq!(s4.role_ips[WIP].owner.as_deref(), Some("db1"));
    // No writer move is planned over a running one.
    let mut busy = s2.clone();
    busy.failover = commit(
        &base_state(&c),
        &Output {
            proposals: plan_move_role(&base_state(&c), &c, "writer", "db2", false, NOW)
                .expect("ok"),
            actions: vec![],
        },
    )
    .failover;
    assert_eq!(
        set_ip(&busy, &c, WIP, "db2", NOW)
            .expect_err("busy")
            .to_string(),
        "ERROR: A move of role 'writer' to 'db2' is already in progress."
    );
}

/// The hosts a round pushes a status to, in order.
fn pushes(out: &Output) -> Vec<String> {
    out.actions
        .iter()
        .filter_map(|a| match a {
            Action::PushStatus { host } => Some(host.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn passive_mode_pushes_nothing_but_the_committed_writers_renewal() {
    let c = cfg();
    // (case, change before the round, db1's agent acts as writer, expected pushes)
    let rows: Vec<(
        &str,
        Box<dyn Fn(&mut ClusterState, &mut Input)>,
        bool,
        &[&str],
    )> = vec![
        ("steady", Box::new(|_, _| {}), true, &["db1"]),
        (
            "writer's lease already ran out",
            Box::new(|_, _| {}),
            false,
            &[],
        ),
        (
            "a replica is lost",
            Box::new(|_, i| fail(i, "db3", "mysql")),
            true,
            &["db1"],
        ),
        (
            "a reader IP planned elsewhere",
            Box::new(|s, _| {
                s.role_ips.get_mut(R1).expect("R1").owner = Some("db4".into());
            }),
            true,
            &["db1"],
        ),
        (
            "writer IP planned for db2",
            Box::new(|s, _| s.planned_writer = Some("db2".into())),
            true,
            &["db1"],
        ),
        (
            "db2 acts as writer without the role",
            Box::new(|_, i| facts(i, "db2").writable = true),
            true,
            &["db1"],
        ),
    ];
    for (case, change, db1_writable, expect) in rows {
        let mut s = base_state(&c);
        s.mode = Mode::Passive;
        let mut input = healthy_input(&c, &s, NOW);
        change(&mut s, &mut input);
        facts(&mut input, "db1").writable = db1_writable;
        let out = decide(&s, &input, &c);
        assert_eq!(pushes(&out), expect, "{case}");
        let s2 = commit(&s, &out);
        assert_eq!(s2.mode, Mode::Passive, "{case}");
        assert_eq!(s2.failover, None, "{case}");
        assert_eq!(s2.role_ips[WIP].owner.as_deref(), Some("db1"), "{case}");
        // The same rule, as the leader applies it to every push (its renewals included).
        for h in c.hosts.keys() {
            let st = agent_status_for(&s2, h, &c);
            let allowed = push_allowed(&s2, &st, input.agent(h).writable);
            assert_eq!(allowed, expect.contains(&h.as_str()), "{case}: {h}");
        }
    }
    // Outside passive mode every status may be sent, writer or not.
    let s = base_state(&c);
    assert!(push_allowed(&s, &agent_status_for(&s, "db3", &c), false));
    assert_eq!(
        pushes(&decide(&s, &healthy_input(&c, &s, NOW), &c)),
        ["db1", "db2", "db3", "db4"]
    );
}

/// What a simulated agent did with the statuses it was pushed.
#[derive(Clone, Default)]
struct SimAgent {
    writable: bool,
    demoted_at: Option<Epoch>,
    caught_up_for: Option<Epoch>,
    repointed_to: Option<String>,
}

/// Hosts the committed state names writer while another host's agent is still writable.
fn two_writers(
    s: &ClusterState,
    c: &EngineConfig,
    agents: &BTreeMap<String, SimAgent>,
) -> Vec<String> {
    c.hosts
        .keys()
        .filter(|h| agent_status_for(s, h, c).writer)
        .filter(|h| agents.iter().any(|(o, a)| o != *h && a.writable))
        .cloned()
        .collect()
}

#[test]
fn set_ip_of_the_writer_ip_then_set_active_moves_it_through_the_failover_steps() {
    let c = cfg();
    let mut s = base_state(&c);
    s.mode = Mode::Passive;
    let run = |s: &ClusterState, plan: OperatorPlan| {
        commit(
            s,
            &Output {
                proposals: plan.proposals,
                actions: vec![],
            },
        )
    };
    s = run(&s, set_ip(&s, &c, WIP, "db2", NOW).expect("set_ip"));
    let plan = set_mode(&s, &c, Mode::Active, NOW).expect("set_active");
    assert_eq!(
        plan.message,
        "OK: Switched into active mode. Role 'writer' is moving from 'db1' to 'db2' (old writer demoted first)."
    );
    s = run(&s, plan);
    // One decision: active mode, and a planned failover record whose first step demotes db1.
    assert_eq!(s.mode, Mode::Active);
    assert_eq!(s.planned_writer, None);
    let f = s.failover.clone().expect("failover record");
    assert_eq!(
        (f.from.as_deref(), f.to.as_str(), f.step, f.planned),
        (Some("db1"), "db2", FailoverStep::DemoteOld, true)
    );
    assert_eq!(s.role_ips[WIP].owner, None);
    assert!(!agent_status_for(&s, "db1", &c).writer);
    assert!(agent_status_for(&s, "db1", &c).hold_writes);
    assert!(!agent_status_for(&s, "db2", &c).writer);

    // Rounds against simulated agents that apply every status pushed to them.
    let mut agents: BTreeMap<String, SimAgent> = c
        .hosts
        .keys()
        .map(|h| (h.clone(), SimAgent::default()))
        .collect();
    agents.get_mut("db1").expect("db1").writable = true;
    let mut steps = vec![f.step];
    let mut db1_demoted_round = None;
    let mut db2_writable_round = None;
    for round in 0..20u64 {
        let mut input = healthy_input(&c, &s, NOW + round * 100);
        for (h, a) in &agents {
            let f = facts(&mut input, h);
            f.writable = a.writable;
            f.holds_writer_vip = a.writable;
            f.demotion_acked_epoch = a.demoted_at;
            f.caught_up_for = a.caught_up_for;
            f.repointed_to = a.repointed_to.clone();
        }
        let out = decide(&s, &input, &c);
        s = commit(&s, &out);
        assert_eq!(
            two_writers(&s, &c, &agents),
            Vec::<String>::new(),
            "round {round}"
        );
        steps.extend(commands(&out).into_iter().filter_map(|c| match c {
            Command::FailoverStep { step } => Some(step),
            _ => None,
        }));
        for h in pushes(&out) {
            let st = agent_status_for(&s, &h, &c);
            let a = agents.get_mut(&h).expect("agent");
            a.writable = st.writer;
            if !st.writer {
                a.demoted_at = Some(s.last_epoch);
            }
            if let Some((epoch, _)) = st.catch_up {
                a.caught_up_for = Some(epoch);
            }
            a.repointed_to = st.active_master.clone();
        }
        let writable: Vec<&String> = agents
            .iter()
            .filter(|(_, a)| a.writable)
            .map(|(h, _)| h)
            .collect();
        assert!(writable.len() <= 1, "round {round}: writable {writable:?}");
        if !agents["db1"].writable {
            db1_demoted_round.get_or_insert(round);
        }
        if agents["db2"].writable {
            db2_writable_round.get_or_insert(round);
            break;
        }
    }
    assert!(
        matches!((db1_demoted_round, db2_writable_round), (Some(d), Some(w)) if d < w),
        "db1 demoted in round {db1_demoted_round:?}, db2 writable in round {db2_writable_round:?}"
    );
    assert_eq!(
        steps,
        [
            FailoverStep::DemoteOld,
            FailoverStep::CatchUp,
            FailoverStep::Repoint,
            FailoverStep::Promote
        ],
        "every step committed, in order"
    );
    assert_eq!(s.failover, None);
    assert_eq!(s.active_master.as_deref(), Some("db2"));
    assert_eq!(s.role_ips[WIP].owner.as_deref(), Some("db2"));
    assert!(s.history.iter().any(|d| d.to == "completed"));

    // Negative control: the new owner pushed directly (the writer IP and active master set while db1's
    // agent is still writable) is what the checker catches.
    let mut direct = base_state(&c);
    let out = Output {
        proposals: vec![req(Command::Batch(vec![
            Command::SetRoleOwner {
                ip: WIP.into(),
                owner: Some("db2".into()),
            },
            Command::SetActiveMaster {
                host: Some("db2".into()),
            },
        ]))],
        actions: vec![],
    };
    direct = commit(&direct, &out);
    let mut writable_db1: BTreeMap<String, SimAgent> = BTreeMap::new();
    writable_db1.insert(
        "db1".into(),
        SimAgent {
            writable: true,
            ..Default::default()
        },
    );
    assert_eq!(two_writers(&direct, &c, &writable_db1), ["db2"]);
}

#[test]
fn a_planned_writer_that_cannot_take_the_role_is_dropped_on_set_active() {
    let c = cfg();
    let mut s = base_state(&c);
    s.mode = Mode::Passive;
    s.planned_writer = Some("db2".into());
    set_state(&mut s, "db2", HostState::HardOffline, 0);
    let plan = set_mode(&s, &c, Mode::Active, NOW).expect("set_active");
    assert_eq!(
        plan.message,
        "OK: Switched into active mode. The planned move of role 'writer' to 'db2' was dropped: \
         ERROR: Host 'db2' is 'HARD_OFFLINE' at the moment. Can't move role there."
    );
    let s2 = commit(
        &s,
        &Output {
            proposals: plan.proposals,
            actions: vec![],
        },
    );
    assert_eq!(
        (s2.mode, s2.planned_writer.as_deref()),
        (Mode::Active, None)
    );
    assert_eq!(s2.failover, None);
    assert_eq!(s2.active_master.as_deref(), Some("db1"));
    assert!(agent_status_for(&s2, "db1", &c).writer);
    // Without an active master (a careful startup that found several writers), the planned host
    // is named through a failover record with no previous writer.
    let mut s = base_state(&c);
    s.mode = Mode::Passive;
    s.active_master = None;
    s.role_ips.get_mut(WIP).expect("WIP").owner = None;
    let p = set_ip(&s, &c, WIP, "db1", NOW).expect("set_ip");
    let s2 = commit(
        &s,
        &Output {
            proposals: p.proposals,
            actions: vec![],
        },
    );
    assert_eq!(s2.planned_writer.as_deref(), Some("db1"));
    assert!(
        !agent_status_for(&s2, "db1", &c).writer,
        "nothing named while passive"
    );
    let plan = set_mode(&s2, &c, Mode::Active, NOW).expect("set_active");
    let s3 = commit(
        &s2,
        &Output {
            proposals: plan.proposals,
            actions: vec![],
        },
    );
    let f = s3.failover.clone().expect("failover record");
    assert_eq!((f.from, f.to.as_str()), (None, "db1"));
    // set_manual carries a plan out too.
    let mut s = base_state(&c);
    s.mode = Mode::Passive;
    s.planned_writer = Some("db2".into());
    let plan = set_mode(&s, &c, Mode::Manual, NOW).expect("set_manual");
    let s2 = commit(
        &s,
        &Output {
            proposals: plan.proposals,
            actions: vec![],
        },
    );
    assert_eq!(
        s2.failover.map(|f| (f.to, f.planned)),
        Some(("db2".into(), true))
    );
}

#[test]
fn move_role_rules_and_texts() {
    let c = cfg();
    use HostState::*;
    // (mode, role, host, force, db2 state, expected text)
    let rows: Vec<(Mode, &str, &str, bool, HostState, &str)> = vec![
        (Mode::Passive, "writer", "db2", false, Online, "ERROR: This command is not allowed in passive mode"),
        (Mode::Active, "nope", "db2", false, Online, "ERROR: Unknown role name 'nope'!"),
        (Mode::Active, "writer", "dbx", false, Online, "ERROR: Unknown host name 'dbx'!"),
        (Mode::Active, "writer", "db2", false, HardOffline, "ERROR: Host 'db2' is 'HARD_OFFLINE' at the moment. Can't move role there."),
        (Mode::Active, "writer", "db2", false, ReplicationFail, "ERROR: Host 'db2' is 'REPLICATION_FAIL' at the moment. Can't move role there."),
        (Mode::Active, "writer", "db2", true, HardOffline, "ERROR: Host 'db2' is 'HARD_OFFLINE' at the moment. Can't move role there."),
        (Mode::Active, "writer", "db3", false, Online, "ERROR: Host 'db3' can't handle role 'writer'. Only following hosts could: db1, db2"),
        (Mode::Active, "writer", "db1", false, Online, "OK: Role 'writer' is assigned to host 'db1' already. Skipping command."),
        (Mode::Active, "writer", "db2", false, Online, "OK: Role 'writer' has been moved from 'db1' to 'db2'. Now you can wait some time and check new roles info!"),
        (Mode::Manual, "writer", "db2", true, ReplicationDelay, "OK: Role 'writer' has been moved from 'db1' to 'db2'. Now you can wait some time and check new roles info!"),
        (Mode::Active, "reader", "db3", false, Online, "OK: Role 'reader' has been removed from 'db3'. Now you can wait some time and check new roles info!"),
        (Mode::Active, "reader", "db1", false, Online, "OK: Host 'db1' has no IPs of role 'reader'. Skipping command."),
    ];
    for (mode, role, host, force, db2, text) in rows {
        let mut s = base_state(&c);
        s.mode = mode;
        set_state(&mut s, "db2", db2, 0);
        let got = match move_role(&s, &c, role, host, force, NOW) {
            Ok(p) => {
                let s2 = commit(
                    &s,
                    &Output {
                        proposals: p.proposals.clone(),
                        actions: vec![],
                    },
                );
                if role == "writer" && host == "db2" {
                    let f = s2.failover.clone().expect("planned failover");
                    assert!(f.planned);
                    assert_eq!((f.from.as_deref(), f.to.as_str()), (Some("db1"), "db2"));
                    assert_eq!(
                        s2.role_ips[WIP].owner, None,
                        "old writer denies writes first"
                    );
                }
                if role == "reader" && host == "db3" {
                    assert_eq!(s2.role_ips[R1].owner.as_deref(), Some("db4"));
                }
                p.message
            }
            Err(e) => e.to_string(),
        };
        assert_eq!(got, text, "{mode} {role} {host} force={force} db2={db2}");
        assert_eq!(
            plan_move_role(&s, &c, role, host, force, NOW).is_ok(),
            text.starts_with("OK"),
            "plan_move_role agrees"
        );
    }
    // A second writer move while one runs is refused.
    let s = commit(
        &base_state(&c),
        &Output {
            proposals: plan_move_role(&base_state(&c), &c, "writer", "db2", false, NOW)
                .expect("ok"),
            actions: vec![],
        },
    );
    assert_eq!(
        move_role(&s, &c, "writer", "db2", false, NOW)
            .expect_err("busy")
            .to_string(),
        "ERROR: A move of role 'writer' to 'db2' is already in progress."
    );
}

#[test]
fn move_role_away_from_the_preferred_host_is_refused_in_active_mode_only() {
    // Active mode would move the writer straight back to its preferred host: MMM refused the move.
    let mut c = cfg();
    c.roles.get_mut("writer").expect("writer").prefer = Some("db1".into());
    let refused = "ERROR: Role 'writer' is assigned to preferred host 'db1'. Can't move it!";
    // (mode, force, db1 holds the writer, refused?)
    let rows = [
        (Mode::Active, false, true, true),
        (Mode::Active, true, true, false),
        (Mode::Manual, false, true, false),
        (Mode::Wait, false, true, false),
        (Mode::Active, false, false, false),
    ];
    for (mode, force, on_preferred, want_refused) in rows {
        let mut s = base_state(&c);
        s.mode = mode;
        if force {
            set_state(&mut s, "db2", HostState::ReplicationDelay, 0);
        }
        if !on_preferred {
            s.role_ips.get_mut(WIP).expect("wip").owner = Some("db2".into());
            s.active_master = Some("db2".into());
        }
        let to = if on_preferred { "db2" } else { "db1" };
        let got = move_role(&s, &c, "writer", to, force, NOW);
        match got {
            Err(e) if want_refused => assert_eq!(e.to_string(), refused),
            Ok(p) if !want_refused => assert!(!p.proposals.is_empty(), "{mode} {force}"),
            other => panic!("{mode} force={force} on_preferred={on_preferred}: {other:?}"),
        }
    }
}

#[test]
fn forced_move_to_replication_fail_host_completes() {
    let c = cfg();
    let mut s = base_state(&c);
    set_state(&mut s, "db2", HostState::ReplicationFail, 0);
    s = commit(
        &s,
        &Output {
            proposals: plan_move_role(&s, &c, "writer", "db2", true, NOW).expect("ok"),
            actions: vec![],
        },
    );
    let started = s.failover.as_ref().expect("failover").started_epoch;
    // A planned move: the old writer holds client writes (they wait) until the move ends.
    assert!(agent_status_for(&s, "db1", &c).hold_writes);
    assert!(!agent_status_for(&s, "db2", &c).hold_writes);
    let mut input = healthy_input(&c, &s, NOW + 100);
    fail(&mut input, "db2", "rep_threads");
    facts(&mut input, "db1").demotion_acked_epoch = Some(started);
    facts(&mut input, "db2").caught_up_for = Some(started);
    for h in ["db1", "db3", "db4"] {
        facts(&mut input, h).repointed_to = Some("db2".into());
    }
    let out = decide(&s, &input, &c);
    let s2 = commit(&s, &out);
    assert_eq!(
        s2.active_master.as_deref(),
        Some("db2"),
        "{}",
        reasons(&out)
    );
    assert!(
        !agent_status_for(&s2, "db1", &c).hold_writes,
        "released once the move ended"
    );
    // The new active master is not moved away for its replication state.
    let out = decide(&s2, &input, &c);
    assert!(commit(&s2, &out).failover.is_none());
}

// ---------------------------------------------------------------- agent status

#[test]
fn agent_status_roles_sorted_writer_flag_and_master() {
    let c = cfg();
    let mut s = base_state(&c);
    for ip in ["10.0.0.9", "10.0.0.10"] {
        s.role_ips.insert(
            ip.into(),
            mmm_consensus::RoleIpRecord {
                role: "reader".into(),
                owner: Some("db1".into()),
                epoch: Epoch::default(),
            },
        );
    }
    let st = agent_status_for(&s, "db1", &c);
    assert_eq!(
        st.roles,
        vec![
            ("reader".to_string(), "10.0.0.9".to_string()),
            ("reader".to_string(), "10.0.0.10".to_string()),
            ("writer".to_string(), WIP.to_string()),
        ]
    );
    assert!(st.writer);
    assert_eq!(st.state, HostState::Online);
    assert_eq!(st.active_master.as_deref(), Some("db1"));
    let st = agent_status_for(&s, "db3", &c);
    assert!(!st.writer);
    // During a failover, replicas hear of the new master only from the Repoint step on.
    for (step, master) in [
        (FailoverStep::CatchUp, "db1"),
        (FailoverStep::Repoint, "db2"),
    ] {
        let (s, _) = failover_at(&c, step, NOW);
        assert_eq!(
            agent_status_for(&s, "db3", &c).active_master.as_deref(),
            Some(master),
            "{step}"
        );
    }
}

#[test]
fn a_new_cluster_names_its_first_writer_only_after_every_writer_host_is_judged() {
    let c = cfg();
    let mut s = base_state(&c);
    for h in ["db2", "db3", "db4"] {
        set_state(&mut s, h, HostState::Online, NOW);
    }
    set_state(&mut s, "db1", HostState::Unknown, 0);
    s.active_master = None;
    for rec in s.role_ips.values_mut() {
        rec.owner = None;
    }
    let mut input = healthy_input(&c, &s, NOW);
    // db1's checks have not answered yet: it stays UNKNOWN this round.
    for r in input.reports.values_mut() {
        if let Some(h) = r.hosts.get_mut("db1") {
            h.checks.clear();
        }
    }
    input.startup = Some(StartupEvidence {
        complete: true,
        ..Default::default()
    });
    let out = decide(&s, &input, &c);
    let s1 = commit(&s, &out);
    assert_eq!(
        s1.role_ips[WIP].owner,
        None,
        "no writer while db1 is unjudged: {}",
        reasons(&out)
    );
    assert!(s1.failover.is_none());
    // Once db1 is judged ONLINE, the writer goes to the first host in the role's order, db1, even
    // though db2 holds fewer role IPs.
    let input = healthy_input(&c, &s1, NOW + 1000);
    let mut state = s1;
    if let Some(r) = state.role_ips.get_mut(R1) {
        r.owner = Some("db1".into());
    }
    for _ in 0..6 {
        let out = decide(&state, &input, &c);
        state = commit(&state, &out);
    }
    assert_eq!(state.hosts["db1"].state, HostState::Online);
    assert!(
        state.failover.as_ref().is_some_and(|f| f.to == "db1")
            || state.active_master.as_deref() == Some("db1"),
        "writer goes to db1: {state:?}"
    );
}

// ---------------------------------------------------------------- a writer its agent cannot keep

#[test]
fn a_writer_its_agent_has_not_kept_writable_for_a_lease_and_the_fence_is_failed_over() {
    let c = cfg();
    let s = base_state(&c);
    let after = c.writer_unwritable_after_ms;
    // (ms the active master was not seen writable, mode, peer's agent reachable) -> failover begins
    let rows = [
        (0, Mode::Active, true, false),
        (after - 1, Mode::Active, true, false),
        (after, Mode::Active, true, true),
        (after * 10, Mode::Active, true, true),
        // Manual and passive modes keep roles where they are.
        (after, Mode::Manual, true, false),
        (after, Mode::Passive, true, false),
        // Nobody can take the role: it stays (its agent may come back and renew).
        (after, Mode::Active, false, false),
    ];
    for (i, (ms, mode, peer_ok, moves)) in rows.into_iter().enumerate() {
        let mut s = s.clone();
        s.mode = mode;
        let mut input = healthy_input(&c, &s, NOW);
        facts(&mut input, "db1").not_writable_ms = ms;
        facts(&mut input, "db2").reachable = peer_ok;
        let out = decide(&s, &input, &c);
        let began = commands(&out).iter().any(|cmd| {
            matches!(cmd, Command::BeginFailover { from: Some(f), to, .. } if f == "db1" && to == "db2")
        });
        assert_eq!(began, moves, "row {i}: {}", reasons(&out));
        if moves {
            assert!(
                reasons(&out).contains("has not kept it writable"),
                "the reason says why: {}",
                reasons(&out)
            );
        }
        assert!(
            commands(&out)
                .iter()
                .all(|cmd| !matches!(cmd, Command::SetRoleOwner { owner: None, .. }) || moves),
            "row {i}: the role is never dropped without a new owner: {}",
            reasons(&out)
        );
    }
}

/// The active master's mysqld died with no one to take over: the writer IPs were taken from it. Back
/// ONLINE, its agent keeps it read-only (it holds no writer role), which is not a writer its agent
/// cannot keep: it gets the role back, whether or not another host could take it.
#[test]
fn an_online_active_master_without_its_writer_ips_gets_them_back_however_long_it_was_read_only() {
    let c = cfg();
    let mut s = base_state(&c);
    s.role_ips.get_mut(WIP).unwrap().owner = None;
    let after = c.writer_unwritable_after_ms;
    // (ms the active master was not seen writable, peer's agent reachable)
    for (i, (ms, peer_ok)) in [(0, true), (after * 10, false), (after * 10, true)]
        .into_iter()
        .enumerate()
    {
        let mut input = healthy_input(&c, &s, NOW);
        facts(&mut input, "db1").not_writable_ms = ms;
        facts(&mut input, "db2").reachable = peer_ok;
        let out = decide(&s, &input, &c);
        assert!(
            commands(&out).iter().any(|cmd| matches!(
                cmd,
                Command::SetRoleOwner { ip, owner: Some(o) } if ip == WIP && o == "db1"
            )),
            "row {i}: db1 gets the writer IP back: {}",
            reasons(&out)
        );
        assert!(
            !commands(&out)
                .iter()
                .any(|cmd| matches!(cmd, Command::BeginFailover { .. })),
            "row {i}: no failover: {}",
            reasons(&out)
        );
    }
}

#[test]
fn the_candidate_must_reach_the_old_writers_last_position() {
    let c = cfg();
    let mut s = base_state(&c);
    set_state(&mut s, "db1", HostState::HardOffline, NOW);
    let mut input = healthy_input(&c, &s, NOW + 10);
    fail(&mut input, "db1", "mysql");
    let out = decide(&s, &input, &c);
    let s = commit(&s, &out);
    let started = s.failover.as_ref().expect("failover begun").started_epoch;
    // The old writer acknowledged its demotion at the failover's epoch and reported its position.
    let mut input = healthy_input(&c, &s, NOW + 20);
    fail(&mut input, "db1", "mysql");
    let f = facts(&mut input, "db1");
    f.demotion_acked_epoch = Some(started);
    f.demoted_gtid = Some("0-1-42".into());
    let out = decide(&s, &input, &c);
    assert!(
        commands(&out).contains(&Command::CatchUpTarget {
            gtid: "0-1-42".into()
        }),
        "{}",
        reasons(&out)
    );
    let s = commit(&s, &out);
    assert_eq!(
        agent_status_for(&s, "db2", &c).catch_up,
        Some((started, "0-1-42".to_string())),
        "the candidate is asked to reach it"
    );
    assert_eq!(agent_status_for(&s, "db3", &c).catch_up, None);
    // Not promoted until it reports it did.
    let out = decide(&s, &input, &c);
    assert!(
        !commands(&out).contains(&Command::FailoverStep {
            step: FailoverStep::Repoint
        }),
        "{}",
        reasons(&out)
    );
    facts(&mut input, "db2").caught_up_for = Some(started);
    let out = decide(&s, &input, &c);
    assert_eq!(commit(&s, &out).active_master.as_deref(), Some("db2"));
}

/// The writer role on db1, db2 and db3 (db3 a slave): three writer-eligible hosts.
fn cfg_three_writers() -> EngineConfig {
    let mut c = cfg();
    c.roles.get_mut("writer").expect("writer").hosts =
        vec!["db1".into(), "db2".into(), "db3".into()];
    c
}

/// A reported position `gtid`, unchanged for `ms`.
fn position(gtid: &str, ms: u64) -> ReportedPosition {
    ReportedPosition {
        gtid: gtid.to_string(),
        unchanged_ms: ms,
    }
}

#[test]
fn the_most_advanced_host_is_preferred_once_positions_stood_still() {
    let c = cfg_three_writers();
    let s = base_state(&c);
    let settled = POSITION_SETTLED_MS;
    // (db2's position and ms unchanged, db3's, expected candidate, why)
    let table: &[(Option<(&str, u64)>, Option<(&str, u64)>, &str, &str)] = &[
        (None, None, "db2", "positions unknown: the peer, as MMM"),
        (
            Some(("0-1-10", settled)),
            Some(("0-1-10", settled)),
            "db2",
            "equal",
        ),
        (
            Some(("0-1-10", settled)),
            Some(("0-1-12", 0)),
            "db3",
            "db2 stood still and lacks two",
        ),
        (
            Some(("0-1-10", settled - 1)),
            Some(("0-1-12", 0)),
            "db2",
            "db2 still moving: maybe receiving",
        ),
        (
            Some(("0-1-12", settled)),
            Some(("0-1-10", settled)),
            "db2",
            "the peer is the most advanced",
        ),
        (
            Some(("0-1-10", settled)),
            None,
            "db2",
            "db3's position unknown",
        ),
        (
            Some(("0-1-10,1-3-5", settled)),
            Some(("0-1-12", settled)),
            "db2",
            "each has what the other lacks",
        ),
        (
            Some(("0-1-10", settled)),
            Some(("0-1-12,1-3-1", settled)),
            "db3",
            "ahead in every domain",
        ),
        (
            Some(("junk", settled)),
            Some(("0-1-12", settled)),
            "db2",
            "unreadable position ranks nothing",
        ),
    ];
    for (db2, db3, want, why) in table {
        let mut input = healthy_input(&c, &s, NOW);
        for (h, p) in [("db2", db2), ("db3", db3)] {
            facts(&mut input, h).position = p.map(|(g, ms)| position(g, ms));
        }
        let got = choose_candidate(&s, &c, &input, Some("db1")).expect("a candidate");
        assert_eq!(got.host, *want, "{why}");
        assert_eq!(got.passed_over.is_some(), *want != "db2", "{why}: {got:?}");
    }
    // A new cluster (no previous writer) keeps the configured order whatever the positions.
    let mut input = healthy_input(&c, &s, NOW);
    facts(&mut input, "db1").position = Some(position("0-1-1", settled));
    facts(&mut input, "db2").position = Some(position("0-1-9", settled));
    let got = choose_candidate(&s, &c, &input, None).expect("a candidate");
    assert_eq!(got.host, "db1");
}

#[test]
fn a_failover_to_a_more_advanced_host_says_whom_it_passed_over() {
    let c = cfg_three_writers();
    let mut s = base_state(&c);
    set_state(&mut s, "db1", HostState::HardOffline, NOW);
    let mut input = healthy_input(&c, &s, NOW + 10);
    fail(&mut input, "db1", "mysql");
    facts(&mut input, "db2").position = Some(position("0-1-100", 2_000));
    facts(&mut input, "db3").position = Some(position("0-1-130", 2_000));
    let out = decide(&s, &input, &c);
    let s2 = commit(&s, &out);
    assert_eq!(s2.failover.as_ref().map(|f| f.to.as_str()), Some("db3"));
    let r = reasons(&out);
    assert!(
        r.contains("db3 chosen over db2: it has 30 transaction(s) db2 lacks"),
        "{r}"
    );
}
