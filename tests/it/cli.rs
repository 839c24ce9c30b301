//! The binary end to end: the default run, bad input, output directories, determinism.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary, run from the repository root.
pub(crate) fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tetriserve"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Runs the binary with `args` to completion.
pub(crate) fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs the binary")
}

/// A run's standard error.
pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn data(name: &str) -> String {
    format!("tests/data/{name}")
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(rel).display()))
}

#[test]
fn default_run_compares_every_policy() {
    let o = run(&["simulate", "--scenario", &data("small.toml")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for p in [
        "xdit-sp1",
        "xdit-sp2",
        "xdit-sp4",
        "xdit-sp8",
        "rssp",
        "tetriserve",
        "tetriserve-shed",
        "stepwise",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{p} "))),
            "no row for {p} in\n{out}"
        );
    }
    // The line naming the policy that met the most is the first row with the most met.
    let met = |l: &str| -> Option<(String, u64)> {
        let mut f = l.split_whitespace();
        let name = f.next()?.to_string();
        let (m, _) = f.nth(1)?.split_once('/')?;
        Some((name, m.parse().ok()?))
    };
    let rows: Vec<_> = out.lines().filter_map(met).collect();
    let most = rows.iter().map(|r| r.1).max().unwrap();
    let first = rows.iter().find(|r| r.1 == most).unwrap();
    assert!(
        out.contains(&format!("most met: {} ({most}/", first.0)),
        "{out}"
    );
    // `paper` is what the paper compares: the baselines and tetriserve, nothing beyond.
    let o = run(&["simulate", "--scenario", &data("small.toml"), "-p", "paper"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<_> = stdout(&o).lines().filter_map(met).map(|r| r.0).collect();
    assert_eq!(
        rows,
        [
            "xdit-sp1",
            "xdit-sp2",
            "xdit-sp4",
            "xdit-sp8",
            "rssp",
            "tetriserve"
        ]
    );
}

#[test]
fn one_policy_with_overrides() {
    let o = run(&[
        "simulate",
        "--policy",
        "rssp",
        "--requests",
        "20",
        "--rate",
        "6",
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[1].starts_with("rssp,20,"), "{out}");
}

#[test]
fn unknown_policy_suggests_a_name() {
    let o = run(&["simulate", "--policy", "xdit-sp3"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("unknown policy `xdit-sp3`") && e.contains("did you mean"),
        "{e}"
    );
}

#[test]
fn malformed_trace_row_names_file_line_and_field() {
    let o = run(&["simulate", "--trace", &data("bad-arrival.csv")]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("bad-arrival.csv:3") && e.contains("arrival_s"),
        "{e}"
    );
}

#[test]
fn a_resolution_the_profile_cannot_cover_is_refused_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run(&[
        "simulate",
        "--trace",
        &data("unknown-resolution.csv"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("request id 7") && e.contains("4096x4096"), "{e}");
    assert!(!out.exists(), "no output directory after a failed run");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temporary left behind"
    );
}

#[test]
fn scenario_typos_and_impossible_clusters_are_explained() {
    let o = run(&["simulate", "--scenario", &data("typo.toml")]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("typo.toml:2") && e.contains("did you mean `rate_per_min`"),
        "{e}"
    );

    let o = run(&["simulate", "--scenario", &data("sp8-on-4.toml")]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("xdit-sp8 needs 8 GPUs in one node, but nodes have 4"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn output_directory_is_complete_and_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = [
        "simulate",
        "--scenario",
        &data("small.toml"),
        "--policy",
        "xdit-sp2",
        "--policy",
        "rssp",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "comparison.csv",
        "xdit-sp2/requests.csv",
        "xdit-sp2/summary.json",
        "xdit-sp2/timeline.json",
        "rssp/summary.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&read(&out, "rssp/summary.json")).unwrap();
    assert_eq!(summary["requests"], 60);
    assert!(summary["per_resolution"]["2048x2048"]["slo_attainment"].is_number());
    let timeline: serde_json::Value =
        serde_json::from_str(&read(&out, "rssp/timeline.json")).unwrap();
    assert!(timeline["traceEvents"].as_array().unwrap().len() > 60);

    let again = run(&args);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let mut forced: Vec<&str> = args.to_vec();
    forced.push("--force");
    assert!(run(&forced).status.success());
}

/// Drops the wall-clock `scheduler` object, the only part allowed to differ between runs.
fn deterministic_summary(text: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    v.as_object_mut().unwrap().remove("scheduler");
    v
}

#[test]
fn same_seed_gives_byte_identical_records() {
    let dir = tempfile::tempdir().unwrap();
    let outs: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("r{i}"))).collect();
    for out in &outs {
        let o = run(&[
            "simulate",
            "--scenario",
            &data("small.toml"),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for p in ["xdit-sp1", "xdit-sp4", "rssp", "tetriserve"] {
        for f in ["requests.csv", "works.csv", "timeline.json"] {
            let rel = format!("{p}/{f}");
            assert!(
                read(&outs[0], &rel) == read(&outs[1], &rel),
                "{rel} differs between identical runs"
            );
        }
        let rel = format!("{p}/summary.json");
        assert_eq!(
            deterministic_summary(&read(&outs[0], &rel)),
            deterministic_summary(&read(&outs[1], &rel))
        );
    }
    assert_eq!(
        read(&outs[0], "comparison.csv"),
        read(&outs[1], "comparison.csv")
    );

    // Every policy saw the same arrivals, resolutions and deadlines.
    let key = |p: &str| -> Vec<String> {
        read(&outs[0], &format!("{p}/requests.csv"))
            .lines()
            .map(|l| l.split(',').take(7).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(key("xdit-sp1"), key("rssp"));
    assert_eq!(key("xdit-sp8"), key("xdit-sp2"));
}

#[test]
fn a_generated_trace_replays_to_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.csv");
    let o = run(&[
        "trace",
        "generate",
        "--scenario",
        &data("small.toml"),
        "-o",
        trace.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let synthetic = run(&[
        "simulate",
        "--scenario",
        &data("small.toml"),
        "--format",
        "csv",
    ]);
    let replayed = run(&[
        "simulate",
        "--scenario",
        &data("small.toml"),
        "--trace",
        trace.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    assert_eq!(stdout(&synthetic), stdout(&replayed));
}

#[test]
fn real_mode_without_a_gpu_is_a_clean_error() {
    // No device visible: on a machine without the driver the libraries are missing; on one
    // with it, the driver starts with no device. Either way the same clean error, so the test
    // checks something on every machine.
    for args in [
        vec!["simulate", "--real"],
        vec!["gpu-check"],
        vec!["profile"],
        vec!["validate", "--requests", "4"],
    ] {
        let o = bin()
            .args(&args)
            .env("CUDA_VISIBLE_DEVICES", "")
            .output()
            .expect("runs the binary");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("no CUDA device") && !e.contains("panicked"),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn work_rows_merge_stepwise_by_default_and_change_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let (merged, each) = (dir.path().join("merged"), dir.path().join("each"));
    // One-step grants: one work per step, which rows merge.
    let one_step = dir.path().join("one-step.toml");
    std::fs::write(&one_step, "[policy.stepwise]\ngrants = \"one-step\"\n").unwrap();
    let sim = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "simulate",
            "-s",
            one_step.to_str().unwrap(),
            "-p",
            "stepwise",
            "-p",
            "tetriserve",
            "--requests",
            "60",
            "--gpus",
            "16",
            "--rate",
            "40",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    sim(&merged, &[]);
    sim(&each, &["--work-rows", "each"]);
    let summary = |dir: &Path, p: &str| -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_str(&read(&dir.join(p), "summary.json")).unwrap();
        v.as_object_mut().unwrap().remove("scheduler");
        v
    };
    let column = |text: &str, name: &str| -> Vec<u64> {
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next().unwrap().split(',').collect();
        let i = head.iter().position(|c| *c == name).unwrap();
        lines
            .map(|l| l.split(',').nth(i).unwrap().parse().unwrap())
            .collect()
    };
    for p in ["stepwise", "tetriserve"] {
        assert_eq!(
            read(&merged.join(p), "requests.csv"),
            read(&each.join(p), "requests.csv")
        );
        let s = summary(&merged, p);
        assert_eq!(s, summary(&each, p));
        let works = s["works"].as_u64().unwrap();
        let (m, e) = (
            read(&merged.join(p), "works.csv"),
            read(&each.join(p), "works.csv"),
        );
        // One row per work with `each`; merged rows hold them all, with the same steps.
        assert_eq!(column(&e, "works"), vec![1; works as usize]);
        assert_eq!(column(&m, "works").iter().sum::<u64>(), works);
        assert_eq!(
            column(&m, "steps").iter().sum::<u64>(),
            column(&e, "steps").iter().sum::<u64>()
        );
        if p == "stepwise" {
            assert!(column(&m, "works").len() * 3 < works as usize, "{p} merges");
        }
    }
    // plot --run reads merged rows.
    let charts = dir.path().join("charts");
    let o = run(&[
        "plot",
        "--run",
        merged.join("stepwise").to_str().unwrap(),
        "--out",
        charts.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(charts.join("timeline-stepwise.svg").exists());
}

#[test]
fn plots_from_a_run_directory_and_from_sweep_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run(&[
        "simulate",
        "--scenario",
        &data("small.toml"),
        "-p",
        "rssp",
        "-p",
        "tetriserve",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        read(&out, "tetriserve/works.csv").lines().count() > 60,
        "a work row per dispatch"
    );
    let base = dir.path().join("charts/run");
    let (a, b) = (out.join("rssp"), out.join("tetriserve"));
    let o = run(&[
        "plot",
        "--run",
        a.to_str().unwrap(),
        "--run",
        b.to_str().unwrap(),
        "--out",
        base.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // --out is a directory, created, holding one file per chart named after what it shows.
    for f in [
        "latency-cdf.png",
        "slo-over-time.svg",
        "degree-over-time.png",
        "timeline-tetriserve.png",
    ] {
        let p = base.join(f);
        assert!(
            p.metadata().map(|m| m.len() > 1000).unwrap_or(false),
            "missing or empty {f}"
        );
    }
    let svg = std::fs::read_to_string(base.join("timeline-rssp.svg")).unwrap();
    assert!(svg.contains("rssp GPU timeline"));

    let sweep = dir.path().join("sweep");
    std::fs::write(dir.path().join("s.toml"), "[workload]\nrequests = 30\n[sweep]\npolicies = [\"xdit-sp8\", \"tetriserve\"]\nslo_scales = [1.0, 1.5]\nseeds = [1, 2]\n").unwrap();
    let o = run(&[
        "sweep",
        "-s",
        dir.path().join("s.toml").to_str().unwrap(),
        "--out",
        sweep.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let chart = dir.path().join("sweep-chart");
    let o = run(&[
        "plot",
        sweep.join("results.csv").to_str().unwrap(),
        "--x",
        "slo_scale",
        "--out",
        chart.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // --out is a directory; the chart is named after what it shows.
    let svg = std::fs::read_to_string(chart.join("attainment-vs-slo_scale.svg")).unwrap();
    assert!(svg.contains("tetriserve") && svg.contains("xdit-sp8"));
    assert!(chart.join("attainment-vs-slo_scale.png").exists());

    // Each mode's flags act only in that mode, and nothing is clamped silently.
    let results = sweep.join("results.csv");
    let (a, results) = (a.to_str().unwrap(), results.to_str().unwrap());
    let o_dir = chart.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["plot", results, "--window", "30", "--out", o_dir],
            "--window",
        ),
        (
            vec!["plot", results, "--horizon", "30", "--out", o_dir],
            "--horizon",
        ),
        (
            vec!["plot", "--run", a, "--x", "rate_per_min", "--out", o_dir],
            "--x",
        ),
        (
            vec!["plot", "--run", a, "--y", "latency_p99", "--out", o_dir],
            "--y",
        ),
        (vec!["plot", results, "--run", a, "--out", o_dir], "--run"),
        (
            vec!["plot", "--run", a, "--window", "0", "--out", o_dir],
            "--window 0",
        ),
        (
            vec!["plot", "--run", a, "--horizon=-5", "--out", o_dir],
            "--horizon -5",
        ),
        (
            vec!["plot", results, "--from", "30", "--out", o_dir],
            "--from",
        ),
        (
            vec!["plot", "--run", a, "--from=-1", "--out", o_dir],
            "--from -1",
        ),
        (
            vec!["plot", "--run", a, "--target", "95", "--out", o_dir],
            "--target",
        ),
        (
            vec!["plot", results, "--target", "NaN", "--out", o_dir],
            "--target NaN",
        ),
    ] {
        let o = run(&args);
        // 1 for a refusal of ours, 2 for clap's usage errors (flags that conflict).
        assert!(
            matches!(o.status.code(), Some(1 | 2)),
            "{args:?}: {:?}",
            o.status
        );
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn imported_traces_replay_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // vLLM-Omni: every field comes from the file; the 24 requests replay.
    let out = dir.path().join("dit.csv");
    let o = run(&[
        "trace",
        "import",
        "traces/samples/vllm-omni-dit.jsonl",
        "--format",
        "vllm-omni",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(csv.lines().count(), 1 + 24);
    assert!(
        csv.lines().nth(1).unwrap().starts_with("0,0.000000000,"),
        "{csv}"
    );
    let o = run(&[
        "simulate",
        "--trace",
        out.to_str().unwrap(),
        "-p",
        "tetriserve",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("/24"), "{}", stdout(&o));
    // Alibaba GenAI: time scaled by 4, so the last arrival is a quarter of the unscaled one.
    let last = |scale: &str| -> f64 {
        let o = run(&[
            "trace",
            "import",
            "traces/samples/alibaba-genai.csv",
            "--format",
            "alibaba-genai",
            "--time-scale",
            scale,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        let row = text.lines().last().unwrap().to_string();
        row.split(',').nth(1).unwrap().parse().unwrap()
    };
    let (one, four) = (last("1"), last("4"));
    assert!(one > 0.0 && (one / four - 4.0).abs() < 1e-6, "{one} {four}");
    // A file in the wrong format: the error names it and the line; nothing is written.
    let bad = dir.path().join("bad.csv");
    let o = run(&[
        "trace",
        "import",
        "traces/tiny.csv",
        "--format",
        "vllm-omni",
        "-o",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("traces/tiny.csv:1"), "{}", stderr(&o));
    assert!(!bad.exists());
}

#[test]
fn a_sweep_of_two_policies_is_compared_paired_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("g.toml");
    std::fs::write(
        &grid,
        "[workload]\nrequests = 60\nrate_per_min = 30.0\n[sweep]\npolicies = [\"tetriserve\", \"tetriserve-shed\"]\nslo_scales = [1.0, 1.5]\nseeds = [1, 2, 3]\n",
    )
    .unwrap();
    let out = dir.path().join("runs");
    let o = run(&[
        "sweep",
        "-s",
        grid.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = out.join("results.csv");
    let csv = dir.path().join("cmp.csv");
    let o = run(&[
        "compare",
        results.to_str().unwrap(),
        "--baseline",
        "tetriserve",
        "--policy",
        "tetriserve-shed",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("All 2 points, SLO attainment"), "{text}");
    assert!(text.contains("over 3 seeds"), "{text}");
    assert_eq!(read(dir.path(), "cmp.csv").lines().count(), 3);
    let o = run(&[
        "compare",
        results.to_str().unwrap(),
        "--baseline",
        "rssp",
        "--policy",
        "tetriserve-shed",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no results for policy `rssp`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn validate_compares_two_runs_of_the_same_trace_request_by_request() {
    let dir = tempfile::tempdir().unwrap();
    let sim = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "simulate",
            "--scenario",
            "tests/data/small.toml",
            "-p",
            "tetriserve",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        out.join("tetriserve").display().to_string()
    };
    let (a, b) = (sim("a", &[]), sim("b", &[]));
    let out = dir.path().join("v");
    let o = run(&[
        "validate",
        "--compare",
        &a,
        &b,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("mean 0.0%") && text.contains("same met/missed verdict for 100.0%"),
        "{text}"
    );
    assert!(
        text.contains("Targets (mean error < 5%, same verdict >= 95%): met"),
        "{text}"
    );
    assert!(read(&out, "validation.md").contains("| SLO attainment |"));
    assert!(read(&out, "validation-requests.csv").starts_with("id,resolution,"));
    // Deadlines a third as long: most verdicts flip, so the runs do not validate.
    let c = sim("c", &["--slo-scale", "0.3"]);
    let o = run(&["validate", "--compare", &a, &c]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("): NOT met"), "{}", stdout(&o));
    // Another workload is not a validation.
    let d = sim("d", &["--seed", "99"]);
    let o = run(&["validate", "--compare", &a, &d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not of the same requests"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_real_cpu_run_executes_tetriserve_degree_changes() {
    // The whole real path without a GPU: scheduler -> real executor -> rank threads ->
    // all-to-alls -> latents -> records, with a degree change that holds by construction,
    // whatever the machine's speed. Request 0 arrives at an idle 2-slot node: its round runs
    // at SP1 scaled up to both slots. Request 1 arrives 1 us later, while that work (several
    // steps of milliseconds) runs. The deadlines are relative to the measured node (the CPU
    // default): 3x each request's lone time at SP1, so both can make it at SP1 side by side
    // from the next round on, which the packing prefers: request 0 drops to one slot.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("two.csv");
    std::fs::write(
        &trace,
        "id,arrival_s,width,height,steps\n0,0,512,512,20\n1,0.000001,512,512,20\n",
    )
    .unwrap();
    let out = dir.path().join("real");
    let o = run(&[
        "simulate",
        "--real",
        "--device",
        "cpu",
        "--model",
        "small",
        "--gpus",
        "2",
        "-p",
        "tetriserve",
        "--trace",
        trace.to_str().unwrap(),
        "--slo-scale",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let works = read(&out, "tetriserve/works.csv");
    let mut header = works.lines().next().unwrap().split(',');
    let gpus_col = header.position(|c| c == "gpus").unwrap();
    let mut degrees: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for line in works.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let k = f[gpus_col].split(';').count();
        degrees.entry(f[0].to_string()).or_default().push(k);
    }
    assert_eq!(degrees["0"].first(), Some(&2), "{degrees:?}");
    assert!(degrees["0"].contains(&1), "request 0 shrinks: {degrees:?}");
    let summary = read(&out, "tetriserve/summary.json");
    assert!(
        summary.contains("\"executor\": \"CPU: 2 rank thread(s) on "),
        "{summary}"
    );
    // The measured profile the run planned with is kept with it.
    assert!(read(&out, "profile.csv").contains(",cpu,512,512,2,1,"));
    assert!(!stderr(&o).contains("(nvswitch)"), "{}", stderr(&o));
}

#[test]
fn on_the_cpu_deadlines_are_relative_to_the_measured_node() {
    // Each request's SLO is --slo-scale x its lone time at SP1 on the measured profile
    // (steps x step time + per-work overhead), not the H100 bases in seconds.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("real");
    let o = run(&[
        "simulate",
        "--real",
        "--device",
        "cpu",
        "--gpus",
        "1",
        "-p",
        "xdit-sp1",
        "--requests",
        "3",
        "--mix",
        "custom:256=1,512=1",
        "--steps",
        "4",
        "--slo-scale",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("SLOs relative to the measured node"), "{e}");
    let profile = read(&out, "profile.csv");
    let overhead_ms: f64 = profile
        .split("per-work overhead median ")
        .nth(1)
        .and_then(|t| t.split(" ms").next())
        .and_then(|t| t.parse().ok())
        .expect("the profile's comment names the overhead");
    let step_ms = |px: &str| -> f64 {
        let row = profile
            .lines()
            .find(|l| l.contains(&format!(",cpu,{px},{px},1,1,")))
            .unwrap();
        row.split(',').nth(6).unwrap().parse().unwrap()
    };
    let requests = read(&out, "xdit-sp1/requests.csv");
    let mut header = requests.lines().next().unwrap().split(',');
    let col = |h: &mut std::str::Split<'_, char>, name: &str| h.position(|c| c == name).unwrap();
    let arrival = col(&mut header.clone(), "arrival_s");
    let deadline = col(&mut header.clone(), "deadline_s");
    let width = col(&mut header, "width");
    let mut seen = 0;
    for line in requests.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let slo_ms =
            (f[deadline].parse::<f64>().unwrap() - f[arrival].parse::<f64>().unwrap()) * 1e3;
        let want = 2.0 * (4.0 * step_ms(f[width]) + overhead_ms);
        // The profile and the requests file round to 4 and 9 decimals.
        assert!(
            (slo_ms - want).abs() <= 1e-3 * want + 0.01,
            "{line}: SLO {slo_ms} ms, want {want} ms"
        );
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn validate_on_the_cpu_backend_compares_a_real_run_with_its_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("validate");
    let o = run(&[
        "validate",
        "--device",
        "cpu",
        "--model",
        "small",
        "--gpus",
        "4",
        "--requests",
        "10",
        "--rate",
        "240",
        "--steps",
        "8",
        "--mix",
        "custom:512=1,1024=1,2048=1",
        "--repeats",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("Latency error over the"), "{text}");
    assert!(text.contains("Targets (mean error < 5%"), "{text}");
    assert!(text.contains("## Noise floor"), "{text}");
    assert!(text.contains("## The error split by cause"), "{text}");
    assert!(text.contains("reproduce its records exactly"), "{text}");
    // The printed verdict line, for the CI log.
    let line = stderr(&o)
        .lines()
        .find(|l| l.starts_with("validate:"))
        .unwrap_or_default()
        .to_string();
    println!("{line}");
    assert!(line.contains("mean latency error"), "{}", stderr(&o));
    for f in [
        "profile.csv",
        "real/works.csv",
        "real-2/works.csv",
        "sim/works.csv",
        "replay-measured/works.csv",
        "validation.md",
        "split.md",
        "split.csv",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
}

#[test]
fn real_flags_are_refused_where_they_cannot_act() {
    for (args, needle) in [
        (vec!["simulate", "--device", "cpu"], "add --real"),
        (vec!["simulate", "--repeats", "2"], "add --real"),
        (
            vec![
                "simulate",
                "--real",
                "--device",
                "cpu",
                "--profile",
                "h100-flux1-dev",
                "--repeats",
                "2",
            ],
            "nothing is measured",
        ),
        (
            vec!["validate", "--device", "cpu", "--profile", "h100-flux1-dev"],
            "--profile is for --compare",
        ),
        (
            vec!["simulate", "--real", "--device", "cpu", "--nodes", "2"],
            "one node",
        ),
        (vec!["simulate", "--slo-from", "node"], "add --real"),
        (
            vec![
                "simulate",
                "--real",
                "--device",
                "cpu",
                "--slo-from",
                "node",
                "--slo-base",
                "512=1",
            ],
            "drop --slo-base",
        ),
        (
            vec![
                "simulate",
                "--real",
                "--device",
                "cpu",
                "--profile",
                "h100-flux1-dev",
                "--slo-from",
                "node",
            ],
            "nothing is measured",
        ),
        (
            vec!["validate", "--device", "cpu", "--runs", "0"],
            "1 to 20",
        ),
        (
            vec!["validate", "--compare", "a", "b", "--runs", "3"],
            "--compare runs nothing",
        ),
        (
            vec![
                "simulate", "--real", "--device", "cpu", "--model", "tiny", "--gpus", "8",
            ],
            "4 heads",
        ),
        (
            vec!["simulate", "--real", "--device", "cpu", "--model", "huge"],
            "unknown model",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains(needle) && !e.contains("panicked"),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn output_flags_without_their_output_are_refused_and_timeline_cuts_are_reported() {
    for (args, needle) in [
        (vec!["simulate", "--force"], "no --out"),
        (vec!["simulate", "--no-timeline"], "no --out"),
        (vec!["simulate", "--timeline-works", "10"], "no --out"),
        (
            vec!["simulate", "--work-rows", "each"],
            "--work-rows applies",
        ),
        (
            vec!["simulate", "-o", "x", "--work-rows", "some"],
            "merged, each",
        ),
        (
            vec![
                "simulate",
                "-o",
                "x",
                "--no-timeline",
                "--timeline-works",
                "all",
            ],
            "drop one",
        ),
        (
            vec!["simulate", "-o", "x", "--timeline-works", "0"],
            "positive number of rows",
        ),
    ] {
        let o = run(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains(needle) && !e.contains("panicked"),
            "{args:?}: {e}"
        );
    }
    assert!(!Path::new("x").exists());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cut");
    let o = run(&[
        "simulate",
        "-p",
        "xdit-sp1",
        "--requests",
        "30",
        "--timeline-works",
        "7",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "xdit-sp1: timeline.json shows the first 7 of 30 rows of works.csv, 7 of 30 works"
        ),
        "{}",
        stderr(&o)
    );
    let t: serde_json::Value =
        serde_json::from_str(&read(&out.join("xdit-sp1"), "timeline.json")).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    assert_eq!(events.iter().filter(|e| e["ph"] == "X").count(), 7);
}

#[test]
fn step_times_that_carry_a_run_past_the_horizon_are_an_error_for_every_policy() {
    // The shipped profile x 1e9: a 28-step 1024 px request takes ~2.5e10 s, past the 2^62 ns
    // horizon. Times used to saturate at u64::MAX and report nonsense as success.
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/h100-flux1-dev.csv"),
    )
    .unwrap();
    let scaled: String = shipped
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(str::to_string).collect();
            if l.starts_with("flux1-dev,") {
                f[6] = format!("{}", f[6].parse::<f64>().unwrap() * 1e9);
            }
            f.join(",") + "\n"
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.csv");
    std::fs::write(&p, scaled).unwrap();
    for policy in [
        "xdit-sp1",
        "xdit-sp8",
        "rssp",
        "tetriserve",
        "tetriserve-shed",
    ] {
        let o = run(&[
            "simulate",
            "--profile",
            p.to_str().unwrap(),
            "-p",
            policy,
            "--requests",
            "20",
        ]);
        assert_eq!(o.status.code(), Some(1), "{policy}: {}", stdout(&o));
        let e = stderr(&o);
        assert!(
            e.contains("horizon") && !e.contains("panicked"),
            "{policy}: {e}"
        );
    }
}

#[test]
fn results_outside_their_domain_and_hidden_grid_dimensions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = dir.path().join("sweep");
    // Two rates: a chart against the SLO scale would average them.
    std::fs::write(
        dir.path().join("s.toml"),
        "[workload]\nrequests = 20\n[sweep]\npolicies = [\"xdit-sp8\", \"tetriserve\"]\nrates_per_min = [6.0, 12.0]\nslo_scales = [1.0, 1.5]\nseeds = [1, 2]\n",
    )
    .unwrap();
    let o = run(&[
        "sweep",
        "-s",
        dir.path().join("s.toml").to_str().unwrap(),
        "--out",
        sweep.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = sweep.join("results.csv");
    let chart = dir.path().join("chart");
    let plot = |file: &Path, x: &str| {
        run(&[
            "plot",
            file.to_str().unwrap(),
            "--x",
            x,
            "--out",
            chart.to_str().unwrap(),
        ])
    };
    let o = plot(&results, "slo_scale");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("2 values of rate_per_min"),
        "{}",
        stderr(&o)
    );
    // Values outside [0, 1], NaN or header-only: refused by plot and compare.
    let text = std::fs::read_to_string(&results).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "slo_attainment").unwrap();
    for bad in ["NaN", "inf", "-5", "1e300"] {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut f: Vec<String> = lines[1].split(',').map(str::to_string).collect();
        f[col] = bad.to_string();
        lines[1] = f.join(",");
        let broken = dir.path().join("broken.csv");
        std::fs::write(&broken, lines.join("\n") + "\n").unwrap();
        let o = plot(&broken, "rate_per_min");
        assert_eq!(o.status.code(), Some(1), "plot {bad}");
        assert!(
            stderr(&o).contains("slo_attainment"),
            "plot {bad}: {}",
            stderr(&o)
        );
        let o = run(&[
            "compare",
            broken.to_str().unwrap(),
            "--baseline",
            "xdit-sp8",
            "--policy",
            "tetriserve",
        ]);
        assert_eq!(o.status.code(), Some(1), "compare {bad}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("slo_attainment"),
            "compare {bad}: {}",
            stderr(&o)
        );
    }
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, text.lines().next().unwrap().to_string() + "\n").unwrap();
    assert_eq!(plot(&empty, "rate_per_min").status.code(), Some(1));
}

#[test]
fn grids_with_repeated_or_no_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, needle) in [
        (
            "[sweep]\nseeds = [1, 1]\n",
            "field `sweep.seeds`: lists 1 more than once",
        ),
        (
            "[sweep]\npolicies = []\n",
            "field `sweep.policies`: lists no policy",
        ),
        (
            "[sweep]\nslo_scales = []\n",
            "field `sweep.slo_scales`: is empty",
        ),
    ] {
        let s = dir.path().join("s.toml");
        std::fs::write(&s, toml).unwrap();
        let out = dir.path().join("out");
        let o = run(&[
            "sweep",
            "-s",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{toml}");
        assert!(stderr(&o).contains(needle), "{toml}: {}", stderr(&o));
        assert!(!out.join("results.csv").exists());
    }
    let o = run(&["goodput", "--policy", "rssp", "--seeds", "1,1,1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("more than once"), "{}", stderr(&o));
}

#[test]
fn sweep_threads_are_bounded_and_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    for jobs in ["0", "100000000"] {
        let o = run(&[
            "sweep",
            "-s",
            &data("small.toml"),
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            jobs,
        ]);
        assert_eq!(o.status.code(), Some(1), "--jobs {jobs}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("--jobs {jobs}: expected 1 to 1024")),
            "{}",
            stderr(&o)
        );
        assert!(!out.exists(), "--jobs {jobs} left {}", out.display());
    }
}

/// The robustness search end to end on a few configurations: every configuration gets a row,
/// and a listed worst configuration replays with `simulate` to the attainments the search
/// reported (the mean over its seeds).
#[test]
fn the_robustness_search_reports_replayable_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("robust");
    let o = run(&[
        "robustness",
        "--configs",
        "6",
        "--seeds",
        "1,2",
        "--requests",
        "40",
        "--worst",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("6 configurations x 2 seed(s)"),
        "{}",
        stdout(&o)
    );
    let csv = read(&out, "configs.csv");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 6, "{csv}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let worst: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("worst"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    assert_eq!(worst.len(), 2);
    let name = worst[0].file_name().unwrap().to_string_lossy().into_owned();
    let index = name.trim_end_matches(".toml").rsplit('-').next().unwrap();
    let row: Vec<&str> = rows
        .iter()
        .find(|r| r.split(',').next() == Some(index))
        .unwrap()
        .split(',')
        .collect();
    // Replayed: stepwise's mean attainment over seeds 1 and 2, in percent.
    let mut sum = 0.0;
    for seed in ["1", "2"] {
        let o = run(&[
            "simulate",
            "-s",
            worst[0].to_str().unwrap(),
            "--seed",
            seed,
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let step = v
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["policy"] == "stepwise")
            .unwrap();
        sum += step["slo_attainment"].as_f64().unwrap() * 100.0;
    }
    let reported: f64 = row[col("policy_attainment")].parse().unwrap();
    assert!(
        (sum / 2.0 - reported).abs() < 1e-3,
        "{} vs {reported}",
        sum / 2.0
    );
    // Bad flags are refused by name.
    let o = run(&["robustness", "--configs", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--configs 0"), "{}", stderr(&o));
    let o = run(&["robustness", "--seeds", "1,1", "--configs", "1"]);
    assert!(
        stderr(&o).contains("--seeds lists seed 1 more than once"),
        "{}",
        stderr(&o)
    );
}
