//! `mmmctl`: parses the command line, runs the command, prints the error (if any) and exits
//! with status 0 on success, 1 on any failure (2 for a bad command line). Started as
//! `mmm_control`, it reads MMM's command line and keeps MMM's exit codes (see `mmmctl::compat`).

use std::io::Write;
use std::process::ExitCode;

use mmmctl::Cli;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mmm_control = args
        .first()
        .is_some_and(|a| mmmctl::compat::invoked_as_mmm_control(a));
    let parsed = if mmm_control {
        match mmmctl::compat::parse(&args) {
            mmmctl::compat::Invocation::Version(v) => {
                println!("{v}");
                return ExitCode::SUCCESS;
            }
            mmmctl::compat::Invocation::Usage(msg) => {
                eprintln!("{msg}");
                return ExitCode::from(255);
            }
            mmmctl::compat::Invocation::Run(cli) => Ok(*cli),
        }
    } else {
        Cli::try_parse_args(args)
    };
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let result = runtime.block_on(mmmctl::run(&cli, &mut stdout));
    let _ = stdout.flush();
    if let Err(mmmctl::CtlError::CannotConnect { tried }) = &result {
        for (addr, why) in tried {
            tracing::info!(monitor = %addr, error = %why, "monitor not reachable");
        }
    }
    if cli.mmm_control {
        let code = mmmctl::compat::exit_status(&result);
        if let Err(e) = &result {
            let msg = e.to_string();
            // A config MMM would refuse: its die message went to stderr.
            if matches!(e, mmmctl::CtlError::Config(_)) {
                eprintln!("{msg}");
            } else if !msg.is_empty() {
                println!("{msg}");
            }
        }
        return ExitCode::from(code);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = e.to_string();
            if !msg.is_empty() {
                // MMM's words go where mmm_control printed them (stdout); stdout stays pure JSON
                // with --json, so errors go to stderr there.
                if cli.json {
                    eprintln!("{msg}");
                } else {
                    println!("{msg}");
                }
            }
            if let mmmctl::CtlError::CannotConnect { tried } = &e {
                // Why each monitor failed, always: an operator should not need RUST_LOG for it.
                for (addr, why) in tried {
                    eprintln!("# monitor {addr}: {why}");
                }
            }
            ExitCode::FAILURE
        }
    }
}
