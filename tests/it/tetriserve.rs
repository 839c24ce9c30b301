//! TetriServe's options: batching, dropping, multi-node assignment, all under the invariant
//! checker.

use proptest::prelude::*;
use tetriserve::Nanos;
use tetriserve::cluster::{Cluster, Link, Topology};
use tetriserve::cost::{CostModel, Overheads, StepTimes};
use tetriserve::engine::{self, SimExecutor};
use tetriserve::error::Result;
use tetriserve::metrics::invariants::check_run;
use tetriserve::metrics::{Outcome, RunRecords, WorkRecord};
use tetriserve::policy::tetriserve::{RoundLength, TetriserveConfig};
use tetriserve::policy::{Tetriserve, Variant};
use tetriserve::workload::{Resolution, Workload};

use crate::util::{LARGE, SMALL, ms, req};

/// Like the tiny costs, but a batch of b costs (1 + (b - 1) / 2) single steps: batching pays.
struct BatchingCosts;

impl CostModel for BatchingCosts {
    fn step_time(&self, res: Resolution, k: u32, batch: u32, _link: Link) -> Result<Nanos> {
        let single = crate::util::TinyCosts.step_time(res, k, 1, Link::NvLink)?;
        Ok(Nanos(single.0 * u64::from(batch + 1) / 2))
    }
    fn describe(&self) -> String {
        "batching test costs".into()
    }
}

fn run(w: &Workload, cluster: &Cluster, config: TetriserveConfig) -> (RunRecords, StepTimes) {
    run_variant(Variant::FULL, w, cluster, config)
}

fn run_variant(
    variant: Variant,
    w: &Workload,
    cluster: &Cluster,
    config: TetriserveConfig,
) -> (RunRecords, StepTimes) {
    let costs = StepTimes::resolve(&BatchingCosts, &w.resolutions(), cluster, &[1, 2, 4]).unwrap();
    let overheads = Overheads {
        remap_fraction: 0.0,
        ..Overheads::default()
    };
    let mut p = Tetriserve::new(variant, cluster, &costs, config, overheads.clone());
    let mut exec = SimExecutor::new(&costs, overheads);
    let run = engine::run(w, cluster, &costs, &mut p, &mut exec).unwrap();
    (run, costs)
}

fn expected(costs: &StepTimes) -> impl Fn(&WorkRecord) -> Nanos + '_ {
    move |w| {
        let class = costs.class_of(w.resolution).unwrap();
        costs
            .get(class, w.gpus.len(), w.requests.len() as u32, Link::NvLink)
            .unwrap()
            .times(u64::from(w.steps))
    }
}

fn one_node(gpus: u32) -> Cluster {
    Cluster::new("tiny", 1, gpus, Topology::NvSwitch).unwrap()
}

#[test]
fn identical_small_requests_are_batched_when_enabled() {
    // Eight identical 256 px requests at once on one GPU: batched in fours they finish far
    // sooner than one by one.
    let w = Workload::from_requests((0..8).map(|i| req(i, 0, SMALL, 4, 5000)).collect());
    let config = TetriserveConfig {
        batching: true,
        round: RoundLength::Fixed(ms(1000)),
        ..Default::default()
    };
    let (batched, costs) = run(&w, &one_node(1), config.clone());
    assert!(
        batched.works.iter().any(|x| x.requests.len() == 4),
        "{:?}",
        batched.works
    );
    assert!(check_run(&batched, &w, Some(&expected(&costs))).is_empty());
    let (single, _) = run(
        &w,
        &one_node(1),
        TetriserveConfig {
            batching: false,
            ..config
        },
    );
    assert!(single.works.iter().all(|x| x.requests.len() == 1));
    assert!(batched.makespan() < single.makespan());
}

#[test]
fn late_requests_are_dropped_only_when_asked() {
    // A 512 px request that needs 5 x 60 ms at best but has 100 ms.
    let w = Workload::from_requests(vec![req(0, 0, LARGE, 5, 100), req(1, 0, SMALL, 2, 1000)]);
    let (kept, _) = run(&w, &one_node(8), TetriserveConfig::default());
    assert_eq!(
        kept.requests[0].outcome,
        Outcome::Missed,
        "best effort: it still completes"
    );
    let (dropped, _) = run(
        &w,
        &one_node(8),
        TetriserveConfig {
            drop_late_after: Some(Nanos::ZERO),
            ..Default::default()
        },
    );
    assert_eq!(dropped.requests[0].outcome, Outcome::Dropped);
    assert_eq!(dropped.requests[1].outcome, Outcome::Met);
}

#[test]
fn requests_spread_over_nodes_by_outstanding_work() {
    let cluster = Cluster::new("tiny", 2, 2, Topology::NvSwitch).unwrap();
    let w = Workload::from_requests((0..6).map(|i| req(i, 0, LARGE, 6, 3000)).collect());
    let (r, costs) = run(&w, &cluster, TetriserveConfig::default());
    assert!(check_run(&r, &w, Some(&expected(&costs))).is_empty());
    let nodes: std::collections::BTreeSet<u32> = r.works.iter().map(|x| x.gpus.node()).collect();
    assert_eq!(nodes.len(), 2, "both nodes serve requests");
    let s = tetriserve::metrics::Summary::of(&r);
    assert_eq!(s.per_node.len(), 2);
    assert_eq!(s.per_node.iter().map(|n| n.requests).sum::<usize>(), 6);
    assert!(
        s.per_node
            .iter()
            .all(|n| n.requests > 0 && n.gpu_seconds > 0.0)
    );
    let total: f64 = s.per_node.iter().map(|n| n.gpu_seconds).sum();
    assert!(
        (total - s.gpu_seconds).abs() < 1e-6,
        "node GPU time adds up to the run's"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every option combination, random workloads, one or two nodes: the invariants hold.
    #[test]
    fn options_keep_the_invariants(
        rows in prop::collection::vec((0u64..2000, any::<bool>(), 1u32..10, 0u64..3000), 1..30),
        batching in any::<bool>(),
        drop in any::<bool>(),
        literal in any::<bool>(),
        nodes in 1u32..3,
        gpus_log2 in 0u32..3,
    ) {
        let w = Workload::from_requests(
            rows.into_iter().enumerate().map(|(i, (t, big, steps, slo))| req(i as u64, t, if big { LARGE } else { SMALL }, steps, slo)).collect(),
        );
        let cluster = Cluster::new("tiny", nodes, 1 << gpus_log2, Topology::NvSwitch).unwrap();
        let config = TetriserveConfig {
            batching,
            drop_late_after: drop.then_some(ms(500)),
            round_aware_plans: !literal,
            fill_rounds: !literal,
            backfill: !literal,
            snap_rounds: !literal,
            ..Default::default()
        };
        let (r, costs) = run(&w, &cluster, config);
        let errors = check_run(&r, &w, Some(&expected(&costs)));
        prop_assert!(errors.is_empty(), "{errors:#?}");
        if !drop {
            prop_assert!(r.requests.iter().all(|x| x.outcome != Outcome::Dropped));
        }
    }
}

#[test]
fn overload_shedding_trades_one_expensive_request_for_four_cheap_ones() {
    // One GPU, everything due at 1 s. The 512 px request needs 3 x 300 ms, each 256 px one
    // 2 x 100 ms: 1.7 s of work for 1 s. Serving the large one first (it arrived first) meets
    // only it; shedding it meets the four small ones, and it still completes best-effort.
    let mut reqs = vec![req(0, 0, LARGE, 3, 1000)];
    reqs.extend((1..5).map(|i| req(i, 0, SMALL, 2, 1000)));
    let w = Workload::from_requests(reqs);
    let met = |r: &RunRecords| {
        r.requests
            .iter()
            .filter(|x| x.outcome == Outcome::Met)
            .map(|x| x.id)
            .collect::<Vec<_>>()
    };
    let (plain, costs) = run(&w, &one_node(1), TetriserveConfig::default());
    assert_eq!(met(&plain), vec![0]);
    let (shed, _) = run_variant(Variant::SHED, &w, &one_node(1), TetriserveConfig::default());
    assert!(check_run(&shed, &w, Some(&expected(&costs))).is_empty());
    assert_eq!(met(&shed), vec![1, 2, 3, 4]);
    assert_eq!(shed.requests[0].outcome, Outcome::Missed);
    // The small ones back to back, then the large one best-effort: two steps fit the rest of
    // the first round (tau = 5 x 300 ms = 1.5 s), the third runs at the next boundary.
    let schedule: Vec<(u64, u64, u64, u32)> = shed
        .works
        .iter()
        .map(|x| {
            (
                x.requests[0],
                x.start.0 / 1_000_000,
                x.end.0 / 1_000_000,
                x.steps,
            )
        })
        .collect();
    assert_eq!(
        schedule,
        vec![
            (1, 0, 200, 2),
            (2, 200, 400, 2),
            (3, 400, 600, 2),
            (4, 600, 800, 2),
            (0, 800, 1400, 2),
            (0, 1500, 1800, 1)
        ]
    );
}

#[test]
fn without_overload_shedding_changes_nothing() {
    // Ten requests, one every 2 s, each alone on the node: records are identical.
    let w = Workload::from_requests(
        (0..10)
            .map(|i| req(i, i * 2000, if i % 2 == 0 { LARGE } else { SMALL }, 4, 1500))
            .collect(),
    );
    let (plain, _) = run(&w, &one_node(2), TetriserveConfig::default());
    let (shed, _) = run_variant(Variant::SHED, &w, &one_node(2), TetriserveConfig::default());
    assert_eq!(plain.requests, shed.requests);
    assert_eq!(plain.works, shed.works);
}

#[test]
fn placement_preservation_keeps_requests_on_their_gpus() {
    // With a costly hand-off (a fifth of a step) on NVLink-pair nodes, DP + placement
    // preservation must move requests far less often than DP alone, and charge each move:
    // every work marked `remap` changes its request's GPU set, and no other work does.
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("pp.toml");
    std::fs::write(
        &s,
        "[cluster]\ntopology = \"nvlink-pairs\"\n[overheads]\nremap_fraction = 0.2\n[workload]\nrequests = 120\n",
    )
    .unwrap();
    let remaps = |policy: &str| {
        let scenario = tetriserve::scenario::Scenario::load(
            Some(&s),
            &tetriserve::scenario::Overrides {
                policies: vec![policy.into()],
                ..Default::default()
            },
        )
        .unwrap();
        let run = tetriserve::simulate::simulate(&scenario).unwrap().remove(0);
        let mut last: std::collections::HashMap<u64, tetriserve::cluster::GpuSet> =
            Default::default();
        for w in &run.records.works {
            let moved = w
                .requests
                .iter()
                .any(|r| last.get(r).is_some_and(|g| *g != w.gpus));
            assert_eq!(w.remap, moved, "{policy}: remap flag of {w:?}");
            for &r in &w.requests {
                last.insert(r, w.gpus);
            }
        }
        run.records.requests.iter().map(|r| r.remaps).sum::<u32>()
    };
    let (dp, pp) = (remaps("tetriserve-dp"), remaps("tetriserve-dp-pp"));
    assert!(pp * 2 < dp, "dp-pp moved {pp} times, dp {dp}");
}

/// TetriServe with a fixed round of `tau_ms`.
fn fixed_round(tau_ms: u64) -> TetriserveConfig {
    TetriserveConfig {
        round: RoundLength::Fixed(ms(tau_ms)),
        ..TetriserveConfig::default()
    }
}

#[test]
fn a_round_shorter_than_every_step_runs_one_step_at_a_time() {
    // 30 ms rounds, 256 px steps of 100 ms on one GPU: no step fits a round, so each runs
    // alone, overrunning it, and the next starts as the GPU comes back (not at a boundary).
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 4, 500)]);
    let (r, costs) = run(&w, &one_node(1), fixed_round(30));
    assert!(check_run(&r, &w, Some(&expected(&costs))).is_empty());
    let works: Vec<(u64, u64, u32)> = r
        .works
        .iter()
        .map(|x| (x.start.0 / 1_000_000, x.end.0 / 1_000_000, x.steps))
        .collect();
    assert_eq!(
        works,
        vec![(0, 100, 1), (100, 200, 1), (200, 300, 1), (300, 400, 1)]
    );
    assert_eq!(r.requests[0].outcome, Outcome::Met);
}

#[test]
fn fixed_costs_that_push_a_step_past_every_round_do_not_starve_it() {
    // 100 ms rounds and 100 ms steps on one GPU, but the first step also pays a 10 ms text
    // encoder: it can never fit a round, so it runs at once, overrunning the first round;
    // the later steps fit rounds again (from the boundary at 200 ms).
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 3, 1000)]);
    let cluster = one_node(1);
    let costs = StepTimes::resolve(&BatchingCosts, &w.resolutions(), &cluster, &[1]).unwrap();
    let overheads = Overheads {
        remap_fraction: 0.0,
        text_encoder: ms(10),
        ..Overheads::default()
    };
    let mut p = Tetriserve::new(
        Variant::FULL,
        &cluster,
        &costs,
        fixed_round(100),
        overheads.clone(),
    );
    let mut exec = SimExecutor::new(&costs, overheads);
    let r = engine::run(&w, &cluster, &costs, &mut p, &mut exec).unwrap();
    let works: Vec<(u64, u64, u32)> = r
        .works
        .iter()
        .map(|x| (x.start.0 / 1_000_000, x.end.0 / 1_000_000, x.steps))
        .collect();
    assert_eq!(works, vec![(0, 110, 1), (200, 300, 1), (300, 400, 1)]);
    assert_eq!(r.requests[0].outcome, Outcome::Met);
}

/// (request label, start ms, end ms, steps) of one work.
type TinyWork = (u64, f64, f64, u32);

/// A run of `variant` with the shared tiny costs (`util`) and `config`, checked by the
/// invariant checker: (request label, start ms, end ms as text, steps) per work, and the
/// outcomes.
fn tiny_run(
    variant: Variant,
    w: &Workload,
    cluster: &Cluster,
    config: &tetriserve::policy::PolicyConfig,
) -> (Vec<TinyWork>, Vec<&'static str>) {
    let costs = crate::util::costs(w, cluster);
    let mut p = tetriserve::policy::build(
        tetriserve::policy::PolicyKind::Tetriserve(variant),
        cluster,
        &costs,
        config,
    )
    .unwrap();
    let mut exec = SimExecutor::new(&costs, config.overheads.clone());
    let run = engine::run(w, cluster, &costs, p.as_mut(), &mut exec).unwrap();
    let errors = check_run(&run, w, None);
    assert!(errors.is_empty(), "{errors:?}");
    let works = run
        .works
        .iter()
        .map(|x| {
            (
                x.requests[0],
                x.start.0 as f64 / 1e6,
                x.end.0 as f64 / 1e6,
                x.steps,
            )
        })
        .collect();
    let outcomes = run.requests.iter().map(|r| r.outcome.as_str()).collect();
    (works, outcomes)
}

/// The policies' configuration with `overheads` charged and planned for.
fn with_overheads(overheads: Overheads) -> tetriserve::policy::PolicyConfig {
    tetriserve::policy::PolicyConfig {
        overheads,
        ..Default::default()
    }
}

#[test]
fn a_group_set_up_once_is_not_planned_for_again() {
    // One 512 px request on 2 GPUs (160 ms steps at SP2), 5 steps, due 1,000 ms after it
    // arrives at 200 ms. Rounds of 5 reference steps: 800 ms. Costs beyond the steps: text
    // encoder 20 ms, group set-up 30 ms (once per group), dispatch 5 ms per work, VAE decode
    // 5 ms per 1,000 tokens (5.12 ms for 1,024 tokens). The first round fits 4 steps:
    // 640 + 20 + 30 + 5 = 695 ms, 200-895. At the next round (1,000 ms) the last step with
    // its dispatch and decode, 160 + 5 + 5.12, ends at 1,170.12, on time. Planned as if the
    // set-up were due again (+30 ms: 1,200.12) it would not fit, and the request, late,
    // would be dropped 200 ms after its deadline.
    let w = Workload::from_requests(vec![req(0, 200, LARGE, 5, 1_000)]);
    let mut config = tetriserve::policy::PolicyConfig {
        overheads: Overheads {
            text_encoder: ms(20),
            vae_decode_per_1k_tokens: ms(5),
            remap_fraction: 0.0,
            group_setup: ms(30),
            group_setup_on_regroup: false,
            dispatch: ms(5),
            node_handoff: Nanos::ZERO,
        },
        ..Default::default()
    };
    config.tetriserve.snap_rounds = false;
    config.tetriserve.drop_late_after = Some(ms(200));
    let (works, outcomes) = tiny_run(Variant::DP_ONLY, &w, &one_node(2), &config);
    assert_eq!(works, vec![(0, 200.0, 895.0, 4), (0, 1_000.0, 1_170.12, 1)]);
    assert_eq!(outcomes, vec!["met"]);
}

#[test]
fn a_new_groups_set_up_is_planned_into_its_first_round() {
    // Two GPUs, a 30 ms group set-up. R (256 px, 5 steps, due 400 ms after it arrives at
    // 150) needs SP2 (5 x 100 ms at SP1 is too slow). Rounds of 5 reference steps (the 256
    // px step at SP2, 60 ms): 300 ms, 150-450 and on. The set-up is due on the pair's first
    // work, so the first round fits 4 steps, 30 + 240 = 270 ms (150-420), not 5 (330 ms);
    // the last step runs in the next round, on one GPU (the least GPU-time that still meets
    // the deadline): 450-550, exactly on time.
    let w = Workload::from_requests(vec![req(0, 150, SMALL, 5, 400)]);
    let config = tetriserve::policy::PolicyConfig {
        overheads: Overheads {
            remap_fraction: 0.0,
            group_setup: ms(30),
            ..Overheads::default()
        },
        ..Default::default()
    };
    let (works, outcomes) = tiny_run(Variant::DP_ONLY, &w, &one_node(2), &config);
    assert_eq!(works, vec![(0, 150.0, 420.0, 4), (0, 450.0, 550.0, 1)]);
    assert_eq!(outcomes, vec!["met"]);
}

#[test]
fn the_round_length_is_g_steps_of_the_largest_class_at_the_widest_degree() {
    // 256 and 512 px on two GPUs: the reference step is 512 px at SP2, 160 ms; 5 of them
    // make 800 ms (snapping off). Snapping picks 960 ms (six reference steps): of the step
    // times 100, 60, 300 and 160 ms it idles 60, 0, 60 and 0 ms (3.1% on average), where
    // 800 ms idles 0, 20, 200 and 0 (6.9%).
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 1, 1_000), req(1, 0, LARGE, 1, 1_000)]);
    let cluster = one_node(2);
    let costs = crate::util::costs(&w, &cluster);
    for snap in [false, true] {
        let config = TetriserveConfig {
            snap_rounds: snap,
            ..TetriserveConfig::default()
        };
        let p = Tetriserve::new(
            Variant::FULL,
            &cluster,
            &costs,
            config,
            Overheads::default(),
        );
        assert_eq!(p.tau(), ms(if snap { 960 } else { 800 }), "snapping {snap}");
    }
}

#[test]
fn a_round_run_directly_plans_the_window_from_now_to_a_round_later() {
    // `round` (what `decide` runs at a boundary) at 1,000 ms: one waiting 256 px request of
    // 7 steps on one GPU (100 ms steps), arrived then and due 800 ms later, so it must start
    // now; rounds of 5 steps of the largest class (500 ms). The window 1,000-1,500 holds 5
    // of its steps, dispatched at once (as `decide` did when it arrived).
    use tetriserve::policy::{Decision, Phase, Policy, RequestState, View};
    let w = Workload::from_requests(vec![req(0, 1_000, SMALL, 7, 800)]);
    let cluster = one_node(1);
    let costs = crate::util::costs(&w, &cluster);
    let overheads = Overheads {
        remap_fraction: 0.0,
        ..Overheads::default()
    };
    let mut p = Tetriserve::new(
        Variant::DP_ONLY,
        &cluster,
        &costs,
        TetriserveConfig::default(),
        overheads,
    );
    assert_eq!(p.tau(), ms(500));
    let r = &w.requests[0];
    let mut s = RequestState::new(r.clone(), costs.class_of(r.resolution).unwrap());
    s.phase = Phase::Waiting;
    let states = vec![s];
    let ids = [r.id];
    let free = cluster.all_free();
    // At 1,000 ms, with the request arriving then or already seen.
    let view = |arriving: bool| {
        let arrived: &[_] = if arriving { &ids } else { &[] };
        View::new(
            ms(1_000),
            &cluster,
            &costs,
            &free,
            &ids,
            arrived,
            &[],
            false,
            &states,
        )
    };
    // Seen arriving first (as `round` requires), at 1,000 ms.
    let mut out = Vec::new();
    p.decide(&view(true), &mut out);
    out.clear();
    p.round(&view(false), &mut out);
    let steps: Vec<u32> = out
        .iter()
        .filter_map(|d| match d {
            Decision::Dispatch(x) => Some(x.steps),
            _ => None,
        })
        .collect();
    assert_eq!(steps, vec![5]);
}

#[test]
fn a_reused_groups_backfill_is_planned_without_a_set_up_even_when_regroups_pay_one() {
    // Two GPUs; per work a 20 ms text encoder on a request's first work and a 30 ms set-up on
    // a group's first work and whenever a request moves onto a group (`on_regroup`). Rounds
    // of 5 reference steps (256 px at SP2, 60 ms): 300 ms. A (256 px, 1 step, lax) arrives
    // at 100, opening the round 100-400, and is widened to the idle pair (elastic scale-up):
    // 20 + 30 + 60 = 110 ms, 100-210.
    // B (256 px, 4 steps, due at 550: SP2 needed) arrives at 250 and backfills the rest of
    // the round, 150 ms, on the pair A set up, without moving: 20 + 2 x 60 = 140 ms fits two
    // steps, 250-390, and its last two run in the next round, 400-520, on time. Planned as if
    // the set-up were due again, only one step (110 ms) would fit, and three would end at 580.
    let w = Workload::from_requests(vec![req(0, 100, SMALL, 1, 250), req(1, 250, SMALL, 4, 300)]);
    let config = with_overheads(Overheads {
        text_encoder: ms(20),
        remap_fraction: 0.0,
        group_setup: ms(30),
        group_setup_on_regroup: true,
        node_handoff: Nanos::ZERO,
        ..Overheads::default()
    });
    for variant in [Variant::FULL, Variant::SHED] {
        let (works, outcomes) = tiny_run(variant, &w, &one_node(2), &config);
        assert_eq!(
            works,
            vec![
                (0, 100.0, 210.0, 1),
                (1, 250.0, 390.0, 2),
                (1, 400.0, 520.0, 2)
            ],
            "{variant:?}"
        );
        assert_eq!(outcomes, vec!["met", "met"], "{variant:?}");
    }
}

#[test]
fn a_request_turning_late_on_a_quiet_node_takes_its_idle_gpu_at_the_next_event_anywhere() {
    // Two nodes of two GPUs (`tetriserve-dp-pp`: no elastic scale-up), a VAE decode of 5 ms
    // per 1,000 tokens (1.28 ms at 256 px, 5.12 at 512). Rounds of 5 reference steps (512 px
    // at SP2, 160 ms) snap to 960 ms: boundaries at 0 and 960. A (512 px, 2 steps, due at
    // 250) cannot make it and runs best-effort on one GPU of node 0, 0-605.12. B (256 px, 5
    // steps, due at 450) arrives at 150 and goes to node 1. It is not late yet (5 x 60 ms at
    // SP2 ends at 450), but its plan, SP2 throughout, ends 1.28 ms past its deadline: no
    // packing keeps it, and it waits. From 150 ms plus 1 ns it is late, and a late request
    // may run best-effort on an idle GPU. Nothing happens on node 1 until 960, but A's
    // completion on node 0 at 605.12 calls a backfill, which revisits node 1 too: B runs on
    // one GPU until the round's end, 3 steps (605.12-905.12), then its last 2 from 960 with
    // the decode, to 1,161.28. (Revisiting only node 0 there, B would start at 960.)
    let w = Workload::from_requests(vec![req(0, 0, LARGE, 2, 250), req(1, 150, SMALL, 5, 300)]);
    let config = with_overheads(Overheads {
        vae_decode_per_1k_tokens: ms(5),
        remap_fraction: 0.0,
        ..Overheads::default()
    });
    let cluster = Cluster::new("tiny", 2, 2, Topology::NvSwitch).unwrap();
    let (works, outcomes) = tiny_run(Variant::DP_PP, &w, &cluster, &config);
    assert_eq!(
        works,
        vec![
            (0, 0.0, 605.12, 2),
            (1, 605.12, 905.12, 3),
            (1, 960.0, 1_161.28, 2)
        ]
    );
    assert_eq!(outcomes, vec!["missed", "missed"]);
}

#[test]
fn a_plan_that_stops_meeting_its_deadline_is_replanned_at_the_next_event_anywhere() {
    // Two nodes of four GPUs (`tetriserve-dp-pp`), 5 ms per dispatched work. Rounds of 5
    // reference steps (512 px at SP4, 90 ms) snap to 640 ms: boundaries at 0 and 640. A (512
    // px, 4 steps, due at 650) arrives at 0 on node 0. The cheapest plan that meets 650 ms is
    // SP2 (4 steps of 160 ms make 640), but with the dispatch only 3 steps fit the round and
    // the last one would end at 640 + 90 = 730: no packing keeps A, and it waits. B (512 px)
    // arrives at 150 and goes to node 1. The backfill B's arrival calls revisits node 0 too:
    // 500 ms left are too few for SP2, A's plan is now SP4, and 4 x 90 + 5 = 365 ms fit the
    // rest of the round: A runs 150-515, on time. (Left until 640, it would miss.)
    let w = Workload::from_requests(vec![req(0, 0, LARGE, 4, 650), req(1, 150, LARGE, 5, 1_450)]);
    let config = with_overheads(Overheads {
        remap_fraction: 0.0,
        dispatch: ms(5),
        ..Overheads::default()
    });
    let cluster = Cluster::new("tiny", 2, 4, Topology::NvSwitch).unwrap();
    let (works, outcomes) = tiny_run(Variant::DP_PP, &w, &cluster, &config);
    assert_eq!(works[0], (0, 150.0, 515.0, 4));
    assert_eq!(outcomes[0], "met");
}

#[test]
fn a_backfill_offers_the_narrowest_degree_whose_step_fits_not_an_overrunning_one() {
    // Two GPUs, 256 px (100 ms at SP1, 60 at SP2), a 20 ms text encoder, plans with the
    // nominal step times. Rounds of 5 reference steps (256 px at SP2): 300 ms. A (4 steps,
    // due at 550) and B (6 steps, due at 700) arrive at 0; both plans are SP1 throughout
    // (400 and 600 ms fit). The first round fits 2 steps each, 20 + 200 = 220 ms, one GPU
    // each. At 220 both GPUs idle for 80 ms: no SP1 step fits, so the backfill offers the
    // narrowest degree whose step does, SP2, and A runs a step on both, 220-280. (Offered
    // at SP1 as one overrunning step, A and B would fill the packing with steps that do
    // not fit, and nothing would run until 300.) At 300, A's last step (300-400) and 3 of
    // B's (300-600); B's last, widened to both GPUs, 600-660.
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 4, 550), req(1, 0, SMALL, 6, 700)]);
    let mut config = with_overheads(Overheads {
        text_encoder: ms(20),
        remap_fraction: 0.0,
        ..Overheads::default()
    });
    config.tetriserve.round_aware_plans = false;
    let (works, outcomes) = tiny_run(Variant::FULL, &w, &one_node(2), &config);
    assert_eq!(
        works,
        vec![
            (0, 0.0, 220.0, 2),
            (1, 0.0, 220.0, 2),
            (0, 220.0, 280.0, 1),
            (1, 300.0, 600.0, 3),
            (0, 300.0, 400.0, 1),
            (1, 600.0, 660.0, 1)
        ]
    );
    assert_eq!(outcomes, vec!["met", "met"]);
}

/// A TetriServe run of `variant` on `cluster` with `config`, checked by the invariant checker.
fn checked_run(
    variant: Variant,
    w: &Workload,
    cluster: &Cluster,
    config: &tetriserve::policy::PolicyConfig,
) -> RunRecords {
    let costs = crate::util::costs(w, cluster);
    let mut p = tetriserve::policy::build(
        tetriserve::policy::PolicyKind::Tetriserve(variant),
        cluster,
        &costs,
        config,
    )
    .unwrap();
    let mut exec = SimExecutor::new(&costs, config.overheads.clone());
    let run = engine::run(w, cluster, &costs, p.as_mut(), &mut exec).unwrap();
    let errors = check_run(&run, w, None);
    assert!(errors.is_empty(), "{errors:?}");
    run
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Backfills skip the nodes where no waiting request's step fits the rest of the round:
    /// they must decide exactly as backfills that plan every node with waiting requests and
    /// idle GPUs (`skip_quiet_nodes = false`).
    #[test]
    fn backfills_that_skip_quiet_nodes_decide_as_if_every_node_were_planned(
        nodes in 1u32..=4,
        per_node in prop::sample::select(vec![1u32, 2, 4, 8]),
        requests in prop::collection::vec((0u64..40, any::<bool>(), 1u32..=8, 2u64..40), 4..40),
        variant in prop::sample::select(vec![
            Variant::DP_ONLY, Variant::DP_PP, Variant::FULL, Variant::SHED,
        ]),
        knobs in any::<u16>(),
    ) {
        let w = Workload::from_requests(
            requests
                .iter()
                .enumerate()
                .map(|(i, &(at, large, steps, slo))| {
                    let res = if large { LARGE } else { SMALL };
                    req(i as u64, at * 25, res, steps, slo * 50)
                })
                .collect(),
        );
        let bit = |i: u32| knobs >> i & 1 == 1;
        let mut config = tetriserve::policy::PolicyConfig {
            overheads: Overheads {
                text_encoder: if bit(0) { ms(20) } else { Nanos::ZERO },
                vae_decode_per_1k_tokens: if bit(1) { ms(5) } else { Nanos::ZERO },
                remap_fraction: if bit(2) { 0.1 } else { 0.0 },
                group_setup: if bit(3) { ms(30) } else { Nanos::ZERO },
                group_setup_on_regroup: bit(4),
                dispatch: if bit(5) { ms(5) } else { Nanos::ZERO },
                node_handoff: Nanos::ZERO,
            },
            ..Default::default()
        };
        let t = &mut config.tetriserve;
        t.batching = bit(6);
        t.round_aware_plans = !bit(7);
        t.fill_rounds = !bit(8);
        if bit(9) {
            t.drop_late_after = Some(ms(u64::from(knobs >> 10 & 3) * 100));
        }
        t.shed.drop = bit(12);
        if bit(13) {
            // Rounds shorter than some steps (which then run one at a time, overrunning).
            t.round = RoundLength::Fixed(ms(50 + u64::from(knobs >> 14) * 40));
        }
        let cluster = Cluster::new("tiny", nodes, per_node, Topology::NvSwitch).unwrap();
        let fast = checked_run(variant, &w, &cluster, &config);
        config.tetriserve.skip_quiet_nodes = false;
        let every = checked_run(variant, &w, &cluster, &config);
        prop_assert_eq!(fast.works, every.works);
        prop_assert_eq!(fast.requests, every.requests);
    }
}
