//! The configuration as read, before typing: sections and `key value` entries, each remembering
//! the file and line it came from so later checks can point at it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::schema::SectionKind;

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    /// The file, as named by the user or found on the search path.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One `key value` line.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The value, trailing blanks stripped.
    pub value: String,
    /// Where it was set (the last setting wins, as in MMM).
    pub loc: Loc,
    /// Which opening of the section set it (to tell a re-opened role from a repeated key).
    pub block: usize,
}

/// One section, merged over all the places it was opened.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawSection {
    /// Every `<kind name>` line that opened it, in reading order.
    pub opened: Vec<Loc>,
    /// Its keys.
    pub keys: BTreeMap<String, Entry>,
}

impl RawSection {
    /// Where the section was first opened.
    pub fn header(&self) -> Option<&Loc> {
        self.opened.first()
    }
}

/// All sections and top-level keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawConfig {
    /// Top-level keys (`this`, `debug`, ...).
    pub globals: BTreeMap<String, Entry>,
    /// Unique sections (`<monitor>`, `<socket>`, `<agent>`).
    pub unique: BTreeMap<SectionKind, RawSection>,
    /// Named sections by kind, then name (BTreeMap: sorted by name, as `mmm_control` shows them).
    pub named: BTreeMap<SectionKind, BTreeMap<String, RawSection>>,
}

impl RawConfig {
    /// The section, created if it does not exist yet.
    pub fn section_mut(&mut self, kind: SectionKind, name: Option<&str>) -> &mut RawSection {
        match name {
            Some(n) => self
                .named
                .entry(kind)
                .or_default()
                .entry(n.to_owned())
                .or_default(),
            None => self.unique.entry(kind).or_default(),
        }
    }

    /// The sections of a named kind, without the `default` template when the kind has one.
    pub fn named_sections(&self, kind: SectionKind) -> Vec<(&str, &RawSection)> {
        self.named
            .get(&kind)
            .map(|m| {
                m.iter()
                    .filter(|(n, _)| !(kind.has_template() && n.as_str() == "default"))
                    .map(|(n, s)| (n.as_str(), s))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The template section (`<host default>`) of a kind.
    pub fn template(&self, kind: SectionKind) -> Option<&RawSection> {
        if !kind.has_template() {
            return None;
        }
        self.named.get(&kind).and_then(|m| m.get("default"))
    }
}
