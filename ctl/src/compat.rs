//! `mmm_control` mode: started under the name `mmm_control` (the package installs a symlink of
//! that name), the binary behaves as MMM 2.2.1's `mmm_control` does for scripts:
//!
//! - the command line is MMM's: `mmm_control [--version] [@CLUSTER] COMMAND [ARGS]`, no options;
//!   the monitors and the config come from `MMMCTL_MONITORS` / `MMMCTL_CONFIG` (as for mmmctl) or
//!   from `mmm_mon[_CLUSTER].conf`;
//! - the exit status is 0 whenever a monitor answered, even with an `ERROR:` reply; 1 when no
//!   monitor could be reached (`ERROR: Can't connect to monitor daemon!`); 255 (Perl's `die`)
//!   without a command or with a config MMM would refuse (message on stderr);
//! - replies are printed as mmm_control printed them: the monitor's text and one more newline
//!   (so multi-line replies end with an empty line), `show` roles in Perl's string order, the
//!   `checks` column padded only when all checks are shown, `move_role` as one line;
//! - a command MMM does not know (or with the wrong number of arguments) gets MMM's
//!   `Invalid command '...'` and the help, with status 0, once a monitor answered.
//!
//! `mmmctl` keeps its own, stricter exit codes (1 on any `ERROR:`).

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::cli::{Cli, Command};

/// The name that selects this mode.
pub const PROGRAM: &str = "mmm_control";

/// The MMM version whose `mmm_control` this mode reproduces (printed by `--version`, which
/// scripts check).
pub const MMM_VERSION: &str = "2.2.1";

/// Seconds to wait for a monitor: MMM's `create_sender(..., 10)`.
pub const TIMEOUT_SECS: f64 = 10.0;

/// Environment variable naming the monitors (`HOST:PORT`, separated by commas or blanks); shared
/// with mmmctl's `--monitor`.
pub const ENV_MONITORS: &str = "MMMCTL_MONITORS";

/// Environment variable naming the config file; shared with mmmctl's `--config`.
pub const ENV_CONFIG: &str = "MMMCTL_CONFIG";

/// MMM 2.2.1's `help` text with `$show` as its `show` line (mmmctl's `show` has an option): the one
/// source of both [`HELP`] and mmmctl's (`crate::format::HELP`, which adds its own commands).
macro_rules! mmm_help {
    ($show:literal) => {
        concat!(
            "\
Valid commands are:
    help                              - show this message
    ping                              - ping monitor
",
            $show,
            "    checks [<host>|all [<check>|all]] - show checks status
    set_online <host>                 - set host <host> online
    set_offline <host>                - set host <host> offline
    mode                              - print current mode.
    set_active                        - switch into active mode.
    set_manual                        - switch into manual mode.
    set_passive                       - switch into passive mode.
    move_role [--force] <role> <host> - move exclusive role <role> to host <host>
                                        (Only use --force if you know what you are doing!)
    set_ip <ip> <host>                - set role with ip <ip> to host <host>
"
        )
    };
}
pub(crate) use mmm_help;

/// The monitor's `help` reply in MMM 2.2.1, without mmmctl's additions.
pub const HELP: &str = mmm_help!("    show                              - show status\n");

/// Whether the program was started as `mmm_control` (its file name, whatever the directory).
pub fn invoked_as_mmm_control(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(PROGRAM))
}

/// What an `mmm_control` command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// `--version`: print this line, exit 0.
    Version(String),
    /// No command: print this on stderr, exit 255 (MMM's `die`).
    Usage(String),
    /// A command for the monitor (or an invalid one, kept in `cli.mmm_invalid`).
    Run(Box<Cli>),
}

/// Parses an `mmm_control` command line (`args[0]` is the program) as MMM 2.2.1 does: the words
/// after the optional `@CLUSTER` are joined with blanks and split again, then matched by command
/// name and number of arguments.
pub fn parse(args: &[OsString]) -> Invocation {
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| PROGRAM.to_owned());
    let mut rest: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if rest.first().map(String::as_str) == Some("--version") {
        return Invocation::Version(format!(
            "{PROGRAM} {MMM_VERSION} (mmm-rs {})",
            env!("CARGO_PKG_VERSION")
        ));
    }
    let mut cluster = None;
    if let Some(name) = rest.first().and_then(|a| a.strip_prefix('@')) {
        cluster = Some(name.to_owned());
        rest.remove(0);
    }
    if rest.is_empty() {
        return Invocation::Usage(format!("See '{argv0} help' for usage information"));
    }
    let line = rest.join(" ");
    let words: Vec<&str> = line.split_whitespace().collect();
    let command = match words.as_slice() {
        ["help"] => Some(Command::Help),
        ["ping"] => Some(Command::Ping),
        ["show"] => Some(Command::Show { extended: false }),
        ["checks"] => Some(Command::Checks {
            host: None,
            check: None,
        }),
        ["checks", h] => Some(Command::Checks {
            host: Some((*h).to_owned()),
            check: None,
        }),
        ["checks", h, c] => Some(Command::Checks {
            host: Some((*h).to_owned()),
            check: Some((*c).to_owned()),
        }),
        ["mode"] => Some(Command::Mode),
        ["set_active"] => Some(Command::SetActive),
        ["set_passive"] => Some(Command::SetPassive),
        ["set_manual"] => Some(Command::SetManual),
        ["set_online", h] => Some(Command::SetOnline {
            host: (*h).to_owned(),
        }),
        ["set_offline", h] => Some(Command::SetOffline {
            host: (*h).to_owned(),
        }),
        ["move_role", r, h] => Some(Command::MoveRole {
            force: false,
            role: (*r).to_owned(),
            host: (*h).to_owned(),
        }),
        ["move_role", "--force", r, h] => Some(Command::MoveRole {
            force: true,
            role: (*r).to_owned(),
            host: (*h).to_owned(),
        }),
        ["set_ip", ip, h] => Some(Command::SetIp {
            ip: (*ip).to_owned(),
            host: (*h).to_owned(),
        }),
        _ => None,
    };
    let mmm_invalid = command.is_none().then(|| line.clone());
    Invocation::Run(Box::new(Cli {
        cluster,
        config: std::env::var_os(ENV_CONFIG)
            .filter(|v| !v.is_empty())
            .map(Into::into),
        monitors: monitors_from_env(),
        json: false,
        timeout: TIMEOUT_SECS,
        command,
        mmm_control: true,
        mmm_invalid,
    }))
}

/// `MMMCTL_MONITORS` split on commas and blanks.
pub fn monitors_from_env() -> Vec<String> {
    std::env::var(ENV_MONITORS)
        .map(|v| split_monitors(&v))
        .unwrap_or_default()
}

/// `a:1, b:2 c:3` → `[a:1, b:2, c:3]`.
pub fn split_monitors(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The exit status `mmm_control` had for an outcome: 0 once a monitor answered (whatever it
/// said), 1 when none could be reached, 255 for a config MMM would have refused.
pub fn exit_status(result: &Result<(), crate::CtlError>) -> u8 {
    use crate::CtlError;
    match result {
        Ok(()) => 0,
        Err(CtlError::CannotConnect { .. }) | Err(CtlError::Timeout { .. }) => 1,
        Err(CtlError::Config(_)) => 255,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Cli {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match parse(&args) {
            Invocation::Run(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn program_name_selects_the_mode() {
        assert!(invoked_as_mmm_control(OsStr::new("/usr/sbin/mmm_control")));
        assert!(invoked_as_mmm_control(OsStr::new("mmm_control")));
        assert!(!invoked_as_mmm_control(OsStr::new("/usr/bin/mmmctl")));
        assert!(!invoked_as_mmm_control(OsStr::new("mmm_control2")));
    }

    #[test]
    fn command_lines_as_mmm_reads_them() {
        let c = run(&[
            "mmm_control",
            "@c1",
            "move_role",
            "--force",
            "writer",
            "db2",
        ]);
        assert_eq!(c.cluster.as_deref(), Some("c1"));
        assert_eq!(
            c.command,
            Some(Command::MoveRole {
                force: true,
                role: "writer".into(),
                host: "db2".into()
            })
        );
        // Words are joined and split again, as the monitor split MMM's command line.
        let c = run(&["mmm_control", "checks db1", "mysql"]);
        assert_eq!(
            c.command,
            Some(Command::Checks {
                host: Some("db1".into()),
                check: Some("mysql".into())
            })
        );
        let c = run(&["mmm_control", "set_online"]);
        assert_eq!(c.command, None);
        assert_eq!(c.mmm_invalid.as_deref(), Some("set_online"));
        let c = run(&["mmm_control", "cluster"]);
        assert_eq!(c.mmm_invalid.as_deref(), Some("cluster"));
        let c = run(&["mmm_control", "show", "--json"]);
        assert_eq!(c.mmm_invalid.as_deref(), Some("show --json"));
        let args: Vec<OsString> = ["mmm_control", "@c1"].iter().map(OsString::from).collect();
        assert!(matches!(parse(&args), Invocation::Usage(_)));
        let args: Vec<OsString> = ["mmm_control", "--version"]
            .iter()
            .map(OsString::from)
            .collect();
        match parse(&args) {
            Invocation::Version(v) => assert!(v.starts_with("mmm_control 2.2.1 "), "{v}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn monitors_list() {
        assert_eq!(split_monitors("a:1, b:2  c:3,"), ["a:1", "b:2", "c:3"]);
        assert!(split_monitors(" , ").is_empty());
    }

    #[test]
    fn exit_statuses_are_mmms() {
        use crate::CtlError;
        assert_eq!(exit_status(&Ok(())), 0);
        assert_eq!(exit_status(&Err(CtlError::Refused("x".into()))), 0);
        assert_eq!(exit_status(&Err(CtlError::Reported)), 0);
        assert_eq!(exit_status(&Err(CtlError::NoQuorum("x".into()))), 0);
        assert_eq!(
            exit_status(&Err(CtlError::CannotConnect { tried: vec![] })),
            1
        );
        assert_eq!(exit_status(&Err(CtlError::Config("x".into()))), 255);
    }
}
