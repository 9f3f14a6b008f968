//! Checking a [`History`] against the servers: every acknowledged id is on every given host (accepted by the
//! server the client was told), and the hosts converge to the same GTID state and the same rows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;

use super::history::History;
use super::TABLE;
use crate::Lab;

/// How long [`History::verify`] waits for the hosts to have every acknowledged id and to converge.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on each query of the check.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many ids are listed per host in a problem description.
const MAX_LISTED: usize = 20;

/// The verdict of [`History::verify`].
#[derive(Debug, Clone)]
pub struct Report {
    /// Number of acknowledged writes checked.
    pub acked: usize,
    /// Per host, acknowledged ids it does not have (only hosts with some are listed).
    pub missing: BTreeMap<String, Vec<u64>>,
    /// Per host, acknowledged ids whose row names another server than the one that acknowledged it.
    pub wrong_server: BTreeMap<String, Vec<u64>>,
    /// Per host, `@@gtid_binlog_state` at the last look.
    pub gtid: BTreeMap<String, String>,
    /// Per host, the number of rows at the last look (acknowledged plus unknown ids that made it).
    pub rows: BTreeMap<String, usize>,
    /// True if every host had the same GTID binlog state and the same set of ids at the last look.
    pub converged: bool,
    /// Longest time without an acknowledged write.
    pub longest_outage: Duration,
    /// Split-brain findings ([`History::split_brain`]).
    pub split_brain: Vec<String>,
    /// Per reader address, the longest time without a successful read.
    pub read_outages: BTreeMap<Ipv4Addr, Duration>,
}

impl Report {
    /// Every failed check, in words; empty when all passed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (host, ids) in &self.missing {
            out.push(format!(
                "{host} lacks {} acknowledged ids: {}",
                ids.len(),
                list(ids)
            ));
        }
        for (host, ids) in &self.wrong_server {
            out.push(format!(
                "{host} has {} acknowledged ids recorded as accepted by another server: {}",
                ids.len(),
                list(ids)
            ));
        }
        if !self.converged {
            let mut s = String::from("the hosts did not converge:");
            for (host, gtid) in &self.gtid {
                let rows = self.rows.get(host).copied().unwrap_or_default();
                let _ = write!(s, " {host}: gtid_binlog_state {gtid:?}, {rows} rows;");
            }
            out.push(s);
        }
        out.extend(self.split_brain.iter().map(|f| format!("split brain: {f}")));
        out
    }

    /// `Ok` if [`Report::problems`] is empty, else an error listing them.
    pub fn ensure_ok(&self) -> anyhow::Result<()> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        bail!("workload check failed:\n  {}", problems.join("\n  "))
    }
}

fn list(ids: &[u64]) -> String {
    let mut s: Vec<String> = ids.iter().take(MAX_LISTED).map(u64::to_string).collect();
    if ids.len() > MAX_LISTED {
        s.push(format!("... ({} more)", ids.len() - MAX_LISTED));
    }
    s.join(", ")
}

/// What one host had at one look.
struct HostState {
    /// `@@gtid_binlog_state`, normalised (entries sorted).
    gtid: String,
    /// id -> server_id column of every row.
    rows: BTreeMap<u64, u32>,
}

/// Sorts the comma-separated entries of a GTID list so equal sets compare equal.
fn normalise_gtid(s: &str) -> String {
    let set: BTreeSet<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

async fn look(lab: &Lab, host: &str) -> anyhow::Result<HostState> {
    let mut c = lab.mysql_timeout(host, Duration::from_secs(5)).await?;
    let rows: Vec<(u64, u32)> = tokio::time::timeout(
        QUERY_TIMEOUT,
        c.query(format!("SELECT id, server_id FROM app.{TABLE}")),
    )
    .await
    .context("reading the workload table timed out")??;
    let gtid: Option<String> =
        tokio::time::timeout(QUERY_TIMEOUT, c.query_first("SELECT @@gtid_binlog_state"))
            .await
            .context("SELECT @@gtid_binlog_state timed out")??;
    let _ = tokio::time::timeout(Duration::from_secs(2), c.disconnect()).await;
    Ok(HostState {
        gtid: normalise_gtid(&gtid.unwrap_or_default()),
        rows: rows.into_iter().collect(),
    })
}

impl History {
    /// Checks the history against `hosts` (the surviving writer and the ONLINE replicas), waiting up to
    /// [`VERIFY_TIMEOUT`] for every acknowledged id to arrive and the hosts to converge.
    pub async fn verify(&self, lab: &Lab, hosts: &[&str]) -> anyhow::Result<Report> {
        self.verify_within(lab, hosts, VERIFY_TIMEOUT).await
    }

    /// Like [`History::verify`] with a given wait. Errors only if a host cannot be read at the end of the
    /// wait; failed checks are in the [`Report`].
    pub async fn verify_within(
        &self,
        lab: &Lab,
        hosts: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<Report> {
        if hosts.is_empty() {
            bail!("verify needs at least one host");
        }
        let deadline = Instant::now() + timeout;
        loop {
            let mut states = BTreeMap::new();
            let mut failure = None;
            for &host in hosts {
                match look(lab, host).await {
                    Ok(s) => {
                        states.insert(host.to_string(), s);
                    }
                    Err(e) => {
                        failure = Some(e.context(format!("reading the workload's rows on {host}")));
                        break;
                    }
                }
            }
            let done = Instant::now() >= deadline;
            if let Some(e) = failure {
                if done {
                    return Err(e);
                }
                tracing::debug!(error = %format!("{e:#}"), "verify: host not readable yet");
            } else {
                let report = self.judge(&states);
                if done || (report.missing.is_empty() && report.converged) {
                    tracing::info!(
                        acked = report.acked,
                        converged = report.converged,
                        missing = report.missing.values().map(Vec::len).sum::<usize>(),
                        split_brain = report.split_brain.len(),
                        longest_outage = ?report.longest_outage,
                        "workload verified"
                    );
                    return Ok(report);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn judge(&self, states: &BTreeMap<String, HostState>) -> Report {
        let mut missing = BTreeMap::new();
        let mut wrong_server = BTreeMap::new();
        for (host, state) in states {
            let mut absent = Vec::new();
            let mut wrong = Vec::new();
            for ack in &self.acks {
                match state.rows.get(&ack.id) {
                    None => absent.push(ack.id),
                    Some(&sid) if sid != ack.server_id => wrong.push(ack.id),
                    Some(_) => {}
                }
            }
            if !absent.is_empty() {
                absent.sort_unstable();
                missing.insert(host.clone(), absent);
            }
            if !wrong.is_empty() {
                wrong.sort_unstable();
                wrong_server.insert(host.clone(), wrong);
            }
        }
        let mut it = states.values();
        let converged = match it.next() {
            Some(first) => it.all(|s| s.gtid == first.gtid && s.rows.keys().eq(first.rows.keys())),
            None => false,
        };
        Report {
            acked: self.acks.len(),
            missing,
            wrong_server,
            gtid: states
                .iter()
                .map(|(h, s)| (h.clone(), s.gtid.clone()))
                .collect(),
            rows: states
                .iter()
                .map(|(h, s)| (h.clone(), s.rows.len()))
                .collect(),
            converged,
            longest_outage: self.longest_outage(),
            split_brain: self.split_brain(),
            read_outages: self.read_outages(),
        }
    }
}
