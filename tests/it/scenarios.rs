//! Every shipped scenario loads, validates and runs; the top-level ones fit their hardware.

use std::path::Path;

use tetriserve::scenario::{Overrides, Scenario};
use tetriserve::simulate::simulate;

#[test]
fn every_shipped_scenario_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let overrides = Overrides {
            requests: Some(30),
            ..Overrides::default()
        };
        let scenario = Scenario::load(Some(&path), &overrides)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!scenario.policies.is_empty());
        // The recipes a user starts from fit their hardware: no SLO a lone request cannot
        // meet on the scenario's own profile, no RSSP degree that misses its SLO.
        assert!(
            scenario.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            scenario.warnings
        );
        let runs = simulate(&scenario).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for r in runs {
            assert_eq!(r.summary.requests, 30, "{}", path.display());
        }
    }
    assert!(
        seen >= 3,
        "expected the shipped scenarios in {}",
        dir.display()
    );
}

/// Loads every scenario of `scenarios/<sub>` as a sweep grid and builds some of its points;
/// returns how many files there were.
fn check_grids(sub: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(sub);
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let (raw, source) = tetriserve::scenario::RawScenario::load_merged(Some(&path)).unwrap();
        assert!(raw.sweep.is_some(), "{} has no [sweep]", path.display());
        let grid = tetriserve::sweep::Grid::new(raw, &source)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(grid.points.len() >= 10, "{}", path.display());
        for p in grid.points.iter().step_by(7) {
            grid.scenario(p)
                .unwrap_or_else(|e| panic!("{} point {}: {e}", path.display(), p.index));
        }
        seen += 1;
    }
    seen
}

#[test]
fn every_paper_scenario_is_a_valid_grid() {
    assert_eq!(
        check_grids("paper"),
        9,
        "one scenario per reproduced figure"
    );
}

#[test]
fn every_shedding_grid_is_valid_and_pairs_the_two_policies() {
    assert_eq!(check_grids("beyond"), 11);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/beyond");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // The step-skipping grid compares baselines too (docs/caching.md), the cluster-size
        // grid every policy (docs/cluster-scale.md), and so do the video mix (README) and the
        // disaggregated stages (docs/stages.md).
        if path.file_stem().is_some_and(|s| {
            [
                "step-skipping",
                "cluster-scale",
                "video-mix",
                "disaggregated",
            ]
            .iter()
            .any(|n| s == *n)
        }) {
            continue;
        }
        let (raw, _) = tetriserve::scenario::RawScenario::load_merged(Some(&path)).unwrap();
        let sweep = raw.sweep.unwrap();
        assert_eq!(
            sweep.policies.unwrap(),
            vec!["tetriserve".to_string(), "tetriserve-shed".to_string()],
            "{}",
            path.display()
        );
        assert!(sweep.seeds.unwrap().len() >= 5, "{}", path.display());
    }
}

#[test]
fn the_cluster_size_grid_scales_the_load_with_the_gpus() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/beyond/cluster-scale.toml");
    let (raw, source) = tetriserve::scenario::RawScenario::load_merged(Some(&path)).unwrap();
    let grid = tetriserve::sweep::Grid::new(raw, &source).unwrap();
    // Every policy of the registry but the two TetriServe variants without shedding.
    let policies: std::collections::BTreeSet<&str> =
        grid.points.iter().map(|p| p.policy.as_str()).collect();
    assert_eq!(policies.len(), 8, "{policies:?}");
    for p in &grid.points {
        let s = grid.scenario(p).unwrap();
        let nodes = f64::from(s.cluster.nodes);
        assert_eq!(s.cluster.gpus_per_node, 8);
        // 12 or 24 req/min and 300 requests per node.
        let rate = p.rate_per_min.unwrap() / nodes;
        assert!(rate == 12.0 || rate == 24.0, "{}", p.describe());
        assert_eq!(
            p.requests,
            Some(300 * s.cluster.nodes as usize),
            "{}",
            p.describe()
        );
    }
}
