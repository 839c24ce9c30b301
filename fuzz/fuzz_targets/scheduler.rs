//! Arbitrary valid workloads and clusters under every policy: the run succeeds and its records
//! pass the invariant checker (no GPU double-booked, steps in order, verdicts consistent).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tetriserve::Nanos;
use tetriserve::cluster::{Cluster, Topology};
use tetriserve::cost::analytic::Analytic;
use tetriserve::cost::{Overheads, StepTimes};
use tetriserve::engine::{self, SimExecutor};
use tetriserve::metrics::invariants::check_run;
use tetriserve::policy::{self, PolicyConfig, PolicyKind};
use tetriserve::workload::{Request, RequestId, Resolution, Workload};

#[derive(Arbitrary, Debug)]
struct Input {
    nodes: u8,
    gpus_log2: u8,
    pairs: bool,
    requests: Vec<(u16, u8, u8, u16)>,
}

fuzz_target!(|input: Input| {
    let nodes = u32::from(input.nodes % 3) + 1;
    let per_node = 1u32 << (input.gpus_log2 % 4);
    let topology = if input.pairs && per_node >= 2 { Topology::NvlinkPairs } else { Topology::NvSwitch };
    let Ok(cluster) = Cluster::new("h100", nodes, per_node, topology) else { return };
    let sizes = [256, 512, 1024, 2048];
    let mut t = 0u64;
    let requests: Vec<Request> = input
        .requests
        .iter()
        .take(64)
        .map(|&(gap, res, steps, slo)| {
            t += u64::from(gap) * 1_000_000;
            Request {
                id: RequestId(0),
                label: 0,
                arrival: Nanos(t),
                resolution: Resolution::square(sizes[usize::from(res % 4)]),
                steps: u32::from(steps % 40) + 1,
                deadline: Nanos(t + u64::from(slo) * 1_000_000),
                stages: Default::default(),
            }
        })
        .collect();
    if requests.is_empty() {
        return;
    }
    let mut w = Workload::from_requests(requests);
    for (i, r) in w.requests.iter_mut().enumerate() {
        r.label = i as u64;
    }
    let model = Analytic::preset("flux1-dev", "h100").expect("preset");
    let costs = StepTimes::resolve(&model, &w.resolutions(), &cluster, &[1, 2, 4]).expect("analytic covers these");
    let mut kinds = PolicyKind::all_for(&cluster);
    kinds.extend(PolicyKind::ablation());
    kinds.extend(PolicyKind::extensions());
    for kind in kinds {
        let config = PolicyConfig::default();
        let Ok(mut p) = policy::build(kind, &cluster, &costs, &config) else { continue };
        let mut exec = SimExecutor::new(&costs, Overheads::default());
        let run = engine::run(&w, &cluster, &costs, p.as_mut(), &mut exec).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let errors = check_run(&run, &w, None);
        assert!(errors.is_empty(), "{kind}: {errors:?}");
    }
});
