//! The agent's firewall: one nftables table ([`TABLE`]) in the host's network namespace, the one home
//! of every packet rule the agent makes. It serves two purposes.
//!
//! **VIP hand-over.** Clients keep sending to the MAC address their ARP cache holds for a VIP until
//! the new owner's gratuitous ARP reaches them. A connection attempt (TCP SYN) that reaches this host
//! after it removed the address is dropped by the kernel in silence, and the client waits out its
//! connect timeout (hundreds of milliseconds to seconds) before it tries again: after a crash or a
//! planned switchover that wait was most of the clients' write outage. So a VIP this host gives up is
//! *refused* for [`REFUSE_FOR`]: TCP packets addressed to it are redirected (DNAT) to the host's own
//! address, marked, and every marked packet is rejected with a TCP reset in the input hook; the reset
//! leaves with the VIP as its source (conntrack undoes the DNAT). The client tries again at once and
//! reaches the new owner as soon as it announced the address. The mark is set in the same rule as the
//! DNAT, so a packet is either refused or not redirected at all: none ever reaches a local socket
//! (mysqld) through a given-up VIP. An IP leaves the set before the host adds the address again.
//! While a VIP is refused the host also sends no ARP packet naming it as the sender (a table of the
//! `arp` family, same name): its resets and the errors of the sessions it kills would otherwise make it
//! resolve a client's address with the VIP as sender, and the client would take that for the VIP's
//! owner and come back to it.
//!
//! **Cutting off an isolated source.** When a replica stops its IO thread from a source that is
//! isolated (`crate::isolation`), MariaDB's semi-sync replica first connects to that source to kill
//! its dump thread and waits up to `rpl_semi_sync_slave_kill_conn_timeout` when the source is
//! unreachable (a host whose link is down): a second of a failover's outage. While it stops the
//! thread from a source that does not answer, the agent rejects its own server's connections to that
//! source's address and port with a TCP reset ([`CUT_FOR`] at most), so the attempt fails at once; the
//! thread stops all the same. A source that answers is never cut off: its dump thread must be killed,
//! or it stays there as a semi-sync replica that never acknowledges.
//!
//! Every element has a timeout, so the kernel forgets it by itself, even if the agent dies; the
//! table is replaced whole at agent start. Safety: nothing here accepts a connection, holds an
//! address or lets a packet through that would not pass without it; VIPs are added and removed
//! exactly as before. Without `nft` (Debian package `nftables`) or when the table cannot be
//! installed, the agent says so once and works without both (clients of a moved VIP wait for their
//! connect timeout; stopping replication from an unreachable source takes that second). IPv4 only,
//! like the VIPs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::io::AsyncWriteExt;

/// The nftables table (family `ip`) the agent owns in its namespace; replaced whole at start.
pub const TABLE: &str = "mmm_agent";
/// How long a given-up VIP is refused: past a failover's catch-up and the new owner's gratuitous ARP
/// rounds (1 s) in the usual case; after it, attempts are dropped again as without the hand-over.
pub const REFUSE_FOR: Duration = Duration::from_secs(10);
/// Longest a source stays cut off: the cut is taken back as soon as the IO thread stopped; this only
/// bounds what an agent that dies meanwhile leaves behind.
pub const CUT_FOR: Duration = Duration::from_secs(5);
/// A VIP refused this recently is not refused again (its element has most of [`REFUSE_FOR`] left).
const RECENT: Duration = Duration::from_secs(1);
/// Packet mark of a redirected packet, the input hook's reason to reset it ("mmm" + 1).
const MARK: u32 = 0x6d6d_6d01;
/// Longest one `nft` run may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(2);

/// The table, with every packet bound for the set `refused` redirected to `host_ip` to be reset, and
/// every connection of this host to an (address, port) of the set `cut` reset.
pub fn ruleset(host_ip: Ipv4Addr) -> String {
    format!(
        "table ip {TABLE} {{}}\n\
         delete table ip {TABLE}\n\
         table ip {TABLE} {{\n\
         \tset refused {{\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t}}\n\
         \tset cut {{\n\t\ttype ipv4_addr . inet_service\n\t\tflags timeout\n\t}}\n\
         \tchain redirect_refused {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tip daddr @refused meta l4proto tcp meta mark set {MARK:#x} dnat to {host_ip}\n\
         \t}}\n\
         \tchain reset_refused {{\n\
         \t\ttype filter hook input priority -300; policy accept;\n\
         \t\tmeta mark {MARK:#x} meta l4proto tcp reject with tcp reset\n\
         \t}}\n\
         \tchain reset_cut {{\n\
         \t\ttype filter hook output priority -300; policy accept;\n\
         \t\tip daddr . tcp dport @cut reject with tcp reset\n\
         \t}}\n\
         }}\n\
         table arp {TABLE} {{}}\n\
         delete table arp {TABLE}\n\
         table arp {TABLE} {{\n\
         \tset refused {{\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t}}\n\
         \tchain quiet_refused {{\n\
         \t\ttype filter hook output priority 0; policy accept;\n\
         \t\tarp saddr ip @refused drop\n\
         \t}}\n\
         }}\n"
    )
}

/// The commands that put `element` in `set` of the table of `family` for `for_` from now (an element
/// still there is replaced, so its timeout starts again).
pub fn add_commands(family: &str, set: &str, element: &str, for_: Duration) -> String {
    format!(
        "{}add element {family} {TABLE} {set} {{ {element} timeout {}ms }}\n",
        remove_commands(family, set, element),
        for_.as_millis().max(1)
    )
}

/// The commands that take `element` out of `set` of the table of `family` whether or not it is there
/// (adding an element that is there is no error, deleting one that is not would be).
pub fn remove_commands(family: &str, set: &str, element: &str) -> String {
    format!(
        "add element {family} {TABLE} {set} {{ {element} timeout 1ms }}\n\
         delete element {family} {TABLE} {set} {{ {element} }}\n"
    )
}

/// Both sets of refused VIPs (redirected and reset; never an ARP sender) gain `ip` for `for_`.
fn refuse_commands(ip: Ipv4Addr, for_: Duration) -> String {
    let e = ip.to_string();
    add_commands("ip", "refused", &e, for_) + &add_commands("arp", "refused", &e, for_)
}

/// Both sets of refused VIPs lose `ip`.
fn stop_commands(ip: Ipv4Addr) -> String {
    let e = ip.to_string();
    remove_commands("ip", "refused", &e) + &remove_commands("arp", "refused", &e)
}

/// The agent's firewall (see the module docs).
#[derive(Debug)]
pub struct Firewall {
    /// The host's own address, where refused packets are redirected to be reset; `None` (IPv6 host
    /// address) turns the firewall off.
    host_ip: Option<Ipv4Addr>,
    /// The table is installed: elements can be added.
    ready: AtomicBool,
    /// VIPs refused and since when, so that only those are taken out of the set again.
    refused: Mutex<BTreeMap<Ipv4Addr, Instant>>,
}

impl Firewall {
    /// A firewall redirecting to `host_ip`; nothing is installed until [`Firewall::install`].
    pub fn new(host_ip: IpAddr) -> Self {
        Firewall {
            host_ip: match host_ip {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            },
            ready: AtomicBool::new(false),
            refused: Mutex::new(BTreeMap::new()),
        }
    }

    /// Installs the table afresh (forgetting every element of an earlier run). On failure the agent
    /// works without it; the reason is logged.
    pub async fn install(&self) {
        let Some(host_ip) = self.host_ip else {
            tracing::warn!("agent firewall off (VIP hand-over, cutting off isolated sources): the host address is not IPv4");
            return;
        };
        match nft(&ruleset(host_ip)).await {
            Ok(()) => {
                self.ready.store(true, Ordering::Relaxed);
                tracing::info!(table = TABLE, refuse_for = ?REFUSE_FOR, "agent firewall installed: given-up VIPs are refused with a TCP reset");
            }
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "agent firewall off (clients of a moved VIP wait for their connect timeout; stopping replication from an unreachable source waits for it): cannot install the nftables table"
            ),
        }
    }

    /// The table is installed.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Starts refusing VIP `ip` (before the address is removed, so there is no gap); false when it
    /// could not (no table, or `nft` failed).
    pub async fn refuse(&self, ip: Ipv4Addr) -> bool {
        if !self.ready() {
            return false;
        }
        // Refused a moment ago (the demotion refuses first, the removal after it): one `nft` run,
        // not two, on a failover's path.
        if lock(&self.refused)
            .get(&ip)
            .is_some_and(|t| t.elapsed() < RECENT)
        {
            return true;
        }
        match nft(&refuse_commands(ip, REFUSE_FOR)).await {
            Ok(()) => {
                lock(&self.refused).insert(ip, Instant::now());
                tracing::info!(vip = %ip, refuse_for = ?REFUSE_FOR, "given-up VIP refused with a TCP reset");
                true
            }
            Err(e) => {
                tracing::warn!(vip = %ip, error = %format!("{e:#}"), "cannot refuse a given-up VIP");
                false
            }
        }
    }

    /// Stops refusing VIP `ip` (called before the address is added again). An error leaves the
    /// address refused: the caller must not add it.
    pub async fn stop_refusing(&self, ip: Ipv4Addr) -> anyhow::Result<()> {
        let recent = lock(&self.refused)
            .get(&ip)
            .is_some_and(|t| t.elapsed() < REFUSE_FOR + Duration::from_secs(1));
        if !recent {
            return Ok(());
        }
        nft(&stop_commands(ip))
            .await
            .with_context(|| format!("cannot stop refusing {ip}"))?;
        lock(&self.refused).remove(&ip);
        tracing::info!(vip = %ip, "VIP no longer refused");
        Ok(())
    }

    /// Runs `work` with this host's connections to `ip:port` reset (see the module docs); without
    /// the table, just runs it.
    pub async fn while_cut_off<T>(
        &self,
        ip: Ipv4Addr,
        port: u16,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let element = format!("{ip} . {port}");
        let cut = self.ready()
            && match nft(&add_commands("ip", "cut", &element, CUT_FOR)).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(source = %element, error = %format!("{e:#}"), "cannot cut off a source");
                    false
                }
            };
        let out = work.await;
        if cut {
            // Taken back off the caller's path (the candidate is catching up).
            tokio::spawn(async move {
                if let Err(e) = nft(&remove_commands("ip", "cut", &element)).await {
                    tracing::warn!(source = %element, error = %format!("{e:#}"), "cannot take back a cut (it expires by itself)");
                }
            });
        }
        out
    }
}

/// Runs `nft -f -` with `script` on stdin, within [`NFT_TIMEOUT`].
async fn nft(script: &str) -> anyhow::Result<()> {
    let run = async {
        let mut child = tokio::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run nft")?;
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("nft: no stdin"))?;
        stdin.write_all(script.as_bytes()).await?;
        drop(stdin);
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "nft failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(NFT_TIMEOUT, run)
        .await
        .map_err(|_| anyhow!("nft: no answer within {NFT_TIMEOUT:?}"))?
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_replaces_the_table_and_marks_what_it_redirects() {
        let r = ruleset("10.0.0.11".parse().unwrap());
        assert!(r.starts_with(&format!("table ip {TABLE} {{}}\ndelete table ip {TABLE}\n")));
        assert!(r.contains(
            "ip daddr @refused meta l4proto tcp meta mark set 0x6d6d6d01 dnat to 10.0.0.11"
        ));
        assert!(r.contains("meta mark 0x6d6d6d01 meta l4proto tcp reject with tcp reset"));
        assert!(r.contains("ip daddr . tcp dport @cut reject with tcp reset"));
        assert!(r.contains("arp saddr ip @refused drop"));
        assert_eq!(
            r.matches("flags timeout").count(),
            3,
            "every element expires"
        );
    }

    #[test]
    fn elements_expire_and_are_taken_back_without_error() {
        assert_eq!(
            remove_commands("ip", "refused", "10.0.0.100"),
            format!(
                "add element ip {TABLE} refused {{ 10.0.0.100 timeout 1ms }}\n\
                 delete element ip {TABLE} refused {{ 10.0.0.100 }}\n"
            )
        );
        assert_eq!(
            add_commands("ip", "cut", "10.0.0.11 . 3306", Duration::from_secs(5)),
            format!(
                "{}add element ip {TABLE} cut {{ 10.0.0.11 . 3306 timeout 5000ms }}\n",
                remove_commands("ip", "cut", "10.0.0.11 . 3306")
            )
        );
        // A refused VIP is in both tables: redirected and reset, and never an ARP sender.
        let ip = "10.0.0.100".parse().unwrap();
        let r = refuse_commands(ip, Duration::from_secs(10));
        for family in ["ip", "arp"] {
            assert!(r.contains(&format!(
                "add element {family} {TABLE} refused {{ 10.0.0.100 timeout 10000ms }}"
            )));
            assert!(stop_commands(ip).contains(&format!("delete element {family} {TABLE} refused")));
        }
    }
}
