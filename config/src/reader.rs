//! Reads config files line by line into a [`RawConfig`], as MMM 2.2.1's `Config.pm` does:
//! whole-line `#` comments, blank lines, `name value`, `<section>`/`<section name>`/`<section name/>`
//! tags, `include FILE`; unknown names are errors. It also refuses files with unsafe permissions and
//! finds included files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::raw::{Entry, Loc, RawConfig};
use crate::schema::{self, KeyUse, SectionKind};
use crate::value::{is_space, parse_list};
use crate::LoadOptions;

/// Deepest include nesting accepted (a loop is reported before this is reached).
const MAX_INCLUDE_DEPTH: usize = 16;

/// A section that is open while its lines are read.
struct Open {
    /// `None` for a section of an unknown kind (already reported; its lines are skipped).
    kind: Option<SectionKind>,
    /// The word in the tag.
    word: String,
    /// The section name of a named section.
    name: Option<String>,
    /// The opening line.
    header: Loc,
    /// Counter value identifying this opening.
    block: usize,
    /// A re-opened role was already reported as conflicting.
    conflict_reported: bool,
}

impl Open {
    fn display(&self) -> String {
        match &self.name {
            Some(n) => format!("<{} {}>", self.word, n),
            None => format!("<{}>", self.word),
        }
    }
}

/// Accumulates sections, errors and warnings over the top file and its includes.
pub(crate) struct Reader<'o> {
    opts: &'o LoadOptions,
    /// What was read.
    pub raw: RawConfig,
    /// Everything wrong so far.
    pub errors: Vec<ConfigError>,
    /// Things accepted but worth telling the user.
    pub warnings: Vec<ConfigError>,
    /// Files being read (canonical paths), innermost last: detects include loops.
    stack: Vec<PathBuf>,
    /// Counts section openings.
    blocks: usize,
    /// Ignored keys already warned about (one warning per key name).
    warned: BTreeSet<String>,
    /// A file could not be read or was refused: the config is incomplete, so checks across
    /// sections would only report consequences of that.
    pub incomplete: bool,
}

impl<'o> Reader<'o> {
    pub fn new(opts: &'o LoadOptions) -> Self {
        Reader {
            opts,
            raw: RawConfig::default(),
            errors: Vec::new(),
            warnings: Vec::new(),
            stack: Vec::new(),
            blocks: 0,
            warned: BTreeSet::new(),
            incomplete: false,
        }
    }

    /// Reads and parses one file; `from` is the include line that named it, if any.
    pub fn read_file(&mut self, path: &Path, from: Option<&Loc>) {
        let report = |msg: String| match from {
            Some(loc) => ConfigError::at(&loc.file, loc.line, msg),
            None => ConfigError::in_file(path, msg),
        };
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.stack.contains(&canonical) {
            self.errors.push(report(format!(
                "include loop: {} includes itself (directly or through other files)",
                path.display()
            )));
            self.incomplete = true;
            return;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.errors.push(report(format!(
                "includes nested more than {MAX_INCLUDE_DEPTH} deep"
            )));
            self.incomplete = true;
            return;
        }
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                self.errors.push(report(format!(
                    "cannot read config file {}: {e}",
                    path.display()
                )));
                self.incomplete = true;
                return;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        if self.opts.check_permissions {
            if let Some(e) = permission_problem(path, &text) {
                self.errors.push(e);
                self.incomplete = true;
                return;
            }
        }
        self.stack.push(canonical);
        self.parse_text(&text, path);
        self.stack.pop();
    }

    /// Parses the text of one file named `file` (includes are resolved beside it).
    pub fn parse_text(&mut self, text: &str, file: &Path) {
        let mut open: Option<Open> = None;
        for (idx, raw_line) in text.split('\n').enumerate() {
            let loc = Loc {
                file: file.to_path_buf(),
                line: idx + 1,
            };
            let left = raw_line.trim_start_matches(is_space);
            let line = left.trim_end_matches(is_space);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('<') {
                self.tag(line, loc, &mut open);
                continue;
            }
            let Some(split) = left.find(is_space) else {
                self.errors.push(ConfigError::at(
                    &loc.file,
                    loc.line,
                    format!("key '{line}' has no value (write '{line} VALUE')"),
                ));
                continue;
            };
            let key = &left[..split];
            let value = left[split..].trim_matches(is_space);
            if key == "include" {
                if value.is_empty() || value.contains(is_space) {
                    self.errors.push(ConfigError::at(
                        &loc.file,
                        loc.line,
                        "include takes exactly one file name",
                    ));
                } else {
                    self.include(value, &loc);
                }
                continue;
            }
            self.key(key, value, loc, &mut open);
        }
        if let Some(o) = open {
            self.errors.push(ConfigError::at(
                &o.header.file,
                o.header.line,
                format!(
                    "section {} is not closed before the end of the file (add </{}>)",
                    o.display(),
                    o.word
                ),
            ));
        }
    }

    fn include(&mut self, name: &str, loc: &Loc) {
        match resolve_include(name, &loc.file, &self.opts.search_path) {
            Some(path) => self.read_file(&path, Some(loc)),
            None => {
                let dirs: Vec<String> = self
                    .opts
                    .search_path
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                self.incomplete = true;
                self.errors.push(ConfigError::at(
                    &loc.file,
                    loc.line,
                    format!(
                        "include {name}: no readable file beside {} or in {}",
                        loc.file.display(),
                        dirs.join(", ")
                    ),
                ));
            }
        }
    }

    fn tag(&mut self, line: &str, loc: Loc, open: &mut Option<Open>) {
        let malformed = |loc: &Loc| {
            ConfigError::at(
                &loc.file,
                loc.line,
                format!(
                    "malformed section tag '{line}' (a tag stands alone on its line: \
                     <host db1>, </host>, <check mysql/>)"
                ),
            )
        };
        let Some(inner) = line.strip_prefix('<').and_then(|l| l.strip_suffix('>')) else {
            self.errors.push(malformed(&loc));
            return;
        };
        if let Some(rest) = inner.strip_prefix('/') {
            let word = rest.trim_matches(is_space);
            if !is_word(word) {
                self.errors.push(malformed(&loc));
                return;
            }
            match open.take() {
                None => self.errors.push(ConfigError::at(
                    &loc.file,
                    loc.line,
                    format!("closing tag </{word}> without an open section"),
                )),
                Some(o) if o.word != word => self.errors.push(ConfigError::at(
                    &loc.file,
                    loc.line,
                    format!(
                        "</{word}> does not close {} opened at line {}",
                        o.display(),
                        o.header.line
                    ),
                )),
                Some(_) => {}
            }
            return;
        }
        let (inner, empty) = match inner.strip_suffix('/') {
            Some(i) => (i, true),
            None => (inner, false),
        };
        let parts: Vec<&str> = inner.split(is_space).filter(|p| !p.is_empty()).collect();
        let (word, name) = match parts.as_slice() {
            [w] if is_word(w) => (*w, None),
            [w, n] if is_word(w) && is_name(n) => (*w, Some(*n)),
            _ => {
                self.errors.push(malformed(&loc));
                return;
            }
        };
        let shown = match name {
            Some(n) => format!("<{word} {n}>"),
            None => format!("<{word}>"),
        };
        if let Some(o) = open.take() {
            self.errors.push(ConfigError::at(
                &loc.file,
                loc.line,
                format!(
                    "section {shown} opened inside {} (line {}); close that one with </{}> first",
                    o.display(),
                    o.header.line,
                    o.word
                ),
            ));
        }
        let mut kind = SectionKind::from_word(word);
        match kind {
            None => {
                let known: Vec<&str> = SectionKind::ALL.iter().map(|k| k.word()).collect();
                self.errors.push(ConfigError::at(
                    &loc.file,
                    loc.line,
                    format!("unknown section <{word}> (known: {})", known.join(", ")),
                ));
            }
            Some(k) if k.is_named() && name.is_none() => {
                self.errors.push(ConfigError::at(
                    &loc.file,
                    loc.line,
                    format!("section <{word}> needs a name: <{word} NAME>"),
                ));
                kind = None;
            }
            Some(k) if !k.is_named() && name.is_some() => {
                self.errors.push(ConfigError::at(
                    &loc.file,
                    loc.line,
                    format!("section <{word}> takes no name: <{word}>"),
                ));
                kind = None;
            }
            Some(k) => {
                self.raw.section_mut(k, name).opened.push(loc.clone());
            }
        }
        self.blocks += 1;
        if !empty {
            *open = Some(Open {
                kind,
                word: word.to_owned(),
                name: name.map(str::to_owned),
                header: loc,
                block: self.blocks,
                conflict_reported: false,
            });
        }
    }

    fn key(&mut self, key: &str, value: &str, loc: Loc, open: &mut Option<Open>) {
        if value.is_empty() && self.is_used(key, open.as_ref()) {
            // `key ` with only blanks after it: MMM stored an empty string, which then either
            // failed at run time or meant nothing. Treating it as unset keeps defaults and makes a
            // required key be reported as missing.
            self.warnings.push(ConfigError::at(
                &loc.file,
                loc.line,
                format!(
                    "key '{key}' has an empty value: treated as not set \
                     (MMM stored an empty string)"
                ),
            ));
            return;
        }
        let Some(o) = open.as_mut() else {
            match schema::global_key_use(key) {
                Some(KeyUse::Used) => {
                    self.raw.globals.insert(
                        key.to_owned(),
                        Entry {
                            value: value.to_owned(),
                            loc,
                            block: 0,
                        },
                    );
                }
                Some(_) => self.ignored(key, "at top level", &loc),
                None if SectionKind::from_word(key).is_some() => {
                    self.errors.push(ConfigError::at(
                        &loc.file,
                        loc.line,
                        format!(
                            "'{key}' is a section, not a key: write <{key}{}> ... </{key}>",
                            if SectionKind::from_word(key).is_some_and(|k| k.is_named()) {
                                " NAME"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                None => self.errors.push(ConfigError::at(
                    &loc.file,
                    loc.line,
                    format!("unknown key '{key}' at top level"),
                )),
            }
            return;
        };
        let Some(kind) = o.kind else {
            return; // inside an unknown section, already reported
        };
        match kind.key_use(key) {
            Some(KeyUse::Used) => {
                let section = self.raw.section_mut(kind, o.name.as_deref());
                if kind == SectionKind::Role && !o.conflict_reported {
                    if let Some(old) = section.keys.get(key) {
                        if old.block != o.block && !same_value(key, &old.value, value) {
                            let first = section.header().map(|l| l.to_string()).unwrap_or_default();
                            o.conflict_reported = true;
                            self.errors.push(ConfigError::at(
                                &o.header.file,
                                o.header.line,
                                format!(
                                    "role '{}' is defined twice with different contents (first at {first}); \
                                     did you mean another role name?",
                                    o.name.as_deref().unwrap_or_default()
                                ),
                            ));
                        }
                    }
                }
                let section = self.raw.section_mut(kind, o.name.as_deref());
                section.keys.insert(
                    key.to_owned(),
                    Entry {
                        value: value.to_owned(),
                        loc,
                        block: o.block,
                    },
                );
            }
            Some(KeyUse::ToolsOnly) => {
                let place = format!("in {}", o.display());
                self.ignored(key, &place, &loc);
            }
            Some(KeyUse::Legacy) => {
                tracing::debug!(key, file = %loc.file.display(), line = loc.line,
                    "ignoring a key only MMM's Perl agent used");
            }
            None => {
                let msg = format!("unknown key '{key}' in {}", o.display());
                self.errors.push(ConfigError::at(&loc.file, loc.line, msg));
            }
        }
    }

    /// Whether `key` is a key read and used where it stands (top level or the open section).
    fn is_used(&self, key: &str, open: Option<&Open>) -> bool {
        let used = match open {
            None => schema::global_key_use(key),
            Some(o) => o.kind.and_then(|k| k.key_use(key)),
        };
        used == Some(KeyUse::Used)
    }

    fn ignored(&mut self, key: &str, place: &str, loc: &Loc) {
        if self.warned.insert(key.to_owned()) {
            self.warnings.push(ConfigError::at(
                &loc.file,
                loc.line,
                format!(
                    "key '{key}' {place} is used only by MMM's tools (mmm_backup, mmm_clone, \
                     mmm_restore); ignored"
                ),
            ));
        }
    }
}

/// Two values of the same role key are the same setting (lists compared item by item).
fn same_value(key: &str, a: &str, b: &str) -> bool {
    if schema::is_list_key(key) {
        parse_list(a) == parse_list(b)
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

/// Perl `\w+`.
fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Perl `[\w-]+`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Finds an included file: an absolute name as is; a relative one beside the including file, then
/// in the search path. `.conf` is appended when the name lacks it and the plain name is not found.
pub(crate) fn resolve_include(name: &str, including: &Path, search: &[PathBuf]) -> Option<PathBuf> {
    let mut names = vec![name.to_owned()];
    if !name.ends_with(".conf") {
        names.push(format!("{name}.conf"));
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if Path::new(name).is_absolute() {
        candidates.extend(names.iter().map(PathBuf::from));
    } else {
        let dir = including.parent().unwrap_or(Path::new(""));
        candidates.extend(names.iter().map(|n| dir.join(n)));
        for d in search {
            candidates.extend(names.iter().map(|n| d.join(n)));
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// MMM refuses config files others can read or write, because they hold passwords. We refuse a
/// world-writable file always (anyone could change `kill_host_bin` or the hooks) and a
/// world-readable file when it holds a password.
fn permission_problem(path: &Path, text: &str) -> Option<ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).ok()?.permissions().mode();
    let fix = format!("fix: chmod 640 {}", path.display());
    if mode & 0o002 != 0 {
        return Some(ConfigError::in_file(
            path,
            format!(
                "config file is world-writable (mode {:o}); refusing it as MMM does; {fix}",
                mode & 0o7777
            ),
        ));
    }
    if mode & 0o004 != 0 {
        if let Some((key, line)) = first_password(text) {
            return Some(ConfigError::in_file(
                path,
                format!(
                    "config file is world-readable (mode {:o}) and holds passwords ({key} at line {line}); \
                     refusing it as MMM does; {fix}",
                    mode & 0o7777
                ),
            ));
        }
    }
    None
}

/// The first `*_password` key in a file, with its line.
fn first_password(text: &str) -> Option<(String, usize)> {
    text.split('\n').enumerate().find_map(|(i, l)| {
        let key = l.trim_start_matches(is_space).split(is_space).next()?;
        key.ends_with("_password").then(|| (key.to_owned(), i + 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Reader<'static> {
        static OPTS: std::sync::OnceLock<LoadOptions> = std::sync::OnceLock::new();
        let opts = OPTS.get_or_init(|| LoadOptions {
            search_path: Vec::new(),
            check_permissions: false,
        });
        let mut r = Reader::new(opts);
        r.parse_text(text, Path::new("t.conf"));
        r
    }

    #[test]
    fn sections_keys_and_comments() {
        let r = read(
            "# comment\n\nthis db1 \n<host db1>\n  ip   10.0.0.1  \n</host>\n<check mysql/>\n< monitor >\nport 1\n</ monitor >\n",
        );
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.raw.globals["this"].value, "db1");
        let host = &r.raw.named[&SectionKind::Host]["db1"];
        assert_eq!(host.keys["ip"].value, "10.0.0.1");
        assert_eq!(host.keys["ip"].loc.line, 5);
        assert!(r.raw.named[&SectionKind::Check].contains_key("mysql"));
        assert_eq!(r.raw.unique[&SectionKind::Monitor].keys["port"].value, "1");
    }

    #[test]
    fn crlf_lines_work() {
        let r = read("<host db1>\r\nip 10.0.0.1\r\n</host>\r\n");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            r.raw.named[&SectionKind::Host]["db1"].keys["ip"].value,
            "10.0.0.1"
        );
    }

    #[test]
    fn bad_tags_and_keys_are_reported_with_lines() {
        let r = read("<host>\n</host>\n<monitor x>\n</monitor>\n<foo>\nbar 1\n</foo>\n</host>\nip\nhost db1\n<host db1> ip 1.2.3.4 </host>\n");
        let msgs: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
        let joined = msgs.join("\n");
        assert!(
            joined.contains("t.conf:1: section <host> needs a name"),
            "{joined}"
        );
        assert!(
            joined.contains("t.conf:3: section <monitor> takes no name"),
            "{joined}"
        );
        assert!(
            joined.contains("t.conf:5: unknown section <foo>"),
            "{joined}"
        );
        assert!(!joined.contains("bar"), "{joined}");
        assert!(
            joined.contains("t.conf:8: closing tag </host> without an open section"),
            "{joined}"
        );
        assert!(
            joined.contains("t.conf:9: key 'ip' has no value"),
            "{joined}"
        );
        assert!(
            joined.contains("t.conf:10: 'host' is a section"),
            "{joined}"
        );
        assert!(
            joined.contains("t.conf:11: malformed section tag"),
            "{joined}"
        );
    }

    #[test]
    fn nested_and_unclosed_sections_are_reported() {
        let r = read("<host db1>\nip 1.1.1.1\n<host db2>\nip 1.1.1.2\n");
        let joined = r
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            joined.contains("t.conf:3: section <host db2> opened inside <host db1> (line 1)"),
            "{joined}"
        );
        assert!(
            joined.contains("t.conf:3: section <host db2> is not closed"),
            "{joined}"
        );
    }

    #[test]
    fn reopening_merges_and_later_values_win() {
        let r =
            read("<host db1>\nip 1.1.1.1\n</host>\n<host db1>\nmode slave\nip 1.1.1.2\n</host>\n");
        assert!(r.errors.is_empty());
        let h = &r.raw.named[&SectionKind::Host]["db1"];
        assert_eq!(h.keys["ip"].value, "1.1.1.2");
        assert_eq!(h.keys["mode"].value, "slave");
        assert_eq!(h.opened.len(), 2);
    }

    #[test]
    fn role_reopened_with_same_contents_is_fine() {
        let r = read("<role w>\nhosts a, b\n</role>\n<role w>\nhosts a,b\nips 1.1.1.1\n</role>\n");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }

    #[test]
    fn password_detection() {
        assert_eq!(
            first_password("a 1\n  agent_password x\n"),
            Some(("agent_password".to_owned(), 2))
        );
        assert_eq!(first_password("agent_user x\n"), None);
    }
}
