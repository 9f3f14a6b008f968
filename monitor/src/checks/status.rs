//! The result of one check and the rule that turns a stream of results into the status that counts:
//! a failure counts only once it has lasted `trap_period`, a recovery counts at once, and an
//! Unknown result (the check could not tell, e.g. MySQL error 1040) never changes what counts.
//!
//! A failure's age counts from when the first failing run *began* (a probe that got no answer within
//! its timeout shows the host was not answering from the moment it was sent), not from when its
//! timeout ran out; MMM counted from the end of the first failing run, which added one check timeout
//! (0.5 s for a ping) to every detection. [`CheckTrack::decisive_probe_ms`] says when to start the run
//! whose result can make a failure count, so detection does not also wait for the next period.
//!
//! Pure: time is passed in, so the rule is tested without clocks or sockets.

use std::time::Duration;

/// What one run of a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CheckStatus {
    /// The check passed.
    Ok,
    /// The check failed (the host is down, refuses, times out, or replication is bad).
    Fail,
    /// The check could not decide (e.g. too many connections, no ICMP socket).
    Unknown,
}

impl CheckStatus {
    /// Upper-case word for logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "OK",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Unknown => "UNKNOWN",
        }
    }
}

/// One run's outcome: its status and a message in MMM's words (without the `OK: `/`ERROR: ` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Status of this run.
    pub status: CheckStatus,
    /// What was found, for `mmmctl checks` and the logs.
    pub message: String,
}

impl CheckOutcome {
    /// A passed check.
    pub fn ok(message: impl Into<String>) -> Self {
        CheckOutcome {
            status: CheckStatus::Ok,
            message: message.into(),
        }
    }
    /// A failed check.
    pub fn fail(message: impl Into<String>) -> Self {
        CheckOutcome {
            status: CheckStatus::Fail,
            message: message.into(),
        }
    }
    /// A check that could not decide.
    pub fn unknown(message: impl Into<String>) -> Self {
        CheckOutcome {
            status: CheckStatus::Unknown,
            message: message.into(),
        }
    }
}

/// What a new result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Change {
    /// The latest status differs from the one before (or this is the first result).
    pub status_changed: bool,
    /// The counted status (`counted_ok`) flipped.
    pub counted_changed: bool,
}

impl Change {
    /// True when anybody watching the checks should look again.
    pub fn any(self) -> bool {
        self.status_changed || self.counted_changed
    }
}

/// When one run of a check began and ended (monotonic ms) and when it ended (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Monotonic milliseconds at which the run began (its probe was sent).
    pub began_ms: u64,
    /// Monotonic milliseconds at which its result was known.
    pub ended_ms: u64,
    /// Wall-clock Unix seconds at which its result was known (MMM's "last change").
    pub ended_unix: i64,
}

impl Run {
    /// A run that took no time (a result known the moment it was asked for).
    pub fn instant(ms: u64, unix: i64) -> Self {
        Run {
            began_ms: ms,
            ended_ms: ms,
            ended_unix: unix,
        }
    }

    /// How long the run took.
    pub fn took_ms(&self) -> u64 {
        self.ended_ms.saturating_sub(self.began_ms)
    }
}

/// Slack added to [`CheckTrack::decisive_probe_ms`] so the decisive run's result lands just after the
/// trap period rather than a timer tick before it.
const DECISIVE_SLACK_MS: u64 = 5;

/// The tracked state of one (host, check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTrack {
    /// Status of the latest run.
    pub status: CheckStatus,
    /// Monotonic milliseconds at which `status` began (for `lasted`): for a failure, when its first
    /// failing run began.
    pub since_ms: u64,
    /// Monotonic milliseconds at which the first failing run not yet cancelled by an OK began
    /// (Unknown keeps it).
    pub fail_since_ms: Option<u64>,
    /// The status that counts, after `trap_period`: what `mmmctl checks` shows as OK/ERROR.
    pub counted_ok: bool,
    /// Unix seconds at which `counted_ok` last changed (or tracking began).
    pub last_change_unix: i64,
    /// Message of the latest run.
    pub message: String,
}

impl CheckTrack {
    /// Starts tracking with the result of a first run.
    pub fn new(first: &CheckOutcome, run: Run, trap: Duration) -> Self {
        let mut t = CheckTrack {
            status: first.status,
            since_ms: Self::began(first, run),
            fail_since_ms: None,
            counted_ok: false,
            last_change_unix: run.ended_unix,
            message: String::new(),
        };
        t.record(first, run, trap);
        t
    }

    /// When a result's status began: a failure when its run began, anything else when it was known.
    fn began(r: &CheckOutcome, run: Run) -> u64 {
        match r.status {
            CheckStatus::Fail => run.began_ms,
            CheckStatus::Ok | CheckStatus::Unknown => run.ended_ms,
        }
    }

    /// Takes the result of a run into account and says what changed.
    pub fn record(&mut self, r: &CheckOutcome, run: Run, trap: Duration) -> Change {
        let now_ms = run.ended_ms;
        let now_unix = run.ended_unix;
        let mut change = Change::default();
        if r.status != self.status {
            self.status = r.status;
            self.since_ms = Self::began(r, run);
            change.status_changed = true;
        }
        self.message.clone_from(&r.message);
        match r.status {
            CheckStatus::Ok => {
                self.fail_since_ms = None;
                if !self.counted_ok {
                    self.counted_ok = true;
                    self.last_change_unix = now_unix;
                    change.counted_changed = true;
                }
            }
            CheckStatus::Fail => {
                let since = *self.fail_since_ms.get_or_insert(run.began_ms);
                let lasted = Duration::from_millis(now_ms.saturating_sub(since));
                if self.counted_ok && lasted >= trap {
                    self.counted_ok = false;
                    self.last_change_unix = now_unix;
                    change.counted_changed = true;
                }
            }
            CheckStatus::Unknown => {}
        }
        change
    }

    /// When (monotonic ms) to begin the next run so that, if it fails again and takes as long as
    /// the last one (`run_ms`), its result is the first that has lasted `trap`: `None` unless a
    /// failure is running that does not count yet. The caller runs at the earlier of this and its
    /// period.
    pub fn decisive_probe_ms(&self, trap: Duration, run_ms: u64) -> Option<u64> {
        let since = self.fail_since_ms?;
        if self.status != CheckStatus::Fail || !self.counted_ok {
            return None;
        }
        let trap_ms = u64::try_from(trap.as_millis()).unwrap_or(u64::MAX);
        Some(
            since
                .saturating_add(trap_ms)
                .saturating_sub(run_ms)
                .saturating_add(DECISIVE_SLACK_MS),
        )
    }

    /// How long the latest status has lasted at monotonic `now_ms`.
    pub fn lasted(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.since_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAP: Duration = Duration::from_secs(2);

    fn ok() -> CheckOutcome {
        CheckOutcome::ok("fine")
    }
    fn fail() -> CheckOutcome {
        CheckOutcome::fail("down")
    }
    /// A run that took no time, ending at `ms` / `unix`.
    fn at(ms: u64, unix: i64) -> Run {
        Run::instant(ms, unix)
    }
    /// A run that began at `began` and timed out at `ended`.
    fn timed_out(began: u64, ended: u64) -> Run {
        Run {
            began_ms: began,
            ended_ms: ended,
            ended_unix: 100 + i64::try_from(ended / 1_000).unwrap(),
        }
    }
    fn unknown() -> CheckOutcome {
        CheckOutcome::unknown("too many connections")
    }

    #[test]
    fn first_ok_counts_at_once() {
        let t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        assert!(t.counted_ok);
        assert_eq!(t.last_change_unix, 100);
        assert_eq!(t.status, CheckStatus::Ok);
    }

    #[test]
    fn first_failure_is_not_ok() {
        let t = CheckTrack::new(&fail(), at(0, 100), TRAP);
        assert!(!t.counted_ok);
        assert_eq!(t.message, "down");
    }

    #[test]
    fn failure_counts_only_after_trap_period() {
        let mut t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        let c = t.record(&fail(), at(1_000, 101), TRAP);
        assert!(c.status_changed && !c.counted_changed);
        assert!(t.counted_ok, "a fresh failure must not count yet");
        let c = t.record(&fail(), at(2_999, 102), TRAP);
        assert!(!c.any());
        assert!(t.counted_ok);
        let c = t.record(&fail(), at(3_000, 103), TRAP);
        assert!(c.counted_changed && !c.status_changed);
        assert!(!t.counted_ok);
        assert_eq!(t.last_change_unix, 103);
        assert_eq!(t.lasted(3_500), Duration::from_millis(2_500));
    }

    #[test]
    fn recovery_counts_at_once() {
        let mut t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        t.record(&fail(), at(1_000, 101), TRAP);
        t.record(&fail(), at(5_000, 105), TRAP);
        assert!(!t.counted_ok);
        let c = t.record(&ok(), at(5_100, 106), TRAP);
        assert!(c.counted_changed && c.status_changed);
        assert!(t.counted_ok);
        assert_eq!(t.last_change_unix, 106);
    }

    #[test]
    fn short_failure_is_forgotten_after_ok() {
        let mut t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        t.record(&fail(), at(1_000, 101), TRAP);
        t.record(&ok(), at(2_000, 102), TRAP);
        t.record(&fail(), at(3_500, 103), TRAP);
        assert!(t.counted_ok, "the failure clock restarts after an OK");
        t.record(&fail(), at(5_500, 105), TRAP);
        assert!(!t.counted_ok);
        assert_eq!(
            t.last_change_unix, 105,
            "last change is when counted status flipped, not first OK"
        );
    }

    #[test]
    fn unknown_never_changes_counted_status() {
        let mut t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        let c = t.record(&unknown(), at(10_000, 110), TRAP);
        assert!(c.status_changed && !c.counted_changed);
        assert!(t.counted_ok);
        let mut t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        t.record(&fail(), at(1_000, 101), TRAP);
        t.record(&fail(), at(4_000, 104), TRAP);
        assert!(!t.counted_ok);
        t.record(&unknown(), at(9_000, 109), TRAP);
        assert!(!t.counted_ok, "unknown does not recover a failed check");
        assert_eq!(t.status, CheckStatus::Unknown);
        assert_eq!(t.since_ms, 9_000);
    }

    #[test]
    fn unknown_does_not_restart_the_failure_clock() {
        let mut t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        t.record(&fail(), at(1_000, 101), TRAP);
        t.record(&unknown(), at(2_000, 102), TRAP);
        t.record(&fail(), at(3_000, 103), TRAP);
        assert!(!t.counted_ok);
        assert_eq!(t.since_ms, 3_000, "lasted restarts with each status change");
    }

    #[test]
    fn zero_trap_period_counts_at_once() {
        let mut t = CheckTrack::new(&ok(), at(0, 100), Duration::ZERO);
        t.record(&fail(), at(1, 100), Duration::ZERO);
        assert!(!t.counted_ok);
    }

    #[test]
    fn a_failure_lasts_from_when_its_first_failing_run_began() {
        // Probes every 1 s, each timing out after 500 ms; the host stops answering before the one
        // sent at 1_000. MMM counted from 1_500 and so reported at 3_500; the failure is as old as
        // the first unanswered probe, and the probe begun at 2_500 makes it count at 3_000.
        let mut t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        let c = t.record(&fail(), timed_out(1_000, 1_500), TRAP);
        assert!(c.status_changed && t.counted_ok);
        assert_eq!(t.since_ms, 1_000, "lasted counts from the probe's start");
        assert_eq!(t.lasted(1_500), Duration::from_millis(500));
        assert_eq!(
            t.decisive_probe_ms(TRAP, 500),
            Some(2_505),
            "the run that can make it count begins trap - its own length after the first"
        );
        t.record(&fail(), timed_out(2_000, 2_500), TRAP);
        assert!(t.counted_ok, "1.5 s of failure does not count");
        let c = t.record(&fail(), timed_out(2_505, 3_005), TRAP);
        assert!(c.counted_changed && !t.counted_ok);
        assert_eq!(t.decisive_probe_ms(TRAP, 500), None, "it counts already");
    }

    #[test]
    fn decisive_probe_only_while_a_failure_does_not_count_yet() {
        let t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        assert_eq!(t.decisive_probe_ms(TRAP, 0), None, "nothing failing");
        let mut t = CheckTrack::new(&ok(), at(0, 100), TRAP);
        t.record(&fail(), at(1_000, 101), TRAP);
        assert_eq!(
            t.decisive_probe_ms(TRAP, 0),
            Some(3_005),
            "a refusal answers at once: the deciding run begins at the trap's end"
        );
        t.record(&unknown(), at(1_500, 101), TRAP);
        assert_eq!(
            t.decisive_probe_ms(TRAP, 0),
            None,
            "unknown decides nothing"
        );
        let t = CheckTrack::new(&fail(), at(0, 100), TRAP);
        assert_eq!(
            t.decisive_probe_ms(TRAP, 0),
            None,
            "a check that never passed is failed already"
        );
    }
}
