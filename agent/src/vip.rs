//! VIPs on the cluster interface through netlink (rtnetlink): list, add and remove /32 addresses, and
//! announce acquisitions with gratuitous ARP (5 rounds at once, then refreshed by the agent's loop).
//! A VIP is never announced from the moment its removal starts until it is added again: the rounds
//! of an acquisition run on after the call returns, and one sent after a quick hand-over would point
//! the clients back at this host (gratuitous ARP overrides a neighbour entry at once).
//! Only configured role IPs are ever touched; the host's own address is never changed. A VIP given up
//! is refused for a while ([`crate::firewall`]) so clients retry at once.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::Handle;

use crate::firewall::Firewall;
use crate::garp;

/// Longest one netlink request may take.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);
/// Gratuitous ARP rounds on every acquisition.
pub const GARP_ROUNDS: u32 = 5;
/// Pause between two gratuitous ARP rounds.
const GARP_INTERVAL: Duration = Duration::from_millis(200);

/// Adds and removes VIPs on one interface.
#[derive(Clone)]
pub struct VipManager {
    /// The rtnetlink handle (its connection task runs in the background).
    handle: Handle,
    /// `cluster_interface`.
    iface: String,
    /// Every configured role IP: the only addresses this manager adds or removes.
    managed: BTreeSet<Ipv4Addr>,
    /// One netlink request at a time on the shared socket: the kernel refuses a second dump while one
    /// is running on the same socket (EBUSY), and the agent's loops and commands run concurrently.
    request_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Refuses the VIPs this host gives up, so clients still sending to it retry at once.
    firewall: std::sync::Arc<Firewall>,
    /// VIPs whose removal started and that were not added since: never announced. Checked and sent
    /// under this lock, so no round already past the check can follow a removal.
    withdrawn: std::sync::Arc<std::sync::Mutex<BTreeSet<Ipv4Addr>>>,
}

impl std::fmt::Debug for VipManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VipManager")
            .field("iface", &self.iface)
            .field("managed", &self.managed)
            .finish()
    }
}

async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(NETLINK_TIMEOUT, fut)
        .await
        .map_err(|_| anyhow!("netlink {what}: no answer within {NETLINK_TIMEOUT:?}"))?
}

impl VipManager {
    /// Opens a netlink connection (must run inside a tokio runtime); given-up VIPs are refused by
    /// `firewall` once it is installed.
    pub fn new(
        iface: &str,
        managed: BTreeSet<Ipv4Addr>,
        firewall: std::sync::Arc<Firewall>,
    ) -> anyhow::Result<Self> {
        let (conn, handle, _) =
            rtnetlink::new_connection().context("cannot open a netlink socket")?;
        tokio::spawn(conn);
        Ok(VipManager {
            handle,
            iface: iface.to_string(),
            managed,
            request_lock: Default::default(),
            firewall,
            withdrawn: Default::default(),
        })
    }

    /// The agent's firewall (see [`crate::firewall`]).
    pub fn firewall(&self) -> &Firewall {
        &self.firewall
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The interface's index and MAC address.
    pub async fn link(&self) -> anyhow::Result<(u32, [u8; 6])> {
        let _one_at_a_time = self.request_lock.lock().await;
        bounded("link lookup", async {
            let mut links = self
                .handle
                .link()
                .get()
                .match_name(self.iface.clone())
                .execute();
            let Some(link) = links
                .try_next()
                .await
                .with_context(|| format!("interface {}", self.iface))?
            else {
                bail!("interface {} not found", self.iface);
            };
            let mac = link
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::Address(b) if b.len() == 6 => {
                        Some([b[0], b[1], b[2], b[3], b[4], b[5]])
                    }
                    _ => None,
                })
                .ok_or_else(|| anyhow!("interface {} has no Ethernet address", self.iface))?;
            Ok((link.header.index, mac))
        })
        .await
    }

    /// Configured role IPs present on the interface now.
    pub async fn present(&self) -> anyhow::Result<BTreeSet<Ipv4Addr>> {
        let (index, _) = self.link().await?;
        let _one_at_a_time = self.request_lock.lock().await;
        bounded("address dump", async {
            let msgs: Vec<_> = self
                .handle
                .address()
                .get()
                .set_link_index_filter(index)
                .execute()
                .try_collect()
                .await
                .context("listing addresses")?;
            Ok(msgs
                .iter()
                .flat_map(|m| m.attributes.iter())
                .filter_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V4(ip))
                    | AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })
                .filter(|ip| self.managed.contains(ip))
                .collect())
        })
        .await
    }

    /// Adds `ip/32` to the interface (no-op if present).
    pub async fn add(&self, ip: Ipv4Addr) -> anyhow::Result<()> {
        if !self.managed.contains(&ip) {
            bail!("{ip} is not a configured role IP");
        }
        self.firewall.stop_refusing(ip).await?;
        let (index, _) = self.link().await?;
        let _one_at_a_time = self.request_lock.lock().await;
        bounded("address add", async {
            match self
                .handle
                .address()
                .add(index, IpAddr::V4(ip), 32)
                .execute()
                .await
            {
                Ok(()) => Ok(()),
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
                Err(e) => Err(anyhow!("adding {ip}/32 to {}: {e}", self.iface)),
            }
        })
        .await?;
        self.withdrawn().remove(&ip);
        Ok(())
    }

    fn withdrawn(&self) -> std::sync::MutexGuard<'_, BTreeSet<Ipv4Addr>> {
        self.withdrawn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes every address `ip` from the interface (no-op if absent), refusing it from then on
    /// ([`crate::firewall`]).
    pub async fn remove(&self, ip: Ipv4Addr) -> anyhow::Result<()> {
        if !self.managed.contains(&ip) {
            bail!("{ip} is not a configured role IP");
        }
        // No gratuitous ARP for it from here on, also not a round of its acquisition still to come.
        self.withdrawn().insert(ip);
        if self.present().await?.contains(&ip) {
            // Refused before it goes: no moment when attempts are dropped in silence.
            self.firewall.refuse(ip).await;
        }
        let (index, _) = self.link().await?;
        let _one_at_a_time = self.request_lock.lock().await;
        bounded("address delete", async {
            let msgs: Vec<_> = self
                .handle
                .address()
                .get()
                .set_link_index_filter(index)
                .set_address_filter(IpAddr::V4(ip))
                .execute()
                .try_collect()
                .await
                .context("listing addresses")?;
            for m in msgs {
                match self.handle.address().del(m).execute().await {
                    Ok(()) => {}
                    Err(rtnetlink::Error::NetlinkError(e))
                        if e.raw_code() == -libc::EADDRNOTAVAIL => {}
                    Err(e) => return Err(anyhow!("removing {ip} from {}: {e}", self.iface)),
                }
            }
            Ok(())
        })
        .await
    }

    /// Sends gratuitous ARP for `ips` once (one round: a request and a reply each), leaving out those
    /// withdrawn since.
    pub async fn announce_once(&self, ips: &BTreeSet<Ipv4Addr>) -> anyhow::Result<()> {
        if ips.is_empty() {
            return Ok(());
        }
        let (index, mac) = self.link().await?;
        let withdrawn = self.withdrawn();
        for ip in ips.difference(&withdrawn) {
            garp::send(index, mac, *ip)
                .with_context(|| format!("gratuitous ARP for {ip} on {}", self.iface))?;
        }
        Ok(())
    }

    /// Announces newly acquired VIPs: the first round now, the remaining rounds in the background.
    pub async fn announce_acquired(&self, ips: BTreeSet<Ipv4Addr>) {
        if let Err(e) = self.announce_once(&ips).await {
            tracing::warn!(error = %format!("{e:#}"), "gratuitous ARP failed");
        }
        let me = self.clone();
        tokio::spawn(async move {
            for _ in 1..GARP_ROUNDS {
                tokio::time::sleep(GARP_INTERVAL).await;
                if let Err(e) = me.announce_once(&ips).await {
                    tracing::warn!(error = %format!("{e:#}"), "gratuitous ARP failed");
                }
            }
        });
    }
}
