//! Server settings a writer needs (`mmm_proto::settings`): a master whose server misses a required one is
//! shown with it in `mmmctl show --extended` and never made the writer; once it is fixed the failover
//! goes on. Judged by the independent oracle (`mmm_lab::scenario`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_lab::oracle::judge::{Finding, LostWrite};
use mmm_lab::scenario::{Expect, Scenario, FAILOVER};
use mmm_lab::{Lab, LabSpec};
use mysql_async::prelude::Queryable;
use serde_json::Value;

const KEYS: &str = "auto_set_online 2";

/// The setting problems `show --extended --json` lists for `host`.
fn setting_problems(env: &Scenario<'_>, host: &str) -> anyhow::Result<Vec<String>> {
    let out = env
        .cluster
        .mmmctl(&["show", "--extended", "--json"])
        .context("mmmctl show --extended --json")?;
    let v: Value = serde_json::from_slice(&out.stdout).context("show --json is not JSON")?;
    let hosts = v["hosts"].as_array().context("no hosts in show --json")?;
    let h = hosts
        .iter()
        .find(|h| h["name"] == host)
        .with_context(|| format!("{host} not in show --json"))?;
    Ok(h["topology"]["setting_problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Waits until `show --extended` lists (or no longer lists) a problem naming `variable` for `host`.
async fn wait_problem(
    env: &Scenario<'_>,
    host: &str,
    variable: &str,
    listed: bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let problems = setting_problems(env, host)?;
        if problems.iter().any(|p| p.starts_with(variable)) == listed {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{host}: {variable} listed={listed} not seen within 20 s; problems: {problems:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the cluster went PASSIVE after the catch-up timeout, with db2's missed catch-up as the cause.
async fn wait_passive_because_db2_did_not_catch_up(env: &Scenario<'_>) -> anyhow::Result<()> {
    let show = env
        .cluster
        .wait_show(
            Duration::from_secs(60),
            "PASSIVE after the catch-up timeout",
            |s| s.mode == mmm_proto::Mode::Passive as i32,
        )
        .await?;
    assert!(
        show.passive_cause
            .contains("db2 did not apply its relay log"),
        "the cause is shown: {}",
        show.passive_cause
    );
    Ok(())
}

/// db2 runs with `gtid_strict_mode` off (a diverged old master would merge silently into it): when the
/// writer's mysqld dies, db2 is not promoted and the leader says why; with the setting restored (and
/// its agent restarted, which reads the settings at once), db2 becomes the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_master_missing_a_required_setting_is_never_made_the_writer(
) -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    let mut db2 = lab.mysql("db2").await?;
    db2.query_drop("SET GLOBAL gtid_strict_mode = 0").await?;
    env.kill_agent("db2")?;
    env.start_agent("db2")?;
    wait_problem(&env, "db2", "gtid_strict_mode (required)", true).await?;
    lab.kill_mysqld("db1").await?;
    // db1 goes HARD_OFFLINE; db2 is the only other writer-role host and must not take over.
    env.cluster
        .wait_show(FAILOVER, "db1 HARD_OFFLINE", |s| {
            s.hosts
                .iter()
                .any(|h| h.name == "db1" && h.state == mmm_proto::HostState::HardOffline as i32)
        })
        .await?;
    let refused_for = Duration::from_secs(3);
    let since = Instant::now();
    while since.elapsed() < refused_for {
        let w = mmm_lab::cluster::owner_of_role(&env.cluster.show().await?, "writer");
        if w.as_deref() == Some("db2") {
            bail!("db2 was made the writer although it misses gtid_strict_mode");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ro: Option<u8> = db2.query_first("SELECT @@read_only").await?;
    assert_eq!(ro, Some(1), "db2 stays read-only");
    db2.query_drop("SET GLOBAL gtid_strict_mode = 1").await?;
    drop(db2);
    env.kill_agent("db2")?;
    env.start_agent("db2")?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(20, FAILOVER).await?;
    env.finish(
        "a master missing a required setting",
        // The writer is down for as long as the only candidate misses the setting.
        Expect::outage(Duration::from_secs(60)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// The candidate's SQL thread is stopped while the writer keeps writing, so it holds received but
/// unapplied transactions; then the writer's mysqld dies. The candidate cannot catch up: it is never
/// opened, and after the catch-up timeout the cluster goes PASSIVE and says why (`show`, `history`).
/// Starting the SQL thread again does not make it promotable: MariaDB then forgets what the IO thread had
/// received (and may drop the relay log), but the agent recorded that position when it stopped fetching
/// from the dead writer, and the catch-up still requires it: after `set_active` the failover resumes but
/// db2 stays closed. Once the old writer's mysqld is back (and checked), db2 fetches the rest from it and
/// opens; nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_candidate_that_cannot_catch_up_is_never_opened() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    // Without fetching from peers: db3 and db4 have what db2 received, and db2 would (rightly) fetch
    // it from them; this test is about what db2 alone must not forget.
    let mut env =
        Scenario::start_with_agent_setting(&lab, KEYS, "db2", "catch_up_from_peers 0").await?;
    env.load().await?;
    let mut db2 = lab.mysql("db2").await?;
    db2.query_drop("STOP SLAVE SQL_THREAD").await?;
    env.wait_more_acks(100, FAILOVER).await?;
    lab.kill_mysqld("db1").await?;
    wait_passive_because_db2_did_not_catch_up(&env).await?;
    let read_only = |v: Option<u8>| v == Some(1);
    assert!(
        read_only(db2.query_first("SELECT @@read_only").await?),
        "the candidate that could not catch up was never opened"
    );
    let history = env.cluster.mmmctl(&["history"])?;
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(
        history.contains("abandoned"),
        "history records the abandoned failover: {history}"
    );
    db2.query_drop("START SLAVE SQL_THREAD").await?;
    let out = env.cluster.mmmctl(&["set_active"])?;
    assert!(out.status.success(), "set_active: {out:?}");
    // The failover starts again with db1 still dead: db2 must not open although MariaDB now reports
    // everything it knows of as applied.
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(5) {
        assert!(
            read_only(db2.query_first("SELECT @@read_only").await?),
            "db2 opened without the transactions it had received from db1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The old writer's mysqld comes back: checked and ONLINE, it is fetched from again and db2 catches
    // up before it opens.
    lab.start_mysqld("db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    drop(db2);
    env.finish(
        "a candidate that cannot catch up",
        Expect::outage(Duration::from_secs(120)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// The writer runs without semi-synchronous acknowledgements (its peer stopped acknowledging): its agent
/// reports it, and the failover after its mysqld dies goes ahead (`async_failover 1`, the default) with
/// `mmmctl history` saying that writes it acknowledged last may exist on it alone. The oracle's verdict
/// is held to exactly that: the only findings allowed are writes acknowledged by the asynchronous writer
/// that the new writer lacks (whether any are lost depends on how far its peer lagged at the kill).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_failover_away_from_an_asynchronous_writer_says_so() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    const ASYNC_SEEN: &str = "the writer runs without semi-synchronous acknowledgements";
    let seen_before = lab.logs_of("monitor-").matches(ASYNC_SEEN).count();
    let mut db2 = lab.mysql("db2").await?;
    db2.query_drop("SET GLOBAL rpl_semi_sync_slave_enabled = 0")
        .await?;
    db2.query_drop("STOP SLAVE IO_THREAD").await?;
    db2.query_drop("START SLAVE IO_THREAD").await?;
    let mut db1 = lab.mysql("db1").await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s: Vec<(String, String)> = db1
            .query("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'")
            .await?;
        // No semi-sync replica left: MariaDB still says ON but commits without waiting.
        if s.iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("Rpl_semi_sync_master_clients") && v == "0")
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("db1 kept a semi-sync replica for 20 s: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(db1);
    env.wait_more_acks(50, FAILOVER).await?;
    // The leader learns it from the writer's lease renewal replies (every writer_lease / 3 = 667 ms)
    // and says so in its log.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lab.logs_of("monitor-").matches(ASYNC_SEEN).count() <= seen_before {
        if Instant::now() > deadline {
            bail!(
                "no monitor logged within 20 s that db1 writes without semi-sync acknowledgements"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab.kill_mysqld("db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    let history = env.cluster.mmmctl(&["history"])?;
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(
        history.contains("without semi-synchronous acknowledgements"),
        "the failover's history entry names the risk: {history}"
    );
    db2.query_drop("SET GLOBAL rpl_semi_sync_slave_enabled = 1")
        .await?;
    drop(db2);
    env.wait_more_acks(20, FAILOVER).await?;
    // What async_failover 1 accepts, and says: writes db1 acknowledged without a replica may be lost
    // (a lost write or a CAS value set again, acknowledged by db1). Anything else the scenario does not
    // tolerate (`undone_read_tolerated`: reads of db1's undone tail before its repair) fails the test.
    let j = env
        .finish_judged(
            "a failover away from an asynchronous writer",
            Expect::outage(Duration::from_secs(15)).with_repairs(),
        )
        .await?;
    let by_async_writer = |f: &Finding| match f {
        Finding::Lost { write, .. } => match write {
            LostWrite::Insert { by, .. }
            | LostWrite::Register { by, .. }
            | LostWrite::ListElement { by, .. } => by == "db1",
        },
        Finding::CasDuplicate { acks, .. } => acks.iter().any(|(_, host, _)| host == "db1"),
        _ => false,
    };
    let (accepted, unexpected): (Vec<&Finding>, Vec<&Finding>) =
        j.findings.iter().partition(|f| by_async_writer(f));
    for f in &accepted {
        eprintln!("accepted (acknowledged by the asynchronous writer): {f}");
    }
    let other: Vec<&String> = j
        .problems
        .iter()
        .filter(|p| !p.starts_with("oracle: "))
        .collect();
    assert!(
        unexpected.is_empty() && other.is_empty(),
        "findings: {unexpected:?}; problems: {other:?}"
    );
    Ok(())
}

/// Delays db2's SQL thread behind what it received (`MASTER_DELAY`): the relay log holds writes db1
/// acknowledged (db2 received them) that db2 has not applied.
async fn delay_replica(lab: &Lab, host: &str, secs: u32) -> anyhow::Result<()> {
    let mut c = lab.mysql(host).await?;
    c.query_drop("STOP SLAVE").await?;
    c.query_drop(format!("CHANGE MASTER TO MASTER_DELAY = {secs}"))
        .await?;
    c.query_drop("START SLAVE").await?;
    Ok(())
}

/// A planned switchover to a replica whose SQL thread runs 3 s behind (`MASTER_DELAY`, a delayed tail):
/// the old writer holds its clients' writes, the candidate applies everything up to the old writer's
/// last position before it opens, and nothing is lost or written twice. The switchover takes the delay
/// (writes held up to 2 s, then refused until the new writer opens).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_planned_switchover_waits_for_a_delayed_tail() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    delay_replica(&lab, "db2", 3).await?;
    env.wait_more_acks(200, FAILOVER).await?;
    let t = Instant::now();
    let out = env.cluster.mmmctl(&["move_role", "writer", "db2"])?;
    assert!(
        out.status.success(),
        "move_role: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    let took = t.elapsed();
    eprintln!("move_role writer db2 with a 3 s delayed tail took {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "the new writer cannot have opened before applying the delayed tail ({took:?})"
    );
    delay_replica(&lab, "db2", 0).await?;
    env.wait_more_acks(50, FAILOVER).await?;
    env.finish(
        "a planned switchover with a delayed tail",
        Expect::outage(Duration::from_secs(15)),
    )
    .await?;
    Ok(())
}

/// The candidate's relay log holds more than it can apply within the catch-up timeout (its SQL thread
/// runs 40 s behind, `MASTER_DELAY`; the timeout is 30 s) when the writer's mysqld dies: it is never
/// opened with part of the acknowledged writes; the cluster goes PASSIVE and says why. After `set_active`
/// the failover starts again and the candidate opens once it has applied everything; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_relay_backlog_longer_than_the_timeout_is_never_cut_short(
) -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start(&lab, KEYS).await?;
    env.load().await?;
    delay_replica(&lab, "db2", 40).await?;
    env.wait_more_acks(200, FAILOVER).await?;
    lab.kill_mysqld("db1").await?;
    let mut db2 = lab.mysql("db2").await?;
    wait_passive_because_db2_did_not_catch_up(&env).await?;
    let read_only: Option<u8> = db2.query_first("SELECT @@read_only").await?;
    assert_eq!(
        read_only,
        Some(1),
        "db2 was never opened with part of its relay log"
    );
    let out = env.cluster.mmmctl(&["set_active"])?;
    assert!(out.status.success(), "set_active: {out:?}");
    assert_eq!(
        env.wait_new_writer("db1", Duration::from_secs(60)).await?,
        "db2"
    );
    // Its channel from the dead db1 stays as its agent left it (IO stopped: db1 is not verified).
    db2.query_drop("STOP SLAVE SQL_THREAD").await?;
    db2.query_drop("CHANGE MASTER TO MASTER_DELAY = 0").await?;
    db2.query_drop("START SLAVE SQL_THREAD").await?;
    drop(db2);
    env.wait_more_acks(50, FAILOVER).await?;
    env.finish(
        "a relay backlog longer than the catch-up timeout",
        Expect::outage(Duration::from_secs(120)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// Waits until `master` has `n` semi-synchronous replicas connected.
async fn wait_semi_sync_clients(lab: &Lab, master: &str, n: u32) -> anyhow::Result<()> {
    let mut db = lab.mysql(master).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Option<(String, u32)> = db
            .query_first("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")
            .await?;
        if v.as_ref().is_some_and(|(_, c)| *c == n) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{master} did not reach {n} semi-sync replicas within 20 s: {v:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// db3 acknowledges semi-synchronous commits too (as every replica does in many deployments). db2 stops
/// receiving from the writer (a one-way drop: its IO thread does not notice within
/// `slave_net_timeout`) while db3 keeps receiving and acknowledging: the writer acknowledges writes,
/// synchronously, that db2 lacks. Then the writer's mysqld dies, so nobody can tell db2 the old
/// writer's last position, and db2 is the only master left to promote.
/// db3 acknowledges semi-sync commits too; under load, db2 stops receiving from db1 (a one-way drop)
/// for `writes` more acknowledged writes, then db1's mysqld is killed and db2's link healed: db3 has
/// writes db2 lacks.
async fn db2_behind_db3_when_db1_dies(
    lab: &Lab,
    env: &mut Scenario<'_>,
    writes: u64,
) -> anyhow::Result<()> {
    let mut db3 = lab.mysql("db3").await?;
    for q in [
        "SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = 1",
        "SET GLOBAL rpl_semi_sync_slave_enabled = 1",
        "STOP SLAVE IO_THREAD",
        "START SLAVE IO_THREAD",
    ] {
        db3.query_drop(q).await?;
    }
    drop(db3);
    wait_semi_sync_clients(lab, "db1", 2).await?;
    env.load().await?;
    lab.block_one_way("db1", "db2").await?;
    env.wait_more_acks(writes, FAILOVER).await?;
    lab.kill_mysqld("db1").await?;
    lab.unblock_one_way("db1", "db2").await
}

async fn candidate_behind_a_replica(
    fetch: bool,
) -> anyhow::Result<(mmm_lab::scenario::Judged, String)> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = if fetch {
        Scenario::start(&lab, KEYS).await?
    } else {
        Scenario::start_with_agent_setting(&lab, KEYS, "db2", "catch_up_from_peers 0").await?
    };
    db2_behind_db3_when_db1_dies(&lab, &mut env, 100).await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, FAILOVER).await?;
    let history = env.cluster.mmmctl(&["history"])?;
    let history = String::from_utf8_lossy(&history.stdout).into_owned();
    assert!(
        !history.contains("without semi-synchronous acknowledgements"),
        "db1 kept acknowledging synchronously (db3 acknowledged): {history}"
    );
    let scenario = if fetch {
        "a candidate behind a replica fetches from it"
    } else {
        "a candidate behind a replica, catch_up_from_peers 0"
    };
    let j = env
        .finish_judged(
            scenario,
            Expect::outage(Duration::from_secs(5)).with_repairs(),
        )
        .await?;
    Ok((j, history))
}

/// The candidate lacks writes the old writer acknowledged on another replica's semi-synchronous
/// acknowledgement: before
/// it opens it fetches them from that replica (`mmm_agent::peer_catch_up`), and the history entry of
/// the failover says from whom. Nothing acknowledged is lost, every host converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_candidate_behind_a_replica_fetches_from_it_before_opening(
) -> anyhow::Result<()> {
    let (j, history) = candidate_behind_a_replica(true).await?;
    assert!(
        history.contains("fetched what it lacked from peers"),
        "the failover says what db2 fetched and from whom: {history}"
    );
    assert!(j.problems.is_empty(), "{}", j.problems.join("\n"));
    Ok(())
}

/// Negative control of the test above: with `catch_up_from_peers 0` db2 opens with what it received, and
/// the oracle finds acknowledged writes lost (db3 and db4 had them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_candidate_behind_a_replica_without_fetching_loses_writes(
) -> anyhow::Result<()> {
    let (j, history) = candidate_behind_a_replica(false).await?;
    assert!(
        !history.contains("fetched what it lacked from peers"),
        "{history}"
    );
    let lost = j
        .report
        .findings()
        .iter()
        .filter(|f| matches!(f, Finding::Lost { .. } | Finding::CasDuplicate { .. }))
        .count();
    assert!(
        lost > 0,
        "acknowledged writes only db3 and db4 had are lost without the fetch; findings: {:?}",
        j.report.findings()
    );
    Ok(())
}

/// Three writer-eligible hosts (the writer role on db1, db2 and db3): db2, db1's peer and MMM's
/// first candidate, has stopped receiving (a one-way drop) while db3 acknowledged every semi-sync
/// commit. When db1's mysqld dies the cluster chooses db3, the most advanced host, over db2
/// (`mmm_monitor::engine::choose_candidate`: db2's position stood still and db3's is strictly ahead),
/// and says so in `history`; nothing acknowledged is lost. Without the preference db2 would be
/// chosen (`durability_a_candidate_behind_a_replica_fetches_from_it_before_opening`, the same fault
/// with db3 not writer-eligible).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_the_most_advanced_writer_eligible_host_is_chosen() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start_with_writer_hosts(&lab, KEYS, &["db1", "db2", "db3"]).await?;
    // 300 writes: long enough for db2's position to stand still past the engine's settling time.
    db2_behind_db3_when_db1_dies(&lab, &mut env, 300).await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db3");
    env.wait_more_acks(50, FAILOVER).await?;
    let history = env.cluster.mmmctl(&["history"])?;
    let history = String::from_utf8_lossy(&history.stdout).into_owned();
    assert!(
        history.contains("db3 chosen over db2: it has"),
        "the failover says why db3 and not the peer: {history}"
    );
    let j = env
        .finish_judged(
            "the most advanced writer-eligible host is chosen",
            Expect::outage(Duration::from_secs(5)).with_repairs(),
        )
        .await?;
    assert!(j.problems.is_empty(), "{}", j.problems.join("\n"));
    Ok(())
}

/// `auto_rejoin_errant 1`: the old writer comes back with a transaction nobody else has (never
/// acknowledged: committed while it was no longer the writer). The cluster asks its agent to rejoin;
/// the agent saves the transaction's binlog events to a file, undoes them (flashback, not logged),
/// resets its GTID state and follows the writer; the errant mark is cleared with the file named in
/// `history`, and db1 is ONLINE again without an operator (the harness repairs nothing). The
/// transaction is gone from db1 and in the file. Without the setting the host waits for an operator
/// (`faults.rs`, `fault_old_master_returns_with_errant`, is that control: its harness must rebuild db1).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_diverged_old_master_rejoins_by_itself() -> anyhow::Result<()> {
    diverged_old_master_rejoins(false).await
}

/// The same with per-master GTID domains (db1 writes in domain 1, db2 in domain 2, as MariaDB advises
/// for masters that may both write): the errant transaction is found in db1's domain and undone there,
/// and the writer's domain is left as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_diverged_old_master_with_its_own_gtid_domain_rejoins_by_itself(
) -> anyhow::Result<()> {
    diverged_old_master_rejoins(true).await
}

async fn diverged_old_master_rejoins(per_master_domains: bool) -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start(&lab, &format!("{KEYS}\nauto_rejoin_errant 1")).await?;
    if per_master_domains {
        for (host, domain) in [("db1", 1), ("db2", 2)] {
            // In the option file too: db1's mysqld is restarted by the scenario.
            lab.append_server_option(host, &format!("gtid_domain_id={domain}"))?;
            lab.exec(host, &format!("SET GLOBAL gtid_domain_id = {domain}"))
                .await?;
        }
    }
    env.load().await?;
    let db1_pos = env.old_master_returns_with_errant("db1").await?;
    // Rejoined: the mark was set, then cleared by the rejoin, and db1 is ONLINE with nothing errant.
    env.cluster
        .wait_show(Duration::from_secs(60), "db1 rejoined and ONLINE", |s| {
            s.hosts.iter().any(|h| {
                h.name == "db1"
                    && h.state == mmm_proto::HostState::Online as i32
                    && h.errant_gtids.is_empty()
            })
        })
        .await?;
    let out = env.cluster.mmmctl(&["history", "1000"])?;
    let history = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        history.contains("automatic rejoin of db1"),
        "the rejoin is asked in history: {history}"
    );
    let line = history
        .lines()
        .find(|l| l.contains("db1 rejoined: its errant transactions"))
        .with_context(|| format!("the rejoin is in history: {history}"))?;
    let file = line
        .split(" were saved to ")
        .nth(1)
        .and_then(|r| r.split(" on db1").next())
        .with_context(|| format!("no file in {line}"))?;
    let saved = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let errant = db1_pos
        .split(',')
        .find(|g| g.split('-').nth(1) == Some("1"))
        .with_context(|| format!("no server-1 GTID in {db1_pos}"))?;
    if per_master_domains {
        assert!(
            errant.starts_with("1-1-"),
            "the errant GTID is in db1's domain: {db1_pos}"
        );
    }
    assert!(
        saved.contains(&format!("GTID {errant} ")) && saved.contains("999999999"),
        "the saved file holds the errant transaction {errant} and its row:\n{saved}"
    );
    let mut db1 = lab.mysql("db1").await?;
    let left: Option<u64> = db1
        .query_first("SELECT COUNT(*) FROM app.oracle_ins WHERE id = 999999999")
        .await?;
    assert_eq!(left, Some(0), "the errant row was undone on db1");
    drop(db1);
    let scenario = if per_master_domains {
        "a diverged old master with its own GTID domain rejoins by itself"
    } else {
        "a diverged old master rejoins by itself"
    };
    env.finish(scenario, Expect::outage(Duration::from_secs(10)))
        .await?;
    Ok(())
}

/// Negative control of the rejoin's safety condition: db1 runs with `rpl_semi_sync_master_timeout` 1 s,
/// shorter than lease + fence, so a commit of db1 could have been acknowledged without a replica and its
/// errant transaction may be an acknowledged write. Its agent refuses to undo it (and says why); db1 stays
/// marked errant and out of rotation until the operator (the harness) rebuilds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_a_diverged_old_master_with_a_short_semi_sync_timeout_is_left_to_the_operator(
) -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start(&lab, &format!("{KEYS}\nauto_rejoin_errant 1")).await?;
    // In the option file: db1's mysqld is restarted by the scenario, which reads it.
    lab.append_server_option("db1", "rpl_semi_sync_master_timeout=1000")?;
    env.load().await?;
    env.old_master_returns_with_errant("db1").await?;
    let logs = lab.dir().join("logs");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Every run of db1's agent (`agent-db1-<n>.log`).
        let refused = std::fs::read_dir(&logs)?.flatten().any(|f| {
            f.file_name().to_string_lossy().starts_with("agent-db1-")
                && std::fs::read_to_string(f.path())
                    .unwrap_or_default()
                    .contains("may have been acknowledged")
        });
        if refused {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "db1's agent did not refuse the rejoin within 30 s ({})",
                logs.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = env.cluster.show().await?;
    let db1 = s.hosts.iter().find(|h| h.name == "db1").context("db1")?;
    assert!(
        !db1.errant_gtids.is_empty(),
        "db1 stays marked errant: {db1:?}"
    );
    let mut db1c = lab.mysql("db1").await?;
    let left: Option<u64> = db1c
        .query_first("SELECT COUNT(*) FROM app.oracle_ins WHERE id = 999999999")
        .await?;
    assert_eq!(left, Some(1), "nothing was undone on db1");
    drop(db1c);
    let j = env
        .finish_judged(
            "a diverged old master with a short semi-sync timeout",
            Expect::outage(Duration::from_secs(10)).with_repairs(),
        )
        .await?;
    assert!(
        j.repaired.iter().any(|r| r.starts_with("db1")),
        "the operator had to rebuild db1: {:?}",
        j.repaired
    );
    assert!(j.problems.is_empty(), "{}", j.problems.join("\n"));
    Ok(())
}
