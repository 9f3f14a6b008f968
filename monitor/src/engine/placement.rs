//! Role placement (mmm-reference.md section 5) for every role except the writer role, which moves only
//! through the committed failover steps (see `writer`).
//!
//! - active mode: IPs on hosts that may no longer hold them are moved (or unassigned when no host can);
//! - every unassigned IP goes to the role's `prefer` host if eligible, else to the eligible host with the
//!   fewest role IPs (a writer IP counts 0.5), ties broken by host name;
//! - balanced roles then move IPs from the most to the least loaded host while the difference is > 1;
//! - active mode moves an exclusive role back to its eligible preferred host.
//!
//! Manual and wait modes keep IPs on failed hosts; passive mode changes nothing.

use mmm_consensus::{ClusterState, Command, HostState, Mode};

use super::config::EngineConfig;
use super::round::Round;

/// Whether `host` may hold `role` now: ONLINE, listed in the role's hosts, no errant transactions.
pub fn eligible(state: &ClusterState, cfg: &EngineConfig, role: &str, host: &str) -> bool {
    let listed = cfg
        .roles
        .get(role)
        .is_some_and(|r| r.hosts.iter().any(|h| h == host));
    listed
        && state
            .hosts
            .get(host)
            .is_some_and(|r| r.state == HostState::Online && r.errant_gtids.is_none())
}

/// A host's role load in half-IPs: a writer IP counts 1 (0.5 IP), any other IP 2.
pub fn load_halves(state: &ClusterState, cfg: &EngineConfig, host: &str) -> u64 {
    state
        .role_ips
        .values()
        .filter(|r| r.owner.as_deref() == Some(host))
        .map(|r| if cfg.is_writer_role(&r.role) { 1 } else { 2 })
        .sum()
}

/// The host an unassigned IP of `role` goes to: the preferred host if eligible, else the least loaded
/// eligible host (ties by name), never `except`.
pub fn pick_host(
    state: &ClusterState,
    cfg: &EngineConfig,
    role: &str,
    except: Option<&str>,
) -> Option<String> {
    let r = cfg.roles.get(role)?;
    let ok = |h: &str| eligible(state, cfg, role, h) && Some(h) != except;
    if let Some(p) = r.prefer.as_deref().filter(|p| ok(p)) {
        return Some(p.to_string());
    }
    let mut hosts: Vec<&String> = r.hosts.iter().filter(|h| ok(h)).collect();
    hosts.sort();
    hosts.dedup();
    hosts
        .into_iter()
        .min_by_key(|h| (load_halves(state, cfg, h), (*h).clone()))
        .cloned()
}

fn owner_of(state: &ClusterState, ip: &str) -> Option<String> {
    state.role_ips.get(ip).and_then(|r| r.owner.clone())
}

fn host_state(state: &ClusterState, host: &str) -> String {
    state
        .hosts
        .get(host)
        .map(|r| {
            if r.errant_gtids.is_some() {
                format!("{} with errant transactions", r.state)
            } else {
                r.state.to_string()
            }
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Places the IPs of every non-writer role.
pub(crate) fn place_roles(round: &mut Round<'_>) {
    let mode = round.sim.mode;
    if mode == Mode::Passive {
        return;
    }
    let cfg = round.cfg;
    for (name, role) in &cfg.roles {
        if cfg.is_writer_role(name) {
            continue;
        }
        for ip in &role.ips {
            if !round.sim.role_ips.contains_key(ip) {
                continue;
            }
            let owner = owner_of(&round.sim, ip);
            let lost = owner
                .as_deref()
                .filter(|o| !eligible(&round.sim, cfg, name, o));
            let reason_prefix = match (&owner, lost) {
                (None, _) => format!("{name}({ip}) is unassigned"),
                (Some(o), Some(_)) if mode == Mode::Active => {
                    format!("{o} is {}; {name}({ip}) moves", host_state(&round.sim, o))
                }
                _ => continue,
            };
            let pick = pick_host(&round.sim, cfg, name, None);
            if pick == owner {
                continue;
            }
            let reason = match &pick {
                Some(p) => {
                    format!("{reason_prefix} to {p} (preferred or least loaded eligible host)")
                }
                None => format!("{reason_prefix}: no eligible host, unassigned"),
            };
            round.propose(
                reason,
                Command::SetRoleOwner {
                    ip: ip.clone(),
                    owner: pick,
                },
            );
        }
        if !role.exclusive {
            balance(round, name);
        } else if mode == Mode::Active {
            obey_preference(round, name);
        }
    }
}

fn balance(round: &mut Round<'_>, name: &str) {
    let cfg = round.cfg;
    let Some(role) = cfg.roles.get(name) else {
        return;
    };
    // Each move narrows the spread, so this ends; the bound only guards against a mistake.
    for _ in 0..=role.ips.len() {
        let mut hosts: Vec<&String> = role
            .hosts
            .iter()
            .filter(|h| eligible(&round.sim, cfg, name, h))
            .collect();
        hosts.sort();
        hosts.dedup();
        let count = |h: &str| {
            role.ips
                .iter()
                .filter(|ip| owner_of(&round.sim, ip).as_deref() == Some(h))
                .count()
        };
        let Some(most) = hosts
            .iter()
            .max_by_key(|h| (count(h), std::cmp::Reverse((**h).clone())))
        else {
            return;
        };
        let Some(least) = hosts.iter().min_by_key(|h| (count(h), (**h).clone())) else {
            return;
        };
        let (cm, cl) = (count(most), count(least));
        if cm <= cl + 1 {
            return;
        }
        let Some(ip) = role
            .ips
            .iter()
            .filter(|ip| owner_of(&round.sim, ip).as_deref() == Some(most.as_str()))
            .max()
            .cloned()
        else {
            return;
        };
        let reason = format!(
            "balancing {name}: {most} holds {cm} IPs, {least} holds {cl}; {name}({ip}) moves to {least}"
        );
        let to = Some((*least).clone());
        if !round.propose(reason, Command::SetRoleOwner { ip, owner: to }) {
            return;
        }
    }
}

fn obey_preference(round: &mut Round<'_>, name: &str) {
    let cfg = round.cfg;
    let Some(role) = cfg.roles.get(name) else {
        return;
    };
    let Some(prefer) = role.prefer.as_deref() else {
        return;
    };
    if !eligible(&round.sim, cfg, name, prefer) {
        return;
    }
    for ip in &role.ips {
        let owner = owner_of(&round.sim, ip);
        if owner.as_deref() != Some(prefer) {
            let from = owner.unwrap_or_else(|| "-".into());
            let reason = format!(
                "role {name} prefers {prefer}, which is ONLINE; {name}({ip}) moves from {from}"
            );
            let owner = Some(prefer.to_string());
            round.propose(
                reason,
                Command::SetRoleOwner {
                    ip: ip.clone(),
                    owner,
                },
            );
        }
    }
}
