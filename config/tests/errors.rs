//! Every class of configuration error is reported with its file and line, and all errors of a
//! config are reported together.

use mmm_config::{Config, ConfigErrors, Program};

/// A valid config for every program (this = db1 names a host; the monitor nodes are separate).
const BASE: &str = "\
active_master_role writer
<monitor_node default>
    port 9988
</monitor_node>
<monitor_node mon1>
    ip 10.0.0.21
</monitor_node>
<host default>
    cluster_interface eth0
    agent_user a
    agent_password p
    monitor_user m
    monitor_password p
    replication_user r
    replication_password p
</host>
<host db1>
    ip 10.0.0.11
    mode master
    peer db2
</host>
<host db2>
    ip 10.0.0.12
    mode master
    peer db1
</host>
<role writer>
    hosts db1, db2
    ips 10.0.0.100
    mode exclusive
</role>
";

fn load(text: &str, program: Program) -> Result<Config, ConfigErrors> {
    Config::from_str_for_tests(text, "mmm_common.conf", program)
}

fn errors(text: &str, program: Program) -> String {
    match load(text, program) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Line of the first line equal to `line` after trimming, after `after` lines.
fn line_of(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l.trim() == line)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line {line:?}"))
}

fn assert_has(errs: &str, want: &str) {
    assert!(
        errs.lines().any(|l| l == want),
        "expected line\n  {want}\nin\n{errs}"
    );
}

#[test]
fn base_is_valid_for_every_program() {
    for p in [Program::Agent, Program::Control] {
        load(&format!("{BASE}this db1\n"), p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }
    load(&format!("{BASE}this mon1\n"), Program::Monitor).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn unknown_key_names_the_section() {
    let text = BASE.replace("    ip 10.0.0.11", "    ipp 10.0.0.11");
    let errs = errors(&text, Program::Control);
    let line = line_of(&text, "ipp 10.0.0.11");
    assert_has(
        &errs,
        &format!("mmm_common.conf:{line}: unknown key 'ipp' in <host db1>"),
    );
    // ... and the host now lacks its ip: that is reported at its opening line.
    let header = line_of(&text, "<host db1>");
    assert_has(
        &errs,
        &format!("mmm_common.conf:{header}: missing key 'ip' in <host db1>"),
    );
}

#[test]
fn unknown_top_level_key_and_section() {
    let text = format!("{BASE}thsi db1\n<hots db3>\nip 1.2.3.4\n</hots>\n");
    let errs = errors(&text, Program::Control);
    let n = line_of(&text, "thsi db1");
    assert_has(
        &errs,
        &format!("mmm_common.conf:{n}: unknown key 'thsi' at top level"),
    );
    assert!(
        errs.contains(&format!(
            "mmm_common.conf:{}: unknown section <hots>",
            n + 1
        )),
        "{errs}"
    );
}

#[test]
fn all_errors_are_collected() {
    let text = BASE
        .replace("    ip 10.0.0.11", "    ipp 10.0.0.11")
        .replace("ips 10.0.0.100", "ips 10.0.0.300")
        .replace("mode exclusive", "mode exclusiv");
    let errs = errors(&text, Program::Control);
    assert!(errs.contains("unknown key 'ipp'"), "{errs}");
    assert!(
        errs.contains("'10.0.0.300' is not an IPv4 address"),
        "{errs}"
    );
    assert!(
        errs.contains("'exclusiv' is not one of exclusive, balanced"),
        "{errs}"
    );
}

#[test]
fn agent_needs_this_naming_a_host() {
    let errs = errors(BASE, Program::Agent);
    assert_has(
        &errs,
        "mmm_common.conf: missing key 'this': the name of this agent's host (one of: db1, db2)",
    );
    let text = format!("{BASE}this db9\n");
    let errs = errors(&text, Program::Agent);
    let n = line_of(&text, "this db9");
    assert_has(
        &errs,
        &format!("mmm_common.conf:{n}: this 'db9' is not a <host> (hosts: db1, db2)"),
    );
}

#[test]
fn monitor_needs_this_naming_a_monitor_node() {
    let errs = errors(BASE, Program::Monitor);
    assert!(
        errs.contains("missing key 'this': the name of this monitor (one of: mon1)"),
        "{errs}"
    );
    let errs = errors(&format!("{BASE}this db1\n"), Program::Monitor);
    assert!(
        errs.contains("this 'db1' is not a <monitor_node> (monitor nodes: mon1)"),
        "{errs}"
    );
}

#[test]
fn monitor_or_control_need_a_monitor_address() {
    let text = BASE.replace(
        "<monitor_node mon1>\n    ip 10.0.0.21\n</monitor_node>\n",
        "",
    );
    let errs = errors(&text, Program::Control);
    assert!(errs.contains("no monitor address"), "{errs}");
    // The agent does not need one.
    load(&format!("{text}this db1\n"), Program::Agent).unwrap();
}

#[test]
fn required_host_keys_per_program() {
    let text = BASE
        .replace("    agent_password p\n", "")
        .replace("    monitor_user m\n", "");
    let header = line_of(&text, "<host db1>");
    let errs = errors(&format!("{text}this db1\n"), Program::Agent);
    assert!(
        errs.contains(&format!(
            "mmm_common.conf:{header}: missing key 'agent_password' in <host db1>"
        )),
        "{errs}"
    );
    assert!(!errs.contains("monitor_user"), "{errs}");
    let errs = errors(&format!("{text}this mon1\n"), Program::Monitor);
    assert!(
        errs.contains("missing key 'monitor_user' in <host db2>"),
        "{errs}"
    );
    assert!(!errs.contains("agent_password"), "{errs}");
    load(&text, Program::Control).unwrap();
}

#[test]
fn hosts_need_ip_and_mode_and_masters_need_a_peer() {
    let text =
        format!("{BASE}<host db3>\n</host>\n<host db4>\nip 10.0.0.14\nmode master\n</host>\n");
    let errs = errors(&text, Program::Control);
    let db3 = line_of(&text, "<host db3>");
    let db4 = line_of(&text, "<host db4>");
    assert_has(
        &errs,
        &format!("mmm_common.conf:{db3}: missing key 'ip' in <host db3>"),
    );
    assert_has(
        &errs,
        &format!("mmm_common.conf:{db3}: missing key 'mode' in <host db3>"),
    );
    assert_has(
        &errs,
        &format!("mmm_common.conf:{db4}: missing key 'peer' in <host db4> (a master needs its peer master)"),
    );
}

#[test]
fn peer_and_role_hosts_must_be_hosts() {
    let text = BASE
        .replace("peer db1", "peer db7")
        .replace("hosts db1, db2", "hosts db1, db8");
    let errs = errors(&text, Program::Control);
    assert_has(
        &errs,
        &format!(
            "mmm_common.conf:{}: peer 'db7' of host 'db2' is not a <host>",
            line_of(&text, "peer db7")
        ),
    );
    assert_has(
        &errs,
        &format!(
            "mmm_common.conf:{}: host 'db8' of role 'writer' is not a <host>",
            line_of(&text, "hosts db1, db8")
        ),
    );
}

#[test]
fn roles_need_hosts_ips_and_mode() {
    let text = format!("{BASE}<role reader/>\n");
    let errs = errors(&text, Program::Control);
    let n = line_of(&text, "<role reader/>");
    for k in ["mode", "hosts", "ips"] {
        assert_has(
            &errs,
            &format!("mmm_common.conf:{n}: missing key '{k}' in <role reader>"),
        );
    }
}

#[test]
fn prefer_must_be_a_role_host() {
    let text = BASE.replace("mode exclusive", "mode exclusive\n    prefer db3");
    let errs = errors(&text, Program::Control);
    assert!(
        errs.contains("preferred host 'db3' of role 'writer' is not among its hosts (db1, db2)"),
        "{errs}"
    );
}

#[test]
fn numeric_values_with_a_trailing_comment_are_still_refused_when_the_rest_is_bad() {
    // Stripping a comment must not hide a bad value, and enum values with comments are refused
    // as MMM refused them.
    let text = BASE
        .replace("ip 10.0.0.12", "ip 10.0.0 # db2")
        .replace("mode exclusive", "mode exclusive # the writer");
    let errs = errors(&text, Program::Control);
    assert_has(
        &errs,
        &format!(
            "mmm_common.conf:{}: bad value for 'ip' in <host db2>: '10.0.0 # db2' is not an IP address",
            line_of(&text, "ip 10.0.0 # db2")
        ),
    );
    assert!(
        errs.contains("'exclusive # the writer' is not one of exclusive, balanced"),
        "{errs}"
    );
}

#[test]
fn exclusive_role_with_several_ips() {
    let text = BASE.replace("ips 10.0.0.100", "ips 10.0.0.100, 10.0.0.101");
    let errs = errors(&text, Program::Control);
    assert!(
        errs.contains(&format!(
            "mmm_common.conf:{}: exclusive role 'writer' has 2 IPs",
            line_of(&text, "ips 10.0.0.100, 10.0.0.101")
        )),
        "{errs}"
    );
}

#[test]
fn malformed_ips() {
    let text = BASE
        .replace("ip 10.0.0.12", "ip 10.0.0")
        .replace("ip 10.0.0.21", "ip mon1.example");
    let errs = errors(&text, Program::Control);
    assert_has(
        &errs,
        &format!(
            "mmm_common.conf:{}: bad value for 'ip' in <host db2>: '10.0.0' is not an IP address",
            line_of(&text, "ip 10.0.0")
        ),
    );
    assert!(
        errs.contains("'mon1.example' is not an IP address"),
        "{errs}"
    );
}

#[test]
fn ips_used_twice() {
    let text = format!(
        "{BASE}<role reader>\nhosts db1, db2\nips 10.0.0.100, 10.0.0.11, 10.0.0.21\nmode balanced\n</role>\n\
         <host db3>\nip 10.0.0.12\nmode slave\n</host>\n"
    );
    let errs = errors(&text, Program::Control);
    assert!(
        errs.contains("IP 10.0.0.100 is used by roles 'reader' and 'writer'"),
        "{errs}"
    );
    assert!(
        errs.contains("IP 10.0.0.11 of role 'reader' is the address of host 'db1'"),
        "{errs}"
    );
    assert!(
        errs.contains("IP 10.0.0.21 of role 'reader' is the address of monitor 'mon1'"),
        "{errs}"
    );
    assert!(
        errs.contains("hosts 'db2' and 'db3' have the same ip 10.0.0.12 and mysql_port 3306"),
        "{errs}"
    );
    assert!(!errs.contains("agent_port"), "one clash, one error: {errs}");
}

#[test]
fn hosts_may_share_an_ip_on_different_ports() {
    let text = format!(
        "{BASE}<host db3>\nip 10.0.0.12\nmode slave\nmysql_port 3307\nagent_port 9999\n</host>\n"
    );
    load(&text, Program::Control).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn active_master_role_must_be_an_exclusive_role() {
    let text = BASE.replace("active_master_role writer", "active_master_role writr");
    let errs = errors(&text, Program::Control);
    assert_has(
        &errs,
        "mmm_common.conf:1: active_master_role 'writr' is not a <role> (roles: writer)",
    );
}

#[test]
fn role_defined_twice_with_different_contents() {
    let text = format!("{BASE}<role writer>\nhosts db2\nips 10.0.0.100\n</role>\n");
    let errs = errors(&text, Program::Control);
    let first = line_of(&text, "<role writer>");
    let second = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "<role writer>")
        .map(|(i, _)| i + 1)
        .last()
        .unwrap();
    assert_has(
        &errs,
        &format!(
            "mmm_common.conf:{second}: role 'writer' is defined twice with different contents \
             (first at mmm_common.conf:{first}); did you mean another role name?"
        ),
    );
    // Re-opening with the same contents merges, as MMM does.
    let same = format!("{BASE}<role writer>\nhosts db1,db2\n</role>\n");
    load(&same, Program::Control).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn reopened_hosts_merge_keys() {
    let text = format!("{BASE}<host db2>\nmysql_port 3307\n</host>\n");
    let c = load(&text, Program::Control).unwrap();
    assert_eq!(c.hosts["db2"].mysql_port, 3307);
    assert_eq!(c.hosts["db2"].ip.to_string(), "10.0.0.12");
}

#[test]
fn bad_values() {
    let text = format!(
        "{BASE}debug maybe\n<monitor>\nport 99999\nauto_set_online -1\nmode lazy\ncareful_startup 2\n</monitor>\n<check mysql>\ntimeout 1s\n</check>\n<check pong/>\n"
    );
    let errs = errors(&text, Program::Control);
    assert!(
        errs.contains("bad value for 'debug' in the top level: 'maybe' is not a boolean"),
        "{errs}"
    );
    assert!(
        errs.contains("bad value for 'port' in <monitor>: '99999' is not a port number"),
        "{errs}"
    );
    assert!(
        errs.contains(
            "bad value for 'auto_set_online' in <monitor>: '-1' is not a number of seconds"
        ),
        "{errs}"
    );
    assert!(
        errs.contains("'lazy' is not one of active, manual, wait, passive"),
        "{errs}"
    );
    assert!(errs.contains("bad value for 'careful_startup'"), "{errs}");
    assert!(
        errs.contains("bad value for 'timeout' in <check mysql>: '1s'"),
        "{errs}"
    );
    assert!(
        errs.contains(&format!(
            "mmm_common.conf:{}: unknown check 'pong'",
            line_of(&text, "<check pong/>")
        )),
        "{errs}"
    );
}

#[test]
fn ssl_socket_needs_its_files() {
    let text = format!("{BASE}<socket>\ntype ssl\ncert_file /etc/mmm/c.pem\n</socket>\n");
    let errs = errors(&text, Program::Control);
    assert!(
        errs.contains("missing key 'key_file' in <socket>"),
        "{errs}"
    );
    assert!(errs.contains("missing key 'ca_file' in <socket>"), "{errs}");
    let ok = format!("{BASE}<socket>\ntype ssl\ncert_file c\nkey_file k\nca_file ca\n</socket>\n");
    let c = load(&ok, Program::Control).unwrap();
    assert_eq!(c.socket.kind, mmm_config::SocketKind::Ssl);
}

#[test]
fn tools_only_keys_are_accepted_with_a_warning() {
    let text = BASE.replace(
        "    cluster_interface eth0\n",
        "    cluster_interface eth0\n    ssh_user root\n    lvm_snapshot_size 1G\n    pid_path /var/run/x.pid\n    tools_password x\n",
    ) + "clone_dirs data, logs\n<copy_method rdiff>\n backup_command x\n</copy_method>\n";
    let c = load(&text, Program::Control).unwrap_or_else(|e| panic!("{e}"));
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        w.iter()
            .any(|w| w.contains("'ssh_user' in <host default> is used only by MMM's tools")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.contains("'clone_dirs' at top level")),
        "{w:?}"
    );
    assert!(w.iter().all(|w| !w.contains("pid_path")), "{w:?}");
}

#[test]
fn fractional_seconds_and_kept_values() {
    let text = format!(
        "{BASE}<check default>\ncheck_period 5\ntrap_period 10\ntimeout 2\n</check>\n<check ping>\ncheck_period 0.25\n</check>\n\
         <monitor>\nwriter_lease 1.5\nhook_timeout 4\n</monitor>\n"
    );
    let c = load(&text, Program::Control).unwrap();
    assert_eq!(c.checks.ping.check_period.as_millis(), 250);
    assert_eq!(c.checks.mysql.check_period.as_secs(), 5);
    assert_eq!(c.checks.mysql.trap_period.as_secs(), 10);
    assert_eq!(c.checks.rep_threads.timeout.as_secs(), 2);
    assert_eq!(c.monitor.writer_lease.as_millis(), 1500);
    assert_eq!(c.monitor.hook_timeout.as_secs(), 4);
}

#[test]
fn unspecified_addresses_are_refused() {
    let text = BASE.replace("ip 10.0.0.11", "ip 0.0.0.0");
    let errs = errors(&text, Program::Control);
    assert!(
        errs.contains("bad value for 'ip' in <host db1>: '0.0.0.0' is not a usable address"),
        "{errs}"
    );
}

#[test]
fn agent_role_change_hook_keys() {
    let c = load(&format!("{BASE}this db1\n"), Program::Agent).unwrap();
    assert_eq!(c.agent.role_change_hook, None, "no hook unless configured");
    assert_eq!(c.agent.role_change_hook_timeout.as_secs(), 10);
    let text = format!(
        "{BASE}this db1\n<agent>\nrole_change_hook /usr/local/bin/proxysql-hook.sh\nrole_change_hook_timeout 2.5\n</agent>\n"
    );
    let c = load(&text, Program::Agent).unwrap();
    assert_eq!(
        c.agent.role_change_hook.as_deref(),
        Some(std::path::Path::new("/usr/local/bin/proxysql-hook.sh"))
    );
    assert_eq!(c.agent.role_change_hook_timeout.as_millis(), 2500);
    let bad = format!("{BASE}this db1\n<agent>\nrole_change_hook_timeout 5s\n</agent>\n");
    let errs = errors(&bad, Program::Agent);
    let line = line_of(&bad, "role_change_hook_timeout 5s");
    assert_has(
        &errs,
        &format!(
            "mmm_common.conf:{line}: bad value for 'role_change_hook_timeout' in <agent>: \
             '5s' is not a number of seconds (e.g. 5 or 0.5)"
        ),
    );
}

#[test]
fn agent_kill_stalled_mysqld_is_on_unless_turned_off() {
    let c = load(&format!("{BASE}this db1\n"), Program::Agent).unwrap();
    assert!(c.agent.kill_stalled_mysqld, "on by default");
    let off = format!("{BASE}this db1\n<agent>\nkill_stalled_mysqld 0\n</agent>\n");
    assert!(
        !load(&off, Program::Agent)
            .unwrap()
            .agent
            .kill_stalled_mysqld
    );
    let bad = format!("{BASE}this db1\n<agent>\nkill_stalled_mysqld maybe\n</agent>\n");
    let errs = errors(&bad, Program::Agent);
    let line = line_of(&bad, "kill_stalled_mysqld maybe");
    assert!(
        errs.contains(&format!(
            "mmm_common.conf:{line}: bad value for 'kill_stalled_mysqld' in <agent>"
        )),
        "{errs}"
    );
}

#[test]
fn agent_catch_up_from_peers_is_on_unless_turned_off() {
    let c = load(&format!("{BASE}this db1\n"), Program::Agent).unwrap();
    assert!(c.agent.catch_up_from_peers, "on by default");
    let off = format!("{BASE}this db1\n<agent>\ncatch_up_from_peers 0\n</agent>\n");
    assert!(
        !load(&off, Program::Agent)
            .unwrap()
            .agent
            .catch_up_from_peers
    );
    let bad = format!("{BASE}this db1\n<agent>\ncatch_up_from_peers often\n</agent>\n");
    let errs = errors(&bad, Program::Agent);
    let line = line_of(&bad, "catch_up_from_peers often");
    assert!(
        errs.contains(&format!(
            "mmm_common.conf:{line}: bad value for 'catch_up_from_peers' in <agent>"
        )),
        "{errs}"
    );
}

#[test]
fn monitor_auto_rejoin_errant_is_off_unless_turned_on() {
    let c = load(&format!("{BASE}this mon1\n"), Program::Monitor).unwrap();
    assert!(!c.monitor.auto_rejoin_errant, "off by default");
    let on = format!("{BASE}this mon1\n<monitor>\nauto_rejoin_errant 1\n</monitor>\n");
    assert!(
        load(&on, Program::Monitor)
            .unwrap()
            .monitor
            .auto_rejoin_errant
    );
    let bad = format!("{BASE}this mon1\n<monitor>\nauto_rejoin_errant sometimes\n</monitor>\n");
    let errs = errors(&bad, Program::Monitor);
    let line = line_of(&bad, "auto_rejoin_errant sometimes");
    assert!(
        errs.contains(&format!(
            "mmm_common.conf:{line}: bad value for 'auto_rejoin_errant' in <monitor>"
        )),
        "{errs}"
    );
}

#[test]
fn agent_lock_privileged_accounts_is_off_unless_turned_on() {
    let c = load(&format!("{BASE}this db1\n"), Program::Agent).unwrap();
    assert!(!c.agent.lock_privileged_accounts, "off by default");
    let on = format!("{BASE}this db1\n<agent>\nlock_privileged_accounts 1\n</agent>\n");
    assert!(
        load(&on, Program::Agent)
            .unwrap()
            .agent
            .lock_privileged_accounts
    );
    let bad = format!("{BASE}this db1\n<agent>\nlock_privileged_accounts sometimes\n</agent>\n");
    let errs = errors(&bad, Program::Agent);
    let line = line_of(&bad, "lock_privileged_accounts sometimes");
    assert!(
        errs.contains(&format!(
            "mmm_common.conf:{line}: bad value for 'lock_privileged_accounts' in <agent>"
        )),
        "{errs}"
    );
}
