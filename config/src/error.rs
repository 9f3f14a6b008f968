//! Configuration errors: each names the file and line it comes from, and all of them are
//! collected before the load fails, so one run shows every mistake in a config.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, as the user named it (or as found on the search path), so the message can be
    /// pasted into an editor command.
    pub file: PathBuf,
    /// 1-based line number, when the problem belongs to one line (absent for "missing key" problems
    /// that belong to the whole configuration).
    pub line: Option<usize>,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl ConfigError {
    /// An error attached to a line of a file.
    pub fn at(file: &Path, line: usize, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: Some(line),
            message: message.into(),
        }
    }

    /// An error about a whole file.
    pub fn in_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem found in a configuration; `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// True if any error message contains `needle` (handy in tests and scripts).
    pub fn contains(&self, needle: &str) -> bool {
        self.0.iter().any(|e| e.to_string().contains(needle))
    }

    /// The errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no errors (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_and_line() {
        let e = ConfigError::at(
            Path::new("mmm_common.conf"),
            14,
            "unknown key 'ipp' in <host db1>",
        );
        assert_eq!(
            e.to_string(),
            "mmm_common.conf:14: unknown key 'ipp' in <host db1>"
        );
        let all = ConfigErrors(vec![e.clone(), ConfigError::in_file(Path::new("x"), "y")]);
        assert_eq!(
            all.to_string(),
            "mmm_common.conf:14: unknown key 'ipp' in <host db1>\nx: y"
        );
    }
}
