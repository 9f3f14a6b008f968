//! The servers' final data, read at the end through each server's unix socket as root (no network path can
//! be in the way), to judge lost writes and convergence.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use mysql_async::prelude::Queryable;

use super::clients::INSERT_TABLE;
use super::{cas, list};
use crate::users;

/// Bound on reading one server's state (connect and every query).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The oracle's tables on one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalState {
    /// Every inserted id.
    pub inserts: BTreeSet<u64>,
    /// Every register's value.
    pub registers: BTreeMap<u32, u64>,
    /// Every list as `(pos, elem)` in position order.
    pub lists: BTreeMap<u32, Vec<(u32, u64)>>,
}

impl FinalState {
    /// The elements of list `key` in position order.
    pub fn list(&self, key: u32) -> Vec<u64> {
        self.lists
            .get(&key)
            .map(|l| l.iter().map(|&(_, e)| e).collect())
            .unwrap_or_default()
    }
}

/// Reads the state through `socket`.
pub(super) async fn read(socket: &Path) -> anyhow::Result<FinalState> {
    tokio::time::timeout(READ_TIMEOUT, async {
        let mut c = super::sampler::connect_socket(socket, READ_TIMEOUT).await?;
        let db = users::APP_DB;
        let ids: Vec<u64> = c
            .query(format!("SELECT id FROM {db}.{INSERT_TABLE}"))
            .await
            .context("reading inserts")?;
        let regs: Vec<(u32, u64)> = c
            .query(format!("SELECT k, v FROM {db}.{}", cas::TABLE))
            .await
            .context("reading registers")?;
        let rows: Vec<(u32, u32, u64)> = c
            .query(format!(
                "SELECT k, pos, elem FROM {db}.{} ORDER BY k, pos",
                list::TABLE
            ))
            .await
            .context("reading lists")?;
        let _ = c.disconnect().await;
        let mut lists: BTreeMap<u32, Vec<(u32, u64)>> = BTreeMap::new();
        for (k, pos, elem) in rows {
            lists.entry(k).or_default().push((pos, elem));
        }
        anyhow::Ok(FinalState {
            inserts: ids.into_iter().collect(),
            registers: regs.into_iter().collect(),
            lists,
        })
    })
    .await
    .with_context(|| {
        format!(
            "reading the final state through {}: took longer than {READ_TIMEOUT:?}",
            socket.display()
        )
    })?
}

/// The GTIDs of a MariaDB GTID position (`0-1-12,1-2-5`) as (domain, server id, sequence number);
/// malformed entries are skipped.
pub fn gtids(pos: &str) -> impl Iterator<Item = (u32, u32, u64)> + '_ {
    pos.split(',').map(str::trim).filter_map(|gtid| {
        let mut parts = gtid.split('-');
        let (Some(d), Some(server), Some(seq)) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        Some((d.parse().ok()?, server.parse().ok()?, seq.parse().ok()?))
    })
}

/// The highest sequence number in a GTID position per what `key` makes of a GTID's domain and
/// server id.
fn highest_seqs<K: Ord>(pos: &str, key: impl Fn(u32, u32) -> K) -> BTreeMap<K, u64> {
    let mut out = BTreeMap::new();
    for (d, server, seq) in gtids(pos) {
        let e = out.entry(key(d, server)).or_insert(0);
        *e = (*e).max(seq);
    }
    out
}

/// Per replication domain, the highest sequence number in a GTID position (`0-1-12,1-2-5`).
pub fn gtid_seqs(pos: &str) -> BTreeMap<u32, u64> {
    highest_seqs(pos, |d, _| d)
}

/// Per replication domain and originating server id, the highest sequence number in a GTID position.
pub fn gtid_seqs_by_server(pos: &str) -> BTreeMap<(u32, u32), u64> {
    highest_seqs(pos, |d, server| (d, server))
}

/// True when `have` contains every domain of `need` at least as far.
pub fn gtid_covers(have: &str, need: &str) -> bool {
    let have = gtid_seqs(have);
    gtid_seqs(need)
        .into_iter()
        .all(|(d, seq)| have.get(&d).is_some_and(|h| *h >= seq))
}

/// True when a host's replication has nothing more to apply: it has no master, its replication threads are
/// not both running (nothing more will arrive), its master cannot be read, or it has applied everything in
/// its master's binary log. `sockets_by_ip` finds the master's socket from `Master_Host`.
pub(super) async fn settled(
    socket: &Path,
    sockets_by_ip: &BTreeMap<String, std::path::PathBuf>,
) -> anyhow::Result<bool> {
    tokio::time::timeout(READ_TIMEOUT, async {
        let mut c = super::sampler::connect_socket(socket, READ_TIMEOUT).await?;
        let row: Option<mysql_async::Row> = c.query_first("SHOW SLAVE STATUS").await?;
        let Some(row) = row else {
            return anyhow::Ok(true);
        };
        let get = |name: &str| -> String {
            row.get_opt::<String, _>(name)
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        if get("Slave_IO_Running") != "Yes" || get("Slave_SQL_Running") != "Yes" {
            return Ok(true);
        }
        let Some(master) = sockets_by_ip.get(&get("Master_Host")) else {
            return Ok(true);
        };
        let have: Option<String> = c.query_first("SELECT @@gtid_current_pos").await?;
        let _ = c.disconnect().await;
        let need = async {
            let mut m = super::sampler::connect_socket(master, READ_TIMEOUT).await?;
            let need: Option<String> = m.query_first("SELECT @@gtid_binlog_pos").await?;
            let _ = m.disconnect().await;
            anyhow::Ok(need)
        }
        .await;
        Ok(match need {
            Ok(need) => gtid_covers(&have.unwrap_or_default(), &need.unwrap_or_default()),
            Err(_) => true,
        })
    })
    .await
    .with_context(|| {
        format!(
            "checking replication through {}: took longer than {READ_TIMEOUT:?}",
            socket.display()
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_positions_compare_per_domain() {
        assert_eq!(
            gtid_seqs("0-1-12, 1-2-5"),
            BTreeMap::from([(0, 12), (1, 5)])
        );
        assert!(gtid_covers("0-2-12,1-2-5", "0-1-12"));
        assert!(!gtid_covers("0-2-11", "0-1-12"));
        assert!(!gtid_covers("0-2-11", "1-1-1"));
        assert!(gtid_covers("", ""));
        assert_eq!(
            gtid_seqs_by_server("0-1-12,0-2-14, 0-1-13,1-2-5,x-1-2,0-1"),
            BTreeMap::from([((0, 1), 13), ((0, 2), 14), ((1, 2), 5)])
        );
        assert_eq!(gtids("0-1-12,,1-2-x").collect::<Vec<_>>(), [(0, 1, 12)]);
    }
}
