//! The text mmmctl prints, in mmm_control's formats, made by pure functions from the monitor's
//! replies (so they are tested against golden files without a monitor).

use std::fmt::Write as _;

use chrono::TimeZone;
use mmm_proto::{
    ChecksReply, ClusterStatusReply, HistoryReply, HostState, HostView, Mode, ModeReply,
    MoveRoleProgress, RoleIp, ShowReply,
};

/// mmm_control's `help`, plus this tool's additions.
pub const HELP: &str = concat!(
    crate::compat::mmm_help!(
        "    show [--extended]                 - show status (--extended: replication, lag, GTIDs, lease)\n"
    ),
    "    cluster                           - show the monitor cluster (leader, term, members, lag)
    cluster add <name> <ip:port>      - add a monitor (learner first, then voter)
    cluster remove <name>             - remove a monitor (refused if quorum would be lost)
    history [<n>]                     - show the last <n> decisions (default 20)
    completions bash|zsh|fish         - print a shell completion script
    certs init [--dir DIR]            - write a CA and certificates for every node and an operator
    certs issue <name> [--dir DIR]    - add one node's certificate to the existing CA
"
);

/// MMM's date format, in the time zone `tz` (the local one when printing).
pub fn mmm_time<Tz: TimeZone>(unix_secs: i64, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match tz.timestamp_opt(unix_secs, 0).single() {
        Some(t) => t.format("%Y/%m/%d %H:%M:%S").to_string(),
        None => format!("@{unix_secs}"),
    }
}

/// MMM's name of a mode (`ACTIVE`, ...).
pub fn mode_name(mode: i32) -> &'static str {
    match Mode::try_from(mode) {
        Ok(Mode::Active) => "ACTIVE",
        Ok(Mode::Manual) => "MANUAL",
        Ok(Mode::Wait) => "WAIT",
        Ok(Mode::Passive) => "PASSIVE",
        _ => "UNKNOWN",
    }
}

/// MMM's name of a host state (`ONLINE`, `HARD_OFFLINE`, ...).
pub fn state_name(state: i32) -> &'static str {
    match HostState::try_from(state) {
        Ok(HostState::Online) => "ONLINE",
        Ok(HostState::AdminOffline) => "ADMIN_OFFLINE",
        Ok(HostState::HardOffline) => "HARD_OFFLINE",
        Ok(HostState::AwaitingRecovery) => "AWAITING_RECOVERY",
        Ok(HostState::ReplicationDelay) => "REPLICATION_DELAY",
        Ok(HostState::ReplicationFail) => "REPLICATION_FAIL",
        _ => "UNKNOWN",
    }
}

/// `reader(192.168.0.51), writer(192.168.0.50)`: sorted by role name, then IP.
pub fn roles_text(roles: &[RoleIp]) -> String {
    let mut roles: Vec<&RoleIp> = roles.iter().collect();
    roles.sort_by(|a, b| (a.role.as_str(), ip_key(&a.ip)).cmp(&(b.role.as_str(), ip_key(&b.ip))));
    roles
        .iter()
        .map(|r| format!("{}({})", r.role, r.ip))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Orders IPs numerically when they parse, textually otherwise.
fn ip_key(ip: &str) -> (Option<std::net::IpAddr>, &str) {
    (ip.parse().ok(), ip)
}

/// One host line of `show`.
pub fn host_line(h: &HostView) -> String {
    format!(
        "  {}({}) {}/{}. Roles: {}",
        h.name,
        h.ip,
        h.mode,
        state_name(h.state),
        roles_text(&h.roles)
    )
}

/// `reader(192.168.0.100), reader(192.168.0.52)`: MMM's order, Perl's `sort` of the `role(ip)`
/// strings (so `10.0.0.100` comes before `10.0.0.9`).
pub fn roles_text_mmm(roles: &[RoleIp]) -> String {
    let mut roles: Vec<String> = roles
        .iter()
        .map(|r| format!("{}({})", r.role, r.ip))
        .collect();
    roles.sort();
    roles.join(", ")
}

/// `show`.
pub fn show(reply: &ShowReply) -> String {
    show_with(reply, roles_text)
}

/// `show` as `mmm_control` printed it: roles in MMM's order, and the empty line mmm_control added
/// after the monitor's reply.
pub fn show_mmm_control(reply: &ShowReply) -> String {
    let mut out = show_with(reply, roles_text_mmm);
    out.push('\n');
    out
}

fn show_with(reply: &ShowReply, roles: fn(&[RoleIp]) -> String) -> String {
    let mut out = String::new();
    if reply.mode == Mode::Passive as i32 {
        out.push_str("# --- Monitor is in PASSIVE MODE ---\n");
        let _ = writeln!(out, "# Cause: {}", reply.passive_cause);
    }
    let mut hosts: Vec<&HostView> = reply.hosts.iter().collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    for h in hosts.iter().filter(|h| !h.agent_reachable) {
        let _ = writeln!(out, "# Warning: agent on host {} is not reachable", h.name);
    }
    for h in hosts.iter().filter(|h| !h.errant_gtids.is_empty()) {
        let _ = writeln!(
            out,
            "# Warning: host {} has transactions no other host has (errant GTIDs {}); it is kept out of rotation",
            h.name, h.errant_gtids
        );
    }
    for h in &hosts {
        out.push_str(&format!(
            "  {}({}) {}/{}. Roles: {}",
            h.name,
            h.ip,
            h.mode,
            state_name(h.state),
            roles(&h.roles)
        ));
        out.push('\n');
    }
    let mut prefs: Vec<_> = reply
        .preferences
        .iter()
        .filter(|p| !p.current_host.is_empty() && p.current_host != p.preferred_host)
        .collect();
    prefs.sort_by(|a, b| a.role.cmp(&b.role));
    for p in prefs {
        let _ = writeln!(
            out,
            "# Role {} has {} configured as it's preferred host but is assigned to {} at the moment.",
            p.role, p.preferred_host, p.current_host
        );
    }
    out
}

/// `checks`: `db1  ping         [last change: 2026/11/27 05:00:01]  OK`, host column padded to the
/// longest name, check column to 11; a failed check shows `ERROR: <message>`.
pub fn checks<Tz: TimeZone>(reply: &ChecksReply, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let width = reply.checks.iter().map(|c| c.host.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in &reply.checks {
        let result = check_result(c);
        let _ = writeln!(
            out,
            "{:<width$}  {:<11}  [last change: {}]  {}",
            c.host,
            c.check,
            mmm_time(c.last_change, tz),
            result
        );
    }
    out
}

/// `checks` as `mmm_control` printed it, for the arguments given: one check of one host is a
/// single line with no padding; otherwise the host column is padded to the longest name, the
/// check column to 11 only when every check is shown, and mmm_control's empty line follows.
pub fn checks_mmm_control<Tz: TimeZone>(
    reply: &ChecksReply,
    tz: &Tz,
    host: Option<&str>,
    check: Option<&str>,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let given = |a: Option<&str>| a.is_some_and(|a| a != "all");
    let line = |c: &mmm_proto::CheckView, host_w: usize, check_w: usize| {
        format!(
            "{:<host_w$}  {:<check_w$}  [last change: {}]  {}",
            c.host,
            c.check,
            mmm_time(c.last_change, tz),
            check_result(c)
        )
    };
    if given(host) && given(check) {
        return match reply.checks.first() {
            Some(c) => format!("{}\n", line(c, 0, 0)),
            None => "\n".to_owned(),
        };
    }
    let host_w = reply.checks.iter().map(|c| c.host.len()).max().unwrap_or(0);
    let check_w = if given(check) { 0 } else { 11 };
    let mut out = String::new();
    for c in &reply.checks {
        out.push_str(&line(c, host_w, check_w));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// `OK`, or `ERROR: <message>` for a failed check.
fn check_result(c: &mmm_proto::CheckView) -> String {
    if c.ok {
        "OK".to_string()
    } else if c.message.is_empty() {
        "ERROR".to_string()
    } else {
        crate::error::with_error_prefix(&c.message)
    }
}

/// `mode`: the mode's name alone, as `mmm_control mode` prints it (scripts compare the whole
/// output); the passive cause is in `show` and in `--json`.
pub fn mode(reply: &ModeReply) -> String {
    format!("{}\n", mode_name(reply.mode))
}

/// One message of a `move_role` stream: the step with its elapsed time, and for the last
/// message MMM's result and how long writes were blocked.
pub fn move_progress(p: &MoveRoleProgress) -> String {
    let mut out = String::new();
    if !p.step.is_empty() {
        let epoch = p
            .epoch
            .as_ref()
            .map(|e| format!(" (epoch {}.{})", e.term, e.index))
            .unwrap_or_default();
        let _ = writeln!(out, "[{:>6} ms] {}{}", p.elapsed_millis, p.step, epoch);
    }
    if p.done {
        if !p.message.is_empty() {
            out.push_str(&if p.ok {
                p.message.clone()
            } else {
                crate::error::with_error_prefix(&p.message)
            });
            out.push('\n');
        }
        if p.ok && p.writes_blocked_millis > 0 {
            let _ = writeln!(
                out,
                "Writes were blocked for {} ms.",
                p.writes_blocked_millis
            );
        }
    }
    out
}

/// `cluster`: the answering node's view of the monitor cluster.
pub fn cluster(r: &ClusterStatusReply) -> String {
    let mut out = String::new();
    let leader = if r.leader_name.is_empty() {
        "none".to_string()
    } else {
        format!("{} (id {})", r.leader_name, r.leader_id)
    };
    let _ = writeln!(out, "Leader: {leader}, term {}", r.term);
    let _ = writeln!(
        out,
        "Log: commit index {}, applied index {}; quorum: {}",
        r.commit_index,
        r.applied_index,
        if r.has_quorum { "yes" } else { "NO" }
    );
    let _ = writeln!(out, "Answered by: {} (id {})", r.node_name, r.node_id);
    let _ = writeln!(
        out,
        "Cluster id: {}",
        if r.cluster_id.is_empty() {
            "none yet"
        } else {
            &r.cluster_id
        }
    );
    let mut members: Vec<_> = r.members.iter().collect();
    members.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let name_w = members.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let addr_w = members.iter().map(|m| m.addr.len()).max().unwrap_or(0);
    for m in members {
        let role = if m.id == r.leader_id && !r.leader_name.is_empty() {
            "leader"
        } else if m.voter {
            "follower"
        } else {
            "learner"
        };
        let _ = writeln!(
            out,
            "  {:<name_w$}  id {:<3} {:<addr_w$}  {:<8}  {:<11}  matched {}  lag {}",
            m.name,
            m.id,
            m.addr,
            role,
            if m.reachable {
                "reachable"
            } else {
                "UNREACHABLE"
            },
            m.matched_index,
            m.lag
        );
    }
    out
}

/// `history`: one line per decision, oldest first.
pub fn history<Tz: TimeZone>(r: &HistoryReply, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut out = String::new();
    for d in &r.decisions {
        let epoch = d
            .epoch
            .as_ref()
            .map(|e| format!("{}.{}", e.term, e.index))
            .unwrap_or_else(|| "-".into());
        let what = if !d.summary.is_empty() {
            d.summary.clone()
        } else {
            let subject = match (d.host.is_empty(), d.role.is_empty()) {
                (false, false) => format!("{} {}", d.role, d.host),
                (false, true) => d.host.clone(),
                (true, false) => d.role.clone(),
                (true, true) => String::new(),
            };
            format!("{subject}: {} -> {}", d.from, d.to)
        };
        let secs = d.time_millis.div_euclid(1000);
        let _ = write!(out, "{}  [{epoch}]  {what}", mmm_time(secs, tz));
        if !d.reason.is_empty() {
            let _ = write!(out, " ({})", d.reason);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(role: &str, ip: &str) -> RoleIp {
        RoleIp {
            role: role.into(),
            ip: ip.into(),
        }
    }

    #[test]
    fn roles_sorted_by_name_then_ip_numerically() {
        let r = [
            role("writer", "10.0.0.50"),
            role("reader", "10.0.0.100"),
            role("reader", "10.0.0.9"),
        ];
        assert_eq!(
            roles_text(&r),
            "reader(10.0.0.9), reader(10.0.0.100), writer(10.0.0.50)"
        );
        assert_eq!(roles_text(&[]), "");
    }

    #[test]
    fn host_line_without_roles_ends_after_roles_label() {
        let h = HostView {
            name: "db3".into(),
            ip: "192.168.0.33".into(),
            mode: "slave".into(),
            state: HostState::HardOffline as i32,
            ..Default::default()
        };
        assert_eq!(
            host_line(&h),
            "  db3(192.168.0.33) slave/HARD_OFFLINE. Roles: "
        );
    }

    #[test]
    fn mmm_date_format() {
        assert_eq!(mmm_time(1_795_755_601, &chrono::Utc), "2026/11/27 05:00:01");
    }
}
