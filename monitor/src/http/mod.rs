//! The read-only HTTP side of a monitor, on its metrics port beside `/metrics`: a JSON API and a
//! status page.
//!
//! Rules:
//! - only `GET`, no credentials, nothing that changes the cluster (as Patroni's `GET` endpoints): the
//!   same facts `mmmctl` reads, in the same JSON as `mmmctl --json` ([`mmmctl::view`]);
//! - every answer is built by the gRPC control service's own handlers, so the API and mmmctl can never
//!   disagree; each handler is bounded by [`API_TIMEOUT`];
//! - the status page is one HTML file with its script inside, compiled into the binary: nothing is
//!   fetched from anywhere but this monitor's own API.
//!
//! Endpoints: `/api/v1/cluster` (`show --extended`, with staleness), `/api/v1/history?limit=N`,
//! `/api/v1/checks`, `/api/v1/raft` (`mmmctl cluster`), `/` (the page).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use mmm_proto::monitor_control_server::MonitorControl;
use mmm_proto::{
    ChecksRequest, ClusterStatusRequest, HistoryRequest, ShowRequest, PROTOCOL_VERSION,
};
use mmmctl::view;
use serde::Deserialize;

use crate::context::MonitorContext;
use crate::control::ControlService;

/// Longest time one API answer may take: `/api/v1/raft` may ask the leader (which has a 1 s connect
/// timeout), everything else is read from memory.
pub const API_TIMEOUT: Duration = Duration::from_secs(3);

/// Most decisions `/api/v1/history` returns at once (the replicated history is bounded anyway).
pub const HISTORY_MAX: u32 = 1000;

/// The status page, served at `/`.
pub const STATUS_PAGE: &str = include_str!("status.html");

/// Shared by the handlers.
#[derive(Clone)]
struct Api {
    /// The control service whose handlers build every answer.
    control: Arc<ControlService>,
}

/// `?limit=N` of `/api/v1/history`.
#[derive(Debug, Deserialize)]
struct HistoryQuery {
    /// How many decisions, newest last (default 20, at most [`HISTORY_MAX`]).
    limit: Option<u32>,
}

/// The API and the page, to merge into the metrics router.
pub fn router(ctx: Arc<MonitorContext>) -> axum::Router {
    let api = Api {
        control: Arc::new(ControlService::new(ctx)),
    };
    axum::Router::new()
        .route("/", get(page))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/history", get(history))
        .route("/api/v1/checks", get(checks))
        .route("/api/v1/raft", get(raft))
        .with_state(api)
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(STATUS_PAGE))
}

/// A failed or late answer as `{"error": "..."}` with a fitting status.
fn error(code: StatusCode, msg: String) -> Response {
    (code, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Runs one control handler under [`API_TIMEOUT`] and renders its reply with `to_view`.
async fn answer<T, V: serde::Serialize>(
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    to_view: impl FnOnce(&T) -> V,
) -> Response {
    match tokio::time::timeout(API_TIMEOUT, fut).await {
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no answer within {API_TIMEOUT:?}"),
        ),
        Ok(Err(s)) => {
            let code = match s.code() {
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
                tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(code, s.message().to_string())
        }
        Ok(Ok(r)) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(to_view(r.get_ref())),
        )
            .into_response(),
    }
}

async fn cluster(State(api): State<Api>) -> Response {
    let req = tonic::Request::new(ShowRequest {
        protocol_version: PROTOCOL_VERSION,
        extended: true,
    });
    answer(api.control.show(req), |r| view::ShowView::from(r)).await
}

async fn history(State(api): State<Api>, Query(q): Query<HistoryQuery>) -> Response {
    let req = tonic::Request::new(HistoryRequest {
        protocol_version: PROTOCOL_VERSION,
        limit: q.limit.unwrap_or(20).clamp(1, HISTORY_MAX),
    });
    answer(api.control.history(req), |r| view::HistoryView::from(r)).await
}

async fn checks(State(api): State<Api>) -> Response {
    let req = tonic::Request::new(ChecksRequest {
        protocol_version: PROTOCOL_VERSION,
        host: String::new(),
        check: String::new(),
    });
    answer(api.control.checks(req), |r| view::ChecksView::from(r)).await
}

async fn raft(State(api): State<Api>) -> Response {
    let req = tonic::Request::new(ClusterStatusRequest {
        protocol_version: PROTOCOL_VERSION,
        local: false,
    });
    answer(api.control.cluster_status(req), |r| {
        view::ClusterView::from(r)
    })
    .await
}
