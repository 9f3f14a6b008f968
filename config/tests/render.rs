//! `render_effective` shows every setting with defaults filled in, masks passwords, and reads back
//! to the same configuration.

mod common;

use common::fixtures;
use mmm_config::{Config, Program};

fn fixture(name: &str, program: Program) -> Config {
    let file = fixtures().join(name);
    let text = std::fs::read_to_string(&file).unwrap();
    Config::from_str_for_tests(&text, file.to_str().unwrap(), program)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn passwords_are_masked_and_defaults_shown() {
    let c = fixture("cluster3/mmm_mon.conf", Program::Monitor);
    let out = c.render_effective();
    for secret in ["agentpass", "monitorpass", "replpass"] {
        assert!(!out.contains(secret), "{out}");
    }
    assert!(out.contains("agent_password         ********"), "{out}");
    assert!(out.contains("writer_lease           2"), "{out}");
    assert!(out.contains("trap_period            2"), "{out}");
    assert!(out.contains("check_period           0.5"), "{out}");
    assert!(out.contains("<monitor_node mon2>"), "{out}");
    assert!(!format!("{c:?}").contains("agentpass"));
}

#[test]
fn rendered_config_reads_back_the_same() {
    for (file, program) in [
        ("cluster3/mmm_mon.conf", Program::Monitor),
        ("cluster3/mmm_agent.conf", Program::Agent),
        ("mmm-2.2.1/mmm_mon.conf", Program::Monitor),
        ("seed-fixed/mmm_agent.conf", Program::Agent),
    ] {
        let c = fixture(file, program);
        let again = Config::from_str_for_tests(&c.render_effective(), "effective.conf", program)
            .unwrap_or_else(|e| panic!("{file}: {e}\n{}", c.render_effective()));
        assert_eq!(again.this, c.this, "{file}");
        assert_eq!(again.active_master_role, c.active_master_role, "{file}");
        assert_eq!(again.monitor, c.monitor, "{file}");
        assert_eq!(again.monitor_nodes, c.monitor_nodes, "{file}");
        assert_eq!(again.roles, c.roles, "{file}");
        assert_eq!(again.checks, c.checks, "{file}");
        assert_eq!(again.socket, c.socket, "{file}");
        assert_eq!(again.agent, c.agent, "{file}");
        assert_eq!(
            again.hosts.keys().collect::<Vec<_>>(),
            c.hosts.keys().collect::<Vec<_>>()
        );
        for (name, h) in &c.hosts {
            let a = &again.hosts[name];
            assert_eq!(
                (a.ip, a.mode, &a.peer, a.agent_port),
                (h.ip, h.mode, &h.peer, h.agent_port)
            );
            assert_eq!(a.agent_password.expose(), "********");
        }
    }
}
