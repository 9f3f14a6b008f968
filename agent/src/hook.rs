//! The role-change hook (`<agent> role_change_hook PROGRAM`): a program run on this DB host whenever the
//! roles it holds change, for proxies that cannot follow VIPs (ProxySQL's hostgroups, a service registry).
//! See `deploy/examples/proxysql-hook.sh`.
//!
//! Rules:
//! - The roles held are those of the last accepted status, except that the writer role counts only while
//!   the host may write ([`Agent::writable_now`]: valid lease, writes allowed). So the hook says "writer"
//!   once writes are open here, and says it is gone when the status moves it or the lease runs out.
//! - The roles are compared every [`WATCH_INTERVAL`]; runs are serial, never concurrent. A change seen
//!   while a run is going is reported by the next run, from the roles the last successful run reported
//!   (intermediate sets collapse). At start the last reported set is empty, so a host given roles after
//!   a restart runs the hook again: hooks must be idempotent.
//! - A run that fails (non-zero exit, a signal, a timeout, not startable) is retried after
//!   [`RETRY_AFTER`] with the then current roles, until one succeeds.
//! - Each run is bounded by `role_change_hook_timeout`; the hook starts in a process group of its own,
//!   and the whole group is killed (SIGKILL) on timeout, so children it left behind die with it.
//! - Arguments: `OLD_ROLES NEW_ROLES`, comma-separated role names, `-` for none. Environment:
//!   `MMM_HOST`, `MMM_HOST_IP`, `MMM_OLD_ROLES`, `MMM_NEW_ROLES` (names, comma-separated),
//!   `MMM_OLD_ROLE_IPS`, `MMM_NEW_ROLE_IPS` (`role:ip`, comma-separated), `MMM_WRITER` (`1` when the new
//!   roles include the writer role), `MMM_STATE` (the host state of the last status).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::agent::Agent;

/// How often the roles are compared: a tenth of a second adds little to a failover that the proxy
/// learns of through the hook.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Pause before a failed run is tried again: long enough not to hammer a proxy that is down, short
/// against the time a proxy may route to a wrong host.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How much of a hook's output goes to the log.
const OUTPUT_LIMIT: usize = 4096;
/// How long reaping a killed hook may take before the agent stops waiting for it.
const REAP_TIMEOUT: Duration = Duration::from_secs(2);

/// A set of held roles: (role, role IP).
pub type Roles = BTreeSet<(String, Ipv4Addr)>;

/// The configured hook.
#[derive(Debug, Clone)]
pub struct RoleHook {
    /// The program (`role_change_hook`).
    pub program: PathBuf,
    /// Bound on one run (`role_change_hook_timeout`).
    pub timeout: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Exited 0.
    Succeeded,
    /// Exited non-zero or was killed by a signal.
    Failed(String),
    /// Did not finish within the timeout; its process group was killed.
    TimedOut(Duration),
    /// Could not be started.
    NotRun(String),
}

/// One run's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    /// `this`.
    pub host: String,
    /// The host's own IP.
    pub host_ip: String,
    /// The roles the last successful run reported.
    pub old: Roles,
    /// The roles held now.
    pub new: Roles,
    /// The new roles include the writer role.
    pub writer: bool,
    /// The state of the last accepted status (`ONLINE`, ...).
    pub state: String,
}

fn names(roles: &Roles) -> String {
    let n: BTreeSet<&str> = roles.iter().map(|(r, _)| r.as_str()).collect();
    n.into_iter().collect::<Vec<_>>().join(",")
}

fn role_ips(roles: &Roles) -> String {
    roles
        .iter()
        .map(|(r, ip)| format!("{r}:{ip}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl RoleChange {
    /// Positional arguments: old and new role names.
    pub fn args(&self) -> Vec<String> {
        let or_dash = |s: String| if s.is_empty() { "-".into() } else { s };
        vec![or_dash(names(&self.old)), or_dash(names(&self.new))]
    }

    /// Environment variables.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("MMM_HOST".into(), self.host.clone()),
            ("MMM_HOST_IP".into(), self.host_ip.clone()),
            ("MMM_OLD_ROLES".into(), names(&self.old)),
            ("MMM_NEW_ROLES".into(), names(&self.new)),
            ("MMM_OLD_ROLE_IPS".into(), role_ips(&self.old)),
            ("MMM_NEW_ROLE_IPS".into(), role_ips(&self.new)),
            ("MMM_WRITER".into(), u8::from(self.writer).to_string()),
            ("MMM_STATE".into(), self.state.clone()),
        ]
    }
}

fn clip(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    if s.len() <= OUTPUT_LIMIT {
        return s.to_string();
    }
    let mut end = OUTPUT_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Runs the hook once: its own process group, output collected, the group killed after the timeout.
pub async fn run(hook: &RoleHook, change: &RoleChange) -> HookOutcome {
    let mut cmd = tokio::process::Command::new(&hook.program);
    cmd.args(change.args())
        .envs(change.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return HookOutcome::NotRun(format!("{}: {e}", hook.program.display())),
    };
    let pgid = child.id();
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    // Both pipes are read at once, so a hook filling one while the other is read cannot stall. A
    // child the hook leaves running keeps them open: the run then ends by the timeout.
    let collect = async {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(s) = out.as_mut() {
                let _ = s.read_to_end(&mut o).await;
            }
        };
        let read_err = async {
            if let Some(s) = err.as_mut() {
                let _ = s.read_to_end(&mut e).await;
            }
        };
        tokio::join!(read_out, read_err);
        (o, e)
    };
    let waited = tokio::time::timeout(hook.timeout, async {
        let (o, e) = collect.await;
        (child.wait().await, o, e)
    })
    .await;
    match waited {
        Ok((Ok(status), o, e)) => {
            let (o, e) = (clip(&o), clip(&e));
            if !o.is_empty() || !e.is_empty() {
                tracing::info!(stdout = %o, stderr = %e, "role_change_hook output");
            }
            if status.success() {
                HookOutcome::Succeeded
            } else {
                HookOutcome::Failed(status.to_string())
            }
        }
        Ok((Err(e), _, _)) => HookOutcome::Failed(e.to_string()),
        Err(_) => {
            if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) with a negative pid signals the hook's own process group, made by
                // process_group(0) above; it touches no memory.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            let _ = tokio::time::timeout(REAP_TIMEOUT, child.wait()).await;
            HookOutcome::TimedOut(hook.timeout)
        }
    }
}

/// The roles this host holds for the hook: the writer role only while writes are allowed.
fn held(agent: &Agent) -> (Roles, String) {
    let (state, mut roles) = agent.assigned();
    if !agent.writable_now() {
        roles.retain(|(r, _)| !agent.topo.is_writer_role(r));
    }
    let name = state.as_str_name();
    (
        roles,
        name.strip_prefix("HOST_STATE_").unwrap_or(name).to_string(),
    )
}

/// Watches the agent's roles and runs the hook on every change, forever.
pub async fn watch(agent: Arc<Agent>, hook: RoleHook) {
    let host_ip = agent
        .topo
        .hosts
        .get(&agent.local.name)
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut reported = Roles::new();
    let mut failed_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (roles, state) = held(&agent);
        if roles == reported || failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
            continue;
        }
        let change = RoleChange {
            host: agent.local.name.clone(),
            host_ip: host_ip.clone(),
            old: reported.clone(),
            writer: roles.iter().any(|(r, _)| agent.topo.is_writer_role(r)),
            new: roles,
            state,
        };
        let started = Instant::now();
        tracing::info!(program = %hook.program.display(), args = ?change.args(), "running role_change_hook");
        match run(&hook, &change).await {
            HookOutcome::Succeeded => {
                tracing::info!(took = ?started.elapsed(), old = %names(&change.old), new = %names(&change.new), "role_change_hook succeeded");
                reported = change.new;
                failed_at = None;
            }
            other => {
                tracing::error!(outcome = ?other, took = ?started.elapsed(), retry_after = ?RETRY_AFTER, "role_change_hook failed");
                failed_at = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        let path = dir.join("hook.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write hook");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn change() -> RoleChange {
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip");
        RoleChange {
            host: "db2".into(),
            host_ip: "10.0.0.12".into(),
            old: [("reader".to_string(), ip("10.0.0.101"))].into(),
            new: [
                ("reader".to_string(), ip("10.0.0.101")),
                ("writer".to_string(), ip("10.0.0.100")),
            ]
            .into(),
            writer: true,
            state: "ONLINE".into(),
        }
    }

    #[tokio::test]
    async fn the_hook_gets_old_and_new_roles_as_arguments_and_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("calls");
        let program = script(
            dir.path(),
            &format!(
                "echo \"$1|$2|$MMM_HOST|$MMM_HOST_IP|$MMM_NEW_ROLE_IPS|$MMM_WRITER|$MMM_STATE\" >> {}",
                out.display()
            ),
        );
        let hook = RoleHook {
            program,
            timeout: Duration::from_secs(5),
        };
        assert_eq!(run(&hook, &change()).await, HookOutcome::Succeeded);
        let calls = std::fs::read_to_string(&out).expect("calls");
        assert_eq!(
            calls.trim(),
            "reader|reader,writer|db2|10.0.0.12|reader:10.0.0.101,writer:10.0.0.100|1|ONLINE"
        );
        let none = RoleChange {
            old: Roles::new(),
            ..change()
        };
        assert_eq!(none.args(), vec!["-", "reader,writer"]);
    }

    #[tokio::test]
    async fn a_failing_hook_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hook = RoleHook {
            program: script(dir.path(), "exit 3"),
            timeout: Duration::from_secs(5),
        };
        assert!(matches!(
            run(&hook, &change()).await,
            HookOutcome::Failed(_)
        ));
        let missing = RoleHook {
            program: dir.path().join("absent"),
            timeout: Duration::from_secs(5),
        };
        assert!(matches!(
            run(&missing, &change()).await,
            HookOutcome::NotRun(_)
        ));
    }

    #[tokio::test]
    async fn a_hook_that_times_out_takes_its_process_group_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("child.pid");
        // The hook leaves a child behind (as a hung proxy client would) and hangs itself.
        let hook = RoleHook {
            program: script(
                dir.path(),
                &format!("sleep 60 &\necho $! > {}\nsleep 60", pid_file.display()),
            ),
            timeout: Duration::from_millis(500),
        };
        let started = Instant::now();
        assert_eq!(
            run(&hook, &change()).await,
            HookOutcome::TimedOut(Duration::from_millis(500))
        );
        assert!(started.elapsed() < Duration::from_secs(3), "bounded");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("child pid")
            .trim()
            .parse()
            .expect("pid");
        // The orphaned child is reaped by init; until then it may be a zombie: wait for it to go.
        let deadline = Instant::now() + Duration::from_secs(5);
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
        };
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive(pid), "the hook's child {pid} was killed with it");
    }
}
