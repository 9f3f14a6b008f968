//! Writer fencing under the faults that break leases in real deployments, each judged by the independent
//! oracle (`mmm_lab::oracle`, through `mmm_lab::scenario`): an agent killed, paused or restarted while its
//! mysqld runs; agent clocks skewed both ways; lock holders and long transactions on the writer when it
//! must be demoted; the agent's MySQL password changed under it; a slow `pre_failover` hook; the monitor
//! leader paused past the election and resumed; asymmetric and one-way partitions with clients on the old
//! writer's side; a monitor whose disk is full.
//!
//! Each asserts, through the oracle, that no two servers were writable or acknowledged writes in
//! overlapping time and that no acknowledged write was lost, and that the writer moved (or stayed) as the
//! scenario says.

use std::time::Duration;

use anyhow::Context;
use mmm_lab::cluster::MmmCluster;
use mmm_lab::oracle::judge::{Finding, LostWrite};
use mmm_lab::oracle::{Account, ClientSpec, Role};
use mmm_lab::scenario::{Expect, Scenario, FAILOVER};
use mmm_lab::{ClockSkew, Lab, LabSpec};
use mysql_async::prelude::Queryable;

const KEYS: &str = "auto_set_online 2";

async fn lab_env() -> anyhow::Result<Lab> {
    mmm_lab::init_logging();
    Lab::start(LabSpec::cluster()).await
}

/// `@@read_only` of a host.
async fn read_only(lab: &Lab, host: &str) -> anyhow::Result<bool> {
    let mut c = lab.mysql(host).await?;
    let v: Option<u8> = c.query_first("SELECT @@read_only").await?;
    Ok(v == Some(1))
}

/// How many times the fence kept in mysqld denied writes by itself on `host` since mysqld started.
async fn fence_fired(lab: &Lab, host: &str) -> anyhow::Result<u64> {
    let mut c = lab.mysql(host).await?;
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM mmm_fence.fired")
        .await
        .context("reading mmm_fence.fired")?;
    Ok(n.unwrap_or(0))
}

/// Blocks every monitor from `host` (both ways).
async fn isolate_from_monitors(lab: &Lab, host: &str) -> anyhow::Result<()> {
    for m in lab.monitors() {
        lab.block(host, &m.name).await?;
    }
    Ok(())
}

/// The agent is killed while its mysqld keeps running, then the writer is cut off from the monitors: the
/// fence inside mysqld denies writes when the lease ends, with no agent to do it, and the writer moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_agent_killed_then_writer_isolated() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    env.kill_agent("db1")?;
    isolate_from_monitors(&lab, "db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    assert!(read_only(&lab, "db1").await?, "db1 denies writes");
    assert!(
        fence_fired(&lab, "db1").await? >= 1,
        "the fence in mysqld denied writes on db1 (its agent was dead)"
    );
    env.finish(
        "agent killed, then the writer isolated",
        Expect::outage(Duration::from_secs(20)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// The agent is paused (SIGSTOP) while its mysqld keeps running, then the writer is cut off from the
/// monitors; the agent is resumed at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_agent_paused_then_writer_isolated() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    env.cluster.pause_agent("db1")?;
    isolate_from_monitors(&lab, "db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    assert!(read_only(&lab, "db1").await?, "db1 denies writes");
    assert!(fence_fired(&lab, "db1").await? >= 1, "the fence fired");
    env.finish(
        "agent paused, then the writer isolated",
        Expect::outage(Duration::from_secs(20)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// The agent alone dies (mysqld and the network are fine): its lease cannot be renewed, the fence denies
/// writes, and the cluster moves the writer rather than leave it read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_agent_killed_alone_moves_the_writer() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    env.kill_agent("db1")?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    assert!(fence_fired(&lab, "db1").await? >= 1, "the fence fired");
    env.finish(
        "agent killed alone",
        Expect::outage(Duration::from_secs(15)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// The writer is cut off from the monitors and its agent restarts meanwhile: a restarted agent never
/// opens anything on its own (it adopts only what is left of the lease kept in mysqld).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_agent_restarted_during_isolation() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    isolate_from_monitors(&lab, "db1").await?;
    env.kill_agent("db1")?;
    env.start_agent("db1")?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    assert!(read_only(&lab, "db1").await?, "db1 denies writes");
    env.finish(
        "agent restarted while the writer is isolated",
        Expect::outage(Duration::from_secs(20)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// Agents' wall clocks 3 s behind (db1) and 3 s ahead (db2) of the monitors': the lease counts on
/// monotonic clocks, so the isolated writer stops in time and the new one opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_agent_clocks_skewed_both_ways() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut cluster = MmmCluster::configure(&lab, KEYS, false)?;
    cluster.start_agent_with_clock("db1", ClockSkew::behind(3))?;
    cluster.start_agent_with_clock("db2", ClockSkew::ahead(3))?;
    for h in ["db3", "db4"] {
        cluster.start_agent(h)?;
    }
    for m in lab.monitors() {
        cluster.start_monitor(&m.name)?;
    }
    let mut env = Scenario::with_cluster(&lab, cluster).await?;
    env.load().await?;
    isolate_from_monitors(&lab, "db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    env.finish(
        "agent clocks 3 s behind (old writer) and 3 s ahead (new writer)",
        Expect::outage(Duration::from_secs(20)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// A session holding `LOCK TABLES ... WRITE` on the writer when it is cut off: the demotion kills it
/// (read_only would wait for the lock), and the writer moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_lock_holder_during_isolation() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    let lock = lab.hold_table_lock("db1").await?;
    isolate_from_monitors(&lab, "db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    assert!(read_only(&lab, "db1").await?, "db1 denies writes");
    assert!(lock.was_killed().await, "the lock holder was killed");
    env.finish(
        "lock holder on the writer, writer isolated",
        Expect::outage(Duration::from_secs(20)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// The agent's MySQL password is changed on the writer: the agent cannot reach mysqld, so it can neither
/// keep the lease in mysqld nor verify a demotion; the fence ends writes with the lease and the writer
/// moves (never on an unverified acknowledgement).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_agent_password_changed_on_the_writer() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    lab.set_account_password("db1", mmm_lab::users::AGENT_USER, "not-the-agent-pw")
        .await?;
    // Existing agent connections keep working: new ones fail. The agent connects per apply.
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    assert!(read_only(&lab, "db1").await?, "db1 denies writes");
    lab.restore_account_password("db1", mmm_lab::users::AGENT_USER)
        .await?;
    env.finish(
        "the agent's password changed on the writer",
        Expect::outage(Duration::from_secs(20)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// A `pre_failover` hook that takes 6 s while the writer is moved away by `set_offline`: lease renewals
/// have their own path, so the writer keeps its lease (and writes) while the hook runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_slow_pre_failover_hook_keeps_the_writer_renewed() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let hook = lab.dir().join("slow-pre-failover.sh");
    std::fs::write(&hook, "#!/bin/sh\nsleep 6\nexit 0\n")?;
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let keys = format!("{KEYS}\npre_failover {}", hook.display());
    let mut env = Scenario::start(&lab, &keys).await?;
    env.load().await?;
    let out = env.cluster.mmmctl(&["set_offline", "db1"])?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK"),
        "set_offline db1: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // While the hook runs (6 s), db1 is still the writer and keeps writing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    env.wait_more_acks(20, Duration::from_secs(2)).await?;
    assert_eq!(
        env.writer().await?,
        "db1",
        "the hook has not allowed the move yet"
    );
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.cluster.set_host("set_online", "db1").await?;
    env.finish(
        "slow pre_failover hook",
        Expect::outage(Duration::from_secs(3)),
    )
    .await?;
    Ok(())
}

/// The monitor leader is paused (SIGSTOP) past the election timeout and resumed after a new leader took
/// over: the deposed leader renews nothing (its quorum confirmation is stale) and its statuses are refused
/// as stale; the writer keeps writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_leader_paused_past_the_election_then_resumed() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    let leader = env.leader().await?;
    env.cluster.pause_monitor(&leader)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let others: Vec<String> = lab
        .monitors()
        .iter()
        .map(|m| m.name.clone())
        .filter(|m| *m != leader)
        .collect();
    let s = env.cluster.cluster_status_of(&others[0]).await?;
    assert!(
        !s.leader_name.is_empty() && s.leader_name != leader,
        "a new leader took over: {s:?}"
    );
    env.cluster.resume_monitor(&leader)?;
    env.wait_more_acks(100, Duration::from_secs(10)).await?;
    assert_eq!(env.writer().await?, "db1");
    env.finish(
        "leader paused past the election, then resumed",
        Expect::outage(Duration::from_secs(3)),
    )
    .await?;
    Ok(())
}

/// The old writer and the clients on one side, the monitors, its peer and the other clients on the
/// other: the clients keep writing to the old writer straight and through the VIP it still holds, one of
/// them an application that waits a minute for each answer (it would take a late acknowledgement). Its
/// semi-synchronous commits wait for an acknowledgement it cannot get (the timeout is longer than the
/// lease and the fence), so when its lease ends the waiting sessions are killed: nothing it
/// acknowledged is lost, nothing is acknowledged after the new writer opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_asymmetric_partition_keeps_clients_with_the_old_writer() -> anyhow::Result<()> {
    asymmetric_partition(false).await
}

/// Negative control of the test above: with the old writer's semi-sync timeout (1 s) shorter than the
/// lease, it falls back to asynchronous commits during the partition and acknowledges writes its peer
/// never gets: the oracle finds them lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_asymmetric_partition_with_a_short_semi_sync_timeout_loses_writes(
) -> anyhow::Result<()> {
    asymmetric_partition(true).await
}

async fn asymmetric_partition(short_semi_sync_timeout: bool) -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    let patient = ClientSpec {
        name: "patient-db1".into(),
        target: lab.host("db1").ip,
        role: Role::Writer,
        account: Account::App,
        site: None,
        op_timeout: Some(Duration::from_secs(60)),
    };
    env.load_with(|site| {
        vec![ClientSpec {
            site: Some(site),
            ..patient
        }]
    })
    .await?;
    if short_semi_sync_timeout {
        let mut c = lab.mysql("db1").await?;
        c.query_drop("SET GLOBAL rpl_semi_sync_master_timeout = 1000")
            .await?;
    }
    let trx = lab.long_transaction("db1", 60).await?;
    lab.partition(
        &["db1", "cli1"],
        &["mon1", "mon2", "mon3", "db2", "db3", "db4", "cli2"],
    )
    .await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(read_only(&lab, "db1").await?, "db1 denies writes");
    assert!(trx.was_killed().await, "the long transaction was killed");
    assert!(
        !trx.committed().await,
        "the long transaction never committed"
    );
    let scenario = if short_semi_sync_timeout {
        "old writer and its clients cut off, semi-sync timeout 1 s"
    } else {
        "old writer and its clients cut off from the rest"
    };
    // The clients cannot reach the new writer until the partition heals.
    let expect = Expect::outage(Duration::from_secs(60))
        .with_repairs()
        .with_reads_of_undone_writes();
    if !short_semi_sync_timeout {
        env.finish(scenario, expect).await?;
        return Ok(());
    }
    let j = env.finish_judged(scenario, expect).await?;
    let lost_acked_by_db1 = j.report.findings().iter().any(|f| match f {
        Finding::Lost { write, .. } => match write {
            LostWrite::Insert { by, .. }
            | LostWrite::Register { by, .. }
            | LostWrite::ListElement { by, .. } => by == "db1",
        },
        _ => false,
    });
    assert!(
        lost_acked_by_db1,
        "the oracle found no write db1 acknowledged asynchronously and lost: {:?}",
        j.report.findings()
    );
    Ok(())
}

/// One-way drops: the monitors' packets to the writer are lost (its replies would go through), then, in
/// another lab, the writer's packets to the monitors. Either way the writer moves, never two at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_one_way_drops_between_monitors_and_writer() -> anyhow::Result<()> {
    for (label, to_writer) in [("monitors -> writer", true), ("writer -> monitors", false)] {
        let lab = lab_env().await?;
        let mut env = Scenario::start(&lab, KEYS).await?;
        env.load().await?;
        for m in lab.monitors() {
            if to_writer {
                lab.block_one_way(&m.name, "db1").await?;
            } else {
                lab.block_one_way("db1", &m.name).await?;
            }
        }
        assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
        env.wait_more_acks(50, FAILOVER).await?;
        env.finish(
            &format!("one-way drops {label}"),
            Expect::outage(Duration::from_secs(20)).with_repairs(),
        )
        .await?;
    }
    Ok(())
}

/// A monitor whose data directory's disk is full: it cannot persist Raft entries; the other two carry on
/// and fail the writer over when its mysqld dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_full_disk_on_one_monitor() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let disk = lab.small_disk_for_monitor("mon3", 64).await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    disk.fill().await?;
    lab.kill_mysqld("db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    disk.free().await?;
    env.finish(
        "full disk on one monitor, then the writer's mysqld killed",
        Expect::outage(Duration::from_secs(10)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// Waits until `host`'s mariadbd process has exited (it is reaped by the lab), within `timeout`.
async fn wait_mysqld_gone(lab: &Lab, host: &str, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if !lab.mysqld_running(host) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Starts the cluster with `kill_stalled_mysqld 0` in db1's agent configuration.
async fn scenario_without_the_last_resort(lab: &Lab) -> anyhow::Result<Scenario<'_>> {
    Scenario::start_with_agent_setting(lab, KEYS, "db1", "kill_stalled_mysqld 0").await
}

/// The writer's mysqld stalls (SIGSTOP: it keeps its sockets but runs no statement and no event, as on a
/// frozen disk or VM) while clients write. The cluster fails over; neither the agent's demotion nor the
/// fence event in mysqld can close a stalled server, so it would wake up writable after the new writer
/// opened. Its agent kills it (the fence's last resort) once its lease is over, before the new writer
/// opens: a statement sent to it during the stall never runs, and the oracle finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_stalled_writer_mysqld_is_killed_before_the_new_writer_opens() -> anyhow::Result<()> {
    stalled_writer(true).await
}

/// Negative control of the test above: with `kill_stalled_mysqld 0` the stalled old writer is left to the
/// fence event, which a stalled server does not run. Resumed after the new writer opened, it runs the
/// statement that waited in it with `read_only=0`: two writable servers (what the test above would see).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_stalled_writer_mysqld_without_the_last_resort_wakes_writable() -> anyhow::Result<()>
{
    stalled_writer(false).await
}

/// Sessions of [`stalled_writer`] that each send a statement to the stalled server.
const WITNESSES: usize = 8;

async fn stalled_writer(last_resort: bool) -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = if last_resort {
        Scenario::start(&lab, KEYS).await?
    } else {
        scenario_without_the_last_resort(&lab).await?
    };
    env.load().await?;
    // Sessions that send their statement while the server is stalled: they run first thing at
    // wake-up. They log in as the agent's account, whose sessions a demotion never kills. Woken up,
    // the server also runs the agent's demotion sent during the stall, in any order with them: several
    // witnesses, so that some run before it.
    let mut witnesses = Vec::new();
    for _ in 0..WITNESSES {
        witnesses.push(
            lab.connect_as(
                "db1",
                mmm_lab::users::AGENT_USER,
                mmm_lab::users::AGENT_PASSWORD,
                Duration::from_secs(3),
            )
            .await?,
        );
    }
    lab.pause_mysqld("db1")?;
    let at_wake: Vec<_> = witnesses
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let r: Result<Option<u8>, _> = w.query_first("SELECT @@global.read_only").await;
                r
            })
        })
        .collect();
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    assert!(!read_only(&lab, "db2").await?, "db2 is writable");
    let scenario = if last_resort {
        assert!(
            wait_mysqld_gone(&lab, "db1", Duration::from_secs(5)).await,
            "db1's agent killed its stalled mysqld"
        );
        let log = std::fs::read_to_string(lab.dir().join("logs").join("agent-db1-1.log"))?;
        assert!(
            log.contains("mysqld killed (kill -9)"),
            "db1's agent says why it killed mysqld"
        );
        "the writer's mysqld stalled"
    } else {
        assert!(lab.mysqld_running("db1"), "nobody killed db1's mysqld");
        lab.resume_mysqld("db1")?;
        "the writer's mysqld stalled, no last resort"
    };
    let mut woke = Vec::new();
    for w in at_wake {
        woke.push(
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .context("a statement sent during the stall never finished")??,
        );
    }
    eprintln!("{scenario}: the statements sent during the stall got {woke:?}");
    if last_resort {
        assert!(
            woke.iter().all(|r| r.is_err()),
            "db1 never ran them: {woke:?}"
        );
        env.finish(
            scenario,
            Expect::outage(Duration::from_secs(20)).with_repairs(),
        )
        .await?;
    } else {
        assert!(
            woke.iter().any(|r| matches!(r, Ok(Some(0)))),
            "db1 woke up writable while db2 was the writer: {woke:?}"
        );
    }
    Ok(())
}

/// The writer's agent dies, the writer is cut off, the fence in mysqld denies writes when the lease runs
/// out and the writer moves; with `lock_privileged_accounts` the fence also locked the privileged
/// application account on the old writer, so it cannot log in there (it could write through
/// `read_only`), while it can on the new writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_privileged_account_locked_on_the_old_writer_whose_agent_died() -> anyhow::Result<()>
{
    let lab = lab_env().await?;
    let env = privileged_account_scenario(&lab, true).await?;
    let e = lab
        .privileged_write("db1")
        .await
        .expect_err("the privileged account must be locked on the old writer");
    let text = format!("{e:#}");
    assert!(text.contains("locked"), "refused as locked: {text}");
    lab.privileged_write("db2")
        .await
        .context("the privileged account on the new writer")?;
    env.finish(
        "privileged account, agent killed, then the writer isolated",
        Expect::outage(Duration::from_secs(20)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// Negative control of the test above: without `lock_privileged_accounts` the privileged account logs in
/// on the fenced old writer and writes through `read_only` (what the setting prevents).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fence_privileged_account_without_the_lock_writes_on_the_old_writer() -> anyhow::Result<()>
{
    let lab = lab_env().await?;
    let env = privileged_account_scenario(&lab, false).await?;
    assert!(read_only(&lab, "db1").await?, "db1 denies writes");
    lab.privileged_write("db1")
        .await
        .context("without the lock, the privileged account writes through read_only")?;
    env.finish(
        "privileged account without the lock, agent killed, then the writer isolated",
        Expect::outage(Duration::from_secs(20)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// A cluster whose servers have the privileged application account (`mmm_lab::users::SUPERAPP_USER`), with `lock_privileged_accounts` in every agent's
/// configuration when `lock`; db1's agent is killed once it learned the accounts, then db1 is cut off
/// from the monitors and the writer moves to db2.
async fn privileged_account_scenario(lab: &Lab, lock: bool) -> anyhow::Result<Scenario<'_>> {
    lab.create_privileged_app_account().await?;
    let setting = format!("lock_privileged_accounts {}", u8::from(lock));
    let mut env = Scenario::start_with_every_agent_setting(lab, KEYS, &setting).await?;
    env.load().await?;
    if lock {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !lab
            .logs_of("agent-db1-")
            .contains("privileged accounts: locked wherever")
        {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "db1's agent did not learn the privileged accounts"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    env.kill_agent("db1")?;
    isolate_from_monitors(lab, "db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    assert!(
        fence_fired(lab, "db1").await? >= 1,
        "the fence fired on db1"
    );
    Ok(env)
}
