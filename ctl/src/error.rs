//! What can go wrong, each with the words mmm_control used; every error exits with status 1.

/// An mmmctl failure.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// No monitor could be reached (each attempt is in `tried`, for `RUST_LOG=debug`).
    #[error("ERROR: Can't connect to monitor daemon!")]
    CannotConnect {
        /// Each monitor tried and why it failed.
        tried: Vec<(String, String)>,
    },
    /// The cluster has no quorum, so nothing can be decided.
    #[error("ERROR: No quorum: {0}")]
    NoQuorum(String),
    /// The monitor refused the request (unknown host, bad argument, ...), in its words.
    #[error("{}", with_error_prefix(.0))]
    Refused(String),
    /// The command failed and its failure is already in the output (`CommandReply { ok: false }`,
    /// a failed move): nothing more to print, but the exit status is 1.
    #[error("")]
    Reported,
    /// The configuration could not be read.
    #[error("ERROR: {0}")]
    Config(String),
    /// A monitor's answer did not arrive in time.
    #[error("ERROR: No answer from monitor {monitor} within {secs} s")]
    Timeout {
        /// The monitor asked.
        monitor: String,
        /// The timeout.
        secs: f64,
    },
    /// Writing the output failed.
    #[error("ERROR: {0}")]
    Io(#[from] std::io::Error),
}

/// `msg` with MMM's `ERROR: ` in front, unless it has it already.
pub fn with_error_prefix(msg: &str) -> String {
    if msg.starts_with("ERROR") {
        msg.to_string()
    } else {
        format!("ERROR: {msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_mmms() {
        assert_eq!(
            CtlError::CannotConnect { tried: vec![] }.to_string(),
            "ERROR: Can't connect to monitor daemon!"
        );
        assert_eq!(
            CtlError::Refused("Unknown host name 'x'!".into()).to_string(),
            "ERROR: Unknown host name 'x'!"
        );
        assert_eq!(
            CtlError::Refused("ERROR: Host 'db1' is 'HARD_OFFLINE'".into()).to_string(),
            "ERROR: Host 'db1' is 'HARD_OFFLINE'"
        );
        assert_eq!(CtlError::Reported.to_string(), "");
        assert_eq!(
            CtlError::NoQuorum("2 of 3 down".into()).to_string(),
            "ERROR: No quorum: 2 of 3 down"
        );
    }
}
