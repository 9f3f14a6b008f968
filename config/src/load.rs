//! Finding the config file for a program: `--config FILE`, or MMM's names on MMM's search path.

use std::path::{Path, PathBuf};

use crate::defaults::SEARCH_PATH;
use crate::error::{ConfigError, ConfigErrors};
use crate::{Config, Program};

/// How files are found and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Directories searched for the config file and for included files (first hit wins);
    /// MMM's `/etc`, `/etc/mmm`, `/etc/mysql-mmm` by default.
    pub search_path: Vec<PathBuf>,
    /// Refuse files others may write, or read when they hold passwords (MMM's rule). On by default.
    pub check_permissions: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            search_path: SEARCH_PATH.iter().map(PathBuf::from).collect(),
            check_permissions: true,
        }
    }
}

/// Loads the configuration of `program`: `explicit` (`--config FILE`) if given, otherwise
/// `mmm_mon[_CLUSTER].conf` / `mmm_agent[_CLUSTER].conf` from `/etc`, `/etc/mmm`, `/etc/mysql-mmm`.
pub fn load(
    program: Program,
    cluster: Option<&str>,
    explicit: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    load_with(program, cluster, explicit, &LoadOptions::default())
}

/// [`load`] with explicit options.
pub fn load_with(
    program: Program,
    cluster: Option<&str>,
    explicit: Option<&Path>,
    opts: &LoadOptions,
) -> Result<Config, ConfigErrors> {
    let path = match explicit {
        Some(p) => explicit_file(p),
        None => find_config_file(program, cluster, &opts.search_path)?,
    };
    Config::from_file_with(&path, program, opts)
}

/// The explicit file; `.conf` is appended when the name lacks it and only the longer name exists.
fn explicit_file(p: &Path) -> PathBuf {
    let s = p.as_os_str().to_string_lossy();
    if !p.exists() && !s.ends_with(".conf") {
        let with = PathBuf::from(format!("{s}.conf"));
        if with.exists() {
            return with;
        }
    }
    p.to_path_buf()
}

/// The first readable `mmm_mon[_CLUSTER].conf` (or agent file) on the search path.
pub fn find_config_file(
    program: Program,
    cluster: Option<&str>,
    search_path: &[PathBuf],
) -> Result<PathBuf, ConfigErrors> {
    let name = program.file_name(cluster);
    for dir in search_path {
        let candidate = dir.join(&name);
        if std::fs::File::open(&candidate).is_ok() && candidate.is_file() {
            return Ok(candidate);
        }
    }
    let dirs: Vec<String> = search_path
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Err(ConfigError::in_file(
        Path::new(&name),
        format!(
            "no readable config file {name} in {} (or give --config FILE)",
            dirs.join(", ")
        ),
    )
    .into())
}
