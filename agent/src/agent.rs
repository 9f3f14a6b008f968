//! The agent's core: the status it was told, its lease, and the one procedure that makes the host match
//! it (writes, VIPs, replication), run after every SetStatus, every second as re-assertion, and when the
//! writer lease runs out. Runs of that procedure are serialized by a mutex; every step in it is bounded.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mmm_proto::{AgentStatus, HostState, MysqlHealth, RoleIp};
use tokio::sync::watch;
use tonic::Status;

use crate::db::DbTarget;
use crate::epoch::{Epoch, EpochError, EpochStore};
use crate::health::HealthSnapshot;
use crate::lease::Lease;
use crate::metrics::Metrics;
use crate::topology::Topology;
use crate::validate::DesiredStatus;
use crate::vip::VipManager;

/// How long a freshly started agent leaves the host as it found it while waiting for its first status.
/// A writer whose agent restarts keeps writing: its leader renews the lease every third of a lease
/// (3 s by default) and pushes at once to an agent it has not heard from, so the first status arrives
/// well within this; a host the cluster no longer wants as writer gets that status (a newer epoch)
/// just as fast. Without any status by then, the host denies writes and drops the writer VIP, as when
/// a lease runs out.
pub const STARTUP_GRACE: Duration = Duration::from_secs(3);

/// Longest the agent waits to take the hold on writes of a planned hand-over (a long-running statement
/// can delay it); past this it refuses writes instead.
const HOLD_TAKE_TIMEOUT: Duration = Duration::from_millis(300);
/// Longest client writes stay held when no status releases them.
pub const HOLD_LIMIT: Duration = Duration::from_secs(2);

/// Longest a SetStatus waits for a previous one (or a re-assertion) to finish.
const APPLY_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// What is left of a lease of `len` sent at `sent_ms` (the leader's clock) when it arrives at `now_ms`:
/// a renewal held up in a partition must not grant a fresh lease on arrival. A sender clock ahead of
/// ours counts as no delay.
pub fn lease_left(len: Duration, sent_ms: Option<u64>, now_ms: u64) -> Duration {
    let age = sent_ms.map_or(0, |s| now_ms.saturating_sub(s));
    len.saturating_sub(Duration::from_millis(age))
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Settings of the local host the agent acts on.
#[derive(Debug, Clone)]
pub struct LocalHost {
    /// `this`.
    pub name: String,
    /// `agent_user` (its sessions are never killed).
    pub agent_user: String,
    /// `replication_user` for CHANGE MASTER.
    pub replication_user: String,
    /// `replication_password`.
    pub replication_password: String,
    /// `max_kill_retries`: rounds of session killing on demotion.
    pub max_kill_retries: u32,
    /// Every host's mysql port (the active master's port for CHANGE MASTER).
    pub mysql_ports: std::collections::BTreeMap<String, u16>,
    /// Other MMM accounts (monitor, replication): not application accounts.
    pub mmm_users: Vec<String>,
}

/// What the agent was told and what it did about it.
#[derive(Debug, Default)]
struct AgentState {
    /// The last accepted status; `None` until the first SetStatus.
    desired: Option<DesiredStatus>,
    /// The writer lease.
    lease: Lease,
    /// True when writes were allowed by the agent (writer role applied fully).
    writable: bool,
    /// Errors of the last apply, "" when it was complete.
    last_error: String,
}

/// Why an apply runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyKind {
    /// A SetStatus (with the previous host state, for replication start/stop).
    Command(Option<HostState>),
    /// Periodic re-assertion, or lease expiry: writes and VIPs only.
    Reassert,
}

/// The agent.
pub struct Agent {
    /// Config facts requests are checked against.
    pub topo: Topology,
    /// The host the agent acts on.
    pub local: LocalHost,
    /// How to reach the local server.
    pub db: DbTarget,
    /// VIP handling on the cluster interface.
    pub vips: VipManager,
    /// The fencing epoch store.
    epochs: Mutex<EpochStore>,
    /// What the agent was told.
    state: Mutex<AgentState>,
    /// Serializes applies (SetStatus, re-assertion, lease expiry).
    apply_lock: tokio::sync::Mutex<()>,
    /// The connection holding client writes during a planned hand-over, and since when. Taken and
    /// released only by an apply (under `apply_lock`).
    held: Mutex<Option<(crate::db::Db, Instant)>>,
    /// Latest local health verdict.
    health: watch::Receiver<HealthSnapshot>,
    /// Whether writes are allowed, published on every change so health streams report an opened
    /// or closed writer at once (the monitors time switchovers by it).
    writable_tx: watch::Sender<bool>,
    /// Prometheus metrics.
    metrics: Metrics,
    /// Start time, for uptime.
    started: Instant,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("host", &self.local.name)
            .finish_non_exhaustive()
    }
}

fn role_ips(roles: &BTreeSet<(String, Ipv4Addr)>) -> Vec<RoleIp> {
    roles
        .iter()
        .map(|(r, ip)| RoleIp {
            role: r.clone(),
            ip: ip.to_string(),
        })
        .collect()
}

fn roles_text(roles: &BTreeSet<(String, Ipv4Addr)>) -> String {
    roles
        .iter()
        .map(|(r, ip)| format!("{r}({ip})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Agent {
    /// Builds the agent.
    pub fn new(
        topo: Topology,
        local: LocalHost,
        db: DbTarget,
        vips: VipManager,
        epochs: EpochStore,
        health: watch::Receiver<HealthSnapshot>,
    ) -> Self {
        Agent {
            topo,
            local,
            db,
            vips,
            epochs: Mutex::new(epochs),
            state: Mutex::new(AgentState::default()),
            apply_lock: tokio::sync::Mutex::new(()),
            held: Mutex::new(None),
            health,
            writable_tx: watch::Sender::new(false),
            metrics: Metrics::default(),
            started: Instant::now(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AgentState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn epochs(&self) -> std::sync::MutexGuard<'_, EpochStore> {
        self.epochs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A receiver of health verdicts.
    pub fn health(&self) -> watch::Receiver<HealthSnapshot> {
        self.health.clone()
    }

    /// A receiver that sees every change of [`Agent::writable_now`] made by an apply.
    pub fn writable_changes(&self) -> watch::Receiver<bool> {
        self.writable_tx.subscribe()
    }

    /// Records whether writes are allowed and publishes a change.
    fn set_writable(&self, writable: bool) {
        self.state().writable = writable;
        self.writable_tx
            .send_if_modified(|w| std::mem::replace(w, writable) != writable);
    }

    /// The highest accepted epoch.
    pub fn accepted_epoch(&self) -> Option<Epoch> {
        self.epochs().current()
    }

    /// True when the host holds the writer role with a valid lease and writes were allowed.
    pub fn writable_now(&self) -> bool {
        let st = self.state();
        let now = Instant::now();
        st.writable
            && st.lease.is_valid(now)
            && st
                .desired
                .as_ref()
                .is_some_and(|d| d.has_writer(&self.topo))
    }

    /// `/readyz`: ready when the local mysqld answers.
    pub fn readiness(&self) -> Result<(), String> {
        let h = self.health.borrow().clone();
        match h.mysql {
            MysqlHealth::Up => Ok(()),
            other => Err(format!("mysqld {}: {}", other.as_str_name(), h.detail)),
        }
    }

    /// The status GetStatus and SetStatus report.
    pub fn status(&self) -> AgentStatus {
        let epoch = self.accepted_epoch();
        let st = self.state();
        let now = Instant::now();
        AgentStatus {
            host: self.local.name.clone(),
            epoch: epoch.map(Into::into),
            state: st
                .desired
                .as_ref()
                .map(|d| d.state)
                .unwrap_or(HostState::Unknown) as i32,
            roles: st
                .desired
                .as_ref()
                .map(|d| role_ips(&d.roles))
                .unwrap_or_default(),
            active_master: st
                .desired
                .as_ref()
                .and_then(|d| d.active_master.clone())
                .unwrap_or_default(),
            lease_remaining_millis: st.lease.remaining(now).as_millis() as u64,
            lease_expired: st.lease.expired(),
            last_error: st.last_error.clone(),
            uptime_seconds: self.uptime().as_secs(),
            writes_held: self.writes_held(),
        }
    }

    /// True while client writes are held for a planned hand-over.
    pub fn writes_held(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Holds client writes for a planned hand-over on a connection of its own (kept until released).
    /// False when the hold could not be taken in time; the caller then refuses writes instead.
    async fn hold_writes(&self, db: &mut crate::db::Db) -> bool {
        let mut holder = match self.db.connect().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hold writes for the hand-over: refusing them instead");
                return false;
            }
        };
        let id = holder.connection_id();
        match holder.hold_writes(HOLD_TAKE_TIMEOUT).await {
            Ok(()) => {
                tracing::warn!(host = %self.local.name, "writes held for the hand-over (read lock and read_only=1; the writer VIP stays until released)");
                *self.held.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((holder, Instant::now()));
                true
            }
            Err(e) => {
                // The lock wait may still be queued on the server, where it would block everyone.
                if let Err(k) = db.kill_query(id).await {
                    tracing::error!(error = %format!("{k:#}"), "cannot interrupt the hold attempt");
                }
                holder.close().await;
                tracing::warn!(error = %format!("{e:#}"), "cannot hold writes for the hand-over: refusing them instead");
                false
            }
        }
    }

    /// Ends a hold: kills the client sessions that waited (so none of them writes here once the lock
    /// is gone), then releases the lock.
    async fn release_held_writes(&self, db: Option<&mut crate::db::Db>, errors: &mut Vec<String>) {
        let Some((holder, since)) = self.held.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            return;
        };
        if let Some(db) = db {
            match db
                .kill_sessions(&self.local.agent_user, self.local.max_kill_retries)
                .await
            {
                Ok(n) => {
                    tracing::info!(killed = n, "client sessions held for the hand-over killed")
                }
                Err(e) => errors.push(format!("killing held sessions: {e:#}")),
            }
        }
        match holder.release_writes().await {
            Ok(()) => tracing::info!(held = ?since.elapsed(), "hold on writes released"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), held = ?since.elapsed(), "releasing the hold on writes failed (the connection is closed, which releases it)")
            }
        }
    }

    /// Updates the gauges from the current state.
    pub fn refresh_metrics(&self) {
        let epoch = self.accepted_epoch().unwrap_or_default();
        self.metrics.epoch_term.set(epoch.term as i64);
        self.metrics.epoch_index.set(epoch.index as i64);
        self.metrics.writable.set(i64::from(self.writable_now()));
        let remaining = self.state().lease.remaining(Instant::now());
        self.metrics.lease_remaining.set(remaining.as_secs_f64());
        self.metrics
            .mysqld_up
            .set(i64::from(self.health.borrow().mysql == MysqlHealth::Up));
    }

    /// Handles a validated SetStatus received at `received_at`: fences on the epoch, records the status and
    /// the lease, and applies it.
    pub async fn set_status(
        &self,
        desired: DesiredStatus,
        received_at: Instant,
    ) -> Result<AgentStatus, Status> {
        let _guard = tokio::time::timeout(APPLY_LOCK_TIMEOUT, self.apply_lock.lock())
            .await
            .map_err(|_| {
                Status::unavailable("the agent is still applying a previous status; try again")
            })?;
        let is_new = match self.epochs().accept(desired.epoch, &desired.cluster_id) {
            Ok(new) => new,
            Err(e @ EpochError::Stale { .. }) => {
                tracing::warn!(epoch = %desired.epoch, monitor = %desired.monitor, error = %e, "stale SetStatus refused");
                return Err(Status::failed_precondition(e.to_string()));
            }
            Err(e @ (EpochError::OtherCluster { .. } | EpochError::NoClusterId { .. })) => {
                tracing::warn!(epoch = %desired.epoch, monitor = %desired.monitor, cluster_id = %desired.cluster_id, error = %e, "SetStatus of another monitor cluster refused");
                return Err(Status::failed_precondition(e.to_string()));
            }
            Err(e @ EpochError::BadClusterId(_)) => {
                return Err(Status::invalid_argument(format!("cluster_id: {e}")));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot persist the epoch");
                return Err(Status::internal(e.to_string()));
            }
        };
        let prev_state = {
            let mut st = self.state();
            let prev = st.desired.replace(desired.clone());
            match desired.lease {
                Some(len) => {
                    let left = lease_left(len, desired.sent_unix_ms, unix_now_ms());
                    if left < len / 2 {
                        tracing::warn!(epoch = %desired.epoch, monitor = %desired.monitor, lease_ms = len.as_millis() as u64, left_ms = left.as_millis() as u64, "writer lease arrived late: counted from when it was sent");
                    }
                    st.lease.grant(received_at, left)
                }
                None => st.lease.clear(),
            }
            let changed = prev.as_ref().is_none_or(|p| {
                p.state != desired.state
                    || p.roles != desired.roles
                    || p.active_master != desired.active_master
            });
            if is_new || changed {
                tracing::info!(
                    epoch = %desired.epoch,
                    state = desired.state.as_str_name(),
                    roles = %roles_text(&desired.roles),
                    active_master = desired.active_master.as_deref().unwrap_or(""),
                    lease_ms = desired.lease.map(|l| l.as_millis() as u64).unwrap_or(0),
                    monitor = %desired.monitor,
                    "status accepted"
                );
            } else {
                tracing::debug!(epoch = %desired.epoch, monitor = %desired.monitor, "status renewed");
            }
            prev.map(|p| p.state)
        };
        self.apply(ApplyKind::Command(prev_state)).await;
        Ok(self.status())
    }

    /// Re-asserts the status (periodic); skipped when an apply is already running, and during the
    /// start-up grace while no status has been received.
    pub async fn reassert(&self) {
        let Ok(_guard) = self.apply_lock.try_lock() else {
            return;
        };
        if self.state().desired.is_none() && self.uptime() < STARTUP_GRACE {
            return;
        }
        self.apply(ApplyKind::Reassert).await;
    }

    /// Demotes the host if its writer lease just ran out.
    pub async fn check_lease(&self) {
        let expired = {
            let mut st = self.state();
            let has_writer = st
                .desired
                .as_ref()
                .is_some_and(|d| d.has_writer(&self.topo));
            has_writer && st.lease.check_expiry(Instant::now())
        };
        if !expired {
            return;
        }
        {
            let st = self.state();
            tracing::warn!(
                host = %self.local.name,
                epoch = %self.accepted_epoch().map(|e| e.to_string()).unwrap_or_default(),
                monitor = %st.desired.as_ref().map(|d| d.monitor.clone()).unwrap_or_default(),
                "writer lease expired without renewal: demoting (deny writes, kill sessions, drop the writer VIP)"
            );
        }
        let Ok(_guard) = tokio::time::timeout(APPLY_LOCK_TIMEOUT, self.apply_lock.lock()).await
        else {
            tracing::error!("lease expired but the apply lock stayed busy");
            return;
        };
        self.apply(ApplyKind::Reassert).await;
        self.state().lease.mark_demoted(Instant::now());
    }

    /// Makes the host match the recorded status. The caller holds `apply_lock`.
    async fn apply(&self, kind: ApplyKind) {
        let (desired, writer) = {
            let st = self.state();
            let writer = st
                .desired
                .as_ref()
                .is_some_and(|d| d.has_writer(&self.topo))
                && st.lease.is_valid(Instant::now());
            (st.desired.clone(), writer)
        };
        let mut errors: Vec<String> = Vec::new();
        let writer_ips = self.topo.writer_ips();

        let mut db = match self.db.connect().await {
            Ok(db) => Some(db),
            Err(e) => {
                // A server we cannot reach accepts no writes through the VIPs we drop below, and the
                // regular re-assertion denies writes as soon as it is back; so for a host that must
                // not write, an unreachable mysqld does not stop the status from counting as applied.
                if desired.as_ref().is_some_and(|d| d.has_writer(&self.topo)) {
                    errors.push(format!("mysqld: {e}"));
                } else {
                    tracing::debug!(error = %e, "mysqld unreachable while not the writer");
                }
                None
            }
        };

        // 0. Writes held for a planned hand-over stay held while the status asks for it (and not
        //    beyond HOLD_LIMIT); then the waiting sessions are killed and the hold released.
        let hold_wanted = !writer && desired.as_ref().is_some_and(|d| d.hold_writes);
        let held_since = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, since)| *since);
        if let Some(since) = held_since {
            if !hold_wanted || since.elapsed() >= HOLD_LIMIT {
                self.release_held_writes(db.as_mut(), &mut errors).await;
            }
        }

        // 1. Not the writer (or lease gone): deny writes first — or, in a planned hand-over, hold
        //    them so clients wait rather than fail. The sessions of a host that allowed writes are
        //    killed once the writer VIP is gone (below), so that clients cannot reconnect through it
        //    while they are being killed; held sessions are killed when the hold ends.
        let mut kill_sessions = false;
        if !writer {
            self.set_writable(false);
            if let Some(db) = db.as_mut() {
                match db.read_only().await {
                    Ok(true) => {}
                    Ok(false) if hold_wanted && self.hold_writes(db).await => {}
                    Ok(false) => match db.set_writable(false).await {
                        Ok(()) => {
                            tracing::warn!(host = %self.local.name, "writes denied (read_only=1)");
                            kill_sessions = true;
                        }
                        Err(e) => errors.push(format!("denying writes: {e:#}")),
                    },
                    Err(e) => errors.push(format!("reading read_only: {e:#}")),
                }
            }
        }

        // 2. Drop every configured role IP that is not wanted now.
        let present = match self.vips.present().await {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("listing VIPs: {e:#}"));
                BTreeSet::new()
            }
        };
        let mut want: BTreeSet<Ipv4Addr> = match &desired {
            Some(d) => d.ips(),
            None => present.difference(&writer_ips).copied().collect(),
        };
        if !writer {
            want.retain(|ip| !writer_ips.contains(ip));
        }
        // Held writes keep the writer VIP until the hold ends (after the new writer announced it):
        // client connections stay and wait, instead of sending packets to an address nobody has.
        if self.writes_held() {
            want.extend(present.intersection(&writer_ips));
        }
        for ip in present.difference(&want) {
            match self.vips.remove(*ip).await {
                Ok(()) => tracing::info!(vip = %ip, iface = self.vips.iface(), "VIP removed"),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if let (true, Some(db)) = (kill_sessions, db.as_mut()) {
            match db
                .kill_sessions(&self.local.agent_user, self.local.max_kill_retries)
                .await
            {
                Ok(n) => tracing::info!(killed = n, "client sessions killed"),
                Err(e) => errors.push(format!("killing sessions: {e:#}")),
            }
        }

        // 3. Replication (commands only; not while writes are held: a replication change would wait
        //    for the held lock).
        let held = self.writes_held();
        if let (ApplyKind::Command(prev_state), Some(d), Some(db), false) =
            (kind, &desired, db.as_mut(), held)
        {
            if let Err(e) = self.apply_replication(db, d, prev_state).await {
                errors.push(format!("replication: {e:#}"));
            }
        }

        // 4. The writer: wait for catch-up, then allow writes.
        let mut writable = false;
        if writer {
            if let (Some(db), Some(d)) = (db.as_mut(), &desired) {
                match db.read_only().await {
                    Ok(false) => writable = true,
                    Ok(true) => {
                        let started = Instant::now();
                        match db.wait_received_applied(d.catchup_timeout).await {
                            Ok(()) => match db.set_writable(true).await {
                                Ok(()) => {
                                    tracing::info!(host = %self.local.name, epoch = %d.epoch, catchup = ?started.elapsed(), "writes allowed (read_only=0)");
                                    writable = true;
                                }
                                Err(e) => errors.push(format!("allowing writes: {e:#}")),
                            },
                            Err(e) => errors.push(format!("catch-up before promotion: {e:#}")),
                        }
                    }
                    Err(e) => errors.push(format!("reading read_only: {e:#}")),
                }
            }
            // A lease that ran out while we waited must not end in a writable host.
            let still = self.state().lease.is_valid(Instant::now());
            if writable && !still {
                writable = false;
                errors.push("writer lease ran out while promoting".into());
            }
            self.set_writable(writable);
        }

        // 5. Add the wanted VIPs (writer IPs only once writes are allowed) and announce them.
        if !writable {
            want.retain(|ip| !writer_ips.contains(ip));
        }
        let now_present = if present.difference(&want).next().is_some() {
            self.vips.present().await.unwrap_or_default()
        } else {
            present.clone()
        };
        let mut acquired = BTreeSet::new();
        for ip in want.difference(&now_present) {
            let started = Instant::now();
            match self.vips.add(*ip).await {
                Ok(()) => {
                    tracing::info!(vip = %ip, iface = self.vips.iface(), took = ?started.elapsed(), "VIP added");
                    acquired.insert(*ip);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !acquired.is_empty() {
            self.vips.announce_acquired(acquired).await;
        }
        if let Ok(p) = self.vips.present().await {
            self.metrics.vips_held.set(p.len() as i64);
        }
        if let Some(db) = db {
            db.close().await;
        }

        let text = errors.join("; ");
        let mut st = self.state();
        if text != st.last_error {
            if text.is_empty() {
                tracing::info!("status fully applied");
            } else {
                tracing::warn!(errors = %text, kind = ?kind, "status not fully applied");
            }
        }
        st.last_error = text;
    }

    async fn apply_replication(
        &self,
        db: &mut crate::db::Db,
        d: &DesiredStatus,
        prev_state: Option<HostState>,
    ) -> anyhow::Result<()> {
        let offline = d.state == HostState::AdminOffline;
        let was_offline = prev_state == Some(HostState::AdminOffline);
        if offline {
            if !was_offline {
                db.stop_replica().await?;
                tracing::info!("replication stopped (ADMIN_OFFLINE)");
            }
            return Ok(());
        }
        if was_offline {
            db.start_replica().await?;
            tracing::info!("replication started (left ADMIN_OFFLINE)");
        }
        let Some(master) = d.active_master.as_deref() else {
            return Ok(());
        };
        if master == self.local.name {
            return Ok(());
        }
        let Some(master_ip) = self.topo.hosts.get(master).copied() else {
            return Ok(());
        };
        let port = self.local.mysql_ports.get(master).copied().unwrap_or(3306);
        let rep = db.replica_status().await?;
        let current = rep.as_ref().map(|r| r.source_host.as_str()).unwrap_or("");
        if source_matches(current, master, master_ip) {
            return Ok(());
        }
        tracing::info!(from = current, to = master, ip = %master_ip, "re-pointing replication to the new active master");
        if rep.is_some() {
            if let Err(e) = db.wait_received_applied(d.catchup_timeout).await {
                tracing::warn!(error = %format!("{e:#}"), "received transactions not applied before re-pointing; GTID positioning continues from what is applied");
            }
        }
        db.repoint(
            master_ip,
            port,
            &self.local.replication_user,
            &self.local.replication_password,
        )
        .await?;
        tracing::info!(source = master, ip = %master_ip, "replication re-pointed (GTID)");
        Ok(())
    }
}

/// True when the replica's configured source is the given host (by IP or name).
pub fn source_matches(current: &str, name: &str, ip: IpAddr) -> bool {
    !current.is_empty() && (current == name || current.parse::<IpAddr>().ok() == Some(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_counts_from_when_the_leader_sent_it() {
        let len = Duration::from_secs(2);
        let now = 1_000_000;
        assert_eq!(
            lease_left(len, None, now),
            len,
            "no send time: from receipt"
        );
        assert_eq!(
            lease_left(len, Some(now - 500), now),
            Duration::from_millis(1500)
        );
        assert_eq!(
            lease_left(len, Some(now - 3_000), now),
            Duration::ZERO,
            "spent in transit"
        );
        assert_eq!(
            lease_left(len, Some(now + 200), now),
            len,
            "a sender clock ahead is no delay"
        );
    }

    #[test]
    fn source_matching() {
        let ip: IpAddr = "10.0.0.12".parse().unwrap();
        assert!(source_matches("10.0.0.12", "db2", ip));
        assert!(source_matches("db2", "db2", ip));
        assert!(!source_matches("10.0.0.11", "db2", ip));
        assert!(!source_matches("", "db2", ip));
    }
}
