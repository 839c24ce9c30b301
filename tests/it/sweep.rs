//! Sweeps end to end: every row equals the individual run, results do not depend on the
//! thread count or on sharding, and an existing result is not run again.

use std::path::Path;

use tetriserve::scenario::{Overrides, RawScenario, Scenario};
use tetriserve::simulate::simulate;
use tetriserve::sweep::{Grid, SweepOptions, merge, read_rows, run};

const SCENARIO: &str = "name = \"it-sweep\"\n[workload]\nrequests = 40\n[sweep]\npolicies = [\"xdit-sp4\", \"tetriserve\"]\nslo_scales = [1.0, 1.5]\nseeds = [3, 4]\n";

fn grid() -> Grid {
    let raw = RawScenario::parse(SCENARIO, "it-sweep.toml", Path::new("."))
        .unwrap()
        .or(RawScenario::default_scenario());
    Grid::new(raw, "it-sweep.toml").unwrap()
}

fn opts(jobs: usize, shard: Option<(usize, usize)>) -> SweepOptions {
    SweepOptions {
        shard,
        write_runs: false,
        rerun: false,
        jobs: Some(jobs),
    }
}

#[test]
fn rows_match_individual_runs() {
    let dir = tempfile::tempdir().unwrap();
    let g = grid();
    assert_eq!(g.points.len(), 8);
    let report = run(&g, dir.path(), &opts(2, None), &|_, _| {}).unwrap();
    assert_eq!((report.ran, report.skipped), (8, 0));
    let text = std::fs::read_to_string(&report.results).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 8);
    for r in &rows {
        let scale: f64 = r[col("slo_scale")].parse().unwrap();
        let seed: u64 = r[col("seed")].parse().unwrap();
        let o = Overrides {
            policies: vec![r[col("policy")].to_string()],
            slo_scale: Some(scale),
            seed: Some(seed),
            requests: Some(40),
            ..Overrides::default()
        };
        let alone = simulate(&Scenario::load(None, &o).unwrap())
            .unwrap()
            .remove(0)
            .summary;
        assert_eq!(r[col("met")].parse::<usize>().unwrap(), alone.met, "{r:?}");
        assert_eq!(
            r[col("slo_attainment")],
            format!("{:.6}", alone.slo_attainment)
        );
        assert_eq!(
            r[col("latency_p99_s")],
            format!("{:.6}", alone.latency.p99_s)
        );
    }
    // Run again: nothing to do.
    let again = run(&g, dir.path(), &opts(2, None), &|_, _| {}).unwrap();
    assert_eq!((again.ran, again.skipped), (0, 8));
    assert_eq!(std::fs::read_to_string(&again.results).unwrap(), text);
}

#[test]
fn results_do_not_depend_on_threads_or_shards() {
    let g = grid();
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let sharded = tempfile::tempdir().unwrap();
    let a = run(&g, one.path(), &opts(1, None), &|_, _| {}).unwrap();
    let b = run(&g, two.path(), &opts(2, None), &|_, _| {}).unwrap();
    for i in 0..3 {
        run(&g, sharded.path(), &opts(2, Some((i, 3))), &|_, _| {}).unwrap();
    }
    let (merged, rows) = merge(sharded.path()).unwrap();
    assert_eq!(rows, 8);
    let text = std::fs::read_to_string(&a.results).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(&b.results).unwrap(),
        "1 vs 2 threads"
    );
    assert_eq!(
        text,
        std::fs::read_to_string(&merged).unwrap(),
        "sharded and merged"
    );
}

#[test]
fn an_interrupted_sweep_resumes_from_its_partial_results() {
    let g = grid();
    let dir = tempfile::tempdir().unwrap();
    let full = run(&g, dir.path(), &opts(1, None), &|_, _| {}).unwrap();
    let rows = read_rows(&full.results).unwrap();
    // Pretend the process died after three runs: only a partial file with three rows remains.
    let text = std::fs::read_to_string(&full.results).unwrap();
    let partial: Vec<&str> = text.lines().take(4).collect();
    std::fs::remove_file(&full.results).unwrap();
    std::fs::write(
        dir.path().join("results.partial.csv"),
        partial.join("\n") + "\n",
    )
    .unwrap();
    let resumed = run(&g, dir.path(), &opts(1, None), &|_, _| {}).unwrap();
    assert_eq!((resumed.ran, resumed.skipped), (5, 3));
    assert_eq!(read_rows(&resumed.results).unwrap(), rows);
    assert!(!dir.path().join("results.partial.csv").exists());
}

#[test]
fn a_row_cut_short_at_the_end_of_the_partial_results_is_dropped_and_rerun() {
    // The process died while writing the fourth row (disk full, power loss): three whole rows
    // and half of one. The three are kept, the torn one's point runs again.
    let g = grid();
    let dir = tempfile::tempdir().unwrap();
    let full = run(&g, dir.path(), &opts(1, None), &|_, _| {}).unwrap();
    let rows = read_rows(&full.results).unwrap();
    let text = std::fs::read_to_string(&full.results).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let torn = &lines[4][..lines[4].len() / 2];
    std::fs::remove_file(&full.results).unwrap();
    std::fs::write(
        dir.path().join("results.partial.csv"),
        lines[..4].join("\n") + "\n" + torn,
    )
    .unwrap();
    let resumed = run(&g, dir.path(), &opts(1, None), &|_, _| {}).unwrap();
    assert_eq!((resumed.ran, resumed.skipped), (5, 3));
    assert_eq!(read_rows(&resumed.results).unwrap(), rows);
}
