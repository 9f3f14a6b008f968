//! Carries out one command: asks a monitor and writes the answer, as text or JSON.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use clap::CommandFactory;
use mmm_proto::monitor_control_client::MonitorControlClient;
use mmm_proto::{
    AddMonitorRequest, ChecksRequest, ClusterStatusRequest, CommandReply, ControlPing,
    HistoryRequest, HostRequest, Mode, ModeRequest, MoveRoleProgress, MoveRoleRequest,
    RemoveMonitorRequest, SetIpRequest, SetModeRequest, ShowRequest, Staleness, PROTOCOL_VERSION,
};
use tonic::transport::Channel;

use crate::cli::{CertsAction, Cli, ClusterChange, Command, Shell};
use crate::client::Client;
use crate::error::CtlError;
use crate::{format, view};

/// The shortest wait for the next step of a `move_role` (a step may wait for replication).
const MOVE_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cli`'s command, writing its output to `out`. Errors not yet printed are returned.
pub async fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CtlError> {
    if cli.mmm_control {
        return run_mmm_control(cli, out).await;
    }
    let command = cli.command.clone().unwrap_or(Command::Help);
    match command {
        Command::Help => {
            out.write_all(format::HELP.as_bytes())?;
            return Ok(());
        }
        Command::Completions { shell } => {
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut Cli::command(), "mmmctl", out);
            return Ok(());
        }
        Command::Certs {
            action: CertsAction::Init { dir, force },
        } => {
            let config = mmm_config::load(
                mmm_config::Program::Control,
                cli.cluster.as_deref(),
                cli.config.as_deref(),
            )
            .map_err(|e| CtlError::Config(e.to_string()))?;
            return crate::certs::init(&config, &dir, force, out);
        }
        Command::Certs {
            action:
                CertsAction::Issue {
                    name,
                    dir,
                    ips,
                    force,
                },
        } => {
            let config = mmm_config::load(
                mmm_config::Program::Control,
                cli.cluster.as_deref(),
                cli.config.as_deref(),
            );
            // With --ip the configuration is not needed (a node not written into it yet).
            let config = match config {
                Ok(c) => Some(c),
                Err(_) if !ips.is_empty() => None,
                Err(e) => return Err(CtlError::Config(e.to_string())),
            };
            return crate::certs::issue(config.as_ref(), &name, &ips, &dir, force, out);
        }
        _ => {}
    }
    run_command(cli, command, out).await
}

/// Runs a command that asks a monitor.
async fn run_command(cli: &Cli, command: Command, out: &mut dyn Write) -> Result<(), CtlError> {
    let client = client(cli)?;
    let v = PROTOCOL_VERSION;
    let tz = chrono::Local;
    match command {
        Command::Help | Command::Completions { .. } | Command::Certs { .. } => Ok(()),
        Command::Ping => {
            let r = client
                .call(|mut c| async move {
                    c.ping(ControlPing {
                        protocol_version: v,
                    })
                    .await
                })
                .await?;
            command_reply(cli, &r, out)
        }
        Command::Show { extended } => {
            let r = read_fresh(
                &client,
                |mut c| async move {
                    c.show(ShowRequest {
                        protocol_version: v,
                        extended,
                    })
                    .await
                },
                |r| r.staleness.as_ref(),
            )
            .await?;
            emit(cli, out, &view::ShowView::from(&r), || {
                if cli.mmm_control {
                    return format::show_mmm_control(&r);
                }
                let body = if extended {
                    crate::extended::show_extended(&r)
                } else {
                    format::show(&r)
                };
                with_stale_line(r.staleness.as_ref(), body)
            })
        }
        Command::Checks { host, check } => {
            let req = ChecksRequest {
                protocol_version: v,
                host: host.clone().unwrap_or_default(),
                check: check.clone().unwrap_or_default(),
            };
            let r = read_fresh(
                &client,
                |mut c| {
                    let req = req.clone();
                    async move { c.checks(req).await }
                },
                |r| r.staleness.as_ref(),
            )
            .await?;
            emit(cli, out, &view::ChecksView::from(&r), || {
                if cli.mmm_control {
                    format::checks_mmm_control(&r, &tz, host.as_deref(), check.as_deref())
                } else {
                    with_stale_line(r.staleness.as_ref(), format::checks(&r, &tz))
                }
            })
        }
        Command::SetOnline { host } => {
            let req = HostRequest {
                protocol_version: v,
                host,
            };
            let r = client
                .call(|mut c| {
                    let req = req.clone();
                    async move { c.set_online(req).await }
                })
                .await?;
            command_reply(cli, &r, out)
        }
        Command::SetOffline { host } => {
            let req = HostRequest {
                protocol_version: v,
                host,
            };
            let r = client
                .call(|mut c| {
                    let req = req.clone();
                    async move { c.set_offline(req).await }
                })
                .await?;
            command_reply(cli, &r, out)
        }
        Command::Mode => {
            let r = read_fresh(
                &client,
                |mut c| async move {
                    c.get_mode(ModeRequest {
                        protocol_version: v,
                    })
                    .await
                },
                |r| r.staleness.as_ref(),
            )
            .await?;
            emit(cli, out, &view::ModeView::from(&r), || {
                with_stale_line(r.staleness.as_ref(), format::mode(&r))
            })
        }
        Command::SetActive => set_mode(cli, &client, Mode::Active, out).await,
        Command::SetManual => set_mode(cli, &client, Mode::Manual, out).await,
        Command::SetPassive => set_mode(cli, &client, Mode::Passive, out).await,
        Command::MoveRole { force, role, host } => {
            let req = MoveRoleRequest {
                protocol_version: v,
                role,
                host,
                force,
                wait: true,
            };
            move_role(cli, &client, req, out).await
        }
        Command::SetIp { ip, host } => {
            let req = SetIpRequest {
                protocol_version: v,
                ip,
                host,
            };
            let r = client
                .call(|mut c| {
                    let req = req.clone();
                    async move { c.set_ip(req).await }
                })
                .await?;
            command_reply(cli, &r, out)
        }
        Command::Cluster {
            change: Some(change),
        } => {
            let r = match change {
                ClusterChange::Add { name, addr } => {
                    let req = AddMonitorRequest {
                        protocol_version: v,
                        name,
                        addr,
                    };
                    client
                        .call(|mut c| {
                            let req = req.clone();
                            async move { c.add_monitor(req).await }
                        })
                        .await?
                }
                ClusterChange::Remove { name } => {
                    let req = RemoveMonitorRequest {
                        protocol_version: v,
                        name,
                    };
                    client
                        .call(|mut c| {
                            let req = req.clone();
                            async move { c.remove_monitor(req).await }
                        })
                        .await?
                }
            };
            command_reply(cli, &r, out)
        }
        Command::Cluster { change: None } => {
            let r = client
                .call(|mut c| async move {
                    c.cluster_status(ClusterStatusRequest {
                        protocol_version: v,
                        local: false,
                    })
                    .await
                })
                .await?;
            emit(cli, out, &view::ClusterView::from(&r), || {
                format::cluster(&r)
            })
        }
        Command::History { n, timing } => {
            let req = HistoryRequest {
                protocol_version: v,
                limit: n.unwrap_or(20),
            };
            let r = read_fresh(
                &client,
                |mut c| async move { c.history(req).await },
                |r| r.staleness.as_ref(),
            )
            .await?;
            if timing {
                let lines = crate::timing::timelines(&r);
                return emit(cli, out, &lines, || {
                    with_stale_line(r.staleness.as_ref(), crate::timing::format(&lines, &tz))
                });
            }
            emit(cli, out, &view::HistoryView::from(&r), || {
                with_stale_line(r.staleness.as_ref(), format::history(&r, &tz))
            })
        }
    }
}

/// The client for the monitors of `cli`.
fn client(cli: &Cli) -> Result<Client, CtlError> {
    let timeout = Duration::from_secs_f64(cli.timeout.clamp(0.1, 3600.0));
    Ok(Client::new(crate::monitors::targets(cli)?, timeout))
}

/// `mmm_control` mode: as mmm_control, every command (even `help` and an invalid one) first needs
/// a monitor that answers; then MMM's texts (see [`crate::compat`]).
async fn run_mmm_control(cli: &Cli, out: &mut dyn Write) -> Result<(), CtlError> {
    let local_text = match (&cli.mmm_invalid, &cli.command) {
        (Some(line), _) => Some(format!(
            "Invalid command '{line}'\n\n{}\n",
            crate::compat::HELP
        )),
        (None, Some(Command::Help) | None) => Some(format!("{}\n", crate::compat::HELP)),
        (None, Some(_)) => None,
    };
    let Some(text) = local_text else {
        let command = cli.command.clone().unwrap_or(Command::Help);
        return run_command(cli, command, out).await;
    };
    let client = client(cli)?;
    client
        .call(|mut c| async move {
            c.ping(ControlPing {
                protocol_version: PROTOCOL_VERSION,
            })
            .await
        })
        .await?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// A read answered by a monitor in contact with the leader when one answers ([`Client::call_prefer_fresh`]);
/// why other monitors were passed over goes to stderr, so stdout keeps MMM's lines (or pure JSON).
async fn read_fresh<T, F, Fut>(
    client: &Client,
    f: F,
    staleness: impl Fn(&T) -> Option<&Staleness>,
) -> Result<T, CtlError>
where
    F: Fn(MonitorControlClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let (r, notes) = client
        .call_prefer_fresh(f, |r| {
            staleness(r)
                .filter(|s| !s.leader_contact)
                .map(|s| s.reason.clone())
        })
        .await?;
    for n in notes {
        eprintln!("# {n}");
    }
    Ok(r)
}

/// `body` after the staleness line of a stale answer.
fn with_stale_line(s: Option<&Staleness>, body: String) -> String {
    match crate::extended::stale_line(s) {
        Some(line) => line + &body,
        None => body,
    }
}

/// Writes `json` (with `--json`) or `text`.
fn emit<T: serde::Serialize>(
    cli: &Cli,
    out: &mut dyn Write,
    json: &T,
    text: impl FnOnce() -> String,
) -> Result<(), CtlError> {
    if cli.json {
        let s = serde_json::to_string_pretty(json)
            .map_err(|e| CtlError::Io(std::io::Error::other(e)))?;
        writeln!(out, "{s}")?;
    } else {
        out.write_all(text().as_bytes())?;
    }
    Ok(())
}

/// Prints a command's reply; a failed command exits 1.
fn command_reply(cli: &Cli, r: &CommandReply, out: &mut dyn Write) -> Result<(), CtlError> {
    emit(cli, out, &view::CommandView::from(r), || {
        format!("{}\n", r.message)
    })?;
    if r.ok {
        Ok(())
    } else {
        Err(CtlError::Reported)
    }
}

async fn set_mode(
    cli: &Cli,
    client: &Client,
    mode: Mode,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let req = SetModeRequest {
        protocol_version: PROTOCOL_VERSION,
        mode: mode as i32,
    };
    let r = client
        .call(|mut c| async move { c.set_mode(req).await })
        .await?;
    command_reply(cli, &r, out)
}

/// `move_role`: prints each step as it arrives (text) or the whole move at the end (JSON).
async fn move_role(
    cli: &Cli,
    client: &Client,
    req: MoveRoleRequest,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut stream = client
        .call(|mut c| {
            let req = req.clone();
            async move { c.move_role(req).await }
        })
        .await?;
    let step_timeout = client.timeout().max(MOVE_STEP_TIMEOUT);
    let mut seen: Vec<MoveRoleProgress> = Vec::new();
    loop {
        let msg =
            match tokio::time::timeout(step_timeout, stream.message()).await {
                Err(_) => {
                    return Err(CtlError::Refused(format!(
                        "No progress of the move within {} s; check `mmmctl show`",
                        step_timeout.as_secs()
                    )))
                }
                Ok(Err(s)) => {
                    return Err(crate::client::classify(&s)
                        .unwrap_or_else(|| CtlError::Refused(s.message().into())))
                }
                Ok(Ok(None)) => return Err(CtlError::Refused(
                    "The monitor ended the move's stream before it finished; check `mmmctl show`"
                        .into(),
                )),
                Ok(Ok(Some(m))) => m,
            };
        if cli.mmm_control {
            // mmm_control printed the monitor's one-line result, and nothing of the steps.
            if msg.done {
                let text = if msg.ok {
                    msg.message.clone()
                } else {
                    crate::error::with_error_prefix(&msg.message)
                };
                writeln!(out, "{text}")?;
            }
        } else if !cli.json {
            out.write_all(format::move_progress(&msg).as_bytes())?;
            out.flush()?;
        }
        let done = msg.done;
        seen.push(msg);
        if done {
            break;
        }
    }
    let v = view::MoveRoleView::from_progress(&seen);
    if cli.json {
        emit(cli, out, &v, String::new)?;
    }
    if v.ok {
        Ok(())
    } else {
        Err(CtlError::Reported)
    }
}
