//! Lab slots: an flock'ed file `/run/mmm-lab/slot-N.lock` per running lab, so labs in parallel test
//! processes get distinct names and subnets; and removal of what a crashed lab left in a free slot.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context};

use crate::cmd::run_sync;
use crate::names::SlotNames;

/// Directory of the slot lock files.
pub(crate) const LOCK_DIR: &str = "/run/mmm-lab";
/// Highest slot number (the third octet of 10.213.N.0/24).
pub(crate) const MAX_SLOT: u8 = 250;

/// A held slot; the flock is released when this is dropped (the file is closed).
#[derive(Debug)]
pub(crate) struct SlotLock {
    /// The slot number.
    pub slot: u8,
    /// The open lock file; holding it open holds the flock.
    _file: File,
}

fn try_lock(slot: u8) -> anyhow::Result<Option<SlotLock>> {
    let path = Path::new(LOCK_DIR).join(format!("slot-{slot}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(Some(SlotLock { slot, _file: file }))
    } else {
        Ok(None)
    }
}

/// Takes the first free slot and removes anything an earlier crashed lab left under its names.
pub(crate) fn acquire() -> anyhow::Result<SlotLock> {
    std::fs::create_dir_all(LOCK_DIR).with_context(|| format!("cannot create {LOCK_DIR}"))?;
    for slot in 0..=MAX_SLOT {
        if let Some(lock) = try_lock(slot)? {
            cleanup_slot(SlotNames { slot });
            tracing::debug!(slot, "lab slot acquired");
            return Ok(lock);
        }
    }
    bail!(
        "all {} lab slots under {LOCK_DIR} are in use",
        MAX_SLOT as u32 + 1
    )
}

/// Namespaces whose names start with `prefix`.
fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    run_sync("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Kills (SIGKILL) every process in a namespace, repeating briefly until none is left.
pub(crate) fn kill_ns_processes(ns: &str) {
    for _ in 0..50 {
        let pids: Vec<i32> = run_sync("ip", &["netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            // SAFETY: kill(2) with a pid read from the kernel; no memory involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::warn!(ns, "processes in namespace survived SIGKILL");
}

/// Removes every namespace, link, nftables table and temp dir named for this slot. Idempotent.
pub(crate) fn cleanup_slot(names: SlotNames) {
    cleanup_network(names);
    // Small disks a crashed lab left mounted under its dir: removing the dir cannot remove a mount point.
    let dir_prefix = std::env::temp_dir().join(names.dir_prefix());
    crate::nemesis::unmount_under(&dir_prefix.to_string_lossy());
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&names.dir_prefix())
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Kills every process in the slot's namespaces and removes its namespaces, links and nftables table.
pub(crate) fn cleanup_network(names: SlotNames) {
    let prefix = names.prefix();
    for ns in namespaces_with_prefix(&prefix) {
        kill_ns_processes(&ns);
        if let Err(e) = run_sync("ip", &["netns", "del", &ns]) {
            tracing::warn!(ns, error = %e, "cannot delete namespace");
        }
    }
    let links = run_sync("ip", &["-o", "link", "show"]).unwrap_or_default();
    for line in links.lines() {
        // "12: mmm3-db1@if2: <...>"
        let Some(name) = line
            .split(':')
            .nth(1)
            .map(|s| s.trim().split('@').next().unwrap_or(""))
        else {
            continue;
        };
        if name == names.bridge() || name.starts_with(&prefix) {
            let _ = run_sync("ip", &["link", "del", name]);
        }
    }
    let _ = run_sync("nft", &["delete", "table", "bridge", &names.nft_table()]);
}

/// Slot number encoded in a lab name (`mmm12-db1`, `mmm12b`, `mmm-lab-12-x`), if it is one.
fn slot_of(name: &str) -> Option<u8> {
    let rest = name
        .strip_prefix("mmm-lab-")
        .or_else(|| name.strip_prefix("mmm"))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[digits.len()..];
    if digits.is_empty() || !(after.starts_with('-') || after == "b") {
        return None;
    }
    digits.parse().ok()
}

/// Removes what crashed labs left behind: for every slot whose lock is free, its namespaces (and their
/// processes), links, nftables table and temp dirs. Slots of running labs are not touched.
pub fn cleanup_all_leftovers() -> anyhow::Result<()> {
    std::fs::create_dir_all(LOCK_DIR).with_context(|| format!("cannot create {LOCK_DIR}"))?;
    let mut names: Vec<String> = namespaces_with_prefix("mmm");
    let links = run_sync("ip", &["-o", "link", "show"]).unwrap_or_default();
    names.extend(
        links
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string()),
    );
    if let Ok(tables) = run_sync("nft", &["list", "tables", "bridge"]) {
        names.extend(
            tables
                .lines()
                .filter_map(|l| l.split_whitespace().nth(2))
                .map(|t| format!("{t}-")),
        );
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        names.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    let mut slots: Vec<u8> = names
        .iter()
        .filter_map(|n| slot_of(n))
        .filter(|s| *s <= MAX_SLOT)
        .collect();
    slots.sort_unstable();
    slots.dedup();
    for slot in slots {
        if let Some(_lock) = try_lock(slot)? {
            tracing::info!(slot, "removing leftovers of a crashed lab");
            cleanup_slot(SlotNames { slot });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::slot_of;

    #[test]
    fn slot_numbers_are_read_from_lab_names_only() {
        assert_eq!(slot_of("mmm12-db1"), Some(12));
        assert_eq!(slot_of("mmm3b"), Some(3));
        assert_eq!(slot_of("mmm-lab-7-abc"), Some(7));
        assert_eq!(slot_of("mmm12"), None);
        assert_eq!(slot_of("mmmx-db1"), None);
        assert_eq!(slot_of("eth0"), None);
        assert_eq!(slot_of("mmm300-db1"), None);
    }
}
