//! The writing half of the workload: one INSERT after another through the target, one connection while it
//! works and a new one after any error, each acknowledged id recorded with the server that accepted it.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mysql_async::prelude::Queryable;
use tokio::sync::watch;

use super::history::Ack;
use super::recorder::Recorder;
use super::TABLE;
use crate::users;

/// What the writer needs to know.
#[derive(Debug, Clone, Copy)]
pub(super) struct WriterSpec {
    /// Where writes go.
    pub target: Ipv4Addr,
    /// Pause between writes and before a reconnect.
    pub interval: Duration,
    /// Bound on connecting and on each statement.
    pub op_timeout: Duration,
    /// First id to write (ids then count up by one per attempt).
    pub first_id: u64,
}

/// Connects as the application user and asks which server it reached. A TCP connection stays with one
/// server, so every statement on it is accepted (or refused) by that server.
pub(super) async fn connect(
    target: Ipv4Addr,
    op_timeout: Duration,
) -> anyhow::Result<(mysql_async::Conn, u32)> {
    let mut conn = crate::mariadb::connect(
        target,
        users::APP_USER,
        users::APP_PASSWORD,
        Some(users::APP_DB),
        op_timeout,
    )
    .await?;
    let server_id: Option<u32> =
        tokio::time::timeout(op_timeout, conn.query_first("SELECT @@server_id"))
            .await
            .context("SELECT @@server_id timed out")??;
    let server_id = server_id.context("SELECT @@server_id returned no row")?;
    Ok((conn, server_id))
}

/// Sleeps for `pause` unless told to stop first; returns true if told to stop.
pub(super) async fn pause_or_stop(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(pause) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Writes until told to stop. Each id is tried once: acknowledged ids go to the recorder; an id whose INSERT
/// failed or timed out is unknown (it may or may not have been committed) and is never retried.
pub(super) async fn run(spec: WriterSpec, rec: Arc<Recorder>, mut stop: watch::Receiver<bool>) {
    let mut conn: Option<(mysql_async::Conn, u32)> = None;
    let mut next_id = spec.first_id;
    loop {
        if *stop.borrow() {
            break;
        }
        let (mut c, server_id) = match conn.take() {
            Some(c) => c,
            None => match connect(spec.target, spec.op_timeout).await {
                Ok(c) => {
                    tracing::debug!(target = %spec.target, server_id = c.1, "workload writer connected");
                    c
                }
                Err(e) => {
                    rec.error(Instant::now(), format!("connect: {e:#}"));
                    if pause_or_stop(spec.interval, &mut stop).await {
                        break;
                    }
                    continue;
                }
            },
        };
        let id = next_id;
        next_id += 1;
        let sql =
            format!("INSERT INTO {TABLE} (id, server_id, ts) VALUES ({id}, @@server_id, NOW(6))");
        let sent = Instant::now();
        match tokio::time::timeout(spec.op_timeout, c.query_drop(sql)).await {
            Ok(Ok(())) => {
                rec.ack(Ack {
                    id,
                    server_id,
                    sent,
                    acked: Instant::now(),
                });
                conn = Some((c, server_id));
            }
            Ok(Err(e)) => {
                rec.error(
                    Instant::now(),
                    format!("insert id {id} on server {server_id}: {e}"),
                );
                tracing::debug!(id, server_id, error = %e, "workload write failed; reconnecting");
            }
            Err(_) => {
                rec.error(
                    Instant::now(),
                    format!(
                        "insert id {id} on server {server_id}: no answer within {:?}",
                        spec.op_timeout
                    ),
                );
                tracing::debug!(id, server_id, "workload write timed out; reconnecting");
            }
        }
        if pause_or_stop(spec.interval, &mut stop).await {
            break;
        }
    }
    if let Some((c, _)) = conn {
        let _ = tokio::time::timeout(spec.op_timeout, c.disconnect()).await;
    }
}
