//! `mmm-monitor` as systemd runs it: the real binary with a `NOTIFY_SOCKET` of the test's own
//! (a Unix datagram socket) and `WATCHDOG_USEC`: it reports `READY=1` once its listeners are bound,
//! sends `WATCHDOG=1` pings, survives SIGHUP with a log line saying a reload is a rolling restart,
//! reports `STOPPING=1` on SIGTERM, and writes no ANSI colour codes to a stderr that is a pipe
//! (the journal).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the monitor may take to bind its listeners.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The next notification, within `timeout`.
fn recv(sock: &UnixDatagram, timeout: Duration) -> Option<String> {
    sock.set_read_timeout(Some(timeout)).expect("timeout");
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Waits for a notification containing `want`, skipping others, within `timeout`.
fn wait_for(sock: &UnixDatagram, want: &str, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match recv(sock, left.max(Duration::from_millis(1))) {
            Some(m) if m.lines().any(|l| l == want) => return true,
            Some(_) => continue,
            None => return false,
        }
    }
    false
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill {sig}");
}

#[test]
fn notifies_systemd_pings_the_watchdog_and_survives_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, metrics) = (free_port(), free_port());
    let conf = dir.path().join("mmm_mon.conf");
    std::fs::write(
        &conf,
        format!(
            "active_master_role writer\n\
             <monitor>\n ip 127.0.0.1\n port {port}\n metrics_port {metrics}\n data_dir {}\n ping_ips 127.0.0.1\n</monitor>\n\
             <host default>\n monitor_user m\n monitor_password secret\n</host>\n\
             <host db1>\n ip 127.0.0.2\n mode slave\n</host>\n\
             <role writer>\n hosts db1\n ips 127.0.0.100\n mode exclusive\n</role>\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("notify socket");

    let mut child = Command::new(env!("CARGO_BIN_EXE_mmm-monitor"))
        .arg("--config")
        .arg(&conf)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mmm-monitor");
    let pid = child.id();
    let ready = wait_for(&sock, "READY=1", READY_TIMEOUT);
    let pinged = ready && wait_for(&sock, "WATCHDOG=1", Duration::from_secs(5));
    let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    signal(pid, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(700));
    let alive_after_hup = child.try_wait().expect("try_wait").is_none();
    let pinged_after_hup = alive_after_hup && wait_for(&sock, "WATCHDOG=1", Duration::from_secs(5));
    if alive_after_hup {
        signal(pid, libc::SIGTERM);
    }
    let stopping = wait_for(&sock, "STOPPING=1", Duration::from_secs(15));
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(ready, "no READY=1 within {READY_TIMEOUT:?}:\n{err}");
    assert!(listening, "READY=1 came before the gRPC port listened");
    assert!(pinged, "no watchdog ping:\n{err}");
    assert!(alive_after_hup, "SIGHUP killed the monitor:\n{err}");
    assert!(pinged_after_hup, "no watchdog ping after SIGHUP");
    assert!(stopping, "no STOPPING=1 on SIGTERM:\n{err}");
    assert!(
        err.contains("SIGHUP received: mmm-monitor does not reload its configuration")
            && err.contains("rolling restart"),
        "{err}"
    );
    assert!(
        !err.contains('\x1b'),
        "ANSI escape codes in the log:\n{err}"
    );
}
