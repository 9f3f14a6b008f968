//! mmm-agent in the lab: real MariaDB servers in network namespaces, the real agent binary inside each
//! host's namespace, clients in the root namespace connecting through the VIPs.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmm_agent::service::HEARTBEAT_INTERVAL as HEARTBEAT;
use mmm_lab::{Lab, LabProcess, LabSpec, AGENT_PORT};
use mmm_proto::agent_client::AgentClient;
use mmm_proto::{
    Epoch, GetStatusRequest, GetSystemStatusRequest, HostState, MysqlHealth, PingRequest, RoleIp,
    SetStatusRequest, WatchHealthRequest, PROTOCOL_VERSION,
};
use mysql_async::prelude::Queryable;
use tonic::transport::Channel;

type Client = AgentClient<Channel>;

fn agent_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mmm-agent"))
}

fn spawn_agent(lab: &Lab, host: &str, configs: &mmm_lab::LabConfigs, log: &str) -> LabProcess {
    let cfg = configs.agent(host).unwrap().to_string_lossy().into_owned();
    lab.spawn_in(host, agent_bin(), &["--config", &cfg], log)
        .unwrap()
}

/// Connects to an agent's gRPC port, waiting until it answers Ping.
async fn connect(ip: Ipv4Addr) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let mut c = AgentClient::connect(format!("http://{ip}:{AGENT_PORT}"))
                .await
                .ok()?;
            c.ping(PingRequest {
                protocol_version: PROTOCOL_VERSION,
            })
            .await
            .ok()?;
            Some(c)
        };
        if let Ok(Some(c)) = tokio::time::timeout(Duration::from_secs(1), attempt).await {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "agent on {ip} did not answer within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn req(
    host: &str,
    epoch: (u64, u64),
    roles: &[(&str, Ipv4Addr)],
    active: &str,
    lease_ms: u64,
) -> SetStatusRequest {
    SetStatusRequest {
        protocol_version: PROTOCOL_VERSION,
        host: host.into(),
        epoch: Some(Epoch {
            term: epoch.0,
            index: epoch.1,
        }),
        state: HostState::Online as i32,
        roles: roles
            .iter()
            .map(|(r, ip)| RoleIp {
                role: r.to_string(),
                ip: ip.to_string(),
            })
            .collect(),
        active_master: active.into(),
        lease_millis: lease_ms,
        monitor: "test".into(),
        hold_writes: false,
        catchup_timeout_millis: 10_000,
        cluster_id: String::new(),
        ..Default::default()
    }
}

/// Names a fresh stamp of the agent (from GetStatus) in a request that grants a lease, as a leader
/// does with the stamps it receives: the lease counts from when the agent made it.
async fn stamped(c: &mut Client, mut r: SetStatusRequest) -> SetStatusRequest {
    if r.lease_millis > 0 && r.lease_stamp.is_none() {
        let st = c
            .get_status(GetStatusRequest {
                protocol_version: PROTOCOL_VERSION,
            })
            .await
            .unwrap()
            .into_inner();
        r.lease_stamp = st.stamp;
    }
    r
}

/// Sends a status and returns the agent's status after applying it.
async fn applied(c: &mut Client, r: SetStatusRequest) -> mmm_proto::AgentStatus {
    let r = stamped(c, r).await;
    c.set_status(r)
        .await
        .unwrap()
        .into_inner()
        .status
        .expect("SetStatus replies with the status")
}

/// `@@server_id` of whatever server answers on `ip` (app user), or None.
async fn server_id_via(lab: &Lab, ip: Ipv4Addr) -> Option<u32> {
    let mut c = lab.connect_ip(ip, Duration::from_millis(300)).await.ok()?;
    let id = tokio::time::timeout(
        Duration::from_secs(1),
        c.query_first::<u32, _>("SELECT @@server_id"),
    )
    .await
    .ok()?
    .ok()?;
    let _ = c.disconnect().await;
    id
}

/// Waits until a client reaches server `want` through `ip`; returns how long it took.
async fn wait_server_via(lab: &Lab, ip: Ipv4Addr, want: u32, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if server_id_via(lab, ip).await == Some(want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "no client reached server_id {want} through {ip} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn read_only(lab: &Lab, host: &str) -> bool {
    let mut c = lab.mysql(host).await.unwrap();
    let v: Option<u8> = c.query_first("SELECT @@global.read_only").await.unwrap();
    let _ = c.disconnect().await;
    v == Some(1)
}

async fn vips_on(c: &mut Client) -> Vec<String> {
    c.get_system_status(GetSystemStatusRequest {
        protocol_version: PROTOCOL_VERSION,
    })
    .await
    .unwrap()
    .into_inner()
    .vips
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if f().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ip_in_ns(ns: &str, args: &[&str]) {
    let st = tokio::process::Command::new("ip")
        .args(["netns", "exec", ns, "ip"])
        .args(args)
        .status()
        .await
        .unwrap();
    assert!(st.success(), "ip {args:?} in {ns} failed");
}

/// Rows of app.agent_moves on a host, as (id, origin) ordered by id.
async fn rows(lab: &Lab, host: &str) -> Vec<(u32, u32)> {
    let mut c = lab.mysql(host).await.unwrap();
    let r = c
        .query("SELECT id, origin FROM app.agent_moves ORDER BY id")
        .await
        .unwrap();
    let _ = c.disconnect().await;
    r
}

async fn insert_rows(lab: &Lab, vip: Ipv4Addr, ids: std::ops::RangeInclusive<u32>) {
    let mut c = lab.connect_ip(vip, Duration::from_secs(2)).await.unwrap();
    for id in ids {
        c.exec_drop(
            "INSERT INTO agent_moves (id, origin) VALUES (?, @@server_id)",
            (id,),
        )
        .await
        .unwrap();
    }
    let _ = c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lab_writer_move_repoint_and_fencing() {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 3,
        monitors: 0,
        semi_sync: false,
        vips: 2,
        clients: 0,
    })
    .await
    .unwrap();
    let configs = lab.write_mmm_configs("").unwrap();
    let mut agents: Vec<LabProcess> = ["db1", "db2", "db3"]
        .iter()
        .map(|h| spawn_agent(&lab, h, &configs, &format!("agent-{h}")))
        .collect();
    let (ip1, ip2, ip3) = (lab.host("db1").ip, lab.host("db2").ip, lab.host("db3").ip);
    let (mut a1, mut a2, mut a3) = (connect(ip1).await, connect(ip2).await, connect(ip3).await);
    let wvip = lab.writer_vip();
    let rvips = lab.reader_vips();

    // db1 becomes the writer; db3 gets a reader VIP.
    a2.set_status(stamped(&mut a2.clone(), req("db2", (1, 1), &[], "db1", 0)).await)
        .await
        .unwrap();
    a3.set_status(
        stamped(
            &mut a3.clone(),
            req("db3", (1, 1), &[("reader", rvips[0])], "db1", 0),
        )
        .await,
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let reply = a1
        .set_status(
            stamped(
                &mut a1.clone(),
                req(
                    "db1",
                    (1, 1),
                    &[("writer", wvip), ("reader", rvips[1])],
                    "db1",
                    30_000,
                ),
            )
            .await,
        )
        .await
        .unwrap();
    let acquired = t0.elapsed();
    let st = reply.into_inner().status.unwrap();
    assert_eq!(st.last_error, "", "{st:?}");
    let first_client = wait_server_via(&lab, wvip, 1, Duration::from_secs(1)).await + acquired;
    println!("VIP acquisition (SetStatus call, db1): {acquired:?}; call -> first client through the VIP: {first_client:?}");
    assert!(first_client < Duration::from_secs(1), "{first_client:?}");
    assert!(!read_only(&lab, "db1").await);
    assert_eq!(server_id_via(&lab, rvips[0]).await, Some(3));
    assert_eq!(server_id_via(&lab, rvips[1]).await, Some(1));

    // Writes through the writer VIP land on db1.
    {
        let mut c = lab.connect_ip(wvip, Duration::from_secs(2)).await.unwrap();
        c.query_drop("CREATE TABLE agent_moves (id INT PRIMARY KEY, origin INT NOT NULL)")
            .await
            .unwrap();
        let _ = c.disconnect().await;
    }
    insert_rows(&lab, wvip, 1..=50).await;

    // An application session is open on db1 while it is demoted.
    let mut held = lab.connect_ip(wvip, Duration::from_secs(2)).await.unwrap();
    held.query_drop("SELECT 1").await.unwrap();

    // A client that reconnects through the writer VIP as fast as it can (an application pool after
    // errors): the demotion drops the VIP before killing sessions, so the kill converges at once.
    let stop_reconnecting = Arc::new(AtomicBool::new(false));
    let target: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(wvip.to_string())
        .user(Some(mmm_lab::users::APP_USER))
        .pass(Some(mmm_lab::users::APP_PASSWORD))
        .db_name(Some(mmm_lab::users::APP_DB))
        .into();
    // Four pooled connections, each used every millisecond and replaced at once when it fails.
    let reconnecting: Vec<_> = (0..4)
        .map(|_| {
            let (stop, target) = (Arc::clone(&stop_reconnecting), target.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let conn = tokio::time::timeout(
                        Duration::from_millis(100),
                        mysql_async::Conn::new(target.clone()),
                    )
                    .await;
                    let Ok(Ok(mut c)) = conn else { continue };
                    while !stop.load(Ordering::Relaxed) {
                        let q = tokio::time::timeout(
                            Duration::from_millis(100),
                            c.query_drop("SELECT 1"),
                        );
                        if !matches!(q.await, Ok(Ok(()))) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Move the writer: old owner first, then the replica, then the new owner.
    let t_move = Instant::now();
    let st = applied(
        &mut a1,
        req("db1", (1, 2), &[("reader", rvips[1])], "db2", 0),
    )
    .await;
    let demotion = t_move.elapsed();
    stop_reconnecting.store(true, Ordering::Relaxed);
    for task in reconnecting {
        task.await.unwrap();
    }
    assert_eq!(
        st.last_error, "",
        "demotion with a client reconnecting through the VIP: {st:?}"
    );
    println!("demotion (read_only, VIP dropped, sessions killed) took {demotion:?}");
    let app_sessions: Vec<u64> = {
        let mut c = lab.mysql("db1").await.unwrap();
        let v = c
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'app'")
            .await
            .unwrap();
        let _ = c.disconnect().await;
        v
    };
    assert!(
        app_sessions.is_empty(),
        "demotion kills application sessions: {app_sessions:?} left"
    );
    drop(held);
    assert!(read_only(&lab, "db1").await, "the old master denies writes");
    assert!(
        !vips_on(&mut a1).await.contains(&wvip.to_string()),
        "the old master dropped the writer VIP"
    );
    let st = applied(
        &mut a3,
        req("db3", (1, 2), &[("reader", rvips[0])], "db2", 0),
    )
    .await;
    assert_eq!(st.last_error, "", "{st:?}");
    let t_new = Instant::now();
    let st = applied(
        &mut a2,
        req("db2", (1, 2), &[("writer", wvip)], "db2", 30_000),
    )
    .await;
    let acquired2 = t_new.elapsed();
    assert_eq!(st.last_error, "", "{st:?}");
    let first_client2 = wait_server_via(&lab, wvip, 2, Duration::from_secs(1)).await + acquired2;
    println!(
        "writer move db1 -> db2: SetStatus on db2 took {acquired2:?}; call -> first client on db2: {first_client2:?}; \
         whole move (3 calls) -> client on db2: {:?}",
        t_move.elapsed()
    );
    assert!(first_client2 < Duration::from_secs(1), "{first_client2:?}");

    // db3 now replicates from db2 with GTID.
    let sys3 = a3
        .get_system_status(GetSystemStatusRequest {
            protocol_version: PROTOCOL_VERSION,
        })
        .await
        .unwrap()
        .into_inner();
    let rep = sys3.replication.unwrap();
    assert_eq!(rep.source_host, ip2.to_string());
    assert!(rep.using_gtid, "{rep:?}");
    assert_eq!(sys3.flavor, "mariadb");
    assert_eq!(sys3.vips, vec![rvips[0].to_string()]);

    // Writes continue on db2; no row is lost or duplicated anywhere.
    insert_rows(&lab, wvip, 51..=100).await;
    let expected: Vec<u32> = (1..=100).collect();
    for h in ["db1", "db2", "db3"] {
        wait_until(
            &format!("{h} to have all 100 rows"),
            Duration::from_secs(15),
            || async { rows(&lab, h).await.len() == 100 },
        )
        .await;
        let r = rows(&lab, h).await;
        assert_eq!(
            r.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            expected,
            "{h}"
        );
        assert!(
            r.iter()
                .all(|(id, origin)| *origin == if *id <= 50 { 1 } else { 2 }),
            "{h}: {r:?}"
        );
    }
    lab.wait_replication_running(Duration::from_secs(10))
        .await
        .unwrap();

    // Re-assertion: a VIP someone removed comes back; a role VIP not assigned goes away.
    let ns2 = lab.host("db2").ns.clone();
    let iface = lab.host("db2").iface.clone();
    ip_in_ns(&ns2, &["addr", "del", &format!("{wvip}/32"), "dev", &iface]).await;
    ip_in_ns(
        &ns2,
        &["addr", "add", &format!("{}/32", rvips[1]), "dev", &iface],
    )
    .await;
    let back = wait_until(
        "the writer VIP back and the stray reader VIP gone on db2",
        Duration::from_secs(3),
        || async { vips_on(&mut a2.clone()).await == vec![wvip.to_string()] },
    )
    .await;
    println!("re-assertion restored db2's VIPs in {back:?}");

    // A stale epoch is refused, also after the agent restarts.
    let err = a1
        .set_status(
            stamped(
                &mut a1.clone(),
                req("db1", (1, 1), &[("writer", wvip)], "db1", 30_000),
            )
            .await,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(err.message(), "epoch 1-1 is older than accepted 1-2");
    drop(agents.remove(0));
    let _agent1 = spawn_agent(&lab, "db1", &configs, "agent-db1-restarted");
    let mut a1 = connect(ip1).await;
    let err = a1
        .set_status(
            stamped(
                &mut a1.clone(),
                req("db1", (1, 1), &[("writer", wvip)], "db1", 30_000),
            )
            .await,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(err.message(), "epoch 1-1 is older than accepted 1-2");
    let st = a1
        .get_status(GetStatusRequest {
            protocol_version: PROTOCOL_VERSION,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.epoch, Some(Epoch { term: 1, index: 2 }));
    assert!(read_only(&lab, "db1").await);
    assert_eq!(
        server_id_via(&lab, wvip).await,
        Some(2),
        "the stale request moved nothing"
    );
}

/// `host`'s interface index and MAC address (as `ip` prints it).
fn link_of(lab: &Lab, host: &str) -> (u32, String) {
    let h = lab.host(host);
    let out = std::process::Command::new("ip")
        .args(["-n", &h.ns, "-o", "link", "show", &h.iface])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let index = text.split(':').next().unwrap().trim().parse().unwrap();
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC address in {text:?}"))
        .to_string();
    (index, mac)
}

/// The MAC address the test's (root) namespace holds for `ip`, if any.
fn neighbour_mac(ip: Ipv4Addr) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["neigh", "show", &ip.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_string)
}

/// Watches the root namespace's neighbour entry for `vip` until `until`: the first time it names
/// `wrong_mac`, as an error.
async fn neighbour_never_names(
    vip: Ipv4Addr,
    wrong_mac: &str,
    until: Instant,
) -> Result<(), String> {
    let started = Instant::now();
    while Instant::now() < until {
        if neighbour_mac(vip).as_deref() == Some(wrong_mac) {
            return Err(format!(
                "{vip} resolved to {wrong_mac} {:?} into the watch",
                started.elapsed()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Sends one gratuitous ARP for `ip` from `host`'s interface, as its agent would.
fn announce_from(lab: &Lab, host: &str, ip: Ipv4Addr) {
    use std::os::fd::AsRawFd;
    let (index, mac) = link_of(lab, host);
    let mac: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let mac: [u8; 6] = mac.try_into().unwrap();
    let ns = std::fs::File::open(format!("/run/netns/{}", lab.host(host).ns)).unwrap();
    // A thread of its own enters the namespace, so the test's threads stay where they are.
    std::thread::spawn(move || {
        // SAFETY: setns(2) on an open namespace file; the thread ends right after.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        mmm_agent::garp::send(index, mac, ip).unwrap();
    })
    .join()
    .unwrap();
}

/// The writer VIP goes to db1, and before db1's acquisition announcements are over it moves to db2.
/// Returns when a client reached db2 through it (the test's neighbour entry names db2), with the
/// time db1's announcements end and db1's MAC address.
async fn quick_hand_over(lab: &Lab) -> (Instant, String) {
    let (ip1, ip2) = (lab.host("db1").ip, lab.host("db2").ip);
    let (mut a1, mut a2) = (connect(ip1).await, connect(ip2).await);
    let wvip = lab.writer_vip();
    let acquired1 = Instant::now();
    move_writer(lab, (&mut a2, "db2"), (&mut a1, "db1"), 1).await;
    move_writer(lab, (&mut a1, "db1"), (&mut a2, "db2"), 2).await;
    wait_server_via(lab, wvip, 2, Duration::from_secs(2)).await;
    let (_, mac2) = link_of(lab, "db2");
    assert_eq!(neighbour_mac(wvip), Some(mac2), "the client reached db2");
    // Every round of db1's acquisition, with room for a slow machine.
    let rounds_over = acquired1
        + Duration::from_millis(200) * mmm_agent::vip::GARP_ROUNDS
        + Duration::from_millis(500);
    assert!(
        Instant::now() + Duration::from_millis(200) < rounds_over,
        "the hand-over ended after db1's announcements: nothing would be seen"
    );
    (rounds_over, link_of(lab, "db1").1)
}

/// Makes `to` the writer at epoch `1-index`: `from` is demoted first (no roles), then `to` gets the
/// writer VIP with a 30 s lease; both must apply without an error.
async fn move_writer(lab: &Lab, from: (&mut Client, &str), to: (&mut Client, &str), index: u64) {
    let (wvip, (old, old_name), (new, new_name)) = (lab.writer_vip(), from, to);
    let st = applied(old, req(old_name, (1, index), &[], new_name, 0)).await;
    assert_eq!(st.last_error, "", "{st:?}");
    let writer = req(new_name, (1, index), &[("writer", wvip)], new_name, 30_000);
    let st = applied(new, writer).await;
    assert_eq!(st.last_error, "", "{st:?}");
}

/// A lab of two hosts with an agent on each.
async fn two_hosts_with_agents() -> (Lab, Vec<LabProcess>) {
    mmm_lab::init_logging();
    let lab = Lab::start(two_hosts()).await.unwrap();
    let configs = lab.write_mmm_configs("").unwrap();
    let agents = ["db1", "db2"]
        .iter()
        .map(|h| spawn_agent(&lab, h, &configs, &format!("agent-{h}")))
        .collect();
    (lab, agents)
}

fn two_hosts() -> LabSpec {
    LabSpec {
        db_hosts: 2,
        monitors: 0,
        semi_sync: false,
        vips: 1,
        clients: 0,
    }
}

/// A VIP given up right after its acquisition is not announced again by the rounds of that
/// acquisition (gratuitous ARP overrides a client's neighbour entry at once: the clients would go
/// back to the old writer and get its resets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lab_a_given_up_vip_is_not_announced_again() {
    let (lab, _agents) = two_hosts_with_agents().await;
    let (until, mac1) = quick_hand_over(&lab).await;
    let wvip = lab.writer_vip();
    neighbour_never_names(wvip, &mac1, until).await.unwrap();
    assert_eq!(server_id_via(&lab, wvip).await, Some(2));
}

/// Negative control of the watch above: one gratuitous ARP from db1 after the hand-over is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lab_a_given_up_vip_announced_again_is_seen() {
    let (lab, _agents) = two_hosts_with_agents().await;
    let (until, mac1) = quick_hand_over(&lab).await;
    let wvip = lab.writer_vip();
    announce_from(&lab, "db1", wvip);
    let seen = neighbour_never_names(wvip, &mac1, until).await;
    assert!(seen.is_err(), "db1's announcement was not seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lab_lease_expiry_and_health_watch() {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 2,
        monitors: 0,
        semi_sync: false,
        vips: 0,
        clients: 0,
    })
    .await
    .unwrap();
    let configs = lab.write_mmm_configs("").unwrap();
    lab.exec("db1", "CREATE USER 'superapp'@'%' IDENTIFIED BY 'x'")
        .await
        .unwrap();
    lab.exec("db1", "GRANT ALL ON *.* TO 'superapp'@'%'")
        .await
        .unwrap();
    let _agent = spawn_agent(&lab, "db1", &configs, "agent-db1");
    let ip1 = lab.host("db1").ip;
    let mut a1 = connect(ip1).await;
    let wvip = lab.writer_vip();

    // A short lease, not renewed.
    let t0 = Instant::now();
    a1.set_status(
        stamped(
            &mut a1.clone(),
            req("db1", (2, 1), &[("writer", wvip)], "db1", 1500),
        )
        .await,
    )
    .await
    .unwrap();
    let reached = wait_server_via(&lab, wvip, 1, Duration::from_secs(1)).await + t0.elapsed();
    println!("lease test: call -> first client through the VIP: {reached:?}");
    let metrics = http_get(ip1, 9991, "/metrics").await;
    assert!(metrics.contains("mmm_agent_writable 1"), "{metrics}");
    assert!(
        metrics.contains("mmm_agent_lease_remaining_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mmm_agent_epoch_accepted_term 2"),
        "{metrics}"
    );
    assert!(http_get(ip1, 9991, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(http_get(ip1, 9991, "/readyz")
        .await
        .starts_with("HTTP/1.1 200"));
    let log = lab.dir().join("logs/agent-db1.log");
    wait_until("the privilege warning", Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("WRITE THROUGH read_only")
            && text.contains("superapp")
            && text.contains("READ_ONLY ADMIN")
    })
    .await;

    wait_until("lease_expired", Duration::from_secs(5), || async {
        a1.clone()
            .get_status(GetStatusRequest {
                protocol_version: PROTOCOL_VERSION,
            })
            .await
            .unwrap()
            .into_inner()
            .lease_expired
    })
    .await;
    let noticed = t0.elapsed();
    println!("lease of 1.5 s expired and was reported {noticed:?} after the call");
    assert!(
        noticed >= Duration::from_millis(1500),
        "lease expired early: {noticed:?}"
    );
    assert!(
        read_only(&lab, "db1").await,
        "expired lease leaves the host read-only"
    );
    assert!(
        vips_on(&mut a1).await.is_empty(),
        "expired lease drops the writer VIP"
    );
    assert_eq!(server_id_via(&lab, wvip).await, None);
    let st = a1
        .get_status(GetStatusRequest {
            protocol_version: PROTOCOL_VERSION,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.lease_remaining_millis, 0);

    // A renewal held up in a partition and delivered after its lease would have run out grants
    // nothing: the lease counts from the agent's own stamp the renewal names, not from its arrival.
    let old = stamped(
        &mut a1,
        req("db1", (2, 1), &[("writer", wvip)], "db1", 1_000),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let st = applied(&mut a1, old).await;
    assert_eq!(st.lease_remaining_millis, 0, "{st:?}");
    assert!(
        read_only(&lab, "db1").await,
        "a spent renewal opens no writes"
    );
    assert_eq!(server_id_via(&lab, wvip).await, None, "nor the writer VIP");

    // A renewal restores it.
    let st = applied(
        &mut a1,
        req("db1", (2, 1), &[("writer", wvip)], "db1", 30_000),
    )
    .await;
    assert!(
        !st.lease_expired && st.lease_remaining_millis > 20_000,
        "{st:?}"
    );
    wait_server_via(&lab, wvip, 1, Duration::from_secs(1)).await;
    assert!(!read_only(&lab, "db1").await);

    // WatchHealth: UP at once, DOWN within a second of kill -9, heartbeats in between.
    let mut stream = a1
        .watch_health(WatchHealthRequest {
            protocol_version: PROTOCOL_VERSION,
            monitor: "test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.mysql, MysqlHealth::Up as i32, "{first:?}");
    assert!(first.writable);
    let beat = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(beat.mysql, MysqlHealth::Up as i32, "heartbeat {beat:?}");
    // Writes closing and opening are streamed when they happen, not with the next heartbeat.
    for (epoch, roles, lease, writable) in [
        ((2, 2), vec![], 0, false),
        ((2, 3), vec![("writer", wvip)], 30_000, true),
    ] {
        let t = Instant::now();
        let st = applied(&mut a1, req("db1", epoch, &roles, "db1", lease)).await;
        assert_eq!(st.last_error, "", "{st:?}");
        let ev = tokio::time::timeout(HEARTBEAT / 2, stream.message())
            .await
            .expect("a health event as soon as writes open or close")
            .unwrap()
            .unwrap();
        assert_eq!(ev.writable, writable, "{ev:?}");
        println!(
            "writable={writable} streamed {:?} after SetStatus",
            t.elapsed()
        );
    }
    let killed = Instant::now();
    lab.kill_mysqld("db1").await.unwrap();
    let down = loop {
        let ev = tokio::time::timeout(Duration::from_secs(3), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if ev.mysql == MysqlHealth::Down as i32 {
            break ev;
        }
    };
    let elapsed = killed.elapsed();
    println!(
        "WatchHealth reported DOWN {elapsed:?} after kill -9 ({})",
        down.detail
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(http_get(ip1, 9991, "/readyz")
        .await
        .starts_with("HTTP/1.1 503"));
    lab.start_mysqld("db1").await.unwrap();
    let restarted = Instant::now();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(3), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if ev.mysql == MysqlHealth::Up as i32 {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "health not UP again"
        );
    }
}

/// A minimal HTTP/1.1 GET (the response as text, status line first).
async fn http_get(ip: Ipv4Addr, port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("HTTP GET timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lab_planned_hand_over_holds_writes_then_kills_the_waiting_sessions() {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 2,
        monitors: 0,
        semi_sync: false,
        vips: 1,
        clients: 0,
    })
    .await
    .unwrap();
    let configs = lab.write_mmm_configs("").unwrap();
    let _agent = spawn_agent(&lab, "db1", &configs, "agent-db1");
    let mut a1 = connect(lab.host("db1").ip).await;
    let wvip = lab.writer_vip();
    let st = applied(
        &mut a1,
        req("db1", (1, 1), &[("writer", wvip)], "db1", 30_000),
    )
    .await;
    assert_eq!(st.last_error, "", "{st:?}");
    wait_server_via(&lab, wvip, 1, Duration::from_secs(1)).await;
    let mut app = lab.connect_ip(wvip, Duration::from_secs(2)).await.unwrap();
    app.query_drop("CREATE TABLE held (id INT PRIMARY KEY)")
        .await
        .unwrap();
    // A privileged session: read_only does not stop it, the hold does.
    let mut root = lab.mysql("db1").await.unwrap();
    root.query_drop("SELECT 1").await.unwrap();

    let hold = |epoch| SetStatusRequest {
        hold_writes: true,
        ..req("db1", epoch, &[], "db2", 0)
    };
    let t = Instant::now();
    let st = applied(&mut a1, hold((1, 2))).await;
    println!("hold taken and read_only set in {:?}", t.elapsed());
    assert_eq!(st.last_error, "", "{st:?}");
    assert!(st.writes_held, "{st:?}");
    assert!(read_only(&lab, "db1").await);
    assert_eq!(
        vips_on(&mut a1).await,
        vec![wvip.to_string()],
        "the writer VIP stays while writes are held (clients wait on their connections)"
    );

    let app_insert =
        tokio::spawn(async move { app.query_drop("INSERT INTO held VALUES (1)").await });
    let root_insert =
        tokio::spawn(async move { root.query_drop("INSERT INTO app.held VALUES (2)").await });
    // The application account is refused at once by read_only (its client retries through the VIP,
    // which still answers); the privileged one, which read_only does not stop, waits on the hold.
    let app = tokio::time::timeout(Duration::from_secs(1), app_insert)
        .await
        .expect("read_only refuses the application at once")
        .unwrap();
    assert!(
        app.as_ref().is_err_and(|e| e.to_string().contains("1290")),
        "{app:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !root_insert.is_finished(),
        "a privileged write waits on the hold"
    );

    // The next status without the hold kills the waiting sessions, then releases the lock.
    let st = applied(&mut a1, req("db1", (1, 3), &[], "db2", 0)).await;
    assert!(!st.writes_held, "{st:?}");
    let r = tokio::time::timeout(Duration::from_secs(2), root_insert)
        .await
        .expect("the held statement ends when the hold is released")
        .unwrap();
    assert!(
        r.is_err(),
        "the privileged session was killed, not allowed to write"
    );
    assert!(
        vips_on(&mut a1).await.is_empty(),
        "the writer VIP goes with the hold"
    );
    let mut c = lab.mysql("db1").await.unwrap();
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM app.held")
        .await
        .unwrap();
    assert_eq!(n, Some(0), "nothing was written during the hold");

    // A host that already refuses writes has none to hold.
    let st = applied(&mut a1, hold((1, 4))).await;
    assert!(
        !st.writes_held,
        "read_only was already set: no writes to hold"
    );

    // A hold nobody releases ends by itself.
    a1.set_status(
        stamped(
            &mut a1.clone(),
            req("db1", (1, 5), &[("writer", wvip)], "db1", 30_000),
        )
        .await,
    )
    .await
    .unwrap();
    assert!(!read_only(&lab, "db1").await);
    let st = applied(&mut a1, hold((1, 6))).await;
    assert!(st.writes_held, "{st:?}");
    let released = wait_until(
        "the hold released without a status",
        mmm_agent::agent::HOLD_LIMIT + Duration::from_secs(3),
        || async {
            !a1.clone()
                .get_status(GetStatusRequest {
                    protocol_version: PROTOCOL_VERSION,
                })
                .await
                .unwrap()
                .into_inner()
                .writes_held
        },
    )
    .await;
    println!("an unreleased hold ended by itself after {released:?}");
    assert!(read_only(&lab, "db1").await, "still refusing writes");
    let _ = c.disconnect().await;
}

/// With `lock_privileged_accounts`, the live agent locks the privileged application accounts when it
/// demotes its server (and kills their sessions), and unlocks them when its server becomes the
/// writer. db2's agent runs without the setting: demoted, the account still writes there through
/// `read_only` (the negative control, in the same lab).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lab_privileged_accounts_locked_at_demotion_and_unlocked_at_promotion() {
    mmm_lab::init_logging();
    let lab = Lab::start(two_hosts()).await.unwrap();
    lab.create_privileged_app_account().await.unwrap();
    let configs = lab.write_mmm_configs("").unwrap();
    let conf1 = configs.agent("db1").unwrap();
    let text = std::fs::read_to_string(conf1).unwrap();
    assert!(text.contains("<agent>\n"), "{text}");
    std::fs::write(
        conf1,
        text.replacen("<agent>\n", "<agent>\n    lock_privileged_accounts 1\n", 1),
    )
    .unwrap();
    let _agents: Vec<LabProcess> = ["db1", "db2"]
        .iter()
        .map(|h| spawn_agent(&lab, h, &configs, &format!("agent-{h}")))
        .collect();
    let (mut a1, mut a2) = (
        connect(lab.host("db1").ip).await,
        connect(lab.host("db2").ip).await,
    );
    let log1 = lab.dir().join("logs").join("agent-db1.log");
    let log = || std::fs::read_to_string(&log1).unwrap_or_default();
    wait_until(
        "db1's agent to learn the privileged accounts",
        Duration::from_secs(10),
        || async { log().contains("privileged accounts: locked wherever") },
    )
    .await;

    // db1 the writer: the account is unlocked there.
    move_writer(&lab, (&mut a2, "db2"), (&mut a1, "db1"), 1).await;
    lab.privileged_write("db1")
        .await
        .expect("the privileged account writes on the writer");
    let mut held = lab
        .connect_as(
            "db1",
            mmm_lab::users::SUPERAPP_USER,
            mmm_lab::users::SUPERAPP_PASSWORD,
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    held.query_drop("SELECT 1").await.unwrap();

    // db1 demoted, db2 the writer: locked on db1, its session killed.
    move_writer(&lab, (&mut a1, "db1"), (&mut a2, "db2"), 2).await;
    assert!(read_only(&lab, "db1").await);
    let e = lab
        .privileged_write("db1")
        .await
        .expect_err("the privileged account is locked on the demoted server");
    assert!(
        format!("{e:#}").contains("locked"),
        "refused as locked: {e:#}"
    );
    assert!(
        held.query_drop("SELECT 1").await.is_err(),
        "the privileged session on the demoted server was killed"
    );
    assert!(
        log().contains("privileged accounts locked (writes are not open here)"),
        "the agent locked them: {}",
        log()
    );

    // Control: db2 (no setting) demoted, db1 the writer again: db2's account writes through
    // read_only; db1's is unlocked.
    move_writer(&lab, (&mut a2, "db2"), (&mut a1, "db1"), 3).await;
    assert!(read_only(&lab, "db2").await);
    lab.privileged_write("db2")
        .await
        .expect("without the setting, the account writes through read_only on the demoted server");
    lab.privileged_write("db1")
        .await
        .expect("unlocked again on the new writer");
}
