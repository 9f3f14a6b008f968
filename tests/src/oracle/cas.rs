//! CAS registers: a small set of keys every writer contends on. An acknowledged CAS from `v` to `v + 1` is a
//! claim by one server that it alone moved the register past `v`; two such claims for the same `(key, v + 1)`
//! mean two servers accepted conflicting writes, whatever the timing.

use mysql_async::prelude::Queryable;

use super::clients::OpError;

/// The registers' table: `k`, the value `v`, and the server that wrote it last.
pub const TABLE: &str = "oracle_reg";
/// Number of registers: few, so that concurrent writers hit the same key often.
pub const KEYS: u32 = 8;

/// `CREATE TABLE` and the initial rows (value 0), idempotent.
pub(super) fn schema() -> Vec<String> {
    let rows: Vec<String> = (0..KEYS).map(|k| format!("({k}, 0, 0)")).collect();
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (k INT UNSIGNED NOT NULL PRIMARY KEY, \
             v BIGINT UNSIGNED NOT NULL, by_server INT UNSIGNED NOT NULL) ENGINE=InnoDB"
        ),
        format!(
            "INSERT IGNORE INTO {TABLE} (k, v, by_server) VALUES {}",
            rows.join(", ")
        ),
    ]
}

/// One CAS on `key`: returns the value read and whether the update took (affected rows 1). `from` is set as
/// soon as the read succeeds so the caller can record it even when the update fails.
pub(super) async fn cas(
    conn: &mut mysql_async::Conn,
    key: u32,
    from: &mut Option<u64>,
) -> Result<bool, OpError> {
    let v: Option<u64> = conn
        .exec_first(format!("SELECT v FROM {TABLE} WHERE k = ?"), (key,))
        .await?;
    let v = v.ok_or_else(|| OpError::Failed(format!("register {key} does not exist")))?;
    *from = Some(v);
    conn.exec_drop(
        format!("UPDATE {TABLE} SET v = v + 1, by_server = @@server_id WHERE k = ? AND v = ?"),
        (key, v),
    )
    .await?;
    Ok(conn.affected_rows() == 1)
}
