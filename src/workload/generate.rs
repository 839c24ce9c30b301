//! Seeded generation of a workload from a specification.
// STUB: to be implemented.

use rand_pcg::Pcg64;

use crate::error::Result;
use crate::workload::arrival::ArrivalProcess;
use crate::workload::mix::{Mix, Sampling};
use crate::workload::{SloBases, Workload};

/// Everything that decides a synthetic workload.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    pub requests: usize,
    pub arrival: ArrivalProcess,
    pub mix: Mix,
    pub sampling: Sampling,
    /// Denoising steps per request.
    pub steps: u32,
    /// Deadline = arrival + slo_scale * base(resolution).
    pub slo_scale: f64,
    pub slo_bases: SloBases,
    pub seed: u64,
}

/// An RNG for the named stream (`"arrivals"`, `"resolutions"`), derived from `seed` so that
/// streams are independent of each other and of how much of any other stream is consumed.
pub fn stream_rng(seed: u64, stream: &str) -> Pcg64 {
    let _ = (seed, stream);
    unimplemented!()
}

/// Generates the workload; fails with a clear message on invalid parameters or a
/// resolution with no SLO base.
pub fn generate(spec: &WorkloadSpec) -> Result<Workload> {
    let _ = spec;
    unimplemented!()
}
