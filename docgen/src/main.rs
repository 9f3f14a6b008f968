//! `mmm-docgen OUT_DIR`: writes what the Debian packages install besides the binaries, generated
//! from the programs' own command-line definitions so they cannot drift from them:
//!
//! - `OUT_DIR/man/{mmm-monitor,mmm-agent,mmmctl,mmm_control}.1` (clap_mangen; `mmm_control.1`
//!   describes the MMM-compatible mode of mmmctl);
//! - `OUT_DIR/completions/{bash,zsh,fish}/...` for the three programs;
//! - `OUT_DIR/mmm_control`: the symlink to `../bin/mmmctl` the mmmctl package installs as
//!   `/usr/sbin/mmm_control` (where MMM had it).
//!
//! `deploy/test-packages.sh` runs it before `cargo deb`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

/// Where the `mmm_control` symlink points from `/usr/sbin`.
const MMM_CONTROL_TARGET: &str = "../bin/mmmctl";

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .context("usage: mmm-docgen OUT_DIR")?;
    generate(Path::new(&out))
}

/// The `mmm_control` mode as a clap command, for its man page.
fn mmm_control_command() -> clap::Command {
    clap::Command::new(mmmctl::compat::PROGRAM)
        .version(mmmctl::compat::MMM_VERSION)
        .about("MySQL-MMM 2.2.1's mmm_control, provided by mmmctl")
        .long_about(
            "mmmctl started under the name mmm_control behaves as MMM 2.2.1's mmm_control for \
             scripts: the same command line (no options), the monitor's replies printed as \
             mmm_control printed them, and MMM's exit codes: 0 whenever a monitor answered, even \
             with an ERROR: reply; 1 when no monitor could be reached; 255 without a command or \
             with a configuration MMM would refuse. Use mmmctl for exit codes scripts can trust \
             (1 on any ERROR:). The monitors come from MMMCTL_MONITORS (HOST:PORT, separated by \
             commas), else from MMMCTL_CONFIG or mmm_mon[_CLUSTER].conf.",
        )
        .arg(
            clap::Arg::new("cluster")
                .value_name("@CLUSTER")
                .help("Reads mmm_mon_CLUSTER.conf"),
        )
        .arg(
            clap::Arg::new("command")
                .value_name("COMMAND")
                .num_args(1..)
                .help(
                    "help, ping, show, checks [HOST|all [CHECK|all]], set_online HOST, \
                     set_offline HOST, mode, set_active, set_manual, set_passive, \
                     move_role [--force] ROLE HOST, set_ip IP HOST",
                ),
        )
}

fn generate(out: &Path) -> Result<()> {
    let man = out.join("man");
    fs::create_dir_all(&man).with_context(|| format!("cannot create {}", man.display()))?;
    let commands = [
        ("mmm-monitor", mmm_monitor::cli::Args::command()),
        ("mmm-agent", mmm_agent::cli::Args::command()),
        ("mmmctl", mmmctl::Cli::command()),
    ];
    for (name, cmd) in &commands {
        write_man(&man.join(format!("{name}.1")), cmd.clone())?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let (dir, file) = match shell {
                Shell::Bash => ("bash", name.to_string()),
                Shell::Zsh => ("zsh", format!("_{name}")),
                _ => ("fish", format!("{name}.fish")),
            };
            let dir = out.join("completions").join(dir);
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), *name, &mut buf);
            let path = dir.join(file);
            fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    write_man(&man.join("mmm_control.1"), mmm_control_command())?;
    let link = out.join(mmmctl::compat::PROGRAM);
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(MMM_CONTROL_TARGET, &link)
        .with_context(|| format!("cannot create {}", link.display()))?;
    println!(
        "man pages, completions and the mmm_control link are in {}",
        out.display()
    );
    Ok(())
}

fn write_man(path: &Path, cmd: clap::Command) -> Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .with_context(|| format!("cannot render {}", path.display()))?;
    fs::write(path, buf).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_man_pages_completions_and_the_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        generate(dir.path()).expect("generate");
        for name in ["mmm-monitor", "mmm-agent", "mmmctl", "mmm_control"] {
            let page = fs::read_to_string(dir.path().join(format!("man/{name}.1"))).expect("man");
            assert!(
                page.starts_with(".ie") || page.contains(".TH"),
                "{name}: {page}"
            );
            assert!(page.contains(name), "{name}");
        }
        let bash = fs::read_to_string(dir.path().join("completions/bash/mmmctl")).expect("bash");
        assert!(bash.contains("move_role") && bash.contains("set_online"));
        assert!(dir.path().join("completions/zsh/_mmm-agent").is_file());
        assert!(dir
            .path()
            .join("completions/fish/mmm-monitor.fish")
            .is_file());
        let page = fs::read_to_string(dir.path().join("man/mmm_control.1")).expect("man");
        assert!(page.contains("ERROR"), "{page}");
        assert_eq!(
            fs::read_link(dir.path().join("mmm_control")).expect("link"),
            Path::new(MMM_CONTROL_TARGET)
        );
    }
}
