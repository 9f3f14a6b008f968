//! Names and addresses derived from a lab slot, in one place so setup, teardown and leftover cleanup agree.

use std::net::Ipv4Addr;

/// Interface name of every namespace's end of its veth (short and MMM-like: `cluster_interface eth0`).
pub(crate) const NS_IFACE: &str = "eth0";

/// Names of one slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotNames {
    /// The slot number, 0..=250; the third octet of the subnet.
    pub slot: u8,
}

impl SlotNames {
    /// Bridge in the root namespace.
    pub fn bridge(&self) -> String {
        format!("mmm{}b", self.slot)
    }
    /// Prefix of every namespace and root-side veth of this slot (the dash keeps slot 1 apart from slot 12).
    pub fn prefix(&self) -> String {
        format!("mmm{}-", self.slot)
    }
    /// Namespace of a node (`db1`, `mon1`).
    pub fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.prefix())
    }
    /// Root-side end of a node's veth (same text as the namespace; links and namespaces do not share names).
    pub fn host_veth(&self, node: &str) -> String {
        self.ns(node)
    }
    /// nftables table (family bridge) holding the drop rules.
    pub fn nft_table(&self) -> String {
        format!("mmm{}", self.slot)
    }
    /// First three octets of the subnet.
    pub fn subnet_prefix(&self) -> String {
        format!("10.213.{}", self.slot)
    }
    /// An address in the subnet.
    pub fn ip(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.slot, last)
    }
    /// Prefix of the temp dir names of this slot.
    pub fn dir_prefix(&self) -> String {
        format!("mmm-lab-{}-", self.slot)
    }
}
