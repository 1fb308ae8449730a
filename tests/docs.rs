//! The README and docs/ held to the code: the spec grammar written exactly as
//! `vnode::plan::spec::GRAMMAR`, relative links and the source, test and benchmark paths they name
//! existing (so a layout description cannot name files that are gone), every docs/ file linked
//! from the README, the README short enough to be a front page, and the test command of record in
//! it. Reads files only; no root needed.

use std::fs;
use std::path::{Path, PathBuf};

use vnode::plan::spec::GRAMMAR;

mod common;

/// The README's size limit, in bytes: a front page, not the reference.
const README_MAX_BYTES: usize = 15_000;

/// The test command of record; `.ci/run` runs exactly this.
const TEST_COMMAND: &str = "bash .ci/install-deps && cargo test";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let mut paths = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds no .md file");
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

fn name(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The line (1-based) that byte `at` of `text` is on.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// From `start`, `[STEM]NUMBER` and every bracket group right after it: the whole grammar as a
/// document writes it.
fn grammar_at(text: &str, start: usize) -> &str {
    let mut end = start + "[STEM]NUMBER".len();
    while text[end..].starts_with('[') {
        match text[end..].find(']') {
            Some(close) => end += close + 1,
            None => break,
        }
    }
    &text[start..end]
}

#[test]
fn every_spec_grammar_is_written_as_the_code_has_it() {
    let mut wrong = Vec::new();
    for (path, text) in documents() {
        for (at, _) in text.match_indices("[STEM]NUMBER") {
            let written = grammar_at(&text, at);
            if written != GRAMMAR {
                wrong.push(format!("{}:{}: {written}", name(&path), line_of(&text, at)));
            }
        }
        // A grammar written without its stem group is caught too.
        for (at, _) in text.match_indices("NUMBER[-NUMBER]") {
            let full = at >= "[STEM]".len() && text[..at].ends_with("[STEM]");
            if !full {
                wrong.push(format!(
                    "{}:{}: a grammar without [STEM]",
                    name(&path),
                    line_of(&text, at)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not written as {GRAMMAR}:\n{}",
        wrong.join("\n")
    );
}

/// The fenced code blocks of a markdown text blanked out (same length), so that what they show is
/// not taken for links.
fn without_code_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fenced = false;
    for line in text.split_inclusive('\n') {
        let fence = line.trim_start().starts_with("```");
        if fenced || fence {
            out.extend(line.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
        } else {
            out.push_str(line);
        }
        if fence {
            fenced = !fenced;
        }
    }
    out
}

/// The targets of the inline links `[text](target)` of a markdown text, with their offsets.
fn link_targets(text: &str) -> Vec<(usize, &str)> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let start = at + 2;
            let len = text[start..].find(')')?;
            Some((start, &text[start..start + len]))
        })
        .collect()
}

#[test]
fn every_relative_link_points_to_an_existing_file() {
    let mut broken = Vec::new();
    for (path, text) in documents() {
        let prose = without_code_blocks(&text);
        let dir = path.parent().expect("a document is in a directory");
        for (at, target) in link_targets(&prose) {
            if target.contains("://") || target.starts_with("mailto:") || target.starts_with('#') {
                continue;
            }
            let file = target.split('#').next().unwrap_or_default();
            if !dir.join(file).exists() {
                broken.push(format!("{}:{}: {target}", name(&path), line_of(&text, at)));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}

/// Characters a written path is made of.
fn in_path(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

#[test]
fn every_source_test_and_benchmark_path_exists() {
    let mut gone = Vec::new();
    for (path, text) in documents() {
        for prefix in ["src/", "tests/", "benches/"] {
            for (at, _) in text.match_indices(prefix) {
                // Only where a path starts: not inside `../src/...` or a longer word.
                if text[..at].chars().next_back().is_some_and(in_path) {
                    continue;
                }
                let len = text[at..].find(|c| !in_path(c)).unwrap_or(text.len() - at);
                // A sentence's full stop is not part of the path.
                let written = text[at..at + len].trim_end_matches('.');
                if !root().join(written).exists() {
                    gone.push(format!("{}:{}: {written}", name(&path), line_of(&text, at)));
                }
            }
        }
    }
    assert!(
        gone.is_empty(),
        "paths that do not exist:\n{}",
        gone.join("\n")
    );
}

#[test]
fn the_readme_links_every_docs_file() {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let unlinked: Vec<String> = documents()
        .into_iter()
        .skip(1)
        .map(|(path, _)| name(&path))
        .filter(|doc| !readme.contains(&format!("]({doc})")))
        .collect();
    assert!(unlinked.is_empty(), "README.md does not link: {unlinked:?}");
}

#[test]
fn the_readme_is_a_front_page() {
    let size = fs::metadata(root().join("README.md"))
        .expect("README.md")
        .len();
    assert!(
        size as usize <= README_MAX_BYTES,
        "README.md is {size} bytes; at most {README_MAX_BYTES} (the reference belongs in docs/)"
    );
}

#[test]
fn the_readme_gives_the_test_command_of_record() {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    assert!(
        readme.contains(TEST_COMMAND),
        "README.md lacks the test command of record `{TEST_COMMAND}`"
    );
    let ci = fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test")
            && ci.lines().any(|l| l.trim() == "bash .ci/install-deps"),
        ".ci/run no longer runs `bash .ci/install-deps` and `cargo test`"
    );
}

/// docs/development.md names the test binaries with root tests: exactly those of the gate's one
/// list, `gate::GATED`.
#[test]
fn the_root_tests_named_in_the_docs_are_the_gates_list() {
    let text = fs::read_to_string(root().join("docs/development.md")).unwrap();
    let start = text
        .find("The gated tests are those of")
        .expect("docs/development.md names the gated tests");
    let end = start + text[start..].find("the gate is").expect("… the gate is …");
    let mut named: Vec<String> = text[start..end]
        .split('`')
        .filter_map(|word| word.strip_prefix("tests/"))
        .map(|rest| {
            rest.trim_end_matches('/')
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    named.sort();
    named.dedup();
    let mut gated: Vec<String> = common::gate::GATED
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    gated.sort();
    assert_eq!(
        named, gated,
        "docs/development.md against tests/common/gate.rs"
    );
}
