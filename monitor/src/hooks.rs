//! The operator's hook programs (`pre_failover`, `post_failover`, `post_role_change` in `<monitor>`),
//! run by the leader with `hook_timeout`, their output logged.
//!
//! Every hook gets the same facts twice, as arguments and in the environment:
//!
//! ```text
//! HOOK ROLE OLD_OWNER NEW_OWNER ROLE_IP EPOCH        ("-" for an absent owner or IP)
//! MMM_HOOK MMM_ROLE MMM_OLD_OWNER MMM_NEW_OWNER MMM_OLD_IP MMM_NEW_IP MMM_ROLE_IP MMM_EPOCH MMM_MONITOR
//! ```
//!
//! `MMM_OLD_IP` / `MMM_NEW_IP` are the owners' host IPs, `MMM_ROLE_IP` the role IP(s) concerned
//! (comma-separated for a failover, which moves every writer IP). `pre_failover` runs before the
//! failover is committed; a non-zero exit (or a timeout) aborts it, as orchestrator's
//! `PreFailoverProcesses` do. The `post_*` hooks run once per committed decision: the decision leaves a
//! pending [`HookEvent`] in the replicated state and the leader commits `HookDone` after running it, so a
//! new leader runs only the ones still pending (a leader that dies while a hook runs leaves it pending:
//! the next one runs it again, so hooks must be idempotent).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mmm_config::Config;
use mmm_consensus::{Command, Epoch, HookEvent, HookKind, Mode, Request};

use crate::context::MonitorContext;

/// Pending events older than this are not run by a leader (they were pending before the hook was
/// configured, or while no leader could run them); they are marked done with a warning.
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// How much of a hook's output goes to the log.
const OUTPUT_LIMIT: usize = 4096;

/// The facts a hook is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCall {
    /// The hook's configuration key (`pre_failover`, ...).
    pub hook: String,
    /// The role concerned.
    pub role: String,
    /// The host giving the role up, if any.
    pub old_owner: Option<String>,
    /// The host taking it, if any.
    pub new_owner: Option<String>,
    /// The role IP(s) concerned.
    pub role_ips: Vec<String>,
    /// The epoch of the decision (for `pre_failover`: the state's last epoch, as nothing is committed yet).
    pub epoch: Epoch,
}

impl HookCall {
    /// The call for a pending event.
    pub fn from_event(ev: &HookEvent, config: &Config) -> HookCall {
        let role_ips = if ev.ip.is_empty() {
            writer_ips(config, &ev.role)
        } else {
            vec![ev.ip.clone()]
        };
        HookCall {
            hook: ev.hook.as_str().to_string(),
            role: ev.role.clone(),
            old_owner: ev.old_owner.clone(),
            new_owner: ev.new_owner.clone(),
            role_ips,
            epoch: ev.epoch,
        }
    }

    /// Positional arguments.
    pub fn args(&self) -> Vec<String> {
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        vec![
            self.hook.clone(),
            self.role.clone(),
            dash(&self.old_owner),
            dash(&self.new_owner),
            if self.role_ips.is_empty() {
                "-".into()
            } else {
                self.role_ips.join(",")
            },
            self.epoch.to_string(),
        ]
    }

    /// Environment variables.
    pub fn env(&self, config: &Config, monitor: &str) -> Vec<(String, String)> {
        let host_ip = |h: &Option<String>| {
            h.as_ref()
                .and_then(|h| config.hosts.get(h))
                .map(|h| h.ip.to_string())
                .unwrap_or_default()
        };
        vec![
            ("MMM_HOOK".into(), self.hook.clone()),
            ("MMM_ROLE".into(), self.role.clone()),
            (
                "MMM_OLD_OWNER".into(),
                self.old_owner.clone().unwrap_or_default(),
            ),
            (
                "MMM_NEW_OWNER".into(),
                self.new_owner.clone().unwrap_or_default(),
            ),
            ("MMM_OLD_IP".into(), host_ip(&self.old_owner)),
            ("MMM_NEW_IP".into(), host_ip(&self.new_owner)),
            ("MMM_ROLE_IP".into(), self.role_ips.join(",")),
            ("MMM_EPOCH".into(), self.epoch.to_string()),
            ("MMM_MONITOR".into(), monitor.to_string()),
        ]
    }
}

/// The IPs of `role` in the configuration.
pub fn writer_ips(config: &Config, role: &str) -> Vec<String> {
    config
        .roles
        .get(role)
        .map(|r| r.ips.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

/// The program configured for a post-decision hook.
pub fn program_for(config: &Config, hook: HookKind) -> Option<PathBuf> {
    match hook {
        HookKind::PostFailover => config.monitor.post_failover.clone(),
        HookKind::PostRoleChange => config.monitor.post_role_change.clone(),
    }
}

/// How a hook run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookOutcome {
    /// Exited 0.
    Succeeded,
    /// Exited non-zero (or was killed by a signal).
    Failed(String),
    /// Did not finish within the timeout; killed.
    TimedOut(Duration),
    /// Could not be started.
    NotRun(String),
}

impl HookOutcome {
    /// Whether it exited 0.
    pub fn ok(&self) -> bool {
        matches!(self, HookOutcome::Succeeded)
    }
}

impl std::fmt::Display for HookOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookOutcome::Succeeded => f.write_str("exit 0"),
            HookOutcome::Failed(s) => write!(f, "{s}"),
            HookOutcome::TimedOut(d) => write!(f, "timed out after {d:?}"),
            HookOutcome::NotRun(e) => write!(f, "could not run: {e}"),
        }
    }
}

fn clip(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    if s.len() > OUTPUT_LIMIT {
        let mut end = OUTPUT_LIMIT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

/// SIGKILL to every process of the group `pgid` (a timed-out hook and whatever it started).
fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group the hook leads; the group was
    // created for this hook alone (`process_group(0)`), so no other process is hit.
    let rc = unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, error = %e, "cannot kill the timed-out hook's process group");
        }
    }
}

/// Runs `program` with the call's arguments and environment in a process group of its own; on
/// `timeout` the whole group is killed. Logs the outcome and output.
pub async fn run(
    program: &Path,
    call: &HookCall,
    config: &Config,
    monitor: &str,
    timeout: Duration,
) -> HookOutcome {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(call.args())
        .envs(call.env(config, monitor))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A process group of its own: on timeout the whole group is killed, so a hook's children
        // (`ssh`, `curl`, a `sleep` in a retry loop) do not outlive it.
        .process_group(0)
        .kill_on_drop(true);
    tracing::info!(hook = %call.hook, program = %program.display(), args = ?call.args(), "running hook");
    let outcome = match cmd.spawn() {
        Err(e) => HookOutcome::NotRun(e.to_string()),
        Ok(child) => {
            let pgid = child.id();
            match tokio::time::timeout(timeout, child.wait_with_output()).await {
                Err(_) => {
                    if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
                        kill_group(pgid);
                    }
                    HookOutcome::TimedOut(timeout)
                }
                Ok(Err(e)) => HookOutcome::NotRun(e.to_string()),
                Ok(Ok(out)) => {
                    let (stdout, stderr) = (clip(&out.stdout), clip(&out.stderr));
                    if !stdout.is_empty() || !stderr.is_empty() {
                        tracing::info!(hook = %call.hook, stdout = %stdout, stderr = %stderr, "hook output");
                    }
                    if out.status.success() {
                        HookOutcome::Succeeded
                    } else {
                        HookOutcome::Failed(out.status.to_string())
                    }
                }
            }
        }
    };
    let took_ms = started.elapsed().as_millis() as u64;
    if outcome.ok() {
        tracing::info!(hook = %call.hook, epoch = %call.epoch, took_ms, "hook succeeded");
    } else {
        tracing::error!(hook = %call.hook, epoch = %call.epoch, took_ms, outcome = %outcome, "hook failed");
    }
    outcome
}

/// The unplanned writer move a command starts, if any: (role, from, to).
pub fn unplanned_failover(cmd: &Command) -> Option<(String, String, String)> {
    match cmd {
        Command::BeginFailover {
            role,
            from: Some(from),
            to,
            planned: false,
        } => Some((role.clone(), from.clone(), to.clone())),
        Command::Batch(cmds) => cmds.iter().find_map(unplanned_failover),
        Command::Round(reqs) => reqs.iter().find_map(|r| unplanned_failover(&r.command)),
        _ => None,
    }
}

/// True when committing `req` must wait for `pre_failover` (it starts an unplanned failover and
/// the hook is configured).
pub fn needs_pre_failover(ctx: &MonitorContext, req: &Request) -> bool {
    ctx.config.monitor.pre_failover.is_some() && unplanned_failover(&req.command).is_some()
}

/// On the leader, before committing `req`: when it starts an unplanned failover and `pre_failover` is
/// configured, runs the hook. Returns false when the hook vetoed the failover; the cluster is then put
/// in PASSIVE mode with the reason as its cause (so the failover is not retried in a loop) and the
/// proposal must be dropped.
pub async fn pre_failover_allows(ctx: &MonitorContext, req: &Request) -> bool {
    let Some(program) = ctx.config.monitor.pre_failover.clone() else {
        return true;
    };
    let Some((role, from, to)) = unplanned_failover(&req.command) else {
        return true;
    };
    let state = ctx.consensus.state();
    let call = HookCall {
        hook: "pre_failover".into(),
        role: role.clone(),
        old_owner: Some(from.clone()),
        new_owner: Some(to.clone()),
        role_ips: writer_ips(&ctx.config, &role),
        epoch: state.last_epoch,
    };
    let timeout = ctx.config.monitor.hook_timeout;
    let outcome = run(&program, &call, &ctx.config, &ctx.name, timeout).await;
    if outcome.ok() {
        return true;
    }
    let cause =
        format!("failover of {role} from {from} to {to} aborted by pre_failover ({outcome})");
    tracing::error!(role, from, to, outcome = %outcome, "{cause}; cluster set to PASSIVE");
    let passive = Request {
        time_ms: crate::convert::now_ms(),
        reason: cause.clone(),
        command: Command::SetMode {
            mode: Mode::Passive,
            cause: Some(cause),
        },
    };
    if let Err(e) = ctx
        .consensus
        .write_with_timeout(passive, Duration::from_secs(2))
        .await
    {
        tracing::error!(error = %e, "could not commit PASSIVE mode after the pre_failover veto");
    }
    false
}

/// The identity of a pending event: (epoch, hook, ip).
pub type EventKey = (Epoch, HookKind, String);

/// On the leader: starts every pending `post_*` hook not already running under this leadership; each
/// commits `HookDone` when it ends (whatever its exit status: it ran). Events whose hook is not
/// configured, or older than [`STALE_AFTER`], are marked done without running.
pub fn run_pending(ctx: &Arc<MonitorContext>, running: &Arc<Mutex<BTreeSet<EventKey>>>) {
    let state = ctx.consensus.state();
    let now = crate::convert::now_ms();
    let mut skip = Vec::new();
    for ev in &state.pending_hooks {
        let key: EventKey = (ev.epoch, ev.hook, ev.ip.clone());
        if !lock(running).insert(key.clone()) {
            continue;
        }
        let program = program_for(&ctx.config, ev.hook);
        let stale = now.saturating_sub(ev.time_ms) > STALE_AFTER.as_millis() as u64;
        match program {
            Some(program) if !stale => {
                let (ctx, running, ev) = (Arc::clone(ctx), Arc::clone(running), ev.clone());
                tokio::spawn(async move {
                    let call = HookCall::from_event(&ev, &ctx.config);
                    let timeout = ctx.config.monitor.hook_timeout;
                    let outcome = run(&program, &call, &ctx.config, &ctx.name, timeout).await;
                    let reason = format!("{} for {} ran: {outcome}", ev.hook, ev.epoch);
                    commit_done(&ctx, vec![key.clone()], reason).await;
                    lock(&running).remove(&key);
                });
            }
            Some(_) => {
                tracing::warn!(hook = %ev.hook, epoch = %ev.epoch, "hook event too old: not run");
                skip.push(key);
            }
            None => skip.push(key),
        }
    }
    if !skip.is_empty() {
        let (ctx, running) = (Arc::clone(ctx), Arc::clone(running));
        tokio::spawn(async move {
            commit_done(&ctx, skip.clone(), "hook not configured".into()).await;
            let mut r = lock(&running);
            for k in &skip {
                r.remove(k);
            }
        });
    }
}

async fn commit_done(ctx: &MonitorContext, keys: Vec<EventKey>, reason: String) {
    let mut cmds: Vec<Command> = keys
        .into_iter()
        .map(|(epoch, hook, ip)| Command::HookDone { epoch, hook, ip })
        .collect();
    let command = if cmds.len() == 1 {
        cmds.remove(0)
    } else {
        Command::Batch(cmds)
    };
    let req = Request {
        time_ms: crate::convert::now_ms(),
        reason: reason.clone(),
        command,
    };
    if let Err(e) = ctx
        .consensus
        .write_with_timeout(req, Duration::from_secs(2))
        .await
    {
        // Still pending: this or the next leader runs it again.
        tracing::warn!(error = %e, reason, "could not record a hook as done");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> HookCall {
        HookCall {
            hook: "pre_failover".into(),
            role: "writer".into(),
            old_owner: Some("db1".into()),
            new_owner: None,
            role_ips: vec!["10.0.0.50".into()],
            epoch: Epoch { term: 2, index: 7 },
        }
    }

    /// The process exists and is not a zombie.
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    }

    #[test]
    fn arguments_use_a_dash_for_absent_values() {
        assert_eq!(
            call().args(),
            vec!["pre_failover", "writer", "db1", "-", "10.0.0.50", "2-7"]
        );
    }

    #[tokio::test]
    async fn runs_a_program_with_arguments_environment_and_timeout() {
        let dir = std::env::temp_dir().join(format!("mmm-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("out");
        let script = dir.join("hook.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@ $MMM_OLD_OWNER $MMM_EPOCH\" > {}\n[ \"$MMM_ROLE\" = writer ] && exit 3\nexit 0\n",
                out.display()
            ),
        )
        .expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let config = crate::test_support::seed_monitor_config();
        let r = run(&script, &call(), &config, "mon1", Duration::from_secs(5)).await;
        assert!(matches!(r, HookOutcome::Failed(_)), "{r:?}");
        let text = std::fs::read_to_string(&out).expect("output");
        assert_eq!(
            text.trim(),
            "pre_failover writer db1 - 10.0.0.50 2-7 db1 2-7"
        );
        std::fs::write(&script, "#!/bin/sh\nsleep 5\n").expect("write");
        let t = Instant::now();
        let r = run(
            &script,
            &call(),
            &config,
            "mon1",
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(r, HookOutcome::TimedOut(Duration::from_millis(300)));
        assert!(t.elapsed() < Duration::from_secs(3));
        // A child the hook started goes with it.
        let pid_file = dir.join("child.pid");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh
sleep 30 &
echo $! > {}
wait
",
                pid_file.display()
            ),
        )
        .expect("write");
        let r = run(
            &script,
            &call(),
            &config,
            "mon1",
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(r, HookOutcome::TimedOut(Duration::from_millis(500)));
        let child: u32 = std::fs::read_to_string(&pid_file)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        let gone = async {
            while running(child) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        assert!(
            tokio::time::timeout(Duration::from_secs(3), gone)
                .await
                .is_ok(),
            "the hook's child {child} outlived the timeout"
        );
        let r = run(
            &dir.join("missing"),
            &call(),
            &config,
            "mon1",
            Duration::from_secs(1),
        )
        .await;
        assert!(matches!(r, HookOutcome::NotRun(_)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
