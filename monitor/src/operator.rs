//! Operator commands on the leader: check MMM's rules against the newest state (the pure functions
//! of [`crate::engine`]), commit what they propose, answer in MMM's words. `move_role` of the writer
//! role streams the committed failover steps until the new writer accepts writes.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use mmm_consensus::{ClusterState, FailoverStep, Mode};
use mmm_proto::{CommandReply, MoveRoleProgress, MoveRoleRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::context::MonitorContext;
use crate::convert::now_ms;
use crate::engine::{self, EngineConfig, OperatorError, OperatorPlan};

/// How long a commit of an operator command may take.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `move_role` follows a writer move before giving up on reporting it.
const MOVE_WATCH_TIMEOUT: Duration = Duration::from_secs(60);

async fn newest_state(ctx: &MonitorContext) -> Result<std::sync::Arc<ClusterState>, Status> {
    ctx.consensus
        .read_linearizable()
        .await
        .map_err(|e| Status::unavailable(format!("No quorum: {e}")))
}

/// Commits a plan's proposals in order; the reply carries MMM's text.
async fn commit_plan(ctx: &MonitorContext, plan: OperatorPlan) -> Result<CommandReply, Status> {
    for p in plan.proposals {
        let reason = p.reason.clone();
        match ctx.consensus.write_with_timeout(p, COMMIT_TIMEOUT).await {
            Ok(r) => {
                if let Some(e) = r.error {
                    return Ok(CommandReply {
                        ok: false,
                        message: format!("ERROR: {e}"),
                    });
                }
                tracing::info!(reason = %reason, "operator command committed");
            }
            Err(e) => return Err(Status::unavailable(format!("No quorum: {e}"))),
        }
    }
    Ok(CommandReply {
        ok: true,
        message: plan.message,
    })
}

fn refused(e: OperatorError) -> CommandReply {
    CommandReply {
        ok: false,
        message: e.to_string(),
    }
}

fn engine_config(ctx: &MonitorContext) -> EngineConfig {
    EngineConfig::from(ctx.config.as_ref())
}

/// `set_online H`.
pub async fn set_online(ctx: &MonitorContext, host: &str) -> Result<CommandReply, Status> {
    let state = newest_state(ctx).await?;
    let checks_ok = ctx
        .checker
        .snapshot()
        .iter()
        .filter(|c| c.host == host && (c.check == "ping" || c.check == "mysql"))
        .all(|c| c.counted_ok);
    let reachable = ctx.agents.health(host).reachable;
    // A host goes ONLINE only if it has no transactions the active master lacks, checked now: the
    // mark recorded when it came back is cleared only by a check that finds them gone.
    let recorded = state.hosts.get(host).and_then(|r| r.errant_gtids.clone());
    let master = state.active_master.clone().filter(|m| m != host);
    let errant_now = match &master {
        Some(m) if reachable => match crate::errant::check(ctx, host, m).await {
            Ok(found) => found,
            Err(e) => match recorded {
                Some(gtids) => {
                    return Ok(refused(engine::OperatorError::ErrantUnchecked {
                        host: host.to_string(),
                        gtids,
                        reason: format!("{e:#}"),
                    }))
                }
                None => None,
            },
        },
        _ => None,
    };
    match engine::set_online(
        &state,
        &engine_config(ctx),
        host,
        checks_ok,
        reachable,
        errant_now.as_deref(),
        now_ms(),
    ) {
        Ok(plan) => commit_plan(ctx, plan).await,
        Err(e) => Ok(refused(e)),
    }
}

/// `set_offline H`.
pub async fn set_offline(ctx: &MonitorContext, host: &str) -> Result<CommandReply, Status> {
    let state = newest_state(ctx).await?;
    let reachable = ctx.agents.health(host).reachable;
    match engine::set_offline(&state, &engine_config(ctx), host, reachable, now_ms()) {
        Ok(plan) => commit_plan(ctx, plan).await,
        Err(e) => Ok(refused(e)),
    }
}

/// `set_active`, `set_manual`, `set_passive`.
pub async fn set_mode(ctx: &MonitorContext, mode: Mode) -> Result<CommandReply, Status> {
    let state = newest_state(ctx).await?;
    match engine::set_mode(&state, &engine_config(ctx), mode, now_ms()) {
        Ok(plan) => commit_plan(ctx, plan).await,
        Err(e) => Ok(refused(e)),
    }
}

/// `set_ip IP H` (passive mode only). For the writer role this only plans the move: `set_active`
/// carries it out through the failover steps (see [`engine::set_ip`]).
pub async fn set_ip(ctx: &MonitorContext, ip: &str, host: &str) -> Result<CommandReply, Status> {
    let state = newest_state(ctx).await?;
    match engine::set_ip(&state, &engine_config(ctx), ip, host, now_ms()) {
        Ok(plan) => commit_plan(ctx, plan).await,
        Err(e) => Ok(refused(e)),
    }
}

/// The stream `move_role` answers with.
pub type ProgressStream = Pin<Box<dyn Stream<Item = Result<MoveRoleProgress, Status>> + Send>>;

/// A progress message; an empty `step` prints only the final message (MMM's output for a refusal).
fn progress(step: impl Into<String>, started: Instant) -> MoveRoleProgress {
    MoveRoleProgress {
        step: step.into(),
        elapsed_millis: started.elapsed().as_millis() as u64,
        ..Default::default()
    }
}

/// `move_role [--force] ROLE HOST`: commits the move, then (for the writer role, when `wait`)
/// reports each committed step until the new writer accepts writes.
pub async fn move_role(
    ctx: Arc<MonitorContext>,
    req: MoveRoleRequest,
) -> Result<ProgressStream, Status> {
    let started = Instant::now();
    let state = newest_state(&ctx).await?;
    let ecfg = engine_config(&ctx);
    let (tx, rx) = mpsc::channel(16);
    let plan = match engine::move_role(&state, &ecfg, &req.role, &req.host, req.force, now_ms()) {
        Ok(p) => p,
        Err(e) => {
            let _ = tx
                .send(Ok(MoveRoleProgress {
                    done: true,
                    ok: false,
                    message: e.to_string(),
                    ..progress("", started)
                }))
                .await;
            return Ok(Box::pin(ReceiverStream::new(rx)));
        }
    };
    let is_writer =
        ecfg.writer_role.as_deref() == Some(req.role.as_str()) && !plan.proposals.is_empty();
    let reply = commit_plan(&ctx, plan).await?;
    if !reply.ok || !is_writer || !req.wait {
        let _ = tx
            .send(Ok(MoveRoleProgress {
                done: true,
                ok: reply.ok,
                message: reply.message,
                ..progress("", started)
            }))
            .await;
        return Ok(Box::pin(ReceiverStream::new(rx)));
    }
    let _ = tx.send(Ok(progress("move committed", started))).await;
    tokio::spawn(follow_writer_move(
        ctx,
        req.host,
        reply.message,
        started,
        tx,
    ));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Reports the failover steps as they are committed, and the moment the new writer is open.
async fn follow_writer_move(
    ctx: Arc<MonitorContext>,
    host: String,
    message: String,
    started: Instant,
    tx: mpsc::Sender<Result<MoveRoleProgress, Status>>,
) {
    let mut applied = ctx.consensus.subscribe();
    let mut agents = ctx.agents.changes();
    let deadline = tokio::time::Instant::now() + MOVE_WATCH_TIMEOUT;
    let mut last_step: Option<FailoverStep> = None;
    let mut blocked_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        let state = ctx.consensus.state();
        if let Some(f) = &state.failover {
            if last_step != Some(f.step) {
                if last_step == Some(FailoverStep::DemoteOld)
                    || (last_step.is_none() && f.step > FailoverStep::DemoteOld)
                {
                    blocked_since.get_or_insert_with(Instant::now);
                }
                let text = match f.step {
                    FailoverStep::DemoteOld => {
                        format!("denying writes on {}", f.from.as_deref().unwrap_or("-"))
                    }
                    FailoverStep::CatchUp => format!(
                        "writes blocked on {}; {} catching up",
                        f.from.as_deref().unwrap_or("-"),
                        f.to
                    ),
                    FailoverStep::Repoint => format!("replicas re-pointing to {}", f.to),
                    FailoverStep::Promote => format!("promoting {}", f.to),
                };
                last_step = Some(f.step);
                if tx.send(Ok(progress(text, started))).await.is_err() {
                    return;
                }
            }
        } else if state.active_master.as_deref() == Some(host.as_str())
            && ctx.agents.health(&host).writable
        {
            let blocked = blocked_since.map_or(0, |b| b.elapsed().as_millis() as u64);
            let _ = tx
                .send(Ok(MoveRoleProgress {
                    done: true,
                    ok: true,
                    message: message.clone(),
                    writes_blocked_millis: blocked,
                    ..progress(format!("writer open on {host}"), started)
                }))
                .await;
            return;
        }
        tokio::select! {
            _ = applied.changed() => {}
            _ = agents.changed() => {}
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(deadline) => {
                let _ = tx.send(Ok(MoveRoleProgress {
                    done: true, ok: false,
                    message: format!("ERROR: the move to {host} did not complete within {MOVE_WATCH_TIMEOUT:?}; see `mmmctl show` and `mmmctl history`"),
                    ..progress("timed out", started)
                })).await;
                return;
            }
        }
    }
}
