//! Partitions between namespaces: drop rules in an nftables table of family `bridge` in the root namespace.
//!
//! Filtering at the bridge (by port) instead of by IP address inside the namespaces drops everything between
//! the two ends — ARP, VIPs that move, any protocol — which is what a real partition does. The root namespace
//! (the lab's clients) is the bridge itself: its traffic passes the bridge's `input`/`output` hooks.

use std::collections::BTreeSet;

/// One end of a block: a bridge port (a namespace's veth) or the root namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    /// The root-side veth of a namespace.
    Port(String),
    /// The root namespace (the bridge's own address, where clients live).
    Root,
}

/// The set of blocked pairs; rendered whole into the table each time it changes.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    /// Unordered pairs, stored with the smaller end first.
    pairs: BTreeSet<(Endpoint, Endpoint)>,
}

impl Blocks {
    /// Adds a pair; false if it was already blocked.
    pub fn add(&mut self, a: Endpoint, b: Endpoint) -> bool {
        self.pairs.insert(order(a, b))
    }
    /// Removes a pair; false if it was not blocked.
    pub fn remove(&mut self, a: Endpoint, b: Endpoint) -> bool {
        self.pairs.remove(&order(a, b))
    }
    /// An `nft -f` script that replaces the table atomically with the current rules.
    pub fn render(&self, table: &str) -> String {
        let (mut fwd, mut input, mut output) = (String::new(), String::new(), String::new());
        for (a, b) in &self.pairs {
            match (a, b) {
                (Endpoint::Port(x), Endpoint::Port(y)) => {
                    fwd += &format!("    iifname \"{x}\" oifname \"{y}\" drop\n");
                    fwd += &format!("    iifname \"{y}\" oifname \"{x}\" drop\n");
                }
                (Endpoint::Port(x), Endpoint::Root) | (Endpoint::Root, Endpoint::Port(x)) => {
                    input += &format!("    iifname \"{x}\" drop\n");
                    output += &format!("    oifname \"{x}\" drop\n");
                }
                (Endpoint::Root, Endpoint::Root) => {}
            }
        }
        format!(
            "table bridge {table} {{}}\ndelete table bridge {table}\ntable bridge {table} {{\n  \
             chain forward {{\n    type filter hook forward priority 0; policy accept;\n{fwd}  }}\n  \
             chain input {{\n    type filter hook input priority 0; policy accept;\n{input}  }}\n  \
             chain output {{\n    type filter hook output priority 0; policy accept;\n{output}  }}\n}}\n"
        )
    }
}

fn order(a: Endpoint, b: Endpoint) -> (Endpoint, Endpoint) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_unordered_and_render_both_directions() {
        let mut b = Blocks::default();
        assert!(b.add(Endpoint::Port("p2".into()), Endpoint::Port("p1".into())));
        assert!(!b.add(Endpoint::Port("p1".into()), Endpoint::Port("p2".into())));
        assert!(b.add(Endpoint::Root, Endpoint::Port("p3".into())));
        let text = b.render("t");
        assert!(text.contains("iifname \"p1\" oifname \"p2\" drop"));
        assert!(text.contains("iifname \"p2\" oifname \"p1\" drop"));
        assert!(text.contains("iifname \"p3\" drop"));
        assert!(text.contains("oifname \"p3\" drop"));
        assert!(b.remove(Endpoint::Port("p2".into()), Endpoint::Port("p1".into())));
        assert!(!b.render("t").contains("p1"));
    }
}
