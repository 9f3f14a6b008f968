//! The leader's side of the writer lease: when it may renew, and until when it must assume a lease it (or
//! a predecessor) granted may still let the old writer write. All the margin arithmetic is here.
//!
//! What the agent does (see `mmm_agent::lease` and `mmm_agent::fence`): its lease ends at `stamp + L` on
//! its own monotonic clock, where the stamp is one of its own messages that the leader had received before
//! it sent the renewal; the same end is kept in mysqld, whose fence event denies writes within 400 ms after
//! it whether or not the agent is alive, and an agent whose look at mysqld after it gets no answer kills
//! mysqld (`mmm_agent::last_resort`, for a server too stalled to run either): no server accepts
//! writes `F` (`mmm_proto::FENCE_BOUND_MILLIS`, 750 ms) after its lease ends.
//!
//! Assumptions: clocks run at rates that differ by at most `ρ` ([`CLOCK_RATE_BOUND`]); nothing assumes
//! synchronized wall clocks. A renewal is sent only while a quorum of monitors acknowledged this leader
//! within `A` ([`RENEW_MAX_QUORUM_ACK_AGE`]).
//!
//! Not renewing into silence: a renewal that only extends the lease (the writer's status is unchanged)
//! is sent only while the freshest stamp of the writer's agent arrived within `S`
//! ([`RENEW_MAX_STAMP_AGE`]; the agent sends one every `mmm_proto::WRITER_HEARTBEAT_MILLIS`). When the
//! writer's link dies, renewals stop `S` after its last stamp at the latest, instead of one more being
//! sent into the dead link a third of a lease later, naming the last stamp and counting the whole lease
//! from it. This only ever sends fewer renewals, so it is safe whatever `S` is; it makes the lease of a
//! writer cut off end earlier in most cases (when no renewal was due within `S` of the cut), and a
//! lease never later. A writer whose stamps stop for a whole lease loses its lease, as it would anyway
//! once its health stream was found silent.
//!
//! Guarantees, in real time:
//! - own renewal naming a stamp this monitor received at `s` (the agent made the stamp before `s` and
//!   counts the lease from it; `s` is the send time for a renewal without a stamp): the agent's lease
//!   ends before `s + L(1+ρ)`, writes stop before `s + L(1+ρ) + F(1+ρ)`; [`own_lease_over_after`] adds
//!   a slack `ε` for timer granularity. Counting from the stamp's receipt rather than the send time
//!   matters when the link dies: a renewal sent into it names a stamp from before, so the lease is
//!   over that much sooner.
//! - a predecessor's renewals: it renewed only while a quorum acknowledged it within `A`; this leader was
//!   elected with a vote from at least one of that quorum, given after its acknowledgement, so the
//!   predecessor's last renewal was sent before `election + A`. This leader noticed its election no
//!   earlier than the election, so [`inherited_lease_over_after`] (`since + A + L(1+ρ) + F(1+ρ) + ε`) is
//!   safe counted from when it noticed.

use std::time::{Duration, Instant};

/// Largest relative difference between two clocks' rates assumed (1 %: far above what NTP-disciplined
/// or even free-running quartz clocks drift, so a virtual machine's clock counts too).
pub const CLOCK_RATE_BOUND: f64 = 0.01;
/// Slack for timer granularity and scheduling between a deadline and the code that acts on it.
pub const SLACK: Duration = Duration::from_millis(50);
/// A leader renews a lease only while a quorum acknowledged it this recently (openraft heartbeats every
/// 50 ms, so a healthy leader's acknowledgement is at most about that old).
pub const RENEW_MAX_QUORUM_ACK_AGE: Duration = Duration::from_millis(250);

/// A renewal that only extends the writer's lease is sent only while a stamp of its agent arrived this
/// recently: three heartbeats, so one lost heartbeat and a late one do not hold renewals back, while a
/// dead link stops them 150 ms after its last stamp.
pub const RENEW_MAX_STAMP_AGE: Duration =
    Duration::from_millis(mmm_proto::WRITER_HEARTBEAT_MILLIS * 3);
const _: () = assert!(RENEW_MAX_STAMP_AGE.as_millis() > mmm_proto::WRITER_HEARTBEAT_MILLIS as u128);

/// The lease parameters of one cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaseBounds {
    /// Lease length granted with each renewal.
    pub lease: Duration,
    /// Bound of the fence kept in mysqld after the lease ends.
    pub fence: Duration,
    /// Largest quorum-acknowledgement age at which a renewal is still sent.
    pub max_ack_age: Duration,
    /// Largest age of the writer agent's freshest stamp at which a renewal that only extends the
    /// lease is still sent.
    pub max_stamp_age: Duration,
    /// Relative clock-rate difference assumed.
    pub rate: f64,
    /// Timer slack.
    pub slack: Duration,
}

impl LeaseBounds {
    /// The defaults for a lease of `lease`.
    pub fn new(lease: Duration) -> Self {
        LeaseBounds {
            lease,
            fence: Duration::from_millis(mmm_proto::FENCE_BOUND_MILLIS),
            max_ack_age: RENEW_MAX_QUORUM_ACK_AGE,
            max_stamp_age: RENEW_MAX_STAMP_AGE,
            rate: CLOCK_RATE_BOUND,
            slack: SLACK,
        }
    }

    /// `d` stretched by the clock-rate bound (rounded up to a millisecond).
    fn stretched(&self, d: Duration) -> Duration {
        let ms = d.as_secs_f64() * 1000.0 * (1.0 + self.rate);
        Duration::from_millis(ms.ceil() as u64)
    }

    /// Time after its own renewal's sending at which the old writer certainly writes no more.
    pub fn after_own_renewal(&self) -> Duration {
        self.stretched(self.lease) + self.stretched(self.fence) + self.slack
    }

    /// Time after this node noticed it became leader at which every lease a predecessor granted is
    /// certainly over, fence included.
    pub fn after_leadership_start(&self) -> Duration {
        self.max_ack_age + self.after_own_renewal()
    }

    /// Whether a renewal may be sent with the quorum last acknowledged `ack_age` ago.
    pub fn may_renew(&self, ack_age: Option<Duration>) -> bool {
        ack_age.is_some_and(|a| a <= self.max_ack_age)
    }

    /// Whether a push to an agent is held back for its silence: it grants the writer lease
    /// (`grants_writer`), only renews it (`status_changed` false: a promotion or any other change of
    /// the writer's status is sent at once, naming whatever stamp there is), and the freshest stamp
    /// of the agent's current run arrived longer than `max_stamp_age` ago (`stamp_age`; `None`: no
    /// stamp). See the module docs ("not renewing into silence").
    pub fn holds_renewal(
        &self,
        grants_writer: bool,
        status_changed: bool,
        stamp_age: Option<Duration>,
    ) -> bool {
        grants_writer && !status_changed && stamp_age.is_none_or(|a| a > self.max_stamp_age)
    }
}

/// When the writer's lease is certainly over, fence included, for a leader that took over at `since` and
/// last sent a renewal at `last_sent` (if it did).
pub fn lease_over_at(b: &LeaseBounds, since: Instant, last_sent: Option<Instant>) -> Instant {
    let inherited = inherited_lease_over_after(b, since);
    match last_sent {
        Some(s) => inherited.max(own_lease_over_after(b, s)),
        None => inherited,
    }
}

/// See [`LeaseBounds::after_own_renewal`].
pub fn own_lease_over_after(b: &LeaseBounds, sent: Instant) -> Instant {
    sent + b.after_own_renewal()
}

/// See [`LeaseBounds::after_leadership_start`].
pub fn inherited_lease_over_after(b: &LeaseBounds, since: Instant) -> Instant {
    since + b.after_leadership_start()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const ZERO: Duration = Duration::ZERO;

    #[test]
    fn margins_table() {
        // (lease, fence, max ack age, rate, slack) -> (after own renewal, after leadership start)
        let cases = [
            ((2000, 700, 250, 0.01, 50), (2020 + 707 + 50, 250 + 2777)),
            ((2000, 400, 250, 0.01, 50), (2020 + 404 + 50, 250 + 2474)),
            ((2000, 400, 250, 0.0, 0), (2400, 2650)),
            ((3000, 400, 250, 0.01, 50), (3030 + 404 + 50, 250 + 3484)),
            ((500, 0, 100, 0.01, 10), (505 + 10, 100 + 515)),
        ];
        for ((lease, fence, ack, rate, slack), (own, inherited)) in cases {
            let b = LeaseBounds {
                lease: lease * MS,
                fence: fence * MS,
                max_ack_age: ack * MS,
                max_stamp_age: RENEW_MAX_STAMP_AGE,
                rate,
                slack: slack * MS,
            };
            assert_eq!(
                b.after_own_renewal(),
                own * MS,
                "{lease} {fence} {ack} {rate}"
            );
            assert_eq!(b.after_leadership_start(), inherited * MS);
        }
    }

    #[test]
    fn the_later_of_own_and_inherited_counts() {
        let b = LeaseBounds::new(2000 * MS);
        let t0 = Instant::now();
        assert_eq!(lease_over_at(&b, t0, None), t0 + b.after_leadership_start());
        assert_eq!(
            lease_over_at(&b, t0, Some(t0 + 10 * MS)),
            t0 + b.after_leadership_start(),
            "an early own renewal ends before the inherited bound"
        );
        let late = t0 + 1000 * MS;
        assert_eq!(
            lease_over_at(&b, t0, Some(late)),
            late + b.after_own_renewal()
        );
    }

    #[test]
    fn renewals_that_only_extend_need_a_fresh_stamp() {
        let b = LeaseBounds::new(2000 * MS);
        assert_eq!(b.max_stamp_age, 150 * MS);
        // (grants the writer lease, status changed, stamp age) -> held
        let cases = [
            ((true, false, Some(ZERO)), false),
            ((true, false, Some(50 * MS)), false), // one heartbeat old
            ((true, false, Some(150 * MS)), false), // a heartbeat lost, the next late
            ((true, false, Some(151 * MS)), true), // silence: the link may be dead
            ((true, false, None), true),           // no stamp of the agent's current run
            ((true, true, Some(5000 * MS)), false), // a promotion or change goes out at once
            ((true, true, None), false),
            ((false, false, Some(5000 * MS)), false), // no lease granted: nothing to hold
            ((false, false, None), false),
        ];
        for ((writer, changed, age), held) in cases {
            assert_eq!(
                b.holds_renewal(writer, changed, age),
                held,
                "writer {writer}, changed {changed}, stamp age {age:?}"
            );
        }
    }

    #[test]
    fn renewals_need_a_fresh_quorum() {
        let b = LeaseBounds::new(2000 * MS);
        assert!(b.may_renew(Some(40 * MS)));
        assert!(b.may_renew(Some(250 * MS)));
        assert!(!b.may_renew(Some(251 * MS)));
        assert!(!b.may_renew(None), "not the leader");
    }
}
