//! How fresh a monitor's answer is. Any monitor answers reads from its own applied state; one cut off
//! from the Raft leader may be serving old state, and must say so (and how old it may be).
//!
//! Rules:
//! - the leader is in contact when a quorum acknowledged it within [`CONTACT_WINDOW`];
//! - a follower is in contact when the leader accepted one of its observation reports within
//!   [`CONTACT_WINDOW`] (followers report every check round, so a healthy link is far fresher);
//! - the age is the time since that last proof of contact (0 when there never was one).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use mmm_proto::Staleness;

use crate::context::MonitorContext;

/// Longest time since the last proof of contact with the leader for a monitor to count as in contact:
/// a few report rounds (reports go out at least every second) and many Raft heartbeats (50 ms).
pub const CONTACT_WINDOW: Duration = Duration::from_secs(3);

/// When the leader last accepted this follower's report.
#[derive(Debug, Default)]
pub struct LeaderContact {
    /// Time of the last accepted report and the leader that accepted it.
    last: Mutex<Option<(Instant, String)>>,
}

impl LeaderContact {
    /// Notes that `leader` accepted a report just now.
    pub fn answered(&self, leader: &str) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), leader.to_string()));
    }

    /// Time since the last accepted report, and by whom.
    pub fn last(&self) -> Option<(Duration, String)> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(t, l)| (t.elapsed(), l.clone()))
    }
}

/// The staleness of an answer this monitor gives now.
pub fn staleness(ctx: &MonitorContext) -> Staleness {
    let leader = ctx.consensus.leader().map(|(_, n)| n.name);
    if ctx.consensus.is_leader() {
        let ack = ctx.consensus.leadership_confirmed_within();
        return judge(&ctx.name, leader, ack, true);
    }
    let contact = ctx.leader_contact.last().map(|(age, _)| age);
    judge(&ctx.name, leader, contact, false)
}

/// [`staleness`] from its inputs: the known leader, the age of the last proof of contact, and
/// whether this monitor is the leader.
pub fn judge(
    monitor: &str,
    leader: Option<String>,
    contact_age: Option<Duration>,
    is_leader: bool,
) -> Staleness {
    let age_millis = contact_age.map_or(0, |d| d.as_millis() as u64);
    let fresh = leader.is_some() && contact_age.is_some_and(|d| d <= CONTACT_WINDOW);
    let reason = if fresh {
        String::new()
    } else {
        match (&leader, contact_age, is_leader) {
            (None, _, _) => "no Raft leader is known to this monitor".to_string(),
            (Some(_), None, true) => "this leader has no quorum acknowledgement yet".to_string(),
            (Some(_), Some(d), true) => format!(
                "this leader has had no quorum acknowledgement for {:.1} s",
                d.as_secs_f64()
            ),
            (Some(l), None, false) => format!("the leader {l} has not answered this monitor yet"),
            (Some(l), Some(d), false) => format!(
                "the leader {l} has not answered this monitor for {:.1} s",
                d.as_secs_f64()
            ),
        }
    };
    Staleness {
        monitor: monitor.to_string(),
        leader_contact: fresh,
        leader: leader.unwrap_or_default(),
        age_millis,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_within_the_window_is_fresh_and_anything_else_says_why() {
        let s = judge(
            "mon2",
            Some("mon1".into()),
            Some(Duration::from_millis(300)),
            false,
        );
        assert!(s.leader_contact && s.reason.is_empty(), "{s:?}");
        let s = judge(
            "mon2",
            Some("mon1".into()),
            Some(Duration::from_secs(9)),
            false,
        );
        assert!(!s.leader_contact);
        assert_eq!(s.age_millis, 9000);
        assert!(s.reason.contains("mon1 has not answered"), "{s:?}");
        let s = judge("mon2", None, Some(Duration::from_millis(10)), false);
        assert!(!s.leader_contact);
        assert!(s.reason.contains("no Raft leader"), "{s:?}");
        let s = judge("mon1", Some("mon1".into()), None, true);
        assert!(!s.leader_contact && s.reason.contains("quorum"), "{s:?}");
        let s = judge(
            "mon1",
            Some("mon1".into()),
            Some(Duration::from_millis(40)),
            true,
        );
        assert!(s.leader_contact);
    }
}
