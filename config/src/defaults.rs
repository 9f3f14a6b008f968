//! Default values. They are MMM 2.2.1's, except where noted.
//!
//! Check timing differs on purpose. MMM's `check_period 5`, `trap_period 10`, `timeout 2` made its
//! single monitor slow because one observer cannot tell a network blip from a dead host, so it waited.
//! Here a failure is acted on only with a quorum of monitors agreeing (ambiguous evidence such as
//! timeouts) or with definite evidence from the host's own agent (mysqld gone or refusing
//! connections, confirmed by a second local probe). A single slow probe therefore cannot cause a
//! failover, so checks can run every second and trap after two: a dead master is acted on in about
//! 2-3 s instead of 10-15 s. A config that sets these keys keeps its values.

use std::time::Duration;

/// Directories searched for configuration files, first hit wins (MMM's list).
pub const SEARCH_PATH: [&str; 3] = ["/etc", "/etc/mmm", "/etc/mysql-mmm"];

/// Root of per-node state directories (`<root>/<this>` for monitors, `<root>/agent-<this>` for agents).
pub const STATE_ROOT: &str = "/var/lib/mysql-mmm";

/// gRPC port of a monitor (mmmctl, Raft, reports): MMM's monitor port.
pub const MONITOR_PORT: u16 = 9988;
/// gRPC port of an agent: MMM's agent port.
pub const AGENT_PORT: u16 = 9989;
/// HTTP port of a monitor's `/metrics` and `/healthz`.
pub const MONITOR_METRICS_PORT: u16 = 9990;
/// HTTP port of an agent's `/metrics`.
pub const AGENT_METRICS_PORT: u16 = 9991;
/// MySQL port.
pub const MYSQL_PORT: u16 = 3306;

/// MMM: attempts to kill client sessions when the writer role is removed.
pub const MAX_KILL_RETRIES: u32 = 10;

/// Check period (MMM: 5 s). See the module docs for why it is shorter.
pub const CHECK_PERIOD: Duration = Duration::from_secs(1);
/// How long a failure must last before it is reported (MMM: 10 s). See the module docs.
pub const TRAP_PERIOD: Duration = Duration::from_secs(2);
/// Timeout of one check (MMM: 2 s). See the module docs.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// MMM: restart the checker after this many checks (MMM ignored it; kept for compatibility).
pub const RESTART_AFTER: u32 = 10_000;
/// MMM: replication backlog above this is REPLICATION_DELAY.
pub const MAX_BACKLOG: Duration = Duration::from_secs(60);

/// MMM: interval of the monitor's own network check (`ping_ips`).
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// MMM: window in which more than `flap_count` drops make a host "flapping".
pub const FLAP_DURATION: Duration = Duration::from_secs(3600);
/// MMM: drops within `flap_duration` tolerated before a host is "flapping".
pub const FLAP_COUNT: u32 = 3;
/// MMM: `auto_set_online 0` = never set a recovered host ONLINE automatically.
pub const AUTO_SET_ONLINE: Duration = Duration::ZERO;
/// MMM: start carefully (keep the previous status) by default.
pub const CAREFUL_STARTUP: bool = true;
/// mmm-rs: fail over away from a writer that ran asynchronously, and say so (availability first, as
/// MMM, orchestrator and MHA do; `async_failover 0` for consistency first).
pub const ASYNC_FAILOVER: bool = true;
/// mmm-rs: a diverged old master waits for an operator unless the cluster opts in (undoing
/// transactions is a decision about data an operator makes once, for the cluster).
pub const AUTO_REJOIN_ERRANT: bool = false;
/// MMM: in wait mode, seconds to wait for the other master.
pub const WAIT_FOR_OTHER_MASTER: Duration = Duration::from_secs(120);

/// mmm-rs: how long an agent keeps the writer role without a renewal from a quorum-backed leader
/// (renewed every third of it). It bounds a failover when the writer is unreachable: a new writer
/// is named only after it, so it is short; a leader election takes a few hundred ms, well inside.
pub const WRITER_LEASE: Duration = Duration::from_secs(2);
/// mmm-rs: the longest a failover hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);
