//! Checks across sections: references between hosts, roles and monitors, duplicate addresses,
//! `this`, and MMM's single-monitor form (turned into a one-node monitor cluster).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::error::ConfigError;
use crate::model::*;
use crate::raw::{Loc, RawConfig};
use crate::schema::SectionKind;
use crate::{Config, Program};

/// Finds where to point an error: the key's line (own section, then its `default`), else the
/// section's opening line.
struct Locator<'a> {
    raw: &'a RawConfig,
    source: &'a Path,
}

impl Locator<'_> {
    fn loc(&self, kind: SectionKind, name: Option<&str>, key: Option<&str>) -> Option<Loc> {
        let sec = match name {
            Some(n) => self.raw.named.get(&kind).and_then(|m| m.get(n)),
            None => self.raw.unique.get(&kind),
        };
        let from_key = key.and_then(|k| {
            sec.and_then(|s| s.keys.get(k))
                .or_else(|| self.raw.template(kind).and_then(|t| t.keys.get(k)))
                .map(|e| e.loc.clone())
        });
        from_key.or_else(|| sec.and_then(|s| s.header().cloned()))
    }

    fn err(
        &self,
        kind: SectionKind,
        name: Option<&str>,
        key: Option<&str>,
        msg: String,
    ) -> ConfigError {
        match self.loc(kind, name, key) {
            Some(l) => ConfigError::at(&l.file, l.line, msg),
            None => ConfigError::in_file(self.source, msg),
        }
    }

    fn global(&self, key: &str, msg: String) -> ConfigError {
        match self.raw.globals.get(key) {
            Some(e) => ConfigError::at(&e.loc.file, e.loc.line, msg),
            None => ConfigError::in_file(self.source, msg),
        }
    }
}

/// Runs every cross-section check, completing `config` (single monitor, inferred writer role).
pub(crate) fn validate(
    config: &mut Config,
    raw: &RawConfig,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) {
    let source = config.source.clone();
    let at = Locator {
        raw,
        source: &source,
    };
    single_monitor(config, &at, errors, warnings);
    check_this(config, &at, errors);
    mmm_leniencies(config, &at, warnings);
    check_hosts(config, &at, errors);
    check_roles(config, &at, errors);
    check_monitor_nodes(config, &at, errors);
    check_active_master_role(config, &at, errors, warnings);
    if config.program == Program::Monitor && config.monitor.status_path.is_some() {
        warnings.push(
            at.err(
                SectionKind::Monitor,
                None,
                Some("status_path"),
                "status_path is not used: mmm-rs keeps host states and roles in the monitor \
             cluster's replicated log under data_dir (MMM's status file could disagree between \
             monitors); nothing is read from or written to this file"
                    .to_owned(),
            ),
        );
    }
    if config.program == Program::Monitor && config.monitor.ping_ips.is_empty() {
        warnings.push(at.err(
            SectionKind::Monitor,
            None,
            None,
            "<monitor> has no ping_ips: the monitor cannot check its own network".to_owned(),
        ));
    }
}

/// MMM's `<monitor> ip/port` without `<monitor_node>` sections: a one-node monitor cluster.
fn single_monitor(
    config: &mut Config,
    at: &Locator<'_>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) {
    let needs_monitor = matches!(config.program, Program::Monitor | Program::Control);
    match (config.monitor_nodes.is_empty(), config.monitor.ip) {
        (true, Some(ip)) => {
            let name = match config.program {
                Program::Monitor => config.this.clone().unwrap_or_else(|| "monitor".to_owned()),
                _ => "monitor".to_owned(),
            };
            config.monitor_nodes.insert(
                name.clone(),
                MonitorNodeConfig {
                    name,
                    ip,
                    port: config.monitor.port,
                    metrics_port: config.monitor.metrics_port,
                },
            );
            config.single_monitor = true;
            if config.program == Program::Monitor {
                warnings.push(at.err(
                    SectionKind::Monitor,
                    None,
                    Some("ip"),
                    "only MMM's single <monitor> ip is configured: running as a one-node monitor \
                     cluster with no redundancy (add <monitor_node NAME> sections for 3 or more)"
                        .to_owned(),
                ));
            }
        }
        (true, None) if needs_monitor => errors.push(ConfigError::in_file(
            at.source,
            "no monitor address: add <monitor_node NAME> sections with 'ip' (or MMM's <monitor> ip)",
        )),
        (false, Some(_)) if config.program == Program::Monitor => warnings.push(at.err(
            SectionKind::Monitor,
            None,
            Some("ip"),
            "<monitor> ip is ignored because <monitor_node> sections exist".to_owned(),
        )),
        _ => {}
    }
}

/// What MMM 2.2.1 loads without complaint but means nothing (or something broken), found in
/// deployed configs: accepted, with a warning saying what MMM did and what mmm-rs does instead.
/// - a host naming itself as its `peer`: MMM then waited for the host itself as its other master;
///   mmm-rs drops that peer.
/// - `prefer` on a balanced role: MMM ignored it; so does mmm-rs (it is dropped).
fn mmm_leniencies(config: &mut Config, at: &Locator<'_>, warnings: &mut Vec<ConfigError>) {
    for (name, h) in config.hosts.iter_mut() {
        if h.peer.as_deref() == Some(name.as_str()) {
            warnings.push(at.err(
                SectionKind::Host,
                Some(name),
                Some("peer"),
                format!(
                    "host '{name}' names itself as its peer: MMM accepted this and then judged \
                     '{name}' against itself; mmm-rs ignores this peer ('{name}' has no peer master)"
                ),
            ));
            h.peer = None;
        }
    }
    for (name, r) in config.roles.iter_mut() {
        if r.mode == RoleMode::Balanced {
            if let Some(p) = r.prefer.take() {
                warnings.push(at.err(
                    SectionKind::Role,
                    Some(name),
                    Some("prefer"),
                    format!(
                        "prefer '{p}' of balanced role '{name}' is ignored, as MMM ignored it \
                         (only an exclusive role has a preferred host)"
                    ),
                ));
            }
        }
    }
}

fn check_this(config: &Config, at: &Locator<'_>, errors: &mut Vec<ConfigError>) {
    let hosts: Vec<&str> = config.hosts.keys().map(String::as_str).collect();
    let nodes: Vec<&str> = config.monitor_nodes.keys().map(String::as_str).collect();
    match config.program {
        Program::Agent => match &config.this {
            None => errors.push(ConfigError::in_file(
                at.source,
                format!(
                    "missing key 'this': the name of this agent's host (one of: {})",
                    hosts.join(", ")
                ),
            )),
            Some(t) if !config.hosts.contains_key(t) => errors.push(at.global(
                "this",
                format!("this '{t}' is not a <host> (hosts: {})", hosts.join(", ")),
            )),
            Some(_) => {}
        },
        Program::Monitor if !config.single_monitor && !config.monitor_nodes.is_empty() => {
            match &config.this {
                None => errors.push(ConfigError::in_file(
                    at.source,
                    format!(
                        "missing key 'this': the name of this monitor (one of: {})",
                        nodes.join(", ")
                    ),
                )),
                Some(t) if !config.monitor_nodes.contains_key(t) => errors.push(at.global(
                    "this",
                    format!(
                        "this '{t}' is not a <monitor_node> (monitor nodes: {})",
                        nodes.join(", ")
                    ),
                )),
                Some(_) => {}
            }
        }
        _ => {}
    }
}

fn check_hosts(config: &Config, at: &Locator<'_>, errors: &mut Vec<ConfigError>) {
    let mut mysql_addr: BTreeMap<(IpAddr, u16), &str> = BTreeMap::new();
    let mut agent_addr: BTreeMap<(IpAddr, u16), &str> = BTreeMap::new();
    for (name, h) in &config.hosts {
        let hk = SectionKind::Host;
        if let Some(peer) = &h.peer {
            if !config.hosts.contains_key(peer) {
                errors.push(at.err(
                    hk,
                    Some(name),
                    Some("peer"),
                    format!("peer '{peer}' of host '{name}' is not a <host>"),
                ));
            }
        }
        if h.ip.is_unspecified() {
            continue; // missing or bad ip: already reported
        }
        let mysql_clash = mysql_addr.insert((h.ip, h.mysql_port), name);
        if let Some(other) = mysql_clash {
            errors.push(at.err(
                hk,
                Some(name),
                Some("ip"),
                format!(
                    "hosts '{other}' and '{name}' have the same ip {} and mysql_port {}",
                    h.ip, h.mysql_port
                ),
            ));
        }
        if let Some(other) = agent_addr.insert((h.ip, h.agent_port), name) {
            if mysql_clash != Some(other) {
                errors.push(at.err(
                    hk,
                    Some(name),
                    Some("agent_port"),
                    format!(
                        "hosts '{other}' and '{name}' have the same ip {} and agent_port {}",
                        h.ip, h.agent_port
                    ),
                ));
            }
        }
    }
}

fn check_roles(config: &Config, at: &Locator<'_>, errors: &mut Vec<ConfigError>) {
    let rk = SectionKind::Role;
    let mut seen_ips: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
    for (name, r) in &config.roles {
        let n = Some(name.as_str());
        for h in &r.hosts {
            if !config.hosts.contains_key(h) {
                errors.push(at.err(
                    rk,
                    n,
                    Some("hosts"),
                    format!("host '{h}' of role '{name}' is not a <host>"),
                ));
            }
        }
        let has_key = |k: &str| {
            at.raw
                .named
                .get(&rk)
                .and_then(|m| m.get(name))
                .is_some_and(|s| s.keys.contains_key(k))
        };
        if r.hosts.is_empty() && has_key("hosts") {
            errors.push(at.err(
                rk,
                n,
                Some("hosts"),
                format!("role '{name}' has an empty host list"),
            ));
        }
        if r.ips.is_empty() && has_key("ips") {
            errors.push(at.err(
                rk,
                n,
                Some("ips"),
                format!("role '{name}' has an empty IP list"),
            ));
        }
        if r.mode == RoleMode::Exclusive && r.ips.len() > 1 {
            errors.push(at.err(
                rk,
                n,
                Some("ips"),
                format!(
                    "exclusive role '{name}' has {} IPs; an exclusive role has exactly one (use mode balanced for several)",
                    r.ips.len()
                ),
            ));
        }
        if let Some(p) = &r.prefer {
            if !r.hosts.contains(p) {
                errors.push(at.err(
                    rk,
                    n,
                    Some("prefer"),
                    format!(
                        "preferred host '{p}' of role '{name}' is not among its hosts ({})",
                        r.hosts.join(", ")
                    ),
                ));
            }
        }
        for ip in &r.ips {
            if let Some(other) = seen_ips.insert(*ip, name) {
                let msg = if other == name {
                    format!("IP {ip} is listed twice in role '{name}'")
                } else {
                    format!("IP {ip} is used by roles '{other}' and '{name}'")
                };
                errors.push(at.err(rk, n, Some("ips"), msg));
            }
            let v = IpAddr::V4(*ip);
            for h in config.hosts.values().filter(|h| h.ip == v) {
                errors.push(at.err(
                    rk,
                    n,
                    Some("ips"),
                    format!(
                        "IP {ip} of role '{name}' is the address of host '{}'",
                        h.name
                    ),
                ));
            }
            for m in config.monitor_nodes.values().filter(|m| m.ip == v) {
                errors.push(at.err(
                    rk,
                    n,
                    Some("ips"),
                    format!(
                        "IP {ip} of role '{name}' is the address of monitor '{}'",
                        m.name
                    ),
                ));
            }
        }
    }
}

fn check_monitor_nodes(config: &Config, at: &Locator<'_>, errors: &mut Vec<ConfigError>) {
    if config.single_monitor {
        return;
    }
    let mk = SectionKind::MonitorNode;
    let mut used: BTreeMap<(IpAddr, u16), String> = BTreeMap::new();
    for (name, m) in &config.monitor_nodes {
        if m.ip.is_unspecified() {
            continue;
        }
        if m.port == m.metrics_port {
            errors.push(at.err(
                mk,
                Some(name),
                Some("metrics_port"),
                format!(
                    "monitor '{name}' uses port {} for both gRPC and metrics",
                    m.port
                ),
            ));
        }
        for (port, key) in [(m.port, "port"), (m.metrics_port, "metrics_port")] {
            if let Some(other) = used.insert((m.ip, port), name.clone()) {
                if &other != name {
                    errors.push(at.err(
                        mk,
                        Some(name),
                        Some(key),
                        format!("monitors '{other}' and '{name}' both use {}:{port}", m.ip),
                    ));
                }
            }
        }
    }
}

fn check_active_master_role(
    config: &mut Config,
    at: &Locator<'_>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) {
    match &config.active_master_role {
        Some(r) => match config.roles.get(r) {
            None => {
                let roles: Vec<&str> = config.roles.keys().map(String::as_str).collect();
                errors.push(at.global(
                    "active_master_role",
                    format!(
                        "active_master_role '{r}' is not a <role> (roles: {})",
                        roles.join(", ")
                    ),
                ));
            }
            Some(role) if role.mode != RoleMode::Exclusive => errors.push(at.global(
                "active_master_role",
                format!("active_master_role '{r}' must be an exclusive role"),
            )),
            Some(_) => {}
        },
        None => {
            // MMM required active_master_role; walkthroughs often omit it. With exactly one
            // exclusive role there is no doubt which one is the writer.
            let exclusive: Vec<&RoleConfig> = config
                .roles
                .values()
                .filter(|r| r.mode == RoleMode::Exclusive)
                .collect();
            if let [only] = exclusive.as_slice() {
                let name = only.name.clone();
                warnings.push(ConfigError::in_file(
                    at.source,
                    format!(
                        "active_master_role is not set; using the only exclusive role '{name}'"
                    ),
                ));
                config.active_master_role = Some(name);
            } else if config.program != Program::Control && !config.roles.is_empty() {
                errors.push(ConfigError::in_file(
                    at.source,
                    "missing key 'active_master_role': the name of the writer role".to_owned(),
                ));
            }
        }
    }
}
