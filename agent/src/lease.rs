//! The writer lease: granted by each SetStatus that gives this host the writer role, counted from receipt.
//! Pure logic over `Instant`s, so expiry is tested without sleeping.

use std::time::{Duration, Instant};

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
    /// Grants (or renews) a lease of `length` received at `received_at`.
    pub fn grant(&mut self, received_at: Instant, length: Duration) {
        self.expires_at = Some(received_at + length);
        self.noticed = false;
        self.expired = false;
    }

    /// Drops the lease (the host is no longer the writer).
    pub fn clear(&mut self) {
        *self = Lease::default();
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

    #[test]
    fn lease_runs_from_receipt_and_expires_once() {
        let t0 = Instant::now();
        let mut l = Lease::default();
        assert!(!l.is_valid(t0));
        l.grant(t0, Duration::from_millis(500));
        assert!(l.is_valid(t0 + Duration::from_millis(499)));
        assert_eq!(
            l.remaining(t0 + Duration::from_millis(200)),
            Duration::from_millis(300)
        );
        assert!(!l.check_expiry(t0 + Duration::from_millis(400)));
        assert!(!l.is_valid(t0 + Duration::from_millis(500)));
        assert!(l.check_expiry(t0 + Duration::from_millis(600)));
        assert!(
            !l.check_expiry(t0 + Duration::from_millis(700)),
            "reported once"
        );
        assert!(!l.expired(), "not reported before the demotion is done");
        l.mark_demoted(t0 + Duration::from_millis(800));
        assert!(l.expired());
        assert_eq!(l.remaining(t0 + Duration::from_secs(1)), Duration::ZERO);
        l.grant(t0 + Duration::from_secs(1), Duration::from_secs(1));
        assert!(!l.expired() && l.is_valid(t0 + Duration::from_millis(1500)));
        l.clear();
        assert!(!l.is_valid(t0 + Duration::from_millis(1500)) && !l.expired());
        // A renewal between noticing and demoting: nothing is reported expired.
        l.grant(t0, Duration::from_millis(100));
        assert!(l.check_expiry(t0 + Duration::from_millis(200)));
        l.grant(t0 + Duration::from_millis(250), Duration::from_secs(1));
        l.mark_demoted(t0 + Duration::from_millis(300));
        assert!(!l.expired());
    }
}
