//! The writer lease as the agent keeps it, counted on the agent's own monotonic clock and never on a wall
//! clock.
//!
//! Rules:
//! - Every health message and every status reply the agent sends carries a *stamp* `(boot_id, seq)`: a
//!   random id of this agent run and a sequence number. The agent remembers when (its `Instant`) it made
//!   each recent stamp ([`StampBook`]).
//! - A lease renewal names the newest stamp the leader had received *before* it sent the renewal, and a
//!   length `L`. The agent's lease then ends at `stamp time + L` ([`Lease::extend_to`]). Since the stamp
//!   was made before the renewal was sent, this is never later than `leader's send time + L` in real time:
//!   the leader's estimate (counted from its own send, on its own monotonic clock, plus a margin for clock
//!   *rate* differences) covers the agent's lease whatever the two wall clocks say. A renewal delayed in a
//!   partition grants only what is left of it; a stamp of another run, or one too old to be remembered,
//!   grants nothing.
//! - A lease only grows: renewals that arrive out of order never shorten it; a status without the writer
//!   role clears it.
//!
//! Pure logic over `Instant`s, so expiry is tested without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Stamps remembered, newest last. A writer's agent makes about 100 stamps a second (heartbeats every
/// 50 ms and position changes on three monitors' streams, plus replies), so this covers some 20 s: well
/// over the longest lease a renewal may name.
const STAMPS_KEPT: usize = 2048;
/// A stamp older than this grants nothing even if remembered (a lease counted from it would be over).
pub const STAMP_MAX_AGE: Duration = Duration::from_secs(60);

/// A stamp as sent on the wire: which agent run, which message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Random id of the agent run that made it.
    pub boot_id: u64,
    /// Its sequence number in that run (from 1).
    pub seq: u64,
}

impl From<Stamp> for mmm_proto::LeaseStamp {
    fn from(s: Stamp) -> Self {
        mmm_proto::LeaseStamp {
            boot_id: s.boot_id,
            seq: s.seq,
        }
    }
}

/// When this agent run made each of its recent stamps.
#[derive(Debug)]
pub struct StampBook {
    /// This run's id (random, never 0).
    boot_id: u64,
    /// Last sequence number given out.
    last_seq: u64,
    /// (seq, when made), oldest first; at most [`STAMPS_KEPT`].
    recent: VecDeque<(u64, Instant)>,
}

impl StampBook {
    /// A book for a run with the given id.
    pub fn new(boot_id: u64) -> Self {
        StampBook {
            boot_id: boot_id.max(1),
            last_seq: 0,
            recent: VecDeque::new(),
        }
    }

    /// This run's id.
    pub fn boot_id(&self) -> u64 {
        self.boot_id
    }

    /// Makes a new stamp at `now` and remembers it.
    pub fn issue(&mut self, now: Instant) -> Stamp {
        self.last_seq += 1;
        if self.recent.len() >= STAMPS_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back((self.last_seq, now));
        Stamp {
            boot_id: self.boot_id,
            seq: self.last_seq,
        }
    }

    /// When `stamp` was made, if it is one of this run's and still remembered and recent at `now`.
    pub fn made_at(&self, stamp: Stamp, now: Instant) -> Option<Instant> {
        if stamp.boot_id != self.boot_id {
            return None;
        }
        let i = self
            .recent
            .binary_search_by_key(&stamp.seq, |(s, _)| *s)
            .ok()?;
        let at = self.recent[i].1;
        (now.saturating_duration_since(at) <= STAMP_MAX_AGE).then_some(at)
    }
}

/// The lease state of the agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    /// When the current lease runs out; `None` when no lease is held.
    expires_at: Option<Instant>,
    /// True once the agent noticed that a held lease ran out (so the demotion starts once).
    noticed: bool,
    /// True once the demotion for a run-out lease was carried out (until the next grant or a status
    /// without the writer role); this is what GetStatus reports.
    expired: bool,
}

impl Lease {
    /// Extends the lease to `until` (never shortens it). Returns true when it grew.
    pub fn extend_to(&mut self, until: Instant) -> bool {
        if self.expires_at.is_some_and(|t| t >= until) {
            return false;
        }
        self.expires_at = Some(until);
        self.noticed = false;
        self.expired = false;
        true
    }

    /// Drops the lease (the host is no longer the writer).
    pub fn clear(&mut self) {
        *self = Lease::default();
    }

    /// When the lease ends, if one was granted.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// True while a granted lease has not run out.
    pub fn is_valid(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now < t)
    }

    /// Time left; zero when none.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or_default()
    }

    /// Notices that the lease ran out; returns true exactly once per expiry (the caller then demotes).
    pub fn check_expiry(&mut self, now: Instant) -> bool {
        match self.expires_at {
            Some(t) if now >= t && !self.noticed => {
                self.noticed = true;
                true
            }
            _ => false,
        }
    }

    /// Records that the demotion for a noticed expiry was carried out, unless a renewal came in between.
    pub fn mark_demoted(&mut self, now: Instant) {
        if self.noticed && !self.is_valid(now) {
            self.expired = true;
        }
    }

    /// True when the agent demoted itself because the lease ran out.
    pub fn expired(&self) -> bool {
        self.expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_lease_counts_from_the_stamp_the_renewal_names_not_from_its_arrival() {
        let t0 = Instant::now();
        let mut book = StampBook::new(7);
        let s1 = book.issue(t0);
        let s2 = book.issue(t0 + 300 * MS);
        assert_eq!(s2.seq, s1.seq + 1);
        // A renewal naming s1 arrives 1.5 s later (held up in a partition): half a second is left.
        let arrive = t0 + 1500 * MS;
        let made = book.made_at(s1, arrive).expect("remembered");
        let mut l = Lease::default();
        assert!(l.extend_to(made + 2000 * MS));
        assert_eq!(l.remaining(arrive), 500 * MS);
        // One naming s2 extends it; an older one arriving late never shortens it.
        assert!(l.extend_to(book.made_at(s2, arrive).unwrap() + 2000 * MS));
        assert!(!l.extend_to(made + 2000 * MS));
        assert_eq!(l.remaining(arrive), 800 * MS);
    }

    #[test]
    fn stamps_of_another_run_unknown_or_too_old_grant_nothing() {
        let t0 = Instant::now();
        let mut book = StampBook::new(7);
        let s = book.issue(t0);
        assert_eq!(
            book.made_at(Stamp { boot_id: 8, ..s }, t0),
            None,
            "another run"
        );
        assert_eq!(book.made_at(Stamp { seq: 99, ..s }, t0), None, "never made");
        assert_eq!(book.made_at(s, t0 + STAMP_MAX_AGE + MS), None, "too old");
        for i in 0..STAMPS_KEPT as u32 {
            book.issue(t0 + i * MS);
        }
        assert_eq!(book.made_at(s, t0 + 2 * MS), None, "forgotten");
        assert_eq!(StampBook::new(0).boot_id(), 1, "a run id is never 0");
    }

    #[test]
    fn lease_expires_once_and_a_renewal_between_notice_and_demotion_counts() {
        let t0 = Instant::now();
        let mut l = Lease::default();
        assert!(!l.is_valid(t0));
        l.extend_to(t0 + 500 * MS);
        assert!(l.is_valid(t0 + 499 * MS));
        assert_eq!(l.remaining(t0 + 200 * MS), 300 * MS);
        assert!(!l.check_expiry(t0 + 400 * MS));
        assert!(!l.is_valid(t0 + 500 * MS));
        assert!(l.check_expiry(t0 + 600 * MS));
        assert!(!l.check_expiry(t0 + 700 * MS), "reported once");
        assert!(!l.expired(), "not reported before the demotion is done");
        l.mark_demoted(t0 + 800 * MS);
        assert!(l.expired());
        l.extend_to(t0 + 2000 * MS);
        assert!(!l.expired() && l.is_valid(t0 + 1500 * MS));
        l.clear();
        assert!(!l.is_valid(t0 + 1500 * MS) && !l.expired());
        l.extend_to(t0 + 100 * MS);
        assert!(l.check_expiry(t0 + 200 * MS));
        l.extend_to(t0 + 1250 * MS);
        l.mark_demoted(t0 + 300 * MS);
        assert!(!l.expired());
    }
}
