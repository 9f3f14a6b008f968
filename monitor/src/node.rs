//! One monitor node: wires the Raft node, the checks, the agent links, the observation reports,
//! the leader loop, the control service and the metrics endpoint together, and runs them until
//! shutdown. Servers take their listeners as arguments so tests can bind port 0.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mmm_config::Config;
use mmm_consensus::{ConsensusConfig, ConsensusNode, TransportOptions};
use mmm_proto::monitor_control_server::MonitorControlServer;
use mmm_proto::monitor_peer_server::MonitorPeerServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;

use crate::agents::AgentHub;
use crate::checks::Checker;
use crate::context::MonitorContext;
use crate::control::ControlService;
use crate::metrics::{MonitorMetrics, Readiness};
use crate::reports::{PeerService, ReportStore};

/// Binds the gRPC and metrics ports of this monitor node (`this`) and runs it.
pub async fn run_from_config(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (grpc, http) = bind(&config).await?;
    run(config, grpc, http, shutdown).await
}

/// Binds this monitor's gRPC and metrics listeners (from its `<monitor_node>`), so a caller can
/// tell systemd it is ready before [`run`].
pub async fn bind(config: &Config) -> anyhow::Result<(TcpListener, TcpListener)> {
    let me = config
        .this_monitor_node()
        .context("this monitor's <monitor_node> section is missing (check `this`)")?
        .clone();
    let grpc = TcpListener::bind((me.ip, me.port))
        .await
        .with_context(|| format!("cannot listen on {}:{} (gRPC)", me.ip, me.port))?;
    let http = TcpListener::bind((me.ip, me.metrics_port))
        .await
        .with_context(|| format!("cannot listen on {}:{} (metrics)", me.ip, me.metrics_port))?;
    Ok((grpc, http))
}

/// Runs a monitor node on the given listeners until `shutdown` resolves.
pub async fn run(
    config: Config,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let me = config
        .this_monitor_node()
        .context("this monitor's <monitor_node> section is missing (check `this`)")?
        .clone();
    if let Some(warning) = mmm_tls::plain_text_warning(&config.socket) {
        tracing::warn!("{warning}");
    }
    if config.single_monitor {
        tracing::warn!(
            "running as a one-node cluster: no redundancy (add <monitor_node> sections)"
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let members = ConsensusConfig::members_from(
        config
            .monitor_nodes
            .values()
            .map(|n| (n.name.as_str(), format!("{}:{}", n.ip, n.port)))
            .collect::<Vec<_>>()
            .iter()
            .map(|(n, a)| (*n, a.as_str())),
    );
    // <socket> type ssl: mutual TLS on every connection; certificates reload when their files change.
    let tls_material = mmm_tls::TlsMaterial::from_socket(&config.socket).context("<socket> TLS")?;
    let client_tls = tls_material
        .as_ref()
        .map(mmm_tls::ClientTls::new)
        .transpose()
        .context("TLS client set-up")?;
    let server_tls = tls_material
        .as_ref()
        .map(mmm_tls::ServerTls::new)
        .transpose()
        .context("TLS server set-up")?;
    // Raft and follower reports come only from the configured monitor nodes' certificates.
    let peers_only =
        mmm_tls::PeerGate(tls_material.as_ref().map(|_| {
            mmm_tls::PeerPolicy::new("monitor node", config.monitor_nodes.keys().cloned())
        }));
    let data_dir = config.monitor_data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
    let members = crate::membership::initial_members(
        &config,
        &me.name,
        &data_dir,
        members,
        client_tls.as_ref(),
    )
    .await?;
    let consensus = ConsensusNode::start_with(
        ConsensusConfig::new(me.name.clone(), data_dir, members),
        TransportOptions {
            tls: client_tls.clone(),
            ..TransportOptions::default()
        },
    )
    .await
    .context("starting the Raft node")?;

    let checker = Checker::start(&config, stop_rx.clone());
    let agent_addrs: BTreeMap<String, String> = config
        .hosts
        .values()
        .map(|h| (h.name.clone(), format!("{}:{}", h.ip, h.agent_port)))
        .collect();
    let agents = AgentHub::new(&me.name, &agent_addrs, client_tls.as_ref())?;
    agents.spawn_watchers(stop_rx.clone());
    let topology = crate::topology::TopologyCache::new();
    topology.spawn_pollers(&agents, stop_rx.clone());
    let reports = Arc::new(ReportStore::new(
        config.monitor_nodes.keys().cloned().collect(),
    ));
    let metrics = MonitorMetrics::new();

    let ctx = Arc::new(MonitorContext {
        name: me.name.clone(),
        config: Arc::clone(&config),
        consensus: Arc::clone(&consensus),
        checker,
        agents,
        reports: Arc::clone(&reports),
        metrics: Arc::clone(&metrics),
        topology,
        leader_contact: Default::default(),
        tls: client_tls,
    });

    tokio::spawn(crate::reporter::run(Arc::clone(&ctx), stop_rx.clone()));
    tokio::spawn(crate::leader::run(Arc::clone(&ctx), stop_rx.clone()));
    tokio::spawn(crate::observe::run(Arc::clone(&ctx), stop_rx.clone()));
    tokio::spawn(crate::topology::run_metrics(
        Arc::clone(&ctx),
        stop_rx.clone(),
    ));
    tokio::spawn(crate::membership::watch_mismatch(
        Arc::clone(&ctx),
        stop_rx.clone(),
    ));

    let router = crate::metrics::router(metrics, Arc::clone(&ctx) as Arc<dyn Readiness>)
        .merge(crate::http::router(Arc::clone(&ctx)));
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(async move {
        let r = axum::serve(http, router)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "metrics server failed");
        }
    });

    let peer = PeerService {
        store: reports,
        leader_name: {
            let c = Arc::clone(&consensus);
            Box::new(move || c.leader().map(|(_, n)| n.name))
        },
    };
    let mut grpc_stop = stop_rx.clone();
    tracing::info!(monitor = %me.name, grpc = %grpc.local_addr()?, tls = server_tls.is_some(), "monitor started");
    // mmmctl may use any certificate of the cluster CA (TLS checks that); Raft and reports need a
    // monitor node's.
    // Reflection lets standard gRPC tools (grpcurl, grpcui) list and call the services without the
    // .proto files; it describes the services and changes nothing.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mmm_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("gRPC reflection set-up")?;
    let router = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .add_service(reflection)
        .add_service(InterceptedService::new(
            consensus.raft_service(),
            peers_only.clone(),
        ))
        .add_service(MonitorControlServer::new(ControlService::new(Arc::clone(
            &ctx,
        ))))
        .add_service(InterceptedService::new(
            MonitorPeerServer::new(peer),
            peers_only,
        ));
    let stopped = async move {
        let _ = grpc_stop.wait_for(|s| *s).await;
    };
    let served = match &server_tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(mmm_tls::incoming(grpc, tls), stopped)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(mmm_tls::plain_incoming(grpc), stopped)
                .await
        }
    };
    consensus.shutdown().await;
    let _ = http_task.await;
    tracing::info!(monitor = %me.name, "monitor stopped");
    served.context("gRPC server failed")
}
