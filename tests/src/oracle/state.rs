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
