//! The result of one check and the rule that turns a stream of results into the status that counts:
//! a failure counts only once it has lasted `trap_period`, a recovery counts at once, and an
//! Unknown result (the check could not tell, e.g. MySQL error 1040) never changes what counts.
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

/// The tracked state of one (host, check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTrack {
    /// Status of the latest run.
    pub status: CheckStatus,
    /// Monotonic milliseconds at which `status` began (for `lasted`).
    pub since_ms: u64,
    /// Monotonic milliseconds of the first failure not yet cancelled by an OK (Unknown keeps it).
    pub fail_since_ms: Option<u64>,
    /// The status that counts, after `trap_period`: what `mmmctl checks` shows as OK/ERROR.
    pub counted_ok: bool,
    /// Unix seconds at which `counted_ok` last changed (or tracking began).
    pub last_change_unix: i64,
    /// Message of the latest run.
    pub message: String,
}

impl CheckTrack {
    /// Starts tracking with a first result, at monotonic `now_ms` / wall-clock `now_unix`.
    pub fn new(first: &CheckOutcome, now_ms: u64, now_unix: i64, trap: Duration) -> Self {
        let mut t = CheckTrack {
            status: first.status,
            since_ms: now_ms,
            fail_since_ms: None,
            counted_ok: false,
            last_change_unix: now_unix,
            message: String::new(),
        };
        t.record(first, now_ms, now_unix, trap);
        t
    }

    /// Takes a new result into account and says what changed.
    pub fn record(
        &mut self,
        r: &CheckOutcome,
        now_ms: u64,
        now_unix: i64,
        trap: Duration,
    ) -> Change {
        let mut change = Change::default();
        if r.status != self.status {
            self.status = r.status;
            self.since_ms = now_ms;
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
                let since = *self.fail_since_ms.get_or_insert(now_ms);
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
    fn unknown() -> CheckOutcome {
        CheckOutcome::unknown("too many connections")
    }

    #[test]
    fn first_ok_counts_at_once() {
        let t = CheckTrack::new(&ok(), 0, 100, TRAP);
        assert!(t.counted_ok);
        assert_eq!(t.last_change_unix, 100);
        assert_eq!(t.status, CheckStatus::Ok);
    }

    #[test]
    fn first_failure_is_not_ok() {
        let t = CheckTrack::new(&fail(), 0, 100, TRAP);
        assert!(!t.counted_ok);
        assert_eq!(t.message, "down");
    }

    #[test]
    fn failure_counts_only_after_trap_period() {
        let mut t = CheckTrack::new(&ok(), 0, 100, TRAP);
        let c = t.record(&fail(), 1_000, 101, TRAP);
        assert!(c.status_changed && !c.counted_changed);
        assert!(t.counted_ok, "a fresh failure must not count yet");
        let c = t.record(&fail(), 2_999, 102, TRAP);
        assert!(!c.any());
        assert!(t.counted_ok);
        let c = t.record(&fail(), 3_000, 103, TRAP);
        assert!(c.counted_changed && !c.status_changed);
        assert!(!t.counted_ok);
        assert_eq!(t.last_change_unix, 103);
        assert_eq!(t.lasted(3_500), Duration::from_millis(2_500));
    }

    #[test]
    fn recovery_counts_at_once() {
        let mut t = CheckTrack::new(&ok(), 0, 100, TRAP);
        t.record(&fail(), 1_000, 101, TRAP);
        t.record(&fail(), 5_000, 105, TRAP);
        assert!(!t.counted_ok);
        let c = t.record(&ok(), 5_100, 106, TRAP);
        assert!(c.counted_changed && c.status_changed);
        assert!(t.counted_ok);
        assert_eq!(t.last_change_unix, 106);
    }

    #[test]
    fn short_failure_is_forgotten_after_ok() {
        let mut t = CheckTrack::new(&ok(), 0, 100, TRAP);
        t.record(&fail(), 1_000, 101, TRAP);
        t.record(&ok(), 2_000, 102, TRAP);
        t.record(&fail(), 3_500, 103, TRAP);
        assert!(t.counted_ok, "the failure clock restarts after an OK");
        t.record(&fail(), 5_500, 105, TRAP);
        assert!(!t.counted_ok);
        assert_eq!(
            t.last_change_unix, 105,
            "last change is when counted status flipped, not first OK"
        );
    }

    #[test]
    fn unknown_never_changes_counted_status() {
        let mut t = CheckTrack::new(&ok(), 0, 100, TRAP);
        let c = t.record(&unknown(), 10_000, 110, TRAP);
        assert!(c.status_changed && !c.counted_changed);
        assert!(t.counted_ok);
        let mut t = CheckTrack::new(&ok(), 0, 100, TRAP);
        t.record(&fail(), 1_000, 101, TRAP);
        t.record(&fail(), 4_000, 104, TRAP);
        assert!(!t.counted_ok);
        t.record(&unknown(), 9_000, 109, TRAP);
        assert!(!t.counted_ok, "unknown does not recover a failed check");
        assert_eq!(t.status, CheckStatus::Unknown);
        assert_eq!(t.since_ms, 9_000);
    }

    #[test]
    fn unknown_does_not_restart_the_failure_clock() {
        let mut t = CheckTrack::new(&ok(), 0, 100, TRAP);
        t.record(&fail(), 1_000, 101, TRAP);
        t.record(&unknown(), 2_000, 102, TRAP);
        t.record(&fail(), 3_000, 103, TRAP);
        assert!(!t.counted_ok);
        assert_eq!(t.since_ms, 3_000, "lasted restarts with each status change");
    }

    #[test]
    fn zero_trap_period_counts_at_once() {
        let mut t = CheckTrack::new(&ok(), 0, 100, Duration::ZERO);
        t.record(&fail(), 1, 100, Duration::ZERO);
        assert!(!t.counted_ok);
    }
}
