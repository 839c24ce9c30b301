//! The exact optimum on small instances: hand-computed optima (one needs batching, one a
//! degree no single-degree plan picks), an independent exhaustive search on one GPU, and on
//! random instances `every policy <= optimum <= bound`, with every schedule the solver returns
//! checked step by step against the model's rules; the windows of a workload: what a policy
//! meets of a window in its run over the whole workload (backlog carried in) against the
//! window replayed alone, and `in-run count <= window optimum <= window bound`.

use proptest::prelude::*;
use tetriserve::bound::upper_bound;
use tetriserve::cluster::{Cluster, Link, Topology};
use tetriserve::cost::{Overheads, StepTimes};
use tetriserve::metrics::Outcome;
use tetriserve::optimum::{Instance, Solution, cut, solve, window};
use tetriserve::policy::PolicyKind;
use tetriserve::scenario::{Overrides, Scenario};
use tetriserve::workload::{Resolution, Workload};

use crate::util::*;

const EFFORT: u64 = 2_000_000;

fn optimum(w: &Workload, costs: &StepTimes, c: &Cluster, overheads: &Overheads) -> Solution {
    let sol = solve(&Instance::new(w, costs, c, overheads), EFFORT);
    check_schedule(&sol, w, costs, c, overheads);
    sol
}

/// Checks the solver's schedule against the model's rules, independently of the solver: step
/// times from the table, steps of a request in sequence within its interval, batches of one
/// resolution at the same step, no node over its GPUs, exactly the requests claimed met.
fn check_schedule(
    sol: &Solution,
    w: &Workload,
    costs: &StepTimes,
    c: &Cluster,
    overheads: &Overheads,
) {
    let mut done = vec![0u32; w.len()];
    let mut last_end: Vec<Option<u64>> = vec![None; w.len()];
    let mut steps = sol.schedule.clone();
    steps.sort_by_key(|s| (s.start, s.end));
    for s in &steps {
        let first = &w.requests[s.jobs[0]];
        let class = costs.class_of(first.resolution).unwrap();
        let t = costs
            .get(class, s.degree, s.jobs.len() as u32, Link::NvLink)
            .expect("a configuration of the step times");
        assert_eq!(s.end - s.start, t.0, "step time of {s:?}");
        assert!(s.node < c.nodes && s.degree <= c.gpus_per_node, "{s:?}");
        let at = done[s.jobs[0]];
        for &j in &s.jobs {
            let r = &w.requests[j];
            assert_eq!(r.resolution, first.resolution, "batch of one resolution");
            assert_eq!(r.steps, first.steps, "batch of one step count");
            assert_eq!(done[j], at, "batch at the same step");
            let ready = last_end[j].unwrap_or(r.arrival.0 + overheads.text_encoder.0);
            assert!(
                s.start >= ready,
                "step of {j} starts before it is ready: {s:?}"
            );
            done[j] += 1;
            last_end[j] = Some(s.end);
        }
    }
    // No node is ever over its GPUs: at every start, the steps in flight fit.
    for s in &steps {
        let load: u32 = steps
            .iter()
            .filter(|o| o.node == s.node && o.start <= s.start && s.start < o.end)
            .map(|o| o.degree)
            .sum();
        assert!(
            load <= c.gpus_per_node,
            "node {} over at {}",
            s.node,
            s.start
        );
    }
    let met: Vec<usize> = (0..w.len())
        .filter(|&j| {
            let r = &w.requests[j];
            done[j] == r.steps
                && last_end[j].unwrap() + overheads.vae_decode(r.resolution).0 <= r.deadline.0
        })
        .collect();
    assert_eq!(met, sol.met, "requests met by the schedule");
    assert_eq!(met.len(), sol.lower);
    assert!(
        done.iter()
            .enumerate()
            .all(|(j, &d)| d == 0 || met.contains(&j)),
        "only met requests run"
    );
}

fn none() -> Overheads {
    Overheads {
        remap_fraction: 0.0,
        ..Overheads::default()
    }
}

#[test]
fn two_small_requests_both_met_only_by_batching_twenty_steps() {
    // Shipped H100 profile, 256 px, one GPU: 30.56 ms per step alone, 52.61 ms batched in
    // pairs. Both arrive at 0 with 28 steps, deadlines 1.40 s and 1.59 s. One after the other,
    // the second ends at 2 x 28 x 30.56 = 1.711 s; batching 20 steps (1.052 s) then 8 alone
    // each ends them at 1.297 s and 1.541 s.
    let profile = tetriserve::scenario::load_profile("h100-flux1-dev").unwrap();
    let res = Resolution::square(256);
    let w = batching_pair();
    let c = Cluster::new("h100", 1, 1, Topology::NvSwitch).unwrap();
    let batched = StepTimes::resolve(&profile, &[res], &c, &[1, 2]).unwrap();
    let sol = optimum(&w, &batched, &c, &none());
    assert_eq!((sol.lower, sol.upper), (2, 2));
    assert!(
        sol.schedule.iter().any(|s| s.jobs.len() == 2),
        "the schedule batches"
    );
    assert!(upper_bound(&w, &batched, 1, 1).met >= 2);
    // Without batches one of them is the most.
    let alone = StepTimes::resolve(&profile, &[res], &c, &[1]).unwrap();
    let sol = optimum(&w, &alone, &c, &none());
    assert_eq!((sol.lower, sol.upper), (1, 1));
}

#[test]
fn one_gpu_cannot_serve_two_requests_whose_work_exceeds_the_time() {
    // Tiny costs: 256 px at SP 1 takes 100 ms; batching doubles the step (never helps). Both
    // at 0 with 3 steps, deadlines 350 and 500 ms: 600 ms of work in 500 ms on one GPU.
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 3, 350), req(1, 0, SMALL, 3, 500)]);
    let one = cluster(1);
    let sol = optimum(&w, &costs(&w, &one), &one, &none());
    assert_eq!((sol.lower, sol.upper), (1, 1));
    // Two GPUs: both.
    let two = cluster(2);
    let sol = optimum(&w, &costs(&w, &two), &two, &none());
    assert_eq!((sol.lower, sol.upper), (2, 2));
}

#[test]
fn four_requests_on_two_gpus_by_hand() {
    // Two GPUs, tiny costs (256 px: SP1 100 ms, SP2 60; 512 px: SP1 300, SP2 160).
    // A: 512 px, 3 steps at 0, due 500: needs SP 2 for all three steps (480 ms); any step at
    //    SP 1 costs 300 and 300 + 2 x 160 > 500.
    // B: 256 px, 3 steps at 0, due 350: at least 180 ms of both GPUs (SP 2) or 300 ms of one,
    //    inside [0, 350]; either way A cannot have both GPUs for 480 ms before 500. One of A, B.
    // C, D: 256 px, 3 steps at 500, due 800: one GPU each, 500-800. Optimum 3.
    let w = Workload::from_requests(vec![
        req(0, 0, LARGE, 3, 500),
        req(1, 0, SMALL, 3, 350),
        req(2, 500, SMALL, 3, 300),
        req(3, 500, SMALL, 3, 300),
    ]);
    let c = cluster(2);
    let sol = optimum(&w, &costs(&w, &c), &c, &none());
    assert_eq!((sol.lower, sol.upper), (3, 3));
    assert_eq!(sol.components, 2);
}

#[test]
fn a_short_request_on_both_gpus_leaves_room_for_a_large_one() {
    // B (256 px, 1 step, due 100) must finish before A (512 px, 3 steps at SP 2 = 480 ms, due
    // 545) can start: on SP 2, B ends at 60 and A at 540; on SP 1, B ends at 100 and A at 580.
    // A plan that gives B one GPU (its cheapest) misses A; the optimum meets both.
    let w = Workload::from_requests(vec![req(0, 0, LARGE, 3, 545), req(1, 0, SMALL, 1, 100)]);
    let c = cluster(2);
    let sol = optimum(&w, &costs(&w, &c), &c, &none());
    assert_eq!((sol.lower, sol.upper), (2, 2));
    let b_step = sol.schedule.iter().find(|s| s.jobs == vec![1]).unwrap();
    assert_eq!((b_step.degree, b_step.end), (2, ms(60).0));
}

#[test]
fn the_text_encoder_delays_the_first_step() {
    // A 100 ms text encoder moves the first step's earliest start; a request that fits its
    // SLO only without it is not met, and one that still fits starts after it.
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 3, 300), req(1, 1000, SMALL, 3, 500)]);
    let c = cluster(1);
    let te = Overheads {
        text_encoder: ms(100),
        ..none()
    };
    let sol = optimum(&w, &costs(&w, &c), &c, &te);
    // The first has 300 ms for 300 ms of steps plus 100 ms of encoder: missed; the second has
    // 500 for 400.
    assert_eq!((sol.lower, sol.upper), (1, 1));
    assert_eq!(sol.met, vec![1]);
    assert_eq!(sol.schedule[0].start, ms(1100).0);
}

#[test]
fn brute_force_by_hand() {
    // 3 steps each at 0, deadlines 8 and 9: alone 6 and 12, 2 batched then alone 8 and 10.
    assert_eq!(exhaustive_batched(&[(0, 3, 8), (0, 3, 9)], true), 1);
    // Deadlines 9 and 9: three batched steps end both at 9.
    assert_eq!(exhaustive_batched(&[(0, 3, 9), (0, 3, 9)], true), 2);
    // Different step counts never batch: 2 x 2 + 3 x 2 = 10 slots of work by 9.
    assert_eq!(exhaustive_batched(&[(0, 2, 9), (0, 3, 9)], true), 1);
}

fn small_workload() -> impl Strategy<Value = (Workload, u32, u64, u64)> {
    (
        prop::collection::vec((0u64..600, any::<bool>(), 1u32..4, 100u64..1200), 1..6),
        0u32..2,
        prop_oneof![Just(0u64), 0u64..60],
        prop_oneof![Just(0u64), 0u64..100],
    )
        .prop_map(|(rows, gpus_log2, te, vae)| {
            let w = Workload::from_requests(
                rows.into_iter()
                    .enumerate()
                    .map(|(i, (t, big, steps, slo))| {
                        req(i as u64, t, if big { LARGE } else { SMALL }, steps, slo)
                    })
                    .collect(),
            );
            (w, 1 << gpus_log2, te, vae)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn the_solver_matches_brute_force_on_one_gpu(
        reqs in prop::collection::vec((0u64..4, 1u32..4, 2u64..14), 1..5),
    ) {
        let reqs: Vec<(u64, u32, u64)> = reqs.iter().map(|&(a, s, slo)| (a, s, a + slo)).collect();
        let w = slots_workload(&reqs);
        let c = Cluster::new("x", 1, 1, Topology::NvSwitch).unwrap();
        let costs = StepTimes::resolve(&BatchSlots, &w.resolutions(), &c, &[1, 2]).unwrap();
        let sol = optimum(&w, &costs, &c, &none());
        prop_assert!(sol.proven());
        prop_assert_eq!(sol.lower, exhaustive_batched(&reqs, true));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every policy of the registry meets at most the optimum, which is at most the bound.
    #[test]
    fn every_policy_is_at_most_the_optimum_and_the_optimum_at_most_the_bound(
        (w, gpus, te, vae) in small_workload(),
    ) {
        let c = cluster(gpus);
        let costs = costs(&w, &c);
        // The default hand-off cost stays on: the policies pay it, the model relaxes it.
        let overheads = Overheads {
            text_encoder: ms(te),
            vae_decode_per_1k_tokens: ms(vae),
            ..Overheads::default()
        };
        let sol = optimum(&w, &costs, &c, &overheads);
        prop_assert!(sol.proven(), "not proven: {} ..= {}", sol.lower, sol.upper);
        let bound = upper_bound(&w, &costs, c.total_gpus(), c.max_degree());
        prop_assert!(sol.upper <= bound.met, "optimum {} > bound {}", sol.upper, bound.met);
        for info in PolicyKind::all() {
            let kind = info.kind;
            if matches!(kind, PolicyKind::XditSp(k) if k > gpus)
                || kind == PolicyKind::Rssp && gpus < 2
            {
                continue; // beyond the node, or the test's RSSP map sends 512 px to SP 2
            }
            let run = run_kind_with(kind, &w, &c, overheads.clone()).unwrap();
            let met = run.requests.iter().filter(|r| r.outcome == Outcome::Met).count();
            prop_assert!(met <= sol.lower, "{} met {met} > optimum {}", info.name, sol.lower);
        }
    }
}

/// Up to eight requests over 2.5 s: several idle points, and late work running into the next
/// window.
fn windowed_workload() -> impl Strategy<Value = (Workload, u32, u64)> {
    (
        prop::collection::vec((0u64..2500, any::<bool>(), 1u32..5, 100u64..1200), 3..9),
        0u32..2,
        prop_oneof![Just(0u64), 0u64..60],
    )
        .prop_map(|(rows, gpus_log2, te)| {
            let w = Workload::from_requests(
                rows.into_iter()
                    .enumerate()
                    .map(|(i, (t, big, steps, slo))| {
                        req(i as u64, t, if big { LARGE } else { SMALL }, steps, slo)
                    })
                    .collect(),
            );
            (w, 1 << gpus_log2, te)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// What every policy meets of a window in its run over the whole workload (backlog carried
    /// in, later arrivals competing) is at most the window's optimum, which is at most the
    /// window's bound.
    #[test]
    fn in_its_run_every_policy_meets_at_most_each_windows_optimum(
        (w, gpus, te) in windowed_workload(),
    ) {
        let c = cluster(gpus);
        let overheads = Overheads {
            text_encoder: ms(te),
            ..Overheads::default()
        };
        let runs: Vec<(&str, Vec<bool>)> = PolicyKind::all()
            .iter()
            .filter(|info| {
                !(matches!(info.kind, PolicyKind::XditSp(k) if k > gpus)
                    || info.kind == PolicyKind::Rssp && gpus < 2)
            })
            .map(|info| {
                let run = run_kind_with(info.kind, &w, &c, overheads.clone()).unwrap();
                let met = run.requests.iter().map(|r| r.outcome == Outcome::Met).collect();
                (info.name, met)
            })
            .collect();
        for range in cut(&w, 2, 4) {
            let win = window(&w, range.clone());
            let costs = costs(&win, &c);
            let sol = optimum(&win, &costs, &c, &overheads);
            prop_assert!(sol.proven(), "not proven: {} ..= {}", sol.lower, sol.upper);
            let bound = upper_bound(&win, &costs, c.total_gpus(), c.max_degree());
            prop_assert!(sol.upper <= bound.met, "optimum {} > bound {}", sol.upper, bound.met);
            for (name, met) in &runs {
                let in_run = met[range.clone()].iter().filter(|&&m| m).count();
                prop_assert!(
                    in_run <= sol.lower,
                    "{name} met {in_run} of window {range:?} in its run > optimum {}",
                    sol.lower
                );
            }
        }
    }
}

/// A study of `trace` (CSV text) on one H100 with `policies`.
fn study_trace(
    name: &str,
    trace: &str,
    policies: &[&str],
    size: usize,
    count: usize,
) -> tetriserve::optimum::Study {
    let path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("optimum-{name}.csv"));
    std::fs::write(&path, trace).unwrap();
    let scenario = Scenario::load(
        None,
        &Overrides {
            trace: Some(path),
            gpus: Some(1),
            policies: policies.iter().map(|p| p.to_string()).collect(),
            ..Overrides::default()
        },
    )
    .unwrap();
    tetriserve::optimum::study(&scenario, size, count, EFFORT).unwrap()
}

#[test]
fn backlog_from_before_a_window_costs_requests_only_in_the_run() {
    // One H100, the shipped profile: 256 px takes 30.56 ms a step at SP 1, no text encoder or
    // VAE time. A (28 steps, 0.856 s alone) cannot meet its deadline at 0.5 s. B arrives at
    // 0.6 s, after A's deadline (an idle point: B's window starts there), with 5 steps
    // (0.153 s) due at 0.8 s. Replayed alone, B runs 0.6-0.753 s: met. In xDiT SP=1's run
    // over both, A holds the GPU until 0.856 s (FCFS, no deadline awareness), and B ends at
    // 1.009 s: missed. C arrives at 0.7 s, before B's deadline: B's window (of one request)
    // does not end at an idle point, A's does.
    let trace = "id,arrival_s,width,height,steps,slo_s\n\
                 0,0.0,256,256,28,0.5\n\
                 1,0.6,256,256,5,0.2\n\
                 2,0.7,256,256,5,5.0\n";
    let study = study_trace("backlog", trace, &["xdit-sp1", "stepwise"], 1, 2);
    assert_eq!(study.rows.len(), 2);
    let (a, b) = (&study.rows[0], &study.rows[1]);
    assert_eq!((a.infeasible, a.optimum_high, a.bound), (1, 0, 0));
    assert!(a.ends_at_idle_point && !b.ends_at_idle_point);
    assert_eq!(
        (b.optimum_low, b.optimum_high, b.bound, b.proven),
        (1, 1, 1, true)
    );
    let xdit = &b.policies[0];
    assert_eq!(
        (xdit.policy.as_str(), xdit.in_run, xdit.alone),
        ("xdit-sp1", 0, 1)
    );
    for row in &study.rows {
        for p in &row.policies {
            assert!(
                p.in_run <= row.optimum_low && p.alone <= row.optimum_low,
                "{p:?}"
            );
        }
    }
    let t = &study.totals;
    assert_eq!(t.policies[0].in_run, 0);
    assert_eq!(t.policies[0].alone, 1);
    assert!(study.warnings.is_empty(), "{:?}", study.warnings);
    // The table leads with the run's count, the replay in brackets.
    let table = study.to_table();
    assert!(
        table.contains("| 2 (1-1 s) | 1 | 1 (1) | 1 | 1 | 0 (1) |"),
        "{table}"
    );
}

fn optimum_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tetriserve"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("optimum")
        .args(args)
        .output()
        .expect("runs the binary")
}

#[test]
fn the_command_refuses_empty_windows_and_prints_every_window() {
    for (flag, value) in [
        ("--window", "0"),
        ("--window", "500"),
        ("--windows", "0"),
        ("--effort", "0"),
    ] {
        let o = optimum_cli(&[flag, value]);
        assert!(!o.status.success(), "{flag} {value} accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("{flag} {value}")), "{err}");
    }
    let args = [
        "--requests",
        "40",
        "--window",
        "5",
        "--windows",
        "2",
        "--policy",
        "rssp",
        "--policy",
        "tetriserve",
        "--format",
    ];
    let o = optimum_cli(&[&args[..], &["csv"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "header, two windows, total:\n{out}");
    assert!(
        lines[0].starts_with("window,seed,")
            && lines[0].ends_with(",in_run_rssp,in_run_tetriserve,alone_rssp,alone_tetriserve"),
        "{}",
        lines[0]
    );
    assert!(lines[3].starts_with("total,"), "{}", lines[3]);
    for row in &lines[1..3] {
        let v: Vec<&str> = row.split(',').collect();
        let num = |i: usize| v[i].parse::<usize>().unwrap();
        let (bound, low, high) = (num(11), num(12), num(13));
        assert_eq!(num(1), 42, "the default scenario's seed: {row}");
        assert_eq!(num(6), 5, "requests per window: {row}");
        assert!(v[7] == "true" || v[7] == "false", "{row}");
        assert!(low <= high && high <= bound, "{row}");
        for i in 17..21 {
            assert!(num(i) <= low, "{row}");
        }
    }
    let o = optimum_cli(&[&args[..], &["json"]].concat());
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["totals"]["requests"], 10);
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
    assert_eq!(json["seeds"], serde_json::json!([42]));
}

#[test]
fn seeds_study_each_workload_and_total_them() {
    let args = [
        "--requests",
        "40",
        "--window",
        "5",
        "--windows",
        "2",
        "--policy",
        "stepwise",
        "--format",
        "json",
    ];
    let json = |extra: &[&str]| -> serde_json::Value {
        let o = optimum_cli(&[&args[..], extra].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let both = json(&["--seeds", "3,7"]);
    let (three, seven) = (json(&["--seed", "3"]), json(&["--seed", "7"]));
    assert_eq!(both["seeds"], serde_json::json!([3, 7]));
    let rows = both["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    // Each seed's windows, in order, as the single-seed study has them.
    assert_eq!(rows[..2], three["rows"].as_array().unwrap()[..]);
    assert_eq!(rows[2..], seven["rows"].as_array().unwrap()[..]);
    assert_ne!(rows[0], rows[2], "seeds 3 and 7 give other windows");
    for key in [
        "requests",
        "optimum_low",
        "optimum_high",
        "bound",
        "best_in_run_met",
    ] {
        assert_eq!(
            both["totals"][key].as_u64().unwrap(),
            three["totals"][key].as_u64().unwrap() + seven["totals"][key].as_u64().unwrap(),
            "{key}"
        );
    }
    // The table names each row's seed.
    let o = optimum_cli(&[&args[..8], &["--seeds", "3,7"]].concat());
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| seed | window |"), "{table}");
    assert!(table.contains("\n| 7 | 2 ("), "{table}");
    // Refused: repeated seeds, beside --seed, with a trace.
    for (extra, says) in [
        (&["--seeds", "1,1"][..], "--seeds 1,1: seed 1 appears twice"),
        (
            &["--seeds", "1,2", "--seed", "3"][..],
            "--seeds 1,2 beside --seed 3",
        ),
    ] {
        let o = optimum_cli(&[&args[..], extra].concat());
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{err}");
    }
    let o = optimum_cli(&["--trace", "traces/tiny.csv", "--seeds", "1,2"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--seeds 1,2: the workload is the trace traces/tiny.csv"),
        "{err}"
    );
}

#[test]
fn a_request_that_fits_a_window_exactly_is_not_pruned() {
    // Two GPUs. R0 (256 px, 2 steps, 56-176 ms) fits only at SP2 started at once (2 x 60 ms);
    // R1 (256 px, 1 step, 140-240 ms) then runs at SP2 from 176 to 236: both are met, as
    // xDiT SP2 meets them. On the window 140-176 ms, R0 has 0.6 of a step to do in 36 ms,
    // exactly what SP2 does there: a float division gives 0.6000000000000001 steps, which
    // the search's energetic test must not read as more than fits.
    let w = Workload::from_requests(vec![req(0, 56, SMALL, 2, 120), req(1, 140, SMALL, 1, 100)]);
    let c = cluster(2);
    let costs = costs(&w, &c);
    let overheads = Overheads::default();
    let sol = optimum(&w, &costs, &c, &overheads);
    assert_eq!((sol.lower, sol.upper), (2, 2));
    let run = run_kind_with(PolicyKind::XditSp(2), &w, &c, overheads).unwrap();
    assert!(run.requests.iter().all(|r| r.outcome == Outcome::Met));
}
