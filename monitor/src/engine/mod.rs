//! The decision engine: MMM's brain, replicated. Pure logic, no I/O; time is passed in.
//!
//! One round: `decide(state, input, cfg) -> Output`. The leader loop gathers [`Input`] (every monitor's
//! latest report, what it knows of each agent, its clock), calls [`decide`], commits
//! [`Output::proposals`] in order (stopping at the first one refused), then carries out
//! [`Output::actions`] on the state as committed (a [`Action::PushStatus`] sends
//! [`agent_status_for`] of the *new* state, stamped with the state's `last_epoch`). Then it repeats.
//! Operator commands are separate pure functions ([`set_online`], [`set_offline`], [`set_mode`],
//! [`set_ip`], [`move_role`] / [`plan_move_role`]) returning proposals or MMM's error text.
//!
//! A round, in order (each rule sees the state the earlier proposals lead to):
//! 1. the leader's own network check must pass, or nothing is decided at all;
//! 2. configured hosts and role IPs not yet in the state are registered (a new cluster takes its mode,
//!    and a state without a cluster id gets the one this leader drew, [`EngineConfig::new_cluster_id`]);
//! 3. errant transactions reported by agents are recorded, and with `auto_rejoin_errant` undone by the
//!    host's agent when they were never acknowledged ([`errant`]);
//! 4. every host is judged by MMM's state machine on the evidence of a majority of monitors
//!    ([`evidence`], [`states`]);
//! 5. wait mode ends when the masters are up ([`modes`]);
//! 6. the writer role: adopt an existing writer, start or continue a failover ([`writer`]);
//! 7. the other roles are placed ([`placement`]);
//! 8. statuses are pushed to the agents (in passive mode only the committed writer's, to keep its lease).
//!
//! Passive mode means passive: no decision of the round changes anything, and no status reaches an
//! agent except the lease renewal of the committed writer whose agent still acts as the writer.
//! [`push_allowed`] is the one home of that rule; the leader applies it to every push, its lease
//! renewal task included (and such a renewal re-sends the status that agent last acknowledged, with a
//! new lease only). Operator changes made while passive are carried out when the cluster leaves
//! passive mode: a non-writer role IP moved by [`set_ip`] goes to its new owner with the next push,
//! while `set_ip` of a writer-role IP only records the planned writer
//! (`ClusterState::planned_writer`); [`set_mode`] leaving passive mode turns it into a planned
//! failover record in the same decision, so the move runs through the fenced steps of
//! `move_role writer` ([`writer`]): the old writer is demoted (acknowledged, or its lease certainly
//! over) before the candidate catches up and is promoted. The new writer is never pushed directly.

mod config;
mod errant;
mod evidence;
mod input;
mod modes;
mod operator;
mod output;
mod placement;
mod round;
mod states;
mod status;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use mmm_consensus::{ClusterState, Command, Mode};

pub use config::{random_cluster_id, EngineConfig, EngineHost, EngineRole, HostKind, TrapPeriods};
pub use evidence::{all_evidence, host_evidence, majority, HostEvidence, Verdict};
pub use input::{
    AgentFacts, CheckObs, CheckStatus, HostObservation, Input, MonitorReport, ReportedPosition,
    StartupEvidence, CHECK_NAMES,
};
pub use operator::{
    move_role, plan_move_role, set_ip, set_mode, set_offline, set_online, MoveError, OperatorError,
    OperatorPlan,
};
pub use output::{Action, DesiredStatus, LogLevel, Output};
pub use placement::{eligible, pick_host};
pub use states::{next_state, peer_of, Transition};
pub use status::{agent_status_for, push_allowed};
pub use writer::{choose_candidate, holds_writer_ips, Candidate, POSITION_SETTLED_MS};

use round::Round;

/// Whether the leader's own latest report is fresh and says its network is fine.
pub fn leader_network_ok(input: &Input, cfg: &EngineConfig) -> bool {
    input.reports.get(&input.leader).is_some_and(|r| {
        r.network_ok && input.now_ms.saturating_sub(r.received_ms) <= cfg.report_ttl_ms
    })
}

/// One round of decisions. See the module documentation for the order of the rules.
pub fn decide(state: &ClusterState, input: &Input, cfg: &EngineConfig) -> Output {
    if !leader_network_ok(input, cfg) {
        return Output::default();
    }
    let mut round = Round::new(state, input, cfg);
    register(&mut round);
    errant::record_errant(&mut round);
    errant::rejoin_errant(&mut round);
    let evidence = all_evidence(input, cfg);
    states::judge_hosts(&mut round, &evidence);
    modes::leave_wait_mode(&mut round);
    writer::manage_writer(&mut round, state);
    placement::place_roles(&mut round);
    push_statuses(&mut round);
    round.out
}

fn register(round: &mut Round<'_>) {
    let hosts: Vec<String> = round
        .cfg
        .hosts
        .keys()
        .filter(|h| !round.sim.hosts.contains_key(*h))
        .cloned()
        .collect();
    let role_ips: Vec<(String, String)> = round
        .cfg
        .roles
        .iter()
        .flat_map(|(name, r)| r.ips.iter().map(move |ip| (name.clone(), ip.clone())))
        .filter(|(_, ip)| !round.sim.role_ips.contains_key(ip))
        .collect();
    // The cluster id is made once, by the first Register committed with one (a state from before
    // ids gets one from its next leader).
    let cluster_id = (round.sim.cluster_id.is_empty() && !round.cfg.new_cluster_id.is_empty())
        .then(|| round.cfg.new_cluster_id.clone());
    if hosts.is_empty() && role_ips.is_empty() && cluster_id.is_none() {
        return;
    }
    let new_cluster = round.sim.hosts.is_empty() && round.sim.role_ips.is_empty();
    let mut reason = format!(
        "configuration: registering hosts [{}] and role IPs [{}]",
        hosts.join(", "),
        role_ips
            .iter()
            .map(|(r, ip)| format!("{r}({ip})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(id) = &cluster_id {
        reason.push_str(&format!("; cluster id {id}"));
    }
    let mut cmds = vec![Command::Register {
        hosts,
        role_ips,
        cluster_id,
    }];
    if new_cluster && round.sim.mode != round.cfg.initial_mode {
        let mode = round.cfg.initial_mode;
        let cause =
            (mode == Mode::Passive).then(|| "mode passive in the configuration".to_string());
        cmds.push(Command::SetMode { mode, cause });
    }
    round.propose_all(reason, cmds);
}

fn push_statuses(round: &mut Round<'_>) {
    let mut pushed: BTreeSet<String> = round
        .out
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::PushStatus { host } => Some(host.clone()),
            _ => None,
        })
        .collect();
    let hosts: Vec<String> = round.sim.hosts.keys().cloned().collect();
    for host in hosts {
        if pushed.contains(&host) {
            continue;
        }
        let status = agent_status_for(&round.sim, &host, round.cfg);
        if !push_allowed(&round.sim, &status, round.input.agent(&host).writable) {
            continue;
        }
        pushed.insert(host.clone());
        round.act(Action::PushStatus { host });
    }
}
