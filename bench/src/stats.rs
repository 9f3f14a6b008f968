//! Percentiles of measured durations and the markdown rows the benchmarks print.

use std::time::Duration;

/// A set of measurements of one quantity.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// The measurements, in the order taken.
    values: Vec<Duration>,
}

impl Samples {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one measurement.
    pub fn push(&mut self, d: Duration) {
        self.values.push(d);
    }

    /// Number of measurements.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing was measured.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The `p` quantile (0.0..=1.0, nearest rank); `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.values.is_empty() {
            return None;
        }
        let mut v = self.values.clone();
        v.sort();
        let rank = (p.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
        Some(v[rank.saturating_sub(1).min(v.len() - 1)])
    }

    /// The latest measurement.
    pub fn last(&self) -> Option<Duration> {
        self.values.last().copied()
    }

    /// The largest measurement.
    pub fn max(&self) -> Option<Duration> {
        self.values.iter().max().copied()
    }

    /// `| label | n | p50 | p95 | max |` as a markdown row.
    pub fn row(&self, label: &str) -> String {
        format!(
            "| {label} | {} | {} | {} | {} |",
            self.len(),
            fmt_ms(self.percentile(0.5)),
            fmt_ms(self.percentile(0.95)),
            fmt_ms(self.max())
        )
    }
}

/// The header matching [`Samples::row`].
pub fn header(first: &str) -> String {
    format!("| {first} | runs | p50 | p95 | max |\n|---|---|---|---|---|")
}

/// Milliseconds with no decimals, or `-` when there is no value.
pub fn fmt_ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{} ms", d.as_millis()),
        None => "-".into(),
    }
}

/// Signed difference `b - a` of two Unix-millisecond times, as a duration (0 when negative).
pub fn between_ms(a: i64, b: i64) -> Duration {
    Duration::from_millis(b.saturating_sub(a).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::new();
        for ms in 1..=20 {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.percentile(0.5), Some(Duration::from_millis(10)));
        assert_eq!(s.percentile(0.95), Some(Duration::from_millis(19)));
        assert_eq!(s.max(), Some(Duration::from_millis(20)));
        assert_eq!(Samples::new().percentile(0.5), None);
        assert_eq!(between_ms(10, 5), Duration::ZERO);
    }
}
