//! The agent in-process on port 0, without a lab: fencing survives a restart, bad requests are refused with
//! the field named, a status of another monitor cluster is refused until `--forget-cluster`, and
//! `--check-config` validates, masks passwords and warns about plain text. mysqld is deliberately unreachable
//! (127.0.0.1:1) and no roles are given, so nothing on the machine is changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mmm_agent::Listeners;
use mmm_proto::agent_client::AgentClient;
use mmm_proto::{
    Epoch, GetStatusRequest, HostState, PingRequest, RoleIp, SetStatusRequest, PROTOCOL_VERSION,
};
use tokio::net::TcpListener;

fn write_config(dir: &Path) -> PathBuf {
    write_config_with(dir, "", "")
}

/// The test configuration with `db1_extra` added to `<host db1>` and `extra` at the end.
fn write_config_with(dir: &Path, db1_extra: &str, extra: &str) -> PathBuf {
    let text = format!(
        "active_master_role writer\n\
         this db1\n\
         <monitor_node mon1>\n    ip 127.0.0.1\n</monitor_node>\n\
         <host default>\n    cluster_interface lo\n    mysql_port 1\n    agent_user a\n    agent_password s3cretpw\n    \
         monitor_user m\n    monitor_password mpw\n    replication_user r\n    replication_password rpw\n</host>\n\
         <host db1>\n    ip 127.0.0.1\n    mode master\n    peer db2\n{db1_extra}</host>\n\
         <host db2>\n    ip 127.0.0.2\n    mode master\n    peer db1\n</host>\n\
         <role writer>\n    hosts db1, db2\n    ips 192.0.2.100\n    mode exclusive\n</role>\n\
         <role reader>\n    hosts db1, db2\n    ips 192.0.2.101\n    mode balanced\n</role>\n\
         <agent>\n    state_dir {}\n</agent>\n{extra}",
        dir.join("state").display()
    );
    let path = dir.join("mmm_agent.conf");
    std::fs::write(&path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

struct Running {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(config: &Path) -> Running {
    let config =
        mmm_config::load(mmm_config::Program::Agent, None, Some(config)).expect("config loads");
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(mmm_agent::run(
        config,
        Listeners {
            grpc,
            metrics: None,
        },
        async move {
            let _ = rx.await;
        },
    ));
    Running { addr, stop, task }
}

async fn client(addr: std::net::SocketAddr) -> AgentClient<tonic::transport::Channel> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match AgentClient::connect(format!("http://{addr}")).await {
            Ok(c) => return c,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("agent not reachable: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn status(term: u64, index: u64) -> SetStatusRequest {
    SetStatusRequest {
        protocol_version: PROTOCOL_VERSION,
        host: "db1".into(),
        epoch: Some(Epoch { term, index }),
        state: HostState::Online as i32,
        roles: vec![],
        active_master: "db2".into(),
        lease_millis: 0,
        monitor: "mon1".into(),
        catchup_timeout_millis: 1000,
        hold_writes: false,
        cluster_id: String::new(),
        ..Default::default()
    }
}

#[tokio::test]
async fn agent_inprocess_fencing_survives_restart_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());

    let a = start(&cfg).await;
    let mut c = client(a.addr).await;
    let ping = c
        .ping(PingRequest {
            protocol_version: PROTOCOL_VERSION,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ping.host, "db1");

    let reply = c
        .set_status(status(4, 2))
        .await
        .expect("first status accepted")
        .into_inner();
    let st = reply.status.unwrap();
    assert_eq!(st.epoch, Some(Epoch { term: 4, index: 2 }));
    // Not the writer: an unreachable mysqld accepts no writes, so the demotion counts as applied
    // (the monitor treats the acknowledgement as "denies writes").
    assert_eq!(
        st.last_error, "",
        "a non-writer status with mysqld down is applied: {st:?}"
    );
    // The writer role, though, cannot be applied without mysqld: the error says so.
    let mut writer = status(4, 2);
    writer.roles = vec![RoleIp {
        role: "writer".into(),
        ip: "192.0.2.100".into(),
    }];
    writer.active_master = "db1".into();
    writer.lease_millis = 3000;
    // The lease counts from a stamp of this agent run, as a leader would echo it.
    writer.lease_stamp = c
        .get_status(mmm_proto::GetStatusRequest {
            protocol_version: mmm_proto::PROTOCOL_VERSION,
        })
        .await
        .expect("status")
        .into_inner()
        .stamp;
    let st = c
        .set_status(writer)
        .await
        .expect("writer status accepted")
        .into_inner()
        .status
        .unwrap();
    assert!(
        st.last_error.contains("mysqld"),
        "mysqld is unreachable, so the writer status is not fully applied: {st:?}"
    );
    c.set_status(status(4, 2))
        .await
        .expect("the same epoch again is accepted");
    let err = c.set_status(status(3, 17)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(err.message(), "epoch 3-17 is older than accepted 4-2");

    // Every kind of bad request, over real gRPC.
    type Breaker = fn(&mut SetStatusRequest);
    let bad: Vec<(&str, Breaker)> = vec![
        ("protocol_version", |r| {
            r.protocol_version = PROTOCOL_VERSION + 1
        }),
        ("host", |r| r.host = "db2".into()),
        ("epoch", |r| r.epoch = None),
        ("state", |r| r.state = 99),
        ("roles[0].role", |r| {
            r.roles = vec![RoleIp {
                role: "nope".into(),
                ip: "192.0.2.100".into(),
            }]
        }),
        ("roles[0].ip", |r| {
            r.roles = vec![RoleIp {
                role: "reader".into(),
                ip: "192.0.2.77".into(),
            }]
        }),
        ("roles[0].ip", |r| {
            r.roles = vec![RoleIp {
                role: "reader".into(),
                ip: "192.0.2.100".into(),
            }]
        }),
        ("roles[0].ip", |r| {
            r.roles = vec![RoleIp {
                role: "reader".into(),
                ip: "x.y".into(),
            }]
        }),
        ("active_master", |r| r.active_master = "db7".into()),
        ("lease_millis", |r| {
            r.roles = vec![RoleIp {
                role: "writer".into(),
                ip: "192.0.2.100".into(),
            }];
            r.active_master = "db1".into();
        }),
    ];
    for (field, breaker) in bad {
        let mut r = status(9, 9);
        breaker(&mut r);
        let err = c.set_status(r).await.expect_err(field);
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().starts_with(&format!("{field}:")),
            "{field}: {}",
            err.message()
        );
    }
    let err = c
        .get_status(GetStatusRequest {
            protocol_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let st = c
        .get_status(GetStatusRequest {
            protocol_version: PROTOCOL_VERSION,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        st.epoch,
        Some(Epoch { term: 4, index: 2 }),
        "bad requests changed nothing"
    );

    let _ = a.stop.send(());
    a.task.await.unwrap().unwrap();

    // After a restart the accepted epoch is still in force.
    let b = start(&cfg).await;
    let mut c = client(b.addr).await;
    let st = c
        .get_status(GetStatusRequest {
            protocol_version: PROTOCOL_VERSION,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.epoch, Some(Epoch { term: 4, index: 2 }));
    let err = c.set_status(status(4, 1)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(err.message(), "epoch 4-1 is older than accepted 4-2");
    c.set_status(status(5, 1))
        .await
        .expect("a newer epoch is accepted");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state/epoch")).unwrap(),
        "5 1\n"
    );
    let _ = b.stop.send(());
    b.task.await.unwrap().unwrap();

    // A corrupt epoch file stops the agent with an error naming the file.
    std::fs::write(dir.path().join("state/epoch"), "garbage").unwrap();
    let c2 = start(&cfg).await;
    let err = c2
        .task
        .await
        .unwrap()
        .expect_err("corrupt epoch file refused");
    assert!(format!("{err:#}").contains("state/epoch"), "{err:#}");
}

#[test]
fn agent_check_config_masks_passwords_and_reports_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmm-agent"))
        .args(["--check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("db1") && stdout.contains("192.0.2.100"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cretpw"), "password leaked: {stdout}");

    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "    mode master\n    peer db2",
        "    mode master\n    ipp 1\n    peer db2",
    );
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmm-agent"))
        .args(["--check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("mmm_agent.conf:") && stderr.contains("ipp"),
        "{stderr}"
    );
}

/// A monitor cluster's id, as the monitors make them.
const CLUSTER_A: &str = "0123456789abcdef0123456789abcdef";
/// The id of a rebuilt monitor cluster.
const CLUSTER_B: &str = "fedcba9876543210fedcba9876543210";

fn status_of(cluster_id: &str, term: u64, index: u64) -> SetStatusRequest {
    SetStatusRequest {
        cluster_id: cluster_id.into(),
        ..status(term, index)
    }
}

/// A port nothing listens on now (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn forget_cluster(config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mmm-agent"))
        .args(["--forget-cluster", "--config"])
        .arg(config)
        .output()
        .expect("run mmm-agent --forget-cluster")
}

#[tokio::test]
async fn agent_inprocess_a_rebuilt_monitor_cluster_is_adopted_only_after_forget_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config_with(dir.path(), &format!("    agent_port {port}\n"), "");
    let epoch_file = dir.path().join("state/epoch");

    // The first cluster's status is adopted; a status of no cluster, of another cluster (even with
    // the highest epoch), is refused after that.
    let a = start(&cfg).await;
    let mut c = client(a.addr).await;
    c.set_status(status(40, 399))
        .await
        .expect("no id before adoption: accepted");
    c.set_status(status_of(CLUSTER_A, 40, 400))
        .await
        .expect("cluster A adopted");
    assert_eq!(
        std::fs::read_to_string(&epoch_file).unwrap(),
        format!("40 400 {CLUSTER_A}\n")
    );
    let err = c
        .set_status(status_of(CLUSTER_B, u64::MAX, u64::MAX))
        .await
        .expect_err("another cluster fences the adopted one out");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    for part in [CLUSTER_A, CLUSTER_B, "--forget-cluster"] {
        assert!(err.message().contains(part), "{part}: {}", err.message());
    }
    let err = c
        .set_status(status(41, 1))
        .await
        .expect_err("a status without id after adoption");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let err = c
        .set_status(status_of("not-an-id", 41, 1))
        .await
        .expect_err("a malformed id");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().starts_with("cluster_id:"), "{err:?}");
    c.set_status(status_of(CLUSTER_A, 40, 400))
        .await
        .expect("the adopted cluster renews");

    // While something answers on the agent's port, --forget-cluster refuses and removes nothing.
    let busy = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the agent port");
    let out = forget_cluster(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stop mmm-agent first"), "{stderr}");
    assert!(epoch_file.exists(), "nothing removed while running");
    drop(busy);
    let _ = a.stop.send(());
    a.task.await.unwrap().unwrap();

    // The rebuilt cluster (new log, low epochs) is refused after a restart as well...
    let b = start(&cfg).await;
    let mut c = client(b.addr).await;
    let err = c
        .set_status(status_of(CLUSTER_B, 1, 5))
        .await
        .expect_err("the rebuilt cluster before --forget-cluster");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let _ = b.stop.send(());
    b.task.await.unwrap().unwrap();

    // ...until the operator runs --forget-cluster, which says what it removes.
    let out = forget_cluster(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "removing {}: epoch 40-400 of monitor cluster {CLUSTER_A}",
            epoch_file.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("adopts the next monitor cluster"),
        "{stdout}"
    );
    assert!(!epoch_file.exists());
    let out = forget_cluster(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("nothing to remove"), "{stdout}");

    let d = start(&cfg).await;
    let mut c = client(d.addr).await;
    let st = c
        .set_status(status_of(CLUSTER_B, 1, 5))
        .await
        .expect("the rebuilt cluster is adopted")
        .into_inner()
        .status
        .unwrap();
    assert_eq!(st.epoch, Some(Epoch { term: 1, index: 5 }));
    let err = c
        .set_status(status_of(CLUSTER_A, 40, 401))
        .await
        .expect_err("the old cluster is now the other one");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        std::fs::read_to_string(&epoch_file).unwrap(),
        format!("1 5 {CLUSTER_B}\n")
    );
    let _ = d.stop.send(());
    d.task.await.unwrap().unwrap();
}

#[test]
fn agent_check_config_warns_about_plain_text_only_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let check = |cfg: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmm-agent"))
            .args(["--check-config", "--config"])
            .arg(cfg)
            .output()
            .expect("run mmm-agent --check-config");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let stderr = check(&write_config(dir.path()));
    assert!(
        stderr.contains("accept unauthenticated commands from anyone who can reach them"),
        "{stderr}"
    );
    assert!(stderr.contains("mmmctl certs init"), "says how: {stderr}");
    // Negative control: with mutual TLS configured there is no warning.
    let tls = format!(
        "<socket>\n    type ssl\n    cert_file {0}/db1.pem\n    key_file {0}/db1.key\n    ca_file {0}/ca.pem\n</socket>\n",
        dir.path().display()
    );
    let stderr = check(&write_config_with(dir.path(), "", &tls));
    assert!(!stderr.contains("unauthenticated"), "{stderr}");
}
