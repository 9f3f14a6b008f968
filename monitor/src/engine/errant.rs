//! Hosts with errant transactions (GTIDs no other host has, typically an old master that comes back with
//! writes nobody replicated): recorded and kept out of rotation until an operator acts (`set_online`
//! accepts the host only once its agent no longer reports errant GTIDs), or, with `auto_rejoin_errant 1`,
//! until its agent saved and undid them.
//!
//! Automatic rejoin (opt-in per cluster). The errant transactions of an old master that was failed
//! over while it ran with semi-synchronous acknowledgements were never acknowledged to a client: a
//! commit waits for its acknowledgement (`rpl_semi_sync_master_timeout` is longer than the lease plus
//! the fence, a required setting's advice), and the commits still waiting when its lease ended were
//! killed by the fence or the demotion. They can be undone without losing an acknowledged write. So:
//! - a host with errant transactions whose failover was not asynchronous (`HostRecord::acked_alone`,
//!   set when a failover goes ahead away from a writer last seen asynchronous) is asked to rejoin
//!   (`SetRejoin`), while there is an active master, no failover under way, and its agent answers;
//! - its agent saves the transactions' binlog events to a file on the host, undoes them
//!   (`mmm_agent::rejoin`), resets its GTID state to the position before them and replicates from the
//!   active master; when it reports the rejoin of exactly those transactions, they are cleared
//!   (`SetErrant None`) with the file named in `history`, and the host returns like any other: ONLINE
//!   only after an errant check that started after it came back found nothing.
//! - A host marked `acked_alone` keeps waiting for an operator (the mark is in `history` since the
//!   failover); so does one whose agent refuses (semi-sync settings that let a commit be acknowledged
//!   by the server alone, DDL or another server's transactions among them: said in the agent's log).

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

/// The automatic rejoin (module docs): asks the agent of a host with errant transactions to save and
/// undo them, and clears them once it reports it did.
pub(crate) fn rejoin_errant(round: &mut Round<'_>) {
    if !round.cfg.auto_rejoin_errant {
        return;
    }
    let Some(master) = round.sim.active_master.clone() else {
        return;
    };
    if round.sim.failover.is_some() {
        return;
    }
    let hosts: Vec<String> = round.cfg.hosts.keys().cloned().collect();
    for host in hosts {
        if host == master {
            continue;
        }
        let Some(rec) = round.sim.hosts.get(&host) else {
            continue;
        };
        let Some(gtids) = rec.errant_gtids.clone() else {
            continue;
        };
        if rec.acked_alone {
            continue;
        }
        let facts = round.input.agent(&host);
        match (&rec.rejoin, &facts.rejoined) {
            (Some(asked), Some((done, file))) if *asked == gtids && *done == gtids => {
                round.propose(
                    format!(
                        "{host} rejoined: its errant transactions {gtids} were saved to {file} on {host} \
                         and undone; it replicates from {master} and returns once checked"
                    ),
                    Command::SetErrant {
                        host: host.clone(),
                        gtids: None,
                    },
                );
            }
            (asked, _) if asked.as_deref() != Some(gtids.as_str()) && facts.reachable => {
                round.propose(
                    format!(
                        "automatic rejoin of {host} (auto_rejoin_errant 1): its errant transactions \
                         {gtids} were never acknowledged (it was failed over with semi-synchronous \
                         acknowledgements): they are saved to a file on {host} and undone"
                    ),
                    Command::SetRejoin {
                        host: host.clone(),
                        gtids: Some(gtids),
                    },
                );
            }
            _ => {}
        }
    }
}
