//! A fast sample of the numbers README.md states, re-run with the binary: the quick-start table
//! (the default `simulate` run) row by row, the results table's Table 5 rows against a fresh
//! `figures --only table5` (and plots/README.md's section), the H100 / H200 what-if sentence, the
//! A40 warning and the fewest GPUs for 12 req/min. `scripts/claims-check.sh` re-runs every number; this is the part cheap enough
//! for `cargo test` (a few seconds).

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// Runs the binary from the repository root: (stdout, stderr); panics unless it succeeds.
fn run(args: &[&str]) -> (String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tetriserve"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("runs the binary");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "tetriserve {args:?} failed:\n{err}");
    (String::from_utf8_lossy(&o.stdout).into_owned(), err)
}

/// The lines of the first fenced block of `text` whose first line starts with `first`.
fn block_starting(text: &str, first: &str) -> Vec<String> {
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "```" {
            let block: Vec<String> = lines
                .by_ref()
                .take_while(|l| l.trim() != "```")
                .map(String::from)
                .collect();
            if block.first().is_some_and(|l| l.starts_with(first)) {
                return block;
            }
        }
    }
    panic!("no fenced block starting with {first:?}");
}

/// A line of the comparison table with its wall-clock column (`decide p99`, the last of a
/// policy row) masked: the only column that varies from run to run.
fn masked(line: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let policy_row = fields.len() == 12 && fields[2].contains('/');
    let keep = if policy_row { 11 } else { fields.len() };
    fields[..keep].join(" ")
}

/// Where `stated` (the README's table) and `fresh` (a run) differ, masked, line by line.
fn table_differences(stated: &[String], fresh: &str) -> Vec<String> {
    let fresh: Vec<String> = fresh
        .lines()
        .skip_while(|l| !l.starts_with("policy "))
        .map(masked)
        .collect();
    let stated: Vec<String> = stated.iter().map(|l| masked(l)).collect();
    let mut diff = Vec::new();
    for i in 0..stated.len().max(fresh.len()) {
        let (s, f) = (stated.get(i), fresh.get(i));
        if s != f {
            diff.push(format!("README: {s:?}\n   run: {f:?}"));
        }
    }
    diff
}

#[test]
fn the_quick_start_table_is_the_default_run() {
    let stated = block_starting(&readme(), "policy            SLO att.");
    assert!(stated.len() >= 10, "{stated:?}");
    let (out, _) = run(&["simulate"]);
    let diff = table_differences(&stated, &out);
    assert!(
        diff.is_empty(),
        "README's quick-start table is not what `tetriserve simulate` prints (decide p99 \
         masked):\n{}",
        diff.join("\n")
    );
}

#[test]
fn a_changed_number_or_a_missing_row_is_a_difference() {
    let stated = block_starting(&readme(), "policy            SLO att.");
    let table = stated.join("\n");
    // The same table with another decide p99 is the same; one changed count is not.
    let other_p99 = table.replace("0.1us", "9.9us");
    assert!(table_differences(&stated, &other_p99).is_empty());
    let row = stated.iter().find(|l| l.starts_with("rssp ")).unwrap();
    let changed = table.replace(row.as_str(), &row.replacen("/300", "/301", 1));
    assert_eq!(table_differences(&stated, &changed).len(), 1);
    let shorter: Vec<&str> = table.lines().filter(|l| !l.starts_with("rssp ")).collect();
    assert!(!table_differences(&stated, &shorter.join("\n")).is_empty());
}

/// The cells of the README results table's row whose first cell starts with `label`.
fn results_row(readme: &str, label: &str) -> Vec<String> {
    let line = readme
        .lines()
        .find(|l| l.starts_with(&format!("| {label}")))
        .unwrap_or_else(|| panic!("no results row {label:?}"));
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// The numbers of a text, in order (`91.3% / 98.7%` -> [91.3, 98.7]).
fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.trim_matches('.').parse().ok())
        .collect()
}

#[test]
fn the_table5_rows_are_a_fresh_figures_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    run(&["figures", "--only", "table5", "--out", out]);
    let fresh = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    // plots/README.md's Table 5 section is the fresh one.
    let section = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("### Table 5"))
            .take_while(|l| !l.is_empty() || !l.starts_with("###"))
            .filter(|l| l.starts_with("| tetriserve"))
            .map(String::from)
            .collect()
    };
    let committed = std::fs::read_to_string(root().join("plots/README.md")).unwrap();
    assert_eq!(section(&committed), section(&fresh));
    let cell = |variant: &str| -> Vec<f64> {
        let row = section(&fresh)
            .into_iter()
            .find(|l| l.starts_with(&format!("| {variant} |")))
            .unwrap();
        // "| tetriserve | 91.3 / 2.12 | 98.7 / 2.11 | ..." -> attainments 91.3, 98.7, ...
        numbers(&row).chunks(2).map(|c| c[0]).collect()
    };
    let text = readme();
    let t = cell("tetriserve");
    let stated = results_row(&text, "TetriServe, Uniform 1.0x / 1.5x (Table 5)");
    assert_eq!(numbers(&stated[1]), [t[0], t[1]], "{stated:?}");
    let stated = results_row(&text, "ablation, Uniform 1.0x");
    let fresh = [cell("tetriserve-dp")[0], cell("tetriserve-dp-pp")[0], t[0]];
    assert_eq!(numbers(&stated[1]), fresh, "{stated:?}");
}

/// The first number after `marker` in `text`.
fn number_after(text: &str, marker: &str) -> f64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not found"));
    numbers(&text[at + marker.len()..])[0]
}

#[test]
fn the_h200_what_if_sentence_holds() {
    let text = readme();
    let sentence = &text[text
        .find("The H200 gives exactly the H100's results")
        .unwrap()..];
    let (ts, bound) = (
        number_after(sentence, "(TetriServe "),
        number_after(sentence, "bound "),
    );
    let row = |out: &str, name: &str| -> f64 {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap();
        numbers(
            line.split_whitespace()
                .nth(if name.starts_with("upper") { 2 } else { 1 })
                .unwrap(),
        )[0]
    };
    let mut rows = Vec::new();
    for gpu in ["h100", "h200"] {
        let scenario = format!("scenarios/what-if/flux-{gpu}-analytic.toml");
        let (out, _) = run(&["simulate", "-s", &scenario, "-p", "tetriserve"]);
        rows.push((row(&out, "tetriserve "), row(&out, "upper bound")));
    }
    assert_eq!(rows[0], rows[1], "the H200 gives the H100's results");
    assert_eq!(
        rows[0],
        (ts, bound),
        "README: TetriServe {ts}%, bound {bound}%"
    );
}

#[test]
fn the_a40_warning_sentence_holds() {
    let text = readme();
    let marker = "With the a40 profile on 4 GPUs, 2048 px takes ";
    let (best, slo) = (
        number_after(&text, marker),
        number_after(&text, "s at best against "),
    );
    let (_, err) = run(&[
        "simulate",
        "--profile",
        "a40-sd3-medium",
        "--gpus",
        "4",
        "-p",
        "tetriserve",
        "--requests",
        "10",
    ]);
    let line = err
        .lines()
        .find(|l| l.contains("2048x2048: a lone request takes"))
        .unwrap_or_else(|| panic!("no 2048 px warning in\n{err}"));
    let took = number_after(line, "a lone request takes ");
    let slo_run = number_after(line, "its SLO of ");
    assert!((took - best).abs() < 0.05, "README {best} s, run: {line}");
    assert_eq!(slo_run, slo, "{line}");
}

#[test]
fn the_capacity_planning_sentence_holds() {
    let text = readme();
    let marker = "at 12 req/min TetriServe needs ";
    let sentence = &text[text.find(marker).expect("the capacity sentence") + marker.len()..];
    let stated = numbers(&sentence[..sentence.find(')').unwrap()]);
    let (out, _) = run(&[
        "goodput",
        "--policy",
        "tetriserve",
        "--min-gpus",
        "--rate",
        "12",
        "--seeds",
        "1,2,3",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pct = |k: &str| (json[k].as_f64().unwrap() * 1000.0).round() / 10.0;
    // "8 GPUs (91.3% there, 66.6% on 4)"
    assert_eq!(
        stated,
        [
            json["gpus"].as_f64().unwrap(),
            pct("slo_attainment"),
            pct("below_slo_attainment"),
            json["below_gpus"].as_f64().unwrap(),
        ],
        "README: {}",
        &sentence[..sentence.find(')').unwrap() + 1]
    );
}
