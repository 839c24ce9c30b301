//! Capacity planning: the rate search on a log's scale, the fewest-GPU search against brute
//! force, the cost columns by hand, and the machine-readable reports read back.
//!
//! Every case runs on a profile written here with round step times, so that when requests
//! start to queue, and what each run costs, can be worked out on paper.

use std::path::Path;
use std::process::Command;

use tetriserve::goodput::{Planner, Pool, SearchEnd, gpu_search, rate_search};
use tetriserve::scenario::{Overrides, RawScenario, Scenario};

/// 256 px steps: 250 ms at SP 1, 100 ms at SP 8 (batches cost proportionally more).
const PROFILE: &str = "model,gpu,width,height,sp_degree,batch,step_ms,std_ms,source,link
flux1-dev,h100,256,256,1,1,250,,test,nvlink
flux1-dev,h100,256,256,1,2,500,,test,nvlink
flux1-dev,h100,256,256,1,4,1000,,test,nvlink
flux1-dev,h100,256,256,2,1,200,,test,nvlink
flux1-dev,h100,256,256,2,2,400,,test,nvlink
flux1-dev,h100,256,256,2,4,800,,test,nvlink
flux1-dev,h100,256,256,4,1,150,,test,nvlink
flux1-dev,h100,256,256,4,2,300,,test,nvlink
flux1-dev,h100,256,256,4,4,600,,test,nvlink
flux1-dev,h100,256,256,8,1,100,,test,nvlink
flux1-dev,h100,256,256,8,2,200,,test,nvlink
flux1-dev,h100,256,256,8,4,400,,test,nvlink
";

/// A log of `n` 256 px requests of 10 steps, one every `gap_s` seconds from 0, each with an
/// SLO of `slo_s`.
fn constant_log(n: usize, gap_s: u32, slo_s: f64) -> String {
    let mut s = String::from("id,arrival_s,width,height,steps,slo_s\n");
    for i in 0..n {
        s.push_str(&format!("{i},{},256,256,10,{slo_s}\n", i as u32 * gap_s));
    }
    s
}

/// Writes the profile, a log and a scenario (`cluster` is the body of its `[cluster]` table)
/// into `dir`; returns the scenario's path.
fn setup(dir: &Path, cluster: &str, log: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("profile.csv"), PROFILE).unwrap();
    std::fs::write(dir.join("log.csv"), log).unwrap();
    let toml = format!(
        "name = \"capacity\"\n[cluster]\n{cluster}\n[cost]\nprofile = \"profile.csv\"\n[overheads]\nremap_fraction = 0.0\n[workload]\ntrace = \"log.csv\"\n"
    );
    let path = dir.join("s.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn planner(scenario: &Path, policy: &str) -> Planner {
    let raw = RawScenario::load(scenario)
        .unwrap()
        .or(RawScenario::default_scenario());
    Planner::new(raw, &scenario.display().to_string(), policy, vec![]).unwrap()
}

#[test]
fn the_rate_search_finds_the_scale_where_a_log_starts_to_queue() {
    // One SP-8 group serves each request in 10 x 100 ms = 1 s, and each SLO is exactly 1 s.
    // Requests every 2 s (30 req/min) never wait up to scale 2 (gaps of 1 s); beyond it every
    // request after the first waits and misses: attainment 1/10.
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 1\ngpus_per_node = 8",
        &constant_log(10, 2, 1.0),
    );
    let p = planner(&s, "xdit-sp8");
    assert_eq!(p.rate_at(1.0), 30.0, "9 gaps in 18 s");
    assert_eq!(p.measure(2.0, None).unwrap().slo_attainment, 1.0);
    assert_eq!(p.measure(2.01, None).unwrap().slo_attainment, 0.1);

    let tolerance = 0.001;
    let r = rate_search(&p, 0.9, (0.5, 8.0), tolerance, None).unwrap();
    assert_eq!(r.outcome, SearchEnd::Found);
    let (good, at) = r.best.unwrap();
    let (bad, miss) = r.missed.unwrap();
    assert!(
        good <= 2.0 && 2.0 < bad && bad - good <= tolerance,
        "{good} {bad}"
    );
    assert_eq!((at.slo_attainment, at.met, at.requests), (1.0, 10, 10));
    assert_eq!(miss.slo_attainment, 0.1);

    // The ends are checked: the whole range above or below the threshold says so.
    let above = rate_search(&p, 0.9, (2.5, 8.0), tolerance, None).unwrap();
    assert_eq!((above.outcome, above.best), (SearchEnd::BelowRange, None));
    let below = rate_search(&p, 0.9, (0.5, 1.5), tolerance, None).unwrap();
    assert_eq!(below.outcome, SearchEnd::AtTop);
    assert_eq!(below.best.unwrap().0, 1.5);
}

#[test]
fn the_rate_search_on_a_generated_load_finds_where_constant_arrivals_queue() {
    // The same service (1 s on SP 8, SLO 1 s) with arrivals generated at a constant rate:
    // gaps of 60 / rate seconds, so nothing waits up to 60 req/min.
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 1\ngpus_per_node = 8",
        &constant_log(2, 1, 1.0),
    );
    let raw = RawScenario::parse(
        "[workload]\narrival = \"constant\"\nrequests = 8\nmix = \"homogeneous:256\"\nsteps = 10\n[slo]\nscale = 1.0\nbases_s = { \"256x256\" = 1.0 }\n",
        "generated.toml",
        dir.path(),
    )
    .unwrap()
    .or(RawScenario::load(&s).unwrap())
    .or(RawScenario::default_scenario());
    let mut raw = raw;
    raw.workload.trace = None;
    let p = Planner::new(raw, "generated.toml", "xdit-sp8", vec![1, 2]).unwrap();
    let r = rate_search(&p, 0.9, (10.0, 120.0), 0.1, None).unwrap();
    let (good, at) = r.best.unwrap();
    let (bad, _) = r.missed.unwrap();
    assert!(
        good <= 60.0 && 60.0 < bad && bad - good <= 0.1,
        "{good} {bad}"
    );
    assert_eq!((at.runs, at.requests, at.met), (2, 16, 16));
    // A tolerance below what floats can resolve ends at adjacent rates, not in an endless loop.
    let fine = rate_search(&p, 0.9, (10.0, 120.0), 1e-300, None).unwrap();
    let (good, _) = fine.best.unwrap();
    let (bad, _) = fine.missed.unwrap();
    // (Gaps are whole nanoseconds, so rates a few billionths above 60 still give 1 s gaps.)
    assert!(
        (good - 60.0).abs() < 1e-6 && good < bad && bad - good < 1e-12,
        "{good} {bad}"
    );
    assert!(fine.points < 70, "{} points", fine.points);
    // The GPU search covers a bounded range.
    let e = p.gpu_candidates(u32::MAX).unwrap_err().to_string();
    assert!(e.contains("--max-gpus") && e.contains("16384"), "{e}");
}

#[test]
fn the_fewest_gpus_match_brute_force_and_the_queueing_bound() {
    // Nodes of one GPU, SP 1: each request takes 10 x 250 ms = 2.5 s and must finish within
    // 2.5 s, one arrives every second: no request may wait, so ceil(2.5 / 1) = 3 GPUs are
    // needed; on 2 the third request already waits.
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 1\ngpus_per_node = 1",
        &constant_log(12, 1, 2.5),
    );
    let p = planner(&s, "xdit-sp1");
    let candidates = p.gpu_candidates(6).unwrap();
    assert_eq!(candidates, vec![1, 2, 3, 4, 5, 6], "whole nodes of one GPU");
    let brute: Vec<(u32, f64)> = candidates
        .iter()
        .map(|&g| (g, p.measure(1.0, Some(g)).unwrap().slo_attainment))
        .collect();
    assert!(
        brute.windows(2).all(|w| w[0].1 <= w[1].1),
        "attainment rises with GPUs here: {brute:?}"
    );
    let first = brute.iter().find(|(_, a)| *a >= 0.9).unwrap();
    assert_eq!(first.0, 3, "{brute:?}");

    let r = gpu_search(&p, 0.9, 1.0, candidates.clone()).unwrap();
    assert_eq!(r.outcome, SearchEnd::Found);
    let (gpus, at) = r.best.unwrap();
    let (below, below_at) = r.below.unwrap();
    assert_eq!((gpus, below), (3, 2));
    assert_eq!(at.slo_attainment, 1.0);
    assert_eq!(below_at.slo_attainment, brute[1].1);
    assert!(r.points < candidates.len(), "bisection, not a scan");

    // A target no size reaches, and one the smallest already meets.
    let none = gpu_search(&p, 0.9, 1.0, vec![1, 2]).unwrap();
    assert_eq!((none.outcome, none.best), (SearchEnd::BelowRange, None));
    let easy = gpu_search(&p, 0.0, 1.0, candidates).unwrap();
    assert_eq!((easy.best.unwrap().0, easy.below), (1, None));
}

/// A pool of disaggregated stages sized by the same search. Three one-GPU nodes denoise (each
/// request 2.5 s at SP 1, one a second); the VAE takes 2 s a request (7,812.5 ms per 1,000
/// tokens, 256 tokens), encodes and transfers nothing; the SLO of 4.5 s lets no request wait.
/// On one decode GPU the decodes queue (request 1's latent is in at 3.5 s, the GPU busy until
/// 4.5 s) and only request 0 is met; two GPUs take one latent a second each 2 s: all met.
#[test]
fn the_fewest_decode_pool_gpus_are_found_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("profile.csv"), PROFILE).unwrap();
    std::fs::write(dir.path().join("log.csv"), constant_log(12, 1, 4.5)).unwrap();
    let toml = "name = \"pools\"\n[cluster]\nnodes = 3\ngpus_per_node = 1\n\
        [cost]\nprofile = \"profile.csv\"\n\
        [overheads]\nremap_fraction = 0.0\nvae_decode_ms_per_1k_tokens = 7812.5\n\
        [stages]\nmode = \"disaggregated\"\nlink_latency_us = 0.0\nembedding_mib = 0.0\n\
        latent_bytes_per_token = 0\n[workload]\ntrace = \"log.csv\"\n";
    let path = dir.path().join("s.toml");
    std::fs::write(&path, toml).unwrap();
    let p = planner(&path, "xdit-sp1")
        .sizing_pool(Pool::Decode)
        .unwrap();
    assert_eq!(p.gpus().unwrap(), 1, "the scenario's decode pool");
    let candidates = p.gpu_candidates(4).unwrap();
    assert_eq!(
        candidates,
        vec![1, 2, 3, 4],
        "every count: a pool has no nodes"
    );
    let brute: Vec<f64> = candidates
        .iter()
        .map(|&g| p.measure(1.0, Some(g)).unwrap().slo_attainment)
        .collect();
    assert_eq!(brute, vec![1.0 / 12.0, 1.0, 1.0, 1.0]);
    let r = gpu_search(&p, 0.9, 1.0, candidates).unwrap();
    assert_eq!(
        (r.outcome, r.best.map(|b| b.0), r.below.map(|b| b.0)),
        (SearchEnd::Found, Some(2), Some(1))
    );
    let report = tetriserve::goodput::gpu_report(
        &p,
        0.9,
        1.0,
        &gpu_search(&p, 0.9, 1.0, vec![1, 2]).unwrap(),
    );
    assert!(
        report.line.contains("2 decode-pool GPUs hold"),
        "{}",
        report.line
    );
    // The pool's capacity curve: one point per pool size, the same measures as the search.
    let points = tetriserve::goodput::curve::measure(
        &p,
        0.9,
        tetriserve::goodput::curve::Axis::Pool(Pool::Decode),
        &[1.0, 2.0, 3.0],
        1.0,
        None,
    )
    .unwrap();
    let got: Vec<(f64, f64, bool)> = points
        .iter()
        .map(|q| (q.x, q.measure.slo_attainment, q.meets))
        .collect();
    assert_eq!(
        got,
        vec![(1.0, 1.0 / 12.0, false), (2.0, 1.0, true), (3.0, 1.0, true)]
    );
    let csv = tetriserve::goodput::curve::to_csv(
        tetriserve::goodput::curve::Axis::Pool(Pool::Decode),
        "mean",
        0.9,
        &points,
    );
    assert!(csv.starts_with("decode_pool_gpus,slo_attainment,"), "{csv}");
    // The encode pool costs nothing here: with two decode GPUs, one encode GPU is enough.
    let two = dir.path().join("two.toml");
    std::fs::write(&two, toml.replace("mode = ", "decode_gpus = 2\nmode = ")).unwrap();
    let e = planner(&two, "xdit-sp1").sizing_pool(Pool::Encode).unwrap();
    let r = gpu_search(&e, 0.9, 1.0, vec![1, 2]).unwrap();
    assert_eq!((r.best.map(|b| b.0), r.below.map(|b| b.0)), (Some(1), None));
    // A co-located scenario has no pool to size.
    let co = setup(
        dir.path(),
        "nodes = 3\ngpus_per_node = 1",
        &constant_log(12, 1, 4.5),
    );
    let err = planner(&co, "xdit-sp1")
        .sizing_pool(Pool::Decode)
        .err()
        .unwrap();
    assert!(err.to_string().contains("co-located"), "{err}");
}

#[test]
fn fixed_degrees_and_node_sizes_shape_the_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 1\ngpus_per_node = 8",
        &constant_log(4, 2, 1.0),
    );
    assert_eq!(
        planner(&s, "tetriserve").gpu_candidates(32).unwrap(),
        vec![1, 2, 4, 8, 16, 24, 32]
    );
    assert_eq!(
        planner(&s, "xdit-sp4").gpu_candidates(20).unwrap(),
        vec![4, 8, 16],
        "SP 4 needs four GPUs in a node"
    );
}

#[test]
fn cost_columns_follow_provisioned_dollars_and_busy_energy() {
    // Ten requests every 2 s, each 1 s on all 8 GPUs (SP 8). Busy: 10 x 8 x 1 s = 80 GPU-s.
    // Makespan 19 s, provisioned 8 x 19 = 152 GPU-s. At $2/GPU-h: 152 / 3600 x 2 = $0.08444,
    // $8.444 per 1,000 met. Energy: 80 GPU-s at 500 W + 72 idle GPU-s at 50 W
    // = (40000 + 3600) / 3600 = 12.111 Wh, 1.2111 Wh per met image.
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 1\ngpus_per_node = 8\ngpu_price_per_hour = 2.0\ngpu_power_w = 500.0\ngpu_idle_power_w = 50.0",
        &constant_log(10, 2, 1.0),
    );
    let scenario = Scenario::load(
        Some(&s),
        &Overrides {
            policies: vec!["xdit-sp8".into()],
            ..Overrides::default()
        },
    )
    .unwrap();
    let m = tetriserve::simulate::simulate(&scenario)
        .unwrap()
        .remove(0)
        .summary;
    let close = |got: Option<f64>, want: f64| {
        let got = got.unwrap();
        assert!((got - want).abs() < 1e-9, "expected {want}, got {got}");
    };
    close(Some(m.gpu_hours_busy), 80.0 / 3600.0);
    close(Some(m.gpu_hours_provisioned), 152.0 / 3600.0);
    close(m.cost.usd, 152.0 / 3600.0 * 2.0);
    close(
        m.cost.usd_per_1k_met_images,
        152.0 / 3600.0 * 2.0 / 10.0 * 1000.0,
    );
    close(m.cost.energy_wh, (80.0 * 500.0 + 72.0 * 50.0) / 3600.0);
    close(
        m.cost.wh_per_met_image,
        (80.0 * 500.0 + 72.0 * 50.0) / 3600.0 / 10.0,
    );

    // The comparison CSV carries the same figures under named columns.
    let csv = tetriserve::report::comparison_csv(std::slice::from_ref(&m));
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header = rows.headers().unwrap().clone();
    let row = rows.records().next().unwrap().unwrap();
    let cell = |name: &str| -> f64 {
        let i = header.iter().position(|h| h == name).unwrap();
        row[i].parse().unwrap()
    };
    assert!((cell("usd_per_1k_met_images") - 8.444444).abs() < 1e-6);
    assert!((cell("gpu_hours_provisioned") - 152.0 / 3600.0).abs() < 1e-6);
    assert!((cell("wh_per_met_image") - 1.211111).abs() < 1e-6);
}

#[test]
fn built_in_prices_follow_the_gpu_and_bad_ones_are_refused() {
    let h100 = Scenario::load(None, &Overrides::default()).unwrap();
    assert_eq!(h100.cluster.operating.price_per_hour, Some(3.0));
    let a40 = Scenario::load(
        None,
        &Overrides {
            profile: Some("a40-sd3-medium".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(a40.cluster.operating.power_w, Some(300.0));

    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.toml");
    std::fs::write(&s, "[cluster]\ngpu_price_per_hour = -1.0\n").unwrap();
    let e = Scenario::load(Some(&s), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cluster.gpu_price_per_hour"), "{e}");
    assert!(e.contains("non-negative"), "{e}");
}

fn goodput(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tetriserve"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("goodput")
        .args(args)
        .output()
        .expect("runs the binary")
}

#[test]
fn json_and_csv_reports_read_back_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 1\ngpus_per_node = 8",
        &constant_log(10, 2, 1.0),
    );
    let s = s.to_str().unwrap();
    let base = [
        "-s",
        s,
        "-p",
        "xdit-sp8",
        "--min-scale",
        "0.5",
        "--max-scale",
        "8",
    ];
    let o = goodput(&[&base[..], &["--format", "json"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["search"], "rate");
    assert_eq!(json["outcome"], "found");
    assert_eq!(json["log_rate_per_min"], 30.0);
    let scale = json["goodput_scale"].as_f64().unwrap();
    assert!(scale <= 2.0 && scale > 1.99, "{scale}");
    assert_eq!(json["goodput_rate_per_min"].as_f64().unwrap(), scale * 30.0);
    assert_eq!(json["met"], 10);

    let o = goodput(&[&base[..], &["--format", "csv"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut rows = csv::Reader::from_reader(&o.stdout[..]);
    let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
    let row = rows.records().next().unwrap().unwrap();
    assert!(rows.records().next().is_none(), "one row");
    let keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
    let mut sorted = header.clone();
    sorted.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(sorted, keys_sorted, "the same fields in JSON and CSV");
    let i = header.iter().position(|h| h == "goodput_scale").unwrap();
    assert_eq!(row[i].parse::<f64>().unwrap(), scale);

    // The human line names the scale and the rate.
    let o = goodput(&base);
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(line.contains("x the log's rate ("), "{line}");
    assert!(line.contains("per 1,000 met images"), "{line}");

    // The fewest-GPU search, as JSON: SP 8 needs the whole node.
    let o = goodput(&[
        "-s",
        s,
        "-p",
        "xdit-sp8",
        "--min-gpus",
        "--max-gpus",
        "16",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (json["search"].as_str(), json["gpus"].as_u64()),
        (Some("gpus"), Some(8))
    );
    assert_eq!(json["candidates"], "8;16");
    assert_eq!(json["below_gpus"], serde_json::Value::Null);
}

#[test]
fn flags_that_do_not_act_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 1\ngpus_per_node = 8",
        &constant_log(4, 2, 1.0),
    );
    let s = s.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["-s", s, "--seeds", "1,2"],
            "--seeds shapes a generated workload",
        ),
        (
            vec!["-s", s, "--steps", "8"],
            "--steps 8 shape(s) a generated workload",
        ),
        (
            vec!["-s", s, "--time-scale", "2"],
            "--time-scale belongs to --min-gpus",
        ),
        (
            vec!["-s", s, "--min-gpus", "--min-scale", "1"],
            "--min-scale belongs to the rate search",
        ),
        (
            vec!["--rate", "6"],
            "--rate is what the rate search chooses",
        ),
        (vec!["--max-scale", "3"], "no log was given"),
        (
            vec!["-s", s, "--min-scale", "4", "--max-scale", "2"],
            "not 0 < low < high",
        ),
        (
            vec!["-s", s, "--min-gpus", "--pool", "decode"],
            "the scenario's stages are co-located",
        ),
        (
            vec![
                "-s",
                "scenarios/beyond/disaggregated.toml",
                "--pool",
                "encode",
            ],
            "--pool belongs to --min-gpus",
        ),
    ] {
        let o = goodput(&[&["-p", "xdit-sp8"][..], &args].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// A policy whose degree is too slow for some requests' SLOs can never pass the share of the
/// others: the search says so from the cost table (naming the resolution) instead of asking
/// for more GPUs, and only warns when the target stays within reach.
#[test]
fn resolutions_a_policy_can_never_serve_are_named_before_searching() {
    let dir = tempfile::tempdir().unwrap();
    // 10 steps of 256 px: 1.5 s alone at SP 4, 1.0 s at SP 8. Two of ten requests have an
    // SLO of 1.2 s: SP 4 never meets them, SP 8 does.
    let mut log = String::from("id,arrival_s,width,height,steps,slo_s\n");
    for i in 0..10 {
        let slo = if i < 2 { 1.2 } else { 5.0 };
        log.push_str(&format!("{i},{},256,256,10,{slo}\n", i * 10));
    }
    let s = setup(dir.path(), "nodes = 1\ngpus_per_node = 8", &log);
    let sp4 = planner(&s, "xdit-sp4");
    let (never, share) = sp4.never_met(Some(8)).unwrap();
    assert_eq!(never.len(), 1, "{never:?}");
    assert_eq!((never[0].requests, never[0].of), (2, 10));
    assert_eq!(never[0].degrees, vec![4]);
    assert!((share - 0.2).abs() < 1e-12, "{share}");
    let e = sp4.check_reachable(0.9, Some(8)).unwrap_err().to_string();
    assert!(e.contains("256x256: 2 of 10 requests"), "{e}");
    assert!(e.contains("at or below 80.0%"), "{e}");
    let w = sp4.check_reachable(0.8, Some(8)).unwrap();
    assert!(w.is_some_and(|w| w.contains("256x256")));
    // SP 8, and the adaptive policies, can serve every request alone.
    for p in ["xdit-sp8", "tetriserve", "stepwise"] {
        assert_eq!(planner(&s, p).never_met(Some(8)).unwrap().0, vec![], "{p}");
    }
    // Fixed costs count: a 0.3 s text encoder puts SP 8 at 1.3 s, past 1.2 s.
    let toml = std::fs::read_to_string(&s).unwrap();
    std::fs::write(
        &s,
        toml.replace("[overheads]\n", "[overheads]\ntext_encoder_ms = 300\n"),
    )
    .unwrap();
    assert_eq!(
        planner(&s, "xdit-sp8").never_met(Some(8)).unwrap().0.len(),
        1
    );

    // The binary stops the GPU search with that cause, not "raise --max-gpus".
    let out = goodput(&[
        "-s",
        s.to_str().unwrap(),
        "-p",
        "xdit-sp4",
        "--min-gpus",
        "--max-gpus",
        "32",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("can never meet the SLO of 256x256"), "{err}");
    assert!(!err.contains("raise --max-gpus"), "{err}");
}

/// A point of a few requests gives an answer one request's luck decides: the search warns
/// when the target allows fewer than five misses, and not otherwise.
#[test]
fn too_few_requests_for_the_target_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 1\ngpus_per_node = 8",
        &constant_log(19, 2, 2.0),
    );
    let p = planner(&s, "xdit-sp8");
    assert_eq!(p.requests_per_point().unwrap(), 19);
    let w = p
        .sample_warning(0.9)
        .unwrap()
        .expect("19 x 0.1 = 1.9 misses");
    assert!(w.contains("19 requests") && w.contains("5.3 points"), "{w}");
    // 19 x 0.7 = 5.7 misses allowed: enough.
    assert_eq!(p.sample_warning(0.7).unwrap(), None);
    let out = goodput(&["-s", s.to_str().unwrap(), "-p", "xdit-sp8"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: each point rests on 19 requests"),
        "{err}"
    );
    // Generated loads count every seed: 20 requests x 3 seeds x 0.1 = 6 misses.
    let raw = RawScenario::default_scenario();
    let mut o = Overrides {
        requests: Some(20),
        ..Overrides::default()
    };
    let mut r = raw.clone();
    r.apply(&o).unwrap();
    let g = Planner::new(r, "default", "xdit-sp8", vec![1, 2, 3]).unwrap();
    assert_eq!(g.requests_per_point().unwrap(), 60);
    assert_eq!(g.sample_warning(0.9).unwrap(), None);
    o.requests = Some(10);
    let mut r = raw;
    r.apply(&o).unwrap();
    let g = Planner::new(r, "default", "xdit-sp8", vec![1, 2, 3]).unwrap();
    assert!(g.sample_warning(0.9).unwrap().is_some());
}

/// Two resolutions drawn independently per request: 256 px always meets its SLO alone
/// (2.5 s of 10 steps at SP 1 against 5 s), 512 px never does (10 s). With arrivals a minute
/// apart nothing queues, so each seed's attainment is its share of 256 px requests, counted
/// here from the workload itself; the 95% interval over the seeds follows by hand.
#[test]
fn confidence_intervals_and_criteria_follow_the_seeds_by_hand() {
    use tetriserve::goodput::Criterion;
    let dir = tempfile::tempdir().unwrap();
    let mut profile = String::from(PROFILE);
    for k in [1, 2, 4, 8] {
        for b in [1, 2, 4] {
            profile.push_str(&format!(
                "flux1-dev,h100,512,512,{k},{b},{},,test,nvlink\n",
                1000 * b / k
            ));
        }
    }
    std::fs::write(dir.path().join("profile.csv"), profile).unwrap();
    let raw = RawScenario::parse(
        "[cluster]\nnodes = 1\ngpus_per_node = 8\n[cost]\nprofile = \"profile.csv\"\n[overheads]\nremap_fraction = 0.0\n[workload]\narrival = \"constant\"\nrate_per_min = 1.0\nrequests = 20\nmix = \"custom:256=1,512=1\"\nsampling = \"iid\"\nsteps = 10\n[slo]\nscale = 1.0\nbases_s = { \"256x256\" = 5.0, \"512x512\" = 5.0 }\n",
        "two.toml",
        dir.path(),
    )
    .unwrap()
    .or(RawScenario::default_scenario());
    let seeds = vec![1, 2, 3, 4];
    let mut p = Planner::new(raw.clone(), "two.toml", "xdit-sp1", seeds.clone()).unwrap();
    // Each seed's share of 256 px requests, from the generated workloads.
    let shares: Vec<f64> = seeds
        .iter()
        .map(|&seed| {
            let mut r = raw.clone();
            r.apply(&Overrides {
                policies: vec!["xdit-sp1".into()],
                seed: Some(seed),
                ..Overrides::default()
            })
            .unwrap();
            let w = Scenario::from_raw(r, "two.toml")
                .unwrap()
                .load_workload()
                .unwrap();
            let small = w
                .requests
                .iter()
                .filter(|q| q.resolution.width == 256)
                .count();
            small as f64 / w.len() as f64
        })
        .collect();
    assert!(
        shares.iter().any(|&s| s != shares[0]),
        "the seeds must differ for the interval to mean something: {shares:?}"
    );
    let m = p.measure(1.0, None).unwrap();
    assert_eq!(m.per_run, shares);
    let mean = shares.iter().sum::<f64>() / 4.0;
    let var = shares.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / 3.0;
    // Student's t, 3 degrees of freedom, two-sided 95%.
    let half = 3.182 * (var / 4.0).sqrt();
    assert!((m.slo_attainment - mean).abs() < 1e-12);
    assert!((m.ci95 - half).abs() < 1e-12, "{} vs {half}", m.ci95);
    assert_eq!(m.worst_run(), shares.iter().copied().reduce(f64::min));
    // Per resolution, pooled over the seeds: 256 px all met, 512 px none.
    let res: Vec<(u32, usize, usize)> = m
        .per_resolution
        .iter()
        .map(|c| (c.resolution.width, c.requests, c.met))
        .collect();
    let small: usize = shares.iter().map(|s| (s * 20.0).round() as usize).sum();
    assert_eq!(res, vec![(256, small, small), (512, 80 - small, 0)]);
    assert_eq!(m.worst_resolution().unwrap().resolution.width, 512);

    // The criteria, each at a target between what it and the next one see.
    let lowest = m.worst_run().unwrap();
    let target = (lowest + mean) / 2.0;
    assert!(m.meets(target, Criterion::Mean));
    assert!(!m.meets(target, Criterion::EverySeed));
    assert!(m.meets(lowest, Criterion::EverySeed));
    assert!(
        !m.meets(mean - half / 2.0, Criterion::CiLower),
        "the lower end lies below mean - half/2"
    );
    assert!(m.meets(mean - half, Criterion::CiLower));
    assert!(!m.meets(0.01, Criterion::EveryResolution));
    // A mean answer whose interval holds the target is reported as unsure; not under the
    // criterion that asks for the interval's lower end.
    let report = |p: &Planner, target: f64| {
        let search = tetriserve::goodput::GpuSearch {
            outcome: SearchEnd::Found,
            best: Some((8, m.clone())),
            below: None,
            candidates: vec![8],
            points: 1,
        };
        tetriserve::goodput::gpu_report(p, target, 1.0, &search)
    };
    let field = |r: &tetriserve::goodput::Report| {
        r.fields
            .iter()
            .find(|(k, _)| *k == "target_within_ci")
            .map(|(_, v)| v.clone())
    };
    use tetriserve::goodput::FieldValue;
    let inside = report(&p, mean - half / 2.0);
    assert_eq!(field(&inside), Some(FieldValue::Text("true".into())));
    assert!(inside.line.contains("unsure"), "{}", inside.line);
    let below = report(&p, mean - half * 1.5);
    assert_eq!(field(&below), Some(FieldValue::Text("false".into())));
    assert!(!below.line.contains("unsure"));
    p.criterion = Criterion::CiLower;
    assert_eq!(
        field(&report(&p, mean - half / 2.0)),
        Some(FieldValue::Text("false".into()))
    );
    // The search follows the planner's criterion.
    p.criterion = Criterion::EveryResolution;
    assert!(!p.meets(&m, 0.01));
    p.criterion = Criterion::EverySeed;
    assert!(p.meets(&m, lowest) && !p.meets(&m, target));
}

/// The curve writes a table and charts whose points are the search's measures, refuses the
/// flags that belong to it without it, and the stability check runs the search again on
/// longer runs.
#[test]
fn the_curve_and_the_stability_check_report_what_they_measured() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 2\ngpus_per_node = 8",
        &constant_log(2, 1, 1.0),
    );
    let generated = dir.path().join("gen.toml");
    std::fs::write(
        &generated,
        std::fs::read_to_string(&s)
            .unwrap()
            .replace("trace = \"log.csv\"", "arrival = \"constant\"\nrequests = 8\nmix = \"homogeneous:256\"\nsteps = 10\n[slo]\nscale = 1.0\nbases_s = { \"256x256\" = 1.0 }"),
    )
    .unwrap();
    let generated = generated.to_str().unwrap();
    let out = dir.path().join("curve");
    let o = goodput(&[
        "-s",
        generated,
        "-p",
        "xdit-sp8",
        "--min-gpus",
        "--rate",
        "120",
        "--seeds",
        "1,2",
        "--max-gpus",
        "16",
        "--curve",
        out.to_str().unwrap(),
        "--stability",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // 1 s of service every 0.5 s: one SP 8 group queues without bound, two keep up.
    assert_eq!(json["gpus"], 16);
    assert_eq!(json["below_gpus"], 8);
    assert_eq!(json["stable"], "true");
    assert_eq!(json["stability_requests_per_run"], 16);
    assert_eq!(json["criterion"], "mean");
    // Constant arrivals: every seed alike, no interval, nothing unsure.
    assert_eq!(json["target_within_ci"], "false");
    assert_eq!(json["ci95_low"], json["slo_attainment"]);
    let csv = std::fs::read_to_string(out.join("curve.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let gpus: Vec<&str> = rows.iter().map(|r| &r[col("gpus")]).collect();
    assert_eq!(gpus, ["8", "16"]);
    let att: Vec<f64> = rows
        .iter()
        .map(|r| r[col("slo_attainment")].parse().unwrap())
        .collect();
    assert_eq!(att[1], json["slo_attainment"].as_f64().unwrap());
    assert_eq!(att[0], json["below_slo_attainment"].as_f64().unwrap());
    assert_eq!(&rows[1][col("meets_target")], "true");
    assert_eq!(&rows[0][col("meets_target")], "false");
    for f in ["attainment.png", "attainment.svg", "cost.png", "cost.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // Without --force the directory is not replaced.
    let again = goodput(&[
        "-s",
        generated,
        "-p",
        "xdit-sp8",
        "--min-gpus",
        "--rate",
        "120",
        "--seeds",
        "1,2",
        "--max-gpus",
        "16",
        "--curve",
        out.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));

    for (args, needle) in [
        (
            vec!["--curve-points", "4"],
            "--curve-points belongs to --curve",
        ),
        (vec!["--force"], "--force belongs to --curve"),
        (
            vec!["--criterion", "ci-lower", "--seeds", "1"],
            "one seed gives none",
        ),
    ] {
        let o = goodput(&[&["-s", generated, "-p", "xdit-sp8"][..], &args].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let o = goodput(&["-s", s.to_str().unwrap(), "-p", "xdit-sp8", "--stability"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("a log has its own length"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// An answer that moves with the length of the runs is reported as not stable. One SP 8 group
/// serves 1 s requests arriving every `g` s with an SLO of 1.5 s: the k-th waits k(1 - g), so
/// with n requests attainment is (floor(0.5 / (1 - g)) + 1) / n. At a 50% target, 8 requests
/// hold while 1 - g <= 0.5 / 3 (72 req/min) and 16 while 1 - g <= 0.5 / 7 (64.6 req/min).
#[test]
fn the_stability_check_says_when_longer_runs_move_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(
        dir.path(),
        "nodes = 1\ngpus_per_node = 8",
        &constant_log(2, 1, 1.0),
    );
    let generated = dir.path().join("gen.toml");
    std::fs::write(
        &generated,
        std::fs::read_to_string(&s).unwrap().replace(
            "trace = \"log.csv\"",
            "arrival = \"constant\"\nrequests = 8\nmix = \"homogeneous:256\"\nsteps = 10\n[slo]\nscale = 1.0\nbases_s = { \"256x256\" = 1.5 }",
        ),
    )
    .unwrap();
    let scenario = generated.to_str().unwrap();
    let args = [
        "-s",
        scenario,
        "-p",
        "xdit-sp8",
        "--target",
        "0.5",
        "--seeds",
        "1",
        "--min-rate",
        "30",
        "--max-rate",
        "120",
        "--stability",
    ];
    let o = goodput(&[&args[..], &["--format", "json"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (first, again) = (
        json["goodput_rate_per_min"].as_f64().unwrap(),
        json["stability_answer"].as_f64().unwrap(),
    );
    assert!((71.85..=72.0).contains(&first), "{first}");
    assert!((64.45..=64.62).contains(&again), "{again}");
    assert_eq!(json["stable"], "false");
    assert_eq!(json["stability_requests_per_run"], 16);
    let o = goodput(&args);
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(
        line.contains("NOT stable: with 16 requests per seed") && line.contains("--requests 32"),
        "{line}"
    );
}

/// `--curve` beside `--pool` draws the pool's sizes: its CSV's first column is the pool's,
/// one row per size from 1 to `--max-gpus`, and the charts are written.
#[test]
fn a_pool_search_draws_the_pools_capacity_curve() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("curve");
    let o = goodput(&[
        "-s",
        "scenarios/beyond/disaggregated.toml",
        "-p",
        "xdit-sp8",
        "--min-gpus",
        "--pool",
        "decode",
        "--rate",
        "96",
        "--max-gpus",
        "3",
        "--seeds",
        "1,2",
        "--requests",
        "60",
        "--curve",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("curve.csv")).unwrap();
    let sizes: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert!(csv.starts_with("decode_pool_gpus,"), "{csv}");
    assert_eq!(sizes, ["1", "2", "3"]);
    assert!(out.join("attainment.png").is_file());
}
