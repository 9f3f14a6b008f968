//! A running mmm-rs cluster on a lab: one `mmm-agent` per DB host and one `mmm-monitor` per monitor
//! namespace, as real processes, plus helpers to talk to the monitors and wait on what they report.
//!
//! Processes can be paused (SIGSTOP) and resumed, and started under a skewed wall clock; a paused
//! process is still killed by `kill_*` and when the cluster is dropped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_proto::monitor_control_client::MonitorControlClient;
use mmm_proto::{
    ClusterStatusReply, ClusterStatusRequest, ShowReply, ShowRequest, PROTOCOL_VERSION,
};
use tonic::transport::{Channel, Endpoint};

use crate::{workspace_bin, ClockSkew, Lab, LabConfigs, LabProcess, MONITOR_PORT};

/// The processes of an mmm-rs cluster running on a lab.
pub struct MmmCluster<'a> {
    /// The lab it runs on.
    pub lab: &'a Lab,
    /// The configuration files the processes were started with.
    pub configs: LabConfigs,
    /// Running agents by host name (absent = stopped).
    agents: BTreeMap<String, LabProcess>,
    /// Running monitors by name (absent = stopped).
    monitors: BTreeMap<String, LabProcess>,
    /// How many times each process was started, so every start gets its own log file.
    starts: BTreeMap<String, u32>,
    /// With mutual TLS: the operator's client side, for the control clients.
    ctl_tls: Option<mmm_tls::ClientTls>,
}

impl<'a> MmmCluster<'a> {
    /// Writes the configs (with `extra_monitor_keys` inside `<monitor>`) and starts every agent, then
    /// every monitor.
    pub fn start(lab: &'a Lab, extra_monitor_keys: &str) -> anyhow::Result<Self> {
        Self::start_with(lab, extra_monitor_keys, false)
    }

    /// [`MmmCluster::start`] with mutual TLS on every connection when `tls` is set (certificates from
    /// `mmmctl certs init`, `<socket> type ssl` in every config; the control clients use the
    /// operator's certificate).
    pub fn start_with(lab: &'a Lab, extra_monitor_keys: &str, tls: bool) -> anyhow::Result<Self> {
        let mut c = Self::configure(lab, extra_monitor_keys, tls)?;
        for h in lab.hosts() {
            c.start_agent(&h.name)?;
        }
        for m in lab.monitors() {
            c.start_monitor(&m.name)?;
        }
        Ok(c)
    }

    /// Writes the configs like [`MmmCluster::start_with`] but starts no process: set up what must exist
    /// before a process starts (a small disk under a monitor's data dir, a skewed clock), then start
    /// each with `start_agent`/`start_monitor` or their `_with_clock` forms.
    pub fn configure(lab: &'a Lab, extra_monitor_keys: &str, tls: bool) -> anyhow::Result<Self> {
        let configs = crate::configs::write_with(lab, extra_monitor_keys, tls)?;
        let ctl_tls = match &configs.tls {
            Some(t) => {
                let material = mmm_tls::TlsMaterial::load(t.files("operator"))?;
                Some(mmm_tls::ClientTls::new(&material)?)
            }
            None => None,
        };
        Ok(MmmCluster {
            lab,
            configs,
            agents: BTreeMap::new(),
            monitors: BTreeMap::new(),
            starts: BTreeMap::new(),
            ctl_tls,
        })
    }

    fn log_name(&mut self, what: &str, name: &str) -> String {
        let n = self.starts.entry(format!("{what}-{name}")).or_insert(0);
        *n += 1;
        format!("{what}-{name}-{n}")
    }

    /// Starts (or restarts) the agent of `host` inside its namespace.
    pub fn start_agent(&mut self, host: &str) -> anyhow::Result<()> {
        self.spawn_agent(host, &[])
    }

    /// Starts (or restarts) the agent of `host` with its wall clock off by `skew` (libfaketime), like a
    /// host whose NTP is broken.
    pub fn start_agent_with_clock(&mut self, host: &str, skew: ClockSkew) -> anyhow::Result<()> {
        self.spawn_agent(host, &skew.env()?)
    }

    fn spawn_agent(&mut self, host: &str, env: &[(String, String)]) -> anyhow::Result<()> {
        let config = self.configs.agent(host)?.to_string_lossy().into_owned();
        let log = self.log_name("agent", host);
        let p = self.lab.spawn_in_with_env(
            host,
            &workspace_bin("mmm-agent"),
            &["--config", &config],
            &log,
            env,
        )?;
        self.agents.insert(host.to_string(), p);
        Ok(())
    }

    /// Starts (or restarts) monitor `name` inside its namespace.
    pub fn start_monitor(&mut self, name: &str) -> anyhow::Result<()> {
        self.spawn_monitor(name, &[])
    }

    /// Starts (or restarts) monitor `name` with its wall clock off by `skew` (libfaketime).
    pub fn start_monitor_with_clock(&mut self, name: &str, skew: ClockSkew) -> anyhow::Result<()> {
        self.spawn_monitor(name, &skew.env()?)
    }

    fn spawn_monitor(&mut self, name: &str, env: &[(String, String)]) -> anyhow::Result<()> {
        let config = self.configs.monitor(name)?.to_string_lossy().into_owned();
        let log = self.log_name("monitor", name);
        let p = self.lab.spawn_in_with_env(
            name,
            &workspace_bin("mmm-monitor"),
            &["--config", &config],
            &log,
            env,
        )?;
        self.monitors.insert(name.to_string(), p);
        Ok(())
    }

    /// Pauses the agent of `host` (SIGSTOP): the agent stops renewing anything and answers nothing, but
    /// its connections stay open — a stalled agent, unlike a dead one. Until [`MmmCluster::resume_agent`].
    pub fn pause_agent(&mut self, host: &str) -> anyhow::Result<()> {
        match self.agents.get_mut(host) {
            Some(p) => p.pause(),
            None => bail!("agent of {host} is not running"),
        }
    }

    /// Resumes a paused agent (SIGCONT).
    pub fn resume_agent(&mut self, host: &str) -> anyhow::Result<()> {
        match self.agents.get_mut(host) {
            Some(p) => p.resume(),
            None => bail!("agent of {host} is not running"),
        }
    }

    /// Pauses monitor `name` (SIGSTOP): a leader that stalls keeps believing it leads when it resumes.
    pub fn pause_monitor(&mut self, name: &str) -> anyhow::Result<()> {
        match self.monitors.get_mut(name) {
            Some(p) => p.pause(),
            None => bail!("monitor {name} is not running"),
        }
    }

    /// Resumes a paused monitor (SIGCONT).
    pub fn resume_monitor(&mut self, name: &str) -> anyhow::Result<()> {
        match self.monitors.get_mut(name) {
            Some(p) => p.resume(),
            None => bail!("monitor {name} is not running"),
        }
    }

    /// The running agent process of `host` (its pid, log, pause state).
    pub fn agent_process(&self, host: &str) -> Option<&LabProcess> {
        self.agents.get(host)
    }

    /// The running process of monitor `name`.
    pub fn monitor_process(&self, name: &str) -> Option<&LabProcess> {
        self.monitors.get(name)
    }

    /// The paused processes, as `agent-<host>` and `monitor-<name>`.
    pub fn paused(&self) -> Vec<String> {
        let agents = self
            .agents
            .iter()
            .filter(|(_, p)| p.is_paused())
            .map(|(h, _)| format!("agent-{h}"));
        let monitors = self
            .monitors
            .iter()
            .filter(|(_, p)| p.is_paused())
            .map(|(m, _)| format!("monitor-{m}"));
        agents.chain(monitors).collect()
    }

    /// Resumes every paused agent and monitor, and every paused mariadbd of the lab.
    pub fn resume_all(&mut self) -> anyhow::Result<()> {
        for p in self.agents.values_mut().chain(self.monitors.values_mut()) {
            if p.is_paused() {
                p.resume()?;
            }
        }
        self.lab.resume_all()
    }

    /// kill -9 of the agent of `host`.
    pub fn kill_agent(&mut self, host: &str) -> anyhow::Result<()> {
        match self.agents.remove(host) {
            Some(mut p) => p.kill().map(|_| ()),
            None => bail!("agent of {host} is not running"),
        }
    }

    /// kill -9 of monitor `name`.
    pub fn kill_monitor(&mut self, name: &str) -> anyhow::Result<()> {
        match self.monitors.remove(name) {
            Some(mut p) => p.kill().map(|_| ()),
            None => bail!("monitor {name} is not running"),
        }
    }

    /// Waits (up to `timeout`) for monitor `name` to exit by itself, e.g. a monitor that refuses to
    /// start; returns its exit status, and it then counts as stopped.
    pub async fn wait_monitor_exit(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let Some(p) = self.monitors.get_mut(name) else {
            bail!("monitor {name} is not running")
        };
        let status = p.wait_exit(timeout).await?;
        self.monitors.remove(name);
        Ok(status)
    }

    /// Names of the monitors currently running.
    pub fn running_monitors(&self) -> Vec<String> {
        self.monitors.keys().cloned().collect()
    }

    /// `ip:port` of every monitor's gRPC service.
    pub fn monitor_addrs(&self) -> Vec<String> {
        self.lab
            .monitors()
            .iter()
            .map(|m| format!("{}:{MONITOR_PORT}", m.ip))
            .collect()
    }

    /// A control client of monitor `name`.
    pub async fn control_of(&self, name: &str) -> anyhow::Result<MonitorControlClient<Channel>> {
        let m = self.lab.monitor(name);
        let ep = Endpoint::from_shared(format!("http://{}:{MONITOR_PORT}", m.ip))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(5));
        let connect = async {
            match &self.ctl_tls {
                Some(tls) => ep.connect_with_connector(tls.connector(Some(name))).await,
                None => ep.connect().await,
            }
        };
        let ch = tokio::time::timeout(Duration::from_secs(1), connect)
            .await
            .with_context(|| format!("monitor {name}: connect timed out"))?
            .with_context(|| format!("monitor {name}: cannot connect"))?;
        Ok(MonitorControlClient::new(ch))
    }

    /// A control client of the first running monitor that answers.
    pub async fn control(&self) -> anyhow::Result<MonitorControlClient<Channel>> {
        for name in self.monitors.keys() {
            if let Ok(c) = self.control_of(name).await {
                return Ok(c);
            }
        }
        bail!("no monitor answers")
    }

    /// `show` from any running monitor.
    pub async fn show(&self) -> anyhow::Result<ShowReply> {
        let mut c = self.control().await?;
        Ok(c.show(ShowRequest {
            protocol_version: PROTOCOL_VERSION,
            extended: false,
        })
        .await?
        .into_inner())
    }

    /// `show --extended` (with every host's replication facts) as monitor `name` answers it.
    pub async fn show_extended_of(&self, name: &str) -> anyhow::Result<ShowReply> {
        let mut c = self.control_of(name).await?;
        Ok(c.show(ShowRequest {
            protocol_version: PROTOCOL_VERSION,
            extended: true,
        })
        .await?
        .into_inner())
    }

    /// Cluster status as monitor `name` sees it.
    pub async fn cluster_status_of(&self, name: &str) -> anyhow::Result<ClusterStatusReply> {
        let mut c = self.control_of(name).await?;
        Ok(c.cluster_status(ClusterStatusRequest {
            protocol_version: PROTOCOL_VERSION,
            local: false,
        })
        .await?
        .into_inner())
    }

    /// Waits until `show` satisfies `pred`; the error carries the last reply seen.
    pub async fn wait_show(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&ShowReply) -> bool,
    ) -> anyhow::Result<ShowReply> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<ShowReply> = None;
        let mut last_err = String::new();
        while Instant::now() < deadline {
            match self.show().await {
                Ok(s) if pred(&s) => return Ok(s),
                Ok(s) => last = Some(s),
                Err(e) => last_err = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("timed out after {timeout:?} waiting for {what}; last show: {last:?}; last error: {last_err}")
    }

    /// Waits until every host is ONLINE and the writer role is held by `writer`.
    pub async fn wait_all_online(
        &self,
        writer: &str,
        timeout: Duration,
    ) -> anyhow::Result<ShowReply> {
        self.wait_show(
            timeout,
            &format!("all hosts ONLINE with {writer} as writer"),
            |s| {
                s.hosts.len() == self.lab.hosts().len()
                    && s.hosts
                        .iter()
                        .all(|h| h.state == mmm_proto::HostState::Online as i32)
                    && owner_of_role(s, "writer").as_deref() == Some(writer)
            },
        )
        .await
    }

    /// `mmmctl <command> <host>` (`set_online` or `set_offline`) until it answers OK or the host is in
    /// that state already (`auto_set_online` may have been first), at most 20 s: a host just back waits
    /// in AWAITING_RECOVERY for its checks to pass.
    pub async fn set_host(&self, command: &str, host: &str) -> anyhow::Result<()> {
        let there = match command {
            "set_online" => "is 'ONLINE' at the moment",
            _ => "is 'ADMIN_OFFLINE' at the moment",
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.mmmctl(&[command, host])?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if text.starts_with("OK") || text.contains(there) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{command} {host}: {text}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Runs the real `mmmctl` with `--monitor` for every monitor, from the root namespace.
    pub fn mmmctl(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut cmd = std::process::Command::new(workspace_bin("mmmctl"));
        for a in self.monitor_addrs() {
            cmd.arg("--monitor").arg(a);
        }
        if let Some(tls) = &self.configs.tls {
            cmd.arg("--config").arg(&tls.ctl_config);
        }
        cmd.args(args);
        let out = cmd.output().context("running mmmctl")?;
        Ok(out)
    }
}

/// The host holding `role` in a `show` reply, if any.
pub fn owner_of_role(show: &ShowReply, role: &str) -> Option<String> {
    show.hosts
        .iter()
        .find(|h| h.roles.iter().any(|r| r.role == role))
        .map(|h| h.name.clone())
}
