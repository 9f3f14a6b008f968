//! Operator commands (`mmm_control` / `mmmctl`) as pure functions: each checks MMM's rules on the
//! committed state and returns the proposals to commit plus MMM's OK text, or MMM's error text.

use mmm_consensus::{ClusterState, Command, HostState, Mode, Request};

use super::config::EngineConfig;
use super::placement::pick_host;
use super::writer::begin_commands;

/// Why an operator command was refused; `Display` is MMM's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// No such host in the configuration.
    #[error("ERROR: Unknown host name '{0}'!")]
    UnknownHost(String),
    /// No such role.
    #[error("ERROR: Unknown role name '{0}'!")]
    UnknownRole(String),
    /// No role has this IP.
    #[error("ERROR: Unknown ip '{0}'!")]
    UnknownIp(String),
    /// The host's state does not allow the change.
    #[error("ERROR: Host '{host}' is '{state}' at the moment. It can't be switched to {target}.")]
    WrongState {
        /// The host.
        host: String,
        /// Its state.
        state: HostState,
        /// The state asked for.
        target: HostState,
    },
    /// The host's agent does not answer.
    #[error("ERROR: Can't reach agent daemon on '{0}'! Can't switch its state!")]
    AgentUnreachable(String),
    /// ping or mysql is not OK.
    #[error("ERROR: Checks ping and/or mysql are not ok for host '{0}'. It can't be switched to ONLINE.")]
    ChecksFailing(String),
    /// The host has transactions no other host has.
    #[error("ERROR: Host '{host}' has errant transactions ({gtids}). Remove them or rebuild the host before switching it to ONLINE.")]
    Errant {
        /// The host.
        host: String,
        /// The errant GTIDs.
        gtids: String,
    },
    /// The host was found with errant transactions and cannot be checked again now.
    #[error("ERROR: Host '{host}' was found with errant transactions ({gtids}) and cannot be checked again now ({reason}). Try again once its agent and the active master's answer.")]
    ErrantUnchecked {
        /// The host.
        host: String,
        /// The errant GTIDs recorded.
        gtids: String,
        /// Why the check could not run.
        reason: String,
    },
    /// `set_ip` outside passive mode.
    #[error("ERROR: This command is only allowed in passive mode")]
    NotPassive,
    /// `move_role` in passive mode.
    #[error("ERROR: This command is not allowed in passive mode")]
    Passive,
    /// The target of `move_role` is not in a state to take the role.
    #[error("ERROR: Host '{host}' is '{state}' at the moment. Can't move role there.")]
    CantMoveThere {
        /// The host.
        host: String,
        /// Its state.
        state: HostState,
    },
    /// The host is not among the role's hosts (or has errant transactions).
    #[error(
        "ERROR: Host '{host}' can't handle role '{role}'. Only following hosts could: {hosts}"
    )]
    CantHandle {
        /// The host.
        host: String,
        /// The role.
        role: String,
        /// The role's hosts, `, `-joined.
        hosts: String,
    },
    /// `--force` on a role other than the active master role.
    #[error("ERROR: move_role --force may be used for the active master role only!")]
    ForceNotWriter,
    /// `move_role` (without `--force`) in active mode of an exclusive role that sits on its
    /// preferred host: active mode would move it straight back (two interruptions, the switchover
    /// undone), so MMM refused it.
    #[error("ERROR: Role '{role}' is assigned to preferred host '{host}'. Can't move it!")]
    OnPreferredHost {
        /// The role.
        role: String,
        /// Its preferred host, which holds it.
        host: String,
    },
    /// A writer move is already running.
    #[error("ERROR: A move of role '{role}' to '{to}' is already in progress.")]
    MoveInProgress {
        /// The role being moved.
        role: String,
        /// Its target.
        to: String,
    },
}

/// The error of [`plan_move_role`].
pub type MoveError = OperatorError;

/// An accepted operator command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPlan {
    /// Requests to commit, in order (empty when there is nothing to do).
    pub proposals: Vec<Request>,
    /// MMM's OK text, to print once the proposals are committed.
    pub message: String,
}

fn request(now: u64, reason: String, mut cmds: Vec<Command>) -> Vec<Request> {
    let command = match cmds.len() {
        0 => return Vec::new(),
        1 => cmds.remove(0),
        _ => Command::Batch(cmds),
    };
    vec![Request {
        time_ms: now,
        reason,
        command,
    }]
}

fn host_state(
    state: &ClusterState,
    cfg: &EngineConfig,
    host: &str,
) -> Result<HostState, OperatorError> {
    if !cfg.hosts.contains_key(host) {
        return Err(OperatorError::UnknownHost(host.to_string()));
    }
    Ok(state
        .hosts
        .get(host)
        .map(|r| r.state)
        .unwrap_or(HostState::Unknown))
}

/// `set_online H`: from ADMIN_OFFLINE or AWAITING_RECOVERY, with ping+mysql OK (`checks_ok`), the agent
/// reachable and no errant transactions now (`errant_now`, from the agent). Clears the flapping and
/// errant marks.
pub fn set_online(
    state: &ClusterState,
    cfg: &EngineConfig,
    host: &str,
    checks_ok: bool,
    agent_reachable: bool,
    errant_now: Option<&str>,
    now: u64,
) -> Result<OperatorPlan, OperatorError> {
    let st = host_state(state, cfg, host)?;
    if st == HostState::Online {
        return Ok(OperatorPlan {
            proposals: Vec::new(),
            message: "OK: This host is already ONLINE. Skipping command.".into(),
        });
    }
    if !matches!(st, HostState::AdminOffline | HostState::AwaitingRecovery) {
        return Err(OperatorError::WrongState {
            host: host.into(),
            state: st,
            target: HostState::Online,
        });
    }
    if !agent_reachable {
        return Err(OperatorError::AgentUnreachable(host.into()));
    }
    if !checks_ok {
        return Err(OperatorError::ChecksFailing(host.into()));
    }
    if let Some(g) = errant_now.filter(|g| !g.is_empty()) {
        return Err(OperatorError::Errant {
            host: host.into(),
            gtids: g.into(),
        });
    }
    let mut cmds = Vec::new();
    if state
        .hosts
        .get(host)
        .is_some_and(|r| r.errant_gtids.is_some())
    {
        cmds.push(Command::SetErrant {
            host: host.into(),
            gtids: None,
        });
    }
    cmds.push(Command::ClearFlapping { host: host.into() });
    cmds.push(Command::SetHostState {
        host: host.into(),
        state: HostState::Online,
    });
    Ok(OperatorPlan {
        proposals: request(now, format!("operator: set_online {host} (was {st})"), cmds),
        message: format!(
            "OK: State of '{host}' changed to ONLINE. Now you can wait some time and check its new roles!"
        ),
    })
}

/// `set_offline H`: from ONLINE or REPLICATION_* to ADMIN_OFFLINE; the host's non-writer roles are
/// removed at once (a writer role moves through a failover, started by the next round).
pub fn set_offline(
    state: &ClusterState,
    cfg: &EngineConfig,
    host: &str,
    agent_reachable: bool,
    now: u64,
) -> Result<OperatorPlan, OperatorError> {
    let st = host_state(state, cfg, host)?;
    if st == HostState::AdminOffline {
        return Ok(OperatorPlan {
            proposals: Vec::new(),
            message: "OK: This host is already ADMIN_OFFLINE. Skipping command.".into(),
        });
    }
    if !matches!(
        st,
        HostState::Online | HostState::ReplicationFail | HostState::ReplicationDelay
    ) {
        return Err(OperatorError::WrongState {
            host: host.into(),
            state: st,
            target: HostState::AdminOffline,
        });
    }
    if !agent_reachable {
        return Err(OperatorError::AgentUnreachable(host.into()));
    }
    let mut cmds = vec![Command::SetHostState {
        host: host.into(),
        state: HostState::AdminOffline,
    }];
    for (ip, r) in &state.role_ips {
        if r.owner.as_deref() == Some(host) && !cfg.is_writer_role(&r.role) {
            cmds.push(Command::SetRoleOwner {
                ip: ip.clone(),
                owner: None,
            });
        }
    }
    Ok(OperatorPlan {
        proposals: request(now, format!("operator: set_offline {host} (was {st})"), cmds),
        message: format!(
            "OK: State of '{host}' changed to ADMIN_OFFLINE. Now you can wait some time and check all roles!"
        ),
    })
}

fn mode_word(mode: Mode) -> &'static str {
    match mode {
        Mode::Active => "active",
        Mode::Manual => "manual",
        Mode::Wait => "wait",
        Mode::Passive => "passive",
    }
}

/// `set_active` / `set_manual` / `set_passive`.
///
/// Leaving passive mode with a writer move planned by `set_ip` ([`ClusterState::planned_writer`])
/// starts that move in the same decision, as a planned switchover through the committed failover
/// steps, exactly as `move_role writer` does: the old writer is demoted (acknowledged, or its lease
/// certainly over), the new one catches up, then it is promoted. The new owner is never pushed
/// directly. A plan whose host cannot take the role now (not ONLINE, errant transactions) is dropped
/// and the answer says so; the active master keeps the role.
pub fn set_mode(
    state: &ClusterState,
    cfg: &EngineConfig,
    mode: Mode,
    now: u64,
) -> Result<OperatorPlan, OperatorError> {
    let word = mode_word(mode);
    if state.mode == mode {
        return Ok(OperatorPlan {
            proposals: Vec::new(),
            message: format!("OK: Already in {word} mode."),
        });
    }
    let cause =
        (mode == Mode::Passive).then(|| "switched to passive mode by an operator".to_string());
    let mut reason = format!("operator: set_{word} (was {})", state.mode);
    let mut message = format!("OK: Switched into {word} mode.");
    let mut cmds = vec![Command::SetMode { mode, cause }];
    let planned = state
        .planned_writer
        .as_deref()
        .filter(|_| state.mode == Mode::Passive && mode != Mode::Passive);
    if let (Some(to), Some((wname, _))) = (planned, cfg.writer()) {
        let from = state.active_master.as_deref().filter(|f| *f != to);
        let from_text = from.unwrap_or("-");
        match planned_move_refused(state, to) {
            None => {
                // `SetMode` clears the plan; the failover record carries the move from here on.
                cmds.extend(begin_commands(state, cfg, from, to, true));
                reason.push_str(&format!(
                    "; planned move of role {wname} from {from_text} to {to} (set_ip) started"
                ));
                message.push_str(&format!(
                    " Role '{wname}' is moving from '{from_text}' to '{to}' (old writer demoted first)."
                ));
            }
            Some(why) => {
                reason.push_str(&format!(
                    "; planned move of role {wname} to {to} dropped: {why}"
                ));
                message.push_str(&format!(
                    " The planned move of role '{wname}' to '{to}' was dropped: {why}"
                ));
            }
        }
    }
    Ok(OperatorPlan {
        proposals: request(now, reason, cmds),
        message,
    })
}

/// Why the writer move planned to `to` cannot start now (`move_role`'s rules for its target).
fn planned_move_refused(state: &ClusterState, to: &str) -> Option<String> {
    if let Some(f) = &state.failover {
        return Some(
            OperatorError::MoveInProgress {
                role: f.role.clone(),
                to: f.to.clone(),
            }
            .to_string(),
        );
    }
    let rec = state.hosts.get(to);
    let st = rec.map_or(HostState::Unknown, |r| r.state);
    if st != HostState::Online {
        return Some(
            OperatorError::CantMoveThere {
                host: to.into(),
                state: st,
            }
            .to_string(),
        );
    }
    rec.and_then(|r| r.errant_gtids.clone()).map(|gtids| {
        OperatorError::Errant {
            host: to.into(),
            gtids,
        }
        .to_string()
    })
}

fn can_handle(cfg: &EngineConfig, role: &str, host: &str) -> Result<(), OperatorError> {
    let hosts = cfg
        .roles
        .get(role)
        .map(|r| r.hosts.clone())
        .unwrap_or_default();
    if hosts.iter().any(|h| h == host) {
        Ok(())
    } else {
        Err(OperatorError::CantHandle {
            host: host.into(),
            role: role.into(),
            hosts: hosts.join(", "),
        })
    }
}

/// `set_ip IP H` (passive mode only): changes the planned owner of a role IP, carried out when the
/// cluster leaves passive mode (nothing is pushed while passive).
///
/// A non-writer role IP gets its new owner at once in the state (pushed when passive mode ends). An IP
/// of the writer role records `H` as the planned writer ([`Command::PlanWriter`]) and changes nothing
/// else: the active master keeps the role and its lease while passive, and leaving passive mode
/// ([`set_mode`]) moves the role as `move_role writer H` would, through the committed failover steps
/// (demote the old writer first). `set_ip` of the writer IP to the active master itself cancels a
/// planned move (and gives it back the IP if it had none). Refused while a writer move is running.
pub fn set_ip(
    state: &ClusterState,
    cfg: &EngineConfig,
    ip: &str,
    host: &str,
    now: u64,
) -> Result<OperatorPlan, OperatorError> {
    if state.mode != Mode::Passive {
        return Err(OperatorError::NotPassive);
    }
    let role = state
        .role_ips
        .get(ip)
        .map(|r| r.role.clone())
        .or_else(|| cfg.role_of_ip(ip).map(|(n, _)| n.to_string()))
        .ok_or_else(|| OperatorError::UnknownIp(ip.into()))?;
    host_state(state, cfg, host)?;
    can_handle(cfg, &role, host)?;
    let owner = Command::SetRoleOwner {
        ip: ip.into(),
        owner: Some(host.into()),
    };
    let cmds = if !cfg.is_writer_role(&role) {
        vec![owner]
    } else if let Some(f) = &state.failover {
        return Err(OperatorError::MoveInProgress {
            role: f.role.clone(),
            to: f.to.clone(),
        });
    } else if state.active_master.as_deref() == Some(host) {
        let mut cmds = vec![Command::PlanWriter { host: None }];
        if state.role_ips.get(ip).and_then(|r| r.owner.as_deref()) != Some(host) {
            cmds.push(owner);
        }
        cmds
    } else {
        vec![Command::PlanWriter {
            host: Some(host.into()),
        }]
    };
    Ok(OperatorPlan {
        proposals: request(now, format!("operator: set_ip {ip} {host}"), cmds),
        message: format!("OK: Set role '{role}({ip})' to host '{host}'."),
    })
}

/// `move_role [--force] R H` as proposals. Exclusive role: to an ONLINE host that may hold it (with
/// `--force`, the writer role also to a REPLICATION_FAIL/DELAY host), and in active mode not away
/// from its preferred host (without `--force`; active mode would move it back at once); the writer role moves through the
/// committed failover steps (old writer denies writes, replicas follow, new writer takes the role).
/// Balanced role: removes R's IPs from H (they go to the other eligible hosts, or stay unassigned).
pub fn plan_move_role(
    state: &ClusterState,
    cfg: &EngineConfig,
    role: &str,
    host: &str,
    force: bool,
    now: u64,
) -> Result<Vec<Request>, MoveError> {
    move_role(state, cfg, role, host, force, now).map(|p| p.proposals)
}

/// [`plan_move_role`] with MMM's OK text.
pub fn move_role(
    state: &ClusterState,
    cfg: &EngineConfig,
    role: &str,
    host: &str,
    force: bool,
    now: u64,
) -> Result<OperatorPlan, MoveError> {
    if state.mode == Mode::Passive {
        return Err(OperatorError::Passive);
    }
    let r = cfg
        .roles
        .get(role)
        .ok_or_else(|| OperatorError::UnknownRole(role.into()))?;
    let st = host_state(state, cfg, host)?;
    let owner_of = |ip: &str| state.role_ips.get(ip).and_then(|x| x.owner.clone());
    if !r.exclusive {
        let mut sim = state.clone();
        let mut cmds = Vec::new();
        for ip in &r.ips {
            if owner_of(ip).as_deref() == Some(host) {
                let to = pick_host(&sim, cfg, role, Some(host));
                if let Some(rec) = sim.role_ips.get_mut(ip) {
                    rec.owner = to.clone();
                }
                cmds.push(Command::SetRoleOwner {
                    ip: ip.clone(),
                    owner: to,
                });
            }
        }
        let message = if cmds.is_empty() {
            format!("OK: Host '{host}' has no IPs of role '{role}'. Skipping command.")
        } else {
            format!("OK: Role '{role}' has been removed from '{host}'. Now you can wait some time and check new roles info!")
        };
        return Ok(OperatorPlan {
            proposals: request(
                now,
                format!("operator: move_role {role} away from {host}"),
                cmds,
            ),
            message,
        });
    }
    let writer = cfg.is_writer_role(role);
    if force && !writer {
        return Err(OperatorError::ForceNotWriter);
    }
    let state_ok = st == HostState::Online
        || (force && matches!(st, HostState::ReplicationFail | HostState::ReplicationDelay));
    if !state_ok {
        return Err(OperatorError::CantMoveThere {
            host: host.into(),
            state: st,
        });
    }
    can_handle(cfg, role, host)?;
    if let Some(g) = state.hosts.get(host).and_then(|h| h.errant_gtids.clone()) {
        return Err(OperatorError::Errant {
            host: host.into(),
            gtids: g,
        });
    }
    if let Some(f) = &state.failover {
        if writer {
            return Err(OperatorError::MoveInProgress {
                role: f.role.clone(),
                to: f.to.clone(),
            });
        }
    }
    let old = r.ips.iter().find_map(|ip| owner_of(ip));
    let old = if writer {
        old.or_else(|| state.active_master.clone())
    } else {
        old
    };
    if old.as_deref() == Some(host) && r.ips.iter().all(|ip| owner_of(ip).as_deref() == Some(host))
    {
        return Ok(OperatorPlan {
            proposals: Vec::new(),
            message: format!(
                "OK: Role '{role}' is assigned to host '{host}' already. Skipping command."
            ),
        });
    }
    if !force && state.mode == Mode::Active {
        if let Some(p) = r.prefer.as_deref().filter(|p| old.as_deref() == Some(*p)) {
            return Err(OperatorError::OnPreferredHost {
                role: role.into(),
                host: p.into(),
            });
        }
    }
    let cmds = if writer {
        begin_commands(
            state,
            cfg,
            old.as_deref().filter(|o| *o != host),
            host,
            true,
        )
    } else {
        r.ips
            .iter()
            .map(|ip| Command::SetRoleOwner {
                ip: ip.clone(),
                owner: Some(host.into()),
            })
            .collect()
    };
    let old_text = old.unwrap_or_else(|| "-".into());
    let forced = if force { " --force" } else { "" };
    Ok(OperatorPlan {
        proposals: request(now, format!("operator: move_role{forced} {role} {host} (from {old_text})"), cmds),
        message: format!(
            "OK: Role '{role}' has been moved from '{old_text}' to '{host}'. Now you can wait some time and check new roles info!"
        ),
    })
}
