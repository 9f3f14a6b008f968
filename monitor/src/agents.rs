//! The monitor's connections to the agents: pushing committed statuses, reading system facts, and
//! following each agent's health stream (the definite evidence that lets a crash be acted on at once).
//!
//! One lazily connected gRPC channel per agent, reused by every call. Every call has a timeout; a
//! host that does not answer never delays another, because each call runs on its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mmm_proto::agent_client::AgentClient;
use mmm_proto::{
    AgentStatus, GetSystemStatusRequest, HealthEvent, MysqlHealth, SetStatusRequest, SystemStatus,
    WatchHealthRequest, PROTOCOL_VERSION,
};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

/// How long to wait for a TCP/TLS connection to an agent.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a health stream may stay silent before the agent counts as unreachable
/// (agents send a heartbeat every second).
pub const HEALTH_SILENCE: Duration = Duration::from_millis(2500);
/// First wait before reconnecting a health stream (doubled while the agent cannot be reached). Short: a
/// restarted writer's agent keeps only what is left of its lease until a renewal names a stamp of its
/// new run, which the leader first gets from the new stream.
const RECONNECT_MIN: Duration = Duration::from_millis(50);
/// Longest wait between two attempts to open a health stream.
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// What this monitor currently knows of one agent, from its health stream.
#[derive(Clone, Debug)]
pub struct AgentHealth {
    /// The stream is up and has spoken within [`HEALTH_SILENCE`].
    pub reachable: bool,
    /// The agent's own view of its mysqld.
    pub mysql: MysqlHealth,
    /// The agent's words for it (e.g. "connection refused").
    pub detail: String,
    /// The agent's uptime at its last event.
    pub uptime_s: Option<u64>,
    /// The agent holds the writer role with a valid lease.
    pub writable: bool,
    /// When the last event arrived.
    pub last_event: Option<Instant>,
    /// Health streams established so far: a new one means the agent (or the path to it) came back,
    /// and it should hear its status at once.
    pub connections: u64,
    /// The newest stamp the agent sent on this stream and when it arrived: what a writer lease renewal
    /// counts from (see `crate::lease`).
    pub stamp: Option<(mmm_proto::LeaseStamp, Instant)>,
    /// The server's GTID position the agent last reported and since when (this monitor's clock) it has
    /// not changed; `None` before the agent answered a probe.
    pub position: Option<(String, Instant)>,
}

impl Default for AgentHealth {
    fn default() -> Self {
        AgentHealth {
            reachable: false,
            mysql: MysqlHealth::Unspecified,
            detail: "no contact yet".into(),
            uptime_s: None,
            writable: false,
            last_event: None,
            connections: 0,
            stamp: None,
            position: None,
        }
    }
}

/// One agent: where it is and what we last heard.
struct AgentLink {
    /// Reused channel (connects lazily, reconnects by itself).
    channel: Channel,
    /// Latest health, replaced on every event.
    health: Mutex<AgentHealth>,
}

/// The monitor's view of every configured agent.
pub struct AgentHub {
    /// Name of this monitor, sent with every request (logs, authorization).
    monitor: String,
    /// Per host name.
    links: BTreeMap<String, AgentLink>,
    /// Bumped whenever any agent's health changes, so the leader loop can react at once.
    changed: watch::Sender<u64>,
}

impl AgentHub {
    /// Builds channels for every host (`host name -> "ip:port"`). Nothing is connected yet.
    pub fn new(
        monitor: &str,
        agents: &BTreeMap<String, String>,
        tls: Option<&mmm_tls::ClientTls>,
    ) -> anyhow::Result<Arc<Self>> {
        let mut links = BTreeMap::new();
        for (host, addr) in agents {
            // TLS (when on) is done by the connector, which checks the agent's certificate names `host`.
            let ep = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| anyhow::anyhow!("agent address '{addr}' of host '{host}': {e}"))?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(1))
                .keep_alive_timeout(Duration::from_secs(2))
                .keep_alive_while_idle(true);
            links.insert(
                host.clone(),
                AgentLink {
                    channel: mmm_tls::channel_for(&ep, tls, Some(host)),
                    health: Mutex::new(AgentHealth::default()),
                },
            );
        }
        Ok(Arc::new(AgentHub {
            monitor: monitor.to_string(),
            links,
            changed: watch::channel(0).0,
        }))
    }

    /// The hosts this hub knows.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.links.keys()
    }

    /// A receiver that changes whenever any agent's health changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Latest health of `host`, with `reachable` cleared when the stream has gone silent.
    pub fn health(&self, host: &str) -> AgentHealth {
        let Some(link) = self.links.get(host) else {
            return AgentHealth::default();
        };
        let mut h = lock(&link.health).clone();
        if h.last_event.is_none_or(|t| t.elapsed() > HEALTH_SILENCE) {
            h.reachable = false;
        }
        h
    }

    fn client(&self, host: &str) -> Result<AgentClient<Channel>, tonic::Status> {
        let link = self
            .links
            .get(host)
            .ok_or_else(|| tonic::Status::invalid_argument(format!("unknown host '{host}'")))?;
        Ok(AgentClient::new(link.channel.clone()))
    }

    /// Pushes a committed status to an agent.
    pub async fn set_status(
        &self,
        mut req: SetStatusRequest,
        timeout: Duration,
    ) -> Result<AgentStatus, tonic::Status> {
        req.protocol_version = PROTOCOL_VERSION;
        req.monitor = self.monitor.clone();
        let mut client = self.client(&req.host)?;
        let mut request = tonic::Request::new(req);
        request.set_timeout(timeout);
        let reply = tokio::time::timeout(timeout, client.set_status(request))
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("agent did not answer in time"))??;
        reply
            .into_inner()
            .status
            .ok_or_else(|| tonic::Status::internal("agent replied without a status"))
    }

    /// Reads what is true on the host right now.
    pub async fn system_status(
        &self,
        host: &str,
        timeout: Duration,
    ) -> Result<SystemStatus, tonic::Status> {
        let mut client = self.client(host)?;
        let mut request = tonic::Request::new(GetSystemStatusRequest {
            protocol_version: PROTOCOL_VERSION,
        });
        request.set_timeout(timeout);
        let reply = tokio::time::timeout(timeout, client.get_system_status(request))
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("agent did not answer in time"))??;
        Ok(reply.into_inner())
    }

    /// Follows every agent's health stream until `shutdown` resolves, reconnecting with a short backoff.
    pub fn spawn_watchers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        for host in self.links.keys() {
            let hub = Arc::clone(self);
            let host = host.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut backoff = RECONNECT_MIN;
                loop {
                    let streamed = tokio::select! {
                        s = hub.watch_once(&host) => s,
                        _ = shutdown.changed() => return,
                    };
                    hub.update(&host, |h| h.reachable = false);
                    // An agent that was streaming is retried soon; one that cannot be reached is
                    // retried less and less often (many absent agents must not keep a monitor busy).
                    backoff = if streamed {
                        RECONNECT_MIN
                    } else {
                        (backoff * 2).min(RECONNECT_MAX)
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            });
        }
        // Silence detection: a stream that stops speaking without closing (host gone from the network)
        // must turn the agent unreachable, so wake the leader loop periodically.
        let hub = Arc::clone(self);
        let mut shutdown = shutdown;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let silent = hub.links.values().any(|l| {
                    let h = lock(&l.health);
                    h.reachable && h.last_event.is_none_or(|t| t.elapsed() > HEALTH_SILENCE)
                });
                if silent {
                    for l in hub.links.values() {
                        let mut h = lock(&l.health);
                        if h.last_event.is_none_or(|t| t.elapsed() > HEALTH_SILENCE) {
                            h.reachable = false;
                        }
                    }
                    hub.changed.send_modify(|v| *v += 1);
                }
            }
        });
    }

    /// Follows one health stream until it ends; false when no stream could be opened.
    async fn watch_once(&self, host: &str) -> bool {
        let Ok(mut client) = self.client(host) else {
            return false;
        };
        let req = WatchHealthRequest {
            protocol_version: PROTOCOL_VERSION,
            monitor: self.monitor.clone(),
        };
        let stream =
            match tokio::time::timeout(Duration::from_secs(2), client.watch_health(req)).await {
                Ok(Ok(s)) => s.into_inner(),
                Ok(Err(e)) => {
                    tracing::debug!(host, error = %e, "agent health stream refused");
                    return false;
                }
                Err(_) => return false,
            };
        let mut stream = stream;
        self.update(host, |h| h.connections += 1);
        loop {
            match tokio::time::timeout(HEALTH_SILENCE, stream.message()).await {
                Ok(Ok(Some(ev))) => self.on_event(host, ev),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return true,
            }
        }
    }

    fn on_event(&self, host: &str, ev: HealthEvent) {
        let mysql = MysqlHealth::try_from(ev.mysql).unwrap_or(MysqlHealth::Unknown);
        self.update(host, |h| {
            h.reachable = true;
            h.mysql = mysql;
            h.detail = ev.detail.clone();
            h.uptime_s = Some(ev.agent_uptime_seconds);
            h.writable = ev.writable;
            h.last_event = Some(Instant::now());
            if let Some(stamp) = ev.stamp {
                h.stamp = Some((stamp, Instant::now()));
            }
            if !ev.gtid_position.is_empty() {
                let unchanged = Duration::from_millis(ev.position_unchanged_millis);
                let since = Instant::now()
                    .checked_sub(unchanged)
                    .unwrap_or_else(Instant::now);
                h.position = Some((ev.gtid_position.clone(), since));
            }
        });
    }

    fn update(&self, host: &str, f: impl FnOnce(&mut AgentHealth)) {
        let Some(link) = self.links.get(host) else {
            return;
        };
        let changed = {
            let mut h = lock(&link.health);
            let before = (h.reachable, h.mysql, h.writable, h.connections);
            f(&mut h);
            let after = (h.reachable, h.mysql, h.writable, h.connections);
            if before != after {
                tracing::info!(host, reachable = h.reachable, mysql = ?h.mysql, writable = h.writable, detail = %h.detail, "agent health changed");
            }
            before != after
        };
        if changed {
            self.changed.send_modify(|v| *v += 1);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
