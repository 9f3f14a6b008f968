//! The real `mmmctl` binary end to end: against a tiny in-test gRPC MonitorControl server on
//! 127.0.0.1 with canned replies (show, checks, streaming move_role, refusals and their exit
//! codes), against a closed port (no monitor), and with bad command lines.

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use mmm_proto::monitor_control_server::{MonitorControl, MonitorControlServer};
use mmm_proto::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::Notify;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

const BIN: &str = env!("CARGO_BIN_EXE_mmmctl");

fn golden(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    std::fs::read_to_string(path).unwrap()
}

/// Canned replies; `release_done` holds back the last message of a move until the test saw the
/// first steps on mmmctl's stdout.
struct Canned {
    /// Released by the test once it saw the first step.
    release_done: Arc<Notify>,
}

fn role(role: &str, ip: &str) -> RoleIp {
    RoleIp {
        role: role.into(),
        ip: ip.into(),
    }
}

#[tonic::async_trait]
impl MonitorControl for Canned {
    async fn ping(&self, r: Request<ControlPing>) -> Result<Response<CommandReply>, Status> {
        assert_eq!(r.get_ref().protocol_version, PROTOCOL_VERSION);
        Ok(Response::new(CommandReply {
            ok: true,
            message: "OK: Pinged successfully!".into(),
        }))
    }

    async fn show(&self, _: Request<ShowRequest>) -> Result<Response<ShowReply>, Status> {
        let h = |name: &str, ip: &str, mode: &str, state: HostState, roles, agent| HostView {
            name: name.into(),
            ip: ip.into(),
            mode: mode.into(),
            state: state as i32,
            roles,
            agent_reachable: agent,
            errant_gtids: String::new(),
            ..Default::default()
        };
        Ok(Response::new(ShowReply {
            mode: Mode::Active as i32,
            passive_cause: String::new(),
            hosts: vec![
                h(
                    "db3",
                    "192.168.0.33",
                    "slave",
                    HostState::Online,
                    vec![role("reader", "192.168.0.53")],
                    true,
                ),
                h(
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
                h(
                    "db4",
                    "192.168.0.34",
                    "slave",
                    HostState::HardOffline,
                    vec![],
                    false,
                ),
                h(
                    "db1",
                    "192.168.0.31",
                    "master",
                    HostState::AwaitingRecovery,
                    vec![],
                    true,
                ),
            ],
            preferences: vec![RolePreference {
                role: "writer".into(),
                preferred_host: "db1".into(),
                current_host: "db2".into(),
            }],
            active_master: "db2".into(),
            ..Default::default()
        }))
    }

    async fn checks(&self, r: Request<ChecksRequest>) -> Result<Response<ChecksReply>, Status> {
        let r = r.into_inner();
        if r.host == "dbx" {
            return Err(Status::not_found("Unknown host name 'dbx'!"));
        }
        let t = 1_795_755_601;
        let c = |host: &str, check: &str, ok, t, msg: &str| CheckView {
            host: host.into(),
            check: check.into(),
            ok,
            last_change: t,
            message: msg.into(),
        };
        let mut checks = vec![
            c("db1", "ping", true, t, ""),
            c("db1", "mysql", true, t, ""),
            c("db1", "rep_threads", true, t, ""),
            c("db1", "rep_backlog", true, t, ""),
            c("db10", "ping", true, t + 59, ""),
            c(
                "db10",
                "mysql",
                false,
                t + 3600,
                "Connect error (host = 192.168.0.40:3306, user = mmm_monitor)! Connection refused",
            ),
            c(
                "db10",
                "rep_threads",
                false,
                t + 3600,
                "ERROR: Replication is not set up",
            ),
            c("db10", "rep_backlog", false, t + 86_400, ""),
        ];
        checks.retain(|x| {
            (r.host.is_empty() || r.host == "all" || x.host == r.host)
                && (r.check.is_empty() || r.check == "all" || x.check == r.check)
        });
        Ok(Response::new(ChecksReply {
            checks,
            staleness: None,
        }))
    }

    async fn set_online(&self, r: Request<HostRequest>) -> Result<Response<CommandReply>, Status> {
        let host = r.into_inner().host;
        Ok(Response::new(CommandReply {
            ok: false,
            message: format!("ERROR: Host '{host}' is 'HARD_OFFLINE' at the moment. It can't be switched to ONLINE."),
        }))
    }

    async fn set_offline(&self, _: Request<HostRequest>) -> Result<Response<CommandReply>, Status> {
        Err(Status::unavailable("No quorum: 1 of 3 monitors reachable"))
    }

    async fn get_mode(&self, _: Request<ModeRequest>) -> Result<Response<ModeReply>, Status> {
        Ok(Response::new(ModeReply {
            staleness: None,
            mode: Mode::Manual as i32,
            passive_cause: String::new(),
        }))
    }

    async fn set_mode(&self, r: Request<SetModeRequest>) -> Result<Response<CommandReply>, Status> {
        let m = r.into_inner().mode;
        Ok(Response::new(CommandReply {
            ok: true,
            message: format!(
                "OK: Switched into {} mode.",
                if m == Mode::Passive as i32 {
                    "passive"
                } else {
                    "other"
                }
            ),
        }))
    }

    type MoveRoleStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<MoveRoleProgress, Status>> + Send>>;

    async fn move_role(
        &self,
        r: Request<MoveRoleRequest>,
    ) -> Result<Response<Self::MoveRoleStream>, Status> {
        let r = r.into_inner();
        assert!(r.wait, "mmmctl waits for the whole move");
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let release = Arc::clone(&self.release_done);
        tokio::spawn(async move {
            let e = |i| Some(Epoch { term: 3, index: i });
            let steps = [
                ("move committed: writer db1 -> db2", 41, 4),
                ("writes blocked on db1", 41, 37),
                ("replicas re-pointed to db2", 42, 212),
                ("writer open on db2", 43, 268),
            ];
            for (step, idx, ms) in steps {
                let p = MoveRoleProgress {
                    step: step.into(),
                    epoch: e(idx),
                    elapsed_millis: ms,
                    ..Default::default()
                };
                if tx.send(Ok(p)).await.is_err() {
                    return;
                }
            }
            // The last message waits until the test has seen the steps printed.
            let _ = tokio::time::timeout(Duration::from_secs(10), release.notified()).await;
            let _ = tx
                .send(Ok(MoveRoleProgress {
                    done: true,
                    ok: true,
                    elapsed_millis: 270,
                    message: "OK: Role 'writer' has been moved from 'db1' to 'db2'. Now you can wait some time and check new roles info!".into(),
                    writes_blocked_millis: 231,
                    ..Default::default()
                }))
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn set_ip(&self, _: Request<SetIpRequest>) -> Result<Response<CommandReply>, Status> {
        Ok(Response::new(CommandReply {
            ok: false,
            message: "ERROR: This command is only allowed in passive mode".into(),
        }))
    }

    async fn cluster_status(
        &self,
        _: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusReply>, Status> {
        Ok(Response::new(ClusterStatusReply {
            node_id: 1,
            node_name: "mon1".into(),
            leader_id: 1,
            leader_name: "mon1".into(),
            term: 2,
            commit_index: 7,
            applied_index: 7,
            members: vec![],
            has_quorum: true,
            cluster_id: String::new(),
        }))
    }

    async fn history(&self, r: Request<HistoryRequest>) -> Result<Response<HistoryReply>, Status> {
        let n = r.into_inner().limit;
        let decisions = (0..n.min(3))
            .map(|i| DecisionView {
                time_millis: 1_795_755_601_000,
                summary: format!("decision {i}"),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(HistoryReply {
            decisions,
            staleness: None,
        }))
    }

    async fn add_monitor(
        &self,
        r: Request<mmm_proto::AddMonitorRequest>,
    ) -> Result<Response<CommandReply>, Status> {
        let r = r.into_inner();
        Ok(Response::new(CommandReply {
            ok: true,
            message: format!("OK: monitor {} ({}) added", r.name, r.addr),
        }))
    }

    async fn remove_monitor(
        &self,
        r: Request<mmm_proto::RemoveMonitorRequest>,
    ) -> Result<Response<CommandReply>, Status> {
        Ok(Response::new(CommandReply {
            ok: false,
            message: format!("ERROR: removing {} would lose quorum", r.into_inner().name),
        }))
    }
}

/// Starts the canned server on 127.0.0.1:0.
async fn server() -> (SocketAddr, Arc<Notify>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let release = Arc::new(Notify::new());
    let svc = MonitorControlServer::new(Canned {
        release_done: Arc::clone(&release),
    });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(l))
            .await
            .unwrap();
    });
    (addr, release)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs mmmctl (TZ=UTC) and returns (exit code, stdout, stderr), within 20 s.
async fn mmmctl(args: &[&str]) -> (i32, String, String) {
    let child = tokio::process::Command::new(BIN)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), child)
        .await
        .expect("mmmctl hung")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn no_monitor_reachable() {
    let port = closed_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let start = std::time::Instant::now();
    let (code, out, _) = mmmctl(&["--monitor", &addr, "--monitor", &addr, "show"]).await;
    assert_eq!(code, 1);
    assert_eq!(out, "ERROR: Can't connect to monitor daemon!\n");
    assert!(start.elapsed() < Duration::from_secs(5));
    let (code, out, _) = mmmctl(&["--monitor", &addr, "ping"]).await;
    assert_eq!(
        (code, out.as_str()),
        (1, "ERROR: Can't connect to monitor daemon!\n")
    );
}

#[tokio::test]
async fn bad_command_lines() {
    let (code, _, err) = mmmctl(&["set_online"]).await;
    assert_eq!(code, 2, "missing argument is a usage error");
    assert!(err.contains("<HOST>"), "{err}");
    let (code, _, err) = mmmctl(&["frobnicate"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("frobnicate"), "{err}");
    let (code, _, err) = mmmctl(&["--timeout", "soon", "show"]).await;
    assert_ne!(code, 0);
    assert!(!err.is_empty());
}

#[tokio::test]
async fn local_commands() {
    let (code, out, _) = mmmctl(&["help"]).await;
    assert_eq!((code, out), (0, golden("help")));
    let (code, out, _) = mmmctl(&[]).await;
    assert_eq!(
        (code, out),
        (0, golden("help")),
        "no command prints the help, as mmm_control"
    );
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = mmmctl(&["completions", shell]).await;
        assert_eq!(code, 0);
        assert!(
            out.contains("set_online") && out.contains("move_role"),
            "{shell}: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_real_grpc_server() {
    let (addr, _) = server().await;
    let m = addr.to_string();
    let closed = format!("127.0.0.1:{}", closed_port());

    // The first monitor is down: the next one answers.
    let (code, out, _) = mmmctl(&["--monitor", &closed, "--monitor", &m, "ping"]).await;
    assert_eq!((code, out.as_str()), (0, "OK: Pinged successfully!\n"));

    let (code, out, _) = mmmctl(&["--monitor", &m, "show"]).await;
    assert_eq!((code, out), (0, golden("show_active")));

    let (code, out, _) = mmmctl(&["--monitor", &m, "checks"]).await;
    assert_eq!(code, 0);
    assert_eq!(out, golden("checks"), "TZ=UTC: local time is UTC here");

    let (code, out, _) = mmmctl(&["--monitor", &m, "checks", "db1", "mysql"]).await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "db1  mysql        [last change: 2026/11/27 05:00:01]  OK\n"
        )
    );

    let (code, out, _) = mmmctl(&["--monitor", &m, "checks", "dbx"]).await;
    assert_eq!(
        (code, out.as_str()),
        (1, "ERROR: Unknown host name 'dbx'!\n")
    );

    let (code, out, _) = mmmctl(&["--monitor", &m, "set_online", "db4"]).await;
    assert_eq!(
        (code, out.as_str()),
        (
            1,
            "ERROR: Host 'db4' is 'HARD_OFFLINE' at the moment. It can't be switched to ONLINE.\n"
        )
    );

    let (code, out, _) = mmmctl(&["--monitor", &m, "set_offline", "db1"]).await;
    assert_eq!(
        (code, out.as_str()),
        (1, "ERROR: No quorum: 1 of 3 monitors reachable\n")
    );

    let (code, out, _) = mmmctl(&["--monitor", &m, "mode"]).await;
    assert_eq!((code, out.as_str()), (0, "MANUAL\n"));
    let (code, out, _) = mmmctl(&["--monitor", &m, "set_passive"]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "OK: Switched into passive mode.\n")
    );
    let (code, out, _) = mmmctl(&["--monitor", &m, "set_ip", "192.168.0.50", "db1"]).await;
    assert_eq!(
        (code, out.as_str()),
        (1, "ERROR: This command is only allowed in passive mode\n")
    );

    let (code, out, _) = mmmctl(&["--monitor", &m, "history", "2"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");

    // --json: the reply as JSON, parsed back.
    let (code, out, _) = mmmctl(&["--monitor", &m, "--json", "show"]).await;
    assert_eq!(code, 0);
    let v: mmmctl::view::ShowView = serde_json::from_str(&out).unwrap();
    assert_eq!(v.hosts[0].name, "db1");
    assert_eq!(v.active_master, "db2");
    let (code, out, _) = mmmctl(&["--monitor", &m, "--json", "cluster"]).await;
    assert_eq!(code, 0);
    let v: mmmctl::view::ClusterView = serde_json::from_str(&out).unwrap();
    assert_eq!((v.leader_name.as_str(), v.term), ("mon1", 2));
    let (code, out, _) = mmmctl(&["--monitor", &m, "--json", "set_online", "db4"]).await;
    assert_eq!(code, 1);
    let v: mmmctl::view::CommandView = serde_json::from_str(&out).unwrap();
    assert!(!v.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_role_streams_steps_as_they_come() {
    let (addr, release) = server().await;
    let mut child = tokio::process::Command::new(BIN)
        .args(["--monitor", &addr.to_string(), "move_role", "writer", "db2"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    // The server holds the final message back: the steps must be printed before it exists.
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut first))
        .await
        .expect("no step printed")
        .unwrap();
    assert_eq!(
        first,
        "[     4 ms] move committed: writer db1 -> db2 (epoch 3.41)\n"
    );
    release.notify_one();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_to_string(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(first + &rest, golden("move_role"));
}

/// Writes `text` as `mmm_mon.conf` (mode 600) in a new temp dir.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mmm_mon.conf");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let p = path.to_string_lossy().into_owned();
    (dir, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_from_the_config() {
    let (addr, _) = server().await;
    let closed = closed_port();

    // MMM's single <monitor> ip/port.
    let (_d1, single) = config_file(&format!(
        "<monitor>\n    ip 127.0.0.1\n    port {}\n</monitor>\n",
        addr.port()
    ));
    let (code, out, err) = mmmctl(&["--config", &single, "ping"]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "OK: Pinged successfully!\n"),
        "{err}"
    );

    // <monitor_node>s: the first is down, the second answers.
    let (_d2, nodes) = config_file(&format!(
        "<monitor_node mon1>\n    ip 127.0.0.1\n    port {closed}\n    metrics_port 1\n</monitor_node>\n\
         <monitor_node mon2>\n    ip 127.0.0.1\n    port {}\n    metrics_port 2\n</monitor_node>\n",
        addr.port()
    ));
    let (code, out, err) = mmmctl(&["--config", &nodes, "mode"]).await;
    assert_eq!((code, out.as_str()), (0, "MANUAL\n"), "{err}");

    // Only the closed one: MMM's error.
    let (_d3, down) = config_file(&format!(
        "<monitor>\n    ip 127.0.0.1\n    port {closed}\n</monitor>\n"
    ));
    let (code, out, _) = mmmctl(&["--config", &down, "show"]).await;
    assert_eq!(
        (code, out.as_str()),
        (1, "ERROR: Can't connect to monitor daemon!\n")
    );

    // A broken config: an error naming the file, exit 1.
    let (_d4, bad) = config_file("<monitor>\n    ipp 127.0.0.1\n</monitor>\n");
    let (code, out, _) = mmmctl(&["--config", &bad, "show"]).await;
    assert_eq!(code, 1);
    assert!(
        out.starts_with("ERROR: ") && out.contains("mmm_mon.conf"),
        "{out}"
    );
}

/// Runs the binary under the name `mmm_control` (a symlink, as the package installs it), with
/// `env` set (TZ=UTC), and returns (exit code, stdout, stderr), within 30 s.
async fn mmm_control(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("mmm_control");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let mut cmd = tokio::process::Command::new(&link);
    cmd.args(args)
        .env("TZ", "UTC")
        .env_remove("RUST_LOG")
        .env_remove("MMMCTL_MONITORS")
        .env_remove("MMMCTL_CONFIG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("mmm_control hung")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mmm_control_mode_keeps_mmms_exit_codes_and_texts() {
    let (addr, release) = server().await;
    let m = addr.to_string();
    let closed = format!("127.0.0.1:{}", closed_port());
    let mons = format!("{closed}, {m}");
    let env = [("MMMCTL_MONITORS", mons.as_str())];

    // ERROR replies exit 0, as MMM's mmm_control did; mmmctl exits 1 on the same reply.
    let (code, out, _) = mmm_control(&["set_online", "db4"], &env).await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "ERROR: Host 'db4' is 'HARD_OFFLINE' at the moment. It can't be switched to ONLINE.\n"
        )
    );
    let (code, _, _) = mmmctl(&["--monitor", &m, "set_online", "db4"]).await;
    assert_eq!(code, 1, "mmmctl keeps its stricter exit code");
    let (code, out, _) = mmm_control(&["checks", "dbx"], &env).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "ERROR: Unknown host name 'dbx'!\n")
    );
    let (code, out, _) = mmm_control(&["set_offline", "db1"], &env).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "ERROR: No quorum: 1 of 3 monitors reachable\n")
    );
    let (code, out, _) = mmm_control(&["set_ip", "192.168.0.50", "db1"], &env).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "ERROR: This command is only allowed in passive mode\n")
    );

    // Output as mmm_control printed it: MMM's role order, the trailing empty line, the padding.
    let (code, out, _) = mmm_control(&["show"], &env).await;
    assert_eq!((code, out), (0, golden("mmm_control_show")));
    let (code, out, _) = mmm_control(&["checks"], &env).await;
    assert_eq!((code, out), (0, golden("mmm_control_checks")));
    let (code, out, _) = mmm_control(&["checks", "all", "mysql"], &env).await;
    assert_eq!((code, out), (0, golden("mmm_control_checks_all_mysql")));
    let (code, out, _) = mmm_control(&["checks", "db1", "mysql"], &env).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "db1  mysql  [last change: 2026/11/27 05:00:01]  OK\n")
    );
    let (code, out, _) = mmm_control(&["ping"], &env).await;
    assert_eq!((code, out.as_str()), (0, "OK: Pinged successfully!\n"));
    let (code, out, _) = mmm_control(&["mode"], &env).await;
    assert_eq!((code, out.as_str()), (0, "MANUAL\n"));
    let (code, out, _) = mmm_control(&["help"], &env).await;
    assert_eq!((code, out), (0, golden("mmm_control_help")));

    // mmmctl's own commands are MMM's invalid commands.
    let (code, out, _) = mmm_control(&["cluster", "add", "mon4", "10.0.0.4:9988"], &env).await;
    assert_eq!((code, out), (0, golden("mmm_control_invalid")));

    // move_role: MMM's one line, no steps.
    release.notify_one();
    let (code, out, _) = mmm_control(&["move_role", "writer", "db2"], &env).await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "OK: Role 'writer' has been moved from 'db1' to 'db2'. Now you can wait some time and check new roles info!\n"
        )
    );

    // The monitors from MMMCTL_CONFIG: MMM's single <monitor>.
    let (_d, conf) = config_file(&format!(
        "<monitor>\n    ip 127.0.0.1\n    port {}\n</monitor>\n",
        addr.port()
    ));
    let (code, out, err) = mmm_control(&["ping"], &[("MMMCTL_CONFIG", conf.as_str())]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "OK: Pinged successfully!\n"),
        "{err}"
    );
    // And mmmctl reads the same variables.
    let (code, out, _) = mmmctl_env(&["mode"], &[("MMMCTL_MONITORS", mons.as_str())]).await;
    assert_eq!((code, out.as_str()), (0, "MANUAL\n"));
    let (code, out, _) = mmmctl_env(&["ping"], &[("MMMCTL_CONFIG", conf.as_str())]).await;
    assert_eq!((code, out.as_str()), (0, "OK: Pinged successfully!\n"));
}

#[tokio::test]
async fn mmm_control_mode_without_a_monitor_or_a_command() {
    let closed = format!("127.0.0.1:{}", closed_port());
    let env = [("MMMCTL_MONITORS", closed.as_str())];
    // No monitor: MMM's message and status 1, even for help and invalid commands.
    for args in [&["show"][..], &["help"][..], &["frobnicate"][..]] {
        let (code, out, _) = mmm_control(args, &env).await;
        assert_eq!(
            (code, out.as_str()),
            (1, "ERROR: Can't connect to monitor daemon!\n"),
            "{args:?}"
        );
    }
    // No command: Perl's die (status 255, stderr).
    let (code, out, err) = mmm_control(&[], &env).await;
    assert_eq!((code, out.as_str()), (255, ""));
    assert!(err.contains("help' for usage information"), "{err}");
    let (code, out, _) = mmm_control(&["--version"], &env).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("mmm_control 2.2.1 "), "{out}");
    // A config MMM refuses: status 255, the error on stderr naming the file.
    let (_d, bad) = config_file("<monitor>\n    ipp 127.0.0.1\n</monitor>\n");
    let (code, out, err) = mmm_control(&["show"], &[("MMMCTL_CONFIG", bad.as_str())]).await;
    assert_eq!((code, out.as_str()), (255, ""));
    assert!(err.contains("mmm_mon.conf") && err.contains("ipp"), "{err}");
}

/// mmmctl with extra environment variables.
async fn mmmctl_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("TZ", "UTC")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("mmmctl hung")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn certs_issue_adds_one_node_to_the_existing_ca() {
    let (_d, conf) = config_file(
        "<monitor_node mon1>\n    ip 127.0.0.1\n    port 1\n    metrics_port 2\n</monitor_node>\n\
         <host default>\n    mode slave\n</host>\n<host db1>\n    ip 10.0.0.11\n</host>\n",
    );
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path().to_string_lossy().into_owned();
    // No CA yet: refused, pointing at certs init.
    let (code, out, _) = mmmctl(&["--config", &conf, "certs", "issue", "db1", "--dir", &dir]).await;
    assert_eq!(code, 1);
    assert!(out.contains("certs init"), "{out}");
    let (code, _, err) = mmmctl(&["--config", &conf, "certs", "init", "--dir", &dir]).await;
    assert_eq!(code, 0, "{err}");
    let ca_before = std::fs::read(certs.path().join("ca.pem")).unwrap();
    // An existing certificate is not replaced without --force.
    let (code, out, _) = mmmctl(&["--config", &conf, "certs", "issue", "db1", "--dir", &dir]).await;
    assert_eq!(code, 1);
    assert!(out.contains("already exists"), "{out}");
    let old = std::fs::read(certs.path().join("db1.pem")).unwrap();
    let (code, out, err) = mmmctl(&[
        "--config", &conf, "certs", "issue", "db1", "--dir", &dir, "--force",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("db1 (10.0.0.11)"), "{out}");
    assert_ne!(std::fs::read(certs.path().join("db1.pem")).unwrap(), old);
    // A node not in the configuration needs --ip; the CA itself is untouched.
    let (code, out, _) = mmmctl(&["--config", &conf, "certs", "issue", "db9", "--dir", &dir]).await;
    assert_eq!(code, 1);
    assert!(out.contains("--ip"), "{out}");
    let (code, out, err) = mmmctl(&[
        "--config",
        &conf,
        "certs",
        "issue",
        "db9",
        "--dir",
        &dir,
        "--ip",
        "10.0.0.19",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(certs.path().join("db9.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read(certs.path().join("ca.pem")).unwrap(),
        ca_before
    );
}
