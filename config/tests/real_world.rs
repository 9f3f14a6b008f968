//! Configs as deployed MMM clusters have them (fixture `real-world`, written in the style of
//! configuration-management modules and operators' write-ups): MMM 2.2.1 loads them, so mmm-rs
//! does too, warning (at FILE:LINE) where it reads them differently from MMM. The fixture has a
//! multi-cluster name with a hyphen (`@linkorb-m1`), nested includes, tags with a space before
//! `>`, a file without a final newline, keys with empty values, comments after numeric values,
//! passwords holding `#`, a host naming itself as its peer, `prefer` on a balanced role and a host
//! name in `ping_ips`.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use common::{line_numbers, private_copy};
use mmm_config::{load_with, Config, ConfigError, LoadOptions, Program};

const CLUSTER: &str = "linkorb-m1";

fn load(dir: &Path, program: Program) -> Config {
    let opts = LoadOptions {
        search_path: vec![dir.to_path_buf()],
        check_permissions: true,
    };
    load_with(program, Some(CLUSTER), None, &opts).unwrap_or_else(|e| panic!("{program:?}: {e}"))
}

/// The warning at `file:line` whose message contains `needle`.
fn warning<'a>(warnings: &'a [ConfigError], file: &Path, line: usize, needle: &str) -> &'a str {
    warnings
        .iter()
        .find(|w| w.file == file && w.line == Some(line) && w.message.contains(needle))
        .map(|w| w.message.as_str())
        .unwrap_or_else(|| {
            let all: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
            panic!(
                "no warning at {}:{line} containing '{needle}' in\n{}",
                file.display(),
                all.join("\n")
            )
        })
}

/// The only line of `file` whose trimmed text starts with `start`.
fn line_starting(file: &Path, start: &str) -> usize {
    let text = std::fs::read_to_string(file).expect("fixture");
    let found: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(start))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(found.len(), 1, "'{start}' in {}: {found:?}", file.display());
    found[0]
}

#[test]
fn deployed_config_loads_for_the_monitor_with_warnings_at_file_and_line() {
    let dir = private_copy("real-world");
    let d = dir.path();
    let mon = load(d, Program::Monitor);
    let hosts_file = d.join("mmm_hosts_linkorb-m1.conf");
    let roles_file = d.join("mmm_roles_linkorb-m1.conf");
    let mon_file = d.join("mmm_mon_linkorb-m1.conf");
    assert_eq!(mon.source, mon_file);

    // Comments after addresses and numbers are stripped.
    assert_eq!(mon.hosts["db1"].ip, IpAddr::from([10, 20, 0, 11]));
    assert_eq!(mon.hosts["db3"].ip, IpAddr::from([10, 20, 0, 13]));
    assert_eq!(mon.hosts["db3"].mysql_port, 3307);
    assert_eq!(mon.roles["writer"].ips, vec![Ipv4Addr::new(10, 20, 0, 100)]);
    assert_eq!(mon.roles["reader"].ips.len(), 3);
    assert_eq!(mon.monitor.port, 9988);
    assert_eq!(mon.monitor.auto_set_online, Duration::from_secs(60));
    assert_eq!(mon.checks.mysql.check_period, Duration::from_secs(5));
    let w = warning(
        &mon.warnings,
        &hosts_file,
        line_starting(&hosts_file, "ip      10.20.0.11"),
        "'# db1.linkorb.example' after the value of 'ip' in <host db1> is a comment",
    );
    assert!(w.contains("using '10.20.0.11'"), "{w}");
    assert!(w.contains("MMM kept the comment"), "{w}");
    warning(
        &mon.warnings,
        &roles_file,
        line_starting(&roles_file, "ips     10.20.0.101"),
        "after the value of 'ips' in <role reader> is a comment",
    );

    // Text values keep their `#`.
    assert_eq!(
        mon.hosts["db3"].agent_password.expose(),
        "Ag #ent   # a password keeps every character"
    );
    assert_eq!(mon.hosts["db1"].replication_password.expose(), "rep#licate");
    assert_eq!(mon.hosts["db1"].monitor_password.expose(), "Mon#itor");

    // A host naming itself as its peer: accepted, peer dropped.
    assert_eq!(mon.hosts["db1"].peer.as_deref(), Some("db2"));
    assert_eq!(mon.hosts["db2"].peer, None);
    let peer_line = line_numbers(
        &std::fs::read_to_string(&hosts_file).expect("hosts"),
        "peer    db2",
    )[1];
    warning(
        &mon.warnings,
        &hosts_file,
        peer_line,
        "host 'db2' names itself as its peer: MMM accepted this",
    );

    // prefer on a balanced role: ignored, as MMM did; prefer on the writer kept.
    assert_eq!(mon.roles["reader"].prefer, None);
    assert_eq!(mon.roles["writer"].prefer.as_deref(), Some("db1"));
    warning(
        &mon.warnings,
        &roles_file,
        line_starting(&roles_file, "prefer  db3"),
        "prefer 'db3' of balanced role 'reader' is ignored, as MMM ignored it",
    );

    // A host name in ping_ips is resolved once.
    assert_eq!(
        mon.monitor.ping_ips,
        vec![IpAddr::from([10, 20, 0, 1]), IpAddr::from([127, 0, 0, 1])]
    );
    warning(
        &mon.warnings,
        &mon_file,
        line_starting(&mon_file, "ping_ips"),
        "ping_ips names host 'localhost': MMM pinged the name",
    );

    // Keys with empty values are not set (defaults stay).
    assert_eq!(mon.monitor.kill_host_bin, None);
    assert_eq!(mon.monitor.flap_count, mmm_config::defaults::FLAP_COUNT);
    warning(
        &mon.warnings,
        &mon_file,
        line_starting(&mon_file, "kill_host_bin"),
        "key 'kill_host_bin' has an empty value: treated as not set",
    );
    warning(
        &mon.warnings,
        &mon_file,
        line_starting(&mon_file, "flap_count"),
        "key 'flap_count' has an empty value",
    );
}

#[test]
fn deployed_config_loads_for_the_agent_and_mmmctl() {
    let dir = private_copy("real-world");
    let agent = load(dir.path(), Program::Agent);
    assert_eq!(agent.this.as_deref(), Some("db3"));
    assert_eq!(agent.this_host().map(|h| h.mysql_port), Some(3307));
    let ctl = load(dir.path(), Program::Control);
    assert_eq!(ctl.monitor_nodes.len(), 1);
    assert_eq!(ctl.writer_role().map(|r| r.name.as_str()), Some("writer"));
    // Only the monitor resolves ping_ips names (nobody else pings).
    assert_eq!(ctl.monitor.ping_ips, vec![IpAddr::from([10, 20, 0, 1])]);
}

#[test]
fn what_mmm_refuses_is_still_refused_in_a_deployed_config() {
    // Negative control: the same tree with one line MMM refuses (an unknown key) fails, naming
    // the nested file and line.
    let dir = private_copy("real-world");
    let roles = dir.path().join("mmm_roles_linkorb-m1.conf");
    let text = std::fs::read_to_string(&roles).expect("roles");
    std::fs::write(&roles, text.replace("    prefer  db1", "    prefered  db1")).expect("write");
    let opts = LoadOptions {
        search_path: vec![dir.path().to_path_buf()],
        check_permissions: true,
    };
    let err = load_with(Program::Monitor, Some(CLUSTER), None, &opts).expect_err("refused");
    let want = format!(
        "{}:{}: unknown key 'prefered' in <role writer>",
        roles.display(),
        line_starting(&roles, "prefered")
    );
    assert!(
        err.iter().any(|e| e.to_string() == want),
        "{want}\nnot in\n{err}"
    );
}
