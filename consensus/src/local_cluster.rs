//! An in-process cluster on loopback, for tests and benchmarks: every node has its own sled
//! directory and its own tonic server on `127.0.0.1`, and they talk real gRPC. Nodes can be killed
//! (Raft stopped, server closed) and restarted from their directory on the same address; a shared
//! [`NetworkFaults`] isolates nodes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::ConsensusConfig;
use crate::faults::NetworkFaults;
use crate::network::TransportOptions;
use crate::node::ConsensusNode;
use crate::types::{node_id, NodeId, NodeInfo};

/// How long a killed node's server may take to close its connections before it is aborted.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// A running tonic server.
struct Server {
    /// Fires the graceful shutdown.
    stop: oneshot::Sender<()>,
    /// The serving task.
    task: JoinHandle<()>,
}

/// One node of the local cluster.
pub struct LocalNode {
    /// Monitor name.
    pub name: String,
    /// Node id.
    pub id: NodeId,
    /// Address its server listens on (kept across restarts).
    pub addr: SocketAddr,
    /// Its sled directory.
    pub dir: PathBuf,
    /// The node, `None` while killed.
    node: Option<Arc<ConsensusNode>>,
    /// Its server, `None` while killed.
    server: Option<Server>,
}

impl LocalNode {
    /// The running node, `None` while killed.
    pub fn node(&self) -> Option<&Arc<ConsensusNode>> {
        self.node.as_ref()
    }
}

/// Several nodes in one process.
pub struct LocalCluster {
    /// The nodes, in creation order.
    pub nodes: Vec<LocalNode>,
    /// The fault hook shared by every node.
    pub faults: NetworkFaults,
    /// Configuration template (timings, members); name and dir are set per node.
    template: ConsensusConfig,
}

async fn serve(node: &Arc<ConsensusNode>, listener: TcpListener) -> Server {
    let svc = node.raft_service();
    let (stop, rx) = oneshot::channel::<()>();
    let name = node.name().to_string();
    let task = tokio::spawn(async move {
        let res = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(mmm_tls::plain_incoming(listener), async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(node = %name, error = %e, "raft server ended with an error");
        }
    });
    Server { stop, task }
}

impl LocalCluster {
    /// Starts `n` nodes (`mon1`..`monN`) with directories under `base`; `tune` adjusts the
    /// configuration (timings, snapshot interval) shared by all.
    pub async fn start(
        n: usize,
        base: &Path,
        tune: impl Fn(&mut ConsensusConfig),
    ) -> anyhow::Result<Self> {
        let mut listeners = Vec::new();
        let mut pairs = Vec::new();
        for i in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?;
            pairs.push((format!("mon{i}"), addr));
            listeners.push(l);
        }
        let members = pairs
            .iter()
            .map(|(name, addr)| (node_id(name), NodeInfo::new(name.clone(), addr.to_string())))
            .collect();
        let mut template = ConsensusConfig::new("", base, members);
        tune(&mut template);
        let mut cluster = LocalCluster {
            nodes: Vec::new(),
            faults: NetworkFaults::new(),
            template,
        };
        for ((name, addr), listener) in pairs.into_iter().zip(listeners) {
            let dir = base.join(&name);
            let mut ln = LocalNode {
                id: node_id(&name),
                name,
                addr,
                dir,
                node: None,
                server: None,
            };
            cluster.launch(&mut ln, listener).await?;
            cluster.nodes.push(ln);
        }
        Ok(cluster)
    }

    async fn launch(&self, ln: &mut LocalNode, listener: TcpListener) -> anyhow::Result<()> {
        let mut cfg = self.template.clone();
        cfg.name = ln.name.clone();
        cfg.data_dir = ln.dir.clone();
        let opts = TransportOptions {
            faults: self.faults.clone(),
            tls: None,
        };
        let node = ConsensusNode::start_with(cfg, opts).await?;
        ln.server = Some(serve(&node, listener).await);
        ln.node = Some(node);
        Ok(())
    }

    /// The running node `i`.
    pub fn node(&self, i: usize) -> anyhow::Result<&Arc<ConsensusNode>> {
        self.nodes
            .get(i)
            .and_then(|n| n.node.as_ref())
            .ok_or_else(|| anyhow!("node {i} is not running"))
    }

    /// Indexes of the running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].node.is_some())
            .collect()
    }

    /// The index of the node with this id.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Kills node `i`: stops its Raft and closes its server, as if the process died.
    pub async fn kill(&mut self, i: usize) {
        let Some(ln) = self.nodes.get_mut(i) else {
            return;
        };
        if let Some(node) = ln.node.take() {
            node.shutdown().await;
        }
        if let Some(server) = ln.server.take() {
            let _ = server.stop.send(());
            let mut task = server.task;
            if tokio::time::timeout(SERVER_STOP_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
        tracing::info!(node = %ln.name, "local node killed");
    }

    /// Restarts killed node `i` from its directory, on its old address.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let (addr, dir) = {
            let ln = self.nodes.get(i).ok_or_else(|| anyhow!("no node {i}"))?;
            if ln.node.is_some() {
                bail!("node {i} is running");
            }
            (ln.addr, ln.dir.clone())
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind {addr} again"))?;
        // sled releases its directory lock when the last handle of the killed node is dropped,
        // which the Raft tasks do while stopping; wait for it (bounded).
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ln = std::mem::replace(
            &mut self.nodes[i],
            LocalNode {
                name: String::new(),
                id: 0,
                addr,
                dir: dir.clone(),
                node: None,
                server: None,
            },
        );
        let mut listener = Some(listener);
        let res = loop {
            let l = match listener.take() {
                Some(l) => l,
                None => TcpListener::bind(addr).await?,
            };
            match self.launch(&mut ln, l).await {
                Ok(()) => break Ok(()),
                Err(e) if Instant::now() < deadline && format!("{e:#}").contains("lock") => {
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => break Err(e),
            }
        };
        self.nodes[i] = ln;
        res
    }

    /// Waits until every running node knows the same leader, which is running; returns its index.
    pub async fn wait_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        let running = self.running();
        let first = *running.first().ok_or_else(|| anyhow!("no node running"))?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .node(first)?
                .raft()
                .wait(Some(left))
                .metrics(|m| m.current_leader.is_some(), "a leader is known")
                .await?;
            let leader = m.current_leader.ok_or_else(|| anyhow!("no leader"))?;
            let mut agreed = self.index_of(leader).is_some_and(|i| running.contains(&i));
            for i in &running {
                if !agreed {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                agreed = self
                    .node(*i)?
                    .raft()
                    .wait(Some(left.min(Duration::from_secs(1))))
                    .metrics(|m| m.current_leader == Some(leader), "same leader")
                    .await
                    .is_ok();
            }
            if agreed {
                return self
                    .index_of(leader)
                    .ok_or_else(|| anyhow!("unknown leader {leader}"));
            }
            if Instant::now() >= deadline {
                bail!("running nodes did not agree on a leader within {timeout:?}");
            }
            // Wait for the first node's view to change before looking again.
            let mut rx = self.node(first)?.metrics();
            rx.borrow_and_update();
            let _ = tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                rx.changed(),
            )
            .await;
        }
    }

    /// Waits until every running node has applied `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> anyhow::Result<()> {
        for i in self.running() {
            self.node(i)?
                .raft()
                .wait(Some(timeout))
                .applied_index_at_least(Some(index), "applied")
                .await
                .with_context(|| format!("node {i} did not apply {index}"))?;
        }
        Ok(())
    }

    /// Kills every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i).await;
        }
    }
}
