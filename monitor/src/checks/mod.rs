//! MMM's four checks of every host (`ping`, `mysql`, `rep_threads`, `rep_backlog`), run by this
//! monitor, and its own network self-check over `ping_ips`.
//!
//! - [`status`]: one result, and the `trap_period` rule that decides what counts (pure).
//! - [`ping`]: ICMP echo and the network self-check.
//! - [`mysql`]: the MySQL checks over one kept connection per host.
//! - [`checker`]: the tasks (two per host, so a hung host delays nobody else), the shared results,
//!   a snapshot and a change counter the leader loop waits on.
//! - [`wire`]: conversion of the results to the observation reports followers send the leader.

pub mod checker;
pub mod mysql;
pub mod ping;
pub mod status;
pub mod wire;

pub use checker::{CheckSnapshot, Checker, HostTarget};
pub use ping::network_ok;
pub use status::{CheckOutcome, CheckStatus, CheckTrack};
