//! List-append: shared lists of unique elements. An append locks the list's head row (`SELECT ... FOR
//! UPDATE`), inserts at `MAX(pos) + 1` and commits; a read returns the list in position order. On one
//! server every read is a prefix of every later read; two servers appending independently make lists whose
//! reads are not prefixes of the final list, or lose acknowledged elements.

use mysql_async::prelude::Queryable;

use super::clients::OpError;

/// The elements: list `k`, position `pos` (from 1), the element, and the server that accepted it.
pub const TABLE: &str = "oracle_list";
/// One row per list, locked by appends so they are serialized per list.
pub const HEAD_TABLE: &str = "oracle_list_head";
/// Number of lists: few, so that writers contend.
pub const KEYS: u32 = 8;

/// `CREATE TABLE`s and the head rows, idempotent.
pub(super) fn schema() -> Vec<String> {
    let heads: Vec<String> = (0..KEYS).map(|k| format!("({k})")).collect();
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (k INT UNSIGNED NOT NULL, pos INT UNSIGNED NOT NULL, \
             elem BIGINT UNSIGNED NOT NULL, server_id INT UNSIGNED NOT NULL, PRIMARY KEY (k, pos)) \
             ENGINE=InnoDB"
        ),
        format!("CREATE TABLE IF NOT EXISTS {HEAD_TABLE} (k INT UNSIGNED NOT NULL PRIMARY KEY) ENGINE=InnoDB"),
        format!("INSERT IGNORE INTO {HEAD_TABLE} (k) VALUES {}", heads.join(", ")),
    ]
}

/// Appends `elem` to list `key` in one transaction. An error before `COMMIT` was sent is a refusal (the
/// transaction is rolled back when the connection is dropped); an error at `COMMIT` leaves it unknown.
pub(super) async fn append(
    conn: &mut mysql_async::Conn,
    key: u32,
    elem: u64,
) -> Result<(), OpError> {
    conn.query_drop("BEGIN").await?;
    let head: Option<u32> = conn
        .exec_first(
            format!("SELECT k FROM {HEAD_TABLE} WHERE k = ? FOR UPDATE"),
            (key,),
        )
        .await?;
    if head.is_none() {
        return Err(OpError::Failed(format!("list {key} has no head row")));
    }
    conn.exec_drop(
        format!(
            "INSERT INTO {TABLE} (k, pos, elem, server_id) SELECT ?, COALESCE(MAX(pos), 0) + 1, ?, \
             @@server_id FROM {TABLE} WHERE k = ?"
        ),
        (key, elem, key),
    )
    .await?;
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| OpError::Unknown(format!("COMMIT: {e}")))
}

/// Reads list `key` in position order.
pub(super) async fn read(conn: &mut mysql_async::Conn, key: u32) -> Result<Vec<u64>, OpError> {
    Ok(conn
        .exec(
            format!("SELECT elem FROM {TABLE} WHERE k = ? ORDER BY pos"),
            (key,),
        )
        .await?)
}
