//! `mmm-monitor --check-config` as an operator runs it (like `nginx -t`): the real binary on MMM's
//! sample configs, the seed's config (as written, and corrected), a 3-monitor config, and broken ones;
//! and the warning that plain-text gRPC accepts unauthenticated commands.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/fixtures")
}

/// Copies a fixture folder to a private (0600) temp dir, as an operator's /etc/mysql-mmm would be.
fn private_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in fs::read_dir(fixtures().join(name)).expect("fixture dir") {
        let entry = entry.expect("entry");
        let to = dir.path().join(entry.file_name());
        fs::copy(entry.path(), &to).expect("copy");
        fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    dir
}

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmm-monitor"))
        .arg("--check-config")
        .arg("--config")
        .arg(config)
        .output()
        .expect("run mmm-monitor")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn accepts_mmm_samples_the_corrected_seed_and_a_three_monitor_cluster() {
    for fixture in ["mmm-2.2.1", "seed-fixed", "cluster3"] {
        let dir = private_copy(fixture);
        let out = check(&dir.path().join("mmm_mon.conf"));
        let all = text(&out);
        assert!(out.status.success(), "{fixture}: {all}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The effective configuration: defaults filled in, passwords masked.
        assert!(
            stdout.contains("<host"),
            "{fixture}: effective config printed: {stdout}"
        );
        assert!(
            stdout.contains("check_period"),
            "{fixture}: defaults filled in: {stdout}"
        );
        assert!(
            stdout.contains("********"),
            "{fixture}: passwords masked: {stdout}"
        );
        for line in stdout.lines() {
            let mut words = line.split_whitespace();
            if let (Some(key), Some(value)) = (words.next(), words.next()) {
                if key.ends_with("_password") {
                    assert_eq!(
                        value, "********",
                        "{fixture}: {key} is shown masked: {stdout}"
                    );
                }
            }
        }
    }
}

#[test]
fn warns_that_plain_text_accepts_unauthenticated_commands_only_without_tls() {
    let dir = private_copy("cluster3");
    let conf = dir.path().join("mmm_mon.conf");
    let out = check(&conf);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr.contains("accept unauthenticated commands from anyone who can reach them"),
        "{stderr}"
    );
    assert!(stderr.contains("mmmctl certs init"), "says how: {stderr}");
    // Negative control: with `<socket> type ssl` there is no warning.
    let mut t = fs::read_to_string(&conf).expect("read");
    t.push_str(&format!(
        "\n<socket>\n    type ssl\n    cert_file {0}/mon1.pem\n    key_file {0}/mon1.key\n    ca_file {0}/ca.pem\n</socket>\n",
        dir.path().display()
    ));
    fs::write(&conf, t).expect("write");
    let out = check(&conf);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("unauthenticated"),
        "{}",
        text(&out)
    );
}

#[test]
fn refuses_the_seed_as_written_naming_file_and_line() {
    let dir = private_copy("seed");
    let out = check(&dir.path().join("mmm_mon.conf"));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("mmm_common.conf:"), "names the file: {all}");
    assert!(all.contains("defined twice"), "says what is wrong: {all}");
}

#[test]
fn reports_every_error_with_file_and_line() {
    let dir = private_copy("seed-fixed");
    let common = dir.path().join("mmm_common.conf");
    let mut t = fs::read_to_string(&common).unwrap();
    t.push_str("\n<host db9>\n    ipp 10.0.0.99\n    mode master\n    peer nohost\n</host>\n");
    fs::write(&common, t).unwrap();
    let out = check(&dir.path().join("mmm_mon.conf"));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("unknown key 'ipp'"), "{all}");
    assert!(all.contains("nohost"), "the bad peer is named: {all}");
    let located = all
        .lines()
        .filter(|l| l.contains("mmm_common.conf:"))
        .count();
    assert!(located >= 2, "every error carries file:line: {all}");
}

#[test]
fn refuses_a_world_readable_file_holding_passwords() {
    let dir = private_copy("seed-fixed");
    let common = dir.path().join("mmm_common.conf");
    fs::set_permissions(&common, fs::Permissions::from_mode(0o644)).unwrap();
    let out = check(&dir.path().join("mmm_mon.conf"));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("chmod"), "says how to fix it: {all}");
}

#[test]
fn accepts_a_deployed_mmm_config_and_prints_its_warnings_with_file_and_line() {
    let dir = private_copy("real-world");
    let out = check(&dir.path().join("mmm_mon_linkorb-m1.conf"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    let hosts = dir.path().join("mmm_hosts_linkorb-m1.conf");
    for want in [
        format!(
            "warning: {}:3: '# db1.linkorb.example' after the value of 'ip' in <host db1> is a comment",
            hosts.display()
        ),
        format!(
            "warning: {}:11: host 'db2' names itself as its peer",
            hosts.display()
        ),
        "prefer 'db3' of balanced role 'reader' is ignored, as MMM ignored it".to_owned(),
        "ping_ips names host 'localhost'".to_owned(),
        "status_path is not used".to_owned(),
    ] {
        assert!(err.contains(&want), "missing '{want}' in\n{err}");
    }
}
