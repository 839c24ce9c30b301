//! Sweeps end to end: every row equals the individual run, results do not depend on the
//! thread count or on sharding, a result is reused only for the scenario that made it, and
//! `merge` joins only one complete, consistent set of shards.

use std::path::Path;

use tetriserve::scenario::{Overrides, RawScenario, Scenario};
use tetriserve::simulate::simulate;
use tetriserve::sweep::results::{self, ResultRow};
use tetriserve::sweep::{Grid, SweepOptions, merge, read_results, run};

const SCENARIO: &str = "name = \"it-sweep\"\n[workload]\nrequests = 40\n[sweep]\npolicies = [\"xdit-sp4\", \"tetriserve\"]\nslo_scales = [1.0, 1.5]\nseeds = [3, 4]\n";

fn grid_of(text: &str) -> Grid {
    let raw = RawScenario::parse(text, "it-sweep.toml", Path::new("."))
        .unwrap()
        .or(RawScenario::default_scenario());
    Grid::new(raw, "it-sweep.toml").unwrap()
}

fn grid() -> Grid {
    grid_of(SCENARIO)
}

fn opts(jobs: usize, shard: Option<(usize, usize)>) -> SweepOptions {
    SweepOptions {
        shard,
        write_runs: false,
        rerun: false,
        jobs: Some(jobs),
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn rows_match_individual_runs() {
    let dir = tempfile::tempdir().unwrap();
    let g = grid();
    assert_eq!(g.points.len(), 8);
    let report = run(&g, dir.path(), &opts(2, None), &|_, _| {}).unwrap();
    assert_eq!((report.ran, report.reused), (8, 0));
    let rows = read_results(&report.results).unwrap();
    assert_eq!(rows.len(), 8);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.index, i);
        let o = Overrides {
            policies: vec![r.policy.clone()],
            slo_scale: Some(r.scale),
            seed: Some(r.seed),
            requests: Some(40),
            ..Overrides::default()
        };
        let alone = simulate(&Scenario::load(None, &o).unwrap())
            .unwrap()
            .remove(0)
            .summary;
        assert_eq!(r.met, alone.met, "{r:?}");
        assert_eq!(
            format!("{:.6}", r.attainment),
            format!("{:.6}", alone.slo_attainment)
        );
        assert_eq!(
            format!("{:.6}", r.latency_p99),
            format!("{:.6}", alone.latency.p99_s)
        );
        // Every grid coordinate is a column.
        assert_eq!((r.gpus, r.nodes, r.gpus_per_node, r.steps), (8, 1, 8, 28));
        assert_eq!((r.arrival.as_str(), r.cv), ("poisson", None));
        assert_eq!(r.profile, "h100-flux1-dev");
        // The long per-resolution rows add up to the run.
        let n: usize = r.per_resolution.values().map(|c| c.requests).sum();
        assert_eq!(n, 40);
        for (k, c) in &r.per_resolution {
            assert_eq!(c.met, alone.per_resolution[k].met, "{k}");
        }
    }
    // Run again: nothing to do, nothing changes.
    let text = read(&report.results);
    let again = run(&g, dir.path(), &opts(2, None), &|_, _| {}).unwrap();
    assert_eq!((again.ran, again.reused), (0, 8));
    assert_eq!(read(&again.results), text);
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
    for name in [
        "results.csv",
        "results-by-resolution.csv",
        "results.manifest.json",
    ] {
        let text = read(&one.path().join(name));
        assert_eq!(text, read(&two.path().join(name)), "{name}: 1 vs 2 threads");
        assert_eq!(
            text,
            read(&sharded.path().join(name)),
            "{name}: sharded and merged"
        );
    }
    assert_eq!(read(&a.results), read(&b.results));
    assert_eq!(merged, sharded.path().join("results.csv"));
}

#[test]
fn an_interrupted_sweep_resumes_from_its_partial_results() {
    let g = grid();
    let dir = tempfile::tempdir().unwrap();
    let full = run(&g, dir.path(), &opts(1, None), &|_, _| {}).unwrap();
    let rows = read_results(&full.results).unwrap();
    // Pretend the process died after three runs: only partial files with three rows remain
    // (and the resolution rows of a fourth point, written just before it died).
    let text = read(&full.results);
    let partial: Vec<&str> = text.lines().take(4).collect();
    let res = read(&dir.path().join("results-by-resolution.csv"));
    std::fs::remove_file(&full.results).unwrap();
    std::fs::remove_file(dir.path().join("results-by-resolution.csv")).unwrap();
    std::fs::write(
        dir.path().join("results.partial.csv"),
        partial.join("\n") + "\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("results-by-resolution.partial.csv"), res).unwrap();
    let resumed = run(&g, dir.path(), &opts(1, None), &|_, _| {}).unwrap();
    assert_eq!((resumed.ran, resumed.reused), (5, 3));
    assert_eq!(read_results(&resumed.results).unwrap(), rows);
    assert!(!dir.path().join("results.partial.csv").exists());
    assert!(
        !dir.path()
            .join("results-by-resolution.partial.csv")
            .exists()
    );
}

#[test]
fn a_row_cut_short_at_the_end_of_the_partial_results_is_dropped_and_rerun() {
    // The process died while writing the fourth row (disk full, power loss): three whole rows
    // and half of one. The three are kept, the torn one's point runs again.
    let g = grid();
    let dir = tempfile::tempdir().unwrap();
    let full = run(&g, dir.path(), &opts(1, None), &|_, _| {}).unwrap();
    let rows = read_results(&full.results).unwrap();
    let text = read(&full.results);
    let lines: Vec<&str> = text.lines().collect();
    let torn = &lines[4][..lines[4].len() / 2];
    let res_path = dir.path().join("results-by-resolution.csv");
    let res = read(&res_path);
    std::fs::remove_file(&full.results).unwrap();
    std::fs::remove_file(&res_path).unwrap();
    std::fs::write(
        dir.path().join("results.partial.csv"),
        lines[..4].join("\n") + "\n" + torn,
    )
    .unwrap();
    // The resolution file torn too, mid-row.
    std::fs::write(
        dir.path().join("results-by-resolution.partial.csv"),
        &res[..res.len() - 3],
    )
    .unwrap();
    let resumed = run(&g, dir.path(), &opts(1, None), &|_, _| {}).unwrap();
    assert_eq!((resumed.ran, resumed.reused), (5, 3));
    assert_eq!(read_results(&resumed.results).unwrap(), rows);
}

#[test]
fn results_of_another_scenario_are_refused_naming_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    run(&grid(), dir.path(), &opts(2, None), &|_, _| {}).unwrap();
    let before = read(&dir.path().join("results.csv"));
    // One node instead of the default's, and another SLO base for 1024x1024.
    let changed = grid_of(&format!(
        "{SCENARIO}[cluster]\nnodes = 2\ngpus_per_node = 4\n[slo]\nbases_s = {{ \"1024x1024\" = 4.0 }}\n"
    ));
    let e = run(&changed, dir.path(), &opts(2, None), &|_, _| {})
        .unwrap_err()
        .to_string();
    for needle in [
        "holds 8 result(s) made from a different scenario than it-sweep.toml",
        "cluster.nodes: 1 -> 2",
        "cluster.gpus_per_node: 8 -> 4",
        "slo.bases_s.1024x1024: 3.0 -> 4.0",
        "--rerun",
        "another --out",
    ] {
        assert!(e.contains(needle), "{needle}: {e}");
    }
    assert_eq!(
        read(&dir.path().join("results.csv")),
        before,
        "left as it was"
    );
    // --rerun replaces them: every row from the new scenario, no index twice.
    let rerun = SweepOptions {
        rerun: true,
        ..opts(2, None)
    };
    let r = run(&changed, dir.path(), &rerun, &|_, _| {}).unwrap();
    assert_eq!((r.ran, r.reused), (8, 0));
    let rows = read_results(&r.results).unwrap();
    let indices: Vec<usize> = rows.iter().map(|r| r.index).collect();
    assert_eq!(indices, (0..8).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| (r.nodes, r.gpus_per_node) == (2, 4)));
    // A changed mix is another scenario too.
    let mix = grid_of(
        &format!("{SCENARIO}[workload]\nmix = \"skewed\"\n")
            .replace("[workload]\nrequests = 40\n", ""),
    );
    let e = run(&mix, dir.path(), &opts(2, None), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("workload.mix"), "{e}");
}

#[test]
fn a_grown_grid_reuses_its_points_and_reindexes_them() {
    let dir = tempfile::tempdir().unwrap();
    run(&grid(), dir.path(), &opts(2, None), &|_, _| {}).unwrap();
    // One more seed: its points interleave with the old ones in grid order.
    let grown = grid_of(&SCENARIO.replace("seeds = [3, 4]", "seeds = [3, 4, 5]"));
    let r = run(&grown, dir.path(), &opts(2, None), &|_, _| {}).unwrap();
    assert_eq!((r.ran, r.reused), (4, 8));
    let fresh = tempfile::tempdir().unwrap();
    let f = run(&grown, fresh.path(), &opts(2, None), &|_, _| {}).unwrap();
    assert_eq!(read(&r.results), read(&f.results));
    assert_eq!(
        read(&dir.path().join("results-by-resolution.csv")),
        read(&fresh.path().join("results-by-resolution.csv"))
    );
    // A shrunk grid would leave rows of points it no longer has: refused, naming the list.
    let e = run(&grid(), dir.path(), &opts(2, None), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("sweep.seeds: [3,4,5] -> [3,4]"), "{e}");
}

#[test]
fn an_edited_profile_file_is_another_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("mine.csv");
    let text = read(Path::new("profiles/h100-flux1-dev.csv"));
    std::fs::write(&profile, &text).unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(
        &scenario,
        "[workload]\nrequests = 20\n[cost]\nprofile = \"mine.csv\"\n[sweep]\npolicies = [\"rssp\"]\nseeds = [1, 2]\n",
    )
    .unwrap();
    let load = || {
        let (raw, source) = RawScenario::load_merged(Some(&scenario)).unwrap();
        Grid::new(raw, &source).unwrap()
    };
    let out = dir.path().join("out");
    run(&load(), &out, &opts(1, None), &|_, _| {}).unwrap();
    let rows = read_results(&out.join("results.csv")).unwrap();
    assert!(rows.iter().all(|r| r.profile == "mine.csv"));
    assert_eq!(
        run(&load(), &out, &opts(1, None), &|_, _| {})
            .unwrap()
            .reused,
        2
    );
    std::fs::write(&profile, text.replacen("30.5596", "31.5596", 1)).unwrap();
    let e = run(&load(), &out, &opts(1, None), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("cost.profile: \"mine.csv (fnv1a64 "), "{e}");
}

#[test]
fn results_without_digests_are_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("results.csv"),
        "index,key,scenario,policy\n0,a|b,s,rssp\n",
    )
    .unwrap();
    let e = run(&grid(), dir.path(), &opts(1, None), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no column `digest`") && e.contains("--rerun"),
        "{e}"
    );
}

#[test]
fn merge_refuses_incomplete_overlapping_or_mixed_shards() {
    let g = grid();
    let dir = tempfile::tempdir().unwrap();
    run(&g, dir.path(), &opts(2, Some((0, 2))), &|_, _| {}).unwrap();
    let e = merge(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("1 of 2 shards present; missing results.shard-1-of-2.csv"),
        "{e}"
    );
    for i in [1, 2] {
        run(&g, dir.path(), &opts(2, Some((i, 3))), &|_, _| {}).unwrap();
    }
    let e = merge(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("of 2: results.shard-0-of-2.csv; of 3: results.shard-1-of-3.csv, results.shard-2-of-3.csv"),
        "{e}"
    );
    // Two shards of different scenarios.
    let other = tempfile::tempdir().unwrap();
    run(&g, other.path(), &opts(2, Some((0, 2))), &|_, _| {}).unwrap();
    let changed = grid_of(&format!("{SCENARIO}[overheads]\ntext_encoder_ms = 9.0\n"));
    run(&changed, other.path(), &opts(2, Some((1, 2))), &|_, _| {}).unwrap();
    let e = merge(other.path()).unwrap_err().to_string();
    assert!(
        e.contains("results.shard-1-of-2.csv were made from different scenarios")
            && e.contains("overheads.text_encoder_ms:"),
        "{e}"
    );
    // A shard whose run did not finish.
    let third = tempfile::tempdir().unwrap();
    for i in 0..2 {
        run(&g, third.path(), &opts(2, Some((i, 2))), &|_, _| {}).unwrap();
    }
    std::fs::write(third.path().join("results.shard-1-of-2.partial.csv"), "").unwrap();
    let e = merge(third.path()).unwrap_err().to_string();
    assert!(e.contains("shard 1/2 did not finish"), "{e}");
    std::fs::remove_file(third.path().join("results.shard-1-of-2.partial.csv")).unwrap();
    // A shard file with a row missing.
    let p = third.path().join("results.shard-1-of-2.csv");
    let rows: Vec<ResultRow> = results::read(&p, results::Resolutions::Required).unwrap();
    results::write_results(&p, &rows[..rows.len() - 1]).unwrap();
    let e = merge(third.path()).unwrap_err().to_string();
    assert!(
        e.contains("holds 3 row(s), but shard 1/2 of a 8-point grid has 4"),
        "{e}"
    );
}

#[test]
fn new_dimensions_expand_and_are_columns() {
    let g = grid_of(
        "[workload]\nrequests = 20\narrival = \"gamma\"\ncv = 1.0\n[sweep]\npolicies = [\"rssp\"]\ngpus = [4, 16]\nsteps = [20]\ncvs = [1.0, 3.0]\nprofiles = [\"h100-flux1-dev\"]\n",
    );
    assert_eq!(g.points.len(), 4);
    let dir = tempfile::tempdir().unwrap();
    let r = run(&g, dir.path(), &opts(2, None), &|_, _| {}).unwrap();
    let rows = read_results(&r.results).unwrap();
    let coords: Vec<(u32, u32, u32, Option<f64>, u32)> = rows
        .iter()
        .map(|r| (r.gpus, r.nodes, r.gpus_per_node, r.cv, r.steps))
        .collect();
    assert_eq!(
        coords,
        vec![
            (4, 1, 4, Some(1.0), 20),
            (4, 1, 4, Some(3.0), 20),
            (16, 2, 8, Some(1.0), 20),
            (16, 2, 8, Some(3.0), 20),
        ]
    );
    let digests: std::collections::BTreeSet<&str> =
        g.points.iter().map(|p| p.digest.as_str()).collect();
    assert_eq!(digests.len(), 4);
    let refused = |text: &str| {
        let raw = RawScenario::parse(text, "g.toml", Path::new("."))
            .unwrap()
            .or(RawScenario::default_scenario());
        Grid::new(raw, "g.toml").err().unwrap().to_string()
    };
    let e = refused("[sweep]\ncvs = [2.0]\n");
    assert!(
        e.contains("field `sweep.cvs`") && e.contains("arrival = \"gamma\""),
        "{e}"
    );
    let e = refused("[sweep]\ngpus = [12]\n");
    assert!(e.contains("field `sweep.gpus`: 12 GPUs"), "{e}");
    let e = refused("[sweep]\nsteps = [10, 10]\n");
    assert!(
        e.contains("field `sweep.steps`: lists 10 more than once"),
        "{e}"
    );
    let e = refused("[sweep]\nprofiles = []\n");
    assert!(e.contains("field `sweep.profiles`: is empty"), "{e}");
    let e = refused("[sweep]\npolicies = [\"xdit-sp8\"]\ngpus = [8, 4]\n");
    assert!(
        e.contains("xdit-sp8 needs 8 GPUs in one node, but nodes have 4 (grid point policy=xdit-sp8, gpus=4)"),
        "{e}"
    );
    let e = refused("[sweep]\nprofiles = [\"nope\"]\n");
    assert!(
        e.contains("`nope` is neither a built-in profile") && e.contains("grid point"),
        "{e}"
    );
}

#[test]
fn results_plot_against_any_dimension_into_a_directory() {
    use tetriserve::sweep::plot::{Metric, Style, plot_results};
    let g = grid_of(
        "[workload]\nrequests = 20\n[sweep]\npolicies = [\"xdit-sp4\", \"rssp\"]\ngpus = [4, 8]\nseeds = [1, 2]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let r = run(&g, &dir.path().join("sweep"), &opts(2, None), &|_, _| {}).unwrap();
    let out = dir.path().join("charts");
    // GPUs on x: nodes and GPUs per node follow from it, so nothing is averaged.
    let files = plot_results(
        &r.results,
        "gpus",
        Metric::Attainment,
        &out,
        &Style::default(),
    )
    .unwrap();
    assert_eq!(
        files,
        vec![
            out.join("attainment-vs-gpus.png"),
            out.join("attainment-vs-gpus.svg")
        ]
    );
    let svg = read(&files[1]);
    assert!(
        svg.contains("SLO attainment (%)") && svg.contains("upper bound"),
        "percent axis, dashed bound"
    );
    // For a slide: no file path in the title, a human axis name, ticks at the measured GPU
    // counts only; a title, a target line and a caption when asked.
    assert!(
        !svg.contains(&*r.results.to_string_lossy()),
        "no path in the title"
    );
    let has = |svg: &str, text: &str| svg.lines().any(|l| l.trim() == text);
    assert!(has(&svg, "GPUs"), "human x axis name");
    assert!(has(&svg, "4") && has(&svg, "8") && !has(&svg, "5") && !has(&svg, "7"));
    let style = Style {
        title: Some("Attainment on 4 and 8 GPUs".into()),
        target: Some(95.0),
        caption: Some("Simulated; estimated H100 profile".into()),
    };
    let styled = dir.path().join("styled");
    let files = plot_results(&r.results, "gpus", Metric::Attainment, &styled, &style).unwrap();
    let svg = read(&files[1]);
    for text in [
        "Attainment on 4 and 8 GPUs",
        "target 95",
        "Simulated; estimated H100 profile",
    ] {
        assert!(svg.contains(text), "lacks `{text}`");
    }
    let files = plot_results(
        &r.results,
        "gpus",
        Metric::LatencyP99,
        &out,
        &Style::default(),
    )
    .unwrap();
    assert!(read(&files[1]).contains("latency p99 (s)"));
    assert!(
        out.join("attainment-vs-gpus.svg").exists(),
        "both charts kept"
    );
    // Against anything else, the GPU counts would be averaged: refused, naming them.
    let e = plot_results(
        &r.results,
        "steps",
        Metric::Attainment,
        &out,
        &Style::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("2 values of gpus (4, 8)") && e.contains("--x gpus"),
        "{e}"
    );
    // --out must be a directory.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let e = plot_results(
        &r.results,
        "gpus",
        Metric::Attainment,
        &file,
        &Style::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is not a directory"), "{e}");
    let e = plot_results(
        &r.results,
        "colour",
        Metric::Attainment,
        &out,
        &Style::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--x `colour`") && e.contains("rate_per_min"),
        "{e}"
    );
    assert!(Metric::parse("p99").is_err());
}

#[test]
fn a_categorical_dimension_plots_as_bars() {
    use tetriserve::sweep::plot::{Metric, Style, plot_results};
    let g = grid_of(
        "[workload]\nrequests = 20\n[sweep]\npolicies = [\"rssp\"]\nmixes = [\"uniform\", \"skewed\"]\nseeds = [1, 2]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let r = run(&g, &dir.path().join("sweep"), &opts(2, None), &|_, _| {}).unwrap();
    let files = plot_results(
        &r.results,
        "mix",
        Metric::GpuHours,
        &dir.path().join("c"),
        &Style::default(),
    )
    .unwrap();
    let svg = read(&files[1]);
    assert!(svg.contains("uniform") && svg.contains("skewed") && svg.contains("GPU-hours"));
    // A target cannot be drawn across bars: refused, not dropped.
    let style = Style {
        target: Some(95.0),
        ..Style::default()
    };
    let e = plot_results(
        &r.results,
        "mix",
        Metric::Attainment,
        &dir.path().join("c"),
        &style,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--target") && e.contains("bars"), "{e}");
}

/// The cost columns: each row's are its run's summary's (dollars on provisioned hours, energy
/// on busy ones), they plot with labelled axes, and a file older than them still plots what
/// it has, refuses to plot a cost, and is refused for reuse with a hint to rerun.
#[test]
fn cost_columns_match_the_runs_plot_and_old_files_are_handled() {
    use tetriserve::sweep::plot::{Metric, Style, plot_results};
    let g = grid_of(
        "[workload]\nrequests = 20\n[sweep]\npolicies = [\"xdit-sp4\", \"rssp\"]\nslo_scales = [1.0, 2.0]\nseeds = [1, 2]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = dir.path().join("sweep");
    let r = run(&g, &sweep_dir, &opts(2, None), &|_, _| {}).unwrap();
    let rows = read_results(&r.results).unwrap();
    let header = read(&r.results);
    assert!(
        header.lines().next().unwrap().ends_with(
            ",gpu_hours_busy,gpu_hours_provisioned,usd,usd_per_1k_met_images,energy_wh,wh_per_met_image"
        ),
        "{header}"
    );
    let six = |v: f64| format!("{v:.6}");
    for row in &rows {
        let o = Overrides {
            policies: vec![row.policy.clone()],
            slo_scale: Some(row.scale),
            seed: Some(row.seed),
            requests: Some(20),
            ..Overrides::default()
        };
        let s = simulate(&Scenario::load(None, &o).unwrap())
            .unwrap()
            .remove(0)
            .summary;
        assert_eq!(six(row.gpu_hours_busy), six(s.gpu_hours_busy), "{row:?}");
        assert_eq!(six(row.gpu_hours_provisioned), six(s.gpu_hours_provisioned));
        assert_eq!(six(row.usd), six(s.cost.usd.unwrap()));
        assert_eq!(six(row.energy_wh), six(s.cost.energy_wh.unwrap()));
        // The default H100 price, $3 per provisioned GPU-hour, per 1,000 met images.
        assert!(row.met > 0);
        let per_1k = 3.0 * s.gpu_hours_provisioned * 1000.0 / row.met as f64;
        assert!((row.usd_per_1k_met_images - per_1k).abs() < 1e-5, "{row:?}");
        assert!((row.wh_per_met_image - s.cost.wh_per_met_image.unwrap()).abs() < 1e-5);
    }
    let out = dir.path().join("charts");
    for (metric, label) in [
        ("usd_per_1k_met_images", "US dollars per 1,000 met images"),
        ("gpu_hours_provisioned", "provisioned GPU-hours"),
        ("gpu_hours_busy", "busy GPU-hours"),
        ("usd", "US dollars per run"),
        ("energy_wh", "energy per run (Wh)"),
        ("wh_per_met_image", "Wh per met image"),
    ] {
        let files = plot_results(
            &r.results,
            "slo_scale",
            Metric::parse(metric).unwrap(),
            &out,
            &Style::default(),
        )
        .unwrap();
        assert_eq!(files[1], out.join(format!("{metric}-vs-slo_scale.svg")));
        assert!(read(&files[1]).contains(label), "{metric}: axis `{label}`");
    }

    // The same file as an older tetriserve wrote it: without the six cost columns.
    let old_dir = dir.path().join("old");
    std::fs::create_dir(&old_dir).unwrap();
    let strip = |text: &str| -> String {
        text.lines()
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                format!("{}\n", cells[..cells.len() - 6].join(","))
            })
            .collect()
    };
    std::fs::write(old_dir.join("results.csv"), strip(&header)).unwrap();
    for name in ["results-by-resolution.csv", "results.manifest.json"] {
        std::fs::copy(sweep_dir.join(name), old_dir.join(name)).unwrap();
    }
    let old = read_results(&old_dir.join("results.csv")).unwrap();
    assert_eq!(old.len(), rows.len());
    assert!(
        old.iter()
            .all(|r| r.usd.is_nan() && r.gpu_hours_busy.is_nan())
    );
    assert_eq!(old[0].met, rows[0].met);
    plot_results(
        &old_dir.join("results.csv"),
        "slo_scale",
        Metric::Attainment,
        &out,
        &Style::default(),
    )
    .unwrap();
    let e = plot_results(
        &old_dir.join("results.csv"),
        "slo_scale",
        Metric::UsdPer1kMet,
        &out,
        &Style::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no `usd_per_1k_met_images`")
            && e.contains("older tetriserve")
            && e.contains("--rerun"),
        "{e}"
    );
    // Reusing its rows would leave them without cost: refused, pointing at --rerun.
    let e = run(&g, &old_dir, &opts(1, None), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no cost columns") && e.contains("--rerun"),
        "{e}"
    );
    let mut rerun = opts(1, None);
    rerun.rerun = true;
    let again = run(&g, &old_dir, &rerun, &|_, _| {}).unwrap();
    assert_eq!(
        read(&again.results),
        header,
        "a rerun writes what a fresh sweep does"
    );
}
