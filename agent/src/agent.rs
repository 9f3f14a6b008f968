//! The agent's core: the status it was told, its lease, and the one procedure that makes the host match
//! it (writes, VIPs, replication), run after every SetStatus, every second as re-assertion, and when the
//! writer lease runs out. Runs of that procedure are serialized by a mutex; every step in it is bounded.
//!
//! Rules of the writer's side (the lease itself is in [`crate::lease`], the fence in mysqld in
//! [`crate::fence`]):
//! - Writes are allowed only while the lease is valid, and only after the lease's end was written into
//!   mysqld's fence, which denies writes by itself when the lease ends even if the agent does not.
//! - A host that must not write stops taking connections on the writer VIP first (no SQL needed: refused
//!   by [`crate::firewall`], or the address removed at once without it), then every client session is
//!   killed and `read_only` set without waiting for locks, repeated until it holds (bounded by
//!   [`DEMOTE_DEADLINE`]), then sessions are killed again. When the lease runs out the sessions are killed
//!   even if `read_only` was already on (privileged accounts write through it).
//! - A status that denies writes counts as applied only once `read_only=1` was read back, or mysqld is
//!   certainly down (connection refused, socket gone): never on a timeout, an authentication error or
//!   `Too many connections`. The leader then waits for the lease and the fence instead.
//! - A freshly started agent knows no status: it adopts what is left of the lease kept in mysqld (a writer
//!   whose agent restarts keeps writing, within the lease the cluster granted) and otherwise denies writes
//!   at once: it starts fenced, never open.

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
use crate::lease::{Lease, Stamp, StampBook};
use crate::metrics::Metrics;
use crate::topology::Topology;
use crate::validate::DesiredStatus;
use crate::vip::VipManager;

/// Longest the SQL part of a demotion (kill, flip, verify) tries in one apply: below the fence bound
/// (`mmm_proto::FENCE_BOUND_MILLIS`, 750 ms), so a demotion begun when the lease ends is over before
/// the leader's wait is. The fence in mysqld stops writes within its own bound whatever happens here,
/// and the next re-assertion tries again.
pub const DEMOTE_DEADLINE: Duration = Duration::from_millis(700);
const _: () = assert!(DEMOTE_DEADLINE.as_millis() < mmm_proto::FENCE_BOUND_MILLIS as u128);
/// Longest a lease that ran out waits for a running apply before demoting on a connection of its own.
const LAPSE_LOCK_WAIT: Duration = Duration::from_millis(100);
/// Health heartbeat interval while this host holds (or may hold) the writer role: the stamp a lease
/// renewal echoes is at most this old, which is what the lease loses to it; and a leader renews only
/// while it heard such a stamp recently (`mmm_monitor::lease::RENEW_MAX_STAMP_AGE`).
pub const WRITER_HEARTBEAT: Duration = Duration::from_millis(mmm_proto::WRITER_HEARTBEAT_MILLIS);

/// Longest the agent waits to take the hold on writes of a planned hand-over (a long-running statement
/// can delay it); past this it refuses writes instead.
const HOLD_TAKE_TIMEOUT: Duration = Duration::from_millis(300);
/// Longest client writes stay held when no status releases them.
pub const HOLD_LIMIT: Duration = Duration::from_secs(2);

/// Longest a rejoin's reads of the writer's server may take (connect, one statement).
const WRITER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a SetStatus waits for a previous one (or a re-assertion) to finish.
const APPLY_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// `kill_stalled_mysqld`: the last resort of the fence may kill mysqld ([`crate::last_resort`]).
    pub kill_stalled_mysqld: bool,
    /// `catch_up_from_peers`: a failover candidate fetches what its peers have and it lacks
    /// ([`crate::peer_catch_up`]).
    pub catch_up_from_peers: bool,
    /// `<agent> state_dir`: where a rejoin saves the transactions it undoes.
    pub state_dir: std::path::PathBuf,
    /// `lock_privileged_accounts`: accounts that write through `read_only` may log in only where writes
    /// are open ([`crate::privileged`]).
    pub lock_privileged_accounts: bool,
}

/// What the agent knows of the privileged accounts it keeps locked ([`crate::privileged`]).
#[derive(Debug, Default)]
struct PrivilegedLocks {
    /// The accounts, learned once per agent run (empty with the setting off); `None` until learned.
    accounts: Option<Vec<String>>,
}

/// What the agent was told and what it did about it.
#[derive(Debug, Default)]
struct AgentState {
    /// The last accepted status; `None` until the first SetStatus.
    desired: Option<DesiredStatus>,
    /// The writer lease.
    lease: Lease,
    /// The lease was adopted from mysqld's fence at start (no status known yet): the host keeps acting
    /// as the writer until it ends or a status says otherwise.
    adopted: bool,
    /// True when writes were allowed by the agent (writer role applied fully).
    writable: bool,
    /// Errors of the last apply, "" when it was complete.
    last_error: String,
    /// The server's GTID position read after writes were last denied (verified) or held: reported so the
    /// failover's candidate can be made to reach it. "" when not demoted.
    demoted_gtid: String,
    /// The catch-up asked by the last status is done.
    caught_up: bool,
    /// What that catch-up fetched from peers (`db3 up to 0-1-12`; "" when it lacked nothing).
    caught_up_from: String,
    /// The last catch-up to a position the old writer reported missed it: the next one also fetches
    /// from peers (the old writer may have become unreachable since it reported).
    catch_up_missed: bool,
    /// Required server settings the host misses ("" when none), from the last check.
    settings_missing: String,
    /// As the writer, semi-sync was OFF at the last apply (reported so the leader can weigh a failover).
    semi_sync_off: bool,
    /// When the settings were last checked (they change rarely: checked every [`SETTINGS_EVERY`]), and
    /// what was read and found (GetSystemStatus serves it).
    settings_checked: Option<(Instant, crate::db::SettingsCheck)>,
}

/// How often the server's settings are read again (a restart with other settings, a `SET GLOBAL`).
const SETTINGS_EVERY: Duration = Duration::from_secs(30);

/// Why an apply runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyKind {
    /// A SetStatus (with the previous host state, for replication start/stop).
    Command(Option<HostState>),
    /// Periodic re-assertion: writes and VIPs only.
    Reassert,
    /// The writer lease ran out: as re-assertion, and client sessions are killed even if `read_only`
    /// was already on.
    LeaseLapsed,
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
    /// The replication IO thread this agent stopped because its source is not verified.
    isolation: crate::isolation::Isolation,
    /// The stamps this run gave its health messages and replies (what a lease renewal counts from).
    stamps: Mutex<StampBook>,
    /// The fence is installed in mysqld (checked once per agent run, again after a failure).
    fence_installed: std::sync::atomic::AtomicBool,
    /// The privileged accounts kept locked where writes are not open.
    privileged: Mutex<PrivilegedLocks>,
    /// Until when mysqld may accept writes without a verified denial (the last resort's clock).
    exposure: Mutex<crate::last_resort::Exposure>,
    /// The local mysqld's process as its pid file names it, learned with the fence (the last resort
    /// kills it; unknown until mysqld answered once).
    mysqld_process: Mutex<Option<crate::last_resort::MysqldProcess>>,
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
    /// The automatic rejoin of this host when it is a diverged old master ([`crate::rejoin`]).
    rejoiner: crate::rejoin::Rejoiner,
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
        isolation: crate::isolation::Isolation,
        health: watch::Receiver<HealthSnapshot>,
    ) -> Self {
        Agent {
            rejoiner: crate::rejoin::Rejoiner::new(&local.state_dir, db.clone()),
            topo,
            local,
            db,
            vips,
            epochs: Mutex::new(epochs),
            isolation,
            stamps: Mutex::new(StampBook::new(rand::random())),
            fence_installed: std::sync::atomic::AtomicBool::new(false),
            privileged: Mutex::new(PrivilegedLocks::default()),
            exposure: Mutex::new(crate::last_resort::Exposure::default()),
            mysqld_process: Mutex::new(None),
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

    fn exposure(&self) -> std::sync::MutexGuard<'_, crate::last_resort::Exposure> {
        self.exposure.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Makes a new stamp (for a health message or a reply) and remembers when.
    pub fn issue_stamp(&self) -> Stamp {
        self.stamps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issue(Instant::now())
    }

    /// How often health heartbeats go out: often while this host holds or is granted the writer role,
    /// so the stamp a renewal echoes is fresh.
    pub fn heartbeat_interval(&self) -> Duration {
        let st = self.state();
        let writer = st.lease.is_valid(Instant::now())
            || st
                .desired
                .as_ref()
                .is_some_and(|d| d.has_writer(&self.topo));
        if writer {
            WRITER_HEARTBEAT
        } else {
            crate::service::HEARTBEAT_INTERVAL
        }
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

    /// The state and roles of the last accepted status (UNKNOWN and none before the first one).
    pub fn assigned(&self) -> (HostState, BTreeSet<(String, Ipv4Addr)>) {
        let st = self.state();
        st.desired
            .as_ref()
            .map_or((HostState::Unknown, BTreeSet::new()), |d| {
                (d.state, d.roles.clone())
            })
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
        let rejoined = match self.rejoiner.progress() {
            crate::rejoin::Progress::Done(errant, file) => (errant, file),
            _ => Default::default(),
        };
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
            stamp: Some(self.issue_stamp().into()),
            fence_remaining_millis: 0,
            gtid_binlog_pos: st.demoted_gtid.clone(),
            caught_up: st.caught_up,
            caught_up_from: st.caught_up_from.clone(),
            rejoined_errant: rejoined.0,
            rejoin_saved_to: rejoined.1,
            refuses_given_up_vips: self.vips.firewall().ready(),
            writer_settings_missing: st.settings_missing.clone(),
            semi_sync_off: st.semi_sync_off,
        }
    }

    /// The writer lease the settings are checked against: the last one granted, else the default.
    pub fn settings_lease(&self) -> Duration {
        self.state()
            .desired
            .as_ref()
            .and_then(|d| d.lease)
            .unwrap_or(mmm_config::defaults::WRITER_LEASE)
    }

    /// Reads the server's settings when due and logs what changed: every problem once, required ones
    /// as errors (the monitors keep the host out of the writer role while one is left).
    async fn check_settings(&self, db: &mut crate::db::Db) {
        let due = self
            .state()
            .settings_checked
            .as_ref()
            .is_none_or(|(t, _)| t.elapsed() >= SETTINGS_EVERY);
        if !due || !self.topo.may_write() {
            return;
        }
        let lease = self.settings_lease();
        let crate::db::SettingsCheck {
            variables,
            problems,
        } = match db.check_settings(lease).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the server's settings");
                return;
            }
        };
        let missing = mmm_proto::settings::required_summary(&problems);
        let mut st = self.state();
        let first = st.settings_checked.is_none();
        if first || missing != st.settings_missing {
            for p in &problems {
                if p.required {
                    tracing::error!(host = %self.local.name, variable = p.variable, problem = %p.message, "server setting required for the writer role is missing: the monitors will not make this host the writer");
                } else {
                    tracing::warn!(host = %self.local.name, variable = p.variable, problem = %p.message, "server setting advised for the writer role");
                }
            }
            if problems.is_empty() && !first {
                tracing::info!(host = %self.local.name, "server settings as required and advised");
            }
        }
        st.settings_missing = missing;
        st.settings_checked = Some((
            Instant::now(),
            crate::db::SettingsCheck {
                variables,
                problems,
            },
        ));
    }

    /// What the last settings check read and found (`None` before the first one, and on a host that
    /// cannot write: its settings are not checked).
    pub fn last_settings_check(&self) -> Option<crate::db::SettingsCheck> {
        self.state()
            .settings_checked
            .as_ref()
            .map(|(_, c)| c.clone())
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
                self.exposure().denied();
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
        // Once the lock is gone mysqld may accept writes again until they are verified denied.
        self.exposure().armed(Instant::now());
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

    /// Handles a validated SetStatus: fences on the epoch, records the status and the lease, and applies it.
    pub async fn set_status(&self, desired: DesiredStatus) -> Result<AgentStatus, Status> {
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
        let granted_from = match (desired.lease, desired.stamp) {
            (Some(_), Some(stamp)) => self
                .stamps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .made_at(stamp, Instant::now()),
            _ => None,
        };
        let prev_state = {
            let mut st = self.state();
            let prev = st.desired.replace(desired.clone());
            st.adopted = false;
            match (desired.lease, granted_from) {
                (Some(len), Some(from)) => {
                    st.lease.extend_to(from + len);
                    let left = st.lease.remaining(Instant::now());
                    if left < len / 2 {
                        tracing::warn!(epoch = %desired.epoch, monitor = %desired.monitor, lease_ms = len.as_millis() as u64, left_ms = left.as_millis() as u64, "writer lease renewal arrived late: counted from the stamp it names");
                    }
                }
                (Some(_), None) => {
                    tracing::warn!(epoch = %desired.epoch, monitor = %desired.monitor, stamp = ?desired.stamp, "writer lease renewal names no stamp of this agent run (restarted agent, or too old): no lease granted by it");
                }
                (None, _) => st.lease.clear(),
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

    /// At start, before any status: adopts what is left of a lease kept in mysqld's fence (a restarted
    /// agent of a writer leaves it writing, within the lease the cluster granted), and otherwise makes
    /// the host deny writes at once. Returns when done or when mysqld cannot be reached (then the next
    /// re-assertion does it).
    pub async fn start_fenced(&self) {
        let _guard = self.apply_lock.lock().await;
        let mut db = match self.db.connect().await {
            Ok(db) => db,
            Err(e) => {
                tracing::info!(error = %e, "mysqld not reachable at start: nothing to adopt; writes are denied once it answers");
                return;
            }
        };
        self.ensure_fence(&mut db).await;
        let left = match db.fence_remaining().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the lease kept in mysqld");
                Duration::ZERO
            }
        };
        let writable = matches!(db.read_only().await, Ok(false));
        db.close().await;
        if writable && !left.is_zero() {
            let mut st = self.state();
            if st.desired.is_none() {
                st.lease.extend_to(Instant::now() + left);
                st.adopted = true;
                self.exposure().armed(Instant::now() + left);
                tracing::warn!(host = %self.local.name, left_ms = left.as_millis() as u64, "writable at start with a lease kept in mysqld: adopted until a monitor renews it or it ends");
                return;
            }
        }
        self.apply(ApplyKind::Reassert).await;
    }

    /// Re-asserts the status (periodic); skipped when an apply is already running.
    pub async fn reassert(&self) {
        let Ok(_guard) = self.apply_lock.try_lock() else {
            return;
        };
        self.apply(ApplyKind::Reassert).await;
    }

    /// Demotes the host if its writer lease just ran out: the writer VIP stops taking connections at once
    /// (no SQL, no lock; removed once sessions are killed),
    /// then writes are denied; when an apply is running and does not finish quickly, on a connection of
    /// its own (the fence in mysqld denies them in any case).
    pub async fn check_lease(&self) {
        let expired = {
            let mut st = self.state();
            let writer = st.adopted
                || st
                    .desired
                    .as_ref()
                    .is_some_and(|d| d.has_writer(&self.topo));
            writer && st.lease.check_expiry(Instant::now())
        };
        if !expired {
            return;
        }
        self.set_writable(false);
        {
            let st = self.state();
            tracing::warn!(
                host = %self.local.name,
                epoch = %self.accepted_epoch().map(|e| e.to_string()).unwrap_or_default(),
                monitor = %st.desired.as_ref().map(|d| d.monitor.clone()).unwrap_or_default(),
                "writer lease expired without renewal: demoting (drop the writer VIP, kill sessions, deny writes)"
            );
        }
        let mut errors = Vec::new();
        self.stop_writer_vips(&mut errors).await;
        match tokio::time::timeout(LAPSE_LOCK_WAIT, self.apply_lock.lock()).await {
            Ok(_guard) => self.apply(ApplyKind::LeaseLapsed).await,
            Err(_) => {
                tracing::warn!("an apply is running: denying writes on a connection of its own");
                match self.db.connect().await {
                    Ok(mut db) => {
                        if let Err(e) = self.deny(&mut db, true).await {
                            errors.push(e);
                        }
                        db.close().await;
                    }
                    Err(e) => errors.push(format!("mysqld: {e}")),
                }
                self.drop_writer_vips(&mut errors).await;
            }
        }
        if !errors.is_empty() {
            tracing::error!(errors = %errors.join("; "), "demotion after the lease ran out incomplete (the fence in mysqld denies writes within its bound)");
        }
        self.state().lease.mark_demoted(Instant::now());
    }

    /// The first step of giving up the writer VIPs, before any session is killed: new connections to
    /// them are refused at once ([`crate::firewall`]) while the addresses stay until the sessions are
    /// killed and writes denied (the apply removes them next), so each killed session's error reaches
    /// its client: a packet from an address the host no longer has is never sent, and the client would
    /// wait out its own timeout instead. Without the firewall the addresses go at once, the only way to
    /// stop new connections without SQL.
    async fn stop_writer_vips(&self, errors: &mut Vec<String>) {
        if !self.vips.firewall().ready() {
            return self.drop_writer_vips(errors).await;
        }
        match self.vips.present().await {
            Ok(present) => {
                for ip in present.intersection(&self.topo.writer_ips()) {
                    if !self.vips.firewall().refuse(*ip).await {
                        if let Err(e) = self.vips.remove(*ip).await {
                            errors.push(format!("{e:#}"));
                        }
                    }
                }
            }
            Err(e) => errors.push(format!("listing VIPs: {e:#}")),
        }
    }

    /// Removes every writer VIP from the interface.
    async fn drop_writer_vips(&self, errors: &mut Vec<String>) {
        let present = match self.vips.present().await {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("listing VIPs: {e:#}"));
                return;
            }
        };
        for ip in present.intersection(&self.topo.writer_ips()) {
            match self.vips.remove(*ip).await {
                Ok(()) => {
                    tracing::info!(vip = %ip, iface = self.vips.iface(), "writer VIP removed")
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
    }

    /// Installs the fence in mysqld once per agent run (again after a failure).
    async fn ensure_fence(&self, db: &mut crate::db::Db) -> bool {
        use std::sync::atomic::Ordering;
        if self.fence_installed.load(Ordering::Relaxed) {
            return true;
        }
        let r = async {
            crate::fence::check_scheduler(db).await?;
            let fresh = db.install_fence(&self.local.agent_user).await?;
            self.learn_mysqld_process(db).await?;
            anyhow::Ok(fresh)
        }
        .await;
        match r {
            Ok(fresh) => {
                if fresh {
                    tracing::info!(schema = crate::fence::SCHEMA, bound = ?crate::fence::FENCE_BOUND, "writer fence installed in mysqld");
                }
                self.fence_installed.store(true, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot install the writer fence in mysqld: this host will not be allowed to write");
                false
            }
        }
    }

    /// Learns the privileged accounts once per run and tells the fence in mysqld which to lock. With
    /// the setting off, unlocks what an earlier run with it on recorded.
    async fn learn_privileged(&self, db: &mut crate::db::Db) {
        if self
            .privileged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .accounts
            .is_some()
        {
            return;
        }
        let learned = async {
            if self.local.lock_privileged_accounts {
                let users: Vec<&str> = self.local.mmm_users.iter().map(String::as_str).collect();
                let mut accounts: Vec<String> = db
                    .privileged_app_accounts(&users)
                    .await?
                    .into_iter()
                    .map(|(g, _)| g)
                    .filter(|g| crate::privileged::lockable(g))
                    .collect();
                accounts.dedup();
                db.record_privileged(&accounts).await?;
                tracing::info!(accounts = ?accounts, "privileged accounts: locked wherever this host's writes are not open (lock_privileged_accounts)");
                anyhow::Ok(accounts)
            } else {
                let recorded = db.recorded_privileged().await?;
                if !recorded.is_empty() {
                    db.set_accounts_locked(&recorded, false).await?;
                    db.record_privileged(&[]).await?;
                    tracing::warn!(accounts = ?recorded, "lock_privileged_accounts is off: accounts an earlier run kept locked are unlocked");
                }
                anyhow::Ok(Vec::new())
            }
        }
        .await;
        match learned {
            Ok(accounts) => {
                self.privileged
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .accounts = Some(accounts);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot learn the privileged accounts (tried again at the next apply)");
            }
        }
    }

    /// Makes the privileged accounts locked (`locked`) or unlocked on this server, as the server says
    /// they are now (a fence that fired, an operator, or an earlier run may have changed them). After
    /// locking, their sessions are killed (a session outlives the lock).
    async fn lock_privileged(
        &self,
        db: &mut crate::db::Db,
        locked: bool,
        errors: &mut Vec<String>,
    ) {
        if !self.local.lock_privileged_accounts {
            return;
        }
        let accounts = self
            .privileged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .accounts
            .clone();
        let Some(accounts) = accounts else {
            errors.push(
                "the privileged accounts are not known yet (lock_privileged_accounts): not locked"
                    .into(),
            );
            return;
        };
        if accounts.is_empty() {
            return;
        }
        let r = async {
            let change = db.accounts_to_change(&accounts, locked).await?;
            if change.is_empty() {
                return anyhow::Ok(0);
            }
            db.set_accounts_locked(&change, locked).await?;
            if locked {
                tracing::warn!(host = %self.local.name, accounts = ?change, "privileged accounts locked (writes are not open here)");
                db.kill_sessions_of(&change).await
            } else {
                tracing::info!(host = %self.local.name, accounts = ?change, "privileged accounts unlocked (this host's writes are open)");
                Ok(0)
            }
        }
        .await;
        match r {
            Ok(0) => {}
            Ok(killed) => {
                tracing::warn!(host = %self.local.name, killed, "sessions of the locked privileged accounts killed");
            }
            Err(e) => errors.push(format!(
                "{} the privileged accounts: {e:#}",
                if locked { "locking" } else { "unlocking" }
            )),
        }
    }

    /// Learns which process the last resort would kill. With `kill_stalled_mysqld` on, a mysqld whose
    /// process cannot be found is not allowed to write (a stalled writer could not be stopped).
    async fn learn_mysqld_process(&self, db: &mut crate::db::Db) -> anyhow::Result<()> {
        let learned = async {
            let p = crate::last_resort::learn(db).await?;
            match p.current_pid()? {
                Some(pid) => Ok((p, pid)),
                None => anyhow::bail!(
                    "{} names no running mariadbd/mysqld process",
                    p.pid_file.display()
                ),
            }
        }
        .await;
        match learned {
            Ok((p, pid)) => {
                tracing::info!(pid_file = %p.pid_file.display(), pid, kill_stalled_mysqld = self.local.kill_stalled_mysqld, "mysqld process found (the fence's last resort)");
                *self
                    .mysqld_process
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(p);
                Ok(())
            }
            Err(e) if self.local.kill_stalled_mysqld => Err(e.context(
                "finding mysqld's process for the fence's last resort (kill_stalled_mysqld 0 in <agent> turns it off)",
            )),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "mysqld's process not found (kill_stalled_mysqld is off)");
                Ok(())
            }
        }
    }

    /// The fence's last resort (run by a watchdog task, without the apply lock): from the end of the
    /// lease mysqld was exposed under until writes are verified denied, looks at mysqld on a connection
    /// of its own and kills it when [`crate::last_resort::verdict`] says so. See [`crate::last_resort`].
    pub async fn last_resort(&self) {
        use crate::last_resort::{Look, Verdict};
        let Some(since_end) = self.exposure().look_due(Instant::now()) else {
            return;
        };
        // Only silence is a stall: any error the server sends back (or a connection it closes) shows
        // it running.
        let look = match tokio::time::timeout(crate::last_resort::PROBE_TIMEOUT, async {
            match self.db.connect().await {
                Ok(mut db) => {
                    let ro = db.read_only().await;
                    db.close().await;
                    match ro {
                        Ok(true) => Look::ReadOnly,
                        Ok(false) => Look::Writable,
                        Err(_) => Look::Answered,
                    }
                }
                Err(e) if e.is_definite() => Look::Down,
                Err(crate::db::ConnectError::Timeout(..)) => Look::NoAnswer,
                Err(_) => Look::Answered,
            }
        })
        .await
        {
            Ok(look) => look,
            Err(_) => Look::NoAnswer,
        };
        let host = &self.local.name;
        match crate::last_resort::verdict(since_end, look) {
            Verdict::Wait => {}
            Verdict::Closed => {
                self.exposure().denied();
                tracing::info!(host = %host, look = ?look, after_lease = ?since_end, "writes verified denied by the last resort's look");
            }
            Verdict::LeftToTheEvent => {
                self.exposure().denied();
                tracing::warn!(host = %host, after_lease = ?since_end, "mysqld runs but the agent cannot read it: its writes are left to the fence event in mysqld");
            }
            Verdict::Kill if !self.local.kill_stalled_mysqld => {
                self.exposure().killing(Instant::now());
                tracing::error!(host = %host, look = ?look, after_lease = ?since_end, "mysqld may still accept writes after the writer lease ended (stalled, or the fence did not close it); kill_stalled_mysqld is off, so it is not killed");
            }
            Verdict::Kill => {
                self.exposure().killing(Instant::now());
                self.kill_mysqld(look, since_end).await;
            }
        }
    }

    /// Kills the local mysqld for the last resort, and logs and counts it.
    async fn kill_mysqld(&self, look: crate::last_resort::Look, since_end: Duration) {
        let host = &self.local.name;
        let process = self
            .mysqld_process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(process) = process else {
            tracing::error!(host = %host, look = ?look, after_lease = ?since_end, "mysqld may still accept writes after the writer lease ended and its process is unknown: cannot kill it");
            return;
        };
        match process.kill().await {
            Ok(crate::last_resort::KillOutcome::Killed { pid, took }) => {
                self.metrics.stalled_mysqld_kills.inc();
                self.exposure().denied();
                tracing::error!(host = %host, pid, look = ?look, after_lease = ?since_end, took = ?took, pid_file = %process.pid_file.display(), "mysqld killed (kill -9): after the writer lease ended it did not answer (stalled) or stayed writable, and it may accept writes after the new writer opened");
            }
            Ok(crate::last_resort::KillOutcome::NotRunning) => {
                self.exposure().denied();
                tracing::warn!(host = %host, after_lease = ?since_end, "no mysqld process runs: nothing accepts writes");
            }
            Err(e) => {
                tracing::error!(host = %host, error = %format!("{e:#}"), after_lease = ?since_end, "cannot kill the mysqld that may still accept writes after the writer lease ended");
            }
        }
    }

    /// Denies writes (bounded), killing sessions also when `read_only` was already on if `kill_anyway`.
    /// `Ok` means `read_only=1` was read back; the error says why not.
    async fn deny(&self, db: &mut crate::db::Db, kill_anyway: bool) -> Result<(), String> {
        let started = Instant::now();
        match db
            .deny_writes(
                &self.local.agent_user,
                self.local.max_kill_retries,
                DEMOTE_DEADLINE,
                kill_anyway,
            )
            .await
        {
            Ok(d) => {
                self.exposure().denied();
                if d.flipped {
                    tracing::warn!(host = %self.local.name, killed = d.killed, took = ?started.elapsed(), "writes denied (read_only=1)");
                } else if d.killed > 0 {
                    tracing::warn!(host = %self.local.name, killed = d.killed, "client sessions killed (read_only already on)");
                }
                if d.flipped || kill_anyway {
                    if let Err(e) = db.disarm_fence().await {
                        tracing::warn!(error = %format!("{e:#}"), "cannot clear the lease kept in mysqld");
                    }
                }
                Ok(())
            }
            Err(e) => Err(format!("denying writes: {e:#}")),
        }
    }

    /// Makes the host match the recorded status. The caller holds `apply_lock`.
    async fn apply(&self, kind: ApplyKind) {
        // Where the time of an apply goes, by step number below (logged at debug level at the end).
        let t0 = Instant::now();
        let mut marks: Vec<(&str, u128)> = Vec::new();
        let (desired, writer, lease_end) = {
            let st = self.state();
            let now = Instant::now();
            let writer = st.lease.is_valid(now)
                && st
                    .desired
                    .as_ref()
                    .map_or(st.adopted, |d| d.has_writer(&self.topo));
            (st.desired.clone(), writer, st.lease.expires_at())
        };
        let mut errors: Vec<String> = Vec::new();
        let writer_ips = self.topo.writer_ips();
        let hold_wanted = !writer && desired.as_ref().is_some_and(|d| d.hold_writes);
        let held_since = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, since)| *since);
        let release_hold =
            held_since.is_some_and(|since| !hold_wanted || since.elapsed() >= HOLD_LIMIT);

        marks.push(("1", t0.elapsed().as_micros()));
        // 1. A host that must not write stops taking connections on the writer VIP first: it needs no
        //    SQL, so a hung or unreachable mysqld cannot delay it (refused at once; the address goes
        //    in step 4, once the sessions are killed). Held writes keep it until the hold ends (below).
        if !writer && !hold_wanted && (held_since.is_none() || release_hold) {
            self.set_writable(false);
            self.stop_writer_vips(&mut errors).await;
        }

        let mut db = match self.db.connect().await {
            Ok(db) => Some(db),
            Err(e) => {
                // Writes are certainly denied only when mysqld is certainly down; any other failure
                // (timeout, authentication, too many connections) leaves the demotion unverified, and
                // the leader waits for the lease and the fence in mysqld instead.
                if e.is_definite() {
                    self.exposure().denied();
                }
                if writer || !e.is_definite() {
                    errors.push(format!("mysqld: {e}"));
                } else {
                    tracing::debug!(error = %e, "mysqld down while not the writer: no writes to deny");
                }
                None
            }
        };
        if let Some(db) = db.as_mut() {
            if self.ensure_fence(db).await {
                self.learn_privileged(db).await;
            }
            self.check_settings(db).await;
        }

        marks.push(("2", t0.elapsed().as_micros()));
        // 2. Writes held for a planned hand-over stay held while the status asks for it (and not
        //    beyond HOLD_LIMIT); the writer VIP is gone by now, then the waiting sessions are killed
        //    and the hold released.
        if release_hold {
            self.release_held_writes(db.as_mut(), &mut errors).await;
        }

        marks.push(("3", t0.elapsed().as_micros()));
        // 3. Not the writer (or lease gone): deny writes — or, in a planned hand-over, hold them so
        //    clients wait rather than fail.
        let mut demoted_gtid = String::new();
        if !writer {
            self.set_writable(false);
            if let Some(db) = db.as_mut() {
                // Before any session is killed, so a privileged one cannot come back.
                self.lock_privileged(db, true, &mut errors).await;
                let holding = self.writes_held()
                    || (hold_wanted
                        && matches!(db.read_only().await, Ok(false))
                        && self.hold_writes(db).await);
                let denied = holding
                    || match self.deny(db, kind == ApplyKind::LeaseLapsed).await {
                        Ok(()) => true,
                        Err(e) => {
                            errors.push(e);
                            false
                        }
                    };
                // Writes are denied or held: this is the last position a failover must reach.
                if denied {
                    match db.gtid_positions().await {
                        Ok(p) => demoted_gtid = p.binlog,
                        Err(e) => errors.push(format!("reading the GTID position: {e:#}")),
                    }
                }
            }
        }
        self.state().demoted_gtid = demoted_gtid;

        marks.push(("4", t0.elapsed().as_micros()));
        // 4. Drop every other configured role IP that is not wanted now.
        let present = match self.vips.present().await {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("listing VIPs: {e:#}"));
                BTreeSet::new()
            }
        };
        let mut want: BTreeSet<Ipv4Addr> = match &desired {
            Some(d) => d.ips(),
            // No status yet: keep what is there (the writer VIP only under an adopted lease).
            None => present
                .iter()
                .filter(|ip| writer || !writer_ips.contains(ip))
                .copied()
                .collect(),
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

        marks.push(("5", t0.elapsed().as_micros()));
        // 5. Replication (commands only; not while writes are held: a replication change would wait
        //    for the held lock).
        // A running rejoin owns replication until it is done ([`crate::rejoin`]).
        let held = self.writes_held() || self.rejoiner.running();
        // The replica status step 5 read and left as it was (5a needs it too).
        let mut replica = None;
        if let (ApplyKind::Command(prev_state), Some(d), Some(db), false) =
            (kind, &desired, db.as_mut(), held)
        {
            match self.apply_replication(db, d, prev_state).await {
                Ok(read) => replica = read,
                Err(e) => errors.push(format!("replication: {e:#}")),
            }
        }

        marks.push(("5a", t0.elapsed().as_micros()));
        // 5a. Nothing is fetched from an unverified source (on a candidate: before it applies what it
        //     received, and before writes open below); a candidate with a target position keeps
        //     fetching until it reached it.
        if let (Some(d), Some(db), false) = (&desired, db.as_mut(), held) {
            let keep_io = !writer && d.catch_up.as_deref().is_some_and(|t| !t.is_empty());
            if let Err(e) = self
                .isolation
                .enforce(db, &self.topo, d, keep_io, replica, self.vips.firewall())
                .await
            {
                errors.push(format!("replication isolation: {e:#}"));
            }
        }

        marks.push(("5b", t0.elapsed().as_micros()));
        // 5b. The failover's candidate applies what it received, what its peers have
        //     ([`crate::peer_catch_up`]) and the old writer's last position.
        let mut caught_up = false;
        let mut caught_up_from = String::new();
        // Whether a catch-up to a reported position was asked (missed unless it succeeds).
        let mut missed = false;
        if let (false, Some(target), Some(db)) = (
            writer,
            desired.as_ref().and_then(|d| d.catch_up.clone()),
            db.as_mut(),
        ) {
            let timeout = desired
                .as_ref()
                .map_or(crate::validate::DEFAULT_CATCHUP_TIMEOUT, |d| {
                    d.catchup_timeout
                });
            // What was received before fetching stopped counts too (MariaDB may forget it).
            let floor = self.isolation.received_floor();
            let started = Instant::now();
            if let Some(d) = desired.as_ref() {
                self.kill_isolated_dump_threads(db, d).await;
            }
            // Peers are asked when the old writer could not say its position, or its position was
            // missed once; a reported position comes from the candidate's own source within ms.
            let known = !target.trim().is_empty();
            let ask_peers = !known || self.state().catch_up_missed;
            let from_peers = match (
                self.local.catch_up_from_peers && ask_peers,
                desired.as_ref(),
            ) {
                (true, Some(d)) => self.catch_up_from_peers(db, d, timeout).await,
                _ => Ok(Default::default()),
            };
            missed = known;
            let left = timeout.saturating_sub(started.elapsed());
            match from_peers {
                Ok(fetched) => match db.catch_up(&[&target, &floor], left).await {
                    Ok(()) => {
                        caught_up = true;
                        caught_up_from = fetched.summary();
                    }
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "not caught up yet"),
                },
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "not caught up yet (fetching from a peer)")
                }
            }
        }
        {
            let mut st = self.state();
            st.caught_up = caught_up;
            st.caught_up_from = caught_up_from;
            st.catch_up_missed = missed && !caught_up;
        }

        marks.push(("5c", t0.elapsed().as_micros()));
        // 5c. A diverged old master asked to rejoin saves and undoes its errant transactions (a task of
        //     its own: an apply the leader gives up on must not stop an undo half-way).
        if let (false, Some(d)) = (writer, desired.as_ref()) {
            if let Some(errant) = d.rejoin.clone() {
                match self.writer_db_target(d) {
                    Some(w) => self.rejoiner.ensure(crate::rejoin::Target {
                        errant,
                        writer: w,
                        user: self.local.replication_user.clone(),
                        password: self.local.replication_password.clone(),
                        lease: self.settings_lease(),
                    }),
                    None => errors.push("rejoin asked without an active master to follow".into()),
                }
            }
        }

        // A writer status whose lease could not be granted (a stamp of another agent run, or too old)
        // leaves writes denied; saying so makes the leader send a fresh one.
        if !writer
            && desired.as_ref().is_some_and(|d| d.has_writer(&self.topo))
            && !self.state().lease.is_valid(Instant::now())
            && kind != ApplyKind::LeaseLapsed
        {
            errors.push("the writer role came without a valid lease: writes stay denied".into());
        }

        marks.push(("6", t0.elapsed().as_micros()));
        // 6. The writer: keep the lease in mysqld's fence, wait for catch-up, then allow writes.
        let mut writable = false;
        if writer {
            if let (Some(db), Some(end)) = (db.as_mut(), lease_end) {
                writable = self
                    .open_writes(db, desired.as_ref(), end, &mut errors)
                    .await;
                if writable {
                    self.lock_privileged(db, false, &mut errors).await;
                }
            }
            // Whether what it acknowledges now waits for a semi-sync replica (the leader weighs a
            // failover away from a writer that ran asynchronously).
            let semi_sync_off = match (writable, db.as_mut()) {
                (true, Some(db)) => db.semi_sync_off().await.unwrap_or(false),
                _ => false,
            };
            self.state().semi_sync_off = semi_sync_off;
            // A lease that ran out while we waited must not end in a writable host.
            let still = self.state().lease.is_valid(Instant::now());
            if writable && !still {
                writable = false;
                errors.push("writer lease ran out while promoting".into());
            }
            self.set_writable(writable && desired.is_some());
        }

        marks.push(("7", t0.elapsed().as_micros()));
        // 7. Add the wanted VIPs (writer IPs only once writes are allowed) and announce them.
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
        // A wanted VIP still present but refused (its demotion began and a renewal came back before
        // the address went) is taken out of the refusal, or its clients would be reset.
        for ip in want.intersection(&now_present) {
            if let Err(e) = self.vips.firewall().stop_refusing(*ip).await {
                errors.push(format!("{e:#}"));
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

        marks.push(("end", t0.elapsed().as_micros()));
        tracing::debug!(steps_us = ?marks, "apply timing");
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

    /// The writer's side of an apply: the lease's end goes into mysqld's fence first (every renewal
    /// moves it), then, when the server is still read-only, the candidate applies what it received and
    /// allows writes. Returns whether writes are allowed.
    async fn open_writes(
        &self,
        db: &mut crate::db::Db,
        desired: Option<&DesiredStatus>,
        lease_end: Instant,
        errors: &mut Vec<String>,
    ) -> bool {
        if !self.ensure_fence(db).await {
            errors.push("the writer fence is not installed in mysqld: writes stay denied".into());
            return false;
        }
        // Exposed from here on (a statement that timed out may still have run).
        self.exposure().armed(lease_end);
        if let Err(e) = db.arm_fence(lease_end).await {
            self.fence_installed
                .store(false, std::sync::atomic::Ordering::Relaxed);
            errors.push(format!("{e:#}"));
            return false;
        }
        match db.read_only().await {
            Ok(false) => true,
            Ok(true) => {
                // Only a status opens writes; an adopted lease keeps what is open.
                let Some(d) = desired else {
                    return false;
                };
                let started = Instant::now();
                // Leftover dump threads to isolated hosts would make the first commits wait the
                // full semi-sync timeout (they count as semi-sync clients).
                self.kill_isolated_dump_threads(db, d).await;
                match db.wait_received_applied(d.catchup_timeout).await {
                    Ok(()) => match db.allow_writes_fenced().await {
                        Ok(()) => {
                            tracing::info!(host = %self.local.name, epoch = %d.epoch, catchup = ?started.elapsed(), "writes allowed (read_only=0)");
                            true
                        }
                        Err(e) => {
                            errors.push(format!("allowing writes: {e:#}"));
                            false
                        }
                    },
                    Err(e) => {
                        errors.push(format!("catch-up before promotion: {e:#}"));
                        false
                    }
                }
            }
            Err(e) => {
                errors.push(format!("reading read_only: {e:#}"));
                false
            }
        }
    }

    /// Kills the binlog dump threads serving hosts the status isolates. A dump thread to a dead or
    /// cut-off old master still counts as a semi-synchronous client, so every commit here waits for its
    /// acknowledgement up to `rpl_semi_sync_master_timeout`: the new writer's first commits, and on the
    /// candidate the replicated transactions its SQL thread applies while it catches up (a host that
    /// is a semi-sync master writes them to its binary log and waits like any commit).
    async fn kill_isolated_dump_threads(&self, db: &mut crate::db::Db, d: &DesiredStatus) {
        let isolated: Vec<IpAddr> = d
            .isolate_from
            .iter()
            .filter_map(|h| self.topo.hosts.get(h).copied())
            .collect();
        if let Err(e) = db.kill_dump_threads_to(&isolated).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot kill the dump threads of isolated replicas");
        }
    }

    /// The active master's server, reached with the replication account; `None` when there is none
    /// (or it is this host).
    fn writer_db_target(&self, d: &DesiredStatus) -> Option<DbTarget> {
        let m = d
            .active_master
            .as_deref()
            .filter(|m| *m != self.local.name)?;
        let ip = self.topo.hosts.get(m).copied()?;
        Some(self.replication_target(m, ip, WRITER_READ_TIMEOUT))
    }

    /// Another host's server, reached with the replication account (the one account MMM configures on
    /// every host), every connect and statement bounded by `timeout`.
    fn replication_target(&self, host: &str, ip: IpAddr, timeout: Duration) -> DbTarget {
        DbTarget {
            ip,
            port: self.local.mysql_ports.get(host).copied().unwrap_or(3306),
            user: self.local.replication_user.clone(),
            password: self.local.replication_password.clone(),
            connect_timeout: timeout,
            stmt_timeout: timeout,
        }
    }

    /// The candidate's catch-up from its peers: every other configured host the status does not
    /// isolate, but its own replication source (what that has, the candidate receives anyway),
    /// reached with the replication account.
    async fn catch_up_from_peers(
        &self,
        db: &mut crate::db::Db,
        d: &DesiredStatus,
        timeout: Duration,
    ) -> anyhow::Result<crate::peer_catch_up::Fetched> {
        let source = db
            .replica_status()
            .await?
            .map(|r| r.source_host)
            .unwrap_or_default();
        let peers: Vec<crate::peer_catch_up::Peer> = self
            .topo
            .hosts
            .iter()
            .filter(|(name, ip)| {
                **name != self.local.name
                    && !d.isolate_from.contains(*name)
                    && !source_matches(&source, name, **ip)
            })
            .map(|(name, ip)| crate::peer_catch_up::Peer {
                name: name.clone(),
                target: self.replication_target(name, *ip, crate::peer_catch_up::PEER_READ_TIMEOUT),
            })
            .collect();
        let topo = &self.topo;
        let source = |host: &str| {
            host.parse::<IpAddr>()
                .ok()
                .or_else(|| topo.hosts.get(host).copied())
        };
        crate::peer_catch_up::catch_up_from_peers(
            db,
            &peers,
            &self.local.replication_user,
            &self.local.replication_password,
            source,
            timeout,
        )
        .await
    }

    /// Starts, stops or re-points replication as `d` asks. Returns the replica status when it read it
    /// and changed nothing since.
    async fn apply_replication(
        &self,
        db: &mut crate::db::Db,
        d: &DesiredStatus,
        prev_state: Option<HostState>,
    ) -> anyhow::Result<Option<Option<crate::db::ReplicaInfo>>> {
        let offline = d.state == HostState::AdminOffline;
        let was_offline = prev_state == Some(HostState::AdminOffline);
        if offline {
            if !was_offline {
                db.stop_replica().await?;
                tracing::info!("replication stopped (ADMIN_OFFLINE)");
            }
            return Ok(None);
        }
        if was_offline {
            db.start_replica().await?;
            tracing::info!("replication started (left ADMIN_OFFLINE)");
        }
        let Some(master) = d.active_master.as_deref() else {
            return Ok(None);
        };
        if master == self.local.name {
            return Ok(None);
        }
        let Some(master_ip) = self.topo.hosts.get(master).copied() else {
            return Ok(None);
        };
        let port = self.local.mysql_ports.get(master).copied().unwrap_or(3306);
        let rep = db.replica_status().await?;
        let current = rep.as_ref().map(|r| r.source_host.as_str()).unwrap_or("");
        if source_matches(current, master, master_ip) {
            return Ok(Some(rep));
        }
        tracing::info!(from = current, to = master, ip = %master_ip, "re-pointing replication to the new active master");
        if let Some(r) = &rep {
            if let Err(e) = db.wait_applied(r, d.catchup_timeout).await {
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
        Ok(None)
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
    fn source_matching() {
        let ip: IpAddr = "10.0.0.12".parse().unwrap();
        assert!(source_matches("10.0.0.12", "db2", ip));
        assert!(source_matches("db2", "db2", ip));
        assert!(!source_matches("10.0.0.11", "db2", ip));
        assert!(!source_matches("", "db2", ip));
    }
}
