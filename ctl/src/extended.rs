//! `show --extended`: MMM's `show` lines unchanged, then the replication facts the monitors poll from
//! the agents, one block per host; and the staleness line any answer from a monitor out of contact
//! with the Raft leader starts with. Pure functions of the reply (tested without a monitor).

use std::fmt::Write as _;

use mmm_proto::{HostTopology, HostView, ShowReply, Staleness};

/// The first line of an answer from a monitor out of contact with the leader; `None` when the answer is
/// fresh (or the monitor does not say).
pub fn stale_line(s: Option<&Staleness>) -> Option<String> {
    let s = s.filter(|s| !s.leader_contact)?;
    Some(format!(
        "# STALE: answered by monitor {} from state up to {:.1} s old: {}\n",
        s.monitor,
        s.age_millis as f64 / 1000.0,
        s.reason
    ))
}

/// `Yes`/`No`, as MySQL prints replication threads.
fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// `ON`/`OFF`, as MySQL prints `read_only`.
fn on_off(b: bool) -> &'static str {
    if b {
        "ON"
    } else {
        "OFF"
    }
}

/// The facts of one host, indented under its name.
fn host_block(h: &HostView, t: &HostTopology, writer: &str) -> String {
    let mut out = String::new();
    let role = if h.name == writer { " (writer)" } else { "" };
    let agent = if t.agent_answered {
        format!("agent answered {:.1} s ago", t.age_millis as f64 / 1000.0)
    } else if t.age_millis > 0 {
        format!(
            "agent NOT answering ({}); facts {:.1} s old",
            t.poll_error,
            t.age_millis as f64 / 1000.0
        )
    } else {
        format!("agent NOT answering ({})", t.poll_error)
    };
    let _ = writeln!(out, "  {}{role}: {agent}", h.name);
    if t.age_millis == 0 && !t.agent_answered {
        return out;
    }
    if !t.mysql_reachable {
        let _ = writeln!(out, "    mysql: NOT reachable: {}", t.mysql_error);
        return out;
    }
    let semi = match (t.semi_sync_source.as_str(), t.semi_sync_replica.as_str()) {
        ("", "") => "unknown".to_string(),
        (s, r) => format!("source {}, replica {}", or_dash(s), or_dash(r)),
    };
    let _ = writeln!(
        out,
        "    read_only: {}  semi-sync: {semi}  version: {}",
        on_off(t.read_only),
        or_dash(&t.server_version)
    );
    for p in &t.setting_problems {
        let _ = writeln!(out, "    setting: {p}");
    }
    if t.replicates_from.is_empty() {
        let _ = writeln!(out, "    replication: not a replica");
    } else {
        let from = if t.replicates_from_host.is_empty() {
            t.replicates_from.clone()
        } else {
            format!("{} ({})", t.replicates_from_host, t.replicates_from)
        };
        let lag = if t.seconds_behind >= 0 {
            format!("{} s", t.seconds_behind)
        } else {
            "NULL".into()
        };
        let _ = writeln!(
            out,
            "    replicates from: {from}  IO: {}  SQL: {}  seconds behind: {lag}",
            yes_no(t.io_running),
            yes_no(t.sql_running)
        );
        for (what, e) in [("IO", &t.last_io_error), ("SQL", &t.last_sql_error)] {
            if !e.is_empty() {
                let _ = writeln!(out, "    last {what} error: {e}");
            }
        }
    }
    let behind = if h.name == writer {
        String::new()
    } else if t.transactions_behind_writer >= 0 {
        format!(
            "  ({} transactions behind the writer)",
            t.transactions_behind_writer
        )
    } else {
        "  (behind the writer: unknown)".into()
    };
    let _ = writeln!(
        out,
        "    gtid_current_pos: {}{behind}",
        or_dash(&t.gtid_current_pos)
    );
    if t.gtid_binlog_pos != t.gtid_current_pos {
        let _ = writeln!(out, "    gtid_binlog_pos: {}", or_dash(&t.gtid_binlog_pos));
    }
    if !h.errant_gtids.is_empty() {
        let _ = writeln!(out, "    ERRANT transactions: {}", h.errant_gtids);
    }
    if !t.vips_present.is_empty() {
        let _ = writeln!(
            out,
            "    VIPs on the interface: {}",
            t.vips_present.join(", ")
        );
    }
    out
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `show --extended`: [`crate::format::show`], then the replication facts of every host.
pub fn show_extended(reply: &ShowReply) -> String {
    let mut out = crate::format::show(reply);
    out.push_str("# Replication (as the agents report it):\n");
    let mut hosts: Vec<&HostView> = reply.hosts.iter().collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    for h in hosts {
        match &h.topology {
            Some(t) => out.push_str(&host_block(h, t, &reply.active_master)),
            None => {
                let _ = writeln!(
                    out,
                    "  {}: no facts (the monitor did not send them)",
                    h.name
                );
            }
        }
    }
    if !reply.active_master.is_empty() {
        if reply.writer_lease_left_millis >= 0 {
            let _ = writeln!(
                out,
                "# Writer lease of {}: {:.1} s left, as its agent holds it",
                reply.active_master,
                reply.writer_lease_left_millis as f64 / 1000.0
            );
        } else {
            let _ = writeln!(
                out,
                "# Writer lease of {}: unknown (its agent has not answered lately)",
                reply.active_master
            );
        }
    }
    let mut holders: Vec<&str> = reply
        .hosts
        .iter()
        .filter(|h| {
            h.topology
                .as_ref()
                .is_some_and(|t| t.mysql_reachable && !t.read_only)
        })
        .map(|h| h.name.as_str())
        .collect();
    holders.sort_unstable();
    if holders.len() > 1 {
        let _ = writeln!(
            out,
            "# Warning: {} servers are writable (read_only OFF): {}",
            holders.len(),
            holders.join(", ")
        );
    }
    out
}
