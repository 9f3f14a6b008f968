//! The parts of the cluster configuration the agent checks requests against: its own name, the hosts, the
//! roles with their IPs and hosts, and which role is the writer. Kept apart from `mmm_config::Config` so
//! request validation is a pure function tested without config files.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use mmm_config::{Config, RoleMode};

/// One configured role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// The role's VIPs.
    pub ips: Vec<Ipv4Addr>,
    /// Hosts that may hold it.
    pub hosts: Vec<String>,
    /// Exclusive (writer-like) rather than balanced.
    pub exclusive: bool,
}

/// What the agent knows about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// This agent's host name (`this`).
    pub this: String,
    /// Every configured host and its address (active master names are checked against it).
    pub hosts: BTreeMap<String, IpAddr>,
    /// Every configured role by name.
    pub roles: BTreeMap<String, RoleInfo>,
    /// Name of the writer role (`active_master_role`), if any.
    pub writer_role: Option<String>,
}

impl Topology {
    /// Extracts the topology from a loaded configuration.
    pub fn from_config(config: &Config) -> Self {
        Topology {
            this: config.this.clone().unwrap_or_default(),
            hosts: config
                .hosts
                .iter()
                .map(|(n, h)| (n.clone(), h.ip))
                .collect(),
            roles: config
                .roles
                .iter()
                .map(|(n, r)| {
                    (
                        n.clone(),
                        RoleInfo {
                            ips: r.ips.clone(),
                            hosts: r.hosts.clone(),
                            exclusive: r.mode == RoleMode::Exclusive,
                        },
                    )
                })
                .collect(),
            writer_role: config.writer_role().map(|r| r.name.clone()),
        }
    }

    /// Every IP of every configured role: the only addresses the agent ever adds or removes.
    pub fn all_role_ips(&self) -> BTreeSet<Ipv4Addr> {
        self.roles
            .values()
            .flat_map(|r| r.ips.iter().copied())
            .collect()
    }

    /// The writer role's IPs (empty when no writer role is configured).
    pub fn writer_ips(&self) -> BTreeSet<Ipv4Addr> {
        self.writer_role
            .as_ref()
            .and_then(|w| self.roles.get(w))
            .map(|r| r.ips.iter().copied().collect())
            .unwrap_or_default()
    }

    /// True when this host is among the writer role's hosts (the settings check applies to it).
    pub fn may_write(&self) -> bool {
        self.writer_role
            .as_ref()
            .and_then(|w| self.roles.get(w))
            .is_some_and(|r| r.hosts.contains(&self.this))
    }

    /// True when `role` is the writer role.
    pub fn is_writer_role(&self, role: &str) -> bool {
        self.writer_role.as_deref() == Some(role)
    }
}
