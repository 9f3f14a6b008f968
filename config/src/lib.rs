//! Reads MySQL-MMM configuration files (`mmm_common.conf`, `mmm_mon.conf`, `mmm_agent.conf`) the way
//! MMM 2.2.1 does, plus the mmm-rs extensions (`<monitor_node>`, `<agent>`, writer lease, hooks).
//!
//! ```no_run
//! use mmm_config::{load, Program};
//! let config = load(Program::Agent, None, None).unwrap_or_else(|e| {
//!     eprintln!("{e}");
//!     std::process::exit(1)
//! });
//! println!("{}", config.render_effective());
//! ```
//!
//! Every error names its file and line (`mmm_common.conf:14: unknown key 'ipp' in <host db1>`) and
//! all errors of a config are reported at once.
//!
//! Where this reader differs from MMM 2.2.1, and why:
//! - Check timing defaults are shorter (see [`defaults`]); a config that sets them keeps its values.
//! - `include` looks beside the including file first, then on the search path (MMM: search path
//!   only), and accepts absolute names, so a config tree can live anywhere (`--config FILE`).
//! - Durations accept fractions (`check_period 0.5`).
//! - A world-readable file is refused only when it holds a password (MMM: always); a
//!   world-writable file is always refused. The error says `chmod 640 FILE`.
//! - A section left open at the end of a file is an error (MMM silently closed it): that is
//!   what a truncated file looks like.
//! - A `<role>` opened twice with conflicting keys is an error (MMM let the second silently
//!   overwrite the first, which turned a copy-paste typo into a broken writer role).
//! - Without `active_master_role`, the only exclusive role is taken as the writer (with a
//!   warning); MMM required the key.
//! - MMM's tools-only keys ([`schema::HOST_TOOLS_KEYS`], `<copy_method>`, `clone_dirs`,
//!   `default_copy_method`) and its Perl agent's helper paths ([`schema::HOST_LEGACY_KEYS`]) are
//!   accepted and ignored.
//! - MMM's single `<monitor> ip/port` without `<monitor_node>` sections becomes a one-node monitor
//!   cluster (with a warning: no redundancy).
//! - `<monitor> status_path` is accepted and not used (with a warning): states live in the
//!   monitor cluster's replicated log.
//!
//! What MMM 2.2.1 loads although it means nothing or breaks later is accepted with a warning
//! (FILE:LINE, what MMM did, what mmm-rs does), so deployed configs move over unchanged:
//! - a `# comment` after an address, port, number or duration (MMM kept it in the value and
//!   failed at run time) is stripped; text values (names, paths, passwords) keep every `#`, and
//!   values MMM checked at load (`mode master # x`) are refused as MMM refused them;
//! - a host name in `ping_ips` (MMM pinged names) is resolved once, by the monitor, within
//!   2 s; a name that does not resolve is left out of the network check;
//! - `prefer` on a balanced role (MMM ignored it) is dropped;
//! - a host naming itself as its `peer` has no peer;
//! - a key followed only by blanks (MMM stored an empty string) is treated as not set.

mod config;
mod convert;
pub mod defaults;
mod error;
mod load;
mod model;
mod program;
mod raw;
mod reader;
mod render;
pub mod schema;
mod secret;
mod validate;
pub mod value;

pub use config::Config;
pub use error::{ConfigError, ConfigErrors};
pub use load::{find_config_file, load, load_with, LoadOptions};
pub use model::{
    AgentConfig, CheckConfig, Checks, HostConfig, HostMode, ModeSetting, MonitorConfig,
    MonitorNodeConfig, RoleConfig, RoleMode, SocketConfig, SocketKind,
};
pub use program::Program;
pub use secret::Secret;
