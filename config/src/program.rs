//! Which program reads the configuration: it decides the file name that is searched for and the
//! keys that are required (as MMM's `required => ['AGENT', 'MONITOR', ...]` rules did).

/// The program reading the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Program {
    /// `mmm-monitor` (MMM's `mmm_mond`): reads `mmm_mon[_CLUSTER].conf`.
    Monitor,
    /// `mmm-agent` (MMM's `mmm_agentd`): reads `mmm_agent[_CLUSTER].conf`.
    Agent,
    /// `mmmctl` (MMM's `mmm_control`): reads `mmm_mon[_CLUSTER].conf`, like `mmm_control` did.
    Control,
}

impl Program {
    /// The base name of the file this program looks for (`mmm_mon`, `mmm_agent`).
    pub fn base_name(self) -> &'static str {
        match self {
            Program::Monitor | Program::Control => "mmm_mon",
            Program::Agent => "mmm_agent",
        }
    }

    /// The file name for an optional cluster (`@NAME` on the command line; the `@` may be given
    /// or not): `mmm_mon.conf`, `mmm_mon_NAME.conf`.
    pub fn file_name(self, cluster: Option<&str>) -> String {
        match cluster
            .map(|c| c.trim_start_matches('@'))
            .filter(|c| !c.is_empty())
        {
            Some(c) => format!("{}_{}.conf", self.base_name(), c),
            None => format!("{}.conf", self.base_name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_mmm() {
        assert_eq!(Program::Monitor.file_name(None), "mmm_mon.conf");
        assert_eq!(Program::Control.file_name(Some("@c1")), "mmm_mon_c1.conf");
        assert_eq!(Program::Agent.file_name(Some("c1")), "mmm_agent_c1.conf");
        assert_eq!(Program::Agent.file_name(Some("@")), "mmm_agent.conf");
    }
}
