//! Mode changes the engine makes by itself: leaving wait mode.

use mmm_consensus::{Command, HostState, Mode};

use super::config::HostKind;
use super::round::Round;

/// Wait mode ends (→ active) when every master is ONLINE, or one has been ONLINE for
/// `wait_for_other_master`.
pub(crate) fn leave_wait_mode(round: &mut Round<'_>) {
    if round.sim.mode != Mode::Wait {
        return;
    }
    let now = round.now();
    let masters: Vec<&String> = round
        .cfg
        .hosts
        .iter()
        .filter(|(_, h)| h.kind == HostKind::Master)
        .map(|(n, _)| n)
        .collect();
    let online: Vec<(&String, u64)> = masters
        .iter()
        .filter_map(|m| {
            let r = round.sim.hosts.get(*m)?;
            (r.state == HostState::Online).then_some((*m, now.saturating_sub(r.since_ms)))
        })
        .collect();
    let reason = if online.len() == masters.len() {
        "every master is ONLINE".to_string()
    } else if let Some((m, t)) = online
        .iter()
        .filter(|(_, t)| *t >= round.cfg.wait_for_other_master_ms)
        .max_by_key(|(_, t)| *t)
    {
        format!(
            "{m} has been ONLINE for {} s (wait_for_other_master {} s)",
            t / 1000,
            round.cfg.wait_for_other_master_ms / 1000
        )
    } else {
        return;
    };
    round.propose(
        format!("leaving wait mode: {reason}"),
        Command::SetMode {
            mode: Mode::Active,
            cause: None,
        },
    );
}
