//! `mmm-agent`: parses arguments, sets up logging, loads the configuration and runs the agent until
//! SIGINT or SIGTERM (or only checks the configuration, forgets the adopted monitor cluster, or keeps a
//! running writer's lease for the migration from MMM).
//! Under systemd it reports readiness once its listeners are bound and sends watchdog pings when
//! asked; SIGHUP only logs that a reload is a rolling restart (see `mmm_daemon`).

use std::process::ExitCode;

use clap::Parser;
use mmm_agent::cli::{Args, LogFormat};
use mmm_config::Program;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = mmm_daemon::ansi_colours();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    if let Err(e) = mmm_daemon::spawn_sighup_notice("mmm-agent") {
        tracing::warn!(error = %e, "cannot handle SIGHUP");
    }
    let config = match mmm_config::load(
        Program::Agent,
        args.cluster.as_deref(),
        args.config.as_deref(),
    ) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    if config.this_host().is_none() {
        eprintln!(
            "{}: `this` ({}) does not name a <host> section",
            config.source.display(),
            config.this.as_deref().unwrap_or("unset")
        );
        return ExitCode::FAILURE;
    }
    if args.check_config {
        print!("{}", config.render_effective());
        // Warnings (what was accepted but read differently from MMM, at FILE:LINE) were already
        // logged to stderr when the configuration was loaded: logging is set up first here.
        if let Some(warning) = mmm_tls::plain_text_warning(&config.socket) {
            eprintln!("warning: {warning}");
        }
        // The server's settings, when it can be reached (a configuration is checked before the server
        // runs, too: then this only says it could not look).
        return match mmm_agent::check_server_settings(&config, &mut std::io::stdout()).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!(
                    "error: the server misses settings the writer role requires (listed above)"
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("warning: {e:#}");
                ExitCode::SUCCESS
            }
        };
    }
    if args.forget_cluster {
        return match mmm_agent::forget_cluster(&config, &mut std::io::stdout()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mmm-agent --forget-cluster: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(seconds) = args.keep_writer {
        return match mmm_agent::keep_writer(
            &config,
            std::time::Duration::from_secs(seconds),
            &mut std::io::stdout(),
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mmm-agent --keep-writer: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let listeners = match mmm_agent::Listeners::bind(&config).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    mmm_daemon::notify_ready("mmm-agent");
    mmm_daemon::spawn_watchdog();
    let result = mmm_agent::run(config, listeners, shutdown_signal()).await;
    mmm_daemon::notify_stopping();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "mmm-agent failed");
            ExitCode::FAILURE
        }
    }
}
