//! A real browser for the monitors' status page: Debian's `chromium`, headless, from the root namespace
//! (which reaches every monitor). Each run gets its own throw-away profile, fetches nothing but the
//! page and what it asks for, and is bounded by the lab's tool timeout.

use std::path::Path;

use anyhow::Context;

use crate::cmd;

/// The browser binary (Debian package `chromium`; `.ci/run` installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Milliseconds of page time the browser lets pass before dumping or capturing: the page's first
/// refresh (three API calls) and one periodic refresh (every 2 s) have run by then.
pub const PAGE_TIME_MS: u32 = 3000;

/// Flags every run uses: headless, no sandbox (the lab runs as root), and no background traffic.
fn base_args(profile: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.display()),
        format!("--virtual-time-budget={PAGE_TIME_MS}"),
    ]
}

/// Loads `url` and returns the DOM after the page's scripts have run.
pub async fn dump_dom(url: &str) -> anyhow::Result<String> {
    let profile = tempfile::tempdir().context("browser profile dir")?;
    let mut args = base_args(profile.path());
    args.push("--dump-dom".into());
    args.push(url.into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cmd::run(CHROMIUM, &args).await
}

/// Loads `url` in a `width`x`height` window and writes a PNG screenshot to `out`.
pub async fn screenshot(url: &str, out: &Path, width: u32, height: u32) -> anyhow::Result<()> {
    let profile = tempfile::tempdir().context("browser profile dir")?;
    let mut args = base_args(profile.path());
    args.push("--hide-scrollbars".into());
    args.push(format!("--window-size={width},{height}"));
    args.push(format!("--screenshot={}", out.display()));
    args.push(url.into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cmd::run(CHROMIUM, &args).await?;
    anyhow::ensure!(
        out.exists(),
        "chromium wrote no screenshot to {}",
        out.display()
    );
    Ok(())
}
