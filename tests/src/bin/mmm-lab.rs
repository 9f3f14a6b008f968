//! `mmm-lab`: bring a lab up by hand (prints its addresses, waits for Ctrl-C, tears it down), or remove
//! what crashed labs left behind.

use clap::{Parser, Subcommand};
use mmm_lab::{Lab, LabSpec};

/// Command line of mmm-lab.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Real MariaDB hosts and monitor namespaces on a private bridge, for mmm-rs"
)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Start a lab, print its addresses, wait for Ctrl-C (or SIGTERM), tear it down.
    Up {
        /// Number of DB hosts (db1, db2 masters; the rest replicas of db1).
        #[arg(long, default_value_t = 4)]
        db_hosts: usize,
        /// Number of monitor namespaces.
        #[arg(long, default_value_t = 3)]
        monitors: usize,
        /// Number of reader VIPs.
        #[arg(long, default_value_t = 4)]
        vips: usize,
        /// Semi-synchronous replication.
        #[arg(long)]
        semi_sync: bool,
        /// Number of client namespaces (cli1.., for partitions that keep a client on one side).
        #[arg(long, default_value_t = 0)]
        clients: usize,
        /// Extra lines for the monitors' `<monitor>` section of the written configs.
        #[arg(long, default_value = "")]
        monitor_keys: String,
    },
    /// The demo: a 3-monitor cluster managing 4 MariaDB hosts; kills the master and shows the failover.
    Demo,
    /// Remove namespaces, bridges, nftables tables and temp dirs of labs that are no longer running.
    Cleanup,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Cleanup => mmm_lab::cleanup_all_leftovers(),
        Command::Demo => mmm_lab::demo::run().await,
        Command::Up {
            db_hosts,
            monitors,
            vips,
            semi_sync,
            clients,
            monitor_keys,
        } => {
            let lab = Lab::start(LabSpec {
                db_hosts,
                monitors,
                semi_sync,
                vips,
                clients,
            })
            .await?;
            let configs = lab.write_mmm_configs(&monitor_keys)?;
            println!("lab slot {} in {}", lab.slot(), lab.dir().display());
            println!("bridge {} client {}", lab.bridge(), lab.client_ip());
            for h in lab.hosts() {
                println!(
                    "  {} {} ns {} (mysql socket {})",
                    h.name,
                    h.ip,
                    h.ns,
                    h.socket.display()
                );
            }
            for m in lab.monitors() {
                println!("  {} {} ns {}", m.name, m.ip, m.ns);
            }
            for c in lab.clients() {
                println!("  {} {} ns {}", c.name, c.ip, c.ns);
            }
            println!("writer VIP {}", lab.writer_vip());
            let readers: Vec<String> = lab.reader_vips().iter().map(ToString::to_string).collect();
            println!("reader VIPs {}", readers.join(", "));
            println!("configs in {}", configs.dir.display());
            println!(
                "mysql: mariadb -h {} -u {} -p{}",
                lab.host("db1").ip,
                mmm_lab::users::ROOT_USER,
                mmm_lab::users::ROOT_PASSWORD
            );
            println!("Ctrl-C tears the lab down.");
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = term.recv() => {}
            }
            drop(lab);
            Ok(())
        }
    }
}
