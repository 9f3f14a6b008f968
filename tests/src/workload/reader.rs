//! The reading half of the workload: one task per reader address, reading the newest id and the serving
//! server every few tens of milliseconds, reconnecting after any error.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tokio::sync::watch;

use super::history::{Read, ReadOutcome};
use super::recorder::Recorder;
use super::writer::{connect, pause_or_stop};
use super::TABLE;

/// What one reader needs to know.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReaderSpec {
    /// Where reads go.
    pub target: Ipv4Addr,
    /// Pause between reads.
    pub interval: Duration,
    /// Bound on connecting and on each statement.
    pub op_timeout: Duration,
}

/// Reads until told to stop, recording every read's outcome.
pub(super) async fn run(spec: ReaderSpec, rec: Arc<Recorder>, mut stop: watch::Receiver<bool>) {
    let mut conn: Option<mysql_async::Conn> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let sent = Instant::now();
        let (outcome, kept) = read_once(spec, conn.take()).await;
        conn = kept;
        rec.read(Read {
            target: spec.target,
            sent,
            done: Instant::now(),
            outcome,
        });
        if pause_or_stop(spec.interval, &mut stop).await {
            break;
        }
    }
    if let Some(c) = conn {
        let _ = tokio::time::timeout(spec.op_timeout, c.disconnect()).await;
    }
}

/// One read on the given connection (or a new one); returns the connection if it is still good.
async fn read_once(
    spec: ReaderSpec,
    conn: Option<mysql_async::Conn>,
) -> (ReadOutcome, Option<mysql_async::Conn>) {
    let mut c = match conn {
        Some(c) => c,
        None => match connect(spec.target, spec.op_timeout).await {
            Ok((c, _)) => c,
            Err(e) => return (ReadOutcome::Err(format!("connect: {e:#}")), None),
        },
    };
    let sql = format!("SELECT MAX(id), @@server_id FROM {TABLE}");
    match tokio::time::timeout(spec.op_timeout, c.query_first::<(Option<u64>, u32), _>(sql)).await {
        Ok(Ok(Some((max_id, server_id)))) => (ReadOutcome::Ok { server_id, max_id }, Some(c)),
        Ok(Ok(None)) => (ReadOutcome::Err("the read returned no row".into()), None),
        Ok(Err(e)) => (ReadOutcome::Err(e.to_string()), None),
        Err(_) => (
            ReadOutcome::Err(format!("no answer within {:?}", spec.op_timeout)),
            None,
        ),
    }
}
