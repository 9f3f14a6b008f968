//! mmm-agent: the mmm-rs agent on one database host. It takes SetStatus from the monitor cluster over gRPC,
//! fences on the decision's epoch (persisted), and makes the host match: read_only, killing client sessions
//! on demotion, VIPs through netlink with gratuitous ARP, replication re-pointing with GTIDs, and a writer
//! lease that demotes the host when it is not renewed. It also watches its own mysqld and streams the
//! verdict to the monitors, and serves Prometheus metrics and the role endpoints (`/writer`, `/reader`,
//! `/health`) proxies route by.
//!
//! [`run`] is the whole daemon; `main` only parses arguments, loads the config and binds the listeners.

pub mod agent;
pub mod cli;
pub mod db;
pub mod endpoints;
pub mod epoch;
pub mod fence;
pub mod firewall;
pub mod garp;
pub mod health;
pub mod hook;
pub mod http;
pub mod isolation;
pub mod last_resort;
pub mod lease;
pub mod metrics;
pub mod peer_catch_up;
pub mod privileged;
pub mod rejoin;
pub mod service;
pub mod sql;
pub mod topology;
pub mod validate;
pub mod vip;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use mmm_config::Config;
use tokio::net::TcpListener;

use crate::agent::{Agent, LocalHost};
use crate::db::DbTarget;
use crate::epoch::EpochStore;
use crate::service::AgentService;
use crate::topology::Topology;
use crate::vip::VipManager;

/// Interval of the agent's housekeeping tick (lease expiry checks, metrics).
const TICK: Duration = Duration::from_millis(100);
/// Re-assertion of writes and VIPs, in ticks (~1 s).
const REASSERT_TICKS: u64 = 10;
/// Gratuitous ARP refresh for held VIPs, in ticks (~10 s).
const GARP_REFRESH_TICKS: u64 = 100;
/// Connect timeout for the agent's own actions.
const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of one ordinary statement.
const DB_STMT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `--forget-cluster` waits for a connection to the agent's own gRPC port, to tell whether
/// the agent still runs: a local listener accepts at once, so this only bounds a misconfigured IP.
const RUNNING_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest writer lease `--keep-writer` keeps: the agents and monitors are started right after it, and
/// a lease nobody renews keeps a host writable without the cluster's say-so only this long.
pub const MAX_KEPT_WRITER_LEASE: Duration = Duration::from_secs(300);

/// The sockets the agent serves on.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC (`<host> ip`:`agent_port`).
    pub grpc: TcpListener,
    /// HTTP metrics (`<host> ip`:`<agent> metrics_port`); `None` to serve no metrics.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses of the local host.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let host = this_host(config)?;
        let grpc_addr = SocketAddr::new(host.ip, host.agent_port);
        let grpc = TcpListener::bind(grpc_addr)
            .await
            .with_context(|| format!("cannot listen on {grpc_addr} (gRPC)"))?;
        let metrics_addr = SocketAddr::new(host.ip, config.agent.metrics_port);
        let metrics = TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr} (metrics)"))?;
        Ok(Listeners {
            grpc,
            metrics: Some(metrics),
        })
    }
}

fn this_host(config: &Config) -> anyhow::Result<&mmm_config::HostConfig> {
    config.this_host().ok_or_else(|| {
        anyhow!(
            "`this` ({}) does not name a <host> section of {}",
            config.this.as_deref().unwrap_or("unset"),
            config.source.display()
        )
    })
}

/// `mmm-agent --forget-cluster`: removes the persisted epoch and monitor cluster id of this host's
/// agent after writing what it removes to `out`, so that the agent adopts the next monitor cluster
/// that talks to it (after the whole monitor cluster was replaced). Refused while something answers
/// on the agent's gRPC port: a running agent keeps both in memory and would write them back.
pub async fn forget_cluster(config: &Config, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let host = this_host(config)?;
    let addr = SocketAddr::new(host.ip, host.agent_port);
    if let Ok(Ok(_)) =
        tokio::time::timeout(RUNNING_PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
    {
        return Err(anyhow!(
            "something answers on the agent's port {addr}: stop mmm-agent first (a running agent keeps \
             the epoch and cluster id in memory and writes them back)"
        ));
    }
    let dir = config.agent_state_dir();
    let mut announced = Ok(());
    let forgotten = EpochStore::forget(&dir, |f| {
        announced = match &f.held {
            Ok(stored) => writeln!(out, "removing {}: {stored}", f.path.display()),
            Err(reason) => writeln!(out, "removing {} ({reason})", f.path.display()),
        };
    })?;
    announced.context("cannot write to stdout")?;
    match forgotten {
        Some(_) => writeln!(
            out,
            "removed: the agent of {} adopts the next monitor cluster that sends it a status",
            host.name
        ),
        None => writeln!(
            out,
            "nothing to remove: {} does not exist (the agent of {} follows no monitor cluster yet)",
            dir.join(epoch::EPOCH_FILE).display(),
            host.name
        ),
    }
    .context("cannot write to stdout")?;
    Ok(())
}

/// `mmm-agent --keep-writer SECONDS`, the migration step from MMM: keeps a writer lease of `lease` in
/// the local mysqld's fence (installing the fence first), so that the agent's first start adopts the
/// running writer instead of denying its writes, until the monitors adopt this host and renew the
/// lease. The fence denies writes by itself when the lease ends unrenewed. Refused while something
/// answers on the agent's port, when mysqld is read-only (there is no writer here to keep), and for a
/// lease of zero or over [`MAX_KEPT_WRITER_LEASE`].
pub async fn keep_writer(
    config: &Config,
    lease: Duration,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    if lease.is_zero() || lease > MAX_KEPT_WRITER_LEASE {
        return Err(anyhow!(
            "the lease must be 1 to {} seconds, not {}",
            MAX_KEPT_WRITER_LEASE.as_secs(),
            lease.as_secs()
        ));
    }
    let host = this_host(config)?;
    let addr = SocketAddr::new(host.ip, host.agent_port);
    if let Ok(Ok(_)) =
        tokio::time::timeout(RUNNING_PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
    {
        return Err(anyhow!(
            "something answers on the agent's port {addr}: this step comes before the agent's first start"
        ));
    }
    let target = db_target(host);
    let mut db = target
        .connect()
        .await
        .with_context(|| format!("connecting to mysqld at {}:{}", host.ip, host.mysql_port))?;
    let result = async {
        if db.read_only().await? {
            return Err(anyhow!(
                "mysqld on {} is read-only: there is no running writer here to keep",
                host.name
            ));
        }
        fence::check_scheduler(&mut db).await?;
        db.install_fence(&host.agent_user).await?;
        db.arm_fence(std::time::Instant::now() + lease).await?;
        db.fence_remaining().await
    }
    .await;
    db.close().await;
    let left = result?;
    writeln!(
        out,
        "writer lease of {}s kept in mysqld on {} ({}ms left): start mmm-agent, then the monitors, \
         within it; if they do not adopt {} in time, mysqld denies writes when it ends",
        lease.as_secs(),
        host.name,
        left.as_millis(),
        host.name
    )
    .context("cannot write to stdout")?;
    Ok(())
}

/// How the agent reaches its own server: `agent_user` on the host's ip and mysql port, with the agent's
/// timeouts.
/// `mmm-agent --check-config`'s look at the server: every setting a writer-role host misses
/// (`mmm_proto::settings`), one per line, required ones first. `Ok(true)` when none is required.
pub async fn check_server_settings(
    config: &Config,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let host = this_host(config)?;
    let topo = Topology::from_config(config);
    if !topo.may_write() {
        writeln!(
            out,
            "# {} cannot hold the writer role: no server settings to check",
            host.name
        )?;
        return Ok(true);
    }
    let mut db = db_target(host)
        .connect()
        .await
        .map_err(|e| anyhow!("cannot check the server's settings: {e}"))?;
    let mut problems = db.setting_problems(config.monitor.writer_lease).await?;
    db.close().await;
    problems.sort_by_key(|p| !p.required);
    for p in &problems {
        writeln!(out, "# server setting {p}")?;
    }
    if problems.is_empty() {
        writeln!(
            out,
            "# server settings: as required and advised for the writer role"
        )?;
    }
    Ok(problems.iter().all(|p| !p.required))
}

fn db_target(host: &mmm_config::HostConfig) -> DbTarget {
    DbTarget {
        ip: host.ip,
        port: host.mysql_port,
        user: host.agent_user.clone(),
        password: host.agent_password.expose().to_string(),
        connect_timeout: DB_CONNECT_TIMEOUT,
        stmt_timeout: DB_STMT_TIMEOUT,
    }
}

/// Builds the agent from the configuration (opens the epoch store and the netlink socket).
pub fn build_agent(
    config: &Config,
    health: tokio::sync::watch::Receiver<health::HealthSnapshot>,
) -> anyhow::Result<Agent> {
    let host = this_host(config)?;
    let topo = Topology::from_config(config);
    let epochs = EpochStore::open(&config.agent_state_dir())?;
    if let Some(e) = epochs.current() {
        tracing::info!(epoch = %e, cluster_id = epochs.cluster_id().unwrap_or("none"), file = %epochs.path().display(), "highest accepted epoch loaded");
    }
    let firewall = Arc::new(firewall::Firewall::new(host.ip));
    let vips = VipManager::new(&host.cluster_interface, topo.all_role_ips(), firewall)?;
    let db = db_target(host);
    let mut mmm_users = vec![
        host.agent_user.clone(),
        host.monitor_user.clone(),
        host.replication_user.clone(),
    ];
    mmm_users.extend(config.hosts.values().flat_map(|h| {
        [
            h.agent_user.clone(),
            h.monitor_user.clone(),
            h.replication_user.clone(),
        ]
    }));
    mmm_users.sort();
    mmm_users.dedup();
    let local = LocalHost {
        name: host.name.clone(),
        agent_user: host.agent_user.clone(),
        replication_user: host.replication_user.clone(),
        replication_password: host.replication_password.expose().to_string(),
        max_kill_retries: config.max_kill_retries,
        mysql_ports: config
            .hosts
            .iter()
            .map(|(n, h)| (n.clone(), h.mysql_port))
            .collect(),
        mmm_users,
        kill_stalled_mysqld: config.agent.kill_stalled_mysqld,
        catch_up_from_peers: config.agent.catch_up_from_peers,
        state_dir: config.agent_state_dir(),
        lock_privileged_accounts: config.agent.lock_privileged_accounts,
    };
    let isolation = isolation::Isolation::open(&config.agent_state_dir())?;
    Ok(Agent::new(topo, local, db, vips, epochs, isolation, health))
}

/// Runs the agent until `shutdown` completes: gRPC service, metrics, health probe, lease and re-assertion.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health_tx, health_rx) = tokio::sync::watch::channel(health::HealthSnapshot::default());
    if let Some(warning) = mmm_tls::plain_text_warning(&config.socket) {
        tracing::warn!("{warning}");
    }
    let agent = Arc::new(build_agent(&config, health_rx)?);
    let grpc_addr = listeners.grpc.local_addr()?;
    tracing::info!(
        host = %agent.local.name,
        grpc = %grpc_addr,
        metrics = ?listeners.metrics.as_ref().and_then(|l| l.local_addr().ok()),
        iface = agent.vips.iface(),
        version = env!("CARGO_PKG_VERSION"),
        "mmm-agent starting"
    );
    agent.vips.firewall().install().await;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(health::probe_loop(agent.db.clone(), health_tx));
    tasks.spawn(housekeeping(agent.clone()));
    tasks.spawn(lease_watch(agent.clone()));
    tasks.spawn(last_resort_watch(agent.clone()));
    if let Some(program) = config.agent.role_change_hook.clone() {
        let hook = hook::RoleHook {
            program,
            timeout: config.agent.role_change_hook_timeout,
        };
        tracing::info!(program = %hook.program.display(), timeout = ?hook.timeout, "role_change_hook configured");
        tasks.spawn(hook::watch(agent.clone(), hook));
    }
    if let Some(l) = listeners.metrics {
        let router = http::router(agent.clone()).merge(endpoints::router(
            endpoints::Endpoints::new(agent.clone(), config.checks.rep_backlog.max_backlog),
        ));
        tasks.spawn(async move {
            if let Err(e) = axum::serve(l, router).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }
    // <socket> type ssl: mutual TLS (certificates reload when their files change), and SetStatus
    // only from a monitor node's certificate.
    let tls = mmm_tls::TlsMaterial::from_socket(&config.socket).context("<socket> TLS")?;
    let policy = tls
        .as_ref()
        .map(|_| mmm_tls::PeerPolicy::new("monitor node", config.monitor_nodes.keys().cloned()));
    let router =
        tonic::transport::Server::builder().add_service(mmm_proto::agent_server::AgentServer::new(
            AgentService::new(agent.clone()).with_monitor_policy(policy),
        ));
    let result = match tls {
        Some(material) => {
            let server = mmm_tls::ServerTls::new(&material).context("TLS server set-up")?;
            tracing::info!(cert = %material.files().cert.display(), "mutual TLS on");
            router
                .serve_with_incoming_shutdown(mmm_tls::incoming(listeners.grpc, &server), shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(mmm_tls::plain_incoming(listeners.grpc), shutdown)
                .await
        }
    }
    .context("gRPC server failed");
    tasks.shutdown().await;
    tracing::info!(host = %agent.local.name, "mmm-agent stopped");
    result
}

/// Lease expiry, on a task of its own: a re-assertion stuck on a stalled mysqld (connect timeouts) must
/// not delay dropping the writer VIP when the lease runs out.
async fn lease_watch(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        agent.check_lease().await;
    }
}

/// The fence's last resort, on a task of its own so no apply (stuck on a stalled mysqld) delays it.
async fn last_resort_watch(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(last_resort::WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        agent.last_resort().await;
    }
}

/// The agent's periodic work: re-assertion, ARP refresh, metrics, the privilege warning.
async fn housekeeping(agent: Arc<Agent>) {
    // No status is known yet: a writer keeps only what is left of the lease kept in mysqld; any other
    // host denies writes at once.
    agent.start_fenced().await;
    let mut privileges_checked = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 1u64.. {
        tick.tick().await;
        agent.refresh_metrics();
        if n % REASSERT_TICKS == 0 {
            agent.reassert().await;
            if !privileges_checked {
                privileges_checked = warn_privileged_accounts(&agent).await;
            }
        }
        if n % GARP_REFRESH_TICKS == 0 {
            if let Ok(mut held) = agent.vips.present().await {
                // A writer VIP kept through a hand-over is the new writer's to announce.
                if agent.writes_held() {
                    let writer_ips = agent.topo.writer_ips();
                    held.retain(|ip| !writer_ips.contains(ip));
                }
                if let Err(e) = agent.vips.announce_once(&held).await {
                    tracing::warn!(error = %format!("{e:#}"), "gratuitous ARP refresh failed");
                }
            }
        }
    }
}

/// Warns once about application accounts that write through read_only. Returns true once checked.
async fn warn_privileged_accounts(agent: &Agent) -> bool {
    let Ok(mut db) = agent.db.connect().await else {
        return false;
    };
    let users: Vec<&str> = agent.local.mmm_users.iter().map(String::as_str).collect();
    let result = db.privileged_app_accounts(&users).await;
    db.close().await;
    match result {
        Ok(list) if list.is_empty() => true,
        Ok(list) => {
            let text = list
                .iter()
                .map(|(g, p)| format!("{g} has {p}"))
                .collect::<Vec<_>>()
                .join(", ");
            tracing::warn!(
                accounts = %text,
                "APPLICATION ACCOUNTS CAN WRITE THROUGH read_only: a demoted master still accepts their writes \
                 until their sessions are killed; revoke SUPER / READ_ONLY ADMIN from application accounts"
            );
            true
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot check account privileges");
            true
        }
    }
}
