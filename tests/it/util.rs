//! Shared fixtures: a tiny cost model with round numbers, request builders, a run helper.

use tetriserve::Nanos;
use tetriserve::cluster::{Cluster, Link, Topology};
use tetriserve::cost::{CostModel, Overheads, StepTimes};
use tetriserve::engine::{self, SimExecutor};
use tetriserve::error::{Error, Result};
use tetriserve::metrics::RunRecords;
use tetriserve::policy::{self, Policy, PolicyConfig, PolicyKind};
use tetriserve::workload::{Request, RequestId, Resolution, Workload};

pub const SMALL: Resolution = Resolution::square(256);
pub const LARGE: Resolution = Resolution::square(512);

/// Step times in milliseconds: 256 px: SP1 100, SP2 60, SP4 40; 512 px: SP1 300, SP2 160, SP4 90.
/// Batch b multiplies by b; PCIe adds 50%.
pub struct TinyCosts;

impl CostModel for TinyCosts {
    fn step_time(&self, res: Resolution, degree: u32, batch: u32, link: Link) -> Result<Nanos> {
        let ms = match (res.width, degree) {
            (256, 1) => 100.0,
            (256, 2) => 60.0,
            (256, 4) => 40.0,
            (256, 8) => 35.0,
            (512, 1) => 300.0,
            (512, 2) => 160.0,
            (512, 4) => 90.0,
            (512, 8) => 60.0,
            _ => {
                return Err(Error::Cost(format!(
                    "tiny costs have no {res} at SP {degree}"
                )));
            }
        };
        let pcie = if link == Link::Pcie { 1.5 } else { 1.0 };
        Ok(Nanos::from_millis(ms * f64::from(batch) * pcie))
    }

    fn describe(&self) -> String {
        "tiny test costs".into()
    }
}

pub fn ms(v: u64) -> Nanos {
    Nanos(v * 1_000_000)
}

/// A request at `arrival_ms` with `steps` steps and a deadline `slo_ms` after arrival.
pub fn req(label: u64, arrival_ms: u64, res: Resolution, steps: u32, slo_ms: u64) -> Request {
    Request {
        id: RequestId(0),
        label,
        arrival: ms(arrival_ms),
        resolution: res,
        steps,
        deadline: ms(arrival_ms + slo_ms),
        stages: Default::default(),
    }
}

pub fn cluster(gpus: u32) -> Cluster {
    Cluster::new("tiny", 1, gpus, Topology::NvSwitch).unwrap()
}

pub fn costs(workload: &Workload, cluster: &Cluster) -> StepTimes {
    StepTimes::resolve(&TinyCosts, &workload.resolutions(), cluster, &[1, 2]).unwrap()
}

/// Runs `kind` with the paper-like RSSP map 256 -> 1, 512 -> 2 and zero overheads.
pub fn run_kind(kind: PolicyKind, workload: &Workload, cluster: &Cluster) -> Result<RunRecords> {
    let costs = costs(workload, cluster);
    let config = PolicyConfig {
        rssp_degrees: vec![(SMALL, 1), (LARGE, 2)],
        ..PolicyConfig::default()
    };
    let mut policy = policy::build(kind, cluster, &costs, &config)?;
    run_policy(policy.as_mut(), workload, cluster, &costs)
}

/// [`run_kind`] with `overheads` charged by the executor and planned for by the policy.
pub fn run_kind_with(
    kind: PolicyKind,
    workload: &Workload,
    cluster: &Cluster,
    overheads: Overheads,
) -> Result<RunRecords> {
    let costs = costs(workload, cluster);
    let config = PolicyConfig {
        rssp_degrees: vec![(SMALL, 1), (LARGE, 2)],
        overheads: overheads.clone(),
        ..PolicyConfig::default()
    };
    let mut policy = policy::build(kind, cluster, &costs, &config)?;
    let mut exec = SimExecutor::new(&costs, overheads);
    engine::run(workload, cluster, &costs, policy.as_mut(), &mut exec)
}

pub fn run_policy(
    policy: &mut dyn Policy,
    workload: &Workload,
    cluster: &Cluster,
    costs: &StepTimes,
) -> Result<RunRecords> {
    let overheads = Overheads {
        remap_fraction: 0.0,
        ..Overheads::default()
    };
    let mut exec = SimExecutor::new(costs, overheads);
    engine::run(workload, cluster, costs, policy, &mut exec)
}

/// (start, finish, outcome) per request label, for compact assertions.
pub fn schedule(run: &RunRecords) -> Vec<(u64, Option<Nanos>, Nanos, &'static str)> {
    run.requests
        .iter()
        .map(|r| (r.id, r.start, r.end, r.outcome.as_str()))
        .collect()
}

/// On one GPU, a step alone takes 2 slots and a batched step of two requests 3 slots.
pub struct BatchSlots;
impl CostModel for BatchSlots {
    fn step_time(&self, _r: Resolution, k: u32, b: u32, _l: Link) -> Result<Nanos> {
        let slots = match b {
            1 => 2.0,
            2 => 3.0,
            _ => 3.0 * f64::from(b) / 2.0,
        };
        Ok(Nanos::from_millis(100.0 * slots / f64::from(k)))
    }
    fn describe(&self) -> String {
        "batch slots".into()
    }
}

/// Most requests meetable on one GPU when steps run alone (2 slots) or batched in pairs of
/// requests at the same step (3 slots), in any order, each started as early as it can: exact,
/// by memoised search over (time, steps done per request); on one GPU every schedule is such an
/// order, and starting earlier never hurts. `reqs` are (arrival, steps, deadline) in slots.
/// With `same_steps`, only requests of the same step count batch (what the engine allows);
/// without, any two at the same step do (a relaxation, for the bound).
pub fn exhaustive_batched(reqs: &[(u64, u32, u64)], same_steps: bool) -> usize {
    use std::collections::HashMap;
    fn best(
        t: u64,
        done: &mut Vec<u32>,
        reqs: &[(u64, u32, u64)],
        same_steps: bool,
        memo: &mut HashMap<(u64, Vec<u32>), usize>,
    ) -> usize {
        if let Some(&v) = memo.get(&(t, done.clone())) {
            return v;
        }
        let n = reqs.len();
        let mut v = 0;
        // One request alone, or two at the same step together.
        let mut ops: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
        for i in 0..n {
            for j in i + 1..n {
                if done[i] == done[j] && (!same_steps || reqs[i].1 == reqs[j].1) {
                    ops.push(vec![i, j]);
                }
            }
        }
        for op in ops {
            if op.iter().any(|&i| done[i] == reqs[i].1) {
                continue;
            }
            let start = op.iter().map(|&i| reqs[i].0).fold(t, u64::max);
            let end = start + if op.len() == 1 { 2 } else { 3 };
            let mut gain = 0;
            for &i in &op {
                done[i] += 1;
                if done[i] == reqs[i].1 && end <= reqs[i].2 {
                    gain += 1;
                }
            }
            v = v.max(gain + best(end, done, reqs, same_steps, memo));
            for &i in &op {
                done[i] -= 1;
            }
        }
        memo.insert((t, done.clone()), v);
        v
    }
    best(
        0,
        &mut vec![0; reqs.len()],
        reqs,
        same_steps,
        &mut HashMap::new(),
    )
}

pub fn slots_workload(reqs: &[(u64, u32, u64)]) -> Workload {
    Workload::from_requests(
        reqs.iter()
            .enumerate()
            .map(|(i, &(a, steps, d))| Request {
                id: RequestId(0),
                label: i as u64,
                arrival: Nanos(a * 100_000_000),
                resolution: Resolution::square(256),
                steps,
                deadline: Nanos(d * 100_000_000),
                stages: Default::default(),
            })
            .collect(),
    )
}

/// Two 256 px requests of 28 steps at t = 0, due at 1.40 s and 1.59 s: on one H100 (shipped
/// profile) both are met only by batching some of their steps (20 batched, then 8 alone each).
pub fn batching_pair() -> Workload {
    Workload::from_requests(
        [(0, 1.40), (1, 1.59)]
            .into_iter()
            .map(|(label, d)| Request {
                id: RequestId(0),
                label,
                arrival: Nanos::ZERO,
                resolution: SMALL,
                steps: 28,
                deadline: Nanos::from_secs(d),
                stages: Default::default(),
            })
            .collect(),
    )
}
