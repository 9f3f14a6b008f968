//! Finding files: includes (beside the including file, then the search path), `@CLUSTER` names,
//! `--config FILE`, and MMM's refusal of config files with unsafe permissions.

mod common;

use std::path::PathBuf;

use common::{private_copy, write};
use mmm_config::{load_with, Config, LoadOptions, Program};

const COMMON: &str = "\
active_master_role writer
<monitor_node mon1>
    ip 10.0.0.21
</monitor_node>
<host default>
    cluster_interface eth0
    agent_user a
    agent_password secret-a
    replication_user r
    replication_password secret-r
    monitor_user m
    monitor_password secret-m
</host>
<host db1>
    ip 10.0.0.11
    mode slave
</host>
<role writer>
    hosts db1
    ips 10.0.0.100
    mode exclusive
</role>
";

fn opts(search: &[PathBuf]) -> LoadOptions {
    LoadOptions {
        search_path: search.to_vec(),
        check_permissions: true,
    }
}

#[test]
fn include_beside_the_including_file_wins_over_the_search_path() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let conf = dir.path().join("conf");
    write(
        &etc,
        "mmm_common.conf",
        &COMMON.replace("10.0.0.11", "10.9.9.9"),
        0o600,
    );
    write(&conf, "mmm_common.conf", COMMON, 0o600);
    let agent = write(
        &conf,
        "mmm_agent.conf",
        "include mmm_common.conf\nthis db1\n",
        0o600,
    );
    let c = Config::from_file_with(&agent, Program::Agent, &opts(std::slice::from_ref(&etc)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.hosts["db1"].ip.to_string(), "10.0.0.11");

    // Not beside it: found on the search path; ".conf" appended as MMM does.
    let other = dir.path().join("other");
    let agent = write(
        &other,
        "mmm_agent.conf",
        "include mmm_common\nthis db1\n",
        0o600,
    );
    let c = Config::from_file_with(&agent, Program::Agent, &opts(&[etc]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.hosts["db1"].ip.to_string(), "10.9.9.9");
}

#[test]
fn missing_include_and_include_loops_are_reported_at_the_include_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.conf",
        "# a\ninclude nothere.conf\ninclude b.conf\n",
        0o600,
    );
    write(dir.path(), "b.conf", "include a.conf\n", 0o600);
    let errs = Config::from_file_with(&a, Program::Control, &opts(&[])).unwrap_err();
    let s = errs.to_string();
    assert!(
        s.contains(&format!(
            "{}:2: include nothere.conf: no readable file beside",
            a.display()
        )),
        "{s}"
    );
    assert!(s.contains(": include loop:"), "{s}");
}

#[test]
fn errors_in_included_files_name_that_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "mmm_common.conf",
        &COMMON.replace("    ip 10.0.0.11", "    ipp 10.0.0.11"),
        0o600,
    );
    let mon = write(
        dir.path(),
        "mmm_mon.conf",
        "include mmm_common.conf\nthis mon1\n",
        0o600,
    );
    let errs = Config::from_file_with(&mon, Program::Monitor, &opts(&[])).unwrap_err();
    let common = dir.path().join("mmm_common.conf");
    let want = format!("{}:15: unknown key 'ipp' in <host db1>", common.display());
    assert!(errs.iter().any(|e| e.to_string() == want), "{errs}");
}

#[test]
fn cluster_names_select_the_file_on_the_search_path() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(&first).unwrap();
    write(&second, "mmm_common_c2.conf", COMMON, 0o600);
    write(
        &second,
        "mmm_agent_c2.conf",
        "include mmm_common_c2.conf\nthis db1\n",
        0o600,
    );
    write(
        &second,
        "mmm_mon_c2.conf",
        "include mmm_common_c2\nthis mon1\n",
        0o600,
    );
    let search = [first, second.clone()];
    let agent = load_with(Program::Agent, Some("@c2"), None, &opts(&search))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(agent.source, second.join("mmm_agent_c2.conf"));
    let ctl = load_with(Program::Control, Some("c2"), None, &opts(&search))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ctl.source, second.join("mmm_mon_c2.conf"));
    let errs = load_with(Program::Agent, None, None, &opts(&search)).unwrap_err();
    assert!(
        errs.to_string()
            .contains("no readable config file mmm_agent.conf in"),
        "{errs}"
    );
}

#[test]
fn explicit_config_file_is_used_as_given() {
    let dir = private_copy("cluster3");
    let path = dir.path().join("mmm_mon.conf");
    let c = load_with(Program::Monitor, None, Some(&path), &opts(&[]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source, path);
    // ".conf" may be left out.
    let c = load_with(
        Program::Monitor,
        None,
        Some(&dir.path().join("mmm_mon")),
        &opts(&[]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source, path);
}

#[test]
fn world_readable_file_with_passwords_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let common = write(dir.path(), "mmm_common.conf", COMMON, 0o644);
    let agent = write(
        dir.path(),
        "mmm_agent.conf",
        "include mmm_common.conf\nthis db1\n",
        0o644,
    );
    let errs = Config::from_file_with(&agent, Program::Agent, &opts(&[])).unwrap_err();
    let s = errs.to_string();
    assert!(s.contains("world-readable"), "{s}");
    assert!(
        s.contains(&format!("chmod 640 {}", common.display())),
        "{s}"
    );
    // The including file holds no password: 0644 is fine for it.
    assert!(
        !s.contains(&format!("chmod 640 {}", agent.display())),
        "{s}"
    );

    std::fs::set_permissions(&common, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    Config::from_file_with(&agent, Program::Agent, &opts(&[])).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn world_writable_file_is_refused_even_without_passwords() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "mmm_common.conf", COMMON, 0o600);
    let agent = write(
        dir.path(),
        "mmm_agent.conf",
        "include mmm_common.conf\nthis db1\n",
        0o666,
    );
    let errs = Config::from_file_with(&agent, Program::Agent, &opts(&[])).unwrap_err();
    assert!(errs.to_string().contains("world-writable"), "{errs}");
    assert_eq!(errs.len(), 1, "{errs}");
}

#[test]
fn missing_file_is_one_clear_error() {
    let errs = Config::from_file(
        std::path::Path::new("/nonexistent/mmm_mon.conf"),
        Program::Monitor,
    )
    .unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    assert!(
        errs.to_string()
            .starts_with("/nonexistent/mmm_mon.conf: cannot read config file"),
        "{errs}"
    );
}
