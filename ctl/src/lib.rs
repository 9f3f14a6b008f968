//! mmmctl: every `mmm_control` command, with MMM's words and output, plus `cluster`,
//! `history` and `completions`, over gRPC to any monitor of the cluster. `mmmctl` exits 1 on any
//! `ERROR:` (scripts can trust its status); started as `mmm_control` it keeps MMM's exit codes.
//!
//! - [`cli`]: the command line.
//! - [`compat`]: `mmm_control` mode (the binary started under that name): MMM's exit codes
//!   (0 even on `ERROR:` replies) and output details, for scripts written for MMM.
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
pub mod compat;
pub mod error;
pub mod extended;
pub mod format;
pub mod monitors;
pub mod run;
pub mod timing;
pub mod view;

pub use cli::Cli;
pub use error::CtlError;
pub use run::run;
