//! The exposition formats every mmm-rs `/metrics` endpoint (monitor and agent) serves: OpenMetrics
//! when the scraper asks for it (Prometheus does), else the classic text format, which
//! `promtool check metrics` and `curl` users get. prometheus-client writes OpenMetrics only.

use std::collections::HashSet;

/// The exposition formats `/metrics` serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text`), what Prometheus asks for.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (`text/plain`), for every other client.
    Text,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it, else the classic text format.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// An OpenMetrics exposition in this format.
    pub fn render(self, openmetrics: String) -> String {
        match self {
            Format::OpenMetrics => openmetrics,
            Format::Text => openmetrics_to_text(&openmetrics),
        }
    }
}

/// Rewrites an OpenMetrics exposition into the classic text format: counter families take the
/// `_total` name their samples carry, `# UNIT` and `# EOF` lines go (the classic format has neither).
pub fn openmetrics_to_text(om: &str) -> String {
    let counters: HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|t| t.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_total_name_and_openmetrics_only_lines_go() {
        let om = "# HELP x_pushes Pushes.\n# TYPE x_pushes counter\n# UNIT x_pushes pushes\n\
                  x_pushes_total 3\n# TYPE x_up gauge\nx_up 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP x_pushes_total Pushes.\n# TYPE x_pushes_total counter\nx_pushes_total 3\n\
             # TYPE x_up gauge\nx_up 1\n"
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(Format::OpenMetrics.render(om.to_string()), om);
    }
}
