//! Every command's output, made from constructed replies, compared with golden files written
//! from mmm_control's formats (`tests/golden/*.txt`), and the `--json` views parsed back.
//! Times are printed in UTC here (the binary prints local time).

use mmm_proto::*;
use mmmctl::{format, view};

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

fn role(role: &str, ip: &str) -> RoleIp {
    RoleIp {
        role: role.into(),
        ip: ip.into(),
    }
}

fn host(
    name: &str,
    ip: &str,
    mode: &str,
    state: HostState,
    roles: Vec<RoleIp>,
    agent: bool,
) -> HostView {
    HostView {
        name: name.into(),
        ip: ip.into(),
        mode: mode.into(),
        state: state as i32,
        roles,
        agent_reachable: agent,
        errant_gtids: String::new(),
        ..Default::default()
    }
}

/// Hosts given out of order, roles out of order: the output must sort both.
fn show_reply(mode: Mode) -> ShowReply {
    ShowReply {
        mode: mode as i32,
        passive_cause: if mode == Mode::Passive {
            "Discrepancies in roles and status found".into()
        } else {
            String::new()
        },
        hosts: vec![
            host(
                "db3",
                "192.168.0.33",
                "slave",
                HostState::Online,
                vec![role("reader", "192.168.0.53")],
                true,
            ),
            host(
                "db2",
                "192.168.0.32",
                "master",
                HostState::Online,
                vec![
                    role("writer", "192.168.0.50"),
                    role("reader", "192.168.0.52"),
                    role("reader", "192.168.0.100"),
                ],
                true,
            ),
            host(
                "db4",
                "192.168.0.34",
                "slave",
                HostState::HardOffline,
                vec![],
                false,
            ),
            host(
                "db1",
                "192.168.0.31",
                "master",
                HostState::AwaitingRecovery,
                vec![],
                true,
            ),
        ],
        preferences: vec![
            RolePreference {
                role: "writer".into(),
                preferred_host: "db1".into(),
                current_host: "db2".into(),
            },
            RolePreference {
                role: "other".into(),
                preferred_host: "db3".into(),
                current_host: "db3".into(),
            },
        ],
        active_master: "db2".into(),
        ..Default::default()
    }
}

#[test]
fn help_text() {
    golden("help", format::HELP);
}

#[test]
fn show_active() {
    golden("show_active", &format::show(&show_reply(Mode::Active)));
}

#[test]
fn show_passive() {
    golden("show_passive", &format::show(&show_reply(Mode::Passive)));
}

/// `show_reply` with the facts `show --extended` adds: a writer, a lagging replica with a stopped SQL
/// thread, an agent that does not answer, and a second writable server.
fn extended_reply() -> ShowReply {
    let mut r = show_reply(Mode::Active);
    r.writer_lease_left_millis = 4200;
    for h in &mut r.hosts {
        h.topology = Some(match h.name.as_str() {
            "db2" => HostTopology {
                agent_answered: true,
                age_millis: 300,
                mysql_reachable: true,
                read_only: false,
                gtid_binlog_pos: "0-2-120".into(),
                gtid_current_pos: "0-2-120".into(),
                semi_sync_source: "ON".into(),
                semi_sync_replica: "OFF".into(),
                vips_present: vec!["192.168.0.50".into(), "192.168.0.52".into()],
                server_version: "10.11.6-MariaDB".into(),
                seconds_behind: -1,
                transactions_behind_writer: 0,
                ..Default::default()
            },
            "db3" => HostTopology {
                agent_answered: true,
                age_millis: 400,
                mysql_reachable: true,
                read_only: true,
                replicates_from: "192.168.0.32:3306".into(),
                replicates_from_host: "db2".into(),
                io_running: true,
                sql_running: false,
                seconds_behind: -1,
                last_sql_error: "Duplicate entry '7' for key 'PRIMARY'".into(),
                gtid_binlog_pos: "0-2-110".into(),
                gtid_current_pos: "0-2-110".into(),
                transactions_behind_writer: 10,
                semi_sync_source: "OFF".into(),
                semi_sync_replica: "ON".into(),
                vips_present: vec!["192.168.0.53".into()],
                server_version: "10.11.6-MariaDB".into(),
                ..Default::default()
            },
            "db1" => HostTopology {
                agent_answered: true,
                age_millis: 200,
                mysql_reachable: true,
                read_only: false,
                replicates_from: "192.168.0.32:3306".into(),
                replicates_from_host: "db2".into(),
                io_running: true,
                sql_running: true,
                seconds_behind: 0,
                gtid_binlog_pos: "0-2-120,1-1-3".into(),
                gtid_current_pos: "0-2-120".into(),
                transactions_behind_writer: 0,
                server_version: "10.11.6-MariaDB".into(),
                ..Default::default()
            },
            _ => HostTopology {
                agent_answered: false,
                poll_error: "agent did not answer in time".into(),
                seconds_behind: -1,
                transactions_behind_writer: -1,
                ..Default::default()
            },
        });
    }
    r
}

#[test]
fn show_extended_keeps_mmms_lines_first() {
    let r = extended_reply();
    let text = mmmctl::extended::show_extended(&r);
    assert!(
        text.starts_with(&format::show(&r)),
        "MMM's lines must come first, unchanged:\n{text}"
    );
    golden("show_extended", &text);
}

#[test]
fn show_extended_json_has_every_fact() {
    let v = view::ShowView::from(&extended_reply());
    let db3 = v.hosts.iter().find(|h| h.name == "db3").expect("db3");
    let t = db3.topology.as_ref().expect("facts");
    assert_eq!(t.replicates_from_host, "db2");
    assert!(t.io_running && !t.sql_running && t.read_only);
    assert_eq!(t.seconds_behind, None);
    assert_eq!(t.transactions_behind_writer, Some(10));
    assert_eq!(t.semi_sync_replica, "ON");
    assert_eq!(v.writer_lease_left_ms, Some(4200));
    let plain = view::ShowView::from(&show_reply(Mode::Active));
    assert!(plain.hosts.iter().all(|h| h.topology.is_none()));
    assert_eq!(plain.writer_lease_left_ms, None);
    let text = serde_json::to_string(&plain).expect("json");
    assert!(
        !text.contains("topology") && !text.contains("staleness"),
        "{text}"
    );
}

#[test]
fn a_stale_answer_says_so_on_its_first_line() {
    let mut r = show_reply(Mode::Active);
    r.staleness = Some(Staleness {
        monitor: "mon3".into(),
        leader_contact: false,
        leader: "mon1".into(),
        age_millis: 12_300,
        reason: "the leader mon1 has not answered this monitor for 12.3 s".into(),
    });
    let line = mmmctl::extended::stale_line(r.staleness.as_ref()).expect("stale");
    golden("show_stale_line", &line);
    r.staleness = Some(Staleness {
        monitor: "mon1".into(),
        leader_contact: true,
        ..Default::default()
    });
    assert_eq!(mmmctl::extended::stale_line(r.staleness.as_ref()), None);
    assert_eq!(mmmctl::extended::stale_line(None), None);
}

fn check(host: &str, check: &str, ok: bool, t: i64, msg: &str) -> CheckView {
    CheckView {
        host: host.into(),
        check: check.into(),
        ok,
        last_change: t,
        message: msg.into(),
    }
}

fn checks_reply() -> ChecksReply {
    let t = 1_795_755_601; // 2026/11/27 05:00:01 UTC
    ChecksReply {
        staleness: None,
        checks: vec![
            check("db1", "ping", true, t, "Reply from 192.168.0.31"),
            check("db1", "mysql", true, t, "Checked in 0.0012 seconds"),
            check("db1", "rep_threads", true, t, ""),
            check("db1", "rep_backlog", true, t, ""),
            check("db10", "ping", true, t + 59, ""),
            check(
                "db10",
                "mysql",
                false,
                t + 3600,
                "Connect error (host = 192.168.0.40:3306, user = mmm_monitor)! Connection refused",
            ),
            check(
                "db10",
                "rep_threads",
                false,
                t + 3600,
                "ERROR: Replication is not set up",
            ),
            check("db10", "rep_backlog", false, t + 86_400, ""),
        ],
    }
}

#[test]
fn checks_all() {
    golden("checks", &format::checks(&checks_reply(), &chrono::Utc));
}

#[test]
fn modes() {
    let mut out = String::new();
    for m in [Mode::Active, Mode::Manual, Mode::Wait, Mode::Passive] {
        out.push_str(&format::mode(&ModeReply {
            staleness: None,
            mode: m as i32,
            passive_cause: if m == Mode::Passive {
                "set by operator".into()
            } else {
                String::new()
            },
        }));
    }
    golden("mode", &out);
}

fn move_stream() -> Vec<MoveRoleProgress> {
    let e = |i| Some(Epoch { term: 3, index: i });
    vec![
        MoveRoleProgress { step: "move committed: writer db1 -> db2".into(), epoch: e(41), elapsed_millis: 4, ..Default::default() },
        MoveRoleProgress { step: "writes blocked on db1".into(), epoch: e(41), elapsed_millis: 37, ..Default::default() },
        MoveRoleProgress { step: "replicas re-pointed to db2".into(), epoch: e(42), elapsed_millis: 212, ..Default::default() },
        MoveRoleProgress { step: "writer open on db2".into(), epoch: e(43), elapsed_millis: 268, ..Default::default() },
        MoveRoleProgress {
            done: true,
            ok: true,
            elapsed_millis: 270,
            message: "OK: Role 'writer' has been moved from 'db1' to 'db2'. Now you can wait some time and check new roles info!".into(),
            writes_blocked_millis: 231,
            ..Default::default()
        },
    ]
}

#[test]
fn move_role_steps() {
    let out: String = move_stream().iter().map(format::move_progress).collect();
    golden("move_role", &out);
    let failed = MoveRoleProgress {
        done: true,
        ok: false,
        message: "Host 'db3' is 'HARD_OFFLINE' at the moment. It can't be used for role 'writer'."
            .into(),
        ..Default::default()
    };
    golden("move_role_failed", &format::move_progress(&failed));
}

fn cluster_reply() -> ClusterStatusReply {
    let m = |id, name: &str, reachable, matched, lag| MemberView {
        id,
        name: name.into(),
        addr: format!("10.0.0.2{id}:9988"),
        voter: true,
        reachable,
        matched_index: matched,
        lag,
    };
    ClusterStatusReply {
        node_id: 2,
        node_name: "mon2".into(),
        leader_id: 1,
        leader_name: "mon1".into(),
        term: 3,
        commit_index: 120,
        applied_index: 119,
        members: vec![
            m(3, "mon3", false, 97, 23),
            m(1, "mon1", true, 120, 0),
            m(2, "mon2", true, 120, 0),
        ],
        has_quorum: true,
        cluster_id: "3f9c0e5b7a1d42c8b6e0f1a2d3c4b5a6".into(),
    }
}

#[test]
fn cluster_status() {
    golden("cluster", &format::cluster(&cluster_reply()));
}

fn history_reply() -> HistoryReply {
    HistoryReply {
        staleness: None,
        decisions: vec![
            DecisionView {
                time_millis: 1_795_755_601_250,
                epoch: Some(Epoch { term: 3, index: 40 }),
                host: "db1".into(),
                from: "ONLINE".into(),
                to: "HARD_OFFLINE".into(),
                reason: "mysql failed on 3 of 3 monitors".into(),
                ..Default::default()
            },
            DecisionView {
                time_millis: 1_795_755_602_000,
                epoch: Some(Epoch { term: 3, index: 41 }),
                host: "db2".into(),
                role: "writer".into(),
                summary: "writer(192.168.0.50) moved from db1 to db2".into(),
                ..Default::default()
            },
        ],
    }
}

#[test]
fn history_lines() {
    golden("history", &format::history(&history_reply(), &chrono::Utc));
}

#[test]
fn json_views_parse_back() {
    let show = view::ShowView::from(&show_reply(Mode::Passive));
    let back: view::ShowView =
        serde_json::from_str(&serde_json::to_string(&show).unwrap()).unwrap();
    assert_eq!(back, show);
    assert_eq!(back.mode, "PASSIVE");
    assert_eq!(
        back.hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>(),
        ["db1", "db2", "db3", "db4"]
    );
    assert_eq!(
        back.hosts[1].roles[0],
        view::RoleView {
            role: "reader".into(),
            ip: "192.168.0.52".into()
        }
    );
    assert_eq!(back.hosts[3].state, "HARD_OFFLINE");

    let checks = view::ChecksView::from(&checks_reply());
    let v: serde_json::Value = serde_json::to_value(&checks).unwrap();
    assert_eq!(v["checks"][5]["ok"], false);
    assert_eq!(v["checks"][5]["host"], "db10");
    let back: view::ChecksView = serde_json::from_value(v).unwrap();
    assert_eq!(back, checks);

    let mv = view::MoveRoleView::from_progress(&move_stream());
    let back: view::MoveRoleView =
        serde_json::from_str(&serde_json::to_string(&mv).unwrap()).unwrap();
    assert_eq!(back.steps.len(), 4);
    assert_eq!(back.steps[2].epoch.as_deref(), Some("3.42"));
    assert!(back.ok);
    assert_eq!(back.writes_blocked_ms, 231);

    let cl = view::ClusterView::from(&cluster_reply());
    let back: view::ClusterView =
        serde_json::from_str(&serde_json::to_string(&cl).unwrap()).unwrap();
    assert_eq!(back, cl);
    let h = view::HistoryView::from(&history_reply());
    let back: view::HistoryView =
        serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
    assert_eq!(back, h);
    let m = view::ModeView::from(&ModeReply {
        staleness: None,
        mode: Mode::Wait as i32,
        passive_cause: String::new(),
    });
    assert_eq!(serde_json::to_value(&m).unwrap()["mode"], "WAIT");
    let c = view::CommandView::from(&CommandReply {
        ok: false,
        message: "ERROR: x".into(),
    });
    let back: view::CommandView =
        serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}
