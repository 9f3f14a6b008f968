//! mmmctl: every `mmm_control` command, with MMM's words, output and exit codes, plus `cluster`,
//! `history` and `completions`, over gRPC to any monitor of the cluster.
//!
//! - [`cli`]: the command line.
//! - [`certs`]: `certs init`, the certificates of a new cluster.
//! - [`monitors`]: which monitors to ask (command line or configuration) and TLS.
//! - [`client`]: the gRPC client trying monitors in order.
//! - [`run`]: one command, start to end.
//! - [`format`]: the text output (pure functions of the replies).
//! - [`extended`]: `show --extended` and the staleness line.
//! - [`view`]: the `--json` output.
//! - [`error`]: failures and their messages.

pub mod certs;
pub mod cli;
pub mod client;
pub mod error;
pub mod extended;
pub mod format;
pub mod monitors;
pub mod run;
pub mod view;

pub use cli::Cli;
pub use error::CtlError;
pub use run::run;
