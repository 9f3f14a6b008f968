//! Paths of the workspace's built binaries (mmm-monitor, mmm-agent, mmmctl), found next to the running
//! executable: tests run from `target/<profile>/deps/`, binaries from `target/<profile>/`.

use std::path::PathBuf;

use anyhow::bail;

/// Directory holding the workspace binaries: `MMM_BIN_DIR` if set, else the profile directory of the
/// running executable.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MMM_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// Path of a built workspace binary (`target/<profile>/<name>`). It may not exist yet; starting it through
/// [`crate::Lab::spawn_in`] then fails with a message saying to build it. See [`try_workspace_bin`].
pub fn workspace_bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Like [`workspace_bin`], but fails if the binary is missing, saying how to build it.
pub fn try_workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = workspace_bin(name);
    if !path.is_file() {
        bail!(
            "{} does not exist: build the workspace binaries first (`cargo build --workspace --all-targets`)",
            path.display()
        );
    }
    Ok(path)
}
