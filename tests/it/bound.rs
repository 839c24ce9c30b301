//! The upper bound against exhaustive search on small instances: it is never below the best
//! schedule found by trying every placement, nor below any policy's result.

use proptest::prelude::*;
use tetriserve::Nanos;
use tetriserve::bound::upper_bound;
use tetriserve::cluster::{Link, Topology};
use tetriserve::cost::{CostModel, StepTimes};
use tetriserve::error::Result;
use tetriserve::policy::PolicyKind;
use tetriserve::workload::{Request, RequestId, Resolution, Workload};

use crate::util::run_policy;

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
        let w = Workload::from_requests(
            reqs.iter()
                .enumerate()
                .map(|(i, &(a, steps, slo))| Request {
                    id: RequestId(0),
                    label: i as u64,
                    arrival: Nanos(a * 100_000_000),
                    resolution: Resolution::square(256),
                    steps,
                    deadline: Nanos((a + slo) * 100_000_000),
                })
                .collect(),
        );
        let c = tetriserve::cluster::Cluster::new("x", 1, gpus, Topology::NvSwitch).unwrap();
        let costs = StepTimes::resolve(&Slots, &w.resolutions(), &c, &[1]).unwrap();
        let bound = upper_bound(&w, &costs, gpus, c.max_degree());
        let best = exhaustive(&reqs, gpus);
        prop_assert!(bound.met >= best, "bound {} < exhaustive {best}", bound.met);
        prop_assert!(bound.met <= reqs.len());
        let mut kinds = PolicyKind::all_for(&c);
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
