//! Compact records of periodic samples: consecutive samples with the same value are kept as one [`Run`] (its
//! first and last sample's times and a count), so a run of any length costs the same and every change of
//! value keeps the exact sample bounds on both sides.

use std::time::Instant;

/// When one sample was taken: the value was true at some moment between `sent` and `received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleTimes {
    /// When the question was sent (or the connect attempt began).
    pub sent: Instant,
    /// When the answer (or the timeout) came.
    pub received: Instant,
}

/// Maximal sequence of consecutive samples with the same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<T> {
    /// The value every sample of the run had.
    pub value: T,
    /// The run's first sample.
    pub first: SampleTimes,
    /// The run's last sample (equal to `first` for a run of one).
    pub last: SampleTimes,
    /// Number of samples in the run.
    pub count: u32,
}

impl<T> Run<T> {
    /// The part of the run during which the value certainly held at *some* sample and, by the samples, at
    /// every moment between: from the first sample's answer to the last sample's question. `None` when the
    /// run is too short to have such a part (a single sample).
    pub fn certain(&self) -> Option<(Instant, Instant)> {
        (self.last.sent > self.first.received).then_some((self.first.received, self.last.sent))
    }
}

/// All samples of one quantity on one host, as runs in sampling order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline<T> {
    /// The runs, oldest first; consecutive runs have different values.
    pub runs: Vec<Run<T>>,
}

impl<T> Default for Timeline<T> {
    fn default() -> Self {
        Self { runs: Vec::new() }
    }
}

impl<T: PartialEq> Timeline<T> {
    /// Records one sample (samples must be pushed in the order they were taken).
    pub fn push(&mut self, sent: Instant, received: Instant, value: T) {
        let times = SampleTimes { sent, received };
        match self.runs.last_mut() {
            Some(run) if run.value == value => {
                run.last = times;
                run.count += 1;
            }
            _ => self.runs.push(Run {
                value,
                first: times,
                last: times,
                count: 1,
            }),
        }
    }

    /// Number of samples recorded.
    pub fn samples(&self) -> u64 {
        self.runs.iter().map(|r| u64::from(r.count)).sum()
    }

    /// The certain parts ([`Run::certain`]) of the runs whose value satisfies `pred`.
    pub fn windows(&self, pred: impl Fn(&T) -> bool) -> Vec<(Instant, Instant)> {
        self.runs
            .iter()
            .filter(|r| pred(&r.value))
            .filter_map(Run::certain)
            .collect()
    }

    /// True if some sample whose value satisfies `pred` was taken entirely within `[from, to]`, or a run of
    /// such samples began before `from` and ended after `to` (its samples cover the whole interval).
    pub fn seen_between(&self, from: Instant, to: Instant, pred: impl Fn(&T) -> bool) -> bool {
        self.runs.iter().filter(|r| pred(&r.value)).any(|r| {
            let inside = |s: &SampleTimes| s.sent >= from && s.received <= to;
            inside(&r.first) || inside(&r.last) || (r.first.received <= from && r.last.sent >= to)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn equal_samples_collapse_into_runs_with_their_bounds() {
        let t0 = Instant::now();
        let mut t = Timeline::default();
        for (i, v) in [1, 1, 1, 0, 0, 1].into_iter().enumerate() {
            let s = t0 + MS * (20 * i as u32);
            t.push(s, s + MS, v);
        }
        assert_eq!(t.runs.len(), 3);
        assert_eq!(t.samples(), 6);
        assert_eq!(t.runs[0].count, 3);
        assert_eq!(t.runs[1].first.sent, t0 + MS * 60);
        assert_eq!(t.runs[1].last.received, t0 + MS * 81);
        // The 0-run is certain from the first answer (61) to the last question (80).
        assert_eq!(t.windows(|v| *v == 0), vec![(t0 + MS * 61, t0 + MS * 80)]);
        // The single 1-sample at the end has no certain part.
        assert_eq!(t.windows(|v| *v == 1).len(), 1);
        assert!(t.seen_between(t0 + MS * 55, t0 + MS * 70, |v| *v == 0));
        assert!(!t.seen_between(t0 + MS * 82, t0 + MS * 99, |v| *v == 0));
    }
}
