//! The oracle's clients: each one connection at a time to one address (a server's own address, the writer VIP
//! or a reader VIP), a new connection after any error, every operation bounded by the op timeout and recorded
//! as an [`Event`]. Each client runs on the tokio runtime it is given (so it may live in a network
//! namespace) and returns its events when it stops.
//!
//! Identity: every insert id and list element is unique over the whole lab (`id_base` + client index ×
//! [`CLIENT_SPAN`] + a per-client counter), so an element is never written twice, even after an unknown
//! outcome.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tokio::sync::watch;

use super::history::{ClientInfo, Event, Op, Outcome, Role};
use super::{cas, list, Workloads};
use crate::users;

/// Ids one client may use in one run: far more operations than any lab test makes.
pub const CLIENT_SPAN: u64 = 1_000_000_000;
/// The inserts' table: the id, the client that wrote it and the server that accepted it.
pub const INSERT_TABLE: &str = "oracle_ins";
/// A writer reads one of the lists after this many operations (when lists are on), so list reads exist even
/// without reader clients.
const WRITER_READ_EVERY: u64 = 4;

/// The account a client connects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// The application user: no privilege that bypasses `read_only` (what an application should use).
    App,
    /// root (`ALL ON *.*`, READ ONLY ADMIN included): writes through `read_only`, to prove that such writes
    /// are seen.
    Root,
}

/// One client to run.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// Unique name in the history.
    pub name: String,
    /// The address it connects to.
    pub target: Ipv4Addr,
    /// Writer or reader.
    pub role: Role,
    /// The account it connects with.
    pub account: Account,
    /// Where it runs (`None`: the caller's runtime, the root namespace).
    pub site: Option<tokio::runtime::Handle>,
    /// Its bound on connecting and on each operation (`None`: the oracle's). A long one is an application
    /// that waits as long as a commit takes, and so sees a late semi-synchronous acknowledgement.
    pub op_timeout: Option<Duration>,
}

/// Why an operation did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpError {
    /// The server refused it before anything could be committed.
    #[error("refused: {0}")]
    Failed(String),
    /// It may or may not have been applied.
    #[error("unknown: {0}")]
    Unknown(String),
}

impl From<mysql_async::Error> for OpError {
    fn from(e: mysql_async::Error) -> Self {
        match e {
            mysql_async::Error::Server(s) => OpError::Failed(s.to_string()),
            other => OpError::Unknown(other.to_string()),
        }
    }
}

/// `CREATE TABLE` of the inserts' table, idempotent.
pub(super) fn schema() -> Vec<String> {
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {INSERT_TABLE} (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
         client VARCHAR(64) NOT NULL, server_id INT UNSIGNED NOT NULL) ENGINE=InnoDB"
    )]
}

/// What a running client needs.
#[derive(Debug, Clone)]
pub(super) struct ClientRun {
    /// Index in the history's client list.
    pub index: usize,
    /// Name, address, role, account.
    pub info: ClientInfo,
    /// The account.
    pub account: Account,
    /// Which write workloads writers run (in turn).
    pub workloads: Workloads,
    /// Bound on connecting and on each whole operation.
    pub op_timeout: Duration,
    /// Pause between two operations and before reconnecting.
    pub op_interval: Duration,
    /// First unique id of this client.
    pub id_base: u64,
    /// Counts acknowledged writes of every client (for waiting).
    pub acked: Arc<AtomicU64>,
}

/// Connects and asks which server answered.
async fn connect(
    target: Ipv4Addr,
    account: Account,
    timeout: Duration,
) -> anyhow::Result<(mysql_async::Conn, u32)> {
    let (user, pass) = match account {
        Account::App => (users::APP_USER, users::APP_PASSWORD),
        Account::Root => (users::ROOT_USER, users::ROOT_PASSWORD),
    };
    let mut conn =
        crate::mariadb::connect(target, user, pass, Some(users::APP_DB), timeout).await?;
    let id: Option<u32> = tokio::time::timeout(timeout, conn.query_first("SELECT @@server_id"))
        .await
        .map_err(|_| anyhow::anyhow!("SELECT @@server_id: no answer within {timeout:?}"))??;
    let id = id.ok_or_else(|| anyhow::anyhow!("SELECT @@server_id returned no row"))?;
    Ok((conn, id))
}

/// Sleeps `pause` unless told to stop first; true if told to stop.
async fn pause_or_stop(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(pause) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// The operation a client makes as its `n`-th.
fn choose(run: &ClientRun, n: u64, next_id: &mut u64) -> Op {
    let key = rand::random_range(0..cas::KEYS.min(list::KEYS));
    let mut unique = || {
        let id = *next_id;
        *next_id += 1;
        id
    };
    match run.info.role {
        Role::Reader => {
            if run.workloads.list && n % 2 == 1 {
                Op::ReadList { key }
            } else {
                Op::ReadCounter
            }
        }
        Role::Writer => {
            if run.workloads.list && n % WRITER_READ_EVERY == WRITER_READ_EVERY - 1 {
                return Op::ReadList { key };
            }
            let kinds: Vec<u8> = [
                (run.workloads.insert, 0u8),
                (run.workloads.cas, 1),
                (run.workloads.list, 2),
            ]
            .into_iter()
            .filter_map(|(on, k)| on.then_some(k))
            .collect();
            match kinds.get((n % kinds.len().max(1) as u64) as usize) {
                Some(1) => Op::Cas { key, from: None },
                Some(2) => Op::Append {
                    key,
                    elem: unique(),
                },
                _ => Op::Insert { id: unique() },
            }
        }
    }
}

/// Runs `op` on `conn`; fills in what it learns (the CAS's read value) and returns the outcome.
async fn perform(
    conn: &mut mysql_async::Conn,
    op: &mut Op,
    client: &str,
) -> Result<Outcome, OpError> {
    match op {
        // Connecting is done by the caller; `choose` never asks for it.
        Op::Connect => Err(OpError::Failed("connect is not an operation".into())),
        Op::Insert { id } => {
            conn.exec_drop(
                format!(
                    "INSERT INTO {INSERT_TABLE} (id, client, server_id) VALUES (?, ?, @@server_id)"
                ),
                (*id, client),
            )
            .await?;
            Ok(Outcome::Acked)
        }
        Op::Cas { key, from } => Ok(if cas::cas(conn, *key, from).await? {
            Outcome::Acked
        } else {
            Outcome::CasMiss
        }),
        Op::Append { key, elem } => {
            list::append(conn, *key, *elem).await?;
            Ok(Outcome::Acked)
        }
        Op::ReadList { key } => Ok(Outcome::List(list::read(conn, *key).await?)),
        Op::ReadCounter => {
            let sql = format!(
                "SELECT CAST((SELECT COUNT(*) FROM {INSERT_TABLE}) + \
                 (SELECT COALESCE(SUM(v), 0) FROM {}) + (SELECT COUNT(*) FROM {}) AS UNSIGNED)",
                cas::TABLE,
                list::TABLE
            );
            let v: Option<u64> = conn.query_first(sql).await?;
            Ok(Outcome::Counter(v.unwrap_or(0)))
        }
    }
}

/// Runs a client until told to stop; returns its events.
pub(super) async fn run(run: ClientRun, mut stop: watch::Receiver<bool>) -> Vec<Event> {
    let mut events = Vec::new();
    let mut conn: Option<(mysql_async::Conn, u32)> = None;
    let mut next_id = run.id_base;
    let mut n: u64 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        let (mut c, server_id) = match conn.take() {
            Some(c) => c,
            None => {
                let sent = Instant::now();
                match connect(run.info.target, run.account, run.op_timeout).await {
                    Ok(c) => c,
                    Err(e) => {
                        events.push(Event {
                            client: run.index,
                            server_id: None,
                            sent,
                            done: Instant::now(),
                            op: Op::Connect,
                            outcome: Outcome::Failed(format!("{e:#}")),
                        });
                        if pause_or_stop(run.op_interval, &mut stop).await {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        let mut op = choose(&run, n, &mut next_id);
        n += 1;
        let sent = Instant::now();
        let result =
            match tokio::time::timeout(run.op_timeout, perform(&mut c, &mut op, &run.info.name))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(OpError::Unknown(format!(
                    "no answer within {:?}",
                    run.op_timeout
                ))),
            };
        let done = Instant::now();
        let outcome = match result {
            Ok(o) => {
                conn = Some((c, server_id));
                o
            }
            // The connection is dropped: a transaction left open is rolled back by the server.
            Err(OpError::Failed(e)) => Outcome::Failed(e),
            Err(OpError::Unknown(e)) => Outcome::Unknown(e),
        };
        if op.is_write() && outcome == Outcome::Acked {
            run.acked.fetch_add(1, Ordering::Relaxed);
        }
        events.push(Event {
            client: run.index,
            server_id: Some(server_id),
            sent,
            done,
            op,
            outcome,
        });
        if pause_or_stop(run.op_interval, &mut stop).await {
            break;
        }
    }
    if let Some((c, _)) = conn {
        let _ = tokio::time::timeout(run.op_timeout, c.disconnect()).await;
    }
    events
}
