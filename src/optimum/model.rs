//! The scheduling model the exact solver searches, built from a workload, its step times, the
//! cluster and the executor's overheads: jobs, configurations and independent components.
//!
//! Everything the simulator could run must be a schedule of this model (see the module header
//! of `optimum` for the argument), so the model keeps the engine's rules that only restrict
//! (steps atomic, degrees powers of two within a node, batches of one resolution at the same
//! step) and relaxes the costs that only lengthen a schedule (hand-offs, group set-up,
//! dispatch, the GPU time of the text encoder and the VAE). It leaves out nothing else.

use crate::bound::least_cost_mix;
use crate::cluster::{Cluster, Link};
use crate::cost::{Overheads, StepTimes};
use crate::workload::Workload;

/// One way to run a step: `degree` GPUs of one node, `batch` requests of one resolution at the
/// same step, taking `step` ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub degree: u32,
    pub batch: u32,
    pub step: u64,
}

impl Config {
    /// GPU-ns per image and step: what one image's step costs the cluster.
    pub fn gpu_cost(&self) -> f64 {
        f64::from(self.degree) * self.step as f64 / f64::from(self.batch)
    }
}

/// A request that can meet its deadline alone on the cluster.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    /// Index of the request in its workload.
    pub request: usize,
    /// Index into [`Instance::configs`]: the request's resolution.
    pub class: usize,
    pub steps: u32,
    /// The first step starts no earlier: arrival plus the text encoder.
    pub release: u64,
    /// The last step ends no later: deadline less the VAE decode.
    pub due: u64,
    /// The fastest step alone (batch 1) on one node.
    pub fastest: u64,
}

/// A workload as the solver sees it.
#[derive(Clone, Debug)]
pub struct Instance {
    /// Requests that can meet their deadline alone, in arrival order.
    pub jobs: Vec<Job>,
    /// Requests of the workload in all (the others cannot meet their deadline at all).
    pub requests: usize,
    /// Per resolution class: the configurations no other one dominates (same batch, fewer or
    /// as many GPUs, no slower), by batch then degree.
    pub configs: Vec<Vec<Config>>,
    /// The batch sizes the step times have, ascending (always 1).
    pub batches: Vec<u32>,
    pub nodes: u32,
    pub gpus_per_node: u32,
}

impl Instance {
    /// The model of `workload` on `cluster` with `costs` (resolved for the workload's
    /// resolutions) and the executor's `overheads`.
    pub fn new(
        workload: &Workload,
        costs: &StepTimes,
        cluster: &Cluster,
        overheads: &Overheads,
    ) -> Instance {
        let classes = costs.classes().len();
        let max_degree = costs.max_degree().min(cluster.gpus_per_node.max(1));
        let configs: Vec<Vec<Config>> = (0..classes)
            .map(|c| class_configs(costs, c, max_degree))
            .collect();
        let mut jobs = Vec::new();
        for (i, r) in workload.requests.iter().enumerate() {
            let Some(class) = costs.class_of(r.resolution) else {
                continue;
            };
            let class = class.index();
            let Some(fastest) = configs[class]
                .iter()
                .filter(|c| c.batch == 1)
                .map(|c| c.step)
                .min()
            else {
                continue;
            };
            let release = r.arrival.0.saturating_add(overheads.text_encoder.0);
            let Some(due) = r
                .deadline
                .0
                .checked_sub(overheads.vae_decode(r.resolution).0)
            else {
                continue;
            };
            let need = u128::from(fastest) * u128::from(r.steps);
            if r.steps == 0 || due < release || need > u128::from(due - release) {
                continue;
            }
            jobs.push(Job {
                request: i,
                class,
                steps: r.steps,
                release,
                due,
                fastest,
            });
        }
        Instance {
            jobs,
            requests: workload.len(),
            configs,
            batches: costs.batches().to_vec(),
            nodes: cluster.nodes,
            gpus_per_node: cluster.gpus_per_node,
        }
    }

    pub fn total_gpus(&self) -> u64 {
        u64::from(self.nodes) * u64::from(self.gpus_per_node)
    }

    /// The configuration of `class` at (`degree`, `batch`), if no other dominates it.
    pub fn config(&self, class: usize, degree: u32, batch: u32) -> Option<Config> {
        self.configs[class]
            .iter()
            .find(|c| c.degree == degree && c.batch == batch)
            .copied()
    }

    /// Groups of jobs (indices into [`Instance::jobs`]) that can never compete for GPUs: the
    /// intervals `[release, due]` of one group overlap in a chain, those of different groups
    /// not at all (touching ends do not compete: a step ending at `t` frees its GPUs for one
    /// starting at `t`). A met request runs inside its interval, so the optimum is the sum of
    /// the groups' optima.
    pub fn components(&self) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.jobs.len()).collect();
        order.sort_by_key(|&j| (self.jobs[j].release, j));
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut reach = 0u64;
        for j in order {
            let job = &self.jobs[j];
            match out.last_mut() {
                Some(group) if job.release < reach => group.push(j),
                _ => out.push(vec![j]),
            }
            reach = reach.max(job.due);
        }
        out
    }
}

/// Every (degree, batch) configuration of `class` up to `max_degree`, at the faster link (the
/// engine charges the slower one where a set crosses it, so the faster is never an
/// underestimate of what the model allows), without dominated ones.
fn class_configs(costs: &StepTimes, class: usize, max_degree: u32) -> Vec<Config> {
    let class = crate::cost::ResClass(class as u16);
    let mut all = Vec::new();
    for &batch in costs.batches() {
        let mut degree = 1;
        while degree <= max_degree {
            let step = Link::ALL
                .iter()
                .filter_map(|&l| costs.get(class, degree, batch, l))
                .min();
            if let Some(step) = step {
                all.push(Config {
                    degree,
                    batch,
                    step: step.0,
                });
            }
            degree *= 2;
        }
    }
    // A step on more GPUs that is no faster is never worth taking: the same batch on the
    // smaller set ends no later and leaves more GPUs free.
    all.iter()
        .filter(|c| {
            !all.iter()
                .any(|o| o.batch == c.batch && o.degree < c.degree && o.step <= c.step)
        })
        .copied()
        .collect()
}

/// The least GPU time (GPU-ns) to advance `steps` (fractional) steps of a request within
/// `wall` ns, splitting them between `configs` fractionally, each step of a batch charged
/// its share; `None` if even the fastest cannot. The LP relaxation of the request's plan,
/// the linear program of `bound.rs` ([`least_cost_mix`]).
///
/// The search's prunes call it with a fraction of steps that comes out of a division, so
/// "fits `wall`" is judged with a relative slack of 1e-9 (as their capacities are): 0.6 of a
/// 60 ms step reads 0.6000000000000001, and must still fit 36 ms. A prune may only refuse a
/// clear overload.
pub fn least_gpu_time(configs: &[Config], steps: f64, wall: f64) -> Option<f64> {
    if steps <= 0.0 {
        return Some(0.0);
    }
    least_cost_mix(
        configs,
        |c| (c.step as f64, c.gpu_cost()),
        steps,
        wall * (1.0 + 1e-9),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(degree: u32, batch: u32, step: u64) -> Config {
        Config {
            degree,
            batch,
            step,
        }
    }

    #[test]
    fn least_gpu_time_mixes_two_configurations_at_the_budget() {
        // Alone on 1 GPU: 100 per step; on 2 GPUs: 60 per step (120 GPU time).
        let c = [cfg(1, 1, 100), cfg(2, 1, 60)];
        assert_eq!(least_gpu_time(&c, 3.0, 300.0), Some(300.0));
        // 3 steps in 240: x on 2 GPUs with 100 (3 - x) + 60 x = 240, x = 1.5: 150 + 180.
        // (Within the slack of a billionth of the wall.)
        let mixed = least_gpu_time(&c, 3.0, 240.0).unwrap();
        assert!((mixed - 330.0).abs() < 1e-6, "{mixed}");
        assert_eq!(least_gpu_time(&c, 3.0, 179.0), None);
        assert_eq!(least_gpu_time(&c, 0.0, 0.0), Some(0.0));
        // A fraction of a step from a division, an ulp over what fits: it fits.
        let c = [cfg(2, 1, 60_000_000)];
        let inside = 2.0 - 84e6 / 60e6;
        assert!(inside * 60e6 > 36e6);
        assert_eq!(least_gpu_time(&c, inside, 36e6).map(f64::round), Some(72e6));
    }
}
