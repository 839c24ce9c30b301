//! Benchmarks of the attainment upper bound (`tetriserve::bound::upper_bound`, run with
//! `cargo bench --bench bound`).
//!
//! - `poisson`: `n` requests of the paper's Uniform mix (28 steps, SLO 1.0) arriving at
//!   4,800 req/min on 1,024 H100s (about 400 requests per longest SLO, 1,600 per window the
//!   search spans). Up to a few thousand requests every window is tried; beyond, the search
//!   uses its geometric window lengths and short walks, near-linear in `n`.
//! - `burst`: `n` requests all arriving at t = 0 (one start for every window) on 8 GPUs.

use divan::Bencher;
use tetriserve::Nanos;
use tetriserve::bound::upper_bound;
use tetriserve::cluster::{Cluster, Topology};
use tetriserve::cost::StepTimes;
use tetriserve::cost::profile::ProfileTable;
use tetriserve::workload::Workload;
use tetriserve::workload::arrival::ArrivalProcess;
use tetriserve::workload::generate::{WorkloadSpec, generate};

fn main() {
    divan::main();
}

fn workload(n: usize, per_minute: f64) -> Workload {
    let mut spec = WorkloadSpec::paper(1);
    spec.requests = n;
    spec.arrival = ArrivalProcess::poisson_per_minute(per_minute);
    generate(&spec).expect("paper workload")
}

fn bench(bencher: Bencher, w: &Workload, gpus: u32) {
    let cluster = Cluster::new("h100", gpus / 8, 8, Topology::NvSwitch).unwrap();
    let profile = ProfileTable::builtin("h100-flux1-dev").unwrap();
    let costs = StepTimes::resolve(&profile, &w.resolutions(), &cluster, &[1, 2, 4]).unwrap();
    bencher
        .counter(divan::counter::ItemsCount::new(w.len()))
        .bench_local(|| upper_bound(w, &costs, cluster.total_gpus(), cluster.max_degree()).met);
}

#[divan::bench(
    args = [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000],
    sample_count = 10,
    sample_size = 1
)]
fn poisson(bencher: Bencher, n: usize) {
    bench(bencher, &workload(n, 4800.0), 1024);
}

#[divan::bench(
    args = [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000],
    sample_count = 10,
    sample_size = 1
)]
fn burst(bencher: Bencher, n: usize) {
    let mut w = workload(n, 4800.0);
    for r in &mut w.requests {
        r.deadline = r.deadline - r.arrival;
        r.arrival = Nanos::ZERO;
    }
    bench(bencher, &w, 8);
}
