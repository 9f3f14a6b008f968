//! The whole configuration and the questions other crates ask of it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::convert::{self, Ctx};
use crate::error::{ConfigError, ConfigErrors};
use crate::model::*;
use crate::reader::Reader;
use crate::{defaults, validate, LoadOptions, Program};

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `this`: the name of the local node (a host for the agent, a monitor node for the monitor).
    pub this: Option<String>,
    /// `debug`: more logging.
    pub debug: bool,
    /// `active_master_role`: the writer role (inferred when only one exclusive role exists).
    pub active_master_role: Option<String>,
    /// `max_kill_retries`: attempts to kill sessions when the writer role is removed.
    pub max_kill_retries: u32,
    /// `<monitor>`.
    pub monitor: MonitorConfig,
    /// `<monitor_node NAME>` sections (or one node made from MMM's `<monitor> ip`), by name.
    pub monitor_nodes: BTreeMap<String, MonitorNodeConfig>,
    /// `<host NAME>` sections, by name.
    pub hosts: BTreeMap<String, HostConfig>,
    /// `<role NAME>` sections, by name.
    pub roles: BTreeMap<String, RoleConfig>,
    /// `<check NAME>` sections, all four filled in.
    pub checks: Checks,
    /// `<socket>`.
    pub socket: SocketConfig,
    /// `<agent>` (mmm-rs).
    pub agent: AgentConfig,
    /// The top-level file this was read from.
    pub source: PathBuf,
    /// The program it was read for (decides which keys were required).
    pub program: Program,
    /// True when `monitor_nodes` was made from MMM's single `<monitor> ip` (no redundancy).
    pub single_monitor: bool,
    /// Things accepted but worth telling the user (already logged with `tracing::warn!`).
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// Reads `path` (and its includes) for `program`, with MMM's search path and permission rule.
    pub fn from_file(path: &Path, program: Program) -> Result<Config, ConfigErrors> {
        Self::from_file_with(path, program, &LoadOptions::default())
    }

    /// Like [`Config::from_file`] with explicit options (search path, permission check).
    pub fn from_file_with(
        path: &Path,
        program: Program,
        opts: &LoadOptions,
    ) -> Result<Config, ConfigErrors> {
        let mut reader = Reader::new(opts);
        reader.read_file(path, None);
        finish(reader, program, path)
    }

    /// Parses `text` as if it were the file `file_name`. Includes are resolved beside
    /// `file_name` (so relative to the current directory for a bare name), then on the search
    /// path. File permissions are not checked, so fixtures from a source tree can be used.
    pub fn from_str_for_tests(
        text: &str,
        file_name: &str,
        program: Program,
    ) -> Result<Config, ConfigErrors> {
        let opts = LoadOptions {
            check_permissions: false,
            ..LoadOptions::default()
        };
        let mut reader = Reader::new(&opts);
        reader.parse_text(text, Path::new(file_name));
        finish(reader, program, Path::new(file_name))
    }

    /// The local host (`this` among the `<host>` sections).
    pub fn this_host(&self) -> Option<&HostConfig> {
        self.this.as_deref().and_then(|t| self.hosts.get(t))
    }

    /// The local monitor node (`this` among the monitor nodes; for MMM's single monitor, that node).
    pub fn this_monitor_node(&self) -> Option<&MonitorNodeConfig> {
        if let Some(n) = self.this.as_deref().and_then(|t| self.monitor_nodes.get(t)) {
            return Some(n);
        }
        if self.single_monitor && self.program == Program::Monitor {
            return self.monitor_nodes.values().next();
        }
        None
    }

    /// The role named by `active_master_role`.
    pub fn writer_role(&self) -> Option<&RoleConfig> {
        self.active_master_role
            .as_deref()
            .and_then(|r| self.roles.get(r))
    }

    /// The role one of whose IPs is `ip`.
    pub fn role_of_ip(&self, ip: Ipv4Addr) -> Option<&RoleConfig> {
        self.roles.values().find(|r| r.ips.contains(&ip))
    }

    /// Where the agent keeps its state: `<agent> state_dir` or `/var/lib/mysql-mmm/agent-<this>`.
    pub fn agent_state_dir(&self) -> PathBuf {
        self.agent.state_dir.clone().unwrap_or_else(|| {
            let this = self.this.as_deref().unwrap_or("agent");
            Path::new(defaults::STATE_ROOT).join(format!("agent-{this}"))
        })
    }

    /// Where the monitor keeps its Raft data: `<monitor> data_dir` or `/var/lib/mysql-mmm/<this>`.
    pub fn monitor_data_dir(&self) -> PathBuf {
        self.monitor.data_dir.clone().unwrap_or_else(|| {
            let name = self
                .this_monitor_node()
                .map(|n| n.name.as_str())
                .or(self.this.as_deref())
                .unwrap_or("monitor");
            Path::new(defaults::STATE_ROOT).join(name)
        })
    }

    /// The effective configuration in MMM syntax, defaults filled in, passwords masked.
    pub fn render_effective(&self) -> String {
        crate::render::render(self)
    }
}

/// Types, validates and returns the configuration, or every error found.
fn finish(reader: Reader<'_>, program: Program, source: &Path) -> Result<Config, ConfigErrors> {
    let Reader {
        raw,
        mut errors,
        mut warnings,
        incomplete,
        ..
    } = reader;
    if incomplete {
        // A file is missing or refused: checks on the rest would report only its absence.
        return Err(ConfigErrors(errors));
    }
    let mut ctx = Ctx {
        source,
        errors: &mut errors,
        warnings: &mut warnings,
    };
    let mut config = convert::build(&raw, program, &mut ctx);
    validate::validate(&mut config, &raw, &mut errors, &mut warnings);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    for w in &warnings {
        tracing::warn!(file = %w.file.display(), line = w.line, "{}", w.message);
    }
    config.warnings = warnings;
    tracing::debug!(source = %source.display(), ?program, hosts = config.hosts.len(),
        roles = config.roles.len(), monitors = config.monitor_nodes.len(), "configuration loaded");
    Ok(config)
}
