//! MMM configuration files for a lab: `mmm_common.conf`, one `mmm_mon_<mon>.conf` per monitor and one
//! `mmm_agent_<db>.conf` per DB host, in MMM's syntax, mode 600 (MMM refuses readable password files).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

use crate::lab::{HostMode, Lab};
use crate::users;

/// Port of the monitors' gRPC service (Raft, mmmctl, reports).
pub const MONITOR_PORT: u16 = 9988;
/// Port of the monitors' HTTP metrics.
pub const METRICS_PORT: u16 = 9990;
/// Port of the agents' gRPC service.
pub const AGENT_PORT: u16 = 9989;

/// Paths of the files written by [`Lab::write_mmm_configs`].
#[derive(Debug, Clone)]
pub struct LabConfigs {
    /// Directory holding all of them.
    pub dir: PathBuf,
    /// `mmm_common.conf`.
    pub common: PathBuf,
    /// `mmm_mon_<name>.conf` by monitor name.
    pub monitors: BTreeMap<String, PathBuf>,
    /// `mmm_agent_<name>.conf` by DB host name.
    pub agents: BTreeMap<String, PathBuf>,
    /// With mutual TLS: the certificates (`mmmctl certs init`) and mmmctl's config.
    pub tls: Option<LabTls>,
}

/// The TLS set-up of a lab written by [`write_with`] with `tls` on.
#[derive(Debug, Clone)]
pub struct LabTls {
    /// Directory of `ca.pem` and every `<name>.pem` / `<name>.key` (from `mmmctl certs init`).
    pub certs: PathBuf,
    /// `mmmctl.conf`: the common config plus `<socket>` with the operator's certificate.
    pub ctl_config: PathBuf,
}

impl LabTls {
    /// The certificate, key and CA files of node `name` (`operator` for mmmctl).
    pub fn files(&self, name: &str) -> mmm_tls::TlsFiles {
        mmm_tls::TlsFiles {
            cert: self.certs.join(format!("{name}.pem")),
            key: self.certs.join(format!("{name}.key")),
            ca: self.certs.join("ca.pem"),
        }
    }
}

/// The `<socket>` section using node `name`'s certificate in `certs`.
fn socket_section(certs: &Path, name: &str) -> String {
    format!(
        "<socket>\n    type ssl\n    cert_file {d}/{name}.pem\n    key_file {d}/{name}.key\n    ca_file {d}/ca.pem\n</socket>\n",
        d = certs.display()
    )
}

/// Runs the real `mmmctl certs init` on the common config, into `<dir>/certs`.
fn certs_init(dir: &Path, common: &Path) -> anyhow::Result<PathBuf> {
    let certs = dir.join("certs");
    let out = std::process::Command::new(crate::workspace_bin("mmmctl"))
        .arg("--config")
        .arg(common)
        .args(["certs", "init", "--force", "--dir"])
        .arg(&certs)
        .output()
        .context("running mmmctl certs init")?;
    if !out.status.success() {
        anyhow::bail!(
            "mmmctl certs init failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(certs)
}

impl LabConfigs {
    /// The monitor config of `name`, or an error naming it.
    pub fn monitor(&self, name: &str) -> anyhow::Result<&Path> {
        self.monitors
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| anyhow!("no monitor {name} in the lab"))
    }
    /// The agent config of `name`, or an error naming it.
    pub fn agent(&self, name: &str) -> anyhow::Result<&Path> {
        self.agents
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| anyhow!("no DB host {name} in the lab"))
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

/// The text of `mmm_common.conf`.
pub(crate) fn common_conf(lab: &Lab) -> String {
    let mut s = String::from("# mmm_common.conf of an mmm-lab lab\nactive_master_role writer\n\n");
    let _ = writeln!(s, "<monitor_node default>\n    port {MONITOR_PORT}\n    metrics_port {METRICS_PORT}\n</monitor_node>");
    for m in lab.monitors() {
        let _ = writeln!(
            s,
            "<monitor_node {}>\n    ip {}\n</monitor_node>",
            m.name, m.ip
        );
    }
    let _ = writeln!(
        s,
        "\n<host default>\n    cluster_interface {iface}\n    agent_port {AGENT_PORT}\n    mysql_port {port}\n    \
         agent_user {au}\n    agent_password {ap}\n    monitor_user {mu}\n    monitor_password {mp}\n    \
         replication_user {ru}\n    replication_password {rp}\n</host>",
        iface = crate::names::NS_IFACE,
        port = crate::mariadb::MYSQL_PORT,
        au = users::AGENT_USER,
        ap = users::AGENT_PASSWORD,
        mu = users::MONITOR_USER,
        mp = users::MONITOR_PASSWORD,
        ru = users::REPLICATION_USER,
        rp = users::REPLICATION_PASSWORD,
    );
    for h in lab.hosts() {
        let _ = writeln!(s, "<host {}>\n    ip {}", h.name, h.ip);
        match h.mode {
            HostMode::Master => {
                s += "    mode master\n";
                if let Some(peer) = &h.peer {
                    let _ = writeln!(s, "    peer {peer}");
                }
            }
            HostMode::Slave => s += "    mode slave\n",
        }
        s += "</host>\n";
    }
    let masters: Vec<&str> = lab
        .hosts()
        .iter()
        .filter(|h| h.mode == HostMode::Master)
        .map(|h| h.name.as_str())
        .collect();
    let _ = writeln!(
        s,
        "\n<role writer>\n    hosts {}\n    ips {}\n    mode exclusive\n</role>",
        masters.join(", "),
        lab.writer_vip()
    );
    let readers = lab.reader_vips();
    if !readers.is_empty() {
        let hosts: Vec<&str> = lab.hosts().iter().map(|h| h.name.as_str()).collect();
        let ips: Vec<String> = readers.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            s,
            "\n<role reader>\n    hosts {}\n    ips {}\n    mode balanced\n</role>",
            hosts.join(", "),
            ips.join(", ")
        );
    }
    s
}

/// Writes every config file into `<lab dir>/etc`. `extra_monitor_keys` (lines such as `auto_set_online 5`)
/// goes inside each monitor's `<monitor>` section.
pub(crate) fn write(lab: &Lab, extra_monitor_keys: &str) -> anyhow::Result<LabConfigs> {
    write_with(lab, extra_monitor_keys, false)
}

/// [`write`], and with `tls` a CA and certificates from `mmmctl certs init` and a `<socket> type ssl`
/// section in every monitor's and agent's config (mutual TLS on every connection).
pub fn write_with(lab: &Lab, extra_monitor_keys: &str, tls: bool) -> anyhow::Result<LabConfigs> {
    let dir = lab.dir().join("etc");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let common = dir.join("mmm_common.conf");
    write_private(&common, &common_conf(lab))?;
    let certs = if tls {
        Some(certs_init(&dir, &common)?)
    } else {
        None
    };
    let socket = |name: &str| {
        certs
            .as_deref()
            .map(|c| socket_section(c, name))
            .unwrap_or_default()
    };
    let ping_ips: Vec<String> = lab.hosts().iter().map(|h| h.ip.to_string()).collect();
    let extra: String = extra_monitor_keys
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("    {l}\n"))
        .collect();
    let mut monitors = BTreeMap::new();
    for m in lab.monitors() {
        let path = dir.join(format!("mmm_mon_{}.conf", m.name));
        let data_dir = lab.dir().join(&m.name).join("data");
        let text = format!(
            "include {}\nthis {}\n<monitor>\n    data_dir {}\n    ping_ips {}\n{extra}</monitor>\n{}",
            common.display(),
            m.name,
            data_dir.display(),
            ping_ips.join(", "),
            socket(&m.name)
        );
        write_private(&path, &text)?;
        monitors.insert(m.name.clone(), path);
    }
    let mut agents = BTreeMap::new();
    for h in lab.hosts() {
        let path = dir.join(format!("mmm_agent_{}.conf", h.name));
        let state_dir = lab.dir().join(&h.name).join("agent");
        let text = format!(
            "include {}\nthis {}\n<agent>\n    state_dir {}\n</agent>\n{}",
            common.display(),
            h.name,
            state_dir.display(),
            socket(&h.name)
        );
        write_private(&path, &text)?;
        agents.insert(h.name.clone(), path);
    }
    let tls = match certs {
        Some(certs) => {
            let ctl_config = dir.join("mmmctl.conf");
            write_private(
                &ctl_config,
                &format!(
                    "include {}\n{}",
                    common.display(),
                    socket_section(&certs, "operator")
                ),
            )?;
            Some(LabTls { certs, ctl_config })
        }
        None => None,
    };
    Ok(LabConfigs {
        dir,
        common,
        monitors,
        agents,
        tls,
    })
}
