//! The server settings a writer-role host needs, checked in one place: the agent reads the variables
//! (`SHOW GLOBAL VARIABLES`), reports them, and refuses nothing itself; the monitors keep a host that
//! misses a *required* setting out of the writer role and say which one; *advised* settings are
//! reported (`mmm-agent --check-config`, logs, `mmmctl show --extended`) but do not block.
//!
//! Required, because a guarantee depends on it:
//! - `log_bin=ON`, `log_slave_updates=ON`: the candidate and the errant check compare GTID positions of
//!   binary logs that hold every transaction, replicated ones included.
//! - MariaDB `gtid_strict_mode=ON` / MySQL `gtid_mode=ON` and `enforce_gtid_consistency=ON`: a returning
//!   old master's diverged transactions stop replication instead of merging silently.
//! - `event_scheduler` not `DISABLED`: the writer fence inside mysqld is an event (a server started with
//!   it DISABLED cannot turn it on without a restart).
//!
//! Advised (semi-synchronous replication, for "no acknowledged write lost"):
//! - `rpl_semi_sync_master_enabled=ON` with `rpl_semi_sync_master_wait_point=AFTER_SYNC`;
//! - `rpl_semi_sync_master_timeout` longer than the writer lease plus the fence bound plus a second, so a
//!   writer cut off from its peer never acknowledges alone before its lease has ended;
//! - `rpl_semi_sync_slave_enabled=ON` (the masters acknowledge each other's commits);
//! - `rpl_semi_sync_slave_kill_conn_timeout` at most 1 s (stopping replication from an unreachable
//!   old master waits this long);
//! - `binlog_format=ROW`.

use std::collections::BTreeMap;
use std::time::Duration;

/// The variables [`check`] reads (what an agent asks the server for).
pub const VARIABLES: [&str; 12] = [
    "log_bin",
    "log_slave_updates",
    "gtid_strict_mode",
    "gtid_mode",
    "enforce_gtid_consistency",
    "event_scheduler",
    "binlog_format",
    "rpl_semi_sync_master_enabled",
    "rpl_semi_sync_master_wait_point",
    "rpl_semi_sync_master_timeout",
    "rpl_semi_sync_slave_enabled",
    "rpl_semi_sync_slave_kill_conn_timeout",
];

/// Margin added to lease + fence for the semi-sync timeout: an old writer's commits still waiting for an
/// acknowledgement when the lease and fence end are killed, never acknowledged alone.
const SEMI_SYNC_MARGIN: Duration = Duration::from_secs(1);

/// One setting that is not as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    /// The variable.
    pub variable: &'static str,
    /// True when a writer-role host must not be given the writer role with it.
    pub required: bool,
    /// What is wrong and what to set.
    pub message: String,
}

impl std::fmt::Display for SettingProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.required { "required" } else { "advised" };
        write!(f, "{} ({kind}): {}", self.variable, self.message)
    }
}

fn on(v: Option<&String>) -> Option<bool> {
    v.map(|v| matches!(v.to_ascii_uppercase().as_str(), "ON" | "1" | "YES"))
}

/// The problems of a writer-role host's `variables` (names lower case; values as the server shows
/// them), `mysql` for MySQL, with the writer lease `lease`. A variable the server does not show is a
/// problem only where it is required on that flavor.
pub fn check(
    variables: &BTreeMap<String, String>,
    mysql: bool,
    lease: Duration,
) -> Vec<SettingProblem> {
    let get = |n: &str| variables.get(n);
    let mut out = Vec::new();
    let mut need_on = |variable: &'static str, required: bool, why: &str| {
        if on(get(variable)) != Some(true) {
            let is = get(variable).map_or("not set".to_string(), |v| format!("is {v}"));
            out.push(SettingProblem {
                variable,
                required,
                message: format!("{is}; set it ON: {why}"),
            });
        }
    };
    need_on(
        "log_bin",
        true,
        "GTID positions must cover every transaction",
    );
    need_on(
        "log_slave_updates",
        true,
        "replicated transactions must be in the binary log for the errant-transaction check",
    );
    if mysql {
        need_on("gtid_mode", true, "failover positions replicas by GTID");
        need_on(
            "enforce_gtid_consistency",
            true,
            "every transaction needs a GTID",
        );
    } else {
        need_on(
            "gtid_strict_mode",
            true,
            "a diverged old master must stop replicating instead of merging silently",
        );
    }
    let semi = !mysql || get("rpl_semi_sync_master_enabled").is_some();
    if semi {
        need_on(
            "rpl_semi_sync_master_enabled",
            false,
            "without it an acknowledged write may exist on the writer only",
        );
        need_on(
            "rpl_semi_sync_slave_enabled",
            false,
            "the masters acknowledge each other's commits",
        );
    }
    match get("event_scheduler").map(|v| v.to_ascii_uppercase()) {
        Some(v) if v == "DISABLED" => out.push(SettingProblem {
            variable: "event_scheduler",
            required: true,
            message: "is DISABLED (set at server start); remove that setting: the writer fence in \
                      mysqld is an event"
                .into(),
        }),
        _ => {}
    }
    if let Some(p) = get("rpl_semi_sync_master_wait_point") {
        if !p.eq_ignore_ascii_case("AFTER_SYNC") {
            out.push(SettingProblem {
                variable: "rpl_semi_sync_master_wait_point",
                required: false,
                message: format!(
                    "is {p}; set AFTER_SYNC: with AFTER_COMMIT other clients may read a write the peer lacks"
                ),
            });
        }
    }
    let want = lease + Duration::from_millis(crate::FENCE_BOUND_MILLIS) + SEMI_SYNC_MARGIN;
    if let Some(ms) = get("rpl_semi_sync_master_timeout").and_then(|v| v.parse::<u64>().ok()) {
        if Duration::from_millis(ms) < want {
            out.push(SettingProblem {
                variable: "rpl_semi_sync_master_timeout",
                required: false,
                message: format!(
                    "is {ms} ms; set at least {} ms (lease {} ms + fence {} ms + {} ms): a writer cut off \
                     from its peer would acknowledge writes alone before its lease ends",
                    want.as_millis(),
                    lease.as_millis(),
                    crate::FENCE_BOUND_MILLIS,
                    SEMI_SYNC_MARGIN.as_millis()
                ),
            });
        }
    }
    if let Some(s) =
        get("rpl_semi_sync_slave_kill_conn_timeout").and_then(|v| v.parse::<u64>().ok())
    {
        if s > 1 {
            out.push(SettingProblem {
                variable: "rpl_semi_sync_slave_kill_conn_timeout",
                required: false,
                message: format!(
                    "is {s} s; set 1: isolating an unreachable old master waits this long before the new \
                     writer opens"
                ),
            });
        }
    }
    if let Some(f) = get("binlog_format") {
        if !f.eq_ignore_ascii_case("ROW") {
            out.push(SettingProblem {
                variable: "binlog_format",
                required: false,
                message: format!("is {f}; set ROW"),
            });
        }
    }
    out
}

/// The required problems of `problems` as one line ("" when none): what keeps the host from the writer role.
pub fn required_summary(problems: &[SettingProblem]) -> String {
    problems
        .iter()
        .filter(|p| p.required)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> BTreeMap<String, String> {
        [
            ("log_bin", "ON"),
            ("log_slave_updates", "ON"),
            ("gtid_strict_mode", "ON"),
            ("event_scheduler", "OFF"),
            ("binlog_format", "ROW"),
            ("rpl_semi_sync_master_enabled", "ON"),
            ("rpl_semi_sync_master_wait_point", "AFTER_SYNC"),
            ("rpl_semi_sync_master_timeout", "5000"),
            ("rpl_semi_sync_slave_enabled", "ON"),
            ("rpl_semi_sync_slave_kill_conn_timeout", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    const LEASE: Duration = Duration::from_secs(2);

    #[test]
    fn the_lab_settings_have_no_problem() {
        assert_eq!(check(&lab(), false, LEASE), vec![]);
    }

    #[test]
    fn each_bad_setting_is_named_with_its_kind() {
        let cases: [(&str, Option<&str>, bool); 10] = [
            ("log_bin", Some("OFF"), true),
            ("log_slave_updates", None, true),
            ("gtid_strict_mode", Some("OFF"), true),
            ("event_scheduler", Some("DISABLED"), true),
            ("binlog_format", Some("MIXED"), false),
            ("rpl_semi_sync_master_enabled", Some("OFF"), false),
            (
                "rpl_semi_sync_master_wait_point",
                Some("AFTER_COMMIT"),
                false,
            ),
            ("rpl_semi_sync_master_timeout", Some("1000"), false),
            ("rpl_semi_sync_slave_enabled", Some("OFF"), false),
            ("rpl_semi_sync_slave_kill_conn_timeout", Some("5"), false),
        ];
        for (var, value, required) in cases {
            let mut v = lab();
            match value {
                Some(x) => v.insert(var.to_string(), x.to_string()),
                None => v.remove(var),
            };
            let p = check(&v, false, LEASE);
            assert_eq!(p.len(), 1, "{var}: {p:?}");
            assert_eq!(p[0].variable, var);
            assert_eq!(p[0].required, required, "{var}");
            assert_eq!(required_summary(&p).is_empty(), !required, "{var}");
        }
    }

    #[test]
    fn the_semi_sync_timeout_is_measured_against_the_lease() {
        let mut v = lab();
        v.insert("rpl_semi_sync_master_timeout".into(), "3750".into());
        assert!(check(&v, false, LEASE).is_empty(), "2000 + 750 + 1000");
        v.insert("rpl_semi_sync_master_timeout".into(), "3749".into());
        let p = check(&v, false, LEASE);
        assert!(p[0].message.contains("at least 3750 ms"), "{}", p[0]);
    }

    #[test]
    fn mysql_needs_gtid_mode_and_no_strict_mode() {
        let mut v = lab();
        v.remove("gtid_strict_mode");
        v.insert("gtid_mode".into(), "ON".into());
        v.insert("enforce_gtid_consistency".into(), "ON".into());
        assert_eq!(check(&v, true, LEASE), vec![]);
        v.insert("gtid_mode".into(), "OFF_PERMISSIVE".into());
        assert_eq!(
            required_summary(&check(&v, true, LEASE)),
            "gtid_mode (required): is OFF_PERMISSIVE; set it ON: failover positions replicas by GTID"
        );
    }
}
