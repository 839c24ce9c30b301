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
