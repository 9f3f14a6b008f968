//! The engine's view of the configuration: only what decisions need, in milliseconds.
//!
//! Kept apart from `mmm_config::Config` so the engine (and its tests) do not depend on parsing; the
//! [`From`] impl at the end converts a loaded configuration.

use std::collections::BTreeMap;

use mmm_consensus::Mode;

/// Added to a lease and its fence before an active master its agent has not kept writable is failed
/// over: the writer's health stream beats every 200 ms, so one late heartbeat does not count as a lost
/// writer, and a just-promoted writer has opened long before (it opens on the promotion's push).
pub const UNWRITABLE_MARGIN: std::time::Duration = std::time::Duration::from_millis(1000);
/// A host's configured kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// May hold the writer role; has a peer master.
    Master,
    /// Replica of the active master.
    Slave,
}

/// One configured database host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineHost {
    /// Master or slave: decides who the host's replication peer is.
    pub kind: HostKind,
    /// A master's peer master (the first failover candidate).
    pub peer: Option<String>,
}

/// One configured role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineRole {
    /// Exclusive (one host at a time) or balanced (spread over hosts).
    pub exclusive: bool,
    /// Hosts allowed to hold the role.
    pub hosts: Vec<String>,
    /// The role's IPs in text form (keys of `ClusterState::role_ips`).
    pub ips: Vec<String>,
    /// Preferred host (exclusive roles); active mode moves the role back to it.
    pub prefer: Option<String>,
}

/// How long a failure of each check must last before it counts (MMM's `trap_period`), in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapPeriods {
    /// `ping` trap period.
    pub ping_ms: u64,
    /// `mysql` trap period.
    pub mysql_ms: u64,
    /// `rep_threads` trap period.
    pub rep_threads_ms: u64,
    /// `rep_backlog` trap period.
    pub rep_backlog_ms: u64,
}

impl TrapPeriods {
    /// The trap period of the check called `name` (unknown names: 0, i.e. no trap).
    pub fn get(&self, name: &str) -> u64 {
        match name {
            "ping" => self.ping_ms,
            "mysql" => self.mysql_ms,
            "rep_threads" => self.rep_threads_ms,
            "rep_backlog" => self.rep_backlog_ms,
            _ => 0,
        }
    }
}

/// Everything the decision engine reads from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Database hosts by name.
    pub hosts: BTreeMap<String, EngineHost>,
    /// Roles by name.
    pub roles: BTreeMap<String, EngineRole>,
    /// `active_master_role`: the role moved only through the committed failover steps.
    pub writer_role: Option<String>,
    /// Mode a brand-new cluster starts in (`<monitor> mode`).
    pub initial_mode: Mode,
    /// Window for counting drops from ONLINE (`flap_duration`).
    pub flap_duration_ms: u64,
    /// Drops tolerated within the window before a host is flapping (`flap_count`).
    pub flap_count: u32,
    /// Time in AWAITING_RECOVERY before automatic ONLINE; 0 = off (`auto_set_online`).
    pub auto_set_online_ms: u64,
    /// Refuse to guess when several hosts look like the writer at startup (`careful_startup`).
    pub careful_startup: bool,
    /// Fail over away from a writer last seen running without semi-sync acknowledgements, saying so
    /// (`async_failover 1`), or go PASSIVE instead (`0`).
    pub async_failover: bool,
    /// Save, undo and rejoin an old master's errant transactions when they were never acknowledged
    /// (`auto_rejoin_errant`).
    pub auto_rejoin_errant: bool,
    /// Wait mode: how long one ONLINE master waits for the other (`wait_for_other_master`).
    pub wait_for_other_master_ms: u64,
    /// Per-check trap periods.
    pub trap: TrapPeriods,
    /// A monitor's report older than this is ignored (it is not evidence any more).
    pub report_ttl_ms: u64,
    /// Length of the writer lease granted to the writer's agent.
    pub writer_lease_ms: u64,
    /// Added to a lease's end before it is trusted as expired: RPC timeout plus clock allowance.
    pub lease_margin_ms: u64,
    /// The active master whose agent has not kept it writable this long is lost: its lease cannot have
    /// been renewed into a writable server, the fence in mysqld denies writes, and only another writer
    /// restores them. A lease plus the fence (with their margins) plus [`UNWRITABLE_MARGIN`]: starting
    /// the failover then costs no availability (the writer is closed already), and its first step still
    /// waits until the lease has *certainly* ended, so safety does not depend on this value.
    pub writer_unwritable_after_ms: u64,
    /// Whether `kill_host_bin` is configured (fencing of last resort for an unreachable old writer).
    pub kill_host_configured: bool,
    /// How long the failover candidate may take to apply its relay log before the move is abandoned.
    pub catch_up_timeout_ms: u64,
    /// An outage shorter than this (by agent uptime, no reboot) allows AWAITING_RECOVERY → ONLINE (MMM: 60 s).
    pub short_outage_ms: u64,
    /// The peer must have been ONLINE this long before replication failures count (MMM: 60 s).
    pub peer_online_min_ms: u64,
    /// A fresh random cluster id this monitor proposes when the replicated state has none yet (a new
    /// cluster, or one from before ids). Drawn here, by the proposer, because applying a command must
    /// be deterministic; only the first one committed is kept. Empty: propose none (tests).
    pub new_cluster_id: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hosts: BTreeMap::new(),
            roles: BTreeMap::new(),
            writer_role: None,
            initial_mode: Mode::Active,
            flap_duration_ms: 3_600_000,
            flap_count: 3,
            auto_set_online_ms: 0,
            careful_startup: true,
            async_failover: true,
            auto_rejoin_errant: false,
            wait_for_other_master_ms: 120_000,
            trap: TrapPeriods {
                ping_ms: 2_000,
                mysql_ms: 2_000,
                rep_threads_ms: 2_000,
                rep_backlog_ms: 2_000,
            },
            report_ttl_ms: 3_000,
            writer_lease_ms: 3_000,
            lease_margin_ms: 1_000,
            writer_unwritable_after_ms: 5_000,
            kill_host_configured: false,
            catch_up_timeout_ms: 30_000,
            short_outage_ms: 60_000,
            peer_online_min_ms: 60_000,
            new_cluster_id: String::new(),
        }
    }
}

/// A new random cluster id: 128 bits from the operating system's generator, as 32 lower-case hex
/// digits ([`mmm_proto::is_cluster_id`]).
pub fn random_cluster_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl EngineConfig {
    /// The writer role's configuration, if an `active_master_role` is set and defined.
    pub fn writer(&self) -> Option<(&str, &EngineRole)> {
        let name = self.writer_role.as_deref()?;
        self.roles.get(name).map(|r| (name, r))
    }

    /// Whether `role` is the writer role.
    pub fn is_writer_role(&self, role: &str) -> bool {
        self.writer_role.as_deref() == Some(role)
    }

    /// The role an IP belongs to.
    pub fn role_of_ip(&self, ip: &str) -> Option<(&str, &EngineRole)> {
        self.roles
            .iter()
            .find(|(_, r)| r.ips.iter().any(|i| i == ip))
            .map(|(n, r)| (n.as_str(), r))
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&mmm_config::Config> for EngineConfig {
    fn from(c: &mmm_config::Config) -> Self {
        use mmm_config::{HostMode, ModeSetting, RoleMode};
        let hosts = c
            .hosts
            .iter()
            .map(|(name, h)| {
                let kind = match h.mode {
                    HostMode::Master => HostKind::Master,
                    HostMode::Slave => HostKind::Slave,
                };
                (
                    name.clone(),
                    EngineHost {
                        kind,
                        peer: h.peer.clone(),
                    },
                )
            })
            .collect();
        let roles = c
            .roles
            .iter()
            .map(|(name, r)| {
                let role = EngineRole {
                    exclusive: r.mode == RoleMode::Exclusive,
                    hosts: r.hosts.clone(),
                    ips: r.ips.iter().map(|ip| ip.to_string()).collect(),
                    prefer: r.prefer.clone(),
                };
                (name.clone(), role)
            })
            .collect();
        let m = &c.monitor;
        let k = &c.checks;
        let periods = [k.ping, k.mysql, k.rep_threads, k.rep_backlog];
        let longest_period = periods
            .iter()
            .map(|p| ms(p.check_period))
            .max()
            .unwrap_or(1_000);
        let longest_timeout = periods.iter().map(|p| ms(p.timeout)).max().unwrap_or(1_000);
        EngineConfig {
            hosts,
            roles,
            writer_role: c.active_master_role.clone(),
            initial_mode: match m.mode {
                ModeSetting::Active => Mode::Active,
                ModeSetting::Manual => Mode::Manual,
                ModeSetting::Wait => Mode::Wait,
                ModeSetting::Passive => Mode::Passive,
            },
            flap_duration_ms: ms(m.flap_duration),
            flap_count: m.flap_count,
            auto_set_online_ms: ms(m.auto_set_online),
            careful_startup: m.careful_startup,
            async_failover: m.async_failover,
            auto_rejoin_errant: m.auto_rejoin_errant,
            wait_for_other_master_ms: ms(m.wait_for_other_master),
            trap: TrapPeriods {
                ping_ms: ms(k.ping.trap_period),
                mysql_ms: ms(k.mysql.trap_period),
                rep_threads_ms: ms(k.rep_threads.trap_period),
                rep_backlog_ms: ms(k.rep_backlog.trap_period),
            },
            // A report missing for three rounds (plus one check timeout) is stale.
            report_ttl_ms: 3 * longest_period + longest_timeout,
            writer_lease_ms: ms(m.writer_lease),
            // The margins of `crate::lease` (clock rates, the predecessor's renewals, the fence).
            lease_margin_ms: ms(
                crate::lease::LeaseBounds::new(m.writer_lease).after_leadership_start()
            )
            .saturating_sub(ms(m.writer_lease)),
            writer_unwritable_after_ms: ms(crate::lease::LeaseBounds::new(m.writer_lease)
                .after_own_renewal()
                + UNWRITABLE_MARGIN),
            kill_host_configured: m.kill_host_bin.is_some(),
            new_cluster_id: random_cluster_id(),
            ..EngineConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_seed_configuration() {
        let c = crate::test_support::seed_monitor_config();
        let e = EngineConfig::from(&c);
        assert_eq!(e.hosts.len(), 4);
        assert_eq!(e.hosts["db1"].kind, HostKind::Master);
        assert_eq!(e.hosts["db1"].peer.as_deref(), Some("db2"));
        assert_eq!(e.hosts["db3"].kind, HostKind::Slave);
        assert_eq!(e.writer_role.as_deref(), Some("writer"));
        let (_, w) = e.writer().expect("writer role");
        assert!(w.exclusive);
        assert_eq!(w.ips, vec!["192.168.17.11".to_string()]);
        assert!(!e.roles["reader"].exclusive);
        assert_eq!(e.roles["reader"].ips.len(), 2);
        assert_eq!(e.auto_set_online_ms, 10_000);
        assert_eq!(e.initial_mode, Mode::Active);
        assert_eq!(
            e.trap.mysql_ms,
            u64::try_from(c.checks.mysql.trap_period.as_millis()).unwrap_or(0)
        );
        assert!(
            e.report_ttl_ms
                >= 3 * u64::try_from(c.checks.ping.check_period.as_millis()).unwrap_or(0)
        );
        assert!(!e.kill_host_configured);
        assert!(
            mmm_proto::is_cluster_id(&e.new_cluster_id),
            "{}",
            e.new_cluster_id
        );
        assert_ne!(
            e.new_cluster_id,
            EngineConfig::from(&c).new_cluster_id,
            "every proposer draws its own"
        );
        assert_eq!(
            e.role_of_ip("192.168.17.12").map(|(n, _)| n),
            Some("reader")
        );
    }
}
