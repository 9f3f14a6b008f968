//! How long ago a quorum last acknowledged this leader, measured so that it keeps growing when the Raft
//! core stops reporting.
//!
//! openraft computes `millis_since_quorum_ack` when its core sends metrics; read later, that number is
//! as old as the metrics are. A core stalled in a write to its disk sends no metrics, and the last
//! number read stays small for as long as the stall lasts — while the other monitors may already have
//! elected a successor. The writer lease's renewal rule ("renew only within `A` of a quorum
//! acknowledgement", `mmm_monitor::lease`) needs the age *now*, so every metrics update is turned into
//! the instant of the acknowledgement it describes, at its receipt, and the age is counted from that
//! instant. A receipt lags the core's computation by the receiving task's scheduling delay, which the
//! lease rule's slack covers.

use std::time::{Duration, Instant};

/// The instant of the last quorum acknowledgement, as learned from metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AckClock {
    /// When a quorum last acknowledged this node as leader; `None` while it is not the leader.
    acked_at: Option<Instant>,
}

impl AckClock {
    /// Takes a metrics update received at `now`: the node leads and a quorum acknowledged it
    /// `since_ack_ms` before the metrics were made (`None`: not the leader, or no acknowledgement yet).
    pub fn observe(&mut self, leading: bool, since_ack_ms: Option<u64>, now: Instant) {
        self.acked_at = match (leading, since_ack_ms) {
            (true, Some(ms)) => Some(now.checked_sub(Duration::from_millis(ms)).unwrap_or(now)),
            _ => None,
        };
    }

    /// Time since the last acknowledgement, at `now`; `None` when not the leader.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.acked_at.map(|t| now.saturating_duration_since(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn age_grows_while_no_metrics_come() {
        let t0 = Instant::now();
        let mut c = AckClock::default();
        c.observe(true, Some(10), t0);
        assert_eq!(c.age(t0), Some(10 * MS));
        // The core stalls: no metrics for 300 ms. The old reading said 10 ms throughout.
        assert_eq!(c.age(t0 + 300 * MS), Some(310 * MS));
    }

    #[test]
    fn a_fresh_acknowledgement_resets_it_and_losing_leadership_clears_it() {
        let t0 = Instant::now();
        let mut c = AckClock::default();
        c.observe(true, Some(200), t0);
        c.observe(true, Some(5), t0 + 50 * MS);
        assert_eq!(c.age(t0 + 60 * MS), Some(15 * MS));
        c.observe(false, Some(5), t0 + 70 * MS);
        assert_eq!(
            c.age(t0 + 70 * MS),
            None,
            "a follower has no acknowledgement"
        );
        c.observe(true, None, t0 + 80 * MS);
        assert_eq!(
            c.age(t0 + 80 * MS),
            None,
            "a new leader not yet acknowledged"
        );
    }
}
