//! The lab network: a bridge in the root namespace and one namespace per node with a veth on it.

use std::net::Ipv4Addr;

use anyhow::Context;

use crate::cmd::run;
use crate::names::{SlotNames, NS_IFACE};

/// Creates the bridge with the client address (`.1`) and brings it up.
pub(crate) async fn create_bridge(names: SlotNames) -> anyhow::Result<()> {
    let br = names.bridge();
    run("ip", &["link", "add", &br, "type", "bridge"]).await?;
    // No STP and no forward delay: ports forward as soon as they are up.
    run(
        "ip",
        &[
            "link",
            "set",
            &br,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
    )
    .await?;
    run(
        "ip",
        &["addr", "add", &format!("{}/24", names.ip(1)), "dev", &br],
    )
    .await?;
    run("ip", &["link", "set", &br, "up"]).await?;
    Ok(())
}

/// Creates a node's namespace, its veth pair (`eth0` inside, the namespace's name outside, on the bridge)
/// and its address.
pub(crate) async fn add_node(names: SlotNames, node: &str, ip: Ipv4Addr) -> anyhow::Result<()> {
    let ns = names.ns(node);
    let veth = names.host_veth(node);
    run("ip", &["netns", "add", &ns]).await?;
    run(
        "ip",
        &[
            "link", "add", &veth, "type", "veth", "peer", "name", NS_IFACE, "netns", &ns,
        ],
    )
    .await?;
    run("ip", &["link", "set", &veth, "master", &names.bridge()]).await?;
    run("ip", &["link", "set", &veth, "up"]).await?;
    run("ip", &["-n", &ns, "link", "set", "lo", "up"]).await?;
    run(
        "ip",
        &[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            NS_IFACE,
        ],
    )
    .await?;
    run("ip", &["-n", &ns, "link", "set", NS_IFACE, "up"]).await?;
    Ok(())
}

/// Installs the (empty) partition table.
pub(crate) async fn apply_firewall(script: &str) -> anyhow::Result<()> {
    crate::cmd::run_input("nft", &["-f", "-"], Some(script))
        .await
        .context("loading the lab's nftables table")?;
    Ok(())
}

/// Sets a node's bridge-side veth down or up: the node loses or regains its carrier, like a pulled cable.
pub(crate) async fn set_port(names: SlotNames, node: &str, up: bool) -> anyhow::Result<()> {
    let veth = names.host_veth(node);
    run(
        "ip",
        &["link", "set", &veth, if up { "up" } else { "down" }],
    )
    .await?;
    Ok(())
}
