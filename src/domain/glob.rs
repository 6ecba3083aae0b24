//! Tag globs, as rules' `when.tags` and the events' `subject` filter write
//! them: levels are separated by dots, `*` and `?` stay within one level
//! (`BEDFORD.*.VIB_X`), `**` spans any number of levels, `[…]` and `{a,b}`
//! as usual. One definition, so that a glob that selects events for a
//! re-decision selects what a rule with the same glob would match.

use globset::{Glob, GlobBuilder, GlobMatcher};

/// The longest glob accepted where users type one.
pub const MAX_GLOB_LEN: usize = 200;

/// A compiled tag glob.
#[derive(Debug, Clone)]
pub struct TagGlob {
    source: String,
    matcher: GlobMatcher,
}

/// A tag glob as globset reads it: globset separates levels by `/`.
pub fn compile(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(&pattern.replace('.', "/"))
        .literal_separator(true)
        .build()
        .map_err(|e| format!("{pattern:?}: {e}"))
}

/// A tag as globset matches it.
pub fn path_of(tag: &str) -> String {
    tag.replace('.', "/")
}

impl TagGlob {
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if pattern.len() > MAX_GLOB_LEN {
            return Err(format!("at most {MAX_GLOB_LEN} characters"));
        }
        Ok(Self { source: pattern.to_owned(), matcher: compile(pattern)?.compile_matcher() })
    }

    pub fn is_match(&self, tag: &str) -> bool {
        self.matcher.is_match(path_of(tag))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The literal text every matching tag starts with (up to the first
    /// wildcard): a database can narrow by it with an index before the glob
    /// itself is checked.
    pub fn literal_prefix(&self) -> &str {
        let end = self.source.find(['*', '?', '[', '{', '\\']).unwrap_or(self.source.len());
        &self.source[..end]
    }

    /// Whether the glob is a plain tag (no wildcard at all).
    pub fn is_literal(&self) -> bool {
        self.literal_prefix().len() == self.source.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_dots() {
        let g = TagGlob::new("BEDFORD.*.VIB_X").unwrap();
        assert!(g.is_match("BEDFORD.PUMPING.VIB_X"));
        assert!(!g.is_match("BEDFORD.PUMPING.MX101.VIB_X"), "* stays within one level");
        let g = TagGlob::new("BEDFORD.**").unwrap();
        assert!(g.is_match("BEDFORD.PUMPING.MX101.VIB_X"));
        assert!(!g.is_match("LEEDS.PUMPING"));
        assert_eq!(g.literal_prefix(), "BEDFORD.");
        assert!(!g.is_literal());
        let g = TagGlob::new("A.B{1,2}.C").unwrap();
        assert!(g.is_match("A.B2.C") && !g.is_match("A.B3.C"));
        assert_eq!(g.literal_prefix(), "A.B");
        assert!(TagGlob::new("A.B").unwrap().is_literal());
    }

    #[test]
    fn bad_globs_say_why() {
        assert!(TagGlob::new("").is_err());
        assert!(TagGlob::new("A.[B").unwrap_err().contains("A.[B"));
        assert!(TagGlob::new(&"A".repeat(MAX_GLOB_LEN + 1)).is_err());
    }
}
