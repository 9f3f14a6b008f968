//! Which sections and keys exist (MMM 2.2.1's ruleset plus the mmm-rs extensions), and which
//! MMM keys are accepted only to be ignored.

/// A kind of section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SectionKind {
    Monitor,
    Socket,
    Agent,
    MonitorNode,
    Host,
    Role,
    Check,
    /// MMM tools only (`mmm_backup`, `mmm_clone`); accepted and ignored.
    CopyMethod,
}

/// How a key is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyUse {
    /// Read and used.
    Used,
    /// MMM key that only MMM's tools (backup/clone/restore) read: accepted, warned about, ignored.
    ToolsOnly,
    /// MMM key that only MMM's Perl daemons needed (their helper paths): accepted, ignored quietly.
    Legacy,
}

impl SectionKind {
    /// All section kinds.
    pub(crate) const ALL: [SectionKind; 8] = [
        SectionKind::Monitor,
        SectionKind::Socket,
        SectionKind::Agent,
        SectionKind::MonitorNode,
        SectionKind::Host,
        SectionKind::Role,
        SectionKind::Check,
        SectionKind::CopyMethod,
    ];

    /// The word in `<word ...>`.
    pub(crate) fn word(self) -> &'static str {
        match self {
            SectionKind::Monitor => "monitor",
            SectionKind::Socket => "socket",
            SectionKind::Agent => "agent",
            SectionKind::MonitorNode => "monitor_node",
            SectionKind::Host => "host",
            SectionKind::Role => "role",
            SectionKind::Check => "check",
            SectionKind::CopyMethod => "copy_method",
        }
    }

    pub(crate) fn from_word(word: &str) -> Option<SectionKind> {
        SectionKind::ALL.into_iter().find(|k| k.word() == word)
    }

    /// Named sections (`<host db1>`) versus unique ones (`<monitor>`).
    pub(crate) fn is_named(self) -> bool {
        matches!(
            self,
            SectionKind::MonitorNode
                | SectionKind::Host
                | SectionKind::Role
                | SectionKind::Check
                | SectionKind::CopyMethod
        )
    }

    /// Whether a section called `default` fills the unset keys of its siblings.
    pub(crate) fn has_template(self) -> bool {
        matches!(
            self,
            SectionKind::MonitorNode
                | SectionKind::Host
                | SectionKind::Check
                | SectionKind::CopyMethod
        )
    }

    /// How `key` is treated in this section, `None` if it does not exist.
    pub(crate) fn key_use(self, key: &str) -> Option<KeyUse> {
        let used: &[&str] = match self {
            SectionKind::Monitor => &[
                "ip",
                "port",
                "pid_path",
                "bin_path",
                "status_path",
                "ping_interval",
                "ping_ips",
                "flap_duration",
                "flap_count",
                "auto_set_online",
                "kill_host_bin",
                "careful_startup",
                "mode",
                "wait_for_other_master",
                "data_dir",
                "writer_lease",
                "async_failover",
                "auto_rejoin_errant",
                "metrics_port",
                "pre_failover",
                "post_failover",
                "post_role_change",
                "hook_timeout",
            ],
            SectionKind::Socket => &["type", "cert_file", "key_file", "ca_file"],
            SectionKind::Agent => &[
                "state_dir",
                "metrics_port",
                "role_change_hook",
                "role_change_hook_timeout",
                "kill_stalled_mysqld",
                "catch_up_from_peers",
                "lock_privileged_accounts",
            ],
            SectionKind::MonitorNode => &["ip", "port", "metrics_port"],
            SectionKind::Host => &[
                "ip",
                "mode",
                "peer",
                "cluster_interface",
                "agent_port",
                "mysql_port",
                "agent_user",
                "agent_password",
                "monitor_user",
                "monitor_password",
                "replication_user",
                "replication_password",
            ],
            SectionKind::Role => &["mode", "hosts", "ips", "prefer"],
            SectionKind::Check => &[
                "check_period",
                "trap_period",
                "timeout",
                "restart_after",
                "max_backlog",
            ],
            SectionKind::CopyMethod => &[],
        };
        if used.contains(&key) {
            return Some(KeyUse::Used);
        }
        match self {
            SectionKind::Host if HOST_LEGACY_KEYS.contains(&key) => Some(KeyUse::Legacy),
            SectionKind::Host if HOST_TOOLS_KEYS.contains(&key) => Some(KeyUse::ToolsOnly),
            SectionKind::CopyMethod if COPY_METHOD_KEYS.contains(&key) => Some(KeyUse::ToolsOnly),
            _ => None,
        }
    }
}

/// `<host>` keys only MMM's Perl agent used (its own pid file, helper scripts, mysqld control).
pub const HOST_LEGACY_KEYS: [&str; 5] = [
    "pid_path",
    "bin_path",
    "mysql_pidfile",
    "mysql_rcscript",
    "mysql_cnf",
];

/// `<host>` keys only MMM's tools (`mmm_backup`, `mmm_clone`, `mmm_restore`) used.
pub const HOST_TOOLS_KEYS: [&str; 14] = [
    "ssh_user",
    "ssh_port",
    "ssh_parameters",
    "tools_user",
    "tools_password",
    "backup_dir",
    "restore_dir",
    "lvm_bin_lvcreate",
    "lvm_bin_lvremove",
    "lvm_snapshot_size",
    "lvm_logical_volume",
    "lvm_volume_group",
    "lvm_mount_dir",
    "lvm_mount_opts",
];

/// `<copy_method>` keys (MMM tools only).
pub const COPY_METHOD_KEYS: [&str; 6] = [
    "backup_command",
    "restore_command",
    "incremental_command",
    "incremental",
    "single_run",
    "true_copy",
];

/// How a top-level key is treated, `None` if it does not exist.
pub(crate) fn global_key_use(key: &str) -> Option<KeyUse> {
    match key {
        "this" | "debug" | "active_master_role" | "max_kill_retries" => Some(KeyUse::Used),
        "default_copy_method" | "clone_dirs" => Some(KeyUse::ToolsOnly),
        _ => None,
    }
}

/// Keys whose values are lists (`a, b, c`), compared as lists when a role is re-opened.
pub(crate) fn is_list_key(key: &str) -> bool {
    matches!(key, "hosts" | "ips" | "ping_ips" | "clone_dirs")
}

/// Keys holding an address, port, number or duration that MMM 2.2.1 stored without checking when
/// it loaded the file (so a trailing `# comment` reached the code using it and failed there).
/// A trailing comment is stripped from these, with a warning.
pub(crate) fn is_unchecked_typed_key(key: &str) -> bool {
    matches!(
        key,
        "ip" | "ips"
            | "ping_ips"
            | "port"
            | "agent_port"
            | "mysql_port"
            | "metrics_port"
            | "ping_interval"
            | "flap_duration"
            | "flap_count"
            | "auto_set_online"
            | "wait_for_other_master"
            | "writer_lease"
            | "hook_timeout"
            | "check_period"
            | "trap_period"
            | "timeout"
            | "restart_after"
            | "max_backlog"
            | "max_kill_retries"
    )
}
