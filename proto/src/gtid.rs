//! MariaDB GTID positions, the one home of their arithmetic for agents and monitors.
//!
//! A position is a comma list of `domain-server_id-seq`, one entry per replication domain (the last
//! GTID of that domain). Sequence numbers grow within a domain under `gtid_strict_mode`, so two
//! positions compare domain by domain on the sequence number alone: `a` has *reached* `b` when, for
//! every domain `b` names, `a` names it with a sequence number at least as high.

use std::collections::BTreeMap;

/// One GTID (`domain-server_id-seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gtid {
    /// Replication domain.
    pub domain: u32,
    /// Server that originated the transaction.
    pub server_id: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

impl std::fmt::Display for Gtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

/// A GTID position that is not in MariaDB's format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed GTID {0:?} (expected domain-server_id-seq)")]
pub struct GtidParseError(pub String);

/// Parses one MariaDB GTID position (`"0-1-100,1-2-5"`, empty = nothing).
pub fn parse_position(pos: &str) -> Result<Vec<Gtid>, GtidParseError> {
    pos.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bad = || GtidParseError(s.to_string());
            let mut it = s.split('-');
            let (Some(d), Some(sid), Some(seq), None) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad());
            };
            Ok(Gtid {
                domain: d.parse().map_err(|_| bad())?,
                server_id: sid.parse().map_err(|_| bad())?,
                seq: seq.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// The highest sequence number of every domain a position names; `None` when it is malformed.
fn per_domain(pos: &str) -> Option<BTreeMap<u32, u64>> {
    let mut out = BTreeMap::new();
    for g in parse_position(pos).ok()? {
        let s = out.entry(g.domain).or_insert(0);
        *s = (*s).max(g.seq);
    }
    Some(out)
}

/// True when the position `current` has reached `target` (see the module docs). A malformed target is
/// never reached, nor is anything by a malformed current position; the empty target always is.
pub fn reached(current: &str, target: &str) -> bool {
    let (Some(cur), Some(want)) = (per_domain(current), per_domain(target)) else {
        return false;
    };
    want.iter()
        .all(|(d, seq)| cur.get(d).is_some_and(|c| c >= seq))
}

/// True when `a` has reached `b` and holds transactions `b` lacks: `a` is strictly more advanced.
pub fn strictly_ahead(a: &str, b: &str) -> bool {
    reached(a, b) && !reached(b, a)
}

/// Transactions in `ahead` that `behind` lacks, counted per domain from the sequence numbers. `None`
/// when a position cannot be read.
pub fn transactions_behind(behind: &str, ahead: &str) -> Option<u64> {
    let host = per_domain(behind)?;
    Some(
        per_domain(ahead)?
            .iter()
            .map(|(d, w)| w.saturating_sub(host.get(d).copied().unwrap_or(0)))
            .sum(),
    )
}

/// The per-domain maximum of two positions (the higher sequence number's GTID of every domain either
/// names), for a position that must reach both. Malformed entries are kept as they are (a malformed
/// position is then never reached).
pub fn merge(a: &str, b: &str) -> String {
    let mut by_domain: BTreeMap<u32, Gtid> = BTreeMap::new();
    let mut malformed = Vec::new();
    for g in a
        .split(',')
        .chain(b.split(','))
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        match parse_position(g).ok().and_then(|v| v.first().copied()) {
            Some(gtid) => {
                let e = by_domain.entry(gtid.domain).or_insert(gtid);
                if gtid.seq > e.seq {
                    *e = gtid;
                }
            }
            None => malformed.push(g.to_string()),
        }
    }
    by_domain
        .into_values()
        .map(|g| g.to_string())
        .chain(malformed)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positions() {
        assert_eq!(parse_position("").unwrap(), vec![]);
        assert_eq!(
            parse_position("0-1-100, 1-2-5").unwrap(),
            vec![
                Gtid {
                    domain: 0,
                    server_id: 1,
                    seq: 100
                },
                Gtid {
                    domain: 1,
                    server_id: 2,
                    seq: 5
                }
            ]
        );
        for bad in ["0-1", "0-1-2-3", "a-1-2", "0--2", "0-1-x"] {
            assert!(parse_position(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn positions_compare_per_domain() {
        assert!(reached("0-1-10", "0-1-10"));
        assert!(
            reached("0-2-12", "0-1-10"),
            "same domain, later seq from another server"
        );
        assert!(!reached("0-1-9", "0-1-10"));
        assert!(reached("0-1-10,1-3-4", "1-3-4,0-1-7"));
        assert!(!reached("0-1-10", "0-1-7,1-3-4"), "a domain missing");
        assert!(reached("0-1-10", ""), "nothing to reach");
        assert!(!reached("0-1-10", "garbage"));
        assert!(!reached("0-1-10", "0-1-2-3"));
        assert!(!reached("garbage", ""));
    }

    #[test]
    fn strictly_ahead_is_a_strict_order() {
        assert!(strictly_ahead("0-1-11", "0-1-10"));
        assert!(!strictly_ahead("0-1-10", "0-1-10"), "equal");
        assert!(!strictly_ahead("0-1-10", "0-1-11"));
        assert!(strictly_ahead("0-1-10,1-2-1", "0-1-10"), "one more domain");
        assert!(
            !strictly_ahead("0-1-12,1-2-1", "0-1-10,1-2-3"),
            "each ahead in one domain: neither is"
        );
        assert!(!strictly_ahead("0-1-12,1-2-3", "0-1-10,1-2-3,2-3-1"));
        assert!(!strictly_ahead("junk", "0-1-1"));
        assert!(!strictly_ahead("0-1-1", "junk"));
    }

    #[test]
    fn transactions_behind_count_per_domain() {
        assert_eq!(transactions_behind("0-1-90", "0-1-100"), Some(10));
        assert_eq!(transactions_behind("0-1-100", "0-1-100"), Some(0));
        assert_eq!(
            transactions_behind("0-1-100,1-2-5", "0-2-103,1-2-9"),
            Some(7)
        );
        assert_eq!(transactions_behind("", "0-1-4"), Some(4));
        assert_eq!(transactions_behind("0-1-120", "0-1-100"), Some(0));
        assert_eq!(transactions_behind("junk", "0-1-100"), None);
    }

    #[test]
    fn merge_keeps_the_highest_of_every_domain() {
        assert_eq!(merge("0-1-10", "0-2-12"), "0-2-12");
        assert_eq!(merge("0-1-10,1-3-4", "1-3-2,2-5-1"), "0-1-10,1-3-4,2-5-1");
        assert_eq!(merge("", "0-1-1"), "0-1-1");
        assert_eq!(merge("0-1-1", "junk"), "0-1-1,junk");
    }
}
