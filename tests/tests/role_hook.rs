//! The agent's role-change hook (`<agent> role_change_hook`) end to end: every agent runs a script that
//! records its calls in a file; the writer's host reports the writer role once it holds it, and after
//! the writer's mysqld is killed (-9) the new writer's hook reports gaining it and the old writer's
//! hook reports losing it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_lab::cluster::{owner_of_role, MmmCluster};
use mmm_lab::{Lab, LabSpec};

const SETTLE: Duration = Duration::from_secs(40);
/// Longest a hook call may lag behind the role change it reports: the agent compares roles every
/// 100 ms and the script is instant; the rest is room for a loaded machine.
const HOOK_LAG: Duration = Duration::from_secs(10);

/// One recorded call: `HOST OLD NEW WRITER`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    /// `MMM_HOST`.
    host: String,
    /// First argument: old role names.
    old: String,
    /// Second argument: new role names.
    new: String,
    /// `MMM_WRITER`.
    writer: bool,
}

fn calls(file: &Path) -> Vec<Call> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [host, old, new, writer] => Some(Call {
                    host: host.to_string(),
                    old: old.to_string(),
                    new: new.to_string(),
                    writer: *writer == "1",
                }),
                _ => None,
            }
        })
        .collect()
}

fn has_writer(roles: &str) -> bool {
    roles.split(',').any(|r| r == "writer")
}

/// Waits until the calls recorded in `file` satisfy `pred`.
async fn wait_calls(
    file: &Path,
    what: &str,
    pred: impl Fn(&[Call]) -> bool,
) -> anyhow::Result<Vec<Call>> {
    let deadline = Instant::now() + HOOK_LAG;
    loop {
        let c = calls(file);
        if pred(&c) {
            return Ok(c);
        }
        if Instant::now() > deadline {
            bail!("{what}: not seen within {HOOK_LAG:?}; calls {c:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes the recording hook and names it in every agent's config.
fn install_hook(lab: &Lab, cluster: &MmmCluster<'_>) -> anyhow::Result<PathBuf> {
    let dir = lab.dir().join("hooks");
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("record.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$MMM_HOST $1 $2 $MMM_WRITER\" >> {}/calls-$MMM_HOST\n",
            dir.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    for h in lab.hosts() {
        let path = cluster.configs.agent(&h.name)?;
        let text = std::fs::read_to_string(path)?;
        if !text.contains("<agent>\n") {
            bail!("{} has no <agent> section", path.display());
        }
        let text = text.replace(
            "<agent>\n",
            &format!(
                "<agent>\n    role_change_hook {}\n    role_change_hook_timeout 5\n",
                script.display()
            ),
        );
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_role_change_hook_follows_a_failover_on_both_hosts() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut cluster = MmmCluster::configure(&lab, "auto_set_online 2", false)?;
    let dir = install_hook(&lab, &cluster)?;
    for h in lab.hosts() {
        cluster.start_agent(&h.name)?;
    }
    for m in lab.monitors() {
        cluster.start_monitor(&m.name)?;
    }
    cluster.wait_all_online("db1", SETTLE).await?;

    let db1 = dir.join("calls-db1");
    let db2 = dir.join("calls-db2");
    let before = wait_calls(&db1, "db1 reports the writer role", |c| {
        c.last().is_some_and(|c| has_writer(&c.new) && c.writer)
    })
    .await?;
    assert!(before.iter().all(|c| c.host == "db1"), "{before:?}");
    let first = &before[0];
    assert_eq!(
        first.old, "-",
        "the first call starts from no role: {first:?}"
    );
    assert!(
        calls(&db2).iter().all(|c| !has_writer(&c.new) && !c.writer),
        "db2 never reported the writer role before the failover: {:?}",
        calls(&db2)
    );
    let reader_hosts = lab
        .hosts()
        .iter()
        .filter(|h| {
            calls(&dir.join(format!("calls-{}", h.name)))
                .last()
                .is_some_and(|c| c.new.contains("reader"))
        })
        .count();
    assert!(reader_hosts > 0, "some host reported a reader role");

    lab.kill_mysqld("db1").await?;
    cluster
        .wait_show(Duration::from_secs(20), "writer on db2", |s| {
            owner_of_role(s, "writer").as_deref() == Some("db2")
        })
        .await?;
    let after = wait_calls(&db2, "db2 reports gaining the writer role", |c| {
        c.last()
            .is_some_and(|c| has_writer(&c.new) && !has_writer(&c.old) && c.writer)
    })
    .await?;
    eprintln!("db2's hook calls: {after:?}");
    // Any call, not only the last: db1 also loses its reader role (it is HARD_OFFLINE), possibly in a
    // call right after the one that drops the writer role.
    let lost = wait_calls(&db1, "db1 reports losing the writer role", |c| {
        c.iter()
            .any(|c| has_writer(&c.old) && !has_writer(&c.new) && !c.writer)
    })
    .await?;
    eprintln!("db1's hook calls: {lost:?}");
    Ok(())
}
