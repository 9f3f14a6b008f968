//! The [`Lab`]: bridge, namespaces, MariaDB servers with replication, fault injection, and teardown on drop.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::future::try_join_all;
use mysql_async::prelude::Queryable;

use crate::cmd::{self, find_tool};
use crate::firewall::{Blocks, Endpoint};
use crate::mariadb::{self, ServerCnf};
use crate::names::{SlotNames, NS_IFACE};
use crate::process::LabProcess;
use crate::slot::{self, SlotLock};
use crate::{net, users, LabConfigs};

/// How long a MariaDB server may take to accept connections after it is started.
const MYSQLD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long replication may take to be running on every replica after set-up.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment variable that keeps the lab directory (datadirs, logs, configs) after the lab is dropped.
pub const KEEP_DIR_ENV: &str = "MMM_LAB_KEEP";

/// What lab to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Number of DB hosts (1..=9): db1 and db2 are masters and peers, db3.. replicate from db1.
    pub db_hosts: usize,
    /// Number of monitor namespaces (0..=9): mon1.. (the lab starts no monitor process itself).
    pub monitors: usize,
    /// Turn on semi-synchronous replication on every server.
    pub semi_sync: bool,
    /// Number of reader VIPs (0..=99); there is always exactly one writer VIP.
    pub vips: usize,
    /// Number of client namespaces (0..=9): cli1.. at `.31`.., so a partition can put application
    /// clients on either side (the root namespace is a single client that is on no side).
    pub clients: usize,
}

impl Default for LabSpec {
    fn default() -> Self {
        Self {
            db_hosts: 4,
            monitors: 3,
            semi_sync: false,
            vips: 4,
            clients: 0,
        }
    }
}

impl LabSpec {
    /// The lab the cluster tests, the demo and the benchmarks run: 4 DB hosts (two masters, two
    /// replicas), 3 monitors, semi-synchronous replication as the README recommends, 2 reader VIPs,
    /// 2 client namespaces (one per side of a partition).
    pub fn cluster() -> Self {
        Self {
            db_hosts: 4,
            monitors: 3,
            semi_sync: true,
            vips: 2,
            clients: 2,
        }
    }
}

/// Role of a DB host in MMM's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMode {
    /// May hold the writer role (db1, db2).
    Master,
    /// Replica only.
    Slave,
}

/// A DB host: a namespace with a MariaDB server.
#[derive(Debug, Clone)]
pub struct DbHost {
    /// MMM host name (`db1`).
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// Its address on the lab bridge.
    pub ip: Ipv4Addr,
    /// Its interface inside the namespace (where an agent puts VIPs).
    pub iface: String,
    /// MariaDB port.
    pub port: u16,
    /// MariaDB server_id (unique in the lab).
    pub server_id: u32,
    /// MariaDB datadir.
    pub datadir: PathBuf,
    /// MariaDB option file (`mariadbd --defaults-file`).
    pub cnf: PathBuf,
    /// MariaDB unix socket (usable from any namespace: it is a file).
    pub socket: PathBuf,
    /// Master or slave in the MMM config.
    pub mode: HostMode,
    /// The peer master (masters only).
    pub peer: Option<String>,
    /// The host it replicates from at lab start (db1 from db2, everyone else from db1).
    pub replicates_from: Option<String>,
}

/// A monitor's namespace (the lab starts no monitor process itself; see [`Lab::spawn_in`]).
#[derive(Debug, Clone)]
pub struct MonitorNs {
    /// Monitor node name (`mon1`).
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// Its address on the lab bridge.
    pub ip: Ipv4Addr,
    /// Its interface inside the namespace.
    pub iface: String,
}

/// A client namespace: application code run inside it (a thread that `setns`es into `ns`, or
/// `ip netns exec`) reaches the servers from `ip`, and partitions can put it on either side.
#[derive(Debug, Clone)]
pub struct ClientNs {
    /// Client name (`cli1`), usable wherever the lab takes a node name.
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// Its address on the lab bridge (`.31`..).
    pub ip: Ipv4Addr,
}

/// A running lab. Dropping it kills every process in its namespaces, deletes the namespaces, the bridge,
/// the nftables table and the lab directory (kept if `MMM_LAB_KEEP` is set), and frees the slot.
pub struct Lab {
    /// What was asked for.
    spec: LabSpec,
    /// Names and addresses of the slot.
    names: SlotNames,
    /// The DB hosts, in order db1, db2, ...
    hosts: Vec<DbHost>,
    /// The monitor namespaces, in order mon1, ...
    monitors: Vec<MonitorNs>,
    /// The client namespaces, in order cli1, ...
    clients: Vec<ClientNs>,
    /// Path of mariadbd.
    mariadbd: PathBuf,
    /// Running MariaDB servers by host name.
    mysqld: std::sync::Mutex<BTreeMap<String, LabProcess>>,
    /// Current partitions; a tokio mutex so a change and its `nft` run are one step.
    blocks: tokio::sync::Mutex<Blocks>,
    /// Mount points (small disks) made under the lab; unmounted on drop before the lab dir is removed,
    /// in case their handles outlive the lab.
    pub(crate) mounts: std::sync::Mutex<Vec<PathBuf>>,
    /// Lab directory path (also valid after `dir` has been given up in drop).
    dir_path: PathBuf,
    /// The lab directory; removed on drop.
    dir: Option<tempfile::TempDir>,
    /// The slot lock; declared last so it is released after everything else is gone.
    _slot: SlotLock,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("slot", &self.names.slot)
            .field("dir", &self.dir_path)
            .finish()
    }
}

/// Checks what the lab needs from the machine, with a message saying exactly what is missing.
fn preflight() -> anyhow::Result<(PathBuf, PathBuf)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the lab needs root (it creates network namespaces, a bridge, veths and nftables rules and runs \
             MariaDB inside them): run the tests as root"
        );
    }
    let need = |tool: &str, package: &str| {
        find_tool(tool).ok_or_else(|| {
            anyhow!("`{tool}` not found in PATH or /usr/sbin: the lab needs it (Debian: apt-get install {package})")
        })
    };
    let mariadbd = need("mariadbd", "mariadb-server")?;
    let install_db = need("mariadb-install-db", "mariadb-server")?;
    need("ip", "iproute2")?;
    need("nft", "nftables")?;
    Ok((mariadbd, install_db))
}

impl Lab {
    /// Builds and starts a lab: network, MariaDB servers, replication running everywhere.
    pub async fn start(spec: LabSpec) -> anyhow::Result<Lab> {
        let started = Instant::now();
        let (mariadbd, install_db) = preflight()?;
        if !(1..=9).contains(&spec.db_hosts)
            || spec.monitors > 9
            || spec.vips > 99
            || spec.clients > 9
        {
            bail!(
                "lab size out of range: 1..=9 DB hosts, 0..=9 monitors, 0..=99 reader VIPs, 0..=9 clients \
                 ({spec:?})"
            );
        }
        let slot = tokio::task::spawn_blocking(slot::acquire)
            .await
            .context("slot task")??;
        let names = SlotNames { slot: slot.slot };
        let dir = tempfile::Builder::new()
            .prefix(&names.dir_prefix())
            .tempdir()
            .context("creating the lab dir")?;
        let dir_path = dir.path().to_path_buf();
        std::fs::create_dir_all(dir_path.join("logs"))?;
        let hosts = (1..=spec.db_hosts)
            .map(|i| {
                let name = format!("db{i}");
                let home = dir_path.join(&name);
                let (mode, peer, replicates_from) = match i {
                    1 => (
                        HostMode::Master,
                        (spec.db_hosts > 1).then(|| "db2".to_string()),
                        None,
                    ),
                    2 => (
                        HostMode::Master,
                        Some("db1".to_string()),
                        Some("db1".to_string()),
                    ),
                    _ => (HostMode::Slave, None, Some("db1".to_string())),
                };
                let replicates_from = if i == 1 {
                    peer.clone()
                } else {
                    replicates_from
                };
                DbHost {
                    ns: names.ns(&name),
                    ip: names.ip(10 + i as u8),
                    iface: NS_IFACE.to_string(),
                    port: mariadb::MYSQL_PORT,
                    server_id: i as u32,
                    datadir: home.join("data"),
                    cnf: home.join("my.cnf"),
                    socket: home.join("mysqld.sock"),
                    mode,
                    peer,
                    replicates_from,
                    name,
                }
            })
            .collect();
        let monitors = (1..=spec.monitors)
            .map(|i| {
                let name = format!("mon{i}");
                MonitorNs {
                    ns: names.ns(&name),
                    ip: names.ip(20 + i as u8),
                    iface: NS_IFACE.to_string(),
                    name,
                }
            })
            .collect();
        let clients = (1..=spec.clients)
            .map(|i| {
                let name = format!("cli{i}");
                ClientNs {
                    ns: names.ns(&name),
                    ip: names.ip(30 + i as u8),
                    name,
                }
            })
            .collect();
        // From here on, a failure drops `lab`, which removes whatever was made.
        let lab = Lab {
            spec,
            names,
            hosts,
            monitors,
            clients,
            mariadbd: mariadbd.clone(),
            mysqld: Default::default(),
            blocks: Default::default(),
            mounts: Default::default(),
            dir_path,
            dir: Some(dir),
            _slot: slot,
        };
        let template =
            tokio::task::spawn_blocking(move || mariadb::ensure_template(&mariadbd, &install_db))
                .await
                .context("template task")??;
        lab.build_network().await?;
        lab.start_servers(&template).await?;
        lab.exec("db1", "SET GLOBAL read_only = 0").await?;
        lab.start_replication().await?;
        tracing::info!(slot = lab.names.slot, dir = %lab.dir_path.display(), elapsed = ?started.elapsed(), "lab is up");
        Ok(lab)
    }

    async fn build_network(&self) -> anyhow::Result<()> {
        net::create_bridge(self.names).await?;
        let nodes = self
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.ip))
            .chain(self.monitors.iter().map(|m| (m.name.clone(), m.ip)))
            .chain(self.clients.iter().map(|c| (c.name.clone(), c.ip)));
        try_join_all(
            nodes.map(|(name, ip)| async move { net::add_node(self.names, &name, ip).await }),
        )
        .await?;
        let script = self.blocks.lock().await.render(&self.names.nft_table());
        net::apply_firewall(&script).await
    }

    async fn start_servers(&self, template: &Path) -> anyhow::Result<()> {
        try_join_all(self.hosts.iter().map(|h| async move {
            let home = h.cnf.parent().context("host dir")?;
            std::fs::create_dir_all(home)?;
            mariadb::copy_template(template, &h.datadir).await?;
            let tmpdir = home.join("tmp");
            std::fs::create_dir_all(&tmpdir)
                .with_context(|| format!("creating {}", tmpdir.display()))?;
            let cnf = ServerCnf {
                datadir: &h.datadir,
                tmpdir: &tmpdir,
                socket: &h.socket,
                pid_file: &home.join("mysqld.pid"),
                server_id: h.server_id,
                ip: h.ip,
                // Every server starts read-only, as the README requires: a server that restarts never
                // comes up writable behind its agent's back. The lab opens db1 at run time below.
                read_only: true,
                semi_sync: self.spec.semi_sync,
                semi_sync_acks: self.spec.semi_sync && h.mode == HostMode::Master,
            };
            std::fs::write(&h.cnf, cnf.render())
                .with_context(|| format!("writing {}", h.cnf.display()))?;
            self.start_mysqld(&h.name).await
        }))
        .await?;
        Ok(())
    }

    async fn start_replication(&self) -> anyhow::Result<()> {
        for h in &self.hosts {
            if let Some(src) = &h.replicates_from {
                let mut c = self.mysql(&h.name).await?;
                mariadb::start_replication(&mut c, self.host(src).ip)
                    .await
                    .with_context(|| format!("setting up replication on {} from {src}", h.name))?;
                let _ = c.disconnect().await;
            }
        }
        self.wait_replication_running(REPLICATION_TIMEOUT).await
    }

    /// Waits until every host that replicates has its IO and SQL threads running.
    pub async fn wait_replication_running(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for h in self.hosts.iter().filter(|h| h.replicates_from.is_some()) {
            let mut c = self.mysql(&h.name).await?;
            loop {
                match mariadb::replication_problem(&mut c).await? {
                    None => break,
                    Some(why) if Instant::now() >= deadline => {
                        bail!(
                            "replication on {} is not running after {timeout:?}: {why}",
                            h.name
                        )
                    }
                    Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            let _ = c.disconnect().await;
        }
        Ok(())
    }

    /// The spec the lab was built from.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }
    /// The lab's slot number (the third octet of its subnet).
    pub fn slot(&self) -> u8 {
        self.names.slot
    }
    /// Temp dir holding datadirs, configs (`etc/`) and logs (`logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }
    /// The logs in `logs/` whose file names start with `prefix` (`"monitor-"`, `"agent-db1-"`),
    /// concatenated, without terminal colours: what a test looks for in what the processes said.
    pub fn logs_of(&self, prefix: &str) -> String {
        let mut text = String::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir_path.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            text.push_str(&strip_colours(
                &std::fs::read_to_string(f).unwrap_or_default(),
            ));
        }
        text
    }
    /// First three octets of the lab's /24, e.g. `10.213.7`.
    pub fn subnet_prefix(&self) -> String {
        self.names.subnet_prefix()
    }
    /// The bridge's name in the root namespace.
    pub fn bridge(&self) -> String {
        self.names.bridge()
    }
    /// The DB hosts, db1 first.
    pub fn hosts(&self) -> &[DbHost] {
        &self.hosts
    }
    /// A DB host by name; panics on a name the lab does not have (a bug in the test).
    pub fn host(&self, name: &str) -> &DbHost {
        self.try_host(name)
            .unwrap_or_else(|| panic!("the lab has no DB host {name}"))
    }
    /// A DB host by name.
    pub fn try_host(&self, name: &str) -> Option<&DbHost> {
        self.hosts.iter().find(|h| h.name == name)
    }
    /// The monitor namespaces, mon1 first.
    pub fn monitors(&self) -> &[MonitorNs] {
        &self.monitors
    }
    /// A monitor namespace by name; panics on a name the lab does not have (a bug in the test).
    pub fn monitor(&self, name: &str) -> &MonitorNs {
        self.monitors
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("the lab has no monitor {name}"))
    }
    /// The client namespaces, cli1 first.
    pub fn clients(&self) -> &[ClientNs] {
        &self.clients
    }
    /// A client namespace by name; panics on a name the lab does not have (a bug in the test).
    pub fn client(&self, name: &str) -> &ClientNs {
        self.clients
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("the lab has no client {name}"))
    }
    /// The writer VIP (`.100`).
    pub fn writer_vip(&self) -> Ipv4Addr {
        self.names.ip(100)
    }
    /// The reader VIPs (`.101`..).
    pub fn reader_vips(&self) -> Vec<Ipv4Addr> {
        (0..self.spec.vips)
            .map(|i| self.names.ip(101 + i as u8))
            .collect()
    }
    /// The root namespace's address on the bridge (where tests and clients connect from).
    pub fn client_ip(&self) -> Ipv4Addr {
        self.names.ip(1)
    }

    /// Resolves a node reference: a host, monitor or client name (`db1`, `cli1`), a namespace name
    /// (`mmm3-db1`), or `root` / `client` for the root namespace (`None`).
    fn resolve(&self, node: &str) -> anyhow::Result<Option<String>> {
        if node == "root" || node == "client" {
            return Ok(None);
        }
        let names = self
            .hosts
            .iter()
            .map(|h| (&h.name, &h.ns))
            .chain(self.monitors.iter().map(|m| (&m.name, &m.ns)))
            .chain(self.clients.iter().map(|c| (&c.name, &c.ns)));
        for (name, ns) in names {
            if node == name || node == ns {
                return Ok(Some(name.clone()));
            }
        }
        bail!("the lab has no node or namespace {node:?} (nodes: db1.., mon1.., cli1.., root)")
    }

    /// The namespace of a node (`db1` -> `mmm3-db1`); `None` for the root namespace.
    pub fn ns_of(&self, node: &str) -> anyhow::Result<Option<String>> {
        Ok(self.resolve(node)?.map(|n| self.names.ns(&n)))
    }

    fn endpoint(&self, node: &str) -> anyhow::Result<Endpoint> {
        Ok(match self.resolve(node)? {
            Some(n) => Endpoint::Port(self.names.host_veth(&n)),
            None => Endpoint::Root,
        })
    }

    /// Writes the MMM config files for this lab (see [`LabConfigs`]).
    pub fn write_mmm_configs(&self, extra_monitor_keys: &str) -> anyhow::Result<LabConfigs> {
        crate::configs::write(self, extra_monitor_keys)
    }

    /// Runs `program args` inside a node's namespace (`db1`, `mon1`, a namespace name, or `root`), with
    /// stdout/stderr appended to `<dir>/logs/<log_name>.log`. The process is killed when the handle drops
    /// (and in any case when the lab drops).
    pub fn spawn_in(
        &self,
        ns: &str,
        program: &Path,
        args: &[&str],
        log_name: &str,
    ) -> anyhow::Result<LabProcess> {
        self.spawn_in_with_env(ns, program, args, log_name, &[])
    }

    /// [`Lab::spawn_in`] with extra environment variables (e.g. [`crate::ClockSkew::env`]).
    pub fn spawn_in_with_env(
        &self,
        ns: &str,
        program: &Path,
        args: &[&str],
        log_name: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<LabProcess> {
        let ns = self.ns_of(ns)?;
        let log = self.dir_path.join("logs").join(format!("{log_name}.log"));
        LabProcess::spawn_with_env(ns.as_deref(), program, args, &log, env)
    }

    /// True if the host's mariadbd was started by the lab and has not exited.
    pub fn mysqld_running(&self, host: &str) -> bool {
        let mut map = self.mysqld.lock().unwrap_or_else(|e| e.into_inner());
        map.get_mut(host).is_some_and(LabProcess::is_running)
    }

    /// Kills the host's mariadbd with SIGKILL (and reaps it).
    pub async fn kill_mysqld(&self, host: &str) -> anyhow::Result<()> {
        self.try_host(host)
            .ok_or_else(|| anyhow!("the lab has no DB host {host}"))?;
        let proc = self
            .mysqld
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host);
        let Some(mut proc) = proc else {
            bail!("mariadbd on {host} is not running")
        };
        let status = tokio::task::spawn_blocking(move || proc.kill())
            .await
            .context("kill task")??;
        tracing::info!(host, %status, "mariadbd killed");
        Ok(())
    }

    /// Pauses the host's mariadbd (SIGSTOP): it keeps its sockets, so clients connect at the TCP level
    /// and then wait for a greeting or a result that does not come — a server stalled by a VM freeze or a
    /// stuck disk, which the monitor's checks and the agent's statements must time out on. It stays
    /// paused until [`Lab::resume_mysqld`] or [`Lab::resume_all`]; killing it and dropping the lab work
    /// while it is paused.
    pub fn pause_mysqld(&self, host: &str) -> anyhow::Result<()> {
        let mut map = self.mysqld.lock().unwrap_or_else(|e| e.into_inner());
        let proc = map
            .get_mut(host)
            .ok_or_else(|| anyhow!("mariadbd on {host} is not running"))?;
        proc.pause()
            .with_context(|| format!("pausing mariadbd on {host}"))
    }

    /// Resumes a mariadbd paused by [`Lab::pause_mysqld`] (SIGCONT).
    pub fn resume_mysqld(&self, host: &str) -> anyhow::Result<()> {
        let mut map = self.mysqld.lock().unwrap_or_else(|e| e.into_inner());
        let proc = map
            .get_mut(host)
            .ok_or_else(|| anyhow!("mariadbd on {host} is not running"))?;
        proc.resume()
            .with_context(|| format!("resuming mariadbd on {host}"))
    }

    /// The hosts whose mariadbd is paused (and still there: its agent may have killed it).
    pub fn paused_mysqld(&self) -> Vec<String> {
        let mut map = self.mysqld.lock().unwrap_or_else(|e| e.into_inner());
        map.iter_mut()
            .filter_map(|(h, p)| (p.is_paused() && p.is_running()).then(|| h.clone()))
            .collect()
    }

    /// Resumes every paused mariadbd.
    pub fn resume_all(&self) -> anyhow::Result<()> {
        for host in self.paused_mysqld() {
            self.resume_mysqld(&host)?;
        }
        Ok(())
    }

    /// Starts the host's mariadbd inside its namespace and waits until it accepts connections.
    pub async fn start_mysqld(&self, host: &str) -> anyhow::Result<()> {
        let h = self
            .try_host(host)
            .ok_or_else(|| anyhow!("the lab has no DB host {host}"))?;
        {
            let mut map = self.mysqld.lock().unwrap_or_else(|e| e.into_inner());
            if map.get_mut(host).is_some_and(LabProcess::is_running) {
                bail!("mariadbd on {host} is already running");
            }
            let defaults = format!("--defaults-file={}", h.cnf.display());
            let log = self
                .dir_path
                .join("logs")
                .join(format!("mysqld-{host}.log"));
            let proc = LabProcess::spawn(
                Some(&h.ns),
                &self.mariadbd,
                &[&defaults, "--user=root"],
                &log,
            )?;
            map.insert(host.to_string(), proc);
        }
        let deadline = Instant::now() + MYSQLD_START_TIMEOUT;
        loop {
            if !self.mysqld_running(host) {
                let log = self
                    .dir_path
                    .join("logs")
                    .join(format!("mysqld-{host}.log"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                bail!(
                    "mariadbd on {host} exited during start; end of {}:\n{}",
                    log.display(),
                    tail.join("\n")
                );
            }
            match mariadb::connect(
                h.ip,
                users::ROOT_USER,
                users::ROOT_PASSWORD,
                None,
                Duration::from_secs(1),
            )
            .await
            {
                Ok(c) => {
                    let _ = c.disconnect().await;
                    tracing::info!(host, "mariadbd accepts connections");
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context(format!(
                        "mariadbd on {host} not ready after {MYSQLD_START_TIMEOUT:?}"
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Pulls a node's cable: its bridge-side veth goes down (the namespace sees no carrier).
    pub async fn link_down(&self, ns: &str) -> anyhow::Result<()> {
        let node = self
            .resolve(ns)?
            .ok_or_else(|| anyhow!("the root namespace has no link to pull"))?;
        net::set_port(self.names, &node, false).await?;
        tracing::info!(node, "link down");
        Ok(())
    }

    /// Plugs a node's cable back in.
    pub async fn link_up(&self, ns: &str) -> anyhow::Result<()> {
        let node = self
            .resolve(ns)?
            .ok_or_else(|| anyhow!("the root namespace has no link to plug"))?;
        net::set_port(self.names, &node, true).await?;
        tracing::info!(node, "link up");
        Ok(())
    }

    /// Drops all traffic (both directions, every protocol including ARP and VIPs) between two nodes
    /// (`db1`, `mon2`, namespace names, or `root` for the clients' namespace).
    pub async fn block(&self, from_ns: &str, to_ns: &str) -> anyhow::Result<()> {
        let (a, b) = (self.endpoint(from_ns)?, self.endpoint(to_ns)?);
        if a == b {
            bail!("cannot block {from_ns} from itself");
        }
        let mut blocks = self.blocks.lock().await;
        blocks.add(a, b);
        net::apply_firewall(&blocks.render(&self.names.nft_table())).await?;
        tracing::info!(from = from_ns, to = to_ns, "traffic blocked");
        Ok(())
    }

    /// Removes a block made by [`Lab::block`] (either order of the two nodes).
    pub async fn unblock(&self, from_ns: &str, to_ns: &str) -> anyhow::Result<()> {
        let (a, b) = (self.endpoint(from_ns)?, self.endpoint(to_ns)?);
        let mut blocks = self.blocks.lock().await;
        blocks.remove(a, b);
        net::apply_firewall(&blocks.render(&self.names.nft_table())).await?;
        tracing::info!(from = from_ns, to = to_ns, "traffic unblocked");
        Ok(())
    }

    /// Drops only the frames from `from` to `to` (nodes as for [`Lab::block`]): `to` still reaches
    /// `from`, but nothing `from` sends to `to` arrives — replies included, so a TCP connection from `to`
    /// to `from` never completes (its SYN-ACK is lost). Models a link or a firewall that loses one
    /// direction, where each side has a different view of who is reachable.
    pub async fn block_one_way(&self, from: &str, to: &str) -> anyhow::Result<()> {
        let (a, b) = (self.endpoint(from)?, self.endpoint(to)?);
        if a == b {
            bail!("cannot block {from} from itself");
        }
        let mut blocks = self.blocks.lock().await;
        blocks.add_one_way(a, b);
        net::apply_firewall(&blocks.render(&self.names.nft_table())).await?;
        tracing::info!(from, to, "traffic blocked one way");
        Ok(())
    }

    /// Removes the drop made by [`Lab::block_one_way`] for this direction (the other direction, if
    /// blocked, stays blocked).
    pub async fn unblock_one_way(&self, from: &str, to: &str) -> anyhow::Result<()> {
        let (a, b) = (self.endpoint(from)?, self.endpoint(to)?);
        let mut blocks = self.blocks.lock().await;
        blocks.remove_one_way(a, b);
        net::apply_firewall(&blocks.render(&self.names.nft_table())).await?;
        tracing::info!(from, to, "traffic unblocked one way");
        Ok(())
    }

    /// Splits the lab: drops all traffic in both directions between every node of `side_a` and every
    /// node of `side_b`, and nothing within a side (nodes not named keep reaching both sides). One
    /// `nft` run, so the partition starts at one instant. E.g. the old writer keeping a client:
    /// `partition(&["db1", "cli1"], &["mon1", "mon2", "mon3", "db2", "db3", "db4", "cli2"])`.
    pub async fn partition(&self, side_a: &[&str], side_b: &[&str]) -> anyhow::Result<()> {
        let pairs = self.cross_pairs(side_a, side_b)?;
        let mut blocks = self.blocks.lock().await;
        for (a, b) in pairs {
            blocks.add(a, b);
        }
        net::apply_firewall(&blocks.render(&self.names.nft_table())).await?;
        tracing::info!(?side_a, ?side_b, "lab partitioned");
        Ok(())
    }

    /// Removes the blocks a [`Lab::partition`] with the same sides made (in one `nft` run).
    pub async fn heal_partition(&self, side_a: &[&str], side_b: &[&str]) -> anyhow::Result<()> {
        let pairs = self.cross_pairs(side_a, side_b)?;
        let mut blocks = self.blocks.lock().await;
        for (a, b) in pairs {
            blocks.remove(a, b);
        }
        net::apply_firewall(&blocks.render(&self.names.nft_table())).await?;
        tracing::info!(?side_a, ?side_b, "partition healed");
        Ok(())
    }

    /// Every pair of endpoints across two sides; fails if a node is on both sides.
    fn cross_pairs(
        &self,
        side_a: &[&str],
        side_b: &[&str],
    ) -> anyhow::Result<Vec<(Endpoint, Endpoint)>> {
        let a: Vec<Endpoint> = side_a
            .iter()
            .map(|n| self.endpoint(n))
            .collect::<anyhow::Result<_>>()?;
        let b: Vec<Endpoint> = side_b
            .iter()
            .map(|n| self.endpoint(n))
            .collect::<anyhow::Result<_>>()?;
        let mut pairs = Vec::new();
        for x in &a {
            for y in &b {
                if x == y {
                    bail!("a node is on both sides of the partition ({side_a:?} / {side_b:?})");
                }
                pairs.push((x.clone(), y.clone()));
            }
        }
        Ok(pairs)
    }

    /// Removes every block.
    pub async fn unblock_all(&self) -> anyhow::Result<()> {
        let mut blocks = self.blocks.lock().await;
        *blocks = Blocks::default();
        net::apply_firewall(&blocks.render(&self.names.nft_table())).await
    }

    /// An administrative (root) connection to the host's own IP, from the root namespace (5 s timeout).
    pub async fn mysql(&self, host: &str) -> anyhow::Result<mysql_async::Conn> {
        self.mysql_timeout(host, Duration::from_secs(5)).await
    }

    /// Like [`Lab::mysql`] with a given connect timeout (short ones for checks that expect failure).
    pub async fn mysql_timeout(
        &self,
        host: &str,
        timeout: Duration,
    ) -> anyhow::Result<mysql_async::Conn> {
        self.connect_as(host, users::ROOT_USER, users::ROOT_PASSWORD, timeout)
            .await
    }

    /// A connection as the application user (database `app`) to any address, e.g. a VIP.
    pub async fn connect_ip(
        &self,
        ip: Ipv4Addr,
        timeout: Duration,
    ) -> anyhow::Result<mysql_async::Conn> {
        mariadb::connect(
            ip,
            users::APP_USER,
            users::APP_PASSWORD,
            Some(users::APP_DB),
            timeout,
        )
        .await
    }

    /// Appends `line` (`name=value`) to `host`'s option file: read at the server's next start (a scenario
    /// that restarts it keeps the setting; set it at run time too for the running server).
    pub fn append_server_option(&self, host: &str, line: &str) -> anyhow::Result<()> {
        let cnf = &self.host(host).cnf;
        let text =
            std::fs::read_to_string(cnf).with_context(|| format!("reading {}", cnf.display()))?;
        std::fs::write(cnf, format!("{text}{line}\n"))
            .with_context(|| format!("writing {}", cnf.display()))
    }

    /// Runs a statement as root on a host (convenience for tests).
    pub async fn exec(&self, host: &str, sql: &str) -> anyhow::Result<()> {
        let mut c = self.mysql(host).await?;
        mariadb::exec(&mut c, sql).await?;
        let _ = c.disconnect().await;
        Ok(())
    }

    /// `@@read_only` of a host's server (5 s timeout).
    pub async fn read_only(&self, host: &str) -> anyhow::Result<bool> {
        let mut c = self.mysql(host).await?;
        let v: Option<u8> =
            tokio::time::timeout(Duration::from_secs(5), c.query_first("SELECT @@read_only"))
                .await
                .map_err(|_| anyhow!("SELECT @@read_only on {host} timed out"))??;
        let _ = c.disconnect().await;
        Ok(v == Some(1))
    }

    /// Whether a host's interface carries `ip` (`ip -n NS addr show`, with the tool timeout).
    pub async fn has_ip(&self, host: &str, ip: Ipv4Addr) -> anyhow::Result<bool> {
        let h = self
            .try_host(host)
            .ok_or_else(|| anyhow!("the lab has no DB host {host}"))?;
        let out = cmd::run("ip", &["-n", &h.ns, "-o", "-4", "addr", "show"]).await?;
        Ok(out.contains(&format!(" {ip}/")))
    }

    /// Makes the root namespace (where tests connect from) send packets for `ip` to `host`'s MAC
    /// address whatever ARP says (a permanent neighbour entry): a client whose ARP cache still names
    /// the old owner of a VIP.
    pub async fn pin_neighbour(&self, ip: Ipv4Addr, host: &str) -> anyhow::Result<()> {
        let h = self
            .try_host(host)
            .ok_or_else(|| anyhow!("the lab has no DB host {host}"))?;
        let link = cmd::run("ip", &["-n", &h.ns, "-o", "link", "show", &h.iface]).await?;
        let mac = link
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(|| anyhow!("no MAC address in {link:?}"))?
            .to_string();
        let ip = ip.to_string();
        let bridge = self.bridge();
        cmd::run(
            "ip",
            &[
                "neigh",
                "replace",
                &ip,
                "lladdr",
                &mac,
                "dev",
                &bridge,
                "nud",
                "permanent",
            ],
        )
        .await?;
        Ok(())
    }

    /// `SELECT @@gtid_current_pos` on a host.
    pub async fn gtid_current_pos(&self, host: &str) -> anyhow::Result<String> {
        let mut c = self.mysql(host).await?;
        let pos: Option<String> = tokio::time::timeout(
            Duration::from_secs(5),
            c.query_first("SELECT @@gtid_current_pos"),
        )
        .await
        .context("SELECT @@gtid_current_pos timed out")??;
        let _ = c.disconnect().await;
        Ok(pos.unwrap_or_default())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let procs = std::mem::take(&mut *self.mysqld.lock().unwrap_or_else(|e| e.into_inner()));
        drop(procs);
        let mounts = std::mem::take(&mut *self.mounts.lock().unwrap_or_else(|e| e.into_inner()));
        for m in mounts {
            crate::nemesis::unmount(&m);
        }
        slot::cleanup_network(self.names);
        if std::env::var_os(KEEP_DIR_ENV).is_some() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                tracing::info!(dir = %kept.display(), "lab dir kept ({KEEP_DIR_ENV} is set)");
            }
        }
        tracing::info!(slot = self.names.slot, "lab torn down");
    }
}

/// `text` without ANSI colour sequences (`ESC [ … letter`).
fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
