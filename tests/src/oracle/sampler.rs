//! The sampler: what every DB server says about itself, independent of any monitor or agent.
//!
//! Per host, two tasks sample every `interval` (see [`super::DEFAULT_SAMPLE_INTERVAL`]):
//! - `SELECT @@global.read_only` over a persistent root connection through the server's unix socket (a file,
//!   reachable whatever the network does). `None` is recorded when the server does not answer within
//!   [`SAMPLE_TIMEOUT`] (dead, paused, overloaded); the connection is then dropped and re-made, with the same
//!   bound, at the next sample. Each host has its own task, so a paused server never delays the others.
//! - which configured VIPs are on the host's interfaces: one netlink address dump per sample on a socket made
//!   inside the host's namespace (an [`NsRuntime`]); `None` when the dump fails or times out.
//!
//! Samples are kept as [`Timeline`]s (runs of equal values), not one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::TryStreamExt;
use mysql_async::prelude::Queryable;
use rtnetlink::packet_route::address::AddressAttribute;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::netns::NsRuntime;
use super::timeline::Timeline;
use crate::users;

/// Bound on one sample (connect included). Long enough for a healthy server's local socket on a loaded
/// two-core machine; short enough that a dead or paused server shows as `None` within a few samples.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_millis(200);

/// What a host's `read_only` sampler records: `Some(read_only)` or `None` (no answer).
pub type ReadOnly = Option<bool>;
/// What a host's VIP sampler records: the configured VIPs present, or `None` (netlink dump failed).
pub type VipSet = Option<BTreeSet<Ipv4Addr>>;

/// Everything the sampler recorded, per host name.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// `@@global.read_only` per host.
    pub read_only: BTreeMap<String, Timeline<ReadOnly>>,
    /// Configured VIPs present per host.
    pub vips: BTreeMap<String, Timeline<VipSet>>,
}

/// One host as the sampler sees it.
#[derive(Debug, Clone)]
pub(super) struct SampledHost {
    /// Host name (`db1`).
    pub name: String,
    /// The server's unix socket.
    pub socket: PathBuf,
}

/// The running sampler tasks.
pub(super) struct Sampler {
    /// Tells every task to stop after its current sample.
    stop: watch::Sender<bool>,
    /// `read_only` tasks by host.
    read_only: Vec<(String, JoinHandle<Timeline<ReadOnly>>)>,
    /// VIP tasks by host (each on its host's namespace runtime).
    vips: Vec<(String, JoinHandle<Timeline<VipSet>>)>,
}

/// A root connection through a unix socket (`root@localhost`), bounded by `timeout`.
pub(super) async fn connect_socket(
    socket: &std::path::Path,
    timeout: Duration,
) -> anyhow::Result<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default()
        .socket(Some(socket.to_string_lossy().into_owned()))
        .user(Some(users::ROOT_USER))
        .pass(Some(users::ROOT_PASSWORD));
    tokio::time::timeout(timeout, mysql_async::Conn::new(opts))
        .await
        .with_context(|| {
            format!(
                "connecting to {}: no answer within {timeout:?}",
                socket.display()
            )
        })?
        .with_context(|| format!("connecting to {}", socket.display()))
}

/// Sleeps until `next` unless told to stop; true if told to stop.
async fn wait_until(next: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(next.into()) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn sample_read_only(
    host: SampledHost,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> Timeline<ReadOnly> {
    let mut timeline = Timeline::default();
    let mut conn: Option<mysql_async::Conn> = None;
    loop {
        let sent = Instant::now();
        let value = tokio::time::timeout(SAMPLE_TIMEOUT, async {
            let mut c = match conn.take() {
                Some(c) => c,
                None => connect_socket(&host.socket, SAMPLE_TIMEOUT).await?,
            };
            let ro: Option<bool> = c.query_first("SELECT @@global.read_only").await?;
            conn = Some(c);
            anyhow::Ok(ro)
        })
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
        timeline.push(sent, Instant::now(), value);
        if wait_until(sent + interval, &mut stop).await {
            break;
        }
    }
    if let Some(c) = conn {
        let _ = tokio::time::timeout(SAMPLE_TIMEOUT, c.disconnect()).await;
    }
    timeline
}

/// Dumps the namespace's addresses and keeps the configured VIPs among them.
async fn vips_present(
    handle: &rtnetlink::Handle,
    configured: &BTreeSet<Ipv4Addr>,
) -> anyhow::Result<BTreeSet<Ipv4Addr>> {
    let msgs: Vec<_> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .context("netlink address dump")?;
    Ok(msgs
        .iter()
        .flat_map(|m| m.attributes.iter())
        .filter_map(|a| match a {
            AddressAttribute::Address(IpAddr::V4(ip)) | AddressAttribute::Local(IpAddr::V4(ip)) => {
                Some(*ip)
            }
            _ => None,
        })
        .filter(|ip| configured.contains(ip))
        .collect())
}

/// Must run on the host's namespace runtime (the netlink socket is made here).
async fn sample_vips(
    configured: BTreeSet<Ipv4Addr>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> Timeline<VipSet> {
    let mut timeline = Timeline::default();
    let mut nl: Option<rtnetlink::Handle> = None;
    loop {
        let sent = Instant::now();
        let value = tokio::time::timeout(SAMPLE_TIMEOUT, async {
            let h = match nl.take() {
                Some(h) => h,
                None => {
                    let (conn, h, _) =
                        rtnetlink::new_connection().context("opening a netlink socket")?;
                    tokio::spawn(conn);
                    h
                }
            };
            let set = vips_present(&h, &configured).await?;
            nl = Some(h);
            anyhow::Ok(set)
        })
        .await
        .ok()
        .and_then(Result::ok);
        timeline.push(sent, Instant::now(), value);
        if wait_until(sent + interval, &mut stop).await {
            break;
        }
    }
    timeline
}

impl Sampler {
    /// Starts sampling every host: `read_only` on the caller's runtime, VIPs on each host's namespace runtime
    /// (`runtimes` by host name; a host without one gets no VIP sampling).
    pub fn start(
        hosts: &[SampledHost],
        runtimes: &BTreeMap<String, NsRuntime>,
        configured_vips: &BTreeSet<Ipv4Addr>,
        interval: Duration,
    ) -> Sampler {
        let (stop, stop_rx) = watch::channel(false);
        let read_only = hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    tokio::spawn(sample_read_only(h.clone(), interval, stop_rx.clone())),
                )
            })
            .collect();
        let vips = hosts
            .iter()
            .filter_map(|h| {
                let rt = runtimes.get(&h.name)?;
                Some((
                    h.name.clone(),
                    rt.handle().spawn(sample_vips(
                        configured_vips.clone(),
                        interval,
                        stop_rx.clone(),
                    )),
                ))
            })
            .collect();
        Sampler {
            stop,
            read_only,
            vips,
        }
    }

    /// Stops every task (each ends after its current sample, bounded by [`SAMPLE_TIMEOUT`]) and returns what
    /// they recorded; a task that does not end in time is aborted and its host's timeline is left empty.
    pub async fn stop(self) -> Samples {
        let _ = self.stop.send(true);
        let grace = SAMPLE_TIMEOUT * 3;
        let mut out = Samples::default();
        for (host, task) in self.read_only {
            out.read_only
                .insert(host, join_bounded(task, grace).await.unwrap_or_default());
        }
        for (host, task) in self.vips {
            out.vips
                .insert(host, join_bounded(task, grace).await.unwrap_or_default());
        }
        out
    }
}

/// Awaits a task for at most `grace`, aborting it after that.
pub(super) async fn join_bounded<T>(mut task: JoinHandle<T>, grace: Duration) -> Option<T> {
    match tokio::time::timeout(grace, &mut task).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "an oracle task failed");
            None
        }
        Err(_) => {
            tracing::warn!("an oracle task did not stop within {grace:?}; aborting it");
            task.abort();
            None
        }
    }
}
