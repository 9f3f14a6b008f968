//! The `ping` check (ICMP echo, MMM's 0.5 s) and the monitor's own network check over `ping_ips`.
//!
//! How often a host is pinged ([`probe_interval`]): every fortieth of the check's `trap_period`, and at
//! least every `check_period`. A failure counts once it has lasted `trap_period` from the first failed
//! probe's result to a later one's, every probe between failing too (see `status`); so how soon a lost
//! host counts depends on how soon after the loss the first probe is sent. Pinged every `check_period`
//! (1 s by default) that first probe comes up to a whole period late, and a majority of monitors each
//! wait their own share of it. Pinged every `trap_period / 40`, a lost host counts within
//! `trap_period + timeout + trap_period / 40` (2.55 s with the defaults). Denser probing does not let a
//! shorter blip count: the rule still needs failing probes sent `trap_period` apart with no answer
//! between, and more probes between only make that harder. One echo is 44 bytes on the wire; 20 hosts
//! pinged every 50 ms by three monitors are 1,200 packets a second. A monitor sends at most
//! [`MAX_PINGS_PER_SECOND`] over all its hosts: past 50 hosts each is probed less often, down to
//! every `check_period`, as before.
//!
//! One ICMP socket per address family is shared by every host's ping; replies are matched by
//! address and a sequence number that is unique across the process, so any number of pings can be
//! in flight at once.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use mmm_config::CheckConfig;
use surge_ping::{Client, Config, PingIdentifier, PingSequence, SurgeError, ICMP};

use super::status::CheckOutcome;

/// MMM's ping timeout.
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// Probes per `trap_period`: the first probe after a loss is at most a fortieth of `trap_period` late
/// (50 ms with the default 2 s), so detection is within 2.5 % of the least the counting rule allows.
pub const PROBES_PER_TRAP_PERIOD: u32 = 40;
/// The densest probing whatever `trap_period` says (a `trap_period` under a second still pings only
/// 20 times a second).
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Echoes one monitor sends a second at most, over all its hosts: a monitor of many hosts probes each
/// less often (1,000 hosts: every second), so dense probing costs a small cluster nothing it would
/// notice and a large one no more than a bounded share of a core (`bench/src/bin/scale.rs`).
pub const MAX_PINGS_PER_SECOND: u64 = 1_000;

/// How often the ping check of `ping` probes each of `hosts` hosts: a fortieth of its `trap_period`,
/// but no more than [`MAX_PINGS_PER_SECOND`] over all hosts, at least every `check_period`, and at most
/// every [`MIN_PROBE_INTERVAL`]. See the module docs for why.
pub fn probe_interval(ping: &CheckConfig, hosts: usize) -> Duration {
    let dense = ping.trap_period / PROBES_PER_TRAP_PERIOD;
    let budget =
        Duration::from_micros((hosts as u64).saturating_mul(1_000_000) / MAX_PINGS_PER_SECOND);
    dense
        .max(budget)
        .min(ping.check_period)
        .max(MIN_PROBE_INTERVAL)
}

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
        // A pinger is a handle on the shared socket (two reference counts): one per probe lets probes
        // to one host overlap, which one kept pinger (its `ping` takes `&mut self`) would not.
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

    #[test]
    fn probe_interval_table() {
        // (check_period, trap_period, hosts) in ms -> probe interval in ms
        let cases = [
            ((1_000, 2_000, 4), 50),      // defaults
            ((500, 1_000, 4), 50),        // the fast profile (a fortieth is below the floor)
            ((5_000, 10_000, 4), 250),    // MMM's timing
            ((200, 10_000, 4), 200),      // a short check_period is kept
            ((1_000, 0, 4), 50),          // no trap period: the densest
            ((10, 2_000, 4), 50),         // never denser than MIN_PROBE_INTERVAL
            ((1_000, 600_000, 4), 1_000), // never sparser than check_period
            ((1_000, 2_000, 50), 50),     // 1,000 echoes a second
            ((1_000, 2_000, 100), 100),   // the budget spreads them
            ((1_000, 2_000, 250), 250),
            ((1_000, 2_000, 1_000), 1_000),
            ((1_000, 2_000, 5_000), 1_000), // check_period still holds
        ];
        for ((period, trap, hosts), want) in cases {
            let c = CheckConfig {
                check_period: Duration::from_millis(period),
                trap_period: Duration::from_millis(trap),
                ..CheckConfig::default()
            };
            assert_eq!(
                probe_interval(&c, hosts),
                Duration::from_millis(want),
                "check_period {period} ms, trap_period {trap} ms, {hosts} hosts"
            );
        }
    }

    /// The counting rule under the ping loop's schedule (a probe sent every `interval`, probes
    /// overlapping, a lost one answering at its timeout, an answer older than one recorded dropped),
    /// for a loss of the link from `start` for `length` ms: when (ms) the failure counts, if it does.
    fn counted_at(interval: u64, timeout: u64, trap: u64, start: u64, length: u64) -> Option<u64> {
        use crate::checks::status::{CheckOutcome, CheckTrack};
        let trap_d = Duration::from_millis(trap);
        let horizon = start.saturating_add(length.min(60_000)) + 2 * trap + 2 * timeout;
        // (answered, sent, lost) of every probe, in the order the answers come.
        let mut answers: Vec<(u64, u64, bool)> = (1..)
            .map(|i| i * interval)
            .take_while(|sent| *sent < horizon)
            .map(|sent| {
                let lost = sent >= start && sent - start < length;
                (if lost { sent + timeout } else { sent }, sent, lost)
            })
            .collect();
        answers.sort();
        let mut track = CheckTrack::new(&CheckOutcome::ok("up"), 0, 0, trap_d);
        let mut newest = 0;
        for (answered, sent, lost) in answers {
            if sent < newest {
                continue;
            }
            newest = sent;
            let outcome = if lost {
                CheckOutcome::fail("no reply")
            } else {
                CheckOutcome::ok("reply")
            };
            track.record(&outcome, answered, 0, trap_d);
            if !track.counted_ok {
                return Some(answered);
            }
        }
        None
    }

    #[test]
    fn dense_probes_count_a_loss_sooner_and_no_blip_shorter_than_trap_period() {
        for (period, trap, timeout) in [(1_000, 2_000, 500), (500, 1_000, 500)] {
            let c = CheckConfig {
                check_period: Duration::from_millis(period),
                trap_period: Duration::from_millis(trap),
                ..CheckConfig::default()
            };
            let dense = probe_interval(&c, 4).as_millis() as u64;
            for start in (10_000..10_000 + period).step_by(7) {
                // A lasting loss counts within trap + timeout + one probe interval, whatever the phase.
                let at = counted_at(dense, timeout, trap, start, u64::MAX).expect("a loss counts");
                assert!(
                    at - start <= trap + timeout + dense,
                    "trap {trap}: loss at {start} counted after {} ms",
                    at - start
                );
                // Probing every check_period, as before, it may take up to a whole period more.
                let sparse = counted_at(period, timeout, trap, start, u64::MAX).expect("counts");
                assert!(sparse - start <= trap + timeout + period);
                // A blip shorter than trap_period never counts, however dense the probes.
                for length in (0..trap).step_by(50) {
                    assert_eq!(
                        counted_at(dense, timeout, trap, start, length),
                        None,
                        "trap {trap}: a {length} ms blip at {start} counted"
                    );
                }
                // A loss that lasts until the deciding probe's timeout does count (the rule can fire;
                // one that ends sooner is answered by a later probe before that timeout).
                let long = trap + timeout + dense + 1;
                assert!(counted_at(dense, timeout, trap, start, long).is_some());
            }
        }
    }

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
