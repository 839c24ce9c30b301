//! Benchmarks of the scheduler's hot paths (run with `cargo bench`).
//!
//! - `tetriserve_round`: one TetriServe round (plans, Algorithm 1, placement, scale-up) over
//!   `pending` waiting requests on `gpus` GPUs (nodes of 8), FLUX.1-dev on H100.
//! - `packing`: Algorithm 1 alone, for `pending` groups on one node of 8 GPUs.
//! - `simulate_300`: a whole 300-request paper run under each policy.
//! - `event_loop`, `cost_lookup_*`, `trace_generation`: the engine, cost lookups and workload
//!   generation on their own.

use divan::Bencher;
use tetriserve::Nanos;
use tetriserve::cluster::{Cluster, Topology};
use tetriserve::cost::profile::ProfileTable;
use tetriserve::cost::{Overheads, StepTimes};
use tetriserve::engine::{self, SimExecutor};
use tetriserve::policy::tetriserve::{Group, Packer, Value};
use tetriserve::policy::{
    self, Phase, Policy, PolicyConfig, PolicyKind, RequestState, Tetriserve, Variant, View,
};
use tetriserve::workload::generate::{WorkloadSpec, generate};
use tetriserve::workload::{RequestId, Workload};

fn main() {
    divan::main();
}

fn workload(n: usize) -> Workload {
    let mut spec = WorkloadSpec::paper(7);
    spec.requests = n;
    generate(&spec).expect("paper workload")
}

#[divan::bench(args = [(8, 10), (8, 100), (8, 1000), (64, 10), (64, 100), (64, 1000), (512, 10), (512, 100), (512, 1000), (512, 10000)])]
fn tetriserve_round(bencher: Bencher, (gpus, pending): (u32, usize)) {
    round(bencher, gpus, pending, Variant::FULL);
}

/// The same with overload shedding (a burst is an overload: the shedding test runs in full).
#[divan::bench(args = [(8, 10), (8, 100), (8, 1000), (512, 1000), (512, 10000)])]
fn tetriserve_shed_round(bencher: Bencher, (gpus, pending): (u32, usize)) {
    round(bencher, gpus, pending, Variant::SHED);
}

fn round(bencher: Bencher, gpus: u32, pending: usize, variant: Variant) {
    let cluster = Cluster::new("h100", gpus / 8, 8, Topology::NvSwitch).unwrap();
    let mut w = workload(pending);
    // Everyone is waiting at t = 0 with its SLO from now: a burst of `pending` requests.
    for r in &mut w.requests {
        r.deadline = r.deadline - r.arrival;
        r.arrival = Nanos::ZERO;
    }
    let profile = ProfileTable::builtin("h100-flux1-dev").unwrap();
    let costs = StepTimes::resolve(&profile, &w.resolutions(), &cluster, &[1]).unwrap();
    let states: Vec<RequestState> = w
        .requests
        .iter()
        .map(|r| {
            let mut s = RequestState::new(r.clone(), costs.class_of(r.resolution).unwrap());
            s.phase = Phase::Waiting;
            s
        })
        .collect();
    let ids: Vec<RequestId> = w.requests.iter().map(|r| r.id).collect();
    let free = cluster.all_free();
    let mut policy = Tetriserve::new(
        variant,
        &cluster,
        &costs,
        Default::default(),
        Overheads::default(),
    );
    let mut out = Vec::new();
    let arrive = View::new(
        Nanos::ZERO,
        &cluster,
        &costs,
        &free,
        &ids,
        &ids,
        &[],
        false,
        &states,
    );
    policy.decide(&arrive, &mut out);
    let view = View::new(
        Nanos::ZERO,
        &cluster,
        &costs,
        &free,
        &ids,
        &[],
        &[],
        true,
        &states,
    );
    bencher.bench_local(|| {
        out.clear();
        policy.round(&view, &mut out);
        out.len()
    });
}

#[divan::bench(args = [10, 100, 1000])]
fn packing(bencher: Bencher, pending: usize) {
    let groups: Vec<Group> = (0..pending)
        .map(|i| {
            let mut g = Group::new(Value {
                survivors: (i % 2) as u32,
                secondary: 0,
            });
            g.push(
                1 << (i % 3),
                Value {
                    survivors: 1,
                    secondary: i as u64,
                },
            );
            g.push(
                8,
                Value {
                    survivors: 1,
                    secondary: 2 * i as u64,
                },
            );
            g
        })
        .collect();
    let mut packer = Packer::default();
    let mut out = Vec::new();
    bencher.bench_local(|| packer.pack(&groups, 8, &mut out));
}

#[divan::bench(args = ["xdit-sp8", "rssp", "tetriserve", "tetriserve-shed"])]
fn simulate_300(bencher: Bencher, name: &str) {
    let cluster = Cluster::new("h100", 1, 8, Topology::NvSwitch).unwrap();
    let w = workload(300);
    let profile = ProfileTable::builtin("h100-flux1-dev").unwrap();
    let costs = StepTimes::resolve(&profile, &w.resolutions(), &cluster, &[1]).unwrap();
    let kind: PolicyKind = name.parse().unwrap();
    bencher.bench_local(|| {
        let mut p: Box<dyn Policy> =
            policy::build(kind, &cluster, &costs, &PolicyConfig::default()).unwrap();
        let mut exec = SimExecutor::new(&costs, Overheads::default());
        engine::run(&w, &cluster, &costs, p.as_mut(), &mut exec)
            .unwrap()
            .works
            .len()
    });
}

/// The event loop alone: xdit-sp8 (a trivial policy) over `n` requests on 64 nodes; divan's
/// time per iteration / events per run gives the engine's events per second.
#[divan::bench(args = [10_000, 100_000])]
fn event_loop(bencher: Bencher, n: usize) {
    let cluster = Cluster::new("h100", 64, 8, Topology::NvSwitch).unwrap();
    let mut spec = WorkloadSpec::paper(3);
    spec.requests = n;
    spec.arrival = tetriserve::workload::arrival::ArrivalProcess::Poisson { rate_per_s: 30.0 };
    let w = generate(&spec).unwrap();
    let profile = ProfileTable::builtin("h100-flux1-dev").unwrap();
    let costs = StepTimes::resolve(&profile, &w.resolutions(), &cluster, &[1]).unwrap();
    bencher
        .counter(divan::counter::ItemsCount::new(2 * n))
        .bench_local(|| {
            let mut p = policy::build(
                PolicyKind::XditSp(8),
                &cluster,
                &costs,
                &PolicyConfig::default(),
            )
            .unwrap();
            let mut exec = SimExecutor::new(&costs, Overheads::default());
            engine::run(&w, &cluster, &costs, p.as_mut(), &mut exec)
                .unwrap()
                .works
                .len()
        });
}

/// Cost lookups: the resolved table the engine uses, and the CSV profile with interpolation.
#[divan::bench]
fn cost_lookup_resolved(bencher: Bencher) {
    let cluster = Cluster::new("h100", 1, 8, Topology::NvSwitch).unwrap();
    let profile = ProfileTable::builtin("h100-flux1-dev").unwrap();
    let res = [256, 512, 1024, 2048].map(tetriserve::workload::Resolution::square);
    let costs = StepTimes::resolve(&profile, &res, &cluster, &[1]).unwrap();
    let class = costs.class_of(res[2]).unwrap();
    bencher.bench_local(|| costs.step(divan::black_box(class), divan::black_box(4)));
}

#[divan::bench]
fn cost_lookup_interpolated(bencher: Bencher) {
    use tetriserve::cost::CostModel;
    let profile = ProfileTable::builtin("h100-flux1-dev").unwrap();
    let res = tetriserve::workload::Resolution::new(1024, 768);
    bencher.bench_local(|| {
        profile
            .step_time(
                divan::black_box(res),
                4,
                1,
                tetriserve::cluster::Link::NvLink,
            )
            .unwrap()
    });
}

/// Generating a trace of `n` requests (Poisson, Uniform mix, stratified).
#[divan::bench(args = [10_000, 1_000_000])]
fn trace_generation(bencher: Bencher, n: usize) {
    let mut spec = WorkloadSpec::paper(5);
    spec.requests = n;
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench_local(|| generate(&spec).unwrap().len());
}
