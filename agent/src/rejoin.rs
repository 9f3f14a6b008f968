//! Automatic rejoin of a diverged old master: its errant transactions are saved to a file, undone, and
//! the host replicates from the writer again (asked by the monitors with `auto_rejoin_errant 1`, only for
//! transactions that were never acknowledged; see `mmm_monitor::engine::errant`).
//!
//! The steps, on the agent's own connection, in a task of their own (an apply the leader gives up on
//! must not stop an undo half-way), while replication is left alone by applies:
//! 1. Preconditions: `read_only=1`, `binlog_format=ROW`, `binlog_row_image=FULL` (flashback needs
//!    full before-images), and the semi-sync settings that make an errant transaction one that was
//!    never acknowledged (`rpl_semi_sync_master_enabled`, `AFTER_SYNC`, a timeout above lease + fence:
//!    `mmm_proto::settings`); without them a commit could have been acknowledged by the server alone.
//! 2. The position before the errant transactions (`good`): this server's `@@gtid_binlog_pos` with
//!    every errant domain's entry replaced by the writer's last GTID of the same domain and server
//!    (`@@gtid_binlog_state` of the writer, read through the replication account). The writer has
//!    nothing of that server in that domain: refused (nothing to rewind to).
//! 3. Save: `mariadb-binlog -vv --base64-output=decode-rows --start-position=<good> <binlogs>` into
//!    `<state_dir>/errant-<gtids>-<unix time>.txt`, a file an operator can read. The GTIDs it lists
//!    must be exactly errant ones (the errant domains, the errant server, sequence numbers after the
//!    writer's): a DDL statement (flashback cannot undo it) or another server's transaction in the
//!    range refuses the rejoin, the file stays for the operator.
//! 4. Undo: `mariadb-binlog --flashback --do-server-ids=<server> --start-position=<good> <binlogs>` piped
//!    into `mariadb --init-command='SET SESSION sql_log_bin=0'` (the undo is not logged and makes no
//!    GTID); both must exit 0, and `@@gtid_binlog_pos` must be unchanged afterwards.
//! 5. `RESET MASTER; SET GLOBAL gtid_slave_pos=<good>`, then replication from the writer with GTID
//!    auto-positioning.
//!
//! Replication is stopped first (another domain's would go on past the errant transactions of this
//! one while the positions are read), and started again if the rejoin fails.
//!
//! A rejoin asked again after it was done (an agent restarted before it reported) finds the errant
//! transactions gone from `@@gtid_current_pos` and reports it done.
//!
//! Assumed: the errant range holds only row changes to transactional tables made on this server after
//! it was failed over (the check in step 3 enforces the GTIDs, not the engines: a MyISAM table is
//! undone but not atomically); the agent can read the binary logs (it runs on the DB host) and its
//! account has `BINLOG REPLAY` and `BINLOG ADMIN` (or `SUPER`). MariaDB only.
//! Guaranteed: either the errant transactions are saved to the file and undone and the host follows
//! the writer from the position before them, or the rejoin fails with the reason logged and reported,
//! and the host stays marked errant (out of rotation). An undo that failed part-way leaves the host
//! in that state too: an operator rebuilds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

use crate::db::{Db, DbTarget};
use crate::sql::Flavor;

/// Longest one `mariadb-binlog` or `mariadb` run may take (binary logs of a busy server can be large;
/// a rejoin is not on a failover's path).
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

pub use crate::sql::Gtid;

/// Per errant domain: the errant server, a sequence number (the writer's last of that server, or the
/// first errant one) and the last errant sequence number.
pub type Spans = BTreeMap<u32, (u32, u64, u64)>;

/// Parses a MariaDB GTID position (`d-s-n`, comma-separated); `None` when malformed or empty.
pub fn parse_position(s: &str) -> Option<Vec<Gtid>> {
    crate::sql::parse_gtids(s).filter(|v| !v.is_empty())
}

fn render(gtids: &[Gtid]) -> String {
    gtids
        .iter()
        .map(|(d, s, n)| format!("{d}-{s}-{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Where to start reading the binary logs to find the errant transactions (module step 2), for the
/// errant domains only (the tools are run with `--do-domain-ids`: `mariadb-binlog` refuses a start
/// position whose GTID is the last one in the logs, as another domain's current one may be): per
/// errant domain the writer's last GTID of the same domain and server (`gtid_binlog_state`), which
/// this server has too and which precedes every errant transaction. Also returns, per errant domain, (errant server, writer's last sequence
/// number of that server, last errant sequence number).
pub fn scan_position(
    own_binlog_pos: &str,
    errant: &str,
    writer_binlog_state: &str,
) -> Result<(String, Spans), String> {
    let errant = parse_position(errant).ok_or_else(|| format!("errant position {errant:?}"))?;
    let own = parse_position(own_binlog_pos).unwrap_or_default();
    let writer = parse_position(writer_binlog_state).unwrap_or_default();
    let mut domains = BTreeMap::new();
    let mut start: BTreeMap<u32, Gtid> = BTreeMap::new();
    for (d, s, last) in &errant {
        if !own.iter().any(|g| g.0 == *d && g.1 == *s && g.2 >= *last) {
            return Err(format!(
                "this server's binlog position {own_binlog_pos:?} lacks the errant {d}-{s}-{last}"
            ));
        }
    }
    for (d, s, last) in errant {
        let Some(&(_, _, known)) = writer.iter().find(|(wd, ws, _)| *wd == d && *ws == s) else {
            return Err(format!(
                "the writer has no transaction of server {s} in domain {d}: nothing to rewind to"
            ));
        };
        if known >= last {
            return Err(format!(
                "the writer already has {d}-{s}-{known}, at or past the errant {d}-{s}-{last}"
            ));
        }
        start.insert(d, (d, s, known));
        domains.insert(d, (s, known, last));
    }
    Ok((render(&start.into_values().collect::<Vec<_>>()), domains))
}

/// From the GTIDs listed after the scan position (in binary log order, errant domains only), the
/// position right before the errant transactions (errant domains only), and per errant domain (server, first errant sequence number, last). The
/// first errant transaction of a domain is the first one of the errant server with a sequence number
/// the writer does not have; the writer's transactions this server replicated before it stay. Every
/// later transaction of that domain must be errant too (under `gtid_strict_mode` nothing else can
/// follow one), and the last must be the reported one.
pub fn split_errant(
    listed: &[(Gtid, bool)],
    scan: &str,
    domains: &Spans,
) -> Result<(String, Spans), String> {
    let mut good: BTreeMap<u32, Gtid> = parse_position(scan)
        .unwrap_or_default()
        .into_iter()
        .map(|g| (g.0, g))
        .collect();
    let mut ranges = BTreeMap::new();
    for (&d, &(s, known, last)) in domains {
        let in_domain: Vec<Gtid> = listed
            .iter()
            .map(|(g, _)| *g)
            .filter(|g| g.0 == d)
            .collect();
        let Some(first) = in_domain.iter().position(|g| g.1 == s && g.2 > known) else {
            return Err(format!(
                "no transaction of server {s} after {d}-{s}-{known} in the binary logs"
            ));
        };
        if let Some(before) = first.checked_sub(1).map(|i| in_domain[i]) {
            good.insert(d, before);
        }
        ranges.insert(d, (s, in_domain[first].2, last));
    }
    Ok((render(&good.into_values().collect::<Vec<_>>()), ranges))
}

/// `own` with the entries of the domains `good` names replaced by `good`'s: the replication position
/// after the rejoin (the position before the errant transactions, everything else kept).
pub fn with_domains(own: &str, good: &str) -> String {
    let mut by_domain: BTreeMap<u32, Gtid> = parse_position(own)
        .unwrap_or_default()
        .into_iter()
        .map(|g| (g.0, g))
        .collect();
    for g in parse_position(good).unwrap_or_default() {
        by_domain.insert(g.0, g);
    }
    render(&by_domain.into_values().collect::<Vec<_>>())
}

/// The GTIDs a `mariadb-binlog -vv` text lists (`... GTID 0-1-15 trans`), with whether each is DDL.
pub fn listed_gtids(text: &str) -> Vec<(Gtid, bool)> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            let rest = &l[l.find("\tGTID ").or_else(|| l.find(" GTID "))? + 6..];
            let mut words = rest.split_whitespace();
            let g = parse_position(words.next()?)?.first().copied()?;
            let ddl = words.any(|w| w == "ddl");
            Some((g, ddl))
        })
        .collect()
}

/// Checks that the saved text lists exactly errant transactions (module step 3): every GTID in an
/// errant domain's range, of the errant server, none DDL, and every errant sequence number present.
pub fn check_listed(listed: &[(Gtid, bool)], ranges: &Spans) -> Result<(), String> {
    for &((d, s, n), ddl) in listed {
        let Some(&(es, from, to)) = ranges.get(&d) else {
            return Err(format!(
                "{d}-{s}-{n} is in domain {d}, which has no errant transactions"
            ));
        };
        if s != es || n < from || n > to {
            return Err(format!(
                "{d}-{s}-{n} is not one of the errant transactions {d}-{es}-{from}..{to}"
            ));
        }
        if ddl {
            return Err(format!("{d}-{s}-{n} is DDL, which flashback cannot undo"));
        }
    }
    for (&d, &(s, from, to)) in ranges {
        let found = listed.iter().filter(|((ld, _, _), _)| *ld == d).count() as u64;
        if found != to - from + 1 {
            return Err(format!(
                "{found} transactions of domain {d} found in the binary logs, {} errant ({d}-{s}-{from}..{to})",
                to - from + 1
            ));
        }
    }
    Ok(())
}

/// Where a rejoin stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Progress {
    /// None asked or running.
    #[default]
    Idle,
    /// Working on these errant transactions.
    Running(String),
    /// These errant transactions were saved to the file and undone.
    Done(String, String),
    /// It failed; not retried for these errant transactions (the host stays errant).
    Failed(String, String),
}

/// What a rejoin needs besides the local server.
#[derive(Debug, Clone)]
pub struct Target {
    /// The errant position to undo.
    pub errant: String,
    /// The writer's server, with the replication account.
    pub writer: DbTarget,
    /// Replication account (for CHANGE MASTER).
    pub user: String,
    /// Its password.
    pub password: String,
    /// The writer lease, for the semi-sync settings check (step 1).
    pub lease: Duration,
}

/// Runs rejoins one at a time and remembers the last outcome.
#[derive(Debug, Clone)]
pub struct Rejoiner {
    /// Where saved transactions go (`<state_dir>`).
    dir: PathBuf,
    /// The local server, with the agent's account.
    local: DbTarget,
    /// Shared with the running task.
    progress: Arc<Mutex<Progress>>,
}

impl Rejoiner {
    /// A rejoiner saving into `dir`.
    pub fn new(dir: &Path, local: DbTarget) -> Self {
        Rejoiner {
            dir: dir.to_path_buf(),
            local,
            progress: Arc::default(),
        }
    }

    /// The last outcome.
    pub fn progress(&self) -> Progress {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True while a rejoin runs (applies then leave replication alone).
    pub fn running(&self) -> bool {
        matches!(self.progress(), Progress::Running(_))
    }

    /// Starts a rejoin for `target.errant` unless one runs, or one for the same transactions ended.
    pub fn ensure(&self, target: Target) {
        {
            let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            match &*p {
                Progress::Running(_) => return,
                Progress::Done(e, _) | Progress::Failed(e, _) if *e == target.errant => return,
                _ => {}
            }
            *p = Progress::Running(target.errant.clone());
        }
        let me = self.clone();
        tokio::spawn(async move {
            let errant = target.errant.clone();
            tracing::warn!(errant = %errant, "automatic rejoin: saving and undoing errant transactions");
            let outcome = match me.run(&target).await {
                Ok(file) => {
                    tracing::warn!(errant = %errant, saved_to = %file, "automatic rejoin done: errant transactions saved and undone; replicating from the writer");
                    Progress::Done(errant, file)
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    tracing::error!(errant = %errant, error = %e, "automatic rejoin failed: the host stays out of rotation until an operator rebuilds it");
                    Progress::Failed(errant, e)
                }
            };
            *me.progress.lock().unwrap_or_else(|e| e.into_inner()) = outcome;
        });
    }

    async fn run(&self, t: &Target) -> anyhow::Result<String> {
        let mut db = self.local.connect().await?;
        if db.flavor != Flavor::MariaDb {
            bail!("automatic rejoin needs MariaDB (mariadb-binlog --flashback)");
        }
        // Already undone (an agent restarted before it reported).
        let current = db.gtid_current_pos().await?;
        if !crate::sql::gtid_reached(&current, &t.errant) {
            return Ok(format!("(undone before; the server is at {current})"));
        }
        if !db.read_only().await? {
            bail!(
                "the server is writable: a rejoin undoes transactions only on a read-only server"
            );
        }
        // Never acknowledged only if a commit could not be acknowledged without a replica before the
        // lease ended: semi-sync on, AFTER_SYNC, its timeout above lease + fence (as now; assumed the
        // same when it was the writer).
        let semi_sync: Vec<String> = db
            .check_settings(t.lease)
            .await?
            .problems
            .into_iter()
            .filter(|p| p.variable.starts_with("rpl_semi_sync_master"))
            .map(|p| p.to_string())
            .collect();
        if !semi_sync.is_empty() {
            bail!(
                "its errant transactions may have been acknowledged (semi-sync settings: {}): not undone automatically",
                semi_sync.join("; ")
            );
        }
        let (format, image): (Option<String>, Option<String>) = db
            .query_first("SELECT @@binlog_format, @@binlog_row_image")
            .await?
            .unwrap_or_default();
        if format.as_deref() != Some("ROW") || image.as_deref() != Some("FULL") {
            bail!("flashback needs binlog_format=ROW and binlog_row_image=FULL (the server has {format:?}, {image:?})");
        }
        // Nothing more arrives while the positions are read and compared (another domain's
        // replication would go on past the errant transactions of this one).
        let replicating = db
            .replica_status()
            .await?
            .is_some_and(|r| r.io_running || r.sql_running);
        db.stop_replica().await?;
        let result = self.undo(&mut db, t).await;
        if result.is_err() && replicating {
            if let Err(e) = db.start_replica().await {
                tracing::warn!(error = %format!("{e:#}"), "replication not started again after the failed rejoin");
            }
        }
        result
    }

    /// Steps 2 to 5 of the module docs, with replication stopped.
    async fn undo(&self, db: &mut Db, t: &Target) -> anyhow::Result<String> {
        let own = db.gtid_positions().await?.binlog;
        let writer_state = {
            let mut w = t.writer.connect().await.context("the writer's server")?;
            let s: Option<String> = w.query_first("SELECT @@gtid_binlog_state").await?;
            s.unwrap_or_default()
        };
        let (scan, domains) =
            scan_position(&own, &t.errant, &writer_state).map_err(|e| anyhow::anyhow!("{e}"))?;
        let files = binlog_files(db).await?;
        let domain_ids: Vec<String> = domains.keys().map(u32::to_string).collect();
        let domain_ids = format!("--do-domain-ids={}", domain_ids.join(","));
        let mut list = binlog_tool();
        list.arg(format!("--start-position={scan}"))
            .arg(&domain_ids)
            .args(&files);
        let listed = listed_gtids(&run_capture(list).await.context("reading the binary logs")?);
        let (good, ranges) =
            split_errant(&listed, &scan, &domains).map_err(|e| anyhow::anyhow!("{e}"))?;
        let server_ids: Vec<String> = ranges.values().map(|(s, _, _)| s.to_string()).collect();
        let slave_pos = with_domains(&own, &good);

        // 3. Save.
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let file = self
            .dir
            .join(format!("errant-{}-{unix}.txt", t.errant.replace(',', "_")));
        let mut dump = binlog_tool();
        dump.arg("-vv")
            .arg("--base64-output=decode-rows")
            .arg(format!("--start-position={good}"))
            .arg(&domain_ids)
            .args(&files);
        let text = run_capture(dump)
            .await
            .context("saving the errant transactions")?;
        std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
        let file_name = file.display().to_string();
        tracing::info!(file = %file_name, before_errant = %good, replicate_from = %slave_pos, errant = %t.errant, "errant transactions saved");
        check_listed(&listed_gtids(&text), &ranges)
            .map_err(|e| anyhow::anyhow!("not undone automatically: {e} (see {file_name})"))?;

        // 4. Undo, not logged.
        let mut flashback = binlog_tool();
        flashback
            .arg("--flashback")
            .arg(format!("--do-server-ids={}", server_ids.join(",")))
            .arg(&domain_ids)
            .arg(format!("--start-position={good}"))
            .args(&files);
        let mut client = Command::new(tool("mariadb", "mysql"));
        client
            .arg(format!("--host={}", self.local.ip))
            .arg(format!("--port={}", self.local.port))
            .arg(format!("--user={}", self.local.user))
            .arg("--init-command=SET SESSION sql_log_bin=0")
            .env("MYSQL_PWD", &self.local.password);
        pipe(flashback, client)
            .await
            .context("undoing the errant transactions")?;
        let after = db.gtid_positions().await?.binlog;
        if after != own {
            bail!("the undo changed the binary log position ({own} -> {after}): not rejoined");
        }
        tracing::info!(errant = %t.errant, "errant transactions undone (flashback, not logged)");

        // 5. Forget them and follow the writer from before them.
        db.exec("RESET MASTER").await?;
        db.exec(&format!(
            "SET GLOBAL gtid_slave_pos = {}",
            crate::sql::quote(&slave_pos)
        ))
        .await?;
        db.point_source(t.writer.ip, t.writer.port, &t.user, &t.password, true)
            .await?;
        Ok(file_name)
    }
}

/// The binary log files, oldest first, as paths (from `@@log_bin_index`, relative to `@@datadir`).
async fn binlog_files(db: &mut Db) -> anyhow::Result<Vec<PathBuf>> {
    let (index, datadir): (Option<String>, Option<String>) = db
        .query_first("SELECT @@log_bin_index, @@datadir")
        .await?
        .unwrap_or_default();
    let datadir = PathBuf::from(datadir.context("no @@datadir")?);
    let index = PathBuf::from(index.context("binary logging is off (no @@log_bin_index)")?);
    let index = if index.is_absolute() {
        index
    } else {
        datadir.join(index)
    };
    let text = std::fs::read_to_string(&index)
        .with_context(|| format!("reading the binary log index {}", index.display()))?;
    let files: Vec<PathBuf> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let p = Path::new(l);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                datadir.join(p)
            }
        })
        .collect();
    if files.is_empty() {
        bail!("no binary logs listed in {}", index.display());
    }
    Ok(files)
}

/// The MariaDB tool by its new name, else its old one.
fn tool(name: &str, old: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        for n in [name, old] {
            let p = Path::new(dir).join(n);
            if p.exists() {
                return p;
            }
        }
    }
    PathBuf::from(name)
}

fn binlog_tool() -> Command {
    Command::new(tool("mariadb-binlog", "mysqlbinlog"))
}

/// Runs `cmd`, returns its standard output; fails on a non-zero exit (with its standard error).
async fn run_capture(mut cmd: Command) -> anyhow::Result<String> {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(TOOL_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("no end within {TOOL_TIMEOUT:?}"))??;
    if !out.status.success() {
        bail!(
            "{:?} exited with {}: {}",
            cmd.as_std().get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `from | to`; both must exit 0.
async fn pipe(mut from: Command, mut to: Command) -> anyhow::Result<()> {
    from.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut a = from.spawn().context("starting mariadb-binlog")?;
    let out: Stdio = a
        .stdout
        .take()
        .context("no pipe")?
        .try_into()
        .context("pipe")?;
    to.stdin(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let b = to.spawn().context("starting the mariadb client")?;
    let both = async {
        let (ra, rb) = tokio::join!(a.wait_with_output(), b.wait_with_output());
        anyhow::Ok((ra?, rb?))
    };
    let (ra, rb) = tokio::time::timeout(TOOL_TIMEOUT, both)
        .await
        .with_context(|| format!("no end within {TOOL_TIMEOUT:?}"))??;
    if !ra.status.success() {
        bail!(
            "mariadb-binlog exited with {}: {}",
            ra.status,
            String::from_utf8_lossy(&ra.stderr).trim()
        );
    }
    if !rb.status.success() {
        bail!(
            "the mariadb client exited with {}: {} (the undo may be partial)",
            rb.status,
            String::from_utf8_lossy(&rb.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_or_not() {
        assert_eq!(parse_position("0-1-5"), Some(vec![(0, 1, 5)]));
        assert_eq!(
            parse_position(" 0-1-5, 1-2-7 "),
            Some(vec![(0, 1, 5), (1, 2, 7)])
        );
        for bad in ["", "0-1", "0-1-5-6", "a-1-5", "0-1-5; DROP TABLE t", ","] {
            assert_eq!(parse_position(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn where_the_scan_starts() {
        // (own binlog pos, errant, writer's binlog state, expected scan position or error part)
        let cases: &[(&str, &str, &str, Result<&str, &str>)] = &[
            // The typical old master: it wrote 0-1-15..19 nobody got; the writer has 0-1-14 then its own.
            ("0-1-19", "0-1-19", "0-1-14,0-2-16", Ok("0-1-14")),
            // Only the errant domains (another one's current GTID may be the last in the logs).
            (
                "0-1-19,1-3-7",
                "0-1-19",
                "0-1-14,0-2-16,1-3-7",
                Ok("0-1-14"),
            ),
            // The errant GTID is not this server's.
            ("0-1-18", "0-1-19", "0-1-14", Err("lacks the errant")),
            // The writer has nothing of that server in that domain.
            ("0-1-19", "0-1-19", "0-2-16", Err("nothing to rewind to")),
            // Nothing errant after all.
            ("0-1-19", "0-1-19", "0-1-19", Err("at or past")),
            ("0-1-19", "garbage", "0-1-14", Err("errant position")),
        ];
        for (own, errant, writer, want) in cases {
            let got = scan_position(own, errant, writer).map(|(g, _)| g);
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(*w), "{own} {errant} {writer}"),
                Err(part) => {
                    let e = got.expect_err(own);
                    assert!(e.contains(part), "{e}");
                }
            }
        }
    }

    #[test]
    fn the_writers_transactions_replicated_before_the_errant_ones_stay() {
        // db1 came back, replicated the writer's 0-2-107..109, then committed 0-1-110 by itself.
        let (scan, domains) = scan_position("0-1-110", "0-1-110", "0-1-106,0-2-109").unwrap();
        assert_eq!(scan, "0-1-106");
        let listed: Vec<(Gtid, bool)> = [(0, 2, 107), (0, 2, 108), (0, 2, 109), (0, 1, 110)]
            .into_iter()
            .map(|g| (g, false))
            .collect();
        let (good, ranges) = split_errant(&listed, &scan, &domains).unwrap();
        assert_eq!(good, "0-2-109");
        assert_eq!(with_domains("0-1-110,1-3-7", &good), "0-2-109,1-3-7");
        assert_eq!(ranges.get(&0), Some(&(1, 110, 110)));
        // Errant from the first listed transaction on: the scan position is the good one.
        let listed = vec![((0, 1, 107), false), ((0, 1, 108), false)];
        let (_, domains) = scan_position("0-1-108", "0-1-108", "0-1-106").unwrap();
        let (good, ranges) = split_errant(&listed, "0-1-106", &domains).unwrap();
        assert_eq!(good, "0-1-106");
        assert_eq!(ranges.get(&0), Some(&(1, 107, 108)));
        // None of the errant server after the writer's: refused.
        let listed = vec![((0, 2, 107), false)];
        assert!(split_errant(&listed, "0-1-106", &domains)
            .unwrap_err()
            .contains("no transaction of server 1"));
    }

    const DUMP: &str = "# at 3425\n\
#261130 14:47:36 server id 1  end_log_pos 3467 CRC32 0x23904196 \tGTID 0-1-15 trans\n\
/*!100001 SET @@session.gtid_seq_no=15*//*!*/;\n\
### INSERT INTO `app`.`t`\n\
#261130 14:47:36 server id 1  end_log_pos 4070 CRC32 0xd348bc3a \tGTID 0-1-16 trans\n";

    #[test]
    fn the_saved_text_must_list_exactly_the_errant_transactions() {
        let listed = listed_gtids(DUMP);
        assert_eq!(listed, vec![((0, 1, 15), false), ((0, 1, 16), false)]);
        let ranges = |s, from, to| BTreeMap::from([(0u32, (s, from, to))]);
        assert_eq!(check_listed(&listed, &ranges(1, 15, 16)), Ok(()));
        // One missing (purged binary log, or a range read wrong).
        assert!(check_listed(&listed, &ranges(1, 15, 17))
            .unwrap_err()
            .contains("2 transactions"));
        // Another server's transaction in the range.
        assert!(check_listed(&listed, &ranges(2, 15, 16))
            .unwrap_err()
            .contains("not one of"));
        // DDL.
        let ddl = listed_gtids(&DUMP.replace("GTID 0-1-16 trans", "GTID 0-1-16 ddl"));
        assert!(check_listed(&ddl, &ranges(1, 15, 16))
            .unwrap_err()
            .contains("DDL"));
        // A domain with no errant transactions.
        let other = vec![((3, 1, 2), false)];
        assert!(check_listed(&other, &ranges(1, 15, 16))
            .unwrap_err()
            .contains("domain 3"));
    }
}
