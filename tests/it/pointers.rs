//! Every repository path the documentation and the command-line help name exists: README.md,
//! ARCHITECTURE.md, docs/*.md, plots/README.md, and the long help of every subcommand.
//!
//! A path is a token that starts with one of the repository's top-level directories
//! (`src/`, `scenarios/`, ...), or a relative Markdown link. Paths an example creates are told
//! apart by what comes before them: the argument of an output flag (`-o`, `--out`, `--csv`) is
//! an output, and directories the repository does not hold (`runs/`, `plots/mine`) are never
//! checked unless they start with a repository directory.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// The top-level directories of the repository: a token starting with one of these is a
/// pointer into the repository.
const REPO_DIRS: [&str; 10] = [
    "src/",
    "scenarios/",
    "profiles/",
    "traces/",
    "plots/",
    "docs/",
    "scripts/",
    "kernels/",
    "tests/",
    "benches/",
];

/// Flags whose argument is a file or directory the command writes.
const OUTPUT_FLAGS: [&str; 4] = ["-o", "--out", "--csv", ">"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

/// The repository paths named in `text`: (line number, path). Tokens followed by a
/// placeholder (`profiles/<gpu>/...`, `data/{a,b}`, `*.csv`) name a pattern, not a file, and
/// output-flag arguments name what an example creates; both are left out.
fn named_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut i = 0;
        while i < line.len() {
            let rest = &line[i..];
            let boundary = line[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !is_path_char(c));
            let Some(dir) = REPO_DIRS.iter().find(|d| rest.starts_with(**d)) else {
                i += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            };
            let len = rest.find(|c: char| !is_path_char(c)).unwrap_or(rest.len());
            let token = &rest[..len];
            let next = rest[len..].chars().next();
            let before = line[..i].trim_end();
            let output = OUTPUT_FLAGS
                .iter()
                .any(|f| before.ends_with(f) && before.len() < line[..i].len());
            i += len.max(dir.len());
            if !boundary || output || matches!(next, Some('<' | '{' | '*')) {
                continue;
            }
            let path = token.trim_end_matches(['.', ',', ':', ';']);
            out.push((n + 1, path.to_string()));
        }
    }
    out
}

/// Relative Markdown link targets in `text` (`[x](target)`), without their `#anchor`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            out.push((n + 1, target.to_string()));
        }
    }
    out
}

/// Every pointer of a document that does not resolve: (where, path). Repository paths are
/// relative to the root, links to the document's directory.
fn broken_in(doc: &str, text: &str) -> Vec<String> {
    let dir = Path::new(doc).parent().unwrap_or(Path::new(""));
    let mut broken = Vec::new();
    for (line, p) in named_paths(text) {
        if !root().join(&p).exists() {
            broken.push(format!("{doc}:{line}: {p}"));
        }
    }
    for (line, p) in links(text) {
        if !root().join(dir).join(&p).exists() {
            broken.push(format!("{doc}:{line}: link {p}"));
        }
    }
    broken
}

/// The documents checked: the READMEs, the architecture map and every page under docs/.
fn documents() -> Vec<String> {
    let mut docs: Vec<String> = ["README.md", "ARCHITECTURE.md", "plots/README.md"]
        .map(String::from)
        .to_vec();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    docs.extend(
        pages
            .iter()
            .map(|p| p.strip_prefix(root()).unwrap().display().to_string()),
    );
    docs
}

/// The long help of `cmd` and of every subcommand below it, as (command path, text).
fn helps(cmd: &mut clap::Command, prefix: &str, out: &mut Vec<(String, String)>) {
    let name = format!("{prefix}{}", cmd.get_name());
    out.push((name.clone(), cmd.render_long_help().to_string()));
    for sub in cmd.get_subcommands_mut() {
        helps(sub, &format!("{name} "), out);
    }
}

#[test]
fn documents_name_only_existing_paths() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(root().join(&doc)).unwrap();
        broken.extend(broken_in(&doc, &text));
    }
    assert!(broken.is_empty(), "broken pointers:\n{}", broken.join("\n"));
}

#[test]
fn help_texts_name_only_existing_paths() {
    let mut all = Vec::new();
    helps(&mut tetriserve::cli::Cli::command(), "", &mut all);
    // Every subcommand was rendered, including nested ones (`trace import`).
    assert!(all.iter().any(|(n, _)| n.ends_with(" sweep")), "{all:?}");
    assert!(all.iter().any(|(n, _)| n.ends_with(" trace import")));
    let mut broken = Vec::new();
    for (cmd, text) in &all {
        for (line, p) in named_paths(text) {
            if !root().join(&p).exists() {
                broken.push(format!("`{cmd} --help` line {line}: {p}"));
            }
        }
    }
    assert!(broken.is_empty(), "broken pointers:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_finds_broken_pointers_and_spares_outputs() {
    let doc = "See [the bound](docs/upper-bound.md) and scenarios/paper/fig7-uniform.toml.\n\
               ![x](plots/missing.png) profiles/<gpu>/<model>.csv\n\
               tetriserve trace generate -o traces/new.csv --out runs/x; traces/tiny.csv, ok\n\
               mysrc/not-a-pointer and [a page](upper-bound.md)";
    let broken = broken_in("docs/example.md", doc);
    assert_eq!(
        broken,
        [
            "docs/example.md:1: scenarios/paper/fig7-uniform.toml",
            "docs/example.md:2: plots/missing.png",
            "docs/example.md:1: link docs/upper-bound.md",
            "docs/example.md:2: link plots/missing.png",
        ],
        "a link is relative to its document (docs/docs/upper-bound.md does not exist)"
    );
}
