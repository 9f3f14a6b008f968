//! Real `mmm-monitor` processes for the benchmarks that run without a lab (`scale`, `clusters`):
//! start them from configuration files, talk to them (control API, `/metrics`), kill them on drop.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use mmm_proto::monitor_control_client::MonitorControlClient;
use mmm_proto::{HistoryRequest, HostState, ShowRequest, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};

/// Environment variable with the monitors' log filter (default `warn`).
pub const LOG_ENV: &str = "MMM_BENCH_MONITOR_LOG";

/// Monitor processes; killed on drop.
#[derive(Default)]
pub struct Monitors(pub Vec<Child>);

impl Monitors {
    /// Starts `mmm-monitor --config <config>`, its log in `log`.
    pub fn spawn(&mut self, config: &Path, log: &Path) -> anyhow::Result<u32> {
        let bin = mmm_lab::try_workspace_bin("mmm-monitor")?;
        let log =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&bin)
            .arg("--config")
            .arg(config)
            .env(
                "RUST_LOG",
                std::env::var(LOG_ENV).unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting mmm-monitor")?;
        let pid = child.id();
        self.0.push(child);
        Ok(pid)
    }
}

impl Drop for Monitors {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Writes a configuration file readable by its owner only (it holds passwords).
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// A control client of the monitor at `ip:port` (500 ms to connect, 10 s per call).
pub async fn control(ip: Ipv4Addr, port: u16) -> anyhow::Result<MonitorControlClient<Channel>> {
    let ep = Endpoint::from_shared(format!("http://{ip}:{port}"))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(10));
    let ch = tokio::time::timeout(Duration::from_secs(2), ep.connect())
        .await
        .context("connect timed out")??;
    Ok(MonitorControlClient::new(ch))
}

/// Hosts the monitor at `ip:port` shows ONLINE (0 when it cannot be asked).
pub async fn online_hosts(ip: Ipv4Addr, port: u16) -> usize {
    let Ok(mut c) = control(ip, port).await else {
        return 0;
    };
    c.show(ShowRequest {
        protocol_version: PROTOCOL_VERSION,
        extended: false,
    })
    .await
    .map(|r| {
        r.into_inner()
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Online as i32)
            .count()
    })
    .unwrap_or(0)
}

/// The time (ms since the Unix epoch) of the decision that made `host` HARD_OFFLINE at or after
/// `since_ms`, from the history of the monitor at `ip:port`; `None` when there is none (yet).
pub async fn hard_offline_at(ip: Ipv4Addr, port: u16, host: &str, since_ms: i64) -> Option<i64> {
    let mut c = control(ip, port).await.ok()?;
    let r = c
        .history(HistoryRequest {
            protocol_version: PROTOCOL_VERSION,
            limit: 50,
        })
        .await
        .ok()?;
    r.into_inner()
        .decisions
        .into_iter()
        .find(|x| x.host == host && x.to == "HARD_OFFLINE" && x.time_millis >= since_ms)
        .map(|x| x.time_millis)
}

/// GET /metrics of the monitor at `ip:metrics_port`: the sum over hosts of `mysql` check runs.
pub async fn mysql_checks_done(ip: Ipv4Addr, metrics_port: u16) -> anyhow::Result<f64> {
    let run = async {
        let mut s = tokio::net::TcpStream::connect((ip, metrics_port)).await?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: m\r\nConnection: close\r\n\r\n")
            .await?;
        let mut body = String::new();
        s.read_to_string(&mut body).await?;
        anyhow::Ok(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .context("metrics timed out")??;
    Ok(body
        .lines()
        .filter(|l| {
            l.starts_with("mmm_check_duration_seconds_count{") && l.contains("check=\"mysql\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// One monitor cluster of stand-in hosts, as the benchmarks without a lab configure it.
pub struct ClusterFiles<'a> {
    /// Distinguishes this cluster's files in a directory shared with others ("" for one cluster).
    pub tag: &'a str,
    /// The monitors' addresses (`mon1`, `mon2`, … in this order).
    pub monitors: &'a [Ipv4Addr],
    /// The monitors' gRPC and metrics ports.
    pub port: u16,
    pub metrics_port: u16,
    /// The hosts (name, address): the first two are masters and peers, the rest replicas.
    pub hosts: &'a [(String, Ipv4Addr)],
    /// The writer role's IP.
    pub writer_vip: Ipv4Addr,
}

/// Writes `mmm_common<tag>.conf` (check_period 1 s, MMM's trap_period and timeout) and one monitor
/// configuration per monitor into `dir`; returns the latter, `mon1` first.
pub fn write_cluster(dir: &Path, c: &ClusterFiles<'_>) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let tag = c.tag;
    let mut s = String::from("active_master_role writer\n");
    s += &format!(
        "<monitor_node default>\n port {}\n metrics_port {}\n</monitor_node>\n",
        c.port, c.metrics_port
    );
    for (k, ip) in c.monitors.iter().enumerate() {
        s += &format!("<monitor_node mon{}>\n ip {ip}\n</monitor_node>\n", k + 1);
    }
    s += "<host default>\n cluster_interface lo\n monitor_user mon\n monitor_password x\n agent_user a\n \
          agent_password x\n replication_user r\n replication_password x\n</host>\n";
    let name = |i: usize| c.hosts.get(i).map_or("", |h| h.0.as_str());
    for (i, (host, ip)) in c.hosts.iter().enumerate() {
        let mode = match i {
            0 => format!("mode master\n peer {}", name(1)),
            1 => format!("mode master\n peer {}", name(0)),
            _ => "mode slave".into(),
        };
        s += &format!("<host {host}>\n ip {ip}\n {mode}\n</host>\n");
    }
    s += &format!(
        "<role writer>\n hosts {}, {}\n ips {}\n mode exclusive\n</role>\n",
        name(0),
        name(1),
        c.writer_vip
    );
    s += "<check default>\n check_period 1\n trap_period 2\n timeout 1\n</check>\n";
    let common = dir.join(format!("mmm_common{tag}.conf"));
    write_private(&common, &s)?;
    let mut out = Vec::new();
    for k in 1..=c.monitors.len() {
        let p = dir.join(format!("mmm_mon{tag}_mon{k}.conf"));
        let text = format!(
            "include {}\nthis mon{k}\n<monitor>\n data_dir {}\n ping_ips 127.0.0.1\n</monitor>\n",
            common.display(),
            dir.join(format!("data{tag}-mon{k}")).display()
        );
        write_private(&p, &text)?;
        out.push(p);
    }
    Ok(out)
}
