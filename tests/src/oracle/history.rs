//! What the oracle's clients did and saw: one merged [`History`] of [`Event`]s, each naming its client, the
//! server its connection reached (`@@server_id`, asked at connect), when the operation was sent and when it
//! ended, and its [`Outcome`].

use std::net::Ipv4Addr;
use std::time::Instant;

/// What a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes (insert / CAS / list-append, as the spec's workloads say) and reads its lists now and then.
    Writer,
    /// Reads only: a monotonic counter and whole lists.
    Reader,
}

/// A client as the history names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Unique name (`probe-db1`, `vip-writer-1`, `reader-10.213.3.101`).
    pub name: String,
    /// Writer or reader.
    pub role: Role,
    /// The address it connects to.
    pub target: Ipv4Addr,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Opening a connection (recorded only when it fails: a write outage must show failed connects).
    Connect,
    /// `INSERT` of a unique id.
    Insert {
        /// The id (unique per attempt over the whole history).
        id: u64,
    },
    /// Compare-and-set on a shared register: read `v`, then set `v + 1` only if it is still `v`.
    Cas {
        /// The register.
        key: u32,
        /// The value read (`None` if the read itself did not succeed).
        from: Option<u64>,
    },
    /// Appending a unique element to a shared list.
    Append {
        /// The list.
        key: u32,
        /// The element (unique per attempt over the whole history).
        elem: u64,
    },
    /// Reading a whole list.
    ReadList {
        /// The list.
        key: u32,
    },
    /// Reading the monotonic counter (rows inserted + sum of registers + list elements).
    ReadCounter,
}

impl Op {
    /// True for operations that change data.
    pub fn is_write(&self) -> bool {
        matches!(self, Op::Insert { .. } | Op::Cas { .. } | Op::Append { .. })
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A write the server acknowledged (for CAS: it changed the register, affected rows 1).
    Acked,
    /// A CAS whose register had changed between read and update (affected rows 0): done, nothing written.
    CasMiss,
    /// A list read: the elements in position order.
    List(Vec<u64>),
    /// A counter read.
    Counter(u64),
    /// The server refused the operation (an error packet before any commit): certainly not applied.
    Failed(String),
    /// No answer within the op timeout, a broken connection or an error at commit: maybe applied.
    Unknown(String),
}

impl Outcome {
    /// The operation completed (acked, a CAS miss or a read): the client's path to a server worked.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::Acked | Outcome::CasMiss | Outcome::List(_) | Outcome::Counter(_)
        )
    }
}

/// One operation of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Index of the client in [`History::clients`].
    pub client: usize,
    /// `@@server_id` of the server the connection reached (`None` for failed connects).
    pub server_id: Option<u32>,
    /// When the operation was sent.
    pub sent: Instant,
    /// When it ended (answer, error or timeout).
    pub done: Instant,
    /// What was done.
    pub op: Op,
    /// How it ended.
    pub outcome: Outcome,
}

impl Event {
    /// True for a write the server acknowledged.
    pub fn is_write_ack(&self) -> bool {
        self.op.is_write() && self.outcome == Outcome::Acked
    }
}

/// Every client's events, merged.
#[derive(Debug, Clone)]
pub struct History {
    /// When the clients were started (time zero of every report).
    pub started: Instant,
    /// When they were told to stop.
    pub stopped: Instant,
    /// The clients, indexed by [`Event::client`].
    pub clients: Vec<ClientInfo>,
    /// All events, ordered by send time.
    pub events: Vec<Event>,
}

impl History {
    /// Acknowledged writes.
    pub fn write_acks(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(|e| e.is_write_ack())
    }

    /// Name of a client by index.
    pub fn client_name(&self, client: usize) -> &str {
        self.clients.get(client).map_or("?", |c| c.name.as_str())
    }
}
