//! Evidence across monitors: turns every monitor's latest report into one verdict per host and check.
//!
//! Ambiguous evidence (a check failing, which may be the observer's fault) counts only when a majority of
//! all voting monitors report it, each for at least the check's `trap_period`, in fresh reports from
//! monitors whose own network is fine. Recovery counts when a majority reports OK (at once, no trap).
//! Definite evidence (the host's own agent says mysqld is down) fails `mysql` at once.

use std::collections::BTreeMap;

use super::config::EngineConfig;
use super::input::{CheckStatus, Input, MonitorReport, CHECK_NAMES};

/// The combined verdict on one check of one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A majority reports the check OK.
    Ok,
    /// The check counts as failed; the text names the evidence.
    Failed(String),
    /// Not enough evidence either way; never changes a state.
    Unknown,
}

impl Verdict {
    /// A majority reports OK.
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Ok)
    }

    /// The check counts as failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, Verdict::Failed(_))
    }

    /// The evidence text of a failure.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Failed(r) => Some(r),
            _ => None,
        }
    }
}

/// Verdicts on one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEvidence {
    /// `ping` verdict.
    pub ping: Verdict,
    /// `mysql` verdict (definite agent evidence included).
    pub mysql: Verdict,
    /// `rep_threads` verdict.
    pub rep_threads: Verdict,
    /// `rep_backlog` verdict.
    pub rep_backlog: Verdict,
    /// Highest agent uptime in the fresh reports (to tell a short outage from a reboot).
    pub agent_uptime_s: Option<u64>,
    /// No errant-transaction check has cleared the returning host yet (`AgentFacts::errant_unchecked`).
    pub errant_unchecked: bool,
}

impl Default for HostEvidence {
    fn default() -> Self {
        HostEvidence {
            ping: Verdict::Unknown,
            mysql: Verdict::Unknown,
            rep_threads: Verdict::Unknown,
            rep_backlog: Verdict::Unknown,
            agent_uptime_s: None,
            errant_unchecked: false,
        }
    }
}

impl HostEvidence {
    /// The verdict of the check called `name`.
    pub fn get(&self, name: &str) -> &Verdict {
        match name {
            "ping" => &self.ping,
            "mysql" => &self.mysql,
            "rep_threads" => &self.rep_threads,
            _ => &self.rep_backlog,
        }
    }

    /// Ping or mysql failed (the host is down for MMM).
    pub fn down_reason(&self) -> Option<&str> {
        self.ping.reason().or(self.mysql.reason())
    }

    /// Ping and mysql both OK.
    pub fn up(&self) -> bool {
        self.ping.is_ok() && self.mysql.is_ok()
    }

    /// All four checks OK.
    pub fn all_ok(&self) -> bool {
        self.up() && self.rep_threads.is_ok() && self.rep_backlog.is_ok()
    }
}

/// Smallest number of monitors that is a majority of `total` voters.
pub fn majority(total: usize) -> usize {
    total.max(1) / 2 + 1
}

/// Reports that may be counted: from monitors whose network is fine, received within the TTL.
pub fn fresh_reports<'a>(
    input: &'a Input,
    cfg: &EngineConfig,
) -> impl Iterator<Item = (&'a String, &'a MonitorReport)> {
    let (now, ttl) = (input.now_ms, cfg.report_ttl_ms);
    input
        .reports
        .iter()
        .filter(move |(_, r)| r.network_ok && now.saturating_sub(r.received_ms) <= ttl)
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Combines the fresh reports on `host`.
pub fn host_evidence(input: &Input, cfg: &EngineConfig, host: &str) -> HostEvidence {
    let need = majority(input.monitors_total);
    let total = input.monitors_total.max(1);
    let mut ev = HostEvidence::default();
    let observations: Vec<_> = fresh_reports(input, cfg)
        .filter_map(|(name, r)| r.hosts.get(host).map(|o| (name, o)))
        .collect();
    for check in CHECK_NAMES {
        let trap = cfg.trap.get(check);
        let mut ok = 0usize;
        let mut failed: Vec<(u64, &str)> = Vec::new();
        for (_, o) in &observations {
            match o.checks.get(check) {
                Some(c) if c.status == CheckStatus::Ok => ok += 1,
                Some(c) if c.status == CheckStatus::Fail && c.lasted_ms >= trap => {
                    failed.push((c.lasted_ms, c.message.as_str()))
                }
                _ => {}
            }
        }
        let verdict = if failed.len() >= need {
            // The shortest failure among those counted is what a majority agrees on.
            failed.sort();
            let (lasted, msg) = failed[0];
            let detail = if msg.is_empty() {
                String::new()
            } else {
                format!(" ({msg})")
            };
            Verdict::Failed(format!(
                "{check} check failed on {}/{total} monitors for {}{detail}",
                failed.len(),
                secs(lasted)
            ))
        } else if ok >= need {
            Verdict::Ok
        } else {
            Verdict::Unknown
        };
        match check {
            "ping" => ev.ping = verdict,
            "mysql" => ev.mysql = verdict,
            "rep_threads" => ev.rep_threads = verdict,
            _ => ev.rep_backlog = verdict,
        }
    }
    if let Some((_, o)) = observations.iter().find(|(_, o)| o.agent_says_mysql_down) {
        let detail = if o.agent_detail.is_empty() {
            "no detail"
        } else {
            o.agent_detail.as_str()
        };
        ev.mysql = Verdict::Failed(format!("agent on {host} reports mysqld down: {detail}"));
    }
    ev.agent_uptime_s = observations
        .iter()
        .filter_map(|(_, o)| o.agent_uptime_s)
        .max();
    ev.errant_unchecked = input.agent(host).errant_unchecked;
    ev
}

/// Verdicts on every host of the configuration.
pub fn all_evidence(input: &Input, cfg: &EngineConfig) -> BTreeMap<String, HostEvidence> {
    cfg.hosts
        .keys()
        .map(|h| (h.clone(), host_evidence(input, cfg, h)))
        .collect()
}
