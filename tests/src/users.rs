//! Accounts and passwords every lab MariaDB server has (created once in the template datadir).

/// Administrative account used by [`crate::Lab::mysql`] (connects from the root namespace).
pub const ROOT_USER: &str = "root";
/// Password of [`ROOT_USER`].
pub const ROOT_PASSWORD: &str = "lab-root-pw";
/// Account of mmm-agent (`ALL ON *.*`: it sets read_only, kills sessions, re-points replication).
pub const AGENT_USER: &str = "mmm_agent";
/// Password of [`AGENT_USER`].
pub const AGENT_PASSWORD: &str = "lab-agent-pw";
/// Account of mmm-monitor's checks (`REPLICATION CLIENT, PROCESS, SLAVE MONITOR`).
pub const MONITOR_USER: &str = "mmm_monitor";
/// Password of [`MONITOR_USER`].
pub const MONITOR_PASSWORD: &str = "lab-monitor-pw";
/// Account replicas connect with (`REPLICATION SLAVE`).
pub const REPLICATION_USER: &str = "replication";
/// Password of [`REPLICATION_USER`].
pub const REPLICATION_PASSWORD: &str = "lab-repl-pw";
/// Application account: DML and CREATE on [`APP_DB`] only, no privilege that bypasses read_only.
pub const APP_USER: &str = "app";
/// Password of [`APP_USER`].
pub const APP_PASSWORD: &str = "lab-app-pw";
/// The application's database.
pub const APP_DB: &str = "app";
/// An application account holding `ALL PRIVILEGES` (`READ_ONLY ADMIN` included: `read_only` does not
/// stop it); not in the template, made by [`crate::Lab::create_privileged_app_account`].
pub const SUPERAPP_USER: &str = "superapp";
/// Password of [`SUPERAPP_USER`].
pub const SUPERAPP_PASSWORD: &str = "lab-superapp-pw";

/// The standard password of a lab account, `None` for a name that is not one.
pub fn password_of(user: &str) -> Option<&'static str> {
    [
        (ROOT_USER, ROOT_PASSWORD),
        (AGENT_USER, AGENT_PASSWORD),
        (MONITOR_USER, MONITOR_PASSWORD),
        (REPLICATION_USER, REPLICATION_PASSWORD),
        (APP_USER, APP_PASSWORD),
    ]
    .into_iter()
    .find(|(u, _)| *u == user)
    .map(|(_, p)| p)
}

/// SQL run once (bootstrap mode, binary log off) when the template datadir is made, so every host starts with
/// the same accounts and an empty GTID history: nothing to replicate, nothing to conflict under gtid_strict_mode.
pub(crate) fn setup_sql() -> String {
    format!(
        "FLUSH PRIVILEGES;\n\
         ALTER USER 'root'@'localhost' IDENTIFIED BY '{ROOT_PASSWORD}';\n\
         CREATE USER '{ROOT_USER}'@'%' IDENTIFIED BY '{ROOT_PASSWORD}';\n\
         GRANT ALL ON *.* TO '{ROOT_USER}'@'%' WITH GRANT OPTION;\n\
         CREATE USER '{AGENT_USER}'@'%' IDENTIFIED BY '{AGENT_PASSWORD}';\n\
         GRANT ALL ON *.* TO '{AGENT_USER}'@'%';\n\
         CREATE USER '{MONITOR_USER}'@'%' IDENTIFIED BY '{MONITOR_PASSWORD}';\n\
         GRANT REPLICATION CLIENT, PROCESS, SLAVE MONITOR ON *.* TO '{MONITOR_USER}'@'%';\n\
         CREATE USER '{REPLICATION_USER}'@'%' IDENTIFIED BY '{REPLICATION_PASSWORD}';\n\
         GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'%';\n\
         CREATE DATABASE {APP_DB};\n\
         CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';\n\
         GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON {APP_DB}.* TO '{APP_USER}'@'%';\n"
    )
}
