//! The command line: `mmmctl [@CLUSTER] [--config FILE] [--monitor HOST:PORT]… [--json]
//! [--timeout SECS] COMMAND …`, with `mmm_control`'s command names.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Command-line control of an mmm-rs monitor cluster (mmm_control's successor).
#[derive(Debug, Parser)]
#[command(name = "mmmctl", version, disable_help_subcommand = true)]
pub struct Cli {
    /// `@CLUSTER` (the first argument, as for mmm_control): reads `mmm_mon_CLUSTER.conf`.
    #[arg(skip)]
    pub cluster: Option<String>,
    /// Read this configuration file instead of searching for `mmm_mon[_CLUSTER].conf`.
    #[arg(long, value_name = "FILE", global = true, env = "MMMCTL_CONFIG")]
    pub config: Option<PathBuf>,
    /// A monitor to talk to (HOST:PORT); repeat for several, or list them in MMMCTL_MONITORS
    /// separated by commas. Overrides the config.
    #[arg(
        long = "monitor",
        value_name = "HOST:PORT",
        global = true,
        env = "MMMCTL_MONITORS",
        value_delimiter = ','
    )]
    pub monitors: Vec<String>,
    /// Print the reply as JSON (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for a monitor's answer.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, global = true)]
    pub timeout: f64,
    /// The command (none: `help`).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Started as `mmm_control`: MMM's output details and exit codes (see [`crate::compat`]).
    #[arg(skip)]
    pub mmm_control: bool,
    /// In `mmm_control` mode, a command line MMM would not accept (answered with MMM's
    /// `Invalid command` text once a monitor answered), as typed.
    #[arg(skip)]
    pub mmm_invalid: Option<String>,
}

/// mmm_control's commands, plus `cluster`, `history` and `completions`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
#[command(rename_all = "snake_case")]
pub enum Command {
    /// Show the list of commands.
    Help,
    /// Ping the monitor.
    Ping,
    /// Show the status of every host; `--extended` adds each host's replication facts.
    Show {
        /// Add replication source, threads, lag, GTID positions, read_only, semi-sync, errant
        /// transactions, agent reachability and the writer's lease.
        #[arg(long)]
        extended: bool,
    },
    /// Show the status of the checks: `checks [<host>|all [<check>|all]]`.
    Checks {
        /// A host, or `all`.
        host: Option<String>,
        /// A check, or `all`.
        check: Option<String>,
    },
    /// Set a host online.
    SetOnline {
        /// The host.
        host: String,
    },
    /// Set a host offline.
    SetOffline {
        /// The host.
        host: String,
    },
    /// Print the current mode.
    Mode,
    /// Switch into active mode.
    SetActive,
    /// Switch into manual mode.
    SetManual,
    /// Switch into passive mode.
    SetPassive,
    /// Move an exclusive role to a host.
    MoveRole {
        /// Move the writer to a host in REPLICATION_FAIL/DELAY (only if you know what you are doing!).
        #[arg(long)]
        force: bool,
        /// The role.
        role: String,
        /// The host.
        host: String,
    },
    /// Set the role with this IP to a host (passive mode only).
    SetIp {
        /// The role IP.
        ip: String,
        /// The host.
        host: String,
    },
    /// Show the monitor cluster: members, leader, term, log indexes, each follower's lag;
    /// `cluster add <name> <ip:port>` / `cluster remove <name>` change its membership.
    Cluster {
        /// A membership change; none shows the cluster.
        #[command(subcommand)]
        change: Option<ClusterChange>,
    },
    /// Show the last decisions.
    History {
        /// How many (default 20).
        n: Option<u32>,
        /// Per writer move, when each step was decided, from the detection to the end.
        #[arg(long)]
        timing: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Certificates for mutual TLS (`<socket> type ssl`).
    Certs {
        /// What to do.
        #[command(subcommand)]
        action: CertsAction,
    },
}

/// `certs` commands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
#[command(rename_all = "snake_case")]
pub enum CertsAction {
    /// Write a new CA and a certificate for every monitor node, host and the operator.
    Init {
        /// Directory to write into.
        #[arg(long, value_name = "DIR", default_value = "/etc/mysql-mmm/certs")]
        dir: PathBuf,
        /// Replace an existing CA and certificates.
        #[arg(long)]
        force: bool,
    },
    /// Add one node's certificate to the existing CA in DIR (a node added to the cluster, or a
    /// certificate renewed): its IPs come from the configuration, or from --ip.
    Issue {
        /// The node: a `<monitor_node>` or `<host>` name, `operator`, or any name with --ip.
        name: String,
        /// Directory holding the CA (`ca.pem`, `ca.key`); the certificate is written there.
        #[arg(long, value_name = "DIR", default_value = "/etc/mysql-mmm/certs")]
        dir: PathBuf,
        /// The node's IP address (repeat for several); default: its `ip` in the configuration.
        #[arg(long = "ip", value_name = "IP")]
        ips: Vec<std::net::IpAddr>,
        /// Replace an existing certificate of that name.
        #[arg(long)]
        force: bool,
    },
}

/// Changes of the monitor cluster's membership.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
#[command(rename_all = "snake_case")]
pub enum ClusterChange {
    /// Add a monitor (as a learner until it has caught up, then as a voter). A monitor whose
    /// data_dir was lost is removed first (`cluster remove`), then started and added again.
    Add {
        /// Its name (`this` in its mmm_mon.conf).
        name: String,
        /// Its gRPC address, `ip:port`.
        addr: String,
    },
    /// Remove a monitor (refused when the remaining voters would have no quorum).
    Remove {
        /// Its name.
        name: String,
    },
}

/// Shells `completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash.
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

impl Cli {
    /// Parses the arguments; a first argument `@NAME` selects the cluster, as for mmm_control.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut cluster = None;
        if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
            if let Some(name) = first.strip_prefix('@') {
                cluster = Some(name.to_string());
                args.remove(1);
            }
        }
        let mut cli = Cli::try_parse_from(args)?;
        cli.cluster = cluster;
        // `MMMCTL_MONITORS=" a:1, b:2"`: blanks around the commas are not part of the names.
        cli.monitors = cli
            .monitors
            .iter()
            .flat_map(|m| crate::compat::split_monitors(m))
            .collect();
        Ok(cli)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mmm_style_lines() {
        let c = Cli::try_parse_args([
            "mmmctl",
            "@c1",
            "--json",
            "move_role",
            "--force",
            "writer",
            "db2",
        ])
        .unwrap();
        assert_eq!(c.cluster.as_deref(), Some("c1"));
        assert!(c.json);
        assert_eq!(
            c.command,
            Some(Command::MoveRole {
                force: true,
                role: "writer".into(),
                host: "db2".into()
            })
        );
        let c = Cli::try_parse_args([
            "mmmctl",
            "checks",
            "db1",
            "all",
            "--monitor",
            "a:1",
            "--monitor",
            "b:2",
        ])
        .unwrap();
        assert_eq!(c.monitors, ["a:1", "b:2"]);
        assert_eq!(
            c.command,
            Some(Command::Checks {
                host: Some("db1".into()),
                check: Some("all".into())
            })
        );
        assert!(Cli::try_parse_args(["mmmctl", "set_online"]).is_err());
        assert!(Cli::try_parse_args(["mmmctl", "frobnicate"]).is_err());
        assert_eq!(Cli::try_parse_args(["mmmctl"]).unwrap().command, None);
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
