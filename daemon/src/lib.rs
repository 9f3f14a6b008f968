//! How `mmm-monitor` and `mmm-agent` behave as system daemons, the same for both:
//!
//! - **Readiness** (`Type=notify`): [`notify_ready`] once the listeners are bound, so `systemctl
//!   start` returns when the daemon answers and units ordered after it start in time.
//! - **Watchdog** (`WatchdogSec=`): [`spawn_watchdog`] pings systemd at half the period from a task
//!   of the daemon's runtime, so a wedged runtime (no task runs) gets the daemon restarted.
//! - **SIGHUP**: MMM's daemons and most others reload on SIGHUP; mmm-rs does not reload (a changed
//!   configuration is applied by a rolling restart: one monitor at a time, keeping quorum).
//!   [`spawn_sighup_notice`] makes SIGHUP log that instead of killing the daemon (SIGHUP's default).
//! - **Logs**: [`ansi_colours`] is true only when stderr is a terminal, so the journal gets no
//!   colour escape codes.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) the notifications do nothing.

use std::io::IsTerminal;
use std::time::Duration;

/// The shortest watchdog ping interval: a misconfigured tiny `WatchdogSec=` must not make the
/// daemon spin.
const MIN_WATCHDOG_PING: Duration = Duration::from_millis(50);

/// Whether log lines on stderr may carry ANSI colours: only on a terminal.
pub fn ansi_colours() -> bool {
    std::io::stderr().is_terminal()
}

/// Tells systemd the daemon is ready (`READY=1`). Failures are logged and otherwise ignored: a
/// daemon started outside systemd has no socket to tell.
pub fn notify_ready(program: &str) {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(program, error = %e, "cannot notify systemd of readiness");
    }
}

/// Tells systemd the daemon is stopping (`STOPPING=1`).
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// When systemd asks for watchdog pings (`WATCHDOG_USEC`, and `WATCHDOG_PID` naming this process
/// if set), pings at half the period from a task on the current runtime. Returns the ping
/// interval, `None` without a watchdog. Must be called within a tokio runtime.
pub fn spawn_watchdog() -> Option<Duration> {
    let period = sd_notify::watchdog_enabled()?;
    let every = (period / 2).max(MIN_WATCHDOG_PING);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "cannot send the watchdog ping to systemd");
            }
        }
    });
    tracing::info!(
        ping_every_ms = every.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(every)
}

/// The line logged on SIGHUP.
pub fn sighup_message(program: &str) -> String {
    format!(
        "SIGHUP received: {program} does not reload its configuration; apply a changed \
         configuration with a rolling restart (restart one {program} at a time, waiting until it \
         is back, e.g. `systemctl restart {program}`); this process keeps running unchanged"
    )
}

/// Replaces SIGHUP's default (terminate) by a log line saying a reload is a rolling restart. The
/// handler is installed before this returns. Must be called within a tokio runtime.
pub fn spawn_sighup_notice(program: &'static str) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::warn!("{}", sighup_message(program));
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sighup_message_names_the_rolling_restart() {
        let m = sighup_message("mmm-monitor");
        assert!(m.contains("rolling restart"), "{m}");
        assert!(m.contains("systemctl restart mmm-monitor"), "{m}");
    }

    #[tokio::test]
    async fn no_watchdog_outside_systemd() {
        std::env::remove_var("WATCHDOG_USEC");
        assert_eq!(spawn_watchdog(), None);
    }
}
