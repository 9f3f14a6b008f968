//! The typed configuration sections (everything but the top-level [`crate::Config`]).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::defaults;
use crate::Secret;

/// `<monitor> mode`: how much the monitor may change on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModeSetting {
    /// Full automation; `prefer` is obeyed.
    Active,
    /// Failed hosts keep their roles; no preference moves.
    Manual,
    /// Like manual until both masters are ONLINE or `wait_for_other_master` passed.
    Wait,
    /// States are evaluated, nothing is changed or sent.
    Passive,
}

impl ModeSetting {
    /// The config word (`active`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ModeSetting::Active => "active",
            ModeSetting::Manual => "manual",
            ModeSetting::Wait => "wait",
            ModeSetting::Passive => "passive",
        }
    }
}

/// `<host> mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostMode {
    /// May hold the writer role; has a `peer` master.
    Master,
    /// Replica of the active master.
    Slave,
}

impl HostMode {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            HostMode::Master => "master",
            HostMode::Slave => "slave",
        }
    }
}

/// `<role> mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleMode {
    /// One IP, held by one host at a time (the writer).
    Exclusive,
    /// Several IPs spread over the role's hosts (readers).
    Balanced,
}

impl RoleMode {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleMode::Exclusive => "exclusive",
            RoleMode::Balanced => "balanced",
        }
    }
}

/// `<socket> type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// No TLS.
    Plain,
    /// Mutual TLS on every gRPC connection.
    Ssl,
}

impl SocketKind {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketKind::Plain => "plain",
            SocketKind::Ssl => "ssl",
        }
    }
}

/// `<monitor>`: settings of the monitor daemon (MMM's keys plus the mmm-rs extensions).
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// MMM's single monitor address; used only when no `<monitor_node>` sections exist.
    pub ip: Option<IpAddr>,
    /// MMM's single monitor port (9988); used with `ip`.
    pub port: u16,
    /// MMM pid file path; accepted for compatibility (we run in the foreground).
    pub pid_path: Option<PathBuf>,
    /// MMM's helper directory; accepted for compatibility.
    pub bin_path: Option<PathBuf>,
    /// MMM's status file; accepted for compatibility (state lives in the Raft log).
    pub status_path: Option<PathBuf>,
    /// How often the monitor's own network check pings `ping_ips`.
    pub ping_interval: Duration,
    /// Addresses the monitor pings to check its own network; if none answers it freezes changes.
    pub ping_ips: Vec<IpAddr>,
    /// Window for counting drops from ONLINE (flapping detection).
    pub flap_duration: Duration,
    /// Drops within `flap_duration` tolerated before a host is flapping.
    pub flap_count: u32,
    /// Time in AWAITING_RECOVERY before automatic ONLINE; `Duration::ZERO` = off.
    pub auto_set_online: Duration,
    /// Program run to kill a host that cannot be demoted (fencing of last resort).
    pub kill_host_bin: Option<PathBuf>,
    /// Keep the previous state on startup instead of trusting the first check round.
    pub careful_startup: bool,
    /// Initial mode of the cluster.
    pub mode: ModeSetting,
    /// Wait mode: how long to wait for the other master.
    pub wait_for_other_master: Duration,
    /// mmm-rs: directory of the sled database (Raft log and state); default `/var/lib/mysql-mmm/<this>`.
    pub data_dir: Option<PathBuf>,
    /// mmm-rs: length of the writer lease given to the agent holding the writer role.
    pub writer_lease: Duration,
    /// mmm-rs: an unplanned failover away from a writer last seen running without semi-synchronous
    /// acknowledgements (its last acknowledged writes may exist on it alone) goes ahead, saying so in the
    /// history and the logs (`1`), or is not made: the cluster goes PASSIVE with the cause (`0`).
    pub async_failover: bool,
    /// mmm-rs: an old master that returns with errant transactions (never acknowledged: it was failed
    /// over while semi-synchronous) has them saved to a file on its host, undone, and rejoins as a
    /// replica of the writer (`1`), or waits for an operator to rebuild it (`0`, the default).
    pub auto_rejoin_errant: bool,
    /// mmm-rs: HTTP port for `/metrics` when running as MMM's single monitor.
    pub metrics_port: u16,
    /// mmm-rs: hook run before a failover (may veto it by failing).
    pub pre_failover: Option<PathBuf>,
    /// mmm-rs: hook run after a failover.
    pub post_failover: Option<PathBuf>,
    /// mmm-rs: hook run after any role change.
    pub post_role_change: Option<PathBuf>,
    /// mmm-rs: the longest a hook may run.
    pub hook_timeout: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            ip: None,
            port: defaults::MONITOR_PORT,
            pid_path: None,
            bin_path: None,
            status_path: None,
            ping_interval: defaults::PING_INTERVAL,
            ping_ips: Vec::new(),
            flap_duration: defaults::FLAP_DURATION,
            flap_count: defaults::FLAP_COUNT,
            auto_set_online: defaults::AUTO_SET_ONLINE,
            kill_host_bin: None,
            careful_startup: defaults::CAREFUL_STARTUP,
            mode: ModeSetting::Active,
            wait_for_other_master: defaults::WAIT_FOR_OTHER_MASTER,
            data_dir: None,
            writer_lease: defaults::WRITER_LEASE,
            async_failover: defaults::ASYNC_FAILOVER,
            auto_rejoin_errant: defaults::AUTO_REJOIN_ERRANT,
            metrics_port: defaults::MONITOR_METRICS_PORT,
            pre_failover: None,
            post_failover: None,
            post_role_change: None,
            hook_timeout: defaults::HOOK_TIMEOUT,
        }
    }
}

/// `<monitor_node NAME>`: one member of the monitor cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorNodeConfig {
    /// The section name; `this` on that monitor names it.
    pub name: String,
    /// Address the other monitors, agents and mmmctl use.
    pub ip: IpAddr,
    /// gRPC port (mmmctl, Raft, reports).
    pub port: u16,
    /// HTTP port for `/metrics` and `/healthz`.
    pub metrics_port: u16,
}

/// `<host NAME>`: one database host and its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The section name, used in `mmm_control` output and by `peer`/`hosts`.
    pub name: String,
    /// Address of the host (MySQL and agent).
    pub ip: IpAddr,
    /// Master (may be the writer) or slave.
    pub mode: HostMode,
    /// A master's peer master.
    pub peer: Option<String>,
    /// Interface the agent adds VIPs to.
    pub cluster_interface: String,
    /// The agent's gRPC port.
    pub agent_port: u16,
    /// MySQL port.
    pub mysql_port: u16,
    /// MySQL account the agent uses (read_only, kill sessions, replication changes).
    pub agent_user: String,
    /// Password of `agent_user`.
    pub agent_password: Secret,
    /// MySQL account the monitors' checks use.
    pub monitor_user: String,
    /// Password of `monitor_user`.
    pub monitor_password: Secret,
    /// Replication account used when a slave is re-pointed.
    pub replication_user: String,
    /// Password of `replication_user`.
    pub replication_password: Secret,
}

/// `<role NAME>`: a set of VIPs placed on hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    /// The section name (`writer`, `reader`).
    pub name: String,
    /// Exclusive (one IP, one host) or balanced.
    pub mode: RoleMode,
    /// Hosts that may hold the role.
    pub hosts: Vec<String>,
    /// The role's VIPs.
    pub ips: Vec<Ipv4Addr>,
    /// Preferred host of an exclusive role (active mode moves the role back to it).
    pub prefer: Option<String>,
}

/// `<check NAME>`: timing of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckConfig {
    /// Interval between two runs.
    pub check_period: Duration,
    /// How long a failure must last before it counts.
    pub trap_period: Duration,
    /// Timeout of one run.
    pub timeout: Duration,
    /// MMM: restart the checker after this many runs (kept for compatibility).
    pub restart_after: u32,
    /// rep_backlog: Seconds_Behind_Master above this is too much.
    pub max_backlog: Duration,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            check_period: defaults::CHECK_PERIOD,
            trap_period: defaults::TRAP_PERIOD,
            timeout: defaults::CHECK_TIMEOUT,
            restart_after: defaults::RESTART_AFTER,
            max_backlog: defaults::MAX_BACKLOG,
        }
    }
}

/// The four checks MMM runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checks {
    /// ICMP reachability.
    pub ping: CheckConfig,
    /// MySQL connect + query.
    pub mysql: CheckConfig,
    /// Replication IO/SQL threads running.
    pub rep_threads: CheckConfig,
    /// Replication backlog below `max_backlog`.
    pub rep_backlog: CheckConfig,
}

impl Checks {
    /// The check names, in MMM's order.
    pub const NAMES: [&'static str; 4] = ["ping", "mysql", "rep_threads", "rep_backlog"];

    /// The check called `name`.
    pub fn get(&self, name: &str) -> Option<&CheckConfig> {
        match name {
            "ping" => Some(&self.ping),
            "mysql" => Some(&self.mysql),
            "rep_threads" => Some(&self.rep_threads),
            "rep_backlog" => Some(&self.rep_backlog),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut CheckConfig> {
        match name {
            "ping" => Some(&mut self.ping),
            "mysql" => Some(&mut self.mysql),
            "rep_threads" => Some(&mut self.rep_threads),
            "rep_backlog" => Some(&mut self.rep_backlog),
            _ => None,
        }
    }
}

/// `<socket>`: transport security of every gRPC connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// Plain or mutual TLS.
    pub kind: SocketKind,
    /// This node's certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// This node's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// CA that signs every peer's certificate (PEM).
    pub ca_file: Option<PathBuf>,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            kind: SocketKind::Plain,
            cert_file: None,
            key_file: None,
            ca_file: None,
        }
    }
}

/// `<agent>` (mmm-rs): settings of the agent daemon itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Where the agent persists its fencing epoch; default `/var/lib/mysql-mmm/agent-<this>`.
    pub state_dir: Option<PathBuf>,
    /// HTTP port for the agent's `/metrics` and its role endpoints (`/writer`, `/reader`, `/health`).
    pub metrics_port: u16,
    /// Program run on this DB host whenever the roles the agent was given change (to update a proxy
    /// such as ProxySQL that cannot follow VIPs); `None` runs nothing.
    pub role_change_hook: Option<PathBuf>,
    /// Bound on one run of `role_change_hook`: past it the hook's whole process group is killed, so a
    /// hung proxy client cannot hold up the next role change's run.
    pub role_change_hook_timeout: Duration,
    /// `kill_stalled_mysqld`: kill -9 the local mysqld when it may still accept writes after the writer
    /// lease ended and neither the agent nor the fence inside mysqld could deny them (a stalled server).
    /// On by default: without it, a writer whose mysqld stalls may accept writes after the new one opened.
    pub kill_stalled_mysqld: bool,
    /// `catch_up_from_peers`: a failover candidate that lacks transactions another verified host has
    /// (the old writer could not tell it its last position) fetches them from that host before it
    /// opens. On by default: without it, writes acknowledged by another replica's semi-sync ack can
    /// be lost by a failover to a candidate that had not received them.
    pub catch_up_from_peers: bool,
    /// `lock_privileged_accounts`: application accounts that write through `read_only` (`READ_ONLY
    /// ADMIN`, `SUPER` before MariaDB 10.11: the accounts the agent warns about) may log in only where
    /// writes are open: they are `ACCOUNT LOCK`ed on this server (not replicated) whenever it is not the
    /// open writer, and the fence in mysqld locks them too when a lease runs out without the agent. Off by
    /// default: it also locks administrators who log in with such an account from the network.
    pub lock_privileged_accounts: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            state_dir: None,
            metrics_port: defaults::AGENT_METRICS_PORT,
            role_change_hook: None,
            role_change_hook_timeout: defaults::HOOK_TIMEOUT,
            kill_stalled_mysqld: true,
            catch_up_from_peers: true,
            lock_privileged_accounts: false,
        }
    }
}
