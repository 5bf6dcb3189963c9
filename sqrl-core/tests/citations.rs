//! Every protocol citation in the repository resolves inside the repository.
//!
//! Code and documents cite the protocol text by section (`SPEC` followed by a
//! section number, resolved in `docs/spec.md`) and the interoperability notes
//! by entry (`PITFALLS` followed by an entry number, in `docs/pitfalls.md`).
//! This test walks the source and documentation files, collects every such
//! citation and fails, naming `file:line`, for any number with no heading of
//! its own in those documents. It also fails when a file points at protocol
//! notes kept outside the repository, so that the repository stands alone.
//!
//! The scanner is checked on a scratch tree too, so that a citation it could
//! never flag would show up as a failure here rather than as a silent pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The two citation prefixes, spelt out once; written apart from their
/// numbers so that this file's own examples are not citations themselves.
const SPEC: &str = "SPEC";
const PITFALLS: &str = "PITFALLS";

/// Where each prefix resolves, relative to the repository root.
const SPEC_DOC: &str = "docs/spec.md";
const PITFALLS_DOC: &str = "docs/pitfalls.md";

/// Directories never walked: build output, installed packages, VCS state,
/// and fuzzing inputs (binary by nature).
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", ".git", "corpus", "artifacts"];

/// Files that may hold citations or references: sources, documents, schemas,
/// manifests, scripts and deployment configuration.
const SCANNED_EXTENSIONS: &[&str] = &[
    "rs", "md", "js", "mjs", "sql", "toml", "sh", "py", "html", "css", "conf", "service", "json",
];

/// Files without a telling extension that are scanned all the same.
fn scanned_by_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let in_ci = path
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|p| p == ".ci");
    in_ci
        || name == "Dockerfile"
        || name.starts_with("Caddyfile")
        || name == ".dockerignore"
        || name == ".gitignore"
}

/// Text that points at protocol notes outside the repository. The documents
/// in `docs/` are the repository's own copies, so nothing may point past them.
fn outside_references() -> [String; 4] {
    [
        format!("../{}/", "shared"),
        format!("/work/{}", "shared"),
        format!("{SPEC}.md"),
        format!("{PITFALLS}.md"),
    ]
}

/// One citation found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Citation {
    /// `SPEC` or `PITFALLS`.
    prefix: &'static str,
    /// The section or entry number, such as `3.2` or `26`.
    number: String,
    /// 1-based line of the prefix.
    line: usize,
}

impl fmt::Display for Citation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.prefix, self.number)
    }
}

/// The numbered headings of a document: `## 3. Title`, `### 3.2 Title`,
/// `### 26. Title` give `3`, `3.2` and `26`.
fn headings(markdown: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in markdown.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let rest = rest.trim_start_matches('#');
        let Some(rest) = rest.strip_prefix(' ') else {
            continue;
        };
        let (number, after) = leading_number(rest);
        let after = after.strip_prefix('.').unwrap_or(after);
        if !number.is_empty() && after.starts_with(' ') {
            found.insert(number.to_owned());
        }
    }
    found
}

/// Splits a leading `1`, `3.2` or `4.1.2` (digits, dot-separated) off `text`.
/// A dot is taken only when a digit follows it, so a sentence's full stop
/// stays with the rest.
fn leading_number(text: &str) -> (&str, &str) {
    let bytes = text.as_bytes();
    let mut end = 0;
    loop {
        let start = end;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            break;
        }
        if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
            end += 1;
        } else {
            break;
        }
    }
    text.split_at(end)
}

/// Skips the whitespace between a prefix and its number, including one line
/// break followed by a comment marker (a citation wrapped in a doc comment),
/// and the word `section` (as in the prose "SPEC section 9").
fn skip_to_number(text: &str) -> &str {
    let mut rest = text.trim_start_matches([' ', '\t']);
    if let Some(next) = rest.strip_prefix('\n') {
        rest = next.trim_start();
        for marker in ["//!", "///", "//", "--", "#", "*"] {
            if let Some(next) = rest.strip_prefix(marker) {
                rest = next;
                break;
            }
        }
        rest = rest.trim_start_matches([' ', '\t']);
    }
    for word in ["sections ", "section ", "§"] {
        if let Some(next) = rest.strip_prefix(word) {
            return next.trim_start_matches(' ');
        }
    }
    rest
}

/// Every citation in `text`: a prefix standing as a word, then a number, and
/// further numbers joined by a range dash (`4.1–4.2`, both ends checked) or
/// by commas (`3.2, 8`).
fn citations(text: &str) -> Vec<Citation> {
    let mut found = Vec::new();
    for prefix in [SPEC, PITFALLS] {
        for (at, _) in text.match_indices(prefix) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let after = &text[at + prefix.len()..];
            if !after.starts_with([' ', '\t', '\n']) {
                continue;
            }
            let line = text[..at].matches('\n').count() + 1;
            let mut rest = skip_to_number(after);
            loop {
                let (number, tail) = leading_number(rest);
                let ends_word = !tail
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if number.is_empty() || !ends_word {
                    break;
                }
                found.push(Citation {
                    prefix,
                    number: number.to_owned(),
                    line,
                });
                if let Some(next) = tail
                    .strip_prefix('–')
                    .or_else(|| tail.strip_prefix('-'))
                    .or_else(|| tail.strip_prefix(", "))
                    .or_else(|| tail.strip_prefix(','))
                {
                    rest = next.trim_start_matches(' ');
                } else {
                    break;
                }
            }
        }
    }
    found.sort_by_key(|c| c.line);
    found
}

/// The files to scan under `root`, sorted.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("read a directory of the repository") {
            let entry = entry.expect("read a directory entry");
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let kind = entry.file_type().expect("file type");
            if SKIPPED_DIRS.contains(&name.as_ref()) {
                continue;
            }
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let by_extension = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| SCANNED_EXTENSIONS.contains(&e));
                if by_extension || scanned_by_name(&path) {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    out
}

/// Every problem under `root`, one line each (`path:line: what`).
fn problems(root: &Path) -> Vec<String> {
    let spec = headings(&fs::read_to_string(root.join(SPEC_DOC)).unwrap_or_default());
    let pitfalls = headings(&fs::read_to_string(root.join(PITFALLS_DOC)).unwrap_or_default());
    let mut problems = Vec::new();
    if spec.is_empty() {
        problems.push(format!("{SPEC_DOC}: missing, or without numbered headings"));
    }
    if pitfalls.is_empty() {
        problems.push(format!(
            "{PITFALLS_DOC}: missing, or without numbered headings"
        ));
    }
    let outside = outside_references();
    for path in files(root) {
        // Files that are not UTF-8 text are not documents or sources.
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let shown = relative.to_string_lossy().replace('\\', "/");
        for citation in citations(&text) {
            let (known, doc) = if citation.prefix == SPEC {
                (&spec, SPEC_DOC)
            } else {
                (&pitfalls, PITFALLS_DOC)
            };
            if !known.contains(&citation.number) {
                problems.push(format!(
                    "{shown}:{}: `{citation}` has no heading in {doc}",
                    citation.line
                ));
            }
        }
        if !relative.starts_with("docs") {
            for (index, line) in text.lines().enumerate() {
                for reference in &outside {
                    if line.contains(reference.as_str()) {
                        problems.push(format!(
                            "{shown}:{}: refers to `{reference}`, outside the repository \
                             (cite {SPEC_DOC} or {PITFALLS_DOC} instead)",
                            index + 1
                        ));
                    }
                }
            }
        }
    }
    problems
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sqrl-core sits in the workspace root")
        .to_path_buf()
}

#[test]
fn every_citation_in_the_repository_has_a_heading_in_docs() {
    let root = repository_root();
    let problems = problems(&root);
    assert!(
        problems.is_empty(),
        "{} unresolved citation(s) or outside reference(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The walk did find the code's citations: an empty scan would pass too.
    let cited: usize = files(&root)
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .map(|text| citations(&text).len())
        .sum();
    assert!(
        cited > 100,
        "only {cited} citations found: is the walk skipping the sources?"
    );
}

#[test]
fn both_documents_number_their_sections_once_each() {
    let root = repository_root();
    for doc in [SPEC_DOC, PITFALLS_DOC] {
        let text = fs::read_to_string(root.join(doc)).expect("the document exists");
        let mut seen = BTreeSet::new();
        for line in text.lines().filter(|line| line.starts_with('#')) {
            let numbered = headings(line);
            for number in numbered {
                assert!(seen.insert(number.clone()), "{doc}: `{number}` twice");
            }
        }
    }
}

/// A scratch repository: the two documents with a few headings, and `files`.
fn scratch(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("scratch directory");
    let write = |relative: &str, text: &str| {
        let path = dir.path().join(relative);
        fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    };
    write(
        SPEC_DOC,
        "# Protocol\n\n## 1. URL\n\n### 1.1 Shape\n\n## 3. Reply\n\n### 3.2 Checks\n",
    );
    write(
        PITFALLS_DOC,
        "# Pitfalls\n\n## Group\n\n### 2. Padding\n\n### 26. IP test\n",
    );
    for (relative, text) in files {
        write(relative, text);
    }
    dir
}

#[test]
fn a_citation_without_a_heading_is_reported_with_its_file_and_line() {
    let dir = scratch(&[
        (
            "src/lib.rs",
            format!("//! fine ({SPEC} 1.1)\n// wrong: {SPEC} 3.3\nfn f() {{}} // {PITFALLS} 27\n"),
        ),
        ("README.md", format!("Text.\n\nSee {SPEC} 9.\n")),
        // Files that are not scanned may say anything.
        ("vectors/rows.txt", format!("{SPEC} 42\n")),
        ("target/debug/notes.md", format!("{SPEC} 42\n")),
    ]);
    let problems = problems(dir.path());
    assert_eq!(
        problems,
        [
            format!("README.md:3: `{SPEC} 9` has no heading in {SPEC_DOC}"),
            format!("src/lib.rs:2: `{SPEC} 3.3` has no heading in {SPEC_DOC}"),
            format!("src/lib.rs:3: `{PITFALLS} 27` has no heading in {PITFALLS_DOC}"),
        ]
    );
}

#[test]
fn wrapped_ranged_and_listed_citations_are_each_checked() {
    let text = format!(
        "/// a nut is single-use ({SPEC}\n/// 3.2 step 2, {PITFALLS} 26)\n\
         //! the wire ({SPEC} 1–4), checks ({SPEC} 3.2, 8), {SPEC} section 7,\n\
         let x = UN{SPEC}IFIED; // {SPEC}: 0x40 is no section; {SPEC} 2x neither\n"
    );
    let found: Vec<String> = citations(&text)
        .iter()
        .map(|c| format!("{}:{c}", c.line))
        .collect();
    assert_eq!(
        found,
        [
            format!("1:{SPEC} 3.2"),
            format!("2:{PITFALLS} 26"),
            format!("3:{SPEC} 1"),
            format!("3:{SPEC} 4"),
            format!("3:{SPEC} 3.2"),
            format!("3:{SPEC} 8"),
            format!("3:{SPEC} 7"),
        ]
    );
}

#[test]
fn a_reference_to_notes_outside_the_repository_is_reported() {
    let dir = scratch(&[
        (
            "README.md",
            format!("Numbers as in `../{}/{SPEC}.md`.\n", "shared"),
        ),
        (".ci/run", format!("cat {PITFALLS}.md\n")),
        // The documents themselves may name the files they replace.
        ("docs/history.md", format!("Was {SPEC}.md.\n")),
    ]);
    let problems = problems(dir.path());
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].starts_with(".ci/run:1: refers to"),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with("README.md:1: refers to `../"),
        "{problems:#?}"
    );
    assert!(problems[2].starts_with(&format!("README.md:1: refers to `{SPEC}.md`")));
}

#[test]
fn headings_are_numbered_sections_only() {
    let numbers = headings(
        "# Title 1\n## 3. Reply\n### 3.2 Checks\n### 26. IP\n#### 4.1.2 Deep\n\
         ## 2024 was a year\n##10. no space\n#3.3 no space either\nSPEC 5 in prose\n",
    );
    let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
    assert_eq!(numbers, ["2024", "26", "3", "3.2", "4.1.2"]);
}
