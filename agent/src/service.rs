//! The gRPC `Agent` service: Ping, SetStatus, GetStatus, GetSystemStatus, WatchHealth.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use mmm_proto::agent_server::Agent as AgentRpc;
use mmm_proto::{
    AgentStatus, GetStatusRequest, GetSystemStatusRequest, HealthEvent, PingReply, PingRequest,
    ReplicationStatus, SetStatusReply, SetStatusRequest, SystemStatus, WatchHealthRequest,
    PROTOCOL_VERSION,
};
use tonic::{Request, Response, Status};

use crate::agent::Agent;
use crate::db::SettingsCheck;
use crate::health::{now_millis, HealthSnapshot};
use crate::validate::{check_protocol_version, validate_set_status};

/// Interval of WatchHealth heartbeats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest GetSystemStatus spends on the server.
const SYSTEM_STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// The tonic service wrapping the agent.
#[derive(Debug, Clone)]
pub struct AgentService {
    /// The agent.
    agent: Arc<Agent>,
    /// With mutual TLS on: SetStatus is accepted only from a certificate of a configured monitor
    /// node (an agent's or operator's certificate, though signed by the same CA, cannot move VIPs).
    monitors_only: Option<mmm_tls::PeerPolicy>,
}

impl AgentService {
    /// Wraps an agent (no certificate checks: plain text).
    pub fn new(agent: Arc<Agent>) -> Self {
        AgentService {
            agent,
            monitors_only: None,
        }
    }

    /// Accepts SetStatus only from peers `policy` admits.
    pub fn with_monitor_policy(mut self, policy: Option<mmm_tls::PeerPolicy>) -> Self {
        self.monitors_only = policy;
        self
    }
}

fn health_event(agent: &Agent, h: &HealthSnapshot) -> HealthEvent {
    HealthEvent {
        host: agent.local.name.clone(),
        mysql: h.mysql as i32,
        detail: h.detail.clone(),
        agent_uptime_seconds: agent.uptime().as_secs(),
        observed_at_millis: now_millis(),
        writable: agent.writable_now(),
        stamp: Some(agent.issue_stamp().into()),
        gtid_position: h.position.clone(),
        position_unchanged_millis: h.position_since.elapsed().as_millis() as u64,
    }
}

#[tonic::async_trait]
impl AgentRpc for AgentService {
    async fn ping(&self, request: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        check_protocol_version(request.get_ref().protocol_version)?;
        Ok(Response::new(PingReply {
            protocol_version: PROTOCOL_VERSION,
            host: self.agent.local.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.agent.uptime().as_secs(),
        }))
    }

    async fn set_status(
        &self,
        request: Request<SetStatusRequest>,
    ) -> Result<Response<SetStatusReply>, Status> {
        if let Some(policy) = &self.monitors_only {
            policy.check(&request).inspect_err(|e| {
                tracing::warn!(monitor = %request.get_ref().monitor, error = %e.message(), "SetStatus refused");
            })?;
        }
        let req = request.into_inner();
        let desired = validate_set_status(&self.agent.topo, &req).inspect_err(|e| {
            tracing::warn!(monitor = %req.monitor, host = %req.host, error = %e.message(), "SetStatus refused");
        })?;
        // Applied in a task of its own: a monitor that gives up waiting (its push timed out) drops this
        // handler, and an apply cancelled half-way could leave a step done without what follows it
        // (a replication thread stopped but not recorded, a VIP added before its announcement).
        let agent = Arc::clone(&self.agent);
        let status = tokio::spawn(async move { agent.set_status(desired).await })
            .await
            .map_err(|e| Status::internal(format!("applying the status failed: {e}")))??;
        Ok(Response::new(SetStatusReply {
            protocol_version: PROTOCOL_VERSION,
            status: Some(status),
        }))
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<AgentStatus>, Status> {
        check_protocol_version(request.get_ref().protocol_version)?;
        Ok(Response::new(self.agent.status()))
    }

    async fn get_system_status(
        &self,
        request: Request<GetSystemStatusRequest>,
    ) -> Result<Response<SystemStatus>, Status> {
        check_protocol_version(request.get_ref().protocol_version)?;
        let agent = &self.agent;
        let mut out = SystemStatus {
            host: agent.local.name.clone(),
            agent_uptime_seconds: agent.uptime().as_secs(),
            lease_remaining_millis: agent.status().lease_remaining_millis,
            ..Default::default()
        };
        match agent.vips.present().await {
            Ok(v) => out.vips = v.iter().map(ToString::to_string).collect(),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot list VIPs"),
        }
        // The settings as the agent's periodic check last read them; read here only before the first.
        let settings = agent.last_settings_check();
        let may_write = agent.topo.may_write();
        let server = tokio::time::timeout(SYSTEM_STATUS_TIMEOUT, async {
            let mut db = agent.db.connect().await.map_err(anyhow::Error::new)?;
            let s = async {
                let state = db.server_state().await?;
                let settings = match settings {
                    Some(c) => c,
                    None if may_write => db.check_settings(agent.settings_lease()).await?,
                    None => SettingsCheck {
                        variables: db.server_variables().await?,
                        problems: Vec::new(),
                    },
                };
                anyhow::Ok((state, settings))
            }
            .await;
            db.close().await;
            s
        })
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "no answer within {SYSTEM_STATUS_TIMEOUT:?}"
            ))
        });
        match server {
            Ok((s, settings)) => {
                out.mysql_reachable = true;
                out.flavor = s.flavor.map(|f| f.as_str().to_string()).unwrap_or_default();
                out.server_version = s.version;
                out.server_id = s.server_id;
                out.read_only = s.read_only;
                out.gtid_binlog_pos = s.gtid.binlog;
                out.gtid_slave_pos = s.gtid.slave;
                out.gtid_current_pos = s.gtid.current;
                out.mysql_uptime_seconds = s.uptime;
                out.semi_sync_source_status = s.semi_sync_source;
                out.semi_sync_replica_status = s.semi_sync_replica;
                out.setting_problems = if may_write {
                    settings.problems.iter().map(ToString::to_string).collect()
                } else {
                    Vec::new()
                };
                out.server_variables = settings.variables.into_iter().collect();
                out.replication = Some(match s.replica {
                    None => ReplicationStatus::default(),
                    Some(r) => ReplicationStatus {
                        configured: true,
                        source_host: r.source_host,
                        source_port: r.source_port,
                        io_running: r.io_running,
                        sql_running: r.sql_running,
                        seconds_behind: r.seconds_behind,
                        last_io_error: r.last_io_error,
                        last_sql_error: r.last_sql_error,
                        using_gtid: r.using_gtid,
                    },
                });
            }
            Err(e) => out.mysql_error = format!("{e:#}"),
        }
        Ok(Response::new(out))
    }

    type WatchHealthStream =
        Pin<Box<dyn Stream<Item = Result<HealthEvent, Status>> + Send + 'static>>;

    async fn watch_health(
        &self,
        request: Request<WatchHealthRequest>,
    ) -> Result<Response<Self::WatchHealthStream>, Status> {
        check_protocol_version(request.get_ref().protocol_version)?;
        let monitor = request.into_inner().monitor;
        tracing::info!(monitor = %monitor, "health watcher connected");
        let agent = self.agent.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut health = agent.health();
            let mut writable = agent.writable_changes();
            loop {
                let event = {
                    let h = health.borrow_and_update().clone();
                    writable.mark_unchanged();
                    health_event(&agent, &h)
                };
                if tx.send(Ok(event)).await.is_err() {
                    break;
                }
                // A writer's agent beats more often: the stamp a lease renewal echoes is that fresh.
                let beat = tokio::time::sleep(agent.heartbeat_interval());
                tokio::select! {
                    changed = health.changed() => if changed.is_err() { break },
                    changed = writable.changed() => if changed.is_err() { break },
                    _ = beat => {},
                    _ = tx.closed() => break,
                }
            }
            tracing::info!(monitor = %monitor, "health watcher gone");
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
