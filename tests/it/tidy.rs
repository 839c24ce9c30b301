//! The architecture's rules, checked: module headers, forbidden dependency edges, and an
//! ARCHITECTURE.md that names every source file (see its "Code map").

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `.rs` file under `src/`, as (path relative to the repository, text).
fn all() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Code lines only (line comments and doc comments dropped), so prose may name anything.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `code` names the path `needle` (`crate::real`, `policy::tetriserve`): as written,
/// or with its first segment reached another way (`use crate::{real::x}`, `super::real::x`),
/// i.e. its last segment followed by `::` after a non-identifier character.
fn names(code: &str, needle: &str) -> bool {
    if code.contains(needle) {
        return true;
    }
    let last = needle.rsplit("::").next().unwrap();
    let pat = format!("{last}::");
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(&pat).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        // `crate::real` also as `{real::` or `super::real::`; `self.real::` is not Rust.
        before.is_none_or(|c| !ident(c) && c != '.')
            && (needle.starts_with("crate::") || code[..i].ends_with("::"))
    })
}

#[test]
fn every_source_file_opens_with_a_module_header() {
    let missing: Vec<String> = all()
        .into_iter()
        .filter(|(_, t)| !t.trim_start().starts_with("//!"))
        .map(|(p, _)| p)
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` header: {missing:?}"
    );
}

/// (files whose path starts with this, what they must not name, why).
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "src/policy/",
        "crate::engine",
        "policies see a View and return decisions; engine internals are not theirs",
    ),
    (
        "src/policy/",
        "crate::real",
        "policies cannot tell simulated from real time",
    ),
    (
        "src/simulate.rs",
        "crate::real",
        "simulate runs any Executor; only the command line builds a real one",
    ),
    (
        "src/engine/",
        "crate::real",
        "the engine knows executors only through the Executor trait",
    ),
    (
        "src/engine/",
        "policy::tetriserve",
        "the engine knows policies only through the Policy trait",
    ),
    (
        "src/real/",
        "crate::policy",
        "the real backend implements Executor and knows nothing about policies",
    ),
    (
        "src/metrics/",
        "crate::real",
        "records are the same for every executor",
    ),
    (
        "src/report/",
        "crate::real",
        "reports are the same for every executor",
    ),
    (
        "src/report/",
        "crate::simulate",
        "reports format and write records; running is simulate's",
    ),
    (
        "src/report/",
        "crate::engine",
        "reports see records, not the engine that produced them",
    ),
    (
        "src/workload/",
        "crate::engine",
        "workloads exist before and independently of any run",
    ),
    (
        "src/cost/",
        "crate::real",
        "cost models are data; measuring them is the real backend's job",
    ),
];

#[test]
fn no_module_depends_across_a_forbidden_edge() {
    let mut broken = Vec::new();
    for (path, text) in all() {
        let code = code(&text);
        for (prefix, needle, why) in FORBIDDEN {
            if path.starts_with(prefix) && names(&code, needle) {
                broken.push(format!("{path} names `{needle}`: {why}"));
            }
        }
        // Only the command line (and the backend itself) reaches into the real backend.
        if !path.starts_with("src/real/")
            && !matches!(path.as_str(), "src/cli/backend.rs" | "src/lib.rs")
            && names(&code, "crate::real")
        {
            broken.push(format!(
                "{path} names `crate::real`; only cli/backend.rs builds the real backend"
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn edges_are_seen_however_the_path_is_written() {
    assert!(names("use crate::real::executor;", "crate::real"));
    assert!(names("use crate::{cost, real::node};", "crate::real"));
    assert!(names(
        "let x = super::super::real::node::open();",
        "crate::real"
    ));
    assert!(!names("let real = 1; realistic::x();", "crate::real"));
    assert!(names(
        "use crate::policy::tetriserve::X;",
        "policy::tetriserve"
    ));
    assert!(!names("fn tetriserve() {}", "policy::tetriserve"));
}

#[test]
fn architecture_md_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let missing: Vec<String> = all()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            let name = Path::new(p).file_name().unwrap().to_str().unwrap();
            name != "mod.rs" && name != "lib.rs" && !map.contains(name)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not mention: {missing:?} (add them to the code map)"
    );
}
