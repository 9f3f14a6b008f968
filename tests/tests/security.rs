//! Security, end to end, with mutual TLS on (certificates from the real `mmmctl certs init`): the
//! cluster fails over with every connection encrypted and authenticated; a plain-text client, a
//! certificate from another CA, and an agent's certificate acting as a monitor are refused; a
//! replayed SetStatus with an old epoch, and one of another monitor cluster (or none) with the highest
//! epoch, are refused; garbage request bodies get a clear status and
//! the processes live on; passwords appear in no log, `--check-config` output or metrics.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use mmm_lab::cluster::{owner_of_role, MmmCluster};
use mmm_lab::{users, Lab, LabSpec, AGENT_PORT, METRICS_PORT, MONITOR_PORT};
use mmm_proto::agent_client::AgentClient;
use mmm_proto::monitor_peer_client::MonitorPeerClient;
use mmm_proto::raft_client::RaftClient;
use mmm_proto::{
    Epoch, GetStatusRequest, HostState, ObservationReport, PingRequest, RaftRequest,
    SetStatusRequest, PROTOCOL_VERSION,
};
use mmm_tls::{ClientTls, TlsFiles, TlsMaterial};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const SETTLE: Duration = Duration::from_secs(40);

/// A channel to `ip:port` over mutual TLS with `files`, expecting the server to be `name`.
async fn tls_channel(
    ip: IpAddr,
    port: u16,
    files: TlsFiles,
    name: &str,
) -> anyhow::Result<Channel> {
    let tls = ClientTls::new(&TlsMaterial::load(files)?)?;
    let ep = Endpoint::from_shared(format!("http://{ip}:{port}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5));
    Ok(tls.channel(&ep, Some(name)))
}

fn plain_channel(ip: IpAddr, port: u16) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{ip}:{port}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .connect_lazy())
}

/// A codec sending and receiving raw bytes, to put malformed bodies on the wire.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

async fn raw_call(ch: Channel, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Malformed protobuf bodies: bad wire types, truncated varints and lengths, a length far beyond
/// the body, random bytes.
fn garbage() -> Vec<Vec<u8>> {
    let mut out = vec![
        vec![0xff; 16],
        vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        vec![0x12, 0x80],
        vec![0x1a, 0x7f, 0x01],
        vec![
            0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ],
        vec![0x07],
    ];
    let mut x: u32 = 0x9e37_79b9;
    for n in [1usize, 7, 64, 1000] {
        out.push(
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect(),
        );
    }
    out
}

fn assert_clear_refusal(r: Result<Vec<u8>, Status>, what: &str) {
    match r {
        Ok(_) => {} // some garbage happens to decode as a valid (empty) message; then it was validated
        Err(s) => {
            assert!(
                matches!(
                    s.code(),
                    Code::InvalidArgument | Code::Internal | Code::FailedPrecondition
                ),
                "{what}: unexpected status {s:?}"
            );
            assert!(!s.message().is_empty(), "{what}: status without a message");
        }
    }
}

async fn wait_writer(cluster: &MmmCluster<'_>, host: &str) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    cluster
        .wait_show(SETTLE, &format!("writer on {host}"), |s| {
            owner_of_role(s, "writer").as_deref() == Some(host)
                && s.hosts
                    .iter()
                    .any(|h| h.name == host && h.state == HostState::Online as i32)
        })
        .await?;
    Ok(t0.elapsed())
}

fn passwords() -> [&'static str; 5] {
    [
        users::ROOT_PASSWORD,
        users::AGENT_PASSWORD,
        users::MONITOR_PASSWORD,
        users::REPLICATION_PASSWORD,
        users::APP_PASSWORD,
    ]
}

fn assert_no_password(text: &str, what: &str) {
    for p in passwords() {
        assert!(!text.contains(p), "{what} contains the password {p}");
    }
}

async fn http_get(ip: IpAddr, port: u16, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        anyhow::Ok(out)
    };
    tokio::time::timeout(Duration::from_secs(5), work).await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_mutual_tls_lab_refuses_intruders_and_fails_over() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 2,
        monitors: 3,
        semi_sync: false,
        vips: 0,
        clients: 0,
    })
    .await?;
    let mut cluster = MmmCluster::start_with(&lab, "auto_set_online 2", true)?;
    let tls = cluster.configs.tls.clone().expect("TLS lab");
    let t0 = Instant::now();
    cluster.wait_all_online("db1", SETTLE).await?;
    eprintln!("TLS cluster settled in {:?}", t0.elapsed());

    let db1 = IpAddr::V4(lab.host("db1").ip);
    let mon1 = IpAddr::V4(lab.monitor("mon1").ip);

    // mmmctl with the operator's certificate works; without TLS it cannot talk to the monitors.
    let out = cluster.mmmctl(&["show"])?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "mmmctl show over TLS: {text}");
    assert!(text.contains("db1(") && text.contains("writer("), "{text}");
    let addrs = cluster.monitor_addrs();
    let plain = std::process::Command::new(mmm_lab::workspace_bin("mmmctl"))
        .args(addrs.iter().flat_map(|a| ["--monitor", a.as_str()]))
        .arg("ping")
        .output()?;
    assert!(!plain.status.success(), "plain-text mmmctl was let in");
    let plain_out = String::from_utf8_lossy(&plain.stdout);
    // Refused at the handshake: "Can't connect" or, when the TLS server answers the plain HTTP/2
    // preface with an alert, an HTTP/2 error; never an answer.
    assert!(
        plain_out.contains("ERROR") && !plain_out.contains("OK"),
        "plain-text mmmctl: {plain_out}"
    );

    // 1. A plain-text gRPC client is refused by agents and monitors.
    let r = AgentClient::new(plain_channel(db1, AGENT_PORT)?)
        .ping(PingRequest {
            protocol_version: PROTOCOL_VERSION,
        })
        .await;
    assert!(r.is_err(), "plain-text client reached the agent: {r:?}");
    let r = RaftClient::new(plain_channel(mon1, MONITOR_PORT)?)
        .vote(RaftRequest::default())
        .await;
    assert!(r.is_err(), "plain-text client reached the monitor: {r:?}");

    // 2. A certificate from another CA (claiming to be mon1, at mon1's address) is refused, though
    //    the client trusts the real CA.
    let other = tempfile::tempdir()?;
    let rogue_ca = mmm_tls::generate::Authority::new("rogue CA")?;
    let rogue = rogue_ca.issue("mon1", &[mon1])?;
    std::fs::write(other.path().join("mon1.pem"), &rogue.cert)?;
    std::fs::write(other.path().join("mon1.key"), &rogue.key)?;
    let rogue_files = TlsFiles {
        cert: other.path().join("mon1.pem"),
        key: other.path().join("mon1.key"),
        ca: tls.certs.join("ca.pem"),
    };
    let r = AgentClient::new(tls_channel(db1, AGENT_PORT, rogue_files.clone(), "db1").await?)
        .set_status(SetStatusRequest {
            protocol_version: PROTOCOL_VERSION,
            host: "db1".into(),
            epoch: Some(Epoch {
                term: u64::MAX / 2,
                index: 1,
            }),
            state: HostState::AdminOffline as i32,
            ..Default::default()
        })
        .await;
    assert!(
        r.is_err(),
        "a certificate of another CA reached the agent: {r:?}"
    );
    let r = RaftClient::new(tls_channel(mon1, MONITOR_PORT, rogue_files, "mon1").await?)
        .vote(RaftRequest::default())
        .await;
    assert!(
        r.is_err(),
        "a certificate of another CA reached the monitor: {r:?}"
    );

    // 3. An agent's (and the operator's) certificate cannot act as a monitor.
    for cert in ["db2", "operator"] {
        let ch = tls_channel(db1, AGENT_PORT, tls.files(cert), "db1").await?;
        // Ordinary reads are allowed to any certificate of the cluster...
        AgentClient::new(ch.clone())
            .ping(PingRequest {
                protocol_version: PROTOCOL_VERSION,
            })
            .await?;
        // ...SetStatus is not.
        let s = AgentClient::new(ch)
            .set_status(SetStatusRequest {
                protocol_version: PROTOCOL_VERSION,
                host: "db1".into(),
                epoch: Some(Epoch {
                    term: u64::MAX / 2,
                    index: 1,
                }),
                state: HostState::AdminOffline as i32,
                monitor: "mon1".into(),
                ..Default::default()
            })
            .await
            .expect_err("SetStatus from a non-monitor certificate");
        assert_eq!(s.code(), Code::PermissionDenied, "{cert}: {s:?}");
        let ch = tls_channel(mon1, MONITOR_PORT, tls.files(cert), "mon1").await?;
        let s = RaftClient::new(ch.clone())
            .vote(RaftRequest::default())
            .await
            .expect_err("Raft vote from a non-monitor certificate");
        assert_eq!(s.code(), Code::PermissionDenied, "{cert}: {s:?}");
        let s = MonitorPeerClient::new(ch)
            .report_observations(ObservationReport {
                protocol_version: PROTOCOL_VERSION,
                monitor: "mon2".into(),
                network_ok: true,
                hosts: vec![],
            })
            .await
            .expect_err("report from a non-monitor certificate");
        assert_eq!(s.code(), Code::PermissionDenied, "{cert}: {s:?}");
    }

    // 4. A replayed SetStatus with an old epoch, even from a real monitor's certificate, is refused.
    let mon_ch = tls_channel(db1, AGENT_PORT, tls.files("mon1"), "db1").await?;
    let st = AgentClient::new(mon_ch.clone())
        .get_status(GetStatusRequest {
            protocol_version: PROTOCOL_VERSION,
        })
        .await?
        .into_inner();
    let accepted = st.epoch.expect("db1 accepted an epoch");
    assert!(accepted.index > 1, "epoch {accepted:?}");
    // The agent adopted the monitor cluster's id, persisted next to the epoch (`term index id`).
    let epoch_file = lab.dir().join("db1").join("agent").join("epoch");
    let stored = std::fs::read_to_string(&epoch_file)?;
    let cluster_id = stored
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("{} holds a cluster id: {stored:?}", epoch_file.display()))
        .to_string();
    let replay = |epoch: Epoch, cluster_id: &str| SetStatusRequest {
        protocol_version: PROTOCOL_VERSION,
        host: "db1".into(),
        epoch: Some(epoch),
        state: HostState::AdminOffline as i32,
        monitor: "mon1".into(),
        cluster_id: cluster_id.into(),
        ..Default::default()
    };
    let old_epoch = Epoch {
        term: accepted.term,
        index: accepted.index - 1,
    };
    let s = AgentClient::new(mon_ch.clone())
        .set_status(replay(old_epoch, &cluster_id))
        .await
        .expect_err("old epoch accepted");
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert!(s.message().contains("older than accepted"), "{s:?}");
    // Another cluster (or none) cannot fence this one out, however high its epoch.
    let max = Epoch {
        term: u64::MAX,
        index: u64::MAX,
    };
    for other in ["0123456789abcdef0123456789abcdef", ""] {
        let s = AgentClient::new(mon_ch.clone())
            .set_status(replay(max, other))
            .await
            .expect_err("a status of another cluster accepted");
        assert_eq!(s.code(), Code::FailedPrecondition, "{other:?}: {s:?}");
        assert!(s.message().contains(&cluster_id), "{other:?}: {s:?}");
    }
    assert_eq!(
        std::fs::read_to_string(&epoch_file)?
            .split_whitespace()
            .nth(2),
        Some(cluster_id.as_str()),
        "the adopted cluster id is kept"
    );

    // 5. Garbage bodies over real gRPC (with a monitor's certificate, past TLS and authorization):
    //    a clear status every time, and both processes still answer afterwards.
    let mon_to_mon = tls_channel(mon1, MONITOR_PORT, tls.files("mon2"), "mon1").await?;
    for body in garbage() {
        for path in [
            "/mmm.v1.Agent/SetStatus",
            "/mmm.v1.Agent/Ping",
            "/mmm.v1.Agent/GetSystemStatus",
        ] {
            assert_clear_refusal(raw_call(mon_ch.clone(), path, body.clone()).await, path);
        }
        for path in [
            "/mmm.v1.Raft/AppendEntries",
            "/mmm.v1.Raft/Vote",
            "/mmm.v1.Raft/InstallSnapshot",
            "/mmm.v1.MonitorControl/SetOnline",
            "/mmm.v1.MonitorControl/MoveRole",
            "/mmm.v1.MonitorPeer/ReportObservations",
        ] {
            assert_clear_refusal(raw_call(mon_to_mon.clone(), path, body.clone()).await, path);
        }
        // A well-formed RaftRequest whose payload is garbage.
        let s = RaftClient::new(mon_to_mon.clone())
            .append_entries(RaftRequest {
                format_version: 1,
                from: 2,
                payload: body.clone(),
            })
            .await
            .expect_err("garbage Raft payload accepted");
        assert!(
            matches!(s.code(), Code::InvalidArgument | Code::FailedPrecondition),
            "{s:?}"
        );
    }
    AgentClient::new(mon_ch)
        .ping(PingRequest {
            protocol_version: PROTOCOL_VERSION,
        })
        .await?;
    cluster.wait_all_online("db1", SETTLE).await?;

    // 6. With TLS on, the writer still fails over: kill db1's mysqld, the writer moves to db2.
    let t = Instant::now();
    lab.kill_mysqld("db1").await?;
    let took = wait_writer(&cluster, "db2").await?;
    eprintln!(
        "TLS failover: writer on db2 {:?} after mysqld was killed",
        t.elapsed().max(took)
    );

    // 7. No password in --check-config output, in /metrics, or in any process's log.
    for (bin, config) in [
        (
            "mmm-monitor",
            cluster.configs.monitor("mon1")?.to_path_buf(),
        ),
        ("mmm-agent", cluster.configs.agent("db1")?.to_path_buf()),
    ] {
        let out = std::process::Command::new(mmm_lab::workspace_bin(bin))
            .arg("--config")
            .arg(&config)
            .arg("--check-config")
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{bin} --check-config: {text}");
        assert!(
            text.contains("ssl"),
            "{bin} --check-config shows no <socket>: {text}"
        );
        assert_no_password(&text, &format!("{bin} --check-config"));
    }
    let metrics = http_get(mon1, METRICS_PORT, "/metrics").await?;
    assert!(metrics.contains("200 OK"), "{metrics}");
    assert_no_password(&metrics, "monitor /metrics");
    cluster.kill_monitor("mon3")?;
    let mut logs = 0;
    for entry in std::fs::read_dir(lab.dir().join("logs"))? {
        let path = entry?.path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            assert_no_password(&text, &path.display().to_string());
            logs += 1;
        }
    }
    assert!(logs >= 5, "only {logs} logs");
    Ok(())
}

#[test]
fn security_world_readable_password_file_is_refused_with_the_fix() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("mmm_mon.conf");
    std::fs::write(
        &conf,
        format!(
            "active_master_role writer\nthis mon1\n<monitor_node mon1>\n    ip 127.0.0.1\n</monitor_node>\n\
             <host default>\n    cluster_interface lo\n    agent_user a\n    agent_password {}\n    monitor_user m\n    monitor_password {}\n    replication_user r\n    replication_password {}\n</host>\n\
             <host db1>\n    ip 127.0.0.11\n    mode master\n    peer db2\n</host>\n<host db2>\n    ip 127.0.0.12\n    mode master\n    peer db1\n</host>\n\
             <role writer>\n    hosts db1, db2\n    ips 127.0.0.50\n    mode exclusive\n</role>\n<monitor>\n    data_dir {}\n</monitor>\n",
            users::AGENT_PASSWORD,
            users::MONITOR_PASSWORD,
            users::REPLICATION_PASSWORD,
            dir.path().join("data").display()
        ),
    )?;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644))?;
    for bin in ["mmm-monitor", "mmm-agent"] {
        let out = std::process::Command::new(mmm_lab::workspace_bin(bin))
            .arg("--config")
            .arg(&conf)
            .arg("--check-config")
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "{bin} accepted a world-readable password file: {text}"
        );
        assert!(text.contains("world-readable"), "{bin}: {text}");
        assert!(
            text.contains(&format!("chmod 640 {}", conf.display())),
            "{bin}: {text}"
        );
        assert_no_password(&text, bin);
    }
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600))?;
    let out = std::process::Command::new(mmm_lab::workspace_bin("mmm-monitor"))
        .arg("--config")
        .arg(&conf)
        .arg("--check-config")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "mode 600 refused: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("********"),
        "passwords not shown masked: {text}"
    );
    assert_no_password(&text, "--check-config");
    Ok(())
}
