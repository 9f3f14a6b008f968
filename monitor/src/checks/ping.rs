//! The `ping` check (ICMP echo, MMM's 0.5 s) and the monitor's own network check over `ping_ips`.
//!
//! One ICMP socket per address family is shared by every host's ping; replies are matched by
//! address and a sequence number that is unique across the process, so any number of pings can be
//! in flight at once.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use surge_ping::{Client, Config, PingIdentifier, PingSequence, SurgeError, ICMP};

use super::status::CheckOutcome;

/// MMM's ping timeout.
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Sequence numbers, unique across the process so replies of concurrent pings never mix.
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

/// ICMP sockets shared by the pings of every host.
pub struct Icmp {
    /// IPv4 socket, or why it could not be opened.
    v4: Result<Client, String>,
    /// IPv6 socket, or why it could not be opened.
    v6: Result<Client, String>,
}

impl Icmp {
    /// Opens the sockets (raw sockets need root, or ping sockets allowed by `ping_group_range`).
    /// Must be called inside a tokio runtime. A socket that cannot be opened makes every ping of
    /// that family Unknown, with the reason.
    pub fn open() -> Icmp {
        let open = |kind: ICMP| {
            Client::new(&Config::builder().kind(kind).build()).map_err(|e| {
                tracing::error!(?kind, error = %e, "cannot open ICMP socket; ping checks will be unknown");
                format!("cannot open ICMP socket: {e}")
            })
        };
        Icmp {
            v4: open(ICMP::V4),
            v6: open(ICMP::V6),
        }
    }

    /// Sends one echo request to `ip` and waits at most `timeout` for the reply.
    pub async fn ping(&self, ip: IpAddr, timeout: Duration) -> CheckOutcome {
        let client = match (ip, &self.v4, &self.v6) {
            (IpAddr::V4(_), Ok(c), _) | (IpAddr::V6(_), _, Ok(c)) => c,
            (IpAddr::V4(_), Err(e), _) | (IpAddr::V6(_), _, Err(e)) => {
                return CheckOutcome::unknown(e.clone());
            }
        };
        let mut pinger = client.pinger(ip, PingIdentifier(rand::random())).await;
        pinger.timeout(timeout);
        let seq = PingSequence(SEQUENCE.fetch_add(1, Ordering::Relaxed));
        // The pinger has its own timeout; this outer one also bounds the send.
        match tokio::time::timeout(
            timeout + Duration::from_millis(50),
            pinger.ping(seq, &[0u8; 16]),
        )
        .await
        {
            Ok(Ok((_, rtt))) => CheckOutcome::ok(format!(
                "Reply from {ip} in {:.3} ms",
                rtt.as_secs_f64() * 1000.0
            )),
            Ok(Err(SurgeError::Timeout { .. })) | Err(_) => CheckOutcome::fail(format!(
                "No reply from {ip} within {:.1} s",
                timeout.as_secs_f64()
            )),
            Ok(Err(e)) => CheckOutcome::fail(format!("Could not ping {ip}: {e}")),
        }
    }

    /// True if any of `ips` answers within `timeout` (all are pinged at once); true for an empty
    /// list. When no ICMP socket can be opened the answer is true, with an error logged: a monitor
    /// that cannot ping must not freeze the cluster on that account alone.
    pub async fn network_ok(&self, ips: &[IpAddr], timeout: Duration) -> bool {
        if ips.is_empty() {
            return true;
        }
        let results = futures::future::join_all(ips.iter().map(|ip| self.ping(*ip, timeout))).await;
        let ok = results.iter().any(|r| r.status == super::CheckStatus::Ok);
        let all_unknown = results
            .iter()
            .all(|r| r.status == super::CheckStatus::Unknown);
        if all_unknown {
            tracing::error!("network self-check cannot ping; assuming the network is fine");
            return true;
        }
        ok
    }
}

/// The monitor's own network check: true if any of `ping_ips` answers within `timeout`; true
/// when the list is empty. Opens its own sockets; the checker keeps one set for all pings.
pub async fn network_ok(ping_ips: &[IpAddr], timeout: Duration) -> bool {
    Icmp::open().network_ok(ping_ips, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckStatus;

    #[tokio::test]
    async fn ping_localhost_answers() {
        let icmp = Icmp::open();
        let r = icmp.ping("127.0.0.1".parse().unwrap(), PING_TIMEOUT).await;
        assert_eq!(r.status, CheckStatus::Ok, "{r:?}");
    }

    #[tokio::test]
    async fn ping_of_unrouted_address_fails_within_timeout() {
        let icmp = Icmp::open();
        let start = std::time::Instant::now();
        // TEST-NET-3: never routed; either no route (fails at once) or no reply (times out).
        let r = icmp
            .ping("203.0.113.254".parse().unwrap(), Duration::from_millis(300))
            .await;
        assert_eq!(r.status, CheckStatus::Fail, "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn network_ok_rules() {
        assert!(network_ok(&[], PING_TIMEOUT).await, "empty list is ok");
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let dead: IpAddr = "203.0.113.254".parse().unwrap();
        assert!(
            network_ok(&[dead, lo], Duration::from_millis(300)).await,
            "one answer is enough"
        );
        assert!(
            !network_ok(&[dead], Duration::from_millis(300)).await,
            "none answers"
        );
    }
}
