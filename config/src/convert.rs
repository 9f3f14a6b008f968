//! Turns a [`RawConfig`] into a typed [`Config`]: applies `default` templates and default values,
//! parses each value, and reports missing required keys for the program that reads the config.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ConfigError;
use crate::model::*;
use crate::raw::{Entry, RawConfig, RawSection};
use crate::schema::SectionKind;
use crate::value::*;
use crate::{Config, Program, Secret};

/// Collects errors while values are parsed.
pub(crate) struct Ctx<'a> {
    /// The top-level file, for errors that belong to no line.
    pub source: &'a Path,
    /// Everything wrong so far.
    pub errors: &'a mut Vec<ConfigError>,
    /// Things accepted that MMM would have read differently (stripped comments, host names
    /// resolved), so the user learns what mmm-rs did with them.
    pub warnings: &'a mut Vec<ConfigError>,
}

impl Ctx<'_> {
    /// Parses an entry if present; a bad value is reported at its line.
    fn val<T>(
        &mut self,
        entry: Option<&Entry>,
        key: &str,
        place: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let e = entry?;
        match parse(&e.value) {
            Ok(v) => Some(v),
            Err(m) => {
                if let Some((before, comment)) = trailing_comment(key, &e.value) {
                    if let Ok(v) = parse(before) {
                        self.warnings.push(ConfigError::at(
                            &e.loc.file,
                            e.loc.line,
                            format!(
                                "'{comment}' after the value of '{key}' in {place} is a comment: \
                                 using '{before}' (MMM kept the comment as part of the value, \
                                 which then failed at run time; comments belong on lines of their own)"
                            ),
                        ));
                        return Some(v);
                    }
                }
                self.errors.push(ConfigError::at(
                    &e.loc.file,
                    e.loc.line,
                    format!("bad value for '{key}' in {place}: {m}"),
                ));
                None
            }
        }
    }

    /// Reports a missing key at the section's first opening (or the top file).
    fn missing(&mut self, section: Option<&RawSection>, key: &str, place: &str, why: &str) {
        let msg = format!("missing key '{key}' in {place}{why}");
        self.errors.push(match section.and_then(|s| s.header()) {
            Some(l) => ConfigError::at(&l.file, l.line, msg),
            None => ConfigError::in_file(self.source, msg),
        });
    }
}

/// The value of a numeric or address key split into the value and a trailing `# comment`, when
/// it has one. Only keys MMM did not check when loading (addresses, ports, numbers, durations)
/// qualify: MMM loaded `ip 10.0.0.1 # db1` and failed later, whereas it refused
/// `mode master # db1` at once (and still is refused). Text values (names, paths, passwords) never
/// qualify: `#` is an ordinary character there.
fn trailing_comment<'v>(key: &str, value: &'v str) -> Option<(&'v str, &'v str)> {
    if !crate::schema::is_unchecked_typed_key(key) {
        return None;
    }
    let at = value.find('#')?;
    let before = value[..at].trim_end_matches(is_space);
    (!before.is_empty()).then_some((before, &value[at..]))
}

/// Sets `slot` when a value was parsed.
fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

/// A key of a section, falling back to the `default` template of its kind.
fn lookup<'a>(own: &'a RawSection, tpl: Option<&'a RawSection>, key: &str) -> Option<&'a Entry> {
    own.keys
        .get(key)
        .or_else(|| tpl.and_then(|t| t.keys.get(key)))
}

fn parse_path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        Err("empty path".to_owned())
    } else {
        Ok(PathBuf::from(v))
    }
}

fn parse_string(v: &str) -> Result<String, String> {
    Ok(v.to_owned())
}

/// The address of a host or monitor: `0.0.0.0`/`::` is nobody's address.
fn parse_node_ip(v: &str) -> Result<IpAddr, String> {
    match parse_ip(v)? {
        ip if ip.is_unspecified() => Err(format!("'{v}' is not a usable address")),
        ip => Ok(ip),
    }
}

fn parse_ip_list(v: &str) -> Result<Vec<IpAddr>, String> {
    parse_list(v).iter().map(|s| parse_ip(s)).collect()
}

fn parse_ipv4_list(v: &str) -> Result<Vec<Ipv4Addr>, String> {
    parse_list(v).iter().map(|s| parse_ipv4(s)).collect()
}

fn parse_mode_setting(v: &str) -> Result<ModeSetting, String> {
    match v.to_ascii_lowercase().as_str() {
        "active" => Ok(ModeSetting::Active),
        "manual" => Ok(ModeSetting::Manual),
        "wait" => Ok(ModeSetting::Wait),
        "passive" => Ok(ModeSetting::Passive),
        _ => Err(format!("'{v}' is not one of active, manual, wait, passive")),
    }
}

fn parse_host_mode(v: &str) -> Result<HostMode, String> {
    match v.to_ascii_lowercase().as_str() {
        "master" => Ok(HostMode::Master),
        "slave" => Ok(HostMode::Slave),
        _ => Err(format!("'{v}' is not one of master, slave")),
    }
}

fn parse_role_mode(v: &str) -> Result<RoleMode, String> {
    match v.to_ascii_lowercase().as_str() {
        "exclusive" => Ok(RoleMode::Exclusive),
        "balanced" => Ok(RoleMode::Balanced),
        _ => Err(format!("'{v}' is not one of exclusive, balanced")),
    }
}

fn parse_socket_kind(v: &str) -> Result<SocketKind, String> {
    match v.to_ascii_lowercase().as_str() {
        "plain" => Ok(SocketKind::Plain),
        "ssl" => Ok(SocketKind::Ssl),
        _ => Err(format!("'{v}' is not one of plain, ssl")),
    }
}

/// Builds the typed configuration. Errors go to `ctx`; the returned value is meaningful only when
/// no error was reported.
pub(crate) fn build(raw: &RawConfig, program: Program, ctx: &mut Ctx<'_>) -> Config {
    let g = |k: &str| raw.globals.get(k);
    let mut config = Config {
        this: ctx.val(g("this"), "this", "the top level", parse_string),
        debug: ctx
            .val(g("debug"), "debug", "the top level", parse_bool)
            .unwrap_or(false),
        active_master_role: ctx.val(
            g("active_master_role"),
            "active_master_role",
            "the top level",
            parse_string,
        ),
        max_kill_retries: ctx
            .val(
                g("max_kill_retries"),
                "max_kill_retries",
                "the top level",
                parse_u32,
            )
            .unwrap_or(crate::defaults::MAX_KILL_RETRIES),
        monitor: build_monitor(raw, program, ctx),
        monitor_nodes: build_monitor_nodes(raw, ctx),
        hosts: build_hosts(raw, program, ctx),
        roles: build_roles(raw, ctx),
        checks: build_checks(raw, ctx),
        socket: build_socket(raw, ctx),
        agent: build_agent(raw, ctx),
        source: ctx.source.to_path_buf(),
        program,
        single_monitor: false,
        warnings: Vec::new(),
    };
    if config.this.as_deref() == Some("") {
        config.this = None;
    }
    config
}

fn build_monitor(raw: &RawConfig, program: Program, ctx: &mut Ctx<'_>) -> MonitorConfig {
    let sec = raw.unique.get(&SectionKind::Monitor);
    let g = |k: &str| sec.and_then(|s| s.keys.get(k));
    let p = "<monitor>";
    let mut m = MonitorConfig {
        ip: ctx.val(g("ip"), "ip", p, parse_ip),
        pid_path: ctx.val(g("pid_path"), "pid_path", p, parse_path),
        bin_path: ctx.val(g("bin_path"), "bin_path", p, parse_path),
        status_path: ctx.val(g("status_path"), "status_path", p, parse_path),
        kill_host_bin: ctx.val(g("kill_host_bin"), "kill_host_bin", p, parse_path),
        data_dir: ctx.val(g("data_dir"), "data_dir", p, parse_path),
        pre_failover: ctx.val(g("pre_failover"), "pre_failover", p, parse_path),
        post_failover: ctx.val(g("post_failover"), "post_failover", p, parse_path),
        post_role_change: ctx.val(g("post_role_change"), "post_role_change", p, parse_path),
        ..MonitorConfig::default()
    };
    set(&mut m.port, ctx.val(g("port"), "port", p, parse_port));
    set(
        &mut m.ping_interval,
        ctx.val(g("ping_interval"), "ping_interval", p, parse_duration),
    );
    set(&mut m.ping_ips, ping_ips(g("ping_ips"), program, ctx));
    set(
        &mut m.flap_duration,
        ctx.val(g("flap_duration"), "flap_duration", p, parse_duration),
    );
    set(
        &mut m.flap_count,
        ctx.val(g("flap_count"), "flap_count", p, parse_u32),
    );
    set(
        &mut m.auto_set_online,
        ctx.val(g("auto_set_online"), "auto_set_online", p, parse_duration),
    );
    set(
        &mut m.careful_startup,
        ctx.val(g("careful_startup"), "careful_startup", p, parse_bool),
    );
    set(
        &mut m.mode,
        ctx.val(g("mode"), "mode", p, parse_mode_setting),
    );
    set(
        &mut m.wait_for_other_master,
        ctx.val(
            g("wait_for_other_master"),
            "wait_for_other_master",
            p,
            parse_duration,
        ),
    );
    set(
        &mut m.writer_lease,
        ctx.val(g("writer_lease"), "writer_lease", p, parse_duration),
    );
    set(
        &mut m.async_failover,
        ctx.val(g("async_failover"), "async_failover", p, parse_bool),
    );
    set(
        &mut m.auto_rejoin_errant,
        ctx.val(g("auto_rejoin_errant"), "auto_rejoin_errant", p, parse_bool),
    );
    set(
        &mut m.metrics_port,
        ctx.val(g("metrics_port"), "metrics_port", p, parse_port),
    );
    set(
        &mut m.hook_timeout,
        ctx.val(g("hook_timeout"), "hook_timeout", p, parse_duration),
    );
    m
}

/// Longest wait for the resolver when `ping_ips` names a host: a monitor must start even when
/// DNS hangs (the resolver's own retries can take 30 s and more).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// `ping_ips`: addresses, or host names as MMM accepted (it handed each to `ping`). A name is
/// resolved once, for the monitor only (nobody else pings), and its address used, with a warning;
/// a name that does not resolve in time is left out of the network check, with a warning. A
/// trailing comment is stripped as for other addresses.
fn ping_ips(entry: Option<&Entry>, program: Program, ctx: &mut Ctx<'_>) -> Option<Vec<IpAddr>> {
    let e = entry?;
    let warn = |ctx: &mut Ctx<'_>, msg: String| {
        ctx.warnings
            .push(ConfigError::at(&e.loc.file, e.loc.line, msg));
    };
    let mut value = e.value.as_str();
    if parse_ip_list(value).is_err() {
        if let Some((before, comment)) = trailing_comment("ping_ips", value) {
            warn(
                ctx,
                format!(
                    "'{comment}' after the value of 'ping_ips' in <monitor> is a comment: using \
                     '{before}' (MMM kept the comment as part of the value; comments belong on \
                     lines of their own)"
                ),
            );
            value = before;
        }
    }
    let mut ips = Vec::new();
    for item in parse_list(value) {
        if let Ok(ip) = parse_ip(&item) {
            ips.push(ip);
            continue;
        }
        if !is_host_name(&item) {
            ctx.errors.push(ConfigError::at(
                &e.loc.file,
                e.loc.line,
                format!(
                    "bad value for 'ping_ips' in <monitor>: '{item}' is neither an IP address nor a host name"
                ),
            ));
            continue;
        }
        if program != Program::Monitor {
            continue; // only the monitor pings them
        }
        match resolve(&item, RESOLVE_TIMEOUT) {
            Ok(ip) => {
                warn(
                    ctx,
                    format!(
                        "ping_ips names host '{item}': MMM pinged the name (resolving it at every \
                         ping); mmm-rs resolved it once, at start, and pings {ip}"
                    ),
                );
                ips.push(ip);
            }
            Err(why) => warn(
                ctx,
                format!(
                    "ping_ips names host '{item}', which does not resolve ({why}): MMM would have \
                     failed to ping it every time; mmm-rs leaves it out of the network check"
                ),
            ),
        }
    }
    Some(ips)
}

/// A DNS host name: letters, digits, `-` and `.`, not starting with `-` or `.`.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The first address of `name` (IPv4 first, as `ping` prefers), waiting at most `timeout`.
fn resolve(name: &str, timeout: Duration) -> Result<IpAddr, String> {
    use std::net::ToSocketAddrs;
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = name.to_owned();
    // getaddrinfo has no timeout of its own: it runs on a thread that is abandoned if it hangs.
    std::thread::Builder::new()
        .name("resolve-ping-ip".into())
        .spawn(move || {
            let r = (owned.as_str(), 0u16)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect::<Vec<_>>());
            let _ = tx.send(r);
        })
        .map_err(|e| format!("cannot start the resolver: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) => addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| "no address".to_owned()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}

fn build_monitor_nodes(raw: &RawConfig, ctx: &mut Ctx<'_>) -> BTreeMap<String, MonitorNodeConfig> {
    let tpl = raw.template(SectionKind::MonitorNode);
    let mut nodes = BTreeMap::new();
    for (name, sec) in raw.named_sections(SectionKind::MonitorNode) {
        let p = format!("<monitor_node {name}>");
        let ip = ctx.val(lookup(sec, tpl, "ip"), "ip", &p, parse_node_ip);
        if lookup(sec, tpl, "ip").is_none() {
            ctx.missing(Some(sec), "ip", &p, "");
        }
        let mut node = MonitorNodeConfig {
            name: name.to_owned(),
            ip: ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port: crate::defaults::MONITOR_PORT,
            metrics_port: crate::defaults::MONITOR_METRICS_PORT,
        };
        set(
            &mut node.port,
            ctx.val(lookup(sec, tpl, "port"), "port", &p, parse_port),
        );
        set(
            &mut node.metrics_port,
            ctx.val(
                lookup(sec, tpl, "metrics_port"),
                "metrics_port",
                &p,
                parse_port,
            ),
        );
        nodes.insert(name.to_owned(), node);
    }
    nodes
}

fn build_hosts(
    raw: &RawConfig,
    program: Program,
    ctx: &mut Ctx<'_>,
) -> BTreeMap<String, HostConfig> {
    let tpl = raw.template(SectionKind::Host);
    let mut hosts = BTreeMap::new();
    let mut required: Vec<(&str, &str)> = vec![("ip", ""), ("mode", "")];
    match program {
        Program::Agent => {
            let why = " (the agent needs it; set it there or in <host default>)";
            for k in [
                "cluster_interface",
                "agent_user",
                "agent_password",
                "replication_user",
                "replication_password",
            ] {
                required.push((k, why));
            }
        }
        Program::Monitor => {
            let why = " (the monitor needs it; set it there or in <host default>)";
            required.push(("monitor_user", why));
            required.push(("monitor_password", why));
        }
        Program::Control => {}
    }
    for (name, sec) in raw.named_sections(SectionKind::Host) {
        let p = format!("<host {name}>");
        let get = |k: &str| lookup(sec, tpl, k);
        for (k, why) in &required {
            if get(k).is_none() {
                ctx.missing(Some(sec), k, &p, why);
            }
        }
        let mode = ctx
            .val(get("mode"), "mode", &p, parse_host_mode)
            .unwrap_or(HostMode::Slave);
        let peer = ctx.val(get("peer"), "peer", &p, parse_string);
        if mode == HostMode::Master && peer.is_none() {
            ctx.missing(Some(sec), "peer", &p, " (a master needs its peer master)");
        }
        let text =
            |ctx: &mut Ctx<'_>, k: &str| ctx.val(get(k), k, &p, parse_string).unwrap_or_default();
        let mut host = HostConfig {
            name: name.to_owned(),
            ip: ctx
                .val(get("ip"), "ip", &p, parse_node_ip)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            mode,
            peer,
            cluster_interface: text(ctx, "cluster_interface"),
            agent_port: crate::defaults::AGENT_PORT,
            mysql_port: crate::defaults::MYSQL_PORT,
            agent_user: text(ctx, "agent_user"),
            agent_password: Secret::new(text(ctx, "agent_password")),
            monitor_user: text(ctx, "monitor_user"),
            monitor_password: Secret::new(text(ctx, "monitor_password")),
            replication_user: text(ctx, "replication_user"),
            replication_password: Secret::new(text(ctx, "replication_password")),
        };
        set(
            &mut host.agent_port,
            ctx.val(get("agent_port"), "agent_port", &p, parse_port),
        );
        set(
            &mut host.mysql_port,
            ctx.val(get("mysql_port"), "mysql_port", &p, parse_port),
        );
        hosts.insert(name.to_owned(), host);
    }
    hosts
}

fn build_roles(raw: &RawConfig, ctx: &mut Ctx<'_>) -> BTreeMap<String, RoleConfig> {
    let mut roles = BTreeMap::new();
    // Roles have no `default` template in MMM: `<role default>` is a role like any other.
    let sections = raw
        .named
        .get(&SectionKind::Role)
        .map(|m| m.iter().collect::<Vec<_>>())
        .unwrap_or_default();
    for (name, sec) in sections {
        let p = format!("<role {name}>");
        let get = |k: &str| sec.keys.get(k);
        for k in ["mode", "hosts", "ips"] {
            if get(k).is_none() {
                ctx.missing(Some(sec), k, &p, "");
            }
        }
        let role = RoleConfig {
            name: name.clone(),
            mode: ctx
                .val(get("mode"), "mode", &p, parse_role_mode)
                .unwrap_or(RoleMode::Balanced),
            hosts: ctx
                .val(get("hosts"), "hosts", &p, |v| Ok(parse_list(v)))
                .unwrap_or_default(),
            ips: ctx
                .val(get("ips"), "ips", &p, parse_ipv4_list)
                .unwrap_or_default(),
            prefer: ctx.val(get("prefer"), "prefer", &p, parse_string),
        };
        roles.insert(name.clone(), role);
    }
    roles
}

fn build_checks(raw: &RawConfig, ctx: &mut Ctx<'_>) -> Checks {
    let tpl = raw.template(SectionKind::Check);
    if let Some(all) = raw.named.get(&SectionKind::Check) {
        for (name, sec) in all {
            if name != "default" && !Checks::NAMES.contains(&name.as_str()) {
                let msg = format!(
                    "unknown check '{name}' (known: {}, and default)",
                    Checks::NAMES.join(", ")
                );
                if let Some(l) = sec.header() {
                    ctx.errors.push(ConfigError::at(&l.file, l.line, msg));
                }
            }
        }
    }
    let empty = RawSection::default();
    let mut checks = Checks::default();
    for name in Checks::NAMES {
        let sec = raw
            .named
            .get(&SectionKind::Check)
            .and_then(|m| m.get(name))
            .unwrap_or(&empty);
        let p = format!("<check {name}>");
        let get = |k: &str| lookup(sec, tpl, k);
        let Some(c) = checks.get_mut(name) else {
            continue;
        };
        set(
            &mut c.check_period,
            ctx.val(get("check_period"), "check_period", &p, parse_duration),
        );
        set(
            &mut c.trap_period,
            ctx.val(get("trap_period"), "trap_period", &p, parse_duration),
        );
        set(
            &mut c.timeout,
            ctx.val(get("timeout"), "timeout", &p, parse_duration),
        );
        set(
            &mut c.restart_after,
            ctx.val(get("restart_after"), "restart_after", &p, parse_u32),
        );
        set(
            &mut c.max_backlog,
            ctx.val(get("max_backlog"), "max_backlog", &p, parse_duration),
        );
    }
    checks
}

fn build_socket(raw: &RawConfig, ctx: &mut Ctx<'_>) -> SocketConfig {
    let sec = raw.unique.get(&SectionKind::Socket);
    let g = |k: &str| sec.and_then(|s| s.keys.get(k));
    let p = "<socket>";
    let mut s = SocketConfig {
        cert_file: ctx.val(g("cert_file"), "cert_file", p, parse_path),
        key_file: ctx.val(g("key_file"), "key_file", p, parse_path),
        ca_file: ctx.val(g("ca_file"), "ca_file", p, parse_path),
        ..SocketConfig::default()
    };
    set(
        &mut s.kind,
        ctx.val(g("type"), "type", p, parse_socket_kind),
    );
    if s.kind == SocketKind::Ssl {
        for k in ["cert_file", "key_file", "ca_file"] {
            if g(k).is_none() {
                ctx.missing(
                    sec,
                    k,
                    p,
                    " (type ssl needs cert_file, key_file and ca_file)",
                );
            }
        }
    }
    s
}

fn build_agent(raw: &RawConfig, ctx: &mut Ctx<'_>) -> AgentConfig {
    let sec = raw.unique.get(&SectionKind::Agent);
    let g = |k: &str| sec.and_then(|s| s.keys.get(k));
    let mut a = AgentConfig {
        state_dir: ctx.val(g("state_dir"), "state_dir", "<agent>", parse_path),
        ..AgentConfig::default()
    };
    set(
        &mut a.metrics_port,
        ctx.val(g("metrics_port"), "metrics_port", "<agent>", parse_port),
    );
    a.role_change_hook = ctx.val(
        g("role_change_hook"),
        "role_change_hook",
        "<agent>",
        parse_path,
    );
    set(
        &mut a.role_change_hook_timeout,
        ctx.val(
            g("role_change_hook_timeout"),
            "role_change_hook_timeout",
            "<agent>",
            parse_duration,
        ),
    );
    set(
        &mut a.kill_stalled_mysqld,
        ctx.val(
            g("kill_stalled_mysqld"),
            "kill_stalled_mysqld",
            "<agent>",
            parse_bool,
        ),
    );
    set(
        &mut a.catch_up_from_peers,
        ctx.val(
            g("catch_up_from_peers"),
            "catch_up_from_peers",
            "<agent>",
            parse_bool,
        ),
    );
    set(
        &mut a.lock_privileged_accounts,
        ctx.val(
            g("lock_privileged_accounts"),
            "lock_privileged_accounts",
            "<agent>",
            parse_bool,
        ),
    );
    a
}
