//! Validation of incoming requests against the configuration: a request naming another host, an unknown
//! role or IP, an IP under the wrong role, an unknown protocol version or malformed data is refused with
//! `INVALID_ARGUMENT` naming the field. The result is a [`DesiredStatus`] the rest of the agent can trust.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use mmm_proto::{HostState, SetStatusRequest, PROTOCOL_VERSION};
use tonic::Status;

use crate::epoch::Epoch;
use crate::topology::Topology;

/// Catch-up timeout used when a request leaves `catchup_timeout_millis` at 0.
pub const DEFAULT_CATCHUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest catch-up wait a request may ask for.
pub const MAX_CATCHUP_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest writer lease a request may grant (a longer one is surely a bug in the sender).
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// A validated SetStatus: what the monitor cluster decided for this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredStatus {
    /// Epoch of the decision.
    pub epoch: Epoch,
    /// Host state (MMM's states).
    pub state: HostState,
    /// Role IPs this host must hold, sorted, no duplicates.
    pub roles: BTreeSet<(String, Ipv4Addr)>,
    /// The active master's host name; `None` when there is none.
    pub active_master: Option<String>,
    /// Writer lease (only when the writer role is among `roles`).
    pub lease: Option<Duration>,
    /// The monitor node that sent it (for logs).
    pub monitor: String,
    /// How long to wait for replication catch-up before promotion or re-pointing.
    pub catchup_timeout: Duration,
    /// Planned hand-over of the writer role: hold writes and keep the writer VIP until released.
    pub hold_writes: bool,
    /// The agent's own stamp the lease counts from (see [`crate::lease`]).
    pub stamp: Option<crate::lease::Stamp>,
    /// Catch-up asked of the failover's candidate: the GTID position to reach ("" for what it
    /// received from its source).
    pub catch_up: Option<String>,
    /// The sending monitor cluster's id ("" from a monitor that has none): the epoch store accepts
    /// only the cluster it adopted.
    pub cluster_id: String,
    /// Hosts this host must not replicate from now (see [`crate::isolation`]).
    pub isolate_from: BTreeSet<String>,
    /// The hosts of `isolate_from` that are HARD_OFFLINE: a source among them is given less time to
    /// answer before it is cut off (see [`crate::isolation`]).
    pub hard_offline: BTreeSet<String>,
    /// Errant transactions to save, undo and rejoin from (see [`crate::rejoin`]); `None`: none asked.
    pub rejoin: Option<String>,
}

impl DesiredStatus {
    /// True when the decision gives this host the writer role.
    pub fn has_writer(&self, topo: &Topology) -> bool {
        self.roles.iter().any(|(r, _)| topo.is_writer_role(r))
    }

    /// Every IP this host must hold.
    pub fn ips(&self) -> BTreeSet<Ipv4Addr> {
        self.roles.iter().map(|(_, ip)| *ip).collect()
    }
}

/// Refuses a protocol version this agent cannot read.
pub fn check_protocol_version(version: u32) -> Result<(), Status> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "protocol_version: {version} is not supported (this agent speaks version {PROTOCOL_VERSION})"
        )))
    }
}

/// Checks a SetStatus request against the topology.
pub fn validate_set_status(
    topo: &Topology,
    req: &SetStatusRequest,
) -> Result<DesiredStatus, Status> {
    check_protocol_version(req.protocol_version)?;
    if req.host != topo.this {
        return Err(Status::invalid_argument(format!(
            "host: this is the agent of '{}', not of '{}'",
            topo.this, req.host
        )));
    }
    let epoch = req
        .epoch
        .as_ref()
        .map(Epoch::from)
        .ok_or_else(|| Status::invalid_argument("epoch: missing"))?;
    let state = match HostState::try_from(req.state) {
        Ok(HostState::Unspecified) | Err(_) => {
            return Err(Status::invalid_argument(format!(
                "state: {} is not a host state",
                req.state
            )))
        }
        Ok(s) => s,
    };
    let mut roles = BTreeSet::new();
    for (i, r) in req.roles.iter().enumerate() {
        let Some(role) = topo.roles.get(&r.role) else {
            return Err(Status::invalid_argument(format!(
                "roles[{i}].role: unknown role '{}'",
                r.role
            )));
        };
        let ip: Ipv4Addr = r.ip.parse().map_err(|_| {
            Status::invalid_argument(format!("roles[{i}].ip: '{}' is not an IPv4 address", r.ip))
        })?;
        if !role.ips.contains(&ip) {
            return Err(Status::invalid_argument(format!(
                "roles[{i}].ip: {ip} is not an IP of role '{}'",
                r.role
            )));
        }
        if !role.hosts.contains(&topo.this) {
            return Err(Status::invalid_argument(format!(
                "roles[{i}].role: host '{}' may not hold role '{}'",
                topo.this, r.role
            )));
        }
        if !roles.insert((r.role.clone(), ip)) {
            return Err(Status::invalid_argument(format!(
                "roles[{i}]: {}({ip}) is listed twice",
                r.role
            )));
        }
    }
    let active_master = match req.active_master.as_str() {
        "" => None,
        name if topo.hosts.contains_key(name) => Some(name.to_string()),
        name => {
            return Err(Status::invalid_argument(format!(
                "active_master: unknown host '{name}'"
            )))
        }
    };
    let has_writer = roles.iter().any(|(r, _)| topo.is_writer_role(r));
    let lease = match (has_writer, req.lease_millis) {
        (false, _) => None,
        (true, 0) => {
            return Err(Status::invalid_argument(
                "lease_millis: the writer role needs a lease (got 0)",
            ))
        }
        (true, ms) if Duration::from_millis(ms) > MAX_LEASE => {
            return Err(Status::invalid_argument(format!(
                "lease_millis: {ms} is longer than {MAX_LEASE:?}"
            )))
        }
        (true, ms) => Some(Duration::from_millis(ms)),
    };
    if has_writer && active_master.as_deref() != Some(topo.this.as_str()) {
        return Err(Status::invalid_argument(format!(
            "active_master: '{}' but the writer role is given to '{}'",
            req.active_master, topo.this
        )));
    }
    let catchup_timeout = match req.catchup_timeout_millis {
        0 => DEFAULT_CATCHUP_TIMEOUT,
        ms if Duration::from_millis(ms) > MAX_CATCHUP_TIMEOUT => {
            return Err(Status::invalid_argument(format!(
                "catchup_timeout_millis: {ms} is longer than {MAX_CATCHUP_TIMEOUT:?}"
            )))
        }
        ms => Duration::from_millis(ms),
    };
    let isolate_from = known_hosts("isolate_from", &req.isolate_from, topo)?;
    let hard_offline = known_hosts("hard_offline", &req.hard_offline, topo)?;
    let rejoin = req.rejoin_errant.trim();
    if !rejoin.is_empty() && crate::rejoin::parse_position(rejoin).is_none() {
        return Err(Status::invalid_argument(format!(
            "rejoin_errant: {:?} is not a GTID position (domain-server_id-seq, comma-separated)",
            rejoin.chars().take(80).collect::<String>()
        )));
    }
    if !req.cluster_id.is_empty() && !mmm_proto::is_cluster_id(&req.cluster_id) {
        return Err(Status::invalid_argument(format!(
            "cluster_id: {:?} is not {} lower-case hex digits",
            req.cluster_id.chars().take(80).collect::<String>(),
            mmm_proto::CLUSTER_ID_LEN
        )));
    }
    Ok(DesiredStatus {
        epoch,
        state,
        roles,
        active_master,
        lease,
        monitor: req.monitor.clone(),
        catchup_timeout,
        hold_writes: req.hold_writes && !has_writer,
        stamp: req.lease_stamp.map(|s| crate::lease::Stamp {
            boot_id: s.boot_id,
            seq: s.seq,
        }),
        cluster_id: req.cluster_id.clone(),
        catch_up: req.catch_up.then(|| req.catch_up_gtid.trim().to_string()),
        isolate_from,
        hard_offline,
        rejoin: (!rejoin.is_empty()).then(|| rejoin.to_string()),
    })
}

/// The host names of the list `field`, each one of the topology's hosts (an unknown one is refused,
/// named by its place in the list).
fn known_hosts(field: &str, names: &[String], topo: &Topology) -> Result<BTreeSet<String>, Status> {
    let mut set = BTreeSet::new();
    for (i, h) in names.iter().enumerate() {
        if !topo.hosts.contains_key(h) {
            return Err(Status::invalid_argument(format!(
                "{field}[{i}]: unknown host '{}'",
                h.chars().take(80).collect::<String>()
            )));
        }
        set.insert(h.clone());
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::RoleInfo;
    use mmm_proto::RoleIp;

    fn topo() -> Topology {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        Topology {
            this: "db1".into(),
            hosts: [
                ("db1", "10.0.0.11"),
                ("db2", "10.0.0.12"),
                ("db3", "10.0.0.13"),
            ]
            .into_iter()
            .map(|(n, i)| (n.to_string(), ip(i)))
            .collect(),
            roles: [
                (
                    "writer".to_string(),
                    RoleInfo {
                        ips: vec![v4("10.0.0.100")],
                        hosts: vec!["db1".into(), "db2".into()],
                        exclusive: true,
                    },
                ),
                (
                    "reader".to_string(),
                    RoleInfo {
                        ips: vec![v4("10.0.0.101"), v4("10.0.0.102")],
                        hosts: vec!["db1".into(), "db2".into(), "db3".into()],
                        exclusive: false,
                    },
                ),
                (
                    "special".to_string(),
                    RoleInfo {
                        ips: vec![v4("10.0.0.110")],
                        hosts: vec!["db3".into()],
                        exclusive: false,
                    },
                ),
            ]
            .into_iter()
            .collect(),
            writer_role: Some("writer".into()),
        }
    }

    fn good() -> SetStatusRequest {
        SetStatusRequest {
            protocol_version: PROTOCOL_VERSION,
            host: "db1".into(),
            epoch: Some(mmm_proto::Epoch { term: 2, index: 7 }),
            state: HostState::Online as i32,
            roles: vec![
                RoleIp {
                    role: "writer".into(),
                    ip: "10.0.0.100".into(),
                },
                RoleIp {
                    role: "reader".into(),
                    ip: "10.0.0.101".into(),
                },
            ],
            active_master: "db1".into(),
            lease_millis: 3000,
            monitor: "mon1".into(),
            catchup_timeout_millis: 0,
            hold_writes: false,
            cluster_id: "0123456789abcdef0123456789abcdef".into(),
            ..Default::default()
        }
    }

    #[test]
    fn holding_writes_is_ignored_for_the_writer() {
        let mut r = good();
        r.hold_writes = true;
        assert!(!validate_set_status(&topo(), &r).unwrap().hold_writes);
        r.roles.remove(0);
        r.lease_millis = 0;
        r.active_master = "db2".into();
        assert!(validate_set_status(&topo(), &r).unwrap().hold_writes);
    }

    #[test]
    fn a_good_request_is_accepted() {
        let d = validate_set_status(&topo(), &good()).unwrap();
        assert_eq!(d.epoch, Epoch::new(2, 7));
        assert!(d.has_writer(&topo()));
        assert_eq!(d.lease, Some(Duration::from_secs(3)));
        assert_eq!(d.catchup_timeout, DEFAULT_CATCHUP_TIMEOUT);
        assert_eq!(d.ips().len(), 2);
        assert_eq!(d.active_master.as_deref(), Some("db1"));
        assert_eq!(d.cluster_id, "0123456789abcdef0123456789abcdef");
        let mut old_monitor = good();
        old_monitor.cluster_id.clear();
        assert_eq!(
            validate_set_status(&topo(), &old_monitor)
                .unwrap()
                .cluster_id,
            "",
            "no id is valid (the epoch store decides)"
        );
    }

    #[test]
    fn a_reader_without_lease_is_accepted() {
        let mut r = good();
        r.roles.remove(0);
        r.lease_millis = 0;
        r.active_master = "db2".into();
        let d = validate_set_status(&topo(), &r).unwrap();
        assert!(!d.has_writer(&topo()));
        assert_eq!(d.lease, None);
    }

    #[test]
    fn every_kind_of_bad_request_names_its_field() {
        type Breaker = fn(&mut SetStatusRequest);
        let cases: Vec<(&str, Breaker)> = vec![
            ("protocol_version", |r| r.protocol_version = 99),
            ("protocol_version", |r| r.protocol_version = 0),
            ("host", |r| r.host = "db2".into()),
            ("epoch", |r| r.epoch = None),
            ("state", |r| r.state = 0),
            ("state", |r| r.state = 42),
            ("roles[0].role", |r| r.roles[0].role = "nope".into()),
            ("roles[0].ip", |r| r.roles[0].ip = "not-an-ip".into()),
            ("roles[0].ip", |r| r.roles[0].ip = "10.0.0.101".into()),
            ("roles[1].ip", |r| r.roles[1].ip = "10.0.0.99".into()),
            ("roles[1].role", |r| {
                r.roles[1] = RoleIp {
                    role: "special".into(),
                    ip: "10.0.0.110".into(),
                }
            }),
            ("roles[1]", |r| r.roles[1] = r.roles[0].clone()),
            ("active_master", |r| r.active_master = "db9".into()),
            ("active_master", |r| r.active_master = "db2".into()),
            ("lease_millis", |r| r.lease_millis = 0),
            ("lease_millis", |r| r.lease_millis = u64::MAX),
            ("catchup_timeout_millis", |r| {
                r.catchup_timeout_millis = u64::MAX
            }),
            ("cluster_id", |r| r.cluster_id = "prod".into()),
            ("cluster_id", |r| {
                r.cluster_id = "0123456789ABCDEF0123456789ABCDEF".into()
            }),
            ("cluster_id", |r| r.cluster_id.push('0')),
            ("isolate_from[1]", |r| {
                r.isolate_from = vec!["db2".into(), "db9".into()]
            }),
            ("hard_offline[0]", |r| r.hard_offline = vec!["db9".into()]),
            ("rejoin_errant", |r| r.rejoin_errant = "0-1".into()),
            ("rejoin_errant", |r| {
                r.rejoin_errant = "0-1-5; DROP TABLE t".into()
            }),
        ];
        for (field, breaker) in cases {
            let mut r = good();
            breaker(&mut r);
            let err = validate_set_status(&topo(), &r).expect_err(field);
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{field}: {err:?}");
            assert!(
                err.message().starts_with(&format!("{field}:")),
                "{field}: {}",
                err.message()
            );
        }
    }
}
