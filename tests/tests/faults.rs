//! The fault suite: 3 monitors, a master-master pair (db1, db2) and 2 replicas with semi-synchronous
//! replication, all real processes in network namespaces, each scenario judged by the independent oracle
//! (`mmm_lab::oracle`) through the harness in `mmm_lab::scenario`: clients in their own namespace write
//! straight to each master and through the writer VIP, and read through the reader VIPs, on insert,
//! CAS-register and list-append workloads.
//!
//! After every scenario: no two servers writable or acknowledging writes at once, no acknowledged write
//! lost, lists read in one order, hosts converged; the write outage through the writer VIP within the
//! scenario's bound; operator repairs only where the scenario expects them; every role change in
//! `mmmctl history`. Each scenario prints its oracle summary (`ORACLE ...`) and outage (`FAULT-OUTAGE ...`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_lab::cluster::owner_of_role;
use mmm_lab::scenario::{all_online, Expect, Scenario, FAILOVER};
use mmm_lab::{Lab, LabSpec};
use mmm_proto::HostState;
use mysql_async::prelude::Queryable;

/// `@@read_only` of a host.
async fn read_only(lab: &Lab, host: &str) -> anyhow::Result<bool> {
    let mut c = lab.mysql(host).await?;
    let v: Option<u8> = c.query_first("SELECT @@read_only").await?;
    Ok(v == Some(1))
}

/// Whether the host's interface carries `ip`.
fn has_ip(lab: &Lab, host: &str, ip: std::net::Ipv4Addr) -> anyhow::Result<bool> {
    let h = lab.host(host);
    let out = std::process::Command::new("ip")
        .args(["-n", &h.ns, "-o", "-4", "addr", "show"])
        .output()
        .context("ip addr")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.contains(&format!(" {ip}/")))
}

async fn lab_env() -> anyhow::Result<Lab> {
    mmm_lab::init_logging();
    Lab::start(LabSpec::cluster()).await
}

const KEYS: &str = "auto_set_online 2";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_kill_master_mysqld() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    lab.kill_mysqld("db1").await?;
    let w = env.wait_new_writer("db1", FAILOVER).await?;
    assert_eq!(w, "db2", "the writer moves to db1's peer");
    env.wait_more_acks(20, FAILOVER).await?;
    env.finish(
        "kill -9 master mysqld",
        Expect::outage(Duration::from_secs(10)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// The writer's mysqld dies while its peer is ADMIN_OFFLINE, so no one can take the role: the writer
/// VIP is removed. When the server runs again and its host is ONLINE, it gets the role back, however
/// long it was read-only meanwhile (without the role its agent keeps it read-only by design; counted
/// as "a writer its agent cannot keep", that left a cluster without a writer for good in a random
/// nemesis run, `random_nemesis.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_the_writer_without_a_successor_gets_the_role_back_when_its_mysqld_returns(
) -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    env.cluster.set_host("set_offline", "db2").await?;
    lab.kill_mysqld("db1").await?;
    env.cluster
        .wait_show(FAILOVER, "db1 HARD_OFFLINE, the writer role removed", |s| {
            s.hosts.iter().any(|h| {
                h.name == "db1" && h.state == HostState::HardOffline as i32 && h.roles.is_empty()
            })
        })
        .await?;
    // Longer than the rule's time for a writer its agent cannot keep (lease 2 s with its fence,
    // 2.83 s, plus 1 s), so the rule would apply when db1 returns.
    tokio::time::sleep(Duration::from_secs(5)).await;
    lab.start_mysqld("db1").await?;
    env.cluster.set_host("set_online", "db1").await?;
    env.cluster
        .wait_show(FAILOVER, "db1 the writer again", |s| {
            s.hosts.iter().any(|h| {
                h.name == "db1"
                    && h.state == HostState::Online as i32
                    && h.roles.iter().any(|r| r.role == "writer")
            })
        })
        .await?;
    env.wait_more_acks(20, FAILOVER).await?;
    assert_eq!(env.writer().await?, "db1");
    env.cluster.set_host("set_online", "db2").await?;
    env.finish(
        "the writer's mysqld dies with no successor, then returns",
        Expect::outage(Duration::from_secs(30)).with_repairs(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_kill_master_mysqld_and_agent() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    env.kill_agent("db1")?;
    lab.kill_mysqld("db1").await?;
    let w = env.wait_new_writer("db1", FAILOVER).await?;
    assert_eq!(w, "db2");
    env.wait_more_acks(20, FAILOVER).await?;
    env.finish(
        "kill -9 master mysqld and agent",
        Expect::outage(Duration::from_secs(15)).with_repairs(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_master_link_down() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    env.link_down("db1").await?;
    let w = env.wait_new_writer("db1", FAILOVER).await?;
    assert_eq!(w, "db2");
    // The candidate gave its unreachable source, which the monitors found HARD_OFFLINE, the short
    // time to answer before cutting it off (that wait is on the failover's critical path).
    let logs = lab.logs_of("agent-db2");
    let cut_off: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("the source did not answer a TCP connection"))
        .collect();
    assert!(
        cut_off
            .iter()
            .any(|l| l.contains("hard_offline=true") && l.contains("answer_timeout_ms=20")),
        "db2 cut db1 off after the HARD_OFFLINE answer time: {cut_off:?}"
    );
    env.wait_more_acks(20, FAILOVER).await?;
    env.finish(
        "master link down",
        Expect::outage(Duration::from_secs(15)).with_repairs(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_writer_isolated_from_monitors_demotes_itself_first() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    for m in lab.monitors() {
        lab.block("db1", &m.name).await?;
    }
    let w = env.wait_new_writer("db1", FAILOVER).await?;
    assert_eq!(w, "db2");
    env.wait_more_acks(20, FAILOVER).await?;
    // The old writer demoted itself: read only, no writer VIP (it is still reachable from the clients).
    assert!(read_only(&lab, "db1").await?, "db1 is read_only");
    assert!(
        !has_ip(&lab, "db1", lab.writer_vip())?,
        "db1 dropped the writer VIP"
    );
    env.finish(
        "writer isolated from the monitors",
        Expect::outage(Duration::from_secs(15)).with_repairs(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_kill_leader_idle() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    let leader = env.leader().await?;
    env.cluster.kill_monitor(&leader)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(l) = env.leader().await {
            if l != leader {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("no new leader after {leader} died");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.wait_more_acks(50, Duration::from_secs(10)).await?;
    assert_eq!(
        env.writer().await?,
        "db1",
        "an idle leader's death moves nothing"
    );
    env.finish(
        "kill -9 monitor leader (idle)",
        Expect::outage(Duration::from_secs(5)),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_kill_leader_mid_failover() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    let leader = env.leader().await?;
    lab.kill_mysqld("db1").await?;
    env.cluster
        .wait_show(Duration::from_secs(15), "db1 judged down", |s| {
            s.hosts
                .iter()
                .any(|h| h.name == "db1" && h.state != HostState::Online as i32)
        })
        .await?;
    env.cluster.kill_monitor(&leader)?;
    let w = env.wait_new_writer("db1", Duration::from_secs(30)).await?;
    assert_eq!(w, "db2");
    env.wait_more_acks(20, FAILOVER).await?;
    env.finish(
        "kill -9 monitor leader mid-failover",
        Expect::outage(Duration::from_secs(15)).with_repairs(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_partition_one_monitor_then_heal() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    // The leader is the interesting one to cut off: the others must take over and keep the lease renewed.
    let leader = env.leader().await?;
    for other in lab
        .monitors()
        .iter()
        .map(|m| m.name.clone())
        .filter(|m| *m != leader)
        .chain(lab.hosts().iter().map(|h| h.name.clone()))
    {
        lab.block(&leader, &other).await?;
    }
    let others: Vec<String> = lab
        .monitors()
        .iter()
        .map(|m| m.name.clone())
        .filter(|m| *m != leader)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = env.cluster.cluster_status_of(&others[0]).await;
        if s.is_ok_and(|s| !s.leader_name.is_empty() && s.leader_name != leader) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the majority elected no new leader");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.wait_more_acks(100, Duration::from_secs(10)).await?;
    assert_eq!(env.writer().await?, "db1");
    env.finish(
        "partition one monitor (the leader), then heal",
        Expect::outage(Duration::from_secs(5)),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_restart_all_monitors() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    let before = env.cluster.show().await?;
    for m in env.cluster.running_monitors() {
        env.cluster.kill_monitor(&m)?;
    }
    for m in lab.monitors() {
        env.cluster.start_monitor(&m.name)?;
    }
    let after = env
        .cluster
        .wait_show(Duration::from_secs(30), "monitors back", |s| {
            all_online(s, lab.hosts().len())
        })
        .await?;
    assert_eq!(
        owner_of_role(&before, "writer"),
        owner_of_role(&after, "writer"),
        "the writer is where it was (state from disk)"
    );
    env.wait_more_acks(50, Duration::from_secs(15)).await?;
    env.finish(
        "restart all three monitors",
        Expect::outage(Duration::from_secs(5)),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_replica_dies_and_returns() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    lab.kill_mysqld("db3").await?;
    env.cluster
        .wait_show(
            Duration::from_secs(20),
            "db3 out, its reader VIPs moved",
            |s| {
                let readers: usize = s
                    .hosts
                    .iter()
                    .map(|h| h.roles.iter().filter(|r| r.role == "reader").count())
                    .sum();
                s.hosts.iter().any(|h| {
                    h.name == "db3"
                        && h.state == HostState::HardOffline as i32
                        && h.roles.is_empty()
                }) && readers == lab.reader_vips().len()
            },
        )
        .await?;
    assert_eq!(env.writer().await?, "db1");
    env.finish(
        "a replica dies and returns",
        Expect::outage(Duration::from_secs(5)).with_repairs(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_old_master_returns_without_errant() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    lab.kill_mysqld("db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    lab.start_mysqld("db1").await?;
    // It comes back as a replica of db2 (unless the kill left it a transaction nobody received: then the
    // errant check reports it and the heal repairs it, which the report shows).
    env.finish(
        "old master returns (no errant injected)",
        Expect::outage(Duration::from_secs(10)).with_repairs(),
    )
    .await?;
    let mut c = lab.mysql("db1").await?;
    let row: Option<mysql_async::Row> = c.query_first("SHOW SLAVE STATUS").await?;
    let src: String = row.and_then(|r| r.get("Master_Host")).unwrap_or_default();
    assert_eq!(
        src,
        lab.host("db2").ip.to_string(),
        "db1 replicates from db2"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_old_master_returns_with_errant() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    let db1_pos = env.old_master_returns_with_errant("db1").await?;
    assert!(!has_ip(&lab, "db1", lab.writer_vip())?, "db1 holds no VIP");
    let s = env
        .cluster
        .wait_show(Duration::from_secs(20), "db1 reported errant", |s| {
            s.hosts
                .iter()
                .any(|h| h.name == "db1" && !h.errant_gtids.is_empty())
        })
        .await?;
    let db1 = s.hosts.iter().find(|h| h.name == "db1").expect("db1");
    eprintln!("db1 at {db1_pos} reported errant: {}", db1.errant_gtids);
    assert!(
        db1_pos.contains(&db1.errant_gtids),
        "the errant GTID {} is db1's own newest ({db1_pos})",
        db1.errant_gtids
    );
    // Kept out of rotation: no role while errant, for a while.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let s = env.cluster.show().await?;
        let h = s.hosts.iter().find(|h| h.name == "db1").expect("db1");
        assert!(h.roles.is_empty(), "an errant host holds no role: {s:?}");
        assert_ne!(
            h.state,
            HostState::Online as i32,
            "an errant host is not ONLINE"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The operator cannot put it back while the transaction is there.
    let out = env.cluster.mmmctl(&["set_online", "db1"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("errant transactions") && !text.starts_with("OK"),
        "set_online of a host with an errant transaction is refused: {text}"
    );
    let out = env.cluster.mmmctl(&["--json", "history", "1000"])?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("errant_gtids"),
        "the errant finding is in the history"
    );
    env.finish(
        "old master returns with an errant transaction",
        Expect::outage(Duration::from_secs(10)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// `move_role writer <to>` through the real mmmctl; returns how long it took.
fn move_writer(env: &Scenario<'_>, to: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = env.cluster.mmmctl(&["move_role", "writer", to])?;
    if !out.status.success() {
        bail!(
            "move_role writer {to}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(t.elapsed())
}

/// How a TCP connection attempt to `ip:port` from the root namespace ends within `within`.
async fn connect_outcome(
    ip: std::net::Ipv4Addr,
    port: u16,
    within: Duration,
) -> (String, Duration) {
    let t = Instant::now();
    let r = tokio::time::timeout(within, tokio::net::TcpStream::connect((ip, port))).await;
    let what = match r {
        Err(_) => "no answer".to_string(),
        Ok(Ok(_)) => "connected".to_string(),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused".to_string(),
        Ok(Err(e)) => format!("error: {e}"),
    };
    (what, t.elapsed())
}

/// The VIP hand-over (`mmm_agent::handover`): after a planned switchover, a client whose ARP cache
/// still sends the writer VIP's packets to the old writer is refused at once (TCP reset), so it
/// tries again instead of waiting out its connect timeout; its next attempt after the cache learns
/// the new owner reaches the new writer. Control: the same attempt at an address db1 never gave up
/// gets no answer at all (the kernel drops it in silence; the refusal is not the kernel's doing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_a_given_up_vip_is_refused_at_once_by_its_old_owner() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let env = Scenario::start(&lab, KEYS).await?;
    let port = lab.host("db1").port;
    let never: std::net::Ipv4Addr = format!("{}.250", lab.subnet_prefix()).parse()?;
    lab.pin_neighbour(never, "db1").await?;
    let (what, took) = connect_outcome(never, port, Duration::from_millis(700)).await;
    assert_eq!(
        what, "no answer",
        "control: an address db1 never had ({took:?})"
    );
    move_writer(&env, "db2")?;
    assert_eq!(
        env.wait_new_writer("db1", Duration::from_secs(5)).await?,
        "db2"
    );
    let vip = lab.writer_vip();
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab.has_ip("db1", vip).await? {
        if Instant::now() > deadline {
            bail!("db1 still has the writer VIP 5 s after the switchover");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lab.pin_neighbour(vip, "db1").await?;
    let (what, took) = connect_outcome(vip, port, Duration::from_millis(700)).await;
    assert_eq!(what, "refused", "a client still sending to db1 ({took:?})");
    assert!(
        took < Duration::from_millis(200),
        "refused at once: {took:?}"
    );
    lab.pin_neighbour(vip, "db2").await?;
    let (what, took) = connect_outcome(vip, port, Duration::from_millis(700)).await;
    assert_eq!(what, "connected", "the new owner answers ({took:?})");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_planned_move_role_and_back() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    let took = move_writer(&env, "db2")?;
    // `move_role` returns once the new writer is open; a follower's `show` may trail it by a few ms.
    assert_eq!(
        env.wait_new_writer("db1", Duration::from_secs(5)).await?,
        "db2"
    );
    env.wait_more_acks(100, Duration::from_secs(10)).await?;
    let back = move_writer(&env, "db1")?;
    assert_eq!(
        env.wait_new_writer("db2", Duration::from_secs(5)).await?,
        "db1"
    );
    env.wait_more_acks(100, Duration::from_secs(10)).await?;
    eprintln!("move_role writer db2 took {took:?}, back {back:?}");
    env.finish(
        "planned move_role writer db2 and back",
        Expect::outage(Duration::from_secs(5)),
    )
    .await?;
    Ok(())
}
