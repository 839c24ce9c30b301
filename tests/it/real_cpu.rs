//! The real executor on the CPU backend: scheduler -> executor -> rank threads -> all-to-alls
//! -> latents -> records, on any machine. Outputs are checked against the independent f32
//! reference step (`real::reference`), whatever degrees and GPU sets produced them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tetriserve::cluster::GpuSet;
use tetriserve::engine;
use tetriserve::error::Error;
use tetriserve::policy::{Batch, Decision, Dispatch, Policy, View};
use tetriserve::real::config::DitConfig;
use tetriserve::real::executor::{Fault, RealExecutor, request_seed};
use tetriserve::real::reference::{CpuDit, CpuInputs};
use tetriserve::scenario::{Overrides, Scenario};
use tetriserve::workload::{Resolution, Workload};

use crate::util::{LARGE, SMALL, cluster, costs, req};

/// Dispatches a fixed schedule: per request label, its works as (GPU set, steps), in order,
/// each as soon as the request waits and the set is free.
struct Script {
    plans: HashMap<u64, Vec<(GpuSet, u32)>>,
}

impl Policy for Script {
    fn name(&self) -> &str {
        "script"
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        let mut free = view.free.clone();
        for s in view.waiting() {
            let plan = &self.plans[&s.request.label];
            let mut at = 0;
            for &(gpus, steps) in plan {
                if at == s.steps_done && free.is_free(gpus) {
                    free.take(gpus);
                    out.push(Decision::Dispatch(Dispatch {
                        batch: Batch::one(s.request.id),
                        steps,
                        gpus,
                    }));
                    break;
                }
                at += steps;
            }
        }
    }
}

fn set(slots: &[u32]) -> GpuSet {
    GpuSet::new(0, slots.iter().map(|s| 1u64 << s).sum())
}

/// The CPU backend's view of the tiny model.
fn cpu_tiny() -> DitConfig {
    DitConfig::tiny().on_cpu()
}

/// Request `label`'s latent after `steps` plain reference steps (model seed 1, as the CPU
/// backend builds it).
fn reference_latent(cfg: &DitConfig, res: Resolution, label: u64, steps: u32) -> Vec<f32> {
    let model = CpuDit::new(cfg.clone(), 1);
    let mut x = CpuInputs::seeded(cfg, res, request_seed(label));
    for _ in 0..steps {
        model.step(&mut x, res, 1.0 / steps as f32);
    }
    x.latent
}

fn max_relative(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0f32, |a, (g, w)| a.max((g - w).abs()))
        / scale
}

#[test]
fn a_scripted_schedule_with_degree_changes_and_concurrent_groups_equals_plain_steps() {
    // Request 0 (512 px, 12 steps) runs 1 -> 4 -> 2 GPUs: {0} 4 steps, {0,1,2,3} 4 steps,
    // {2,3} 4 steps. Request 1 (256 px, 6 steps) waits for {0,1}, which frees when request 0
    // leaves the 4-GPU group, and then runs beside request 0's last work.
    let workload = Workload::from_requests(vec![
        req(0, 0, LARGE, 12, 60_000),
        req(1, 0, SMALL, 6, 60_000),
    ]);
    let cl = cluster(4);
    let costs = costs(&workload, &cl);
    let mut policy = Script {
        plans: HashMap::from([
            (
                0,
                vec![(set(&[0]), 4), (set(&[0, 1, 2, 3]), 4), (set(&[2, 3]), 4)],
            ),
            (1, vec![(set(&[0, 1]), 6)]),
        ]),
    };
    let cfg = cpu_tiny();
    let mut exec = RealExecutor::cpu(cfg.clone(), 4, None).unwrap();
    exec.keep_final_latents();
    tetriserve::engine::Executor::reset(&mut exec, &workload, &[1]).unwrap();
    let records = engine::run(&workload, &cl, &costs, &mut policy, &mut exec).unwrap();
    let degrees: Vec<(u64, u32)> = records
        .works
        .iter()
        .map(|w| (w.requests[0], w.gpus.len()))
        .collect();
    assert_eq!(degrees, vec![(0, 1), (0, 4), (0, 2), (1, 2)]);
    // The last two works ran at the same time on disjoint groups.
    let (a, b) = (&records.works[2], &records.works[3]);
    assert!(a.start < b.end && b.start < a.end, "{a:?} {b:?}");
    let finals: HashMap<u64, Vec<f32>> = exec
        .final_latents()
        .into_iter()
        .map(|(k, v)| (k, v.to_vec()))
        .collect();
    for (label, res, steps) in [(0, LARGE, 12), (1, SMALL, 6)] {
        let want = reference_latent(&cfg, res, label, steps);
        let e = max_relative(&finals[&label], &want);
        assert!(e < 1e-5, "request {label}: relative error {e}");
    }
}

#[test]
fn a_rank_that_fails_mid_step_ends_the_run_cleanly_with_the_records_so_far() {
    // Work 0 (request 0: 2,000,000 steps alone on {0}, minutes of work), work 1 (request 1
    // on {2,3}) and work 2 (request 2 on {1}) start together; rank 1 of work 1 fails at its
    // first exchange. No rank may be left hanging, and the long single-rank work must stop at
    // a step boundary instead of running to its end.
    let workload = Workload::from_requests(vec![
        req(0, 0, LARGE, 2_000_000, 60_000),
        req(1, 0, LARGE, 8, 60_000),
        req(2, 0, SMALL, 4, 60_000),
    ]);
    let cl = cluster(4);
    let costs = costs(&workload, &cl);
    let mut policy = Script {
        plans: HashMap::from([
            (0, vec![(set(&[0]), 2_000_000)]),
            (1, vec![(set(&[2, 3]), 8)]),
            (2, vec![(set(&[1]), 4)]),
        ]),
    };
    let mut exec = RealExecutor::cpu(cpu_tiny(), 4, Some(Fault { work: 1, rank: 1 })).unwrap();
    exec.set_timeout(Duration::from_secs(20));
    tetriserve::engine::Executor::reset(&mut exec, &workload, &[1]).unwrap();
    let start = Instant::now();
    let e = engine::run(&workload, &cl, &costs, &mut policy, &mut exec).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    match e {
        Error::Interrupted { cause, partial, .. } => {
            assert!(cause.to_string().contains("injected fault"), "{cause}");
            assert_eq!(partial.requests.len(), 3);
            assert_eq!(partial.works.len(), 3, "the three works were dispatched");
            assert!(
                partial
                    .requests
                    .iter()
                    .all(|r| r.outcome == tetriserve::metrics::Outcome::Dropped || r.id == 2),
                "nothing but the short request 2 can have finished"
            );
        }
        other => panic!("expected an interrupted run, got {other}"),
    }
    // Joins every worker: returns only if no rank hangs and the long work stopped early.
    let stop = Instant::now();
    drop(exec);
    assert!(
        stop.elapsed() < Duration::from_secs(10),
        "shutting down took {:?}",
        stop.elapsed()
    );
}

#[test]
fn the_final_latent_of_every_request_does_not_depend_on_the_policy() {
    // xdit-sp1 (one rank), xdit-sp4 (four ranks) and tetriserve (degrees changing between
    // works) on a 4-slot CPU node: only the parallel layout differs, so the images must too
    // not. The H100 profile plans; the CPU executes.
    let overrides = Overrides {
        requests: Some(6),
        rate_per_min: Some(600.0),
        mix: Some("custom:256=1,512=1".into()),
        steps: Some(6),
        nodes: Some(1),
        gpus_per_node: Some(4),
        ..Overrides::default()
    };
    let cfg = cpu_tiny();
    let mut exec = RealExecutor::cpu(cfg.clone(), 4, None).unwrap();
    exec.keep_final_latents();
    let mut finals = Vec::new();
    for policy in ["xdit-sp1", "xdit-sp4", "tetriserve"] {
        let scenario = Scenario::load(
            None,
            &Overrides {
                policies: vec![policy.into()],
                ..overrides.clone()
            },
        )
        .unwrap();
        let runs = tetriserve::simulate::run_with(&scenario, &mut exec)
            .map_err(|f| f.error)
            .unwrap();
        let degrees: u32 = runs[0]
            .records
            .works
            .iter()
            .map(|w| w.gpus.len())
            .max()
            .unwrap();
        assert_eq!(runs[0].summary.requests, 6);
        let got = exec.final_latents();
        assert_eq!(got.len(), 6, "{policy}: every request finished");
        finals.push((policy, degrees, got));
    }
    assert_eq!(finals[0].1, 1);
    assert_eq!(finals[1].1, 4);
    assert!(finals[2].1 >= 2, "tetriserve grew some request's group");
    let workload = Scenario::load(None, &overrides)
        .unwrap()
        .load_workload()
        .unwrap();
    for (policy, _, got) in &finals {
        for (label, latent) in got {
            let r = workload
                .requests
                .iter()
                .find(|r| r.label == *label)
                .unwrap();
            let want = reference_latent(&cfg, r.resolution, *label, r.steps);
            let e = max_relative(latent, &want);
            assert!(e < 1e-5, "{policy}, request {label}: relative error {e}");
        }
    }
}

#[test]
fn a_work_resumed_without_its_latent_is_an_error_not_a_restart() {
    use tetriserve::engine::{Executor, Work, WorkId};
    let workload = Workload::from_requests(vec![req(0, 0, SMALL, 8, 60_000)]);
    let cl = cluster(1);
    let costs = costs(&workload, &cl);
    let mut exec = RealExecutor::cpu(cpu_tiny(), 1, None).unwrap();
    exec.reset(&workload, &[1]).unwrap();
    let work = Work {
        id: WorkId(0),
        dispatch: Dispatch {
            batch: Batch::one(workload.requests[0].id),
            steps: 4,
            gpus: set(&[0]),
        },
        class: costs.class_of(SMALL).unwrap(),
        resolution: SMALL,
        link: tetriserve::cluster::Link::NvLink,
        steps_before: 4,
        total_steps: 8,
        remap: false,
        node_moved: false,
        new_group: false,
    };
    let e = exec.launch(tetriserve::Nanos::ZERO, &work).unwrap_err();
    assert!(e.to_string().contains("no latent"), "{e}");
}

#[test]
fn replaying_a_real_cpu_run_with_its_measured_durations_reproduces_its_records_exactly() {
    // TetriServe on 2 CPU rank threads (degrees 1 and 2, requests overlapping), then its
    // decisions replayed in simulation with each work's measured duration and decision lag.
    use tetriserve::engine::{Executor, WorkId};
    use tetriserve::replay::{Durations, Schedule, same_records, split};
    let scenario = Scenario::load(
        None,
        &Overrides {
            policies: vec!["tetriserve".into()],
            requests: Some(8),
            rate_per_min: Some(6000.0),
            mix: Some("custom:256=1,512=1".into()),
            steps: Some(6),
            nodes: Some(1),
            gpus_per_node: Some(2),
            ..Overrides::default()
        },
    )
    .unwrap();
    let mut exec = RealExecutor::cpu(cpu_tiny(), 2, None).unwrap();
    let real = tetriserve::simulate::run_with(&scenario, &mut exec)
        .map_err(|f| f.error)
        .unwrap()
        .remove(0)
        .records;
    let timed: Vec<_> = (0..real.works.len())
        .map(|i| exec.steps_time(WorkId(i as u32)))
        .collect();
    for (w, t) in real.works.iter().zip(&timed) {
        let t = t.expect("every work's steps are timed");
        assert!(
            t > tetriserve::Nanos::ZERO && t <= w.end - w.start,
            "{w:?}: {t}"
        );
    }
    let workload = scenario.load_workload().unwrap();
    let costs = tetriserve::simulate::resolve_costs(&scenario, &workload).unwrap();
    let schedule = Schedule::of(&real, &workload, timed).unwrap();
    let replay = |d| {
        schedule
            .replay(
                &workload,
                &scenario.cluster,
                &costs,
                scenario.overheads(),
                d,
            )
            .unwrap()
    };
    let measured = replay(Durations::Measured);
    assert_eq!(measured.requests, real.requests);
    assert_eq!(measured.works, real.works);
    // The other replays run the same works on the same GPUs (in the same order per GPU and
    // per request; works on disjoint GPUs may swap places in the dispatch order).
    let steps = replay(Durations::ModelledSteps);
    let modelled = replay(Durations::Modelled);
    for r in [&steps, &modelled] {
        let shape = |x: &tetriserve::metrics::RunRecords| -> Vec<_> {
            let mut v: Vec<_> = x
                .works
                .iter()
                .map(|w| (w.requests.clone(), w.gpus.mask(), w.steps, w.first_step))
                .collect();
            v.sort();
            v
        };
        assert_eq!(shape(r), shape(&real));
    }
    let s = split(&real, &measured, &steps, &modelled, &modelled);
    assert!(s.exact && same_records(&real, &measured));
    for r in &s.requests {
        assert_eq!(r.divergence_ms, 0.0, "the same decisions: no divergence");
        assert!((r.service_ms + r.overhead_ms - r.total_ms).abs() < 1e-9);
    }
}

#[test]
fn the_real_backend_refuses_a_video_clip_before_warming_anything() {
    use tetriserve::engine::Executor;
    let clip = Resolution::video(256, 256, 5);
    let workload = Workload::from_requests(vec![
        req(0, 0, SMALL, 2, 60_000),
        req(7, 1, clip, 2, 60_000),
    ]);
    let mut exec = RealExecutor::cpu(cpu_tiny(), 1, None).unwrap();
    let e = exec.reset(&workload, &[1]).unwrap_err().to_string();
    assert!(
        e.contains("request 7") && e.contains("256x256x5f") && e.contains("simulated only"),
        "{e}"
    );
    // Images alone still reset.
    let images = Workload::from_requests(vec![req(0, 0, SMALL, 2, 60_000)]);
    exec.reset(&images, &[1]).unwrap();
}

/// Holds every request until `at`, by a timer, then runs each on GPU 0, one after another.
struct Delayed {
    at: tetriserve::Nanos,
}

impl Policy for Delayed {
    fn name(&self) -> &str {
        "delayed"
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        if view.now < self.at {
            out.push(Decision::WakeAt(self.at));
        } else if let Some(s) = view.waiting().next()
            && view.free.is_free(set(&[0]))
        {
            out.push(Decision::Dispatch(Dispatch {
                batch: Batch::one(s.request.id),
                steps: s.remaining_steps(),
                gpus: set(&[0]),
            }));
        }
    }
}

/// On a real clock the engine keeps the times of the policy's timers that fired: a work
/// dispatched at a timer counts its lag from the timer (not from the arrival 40 ms before
/// it), and its replay with measured durations still reproduces the run.
#[test]
fn a_real_run_keeps_its_fired_timers_and_its_replay_starts_at_them() {
    use tetriserve::engine::{Executor, WorkId};
    use tetriserve::replay::{Durations, Schedule, same_records};
    let workload = Workload::from_requests(vec![req(0, 0, SMALL, 2, 60_000)]);
    let cl = cluster(1);
    let costs = costs(&workload, &cl);
    let at = tetriserve::Nanos::from_millis(40.0);
    let mut exec = RealExecutor::cpu(cpu_tiny(), 1, None).unwrap();
    exec.reset(&workload, &[1]).unwrap();
    let real = engine::run(&workload, &cl, &costs, &mut Delayed { at }, &mut exec).unwrap();
    assert_eq!(real.timers, vec![at]);
    assert!(real.works[0].start >= at, "{:?}", real.works[0]);
    let timed: Vec<_> = (0..real.works.len())
        .map(|i| exec.steps_time(WorkId(i as u32)))
        .collect();
    let schedule = Schedule::of(&real, &workload, timed).unwrap();
    let (lag, _) = schedule.per_work_ms();
    assert!(
        lag < 40.0,
        "{lag} ms: counted from the arrival, not the timer"
    );
    let measured = schedule
        .replay(
            &workload,
            &cl,
            &costs,
            &tetriserve::cost::Overheads::default(),
            Durations::Measured,
        )
        .unwrap();
    assert!(same_records(&real, &measured), "{measured:?}");
}
