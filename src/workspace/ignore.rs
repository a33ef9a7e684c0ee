//! `.moatignore`: which paths of the workspace a copy leaves out, read and decided as
//! Docker reads and decides `.dockerignore` (moby's `ignorefile.ReadAll` and
//! `MatchesOrParentMatches`):
//!
//! - a line starting with `#` is a comment; other lines are trimmed, blank ones skipped;
//! - `!` before a pattern re-includes what it matches;
//! - each pattern is cleaned as a path (`./a//b/` is `a/b`, so a trailing `/` changes
//!   nothing) and a leading `/` dropped: every pattern is relative to the workspace root;
//! - a path is excluded when the last pattern that matches it, or matches one of its
//!   parent directories, is not a `!` pattern.
//!
//! Patterns themselves are in [`super::pattern`].

use std::path::Path;

use super::pattern::Pattern;
use crate::io_reason::io_reason;

/// The file, in the workspace root.
pub const FILE: &str = ".moatignore";

#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
    /// How many of the rules are [`Ignore::hide`]'s, not the file's.
    hidden: usize,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    /// A `!` pattern: what it matches is included again.
    include: bool,
}

impl Ignore {
    /// The workspace's `.moatignore`; none when it has no such file.
    pub fn load(root: &Path) -> Result<Ignore, String> {
        let path = root.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ignore::parse(&String::from_utf8_lossy(&bytes))
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ignore::default()),
            Err(e) => Err(format!("reading {}: {}", path.display(), io_reason(&e))),
        }
    }

    /// The rules of a `.moatignore` text. The error names the line.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            // As Docker: only a `#` in the first column starts a comment.
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            let include = pattern.starts_with('!');
            if include {
                pattern = pattern[1..].trim();
            }
            if pattern.is_empty() {
                continue;
            }
            let cleaned = clean(pattern);
            let cleaned = match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest.to_string(),
                _ => cleaned,
            };
            let pattern = Pattern::compile(&cleaned)
                .map_err(|why| format!("line {}: {line:?}: {why}", n + 1))?;
            rules.push(Rule { pattern, include });
        }
        Ok(Ignore { rules, hidden: 0 })
    }

    /// Leave out `path` (relative, `/`-separated) and all below it, whatever the file
    /// says: what a mount inside the workspace hides.
    pub fn hide(&mut self, path: &str) {
        self.rules.push(Rule {
            pattern: Pattern::literal(path),
            include: false,
        });
        self.hidden += 1;
    }

    /// How many patterns the file has.
    pub fn len(&self) -> usize {
        self.rules.len() - self.hidden
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `path` (relative to the workspace, `/`-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            // A rule can only change the verdict it does not already give.
            if rule.include != excluded {
                continue;
            }
            let hit = rule.pattern.matches(path)
                || path
                    .match_indices('/')
                    .any(|(i, _)| rule.pattern.matches(&path[..i]));
            if hit {
                excluded = !rule.include;
            }
        }
        excluded
    }

    /// Whether the excluded directory `dir` must still be walked because a `!` pattern
    /// may include something below it.
    pub fn may_include_below(&self, dir: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.include && r.pattern.may_match_below(dir))
    }
}

/// A pattern cleaned as Go's `filepath.Clean` cleans a path: no empty or `.` elements,
/// `..` folded into what precedes it, no trailing `/`; `.` when nothing is left.
fn clean(pattern: &str) -> String {
    let rooted = pattern.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            // `/..` is `/`; a leading `..` of a relative path stays.
            ".." if rooted => {}
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    #[test]
    fn comments_blanks_and_cleaning() {
        let i = ignore("# a comment\n\n   \n  target/  \n/build\n./x/../dist//\n #kept\n");
        assert_eq!(i.len(), 4);
        assert!(i.excludes("target"));
        assert!(i.excludes("target/debug/moat"));
        assert!(i.excludes("build"));
        assert!(i.excludes("dist/a"));
        assert!(
            !i.excludes("src/target"),
            "patterns are anchored at the root"
        );
        assert!(i.excludes("#kept"), "a # after a blank is a pattern");
        assert!(!i.excludes("a comment"));
        assert_eq!(clean("a/./b/../../c"), "c");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("./"), ".");
    }

    #[test]
    fn the_last_matching_pattern_decides() {
        let i = ignore("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(i.excludes("notes.md"));
        assert!(!i.excludes("README.md"));
        assert!(i.excludes("README-secret.md"));
        let i = ignore("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!i.excludes("README-secret.md"));
    }

    #[test]
    fn parents_exclude_their_contents_and_bang_can_reinclude() {
        let i = ignore("node_modules\n");
        assert!(i.excludes("node_modules"));
        assert!(i.excludes("node_modules/a/b.js"));
        assert!(!i.excludes("lib/node_modules"));

        let i = ignore("secrets\n!secrets/public.txt\n");
        assert!(i.excludes("secrets/key"));
        assert!(!i.excludes("secrets/public.txt"));
        assert!(i.may_include_below("secrets"));
        assert!(!ignore("secrets\n").may_include_below("secrets"));

        // Everything but what is named.
        let i = ignore("*\n!src\n!Cargo.toml\n");
        assert!(i.excludes("target"));
        assert!(!i.excludes("src/main.rs"));
        assert!(!i.excludes("Cargo.toml"));
        assert!(i.may_include_below("src"));
        assert!(!i.may_include_below("target"));
    }

    #[test]
    fn double_star_anywhere() {
        let i = ignore("**/*.log\n**/tmp\n");
        assert!(i.excludes("a.log"));
        assert!(i.excludes("deep/down/b.log"));
        assert!(i.excludes("x/tmp/y"));
        assert!(!i.excludes("x/tmpfile"));
        let i = ignore("*\n!**/*.py\n");
        assert!(!i.excludes("pkg/sub/mod.py"));
        assert!(i.excludes("pkg/sub/mod.pyc"));
        assert!(i.may_include_below("pkg/sub"));
    }

    #[test]
    fn hidden_paths_stay_out_whatever_the_file_says() {
        let mut i = ignore("!cache/keep\n");
        i.hide("cache");
        i.hide("a[b]");
        assert_eq!(i.len(), 1);
        assert!(i.excludes("cache/keep"));
        assert!(i.excludes("a[b]/x"));
        assert!(!i.excludes("ab"));
    }

    #[test]
    fn a_bad_pattern_names_its_line() {
        let e = Ignore::parse("ok\n[abc\n").unwrap_err();
        assert!(e.starts_with("line 2: \"[abc\":"), "{e}");
    }

    #[test]
    fn a_missing_file_excludes_nothing() {
        let dir = std::env::temp_dir().join(format!("moat-ignore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Ignore::load(&dir).unwrap().is_empty());
        std::fs::write(dir.join(FILE), "\u{feff}*.tmp\r\n").unwrap();
        let i = Ignore::load(&dir).unwrap();
        assert!(i.excludes("a.tmp"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
