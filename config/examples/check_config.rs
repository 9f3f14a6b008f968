//! Loads a config the way a program would and prints the effective configuration or every error.
//!
//! `cargo run -p mmm-config --example check_config -- monitor|agent|control [@CLUSTER] [FILE]`

use std::path::PathBuf;
use std::process::ExitCode;

use mmm_config::{load, Program};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let program = match args.first().map(String::as_str) {
        Some("monitor") => Program::Monitor,
        Some("agent") => Program::Agent,
        Some("control") => Program::Control,
        _ => {
            eprintln!("usage: check_config monitor|agent|control [@CLUSTER] [FILE]");
            return ExitCode::from(2);
        }
    };
    let cluster = args
        .iter()
        .skip(1)
        .find(|a| a.starts_with('@'))
        .map(String::as_str);
    let file = args
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('@'))
        .map(PathBuf::from);
    match load(program, cluster, file.as_deref()) {
        Ok(config) => {
            for w in &config.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", config.render_effective());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}
