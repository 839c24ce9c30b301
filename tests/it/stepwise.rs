//! `stepwise`: hand-computed schedules of its one-step grants (a lent GPU reclaimed at the
//! holder's next step boundary, a request running at the narrowest degree that meets its
//! deadline and narrowing once ahead, late work deferred while a request with a deadline lives
//! on the node), all under the invariant checker; and its revocable grants, which must run the
//! same steps on the same GPUs at the same times in fewer works (cut where a re-plan takes
//! the GPUs).

use tetriserve::Nanos;
use tetriserve::cluster::Cluster;
use tetriserve::cost::Overheads;
use tetriserve::engine::{self, SimExecutor};
use tetriserve::metrics::invariants::check_run;
use tetriserve::metrics::{RunRecords, WorkRecord};
use tetriserve::policy::{PolicyConfig, PolicyKind, StepwiseConfig};
use tetriserve::workload::Workload;
use tetriserve::workload::skipping::SkipSpec;

use crate::util::{LARGE, SMALL, cluster, costs, req};

/// The policies' configuration with `stepwise` serving hopeless requests best-effort
/// (`[policy.stepwise] hopeless = "serve"`) instead of giving them up.
fn serving() -> PolicyConfig {
    config(false, true, no_overheads())
}

/// No per-work costs (and no remap hand-off), as the hand-computed schedules assume.
fn no_overheads() -> Overheads {
    Overheads {
        remap_fraction: 0.0,
        ..Overheads::default()
    }
}

/// `stepwise`'s configuration: hopeless requests given up or served, grants revocable or
/// one-step, `overheads` charged and planned for.
fn config(give_up_hopeless: bool, revocable_grants: bool, overheads: Overheads) -> PolicyConfig {
    PolicyConfig {
        rssp_degrees: vec![(SMALL, 1), (LARGE, 2)],
        stepwise: StepwiseConfig {
            give_up_hopeless,
            revocable_grants,
        },
        overheads,
        ..Default::default()
    }
}

/// A `stepwise` run on `cluster` with `config`, checked by the invariant checker.
fn run_with(workload: &Workload, cluster: &Cluster, config: &PolicyConfig) -> RunRecords {
    let costs = costs(workload, cluster);
    let mut p = tetriserve::policy::build(PolicyKind::Stepwise, cluster, &costs, config).unwrap();
    let mut exec = SimExecutor::new(&costs, config.overheads.clone());
    let run = engine::run(workload, cluster, &costs, p.as_mut(), &mut exec).unwrap();
    let errors = check_run(&run, workload, None);
    assert!(errors.is_empty(), "{errors:?}");
    run
}

/// Consecutive works of one request on one GPU set, end to end, as one span: (request,
/// start ms, end ms, GPU set, steps), by start then request.
fn spans(run: &RunRecords) -> Vec<(u64, u64, u64, String, u32)> {
    let mut out: Vec<(u64, u64, u64, String, u32)> = Vec::new();
    let mut works: Vec<&WorkRecord> = run.works.iter().collect();
    works.sort_by_key(|w| (w.requests[0], w.start));
    for w in works {
        let (id, start, end) = (w.requests[0], w.start.0 / 1_000_000, w.end.0 / 1_000_000);
        let gpus = w.gpus.to_string();
        match out.last_mut() {
            Some(last) if last.0 == id && last.2 == start && last.3 == gpus => {
                last.2 = end;
                last.4 += w.steps;
            }
            _ => out.push((id, start, end, gpus, w.steps)),
        }
    }
    out.sort_by_key(|s| (s.1, s.0));
    out
}

/// The one-step run of `config` on `cluster`, after checking that revocable grants run the
/// same spans in no more works (no dispatch cost: with one, revocable grants pay fewer).
fn one_step_and_revocable(
    workload: &Workload,
    cluster: &Cluster,
    config: &PolicyConfig,
) -> RunRecords {
    let mut one = config.clone();
    one.stepwise.revocable_grants = false;
    let one_step = run_with(workload, cluster, &one);
    let mut rev = config.clone();
    rev.stepwise.revocable_grants = true;
    let revocable = run_with(workload, cluster, &rev);
    assert_eq!(spans(&revocable), spans(&one_step), "revocable vs one-step");
    assert_eq!(revocable.requests, one_step.requests);
    assert!(revocable.works.len() <= one_step.works.len());
    one_step
}

/// [`run`] with hopeless requests served best-effort.
fn run_serving(workload: &Workload, gpus: u32) -> RunRecords {
    one_step_and_revocable(workload, &cluster(gpus), &serving())
}

/// The outcome of request `label`.
fn outcome(run: &RunRecords, label: u64) -> &'static str {
    run.requests
        .iter()
        .find(|r| r.id == label)
        .unwrap()
        .outcome
        .as_str()
}

/// (start ms, end ms, degree) of each work of request `label`, in order.
fn works_of(run: &RunRecords, label: u64) -> Vec<(u64, u64, u32)> {
    run.works
        .iter()
        .filter(|w: &&WorkRecord| w.requests == [label])
        .map(|w| (w.start.0 / 1_000_000, w.end.0 / 1_000_000, w.gpus.len()))
        .collect()
}

/// The default `stepwise` with one-step grants on `gpus` GPUs (see
/// [`one_step_and_revocable`]).
fn run(workload: &Workload, gpus: u32) -> RunRecords {
    one_step_and_revocable(
        workload,
        &cluster(gpus),
        &config(true, true, no_overheads()),
    )
}

#[test]
fn a_lent_gpu_returns_at_the_holders_next_step() {
    // Tiny costs: 512 px steps take 300 ms on 1 GPU, 160 on 2; 256 px 100 ms on 1 GPU.
    // A (512 px, 4 steps, far deadline) is alone at t = 0: it needs 1 GPU and is lent the
    // second. B (256 px, 2 steps, due at 1,050 ms) arrives at 50 ms and waits only for A's
    // step to end at 160 ms; there B (earlier deadline) and A get one GPU each. When B is done
    // at 360 ms, A's step on one GPU runs until 460 ms, after which A is lent both again.
    let w = Workload::from_requests(vec![
        req(0, 0, LARGE, 4, 10_000),
        req(1, 50, SMALL, 2, 1_000),
    ]);
    let run = run(&w, 2);
    assert_eq!(works_of(&run, 1), vec![(160, 260, 1), (260, 360, 1)]);
    assert_eq!(
        works_of(&run, 0),
        vec![(0, 160, 2), (160, 460, 1), (460, 620, 2), (620, 780, 2)]
    );
}

#[test]
fn a_request_runs_at_its_need_and_narrows_once_ahead() {
    // R1 (256 px, 4 steps, due at 330 ms) cannot make it on one GPU (4 x 100 ms) but can on
    // two (4 x 60): it takes both. After two steps (120 ms) two steps on one GPU (200 ms) fit
    // the 210 ms left, so it narrows to one GPU and R2 (due late) starts on the other.
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 4, 330), req(1, 0, SMALL, 10, 5_000)]);
    let run = run(&w, 2);
    assert_eq!(
        works_of(&run, 0),
        vec![(0, 60, 2), (60, 120, 2), (120, 220, 1), (220, 320, 1)]
    );
    assert_eq!(works_of(&run, 1)[0], (120, 220, 1));
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

#[test]
fn late_work_waits_while_a_request_with_a_deadline_lives_on_the_node() {
    // L (512 px, 3 steps, due at 500 ms) cannot make it even alone (3 x 300 ms on the one
    // GPU); A (256 px, 2 steps, due at 1,000 ms) can. A runs first; served, L runs best
    // effort after; by default it is given up as it arrives.
    let w = Workload::from_requests(vec![req(0, 0, LARGE, 3, 500), req(1, 0, SMALL, 2, 1_000)]);
    let given_up = run(&w, 1);
    assert_eq!(works_of(&given_up, 1), vec![(0, 100, 1), (100, 200, 1)]);
    assert!(works_of(&given_up, 0).is_empty());
    assert_eq!(
        (outcome(&given_up, 0), outcome(&given_up, 1)),
        ("dropped", "met")
    );
    let run = run_serving(&w, 1);
    assert_eq!(works_of(&run, 1), vec![(0, 100, 1), (100, 200, 1)]);
    assert_eq!(
        works_of(&run, 0),
        vec![(200, 500, 1), (500, 800, 1), (800, 1_100, 1)]
    );
    assert_eq!((outcome(&run, 0), outcome(&run, 1)), ("missed", "met"));
}

#[test]
fn late_work_planned_with_skipped_steps_still_runs_to_the_end() {
    // With run-time skipping the policy plans with the steps expected to run (fewer than the
    // nominal count). L (512 px, 12 steps, due at 600 ms) is late even so; it must still be
    // served once A is done, and end exactly once, with every step in order.
    let mut w =
        Workload::from_requests(vec![req(0, 0, LARGE, 12, 600), req(1, 0, SMALL, 3, 1_000)]);
    SkipSpec::from_probability(0.5)
        .unwrap()
        .apply(&mut w, 7)
        .unwrap();
    let c = cluster(1);
    let run = crate::cache::run_skipping_with(PolicyKind::Stepwise, &w, &c, &serving());
    let errors = check_run(&run, &w, None);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(run.requests.iter().all(|r| r.steps_done == r.steps));
    let first_of_l = works_of(&run, 0)[0].0;
    let last_of_a = works_of(&run, 1).last().unwrap().1;
    assert!(
        first_of_l >= last_of_a,
        "late work ran while A lived: {first_of_l} < {last_of_a}"
    );
}

/// (start ms, end ms, node) of each work of request `label`, in order.
fn placed_works(run: &RunRecords, label: u64) -> Vec<(u64, u64, u32)> {
    run.works
        .iter()
        .filter(|w: &&WorkRecord| w.requests == [label])
        .map(|w| (w.start.0 / 1_000_000, w.end.0 / 1_000_000, w.gpus.node()))
        .collect()
}

#[test]
fn a_request_its_node_cannot_start_moves_to_an_idle_node_and_pays_the_hand_off() {
    use tetriserve::cluster::Topology;
    use tetriserve::time::Nanos;
    // Two nodes of one GPU. A (256 px, 2 steps, lax) goes to node 0 and B (512 px, 1 step of
    // 300 ms, lax) to node 1 at t = 0. C (256 px, 3 steps, due at 450 ms) arrives at 50 ms and
    // goes to node 0, whose outstanding work is smaller (200 ms against 300). From A's first
    // step end at 100 ms, C (earlier deadline) holds node 0 until 400 ms. At 300 ms node 1 is
    // idle while A waits on node 0: A moves there and runs its last step, paying the 5 ms
    // inter-node hand-off. Without the move it would have waited for node 0 until 400 ms.
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 2, 10_000),
        req(1, 0, LARGE, 1, 10_000),
        req(2, 50, SMALL, 3, 400),
    ]);
    let cluster = Cluster::new("tiny", 2, 1, Topology::NvSwitch).unwrap();
    let overheads = Overheads {
        remap_fraction: 0.0,
        node_handoff: Nanos::from_millis(5.0),
        ..Overheads::default()
    };
    let run = one_step_and_revocable(&w, &cluster, &config(true, true, overheads));
    assert_eq!(placed_works(&run, 1), vec![(0, 300, 1)]);
    assert_eq!(
        placed_works(&run, 2),
        vec![(100, 200, 0), (200, 300, 0), (300, 400, 0)]
    );
    assert_eq!(placed_works(&run, 0), vec![(0, 100, 0), (300, 405, 1)]);
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

#[test]
fn the_dispatch_cost_is_planned_per_work_and_grants_lengthen_to_afford_it() {
    use tetriserve::time::Nanos;
    // One GPU, 256 px steps of 100 ms, 10 ms per dispatched work. R (10 steps, due at
    // 1,050 ms) would end at 1,100 ms with a dispatch at every step; its slack after the
    // steps themselves (50 ms) affords five dispatches, so it runs five works of two steps.
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 10, 1_050)]);
    let overheads = Overheads {
        remap_fraction: 0.0,
        dispatch: Nanos::from_millis(10.0),
        ..Overheads::default()
    };
    let run = run_with(&w, &cluster(1), &config(true, false, overheads.clone()));
    assert!(check_run(&run, &w, None).is_empty());
    assert_eq!(
        works_of(&run, 0),
        vec![
            (0, 210, 1),
            (210, 420, 1),
            (420, 630, 1),
            (630, 840, 1),
            (840, 1_050, 1)
        ]
    );
    assert_eq!(run.requests[0].outcome.as_str(), "met");
    // Free dispatching keeps one-step grants.
    let one = run_with(&w, &cluster(1), &config(true, false, no_overheads()));
    assert_eq!(one.works.len(), 10);
    // A revocable grant runs every step in one work and pays one dispatch: done at 1,010 ms.
    let rev = run_with(&w, &cluster(1), &config(true, true, overheads));
    assert_eq!(works_of(&rev, 0), vec![(0, 1_010, 1)]);
    assert_eq!(rev.requests[0].outcome.as_str(), "met");
}

#[test]
fn hopeless_work_leaves_idle_what_an_arrival_that_cannot_wait_needs() {
    // One node of 4 GPUs. R0 and R1 (256 px, 3 steps, due 190 ms after arrival) each need 2
    // GPUs (3 x 60 ms) and could wait at most 10 ms: the class's tightest wait, learnt from R0.
    // L (512 px, 3 steps, due at 100 ms) is late for sure. After R0 (widened to 4 GPUs, done
    // at 120 ms), L runs alone; its steps hold GPUs far longer than 10 ms, so it leaves 2 GPUs
    // idle: at 2 GPUs (160 ms steps), not 4 (90 ms). R1 arrives at 310 ms during L's step and
    // starts at once on the 2 idle GPUs, on time. Widened to 4 GPUs, L's third step would have
    // run from 300 to 390 ms, and R1, starting at 390 ms, would have ended at 510 ms, after its
    // deadline of 500 ms. L resumes when R1 is done.
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 3, 190),
        req(1, 0, LARGE, 3, 100),
        req(2, 310, SMALL, 3, 190),
    ]);
    // By default L is given up as it arrives (3 x 90 ms at best, due at 100 ms), and R1 runs
    // at once on the whole node.
    let given_up = run(&w, 4);
    assert!(works_of(&given_up, 1).is_empty());
    assert_eq!(
        works_of(&given_up, 2),
        vec![(310, 350, 4), (350, 390, 4), (390, 430, 4)]
    );
    assert_eq!(
        (
            outcome(&given_up, 0),
            outcome(&given_up, 1),
            outcome(&given_up, 2)
        ),
        ("met", "dropped", "met")
    );
    let run = run_serving(&w, 4);
    assert_eq!(
        works_of(&run, 0),
        vec![(0, 40, 4), (40, 80, 4), (80, 120, 4)]
    );
    assert_eq!(
        works_of(&run, 2),
        vec![(310, 370, 2), (370, 430, 2), (430, 490, 2)]
    );
    assert_eq!(
        works_of(&run, 1),
        vec![(120, 280, 2), (280, 440, 2), (490, 650, 2)]
    );
    assert_eq!(
        (outcome(&run, 0), outcome(&run, 1), outcome(&run, 2)),
        ("met", "missed", "met")
    );
}

#[test]
fn grants_keep_the_dispatch_within_a_twentieth_so_early_dispatches_leave_room_for_later_work() {
    use tetriserve::time::Nanos;
    // One GPU, 256 px steps of 100 ms, 6 ms per dispatched work. A (10 steps, due at 1,345 ms)
    // arrives at 0 with slack for a dispatch at every step; B (3 steps, due at 750 ms)
    // arrives at 400 ms and goes first (earlier deadline).
    // Grants at least 2 steps long (6 ms is more than a twentieth of 100 ms): A runs 0-206 and
    // 206-412; B runs 412-618 (2 steps) and 618-724; A has 6 steps and 621 ms left, affording
    // three works of two steps: 724-930, 930-1,136, 1,136-1,342. Both are met.
    // With one-step grants (a dispatch within a tenth of a step), A would have paid four
    // dispatches by 424 ms and B three by 742 ms; A's 6 steps (600 ms) would then leave 3 ms,
    // less than one dispatch, and A would miss.
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 10, 1_345),
        req(1, 400, SMALL, 3, 350),
    ]);
    let overheads = Overheads {
        remap_fraction: 0.0,
        dispatch: Nanos::from_millis(6.0),
        ..Overheads::default()
    };
    let run = run_with(&w, &cluster(1), &config(true, false, overheads.clone()));
    assert!(check_run(&run, &w, None).is_empty());
    assert_eq!(works_of(&run, 1), vec![(412, 618, 1), (618, 724, 1)]);
    assert_eq!(
        works_of(&run, 0),
        vec![
            (0, 206, 1),
            (206, 412, 1),
            (724, 930, 1),
            (930, 1_136, 1),
            (1_136, 1_342, 1)
        ]
    );
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

#[test]
fn late_work_leaves_a_spare_gpu_idle_while_a_request_with_a_deadline_lives_on_the_node() {
    // Two GPUs, late work served best-effort. A (256 px, 10 steps, lax) needs one GPU; L
    // (512 px, 3 steps, due at 100 ms) is late for sure. A lives on the node, so L does not
    // take the second GPU: A is widened to both (60 ms steps). B (256 px, 2 steps, due 190 ms
    // after it arrives at 130 ms) needs both GPUs at once; it waits only for A's step to end
    // at 180 ms and runs 180-300, on time. Had L taken the spare GPU, its 300 ms step would
    // have held it until 300 ms and B would have ended at 420 ms, late.
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 10, 5_000),
        req(1, 0, LARGE, 3, 100),
        req(2, 130, SMALL, 2, 190),
    ]);
    let run = run_serving(&w, 2);
    assert_eq!(works_of(&run, 2), vec![(180, 240, 2), (240, 300, 2)]);
    assert_eq!(outcome(&run, 2), "met");
    let l = works_of(&run, 1);
    let a_end = works_of(&run, 0).last().unwrap().1;
    assert!(l[0].0 >= a_end, "late work ran while A lived: {l:?}");
}

#[test]
fn running_late_work_yields_at_its_next_boundary_when_a_request_with_a_deadline_arrives() {
    // Two GPUs, late work served best-effort. L (512 px, 3 steps, due at 100 ms) is alone and
    // late for sure: it runs widened to both GPUs (160 ms steps). B (256 px, 2 steps, due 190
    // ms after it arrives at 100 ms) needs both; L yields at its step boundary at 160 ms (a
    // revocable grant is cut there) and B runs 160-280, on time. L resumes after B.
    let w = Workload::from_requests(vec![req(0, 0, LARGE, 3, 100), req(1, 100, SMALL, 2, 190)]);
    let run = run_serving(&w, 2);
    assert_eq!(works_of(&run, 1), vec![(160, 220, 2), (220, 280, 2)]);
    assert_eq!(outcome(&run, 1), "met");
    assert_eq!(works_of(&run, 0)[0], (0, 160, 2));
}

#[test]
fn arrivals_go_where_the_outstanding_work_is_least_now_not_when_grants_were_made() {
    use tetriserve::cluster::Topology;
    // Two nodes of two GPUs, 256 px steps of 100 ms on one GPU, 60 ms on two. A (20 steps,
    // lax) starts widened to node 0 at 0, B (16 steps, lax) to node 1 at 400. C (2 steps,
    // lax) arrives at 710, when A has 9 steps left and B 11: it goes to node 0, where A
    // narrows to one GPU at its step boundary at 720 and C runs on the other, 720-920.
    // Revocable grants are not recounted at every step, so their progress since they were
    // made must count (a node's `drain`): counted as made (2,000 against 1,600 GPU-ms), C
    // would go to node 1 and start at B's boundary at 760.
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 20, 60_000),
        req(1, 400, SMALL, 16, 60_000),
        req(2, 710, SMALL, 2, 60_000),
    ]);
    let cluster = Cluster::new("tiny", 2, 2, Topology::NvSwitch).unwrap();
    let run = one_step_and_revocable(&w, &cluster, &config(true, true, no_overheads()));
    assert_eq!(placed_works(&run, 2), vec![(720, 820, 0), (820, 920, 0)]);
}

#[test]
fn a_shed_request_gets_its_whole_need_from_what_is_left_or_nothing() {
    // Two GPUs, both requests at 150 ms. R1 (256 px, 6 steps, due at 600) meets its deadline
    // only at SP2 (6 x 60 = 360 ms); R0 (512 px, 4 steps, due at 1,050) only at SP2 too (4 x
    // 160 = 640). Both cannot be met, so R0 is shed and R1 takes both GPUs. At 390 ms (two
    // steps left, 210 ms to its deadline) R1 needs only one GPU (2 x 100 ms). The other is
    // left, but R0's need is two: a shed request gets its whole need or nothing, so R0 does
    // not start a 300 ms step on one GPU; the GPU is lent to R1, done at 510 ms, and R0 then
    // runs at SP2, 510-1,150. (Granted one GPU, R0 would hold it until 690 ms and end at
    // 1,170.)
    let w = Workload::from_requests(vec![req(0, 150, LARGE, 4, 900), req(1, 150, SMALL, 6, 450)]);
    let run = run_serving(&w, 2);
    let at = |t: u64, k| (t, t + if k == 2 { 60 } else { 100 }, k);
    assert_eq!(
        works_of(&run, 1),
        (0..6).map(|i| at(150 + 60 * i, 2)).collect::<Vec<_>>()
    );
    assert_eq!(
        works_of(&run, 0),
        (0..4)
            .map(|i| (510 + 160 * i, 670 + 160 * i, 2))
            .collect::<Vec<_>>()
    );
    assert_eq!((outcome(&run, 0), outcome(&run, 1)), ("missed", "met"));
}

#[test]
fn the_text_encoder_is_planned_into_a_requests_first_work_only() {
    // Two GPUs, a 20 ms text encoder before a request's first step. R1 (256 px, 4 steps,
    // lax) is alone at 0 and lent both GPUs; its revocable grant's steps end at 20 + 60 j
    // ms: 80, 140, 200, 260. R0 (256 px, 1 step, lax) arrives at 200 ms, exactly at a step
    // boundary of R1 (the text encoder counted once, in the first work): R1 is cut there
    // after 3 steps and runs its last on one GPU (200-300), R0 on the other (20 + 100 ms,
    // 200-320). Planned without the encoder in the first work, the boundaries would be
    // expected at 60, 120, 180, 240: R1 would not be cut at 200 and would run on to 260.
    let w = Workload::from_requests(vec![
        req(1, 0, SMALL, 4, 1_150),
        req(0, 200, SMALL, 1, 1_500),
    ]);
    let overheads = Overheads {
        text_encoder: tetriserve::time::Nanos::from_millis(20.0),
        ..no_overheads()
    };
    let run = run_with(&w, &cluster(2), &config(true, true, overheads));
    assert_eq!(works_of(&run, 1), vec![(0, 200, 2), (200, 300, 1)]);
    assert_eq!(works_of(&run, 0), vec![(200, 320, 1)]);
}

#[test]
fn a_request_with_slack_for_its_dispatches_is_on_time_and_runs_a_step_per_work() {
    // Two GPUs, a 5 ms dispatch per work and a 30 ms group set-up (once). R (256 px, 4 steps)
    // arrives at 200 ms, due 1,300 ms later. At SP2 its steps end by 200 + 30 + 4 x 65 =
    // 490 ms, leaving room for some 200 more dispatches: it is on time, and its grants are
    // as short as the slack allows, one step: 200-295 (with the set-up), then 65 ms each.
    // (Were the room for dispatches not counted, it would be treated as late and granted
    // two steps at a time: 200-355, 355-480.)
    let w = Workload::from_requests(vec![req(0, 200, SMALL, 4, 1_300)]);
    let overheads = Overheads {
        group_setup: tetriserve::time::Nanos::from_millis(30.0),
        dispatch: tetriserve::time::Nanos::from_millis(5.0),
        ..no_overheads()
    };
    let run = run_with(&w, &cluster(2), &config(true, false, overheads.clone()));
    assert_eq!(
        works_of(&run, 0),
        vec![(200, 295, 2), (295, 360, 2), (360, 425, 2), (425, 490, 2)]
    );
    assert_eq!(outcome(&run, 0), "met");
    // Planned, its steps with their dispatches end at 200 + 4 x 65 = 460 ms (the set-up is
    // not planned for). Due at 462 ms, that leaves room for no further dispatch: the request
    // is late from the start. Late work runs best effort in longer grants (two steps here,
    // 200-355 with the set-up and one dispatch); past its deadline, it is then given up.
    let w = Workload::from_requests(vec![req(0, 200, SMALL, 4, 262)]);
    let run = run_with(&w, &cluster(2), &config(true, false, overheads.clone()));
    assert_eq!(works_of(&run, 0), vec![(200, 355, 2)]);
    assert_eq!(outcome(&run, 0), "dropped");
    // At the edge: the plan at SP2 (steps with their share of dispatches) ends at 475 ms.
    // Due at 475-479 ms the slack is under one dispatch: late as well. From 480 ms it is on
    // time, in two grants of two steps (one dispatch of slack for each).
    for (slo, works, end) in [
        (275, vec![(200, 355, 2)], "dropped"),
        (280, vec![(200, 355, 2), (355, 480, 2)], "met"),
    ] {
        let w = Workload::from_requests(vec![req(0, 200, SMALL, 4, slo)]);
        let run = run_with(&w, &cluster(2), &config(true, false, overheads.clone()));
        assert_eq!(
            (works_of(&run, 0), outcome(&run, 0)),
            (works, end),
            "due {slo} ms after"
        );
    }
}

#[test]
fn a_new_groups_set_up_is_counted_in_its_first_works_step_boundaries() {
    // As with the text encoder: two GPUs, a 30 ms set-up on a GPU pair's first work. R1
    // (256 px, 4 steps, lax) alone at 0 is lent both GPUs; its revocable grant's steps end
    // at 30 + 60 j ms: 90, 150, 210, 270. R0 (256 px, 1 step, lax) arrives at 210 ms, at a
    // boundary: R1 is cut there and runs its last step on one GPU (no set-up: a single GPU
    // is no group), 210-310, R0 on the other, 210-310.
    let w = Workload::from_requests(vec![
        req(1, 0, SMALL, 4, 1_150),
        req(0, 210, SMALL, 1, 1_500),
    ]);
    let overheads = Overheads {
        group_setup: tetriserve::time::Nanos::from_millis(30.0),
        ..no_overheads()
    };
    let run = run_with(&w, &cluster(2), &config(true, true, overheads));
    assert_eq!(works_of(&run, 1), vec![(0, 210, 2), (210, 310, 1)]);
    assert_eq!(works_of(&run, 0), vec![(210, 310, 1)]);
}

#[test]
fn running_late_work_is_not_cut_for_other_late_work() {
    // Two GPUs, late work served best-effort with revocable grants. L0 (512 px, 5 steps,
    // due at 700 ms) is late from the start (5 x 160 ms at SP2 = 800) and runs on both GPUs.
    // L1 (512 px, 2 steps) arrives at 250 ms due at 550, late too (2 x 160 from 320 ends at
    // 640). No request with a deadline it can meet lives on the node, so nothing cuts L0:
    // it runs to its end, 0-800, and L1 after it, 800-1,120. (Cut at its boundary at 320 ms,
    // L0 would have shared the GPUs with L1 and both would have ended later.)
    let w = Workload::from_requests(vec![req(0, 0, LARGE, 5, 700), req(1, 250, LARGE, 2, 300)]);
    let run = run_with(&w, &cluster(2), &serving());
    let spans_of = |label| {
        spans(&run)
            .into_iter()
            .filter(|s| s.0 == label)
            .map(|s| (s.1, s.2, s.4))
            .collect::<Vec<_>>()
    };
    assert_eq!(spans_of(0), vec![(0, 800, 5)]);
    assert_eq!(spans_of(1), vec![(800, 1_120, 2)]);
    assert_eq!((outcome(&run, 0), outcome(&run, 1)), ("missed", "missed"));
}

#[test]
fn an_arrival_goes_to_the_node_with_the_least_outstanding_work() {
    // Two nodes of one GPU, late work served. R0 (256 px, 3 steps, lax) arrives at 50 ms and
    // goes to node 0 (a tie: the first). R1 (512 px, 1 step of 300 ms, due 200 ms after it
    // arrives at 250, so late whatever happens) arrives as R0's last step starts, and goes
    // to the node with the least work still to do: node 0 has that step (100 ms), node 1
    // nothing. R1 runs there at once, 250-550. (Counting node 0's work as done by then would
    // send R1 behind R0, to 350-650: late requests do not move between nodes.)
    use tetriserve::cluster::Topology;
    let w = Workload::from_requests(vec![
        req(0, 50, SMALL, 3, 10_000),
        req(1, 250, LARGE, 1, 200),
    ]);
    let two = Cluster::new("tiny", 2, 1, Topology::NvSwitch).unwrap();
    let run = one_step_and_revocable(&w, &two, &serving());
    assert_eq!(
        placed_works(&run, 0),
        vec![(50, 150, 0), (150, 250, 0), (250, 350, 0)]
    );
    assert_eq!(placed_works(&run, 1), vec![(250, 550, 1)]);
}

#[test]
fn served_hopeless_work_takes_a_gpu_only_if_the_reserve_stays_idle() {
    // Two GPUs, late work served best-effort. R0 (256 px, 2 steps, due at 210 ms) needs one
    // GPU (2 x 100 ms) and could wait at most 10 ms: the class's tightest wait. L1 (512 px,
    // 1 step) and L2 (512 px, 2 steps), both due at 100 ms, are late for sure. R0 runs
    // widened to both GPUs, 0-120. Then L1 (fewer steps) takes one GPU: 2 idle, 1 left idle
    // for a 256 px arrival that cannot wait through a 300 ms step. L2 would leave none (1
    // idle, 0 after), so it waits, and L1 is not widened either; L2 runs when L1 is done,
    // again on one GPU.
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 2, 210),
        req(1, 0, LARGE, 1, 100),
        req(2, 0, LARGE, 2, 100),
    ]);
    let run = run_serving(&w, 2);
    assert_eq!(works_of(&run, 0), vec![(0, 60, 2), (60, 120, 2)]);
    assert_eq!(works_of(&run, 1), vec![(120, 420, 1)]);
    assert_eq!(works_of(&run, 2), vec![(420, 720, 1), (720, 1_020, 1)]);
}

/// Late work is held to the reserve for its step and its dispatch. Two GPUs, late work served
/// best-effort, 20 ms per dispatch. R0 (256 px, 2 steps, due at 510 ms) needs one GPU and
/// could wait at most 300 ms, the class's tightest wait: its steps are planned at 105 ms each
/// (a dispatch shared by the 4 steps that keep it within a twentieth). L1 and L2 (512
/// px, 1 step, due at 100 ms) are late for sure. R0 runs widened to both GPUs, 0-140 (one
/// dispatch, 2 x 60 ms). Then L1 takes one GPU: it holds it 300 + 20 = 320 ms, longer than a
/// 256 px arrival could wait, so one GPU stays idle for such an arrival and L2 waits (a step
/// of 300 ms without the dispatch would not outlast the wait: both would run). The reserve
/// does not stop L1's widening (160 + 20 ms fits the wait): L1 runs 140-320 on both GPUs, and
/// L2 after it, 320-500, the same way.
#[test]
fn late_work_is_held_to_the_reserve_for_its_step_and_its_dispatch() {
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 2, 510),
        req(1, 0, LARGE, 1, 100),
        req(2, 0, LARGE, 1, 100),
    ]);
    let overheads = Overheads {
        dispatch: Nanos::from_millis(20.0),
        ..no_overheads()
    };
    let run = run_with(&w, &cluster(2), &config(false, true, overheads));
    assert_eq!(works_of(&run, 0), vec![(0, 140, 2)]);
    assert_eq!(works_of(&run, 1), vec![(140, 320, 2)]);
    assert_eq!(works_of(&run, 2), vec![(320, 500, 2)]);
}

#[test]
fn a_running_request_is_priced_from_its_steps_expected_end() {
    // Two GPUs, all three requests at 0. E (256 px, 1 step, due at 100 ms) needs one GPU and
    // goes first (earliest deadline). A (512 px, 2 steps, due at 460 ms) needs two (2 x 160
    // ms; 2 x 300 is too slow) but only one is left: it runs its first step on it, 0-300. B
    // (256 px, 1 step, lax) claims nothing. When E ends at 100, A is priced from the end of
    // its running step at 300, not from now: its last step must run at SP2 (300 + 160 = 460),
    // so A claims both GPUs and B still gets none; the freed GPU stays idle until 300. A runs
    // 300-460 on both, then B widened to both, 460-520. (Priced from 100, A's last step would
    // fit on one GPU, 100 + 300 = 400, and B would have run 100-200.)
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 1, 100),
        req(1, 0, LARGE, 2, 460),
        req(2, 0, SMALL, 1, 5_000),
    ]);
    let run = run(&w, 2);
    assert_eq!(works_of(&run, 0), vec![(0, 100, 1)]);
    assert_eq!(works_of(&run, 1), vec![(0, 300, 1), (300, 460, 2)]);
    assert_eq!(works_of(&run, 2), vec![(460, 520, 2)]);
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

#[test]
fn a_cut_grant_holds_its_gpus_until_its_boundary() {
    // Two GPUs, revocable grants. X (512 px, 3 steps, lax) and Y (256 px, 2 steps, lax) start
    // at 0 on one GPU each: X granted all its steps on GPU 0 (boundaries at 300, 600), Y on
    // GPU 1 until 200. W (256 px, 1 step, due at 1,150 ms, before X) arrives at 150 and
    // claims one GPU first: the plan gives it X's GPU, so X's grant is cut at its boundary
    // at 300. When Y ends at 200, X is still running its step until 300: it is priced as
    // running, holding GPU 0, not as the revocable grant it was at 150 (whose GPUs were the
    // plan's to give). W starts at once on the idle GPU 1, 200-300; at 300 X resumes widened
    // to both GPUs (160 ms steps). (Planned on X's GPU again, W would wait until 300.)
    let w = Workload::from_requests(vec![
        req(0, 0, LARGE, 3, 10_000),
        req(1, 0, SMALL, 2, 10_000),
        req(2, 150, SMALL, 1, 1_000),
    ]);
    let rev = run_with(&w, &cluster(2), &config(true, true, no_overheads()));
    let span = |id, start, end, gpus: &str, steps| (id, start, end, gpus.to_string(), steps);
    assert_eq!(
        spans(&rev),
        vec![
            span(0, 0, 300, "n0:[0]", 1),
            span(1, 0, 200, "n0:[1]", 2),
            span(2, 200, 300, "n0:[1]", 1),
            span(0, 300, 620, "n0:[0,1]", 2)
        ]
    );
    // One-step grants run the same spans.
    run(&w, 2);
}

#[test]
fn an_admitted_request_waits_for_its_whole_need_rather_than_start_below_it() {
    // Two GPUs. S (256 px, 1 step, due at 100 ms) and L (512 px, 2 steps, lax) need one GPU
    // each and start at 0: S on GPU 0 until 100, L on GPU 1 until 300. B (256 px, 2 steps,
    // due at 440 ms) arrives at 290 and needs both GPUs (2 x 100 ms from 290 is too slow, 2
    // x 60 is not). One is idle: B does not start on it but waits for L's step to end, 10 ms
    // later, and runs 300-420 on both, on time; L then runs its last step widened, 420-580.
    // (Started on the idle GPU, B's first step would hold it until 390, and its last, on
    // both, would end at 450, late.)
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 1, 100),
        req(1, 0, LARGE, 2, 10_000),
        req(2, 290, SMALL, 2, 150),
    ]);
    let run = run(&w, 2);
    assert_eq!(works_of(&run, 0), vec![(0, 100, 1)]);
    assert_eq!(works_of(&run, 2), vec![(300, 360, 2), (360, 420, 2)]);
    assert_eq!(works_of(&run, 1), vec![(0, 300, 1), (420, 580, 2)]);
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

#[test]
fn a_spare_gpu_widens_the_grant_that_saves_the_most_time() {
    // Four GPUs, three lax one-step requests at 0, each needing one GPU: A and C (256 px)
    // and B (512 px). The one GPU left widens one of them: doubling saves B 300 - 160 = 140
    // ms, A or C only 100 - 60 = 40 ms. So B runs 0-160 on two GPUs, A and C 0-100 on one.
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 1, 10_000),
        req(1, 0, LARGE, 1, 10_000),
        req(2, 0, SMALL, 1, 10_000),
    ]);
    let run = run(&w, 4);
    assert_eq!(works_of(&run, 1), vec![(0, 160, 2)]);
    assert_eq!(works_of(&run, 0), vec![(0, 100, 1)]);
    assert_eq!(works_of(&run, 2), vec![(0, 100, 1)]);
}

/// The saving that decides is over the remaining steps, not per step. Four GPUs, three lax
/// requests at 0, each needing one GPU: A (256 px, 20 steps), B (512 px, 2 steps), C (256 px,
/// 1 step). Doubling saves B 140 ms a step but 280 ms in all, A 40 ms a step and 800 ms in
/// all (C 40 ms): the spare GPU widens A, whose first step runs 0-60 on two GPUs, while B
/// and C start on one each.
#[test]
fn a_spare_gpu_widens_the_grant_that_saves_the_most_remaining_time() {
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 20, 100_000),
        req(1, 0, LARGE, 2, 100_000),
        req(2, 0, SMALL, 1, 100_000),
    ]);
    let run = run(&w, 4);
    assert_eq!(works_of(&run, 0)[0], (0, 60, 2));
    assert_eq!(works_of(&run, 1)[0], (0, 300, 1));
    assert_eq!(works_of(&run, 2), vec![(0, 100, 1)]);
}

#[test]
fn a_revocable_grants_progress_counts_from_when_its_first_step_starts() {
    use tetriserve::cluster::Topology;
    // Two nodes of two GPUs, 256 px steps of 100 ms on one GPU (the cheapest GPU time, 100
    // GPU-ms), 60 ms on two. A (5 steps, lax) starts widened on node 0 at 0; B (4 steps,
    // lax) arrives at 80 and starts widened on node 1 (node 0 has work left, node 1 none).
    // C (2 steps, lax) arrives at 150. A grant at two GPUs does 100 GPU-ms of the cheapest
    // work per 60 ms: node 0 has 500 - 150 x 100 / 60 = 250 GPU-ms left, node 1 400 - (150 -
    // 80) x 100 / 60 = 283. C goes to node 0, where A narrows to one GPU at its boundary at
    // 180 and C runs on the other, 180-380. (B's progress counted as if from 0 less 80 ms,
    // 150 x 100 / 60 - 80 = 170 GPU-ms, would leave node 1 with 230 and send C there.)
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 5, 60_000),
        req(1, 80, SMALL, 4, 60_000),
        req(2, 150, SMALL, 2, 60_000),
    ]);
    let cluster = Cluster::new("tiny", 2, 2, Topology::NvSwitch).unwrap();
    let run = one_step_and_revocable(&w, &cluster, &config(true, true, no_overheads()));
    assert_eq!(
        placed_works(&run, 1),
        vec![(80, 140, 1), (140, 200, 1), (200, 260, 1), (260, 320, 1)]
    );
    assert_eq!(placed_works(&run, 2), vec![(180, 280, 0), (280, 380, 0)]);
    assert_eq!(
        works_of(&run, 0),
        vec![
            (0, 60, 2),
            (60, 120, 2),
            (120, 180, 2),
            (180, 280, 1),
            (280, 380, 1)
        ]
    );
}

#[test]
fn hopeless_work_is_not_widened_when_its_wider_step_and_dispatch_outlast_a_tight_wait() {
    use tetriserve::time::Nanos;
    // Two GPUs, one-step grants, a 10 ms dispatch per work (planned as a 5 ms share per 100
    // ms step of 256 px, whose grants amortise it over two steps). R0 (256 px, 1 step, due
    // at 265 ms) needs one GPU (105 ms planned) and could wait 160 ms: the class's tightest
    // wait. L (512 px, 2 steps, due at 100 ms) is late for sure and runs once R0 (widened,
    // 10 + 60 ms) is done at 70. On one GPU, L leaves the other idle (a step and its dispatch,
    // 310 ms, outlast 160 ms). Widened, its step would hold both GPUs for 160 + 10 = 170 ms,
    // still more than 160: L is not widened, and runs 70-380 and 380-690 on one GPU. (Its
    // step without the dispatch, 160 ms, would not outlast the wait.)
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 1, 265), req(1, 0, LARGE, 2, 100)]);
    let overheads = Overheads {
        dispatch: Nanos::from_millis(10.0),
        ..no_overheads()
    };
    let run = run_with(&w, &cluster(2), &config(false, false, overheads));
    assert_eq!(works_of(&run, 0), vec![(0, 70, 2)]);
    assert_eq!(works_of(&run, 1), vec![(70, 380, 1), (380, 690, 1)]);
}

#[test]
fn a_request_left_waiting_on_its_node_moves_when_another_node_frees_later() {
    use tetriserve::cluster::Topology;
    // Two nodes of one GPU, late work served, revocable grants. R0 (256 px, 2 steps, lax) runs on
    // node 0 from 0 to 200; L (512 px, 2 steps, due at 100 ms, late for sure) on node 1, its first
    // step 0-300. R1 (256 px, 1 step, lax) arrives at 100 and goes to node 1, which has no work
    // with a deadline (node 0 has R0's 100 ms); it waits there for L's step to end at 300. When R0
    // ends at 200, node 0 is idle: R1, still waiting on node 1, moves there and runs 200-300,
    // although nothing happened on node 1. L then runs its last step, 300-600. (Had R1 waited on
    // node 1, it would have run 300-400 and L 400-700.)
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 2, 10_000),
        req(1, 0, LARGE, 2, 100),
        req(2, 100, SMALL, 1, 10_000),
    ]);
    let two = Cluster::new("tiny", 2, 1, Topology::NvSwitch).unwrap();
    let run = run_with(&w, &two, &serving());
    assert_eq!(placed_works(&run, 0), vec![(0, 200, 0)]);
    assert_eq!(placed_works(&run, 2), vec![(200, 300, 0)]);
    assert_eq!(placed_works(&run, 1), vec![(0, 300, 1), (300, 600, 1)]);
}

#[test]
fn a_step_that_would_outlast_a_blocked_requests_start_does_not_take_its_reserved_gpu() {
    // Four GPUs, all lax but B and C. At 0, P and Q (512 px, 1 step) and R (256 px, 1 step)
    // take one GPU each and the fourth widens P, whose doubling saves the most: P runs 0-160
    // on two GPUs, Q 0-300, R 0-100. At 100 R ends, and B (256 px, 2 steps, due at 280 ms)
    // and C (256 px, 1 step, due at 500 ms) arrive. B needs two GPUs (2 x 100 ms from 100
    // is too slow); one is idle, and it is reserved for B, which can start when P's step
    // ends at 160. C's step on it would end at 200, after that: C waits too. At 160 B runs
    // on two GPUs, 160-280, on time, and C on the fourth, 160-260.
    let w = Workload::from_requests(vec![
        req(0, 0, LARGE, 1, 10_000),
        req(1, 0, LARGE, 1, 10_000),
        req(2, 0, SMALL, 1, 10_000),
        req(3, 100, SMALL, 2, 180),
        req(4, 100, SMALL, 1, 400),
    ]);
    let run = run(&w, 4);
    assert_eq!(works_of(&run, 0), vec![(0, 160, 2)]);
    assert_eq!(works_of(&run, 1), vec![(0, 300, 1)]);
    assert_eq!(works_of(&run, 2), vec![(0, 100, 1)]);
    assert_eq!(works_of(&run, 3), vec![(160, 220, 2), (220, 280, 2)]);
    assert_eq!(works_of(&run, 4), vec![(160, 260, 1)]);
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

/// Widening a grant counts its dispatch against a blocked request's start too. Four GPUs, 5 ms
/// per dispatch. At 0, P (512 px, 1 step) and R1, R2 (256 px, 1 step), all lax, take one GPU
/// each and the fourth widens P: P runs 0-165 on two GPUs, R1 and R2 0-105. At 105 both end;
/// E1 (256 px, 1 step, due 220) and E2 (256 px, 2 steps, due 300) arrive. E1 needs one GPU
/// and takes one (105-210); E2 needs two, one is idle: it is reserved for E2, which can start
/// when P ends at 165. Widening E1 onto it would run its step 105-170, past 165 with the
/// dispatch, so E1 stays on one GPU. At 165 E2 starts on two GPUs; when E1 ends at 210, the
/// node's re-plan widens E2 to all four from its next step boundary: 165-230 on two (5 + 60
/// ms), 230-275 on four (5 + 40 ms). Both are met.
#[test]
fn widening_a_grant_counts_its_dispatch_against_a_blocked_requests_start() {
    let w = Workload::from_requests(vec![
        req(0, 0, LARGE, 1, 10_000),
        req(1, 0, SMALL, 1, 10_000),
        req(2, 0, SMALL, 1, 10_000),
        req(3, 105, SMALL, 1, 115),
        req(4, 105, SMALL, 2, 195),
    ]);
    let overheads = Overheads {
        dispatch: Nanos::from_millis(5.0),
        ..no_overheads()
    };
    let run = run_with(&w, &cluster(4), &config(true, true, overheads));
    assert_eq!(works_of(&run, 0), vec![(0, 165, 2)]);
    assert_eq!(works_of(&run, 1), vec![(0, 105, 1)]);
    assert_eq!(works_of(&run, 3), vec![(105, 210, 1)]);
    assert_eq!(works_of(&run, 4), vec![(165, 230, 2), (230, 275, 4)]);
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

/// A running work's expected end counts what the executor charges it besides its steps.
/// Four GPUs, one-step grants, a 150 ms text encoder on each request's first work. At 100, R
/// (256 px, 2 steps, lax) and P, Q, X (512 px, 1 step, lax) take one GPU each: R's first
/// step runs 100-350, P, Q and X run 100-550 (150 + 300). At 350 B (256 px, 10 steps, due
/// 1200) arrives and needs two GPUs (10 x 100 ms from 350 is too slow, 150 + 10 x 60 is
/// not); only R's GPU is idle, reserved for B, which can start at 550 when P, Q and X end
/// (counting their encoder: without it they would seem to end at 400). R's next step on it
/// ends at 450, before 550, so R runs it, 350-450. At 550 B takes all four GPUs: 150 + 40
/// ms, then 40 ms a step, until 1100: met.
#[test]
fn a_running_works_expected_end_counts_its_fixed_costs() {
    let w = Workload::from_requests(vec![
        req(0, 100, SMALL, 2, 10_000),
        req(1, 100, LARGE, 1, 10_000),
        req(2, 100, LARGE, 1, 10_000),
        req(3, 100, LARGE, 1, 10_000),
        req(4, 350, SMALL, 10, 850),
    ]);
    let overheads = Overheads {
        text_encoder: Nanos::from_millis(150.0),
        ..no_overheads()
    };
    let run = run_with(&w, &cluster(4), &config(true, false, overheads));
    assert_eq!(works_of(&run, 1), vec![(100, 550, 1)]);
    assert_eq!(works_of(&run, 0), vec![(100, 350, 1), (350, 450, 1)]);
    let b = works_of(&run, 4);
    assert_eq!((b.len(), b[0], b[9]), (10, (550, 740, 4), (1060, 1100, 4)));
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

#[test]
fn a_step_that_ends_before_a_blocked_request_can_start_takes_its_reserved_gpu() {
    // Four GPUs. At 0, R (256 px, 2 steps, due at 5,000 ms) and P, Q, X (512 px, 1 step,
    // lax) take one GPU each: P, Q, X until 300, R's first step until 100. B (256 px, 6
    // steps, due at 680 ms) arrives at 100 and needs two GPUs (6 x 100 ms is too slow, 6 x
    // 60 is not). Only R's GPU is idle: it is reserved for B, which cannot start before a
    // second GPU frees at 300. R's next step on it ends at 200, before then, so R runs it
    // (backfilling), 100-200. At 300 B runs widened to all four GPUs, 40 ms a step, until 540.
    // (Kept from R, the GPU would have stayed idle until 300.)
    let w = Workload::from_requests(vec![
        req(0, 0, LARGE, 1, 10_000),
        req(1, 0, LARGE, 1, 10_000),
        req(2, 0, LARGE, 1, 10_000),
        req(3, 0, SMALL, 2, 5_000),
        req(4, 100, SMALL, 6, 580),
    ]);
    let run = run(&w, 4);
    assert_eq!(works_of(&run, 3), vec![(0, 100, 1), (100, 200, 1)]);
    for label in 0..3 {
        assert_eq!(works_of(&run, label), vec![(0, 300, 1)]);
    }
    assert_eq!(
        works_of(&run, 4),
        (0..6)
            .map(|i| (300 + 40 * i, 340 + 40 * i, 4))
            .collect::<Vec<_>>()
    );
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

#[test]
fn a_node_running_only_late_work_lends_its_idle_gpu() {
    use tetriserve::cluster::Topology;
    // Two nodes of one GPU, one-step grants, late work served. At 0, L (512 px, 2 steps, due
    // at 100 ms) goes to node 0 (a tie), A (256 px, 4 steps, due at 5,000 ms) to node 1, and W
    // (256 px, 1 step, lax) to node 1 too: its 400 ms of work are less than L's 600, not yet
    // found late. L is late for sure and runs on node 0, 0-300; A runs on node 1, 0-400, and
    // W waits behind it. When L's step ends at 300, node 0 serves no request with a deadline
    // and is idle: W moves there and runs 300-400, and L, which does not run while W lives on
    // its node, resumes at 400. (Without the move, W would have waited until 400 and run
    // 400-500.)
    let w = Workload::from_requests(vec![
        req(0, 0, LARGE, 2, 100),
        req(1, 0, SMALL, 4, 5_000),
        req(2, 0, SMALL, 1, 10_000),
    ]);
    let two = Cluster::new("tiny", 2, 1, Topology::NvSwitch).unwrap();
    let run = run_with(&w, &two, &config(false, false, no_overheads()));
    assert_eq!(
        placed_works(&run, 1),
        (0..4)
            .map(|i| (100 * i, 100 * i + 100, 1))
            .collect::<Vec<_>>()
    );
    assert_eq!(placed_works(&run, 2), vec![(300, 400, 0)]);
    assert_eq!(placed_works(&run, 0), vec![(0, 300, 0), (400, 700, 0)]);
}

#[test]
fn a_reused_groups_work_is_planned_without_a_set_up_so_its_grant_is_cut_at_a_real_boundary() {
    use tetriserve::time::Nanos;
    // Four GPUs, 256 px steps of 40 ms on four, 60 on two; 512 px 90 on four, 160 on two.
    // Per work: a 5 ms dispatch, a 20 ms text encoder on a request's first work, a 30 ms
    // set-up on a group's first work and on a request moved onto a group (`on_regroup`).
    // A (256 px, 1 step) at 0 runs on all four: 5 + 20 + 30 + 40 = 95 ms, and the group of
    // four is set up. B (256 px, 5 steps, lax) at 150 is lent the four: its first step ends
    // at 150 + 5 + 20 + 40 = 215 (no set-up: the group is reused). C (512 px, 5 steps, due at
    // 800) arrives at 200 and takes the four at B's boundary, 215: its grant's steps end at
    // 215 + 25 + 90 j = 330, 420, 510, 600, 690. Once ahead, at its boundary at 600, C narrows
    // to a new pair for its last step, 600 + 5 + 30 + 160 = 795 <= 800, and B runs on the
    // other pair. Were the reused group's set-up planned into C's grant, its boundaries would
    // be expected 30 ms late (630 is none of them) and C would run all five steps on four.
    let w = Workload::from_requests(vec![
        req(2, 0, SMALL, 1, 800),
        req(1, 150, SMALL, 5, 1_050),
        req(0, 200, LARGE, 5, 600),
    ]);
    let overheads = Overheads {
        remap_fraction: 0.0,
        text_encoder: Nanos::from_millis(20.0),
        group_setup: Nanos::from_millis(30.0),
        group_setup_on_regroup: true,
        dispatch: Nanos::from_millis(5.0),
        ..Overheads::default()
    };
    let run = run_with(&w, &cluster(4), &config(true, true, overheads));
    assert_eq!(works_of(&run, 2), vec![(0, 95, 4)]);
    assert_eq!(works_of(&run, 0), vec![(215, 600, 4), (600, 795, 2)]);
    assert_eq!(works_of(&run, 1)[..2], [(150, 215, 4), (600, 815, 2)]);
    assert!(run.requests.iter().all(|r| r.outcome.as_str() == "met"));
}

/// The first blocked request (earliest deadline) sets the block; a later one blocked too does
/// not replace it. One node of 4 GPUs, one-step grants. At 100 ms GPUs 0 and 2 are idle and
/// request 0 holds GPUs 1 and 3 for its 512 px step until 160 ms. Deadline order: 5 (256 px,
/// 4 steps left, due 600: need 1), 1 (512 px, 6 steps, due 1200: need 2), 4 (256 px, 4 steps,
/// due 1250: need 1). 5 takes GPU 0; 1 needs 2 GPUs and only one is idle, so it blocks,
/// reserving GPU 2 from when 0's step frees two GPUs, 160 ms; 4's step would outlast that, so
/// 4 waits too. GPU 2 is then lent to 5 for one SP 2 step that ends at 160 ms, exactly when 1
/// can start. Were 4's block to replace 1's (4 could start now), GPU 2 would sit idle for 4,
/// which does not get it either, and 5 would run its step at SP 1 until 200 ms.
#[test]
fn a_later_blocked_request_does_not_replace_the_first_ones_block() {
    let w = Workload::from_requests(vec![
        req(0, 0, LARGE, 4, 1400),
        req(5, 0, SMALL, 5, 600),
        req(6, 0, SMALL, 3, 1450),
        req(4, 50, SMALL, 4, 1200),
        req(1, 100, LARGE, 6, 1100),
    ]);
    let run = run_with(&w, &cluster(4), &config(true, false, no_overheads()));
    let at_100: Vec<(u64, u64, u32)> = works_of(&run, 5)
        .into_iter()
        .filter(|&(start, _, _)| start == 100)
        .collect();
    assert_eq!(at_100, vec![(100, 160, 2)], "{:?}", spans(&run));
}

/// The reserve that served hopeless work leaves idle is set by the tightest slack seen among
/// a class's arrivals, not the first. One node of 2 GPUs, 512 px only (300 ms a step at SP 1,
/// 160 at SP 2), 5 ms per dispatch, hopeless work served. At 100 ms request 0 (2 steps, due
/// 600: on an idle node it needs SP 2, with 175 ms to spare) and request 1 (3 steps, due 1050:
/// SP 1 with 45 ms to spare) arrive; request 2 (3 steps, due 600) at 250 can never make it.
/// 0 runs 100-265 at SP 2 and 265-570 at SP 1 beside 1's first step; 1 finishes at SP 2,
/// 570-895. Then only 2 is left: a 512 px arrival could not wait its work out (45 ms of slack,
/// one GPU), so one GPU stays idle and 2 runs at SP 1, 895-1800. Keeping the first arrival's
/// slack instead (175 ms at SP 2, the whole node: no reserve) would widen it to both GPUs.
#[test]
fn the_reserve_follows_the_tightest_slack_seen_in_a_class() {
    let w = Workload::from_requests(vec![
        req(0, 100, LARGE, 2, 500),
        req(1, 100, LARGE, 3, 950),
        req(2, 250, LARGE, 3, 350),
    ]);
    let overheads = Overheads {
        dispatch: crate::util::ms(5),
        ..no_overheads()
    };
    let run = run_with(&w, &cluster(2), &config(false, true, overheads));
    assert_eq!(works_of(&run, 2), vec![(895, 1800, 1)], "{:?}", spans(&run));
    assert_eq!(
        (outcome(&run, 0), outcome(&run, 1), outcome(&run, 2)),
        ("met", "met", "missed")
    );
}

/// A late request's end takes it off its node's running late work. Two nodes of 2 GPUs,
/// 256 px (60 ms a step at SP 2), a 20 ms text encoder, 5 ms per 1k tokens of VAE, a 30 ms
/// set-up for a new group, 5 ms per dispatch, hopeless work served. Request 0 (2 steps, due
/// 100 ms) cannot make it and runs best-effort on node 0's pair, 0-176.28 ms (2 x 60 + 20 +
/// 30 + 5 + 1.28). Request 1 (1 step) arrives at 200 to two idle nodes and takes node 0's
/// pair again, whose group needs no set-up: 200-286.28 ms. Were request 0 still counted as
/// running late work there, request 1 would go to node 1 and pay the set-up (316.28 ms).
#[test]
fn a_late_requests_end_takes_it_off_its_nodes_late_work() {
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 2, 100), req(1, 200, SMALL, 1, 1300)]);
    let ms = crate::util::ms;
    let overheads = Overheads {
        text_encoder: ms(20),
        vae_decode_per_1k_tokens: ms(5),
        group_setup: ms(30),
        group_setup_on_regroup: false,
        dispatch: ms(5),
        ..no_overheads()
    };
    let two = Cluster::new("tiny", 2, 2, tetriserve::cluster::Topology::NvSwitch).unwrap();
    let run = run_with(&w, &two, &config(false, true, overheads));
    let of = |label: u64| -> Vec<(u32, Nanos, Nanos)> {
        run.works
            .iter()
            .filter(|x| x.requests == [label])
            .map(|x| (x.gpus.node(), x.start, x.end))
            .collect()
    };
    assert_eq!(of(0), vec![(0, ms(0), Nanos(176_280_000))]);
    assert_eq!(of(1), vec![(0, ms(200), Nanos(286_280_000))]);
    assert_eq!((outcome(&run, 0), outcome(&run, 1)), ("missed", "met"));
}

/// A grant spans as many steps as the deadline's slack leaves dispatches for. One node of 2
/// GPUs, one-step grants, 5 ms per dispatch. Request 1 (512 px, 5 steps, due 1150 ms, at 50)
/// needs SP 2 (165 ms a work): 50-215, 215-380, 380-545. At 545 its 2 steps fit SP 1 with
/// exactly one dispatch (545 + 2 x 300 + 5 = 1150): no slack for a second, so both run in one
/// work, 545-1150, met, while request 0 (256 px, 6 steps, due 1650) takes the other GPU.
/// Granting one step there would leave 305 ms at SP 1 for the last step, too late, and push
/// request 1 back to both GPUs.
#[test]
fn a_grant_spans_as_many_steps_as_the_slack_leaves_dispatches_for() {
    let w = Workload::from_requests(vec![
        req(1, 50, LARGE, 5, 1100),
        req(0, 200, SMALL, 6, 1450),
    ]);
    let overheads = Overheads {
        dispatch: crate::util::ms(5),
        ..no_overheads()
    };
    let run = run_with(&w, &cluster(2), &config(false, false, overheads));
    assert_eq!(
        works_of(&run, 1),
        vec![(50, 215, 2), (215, 380, 2), (380, 545, 2), (545, 1150, 1)],
        "{:?}",
        spans(&run)
    );
    assert_eq!(works_of(&run, 0)[0], (545, 650, 1));
    assert_eq!((outcome(&run, 0), outcome(&run, 1)), ("met", "met"));
}

/// The run of the two drain tests below: two nodes of 2 GPUs, a 40 ms set-up for a new
/// group, revocable grants; lax 256 px requests Z (1 step at 0), A (5 at 100), B (4 at 180)
/// and C (2 at 250), and `more`.
fn two_nodes_with_a_set_up(more: &[tetriserve::workload::Request]) -> RunRecords {
    let mut requests = vec![
        req(9, 0, SMALL, 1, 60_000),
        req(0, 100, SMALL, 5, 60_000),
        req(1, 180, SMALL, 4, 60_000),
        req(2, 250, SMALL, 2, 60_000),
    ];
    requests.extend_from_slice(more);
    let overheads = Overheads {
        group_setup: crate::util::ms(40),
        ..no_overheads()
    };
    let cluster = Cluster::new("tiny", 2, 2, tetriserve::cluster::Topology::NvSwitch).unwrap();
    run_with(
        &Workload::from_requests(requests),
        &cluster,
        &config(true, true, overheads),
    )
}

/// A revocable grant's progress counts from when its first step starts, after its set-up.
/// Two nodes of 2 GPUs, 256 px (100 ms a step on one GPU, 60 on two: the cheapest GPU time is
/// 100 GPU-ms a step), 40 ms to set up a new group. Z (1 step) runs on node 0's pair, 0-100
/// (set-up and step). A (5 steps) arrives at 100 to two empty nodes, takes node 0's pair again
/// (no set-up) and steps from 100. B (4 steps) arrives at 180 and goes to node 1 (A has work
/// left), whose new group steps only from 220. At 250 C (2 steps) arrives: node 0 has 500 -
/// (250 - 100) x 100 / 60 = 250 GPU-ms left, node 1 400 - (250 - 220) x 100 / 60 = 350, so C
/// goes to node 0: A narrows at its boundary at 280 and C runs on the other GPU, 280-480.
/// Counting B's progress from before its set-up (from 140: 400 - 183 = 217) would send C to
/// node 1.
#[test]
fn a_grants_progress_counts_from_after_its_set_up() {
    let run = two_nodes_with_a_set_up(&[]);
    assert_eq!(placed_works(&run, 9), vec![(0, 100, 0)]);
    assert_eq!(placed_works(&run, 0), vec![(100, 280, 0), (280, 480, 0)]);
    assert_eq!(placed_works(&run, 1), vec![(180, 460, 1)]);
    assert_eq!(placed_works(&run, 2), vec![(280, 480, 0)]);
}

/// A grant that ends (here: cut to re-plan) leaves its node's drain. The schedule of
/// `a_grants_progress_counts_from_after_its_set_up` to 300 ms: A re-granted at 280 on one GPU
/// (2 steps left: 200 GPU-ms, 20 of them done by 300), C beside it (likewise), B on node 1
/// since 220 (400 - 80 x 100 / 60 = 267 left). D (1 step) arrives at 300: node 0 has 360 left
/// and node 1 267, so D goes to node 1, where B narrows at its boundary at 340 and D runs on
/// the GPU it frees, 340-440; B then takes both GPUs again for its last step, 440-500. Were A's
/// first grant (100 GPU-ms per 60 ms since 100) still draining node 0, node 0 would look all
/// but done (27 left), D would wait there behind A and C, and move to node 1 only when B
/// ends at 460.
#[test]
fn an_ended_grant_leaves_its_nodes_drain() {
    let run = two_nodes_with_a_set_up(&[req(3, 300, SMALL, 1, 60_000)]);
    assert_eq!(placed_works(&run, 3), vec![(340, 440, 1)]);
    assert_eq!(
        placed_works(&run, 1),
        vec![(180, 340, 1), (340, 440, 1), (440, 500, 1)]
    );
}
