//! The gRPC client: tries the monitors in order (connect timeout 1 s, call timeout `--timeout`);
//! any monitor answers, and the server forwards writes to the leader.

use std::future::Future;
use std::time::Duration;

use mmm_proto::monitor_control_client::MonitorControlClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::error::CtlError;
use crate::monitors::{MonitorAddr, Targets};

/// How long to wait for a TCP (and TLS) connection to one monitor.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Talks to whichever monitor answers first.
#[derive(Debug, Clone)]
pub struct Client {
    /// Monitors and TLS settings.
    targets: Targets,
    /// Time allowed for one call.
    timeout: Duration,
}

impl Client {
    /// A client for `targets`, allowing `timeout` per call.
    pub fn new(targets: Targets, timeout: Duration) -> Self {
        Client { targets, timeout }
    }

    /// The time allowed for one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Makes one call on the first monitor that can be reached. A monitor that cannot be reached
    /// (or answers UNAVAILABLE for a transport reason) is skipped; any other answer is final.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, CtlError>
    where
        F: Fn(MonitorControlClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut tried = Vec::new();
        for m in &self.targets.monitors {
            let client = match self.connect(m).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(monitor = %m.addr, error = %e, "cannot connect");
                    tried.push((m.addr.clone(), e));
                    continue;
                }
            };
            match tokio::time::timeout(self.timeout, f(client)).await {
                Err(_) => {
                    return Err(CtlError::Timeout {
                        monitor: m.addr.clone(),
                        secs: self.timeout.as_secs_f64(),
                    })
                }
                Ok(Ok(r)) => return Ok(r.into_inner()),
                Ok(Err(s)) => match classify(&s) {
                    Some(e) => return Err(e),
                    None => {
                        tracing::debug!(monitor = %m.addr, status = %s, "monitor unavailable");
                        tried.push((m.addr.clone(), s.message().to_string()));
                    }
                },
            }
        }
        Err(CtlError::CannotConnect { tried })
    }

    /// Like [`Client::call`], but prefers an answer that `stale` finds fresh: a reply for which `stale`
    /// returns a reason is kept while the next monitors are tried, and used only when none answers
    /// fresh. Returns the reply and, when it is not the first monitor's fresh answer, why each monitor
    /// before it (or the one used) was passed over, one line each.
    pub async fn call_prefer_fresh<T, F, Fut>(
        &self,
        f: F,
        stale: impl Fn(&T) -> Option<String>,
    ) -> Result<(T, Vec<String>), CtlError>
    where
        F: Fn(MonitorControlClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut tried = Vec::new();
        let mut notes = Vec::new();
        let mut kept: Option<(String, T)> = None;
        for m in &self.targets.monitors {
            let client = match self.connect(m).await {
                Ok(c) => c,
                Err(e) => {
                    notes.push(format!("monitor {} not reachable: {e}", m.addr));
                    tried.push((m.addr.clone(), e));
                    continue;
                }
            };
            match tokio::time::timeout(self.timeout, f(client)).await {
                Err(_) => {
                    let why = format!("no answer within {} s", self.timeout.as_secs_f64());
                    notes.push(format!("monitor {}: {why}", m.addr));
                    tried.push((m.addr.clone(), why));
                }
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    match stale(&r) {
                        None => {
                            if !notes.is_empty() {
                                notes.push(format!("answered by monitor {}", m.addr));
                            }
                            return Ok((r, notes));
                        }
                        Some(why) => {
                            notes.push(format!(
                                "monitor {} answered from stale state: {why}",
                                m.addr
                            ));
                            if kept.is_none() {
                                kept = Some((m.addr.clone(), r));
                            }
                        }
                    }
                }
                Ok(Err(s)) => match classify(&s) {
                    // A definite answer (e.g. an unknown host) is the answer, as in `call`, also
                    // after monitors that could not be reached.
                    Some(e) => return Err(e),
                    None => {
                        notes.push(format!("monitor {}: {}", m.addr, s.message()));
                        tried.push((m.addr.clone(), s.message().to_string()));
                    }
                },
            }
        }
        match kept {
            Some((addr, r)) => {
                notes.push(format!(
                    "no monitor in contact with the leader answered; using the stale answer of {addr}"
                ));
                Ok((r, notes))
            }
            None => Err(CtlError::CannotConnect { tried }),
        }
    }

    /// Connects to one monitor within [`CONNECT_TIMEOUT`].
    async fn connect(&self, m: &MonitorAddr) -> Result<MonitorControlClient<Channel>, String> {
        let scheme = if self.targets.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut ep = Endpoint::from_shared(format!("{scheme}://{}", m.addr))
            .map_err(|e| format!("bad address: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(self.timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &self.targets.tls {
            let server_name = m.name.clone().unwrap_or_else(|| host_of(&m.addr));
            ep = ep
                .tls_config(tls.clone().domain_name(server_name))
                .map_err(|e| format!("TLS: {e}"))?;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_millis(200), ep.connect()).await
        {
            Ok(Ok(ch)) => Ok(MonitorControlClient::new(ch)),
            Ok(Err(e)) => Err(format!("{e}: {}", source_chain(&e))),
            Err(_) => Err("connect timed out".into()),
        }
    }
}

/// The host part of `HOST:PORT`.
fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// The causes of an error, `: `-joined.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// What a gRPC error means for the user; None when another monitor should be tried.
pub fn classify(s: &Status) -> Option<CtlError> {
    let msg = s.message().trim();
    match s.code() {
        Code::Unavailable if msg.to_ascii_lowercase().contains("quorum") => {
            let rest = strip_prefix_ci(msg, "no quorum:")
                .map(str::trim)
                .unwrap_or(msg);
            Some(CtlError::NoQuorum(rest.to_string()))
        }
        Code::Unavailable | Code::Unknown if is_transport(s) => None,
        Code::DeadlineExceeded => Some(CtlError::Refused(format!("No answer in time: {msg}"))),
        _ => Some(CtlError::Refused(if msg.is_empty() {
            format!("{:?}", s.code())
        } else {
            msg.to_string()
        })),
    }
}

/// True for errors raised by the transport, not by the monitor's service code.
fn is_transport(s: &Status) -> bool {
    s.code() == Code::Unavailable
        || std::error::Error::source(s).is_some_and(|e| e.is::<tonic::transport::Error>())
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix))
    .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_quorum_and_refusals() {
        let e = classify(&Status::unavailable("No quorum: 1 of 3 monitors reachable")).unwrap();
        assert_eq!(e.to_string(), "ERROR: No quorum: 1 of 3 monitors reachable");
        let e = classify(&Status::unavailable("leader has no quorum")).unwrap();
        assert_eq!(e.to_string(), "ERROR: No quorum: leader has no quorum");
        assert!(classify(&Status::unavailable("connection refused")).is_none());
        let e = classify(&Status::not_found("Unknown host name 'dbx'!")).unwrap();
        assert_eq!(e.to_string(), "ERROR: Unknown host name 'dbx'!");
        assert_eq!(host_of("[::1]:9988"), "::1");
        assert_eq!(host_of("10.0.0.1:9988"), "10.0.0.1");
    }
}
