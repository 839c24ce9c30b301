//! The upper bound against exhaustive search on small instances: it is never below the best
//! schedule found by trying every placement, nor below any policy's result.

use proptest::prelude::*;
use tetriserve::Nanos;
use tetriserve::bound::upper_bound;
use tetriserve::cluster::{Link, Topology};
use tetriserve::cost::{CostModel, StepTimes};
use tetriserve::error::Result;
use tetriserve::policy::PolicyKind;
use tetriserve::workload::Resolution;

use crate::util::{BatchSlots, batching_pair, exhaustive_batched, run_policy, slots_workload};

/// One slot = 100 ms. A step takes 3 slots on one GPU, 2 slots on two (sublinear).
struct Slots;
impl CostModel for Slots {
    fn step_time(&self, _r: Resolution, k: u32, b: u32, _l: Link) -> Result<Nanos> {
        Ok(Nanos::from_millis(
            if k == 1 { 300.0 } else { 200.0 } * f64::from(b),
        ))
    }
    fn describe(&self) -> String {
        "slots".into()
    }
}

/// Most requests meetable when each runs all its steps at one degree, starting at any slot:
/// every combination of (skip | degree, start) per request, with at most `gpus` busy per slot.
/// One fixed-degree placement of a request: (degree, start, end) in ticks.
type Placement = (u32, u64, u64);

fn exhaustive(reqs: &[(u64, u32, u64)], gpus: u32) -> usize {
    let choices: Vec<Vec<Option<Placement>>> = reqs
        .iter()
        .map(|&(a, steps, slo)| {
            let mut v = vec![None];
            for k in [1u32, 2] {
                if k > gpus {
                    continue;
                }
                let len = u64::from(steps) * if k == 1 { 3 } else { 2 };
                let mut s = a;
                while s + len <= a + slo {
                    v.push(Some((k, s, s + len)));
                    s += 1;
                }
            }
            v
        })
        .collect();
    let horizon = reqs.iter().map(|r| r.0 + r.2).max().unwrap_or(0) as usize + 1;
    fn go(i: usize, choices: &[Vec<Option<Placement>>], load: &mut Vec<u32>, gpus: u32) -> usize {
        if i == choices.len() {
            return 0;
        }
        let mut best = go(i + 1, choices, load, gpus);
        for c in choices[i].iter().flatten() {
            let (k, s, e) = *c;
            if (s..e).all(|t| load[t as usize] + k <= gpus) {
                (s..e).for_each(|t| load[t as usize] += k);
                best = best.max(1 + go(i + 1, choices, load, gpus));
                (s..e).for_each(|t| load[t as usize] -= k);
            }
        }
        best
    }
    go(0, &choices, &mut vec![0; horizon], gpus)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_bound_is_never_below_the_exhaustive_optimum(
        reqs in prop::collection::vec((0u64..6, 1u32..4, 2u64..12), 1..5),
        gpus in 1u32..3,
    ) {
        // Times in slots of 100 ms: arrival, steps, SLO.
        let due: Vec<(u64, u32, u64)> = reqs.iter().map(|&(a, st, slo)| (a, st, a + slo)).collect();
        let w = slots_workload(&due);
        let c = tetriserve::cluster::Cluster::new("x", 1, gpus, Topology::NvSwitch).unwrap();
        let costs = StepTimes::resolve(&Slots, &w.resolutions(), &c, &[1]).unwrap();
        let bound = upper_bound(&w, &costs, gpus, c.max_degree());
        let best = exhaustive(&reqs, gpus);
        prop_assert!(bound.met >= best, "bound {} < exhaustive {best}", bound.met);
        prop_assert!(bound.met <= reqs.len());
        let mut kinds = PolicyKind::paper_for(&c);
        kinds.extend(PolicyKind::ablation());
        kinds.extend(PolicyKind::extensions());
        for kind in kinds {
            let config = tetriserve::policy::PolicyConfig { rssp_degrees: vec![], ..Default::default() };
            let mut p = tetriserve::policy::build(kind, &c, &costs, &config).unwrap();
            let run = run_policy(p.as_mut(), &w, &c, &costs).unwrap();
            let met = run.requests.iter().filter(|r| r.outcome.as_str() == "met").count();
            prop_assert!(bound.met >= met, "{kind} met {met} > bound {}", bound.met);
        }
    }
}

#[test]
fn exhaustive_batched_search_by_hand() {
    // Two requests of 3 steps at 0, deadlines 8 and 9 slots. Alone one after the other they
    // end at 6 and 12; 2 batched steps then alone end at 8 and 10; 3 batched steps end both
    // at 9: one met at best.
    assert_eq!(exhaustive_batched(&[(0, 3, 8), (0, 3, 9)], false), 1);
    // With deadlines 9 and 9, all three steps batched meet both.
    assert_eq!(exhaustive_batched(&[(0, 3, 9), (0, 3, 9)], false), 2);
    // Alone is better for one short request.
    assert_eq!(exhaustive_batched(&[(0, 1, 2), (5, 1, 7)], false), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn the_bound_covers_schedules_that_batch_some_steps(
        reqs in prop::collection::vec((0u64..4, 1u32..4, 2u64..14), 2..4),
    ) {
        let reqs: Vec<(u64, u32, u64)> = reqs.iter().map(|&(a, s, slo)| (a, s, a + slo)).collect();
        let w = slots_workload(&reqs);
        let c = tetriserve::cluster::Cluster::new("x", 1, 1, Topology::NvSwitch).unwrap();
        let costs = StepTimes::resolve(&BatchSlots, &w.resolutions(), &c, &[1, 2]).unwrap();
        let bound = upper_bound(&w, &costs, 1, 1);
        let best = exhaustive_batched(&reqs, false);
        prop_assert!(bound.met >= best, "bound {} < exhaustive with batching {best}", bound.met);
    }
}

#[test]
fn two_small_requests_met_by_batching_some_steps_count_in_the_bound() {
    // Shipped H100 profile, 256 px, one GPU: alone 30.6 ms/step, batched in pairs 52.6 ms.
    // Both at t = 0 with 28 steps and deadlines 1.40 s and 1.59 s: 20 batched steps (1.05 s),
    // then 8 alone each, end at 1.30 s and 1.54 s. Both are met, so the bound must say 2.
    let profile = tetriserve::scenario::load_profile("h100-flux1-dev").unwrap();
    let res = Resolution::square(256);
    let w = batching_pair();
    let c = tetriserve::cluster::Cluster::new("h100", 1, 1, Topology::NvSwitch).unwrap();
    let costs = StepTimes::resolve(&profile, &[res], &c, &[1, 2]).unwrap();
    let alone = costs
        .get(costs.class_of(res).unwrap(), 1, 1, Link::NvLink)
        .unwrap();
    let pair = costs
        .get(costs.class_of(res).unwrap(), 1, 2, Link::NvLink)
        .unwrap();
    let (first, second) = (
        pair.times(20) + alone.times(8),
        pair.times(20) + alone.times(16),
    );
    assert!(first <= Nanos::from_secs(1.40) && second <= Nanos::from_secs(1.59));
    assert_eq!(upper_bound(&w, &costs, 1, 1).met, 2);
}
