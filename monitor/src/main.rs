//! `mmm-monitor [@CLUSTER] [--config FILE] [--check-config]`: one node of the monitor cluster.
//!
//! Thin: arguments → configuration → [`mmm_monitor::node::run`] with listeners bound from the
//! configuration and Ctrl-C/SIGTERM as the shutdown signal; systemd is told when the listeners
//! are bound (`Type=notify`), watchdog pings are sent when asked, and SIGHUP only logs that a
//! reload is a rolling restart (see `mmm_daemon`).

use std::process::ExitCode;

use clap::Parser;
use mmm_config::Program;
use mmm_monitor::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(c) = &args.cluster {
        if !c.starts_with('@') {
            eprintln!("mmm-monitor: the cluster name must start with '@' (got '{c}')");
            return ExitCode::from(2);
        }
    }
    let config = match mmm_config::load(
        Program::Monitor,
        args.cluster.as_deref(),
        args.config.as_deref(),
    ) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            if args.check_config {
                eprintln!("configuration test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        print!("{}", config.render_effective());
        // What was accepted but read differently from MMM, at FILE:LINE.
        for w in &config.warnings {
            eprintln!("warning: {w}");
        }
        if let Some(warning) = mmm_tls::plain_text_warning(&config.socket) {
            eprintln!("warning: {warning}");
        }
        eprintln!("configuration {} is ok", config.source.display());
        return ExitCode::SUCCESS;
    }
    mmm_monitor::logging::init(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mmm-monitor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        mmm_daemon::spawn_sighup_notice("mmm-monitor")?;
        let (grpc, http) = mmm_monitor::node::bind(&config).await?;
        mmm_daemon::notify_ready("mmm-monitor");
        mmm_daemon::spawn_watchdog();
        let r = mmm_monitor::node::run(config, grpc, http, mmm_monitor::logging::shutdown_signal())
            .await;
        mmm_daemon::notify_stopping();
        r
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "monitor stopped");
            ExitCode::FAILURE
        }
    }
}
