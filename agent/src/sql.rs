//! Pure SQL builders for both server flavours (MariaDB and MySQL 8), and the rules that say which sessions
//! a demotion kills. No I/O here, so every variant is unit-tested.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

/// The server flavour, detected from `SELECT VERSION()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB (GTID domain-server-seq, `MASTER_GTID_WAIT`, `MASTER_USE_GTID`).
    MariaDb,
    /// MySQL 8 (GTID sets, `WAIT_FOR_EXECUTED_GTID_SET`, `SOURCE_AUTO_POSITION`, `super_read_only`).
    MySql,
}

impl Flavor {
    /// Detects the flavour from the server's version string.
    pub fn from_version(version: &str) -> Flavor {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }

    /// The name reported in `SystemStatus.flavor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::MariaDb => "mariadb",
            Flavor::MySql => "mysql",
        }
    }
}

/// Quotes a string literal for SQL (single quotes, backslash and quote escaped, NUL refused by callers).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Statements that deny writes. MySQL also sets `super_read_only` (which fences SUPER accounts too).
pub fn deny_writes(flavor: Flavor) -> Vec<String> {
    match flavor {
        Flavor::MariaDb => vec!["SET GLOBAL read_only = 1".into()],
        Flavor::MySql => vec![
            "SET GLOBAL read_only = 1".into(),
            "SET GLOBAL super_read_only = 1".into(),
        ],
    }
}

/// Statements that allow writes (MySQL: `super_read_only` must go first, it pins `read_only`).
pub fn allow_writes(flavor: Flavor) -> Vec<String> {
    match flavor {
        Flavor::MariaDb => vec!["SET GLOBAL read_only = 0".into()],
        Flavor::MySql => vec![
            "SET GLOBAL super_read_only = 0".into(),
            "SET GLOBAL read_only = 0".into(),
        ],
    }
}

/// The query that shows the replica's state (one row, or none when the server is not a replica).
pub fn show_replica_status(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => "SHOW SLAVE STATUS",
        Flavor::MySql => "SHOW REPLICA STATUS",
    }
}

/// Column names of the replica status row that differ between the flavours.
pub struct ReplicaColumns {
    /// Source host column.
    pub host: &'static str,
    /// Source port column.
    pub port: &'static str,
    /// IO thread state column.
    pub io_running: &'static str,
    /// SQL thread state column.
    pub sql_running: &'static str,
    /// Lag column.
    pub seconds_behind: &'static str,
}

/// The replica status column names of a flavour.
pub fn replica_columns(flavor: Flavor) -> ReplicaColumns {
    match flavor {
        Flavor::MariaDb => ReplicaColumns {
            host: "Master_Host",
            port: "Master_Port",
            io_running: "Slave_IO_Running",
            sql_running: "Slave_SQL_Running",
            seconds_behind: "Seconds_Behind_Master",
        },
        Flavor::MySql => ReplicaColumns {
            host: "Source_Host",
            port: "Source_Port",
            io_running: "Replica_IO_Running",
            sql_running: "Replica_SQL_Running",
            seconds_behind: "Seconds_Behind_Source",
        },
    }
}

/// `STOP SLAVE` / `STOP REPLICA`.
pub fn stop_replica(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => "STOP SLAVE",
        Flavor::MySql => "STOP REPLICA",
    }
}

/// `START SLAVE` / `START REPLICA`.
pub fn start_replica(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => "START SLAVE",
        Flavor::MySql => "START REPLICA",
    }
}

/// `STOP|START SLAVE IO_THREAD` / `STOP|START REPLICA IO_THREAD`.
pub fn replica_io_thread(flavor: Flavor, start: bool) -> String {
    let verb = if start { "START" } else { "STOP" };
    match flavor {
        Flavor::MariaDb => format!("{verb} SLAVE IO_THREAD"),
        Flavor::MySql => format!("{verb} REPLICA IO_THREAD"),
    }
}

/// `STOP|START SLAVE SQL_THREAD` / `STOP|START REPLICA SQL_THREAD`.
pub fn replica_sql_thread(flavor: Flavor, start: bool) -> String {
    let verb = if start { "START" } else { "STOP" };
    match flavor {
        Flavor::MariaDb => format!("{verb} SLAVE SQL_THREAD"),
        Flavor::MySql => format!("{verb} REPLICA SQL_THREAD"),
    }
}

/// Whole seconds for a server-side wait, at least 1.
fn wait_seconds(timeout: Duration) -> u64 {
    timeout.as_secs().max(1)
}

/// Waits until the received transactions `gtid` are applied. Returns a query whose single value is 0 when
/// done (MariaDB `MASTER_GTID_WAIT` gives -1 on timeout, MySQL `WAIT_FOR_EXECUTED_GTID_SET` gives 1).
pub fn wait_for_gtid(flavor: Flavor, gtid: &str, timeout: Duration) -> String {
    match flavor {
        Flavor::MariaDb => format!(
            "SELECT MASTER_GTID_WAIT({}, {})",
            quote(gtid),
            wait_seconds(timeout)
        ),
        Flavor::MySql => format!(
            "SELECT WAIT_FOR_EXECUTED_GTID_SET({}, {})",
            quote(gtid),
            wait_seconds(timeout)
        ),
    }
}

/// The query giving the GTIDs the replica has received from its source: MariaDB `Gtid_IO_Pos` is a column of
/// `SHOW SLAVE STATUS`; MySQL's `Retrieved_Gtid_Set` likewise. Returns the column name.
pub fn received_gtid_column(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => "Gtid_IO_Pos",
        Flavor::MySql => "Retrieved_Gtid_Set",
    }
}

pub use mmm_proto::gtid::{merge as gtid_merge, reached as gtid_reached};

/// One MariaDB GTID: (domain, server id, sequence number).
pub type Gtid = (u32, u32, u64);

/// Parses a MariaDB GTID position (`d-s-n`, comma-separated; "" is the empty position); `None` when
/// an entry is malformed.
pub fn parse_gtids(s: &str) -> Option<Vec<Gtid>> {
    mmm_proto::gtid::parse_position(s).ok().map(|v| {
        v.into_iter()
            .map(|g| (g.domain, g.server_id, g.seq))
            .collect()
    })
}

/// Points the replica at a new source with GTID auto-positioning (never a file/position guess).
pub fn change_source(
    flavor: Flavor,
    host: IpAddr,
    port: u16,
    user: &str,
    password: &str,
) -> String {
    let mut s = String::new();
    match flavor {
        Flavor::MariaDb => {
            let _ = write!(
                s,
                "CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={port}, MASTER_USER={}, MASTER_PASSWORD={}, \
                 MASTER_USE_GTID=slave_pos",
                quote(&host.to_string()),
                quote(user),
                quote(password)
            );
        }
        Flavor::MySql => {
            let _ = write!(
                s,
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST={}, SOURCE_PORT={port}, SOURCE_USER={}, \
                 SOURCE_PASSWORD={}, SOURCE_AUTO_POSITION=1",
                quote(&host.to_string()),
                quote(user),
                quote(password)
            );
        }
    }
    s
}

/// Server variables reporting GTID positions: (binlog, slave, current). MySQL has one set for all three.
pub fn gtid_positions_query(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => "SELECT @@gtid_binlog_pos, @@gtid_slave_pos, @@gtid_current_pos",
        Flavor::MySql => "SELECT @@gtid_executed, @@gtid_executed, @@gtid_executed",
    }
}

/// Accounts holding a privilege that writes through `read_only` (DESIGN Safety 6): (grantee, privilege).
pub fn privileged_accounts_query() -> &'static str {
    "SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES \
     WHERE PRIVILEGE_TYPE IN ('SUPER', 'READ_ONLY ADMIN', 'CONNECTION_ADMIN') ORDER BY GRANTEE, PRIVILEGE_TYPE"
}

/// The user part of a grantee such as `'app'@'%'`.
pub fn grantee_user(grantee: &str) -> &str {
    let g = grantee.strip_prefix('\'').unwrap_or(grantee);
    g.split_once("'@").map(|(u, _)| u).unwrap_or(g)
}

/// The host part of a grantee such as `'app'@'%'`.
pub fn grantee_host(grantee: &str) -> &str {
    grantee
        .split_once("'@'")
        .map(|(_, h)| h.trim_end_matches('\''))
        .unwrap_or("")
}

/// True for accounts that are not application accounts: the server's own system accounts, the MMM
/// accounts, and `root` when it can only log in locally (a `root` reachable from the network is what
/// an application may well use, so it is warned about like any other).
pub fn is_operational_account(grantee: &str, mmm_users: &[&str]) -> bool {
    let user = grantee_user(grantee);
    let local = matches!(grantee_host(grantee), "localhost" | "127.0.0.1" | "::1");
    matches!(
        user,
        "mariadb.sys" | "mysql.sys" | "mysql.session" | "mysql.infoschema" | ""
    ) || (user == "root" && local)
        || mmm_users.contains(&user)
}

/// One row of `SHOW PROCESSLIST` as far as session killing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Connection id.
    pub id: u64,
    /// Account user name.
    pub user: String,
    /// Command (`Query`, `Sleep`, `Binlog Dump`, ...).
    pub command: String,
}

/// Commands of server and replication threads a demotion never kills (a replica's `Binlog Dump`
/// connection to this server included: it carries no client writes).
pub const SPARED_COMMANDS: [&str; 7] = [
    "Binlog Dump",
    "Binlog Dump GTID",
    "Daemon",
    "Slave_IO",
    "Slave_SQL",
    "Slave_worker",
    "Connect",
];
/// Users of the server's own threads a demotion never kills.
pub const SPARED_USERS: [&str; 3] = ["system user", "event_scheduler", "DELAYED"];

/// True when a demotion must kill this session: a client session that is not our own connection, not an
/// agent session, and not a server or replication thread.
pub fn should_kill(s: &Session, own_id: u64, agent_user: &str) -> bool {
    s.id != own_id
        && s.user != agent_user
        && !SPARED_USERS.contains(&s.user.as_str())
        && !SPARED_COMMANDS.contains(&s.command.as_str())
}

/// The client address of a process-list `HOST` (`10.0.0.11:41234`, `[::1]:5000`, `localhost`).
pub fn session_ip(host: &str) -> Option<std::net::IpAddr> {
    if let Ok(sa) = host.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    host.parse().ok()
}

/// `KILL CONNECTION id`.
pub fn kill(id: u64) -> String {
    format!("KILL CONNECTION {id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavour_detection() {
        assert_eq!(
            Flavor::from_version("10.11.6-MariaDB-0+deb12u1-log"),
            Flavor::MariaDb
        );
        assert_eq!(Flavor::from_version("8.0.36"), Flavor::MySql);
        assert_eq!(Flavor::from_version("8.4.0-commercial"), Flavor::MySql);
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote("a'b\\c"), "'a''b\\\\c'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn read_only_statements_per_flavour() {
        assert_eq!(
            deny_writes(Flavor::MariaDb),
            vec!["SET GLOBAL read_only = 1"]
        );
        assert_eq!(
            deny_writes(Flavor::MySql),
            vec!["SET GLOBAL read_only = 1", "SET GLOBAL super_read_only = 1"]
        );
        assert_eq!(
            allow_writes(Flavor::MySql),
            vec!["SET GLOBAL super_read_only = 0", "SET GLOBAL read_only = 0"]
        );
        assert_eq!(
            allow_writes(Flavor::MariaDb),
            vec!["SET GLOBAL read_only = 0"]
        );
    }

    #[test]
    fn gtid_waits_have_a_timeout() {
        assert_eq!(
            wait_for_gtid(Flavor::MariaDb, "0-1-5,1-2-3", Duration::from_millis(2500)),
            "SELECT MASTER_GTID_WAIT('0-1-5,1-2-3', 2)"
        );
        assert_eq!(
            wait_for_gtid(
                Flavor::MySql,
                "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5",
                Duration::from_millis(10)
            ),
            "SELECT WAIT_FOR_EXECUTED_GTID_SET('3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5', 1)"
        );
    }

    #[test]
    fn change_source_uses_gtid_auto_positioning() {
        let ip: IpAddr = "10.0.0.12".parse().unwrap();
        assert_eq!(
            change_source(Flavor::MariaDb, ip, 3306, "repl", "p'w"),
            "CHANGE MASTER TO MASTER_HOST='10.0.0.12', MASTER_PORT=3306, MASTER_USER='repl', \
             MASTER_PASSWORD='p''w', MASTER_USE_GTID=slave_pos"
        );
        let my = change_source(Flavor::MySql, ip, 3307, "repl", "pw");
        assert_eq!(
            my,
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST='10.0.0.12', SOURCE_PORT=3307, SOURCE_USER='repl', \
             SOURCE_PASSWORD='pw', SOURCE_AUTO_POSITION=1"
        );
        assert!(!my.contains("LOG_FILE") && !my.contains("LOG_POS"));
        assert_eq!(stop_replica(Flavor::MySql), "STOP REPLICA");
        assert_eq!(start_replica(Flavor::MariaDb), "START SLAVE");
        assert_eq!(gtid_merge("0-1-10,1-2-5", "0-2-12"), "0-2-12,1-2-5");
        assert_eq!(gtid_merge("0-1-10", ""), "0-1-10");
        assert_eq!(gtid_merge("", ""), "");
        assert!(gtid_reached(
            "0-2-12,1-2-5",
            &gtid_merge("0-1-10,1-2-5", "0-2-12")
        ));
        assert!(!gtid_reached("0-1-11", &gtid_merge("0-1-10", "0-2-12")));
        assert_eq!(
            session_ip("10.0.0.11:41234"),
            Some("10.0.0.11".parse().unwrap())
        );
        assert_eq!(session_ip("[::1]:5000"), Some("::1".parse().unwrap()));
        assert_eq!(session_ip("10.0.0.12"), Some("10.0.0.12".parse().unwrap()));
        assert_eq!(session_ip("localhost"), None);
        assert_eq!(
            replica_io_thread(Flavor::MariaDb, false),
            "STOP SLAVE IO_THREAD"
        );
        assert_eq!(
            replica_io_thread(Flavor::MySql, true),
            "START REPLICA IO_THREAD"
        );
        assert_eq!(replica_columns(Flavor::MySql).host, "Source_Host");
        assert_eq!(received_gtid_column(Flavor::MariaDb), "Gtid_IO_Pos");
    }

    #[test]
    fn which_sessions_are_killed() {
        let s = |id, user: &str, command: &str| Session {
            id,
            user: user.into(),
            command: command.into(),
        };
        assert!(should_kill(&s(10, "app", "Query"), 5, "mmm_agent"));
        assert!(should_kill(&s(11, "app", "Sleep"), 5, "mmm_agent"));
        assert!(should_kill(&s(12, "root", "Sleep"), 5, "mmm_agent"));
        assert!(
            !should_kill(&s(5, "app", "Query"), 5, "mmm_agent"),
            "our own connection"
        );
        assert!(
            !should_kill(&s(13, "mmm_agent", "Sleep"), 5, "mmm_agent"),
            "agent sessions"
        );
        assert!(!should_kill(
            &s(14, "system user", "Slave_SQL"),
            5,
            "mmm_agent"
        ));
        assert!(!should_kill(
            &s(15, "replication", "Binlog Dump GTID"),
            5,
            "mmm_agent"
        ));
        assert!(!should_kill(
            &s(16, "event_scheduler", "Daemon"),
            5,
            "mmm_agent"
        ));
        assert_eq!(kill(42), "KILL CONNECTION 42");
    }

    #[test]
    fn privileged_account_filter() {
        assert_eq!(grantee_user("'app'@'%'"), "app");
        assert_eq!(grantee_user("'mmm_agent'@'10.%'"), "mmm_agent");
        assert_eq!(grantee_host("'app'@'10.%'"), "10.%");
        assert!(is_operational_account("'root'@'localhost'", &["mmm_agent"]));
        assert!(is_operational_account("'root'@'::1'", &["mmm_agent"]));
        assert!(
            !is_operational_account("'root'@'%'", &["mmm_agent"]),
            "a root reachable from the network is warned about"
        );
        assert!(is_operational_account("'mmm_agent'@'%'", &["mmm_agent"]));
        assert!(!is_operational_account("'app'@'%'", &["mmm_agent"]));
    }
}
