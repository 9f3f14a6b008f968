//! The control service mmmctl talks to (`MonitorControl`).
//!
//! Reads are answered by any monitor, after it has applied everything committed before the read
//! (read-your-writes across mmmctl runs: `set_active` then `mode` says ACTIVE whichever monitor
//! answers); when no quorum confirms within [`FRESH_READ_TIMEOUT`], from what it has applied, with
//! the answer's staleness. Commands that change the cluster are
//! handled on the leader ([`crate::operator`]); a follower forwards them to the leader's control
//! service unchanged (the Handler/Forwarder split), so the rules are checked against the newest state.

use crate::convert::host_state_to_proto;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use mmm_consensus::{ClusterState, Mode as StateMode};
use mmm_proto::monitor_control_client::MonitorControlClient;
use mmm_proto::monitor_control_server::MonitorControl;
use mmm_proto::*;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::context::MonitorContext;

/// How long a forwarded command may take at the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read waits to see everything committed before it (one round trip to the leader and a
/// quorum, then applying what this monitor lacks: milliseconds in a healthy cluster). Past it the
/// monitor answers from what it has applied, with the staleness of that answer.
const FRESH_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// On a follower, hands a command to the leader's control service unchanged and returns its answer
/// (the rules are checked against the newest state, on the leader).
macro_rules! forward_to_leader {
    ($self:ident, $request:ident, $method:ident) => {
        if !$self.ctx.consensus.is_leader() {
            return $self
                .leader_client()
                .await?
                .$method($request.into_inner())
                .await;
        }
    };
}

/// `MonitorControl` on one monitor.
pub struct ControlService {
    /// Everything the monitor shares.
    ctx: Arc<MonitorContext>,
}

impl ControlService {
    /// The state after every command committed before this read, or the applied state (whose
    /// staleness the reply carries) when that cannot be confirmed in time.
    async fn fresh_state(&self) -> Arc<ClusterState> {
        match self
            .ctx
            .consensus
            .read_linearizable_within(FRESH_READ_TIMEOUT)
            .await
        {
            Ok(state) => state,
            Err(e) => {
                tracing::debug!(error = %e, "read answered from the applied state");
                self.ctx.consensus.state()
            }
        }
    }

    /// The cluster as this node sees it (complete on the leader).
    fn local_cluster_status(&self) -> ClusterStatusReply {
        let view = self.ctx.consensus.status();
        let leader = self.ctx.consensus.leader();
        let is_leader = self.ctx.consensus.is_leader();
        let reports = self.ctx.reports.fresh(Duration::from_secs(3));
        let members = view
            .members
            .iter()
            .map(|m| MemberView {
                id: m.id,
                name: m.name.clone(),
                addr: m.addr.clone(),
                voter: m.voter,
                // The leader knows who is in touch: a member that reported recently or is itself.
                reachable: m.id == view.id
                    || (is_leader && reports.contains_key(&m.name))
                    || (!is_leader && leader.as_ref().is_some_and(|(id, _)| *id == m.id)),
                matched_index: m.matched.unwrap_or(0),
                lag: m.lag.unwrap_or(0),
            })
            .collect();
        let has_quorum = if is_leader {
            self.ctx
                .consensus
                .leadership_confirmed_within()
                .is_some_and(|d| d < Duration::from_secs(1))
        } else {
            leader.is_some()
        };
        ClusterStatusReply {
            node_id: view.id,
            node_name: self.ctx.name.clone(),
            leader_id: leader.as_ref().map_or(0, |(id, _)| *id),
            leader_name: leader.map(|(_, n)| n.name).unwrap_or_default(),
            term: view.term,
            commit_index: view.commit_index.unwrap_or(0),
            applied_index: view.applied_index.unwrap_or(0),
            members,
            has_quorum,
            cluster_id: self.ctx.consensus.state().cluster_id.clone(),
        }
    }

    /// A control service over `ctx`.
    pub fn new(ctx: Arc<MonitorContext>) -> Self {
        ControlService { ctx }
    }

    /// A client of the leader's control service, or UNAVAILABLE saying there is no leader.
    async fn leader_client(&self) -> Result<MonitorControlClient<Channel>, Status> {
        let (_, leader) = self.ctx.consensus.leader().ok_or_else(|| {
            Status::unavailable("No quorum: no monitor leader is known at the moment")
        })?;
        let ep = Endpoint::from_shared(format!("http://{}", leader.addr))
            .map_err(|e| Status::internal(format!("leader address '{}': {e}", leader.addr)))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(FORWARD_TIMEOUT);
        let ch = match &self.ctx.tls {
            Some(tls) => {
                ep.connect_with_connector(tls.connector(Some(&leader.name)))
                    .await
            }
            None => ep.connect().await,
        }
        .map_err(|e| {
            Status::unavailable(format!(
                "cannot reach the leader {} at {}: {e}",
                leader.name, leader.addr
            ))
        })?;
        Ok(MonitorControlClient::new(ch))
    }
}

/// Converts a state mode to its wire form.
pub fn mode_to_proto(m: StateMode) -> Mode {
    match m {
        StateMode::Active => Mode::Active,
        StateMode::Manual => Mode::Manual,
        StateMode::Wait => Mode::Wait,
        StateMode::Passive => Mode::Passive,
    }
}

/// Builds the `show` reply from the applied state and the configuration.
pub fn show_reply(ctx: &MonitorContext, state: &ClusterState) -> ShowReply {
    let mut hosts: Vec<HostView> = ctx
        .config
        .hosts
        .values()
        .map(|h| {
            let rec = state.hosts.get(&h.name);
            let mut roles: Vec<RoleIp> = state
                .role_ips
                .iter()
                .filter(|(_, r)| r.owner.as_deref() == Some(h.name.as_str()))
                .map(|(ip, r)| RoleIp {
                    role: r.role.clone(),
                    ip: ip.clone(),
                })
                .collect();
            roles.sort_by(|a, b| (&a.role, &a.ip).cmp(&(&b.role, &b.ip)));
            HostView {
                name: h.name.clone(),
                ip: h.ip.to_string(),
                mode: h.mode.as_str().to_string(),
                state: host_state_to_proto(
                    rec.map_or(mmm_consensus::HostState::Unknown, |r| r.state),
                ) as i32,
                roles,
                agent_reachable: ctx.agents.health(&h.name).reachable,
                errant_gtids: rec.and_then(|r| r.errant_gtids.clone()).unwrap_or_default(),
                topology: None,
            }
        })
        .collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let preferences = ctx
        .config
        .roles
        .values()
        .filter_map(|role| {
            let prefer = role.prefer.as_ref()?;
            let ip = role.ips.first()?.to_string();
            let current = state.role_ips.get(&ip)?.owner.clone()?;
            (current != *prefer).then(|| RolePreference {
                role: role.name.clone(),
                preferred_host: prefer.clone(),
                current_host: current,
            })
        })
        .collect();
    ShowReply {
        mode: mode_to_proto(state.mode) as i32,
        passive_cause: state.passive_cause.clone().unwrap_or_default(),
        hosts,
        preferences,
        active_master: state.active_master.clone().unwrap_or_default(),
        staleness: None,
        writer_lease_left_millis: -1,
    }
}

fn check_version(v: u32) -> Result<(), Status> {
    if v != 0 && v != PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "protocol version {v} is not supported (this monitor speaks {PROTOCOL_VERSION})"
        )));
    }
    Ok(())
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<MoveRoleProgress, Status>> + Send>>;

#[tonic::async_trait]
impl MonitorControl for ControlService {
    async fn ping(&self, request: Request<ControlPing>) -> Result<Response<CommandReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        Ok(Response::new(CommandReply {
            ok: true,
            message: "OK: Pinged successfully!".into(),
        }))
    }

    async fn show(&self, request: Request<ShowRequest>) -> Result<Response<ShowReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        let state = self.fresh_state().await;
        let mut reply = show_reply(&self.ctx, &state);
        reply.staleness = Some(crate::staleness::staleness(&self.ctx));
        if request.get_ref().extended {
            crate::topology::extend_show(&self.ctx, &mut reply);
        }
        Ok(Response::new(reply))
    }

    async fn checks(
        &self,
        request: Request<ChecksRequest>,
    ) -> Result<Response<ChecksReply>, Status> {
        let req = request.into_inner();
        check_version(req.protocol_version)?;
        let host = (!req.host.is_empty() && req.host != "all").then_some(req.host.as_str());
        let check = (!req.check.is_empty() && req.check != "all").then_some(req.check.as_str());
        if let Some(h) = host {
            if !self.ctx.config.hosts.contains_key(h) {
                return Err(Status::not_found(format!("Unknown host name '{h}'!")));
            }
        }
        if let Some(c) = check {
            if !mmm_config::Checks::NAMES.contains(&c) {
                return Err(Status::not_found(format!("Unknown check '{c}'!")));
            }
        }
        let mut checks: Vec<CheckView> = self
            .ctx
            .checker
            .snapshot()
            .into_iter()
            .filter(|c| host.is_none_or(|h| h == c.host) && check.is_none_or(|k| k == c.check))
            .map(|c| CheckView {
                host: c.host,
                ok: c.counted_ok,
                check: c.check,
                last_change: c.last_change_unix,
                message: c.message,
            })
            .collect();
        let order = |c: &CheckView| {
            (
                c.host.clone(),
                mmm_config::Checks::NAMES.iter().position(|n| *n == c.check),
            )
        };
        checks.sort_by_key(order);
        Ok(Response::new(ChecksReply {
            checks,
            staleness: Some(crate::staleness::staleness(&self.ctx)),
        }))
    }

    async fn set_online(
        &self,
        request: Request<HostRequest>,
    ) -> Result<Response<CommandReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        forward_to_leader!(self, request, set_online);
        let reply = crate::operator::set_online(&self.ctx, &request.into_inner().host).await?;
        Ok(Response::new(reply))
    }

    async fn set_offline(
        &self,
        request: Request<HostRequest>,
    ) -> Result<Response<CommandReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        forward_to_leader!(self, request, set_offline);
        let reply = crate::operator::set_offline(&self.ctx, &request.into_inner().host).await?;
        Ok(Response::new(reply))
    }

    async fn get_mode(&self, request: Request<ModeRequest>) -> Result<Response<ModeReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        let state = self.fresh_state().await;
        Ok(Response::new(ModeReply {
            mode: mode_to_proto(state.mode) as i32,
            passive_cause: state.passive_cause.clone().unwrap_or_default(),
            staleness: Some(crate::staleness::staleness(&self.ctx)),
        }))
    }

    async fn set_mode(
        &self,
        request: Request<SetModeRequest>,
    ) -> Result<Response<CommandReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        forward_to_leader!(self, request, set_mode);
        let mode = match Mode::try_from(request.into_inner().mode) {
            Ok(Mode::Active) => StateMode::Active,
            Ok(Mode::Manual) => StateMode::Manual,
            Ok(Mode::Wait) => StateMode::Wait,
            Ok(Mode::Passive) => StateMode::Passive,
            _ => {
                return Err(Status::invalid_argument(
                    "mode must be ACTIVE, MANUAL, WAIT or PASSIVE",
                ))
            }
        };
        let reply = crate::operator::set_mode(&self.ctx, mode).await?;
        Ok(Response::new(reply))
    }

    type MoveRoleStream = ProgressStream;

    async fn move_role(
        &self,
        request: Request<MoveRoleRequest>,
    ) -> Result<Response<Self::MoveRoleStream>, Status> {
        check_version(request.get_ref().protocol_version)?;
        if !self.ctx.consensus.is_leader() {
            let inner = self
                .leader_client()
                .await?
                .move_role(request.into_inner())
                .await?
                .into_inner();
            return Ok(Response::new(Box::pin(inner) as ProgressStream));
        }
        let req = request.into_inner();
        let stream = crate::operator::move_role(Arc::clone(&self.ctx), req).await?;
        Ok(Response::new(stream))
    }

    async fn set_ip(
        &self,
        request: Request<SetIpRequest>,
    ) -> Result<Response<CommandReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        forward_to_leader!(self, request, set_ip);
        let req = request.into_inner();
        let reply = crate::operator::set_ip(&self.ctx, &req.ip, &req.host).await?;
        Ok(Response::new(reply))
    }

    async fn cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        // Only the leader knows every member's progress and who is in touch: ask it when there is
        // one (unless this node's own view is asked for); if it cannot be reached, answer with this
        // node's own view.
        if !request.get_ref().local
            && !self.ctx.consensus.is_leader()
            && self.ctx.consensus.leader().is_some()
        {
            if let Ok(mut leader) = self.leader_client().await {
                if let Ok(reply) = leader.cluster_status(request.into_inner()).await {
                    return Ok(reply);
                }
            }
        }
        Ok(Response::new(self.local_cluster_status()))
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<HistoryReply>, Status> {
        let req = request.into_inner();
        check_version(req.protocol_version)?;
        let state = self.fresh_state().await;
        let limit = if req.limit == 0 {
            20
        } else {
            req.limit as usize
        };
        let skip = state.history.len().saturating_sub(limit);
        let decisions = state
            .history
            .iter()
            .skip(skip)
            .map(|d| DecisionView {
                time_millis: d.time_ms as i64,
                epoch: Some(Epoch {
                    term: d.epoch.term,
                    index: d.epoch.index,
                }),
                host: d.host.clone().unwrap_or_default(),
                role: d.role.clone().unwrap_or_default(),
                from: d.from.clone(),
                to: d.to.clone(),
                reason: d.reason.clone(),
                summary: format!(
                    "{}{}: {} -> {}",
                    d.host.as_deref().unwrap_or("cluster"),
                    d.role
                        .as_deref()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default(),
                    d.from,
                    d.to
                ),
            })
            .collect();
        Ok(Response::new(HistoryReply {
            decisions,
            staleness: Some(crate::staleness::staleness(&self.ctx)),
        }))
    }

    async fn add_monitor(
        &self,
        request: Request<AddMonitorRequest>,
    ) -> Result<Response<CommandReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        forward_to_leader!(self, request, add_monitor);
        let req = request.into_inner();
        let reply = crate::membership::add(&self.ctx, &req.name, &req.addr).await?;
        Ok(Response::new(reply))
    }

    async fn remove_monitor(
        &self,
        request: Request<RemoveMonitorRequest>,
    ) -> Result<Response<CommandReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        forward_to_leader!(self, request, remove_monitor);
        let req = request.into_inner();
        let reply = crate::membership::remove(&self.ctx, &req.name).await?;
        Ok(Response::new(reply))
    }
}
