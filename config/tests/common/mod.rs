//! Helpers shared by the integration tests: fixture paths and private copies of fixtures
//! (config files holding passwords must not be world-readable, and a checkout makes them 0644).

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `config/tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copies every file of `fixtures/<name>` into a new temporary directory, mode 0600.
pub fn private_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in fs::read_dir(fixtures().join(name)).expect("fixture dir") {
        let entry = entry.expect("dir entry");
        if entry.file_type().expect("file type").is_file() {
            let to = dir.path().join(entry.file_name());
            fs::copy(entry.path(), &to).expect("copy");
            fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).expect("chmod");
        }
    }
    dir
}

/// Writes `text` to `dir/name` with `mode`.
pub fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(&path, text).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// 1-based numbers of the lines of `text` that equal `line` once trimmed.
pub fn line_numbers(text: &str, line: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == line)
        .map(|(i, _)| i + 1)
        .collect()
}
