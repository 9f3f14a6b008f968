//! Writes a configuration back in MMM syntax with every default filled in and passwords masked,
//! so an operator sees exactly what is in effect (`mmm-monitor --print-config` and friends).

use std::fmt::Write;

use crate::model::CheckConfig;
use crate::value::format_duration;
use crate::{Checks, Config};

const MASK: &str = "********";

/// Renders `c`.
pub(crate) fn render(c: &Config) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# effective configuration read from {}",
        c.source.display()
    );
    let _ = writeln!(w, "# (defaults filled in, passwords masked)");
    if let Some(t) = &c.this {
        kv(w, 0, "this", t);
    }
    kv(w, 0, "debug", if c.debug { "1" } else { "0" });
    if let Some(r) = &c.active_master_role {
        kv(w, 0, "active_master_role", r);
    }
    kv(w, 0, "max_kill_retries", &c.max_kill_retries.to_string());

    let m = &c.monitor;
    let _ = writeln!(w, "\n<monitor>");
    if let Some(ip) = m.ip {
        kv(w, 1, "ip", &ip.to_string());
    }
    kv(w, 1, "port", &m.port.to_string());
    for (k, v) in [
        ("pid_path", &m.pid_path),
        ("bin_path", &m.bin_path),
        ("status_path", &m.status_path),
        ("kill_host_bin", &m.kill_host_bin),
        ("data_dir", &m.data_dir),
        ("pre_failover", &m.pre_failover),
        ("post_failover", &m.post_failover),
        ("post_role_change", &m.post_role_change),
    ] {
        if let Some(p) = v {
            kv(w, 1, k, &p.display().to_string());
        }
    }
    kv(w, 1, "ping_interval", &format_duration(m.ping_interval));
    if !m.ping_ips.is_empty() {
        let ips: Vec<String> = m.ping_ips.iter().map(|i| i.to_string()).collect();
        kv(w, 1, "ping_ips", &ips.join(", "));
    }
    kv(w, 1, "flap_duration", &format_duration(m.flap_duration));
    kv(w, 1, "flap_count", &m.flap_count.to_string());
    kv(w, 1, "auto_set_online", &format_duration(m.auto_set_online));
    kv(
        w,
        1,
        "careful_startup",
        if m.careful_startup { "1" } else { "0" },
    );
    kv(w, 1, "mode", m.mode.as_str());
    kv(
        w,
        1,
        "wait_for_other_master",
        &format_duration(m.wait_for_other_master),
    );
    kv(w, 1, "writer_lease", &format_duration(m.writer_lease));
    kv(
        w,
        1,
        "async_failover",
        if m.async_failover { "1" } else { "0" },
    );
    kv(
        w,
        1,
        "auto_rejoin_errant",
        if m.auto_rejoin_errant { "1" } else { "0" },
    );
    kv(w, 1, "metrics_port", &m.metrics_port.to_string());
    kv(w, 1, "hook_timeout", &format_duration(m.hook_timeout));
    let _ = writeln!(w, "</monitor>");

    if !c.single_monitor {
        for n in c.monitor_nodes.values() {
            let _ = writeln!(w, "\n<monitor_node {}>", n.name);
            kv(w, 1, "ip", &n.ip.to_string());
            kv(w, 1, "port", &n.port.to_string());
            kv(w, 1, "metrics_port", &n.metrics_port.to_string());
            let _ = writeln!(w, "</monitor_node>");
        }
    }

    let _ = writeln!(w, "\n<agent>");
    if let Some(d) = &c.agent.state_dir {
        kv(w, 1, "state_dir", &d.display().to_string());
    }
    kv(w, 1, "metrics_port", &c.agent.metrics_port.to_string());
    if let Some(p) = &c.agent.role_change_hook {
        kv(w, 1, "role_change_hook", &p.display().to_string());
    }
    kv(
        w,
        1,
        "role_change_hook_timeout",
        &format_duration(c.agent.role_change_hook_timeout),
    );
    kv(
        w,
        1,
        "kill_stalled_mysqld",
        if c.agent.kill_stalled_mysqld {
            "1"
        } else {
            "0"
        },
    );
    kv(
        w,
        1,
        "catch_up_from_peers",
        if c.agent.catch_up_from_peers {
            "1"
        } else {
            "0"
        },
    );
    kv(
        w,
        1,
        "lock_privileged_accounts",
        if c.agent.lock_privileged_accounts {
            "1"
        } else {
            "0"
        },
    );
    let _ = writeln!(w, "</agent>");

    let _ = writeln!(w, "\n<socket>");
    kv(w, 1, "type", c.socket.kind.as_str());
    for (k, v) in [
        ("cert_file", &c.socket.cert_file),
        ("key_file", &c.socket.key_file),
        ("ca_file", &c.socket.ca_file),
    ] {
        if let Some(p) = v {
            kv(w, 1, k, &p.display().to_string());
        }
    }
    let _ = writeln!(w, "</socket>");

    for h in c.hosts.values() {
        let _ = writeln!(w, "\n<host {}>", h.name);
        kv(w, 1, "ip", &h.ip.to_string());
        kv(w, 1, "mode", h.mode.as_str());
        if let Some(p) = &h.peer {
            kv(w, 1, "peer", p);
        }
        text(w, "cluster_interface", &h.cluster_interface);
        kv(w, 1, "agent_port", &h.agent_port.to_string());
        kv(w, 1, "mysql_port", &h.mysql_port.to_string());
        for (user_key, user, pass_key, empty) in [
            (
                "agent_user",
                &h.agent_user,
                "agent_password",
                h.agent_password.is_empty(),
            ),
            (
                "monitor_user",
                &h.monitor_user,
                "monitor_password",
                h.monitor_password.is_empty(),
            ),
            (
                "replication_user",
                &h.replication_user,
                "replication_password",
                h.replication_password.is_empty(),
            ),
        ] {
            text(w, user_key, user);
            if !empty {
                kv(w, 1, pass_key, MASK);
            }
        }
        let _ = writeln!(w, "</host>");
    }

    for r in c.roles.values() {
        let _ = writeln!(w, "\n<role {}>", r.name);
        kv(w, 1, "mode", r.mode.as_str());
        kv(w, 1, "hosts", &r.hosts.join(", "));
        let ips: Vec<String> = r.ips.iter().map(|i| i.to_string()).collect();
        kv(w, 1, "ips", &ips.join(", "));
        if let Some(p) = &r.prefer {
            kv(w, 1, "prefer", p);
        }
        let _ = writeln!(w, "</role>");
    }

    for name in Checks::NAMES {
        if let Some(chk) = c.checks.get(name) {
            check(w, name, chk);
        }
    }
    out
}

fn check(w: &mut String, name: &str, c: &CheckConfig) {
    let _ = writeln!(w, "\n<check {name}>");
    kv(w, 1, "check_period", &format_duration(c.check_period));
    kv(w, 1, "trap_period", &format_duration(c.trap_period));
    kv(w, 1, "timeout", &format_duration(c.timeout));
    kv(w, 1, "restart_after", &c.restart_after.to_string());
    kv(w, 1, "max_backlog", &format_duration(c.max_backlog));
    let _ = writeln!(w, "</check>");
}

fn text(w: &mut String, key: &str, value: &str) {
    if !value.is_empty() {
        kv(w, 1, key, value);
    }
}

fn kv(w: &mut String, indent: usize, key: &str, value: &str) {
    let pad = "    ".repeat(indent);
    let _ = writeln!(w, "{pad}{key:<22} {value}");
}
