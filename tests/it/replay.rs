//! Replaying a recorded run's decisions and the fidelity error split by cause, on hand-built
//! runs whose every time is worked out below.

use std::collections::HashMap;

use tetriserve::Nanos;
use tetriserve::cluster::GpuSet;
use tetriserve::cost::{Overheads, StepTimes};
use tetriserve::engine::{self, Executor, Launch, SimExecutor, Work, WorkId};
use tetriserve::error::Result;
use tetriserve::metrics::RunRecords;
use tetriserve::policy::{Batch, Decision, Dispatch, Policy, View};
use tetriserve::replay::{Durations, Schedule, same_records, split};
use tetriserve::workload::Workload;

use crate::util::{SMALL, cluster, costs, ms, req};

/// No cost outside steps.
fn zero() -> Overheads {
    Overheads {
        text_encoder: Nanos::ZERO,
        vae_decode_per_1k_tokens: Nanos::ZERO,
        remap_fraction: 0.0,
        group_setup: Nanos::ZERO,
        group_setup_on_regroup: false,
        dispatch: Nanos::ZERO,
        node_handoff: Nanos::ZERO,
    }
}

/// Per request label, its works as (GPU set, steps, not before), in order: each dispatched
/// once the request waits, the set is free and the time has come.
struct Script {
    plans: HashMap<u64, Vec<(GpuSet, u32, Nanos)>>,
}

impl Policy for Script {
    fn name(&self) -> &str {
        "script"
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        let mut free = view.free.clone();
        for s in view.waiting() {
            let mut at = 0;
            for &(gpus, steps, not_before) in &self.plans[&s.request.label] {
                if at == s.steps_done {
                    if view.now < not_before {
                        out.push(Decision::WakeAt(not_before));
                    } else if free.is_free(gpus) {
                        free.take(gpus);
                        out.push(Decision::Dispatch(Dispatch {
                            batch: Batch::one(s.request.id),
                            steps,
                            gpus,
                        }));
                    }
                    break;
                }
                at += steps;
            }
        }
    }
}

/// A "real" node: every work lasts its profiled steps plus `extra`, and reports the steps'
/// time as measured.
struct Slow<'a> {
    steps: SimExecutor<'a>,
    extra: Nanos,
    timed: HashMap<WorkId, Nanos>,
}

impl Executor for Slow<'_> {
    fn launch(&mut self, now: Nanos, work: &Work) -> Result<Launch> {
        let steps = self.steps.duration(work)?;
        self.timed.insert(work.id, steps);
        Ok(Launch::EndsAt(
            now.checked_add(steps)
                .unwrap()
                .checked_add(self.extra)
                .unwrap(),
        ))
    }

    fn steps_time(&self, work: WorkId) -> Option<Nanos> {
        self.timed.get(&work).copied()
    }
}

fn set(slots: &[u32]) -> GpuSet {
    GpuSet::new(0, slots.iter().map(|s| 1u64 << s).sum())
}

/// Request 0 (256 px, 4 steps: 100 ms at SP1, 60 ms at SP2) runs 2 steps on {0}, then 2 on
/// {0,1} from 210 ms; request 1 (256 px, 2 steps) runs on {1} from 0.
fn real_plan() -> Script {
    Script {
        plans: HashMap::from([
            (
                0,
                vec![(set(&[0]), 2, Nanos::ZERO), (set(&[0, 1]), 2, ms(210))],
            ),
            (1, vec![(set(&[1]), 2, Nanos::ZERO)]),
        ]),
    }
}

fn workload() -> Workload {
    Workload::from_requests(vec![
        req(0, 0, SMALL, 4, 10_000),
        req(1, 0, SMALL, 2, 10_000),
    ])
}

/// The "real" run: every work 5 ms longer than its steps.
fn real_run(w: &Workload, costs: &StepTimes) -> (RunRecords, Vec<Option<Nanos>>) {
    let cl = cluster(2);
    let mut exec = Slow {
        steps: SimExecutor::new(costs, zero()),
        extra: ms(5),
        timed: HashMap::new(),
    };
    let real = engine::run(w, &cl, costs, &mut real_plan(), &mut exec).unwrap();
    let timed = (0..real.works.len())
        .map(|i| exec.steps_time(WorkId(i as u32)))
        .collect();
    (real, timed)
}

#[test]
fn a_known_extra_per_work_cost_and_a_decision_lag_show_in_the_overhead_column() {
    let w = workload();
    let cl = cluster(2);
    let costs = costs(&w, &cl);
    let (real, timed) = real_run(&w, &costs);
    // Real: r1 on {1} 0 -> 205; r0 on {0} 0 -> 205, then on {0,1} from 210 (5 ms after r1's
    // end freed {1}) for 2 x 60 + 5: ends at 335.
    let latency = |r: &RunRecords, i: usize| (r.requests[i].end - r.requests[i].arrival).0;
    assert_eq!(latency(&real, 0), ms(335).0);
    assert_eq!(latency(&real, 1), ms(205).0);
    let schedule = Schedule::of(&real, &w, timed).unwrap();
    // Per work: lags 0, 0 and 5 ms; 5 ms outside the steps each.
    let (lag, outside) = schedule.per_work_ms();
    assert!((lag - 5.0 / 3.0).abs() < 1e-9, "{lag}");
    assert!((outside.unwrap() - 5.0).abs() < 1e-9);
    let replay = |d| schedule.replay(&w, &cl, &costs, &zero(), d).unwrap();
    let measured = replay(Durations::Measured);
    assert!(same_records(&real, &measured), "{measured:?}");
    // The profiled steps are the measured ones: nothing changes.
    let steps = replay(Durations::ModelledSteps);
    assert!(same_records(&real, &steps));
    // No per-work cost and no lag: r1 ends at 200, r0's second work runs 200 -> 320.
    let modelled = replay(Durations::Modelled);
    assert_eq!(latency(&modelled, 0), ms(320).0);
    assert_eq!(latency(&modelled, 1), ms(200).0);
    // The simulation's policy runs r0's 4 steps on {0} instead: 400 ms.
    let mut sim_policy = Script {
        plans: HashMap::from([
            (0, vec![(set(&[0]), 4, Nanos::ZERO)]),
            (1, vec![(set(&[1]), 2, Nanos::ZERO)]),
        ]),
    };
    let sim = engine::run(
        &w,
        &cl,
        &costs,
        &mut sim_policy,
        &mut SimExecutor::new(&costs, zero()),
    )
    .unwrap();
    let s = split(&real, &measured, &steps, &modelled, &sim);
    assert!(s.exact);
    assert_eq!(s.left_out, 0);
    let r0 = &s.requests[0];
    assert_eq!(r0.service_ms, 0.0);
    // Two works x 5 ms, and the 5 ms the second waited after {1} freed.
    assert!((r0.overhead_ms + 15.0).abs() < 1e-9, "{r0:?}");
    assert!((r0.divergence_ms - 80.0).abs() < 1e-9, "{r0:?}");
    assert!((r0.total_ms - 65.0).abs() < 1e-9, "{r0:?}");
    let r1 = &s.requests[1];
    assert!((r1.overhead_ms + 5.0).abs() < 1e-9, "{r1:?}");
    assert_eq!(r1.divergence_ms, 0.0);
    for r in &s.requests {
        assert!(
            (r.service_ms + r.overhead_ms + r.divergence_ms - r.total_ms).abs() < 1e-9,
            "{r:?}"
        );
    }
    // Both requests ran at SP1 only in r1's case, at 1 and 2 in r0's: two rows and the total.
    let rows = s.rows();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("1", 1));
    assert_eq!((rows[1].1.as_str(), rows[1].2), ("1+2", 1));
    assert!((rows[2].3[3] + 10.0).abs() < 1e-9, "mean overhead {rows:?}");
    let md = s.to_markdown();
    assert!(md.contains("| 256x256 | 1+2 | 1 | 335.00 | +65.00"), "{md}");
    assert_eq!(s.to_csv().lines().count(), 3);
}

#[test]
fn service_time_shows_when_the_profile_is_off_and_the_terms_add_up() {
    let w = workload();
    let cl = cluster(2);
    let costs = costs(&w, &cl);
    let (real, mut timed) = real_run(&w, &costs);
    // Say the node measured each work's steps 10 ms faster than the profile: the profile
    // then overstates every work by 10 ms.
    for t in timed.iter_mut() {
        *t = t.map(|t| t - ms(10));
    }
    let schedule = Schedule::of(&real, &w, timed).unwrap();
    let replay = |d| schedule.replay(&w, &cl, &costs, &zero(), d).unwrap();
    let measured = replay(Durations::Measured);
    let steps = replay(Durations::ModelledSteps);
    let modelled = replay(Durations::Modelled);
    let s = split(&real, &measured, &steps, &modelled, &modelled);
    // r0: two works, each 10 ms longer than measured; r1: one.
    assert!((s.requests[0].service_ms - 20.0).abs() < 1e-9, "{s:?}");
    assert!((s.requests[1].service_ms - 10.0).abs() < 1e-9, "{s:?}");
    assert_eq!(s.requests[0].divergence_ms, 0.0);
    for r in &s.requests {
        assert!((r.service_ms + r.overhead_ms + r.divergence_ms - r.total_ms).abs() < 1e-9);
    }
    // Steps measured longer than their work are refused, not replayed.
    let mut bad = vec![Some(ms(1)); real.works.len()];
    bad[0] = Some(ms(10_000));
    let schedule = Schedule::of(&real, &w, bad).unwrap();
    assert!(
        schedule
            .replay(&w, &cl, &costs, &zero(), Durations::ModelledSteps)
            .is_err()
    );
}

/// A decision taken at a timer of the policy's counts its lag from the timer, and the replays
/// without lags wait for the timer as the policy would. The real run is the one above, where
/// request 0's second work waits for its not-before time, 210 ms, by a timer: recorded as a
/// real clock records it, that work has no lag (its start is the timer), and the modelled
/// replay, in which request 1 and request 0's first work end at 200, still starts the second
/// work at 210: 210 + 2 x 60 = 330 ms, not the 320 of a replay that reads the timer's wait
/// as lag after the work end at 205.
#[test]
fn a_decision_at_a_policy_timer_counts_its_lag_from_the_timer() {
    let w = workload();
    let cl = cluster(2);
    let costs = costs(&w, &cl);
    let (mut real, timed) = real_run(&w, &costs);
    assert!(real.timers.is_empty(), "no real clock: no timers kept");
    real.timers = vec![ms(210)];
    let schedule = Schedule::of(&real, &w, timed).unwrap();
    let (lag, _) = schedule.per_work_ms();
    assert_eq!(lag, 0.0);
    let replay = |d| schedule.replay(&w, &cl, &costs, &zero(), d).unwrap();
    assert!(same_records(&real, &replay(Durations::Measured)));
    let modelled = replay(Durations::Modelled);
    let latency = |r: &RunRecords, i: usize| (r.requests[i].end - r.requests[i].arrival).0;
    assert_eq!(latency(&modelled, 0), ms(330).0);
    assert_eq!(latency(&modelled, 1), ms(200).0);
}
