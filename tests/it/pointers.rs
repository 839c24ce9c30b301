//! Every repository path the documentation and the command-line help name exists (README.md,
//! ARCHITECTURE.md, docs/*.md, the READMEs of plots/, profiles/ and traces/, and the long help of
//! every subcommand), and no file of the repository names a path outside it.
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
    let mut docs: Vec<String> = [
        "README.md",
        "ARCHITECTURE.md",
        "plots/README.md",
        "profiles/README.md",
        "traces/README.md",
    ]
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

/// Absolute paths a file may name, by prefix, each for a reason that holds on every machine:
/// system files and devices (a writer writes through `/dev/stdout`; `/dev/full` tests a full
/// disk) and tools, the CUDA libraries' standard install locations (a GPU check's log
/// shows where the loader found them), scratch space, the mount points of a cluster's shared
/// file system or a container's configuration in the job-array examples, a placeholder, and a
/// directory tests rely on not existing.
const OUTSIDE_ALLOWED: [&str; 16] = [
    "/dev/null",
    "/dev/zero",
    "/dev/stdout",
    "/dev/full",
    "/usr/bin/time",
    "/usr/bin/env",
    "/usr/local/cuda/",
    "/usr/local/nvidia/",
    "/lib/libcuda",
    "/tmp/",
    "/shared/",
    "/scratch/",
    "/config/",
    "/path/to/",
    "/nonexistent/",
    "/proc/",
];

/// First components of an absolute path that always name someone's machine, flagged even
/// alone: a one-component token is otherwise taken for something else (a closing
/// tag, a string joined to a directory, a regular expression).
const HOME_ROOTS: [&str; 6] = ["home", "root", "Users", "work", "mnt", "media"];

/// Characters after which a `/` can start an absolute path: the start of a word, a quote, an
/// assignment or a list separator (`PATH=a:/b`), never a letter, digit, `)`, `}`, `>` or
/// `<` (`$(dirname "$0")/..`, `${dir}/x`, `<out>/data`, `</text>`).
fn starts_path(prev: Option<char>) -> bool {
    prev.is_none_or(|c| c.is_whitespace() || "\"'`(=:,[{|".contains(c))
}

/// The directories and files the walk leaves out: git's own files, build outputs, the
/// fuzzers' corpora and the mutation runs' logs (all ignored by git), and `.gitignore`, whose
/// `/target` is anchored at the repository root.
fn skipped(name: &str) -> bool {
    matches!(
        name,
        ".git"
            | "target"
            | "out"
            | "corpus"
            | "artifacts"
            | "__pycache__"
            | "mutants.out"
            | ".gitignore"
    ) || name.contains(".tmp-")
}

/// Every text file of the repository, as paths relative to the root, sorted.
fn repository_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root().join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if skipped(&name) {
                continue;
            }
            let path = rel.join(&name);
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The paths `text` (the file `file`, relative to the root) names outside the repository:
/// absolute paths not in [`OUTSIDE_ALLOWED`], `~/` paths, and `../` paths that climb above the
/// root from the file's directory. Each as `file:line: path`.
fn outside_in(file: &Path, text: &str) -> Vec<String> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut i = 0;
        while i < line.len() {
            let rest = &line[i..];
            let prev = line[..i].chars().next_back();
            let c = rest.chars().next().unwrap();
            if !starts_path(prev) || !matches!(c, '/' | '~' | '.') {
                i += c.len_utf8();
                continue;
            }
            let len = rest
                .char_indices()
                .skip(1)
                .find(|&(_, c)| !(is_path_char(c) || c == '+'))
                .map_or(rest.len(), |(at, _)| at);
            let token = &rest[..len];
            i += len;
            if let Some(abs) = token.strip_prefix('/') {
                let parts: Vec<&str> = abs.split('/').filter(|p| !p.is_empty()).collect();
                let named = abs.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && (parts.len() >= 2 || parts.first().is_some_and(|p| HOME_ROOTS.contains(p)));
                if named && !OUTSIDE_ALLOWED.iter().any(|a| token.starts_with(a)) {
                    out.push(format!("{}:{}: {token}", file.display(), n + 1));
                }
            } else if token.starts_with("~/") && token.len() > 2 {
                out.push(format!("{}:{}: {token}", file.display(), n + 1));
            } else if token.starts_with("../") {
                // Climb from the file's directory: leaving the root is leaving the repository.
                let mut depth = dir.components().count() as i64;
                for part in token.split('/') {
                    match part {
                        ".." => depth -= 1,
                        "" | "." => {}
                        _ => depth += 1,
                    }
                    if depth < 0 {
                        out.push(format!("{}:{}: {token}", file.display(), n + 1));
                        break;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn no_file_names_a_path_outside_the_repository() {
    let files = repository_files();
    // The walk reached the sources, the docs and the scripts, and left build outputs out.
    for must in [
        "README.md",
        "src/main.rs",
        "docs/calibration.md",
        "scripts/gpu-check.sh",
    ] {
        assert!(
            files.iter().any(|f| f == Path::new(must)),
            "{must} not walked"
        );
    }
    assert!(!files.iter().any(|f| f.starts_with("target")));
    let mut outside = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(root().join(file)) else {
            continue; // not UTF-8: an image
        };
        if !text.contains('\0') {
            outside.extend(outside_in(file, &text));
        }
    }
    assert!(
        outside.is_empty(),
        "paths outside the repository (allowed prefixes: {OUTSIDE_ALLOWED:?}):\n{}",
        outside.join("\n")
    );
}

#[test]
fn the_outside_checker_finds_what_leaves_the_repository() {
    // Built at run time so that this file itself names none of them.
    let home = format!("{}home/dev/notes.md", '/');
    let up = format!("{}/{}", "..", "..");
    let text = format!(
        "see {home} and `{up}/other/calibration.md`; PATH=x:{}opt/lib\n\
         fine: ../README.md, /dev/null, /tmp/x.csv, --out /shared/runs/big, </text>, 1/2, \
         $(dirname \"$0\")/.., concat!(dir, \"/kernels\"), https://arxiv.org/abs/2510.01565\n\
         {}work alone; {}~/.cargo/bin",
        '/', '/', ' '
    );
    let found = outside_in(Path::new("docs/page.md"), &text);
    assert_eq!(
        found,
        [
            format!("docs/page.md:1: {home}"),
            format!("docs/page.md:1: {up}/other/calibration.md"),
            format!("docs/page.md:1: {}opt/lib", '/'),
            format!("docs/page.md:3: {}work", '/'),
            format!("docs/page.md:3: {}/.cargo/bin", '~'),
        ]
    );
    // The same `../` is inside from two levels down.
    assert!(
        outside_in(
            Path::new("src/cost/x.rs"),
            &format!("\"{up}/profiles/a.csv\"")
        )
        .is_empty()
    );
}
