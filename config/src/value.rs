//! Parsing of single values: lists, booleans, durations, numbers, addresses (MMM's rules, plus
//! fractional seconds).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Perl's `\s` as MMM's regexes used it.
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0B' | '\x0C')
}

/// Splits a list on `\s*,\s*` like MMM; empty items (a trailing comma) are dropped.
pub fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim_matches(is_space))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `true/on/yes/1` or `false/off/no/0`, any case.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(format!(
            "'{value}' is not a boolean (use true/on/yes/1 or false/off/no/0)"
        )),
    }
}

/// Seconds, whole (MMM) or fractional (`0.5`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let err = || format!("'{value}' is not a number of seconds (e.g. 5 or 0.5)");
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(err());
    }
    let secs: f64 = value.parse().map_err(|_| err())?;
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

/// A whole number.
pub fn parse_u32(value: &str) -> Result<u32, String> {
    value
        .parse()
        .map_err(|_| format!("'{value}' is not a whole number"))
}

/// A TCP port, 1-65535.
pub fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("'{value}' is not a port number (1-65535)")),
    }
}

/// An IPv4 or IPv6 address.
pub fn parse_ip(value: &str) -> Result<IpAddr, String> {
    value
        .parse()
        .map_err(|_| format!("'{value}' is not an IP address"))
}

/// An IPv4 address (VIPs are moved with gratuitous ARP, which is IPv4 only).
pub fn parse_ipv4(value: &str) -> Result<Ipv4Addr, String> {
    value
        .parse()
        .map_err(|_| format!("'{value}' is not an IPv4 address"))
}

/// Formats a duration as MMM writes it: whole seconds without a fraction.
pub fn format_duration(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_like_mmm() {
        assert_eq!(parse_list("db1, db2 ,db3"), vec!["db1", "db2", "db3"]);
        assert_eq!(parse_list("a,"), vec!["a"]);
        assert!(parse_list("").is_empty());
    }

    #[test]
    fn booleans_any_case() {
        for t in ["true", "ON", "Yes", "1"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["FALSE", "off", "no", "0"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn durations_whole_and_fractional() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("1e400").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5s").is_err());
        assert_eq!(format_duration(Duration::from_secs(5)), "5");
        assert_eq!(format_duration(Duration::from_millis(500)), "0.5");
    }

    #[test]
    fn ports_and_ips() {
        assert_eq!(parse_port("9988"), Ok(9988));
        assert!(parse_port("0").is_err());
        assert!(parse_port("70000").is_err());
        assert!(parse_ip("192.168.0.300").is_err());
        assert!(parse_ip("::1").is_ok());
        assert!(parse_ipv4("::1").is_err());
    }
}
