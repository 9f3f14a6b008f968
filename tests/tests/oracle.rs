//! Tests of the oracle: every judging rule over constructed evidence (including one that must not fire), the
//! namespace runtime, and negative controls against a lab without any mmm-rs process (each makes the fault
//! by hand and checks the oracle reports it), plus a steady writer with no findings.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mmm_lab::oracle::{
    self, judge, Account, ClientInfo, ClientSpec, Event, Evidence, FinalState, Finding, History,
    LostWrite, NsRuntime, Op, Oracle, OracleSpec, Outcome, Role, Samples, Timeline, Workloads,
};
use mmm_lab::{Lab, LabSpec};
use mysql_async::prelude::Queryable;

const MS: Duration = Duration::from_millis(1);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

// ---- constructed evidence ----

fn ms(t0: Instant, at: u64) -> Instant {
    t0 + MS * at as u32
}

/// A timeline sampled every 20 ms (each sample answered 1 ms after it was sent) from `segments` of
/// `(from_ms, to_ms, value)`.
fn timeline<T: PartialEq + Clone>(t0: Instant, segments: &[(u64, u64, T)]) -> Timeline<T> {
    let mut t = Timeline::default();
    for (from, to, v) in segments {
        let mut at = *from;
        while at < *to {
            t.push(ms(t0, at), ms(t0, at + 1), v.clone());
            at += 20;
        }
    }
    t
}

/// An event of client `client` on server `server`.
fn ev(
    client: usize,
    server: u32,
    sent: u64,
    done: u64,
    op: Op,
    outcome: Outcome,
) -> (usize, u32, u64, u64, Op, Outcome) {
    (client, server, sent, done, op, outcome)
}

/// Evidence with hosts db1 (server 1) and db2 (server 2), writers w1 and w2 and reader r1, the given events
/// and read_only timelines, and db1's final data.
fn evidence(
    t0: Instant,
    events: Vec<(usize, u32, u64, u64, Op, Outcome)>,
    read_only: Vec<(&str, Timeline<Option<bool>>)>,
    final_db1: FinalState,
) -> Evidence {
    let client = |name: &str, role| ClientInfo {
        name: name.into(),
        role,
        target: Ipv4Addr::LOCALHOST,
    };
    Evidence {
        history: History {
            started: t0,
            stopped: ms(t0, 3000),
            clients: vec![
                client("w1", Role::Writer),
                client("w2", Role::Writer),
                client("r1", Role::Reader),
            ],
            events: events
                .into_iter()
                .map(|(client, server, sent, done, op, outcome)| Event {
                    client,
                    server_id: Some(server),
                    sent: ms(t0, sent),
                    done: ms(t0, done),
                    op,
                    outcome,
                })
                .collect(),
        },
        samples: Samples {
            read_only: read_only
                .into_iter()
                .map(|(h, t)| (h.to_string(), t))
                .collect(),
            vips: BTreeMap::new(),
        },
        hosts: vec![("db1".into(), 1), ("db2".into(), 2)],
        writer_vip: VIP,
        final_writer: "db1".into(),
        final_states: BTreeMap::from([("db1".to_string(), Ok(final_db1))]),
    }
}

fn insert(id: u64) -> Op {
    Op::Insert { id }
}

/// A final state holding every id in `ids`.
fn with_inserts(ids: &[u64]) -> FinalState {
    FinalState {
        inserts: ids.iter().copied().collect(),
        ..Default::default()
    }
}

#[test]
fn oracle_unit_two_writable_windows_are_conservative_intersections() {
    let t0 = Instant::now();
    let e = evidence(
        t0,
        vec![],
        vec![
            ("db1", timeline(t0, &[(0, 1000, Some(false))])),
            (
                "db2",
                timeline(
                    t0,
                    &[
                        (0, 400, Some(true)),
                        (400, 600, Some(false)),
                        (600, 1000, Some(true)),
                    ],
                ),
            ),
        ],
        FinalState::default(),
    );
    let report = judge(&e);
    assert_eq!(report.two_writable.len(), 1, "{report:?}");
    let o = &report.two_writable[0];
    assert_eq!(o.hosts, ["db1".to_string(), "db2".to_string()]);
    // db2's 0-samples: sent 400..580; certain from 401 (first answer) to 580 (last question).
    assert_eq!(o.start, MS * 401);
    assert_eq!(o.length, MS * 179);
    assert!(matches!(report.findings()[0], Finding::TwoWritable(_)));
    assert!(report.findings()[0].to_string().contains("db1 and db2"));
    // A server that was never writable with the other: nothing.
    let quiet = evidence(
        t0,
        vec![],
        vec![
            ("db1", timeline(t0, &[(0, 1000, Some(false))])),
            ("db2", timeline(t0, &[(0, 1000, Some(true))])),
        ],
        FinalState::default(),
    );
    assert!(judge(&quiet).two_writable.is_empty());
}

#[test]
fn oracle_unit_writer_vip_overlaps_are_measured_not_findings() {
    let t0 = Instant::now();
    let mut e = evidence(t0, vec![], vec![], FinalState::default());
    let with = |v: bool| {
        Some(if v {
            BTreeSet::from([VIP])
        } else {
            BTreeSet::new()
        })
    };
    e.samples
        .vips
        .insert("db1".into(), timeline(t0, &[(0, 1000, with(true))]));
    e.samples.vips.insert(
        "db2".into(),
        timeline(
            t0,
            &[
                (0, 300, with(false)),
                (300, 620, with(true)),
                (620, 1000, with(false)),
            ],
        ),
    );
    let report = judge(&e);
    assert_eq!(report.writer_vip_overlaps.len(), 1);
    assert_eq!(report.writer_vip_overlaps[0].length, MS * 299);
    assert!(report.findings().is_empty(), "{:?}", report.findings());
    assert_eq!(report.vip_overlaps_over(MS * 100).len(), 1);
    assert!(report.vip_overlaps_over(MS * 500).is_empty());
}

#[test]
fn oracle_unit_split_brain_by_acks_fires_when_the_old_writer_keeps_writing() {
    let t0 = Instant::now();
    let acked = Outcome::Acked;
    let e = evidence(
        t0,
        vec![
            ev(0, 1, 100, 105, insert(1), acked.clone()),
            ev(1, 2, 200, 210, insert(2), acked.clone()),
            ev(1, 2, 220, 230, insert(3), acked.clone()),
            ev(0, 1, 300, 305, insert(4), acked.clone()),
        ],
        vec![
            ("db1", timeline(t0, &[(0, 1000, Some(false))])),
            ("db2", timeline(t0, &[(0, 1000, Some(true))])),
        ],
        with_inserts(&[1, 2, 3, 4]),
    );
    let found = oracle::judge::split_brain_by_acks(&e);
    assert_eq!(found.len(), 1, "{found:?}");
    match &found[0] {
        Finding::SplitBrainByAcks {
            host,
            other,
            count,
            before,
            between,
            after,
            ..
        } => {
            assert_eq!((host.as_str(), other.as_str(), *count), ("db1", "db2", 2));
            assert_eq!((*before, *between, *after), (MS * 105, MS * 210, MS * 300));
        }
        f => panic!("unexpected finding {f}"),
    }
    // The order must be certain: db1's later write sent before db2's ack came does not count.
    let concurrent = evidence(
        t0,
        vec![
            ev(0, 1, 100, 105, insert(1), Outcome::Acked),
            ev(1, 2, 200, 210, insert(2), Outcome::Acked),
            ev(0, 1, 205, 215, insert(4), Outcome::Acked),
        ],
        vec![("db1", timeline(t0, &[(0, 1000, Some(false))]))],
        with_inserts(&[1, 2, 4]),
    );
    assert!(oracle::judge::split_brain_by_acks(&concurrent).is_empty());
}

#[test]
fn oracle_unit_clean_failback_is_not_a_split_brain() {
    let t0 = Instant::now();
    // db1 writes, is demoted at 150, db2 is promoted at 200 and writes, is demoted at 900, db1 is promoted
    // again at 1000 and writes.
    let e = evidence(
        t0,
        vec![
            ev(0, 1, 100, 105, insert(1), Outcome::Acked),
            ev(1, 2, 300, 305, insert(2), Outcome::Acked),
            ev(1, 2, 400, 405, insert(3), Outcome::Acked),
            ev(0, 1, 1100, 1105, insert(4), Outcome::Acked),
        ],
        vec![
            (
                "db1",
                timeline(
                    t0,
                    &[
                        (0, 150, Some(false)),
                        (150, 1000, Some(true)),
                        (1000, 2000, Some(false)),
                    ],
                ),
            ),
            (
                "db2",
                timeline(
                    t0,
                    &[
                        (0, 200, Some(true)),
                        (200, 900, Some(false)),
                        (900, 2000, Some(true)),
                    ],
                ),
            ),
        ],
        with_inserts(&[1, 2, 3, 4]),
    );
    let report = judge(&e);
    assert!(report.findings().is_empty(), "{:?}", report.findings());
    // The same history with db1 never seen read-only is a split brain.
    let mut stuck = e.clone();
    stuck
        .samples
        .read_only
        .insert("db1".into(), timeline(t0, &[(0, 2000, Some(false))]));
    let report = judge(&stuck);
    assert!(
        report
            .findings()
            .iter()
            .any(|f| matches!(f, Finding::SplitBrainByAcks { host, .. } if host == "db1")),
        "{:?}",
        report.findings()
    );
    // No answer from db1 in between counts as not writable, like read_only=1.
    let mut paused = e;
    paused.samples.read_only.insert(
        "db1".into(),
        timeline(
            t0,
            &[
                (0, 150, Some(false)),
                (150, 1000, None),
                (1000, 2000, Some(false)),
            ],
        ),
    );
    assert!(oracle::judge::split_brain_by_acks(&paused).is_empty());
}

#[test]
fn oracle_unit_write_on_read_only_server_is_reported() {
    let t0 = Instant::now();
    let e = evidence(
        t0,
        vec![
            ev(0, 1, 100, 105, insert(1), Outcome::Acked),
            ev(1, 2, 500, 505, insert(2), Outcome::Acked),
            ev(1, 2, 520, 525, insert(3), Outcome::Acked),
            // db2 writable from 1000: not reported.
            ev(1, 2, 1500, 1505, insert(4), Outcome::Acked),
        ],
        vec![
            ("db1", timeline(t0, &[(0, 2000, Some(false))])),
            (
                "db2",
                timeline(t0, &[(0, 1000, Some(true)), (1000, 2000, Some(false))]),
            ),
        ],
        with_inserts(&[1, 2, 3, 4]),
    );
    let found = oracle::judge::writes_on_read_only(&e);
    assert_eq!(
        found,
        vec![Finding::WriteOnReadOnly {
            host: "db2".into(),
            client: "w2".into(),
            count: 2,
            first: MS * 505,
            last: MS * 525,
        }]
    );
}

#[test]
fn oracle_unit_cas_duplicates_are_found_whatever_the_timing() {
    let t0 = Instant::now();
    let cas = |key, from| Op::Cas {
        key,
        from: Some(from),
    };
    let e = evidence(
        t0,
        vec![
            ev(0, 1, 100, 105, cas(3, 5), Outcome::Acked),
            ev(1, 2, 2000, 2005, cas(3, 5), Outcome::Acked),
            ev(0, 1, 110, 115, cas(3, 6), Outcome::Acked),
            // A miss and an unknown are not claims.
            ev(1, 1, 120, 125, cas(3, 6), Outcome::CasMiss),
            ev(
                1,
                1,
                130,
                135,
                cas(4, 0),
                Outcome::Unknown("timeout".into()),
            ),
            ev(0, 1, 140, 145, cas(4, 0), Outcome::Acked),
        ],
        vec![],
        FinalState {
            registers: BTreeMap::from([(3, 7), (4, 1)]),
            ..Default::default()
        },
    );
    let found = oracle::judge::cas_duplicates(&e);
    assert_eq!(found.len(), 1, "{found:?}");
    match &found[0] {
        Finding::CasDuplicate { key, value, acks } => {
            assert_eq!((*key, *value), (3, 6));
            let hosts: Vec<&str> = acks.iter().map(|(_, h, _)| h.as_str()).collect();
            assert_eq!(hosts, vec!["db1", "db2"]);
        }
        f => panic!("unexpected finding {f}"),
    }
}

#[test]
fn oracle_unit_lost_writes_name_exactly_what_is_missing() {
    let t0 = Instant::now();
    let e = evidence(
        t0,
        vec![
            ev(0, 1, 100, 105, insert(1), Outcome::Acked),
            ev(0, 1, 110, 115, insert(2), Outcome::Acked),
            // Unknown and failed inserts may be missing.
            ev(
                0,
                1,
                120,
                125,
                insert(3),
                Outcome::Unknown("timeout".into()),
            ),
            ev(
                0,
                1,
                130,
                135,
                insert(4),
                Outcome::Failed("read only".into()),
            ),
            ev(
                0,
                1,
                140,
                145,
                Op::Cas {
                    key: 0,
                    from: Some(7),
                },
                Outcome::Acked,
            ),
            ev(
                0,
                1,
                150,
                155,
                Op::Cas {
                    key: 1,
                    from: Some(2),
                },
                Outcome::Acked,
            ),
            ev(
                0,
                1,
                160,
                165,
                Op::Append { key: 2, elem: 50 },
                Outcome::Acked,
            ),
            ev(
                0,
                1,
                170,
                175,
                Op::Append { key: 2, elem: 51 },
                Outcome::Acked,
            ),
        ],
        vec![],
        FinalState {
            inserts: BTreeSet::from([1]),
            registers: BTreeMap::from([(0, 7), (1, 9)]),
            lists: BTreeMap::from([(2, vec![(1, 50)])]),
        },
    );
    let report = judge(&e);
    let lost: Vec<&LostWrite> = report.lost().into_iter().map(|(_, w)| w).collect();
    assert_eq!(
        lost,
        vec![
            &LostWrite::Insert {
                id: 2,
                by: "db1".into()
            },
            &LostWrite::Register {
                key: 0,
                acked: 8,
                found: 7,
                by: "db1".into()
            },
            &LostWrite::ListElement {
                key: 2,
                elem: 51,
                by: "db1".into()
            },
        ]
    );
    assert!(report.ensure_ok().is_err());
    assert!(
        report.summary("unit").contains("lost 3"),
        "{}",
        report.summary("unit")
    );
}

#[test]
fn oracle_unit_list_reads_must_be_prefixes_of_the_final_list() {
    let t0 = Instant::now();
    let read = |l: &[u64]| Outcome::List(l.to_vec());
    let e = evidence(
        t0,
        vec![
            ev(2, 1, 100, 105, Op::ReadList { key: 1 }, read(&[10, 11])),
            ev(2, 1, 110, 115, Op::ReadList { key: 1 }, read(&[])),
            ev(2, 2, 120, 125, Op::ReadList { key: 1 }, read(&[10, 12])),
            ev(2, 2, 130, 135, Op::ReadList { key: 2 }, read(&[20, 20])),
        ],
        vec![],
        FinalState {
            lists: BTreeMap::from([
                (1, vec![(1, 10), (2, 11), (3, 13)]),
                (2, vec![(1, 20), (2, 21)]),
            ]),
            ..Default::default()
        },
    );
    let found = oracle::judge::list_findings(&e);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        matches!(
            &found[0],
            Finding::ListNotPrefix {
                key: 1,
                count: 1,
                served_by,
                ..
            } if served_by == &BTreeSet::from(["db2".to_string()])
        ),
        "{found:?}"
    );
    assert!(
        matches!(
            &found[1],
            Finding::ListNotPrefix {
                key: 2,
                count: 1,
                ..
            }
        ),
        "{found:?}"
    );
    assert!(
        matches!(
            &found[2],
            Finding::ListDuplicate {
                key: 2,
                elem: 20,
                ..
            }
        ),
        "{found:?}"
    );
    // Without final data the longest read is the reference.
    let mut no_final = e.clone();
    no_final.final_states.clear();
    let found = oracle::judge::list_findings(&no_final);
    assert!(
        found
            .iter()
            .any(|f| matches!(f, Finding::ListNotPrefix { key: 1, .. })),
        "{found:?}"
    );
}

/// Reads of undone writes are allowed only where the scenario says so: from a host rebuilt afterwards
/// when repairs are allowed, from any host when clients were cut off with the old writer; never
/// otherwise, and never other findings.
#[test]
fn oracle_unit_undone_reads_are_allowed_only_from_repaired_hosts() {
    use mmm_lab::scenario::{undone_read_tolerated, Expect};
    let list = |hosts: &[&str]| Finding::ListNotPrefix {
        key: 2,
        client: "probe-db1".into(),
        at: Duration::from_secs(3),
        count: hosts.len(),
        served_by: hosts.iter().map(|h| h.to_string()).collect(),
        detail: String::new(),
    };
    let counter = |host: &str| Finding::NonMonotonicRead {
        host: host.into(),
        client: "reader-10.213.0.101".into(),
        at: Duration::from_secs(3),
        before: 10,
        after: 9,
        count: 1,
    };
    let lost = Finding::Lost {
        host: "db2".into(),
        write: LostWrite::Insert {
            id: 7,
            by: "db1".into(),
        },
    };
    let none = Expect::outage(Duration::from_secs(1));
    let repairs = none.with_repairs();
    let cut_off = repairs.with_reads_of_undone_writes();
    let db1 = vec!["db1 (errant transactions)".to_string()];
    let nobody: Vec<String> = Vec::new();
    // (finding, expect, repaired, tolerated)
    let table: Vec<(Finding, Expect, &Vec<String>, bool)> = vec![
        (list(&["db1"]), repairs, &db1, true),
        (list(&["db1"]), none, &db1, false),
        (list(&["db1"]), repairs, &nobody, false),
        (list(&["db1", "db2"]), repairs, &db1, false),
        (list(&["?"]), repairs, &db1, false),
        (list(&[]), repairs, &db1, false),
        (list(&["db2"]), cut_off, &nobody, true),
        (counter("db1"), repairs, &db1, true),
        (counter("db2"), repairs, &db1, false),
        (counter("db1"), none, &db1, false),
        (counter("db1"), cut_off, &db1, true),
        (lost.clone(), cut_off, &db1, false),
    ];
    for (i, (f, expect, repaired, want)) in table.iter().enumerate() {
        assert_eq!(
            undone_read_tolerated(f, expect, repaired),
            *want,
            "row {i}: {f} with {expect:?} and repaired {repaired:?}"
        );
    }
}

#[test]
fn oracle_unit_reads_must_not_go_back_on_one_server() {
    let t0 = Instant::now();
    let c = Outcome::Counter;
    let e = evidence(
        t0,
        vec![
            ev(2, 1, 100, 105, Op::ReadCounter, c(50)),
            // Overlapping the first read: may see less.
            ev(2, 1, 103, 110, Op::ReadCounter, c(40)),
            // Another server, behind: a cross-server regression only.
            ev(2, 2, 200, 205, Op::ReadCounter, c(30)),
            ev(2, 2, 210, 215, Op::ReadCounter, c(35)),
            // Back on server 1, less than a completed read: a finding.
            ev(2, 1, 300, 305, Op::ReadCounter, c(45)),
        ],
        vec![],
        FinalState::default(),
    );
    let (found, cross) = oracle::judge::read_monotonicity(&e);
    assert_eq!(
        found,
        vec![Finding::NonMonotonicRead {
            host: "db1".into(),
            client: "r1".into(),
            at: MS * 300,
            before: 50,
            after: 45,
            count: 1,
        }]
    );
    assert_eq!(cross, 3);
}

#[test]
fn oracle_unit_client_stats_count_outcomes_and_the_longest_outage() {
    let t0 = Instant::now();
    let e = evidence(
        t0,
        vec![
            ev(0, 1, 100, 105, insert(1), Outcome::Acked),
            ev(
                0,
                1,
                110,
                115,
                insert(2),
                Outcome::Unknown("timeout".into()),
            ),
            ev(0, 1, 1200, 1205, insert(3), Outcome::Acked),
            ev(
                0,
                1,
                1210,
                1215,
                Op::ReadList { key: 0 },
                Outcome::List(vec![]),
            ),
            ev(
                1,
                2,
                100,
                105,
                insert(4),
                Outcome::Failed("read only".into()),
            ),
        ],
        vec![],
        with_inserts(&[1, 3]),
    );
    let report = judge(&e);
    let w1 = report.client("w1").expect("w1");
    assert_eq!((w1.acked, w1.unknown, w1.failed, w1.reads), (2, 1, 0, 1));
    // From the last ack (1205) to the stop (3000).
    assert_eq!(w1.longest_outage, MS * 1795);
    let w2 = report.client("w2").expect("w2");
    assert_eq!((w2.acked, w2.failed), (0, 1));
    assert_eq!(w2.longest_outage, MS * 3000);
    assert!(report.findings().is_empty(), "{:?}", report.findings());
    assert!(report
        .summary("unit")
        .starts_with("ORACLE unit: findings 0"));
}

// ---- against a lab (no mmm-rs process: faults are made by hand) ----

/// How long a lab test may wait for the clients' first acknowledgements.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The spec of the negative controls: probes on both masters, no VIP clients (no agent holds the VIPs),
/// tables created on db1.
fn probes_only(lab: &Lab, workloads: Workloads) -> OracleSpec {
    OracleSpec {
        probes: true,
        vip_writers: 0,
        readers: false,
        workloads,
        setup_target: Some(lab.host("db1").ip),
        ..OracleSpec::default()
    }
}

/// Adds (`add`) or removes an address on a host's interface, as an agent would.
async fn vip(lab: &Lab, host: &str, ip: Ipv4Addr, add: bool) -> anyhow::Result<()> {
    let h = lab.host(host);
    let cidr = format!("{ip}/24");
    let args = [
        "-n",
        h.ns.as_str(),
        "addr",
        if add { "add" } else { "del" },
        cidr.as_str(),
        "dev",
        h.iface.as_str(),
    ];
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("ip").args(args).output(),
    )
    .await??;
    anyhow::ensure!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_netns_runtime_connects_from_inside_a_host_namespace() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 2,
        monitors: 0,
        semi_sync: false,
        vips: 0,
        clients: 0,
    })
    .await?;
    let local = || {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(3306)
            .user(Some(mmm_lab::users::APP_USER))
            .pass(Some(mmm_lab::users::APP_PASSWORD))
            .prefer_socket(false)
    };
    for host in ["db1", "db2"] {
        let rt = NsRuntime::start(&lab.host(host).ns)?;
        let opts = local();
        let id = rt
            .handle()
            .spawn(async move {
                let mut c =
                    tokio::time::timeout(Duration::from_secs(5), mysql_async::Conn::new(opts))
                        .await??;
                let id: Option<u32> = c.query_first("SELECT @@server_id").await?;
                let _ = c.disconnect().await;
                anyhow::Ok(id)
            })
            .await??;
        assert_eq!(
            id,
            Some(lab.host(host).server_id),
            "127.0.0.1 inside {host}"
        );
    }
    // From the root namespace nothing listens on 127.0.0.1:3306.
    let root = tokio::time::timeout(Duration::from_secs(2), mysql_async::Conn::new(local())).await;
    assert!(
        !matches!(root, Ok(Ok(_))),
        "127.0.0.1:3306 answered in the root namespace"
    );
    assert!(NsRuntime::start("mmm-no-such-namespace").is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_negative_two_writable_servers_are_reported() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let oracle = Oracle::start(
        &lab,
        probes_only(
            &lab,
            Workloads {
                insert: false,
                cas: true,
                list: false,
            },
        ),
    )
    .await?;
    oracle.wait_acks(20, ACK_TIMEOUT).await?;
    lab.exec("db2", "SET GLOBAL read_only = 0").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    lab.exec("db2", "SET GLOBAL read_only = 1").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = oracle.stop(&lab, "db1", &[]).await?;
    println!("{}", report.summary("negative two writable"));
    for f in report.findings() {
        println!("  {f}");
    }
    let windows: Vec<_> = report
        .two_writable
        .iter()
        .filter(|o| o.hosts == ["db1".to_string(), "db2".to_string()])
        .collect();
    assert_eq!(windows.len(), 1, "{:?}", report.two_writable);
    assert!(
        windows[0].length > Duration::from_millis(800)
            && windows[0].length < Duration::from_millis(1300),
        "two-writable window of {:?}, expected about 1 s",
        windows[0].length
    );
    assert!(
        report
            .findings()
            .iter()
            .any(|f| matches!(f, Finding::SplitBrainByAcks { .. })),
        "no split brain by acknowledgements: {:?}",
        report.findings()
    );
    let dups = report
        .findings()
        .iter()
        .filter(|f| matches!(f, Finding::CasDuplicate { .. }))
        .count();
    println!("CAS duplicates: {dups}");
    assert!(report.ensure_ok().is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_negative_dropped_acknowledged_row_is_reported() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut oracle = Oracle::start(&lab, probes_only(&lab, Workloads::ALL)).await?;
    oracle.wait_acks(60, ACK_TIMEOUT).await?;
    let history = oracle.stop_clients().await;
    let acks: Vec<&Event> = history.write_acks().collect();
    let id = acks
        .iter()
        .rev()
        .find_map(|e| match e.op {
            Op::Insert { id } => Some(id),
            _ => None,
        })
        .expect("an acknowledged insert");
    let (key, value) = acks
        .iter()
        .filter_map(|e| match e.op {
            Op::Cas { key, from: Some(f) } => Some((key, f + 1)),
            _ => None,
        })
        .max_by_key(|&(_, v)| v)
        .expect("an acknowledged CAS");
    let (list_key, elem) = acks
        .iter()
        .rev()
        .find_map(|e| match e.op {
            Op::Append { key, elem } => Some((key, elem)),
            _ => None,
        })
        .expect("an acknowledged append");
    let mut c = lab.mysql("db1").await?;
    c.query_drop("SET SESSION sql_log_bin = 0").await?;
    c.exec_drop("DELETE FROM app.oracle_ins WHERE id = ?", (id,))
        .await?;
    c.exec_drop(
        "UPDATE app.oracle_reg SET v = ? WHERE k = ?",
        (value - 1, key),
    )
    .await?;
    c.exec_drop(
        "DELETE FROM app.oracle_list WHERE k = ? AND elem = ?",
        (list_key, elem),
    )
    .await?;
    let _ = c.disconnect().await;
    let report = oracle.stop(&lab, "db1", &[]).await?;
    println!("{}", report.summary("negative dropped rows"));
    for f in report.findings() {
        println!("  {f}");
    }
    let lost: Vec<(&str, &LostWrite)> = report.lost();
    let expected = [
        LostWrite::Insert {
            id,
            by: "db1".into(),
        },
        LostWrite::Register {
            key,
            acked: value,
            found: value - 1,
            by: "db1".into(),
        },
        LostWrite::ListElement {
            key: list_key,
            elem,
            by: "db1".into(),
        },
    ];
    assert_eq!(
        lost,
        expected.iter().map(|w| ("db1", w)).collect::<Vec<_>>(),
        "lost writes"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_negative_writer_vip_on_two_hosts_is_reported() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let writer_vip = lab.writer_vip();
    vip(&lab, "db1", writer_vip, true).await?;
    let oracle = Oracle::start(&lab, probes_only(&lab, Workloads::ALL)).await?;
    oracle.wait_acks(10, ACK_TIMEOUT).await?;
    vip(&lab, "db2", writer_vip, true).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    vip(&lab, "db2", writer_vip, false).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = oracle.stop(&lab, "db1", &["db2", "db3", "db4"]).await?;
    println!("{}", report.summary("negative writer VIP on two hosts"));
    assert_eq!(
        report.writer_vip_overlaps.len(),
        1,
        "{:?}",
        report.writer_vip_overlaps
    );
    let o = &report.writer_vip_overlaps[0];
    assert_eq!(o.hosts, ["db1".to_string(), "db2".to_string()]);
    assert!(
        o.length > Duration::from_millis(200) && o.length < Duration::from_millis(500),
        "overlap of {:?}, expected about 300 ms",
        o.length
    );
    assert_eq!(
        report.vip_overlaps_over(Duration::from_millis(100)).len(),
        1
    );
    // An overlap alone is measured, not judged.
    report.ensure_ok()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_negative_write_through_read_only_is_reported() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut spec = probes_only(
        &lab,
        Workloads {
            insert: true,
            cas: false,
            list: false,
        },
    );
    spec.extra_clients.push(ClientSpec {
        name: "root-probe-db2".into(),
        target: lab.host("db2").ip,
        role: Role::Writer,
        account: Account::Root,
        site: None,
        op_timeout: None,
    });
    let oracle = Oracle::start(&lab, spec).await?;
    oracle.wait_acks(100, ACK_TIMEOUT).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = oracle.stop(&lab, "db1", &[]).await?;
    println!("{}", report.summary("negative write through read_only"));
    for f in report.findings() {
        println!("  {f}");
    }
    assert!(
        report.findings().iter().any(|f| matches!(
            f,
            Finding::WriteOnReadOnly { host, client, .. } if host == "db2" && client == "root-probe-db2"
        )),
        "no write on a read-only server reported: {:?}",
        report.findings()
    );
    // The application account on db2 was refused every time.
    let app = report.client("probe-db2").expect("probe-db2");
    assert_eq!(app.acked, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_positive_steady_writer_has_no_findings() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    // The addresses an agent would hold: the writer VIP on db1, one reader VIP on each replica.
    vip(&lab, "db1", lab.writer_vip(), true).await?;
    let readers = lab.reader_vips();
    vip(&lab, "db3", readers[0], true).await?;
    vip(&lab, "db4", readers[1], true).await?;
    // The clients run in a monitor's namespace, like an application host on the lab network.
    let site = NsRuntime::start(&lab.monitor("mon1").ns)?;
    let spec = OracleSpec {
        client_site: Some(site.handle()),
        writer_vip_reader: true,
        ..OracleSpec::default()
    };
    let oracle = Oracle::start(&lab, spec).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = oracle.stop(&lab, "db1", &["db2", "db3", "db4"]).await?;
    println!("{}", report.summary("positive steady writer"));
    for c in &report.clients {
        println!("  {c:?}");
    }
    report.ensure_ok()?;
    for name in ["probe-db1", "vip-writer-1"] {
        let c = report.client(name).expect(name);
        assert!(c.acked > 50, "{name} acked only {}", c.acked);
        assert_eq!(c.unknown, 0, "{name}");
        assert!(c.longest_outage < Duration::from_secs(1), "{name}: {c:?}");
    }
    let db2 = report.client("probe-db2").expect("probe-db2");
    assert_eq!(db2.acked, 0);
    assert!(
        db2.failed > 50,
        "probe-db2 refused only {} writes",
        db2.failed
    );
    for vip in readers.iter().chain([&lab.writer_vip()]) {
        let c = report.client(&format!("reader-{vip}")).expect("reader");
        assert!(c.reads > 50, "{c:?}");
    }
    assert!(report.two_writable.is_empty() && report.writer_vip_overlaps.is_empty());
    assert!(
        report.samples > 4 * 2 * 50,
        "only {} samples",
        report.samples
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_sampler_paused_server_does_not_stall_the_others() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    // Without semi-sync: with it, db1's commits wait for the paused db2's acknowledgement (up to the
    // semi-sync timeout), which is the servers' behaviour, not the oracle's.
    let lab = Lab::start(LabSpec {
        semi_sync: false,
        ..LabSpec::cluster()
    })
    .await?;
    let oracle = Oracle::start(
        &lab,
        probes_only(
            &lab,
            Workloads {
                insert: true,
                cas: false,
                list: false,
            },
        ),
    )
    .await?;
    oracle.wait_acks(20, ACK_TIMEOUT).await?;
    // mariadbd runs as the pid in its pid file (`ip netns exec` execs it).
    let pid_file = lab.host("db2").cnf.with_file_name("mysqld.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
    // SAFETY: kill(2) on the lab's own mariadbd; SIGCONT follows below whatever happens in between.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ev = oracle.stop_evidence(&lab, "db1", &[]).await?;
    let report = judge(&ev);
    println!("{}", report.summary("paused db2"));
    let db2 = &ev.samples.read_only["db2"];
    let paused: Vec<Duration> = db2
        .runs
        .iter()
        .filter(|r| r.value.is_none())
        .filter_map(|r| r.certain().map(|(s, e)| e - s))
        .collect();
    println!("db2 no-answer windows: {paused:?}; runs {:?}", db2.runs);
    // 1 s paused, less up to one sample timeout on each side of the certain part.
    assert!(
        paused.iter().any(|d| *d > Duration::from_millis(300)),
        "db2 was not seen silent while paused: {paused:?}"
    );
    // db1 was sampled all along: at least 70% of the samples the interval allows.
    let db1 = &ev.samples.read_only["db1"];
    let span = ev.history.stopped - ev.history.started;
    let expected = span.as_millis() as u64 / oracle::DEFAULT_SAMPLE_INTERVAL.as_millis() as u64;
    assert!(
        db1.samples() * 10 >= expected * 7,
        "db1 sampled {} times in {span:?}",
        db1.samples()
    );
    assert!(db1.runs.iter().all(|r| r.value == Some(false)), "{db1:?}");
    let probe = report.client("probe-db1").expect("probe-db1");
    assert!(
        probe.longest_outage < Duration::from_millis(500),
        "{probe:?}"
    );
    report.ensure_ok()?;
    Ok(())
}
