//! `mmmctl history --timing`: where the time of each writer move went, from the committed decisions.
//!
//! A move starts at the decision `<to> (failover started)` or `<to> (switchover started)` of a role,
//! and takes in the step decisions of that role that follow (`demote-old -> catch-up`, ...) until the
//! failover ends (`completed` or `abandoned`). The detection is the last decision about the old writer's
//! state before the start (within [`DETECTION_WINDOW_MS`]); offsets are counted from it when there is
//! one, else from the start. Each decision carries the leader's clock when it was proposed, so steps
//! decided in the same leader round show the same offset; what happens on the hosts after the last
//! commit (the new writer opening) is not in the history.

use chrono::TimeZone;
use mmm_proto::{DecisionView, HistoryReply};
use serde::Serialize;

/// How far before a move's start a state change of the old writer still counts as its detection.
pub const DETECTION_WINDOW_MS: i64 = 30_000;

/// One step of a move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Milliseconds after the timeline's origin (the detection, else the start).
    pub at_ms: i64,
    /// What was decided (`db1: ONLINE -> HARD_OFFLINE`, `demote-old -> catch-up`).
    pub what: String,
}

/// One writer move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// The role moved.
    pub role: String,
    /// The old owner ("-" when there was none).
    pub from: String,
    /// The new owner.
    pub to: String,
    /// Planned (switchover) or not (failover).
    pub planned: bool,
    /// The origin's time, ms since the Unix epoch.
    pub origin_millis: i64,
    /// The steps in order.
    pub steps: Vec<Step>,
    /// How it ended: `completed`, `abandoned`, or "" while under way (or beyond the history asked for).
    pub outcome: String,
    /// Milliseconds from the origin to the end ("-1" while under way).
    pub total_ms: i64,
}

fn started(d: &DecisionView) -> Option<(String, bool)> {
    let to = d.to.strip_suffix(" (failover started)").map(|t| (t, false));
    let to = to.or_else(|| {
        d.to.strip_suffix(" (switchover started)")
            .map(|t| (t, true))
    });
    to.map(|(t, planned)| (t.to_string(), planned))
}

/// The writer moves in `r`, oldest first.
pub fn timelines(r: &HistoryReply) -> Vec<Timeline> {
    let ds = &r.decisions;
    let mut out = Vec::new();
    for (i, d) in ds.iter().enumerate() {
        let Some((to, planned)) = started(d) else {
            continue;
        };
        let start = d.time_millis;
        // The detection: the last state change of the old writer before the start (a planned
        // switchover has none: it is counted from its start).
        let detection = ds[..i].iter().rev().find(|e| {
            !planned
                && e.host == d.from
                && e.role.is_empty()
                && start - e.time_millis <= DETECTION_WINDOW_MS
                && !e.from.is_empty()
        });
        let origin = detection.map_or(start, |e| e.time_millis);
        let mut steps = Vec::new();
        if let Some(e) = detection {
            steps.push(Step {
                at_ms: 0,
                what: format!("{}: {} -> {}", e.host, e.from, e.to),
            });
        }
        steps.push(Step {
            at_ms: start - origin,
            what: if planned {
                "switchover started".into()
            } else {
                "failover started".into()
            },
        });
        let mut outcome = String::new();
        let mut total_ms = -1;
        for e in &ds[i + 1..] {
            if started(e).is_some() {
                break;
            }
            if e.role != d.role || e.host != to {
                continue;
            }
            steps.push(Step {
                at_ms: e.time_millis - origin,
                what: format!("{} -> {}", e.from, e.to),
            });
            if e.to == "completed" || e.to == "abandoned" {
                outcome = e.to.clone();
                total_ms = e.time_millis - origin;
                break;
            }
        }
        out.push(Timeline {
            role: d.role.clone(),
            from: if d.from.is_empty() {
                "-".into()
            } else {
                d.from.clone()
            },
            to,
            planned,
            origin_millis: origin,
            steps,
            outcome,
            total_ms,
        });
    }
    out
}

/// The text of `mmmctl history --timing`.
pub fn format<Tz: TimeZone>(lines: &[Timeline], tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    use std::fmt::Write;
    let mut out = String::new();
    if lines.is_empty() {
        out.push_str("No writer moves in the history asked for.\n");
    }
    for t in lines {
        let kind = if t.planned { "switchover" } else { "failover" };
        let when = tz
            .timestamp_millis_opt(t.origin_millis)
            .single()
            .map(|w| w.format("%Y/%m/%d %H:%M:%S%.3f").to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "{kind} of {} {} -> {} at {when}", t.role, t.from, t.to);
        for s in &t.steps {
            let _ = writeln!(out, "  {:>+7} ms  {}", s.at_ms, s.what);
        }
        if t.total_ms >= 0 {
            let _ = writeln!(out, "  {} after {} ms", t.outcome, t.total_ms);
        } else {
            out.push_str("  not ended (under way, or beyond the history asked for)\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: i64, host: &str, role: &str, from: &str, to: &str) -> DecisionView {
        DecisionView {
            time_millis: 1_795_755_600_000 + ms,
            host: host.into(),
            role: role.into(),
            from: from.into(),
            to: to.into(),
            ..Default::default()
        }
    }

    fn reply(ds: Vec<DecisionView>) -> HistoryReply {
        HistoryReply {
            decisions: ds,
            staleness: None,
        }
    }

    #[test]
    fn a_failover_from_its_detection_to_its_end() {
        let r = reply(vec![
            d(0, "db3", "reader", "db1", "db3"),
            d(1_000, "db1", "", "ONLINE", "HARD_OFFLINE"),
            d(1_000, "db2", "writer", "db1", "db2 (failover started)"),
            d(1_000, "", "writer(10.0.0.100)", "db1", "-"),
            d(1_080, "db2", "writer", "demote-old", "catch-up"),
            d(1_210, "db2", "writer", "catch-up", "repoint"),
            d(1_210, "db2", "writer", "repoint", "promote"),
            d(1_210, "db2", "writer", "promote", "completed"),
            d(1_210, "db2", "active_master", "db1", "db2"),
        ]);
        let t = timelines(&r);
        assert_eq!(t.len(), 1);
        let t = &t[0];
        assert_eq!(
            (t.from.as_str(), t.to.as_str(), t.planned),
            ("db1", "db2", false)
        );
        let steps: Vec<(i64, &str)> = t.steps.iter().map(|s| (s.at_ms, s.what.as_str())).collect();
        assert_eq!(
            steps,
            vec![
                (0, "db1: ONLINE -> HARD_OFFLINE"),
                (0, "failover started"),
                (80, "demote-old -> catch-up"),
                (210, "catch-up -> repoint"),
                (210, "repoint -> promote"),
                (210, "promote -> completed"),
            ]
        );
        assert_eq!((t.outcome.as_str(), t.total_ms), ("completed", 210));
        let text = format(&timelines(&r), &chrono::Utc);
        assert!(
            text.contains("failover of writer db1 -> db2 at 2026/"),
            "{text}"
        );
        assert!(
            text.contains("     +80 ms  demote-old -> catch-up"),
            "{text}"
        );
        assert!(text.contains("completed after 210 ms"), "{text}");
    }

    #[test]
    fn a_switchover_without_detection_and_one_not_ended() {
        let r = reply(vec![
            // The old writer's last state change just before a switchover is not its detection.
            d(-500, "db1", "", "UNKNOWN", "ONLINE"),
            d(0, "db2", "writer", "db1", "db2 (switchover started)"),
            d(30, "db2", "writer", "demote-old", "catch-up"),
            d(40, "db2", "writer", "promote", "completed"),
            // A stale state change long before does not count as detection.
            d(100_000, "db2", "", "ONLINE", "HARD_OFFLINE"),
            d(200_000, "db1", "writer", "db2", "db1 (failover started)"),
        ]);
        let t = timelines(&r);
        assert_eq!(t.len(), 2);
        assert!(t[0].planned);
        assert_eq!(t[0].steps[0].what, "switchover started");
        assert_eq!(t[0].total_ms, 40);
        assert_eq!(t[1].steps.len(), 1, "no detection within the window");
        assert_eq!(t[1].total_ms, -1);
        assert!(format(&t, &chrono::Utc).contains("not ended"));
        assert!(format(&[], &chrono::Utc).starts_with("No writer moves"));
    }
}
