//! Tests of the checking client: its judgements over constructed histories, and real runs against a lab
//! (a steady writer, and a writer whose mysqld is killed and restarted under semi-sync).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mmm_lab::workload::{Ack, History, Read, ReadOutcome, Workload, WorkloadSpec};
use mmm_lab::{Lab, LabSpec};
use mysql_async::prelude::Queryable;

const MS: Duration = Duration::from_millis(1);

/// Polls `f` until it returns true or `timeout` passes.
async fn wait_for<F>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> bool,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("timed out after {timeout:?} waiting for {what}")
}

// ---- pure judgements over constructed histories ----

/// A history starting at `t0` and stopping `stop_ms` later, with acks `(server, sent_ms, acked_ms)`.
fn history(t0: Instant, stop_ms: u64, acks: &[(u32, u64, u64)]) -> History {
    History {
        target: Ipv4Addr::LOCALHOST,
        readers: vec![],
        acks: acks
            .iter()
            .enumerate()
            .map(|(i, &(server_id, sent, acked))| Ack {
                id: i as u64 + 1,
                server_id,
                sent: t0 + MS * sent as u32,
                acked: t0 + MS * acked as u32,
            })
            .collect(),
        errors: vec![],
        reads: vec![],
        started: t0,
        stopped: t0 + MS * stop_ms as u32,
    }
}

#[test]
fn workload_unit_longest_outage_counts_start_gaps_and_stop() {
    let t0 = Instant::now();
    // Acks at 10, 20, 30, then 300 (a 270 ms gap), 310; stop at 350.
    let h = history(
        t0,
        350,
        &[
            (1, 5, 10),
            (1, 15, 20),
            (1, 25, 30),
            (2, 295, 300),
            (2, 305, 310),
        ],
    );
    assert_eq!(h.longest_outage(), MS * 270);
    assert_eq!(h.outage_around(t0 + MS * 100), Some(MS * 270));
    assert_eq!(h.outage_around(t0 + MS * 15), Some(MS * 10));
    // Before the first ack: from the start.
    assert_eq!(h.outage_around(t0 + MS * 5), Some(MS * 10));
    // After the last ack there is no ack to end the outage.
    assert_eq!(h.outage_around(t0 + MS * 320), None);
    assert_eq!(h.writers(), vec![1, 2]);

    // The tail counts: last ack at 30, stop at 1000.
    let tail = history(t0, 1000, &[(1, 5, 10), (1, 25, 30)]);
    assert_eq!(tail.longest_outage(), MS * 970);
    // The head counts: first ack at 600.
    let head = history(t0, 700, &[(1, 590, 600), (1, 650, 660)]);
    assert_eq!(head.longest_outage(), MS * 600);
    // Nothing acknowledged: the whole run.
    assert_eq!(history(t0, 400, &[]).longest_outage(), MS * 400);
}

#[test]
fn workload_unit_split_brain_allows_one_switch_and_flags_interleaving() {
    let t0 = Instant::now();
    // A -> B once: a failover.
    let failover = history(
        t0,
        200,
        &[(1, 0, 5), (1, 10, 15), (2, 100, 105), (2, 110, 115)],
    );
    assert!(
        failover.split_brain().is_empty(),
        "{:?}",
        failover.split_brain()
    );

    // A -> B -> A within a few ms: two writers at once.
    let flapping = history(
        t0,
        200,
        &[
            (1, 0, 5),
            (1, 10, 15),
            (2, 20, 25),
            (1, 30, 35),
            (2, 40, 45),
        ],
    );
    let found = flapping.split_brain();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("server 1"), "{found:?}");
    assert!(found[1].contains("server 2"), "{found:?}");

    // A -> B, then a failback to A after a 600 ms pause with no acks: allowed with the default 500 ms gap,
    // flagged when the required gap is larger.
    let failback = history(t0, 1000, &[(1, 0, 5), (2, 100, 105), (1, 700, 705)]);
    assert!(
        failback.split_brain().is_empty(),
        "{:?}",
        failback.split_brain()
    );
    assert_eq!(failback.split_brain_with(Duration::from_secs(1)).len(), 1);

    // Overlapping [sent, acked] intervals on two servers (merged clients) are always flagged.
    let overlap = history(t0, 100, &[(1, 0, 50), (2, 10, 20)]);
    assert!(
        overlap
            .split_brain()
            .iter()
            .any(|f| f.contains("same time")),
        "{:?}",
        overlap.split_brain()
    );
}

#[test]
fn workload_unit_read_outages_per_reader() {
    let t0 = Instant::now();
    let a = Ipv4Addr::new(10, 0, 0, 1);
    let b = Ipv4Addr::new(10, 0, 0, 2);
    let read = |target, at: u32, ok: bool| Read {
        target,
        sent: t0 + MS * at,
        done: t0 + MS * at,
        outcome: if ok {
            ReadOutcome::Ok {
                server_id: 3,
                max_id: Some(1),
            }
        } else {
            ReadOutcome::Err("down".into())
        },
    };
    let mut h = history(t0, 500, &[]);
    h.readers = vec![a, b];
    h.reads = vec![
        read(a, 50, true),
        read(a, 100, false),
        read(a, 300, true),
        read(a, 450, true),
        read(b, 100, false),
    ];
    let outages = h.read_outages();
    assert_eq!(outages[&a], MS * 250);
    assert_eq!(outages[&b], MS * 500);
    assert_eq!(
        h.read_servers()[&a].iter().copied().collect::<Vec<_>>(),
        vec![3]
    );
}

// ---- real runs ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_lab_steady_writer_on_db1_loses_nothing() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 4,
        monitors: 0,
        semi_sync: false,
        vips: 0,
        clients: 0,
    })
    .await?;
    let (db3, db4) = (lab.host("db3").ip, lab.host("db4").ip);
    let w = Workload::start(
        &lab,
        WorkloadSpec {
            target: lab.host("db1").ip,
            readers: vec![db3, db4],
            interval: Duration::from_millis(5),
            op_timeout: Duration::from_secs(1),
        },
    )
    .await?;
    let begun = Instant::now();
    wait_for("50 acknowledged writes", Duration::from_secs(30), || {
        w.acked() >= 50
    })
    .await?;
    // The run lasts at least a second (the workload's duration, not a synchronisation).
    if let Some(rest) = Duration::from_secs(1).checked_sub(begun.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let h = w.stop().await;
    assert!(h.acks.len() >= 50, "only {} acks", h.acks.len());
    assert_eq!(h.writers(), vec![1], "db1 is the only writable server");
    let report = h.verify(&lab, &["db1", "db2", "db3", "db4"]).await?;
    eprintln!(
        "steady run: {} acked, {} errors, longest outage {:?}, read outages {:?}",
        report.acked,
        h.errors.len(),
        report.longest_outage,
        report.read_outages
    );
    report.ensure_ok()?;
    assert!(report.converged);
    if h.errors.is_empty() {
        assert_eq!(
            report.rows["db4"], report.acked,
            "no write failed, so every row is an acked one"
        );
    }
    assert!(
        report.longest_outage < Duration::from_secs(2),
        "a healthy writer had a {:?} outage",
        report.longest_outage
    );
    let servers = h.read_servers();
    assert_eq!(
        servers
            .get(&db3)
            .map(|s| s.iter().copied().collect::<Vec<_>>()),
        Some(vec![3])
    );
    assert_eq!(
        servers
            .get(&db4)
            .map(|s| s.iter().copied().collect::<Vec<_>>()),
        Some(vec![4])
    );
    for (vip, outage) in &report.read_outages {
        assert!(
            *outage < Duration::from_secs(2),
            "reads through {vip} stalled {outage:?}"
        );
    }

    // The check can fail: an id that was never written is reported missing on every host.
    let mut forged = h.clone();
    let last = *forged.acks.last().expect("acks");
    forged.acks.push(Ack {
        id: last.id + 1_000_000,
        ..last
    });
    let bad = forged
        .verify_within(&lab, &["db1", "db2", "db3", "db4"], Duration::from_secs(1))
        .await?;
    assert_eq!(bad.missing.len(), 4, "{:?}", bad.missing);
    assert!(bad
        .missing
        .values()
        .all(|ids| ids == &vec![last.id + 1_000_000]));
    assert!(bad.ensure_ok().is_err());
    Ok(())
}

/// `SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_<name>'` on a host.
async fn semi_sync_status(lab: &Lab, host: &str, name: &str) -> anyhow::Result<String> {
    let mut c = lab.mysql(host).await?;
    let row: Option<(String, String)> = tokio::time::timeout(
        Duration::from_secs(5),
        c.query_first(format!(
            "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_{name}'"
        )),
    )
    .await??;
    let _ = c.disconnect().await;
    Ok(row.map(|r| r.1).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_lab_kill_db1_measures_outage_and_keeps_semi_sync_acks() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 4,
        monitors: 0,
        semi_sync: true,
        vips: 0,
        clients: 0,
    })
    .await?;
    let w = Workload::start(
        &lab,
        WorkloadSpec {
            target: lab.host("db1").ip,
            readers: vec![lab.host("db3").ip],
            interval: Duration::from_millis(5),
            op_timeout: Duration::from_secs(1),
        },
    )
    .await?;
    wait_for("50 acknowledged writes", Duration::from_secs(30), || {
        w.acked() >= 50
    })
    .await?;
    // Semi-sync is really on: db2 (db1's peer, the failover candidate) is the semi-sync client and no
    // transaction has gone without its acknowledgement (otherwise the checks below would prove nothing).
    assert_eq!(semi_sync_status(&lab, "db1", "status").await?, "ON");
    assert_eq!(semi_sync_status(&lab, "db1", "clients").await?, "1");
    assert_eq!(semi_sync_status(&lab, "db1", "no_tx").await?, "0");

    lab.kill_mysqld("db1").await?;
    let killed = Instant::now();
    wait_for(
        "write errors after the kill",
        Duration::from_secs(10),
        || w.history().errors_after(killed) > 0,
    )
    .await?;
    // Every write acknowledged before the kill reached db2 (semi-sync: it had it before the OK), and is
    // applied there while db1 is still down.
    let snapshot = w.history();
    let before_kill = History {
        acks: snapshot
            .acks
            .iter()
            .copied()
            .filter(|a| a.acked <= killed)
            .collect(),
        ..snapshot
    };
    assert!(before_kill.acks.len() >= 50);
    let replicas = before_kill
        .verify_within(&lab, &["db2"], Duration::from_secs(15))
        .await?;
    assert!(
        replicas.missing.is_empty() && replicas.wrong_server.is_empty(),
        "acknowledged writes lost with db1: {:?}",
        replicas.problems()
    );

    let restarting = Instant::now();
    lab.start_mysqld("db1").await?;
    // Every lab server starts read-only (a restarted master must never come up writable behind the
    // manager's back); with no manager here, the test opens it as an operator would.
    lab.exec("db1", "SET GLOBAL read_only = 0").await?;
    let acked_at_restart = w.acked();
    wait_for(
        "writes acknowledged again after the restart",
        Duration::from_secs(30),
        || w.acked() >= acked_at_restart + 50,
    )
    .await?;
    let h = w.stop().await;
    let outage = h
        .outage_around(killed)
        .expect("the outage around the kill ended (writes resumed)");
    eprintln!(
        "kill run: {} acked, {} errors, outage around kill {outage:?} (db1 down {:?}), longest {:?}",
        h.acks.len(),
        h.errors.len(),
        restarting - killed,
        h.longest_outage()
    );
    assert!(outage > Duration::ZERO);
    assert!(
        outage >= restarting - killed,
        "the outage {outage:?} is shorter than the time db1 was dead {:?}",
        restarting - killed
    );
    assert!(h.longest_outage() >= outage);
    assert_eq!(h.writers(), vec![1]);
    let report = h.verify(&lab, &["db1", "db2", "db3", "db4"]).await?;
    report.ensure_ok()?;
    assert!(report.converged);
    Ok(())
}
