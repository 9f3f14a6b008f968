//! Role endpoints for proxies and load balancers, in Patroni's style: where L2 VIPs cannot move (clouds
//! without gratuitous ARP) or clients go through a proxy, the proxy asks every agent which host is the
//! writer. Served with `/metrics` on `<agent> metrics_port` (see `deploy/haproxy/haproxy.cfg`).
//!
//! Rules:
//! - `GET /writer` answers 200 only while every one of these holds: this host holds the writer role of
//!   the last accepted status, its writer lease is valid, the agent allowed writes
//!   ([`Agent::writable_now`]), the local mysqld answers, and a probe no older than [`PROBE_MAX_AGE`]
//!   read `read_only=0`. Anything else is 503 with the reason. A proxy that checks it therefore stops
//!   routing to a writer whose lease ran out even if that host's VIP or mysqld says otherwise.
//! - `GET /reader` answers 200 while this host holds a reader (non-writer) role, or while it is ONLINE and a
//!   replica whose IO and SQL threads run with a backlog within `rep_backlog`'s `max_backlog`; else 503.
//! - `GET /health` answers 200 while the local mysqld answers the agent's health probe, else 503.
//! - Every body is one JSON object of the facts the verdict was made from, with `reason` saying why.
//! - The SQL probe (`read_only`, replica status) is shared by every request and cached for
//!   [`PROBE_MAX_AGE`]: checks every 100 ms from several proxies cost one short connection per interval.
//!   A failed or timed-out probe counts as "not writable" and "not a healthy replica".

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use mmm_proto::{HostState, MysqlHealth};
use serde::Serialize;

use crate::agent::Agent;
use crate::db::DbTarget;

/// How old a cached SQL probe may be when a verdict is made. Short against a proxy's check interval
/// (the example checks every 200 ms) so a read_only flip is seen within about one check, long enough that
/// many proxies checking often share one connection.
pub const PROBE_MAX_AGE: Duration = Duration::from_millis(250);
/// Bound on the whole probe (connecting and both statements): well under a proxy's check timeout (the
/// example's `timeout check` is 1 s), so a hung mysqld yields a 503, not a check timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(400);

/// What the SQL probe read from the local mysqld.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerFacts {
    /// `@@read_only`.
    pub read_only: bool,
    /// Replication of this server, `None` when it is not a replica.
    pub replica: Option<ReplicaFacts>,
}

/// The replica side of [`ServerFacts`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaFacts {
    /// The IO thread runs.
    pub io_running: bool,
    /// The SQL thread runs.
    pub sql_running: bool,
    /// Seconds behind the source; `None` when the server does not know (threads stopped).
    pub seconds_behind: Option<u64>,
}

/// Everything a verdict is made from; the JSON body of every answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleFacts {
    /// `this`.
    pub host: String,
    /// State of the last accepted status (`UNKNOWN` before the first one).
    pub state: String,
    /// Roles of the last accepted status, as `role(ip)`.
    pub roles: Vec<String>,
    /// This host holds the writer role with a valid lease and the agent allowed writes.
    pub writer_lease: bool,
    /// The agent's health probe says the local mysqld answers.
    pub mysqld_up: bool,
    /// The SQL probe's result (`Err` says why it failed), `None` when the verdict needed none.
    pub server: Option<Result<ServerFacts, String>>,
}

/// MMM's spelling of a state (`ONLINE`), as `mmm_control show` prints it.
fn state_name(state: HostState) -> &'static str {
    let name = state.as_str_name();
    name.strip_prefix("HOST_STATE_").unwrap_or(name)
}

/// A verdict: 200 or 503, and why.
pub type Verdict = Result<String, String>;

/// `/writer`'s verdict on the facts.
pub fn writer_verdict(f: &RoleFacts) -> Verdict {
    if !f.writer_lease {
        return Err(
            "this host does not hold the writer role with a valid lease and allowed writes".into(),
        );
    }
    if !f.mysqld_up {
        return Err("the local mysqld does not answer".into());
    }
    match &f.server {
        Some(Ok(s)) if !s.read_only => Ok("writer: lease valid and read_only=0".into()),
        Some(Ok(_)) => Err("read_only=1 on the local mysqld".into()),
        Some(Err(e)) => Err(format!("cannot read read_only: {e}")),
        None => Err("read_only not probed".into()),
    }
}

/// `/reader`'s verdict on the facts: `reader_roles` are the held roles that are not the writer's.
pub fn reader_verdict(f: &RoleFacts, reader_roles: &[String], max_backlog: Duration) -> Verdict {
    if !f.mysqld_up {
        return Err("the local mysqld does not answer".into());
    }
    if let Some(role) = reader_roles.first() {
        return Ok(format!("holds the reader role {role}"));
    }
    if f.state != state_name(HostState::Online) {
        return Err(format!("holds no reader role and is {}", f.state));
    }
    match &f.server {
        Some(Ok(ServerFacts {
            replica: Some(r), ..
        })) => {
            if !(r.io_running && r.sql_running) {
                return Err("holds no reader role and replication is not running".into());
            }
            match r.seconds_behind {
                Some(s) if Duration::from_secs(s) <= max_backlog => Ok(format!(
                    "ONLINE replica {s}s behind (max_backlog {max_backlog:?})"
                )),
                Some(s) => Err(format!(
                    "holds no reader role and is {s}s behind (max_backlog {max_backlog:?})"
                )),
                None => Err("holds no reader role and the replication backlog is unknown".into()),
            }
        }
        Some(Ok(_)) => Err("holds no reader role and is not a replica".into()),
        Some(Err(e)) => Err(format!(
            "holds no reader role; cannot read replica status: {e}"
        )),
        None => Err("replica status not probed".into()),
    }
}

/// The endpoints' shared state.
pub struct Endpoints {
    /// The agent whose roles and lease are reported.
    agent: Arc<Agent>,
    /// Where the probe connects (the agent's own account, with [`PROBE_TIMEOUT`]).
    target: DbTarget,
    /// `rep_backlog`'s `max_backlog`: the most a replica without a reader role may lag and still be
    /// offered to readers (the monitors use the same bound).
    max_backlog: Duration,
    /// The last probe and when it was made; the lock also makes concurrent requests share one probe.
    cache: tokio::sync::Mutex<Option<(Instant, Result<ServerFacts, String>)>>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("max_backlog", &self.max_backlog)
            .finish_non_exhaustive()
    }
}

impl Endpoints {
    /// The endpoints of `agent`, offering lagging replicas to readers up to `max_backlog`.
    pub fn new(agent: Arc<Agent>, max_backlog: Duration) -> Self {
        let mut target = agent.db.clone();
        target.connect_timeout = PROBE_TIMEOUT;
        target.stmt_timeout = PROBE_TIMEOUT;
        Endpoints {
            agent,
            target,
            max_backlog,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The facts without the SQL probe.
    fn facts(&self) -> RoleFacts {
        let (state, roles) = self.agent.assigned();
        RoleFacts {
            host: self.agent.local.name.clone(),
            state: state_name(state).to_string(),
            roles: roles.iter().map(|(r, ip)| format!("{r}({ip})")).collect(),
            writer_lease: self.agent.writable_now(),
            mysqld_up: self.agent.health().borrow().mysql == MysqlHealth::Up,
            server: None,
        }
    }

    /// The held roles that are not the writer role.
    fn reader_roles(&self) -> Vec<String> {
        let (_, roles) = self.agent.assigned();
        roles
            .into_iter()
            .filter(|(r, _): &(String, Ipv4Addr)| !self.agent.topo.is_writer_role(r))
            .map(|(r, ip)| format!("{r}({ip})"))
            .collect()
    }

    /// The SQL probe, at most [`PROBE_MAX_AGE`] old.
    async fn server(&self) -> Result<ServerFacts, String> {
        let mut cache = self.cache.lock().await;
        if let Some((at, facts)) = cache.as_ref() {
            if at.elapsed() <= PROBE_MAX_AGE {
                return facts.clone();
            }
        }
        let facts = probe(&self.target).await;
        *cache = Some((Instant::now(), facts.clone()));
        facts
    }
}

/// Reads `read_only` and the replica status, the whole bounded by [`PROBE_TIMEOUT`]; the connection is
/// closed in the background so a slow close does not delay the answer.
async fn probe(target: &DbTarget) -> Result<ServerFacts, String> {
    let work = async {
        let mut db = target.connect().await.map_err(|e| e.to_string())?;
        let result = async {
            let read_only = db.read_only().await?;
            let replica = db.replica_status().await?.map(|r| ReplicaFacts {
                io_running: r.io_running,
                sql_running: r.sql_running,
                seconds_behind: u64::try_from(r.seconds_behind).ok(),
            });
            anyhow::Ok(ServerFacts { read_only, replica })
        }
        .await
        .map_err(|e| format!("{e:#}"));
        tokio::spawn(db.close());
        result
    };
    tokio::time::timeout(PROBE_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")))
}

/// The answer: 200 or 503 with the facts and the reason as JSON.
fn answer(facts: RoleFacts, verdict: Verdict) -> (StatusCode, impl IntoResponse) {
    let (code, reason) = match verdict {
        Ok(r) => (StatusCode::OK, r),
        Err(r) => (StatusCode::SERVICE_UNAVAILABLE, r),
    };
    let mut body = serde_json::to_value(&facts).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("reason".into(), reason.into());
    }
    (code, axum::Json(body))
}

async fn writer(State(e): State<Arc<Endpoints>>) -> impl IntoResponse {
    let mut facts = e.facts();
    // The probe only matters when everything else says "writer".
    if facts.writer_lease && facts.mysqld_up {
        facts.server = Some(e.server().await);
    }
    let verdict = writer_verdict(&facts);
    answer(facts, verdict)
}

async fn reader(State(e): State<Arc<Endpoints>>) -> impl IntoResponse {
    let mut facts = e.facts();
    let reader_roles = e.reader_roles();
    if reader_roles.is_empty() && facts.mysqld_up {
        facts.server = Some(e.server().await);
    }
    let verdict = reader_verdict(&facts, &reader_roles, e.max_backlog);
    answer(facts, verdict)
}

async fn health(State(e): State<Arc<Endpoints>>) -> impl IntoResponse {
    let facts = e.facts();
    let verdict = e
        .agent
        .readiness()
        .map(|()| "the local mysqld answers".to_string());
    answer(facts, verdict)
}

/// The router of `/writer`, `/reader` and `/health` (merged into the metrics router).
pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/writer", get(writer))
        .route("/reader", get(reader))
        .route("/health", get(health))
        .with_state(Arc::new(endpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer_facts() -> RoleFacts {
        RoleFacts {
            host: "db1".into(),
            state: "ONLINE".into(),
            roles: vec!["writer(10.0.0.100)".into()],
            writer_lease: true,
            mysqld_up: true,
            server: Some(Ok(ServerFacts {
                read_only: false,
                replica: None,
            })),
        }
    }

    fn replica_facts(behind: Option<u64>, running: bool) -> RoleFacts {
        RoleFacts {
            host: "db3".into(),
            roles: vec![],
            writer_lease: false,
            server: Some(Ok(ServerFacts {
                read_only: true,
                replica: Some(ReplicaFacts {
                    io_running: running,
                    sql_running: running,
                    seconds_behind: behind,
                }),
            })),
            ..writer_facts()
        }
    }

    #[test]
    fn writer_needs_lease_mysqld_and_read_only_off() {
        assert!(writer_verdict(&writer_facts()).is_ok());
        let no_lease = RoleFacts {
            writer_lease: false,
            ..writer_facts()
        };
        assert!(writer_verdict(&no_lease).unwrap_err().contains("lease"));
        let down = RoleFacts {
            mysqld_up: false,
            ..writer_facts()
        };
        assert!(writer_verdict(&down).unwrap_err().contains("mysqld"));
        let read_only = RoleFacts {
            server: Some(Ok(ServerFacts {
                read_only: true,
                replica: None,
            })),
            ..writer_facts()
        };
        assert!(writer_verdict(&read_only)
            .unwrap_err()
            .contains("read_only=1"));
        let failed = RoleFacts {
            server: Some(Err("timed out".into())),
            ..writer_facts()
        };
        assert!(writer_verdict(&failed).unwrap_err().contains("timed out"));
        let unprobed = RoleFacts {
            server: None,
            ..writer_facts()
        };
        assert!(writer_verdict(&unprobed).is_err());
    }

    #[test]
    fn reader_role_or_healthy_online_replica() {
        let max = Duration::from_secs(60);
        let holder = replica_facts(None, false);
        assert!(reader_verdict(&holder, &["reader(10.0.0.101)".into()], max).is_ok());
        assert!(reader_verdict(&replica_facts(Some(3), true), &[], max).is_ok());
        assert!(reader_verdict(&replica_facts(Some(61), true), &[], max)
            .unwrap_err()
            .contains("61s behind"));
        assert!(reader_verdict(&replica_facts(Some(0), false), &[], max)
            .unwrap_err()
            .contains("not running"));
        assert!(reader_verdict(&replica_facts(None, true), &[], max).is_err());
        let offline = RoleFacts {
            state: "ADMIN_OFFLINE".into(),
            ..replica_facts(Some(0), true)
        };
        assert!(reader_verdict(&offline, &[], max)
            .unwrap_err()
            .contains("ADMIN_OFFLINE"));
        // The writer without a reader role is not offered to readers.
        assert!(reader_verdict(&writer_facts(), &[], max)
            .unwrap_err()
            .contains("not a replica"));
        let down = RoleFacts {
            mysqld_up: false,
            ..replica_facts(Some(0), true)
        };
        assert!(reader_verdict(&down, &["reader(10.0.0.101)".into()], max).is_err());
    }
}
