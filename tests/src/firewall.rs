//! Partitions between namespaces: drop rules in an nftables table of family `bridge` in the root namespace.
//!
//! Filtering at the bridge (by port) instead of by IP address inside the namespaces drops everything between
//! the two ends — ARP, VIPs that move, any protocol — which is what a real partition does. The root namespace
//! (the lab's clients) is the bridge itself: its traffic passes the bridge's `input`/`output` hooks.
//!
//! Rules are *directed*: a drop from `a` to `b` only stops frames that enter the bridge from `a` and leave
//! it towards `b`. A full block is the two directions; a one-way block (a link that loses frames in one
//! direction, a stateful firewall that drops replies) is one of them. Between two namespaces the rule sits
//! in the `forward` chain (`iifname A oifname B`); from a namespace to the root namespace in `input`
//! (`iifname A`: the frame is delivered to the bridge's own address); from the root namespace to a
//! namespace in `output` (`oifname B`).

use std::collections::BTreeSet;

/// One end of a block: a bridge port (a namespace's veth) or the root namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    /// The root-side veth of a namespace.
    Port(String),
    /// The root namespace (the bridge's own address, where clients live).
    Root,
}

/// The set of dropped directions; rendered whole into the table each time it changes.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    /// Directed pairs `(from, to)`: frames from `from` to `to` are dropped. A block in both directions is
    /// two entries, so removing one direction of it leaves the other in place.
    directed: BTreeSet<(Endpoint, Endpoint)>,
}

impl Blocks {
    /// Drops both directions between `a` and `b`; false if both were already dropped.
    pub fn add(&mut self, a: Endpoint, b: Endpoint) -> bool {
        let one = self.add_one_way(a.clone(), b.clone());
        let other = self.add_one_way(b, a);
        one || other
    }
    /// Removes both directions between `a` and `b` (however they were added); false if neither was dropped.
    pub fn remove(&mut self, a: Endpoint, b: Endpoint) -> bool {
        let one = self.remove_one_way(a.clone(), b.clone());
        let other = self.remove_one_way(b, a);
        one || other
    }
    /// Drops frames from `from` to `to` only; false if that direction was already dropped.
    pub fn add_one_way(&mut self, from: Endpoint, to: Endpoint) -> bool {
        self.directed.insert((from, to))
    }
    /// Removes the drop of frames from `from` to `to`; false if it was not dropped.
    pub fn remove_one_way(&mut self, from: Endpoint, to: Endpoint) -> bool {
        self.directed.remove(&(from, to))
    }
    /// An `nft -f` script that replaces the table atomically with the current rules.
    pub fn render(&self, table: &str) -> String {
        let (mut fwd, mut input, mut output) = (String::new(), String::new(), String::new());
        for (from, to) in &self.directed {
            match (from, to) {
                (Endpoint::Port(x), Endpoint::Port(y)) => {
                    fwd += &format!("    iifname \"{x}\" oifname \"{y}\" drop\n");
                }
                (Endpoint::Port(x), Endpoint::Root) => {
                    input += &format!("    iifname \"{x}\" drop\n");
                }
                (Endpoint::Root, Endpoint::Port(y)) => {
                    output += &format!("    oifname \"{y}\" drop\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str) -> Endpoint {
        Endpoint::Port(name.into())
    }

    /// The rule lines of one chain of a rendered script.
    fn chain<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        let start = text
            .find(&format!("chain {name} {{"))
            .expect("chain present");
        text[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.trim() != "}")
            .map(str::trim)
            .collect()
    }

    #[test]
    fn pairs_are_unordered_and_render_both_directions() {
        let mut b = Blocks::default();
        assert!(b.add(port("p2"), port("p1")));
        assert!(!b.add(port("p1"), port("p2")));
        assert!(b.add(Endpoint::Root, port("p3")));
        let text = b.render("t");
        assert!(text.contains("iifname \"p1\" oifname \"p2\" drop"));
        assert!(text.contains("iifname \"p2\" oifname \"p1\" drop"));
        assert!(text.contains("iifname \"p3\" drop"));
        assert!(text.contains("oifname \"p3\" drop"));
        assert!(b.remove(port("p2"), port("p1")));
        assert!(!b.render("t").contains("p1"));
    }

    #[test]
    fn one_way_between_namespaces_renders_only_that_direction() {
        let mut b = Blocks::default();
        assert!(b.add_one_way(port("db1"), port("mon1")));
        assert!(!b.add_one_way(port("db1"), port("mon1")));
        let text = b.render("t");
        assert_eq!(
            chain(&text, "forward"),
            ["iifname \"db1\" oifname \"mon1\" drop"]
        );
        assert!(chain(&text, "input").is_empty());
        assert!(chain(&text, "output").is_empty());
        // The other order is another direction.
        assert!(b.add_one_way(port("mon1"), port("db1")));
        assert_eq!(chain(&b.render("t"), "forward").len(), 2);
        assert!(b.remove_one_way(port("db1"), port("mon1")));
        assert_eq!(
            chain(&b.render("t"), "forward"),
            ["iifname \"mon1\" oifname \"db1\" drop"]
        );
    }

    #[test]
    fn one_way_with_the_root_namespace_uses_input_or_output() {
        let mut b = Blocks::default();
        b.add_one_way(port("db1"), Endpoint::Root);
        let text = b.render("t");
        assert_eq!(chain(&text, "input"), ["iifname \"db1\" drop"]);
        assert!(chain(&text, "output").is_empty());
        assert!(chain(&text, "forward").is_empty());

        let mut b = Blocks::default();
        b.add_one_way(Endpoint::Root, port("db1"));
        let text = b.render("t");
        assert_eq!(chain(&text, "output"), ["oifname \"db1\" drop"]);
        assert!(chain(&text, "input").is_empty());
    }

    #[test]
    fn removing_a_full_block_removes_a_one_way_drop_too() {
        let mut b = Blocks::default();
        b.add_one_way(port("a"), port("b"));
        assert!(b.remove(port("b"), port("a")));
        assert!(chain(&b.render("t"), "forward").is_empty());
        assert!(!b.remove(port("a"), port("b")));
    }
}
