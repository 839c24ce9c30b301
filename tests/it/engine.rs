//! The engine applies valid decisions exactly and refuses invalid ones with a clear error.

use tetriserve::cluster::GpuSet;
use tetriserve::metrics::invariants::check_run;
use tetriserve::policy::{Batch, Decision, Dispatch, Policy, View};
use tetriserve::workload::{RequestId, Workload};

use crate::util::*;

/// A policy that replays a script: at its n-th call it returns `script[n]`.
struct Scripted {
    script: Vec<Vec<Decision>>,
    calls: usize,
}

impl Policy for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn decide(&mut self, _view: &View<'_>, out: &mut Vec<Decision>) {
        if let Some(d) = self.script.get(self.calls) {
            out.extend(d.iter().copied());
        }
        self.calls += 1;
    }
}

fn dispatch(id: u32, steps: u32, node_mask: u64) -> Decision {
    Decision::Dispatch(Dispatch {
        batch: Batch::one(RequestId(id)),
        steps,
        gpus: GpuSet::new(0, node_mask),
    })
}

fn run_script(
    workload: &Workload,
    gpus: u32,
    script: Vec<Vec<Decision>>,
) -> tetriserve::Result<tetriserve::metrics::RunRecords> {
    let c = cluster(gpus);
    let costs = costs(workload, &c);
    run_policy(&mut Scripted { script, calls: 0 }, workload, &c, &costs)
}

#[test]
fn step_level_degree_changes_are_timed_and_recorded() {
    // One 512 px request, 6 steps: 2 steps on GPU0 (2 x 300), then 4 steps on GPUs 0-3 (4 x 90).
    let w = Workload::from_requests(vec![req(1, 0, LARGE, 6, 1000)]);
    let run = run_script(
        &w,
        4,
        vec![vec![dispatch(0, 2, 0b0001)], vec![dispatch(0, 4, 0b1111)]],
    )
    .unwrap();
    let r = &run.requests[0];
    assert_eq!(r.end, ms(600 + 360));
    assert_eq!(r.outcome.as_str(), "met");
    assert_eq!(r.degrees(), vec![1, 4]);
    assert_eq!(r.remaps, 1);
    // GPU time: 1 x 600 ms + 4 x 360 ms.
    assert_eq!(r.gpu_time, ms(600 + 1440));
    assert!(check_run(&run, &w, None).is_empty());
}

#[test]
fn a_cut_work_ends_at_its_next_step_boundary_and_the_rest_is_granted_again() {
    // Request 1: 512 px, 6 steps of 300 ms on GPU0, dispatched whole at 0 (would end at 1800).
    // Request 2 (256 px, 3 steps of 100 ms) arrives at 700: the first is cut, so its work ends
    // at the boundary after 700 (900, 3 steps); the second runs 900-1200; the first's last 3
    // steps run 1200-2100. The old end at 1800 is no decision point (the script would shift).
    let w = Workload::from_requests(vec![req(1, 0, LARGE, 6, 5000), req(2, 700, SMALL, 3, 1000)]);
    let run = run_script(
        &w,
        1,
        vec![
            vec![dispatch(0, 6, 0b1)],
            vec![Decision::Cut(RequestId(0))],
            vec![dispatch(1, 3, 0b1)],
            vec![dispatch(0, 3, 0b1)],
        ],
    )
    .unwrap();
    let spans: Vec<_> = run
        .works
        .iter()
        .map(|x| (x.requests[0], x.first_step, x.steps, x.start, x.end))
        .collect();
    assert_eq!(
        spans,
        vec![
            (1, 0, 3, ms(0), ms(900)),
            (2, 0, 3, ms(900), ms(1200)),
            (1, 3, 3, ms(1200), ms(2100)),
        ]
    );
    assert_eq!(run.requests[0].end, ms(2100));
    assert_eq!(run.requests[1].end, ms(1200));
    assert_eq!(run.requests[0].gpu_time, ms(1800));
    assert!(check_run(&run, &w, None).is_empty());
}

#[test]
fn cutting_at_a_works_own_end_changes_nothing_and_cutting_waiting_work_is_refused() {
    // Cut during the last step: the boundary is the work's end (600), nothing changes.
    let w = Workload::from_requests(vec![req(1, 0, LARGE, 2, 5000), req(2, 450, SMALL, 1, 1000)]);
    let run = run_script(
        &w,
        2,
        vec![
            vec![dispatch(0, 2, 0b1)],
            vec![Decision::Cut(RequestId(0)), dispatch(1, 1, 0b10)],
        ],
    )
    .unwrap();
    assert_eq!(run.works[0].steps, 2);
    assert_eq!(run.works[0].end, ms(600));
    let w = Workload::from_requests(vec![req(1, 0, SMALL, 3, 1000)]);
    let err = run_script(&w, 1, vec![vec![Decision::Cut(RequestId(0))]])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cut request 1 which is Waiting, not running"),
        "{err}"
    );
}

#[test]
fn a_batch_runs_its_requests_together_and_splits_gpu_time() {
    // Two 256 px requests batched on 2 GPUs for 3 steps: batch-2 step = 2 x 60 ms.
    let w = Workload::from_requests(vec![req(1, 0, SMALL, 3, 1000), req(2, 0, SMALL, 3, 1000)]);
    let batch = Batch::of(&[RequestId(0), RequestId(1)]).unwrap();
    let d = Decision::Dispatch(Dispatch {
        batch,
        steps: 3,
        gpus: GpuSet::new(0, 0b11),
    });
    let run = run_script(&w, 2, vec![vec![d]]).unwrap();
    assert!(run.requests.iter().all(|r| r.end == ms(360)));
    assert!(
        run.requests.iter().all(|r| r.gpu_time == ms(360)),
        "2 GPUs x 360 ms split over 2 requests"
    );
}

#[test]
fn double_booking_is_refused() {
    let w = Workload::from_requests(vec![req(1, 0, SMALL, 3, 1000), req(2, 0, SMALL, 3, 1000)]);
    let err = run_script(
        &w,
        2,
        vec![vec![dispatch(0, 3, 0b01), dispatch(1, 3, 0b11)]],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("busy"), "{err}");
}

#[test]
fn too_many_steps_are_refused() {
    let w = Workload::from_requests(vec![req(1, 0, SMALL, 3, 1000)]);
    let err = run_script(&w, 1, vec![vec![dispatch(0, 4, 0b1)]])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("4 steps of request 1 which has 3 left"),
        "{err}"
    );
}

#[test]
fn non_power_of_two_degrees_are_refused() {
    let w = Workload::from_requests(vec![req(1, 0, SMALL, 3, 1000)]);
    let err = run_script(&w, 4, vec![vec![dispatch(0, 3, 0b111)]])
        .unwrap_err()
        .to_string();
    assert!(err.contains("powers of two"), "{err}");
}

#[test]
fn dispatching_a_running_request_is_refused() {
    let w = Workload::from_requests(vec![req(1, 0, SMALL, 3, 1000)]);
    let err = run_script(
        &w,
        2,
        vec![vec![dispatch(0, 1, 0b01), dispatch(0, 1, 0b10)]],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Running, not waiting"), "{err}");
}

#[test]
fn a_policy_that_never_dispatches_is_reported_as_stalled() {
    let w = Workload::from_requests(vec![req(1, 0, SMALL, 3, 1000)]);
    let err = run_script(&w, 1, vec![]).unwrap_err().to_string();
    assert!(err.contains("stalled with 1 request"), "{err}");
}

#[test]
fn waking_in_the_past_is_refused_and_timers_fire() {
    let w = Workload::from_requests(vec![req(1, 0, SMALL, 1, 1000)]);
    let err = run_script(&w, 1, vec![vec![Decision::WakeAt(ms(0))]])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not after now"), "{err}");
    // Wake at 50 ms, then dispatch: the request starts at 50 ms.
    let run = run_script(
        &w,
        1,
        vec![vec![Decision::WakeAt(ms(50))], vec![dispatch(0, 1, 0b1)]],
    )
    .unwrap();
    assert_eq!(run.requests[0].start, Some(ms(50)));
    assert_eq!(run.requests[0].end, ms(150));
}

#[test]
fn dropped_requests_end_at_the_drop_and_count_as_failures() {
    let w = Workload::from_requests(vec![req(1, 0, SMALL, 1, 1000), req(2, 0, SMALL, 1, 1000)]);
    let run = run_script(
        &w,
        1,
        vec![vec![Decision::Drop(RequestId(1)), dispatch(0, 1, 0b1)]],
    )
    .unwrap();
    assert_eq!(run.requests[1].outcome.as_str(), "dropped");
    assert_eq!(run.requests[1].latency(), None);
    let s = tetriserve::metrics::Summary::of(&run);
    assert_eq!((s.met, s.dropped, s.latency.count), (1, 1, 1));
    assert!((s.slo_attainment - 0.5).abs() < 1e-12);
}

/// An executor whose hardware fails at the `fail_at`-th launch.
struct Failing<'a> {
    inner: tetriserve::engine::SimExecutor<'a>,
    launches: usize,
    fail_at: usize,
}

impl tetriserve::engine::Executor for Failing<'_> {
    fn launch(
        &mut self,
        now: tetriserve::Nanos,
        work: &tetriserve::engine::Work,
    ) -> tetriserve::Result<tetriserve::engine::Launch> {
        self.launches += 1;
        if self.launches == self.fail_at {
            return Err(tetriserve::Error::Executor(
                "device 0: out of memory".into(),
            ));
        }
        self.inner.launch(now, work)
    }
}

#[test]
fn a_hardware_failure_keeps_what_had_finished() {
    // Four 256 px requests, one after another on one GPU; the third launch fails.
    let w = Workload::from_requests((0..4).map(|i| req(i, i * 1000, SMALL, 2, 1000)).collect());
    let c = cluster(1);
    let costs = costs(&w, &c);
    let mut exec = Failing {
        inner: tetriserve::engine::SimExecutor::new(&costs, Default::default()),
        launches: 0,
        fail_at: 3,
    };
    let mut policy = tetriserve::policy::build(
        tetriserve::policy::PolicyKind::XditSp(1),
        &c,
        &costs,
        &Default::default(),
    )
    .unwrap();
    let err = tetriserve::engine::run(&w, &c, &costs, policy.as_mut(), &mut exec).unwrap_err();
    let tetriserve::Error::Interrupted {
        cause,
        partial,
        finished,
    } = err
    else {
        panic!("not an interruption: {err}")
    };
    assert!(cause.to_string().contains("out of memory"));
    assert_eq!(finished, 2);
    let outcomes: Vec<&str> = partial
        .requests
        .iter()
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["met", "met", "dropped", "dropped"]);
}
