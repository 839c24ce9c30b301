//! The architecture's rules, checked: module headers, forbidden dependency edges, no import
//! circles (between the top-level modules of `src/`, and between the sibling files of a
//! folder module), and an ARCHITECTURE.md that names every source file (see its "Code map").

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
        "src/replay.rs",
        "crate::real",
        "a replay is a simulation of recorded decisions, whatever executor recorded them",
    ),
    (
        "src/validate.rs",
        "crate::real",
        "the fidelity study runs any Executor; only the command line builds a real one",
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

/// The code of a file that is compiled outside tests: everything before its unit tests
/// (`#[cfg(test)]`), comments dropped. Tests may reach anywhere; the modules may not.
fn non_test_code(text: &str) -> String {
    let cut = text.find("#[cfg(test)]").unwrap_or(text.len());
    code(&text[..cut])
}

/// The paths of a use tree or a path expression starting at `s` (just after `crate::`,
/// `super::` ...): `a::b::C` gives `[a, b, C]`; braces expand (`{a::b, c::{self, d}}` gives
/// `[a, b]`, `[c]`, `[c, d]`); `self` and `*` end a path.
fn paths_at(s: &[u8], pos: &mut usize) -> Vec<Vec<String>> {
    let ws = |pos: &mut usize| {
        while *pos < s.len() && s[*pos].is_ascii_whitespace() {
            *pos += 1;
        }
    };
    ws(pos);
    if s.get(*pos) == Some(&b'{') {
        *pos += 1;
        let mut all = Vec::new();
        loop {
            ws(pos);
            match s.get(*pos) {
                None => break,
                Some(b'}') => {
                    *pos += 1;
                    break;
                }
                Some(b',') => *pos += 1,
                _ => {
                    let before = *pos;
                    all.extend(paths_at(s, pos));
                    // `a as b` and anything unexpected: skip to the next separator.
                    while *pos < s.len() && !matches!(s[*pos], b',' | b'}' | b'{') {
                        *pos += 1;
                    }
                    if *pos == before {
                        *pos += 1;
                    }
                }
            }
        }
        return all;
    }
    let start = *pos;
    while *pos < s.len() && (s[*pos].is_ascii_alphanumeric() || s[*pos] == b'_') {
        *pos += 1;
    }
    let ident = String::from_utf8_lossy(&s[start..*pos]).into_owned();
    if ident.is_empty() || ident == "self" {
        return vec![Vec::new()];
    }
    if s[*pos..].starts_with(b"::") {
        *pos += 2;
        paths_at(s, pos)
            .into_iter()
            .map(|mut p| {
                p.insert(0, ident.clone());
                p
            })
            .collect()
    } else {
        vec![vec![ident]]
    }
}

/// A source file as a module: its path from the crate root (`src/workload/mod.rs` is
/// `[workload]`, `src/policy/tetriserve/plan.rs` is `[policy, tetriserve, plan]`).
fn module_path(rel: &str) -> Vec<String> {
    let mut m: Vec<String> = rel
        .trim_start_matches("src/")
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if m.last().is_some_and(|l| l == "mod") {
        m.pop();
    }
    m
}

/// Every absolute path (from the crate root) the non-test code of `rel` names: `crate::`
/// paths, `super::` and `self::` paths resolved, and in a `mod.rs` its children's paths
/// written bare (`skipping::SkipMask`).
fn named_paths(rel: &str, text: &str, children: &[String]) -> Vec<Vec<String>> {
    let code = non_test_code(text);
    let s = code.as_bytes();
    let module = module_path(rel);
    let is_mod = rel.ends_with("/mod.rs");
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if i > 0 && (ident(s[i - 1]) || s[..i].ends_with(b"::")) {
            i += 1;
            continue;
        }
        let rest = &s[i..];
        let (base, skip) = if rest.starts_with(b"crate::") {
            (Vec::new(), 7)
        } else if rest.starts_with(b"super::") || rest.starts_with(b"self::") {
            let mut base = module.clone();
            let mut at = 0;
            loop {
                if s[i + at..].starts_with(b"super::") {
                    base.pop();
                    at += 7;
                } else if s[i + at..].starts_with(b"self::") {
                    at += 6;
                } else {
                    break;
                }
            }
            (base, at)
        } else if is_mod
            && children
                .iter()
                .any(|c| rest.starts_with(format!("{c}::").as_bytes()))
        {
            (module.clone(), 0)
        } else {
            i += 1;
            continue;
        };
        let mut pos = i + skip;
        for p in paths_at(s, &mut pos) {
            let mut full = base.clone();
            full.extend(p);
            out.push(full);
        }
        i = pos.max(i + 1);
    }
    out
}

/// The strongly connected components of more than one node of the graph `edges` over
/// `nodes` (Tarjan's algorithm), each sorted, in the order of their smallest node.
fn circles(
    nodes: &[String],
    edges: &std::collections::BTreeSet<(String, String)>,
) -> Vec<Vec<String>> {
    use std::collections::BTreeMap;
    struct Tarjan<'a> {
        adj: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: std::collections::BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.adj.get(v).cloned().unwrap_or_default() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[w].min(self.low[v]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.index[w].min(self.low[v]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut c = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    c.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if c.len() > 1 {
                    c.sort();
                    self.out.push(c);
                }
            }
        }
    }
    let mut t = Tarjan {
        adj: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: Default::default(),
        out: Vec::new(),
    };
    for (a, b) in edges {
        t.adj.entry(a.as_str()).or_default().push(b.as_str());
    }
    for v in nodes {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// The dependency graphs of `files`: between the top-level modules of `src/` (`crate::X`
/// naming `crate::Y`), named `src`; per folder module, between the files and subfolders it
/// holds, named by the folder; and per folder again with its `mod.rs` as a node too (named
/// `<folder> (with mod.rs)`), its `mod` declarations and `pub use` re-exports left out (they
/// are the folder's structure; a child naming an item of the folder reaches `mod.rs`).
/// Items used through a re-export (`FixedSp` for `fixed_sp::FixedSp`) reach `mod.rs`, and a
/// `mod.rs` naming them bare is not seen: the graphs see what the paths say.
type Graph = (
    String,
    Vec<String>,
    std::collections::BTreeSet<(String, String)>,
);

fn graphs(files: &[(String, String)]) -> Vec<Graph> {
    let mut out = sibling_graphs(files, false);
    out.extend(sibling_graphs(files, true));
    out
}

/// [`graphs`] without (`hub` false) or with each folder's `mod.rs` as a node of its folder.
fn sibling_graphs(files: &[(String, String)], hub: bool) -> Vec<Graph> {
    use std::collections::{BTreeMap, BTreeSet};
    // Each folder module's children: file stems (not mod.rs) and subfolders.
    let mut children: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for (rel, _) in files {
        let m = module_path(rel);
        if rel == "src/lib.rs" || rel == "src/main.rs" {
            continue;
        }
        for k in 0..m.len() {
            let (folder, child) = (m[..k].to_vec(), m[k].clone());
            if k + 1 < m.len() || !rel.ends_with("/mod.rs") {
                children.entry(folder).or_default().insert(child);
            }
        }
    }
    let mut edges: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for (rel, text) in files {
        if rel == "src/lib.rs" || rel == "src/main.rs" {
            continue;
        }
        let m = module_path(rel);
        let own: Vec<String> = children
            .get(&m)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        let is_mod = rel.ends_with("/mod.rs");
        // A mod.rs declares and re-exports its children: structure, not use.
        let text = if hub && is_mod {
            without_declarations(text)
        } else {
            text.clone()
        };
        for p in named_paths(rel, &text, &own) {
            // At every folder holding this file: from the child it lies in to the child the
            // path names, when the path stays inside the folder (with `hub`, a mod.rs and
            // the items it defines are the node `mod.rs`).
            for (folder, kids) in &children {
                let k = folder.len();
                if m.len() < k || m[..k] != folder[..] || p.len() < k || p[..k] != folder[..] {
                    continue;
                }
                let node = |path: &[String], own_mod: bool| -> Option<String> {
                    match path.get(k) {
                        Some(c) if kids.contains(c) && !own_mod => Some(c.clone()),
                        _ if hub && k > 0 => Some("mod.rs".to_string()),
                        _ => None,
                    }
                };
                let from = node(&m, is_mod && m.len() == k);
                let to = node(&p, false);
                if let (Some(from), Some(to)) = (from, to)
                    && from != to
                {
                    edges.entry(folder.clone()).or_default().insert((from, to));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (folder, kids) in &children {
        if hub && folder.is_empty() {
            continue;
        }
        let mut name = if folder.is_empty() {
            "src".to_string()
        } else {
            format!("src/{}", folder.join("/"))
        };
        let mut nodes: Vec<String> = kids.iter().cloned().collect();
        if hub {
            name.push_str(" (with mod.rs)");
            nodes.push("mod.rs".to_string());
        }
        out.push((name, nodes, edges.remove(folder).unwrap_or_default()));
    }
    out
}

/// `text` without its `mod` declarations and `pub use` re-exports.
fn without_declarations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(line_end) = rest.find('\n').map(|i| i + 1).or(Some(rest.len())) {
        if rest.is_empty() {
            break;
        }
        let t = rest.trim_start();
        let declaration = [
            "mod ",
            "pub mod ",
            "pub(crate) mod ",
            "pub use ",
            "pub(crate) use ",
        ]
        .iter()
        .any(|k| t.starts_with(k));
        if declaration {
            let end = rest.find(';').map_or(rest.len(), |i| i + 1);
            rest = &rest[end..];
        } else {
            out.push_str(&rest[..line_end]);
            rest = &rest[line_end..];
        }
    }
    out
}

/// Import circles that are known, as (graph, the circle's nodes sorted, why). Only the graphs
/// with each folder's `mod.rs` have any: a folder's `mod.rs` that defines the items its
/// children use and also uses one of them. Between top-level modules and between sibling
/// files there is none: a circle there means two modules cannot be understood, tested or
/// moved apart.
const ALLOWED_CIRCLES: &[(&str, &[&str], &str)] = &[
    (
        "src/policy (with mod.rs)",
        &["mod.rs", "tetriserve"],
        "mod.rs defines the Policy trait and the decisions every policy returns, and `build` \
         constructs every policy (refusing a TetriServe round of zero length by its \
         RoundLength): the registry knows its policies by design",
    ),
    (
        "src/real/gpu (with mod.rs)",
        &["arena", "attention", "launch", "mod.rs"],
        "mod.rs defines GpuOps, whose memory (arena.rs) and launch (launch.rs) methods are \
         impl blocks of their own files, and which owns each stream's attention backends, whose \
         calls queue work through GpuOps: one type spread over files by concern",
    ),
    (
        "src/real/gpu/attention (with mod.rs)",
        &["flash", "fused", "mod.rs", "unfused"],
        "mod.rs defines the GpuAttention trait and the fallback chain, which constructs each \
         backend; each backend implements the trait: the chain knows its members by design",
    ),
    (
        "src/workload (with mod.rs)",
        &["mod.rs", "skipping"],
        "mod.rs's Savings holds each request's SkipMask, and SkipSpec::apply (which \
         scenario.rs calls) draws the masks into a Workload",
    ),
];

#[test]
fn no_import_circles_between_modules_or_sibling_files() {
    let mut found = Vec::new();
    let mut seen = Vec::new();
    for (name, nodes, edges) in graphs(&all()) {
        for c in circles(&nodes, &edges) {
            seen.push((name.clone(), c.clone()));
            let allowed = ALLOWED_CIRCLES
                .iter()
                .any(|(g, n, _)| *g == name && n.iter().eq(c.iter()));
            if !allowed {
                let inner: Vec<String> = edges
                    .iter()
                    .filter(|(a, b)| c.contains(a) && c.contains(b))
                    .map(|(a, b)| format!("{a} -> {b}"))
                    .collect();
                found.push(format!("{name}: {} ({})", c.join(", "), inner.join("; ")));
            }
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
    // A circle that was broken leaves the list, so the list stays the truth.
    for (g, n, _) in ALLOWED_CIRCLES {
        assert!(
            seen.iter()
                .any(|(name, c)| name == g && n.iter().eq(c.iter())),
            "{g}: {n:?} is no longer a circle; remove it from ALLOWED_CIRCLES"
        );
    }
}

/// The circles `graphs` finds in `files`, as `graph: nodes`.
fn found_circles(files: &[(String, String)]) -> Vec<String> {
    graphs(files)
        .into_iter()
        .flat_map(|(name, nodes, edges)| {
            circles(&nodes, &edges)
                .into_iter()
                .map(move |c| format!("{name}: {}", c.join(", ")))
        })
        .collect()
}

/// The check sees the circles this crate once had: `error.rs` holding the records of
/// `metrics` (which reaches `error` through `cluster` and `workload`), and `stream_rng` in
/// `generate.rs` (`workload/mod.rs` -> `skipping.rs` -> `generate.rs` -> `mod.rs`); and
/// sibling files that use each other however the path is written.
#[test]
fn the_circle_check_catches_known_circles() {
    let mutate = |file: &str, from: &str, to: &str| {
        let mut files = all();
        let f = files.iter_mut().find(|(p, _)| p == file).unwrap();
        assert!(f.1.contains(from), "{file} no longer holds `{from}`");
        f.1 = f.1.replacen(from, to, 1);
        files
    };
    let found = found_circles(&mutate(
        "src/error.rs",
        "        partial: PartialRun,",
        "        partial: Box<crate::metrics::RunRecords>,",
    ));
    assert!(
        found
            .iter()
            .any(|c| c.starts_with("src: ") && c.contains("error") && c.contains("metrics")),
        "{found:?}"
    );
    // `stream_rng` back in `generate.rs`, which uses skipping's masks: skipping -> generate
    // -> skipping.
    let mut files = mutate(
        "src/workload/skipping.rs",
        "use crate::workload::rng::stream_rng;",
        "use super::generate::stream_rng;",
    );
    let g = files
        .iter_mut()
        .find(|(p, _)| p == "src/workload/generate.rs")
        .unwrap();
    g.1 = g.1.replacen(
        "use crate::workload::{",
        "use crate::workload::{skipping::SkipMask, ",
        1,
    );
    let found = found_circles(&files);
    assert!(
        found.contains(&"src/workload: generate, skipping".to_string()),
        "{found:?}"
    );
    // As it was: `stream_rng` in `generate.rs`, which uses `mod.rs`'s items, which use
    // `skipping.rs`'s masks: a circle through all three (and what else it
    // reaches), not the known one of two.
    let found = found_circles(&mutate(
        "src/workload/skipping.rs",
        "use crate::workload::rng::stream_rng;",
        "use crate::workload::generate::stream_rng;",
    ));
    assert!(
        found
            .iter()
            .any(|c| c.starts_with("src/workload (with mod.rs): ")
                && c.contains("generate")
                && c.contains("skipping")),
        "{found:?}"
    );
    // Paths in braces, through `super::`, and in a `mod.rs` written bare.
    let mut s = "use crate::{a::{b, c::D}, e};".as_bytes().to_vec();
    s.extend(b" super::x::Y");
    let paths = named_paths("src/f/g.rs", std::str::from_utf8(&s).unwrap(), &[]);
    assert_eq!(
        paths,
        [
            vec!["a", "b"],
            vec!["a", "c", "D"],
            vec!["e"],
            vec!["f", "x", "Y"]
        ]
    );
    let paths = named_paths("src/f/mod.rs", "let m = g::h(); // x::y", &["g".into()]);
    assert_eq!(paths, [vec!["f", "g", "h"]]);
}
