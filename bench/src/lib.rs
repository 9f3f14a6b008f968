//! Shared pieces of the benchmark binaries: percentiles and markdown tables ([`stats`]), the machine
//! description printed with every result ([`machine`]), CPU and memory of a process from `/proc`
//! ([`procstat`]), a stand-in MySQL server for the scale benchmarks ([`standin`]) and real monitor
//! processes started without a lab ([`monitors`]).

pub mod machine;
pub mod monitors;
pub mod procstat;
pub mod standin;
pub mod stats;

/// Logs of a benchmark binary go to stderr (its tables to stdout), errors only unless `RUST_LOG` says
/// otherwise.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
}
