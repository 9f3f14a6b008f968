//! Hosts with errant transactions (GTIDs no other host has, typically an old master that comes back with
//! writes nobody replicated): recorded and kept out of rotation until an operator acts (`set_online`
//! accepts the host only once its agent no longer reports errant GTIDs).

use mmm_consensus::{Command, HostState};

use super::round::Round;

/// Records newly reported errant GTIDs; an ONLINE (or REPLICATION_*) host goes to AWAITING_RECOVERY.
pub(crate) fn record_errant(round: &mut Round<'_>) {
    let hosts: Vec<String> = round.cfg.hosts.keys().cloned().collect();
    for host in hosts {
        let facts = round.input.agent(&host);
        let Some(gtids) = facts.gtid_errant.filter(|g| !g.is_empty()) else {
            continue;
        };
        // The writer's own new transactions are not errant; neither are the candidate's mid-failover.
        let busy = round.sim.active_master.as_deref() == Some(host.as_str())
            || round.sim.failover.as_ref().is_some_and(|f| f.to == host);
        let Some(rec) = round.sim.hosts.get(&host) else {
            continue;
        };
        if busy || rec.errant_gtids.as_deref() == Some(gtids.as_str()) {
            continue;
        }
        let mut cmds = vec![Command::SetErrant {
            host: host.clone(),
            gtids: Some(gtids.clone()),
        }];
        if matches!(
            rec.state,
            HostState::Online | HostState::ReplicationFail | HostState::ReplicationDelay
        ) {
            cmds.push(Command::SetHostState {
                host: host.clone(),
                state: HostState::AwaitingRecovery,
            });
        }
        round.propose_all(
            format!(
                "{host} has errant transactions {gtids} (on no other host): kept out of rotation until an operator acts"
            ),
            cmds,
        );
    }
}
